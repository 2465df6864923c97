//! Atomic upload when SFTP cannot do it (see `filesystem::sftp::upload`): stdin is written
//! to a fresh temporary name in the target directory (`set -C`: never an existing file) and
//! renamed over the target only once complete. If the command is stopped (timeout,
//! cancelled request), the trap removes the temporary file, so an interrupted upload leaves
//! neither a partial nor a clobbered file.

use ironcrest_remote::{CommandError, CommandLine, Output, QuoteError, RemoteCommand};

use super::{succeeded, timed_script};

/// `$1` directory, `$2` file name. `$$` makes the temporary name unique on the host. `ls`
/// reports a missing directory in the words clients match (`No such file or directory`),
/// where `sh` would say `Directory nonexistent`.
const SCRIPT: &str = r#"ls -d -- "$1/" >/dev/null || exit; set -C; tmp="$1/.ironcrest-upload.$$"; trap 'rm -f -- "$tmp"' EXIT; trap 'exit 143' HUP INT TERM PIPE; cat > "$tmp" && mv -fT -- "$tmp" "$1/$2""#;

/// The file's bytes are streamed to the command's stdin (`SshPool::execute_with_input`).
pub struct Upload {
    line: CommandLine,
}

impl Upload {
    pub fn new(timeout: u64, directory: &[u8], name: &[u8]) -> Result<Self, QuoteError> {
        let line = timed_script(timeout, SCRIPT, [directory, name])?;
        Ok(Self { line })
    }
}

impl RemoteCommand for Upload {
    type Parsed = ();
    type Error = CommandError;

    fn command_line(&self) -> CommandLine {
        self.line.clone()
    }

    fn parse(&self, output: Output) -> Result<(), CommandError> {
        succeeded(output).map(drop)
    }

    fn examples() -> Vec<Self> {
        vec![Self::new(10, b"/home/fireuser", b"file").expect("no NUL")]
    }
}
