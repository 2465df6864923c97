//! `ln -s`, then the new link as `ls -d` shows it.

use ironcrest_remote::{CommandError, CommandLine, Output, QuoteError, RemoteCommand};

use super::ls::{self, File, LsOptions};
use super::timed;

pub struct Symlink {
    line: CommandLine,
}

impl Symlink {
    pub fn new(timeout: u64, target: &[u8], link: &[u8]) -> Result<Self, QuoteError> {
        let line = timed(timeout, "ln")?
            .flag("-s")
            .operands([target, link])?
            .build()
            .and_then(ls::line(
                timeout,
                link,
                LsOptions {
                    directory: true,
                    ..LsOptions::default()
                },
            )?);
        Ok(Self { line })
    }
}

impl RemoteCommand for Symlink {
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
    fn captured_symlink() {
        let (fixture, output) = fixtures::load("symlink");
        let ln = Symlink::new(
            10,
            b"/home/fireuser/fixtures/lines.txt",
            b"/home/fireuser/fixtures/link",
        )
        .expect("line");
        assert_eq!(ln.command_line().to_string(), fixture.command);
        let file = ln.parse(output).expect("parsed");
        assert_eq!(file.kind, "l");
        assert_eq!(
            file.link_target.as_deref(),
            Some("/home/fireuser/fixtures/lines.txt")
        );
    }
}
