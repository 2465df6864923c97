//! The configuration model, modelled on FirecREST v2's YAML (see docs/configuration.md).
//! Every duration is in seconds. Defaults follow FirecREST v2 where it has one.
//! It serialises back to the YAML it reads (see [`Secret`] for secrets), so tests can edit
//! a configuration as these types, which a renamed field breaks at build time.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::Secret;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    pub auth: AuthConfig,
    pub ssh_credentials: SshCredentialsConfig,
    pub clusters: Vec<ClusterConfig>,
    #[serde(default)]
    pub logger: LoggerConfig,
    #[serde(default)]
    pub gateway: crate::GatewayConfig,
    #[serde(default)]
    pub audit: crate::AuditConfig,
    #[serde(default)]
    pub telemetry: crate::TelemetryConfig,
    #[serde(default)]
    pub idempotency: crate::IdempotencyConfig,
    #[serde(default)]
    pub job_events: crate::JobEventsConfig,
    #[serde(default)]
    pub ui: crate::UiConfig,
    #[serde(default)]
    pub v1: crate::V1Config,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    #[serde(default = "defaults::listen")]
    pub listen: SocketAddr,
    /// How long in-flight requests may run after SIGTERM before the server exits.
    #[serde(default = "defaults::shutdown_grace_period")]
    pub shutdown_grace_period: u64,
    #[serde(default)]
    pub connections: ConnectionLimits,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: defaults::listen(),
            shutdown_grace_period: defaults::shutdown_grace_period(),
            connections: ConnectionLimits::default(),
        }
    }
}

/// What one client may hold of the server (nginx's `client_header_timeout`,
/// `keepalive_timeout` and `limit_conn`, in the binary).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionLimits {
    /// Seconds a connection may take to send a request's headers, counted from when it is
    /// ready for the next request; an idle keep-alive connection is closed after it too.
    #[serde(default = "defaults::header_timeout")]
    pub header_timeout: u64,
    /// Open connections in all; 0 sizes it from the process's open-file limit (3/4 of it,
    /// the rest kept for SSH connections, SFTP sessions and outgoing HTTP).
    #[serde(default)]
    pub max_connections: usize,
    /// Open connections from one client address; 0 means no per-address limit.
    #[serde(default = "defaults::max_connections_per_address")]
    pub max_connections_per_address: usize,
    /// Addresses or CIDR blocks (a reverse proxy, a portal) exempt from the per-address limit.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
}

