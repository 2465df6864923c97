//! Reading a regular file: `head`, `view` and `download`.

use bytes::Bytes;
use futures::{StreamExt, TryFutureExt};
use ironcrest_remote::Caller;
use ironcrest_ssh::{READ_CHUNK, SftpError, SftpHandle, SshError};
use tokio::sync::mpsc;
use tracing::Instrument;

use super::{S_IFMT, S_IFREG, fallback, session};
use crate::filesystem::commands::{Amount, FileContent};
use crate::filesystem::{ByteStream, ValidPath, max_size};
use crate::{Cluster, ServiceError};

/// Reads in flight during a download.
const READS_IN_FLIGHT: usize = 8;

/// `head` without `skipTrailing`: the first bytes, or the bytes up to the n-th newline.
pub(in crate::filesystem) async fn head(
    cluster: &Cluster,
    user: &Caller,
    path: &ValidPath,
    amount: Amount,
) -> Option<FileContent> {
    let file = open_regular(cluster, user, path).await?.0;
    let limit = cluster.ssh.settings().output_limit;
    let bytes = match amount {
        Amount::Bytes(count) => read_range(&file, 0, count).await?,
        Amount::Lines(count) => read_lines(&file, count, limit).await?,
    };
    if bytes.len() as u64 > limit {
        return None;
    }
    let count = match amount {
        Amount::Bytes(n) | Amount::Lines(n) => n,
    };
    Some(FileContent {
        content: String::from_utf8_lossy(&bytes).into_owned(),
        content_type: match amount {
            Amount::Bytes(_) => "bytes",
            Amount::Lines(_) => "lines",
        },
        start_position: 0,
        end_position: i64::try_from(count).unwrap_or(i64::MAX),
    })
}

/// `view`: `size` bytes from `offset`, as text.
pub(in crate::filesystem) async fn view(
    cluster: &Cluster,
    user: &Caller,
    path: &ValidPath,
    offset: u64,
    size: u64,
) -> Option<String> {
    let file = open_regular(cluster, user, path).await?.0;
    let bytes = read_range(&file, offset, size).await?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// `path` opened for reading, with its size, if it is a regular file (the tools' errors
/// for anything else, e.g. a directory, come from the tools).
async fn open_regular(
    cluster: &Cluster,
    user: &Caller,
    path: &ValidPath,
) -> Option<(SftpHandle, u64)> {
    let sftp = session(cluster, user).await?;
    let (file, attrs) = fallback(sftp.open_read(path.as_bytes()).await)?;
    (attrs.permissions? & S_IFMT == S_IFREG).then_some((file, attrs.size?))
}

/// Up to `count` bytes from `offset` (fewer at end of file).
async fn read_range(file: &SftpHandle, offset: u64, count: u64) -> Option<Vec<u8>> {
    let mut bytes = Vec::new();
    while (bytes.len() as u64) < count {
        let want = (count - bytes.len() as u64).min(u64::from(READ_CHUNK)) as u32;
        let data = fallback(file.read(offset + bytes.len() as u64, want).await)?;
        if data.is_empty() {
            break;
        }
        bytes.extend_from_slice(&data);
    }
    Some(bytes)
}

/// The bytes up to and including the `count`-th newline (all of them if fewer); `None`
/// past `limit` bytes.
async fn read_lines(file: &SftpHandle, count: u64, limit: u64) -> Option<Vec<u8>> {
    let mut bytes = Vec::new();
    let mut lines = 0;
    loop {
        let data = fallback(file.read(bytes.len() as u64, READ_CHUNK).await)?;
        if data.is_empty() || count == 0 {
            return Some(bytes);
        }
        for (i, byte) in data.iter().enumerate() {
            if *byte == b'\n' {
                lines += 1;
                if lines == count {
                    bytes.extend_from_slice(&data[..=i]);
                    return Some(bytes);
                }
            }
        }
        bytes.extend_from_slice(&data);
        if bytes.len() as u64 > limit {
            return None;
        }
    }
}

/// `download`: the file's bytes with [`READS_IN_FLIGHT`] reads pipelined; 413 past
/// `max_ops_file_size` as the exec path. `Some(Err)` only for that refusal.
pub(in crate::filesystem) async fn download(
    cluster: &Cluster,
    user: &Caller,
    path: &ValidPath,
) -> Option<Result<ByteStream, ServiceError>> {
    let (file, size) = open_regular(cluster, user, path).await?;
    if size > max_size(cluster) {
        return Some(Err(ServiceError::TooLarge(
            "File to download is too large.",
        )));
    }
    let settings = cluster.ssh.settings();
    let (limit, time) = (settings.output_limit, settings.command_timeout());
    // Bounded, so memory stays flat whatever the file size.
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(
        async move {
            let sent = tokio::time::timeout(time, pump(&file, size, limit, &tx)).await;
            let failure = match sent {
                Ok(Ok(())) => return,
                Ok(Err(err)) => err,
                Err(_) => SshError::CommandTimeout,
            };
            let _ = tx.send(Err(failure)).await;
        }
        .in_current_span(),
    );
    Some(Ok(Box::pin(futures::stream::unfold(
        rx,
        |mut rx| async move { rx.recv().await.map(|item| (item, rx)) },
    ))))
}

/// Sends the file's chunks in order: pipelined reads up to the size it had when opened,
/// then one read at a time until end of file (it may have grown). A short read restarts
/// the pipeline where it ended, so no byte is skipped.
async fn pump(
    file: &SftpHandle,
    size: u64,
    limit: u64,
    tx: &mpsc::Sender<Result<Bytes, SshError>>,
) -> Result<(), SshError> {
    let failed = |err: SftpError| SshError::Protocol(format!("SFTP read: {err}"));
    let mut position = 0u64;
    'restart: loop {
        let end = size.max(position + u64::from(READ_CHUNK));
        let offsets = (position..end).step_by(READ_CHUNK as usize);
        let sequential = position >= size;
        let mut reads = futures::stream::iter(offsets)
            .map(|offset| {
                let len = (end - offset).min(u64::from(READ_CHUNK)) as u32;
                file.read(offset, len).map_ok(move |data| (offset, data))
            })
            .buffered(if sequential { 1 } else { READS_IN_FLIGHT });
        while let Some(read) = reads.next().await {
            let (offset, data) = read.map_err(failed)?;
            if offset != position {
                continue 'restart;
            }
            if data.is_empty() {
                return Ok(());
            }
            position += data.len() as u64;
            if position > limit {
                return Err(SshError::OutputTooLarge { limit });
            }
            if tx.send(Ok(data)).await.is_err() {
                // The client went away.
                return Ok(());
            }
        }
    }
}
