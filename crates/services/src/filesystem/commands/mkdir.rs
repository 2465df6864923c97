//! `mkdir [-p]`, then the new directory as `ls -d` shows it.

use ironcrest_remote::{CommandError, CommandLine, Output, QuoteError, RemoteCommand};

use super::ls::{self, File, LsOptions};
use super::timed;

pub struct Mkdir {
    line: CommandLine,
}

impl Mkdir {
    pub fn new(timeout: u64, path: &[u8], parents: bool) -> Result<Self, QuoteError> {
        let mut builder = timed(timeout, "mkdir")?;
        if parents {
            builder = builder.flag("-p");
        }
        let line = builder.operands([path])?.build().and_then(ls::line(
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

impl RemoteCommand for Mkdir {
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
    fn captured_mkdir() {
        let (fixture, output) = fixtures::load("mkdir");
        let mkdir = Mkdir::new(10, b"/home/fireuser/fixtures/new dir", true).expect("line");
        assert_eq!(mkdir.command_line().to_string(), fixture.command);
        let file = mkdir.parse(output).expect("parsed");
        assert_eq!(
            (file.name.as_str(), file.kind.as_str()),
            ("/home/fireuser/fixtures/new dir", "d")
        );
        let (_, exists) = fixtures::load("mkdir-exists");
        assert!(
            mkdir
                .parse(exists)
                .expect_err("exists")
                .to_string()
                .contains("File exists")
        );
    }
}
