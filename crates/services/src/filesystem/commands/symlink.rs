//! `ln -s -T`, then the new link as `ls -d` shows it. `-T`: a link path naming an existing
//! directory is refused (`File exists`), never turned into a link inside it.

use ironcrest_remote::QuoteError;

use super::ls::ChangedEntry;
use super::timed;

pub fn symlink(timeout: u64, target: &[u8], link: &[u8]) -> Result<ChangedEntry, QuoteError> {
    let change = timed(timeout, "ln")
        .word("-s")
        .word("-T")
        .operands([target, link])?
        .build();
    ChangedEntry::new(change, timeout, link)
}

#[cfg(test)]
mod tests {
    use ironcrest_remote::RemoteCommand;

    use super::super::fixtures;
    use super::*;

    #[test]
    fn captured_symlink() {
        let (fixture, output) = fixtures::load("symlink");
        let ln = symlink(
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
