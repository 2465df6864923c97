//! `mkdir [-p]`, then the new directory as `ls -d` shows it.

use ironcrest_remote::QuoteError;

use super::ls::ChangedEntry;
use super::timed;

pub fn mkdir(timeout: u64, path: &[u8], parents: bool) -> Result<ChangedEntry, QuoteError> {
    let builder = timed(timeout, "mkdir").word_if(parents, "-p");
    ChangedEntry::new(builder.operands([path])?.build(), timeout, path)
}

#[cfg(test)]
mod tests {
    use ironcrest_remote::RemoteCommand;

    use super::super::fixtures;
    use super::*;

    #[test]
    fn captured_mkdir() {
        let (fixture, output) = fixtures::load("mkdir");
        let mkdir = mkdir(10, b"/home/fireuser/fixtures/new dir", true).expect("line");
        assert_eq!(mkdir.command_line().to_string(), fixture.command);
        let file = mkdir.parse(output).expect("parsed");
        assert_eq!(
            (file.name.as_str(), file.kind.as_str()),
            ("/home/fireuser/fixtures/new dir", "d")
        );
        let (_, exists) = fixtures::load("mkdir-exists");
        assert!(
            mkdir
                .parse(exists)
                .expect_err("exists")
                .to_string()
                .contains("File exists")
        );
    }
}
