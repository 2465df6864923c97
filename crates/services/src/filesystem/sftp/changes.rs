//! Changes made over SFTP, answered like `ls -d` of what changed.

use ironcrest_remote::Caller;
use ironcrest_ssh::{Sftp, SftpError};

use super::listing::{Entry, file};
use super::{NO_SUCH_FILE, S_IFDIR, S_IFLNK, S_IFMT, fallback, session, utc_offset};
use crate::filesystem::commands::{self, File, FileMode};
use crate::filesystem::{ValidPath, timeout};
use crate::{Cluster, ServiceError};

/// `rm` of anything but a directory (a directory tree is `rm -r`'s).
pub(in crate::filesystem) async fn rm(
    cluster: &Cluster,
    user: &Caller,
    path: &ValidPath,
) -> Option<()> {
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
    user: &Caller,
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
async fn for_change(cluster: &Cluster, user: &Caller) -> Option<(Sftp, i32)> {
    let offset = utc_offset(cluster, user).await?;
    let sftp = session(cluster, user).await?;
    sftp.can_name_owners().then_some((sftp, offset))
}

/// `mkdir` (`parents`: `mkdir -p`). `None` (nothing changed) when the tool is to run.
pub(in crate::filesystem) async fn mkdir(
    cluster: &Cluster,
    user: &Caller,
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
pub(in crate::filesystem) async fn symlink(
    cluster: &Cluster,
    user: &Caller,
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
pub(in crate::filesystem) async fn chmod(
    cluster: &Cluster,
    user: &Caller,
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
