//! SFTP on a standing channel: one `sftp` subsystem session per connection, opened lazily
//! by the first request that wants it, shared by every concurrent request of that user
//! (SFTP multiplexes requests by id, so no process is spawned per request), and reopened
//! if it dies. The session counts as one of its connection's channels and ends with the
//! connection. Its reader task (russh-sftp's) always drains the channel, so the standing
//! channel never stalls the connection's other channels.
//!
//! Paths are bytes on the wire but russh-sftp takes and returns `String`s (decoding names
//! lossily), so a path that is not UTF-8 is refused ([`SftpError::NotUtf8`]) and names
//! that arrive with U+FFFD should be treated as possibly mangled by the caller.

use std::sync::Arc;

use bytes::Bytes;
use russh_sftp::client::RawSftpSession;
use russh_sftp::client::error::Error as RawError;
use russh_sftp::protocol::{FileAttributes, OpenFlags, StatusCode};

/// Why an SFTP request failed. Callers use the exec path (and its exact tool messages)
/// when they get one of these before anything was returned to the API client.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SftpError {
    /// The server answered with an error status (no such file, permission denied, …).
    #[error("SFTP status {code}: {message}")]
    Status { code: u32, message: String },
    /// The path is not UTF-8, which russh-sftp cannot carry.
    #[error("path is not UTF-8")]
    NotUtf8,
    /// The session could not be opened or died (channel closed, timeout, bad packet).
    #[error("SFTP session unusable: {0}")]
    Session(String),
}

impl From<RawError> for SftpError {
    fn from(err: RawError) -> Self {
        match err {
            RawError::Status(status) => SftpError::Status {
                code: status.status_code as u32,
                message: status.error_message,
            },
            other => SftpError::Session(other.to_string()),
        }
    }
}

/// One directory entry as sftp-server reports it.
#[derive(Debug, Clone)]
pub struct SftpEntry {
    pub name: String,
    /// sftp-server's `ls -l`-like line (mode, links, owner and group names, …).
    pub longname: String,
    pub attrs: SftpAttrs,
}

/// The attributes SFTP v3 carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SftpAttrs {
    pub size: Option<u64>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub permissions: Option<u32>,
    pub mtime: Option<u32>,
}

impl From<&FileAttributes> for SftpAttrs {
    fn from(attrs: &FileAttributes) -> Self {
        Self {
            size: attrs.size,
            uid: attrs.uid,
            gid: attrs.gid,
            permissions: attrs.permissions,
            mtime: attrs.mtime,
        }
    }
}

/// A live SFTP session of one connection; cheap to clone. Requests on it run concurrently.
#[derive(Clone)]
pub struct Sftp {
    pub(crate) session: Arc<RawSftpSession>,
    /// Keeps the connection counted as in use while a request holds the session.
    pub(crate) _use: Arc<dyn Send + Sync>,
    /// Called when the session turns out to be dead, so the next request reopens it.
    pub(crate) on_dead: Arc<dyn Fn() + Send + Sync>,
}

/// How much one READ asks for: sftp-server answers up to 256 KiB, 64 KiB keeps each
/// reply within a few SSH packets.
pub const READ_CHUNK: u32 = 64 * 1024;

fn path(bytes: &[u8]) -> Result<String, SftpError> {
    std::str::from_utf8(bytes)
        .map(str::to_owned)
        .map_err(|_| SftpError::NotUtf8)
}

impl Sftp {
    /// The error, after marking the session dead if it is not a mere status.
    fn fail(&self, err: RawError) -> SftpError {
        let err = SftpError::from(err);
        if matches!(err, SftpError::Session(_)) {
            (self.on_dead)();
        }
        err
    }

    fn check<T>(&self, result: Result<T, RawError>) -> Result<T, SftpError> {
        result.map_err(|err| self.fail(err))
    }

    /// Attributes of `path` itself (a link is not followed).
    pub async fn lstat(&self, target: &[u8]) -> Result<SftpAttrs, SftpError> {
        let result = self.session.lstat(path(target)?).await;
        Ok(SftpAttrs::from(&self.check(result)?.attrs))
    }

    /// Every entry of the directory `dir`, `.` and `..` included, in the server's order.
    pub async fn read_dir(&self, dir: &[u8]) -> Result<Vec<SftpEntry>, SftpError> {
        let result = self.session.opendir(path(dir)?).await;
        let handle = self.check(result)?.handle;
        let mut entries = Vec::new();
        let listed = loop {
            match self.session.readdir(handle.as_str()).await {
                Ok(name) => entries.extend(name.files.into_iter().map(|f| SftpEntry {
                    attrs: SftpAttrs::from(&f.attrs),
                    name: f.filename,
                    longname: f.longname,
                })),
                Err(RawError::Status(status)) if status.status_code == StatusCode::Eof => {
                    break Ok(());
                }
                Err(err) => break Err(err),
            }
        };
        let closed = self.session.close(handle).await;
        self.check(listed)?;
        self.check(closed)?;
        Ok(entries)
    }

    /// Removes the file (not directory) `file`.
    pub async fn remove(&self, file: &[u8]) -> Result<(), SftpError> {
        let result = self.session.remove(path(file)?).await;
        self.check(result).map(drop)
    }

    /// The target of the link `link`.
    pub async fn read_link(&self, link: &[u8]) -> Result<String, SftpError> {
        let result = self.session.readlink(path(link)?).await;
        let name = self.check(result)?;
        name.files
            .into_iter()
            .next()
            .map(|f| f.filename)
            .ok_or_else(|| SftpError::Session("READLINK answered no name".into()))
    }

    /// Opens `file` for reading (a link is followed), with its attributes (`fstat`).
    pub async fn open_read(&self, file: &[u8]) -> Result<(SftpHandle, SftpAttrs), SftpError> {
        let result = self
            .session
            .open(path(file)?, OpenFlags::READ, FileAttributes::empty())
            .await;
        let handle = SftpHandle {
            sftp: self.clone(),
            handle: self.check(result)?.handle,
        };
        let result = self.session.fstat(handle.handle.as_str()).await;
        let attrs = SftpAttrs::from(&self.check(result)?.attrs);
        Ok((handle, attrs))
    }
}

/// An open file; closed on drop (in the background).
pub struct SftpHandle {
    sftp: Sftp,
    handle: String,
}

impl SftpHandle {
    /// Up to `len` bytes at `offset`; empty at end of file.
    pub async fn read(&self, offset: u64, len: u32) -> Result<Bytes, SftpError> {
        match self
            .sftp
            .session
            .read(self.handle.as_str(), offset, len)
            .await
        {
            Ok(data) => Ok(Bytes::from(data.data)),
            Err(RawError::Status(status)) if status.status_code == StatusCode::Eof => {
                Ok(Bytes::new())
            }
            Err(err) => Err(self.sftp.fail(err)),
        }
    }
}

impl Drop for SftpHandle {
    fn drop(&mut self) {
        let session = self.sftp.session.clone();
        let handle = std::mem::take(&mut self.handle);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = session.close(handle).await;
            });
        }
    }
}
