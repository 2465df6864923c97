//! The embedded policy: Rego files evaluated in process by regorus, against an input
//! document made from the request and a `data` document read from JSON or YAML files.
//!
//! The files are read when the gateway's rules are built, so a reload (SIGHUP) re-reads
//! them and a file that does not load keeps the previous rules. The compiled engine is
//! kept once and cloned for each evaluation (regorus' `Engine` is not `Sync`; a clone is a
//! few reference counts and one interpreter, cheaper than making requests queue on a
//! lock). Whatever goes wrong while evaluating refuses the request (fail closed); each
//! distinct error is logged once per set of rules, not once per request.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use ironcrest_config::{PolicyConfig, Problem};
use regorus::{Engine, Value};

use crate::{Denial, Layer, Request};

/// The reason of a denial whose `reason` rule says nothing.
const DENIED: &str = "The request is not allowed by the authorization policy.";
/// The reason of a denial because the policy could not be evaluated.
const FAILED: &str = "The request could not be authorized: the authorization policy failed.";
/// Distinct evaluation errors remembered (so logged once); past it, errors are not logged.
const MAX_LOGGED_ERRORS: usize = 64;

pub(crate) struct Policy {
    /// Policies and data loaded, prepared by one evaluation; cloned per request.
    engine: Engine,
    allow: String,
    reason: Option<String>,
    logged: Mutex<HashSet<String>>,
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("allow", &self.allow)
            .field("reason", &self.reason)
            .finish_non_exhaustive()
    }
}

impl Policy {
    /// Reads and compiles the configured files; every file that does not load is a problem.
    pub(crate) fn load(config: &PolicyConfig) -> Result<Self, Vec<Problem>> {
        let mut problems = Vec::new();
        let mut engine = Engine::new();
        for (i, path) in config.files.iter().enumerate() {
            let loaded = std::fs::read_to_string(path)
                .map_err(|err| err.to_string())
                .and_then(|rego| {
                    engine
                        .add_policy(path.display().to_string(), rego)
                        .map_err(|err| err.to_string())
                });
            if let Err(message) = loaded {
                problems.push(problem(
                    format!("gateway.policy.files[{i}]"),
                    path,
                    &message,
                ));
            }
        }
        for (i, path) in config.data.iter().enumerate() {
            let loaded = read_data(path).and_then(|data| {
                engine
                    .add_data(Value::from(data))
                    .map_err(|err| err.to_string())
            });
            if let Err(message) = loaded {
                problems.push(problem(format!("gateway.policy.data[{i}]"), path, &message));
            }
        }
        for (field, rule) in [
            ("allow", Some(&config.allow)),
            ("reason", config.reason.as_ref()),
        ] {
            if let Some(rule) = rule
                && !rule.starts_with("data.")
            {
                problems.push(Problem {
                    field: format!("gateway.policy.{field}"),
                    message: format!("'{rule}' is not a rule path (data.<package>.<rule>)"),
                });
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        // The first evaluation analyses the modules; doing it here means every clone
        // starts prepared. Its result (an empty input) does not matter.
        engine.set_input(Value::new_object());
        let _ = engine.eval_rule(config.allow.clone());
        Ok(Self {
            engine,
            allow: config.allow.clone(),
            reason: config.reason.clone(),
            logged: Mutex::default(),
        })
    }

    /// Whether `request` may pass; a refusal carries the `reason` rule's words.
    pub(crate) fn check(&self, request: &Request<'_>) -> Result<(), Denial> {
        let mut engine = self.engine.clone();
        engine.set_input(input(request));
        let deny = |reason: String| Denial::Forbidden {
            layer: Layer::Policy,
            reason,
        };
        match engine.eval_rule(self.allow.clone()) {
            Ok(Value::Bool(true)) => Ok(()),
            // Undefined is "not allowed", as in OPA: a policy without a default.
            Ok(Value::Bool(false) | Value::Undefined) => Err(deny(self.reason(&mut engine))),
            Ok(other) => {
                self.log_error(&format!(
                    "{} is {}, not a boolean",
                    self.allow,
                    other.to_json_str().unwrap_or_default()
                ));
                Err(deny(FAILED.into()))
            }
            Err(err) => {
                self.log_error(&format!("{}: {err}", self.allow));
                Err(deny(FAILED.into()))
            }
        }
    }

    /// The `reason` rule's string (or strings, joined), else a generic reason.
    fn reason(&self, engine: &mut Engine) -> String {
        let Some(rule) = &self.reason else {
            return DENIED.into();
        };
        let value = match engine.eval_rule(rule.clone()) {
            Ok(value) => value,
            Err(err) => {
                self.log_error(&format!("{rule}: {err}"));
                return DENIED.into();
            }
        };
        let text = |value: &Value| value.as_string().ok().map(|s| s.to_string());
        let reasons: Vec<String> = match &value {
            Value::String(_) => text(&value).into_iter().collect(),
            Value::Array(items) => items.iter().filter_map(text).collect(),
            Value::Set(items) => items.iter().filter_map(text).collect(),
            _ => Vec::new(),
        };
        if reasons.is_empty() {
            DENIED.into()
        } else {
            reasons.join("; ")
        }
    }

    fn log_error(&self, error: &str) {
        let mut logged = self.logged.lock().unwrap_or_else(PoisonError::into_inner);
        if logged.len() < MAX_LOGGED_ERRORS && logged.insert(error.to_owned()) {
            tracing::error!(
                gateway.layer = Layer::Policy.as_str(),
                error,
                "the authorization policy failed; its requests are refused (logged once)"
            );
        }
    }
}

fn problem(field: String, path: &Path, message: &str) -> Problem {
    Problem {
        field,
        // regorus' messages start with a line break before the source excerpt.
        message: format!("{}: {}", path.display(), message.trim()),
    }
}

/// A JSON or YAML document (YAML is a superset of JSON, but JSON's own parser gives better
/// messages for `.json` files).
fn read_data(path: &Path) -> Result<serde_json::Value, String> {
    let text = std::fs::read_to_string(path).map_err(|err| err.to_string())?;
    let value: serde_json::Value = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).map_err(|err| err.to_string())?
    } else {
        serde_yaml_ng::from_str(&text).map_err(|err| err.to_string())?
    };
    if value.is_object() {
        Ok(value)
    } else {
        Err("the document must be a mapping (it is merged into data)".into())
    }
}

