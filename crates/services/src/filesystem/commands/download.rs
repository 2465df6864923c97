//! `cat`: a file's bytes, unchanged (no base64 round trip as in v2), streamed with
//! `SshPool::execute_streaming`; `parse` reads how the command ended when it printed nothing.

use ironcrest_remote::{CommandError, CommandLine, Output, QuoteError, RemoteCommand};

use super::{succeeded, timed};

pub struct Cat {
    line: CommandLine,
}

impl Cat {
    pub fn new(timeout: u64, path: &[u8]) -> Result<Self, QuoteError> {
        let line = timed(timeout, "cat").operands([path])?.build();
        Ok(Self { line })
    }
}

impl RemoteCommand for Cat {
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
