//! `date --file=- +%z`: the cluster's UTC offset at given instants, as `ls --time-style` would
//! apply it, so that timestamps read over SFTP (UTC seconds) print as the exec path does.

use ironcrest_remote::{CommandError, CommandLine, Output, QuoteError, RemoteCommand};

use super::{succeeded, timed};

/// The UTC offsets (seconds east) at each of the instants (Unix seconds), in order.
pub struct UtcOffsets {
    line: CommandLine,
    stdin: Vec<u8>,
    count: usize,
}

impl UtcOffsets {
    pub fn new(timeout: u64, instants: &[i64]) -> Result<Self, QuoteError> {
        let line = timed(timeout, "date").word("--file=-").word("+%z").build();
        let stdin = instants
            .iter()
            .map(|t| format!("@{t}\n"))
            .collect::<String>();
        Ok(Self {
            line,
            stdin: stdin.into_bytes(),
            count: instants.len(),
        })
    }
}

impl RemoteCommand for UtcOffsets {
    type Parsed = Vec<i32>;
    type Error = CommandError;

    fn command_line(&self) -> CommandLine {
        self.line.clone()
    }

    fn stdin(&self) -> Option<&[u8]> {
        Some(&self.stdin)
    }

    fn parse(&self, output: Output) -> Result<Vec<i32>, CommandError> {
        let output = succeeded(output)?;
        let text = String::from_utf8_lossy(&output.stdout);
        let offsets: Option<Vec<i32>> = text.lines().map(parse_offset).collect();
        match offsets {
            Some(offsets) if offsets.len() == self.count => Ok(offsets),
            _ => Err(CommandError::UnexpectedOutput {
                command: "date",
                detail: format!("cannot read UTC offsets from {text:?}"),
            }),
        }
    }

    fn examples() -> Vec<Self> {
        vec![Self::new(10, &[0, 1]).expect("no NUL")]
    }
}

/// `+0130` → 5400, `-0800` → -28800.
fn parse_offset(text: &str) -> Option<i32> {
    let (sign, digits) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let hours: i32 = digits[..2].parse().ok()?;
    let minutes: i32 = digits[2..].parse().ok()?;
    Some(sign * (hours * 3600 + minutes * 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_and_offsets() {
        let probe = UtcOffsets::new(5, &[0, 15_552_000]).expect("line");
        assert_eq!(
            probe.command_line().to_string(),
            "LC_ALL=C timeout 5 date --file=- +%z"
        );
        assert_eq!(probe.stdin(), Some(&b"@0\n@15552000\n"[..]));
        let offsets = probe
            .parse(Output {
                stdout: b"+0100\n-0930\n".to_vec(),
                ..Output::default()
            })
            .expect("parsed");
        assert_eq!(offsets, [3600, -34200]);
        assert!(
            probe
                .parse(Output {
                    stdout: b"+0100\n".to_vec(),
                    ..Output::default()
                })
                .is_err()
        );
        assert_eq!(parse_offset("UTC"), None);
    }
}
