//! `ls -l --quoting-style=c`: directory listings in FirecREST v2's `File` shape.
//!
//! C quoting makes every name one double-quoted token whatever bytes it holds (under
//! `LC_ALL=C` every non-ASCII byte is an octal escape), so the parser decodes names back to
//! their exact bytes; v2 instead shell-splits the line, which mangles such names.

use ironcrest_remote::{CommandError, CommandLine, Output, QuoteError, RemoteCommand};
use serde::Serialize;
use utoipa::ToSchema;

use super::{
    AccountName, FileMode, chmod, chown, mkdir, name_to_string, succeeded, symlink, timed,
};

/// One directory entry (wire reference §1, File).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct File {
    pub name: String,
    /// First character of the mode string: `-`, `d`, `l`, …
    #[serde(rename = "type")]
    pub kind: String,
    pub link_target: Option<String>,
    pub user: String,
    pub group: String,
    /// The mode string without its type, e.g. `rwxr-xr-x`.
    pub permissions: String,
    /// `YYYY-MM-DDTHH:MM:SS`, cluster-local time.
    pub last_modified: String,
    /// A string, as in FirecREST v2.
    pub size: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct LsOptions {
    pub show_hidden: bool,
    pub numeric_uid: bool,
    pub recursive: bool,
    pub dereference: bool,
    /// The entry itself rather than a directory's contents (`-d`).
    pub directory: bool,
}

pub struct Ls {
    line: CommandLine,
    recursive: bool,
}

impl Ls {
    pub fn new(timeout: u64, path: &[u8], options: LsOptions) -> Result<Self, QuoteError> {
        Ok(Self {
            line: line(timeout, path, options)?,
            recursive: options.recursive,
        })
    }
}

/// The command line, also used by [`ChangedEntry`] (with `-d`).
fn line(timeout: u64, path: &[u8], options: LsOptions) -> Result<CommandLine, QuoteError> {
    Ok(timed(timeout, "ls")
        .word("-l")
        .word("--quoting-style=c")
        .word("--time-style=+%Y-%m-%dT%H:%M:%S")
        .word_if(options.show_hidden, "-A")
        .word_if(options.numeric_uid, "--numeric-uid-gid")
        .word_if(options.recursive, "-R")
        .word_if(options.dereference, "-L")
        .word_if(options.directory, "-d")
        .operands([path])?
        .build())
}

impl RemoteCommand for Ls {
    type Parsed = Vec<File>;
    type Error = CommandError;

    fn command_line(&self) -> CommandLine {
        self.line.clone()
    }

    fn parse(&self, output: Output) -> Result<Vec<File>, CommandError> {
        let output = succeeded(output)?;
        parse_ls(&output.stdout, self.recursive)
    }

    fn examples() -> Vec<Self> {
        let every_flag = LsOptions {
            show_hidden: true,
            numeric_uid: true,
            recursive: true,
            dereference: true,
            directory: true,
        };
        vec![Self::new(10, b"/home/fireuser", every_flag).expect("no NUL")]
    }
}

/// Parses `ls -l --quoting-style=c` output. With `recursive`, entries below the first
/// directory are named by their path relative to it (`sub/file`), as in v2. `total` lines
/// and device files (whose size column is `major, minor`) are skipped, as in v2.
pub fn parse_ls(stdout: &[u8], recursive: bool) -> Result<Vec<File>, CommandError> {
    let mut files = Vec::new();
    let mut root: Option<Vec<u8>> = None;
    let mut prefix: Vec<u8> = Vec::new();
    for line in stdout.split(|b| *b == b'\n') {
        if line.is_empty() || line.starts_with(b"total ") {
            continue;
        }
        if recursive && line.starts_with(b"\"") && line.ends_with(b":") {
            let (dir, rest) = c_string(line).ok_or_else(|| unexpected(line))?;
            if rest != b":" {
                return Err(unexpected(line));
            }
            match &root {
                None => root = Some(dir),
                Some(root) => {
                    let relative = dir.strip_prefix(root.as_slice()).unwrap_or(&dir);
                    let relative = relative.strip_prefix(b"/").unwrap_or(relative);
                    prefix = relative.to_vec();
                    if !prefix.is_empty() {
                        prefix.push(b'/');
                    }
                }
            }
            continue;
        }
        if let Some(file) = parse_entry(line, &prefix)? {
            files.push(file);
        }
    }
    Ok(files)
}

/// A command that changes one entry (`mkdir`, `ln -s`, `chmod`, `chown`), followed by
/// `ls -d` of that entry: its result is the entry as FirecREST shows it.
pub struct ChangedEntry {
    line: CommandLine,
}

impl ChangedEntry {
    pub fn new(change: CommandLine, timeout: u64, shown: &[u8]) -> Result<Self, QuoteError> {
        Ok(Self {
            line: change.and_then(Self::show(timeout, shown)?.line),
        })
    }

