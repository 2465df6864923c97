//! `id`: the calling user's uid, primary group and groups.

use ironcrest_remote::{CommandError, CommandLine, Output, RemoteCommand};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct IdName {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: IdName,
    pub group: IdName,
    pub groups: Vec<IdName>,
}

pub struct Id;

impl RemoteCommand for Id {
    type Parsed = Identity;
    type Error = CommandError;

    fn command_line(&self) -> CommandLine {
        CommandLine::builder("id").build()
    }

    /// Reads `uid=1000(u) gid=1000(g) groups=1000(g),27(sudo)`.
    fn parse(&self, output: Output) -> Result<Identity, CommandError> {
        if output.exit_status != 0 {
            return Err(CommandError::failed(&output));
        }
        let text = output.stdout_text();
        let field = |key: &str| {
            text.split_whitespace()
                .find_map(|part| part.strip_prefix(key)?.strip_prefix('='))
        };
        let unexpected = || CommandError::UnexpectedOutput {
            command: "id",
            detail: format!("cannot read {:?}", text.trim()),
        };
        let user = field("uid").and_then(id_name).ok_or_else(unexpected)?;
        let group = field("gid").and_then(id_name).ok_or_else(unexpected)?;
        let groups = match field("groups") {
            Some(list) => list
                .split(',')
                .map(id_name)
                .collect::<Option<Vec<_>>>()
                .ok_or_else(unexpected)?,
            None => vec![group.clone()],
        };
        Ok(Identity {
            user,
            group,
            groups,
        })
    }

    fn examples() -> Vec<Self> {
        vec![Self]
    }
}

/// `1000(name)`; a number without a name (no passwd entry) keeps the number as the name.
fn id_name(text: &str) -> Option<IdName> {
    match text.split_once('(') {
        Some((id, rest)) => Some(IdName {
            id: id.to_string(),
            name: rest.strip_suffix(')')?.to_string(),
        }),
        None if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => Some(IdName {
            id: text.to_string(),
            name: text.to_string(),
        }),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> (String, Output) {
        let path = format!(
            "{}/../scheduler/tests/fixtures/slurm-22.05/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let value: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let output = Output {
            stdout: value["stdout"].as_str().unwrap().as_bytes().to_vec(),
            stderr: value["stderr"]
                .as_str()
                .unwrap_or_default()
                .as_bytes()
                .to_vec(),
            exit_status: value["exit_status"].as_u64().unwrap() as u32,
        };
        (value["command"].as_str().unwrap().to_string(), output)
    }

    #[test]
    fn the_dev_user_and_groups_are_read() {
        let (command, output) = fixture("id");
        assert_eq!(Id.command_line().to_string(), command);
        let identity = Id.parse(output).unwrap();
        assert_eq!(identity.user.name, "fireuser");
        assert!(identity.groups.len() >= 2, "{identity:?}");
        assert!(identity.groups.contains(&identity.group));
        assert!(identity.groups.iter().any(|g| g.name == "hpcusers"));
    }

    #[test]
    fn ids_without_names_and_garbage() {
        let output = Output {
            stdout: b"uid=1234 gid=1234(g) groups=1234(g),99\n".to_vec(),
            ..Output::default()
        };
        let identity = Id.parse(output).unwrap();
        assert_eq!(
            identity.user,
            IdName {
                id: "1234".into(),
                name: "1234".into()
            }
        );
        assert_eq!(identity.groups[1].id, "99");
        let garbage = Output {
            stdout: b"hello\n".to_vec(),
            ..Output::default()
        };
        assert!(Id.parse(garbage).is_err());
    }
}
