//! SFTP on standing channels: a user's `sftp` subsystem sessions, opened lazily by the
//! requests that want them and shared by every concurrent request of that user (SFTP
//! multiplexes requests by id, so no process is spawned per request), and reopened if they
//! die. The pool ([`crate::SshPool::sftp`]) opens another session, up to a bound, while
//! every one is busy: one sftp-server process answers its requests one at a time. Each
//! session counts as one of its connection's channels and ends with the connection. Its
//! reader task (russh-sftp's) always drains the channel, so a standing channel never
//! stalls the connection's other channels.
//!
//! Paths are bytes on the wire but russh-sftp takes and returns `String`s (decoding names
//! lossily), so a path that is not UTF-8 is refused ([`SftpError::NotUtf8`]) and names
//! that arrive with U+FFFD should be treated as possibly mangled by the caller.
//!
//! Two OpenSSH extensions are used when the server announces them: `posix-rename@openssh.com`
//! (a rename that replaces its target atomically) and `users-groups-by-id@openssh.com`
//! (user and group names of ids, resolved on the cluster; cached per session).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::{Buf, BufMut, Bytes};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use russh_sftp::client::RawSftpSession;
use russh_sftp::client::error::Error as RawError;
use russh_sftp::protocol::{FileAttributes, OpenFlags, Packet, StatusCode};

const POSIX_RENAME: &str = "posix-rename@openssh.com";
const USERS_GROUPS_BY_ID: &str = "users-groups-by-id@openssh.com";

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
    /// The server does not offer the extension the request needs.
    #[error("the SFTP server has no {0}")]
    Unsupported(&'static str),
    /// The server's answer is not what the protocol says (e.g. a name that is not UTF-8).
    #[error("unexpected SFTP answer: {0}")]
    Unexpected(&'static str),
}

impl SftpError {
    /// The variant as a metric label value.
    pub fn kind(&self) -> &'static str {
        match self {
            SftpError::Status { .. } => "status",
            SftpError::NotUtf8 => "not_utf8",
            SftpError::Session(_) => "session",
            SftpError::Unsupported(_) => "unsupported",
            SftpError::Unexpected(_) => "unexpected",
        }
    }
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

/// One connection's initialised session, with what its server announced and the names of
/// the user and group ids it has resolved.
pub(crate) struct Session {
    raw: RawSftpSession,
    extensions: HashSet<String>,
    /// `(is_group, id)` → name.
    names: Mutex<HashMap<(bool, u32), String>>,
    /// Requests holding this session now: the pool hands out the least busy session.
    pub(crate) requests: AtomicUsize,
}

impl Session {
    /// Initialises the session on `raw` (the subsystem channel), waiting at most `timeout`
    /// seconds for each answer.
    pub(crate) async fn init(raw: RawSftpSession, timeout: u64) -> Result<Self, RawError> {
        raw.set_timeout(timeout);
        let version = raw.init().await?;
        Ok(Self {
            raw,
            extensions: version.extensions.into_keys().collect(),
            names: Mutex::default(),
            requests: AtomicUsize::new(0),
        })
    }

    pub(crate) fn close(&self) {
        let _ = self.raw.close_session();
    }

    pub(crate) fn busy(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// A live SFTP session of one connection; cheap to clone. Requests on it run concurrently.
#[derive(Clone)]
pub struct Sftp {
    pub(crate) session: Arc<Session>,
    /// Keeps the connection counted as in use while a request holds the session.
    pub(crate) _use: Arc<dyn Send + Sync>,
    /// Called when the session turns out to be dead, so the next request reopens it.
    pub(crate) on_dead: Arc<dyn Fn() + Send + Sync>,
    /// The cluster's name, which labels the operations' metrics.
    pub(crate) cluster: Arc<str>,
}

/// How much one READ asks for: sftp-server answers up to 256 KiB, 64 KiB keeps each
/// reply within a few SSH packets.
pub const READ_CHUNK: u32 = 64 * 1024;

/// READDIRs kept in flight on one directory handle. sftp-server answers them in turn, each
/// with the next batch of up to 100 entries and EOF once the directory is exhausted, so a
/// listing costs a quarter of the round trips; the batches' order does not matter to
/// callers, which sort.
const READDIR_AHEAD: usize = 4;

fn path(bytes: &[u8]) -> Result<String, SftpError> {
    std::str::from_utf8(bytes)
        .map(str::to_owned)
        .map_err(|_| SftpError::NotUtf8)
}

/// An SSH `string`: length, then bytes.
fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.put_u32(bytes.len() as u32);
    out.put_slice(bytes);
}

/// The next SSH `string` of `data`.
fn get_string<'a>(data: &mut &'a [u8]) -> Option<&'a [u8]> {
    if data.remaining() < 4 {
        return None;
    }
    let len = data.get_u32() as usize;
    let bytes = data.get(..len)?;
    data.advance(len);
    Some(bytes)
}