    /// Only the `ls -d`: for an entry changed otherwise (over SFTP).
    pub fn show(timeout: u64, shown: &[u8]) -> Result<Self, QuoteError> {
        let line = line(
            timeout,
            shown,
            LsOptions {
                directory: true,
                ..LsOptions::default()
            },
        )?;
        Ok(Self { line })
    }
}

impl RemoteCommand for ChangedEntry {
    type Parsed = File;
    type Error = CommandError;

    fn command_line(&self) -> CommandLine {
        self.line.clone()
    }

    fn parse(&self, output: Output) -> Result<File, CommandError> {
        let output = succeeded(output)?;
        parse_ls(&output.stdout, false)?
            .into_iter()
            .next()
            .ok_or_else(|| unexpected(&output.stdout))
    }

    fn examples() -> Vec<Self> {
        let mode = FileMode::parse("755").expect("a mode");
        let owner = |name: &str| AccountName::parse("owner", name).expect("a name");
        let none = AccountName::default();
        [
            mkdir(10, b"/d", true),
            chmod(10, b"/f", &mode),
            chown(10, b"/f", &owner("fireuser"), &none),
            // A dotted owner alone is checked to be a user first (`id -u … && chown …`).
            chown(10, b"/f", &owner("fire.user"), &none),
            symlink(10, b"/f", b"/l"),
            Self::show(10, b"/f"),
        ]
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("no NUL")
    }
}

fn unexpected(line: &[u8]) -> CommandError {
    CommandError::UnexpectedOutput {
        command: "ls",
        detail: format!("cannot read {:?}", String::from_utf8_lossy(line)),
    }
}

/// Splits off the next space-separated field.
fn field<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    let start = rest.iter().position(|b| *b != b' ')?;
    let tail = &rest[start..];
    let end = tail.iter().position(|b| *b == b' ').unwrap_or(tail.len());
    *rest = &tail[end..];
    Some(&tail[..end])
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn parse_entry(line: &[u8], prefix: &[u8]) -> Result<Option<File>, CommandError> {
    let mut rest = line;
    let mode = field(&mut rest).ok_or_else(|| unexpected(line))?;
    let _links = field(&mut rest).ok_or_else(|| unexpected(line))?;
    let user = field(&mut rest).ok_or_else(|| unexpected(line))?;
    let group = field(&mut rest).ok_or_else(|| unexpected(line))?;
    let size = field(&mut rest).ok_or_else(|| unexpected(line))?;
    if size.ends_with(b",") {
        // A device file: `major, minor` instead of a size.
        return Ok(None);
    }
    let date = field(&mut rest).ok_or_else(|| unexpected(line))?;
    if mode.len() < 10 || !size.iter().all(u8::is_ascii_digit) {
        return Err(unexpected(line));
    }
    let rest = rest.strip_prefix(b" ").ok_or_else(|| unexpected(line))?;
    let (name, rest) = c_string(rest).ok_or_else(|| unexpected(line))?;
    let link_target = if rest.is_empty() {
        None
    } else {
        let target = rest.strip_prefix(b" -> ").ok_or_else(|| unexpected(line))?;
        let (target, tail) = c_string(target).ok_or_else(|| unexpected(line))?;
        if !tail.is_empty() {
            return Err(unexpected(line));
        }
        Some(name_to_string(&target))
    };
    let mut full = prefix.to_vec();
    full.extend_from_slice(&name);
    Ok(Some(File {
        name: name_to_string(&full),
        kind: text(&mode[..1]),
        link_target,
        user: text(user),
        group: text(group),
        // Mode strings may end with `+` (ACL) or `.` (SELinux context): not permissions.
        permissions: text(&mode[1..10]),
        last_modified: text(date),
        size: text(size),
    }))
}

