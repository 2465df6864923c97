//! `chmod`, then the file as `ls -d` shows it. The mode is a [`FileMode`]: checked against
//! chmod's documented grammar before anything runs, and given after `--`, so no value can
//! be read as an option (`--reference=…`, `-R`).

use ironcrest_remote::QuoteError;

use super::ls::ChangedEntry;
use super::timed;

/// A mode as `chmod` documents it: one to four octal digits, or comma-separated symbolic
/// clauses `[ugoa]*([-+=]([rwxXst]*|[ugo]))+`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMode(String);

impl FileMode {
    pub fn parse(mode: &str) -> Result<Self, String> {
        if is_octal(mode) || (!mode.is_empty() && mode.split(',').all(is_symbolic_clause)) {
            Ok(Self(mode.to_string()))
        } else {
            Err(format!(
                "Invalid mode {mode:?}: use 1 to 4 octal digits (e.g. 755) or chmod's symbolic form (e.g. u+x,go-w)."
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The mode's bits, if it is octal.
    pub fn octal(&self) -> Option<u32> {
        is_octal(&self.0)
            .then(|| u32::from_str_radix(&self.0, 8).ok())
            .flatten()
    }
}

fn is_octal(mode: &str) -> bool {
    (1..=4).contains(&mode.len()) && mode.bytes().all(|b| (b'0'..=b'7').contains(&b))
}

/// `[ugoa]*([-+=]([rwxXst]*|[ugo]))+`
fn is_symbolic_clause(clause: &str) -> bool {
    let actions = clause.trim_start_matches(['u', 'g', 'o', 'a']);
    if !actions.starts_with(['-', '+', '=']) {
        return false;
    }
    // Each action is an operator and the permissions up to the next operator.
    actions[1..].split(['-', '+', '=']).all(|permissions| {
        permissions.chars().all(|c| "rwxXst".contains(c))
            || (permissions.len() == 1 && "ugo".contains(permissions))
    })
}

pub fn chmod(timeout: u64, path: &[u8], mode: &FileMode) -> Result<ChangedEntry, QuoteError> {
    let change = timed(timeout, "chmod")
        .operands([mode.as_str().as_bytes(), path])?
        .build();
    ChangedEntry::new(change, timeout, path)
}

#[cfg(test)]
mod tests {
    use ironcrest_remote::RemoteCommand;

    use super::super::fixtures;
    use super::*;

    #[test]
    fn captured_chmod() {
        let (fixture, output) = fixtures::load("chmod");
        let mode = FileMode::parse("640").unwrap();
        let chmod = chmod(10, b"/home/fireuser/fixtures/lines.txt", &mode).expect("line");
        assert_eq!(chmod.command_line().to_string(), fixture.command);
        assert_eq!(
            chmod.parse(output).expect("parsed").permissions,
            "rw-r-----"
        );
        let (_, invalid) = fixtures::load("chmod-invalid");
        assert!(
            chmod
                .parse(invalid)
                .expect_err("invalid")
                .to_string()
                .contains("invalid mode")
        );
    }

    #[test]
    fn modes_follow_chmods_grammar() {
        let valid = [
            "0",
            "7",
            "644",
            "0755",
            "7777",
            "u+x",
            "go-w",
            "a=r",
            "u=rwx,g=rx,o=",
            "+t",
            "g+s",
            "o+X",
            "u=g",
            "-x",
            "=",
            "+-",
            "ugo+rwxXst",
            "u+x-w=r",
            "a-rwx,u+r",
            "o=u",
        ];
        for mode in valid {
            assert!(FileMode::parse(mode).is_ok(), "{mode:?} should be valid");
        }
        let invalid = [
            "",
            "8",
            "77777",
            "0o755",
            " 755",
            "755\n",
            "--reference=/etc/shadow",
            "-R",
            "u+q",
            "rwx",
            "u",
            "u+x,",
            ",u+x",
            "u+ug",
            "x+u",
            "u=r;id",
            "$(id)",
            "u+r w",
            "-Rx",
            "a",
        ];
        for mode in invalid {
            let Err(message) = FileMode::parse(mode) else {
                panic!("{mode:?} should be refused");
            };
            assert!(message.contains("Invalid mode"), "{message}");
        }
        assert_eq!(FileMode::parse("0644").unwrap().octal(), Some(0o644));
        assert_eq!(FileMode::parse("u+x").unwrap().octal(), None);
    }
}
