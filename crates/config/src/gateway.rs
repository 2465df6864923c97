//! The `gateway` section: what FirecREST v1's Kong gateway did in front of the services —
//! scopes and an embedded policy per route family, rate and concurrency limits, maintenance,
//! request termination and IP filtering (docs/gateway.md). Every part is off unless
//! configured, and the whole section is reloaded on SIGHUP without a restart.
//!
//! Route families are named as they are logged: `status-read`, `compute-read`,
//! `compute-write`, `filesystem-read`, `filesystem-write`, `transfer`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The route families, by their configuration names.
pub const ROUTE_FAMILIES: [&str; 6] = [
    "status-read",
    "compute-read",
    "compute-write",
    "filesystem-read",
    "filesystem-write",
    "transfer",
];

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Route family → scopes the token's `scope` claim must all hold. A family not listed
    /// needs none.
    #[serde(default)]
    pub scopes: BTreeMap<String, Vec<String>>,
    /// An embedded Rego policy every request on a system must satisfy.
    #[serde(default)]
    pub policy: Option<PolicyConfig>,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub maintenance: MaintenanceConfig,
    /// Requests answered with a fixed status and message instead of being served (Kong's
    /// request-termination), e.g. "uploads are disabled today". The first match wins.
    #[serde(default)]
    pub terminate: Vec<TerminationRule>,
    #[serde(default)]
    pub ip_filter: IpFilterConfig,
    /// The scope a token needs for the admin routes (`/admin/…`); without it they answer
    /// 404 (they do not exist).
    #[serde(default)]
    pub admin_scope: Option<String>,
    /// API keys (`X-API-Key`) besides tokens; off when absent.
    #[serde(default)]
    pub api_keys: Option<ApiKeysConfig>,
}

/// API keys: made by `ironcrest api-key create`, kept in `file` only as HMAC-SHA256 hashes
/// under `secret`, each bound to a user, scopes, an expiry and optionally networks.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeysConfig {
    pub file: PathBuf,
    pub secret: crate::Secret,
}

/// One entry of the API keys file.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyEntry {
    /// Public, part of the key: names the key in logs and for revocation.
    pub id: String,
    pub user: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    /// RFC 3339.
    pub expires: String,
    /// Addresses or CIDR blocks the key may be used from; anywhere when empty.
    #[serde(default)]
    pub networks: Vec<String>,
    /// Hex HMAC-SHA256 of the whole key under the configured secret.
    pub hash: String,
}

/// A Rego policy evaluated in process (regorus). Its input: `user`, `client_id`, `scopes`,
/// `groups`, `system`, `family`, `method`, `path`, `params`, `client_ip`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Rego files.
    pub files: Vec<PathBuf>,
    /// JSON or YAML documents merged into `data`.
    #[serde(default)]
    pub data: Vec<PathBuf>,
    /// The rule that must be `true` for a request to pass.
    #[serde(default = "default_allow_rule")]
    pub allow: String,
    /// A rule whose string value is the denial's reason (a generic one when undefined).
    #[serde(default)]
    pub reason: Option<String>,
}

fn default_allow_rule() -> String {
    "data.ironcrest.allow".into()
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Token buckets; a request must pass every one that applies to it.
    #[serde(default)]
    pub rates: Vec<RateLimit>,
    /// Cluster-touching requests one user may have in flight at once.
    #[serde(default)]
    pub concurrency: Option<ConcurrencyLimit>,
    /// Work a user may have started and not finished.
    #[serde(default)]
    pub work: WorkLimits,
    /// The server's own bound on requests on the systems, all users together: on by
    /// default, so load beyond what it can serve is shed early instead of queueing.
    #[serde(default)]
    pub overload: OverloadLimit,
}

