//! `stat -c`: a file's inode data as integers (wire reference §1, FileStat).

use ironcrest_remote::{CommandError, CommandLine, Output, QuoteError, RemoteCommand};
use serde::Serialize;
use utoipa::ToSchema;

use super::{succeeded, timed};

const FORMAT: &str = "%f %i %d %h %u %g %s %X %Y %Z";

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
        let mut builder = timed(timeout, "stat")?;
        if dereference {
            builder = builder.flag("--dereference");
        }
        let line = builder.flag("-c").arg(FORMAT)?.operands([path])?.build();
        Ok(Self { line })
    }
}

impl RemoteCommand for Stat {
    type Parsed = FileStat;

    fn command_line(&self) -> CommandLine {
        self.line.clone()
    }

    fn parse(&self, output: Output) -> Result<FileStat, CommandError> {
        let output = succeeded(output)?;
        let text = output.stdout_text();
        let unexpected = || CommandError::UnexpectedOutput {
            command: "stat",
            detail: format!("cannot read {:?}", text.trim()),
        };
        let fields: Vec<&str> = text.split_whitespace().collect();
        let [mode, ino, dev, nlink, uid, gid, size, atime, mtime, ctime] = fields.as_slice() else {
            return Err(unexpected());
        };
        let int = |s: &str| s.parse::<u64>().map_err(|_| unexpected());
        let time = |s: &str| s.parse::<i64>().map_err(|_| unexpected());
        Ok(FileStat {
            mode: u64::from_str_radix(mode, 16).map_err(|_| unexpected())?,
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
}
