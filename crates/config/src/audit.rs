//! `audit`: the audit log, one JSON line per request (docs/audit.md).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Off by default: an operator chooses where the log goes and who may read it.
    #[serde(default)]
    pub enabled: bool,
    /// The file lines are appended to (created with mode 0640, reopened on SIGHUP and
    /// SIGUSR1 for logrotate); absent means standard output.
    #[serde(default)]
    pub path: Option<PathBuf>,
}