/// Requests on the systems served at once by this server, all users together; more wait
/// for a place, a bounded number for a bounded time, and the rest are shed at once.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OverloadLimit {
    /// Requests on the systems being served at once; 0 turns shedding off.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// Requests that may wait for a place; one more is shed at once.
    #[serde(default = "default_max_queued")]
    pub max_queued: usize,
    /// Seconds a request may wait for a place before it is shed.
    #[serde(default = "default_overload_queue_timeout")]
    pub queue_timeout: f64,
    /// The `Retry-After` of a shed request, in seconds.
    #[serde(default = "default_overload_retry_after")]
    pub retry_after: u64,
    /// The status of a shed request: 503 (the server is overloaded), or 429 for clients
    /// that wait and retry only on 429 (pyfirecrest).
    #[serde(default = "default_overload_status")]
    pub status: u16,
}

impl Default for OverloadLimit {
    fn default() -> Self {
        Self {
            max_in_flight: default_max_in_flight(),
            max_queued: default_max_queued(),
            queue_timeout: default_overload_queue_timeout(),
            retry_after: default_overload_retry_after(),
            status: default_overload_status(),
        }
    }
}

fn default_max_in_flight() -> usize {
    256
}

fn default_max_queued() -> usize {
    1024
}

fn default_overload_queue_timeout() -> f64 {
    5.0
}

fn default_overload_retry_after() -> u64 {
    1
}

fn default_overload_status() -> u16 {
    503
}

/// A token bucket: `requests` per `period` seconds, up to `burst` at once.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Whose bucket: each user's, each client id's, or one for everyone.
    pub per: RateKey,
    /// The route families it counts; all when empty.
    #[serde(default)]
    pub families: Vec<String>,
    pub requests: u32,
    #[serde(default = "default_period")]
    pub period: f64,
    /// Requests allowed at once after a quiet spell; `requests` when absent.
    #[serde(default)]
    pub burst: Option<u32>,
}

fn default_period() -> f64 {
    1.0
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RateKey {
    User,
    Client,
    Global,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConcurrencyLimit {
    /// Requests on a system one user may have in flight; more wait in turn.
    pub per_user: usize,
    /// Seconds a request may wait for its turn before it is answered 429.
    #[serde(default = "default_queue_timeout")]
    pub queue_timeout: f64,
}

fn default_queue_timeout() -> f64 {
    10.0
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WorkLimits {
    /// Transfer jobs of a user still queued or running.
    #[serde(default)]
    pub transfer_jobs: Option<usize>,
    /// Staged (S3) uploads of a user whose transfer job has not finished.
    #[serde(default)]
    pub staged_uploads: Option<usize>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceConfig {
    /// Every system at once.
    #[serde(default)]
    pub global: Option<MaintenanceWindow>,
    /// Per system name.
    #[serde(default)]
    pub systems: BTreeMap<String, MaintenanceWindow>,
}

/// A system under maintenance: its routes answer 503 `{"reason": "maintenance", …}`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceWindow {
    pub message: String,
    /// When it is expected to end (RFC 3339); answers carry `Retry-After` until then.
    #[serde(default)]
    pub until: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TerminationRule {
    /// HTTP methods it applies to; all when empty.
    #[serde(default)]
    pub methods: Vec<String>,
    /// A path pattern: `*` stands for one path segment, a trailing `**` for any rest,
    /// e.g. `/filesystem/*/ops/upload`.
    pub path: String,
    /// Only requests on this system; all when absent.
    #[serde(default)]
    pub system: Option<String>,
    #[serde(default = "default_termination_status")]
    pub status: u16,
    pub message: String,
}

fn default_termination_status() -> u16 {
    503
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IpFilterConfig {
    /// Addresses or CIDR blocks allowed; everyone when empty.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Addresses or CIDR blocks refused, even when allowed.
    #[serde(default)]
    pub deny: Vec<String>,
    /// Client id → the only addresses or blocks its tokens may be used from.
    #[serde(default)]
    pub clients: BTreeMap<String, Vec<String>>,
}
