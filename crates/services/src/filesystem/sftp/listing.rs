//! `ls -l` of a directory, from READDIR's entries.

use chrono::{Datelike, Timelike};
use futures::TryFutureExt;
use ironcrest_remote::Caller;
use ironcrest_ssh::{SftpAttrs, SftpEntry};

use super::{S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, fallback, session, utc_offset};
use crate::Cluster;
use crate::filesystem::ValidPath;
use crate::filesystem::commands::{File, LsOptions};

/// `ls -l` of a directory over SFTP.
pub(in crate::filesystem) async fn ls(
    cluster: &Cluster,
    user: &Caller,
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
pub(super) enum Entry {
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
pub(super) fn file(
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
