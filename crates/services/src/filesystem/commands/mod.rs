//! The remote commands of the filesystem service, one file per tool. Each is prefixed by
//! `timeout <T>` (exit status 124 → 408) and built only through `CommandLine`'s builder.

mod checksum;
mod chmod;
mod chown;
mod compress;
mod copy;
mod date;
mod download;
mod extract;
mod file;
mod head;
mod ls;
mod mkdir;
mod rename;
mod rm;
mod stat;
mod symlink;
mod tail;
mod upload;
mod view;

pub use checksum::{Checksum, Sha256Sum};
pub use chmod::{FileMode, chmod};
pub use chown::{AccountName, chown};
pub use compress::{Compress, Compression};
pub use copy::CopyTree;
pub use date::UtcOffsets;
pub use download::Cat;
pub use extract::Extract;
pub use file::FileType;
pub use head::Head;
pub use ls::{ChangedEntry, File, Ls, LsOptions, parse_ls};
pub use mkdir::mkdir;
pub use rename::Rename;
pub use rm::Rm;
pub use stat::{FileStat, Stat, StatBatch};
pub use symlink::symlink;
pub use tail::Tail;
pub use upload::Upload;
pub use view::View;

use ironcrest_remote::{CommandError, CommandLine, CommandLineBuilder, Output, QuoteError};
use serde::Serialize;
use utoipa::ToSchema;

/// `timeout <seconds> <program>`: the remote side stops the work itself, and its exit
/// status 124 reads as FirecREST's 408.
fn timed(seconds: u64, program: &'static str) -> CommandLineBuilder {
    CommandLine::builder("timeout")
        .checked(&seconds)
        .word(program)
}

/// [`timed`] for a limit, the bare program without one (inside a batch job, whose time
/// limit is the scheduler's).
fn bounded(seconds: Option<u64>, program: &'static str) -> CommandLineBuilder {
    match seconds {
        Some(seconds) => timed(seconds, program),
        None => CommandLine::builder(program),
    }
}

/// A fixed `sh` script whose values are its positional parameters, under `timeout`.
fn timed_script<V: AsRef<[u8]>>(
    seconds: u64,
    script: &'static str,
    parameters: impl IntoIterator<Item = V>,
) -> Result<CommandLine, QuoteError> {
    Ok(CommandLine::builder("timeout")
        .checked(&seconds)
        .shell_script(script, parameters)?
        .build())
}

/// [`timed_script`] for a limit, the bare script without one.
fn bounded_script<V: AsRef<[u8]>>(
    seconds: Option<u64>,
    script: &'static str,
    parameters: impl IntoIterator<Item = V>,
) -> Result<CommandLine, QuoteError> {
    match seconds {
        Some(seconds) => timed_script(seconds, script, parameters),
        None => CommandLine::shell_script(script, parameters),
    }
}

/// The output, or FirecREST's "Remote process failed…" error.
fn succeeded(output: Output) -> Result<Output, CommandError> {
    if output.exit_status == 0 {
        Ok(output)
    } else {
        Err(CommandError::failed(&output))
    }
}

/// `head`/`tail` output (wire reference §1, FileContent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FileContent {
    pub content: String,
    /// `lines` or `bytes`.
    pub content_type: &'static str,
    pub start_position: i64,
    pub end_position: i64,
}

/// How many bytes or lines `head`/`tail` take: FirecREST v2 takes one of them, lines by
/// default (10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Amount {
    Bytes(u64),
    Lines(u64),
}

impl Amount {
    fn option(self) -> &'static str {
        match self {
            Amount::Bytes(_) => "--bytes",
            Amount::Lines(_) => "--lines",
        }
    }

    fn count(self) -> u64 {
        match self {
            Amount::Bytes(n) | Amount::Lines(n) => n,
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Amount::Bytes(_) => "bytes",
            Amount::Lines(_) => "lines",
        }
    }
}

/// A name as a JSON string. JSON strings are Unicode, so a name that is valid UTF-8 (including
/// newlines, tabs, quotes) is returned exactly; in a name that is not, each invalid byte is
/// written as a C octal escape (`\377`), which is what `ls --quoting-style=c` shows for it.
pub fn name_to_string(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for byte in chunk.invalid() {
            out.push_str(&format!("\\{byte:03o}"));
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Outputs captured from the real tools as fireuser (`scripts/capture-fs-fixtures`).

    use ironcrest_remote::Output;
    use serde::Deserialize;

    #[derive(Deserialize)]
    pub struct Fixture {
        pub command: String,
        pub stdout: String,
        pub stderr: String,
        pub exit_status: u32,
    }

    pub fn load(name: &str) -> (Fixture, Output) {
        let path = format!(
            "{}/tests/fixtures/filesystem/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let fixture: Fixture = serde_json::from_str(&text).expect("fixture");
        let output = Output {
            stdout: fixture.stdout.clone().into_bytes(),
            stderr: fixture.stderr.clone().into_bytes(),
            exit_status: fixture.exit_status,
        };
        (fixture, output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_exact_when_utf8_and_escaped_otherwise() {
        assert_eq!(name_to_string(b"a'b\n\tc"), "a'b\n\tc");
        assert_eq!(name_to_string("é".as_bytes()), "é");
        assert_eq!(name_to_string(b"x\xff\xfey"), "x\\377\\376y");
    }
}
