//! `chmod`, then the file as `ls -d` shows it. The mode is passed as one quoted word; `chmod` itself rejects an invalid one.

use ironcrest_remote::QuoteError;

use super::ls::ChangedEntry;
use super::timed;

pub fn chmod(timeout: u64, path: &[u8], mode: &str) -> Result<ChangedEntry, QuoteError> {
    let change = timed(timeout, "chmod")?
        .arg(mode)?
        .operands([path])?
        .build();
    ChangedEntry::new(change, timeout, path)
}

#[cfg(test)]
mod tests {
    use ironcrest_remote::RemoteCommand;

    use super::super::fixtures;
    use super::*;

    #[test]
    fn captured_chmod() {
        let (fixture, output) = fixtures::load("chmod");
        let chmod = chmod(10, b"/home/fireuser/fixtures/lines.txt", "640").expect("line");
        assert_eq!(chmod.command_line().to_string(), fixture.command);
        assert_eq!(
            chmod.parse(output).expect("parsed").permissions,
            "rw-r-----"
        );
        let (_, invalid) = fixtures::load("chmod-invalid");
        assert!(
            chmod
                .parse(invalid)
                .expect_err("invalid")
                .to_string()
                .contains("invalid mode")
        );
    }
}
