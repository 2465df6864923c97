//! The operations served over the user's standing SFTP session ([`ironcrest_ssh::Sftp`])
//! instead of a remote process: `ls` of a directory (not recursive, not dereferencing),
//! `head` (not `skipTrailing`), `view`, `rm` of a non-directory, `download`, `mkdir`,
//! `symlink`, `chmod` with an octal mode of a non-directory, and `upload` (two-phase).
//!
//! Each returns `None` when SFTP cannot give exactly what the exec path gives, and the
//! caller then runs the tool: any SFTP error before a result (so error statuses and
//! messages are always the tools'), a path or name that is not UTF-8 (russh-sftp decodes
//! names lossily), a variant SFTP has no equivalent for, or a cluster time zone with
//! daylight saving time. `ls` prints times in the cluster's zone, SFTP gives UTC seconds:
//! the zone's offset is learnt with `date` at three instants of the year (hourly per
//! cluster) and used only when they agree.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use chrono::{Datelike, TimeZone, Timelike, Utc};
use futures::{StreamExt, TryFutureExt};
use ironcrest_ssh::{
    InputAborted, READ_CHUNK, Sftp, SftpAttrs, SftpEntry, SftpError, SftpHandle, SshError, SshUser,
};
use tokio::sync::mpsc;

use super::commands::{self, Amount, File, FileContent, FileMode, LsOptions};
use super::{ByteStream, ValidPath, max_size, timeout};
use crate::{Cluster, ServiceError};

/// How long a learnt UTC offset is trusted.
const OFFSET_MAX_AGE: Duration = Duration::from_secs(3600);
/// Reads in flight during a download.
const READS_IN_FLIGHT: usize = 8;
/// The most one WRITE carries (sftp-server takes up to 256 KiB packets).
const WRITE_CHUNK: usize = 64 * 1024;
/// SSH_FX_NO_SUCH_FILE.
const NO_SUCH_FILE: u32 = 2;

const S_IFMT: u32 = 0o170_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFREG: u32 = 0o100_000;

/// The session, or `None` (logged) if it cannot be had.
async fn session(cluster: &Cluster, user: &SshUser) -> Option<Sftp> {
    cluster
        .ssh
        .sftp(user)
        .await
        .inspect_err(|err| tracing::debug!(error = %err, "SFTP unavailable; using exec"))
        .ok()
}

/// Logs why SFTP gave up on a request.
fn fallback<T>(result: Result<T, SftpError>) -> Option<T> {
    result
        .inspect_err(|err| tracing::debug!(error = %err, "SFTP request failed; using exec"))
        .ok()
}

/// The cluster's fixed UTC offset, learnt as `user` if not known; `None` if it has none.
async fn utc_offset(cluster: &Cluster, user: &SshUser) -> Option<i32> {
    if let Some(known) = cluster.utc_offset(OFFSET_MAX_AGE) {
        return known;
    }
    let now = Utc::now();
    let instant = |month| {
        Utc.with_ymd_and_hms(now.year(), month, 1, 12, 0, 0)
            .single()
            .map_or(now.timestamp(), |t| t.timestamp())
    };
    let probe =
        commands::UtcOffsets::new(timeout(cluster), &[now.timestamp(), instant(1), instant(7)])
            .ok()?;
    let offsets = cluster
        .ssh
        .run(user, &probe)
        .await
        .inspect_err(|err| tracing::debug!(error = %err, "cannot learn the cluster's UTC offset"))
        .ok()?;
    let fixed = offsets
        .windows(2)
        .all(|pair| pair[0] == pair[1])
        .then(|| offsets.first().copied())
        .flatten();
    cluster.record_utc_offset(fixed);
    fixed
}

