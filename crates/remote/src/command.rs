//! The [`RemoteCommand`] trait and what a command returns.

use crate::{CommandLine, Shape};

/// What a remote command produced. Bytes, because names and contents need not be UTF-8.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub exit_status: u32,
}

impl Output {
    pub fn stdout_text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.stdout)
    }

    pub fn stderr_text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.stderr)
    }
}

/// Why a command's output could not be turned into a result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// The command exited non-zero; the stderr is kept because clients match on it.
    #[error("{}", failure_message(*exit_status, stderr))]
    Failed { exit_status: u32, stderr: String },
    /// The command succeeded but printed something we cannot read.
    #[error("Unexpected output of {command}: {detail}")]
    UnexpectedOutput {
        command: &'static str,
        detail: String,
    },
}

impl CommandError {
    pub fn failed(output: &Output) -> Self {
        CommandError::Failed {
            exit_status: output.exit_status,
            stderr: output.stderr_text().trim().to_string(),
        }
    }
}

/// FirecREST's wording, which pyfirecrest string-matches.
fn failure_message(exit_status: u32, stderr: &str) -> String {
    if stderr.is_empty() {
        format!("Remote process failed with exit status:{exit_status}")
    } else {
        format!("Remote process failed with exit status:{exit_status} and error message:{stderr}")
    }
}

/// One remote operation: how to invoke it and how to read its output.
/// Implementations validate their arguments when they are constructed, so building the
/// command line cannot fail; parsing does no IO and is unit-tested on captured outputs.
pub trait RemoteCommand {
    type Parsed;
    /// Why an output is no `Parsed`: usually [`CommandError`]; a command whose tool's
    /// refusals mean something to its caller (a job that is not found, a submission the
    /// scheduler rejects) returns the caller's error type instead, so the refusal reaches
    /// the caller as that error, not as a result inside a result.
    type Error;

    fn command_line(&self) -> CommandLine;

    /// Bytes written to the command's standard input, if any.
    fn stdin(&self) -> Option<&[u8]> {
        None
    }

    fn parse(&self, output: Output) -> Result<Self::Parsed, Self::Error>;

    /// Instances whose command lines show every shape of line this type builds (each
    /// option present and absent, with and without `timeout`, …): the cluster-side guard
    /// lets only these shapes run (see [`CommandExamples`]).
    fn examples() -> Vec<Self>
    where
        Self: Sized;
}

/// One [`RemoteCommand`] type's example lines, whose shapes the guard's allowlist lists.
#[derive(Debug, Clone)]
pub struct CommandExamples {
    /// The type's path (`ironcrest_services::filesystem::commands::ls::Ls`), or what else
    /// builds the lines.
    pub name: &'static str,
    pub lines: Vec<CommandLine>,
}

impl CommandExamples {
    pub fn of<C: RemoteCommand>() -> Self {
        CommandExamples {
            name: std::any::type_name::<C>(),
            lines: C::examples().iter().map(C::command_line).collect(),
        }
    }

    pub fn shapes(&self) -> impl Iterator<Item = Shape> + '_ {
        self.lines.iter().map(CommandLine::shape)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_messages_use_firecrest_wording() {
        let output = Output {
            stderr: b"ls: cannot access '/x': No such file or directory\n".to_vec(),
            exit_status: 2,
            ..Output::default()
        };
        assert_eq!(
            CommandError::failed(&output).to_string(),
            "Remote process failed with exit status:2 and error message:ls: cannot access '/x': No such file or directory"
        );
        let silent = Output {
            exit_status: 1,
            ..Output::default()
        };
        assert_eq!(
            CommandError::failed(&silent).to_string(),
            "Remote process failed with exit status:1"
        );
    }
}