impl ConnectionLimits {
    /// The trusted proxies as networks (an address is a one-host network); entries that do
    /// not parse are reported by validation and skipped here.
    pub fn trusted_networks(&self) -> Vec<ipnet::IpNet> {
        self.trusted_proxies
            .iter()
            .filter_map(|entry| crate::parse_network(entry))
            .collect()
    }
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_timeout: defaults::header_timeout(),
            max_connections: 0,
            max_connections_per_address: defaults::max_connections_per_address(),
            trusted_proxies: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LoggerConfig {
    /// A `tracing` filter directive, e.g. `info` or `ironcrest=debug,info`.
    #[serde(default = "defaults::log_level")]
    pub level: String,
    #[serde(default)]
    pub format: LogFormat,
}

impl Default for LoggerConfig {
    fn default() -> Self {
        Self {
            level: defaults::log_level(),
            format: LogFormat::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub authentication: AuthenticationConfig,
    #[serde(default)]
    pub authorization: Option<AuthorizationConfig>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthenticationConfig {
    /// The IdP's token endpoint, used for the health checker's client-credentials grant.
    pub token_url: String,
    /// JWKS locations: `http(s)://…` URLs or `file:///…` paths.
    #[serde(default)]
    pub public_certs: Vec<String>,
    /// An OIDC issuer whose `/.well-known/openid-configuration` names the JWKS URL.
    #[serde(default)]
    pub oidc_discovery_url: Option<String>,
    #[serde(default = "defaults::username_claim")]
    pub username_claim: String,
    /// The claim listing the caller's groups, for the gateway's policy (`groups` as input).
    #[serde(default = "defaults::groups_claim")]
    pub groups_claim: String,
    /// Algorithm for JWKs that carry no `alg`; inferred from the key type when absent.
    #[serde(default)]
    pub jwk_algorithm: Option<String>,
    /// Tokens with less remaining lifetime than this are refused.
    #[serde(default = "defaults::min_token_ttl")]
    pub min_token_ttl: u64,
    /// When set, the token's `iss` must equal it.
    #[serde(default)]
    pub issuer: Option<String>,
    /// When non-empty, the token's `aud` must contain one of these.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Periodic JWKS refresh, so that key rotation needs no restart.
    #[serde(default = "defaults::jwks_refresh_interval")]
    pub jwks_refresh_interval: u64,
    /// At most one refresh per this many seconds when a token names an unknown `kid`.
    #[serde(default = "defaults::jwks_min_refresh_interval")]
    pub jwks_min_refresh_interval: u64,
    #[serde(default)]
    pub token_endpoint_auth_method: TokenEndpointAuthMethod,
    /// OpenAPI security-scheme scopes (documentation only, as in FirecREST v2).
    #[serde(default)]
    pub scopes: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TokenEndpointAuthMethod {
    #[default]
    ClientSecretBasic,
    ClientSecretPost,
}

/// An OpenFGA check every request on a system must pass (FirecREST v2's
/// `auth.authorization`, plus OpenFGA's own API when `store_id` is set).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorizationConfig {
    /// Without `store_id`: the check endpoint itself (v2: a POST of `{user, relation,
    /// object}`). With it: OpenFGA's base URL (`<url>/stores/<store_id>/check`).
    pub url: String,
    /// Seconds a check may take (waiting for a connection included).
    #[serde(default = "defaults::authorization_timeout")]
    pub timeout: u64,
    /// Checks in flight at once; `0` is no limit (v2: connections per host).
    #[serde(default = "defaults::authorization_max_connections")]
    pub max_connections: usize,
    /// OpenFGA's store; when set, OpenFGA's `check` API is called.
    #[serde(default)]
    pub store_id: Option<String>,
    /// The authorization model the check uses (OpenFGA's API only; the store's latest
    /// when absent).
    #[serde(default)]
    pub authorization_model_id: Option<String>,
    /// The relation checked between `user:<name>` and `<object_type>:<system>`.
    #[serde(default = "defaults::authorization_relation")]
    pub relation: String,
    #[serde(default = "defaults::authorization_object_type")]
    pub object_type: String,
    /// Seconds a decision for a (user, system) is reused; `0` asks every time.
    #[serde(default = "defaults::authorization_cache_ttl")]
    pub cache_ttl: f64,
    /// Decisions kept at most.
    #[serde(default = "defaults::authorization_cache_size")]
    pub cache_size: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum SshCredentialsConfig {
    /// Ironcrest is the SSH CA: it signs a short-lived certificate for an ephemeral key per user.
    #[serde(rename = "SSHCertificateAuthority")]
    CertificateAuthority {
        /// The CA's private key in OpenSSH format (the one sshd trusts via `TrustedUserCAKeys`).
        ca_private_key: Secret,
        #[serde(default = "defaults::certificate_lifetime")]
        certificate_lifetime: u64,
        /// The certificates' `force-command` and `source-address`; none by default.
        #[serde(
            default,
            skip_serializing_if = "crate::CertificateRestrictions::is_none"
        )]
        restrictions: crate::CertificateRestrictions,
    },
    /// One configured key (and optional certificate) per user.
    #[serde(rename = "SSHStaticKeys")]
    StaticKeys { keys: BTreeMap<String, StaticKey> },
    /// An external signing service, as FirecREST v2's `SSHService`.
    #[serde(rename = "SSHService")]
    KeyService {
        url: String,
        #[serde(default = "defaults::key_service_timeout")]
        timeout: u64,
    },
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StaticKey {
    pub private_key: Secret,
    #[serde(default)]
    pub public_cert: Option<String>,
    #[serde(default)]
    pub passphrase: Option<Secret>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    pub name: String,
    pub ssh: SshConfig,
    pub scheduler: SchedulerConfig,
    pub service_account: ServiceAccount,
    pub probing: ProbingConfig,
    #[serde(default)]
    pub file_systems: Vec<FileSystemConfig>,
    #[serde(default)]
    pub data_operation: DataOperationConfig,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SshConfig {
    pub host: String,
    pub port: u16,
    #[serde(default)]
    pub proxy_host: Option<String>,
    #[serde(default)]
    pub proxy_port: Option<u16>,
    /// Upper bound on open SSH connections to this cluster, all users together.
    #[serde(default = "defaults::max_clients")]
    pub max_clients: usize,
    /// Channels multiplexed on one connection: keep it at or below sshd's `MaxSessions`.
    #[serde(default = "defaults::max_sessions_per_connection")]
    pub max_sessions_per_connection: usize,
    /// Standing SFTP sessions (sftp-server processes on the cluster) one user may have at
    /// once; another is opened while every one is busy. Each takes a channel.
    #[serde(default = "defaults::max_sftp_sessions_per_user")]
    pub max_sftp_sessions_per_user: usize,
    /// The known_hosts file the cluster's host key is checked against.
    #[serde(default)]
    pub known_hosts: Option<PathBuf>,
    #[serde(default)]
    pub timeout: SshTimeouts,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SshTimeouts {
    #[serde(default = "defaults::ssh_connection")]
    pub connection: u64,
    #[serde(default = "defaults::ssh_login")]
    pub login: u64,
    #[serde(default = "defaults::ssh_command_execution")]
    pub command_execution: u64,
    #[serde(default = "defaults::ssh_idle_timeout")]
    pub idle_timeout: u64,
    #[serde(default = "defaults::ssh_keep_alive")]
    pub keep_alive: u64,
}

impl Default for SshTimeouts {
    fn default() -> Self {
        Self {
            connection: defaults::ssh_connection(),
            login: defaults::ssh_login(),
            command_execution: defaults::ssh_command_execution(),
            idle_timeout: defaults::ssh_idle_timeout(),
            keep_alive: defaults::ssh_keep_alive(),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SchedulerType {
    Slurm,
    Pbs,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionMode {
    #[default]
    Ssh,
    Rest,
    Hybrid,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulerConfig {
    #[serde(rename = "type")]
    pub kind: SchedulerType,
    #[serde(default)]
    pub connection_mode: ConnectionMode,
    pub version: String,
    #[serde(default)]
    pub api_url: Option<String>,
    #[serde(default)]
    pub api_version: Option<String>,
    #[serde(default = "defaults::scheduler_timeout")]
    pub timeout: u64,
    /// Seconds a job listing may be served from an earlier identical one (0: only
    /// concurrent identical listings share one scheduler call).
    #[serde(default = "defaults::jobs_cache_max_age")]
    pub jobs_cache_max_age: f64,
    /// Seconds a user's `userinfo` (groups from `id`, accounts from the scheduler) is
    /// served from an earlier answer; concurrent calls always share one.
    #[serde(default = "defaults::userinfo_cache_max_age")]
    pub userinfo_cache_max_age: f64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceAccount {
    pub client_id: String,
    pub secret: Secret,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProbingConfig {
    #[serde(default = "defaults::probing_interval", alias = "interval_check")]
    pub interval: u64,
    #[serde(default)]
    pub services: BTreeMap<ProbedService, ProbeSettings>,
}

/// The services the health checker can probe. `storage` is FirecREST's other name for `s3`.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ProbedService {
    Scheduler,
    Ssh,
    Filesystem,
    #[serde(alias = "storage")]
    S3,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeSettings {
    #[serde(default = "defaults::probe_timeout")]
    pub timeout: u64,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FileSystemDataType {
    Users,
    Store,
    Archive,
    Apps,
    Scratch,
    Project,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileSystemConfig {
    pub path: String,
    pub data_type: FileSystemDataType,
    #[serde(default)]
    pub default_work_dir: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DataOperationConfig {
    #[serde(default)]
    pub datatransfer_jobs_directives: Vec<String>,
    /// Largest file the direct (non-staged) operations handle; also caps remote command output.
    #[serde(default = "defaults::max_ops_file_size")]
    pub max_ops_file_size: u64,
    #[serde(default)]
    pub data_transfer: Option<DataTransferConfig>,
    /// Where transfer jobs write their output and error logs: relative to the user's
    /// directory on the default work file system, or absolute with `{username}`.
    #[serde(default = "defaults::transfer_log_directory")]
    pub transfer_log_directory: String,
    /// Days a transfer job's logs are kept; each new transfer job of the user removes older
    /// ones (0 keeps them forever).
    #[serde(default = "defaults::transfer_log_max_age_days")]
    pub transfer_log_max_age_days: u32,
}

impl Default for DataOperationConfig {
    fn default() -> Self {
        Self {
            datatransfer_jobs_directives: Vec::new(),
            max_ops_file_size: defaults::max_ops_file_size(),
            data_transfer: None,
            transfer_log_directory: defaults::transfer_log_directory(),
            transfer_log_max_age_days: defaults::transfer_log_max_age_days(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "service_type", rename_all = "snake_case", deny_unknown_fields)]
pub enum DataTransferConfig {
    S3(S3Config),
    Streamer(StreamerConfig),
    Wormhole {
        #[serde(default)]
        pypi_index_url: Option<String>,
    },
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    pub name: String,
    pub private_url: Secret,
    pub public_url: String,
    pub access_key_id: Secret,
    pub secret_access_key: Secret,
    pub region: String,
    /// Lifetime of presigned URLs.
    pub ttl: u64,
    #[serde(default)]
    pub tenant: Option<String>,
    /// Origins of web pages that upload to the staging area with presigned URLs (the UI's,
    /// e.g. `https://hpc.example.org`; one `*` wildcard allowed): Ironcrest sets a CORS rule
    /// for them on each user's bucket. Empty: no rule is set.
    #[serde(default)]
    pub cors_origins: Vec<String>,
    #[serde(default)]
    pub multipart: MultipartConfig,
    #[serde(default)]
    pub bucket_lifecycle_configuration: BucketLifecycleConfig,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MultipartConfig {
    #[serde(default)]
    pub use_split: bool,
    #[serde(default = "defaults::max_part_size")]
    pub max_part_size: u64,
    #[serde(default = "defaults::parallel_runs")]
    pub parallel_runs: u32,
    #[serde(default = "defaults::tmp_folder")]
    pub tmp_folder: String,
}

impl Default for MultipartConfig {
    fn default() -> Self {
        Self {
            use_split: false,
            max_part_size: defaults::max_part_size(),
            parallel_runs: defaults::parallel_runs(),
            tmp_folder: defaults::tmp_folder(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BucketLifecycleConfig {
    #[serde(default = "defaults::lifecycle_days")]
    pub days: u32,
}

impl Default for BucketLifecycleConfig {
    fn default() -> Self {
        Self {
            days: defaults::lifecycle_days(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StreamerConfig {
    #[serde(default)]
    pub pypi_index_url: Option<String>,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default = "defaults::streamer_port_range")]
    pub port_range: (u16, u16),
    #[serde(default)]
    pub public_ips: Option<Vec<String>>,
    #[serde(default = "defaults::streamer_wait_timeout")]
    pub wait_timeout: u64,
    #[serde(default = "defaults::streamer_inbound_limit")]
    pub inbound_transfer_limit: u64,
}

impl Default for StreamerConfig {
    fn default() -> Self {
        Self {
            pypi_index_url: None,
            host: None,
            port_range: defaults::streamer_port_range(),
            public_ips: None,
            wait_timeout: defaults::streamer_wait_timeout(),
            inbound_transfer_limit: defaults::streamer_inbound_limit(),
        }
    }
}

mod defaults {
    use std::net::SocketAddr;

    pub fn listen() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 8000))
    }
    pub fn shutdown_grace_period() -> u64 {
        10
    }
    pub fn header_timeout() -> u64 {
        30
    }
    pub fn max_connections_per_address() -> usize {
        256
    }
    pub fn log_level() -> String {
        "info".into()
    }
    pub fn username_claim() -> String {
        "preferred_username".into()
    }
    pub fn groups_claim() -> String {
        "groups".into()
    }
    pub fn min_token_ttl() -> u64 {
        30
    }
    pub fn jwks_refresh_interval() -> u64 {
        300
    }
    pub fn jwks_min_refresh_interval() -> u64 {
        10
    }
    pub fn authorization_timeout() -> u64 {
        1
    }
    pub fn authorization_max_connections() -> usize {
        100
    }
    pub fn authorization_relation() -> String {
        "member".into()
    }
    pub fn authorization_object_type() -> String {
        "vcluster".into()
    }
    pub fn authorization_cache_ttl() -> f64 {
        10.0
    }
    pub fn authorization_cache_size() -> usize {
        10_000
    }
    pub fn certificate_lifetime() -> u64 {
        300
    }
    pub fn key_service_timeout() -> u64 {
        5
    }
    pub fn max_clients() -> usize {
        100
    }
    pub fn max_sessions_per_connection() -> usize {
        10
    }
    pub fn max_sftp_sessions_per_user() -> usize {
        4
    }
    pub fn ssh_connection() -> u64 {
        5
    }
    pub fn ssh_login() -> u64 {
        5
    }
    pub fn ssh_command_execution() -> u64 {
        5
    }
    pub fn ssh_idle_timeout() -> u64 {
        60
    }
    pub fn ssh_keep_alive() -> u64 {
        5
    }
    pub fn scheduler_timeout() -> u64 {
        10
    }
    pub fn jobs_cache_max_age() -> f64 {
        0.5
    }
    pub fn userinfo_cache_max_age() -> f64 {
        30.0
    }
    pub fn transfer_log_directory() -> String {
        ".ironcrest/transfer-logs".into()
    }
    pub fn transfer_log_max_age_days() -> u32 {
        7
    }
    pub fn probing_interval() -> u64 {
        120
    }
    pub fn probe_timeout() -> u64 {
        10
    }
    pub fn max_ops_file_size() -> u64 {
        5 * 1024 * 1024
    }
    pub fn max_part_size() -> u64 {
        2 * 1024 * 1024 * 1024
    }
    pub fn parallel_runs() -> u32 {
        3
    }
    pub fn tmp_folder() -> String {
        "tmp".into()
    }
    pub fn lifecycle_days() -> u32 {
        10
    }
    pub fn streamer_port_range() -> (u16, u16) {
        (5665, 5675)
    }
    pub fn streamer_wait_timeout() -> u64 {
        86400
    }
    pub fn streamer_inbound_limit() -> u64 {
        5 * 1024 * 1024 * 1024
    }
}