/// `ls -l` of a directory over SFTP.
pub(super) async fn ls(
    cluster: &Cluster,
    user: &SshUser,
    path: &ValidPath,
    options: LsOptions,
) -> Option<Vec<File>> {
    if options.recursive || options.dereference || options.directory {
        return None;
    }
    let offset = utc_offset(cluster, user).await?;
    let sftp = session(cluster, user).await?;
    let dir = path.as_bytes();
    // Asked together, answered in one round trip more than a listing alone.
    let (attrs, entries) = futures::join!(sftp.lstat(dir), sftp.read_dir(dir));
    // `ls -l` lists a directory's contents, anything else (a link to one included) itself.
    if fallback(attrs)?.permissions? & S_IFMT != S_IFDIR {
        return None;
    }
    let entries = fallback(entries)?;
    // sftp-server silently leaves out entries it cannot `lstat`, where `ls` fails: without
    // search permission on the directory that is every entry, `.` included.
    if !entries.iter().any(|e| e.name == ".") {
        return None;
    }
    let entries: Vec<SftpEntry> = entries
        .into_iter()
        .filter(|e| e.name != "." && e.name != "..")
        .filter(|e| options.show_hidden || !e.name.starts_with('.'))
        .collect();
    let targets = futures::future::try_join_all(entries.iter().map(|entry| {
        let sftp = &sftp;
        async move {
            if entry
                .attrs
                .permissions
                .is_some_and(|m| m & S_IFMT == S_IFLNK)
            {
                let mut link = dir.to_vec();
                link.push(b'/');
                link.extend_from_slice(entry.name.as_bytes());
                sftp.read_link(&link).map_ok(Some).await
            } else {
                Ok(None)
            }
        }
    }))
    .await;
    let targets = fallback(targets)?;
    let mut files = Vec::with_capacity(entries.len());
    for (entry, target) in entries.iter().zip(targets) {
        match to_file(entry, target.as_deref(), options.numeric_uid, offset)? {
            Entry::File(file) => files.push(file),
            Entry::Device => {}
        }
    }
    // `LC_ALL=C ls` sorts by bytes.
    files.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    Some(files)
}

/// What `ls -l` makes of an entry: a `File`, or nothing (device files, as in v2).
#[derive(Debug, PartialEq, Eq)]
enum Entry {
    File(File),
    Device,
}

/// One READDIR entry as the exec path's parser reads `ls -l --quoting-style=c`; `None`
/// when a field is missing or a name may have been mangled.
fn to_file(entry: &SftpEntry, target: Option<&str>, numeric: bool, offset: i32) -> Option<Entry> {
    let attrs: SftpAttrs = entry.attrs;
    let owners = if numeric {
        (attrs.uid?.to_string(), attrs.gid?.to_string())
    } else {
        owner_names(&entry.longname)?
    };
    file(&entry.name, attrs, target, owners, offset)
}

/// What `ls -l` shows of `name` with these attributes, link target and owner names.
fn file(
    name: &str,
    attrs: SftpAttrs,
    target: Option<&str>,
    (user, group): (String, String),
    offset: i32,
) -> Option<Entry> {
    let mode = attrs.permissions?;
    let kind = match mode & S_IFMT {
        0o140_000 => 's',
        S_IFLNK => 'l',
        S_IFREG => '-',
        0o060_000 | 0o020_000 => return Some(Entry::Device),
        S_IFDIR => 'd',
        0o010_000 => 'p',
        _ => return None,
    };
    let seconds = i64::from(attrs.mtime?) + i64::from(offset);
    let time = chrono::DateTime::from_timestamp(seconds, 0)?.naive_utc();
    // `ls --time-style=+%Y-%m-%dT%H:%M:%S`, without parsing a format string per entry.
    let last_modified = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        time.year(),
        time.month(),
        time.day(),
        time.hour(),
        time.minute(),
        time.second()
    );
    Some(Entry::File(File {
        name: exact(name)?,
        kind: kind.to_string(),
        link_target: match target {
            Some(target) => Some(exact(target)?),
            None => None,
        },
        user,
        group,
        permissions: permissions(mode),
        last_modified,
        size: attrs.size?.to_string(),
    }))
}

