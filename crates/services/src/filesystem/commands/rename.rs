//! `mv --force`: renames or moves a file, directory or link (FirecREST v1's `rename`; a target
//! that is a directory receives the source inside it, as `mv` does).

use ironcrest_remote::{CommandError, CommandLine, Output, QuoteError, RemoteCommand};

use super::{succeeded, timed};

pub struct Rename {
    line: CommandLine,
}

impl Rename {
    pub fn new(timeout: u64, source: &[u8], target: &[u8]) -> Result<Self, QuoteError> {
        let line = timed(timeout, "mv")
            .word("--force")
            .operands([source, target])?
            .build();
        Ok(Self { line })
    }
}

impl RemoteCommand for Rename {
    type Parsed = ();
    type Error = CommandError;

    fn command_line(&self) -> CommandLine {
        self.line.clone()
    }

    fn parse(&self, output: Output) -> Result<(), CommandError> {
        succeeded(output).map(drop)
    }

    fn examples() -> Vec<Self> {
        vec![Self::new(10, b"/home/fireuser/a", b"/home/fireuser/b").expect("no NUL")]
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures;
    use super::*;

    #[test]
    fn captured_missing_source() {
        let (fixture, output) = fixtures::load("rename-missing");
        let mv = Rename::new(
            10,
            b"/home/fireuser/fixtures/missing",
            b"/home/fireuser/fixtures/renamed",
        )
        .expect("line");
        assert_eq!(mv.command_line().to_string(), fixture.command);
        let error = mv.parse(output).expect_err("missing");
        assert!(error.to_string().contains("cannot stat"), "{error}");
    }
}
