//! `head`: the first bytes or lines of a file, or all but the last ones (`skipTrailing`).

use ironcrest_remote::{CommandError, CommandLine, Output, QuoteError, RemoteCommand};

use super::{Amount, FileContent, succeeded, timed};

pub struct Head {
    line: CommandLine,
    amount: Amount,
    skip_trailing: bool,
}

impl Head {
    pub fn new(
        timeout: u64,
        path: &[u8],
        amount: Amount,
        skip_trailing: bool,
    ) -> Result<Self, QuoteError> {
        let count = amount.count();
        let value = if skip_trailing {
            format!("-{count}")
        } else {
            count.to_string()
        };
        let line = timed(timeout, "head")
            .option(amount.option(), value)?
            .operands([path])?
            .build();
        Ok(Self {
            line,
            amount,
            skip_trailing,
        })
    }
}

impl RemoteCommand for Head {
    type Parsed = FileContent;
    type Error = CommandError;

    fn command_line(&self) -> CommandLine {
        self.line.clone()
    }

    fn parse(&self, output: Output) -> Result<FileContent, CommandError> {
        let output = succeeded(output)?;
        let count = i64::try_from(self.amount.count()).unwrap_or(i64::MAX);
        Ok(FileContent {
            content: String::from_utf8_lossy(&output.stdout).into_owned(),
            content_type: self.amount.content_type(),
            start_position: 0,
            end_position: if self.skip_trailing { -count } else { count },
        })
    }

    fn examples() -> Vec<Self> {
        let amounts = [Amount::Bytes(5), Amount::Lines(5)];
        amounts
            .into_iter()
            .flat_map(|amount| [false, true].map(|skip| Self::new(10, b"/f", amount, skip)))
            .collect::<Result<_, _>>()
            .expect("no NUL")
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures;
    use super::*;

    #[test]
    fn captured_head() {
        let (fixture, output) = fixtures::load("head");
        let head = Head::new(
            10,
            b"/home/fireuser/fixtures/lines.txt",
            Amount::Lines(2),
            false,
        )
        .expect("line");
        assert_eq!(head.command_line().to_string(), fixture.command);
        let content = head.parse(output).expect("parsed");
        assert_eq!(content.content, "1\n2\n");
        assert_eq!(
            (
                content.content_type,
                content.start_position,
                content.end_position
            ),
            ("lines", 0, 2)
        );
    }

    #[test]
    fn skipping_trailing_bytes() {
        let head = Head::new(5, b"/f", Amount::Bytes(3), true).expect("line");
        assert_eq!(
            head.command_line().to_string(),
            "LC_ALL=C timeout 5 head --bytes=-3 -- /f"
        );
        let content = head
            .parse(Output {
                stdout: b"ab".to_vec(),
                ..Output::default()
            })
            .expect("parsed");
        assert_eq!((content.content_type, content.end_position), ("bytes", -3));
    }
}
