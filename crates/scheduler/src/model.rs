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
