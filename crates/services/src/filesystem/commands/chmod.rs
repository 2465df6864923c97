//! `chmod`, then the file as `ls -d` shows it. The mode is passed as one quoted word; `chmod` itself rejects an invalid one.

use ironcrest_remote::{CommandError, CommandLine, Output, QuoteError, RemoteCommand};

use super::ls::{self, File, LsOptions};
use super::timed;

pub struct Chmod {
    line: CommandLine,
}

impl Chmod {
    pub fn new(timeout: u64, path: &[u8], mode: &str) -> Result<Self, QuoteError> {
        let line = timed(timeout, "chmod")?
            .arg(mode)?
            .operands([path])?
            .build()
            .and_then(ls::line(
                timeout,
                path,
                LsOptions {
                    directory: true,
                    ..LsOptions::default()
                },
            )?);
        Ok(Self { line })
    }
}

impl RemoteCommand for Chmod {
    type Parsed = File;

    fn command_line(&self) -> CommandLine {
        self.line.clone()
    }

    fn parse(&self, output: Output) -> Result<File, CommandError> {
        ls::parse_single(output)
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures;
    use super::*;

    #[test]
    fn captured_chmod() {
        let (fixture, output) = fixtures::load("chmod");
        let chmod = Chmod::new(10, b"/home/fireuser/fixtures/lines.txt", "640").expect("line");
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
}
