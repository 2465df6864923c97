//! `stat -c`: a file's inode data as integers (wire reference §1, FileStat); [`StatBatch`]:
//! the same for many paths in one `stat`.

use ironcrest_remote::{CommandError, CommandLine, Output, QuoteError, RemoteCommand};
use serde::Serialize;
use utoipa::ToSchema;

use super::{succeeded, timed};

const FORMAT: &str = "%f %i %d %h %u %g %s %X %Y %Z";
/// One record per path that `stat` could read: the name exactly as given, NUL, [`FORMAT`],
/// NUL (names can hold newlines, never NUL).
const BATCH_FORMAT: &str = "%n\\0%f %i %d %h %u %g %s %X %Y %Z\\0";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct FileStat {
    /// The full `st_mode`, e.g. 33188.
    pub mode: u64,
    pub ino: u64,
    pub dev: u64,
    pub nlink: u64,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    pub atime: i64,
    pub ctime: i64,
    pub mtime: i64,
}

pub struct Stat {
    line: CommandLine,
}

impl Stat {
    pub fn new(timeout: u64, path: &[u8], dereference: bool) -> Result<Self, QuoteError> {
        let builder = timed(timeout, "stat").word_if(dereference, "--dereference");
        let line = builder.option_arg("-c", FORMAT)?.operands([path])?.build();
        Ok(Self { line })
    }
}

impl RemoteCommand for Stat {
    type Parsed = FileStat;
    type Error = CommandError;

    fn command_line(&self) -> CommandLine {
        self.line.clone()
    }

    fn parse(&self, output: Output) -> Result<FileStat, CommandError> {
        let output = succeeded(output)?;
        let text = output.stdout_text();
        fields(&text).ok_or_else(|| CommandError::UnexpectedOutput {
            command: "stat",
            detail: format!("cannot read {:?}", text.trim()),
        })
    }

    fn examples() -> Vec<Self> {
        [false, true]
            .map(|dereference| Self::new(10, b"/f", dereference).expect("no NUL"))
            .into()
    }
}

/// [`FORMAT`]'s fields as a `FileStat`.
fn fields(text: &str) -> Option<FileStat> {
    let fields: Vec<&str> = text.split_ascii_whitespace().collect();
    let [mode, ino, dev, nlink, uid, gid, size, atime, mtime, ctime] = fields.as_slice() else {
        return None;
    };
    let int = |s: &str| s.parse::<u64>().ok();
    let time = |s: &str| s.parse::<i64>().ok();
    Some(FileStat {
        mode: u64::from_str_radix(mode, 16).ok()?,
        ino: int(ino)?,
        dev: int(dev)?,
        nlink: int(nlink)?,
        uid: int(uid)?,
        gid: int(gid)?,
        size: int(size)?,
        atime: time(atime)?,
        mtime: time(mtime)?,
        ctime: time(ctime)?,
    })
}

/// `stat` of several paths at once. `stat` goes on past a path it cannot read (reporting
/// it on stderr), so the result holds the paths it could read; the others are to be run
/// alone with [`Stat`], whose error is then the path's own.
pub struct StatBatch {
    line: CommandLine,
}

impl StatBatch {
    pub fn new<P: AsRef<[u8]>>(
        timeout: u64,
        paths: &[P],
        dereference: bool,
    ) -> Result<Self, QuoteError> {
        let builder = timed(timeout, "stat").word_if(dereference, "--dereference");
        let line = builder
            .word("--printf")
            .word(BATCH_FORMAT)
            .operands(paths)?
            .build();
        Ok(Self { line })
    }
}

impl RemoteCommand for StatBatch {
    /// Each path read, with its data.
    type Parsed = Vec<(Vec<u8>, FileStat)>;
    type Error = CommandError;

    fn command_line(&self) -> CommandLine {
        self.line.clone()
    }

