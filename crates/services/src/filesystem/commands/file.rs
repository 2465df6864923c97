//! `file -b -E`: a file's type. `-E` makes a missing or unreadable file an error (exit 1,
//! `No such file or directory` → 404) instead of a 200 whose text is the error; it prints
//! that error on stdout, which is read as the stderr of the failure.

use ironcrest_remote::{CommandError, CommandLine, Output, QuoteError, RemoteCommand};

use super::{succeeded, timed};

pub struct FileType {
    line: CommandLine,
}

impl FileType {
    pub fn new(timeout: u64, path: &[u8]) -> Result<Self, QuoteError> {
        let line = timed(timeout, "file")
            .word("-b")
            .word("-E")
            .operands([path])?
            .build();
        Ok(Self { line })
    }
}

impl RemoteCommand for FileType {
    type Parsed = String;
    type Error = CommandError;

    fn command_line(&self) -> CommandLine {
        self.line.clone()
    }

    fn parse(&self, mut output: Output) -> Result<String, CommandError> {
        if output.exit_status != 0 && output.stderr.is_empty() {
            // `file -E` reports the failure on stdout.
            output.stderr = std::mem::take(&mut output.stdout);
        }
        let output = succeeded(output)?;
        Ok(output.stdout_text().trim().to_string())
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
    fn captured_file_type() {
        let (fixture, output) = fixtures::load("file");
        let file = FileType::new(10, b"/home/fireuser/fixtures/lines.txt").expect("line");
        assert_eq!(file.command_line().to_string(), fixture.command);
        assert_eq!(file.parse(output).expect("parsed"), "ASCII text");
        let (_, missing) = fixtures::load("file-missing");
        let error = file.parse(missing).expect_err("missing");
        assert!(
            error.to_string().contains("No such file or directory"),
            "{error}"
        );
    }
}
