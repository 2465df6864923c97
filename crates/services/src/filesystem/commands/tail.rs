//! `tail`: the last bytes or lines of a file, or everything from a position (`skipHeading`).

use ironcrest_remote::{CommandError, CommandLine, Output, QuoteError, RemoteCommand};

use super::{Amount, FileContent, succeeded, timed};

pub struct Tail {
    line: CommandLine,
    amount: Amount,
    skip_heading: bool,
}

impl Tail {
    pub fn new(
        timeout: u64,
        path: &[u8],
        amount: Amount,
        skip_heading: bool,
    ) -> Result<Self, QuoteError> {
        let count = amount.count();
        let value = if skip_heading {
            format!("+{count}")
        } else {
            count.to_string()
        };
        let line = timed(timeout, "tail")
            .option(amount.option(), value)?
            .operands([path])?
            .build();
        Ok(Self {
            line,
            amount,
            skip_heading,
        })
    }
}

impl RemoteCommand for Tail {
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
            start_position: if self.skip_heading { count } else { -count },
            end_position: -1,
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
    fn captured_tail() {
        let (fixture, output) = fixtures::load("tail");
        let tail = Tail::new(
            10,
            b"/home/fireuser/fixtures/lines.txt",
            Amount::Bytes(4),
            false,
        )
        .expect("line");
        assert_eq!(tail.command_line().to_string(), fixture.command);
        let content = tail.parse(output).expect("parsed");
        assert_eq!(content.content, "\n10\n");
        assert_eq!(
            (
                content.content_type,
                content.start_position,
                content.end_position
            ),
            ("bytes", -4, -1)
        );
    }

    #[test]
    fn skipping_heading_lines() {
        let tail = Tail::new(5, b"/f", Amount::Lines(3), true).expect("line");
        assert_eq!(
            tail.command_line().to_string(),
            "LC_ALL=C timeout 5 tail --lines=+3 -- /f"
        );
    }
}
