//! `chown owner:group`, then the file as `ls -d` shows it.

use ironcrest_remote::QuoteError;

use super::ls::ChangedEntry;
use super::timed;

/// An empty owner or group leaves it unchanged. The spec is `owner`, `:group` or
/// `owner:group`, so that an unknown owner reads `invalid user` (400) as in v2, not
/// `invalid spec`.
pub fn chown(
    timeout: u64,
    path: &[u8],
    owner: &str,
    group: &str,
) -> Result<ChangedEntry, QuoteError> {
    let spec = if group.is_empty() {
        owner.to_string()
    } else {
        format!("{owner}:{group}")
    };
    let spec = if spec.is_empty() {
        ":".to_string()
    } else {
        spec
    };
    let change = timed(timeout, "chown")?
        .arg(spec)?
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
    fn captured_chown() {
        let (fixture, output) = fixtures::load("chown");
        let chown = chown(10, b"/home/fireuser/fixtures/lines.txt", "fireuser", "").expect("line");
        assert_eq!(chown.command_line().to_string(), fixture.command);
        assert_eq!(chown.parse(output).expect("parsed").user, "fireuser");
        let (_, invalid) = fixtures::load("chown-invalid");
        assert!(
            chown
                .parse(invalid)
                .expect_err("invalid")
                .to_string()
                .contains("invalid user")
        );
    }
}
