//! `tar -x`: unpacks an archive into a directory (a quoted `-C`).

use ironcrest_remote::{CommandError, CommandLine, Output, QuoteError, RemoteCommand};

use super::{Compression, bounded, succeeded};

pub struct Extract {
    line: CommandLine,
}

impl Extract {
    pub fn new(
        timeout: Option<u64>,
        archive: &[u8],
        target: &[u8],
        compression: Compression,
    ) -> Result<Self, QuoteError> {
        let line = bounded(timeout, "tar")
            .word(compression.tar_flags(false, false))
            .option_arg("-f", archive)?
            .option_arg("-C", target)?
            .build();
        Ok(Self { line })
    }
}

impl RemoteCommand for Extract {
    type Parsed = ();
    type Error = CommandError;

    fn command_line(&self) -> CommandLine {
        self.line.clone()
    }

    fn parse(&self, output: Output) -> Result<(), CommandError> {
        succeeded(output).map(drop)
    }

    fn examples() -> Vec<Self> {
        [
            Compression::None,
            Compression::Gzip,
            Compression::Bzip2,
            Compression::Xz,
        ]
        .into_iter()
        .map(|compression| Self::new(Some(10), b"/a.tar", b"/b", compression))
        .collect::<Result<_, _>>()
        .expect("no NUL")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line() {
        let extract =
            Extract::new(Some(5), b"/h/a b.tar.xz", b"/h/-t", Compression::Xz).expect("line");
        assert_eq!(
            extract.command_line().to_string(),
            "LC_ALL=C timeout 5 tar -xJ -f '/h/a b.tar.xz' -C /h/-t"
        );
    }
}