/// The names of a `users-groups-by-id@openssh.com` reply: `count` of them in a `string`.
fn names(list: &[u8], count: usize) -> Option<Vec<String>> {
    let mut list = list;
    let names = (0..count)
        .map(|_| String::from_utf8(get_string(&mut list)?.to_vec()).ok())
        .collect::<Option<Vec<_>>>()?;
    list.is_empty().then_some(names)
}

impl Sftp {
    /// Runs one operation, counted in `ironcrest_sftp_operations_total` and timed in
    /// `ironcrest_sftp_operation_duration_seconds` by cluster, `operation` and `outcome`
    /// (`ok` or [`SftpError::kind`]).
    async fn measured<T>(
        &self,
        operation: &'static str,
        run: impl Future<Output = Result<T, SftpError>>,
    ) -> Result<T, SftpError> {
        let started = std::time::Instant::now();
        let result = run.await;
        let labels = [
            ("cluster", self.cluster.to_string()),
            ("operation", operation.to_string()),
            (
                "outcome",
                result
                    .as_ref()
                    .map_or_else(SftpError::kind, |_| "ok")
                    .to_string(),
            ),
        ];
        metrics::counter!("ironcrest_sftp_operations_total", &labels).increment(1);
        metrics::histogram!("ironcrest_sftp_operation_duration_seconds", &labels)
            .record(started.elapsed());
        result
    }

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
    #[tracing::instrument(name = "sftp.lstat", level = "debug", skip_all)]
    pub async fn lstat(&self, target: &[u8]) -> Result<SftpAttrs, SftpError> {
        self.measured("lstat", async {
            let result = self.session.raw.lstat(path(target)?).await;
            Ok(SftpAttrs::from(&self.check(result)?.attrs))
        })
        .await
    }

    /// Every entry of the directory `dir`, `.` and `..` included, in no particular order.
    #[tracing::instrument(name = "sftp.read_dir", level = "debug", skip_all)]
    pub async fn read_dir(&self, dir: &[u8]) -> Result<Vec<SftpEntry>, SftpError> {
        self.measured("readdir", async {
            let result = self.session.raw.opendir(path(dir)?).await;
            let handle = self.check(result)?.handle;
            let raw = &self.session.raw;
            let mut batches: FuturesUnordered<_> = (0..READDIR_AHEAD)
                .map(|_| raw.readdir(handle.as_str()))
                .collect();
            let mut entries = Vec::new();
            let mut exhausted = false;
            let listed = loop {
                match batches.next().await {
                    None => break Ok(()),
                    Some(Ok(name)) => {
                        entries.extend(name.files.into_iter().map(|f| SftpEntry {
                            attrs: SftpAttrs::from(&f.attrs),
                            name: f.filename,
                            longname: f.longname,
                        }));
                        if !exhausted {
                            batches.push(raw.readdir(handle.as_str()));
                        }
                    }
                    Some(Err(RawError::Status(status)))
                        if status.status_code == StatusCode::Eof =>
                    {
                        exhausted = true;
                    }
                    Some(Err(err)) => break Err(err),
                }
            };
            // Unanswered READDIRs are dropped; russh-sftp ignores their late replies.
            drop(batches);
            let closed = self.session.raw.close(handle).await;
            self.check(listed)?;
            self.check(closed)?;
            Ok(entries)
        })
        .await
    }

    /// Removes the file (not directory) `file`.
    #[tracing::instrument(name = "sftp.remove", level = "debug", skip_all)]
    pub async fn remove(&self, file: &[u8]) -> Result<(), SftpError> {
        self.measured("remove", async {
            let result = self.session.raw.remove(path(file)?).await;
            self.check(result).map(drop)
        })
        .await
    }

    /// The target of the link `link`.
    #[tracing::instrument(name = "sftp.read_link", level = "debug", skip_all)]
    pub async fn read_link(&self, link: &[u8]) -> Result<String, SftpError> {
        self.measured("readlink", async {
            let result = self.session.raw.readlink(path(link)?).await;
            let name = self.check(result)?;
            name.files
                .into_iter()
                .next()
                .map(|f| f.filename)
                .ok_or_else(|| SftpError::Session("READLINK answered no name".into()))
        })
        .await
    }