/// Decodes one C-quoted string at the start of `input` (`"a\"b\n\303\251"`): its bytes
/// and what follows the closing quote.
fn c_string(input: &[u8]) -> Option<(Vec<u8>, &[u8])> {
    let mut bytes = input.strip_prefix(b"\"")?.iter().enumerate();
    let body = &input[1..];
    let mut out = Vec::new();
    while let Some((i, &byte)) = bytes.next() {
        match byte {
            b'"' => return Some((out, &body[i + 1..])),
            b'\\' => {
                let (_, &escape) = bytes.next()?;
                let decoded = match escape {
                    b'a' => 0x07,
                    b'b' => 0x08,
                    b'f' => 0x0c,
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    b'v' => 0x0b,
                    b'0'..=b'7' => {
                        let mut value = u32::from(escape - b'0');
                        for _ in 0..2 {
                            let (_, &digit) = bytes.next()?;
                            if !(b'0'..=b'7').contains(&digit) {
                                return None;
                            }
                            value = value * 8 + u32::from(digit - b'0');
                        }
                        u8::try_from(value).ok()?
                    }
                    other => other,
                };
                out.push(decoded);
            }
            other => out.push(other),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::fixtures;
    use super::*;

    fn file(name: &str, kind: &str, perms: &str, size: &str) -> File {
        File {
            name: name.into(),
            kind: kind.into(),
            link_target: None,
            user: "fireuser".into(),
            group: "fireuser".into(),
            permissions: perms.into(),
            last_modified: String::new(),
            size: size.into(),
        }
    }

    #[test]
    fn c_strings_decode_to_exact_bytes() {
        let (bytes, rest) = c_string(br#""a\"b\\c\n\t\303\251\377?\?x" -> y"#).expect("decoded");
        assert_eq!(bytes, b"a\"b\\c\n\t\xc3\xa9\xff??x");
        assert_eq!(rest, b" -> y");
        assert!(c_string(b"\"unterminated").is_none());
        assert!(c_string(b"\"\\40x\"").is_none());
    }

    #[test]
    fn parses_a_listing_with_links_and_hostile_names() {
        let stdout = b"total 8\n\
drwxr-xr-x 2 fireuser fireuser 4096 2026-11-22T22:40:00 \"dir\"\n\
-rw-r--r--. 1 fireuser fireuser    5 2026-11-22T22:40:01 \"a'b $(x) `y`\\n\\t\"\n\
lrwxrwxrwx 1 fireuser fireuser    3 2026-11-22T22:40:02 \"l\" -> \"-x \\\" -> z\"\n\
crw-rw-rw- 1 root root 1, 3 2026-11-22T22:40:03 \"null\"\n";
        let files = parse_ls(stdout, false).expect("parsed");
        assert_eq!(files.len(), 3);
        assert_eq!(files[0].name, "dir");
        assert_eq!(files[0].kind, "d");
        assert_eq!(files[0].permissions, "rwxr-xr-x");
        assert_eq!(files[0].size, "4096");
        assert_eq!(files[0].last_modified, "2026-11-22T22:40:00");
        assert_eq!(files[1].name, "a'b $(x) `y`\n\t");
        assert_eq!(files[1].permissions, "rw-r--r--");
        assert_eq!(files[2].kind, "l");
        assert_eq!(files[2].link_target.as_deref(), Some("-x \" -> z"));
    }

    #[test]
    fn recursive_names_are_relative_to_the_first_directory() {
        let stdout = b"\"/home/u/d\":\ntotal 4\n\
drwxr-xr-x 2 fireuser fireuser 4096 2026-11-22T22:40:00 \"sub\"\n\
\n\"/home/u/d/sub\":\ntotal 0\n\
-rw-r--r-- 1 fireuser fireuser 0 2026-11-22T22:40:00 \"f\"\n";
        let names: Vec<String> = parse_ls(stdout, true)
            .expect("parsed")
            .into_iter()
            .map(|f| f.name)
            .collect();
        assert_eq!(names, ["sub", "sub/f"]);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [
            &b"-rw"[..],
            b"-rw-r--r-- 1 u g x 2026 \"a\"",
            b"-rw-r--r-- 1 u g 1 d noquote",
        ] {
            assert!(parse_ls(bad, false).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn captured_listing() {
        let (fixture, output) = fixtures::load("ls");
        let ls = Ls::new(10, b"/home/fireuser/fixtures", LsOptions::default()).expect("line");
        assert_eq!(ls.command_line().to_string(), fixture.command);
        let files = ls.parse(output).expect("parsed");
        let mut expected = file("-leading dash", "-", "rw-r--r--", "6");
        expected.last_modified = files[0].last_modified.clone();
        assert_eq!(files[0], expected);
        assert!(files.iter().any(|f| f.name == "new\nline" && f.size == "0"));
        assert!(
            files
                .iter()
                .any(|f| f.kind == "l" && f.link_target.as_deref() == Some("-leading dash"))
        );
        assert!(files.iter().any(|f| f.name == "\\377\\376bytes"));
    }

    #[test]
    fn captured_recursive_numeric_listing() {
        let (fixture, output) = fixtures::load("ls-recursive");
        let options = LsOptions {
            show_hidden: true,
            numeric_uid: true,
            recursive: true,
            ..LsOptions::default()
        };
        let ls = Ls::new(10, b"/home/fireuser/fixtures", options).expect("line");
        assert_eq!(ls.command_line().to_string(), fixture.command);
        let files = ls.parse(output).expect("parsed");
        let secret = files
            .iter()
            .find(|f| f.name == "locked/secret")
            .expect("entry of the subdirectory, named relative to the first");
        assert_eq!(secret.size, "7");
        assert!(
            secret.user.bytes().all(|b| b.is_ascii_digit()),
            "{secret:?}"
        );
        assert!(files.iter().any(|f| f.name == "new\nline"));
    }
}
