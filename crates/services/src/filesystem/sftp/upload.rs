//! Two-phase upload to a temporary name, renamed over the target once complete.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use ironcrest_remote::Caller;
use ironcrest_ssh::{InputAborted, Sftp, SftpError, SftpHandle, SshError};
use tokio::sync::mpsc;

use super::{NO_SUCH_FILE, S_IFDIR, S_IFMT, fallback, session};
use crate::filesystem::ValidPath;
use crate::{Cluster, ServiceError};

/// The most one WRITE carries (sftp-server takes up to 256 KiB packets).
const WRITE_CHUNK: usize = 64 * 1024;

/// Two-phase upload: the chunks are written to a fresh temporary name in `directory`, which
/// replaces `directory/name` atomically (`posix-rename@openssh.com`) only once the whole
/// file has arrived; an abandoned, failed or cancelled upload removes it. `None` (nothing
/// received from `chunks`) when the tool is to run: no session or extension, a directory
/// that cannot take the temporary file (the tool reports why), a target that is a
/// directory.
pub(in crate::filesystem) async fn upload(
    cluster: &Cluster,
    user: &Caller,
    directory: &ValidPath,
    name: &[u8],
    chunks: &mut mpsc::Receiver<Result<Bytes, InputAborted>>,
) -> Option<Result<(), ServiceError>> {
    let sftp = session(cluster, user).await?;
    if !sftp.can_replace() {
        return None;
    }
    let target = directory.join(name).ok()?;
    match sftp.lstat(target.as_bytes()).await {
        Ok(attrs) if attrs.permissions? & S_IFMT != S_IFDIR => {}
        Err(SftpError::Status { code, .. }) if code == NO_SUCH_FILE => {}
        _ => return None,
    }
    let temporary = directory.join(temporary_name().as_bytes()).ok()?;
    let file = fallback(sftp.create_new(temporary.as_bytes()).await)?;
    let mut guard = Temporary {
        sftp: sftp.clone(),
        path: Some(temporary.as_bytes().to_vec()),
    };
    let written = tokio::time::timeout(
        cluster.ssh.settings().command_timeout(),
        receive(file, chunks),
    )
    .await
    .unwrap_or(Err(SshError::CommandTimeout));
    let stored = match written {
        Ok(()) => sftp
            .replace(temporary.as_bytes(), target.as_bytes())
            .await
            .map_err(|err| SshError::Protocol(format!("SFTP rename: {err}"))),
        Err(err) => Err(err),
    };
    if stored.is_ok() {
        guard.path = None;
    } else {
        guard.remove().await;
    }
    Some(stored.map_err(ServiceError::from))
}

/// Writes the chunks in order until the sender is done, then closes the file.
async fn receive(
    file: SftpHandle,
    chunks: &mut mpsc::Receiver<Result<Bytes, InputAborted>>,
) -> Result<(), SshError> {
    let failed = |err: SftpError| SshError::Protocol(format!("SFTP write: {err}"));
    let mut offset = 0u64;
    while let Some(chunk) = chunks.recv().await {
        let chunk = chunk.map_err(|InputAborted| SshError::Protocol("input abandoned".into()))?;
        for part in chunk.chunks(WRITE_CHUNK) {
            file.write(offset, part).await.map_err(failed)?;
            offset += part.len() as u64;
        }
    }
    file.close().await.map_err(failed)
}

/// A name no other upload uses: this process's id, the time and a counter.
fn temporary_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        ".ironcrest-upload.{}.{nanos:x}.{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// An upload's temporary file: removed unless taken (`path` set to `None`), also when the
/// upload is dropped half-way (in the background then).
struct Temporary {
    sftp: Sftp,
    path: Option<Vec<u8>>,
}

impl Temporary {
    async fn remove(&mut self) {
        if let Some(path) = self.path.take() {
            let _ = fallback(self.sftp.remove(&path).await);
        }
    }
}

impl Drop for Temporary {
    fn drop(&mut self) {
        let Some(path) = self.path.take() else { return };
        let sftp = self.sftp.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = fallback(sftp.remove(&path).await);
            });
        }
    }
}