    /// Opens `file` for reading (a link is followed), with its attributes (`fstat`).
    #[tracing::instrument(name = "sftp.open_read", level = "debug", skip_all)]
    pub async fn open_read(&self, file: &[u8]) -> Result<(SftpHandle, SftpAttrs), SftpError> {
        self.measured("open", async {
            let result = self
                .session
                .raw
                .open(path(file)?, OpenFlags::READ, FileAttributes::empty())
                .await;
            let handle = SftpHandle {
                sftp: self.clone(),
                handle: self.check(result)?.handle,
            };
            let result = self.session.raw.fstat(handle.handle.as_str()).await;
            let attrs = SftpAttrs::from(&self.check(result)?.attrs);
            Ok((handle, attrs))
        })
        .await
    }
    /// Attributes of what `target` leads to (a link is followed).
    #[tracing::instrument(name = "sftp.stat", level = "debug", skip_all)]
    pub async fn stat(&self, target: &[u8]) -> Result<SftpAttrs, SftpError> {
        self.measured("stat", async {
            let result = self.session.raw.stat(path(target)?).await;
            Ok(SftpAttrs::from(&self.check(result)?.attrs))
        })
        .await
    }

    /// Creates the directory `dir` with mode 0777 less the umask, as `mkdir` does.
    #[tracing::instrument(name = "sftp.mkdir", level = "debug", skip_all)]
    pub async fn mkdir(&self, dir: &[u8]) -> Result<(), SftpError> {
        self.measured("mkdir", async {
            let result = self
                .session
                .raw
                .mkdir(path(dir)?, FileAttributes::empty())
                .await;
            self.check(result).map(drop)
        })
        .await
    }

    /// Creates the symbolic link `link` pointing to `target`. OpenSSH's sftp-server takes
    /// SSH_FXP_SYMLINK's paths in the reverse of the draft's order (target first), and
    /// russh-sftp sends them in the draft's order, so they are swapped here.
    #[tracing::instrument(name = "sftp.symlink", level = "debug", skip_all)]
    pub async fn symlink(&self, target: &[u8], link: &[u8]) -> Result<(), SftpError> {
        self.measured("symlink", async {
            let result = self.session.raw.symlink(path(target)?, path(link)?).await;
            self.check(result).map(drop)
        })
        .await
    }

    /// Sets the permission bits (`chmod`, following a link).
    #[tracing::instrument(name = "sftp.set_mode", level = "debug", skip_all)]
    pub async fn set_mode(&self, target: &[u8], mode: u32) -> Result<(), SftpError> {
        self.measured("setstat", async {
            let attrs = FileAttributes {
                permissions: Some(mode),
                ..FileAttributes::empty()
            };
            let result = self.session.raw.setstat(path(target)?, attrs).await;
            self.check(result).map(drop)
        })
        .await
    }

    /// Creates `file` (never an existing one) for writing, mode 0666 less the umask.
    #[tracing::instrument(name = "sftp.create_new", level = "debug", skip_all)]
    pub async fn create_new(&self, file: &[u8]) -> Result<SftpHandle, SftpError> {
        self.measured("create", async {
            let flags = OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::EXCLUDE;
            let result = self
                .session
                .raw
                .open(path(file)?, flags, FileAttributes::empty())
                .await;
            Ok(SftpHandle {
                sftp: self.clone(),
                handle: self.check(result)?.handle,
            })
        })
        .await
    }

    /// Whether [`Sftp::replace`] is available.
    pub fn can_replace(&self) -> bool {
        self.session.extensions.contains(POSIX_RENAME)
    }

    /// Renames `from` to `to`, atomically replacing `to` if it exists
    /// (`posix-rename@openssh.com`).
    #[tracing::instrument(name = "sftp.replace", level = "debug", skip_all)]
    pub async fn replace(&self, from: &[u8], to: &[u8]) -> Result<(), SftpError> {
        self.measured("rename", async {
            if !self.can_replace() {
                return Err(SftpError::Unsupported(POSIX_RENAME));
            }
            let mut data = Vec::new();
            put_string(&mut data, path(from)?.as_bytes());
            put_string(&mut data, path(to)?.as_bytes());
            let result = self.session.raw.extended(POSIX_RENAME, data).await;
            match self.check(result)? {
                Packet::Status(status) if status.status_code == StatusCode::Ok => Ok(()),
                Packet::Status(status) => Err(SftpError::from(RawError::Status(status))),
                _ => Err(SftpError::Unexpected("no status for a rename")),
            }
        })
        .await
    }

    /// Whether [`Sftp::owner_names`] is available.
    pub fn can_name_owners(&self) -> bool {
        self.session.extensions.contains(USERS_GROUPS_BY_ID)
    }

