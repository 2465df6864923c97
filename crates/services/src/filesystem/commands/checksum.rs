//! `sha256sum --zero`: a file's SHA-256. With `--zero` the name is printed raw and
//! NUL-terminated, and only the leading hash is read, so no name can break the parse
//! (v2 splits on whitespace and fails on names with spaces).

use ironcrest_remote::{CommandError, CommandLine, Output, QuoteError, RemoteCommand};
use serde::Serialize;
use utoipa::ToSchema;

use super::{succeeded, timed};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Checksum {
    /// Always `SHA256`.
    pub algorithm: &'static str,
    pub checksum: String,
}

pub struct Sha256Sum {
    line: CommandLine,
}

impl Sha256Sum {
    pub fn new(timeout: u64, path: &[u8]) -> Result<Self, QuoteError> {
        let line = timed(timeout, "sha256sum")
            .word("--zero")
            .operands([path])?
            .build();
        Ok(Self { line })
    }
}

impl RemoteCommand for Sha256Sum {
    type Parsed = Checksum;
    type Error = CommandError;

    fn command_line(&self) -> CommandLine {
        self.line.clone()
    }

    fn parse(&self, output: Output) -> Result<Checksum, CommandError> {
        let output = succeeded(output)?;
        let hash = output
            .stdout
            .get(..64)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit));
        match (hash, output.stdout.get(64)) {
            (Some(hash), Some(b' ')) => Ok(Checksum {
                algorithm: "SHA256",
                checksum: String::from_utf8_lossy(hash).into_owned(),
            }),
            _ => Err(CommandError::UnexpectedOutput {
                command: "sha256sum",
                detail: format!("Invalid output: {}", output.stdout_text()),
            }),
        }
    }

    fn examples() -> Vec<Self> {
        vec![Self::new(10, b"/home/fireuser/file").expect("no NUL")]
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures;
    use super::*;

    #[test]
    fn captured_checksum() {
        let (fixture, output) = fixtures::load("checksum");
        let sum =
            Sha256Sum::new(10, b"/home/fireuser/fixtures/with space\nand newline").expect("line");
        assert_eq!(sum.command_line().to_string(), fixture.command);
        assert_eq!(
            sum.parse(output).expect("parsed").checksum,
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert!(
            sum.parse(Output {
                stdout: b"zz".to_vec(),
                ..Output::default()
            })
            .is_err()
        );
    }
}
