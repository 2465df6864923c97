//! `dd`: `size` bytes of a file from byte `offset` (FirecREST's `view`), read with
//! byte-granular skip/count so that no more than `size` bytes are transferred.

use ironcrest_remote::{CommandError, CommandLine, Output, QuoteError, RemoteCommand};

use super::{succeeded, timed};

/// dd's block size: large enough to be fast, small enough not to over-allocate remotely.
const BLOCK: u64 = 1 << 20;

pub struct View {
    line: CommandLine,
}

impl View {
    pub fn new(timeout: u64, path: &[u8], offset: u64, size: u64) -> Result<Self, QuoteError> {
        let line = timed(timeout, "dd")
            .option("if", path)?
            .word("iflag=skip_bytes,count_bytes")
            .option("bs", size.clamp(1, BLOCK).to_string())?
            .option("skip", offset.to_string())?
            .option("count", size.to_string())?
            .word("status=none")
            .build();
        Ok(Self { line })
    }
}

impl RemoteCommand for View {
    type Parsed = String;
    type Error = CommandError;

    fn command_line(&self) -> CommandLine {
        self.line.clone()
    }

    /// The bytes as text, invalid UTF-8 replaced (as v2 does).
    fn parse(&self, output: Output) -> Result<String, CommandError> {
        let output = succeeded(output)?;
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    fn examples() -> Vec<Self> {
        vec![Self::new(10, b"/home/fireuser/file", 5, 100).expect("no NUL")]
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures;
    use super::*;

    #[test]
    fn captured_view() {
        let (fixture, output) = fixtures::load("view");
        let view = View::new(10, b"/home/fireuser/fixtures/lines.txt", 2, 4).expect("line");
        assert_eq!(view.command_line().to_string(), fixture.command);
        assert_eq!(view.parse(output).expect("parsed"), "2\n3\n");
    }
}
