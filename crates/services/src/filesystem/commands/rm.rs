//! `rm -r`: removes a file or a directory tree.

use ironcrest_remote::{CommandError, CommandLine, Output, QuoteError, RemoteCommand};

use super::{succeeded, timed};

pub struct Rm {
    line: CommandLine,
}

impl Rm {
    pub fn new(timeout: u64, path: &[u8]) -> Result<Self, QuoteError> {
        let line = timed(timeout, "rm")
            .word("-r")
            .word("--interactive=never")
            .operands([path])?
            .build();
        Ok(Self { line })
    }
}

impl RemoteCommand for Rm {
    type Parsed = ();
    type Error = CommandError;

    fn command_line(&self) -> CommandLine {
        self.line.clone()
    }

    fn parse(&self, output: Output) -> Result<(), CommandError> {
        succeeded(output).map(drop)
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
    fn captured_permission_denied() {
        let (fixture, output) = fixtures::load("rm-denied");
        let rm = Rm::new(10, b"/home/fireuser/fixtures/locked").expect("line");
        assert_eq!(rm.command_line().to_string(), fixture.command);
        let error = rm.parse(output).expect_err("denied");
        assert!(error.to_string().contains("Permission denied"), "{error}");
    }
}
