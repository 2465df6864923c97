//! `cp --force -dR --preserve=all`: copies a file or a directory tree, links as links, with
//! modes, times and (where the user may) ownership kept (FirecREST v1's `copy`).

use ironcrest_remote::{CommandError, CommandLine, Output, QuoteError, RemoteCommand};

use super::{succeeded, timed};

pub struct CopyTree {
    line: CommandLine,
}

impl CopyTree {
    pub fn new(timeout: u64, source: &[u8], target: &[u8]) -> Result<Self, QuoteError> {
        let line = timed(timeout, "cp")
            .word("--force")
            .word("-dR")
            .word("--preserve=all")
            .operands([source, target])?
            .build();
        Ok(Self { line })
    }
}

impl RemoteCommand for CopyTree {
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
    fn captured_unwritable_target() {
        let (fixture, output) = fixtures::load("copy-denied");
        let cp = CopyTree::new(
            10,
            b"/home/fireuser/fixtures/lines.txt",
            b"/home/fireuser/fixtures/locked/copy",
        )
        .expect("line");
        assert_eq!(cp.command_line().to_string(), fixture.command);
        let error = cp.parse(output).expect_err("denied");
        assert!(error.to_string().contains("Permission denied"), "{error}");
    }
}
