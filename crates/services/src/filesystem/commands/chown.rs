//! `chown owner:group`, then the file as `ls -d` shows it. Owner and group are
//! [`AccountName`]s, and the spec follows `--`, so neither can be read as an option.

use ironcrest_remote::QuoteError;

use super::ls::ChangedEntry;
use super::timed;

/// A user or group name as POSIX allows it portably (`[A-Za-z0-9._][A-Za-z0-9._-]*`, at
/// most 256 bytes, so never starting with `-`, and not only dots), or a numeric id. Empty
/// means "unchanged".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AccountName(String);

impl AccountName {
    /// `field` names the value in the message (`owner`, `group`).
    pub fn parse(field: &str, name: &str) -> Result<Self, String> {
        let portable = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if name.is_empty()
            || (name.len() <= 256
                && !name.starts_with('-')
                && name.chars().all(portable)
                && !name.chars().all(|c| c == '.'))
        {
            Ok(Self(name.to_string()))
        } else {
            Err(format!(
                "Invalid {field} {name:?}: use a user or group name of letters, digits, '.', '_' and '-' (not first), or a numeric id."
            ))
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// An empty owner or group leaves it unchanged. The spec is `owner`, `:group` or
/// `owner:group`, so that an unknown owner reads `invalid user` (400) as in v2, not
/// `invalid spec`.
pub fn chown(
    timeout: u64,
    path: &[u8],
    owner: &AccountName,
    group: &AccountName,
) -> Result<ChangedEntry, QuoteError> {
    let spec = match (owner.is_empty(), group.is_empty()) {
        (_, true) if !owner.is_empty() => owner.0.clone(),
        (true, true) => ":".to_string(),
        _ => format!("{}:{}", owner.0, group.0),
    };
    let change = timed(timeout, "chown")
        .operands([spec.as_bytes(), path])?
        .build();
    // chown reads `a.b` as `a:b` when no user `a.b` exists (the old spelling), so a dotted
    // owner alone must name a user that exists.
    let change = if group.is_empty() && owner.0.contains('.') {
        timed(timeout, "id")
            .word("-u")
            .operands([owner.0.as_bytes()])?
            .build()
            .and_then(change)
    } else {
        change
    };
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
        let owner = AccountName::parse("owner", "fireuser").unwrap();
        let chown = chown(
            10,
            b"/home/fireuser/fixtures/lines.txt",
            &owner,
            &AccountName::default(),
        )
        .expect("line");
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

    #[test]
    fn names_are_portable_and_never_options() {
        for name in ["", "fireuser", "1000", "hpc.users", "a_b-c", "_x", "0"] {
            assert!(AccountName::parse("owner", name).is_ok(), "{name:?}");
        }
        for name in [
            "-fireuser",
            ".",
            "..",
            "--help",
            "a:b",
            "a b",
            "$(id)",
            "a\nb",
            "é",
            "a/b",
            "a;b",
            "'",
        ] {
            let message = AccountName::parse("group", name).expect_err(name);
            assert!(message.starts_with("Invalid group"), "{message}");
        }
        assert!(AccountName::parse("owner", &"a".repeat(257)).is_err());
    }

    #[test]
    fn the_spec_names_what_changes() {
        let name = |n: &str| AccountName::parse("owner", n).unwrap();
        let line = |o: &str, g: &str| {
            chown(5, b"/f", &name(o), &name(g))
                .unwrap()
                .command_line()
                .to_string()
        };
        assert!(line("u", "").contains("chown -- u /f"));
        assert!(line("", "g").contains("chown -- :g /f"));
        assert!(line("u", "g").contains("chown -- u:g /f"));
        assert!(line("", "").contains("chown -- : /f"));
        assert!(line("a.b", "").contains("id -u -- a.b && LC_ALL=C timeout 5 chown -- a.b /f"));
        assert!(!line("a.b", "g").contains("id -u"));
    }
}
