//! What the built-in CA's certificates restrict (`ssh_credentials.restrictions`): critical
//! options that sshd enforces, so a stolen certificate can do no more than Ironcrest would.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateRestrictions {
    /// `force-command`: what sshd runs instead of any command the client asks for (the
    /// original one in `SSH_ORIGINAL_COMMAND`), e.g. `ironcrest-guard --log-file …`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_command: Option<String>,
    /// `source-address`: the addresses or CIDR ranges Ironcrest connects from; empty
    /// means any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_addresses: Vec<String>,
}

impl CertificateRestrictions {
    /// Whether the certificates are unrestricted (the default).
    pub fn is_none(&self) -> bool {
        *self == Self::default()
    }

    /// Every problem, as (field, message) pairs under `at`.
    pub(crate) fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if self
            .force_command
            .as_deref()
            .is_some_and(|command| command.trim().is_empty())
        {
            problems.push(("force_command", "must not be empty".to_string()));
        }
        for address in &self.source_addresses {
            let valid = address.parse::<ipnet::IpNet>().is_ok()
                || address.parse::<std::net::IpAddr>().is_ok();
            if !valid {
                problems.push((
                    "source_addresses",
                    format!("{address:?} is neither an IP address nor a CIDR range"),
                ));
            }
        }
        problems
    }
}