/// The owner and group names of sftp-server's `longname` (OpenSSH's `ls_file`:
/// `mode nlink user group size month day time name`, names resolved on the cluster, the
/// number when a name is unknown, as `ls` does).
fn owner_names(longname: &str) -> Option<(String, String)> {
    let mut fields = longname.split_ascii_whitespace();
    let _mode = fields.next()?;
    let _links = fields.next()?;
    let user = fields.next()?;
    let group = fields.next()?;
    Some((user.to_string(), group.to_string()))
}

/// The name as the exec path would return it, or `None` if russh-sftp may have replaced
/// bytes that are not UTF-8 (with U+FFFD).
fn exact(name: &str) -> Option<String> {
    (!name.contains('\u{fffd}')).then(|| name.to_owned())
}

/// `rwxr-sr-t`-style permissions, as `ls -l` prints them.
fn permissions(mode: u32) -> String {
    let bit = |mask: u32, c: char| if mode & mask != 0 { c } else { '-' };
    let special = |exec: bool, set: bool, on: char, off: char| match (exec, set) {
        (true, true) => on,
        (false, true) => off,
        (true, false) => 'x',
        (false, false) => '-',
    };
    [
        bit(0o400, 'r'),
        bit(0o200, 'w'),
        special(mode & 0o100 != 0, mode & 0o4000 != 0, 's', 'S'),
        bit(0o040, 'r'),
        bit(0o020, 'w'),
        special(mode & 0o010 != 0, mode & 0o2000 != 0, 's', 'S'),
        bit(0o004, 'r'),
        bit(0o002, 'w'),
        special(mode & 0o001 != 0, mode & 0o1000 != 0, 't', 'T'),
    ]
    .iter()
    .collect()
}