    /// The complete records, whatever the exit status (1 when a path failed); a record
    /// cut short (the command was stopped) is left out. Anything else is an error.
    fn parse(&self, output: Output) -> Result<Self::Parsed, CommandError> {
        let mut records = Vec::new();
        let mut rest = output.stdout.as_slice();
        let token = |rest: &mut &[u8]| {
            let end = rest.iter().position(|b| *b == 0)?;
            let token = &rest[..end];
            *rest = &rest[end + 1..];
            Some(token.to_vec())
        };
        while let Some(name) = token(&mut rest) {
            let Some(data) = token(&mut rest) else { break };
            let stat = std::str::from_utf8(&data)
                .ok()
                .and_then(fields)
                .ok_or_else(|| CommandError::UnexpectedOutput {
                    command: "stat",
                    detail: format!("cannot read {:?}", String::from_utf8_lossy(&data)),
                })?;
            records.push((name, stat));
        }
        Ok(records)
    }

    fn examples() -> Vec<Self> {
        [false, true]
            .map(|dereference| Self::new(10, &[b"/f", b"/g"], dereference).expect("no NUL"))
            .into()
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures;
    use super::*;

    #[test]
    fn captured_stat() {
        let (fixture, output) = fixtures::load("stat");
        let stat = Stat::new(10, b"/home/fireuser/fixtures/lines.txt", false).expect("line");
        assert_eq!(stat.command_line().to_string(), fixture.command);
        let parsed = stat.parse(output).expect("parsed");
        assert_eq!(parsed.mode, 0o100644);
        assert_eq!(parsed.size, 21);
        assert!(
            stat.parse(Output {
                stdout: b"1 2".to_vec(),
                ..Output::default()
            })
            .is_err()
        );
    }

    #[test]
    fn captured_stat_batch_of_hostile_names() {
        let (fixture, output) = fixtures::load("stat-batch");
        let dir = "/home/fireuser/fixtures/";
        let names = [
            "lines.txt",
            "-leading dash",
            "new\nline",
            "missing",
            "with space\nand newline",
            "quote's $(x) `y`",
            "dash-link",
        ];
        let paths: Vec<String> = names.iter().map(|n| format!("{dir}{n}")).collect();
        let batch = StatBatch::new(10, &paths, false).expect("line");
        assert_eq!(batch.command_line().to_string(), fixture.command);
        let records = batch.parse(output.clone()).expect("parsed");
        let read: Vec<&[u8]> = records.iter().map(|(name, _)| name.as_slice()).collect();
        let expected: Vec<&[u8]> = paths
            .iter()
            .filter(|p| !p.ends_with("missing"))
            .map(|p| p.as_bytes())
            .collect();
        assert_eq!(read, expected, "every path but the missing one, exactly");
        let by_name = |name: &str| {
            records[read
                .iter()
                .position(|r| *r == format!("{dir}{name}").as_bytes())
                .expect(name)]
            .1
        };
        assert_eq!(by_name("lines.txt").size, 21);
        assert_eq!(by_name("lines.txt").mode, 0o100_644);
        assert_eq!(by_name("with space\nand newline").size, 5);
        assert_eq!(by_name("dash-link").mode & 0o170_000, 0o120_000);
        assert_eq!(by_name("dash-link").size, "-leading dash".len() as u64);

        // The single command reads the same data as the batch's record.
        let single = Stat::new(10, paths[0].as_bytes(), false).expect("line");
        let (_, lines) = fixtures::load("stat");
        assert_eq!(single.parse(lines).expect("parsed").size, 21);

        // Stopped mid-record: the complete records only.
        let cut = output.stdout.len() - 5;
        let truncated = Output {
            stdout: output.stdout[..cut].to_vec(),
            ..output.clone()
        };
        assert_eq!(
            batch.parse(truncated).expect("parsed").len(),
            records.len() - 1
        );
        let garbage = Output {
            stdout: b"/x\0not a stat\0".to_vec(),
            ..output
        };
        assert!(batch.parse(garbage).is_err());
    }
}
