//! `tar -c`: an archive of a file or directory. The archive holds the source's base name,
//! taken from its parent with a quoted `-C` (v2 uses an unquoted `cd`). With a pattern,
//! `find -regex` selects the regular files under the source, NUL-separated into `tar`,
//! inside a fixed `sh -c` script that gets every value as a positional parameter.

use ironcrest_remote::{CommandError, CommandLine, Output, QuoteError, RemoteCommand};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{bounded, bounded_script, succeeded};

/// Compression of `compress`/`extract` archives; anything else is a 400.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    #[default]
    Gzip,
    Bzip2,
    Xz,
}

impl Compression {
    /// `tar`'s option cluster for creating (`-cz`) or extracting (`-xz`).
    pub(super) fn tar_flags(self, create: bool, dereference: bool) -> &'static str {
        match (create, self, dereference) {
            (true, Compression::None, false) => "-c",
            (true, Compression::None, true) => "-ch",
            (true, Compression::Gzip, false) => "-cz",
            (true, Compression::Gzip, true) => "-czh",
            (true, Compression::Bzip2, false) => "-cj",
            (true, Compression::Bzip2, true) => "-cjh",
            (true, Compression::Xz, false) => "-cJ",
            (true, Compression::Xz, true) => "-cJh",
            (false, Compression::None, _) => "-x",
            (false, Compression::Gzip, _) => "-xz",
            (false, Compression::Bzip2, _) => "-xj",
            (false, Compression::Xz, _) => "-xJ",
        }
    }
}

/// `$1` parent directory, `$2` source base name, `$3` regex, `$4` archive, `$5` tar flags.
/// A missing source is reported by `ls` (v2's `No such file or directory` → 404) rather
/// than archived as empty.
const PATTERN_SCRIPT: &str = r#"cd -- "$1" || exit; ls -d -- "./$2" >/dev/null || exit; find "./$2" -type f -regex "$3" -print0 | tar "$5" --no-unquote --null --files-from=- -f "$4""#;

pub struct Compress {
    line: CommandLine,
}

impl Compress {
    /// `parent`/`base` are the source split at its last `/`.
    pub fn new(
        timeout: Option<u64>,
        parent: &[u8],
        base: &[u8],
        target: &[u8],
        pattern: Option<&str>,
        compression: Compression,
        dereference: bool,
    ) -> Result<Self, QuoteError> {
        let flags = compression.tar_flags(true, dereference);
        let line = match pattern {
            None => bounded(timeout, "tar")
                .word(flags)
                // GNU tar reads `\b`, `\n`, … in member names as escapes unless told not to.
                .word("--no-unquote")
                .option_arg("-f", target)?
                .option_arg("-C", parent)?
                .operands([base])?
                .build(),
            Some(pattern) => bounded_script(
                timeout,
                PATTERN_SCRIPT,
                [parent, base, pattern.as_bytes(), target, flags.as_bytes()],
            )?,
        };
        Ok(Self { line })
    }
}

impl RemoteCommand for Compress {
    type Parsed = ();
    type Error = CommandError;

    fn command_line(&self) -> CommandLine {
        self.line.clone()
    }

    fn parse(&self, output: Output) -> Result<(), CommandError> {
        succeeded(output).map(drop)
    }

    fn examples() -> Vec<Self> {
        let compressions = [
            Compression::None,
            Compression::Gzip,
            Compression::Bzip2,
            Compression::Xz,
        ];
        let mut examples = Vec::new();
        for compression in compressions {
            for dereference in [false, true] {
                for pattern in [None, Some(".*")] {
                    examples.push(Self::new(
                        Some(10),
                        b"/home/fireuser",
                        b"dir",
                        b"/home/fireuser/dir.tar",
                        pattern,
                        compression,
                        dereference,
                    ));
                }
            }
        }
        examples
            .into_iter()
            .collect::<Result<_, _>>()
            .expect("no NUL")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_quote_every_value() {
        let plain = Compress::new(
            Some(5),
            b"/h/u",
            b"-d $(x)",
            b"/h/u/a.tgz",
            None,
            Compression::Gzip,
            false,
        )
        .expect("line");
        assert_eq!(
            plain.command_line().to_string(),
            "LC_ALL=C timeout 5 tar -cz --no-unquote -f /h/u/a.tgz -C /h/u -- '-d $(x)'"
        );
        let pattern = Compress::new(
            Some(5),
            b"/h/u",
            b"d",
            b"/h/u/a.tar",
            Some(".*'"),
            Compression::None,
            true,
        )
        .expect("line");
        let line = pattern.command_line().to_string();
        assert!(
            line.ends_with(r#"sh /h/u d ".*'" /h/u/a.tar -ch"#),
            "{line}"
        );
    }

    /// GNU tar, run here: names with backslashes are archived as they are, with and
    /// without a pattern.
    #[test]
    fn backslashes_in_names_are_not_escapes_to_tar() {
        use std::os::unix::ffi::OsStrExt;
        for name in [&b"a\\b"[..], b"a\\nb", b"\\\\", b"end\\"] {
            for pattern in [None, Some(".*")] {
                let dir = tempfile::tempdir().unwrap();
                let root = dir.path().as_os_str().as_bytes();
                let source = dir.path().join(std::ffi::OsStr::from_bytes(name));
                std::fs::create_dir(&source).unwrap();
                std::fs::write(source.join("f"), b"x").unwrap();
                let archive = [root, b"/out.tar"].concat();
                let compress = Compress::new(
                    None,
                    root,
                    name,
                    &archive,
                    pattern,
                    Compression::None,
                    false,
                )
                .unwrap();
                let output = std::process::Command::new("sh")
                    .arg("-c")
                    .arg(std::ffi::OsStr::from_bytes(
                        compress.command_line().as_bytes(),
                    ))
                    .output()
                    .unwrap();
                assert!(output.status.success(), "{name:?} {pattern:?}: {output:?}");
                let listing = std::process::Command::new("tar")
                    .args(["--quoting-style=literal", "-tf"])
                    .arg(std::ffi::OsStr::from_bytes(&archive))
                    .output()
                    .unwrap();
                let mut member = if pattern.is_some() {
                    b"./".to_vec()
                } else {
                    Vec::new()
                };
                member.extend_from_slice(name);
                member.extend_from_slice(b"/f");
                assert!(
                    listing
                        .stdout
                        .split(|b| *b == b'\n')
                        .any(|line| line == member),
                    "{name:?}: {}",
                    String::from_utf8_lossy(&listing.stdout)
                );
            }
        }
    }
}