    /// The names of the user `uid` and the group `gid` as the cluster resolves them, the
    /// number for an id without a name (as `ls` shows it); cached for the session.
    #[tracing::instrument(name = "sftp.owner_names", level = "debug", skip_all)]
    pub async fn owner_names(&self, uid: u32, gid: u32) -> Result<(String, String), SftpError> {
        self.measured("owner_names", async {
            let cached = |key| {
                self.session
                    .names
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get(&key)
                    .cloned()
            };
            if let (Some(user), Some(group)) = (cached((false, uid)), cached((true, gid))) {
                return Ok((user, group));
            }
            if !self.can_name_owners() {
                return Err(SftpError::Unsupported(USERS_GROUPS_BY_ID));
            }
            let mut data = Vec::new();
            put_string(&mut data, &uid.to_be_bytes());
            put_string(&mut data, &gid.to_be_bytes());
            let result = self.session.raw.extended(USERS_GROUPS_BY_ID, data).await;
            let reply = match self.check(result)? {
                Packet::ExtendedReply(reply) => reply.data,
                Packet::Status(status) => return Err(SftpError::from(RawError::Status(status))),
                _ => return Err(SftpError::Unexpected("no reply to users-groups-by-id")),
            };
            let (user, group) = parse_owner_names(&reply)
                .ok_or(SftpError::Unexpected("a users-groups-by-id reply"))?;
            let name = |name: String, id: u32| {
                if name.is_empty() {
                    id.to_string()
                } else {
                    name
                }
            };
            let (user, group) = (name(user, uid), name(group, gid));
            let mut names = self
                .session
                .names
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            names.insert((false, uid), user.clone());
            names.insert((true, gid), group.clone());
            Ok((user, group))
        })
        .await
    }
}

/// The user and group names of a `users-groups-by-id@openssh.com` reply to one uid and one
/// gid: `string usernames`, `string groupnames`, each a list of `string`s.
fn parse_owner_names(reply: &[u8]) -> Option<(String, String)> {
    let mut reply = reply;
    let users = names(get_string(&mut reply)?, 1)?;
    let groups = names(get_string(&mut reply)?, 1)?;
    let (Some(user), Some(group)) = (users.into_iter().next(), groups.into_iter().next()) else {
        return None;
    };
    Some((user, group))
}

/// An open file; closed on drop (in the background).
pub struct SftpHandle {
    sftp: Sftp,
    handle: String,
}

impl SftpHandle {
    /// Up to `len` bytes at `offset`; empty at end of file.
    pub async fn read(&self, offset: u64, len: u32) -> Result<Bytes, SftpError> {
        self.sftp
            .measured("read", async {
                match self
                    .sftp
                    .session
                    .raw
                    .read(self.handle.as_str(), offset, len)
                    .await
                {
                    Ok(data) => Ok(Bytes::from(data.data)),
                    Err(RawError::Status(status)) if status.status_code == StatusCode::Eof => {
                        Ok(Bytes::new())
                    }
                    Err(err) => Err(self.sftp.fail(err)),
                }
            })
            .await
    }
}

impl SftpHandle {
    /// Writes `data` at `offset`.
    pub async fn write(&self, offset: u64, data: &[u8]) -> Result<(), SftpError> {
        self.sftp
            .measured("write", async {
                let result = self
                    .sftp
                    .session
                    .raw
                    .write(self.handle.as_str(), offset, data.to_vec())
                    .await;
                self.sftp.check(result).map(drop)
            })
            .await
    }

    /// Closes the file, waiting for the server's answer (for a written file: it is complete).
    #[tracing::instrument(name = "sftp.close", level = "debug", skip_all)]
    pub async fn close(mut self) -> Result<(), SftpError> {
        let sftp = self.sftp.clone();
        sftp.measured("close", async move {
            let handle = std::mem::take(&mut self.handle);
            let result = self.sftp.session.raw.close(handle).await;
            self.sftp.check(result).map(drop)
        })
        .await
    }
}

impl Drop for SftpHandle {
    fn drop(&mut self) {
        let session = self.sftp.session.clone();
        let handle = std::mem::take(&mut self.handle);
        if handle.is_empty() {
            // Closed already.
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = session.raw.close(handle).await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_groups_by_id_replies_are_read() {
        let mut users = Vec::new();
        put_string(&mut users, b"fireuser");
        let mut groups = Vec::new();
        put_string(&mut groups, b"");
        let mut reply = Vec::new();
        put_string(&mut reply, &users);
        put_string(&mut reply, &groups);
        assert_eq!(
            parse_owner_names(&reply),
            Some(("fireuser".into(), String::new()))
        );
        assert_eq!(parse_owner_names(&reply[..reply.len() - 1]), None);
        let mut not_utf8 = Vec::new();
        let mut user = Vec::new();
        put_string(&mut user, b"\xff");
        put_string(&mut not_utf8, &user);
        put_string(&mut not_utf8, &groups);
        assert_eq!(parse_owner_names(&not_utf8), None);
    }
}