/// The input document: who, from where, on which system, doing what.
fn input(request: &Request<'_>) -> Value {
    Value::from(serde_json::json!({
        "user": request.user,
        "client_id": request.grants.client_id,
        "scopes": request.grants.scopes,
        "groups": request.grants.groups,
        "system": request.system,
        "family": request.family.as_str(),
        "method": request.method,
        "path": request.path,
        "params": request.params,
        "client_ip": request.client_address.to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use ironcrest_auth::Grants;
    use secrecy::SecretString;

    use super::*;
    use crate::RouteFamily;

    const RULES: &str = r#"
package ironcrest

default allow := false

allow if {
    input.user == "alice"
    input.family != "filesystem-write"
}

allow if input.params.job_id == "1"

conflicting := 1 if input.user == "dave"

conflicting := 2 if input.user == "dave"

allow if {
    input.user == "dave"
    conflicting == 1
}

reason := sprintf("%s may not %s on %s from %s", [input.user, input.family, input.system, input.client_ip])
"#;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn config(files: Vec<PathBuf>, data: Vec<PathBuf>) -> PolicyConfig {
        PolicyConfig {
            files,
            data,
            allow: "data.ironcrest.allow".into(),
            reason: Some("data.ironcrest.reason".into()),
        }
    }

    fn check(
        policy: &Policy,
        user: &str,
        family: RouteFamily,
        grants: &Grants,
        params: &BTreeMap<String, String>,
    ) -> Result<(), Denial> {
        let token = SecretString::from("t");
        policy.check(&Request {
            user,
            grants,
            system: "daint",
            family,
            method: "GET",
            path: "/x",
            params,
            client_address: "10.1.2.3".parse().unwrap(),
            access_token: &token,
        })
    }

    fn reason(result: Result<(), Denial>) -> String {
        match result {
            Err(Denial::Forbidden {
                layer: Layer::Policy,
                reason,
            }) => reason,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn allows_and_denies_with_the_reason_rule() {
        let dir = tempfile::tempdir().unwrap();
        let policy =
            Policy::load(&config(vec![write(dir.path(), "p.rego", RULES)], vec![])).unwrap();
        let grants = Grants::default();
        let none = BTreeMap::new();
        assert!(
            check(
                &policy,
                "alice",
                RouteFamily::FilesystemRead,
                &grants,
                &none
            )
            .is_ok()
        );
        assert_eq!(
            reason(check(
                &policy,
                "alice",
                RouteFamily::FilesystemWrite,
                &grants,
                &none
            )),
            "alice may not filesystem-write on daint from 10.1.2.3"
        );
        let job = BTreeMap::from([("job_id".to_string(), "1".to_string())]);
        assert!(check(&policy, "bob", RouteFamily::ComputeRead, &grants, &job).is_ok());

        let mut without_reason = config(vec![write(dir.path(), "p.rego", RULES)], vec![]);
        without_reason.reason = None;
        let policy = Policy::load(&without_reason).unwrap();
        assert_eq!(
            reason(check(
                &policy,
                "bob",
                RouteFamily::ComputeRead,
                &grants,
                &none
            )),
            DENIED
        );
    }

    #[test]
    fn evaluation_errors_fail_closed() {
        let dir = tempfile::tempdir().unwrap();
        let policy =
            Policy::load(&config(vec![write(dir.path(), "p.rego", RULES)], vec![])).unwrap();
        let none = BTreeMap::new();
        // A complete rule with two values is an evaluation error: refused, and remembered
        // so it is logged once.
        for _ in 0..3 {
            assert_eq!(
                reason(check(
                    &policy,
                    "dave",
                    RouteFamily::StatusRead,
                    &Grants::default(),
                    &none
                )),
                FAILED
            );
        }
        assert_eq!(policy.logged.lock().unwrap().len(), 1);

        // A rule that is not a boolean is a policy bug, and so is one that does not exist:
        // both refused too.
        let mut odd = config(vec![write(dir.path(), "p.rego", RULES)], vec![]);
        for allow in ["data.ironcrest.reason", "data.nowhere.allow"] {
            odd.allow = allow.into();
            let policy = Policy::load(&odd).unwrap();
            let grants = Grants::default();
            let denied = check(&policy, "x", RouteFamily::StatusRead, &grants, &none);
            assert_eq!(reason(denied), FAILED, "{allow}");
        }
    }

    #[test]
    fn files_that_do_not_load_are_problems_naming_them() {
        let dir = tempfile::tempdir().unwrap();
        let broken = write(dir.path(), "broken.rego", "package x\nallow if {");
        let missing = dir.path().join("missing.rego");
        let list = write(dir.path(), "list.yaml", "[1, 2]");
        let problems = Policy::load(&config(vec![broken, missing], vec![list])).unwrap_err();
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "gateway.policy.files[0]",
                "gateway.policy.files[1]",
                "gateway.policy.data[0]"
            ]
        );
        assert!(
            problems[0].message.contains("broken.rego"),
            "{}",
            problems[0]
        );
        assert!(
            problems[1].message.contains("missing.rego"),
            "{}",
            problems[1]
        );
    }

    #[tokio::test]
    async fn a_reload_re_reads_the_files_and_a_broken_one_keeps_the_old_rules() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), "p.rego", RULES);
        let gateway_config = |files: Vec<PathBuf>| ironcrest_config::GatewayConfig {
            policy: Some(config(files, vec![])),
            ..Default::default()
        };
        let gateway = crate::Gateway::new(&gateway_config(vec![file.clone()])).unwrap();
        let grants = Grants::default();
        let none = BTreeMap::new();
        let token = SecretString::from("t");
        let request = |user| Request {
            user,
            grants: &grants,
            system: "daint",
            family: RouteFamily::StatusRead,
            method: "GET",
            path: "/x",
            params: &none,
            client_address: "10.1.2.3".parse().unwrap(),
            access_token: &token,
        };
        assert!(gateway.admit(&request("alice")).await.is_ok());

        std::fs::write(&file, RULES.replace("\"alice\"", "\"bob\"")).unwrap();
        gateway.reload(&gateway_config(vec![file.clone()])).unwrap();
        assert!(gateway.admit(&request("alice")).await.is_err());
        assert!(gateway.admit(&request("bob")).await.is_ok());

        std::fs::write(&file, "package ironcrest\nallow if {").unwrap();
        let problems = gateway
            .reload(&gateway_config(vec![file.clone()]))
            .unwrap_err();
        assert_eq!(problems[0].field, "gateway.policy.files[0]");
        assert!(problems[0].message.contains("p.rego"), "{}", problems[0]);
        assert!(
            gateway.admit(&request("bob")).await.is_ok(),
            "the old rules stay"
        );
    }

    fn example() -> Policy {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/policy");
        Policy::load(&config(
            vec![dir.join("ironcrest.rego")],
            vec![dir.join("data.yaml")],
        ))
        .unwrap()
    }

    #[test]
    fn the_example_policy_checks_groups_and_read_only_clients() {
        let policy = example();
        let none = BTreeMap::new();
        let grants = |client: &str, groups: &[&str]| Grants {
            client_id: Some(client.into()),
            scopes: vec![],
            groups: groups.iter().map(|g| g.to_string()).collect(),
        };
        let staff = grants("portal", &["users", "csstaff"]);
        for family in RouteFamily::ALL {
            assert!(check(&policy, "alice", family, &staff, &none).is_ok());
        }
        assert_eq!(
            reason(check(
                &policy,
                "eve",
                RouteFamily::StatusRead,
                &grants("portal", &["users"]),
                &none
            )),
            "User eve is in none of the groups allowed on system daint."
        );
        assert!(
            check(
                &policy,
                "eve",
                RouteFamily::StatusRead,
                &Grants::default(),
                &none
            )
            .is_err()
        );
        let dashboard = grants("dashboard", &["hpc-users"]);
        for family in RouteFamily::ALL {
            let result = check(&policy, "alice", family, &dashboard, &none);
            if family.is_read() {
                assert!(result.is_ok(), "{family:?}: {result:?}");
            } else {
                assert_eq!(
                    reason(result),
                    format!(
                        "Client dashboard is read-only; {} requests are not allowed.",
                        family.as_str()
                    )
                );
            }
        }
    }
}
