//! `sacctmgr`: the accounts a user may charge, for `/status/{system}/userinfo`.

use ironcrest_remote::{CommandError, CommandLine, Output, QuoteError, RemoteCommand};

use crate::Account;

/// One call lists the user's default account beside each associated account:
/// `sacctmgr -n -P show user name=<u> withassoc format=DefaultAccount,Account`.
pub struct UserAccounts {
    line: CommandLine,
}

impl UserAccounts {
    pub fn new(username: &str) -> Result<Self, QuoteError> {
        let line = CommandLine::builder("sacctmgr")
            .word("--noheader")
            .word("--parsable2")
            .word("show")
            .word("user")
            .option("name", username)?
            .word("withassoc")
            .word("format=DefaultAccount,Account")
            .build();
        Ok(Self { line })
    }
}

impl RemoteCommand for UserAccounts {
    type Parsed = Vec<Account>;
    type Error = CommandError;

    fn command_line(&self) -> CommandLine {
        self.line.clone()
    }

    fn parse(&self, output: Output) -> Result<Vec<Account>, CommandError> {
        if output.exit_status != 0 {
            return Err(CommandError::failed(&output));
        }
        let mut accounts: Vec<Account> = Vec::new();
        for line in output
            .stdout_text()
            .lines()
            .filter(|l| !l.trim().is_empty())
        {
            let (default_account, account) =
                line.split_once('|')
                    .ok_or_else(|| CommandError::UnexpectedOutput {
                        command: "sacctmgr",
                        detail: format!("expected DefaultAccount|Account, got {line:?}"),
                    })?;
            if account.is_empty() || accounts.iter().any(|a| a.name == account) {
                continue;
            }
            accounts.push(Account {
                name: account.to_string(),
                default: account == default_account,
            });
        }
        Ok(accounts)
    }

    fn examples() -> Vec<Self> {
        vec![Self::new("fireuser").expect("no NUL")]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slurm::fixtures;

    #[test]
    fn command_line_matches_the_captured_one() {
        let fixture = fixtures::slurm("sacctmgr_user_withassoc");
        assert_eq!(
            UserAccounts::new("fireuser")
                .unwrap()
                .command_line()
                .to_string(),
            fixture.command
        );
    }

    #[test]
    fn accounts_of_the_dev_user_with_the_default_marked() {
        let fixture = fixtures::slurm("sacctmgr_user_withassoc");
        let mut accounts = UserAccounts::new("fireuser")
            .unwrap()
            .parse(fixture.output)
            .unwrap();
        accounts.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(
            accounts,
            vec![
                Account {
                    name: "project1".into(),
                    default: false
                },
                Account {
                    name: "staff".into(),
                    default: true
                },
            ]
        );
    }

    #[test]
    fn an_unknown_user_has_no_accounts() {
        let output = Output::default();
        assert!(
            UserAccounts::new("nobody")
                .unwrap()
                .parse(output)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn hostile_user_names_stay_one_word() {
        let line = UserAccounts::new("x' withassoc; rm -rf ~")
            .unwrap()
            .command_line();
        assert!(
            line.to_string()
                .contains("name='x'\\'' withassoc; rm -rf ~'")
                || line.to_string().contains("name=\"x' withassoc; rm -rf ~\""),
            "{line}"
        );
        assert!(UserAccounts::new("a\0b").is_err());
    }
}
