//! The FirecREST objects a scheduler returns (wire reference §1). Field names and
//! nullability are part of the wire contract that pyfirecrest reads.

use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NodeState {
    Idle,
    Allocated,
    Mixed,
    Down,
    Drain,
    Offline,
    Reserved,
    Completing,
    Busy,
    PoweringDown,
    PoweringUp,
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    pub sockets: Option<u32>,
    pub cores: Option<u32>,
    pub threads: Option<u32>,
    pub cpus: u32,
    pub cpu_load: Option<f64>,
    pub free_memory: Option<u64>,
    pub features: Option<Vec<String>>,
    pub name: String,
    pub address: Option<String>,
    pub hostname: Option<String>,
    pub state: Vec<NodeState>,
    pub partitions: Option<Vec<String>>,
    pub weight: Option<u32>,
    pub alloc_memory: Option<u64>,
    pub alloc_cpus: Option<u32>,
    pub idle_cpus: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Partition {
    pub name: String,
    pub cpus: Option<u32>,
    pub total_nodes: Option<u32>,
    /// The partition's state, e.g. `UP` (FirecREST names this field `partition`).
    pub partition: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Reservation {
    pub name: String,
    pub node_list: String,
    pub end_time: i64,
    pub start_time: i64,
    pub features: Option<String>,
    /// Lower-case, e.g. `active`.
    pub state: Option<String>,
}

/// A reservation to make or change (FirecREST v1's `/reservations`): for `account`,
/// `node_count` nodes (with `features`, if any) from `start` to `end` (`YYYY-MM-DDTHH:MM:SS`,
/// the cluster's time). Only the scheduler's operators may make reservations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationSpec {
    pub name: String,
    pub account: String,
    pub node_count: u32,
    pub features: Option<String>,
    pub start: String,
    pub end: String,
}

/// What [`crate::Scheduler::change_reservation`] does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReservationChange {
    Create(ReservationSpec),
    /// The reservation `spec.name` takes `spec`'s other values.
    Update(ReservationSpec),
    Delete {
        name: String,
    },
}

impl ReservationSpec {
    /// What the scheduler's own parsers would read otherwise than meant: names, accounts
    /// and features are words (features joined by `&`/`|`), times are ISO without a zone.
    pub fn check(&self) -> Result<(), String> {
        check_reservation_name(&self.name)?;
        let word = |c: char| c.is_ascii_alphanumeric() || "._-".contains(c);
        if self.account.is_empty() || !self.account.chars().all(word) {
            return Err(format!(
                "account {:?} must be letters, digits, '.', '_' or '-'",
                self.account
            ));
        }
        if self.node_count == 0 {
            return Err("numberOfNodes must be at least 1".into());
        }
        if let Some(features) = &self.features
            && (features.is_empty() || !features.chars().all(|c| word(c) || "&|".contains(c)))
        {
            return Err(format!(
                "nodeType {features:?} must be node features: letters, digits, '.', '_', '-', joined by '&' or '|'"
            ));
        }
        for (field, time) in [("starttime", &self.start), ("endtime", &self.end)] {
            if chrono::NaiveDateTime::parse_from_str(time, "%Y-%m-%dT%H:%M:%S").is_err() {
                return Err(format!("{field} {time:?} is not YYYY-MM-DDTHH:MM:SS"));
            }
        }
        Ok(())
    }
}

/// A reservation's name: letters, digits, `.`, `_`, `-` (what `scontrol` keeps as given).
pub fn check_reservation_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 200
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "reservation {name:?} must be 1 to 200 letters, digits, '.', '_' or '-'"
        ))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Account {
    pub name: String,
    pub default: bool,
}

/// One controller's answer to a ping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PingStatus {
    pub controller: String,
    pub up: bool,
}