/// `head` without `skipTrailing`: the first bytes, or the bytes up to the n-th newline.
pub(super) async fn head(
    cluster: &Cluster,
    user: &SshUser,
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
pub(super) async fn view(
    cluster: &Cluster,
    user: &SshUser,
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
    user: &SshUser,
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

/// `rm` of anything but a directory (a directory tree is `rm -r`'s).
pub(super) async fn rm(cluster: &Cluster, user: &SshUser, path: &ValidPath) -> Option<()> {
    let sftp = session(cluster, user).await?;
    let attrs = fallback(sftp.lstat(path.as_bytes()).await)?;
    if attrs.permissions? & S_IFMT == S_IFDIR {
        return None;
    }
    fallback(sftp.remove(path.as_bytes()).await)
}

/// The entry at `path` as `ls -d` shows it, after a change made over SFTP: from its
/// attributes and the cluster's names of its owners, or, if SFTP cannot tell exactly, from
/// `ls -d` itself (the change is not repeated).
async fn changed(
    cluster: &Cluster,
    user: &SshUser,
    sftp: &Sftp,
    path: &ValidPath,
    offset: i32,
) -> Result<File, ServiceError> {
    let shown = async {
        let p = path.as_bytes();
        let attrs = fallback(sftp.lstat(p).await)?;
        let target = match attrs.permissions? & S_IFMT {
            S_IFLNK => Some(fallback(sftp.read_link(p).await)?),
            _ => None,
        };
        let owners = fallback(sftp.owner_names(attrs.uid?, attrs.gid?).await)?;
        let name = std::str::from_utf8(p).ok()?;
        match file(name, attrs, target.as_deref(), owners, offset)? {
            Entry::File(file) => Some(file),
            Entry::Device => None,
        }
    };
    if let Some(file) = shown.await {
        return Ok(file);
    }
    let ls = commands::ChangedEntry::show(timeout(cluster), path.as_bytes())?;
    Ok(cluster.ssh.run(user, &ls).await?)
}

/// The session and the cluster's UTC offset for a change answered like `ls -d`, if SFTP can
/// answer it (names of owners included); checked before changing anything.
async fn for_change(cluster: &Cluster, user: &SshUser) -> Option<(Sftp, i32)> {
    let offset = utc_offset(cluster, user).await?;
    let sftp = session(cluster, user).await?;
    sftp.can_name_owners().then_some((sftp, offset))
}

/// `mkdir` (`parents`: `mkdir -p`). `None` (nothing changed) when the tool is to run.
pub(super) async fn mkdir(
    cluster: &Cluster,
    user: &SshUser,
    path: &ValidPath,
    parents: bool,
) -> Option<Result<File, ServiceError>> {
    let (sftp, offset) = for_change(cluster, user).await?;
    if parents {
        mkdir_parents(&sftp, path.as_bytes()).await?;
    } else {
        fallback(sftp.mkdir(path.as_bytes()).await)?;
    }
    Some(changed(cluster, user, &sftp, path, offset).await)
}

/// `mkdir -p`: every missing directory of the path, in order. Like `mkdir -p`, a directory
/// it creates on the way gets `u+wx` even if the umask removes them. `None` at the first
/// thing that is not a missing path or a directory (the tool says what).
async fn mkdir_parents(sftp: &Sftp, path: &[u8]) -> Option<()> {
    let ends = path
        .iter()
        .enumerate()
        .skip(1)
        .filter(|(_, b)| **b == b'/')
        .map(|(i, _)| i)
        .chain([path.len()]);
    for end in ends {
        let dir = &path[..end];
        match sftp.stat(dir).await {
            Ok(attrs) if attrs.permissions? & S_IFMT == S_IFDIR => continue,
            Err(SftpError::Status { code, .. }) if code == NO_SUCH_FILE => {}
            other => {
                let _ = fallback(other);
                return None;
            }
        }
        fallback(sftp.mkdir(dir).await)?;
        if end < path.len() {
            let mode = fallback(sftp.stat(dir).await)?.permissions?;
            if mode & 0o300 != 0o300 {
                fallback(sftp.set_mode(dir, (mode | 0o300) & 0o7777).await)?;
            }
        }
    }
    Some(())
}

/// `ln -s target link`. `None` (nothing changed) when the tool is to run, e.g. when `link`
/// exists (`ln` then makes the link inside it if it is a directory).
pub(super) async fn symlink(
    cluster: &Cluster,
    user: &SshUser,
    target: &ValidPath,
    link: &ValidPath,
) -> Option<Result<File, ServiceError>> {
    let (sftp, offset) = for_change(cluster, user).await?;
    fallback(sftp.symlink(target.as_bytes(), link.as_bytes()).await)?;
    Some(changed(cluster, user, &sftp, link, offset).await)
}

/// `chmod` with an octal mode of at most four digits on anything but a directory (whose
/// set-id bits `chmod` keeps unless told otherwise); any other mode is the tool's. `None`
/// (nothing changed) when the tool is to run.
pub(super) async fn chmod(
    cluster: &Cluster,
    user: &SshUser,
    path: &ValidPath,
    mode: &FileMode,
) -> Option<Result<File, ServiceError>> {
    let mode = mode.octal()?;
    let (sftp, offset) = for_change(cluster, user).await?;
    let p = path.as_bytes();
    // `chmod` follows a link, and so does SETSTAT.
    if fallback(sftp.stat(p).await)?.permissions? & S_IFMT == S_IFDIR {
        return None;
    }
    fallback(sftp.set_mode(p, mode).await)?;
    Some(changed(cluster, user, &sftp, path, offset).await)
}

/// Two-phase upload: the chunks are written to a fresh temporary name in `directory`, which
/// replaces `directory/name` atomically (`posix-rename@openssh.com`) only once the whole
/// file has arrived; an abandoned, failed or cancelled upload removes it. `None` (nothing
/// received from `chunks`) when the tool is to run: no session or extension, a directory
/// that cannot take the temporary file (the tool reports why), a target that is a
/// directory.
pub(super) async fn upload(
    cluster: &Cluster,
    user: &SshUser,
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

/// `download`: the file's bytes with [`READS_IN_FLIGHT`] reads pipelined; 413 past
/// `max_ops_file_size` as the exec path. `Some(Err)` only for that refusal.
pub(super) async fn download(
    cluster: &Cluster,
    user: &SshUser,
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
    tokio::spawn(async move {
        let sent = tokio::time::timeout(time, pump(&file, size, limit, &tx)).await;
        let failure = match sent {
            Ok(Ok(())) => return,
            Ok(Err(err)) => err,
            Err(_) => SshError::CommandTimeout,
        };
        let _ = tx.send(Err(failure)).await;
    });
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

#[cfg(test)]
mod tests {
    use super::*;

    /// READDIR entries captured from OpenSSH 9.2's sftp-server in the dev environment.
    fn entry(name: &str, longname: &str, mode: u32, size: u64, mtime: u32) -> SftpEntry {
        SftpEntry {
            name: name.into(),
            longname: longname.into(),
            attrs: SftpAttrs {
                size: Some(size),
                uid: Some(1000),
                gid: Some(1001),
                permissions: Some(mode),
                mtime: Some(mtime),
            },
        }
    }

    #[test]
    fn permissions_match_ls() {
        assert_eq!(permissions(0o100_644), "rw-r--r--");
        assert_eq!(permissions(0o040_755), "rwxr-xr-x");
        assert_eq!(permissions(0o4755), "rwsr-xr-x");
        assert_eq!(permissions(0o2644), "rw-r-Sr--");
        assert_eq!(permissions(0o1777), "rwxrwxrwt");
        assert_eq!(permissions(0o1776), "rwxrwxrwT");
    }

    #[test]
    fn longname_owner_names() {
        let longname = "-rw-r--r--    1 fireuser fireuser      391 Nov 22 23:12 a b  c";
        assert_eq!(
            owner_names(longname),
            Some(("fireuser".into(), "fireuser".into()))
        );
        assert_eq!(owner_names("drwxr-xr-x 2 4242"), None);
    }

    #[test]
    fn entries_become_ls_files() {
        let file = entry(
            "a'b $(x)\n",
            "-rw-r--r--    1 fireuser users        5 Nov 22 23:12 a'b $(x)\n",
            0o100_640,
            5,
            1_795_389_121,
        );
        let Some(Entry::File(parsed)) = to_file(&file, None, false, 3600) else {
            panic!("not a file");
        };
        assert_eq!(
            parsed,
            File {
                name: "a'b $(x)\n".into(),
                kind: "-".into(),
                link_target: None,
                user: "fireuser".into(),
                group: "users".into(),
                permissions: "rw-r-----".into(),
                last_modified: "2026-11-23T00:12:01".into(),
                size: "5".into(),
            }
        );
        let Some(Entry::File(numeric)) = to_file(&file, None, true, 0) else {
            panic!("not a file");
        };
        assert_eq!(
            (numeric.user.as_str(), numeric.group.as_str()),
            ("1000", "1001")
        );
        assert_eq!(numeric.last_modified, "2026-11-22T23:12:01");

        let link = entry("l", "lrwxrwxrwx    1 u u 3 Nov 22 23:12 l", 0o120_777, 3, 0);
        let Some(Entry::File(parsed)) = to_file(&link, Some("-x"), false, 0) else {
            panic!("not a link");
        };
        assert_eq!(
            (parsed.kind.as_str(), parsed.link_target.as_deref()),
            ("l", Some("-x"))
        );

        let device = entry(
            "null",
            "crw-rw-rw- 1 root root 0 Nov 22 23:12 null",
            0o020_666,
            0,
            0,
        );
        assert_eq!(to_file(&device, None, false, 0), Some(Entry::Device));
    }

    #[test]
    fn possibly_mangled_names_are_left_to_exec() {
        let mangled = entry(
            "x\u{fffd}",
            "-rw-r--r-- 1 u u 0 Nov 22 23:12 x",
            0o100_644,
            0,
            0,
        );
        assert_eq!(to_file(&mangled, None, false, 0), None);
        let fine = entry("ok", "-rw-r--r-- 1 u u 0 Nov 22 23:12 ok", 0o100_644, 0, 0);
        assert_eq!(to_file(&fine, Some("t\u{fffd}"), false, 0), None);
        let no_mode = SftpEntry {
            attrs: SftpAttrs::default(),
            ..fine
        };
        assert_eq!(to_file(&no_mode, None, false, 0), None);
    }
}
