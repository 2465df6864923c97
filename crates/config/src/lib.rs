//! Ironcrest's configuration: a YAML file modelled on FirecREST v2's (`docs/configuration.md`
//! describes every field). [`Config::load`] reads, resolves secrets, normalises and validates;
//! [`Config::problems`] lists every semantic problem at once, each naming its field.

mod audit;
mod certificate;
mod gateway;
mod idempotency;
mod job_events;
mod model;
mod secret;
mod telemetry;
mod tracing_config;
mod ui;
mod v1;

use std::fmt;
use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;

pub use audit::AuditConfig;
pub use certificate::CertificateRestrictions;
pub use gateway::*;
pub use idempotency::IdempotencyConfig;
pub use job_events::JobEventsConfig;
pub use model::*;
pub use secret::Secret;
pub use telemetry::*;
pub use tracing_config::*;
pub use ui::UiConfig;
pub use v1::V1Config;

/// One thing wrong with a configuration, named by its dotted field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub field: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Syntax(Problem),
    #[error("{} problem(s):\n{}", .0.len(), .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Problem>),
}

impl ConfigError {
    pub fn problems(&self) -> Vec<Problem> {
        match self {
            ConfigError::Read { path, source } => vec![Problem {
                field: "(file)".into(),
                message: format!("cannot read {path}: {source}"),
            }],
            ConfigError::Syntax(problem) => vec![problem.clone()],
            ConfigError::Invalid(problems) => problems.clone(),
        }
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_yaml(&text)
    }

    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        let deserializer = serde_yaml_ng::Deserializer::from_str(text);
        let mut config: Config = serde_path_to_error::deserialize(deserializer).map_err(|err| {
            let field = err.path().to_string();
            ConfigError::Syntax(Problem {
                field: if field == "." { "(root)".into() } else { field },
                message: err.into_inner().to_string(),
            })
        })?;
        config.normalise();
        let problems = config.problems();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// Cluster names are case-insensitive and file-system paths are compared normalised.
    fn normalise(&mut self) {
        for cluster in &mut self.clusters {
            cluster.name = cluster.name.to_lowercase();
            for fs in &mut cluster.file_systems {
                fs.path = normalise_path(&fs.path);
            }
        }
    }

    pub fn cluster(&self, name: &str) -> Option<&ClusterConfig> {
        let name = name.to_lowercase();
        self.clusters.iter().find(|c| c.name == name)
    }

    /// Every semantic problem in the configuration, not just the first.
    pub fn problems(&self) -> Vec<Problem> {
        let mut problems = Problems::default();
        self.check_server(&mut problems);
        self.check_auth(&mut problems);
        check_gateway(&self.gateway, &mut problems);
        problems
            .0
            .extend(self.telemetry.tracing.problems("telemetry.tracing"));
        self.check_credentials(&mut problems);
        problems.0.extend(self.job_events.problems());
        let discovery = self.auth.authentication.oidc_discovery_url.as_deref();
        for (field, message) in self.ui.problems(discovery) {
            problems.push(format!("ui.{field}"), message);
        }
        for (field, message) in self.v1.problems() {
            problems.push(format!("v1.{field}"), message);
        }
        if self.clusters.is_empty() {
            problems.push("clusters", "at least one cluster is required");
        }
        for (idx, cluster) in self.clusters.iter().enumerate() {
            let at = format!("clusters[{idx}]");
            if self.clusters[..idx].iter().any(|c| c.name == cluster.name) {
                problems.push(
                    format!("{at}.name"),
                    format!("duplicate cluster name '{}'", cluster.name),
                );
            }
            check_cluster(&at, cluster, &mut problems);
        }
        problems.0
    }

    fn check_server(&self, problems: &mut Problems) {
        if self.telemetry.metrics.listen == Some(self.server.listen) {
            problems.push(
                "telemetry.metrics.listen",
                "must differ from server.listen (leave it out to serve /metrics there)",
            );
        }
        let limits = &self.server.connections;
        if limits.header_timeout == 0 {
            problems.push(
                "server.connections.header_timeout",
                "must be at least 1 second",
            );
        }
        for (idx, proxy) in limits.trusted_proxies.iter().enumerate() {
            if proxy.parse::<IpNet>().is_err() && proxy.parse::<IpAddr>().is_err() {
                problems.push(
                    format!("server.connections.trusted_proxies[{idx}]"),
                    format!("{proxy:?} is not an IP address or CIDR block"),
                );
            }
        }
    }

    fn check_auth(&self, problems: &mut Problems) {
        let authn = &self.auth.authentication;
        let at = "auth.authentication";
        check_url(&format!("{at}.token_url"), &authn.token_url, problems);
        if authn.public_certs.is_empty() && authn.oidc_discovery_url.is_none() {
            problems.push(
                format!("{at}.public_certs"),
                "give at least one JWKS location (public_certs) or oidc_discovery_url",
            );
        }
        for (idx, location) in authn.public_certs.iter().enumerate() {
            let field = format!("{at}.public_certs[{idx}]");
            if let Some(path) = location.strip_prefix("file://") {
                if !Path::new(path).is_file() {
                    problems.push(field, format!("JWKS file {path} does not exist"));
                }
            } else {
                check_url(&field, location, problems);
            }
        }
        if let Some(url) = &authn.oidc_discovery_url {
            check_url(&format!("{at}.oidc_discovery_url"), url, problems);
        }
        if authn.username_claim.is_empty() {
            problems.push(format!("{at}.username_claim"), "must not be empty");
        }
        if let Some(alg) = &authn.jwk_algorithm
            && !matches!(
                alg.as_str(),
                "RS256"
                    | "RS384"
                    | "RS512"
                    | "PS256"
                    | "PS384"
                    | "PS512"
                    | "ES256"
                    | "ES384"
                    | "EdDSA"
            )
        {
            problems.push(
                format!("{at}.jwk_algorithm"),
                format!("unsupported algorithm '{alg}' (asymmetric algorithms only)"),
            );
        }
        if authn.jwks_refresh_interval == 0 {
            problems.push(
                format!("{at}.jwks_refresh_interval"),
                "must be greater than 0",
            );
        }
        if let Some(authz) = &self.auth.authorization {
            let at = "auth.authorization";
            check_url(&format!("{at}.url"), &authz.url, problems);
            if authz.timeout == 0 {
                problems.push(format!("{at}.timeout"), "must be greater than 0");
            }
            if !(authz.cache_ttl >= 0.0 && authz.cache_ttl.is_finite()) {
                problems.push(format!("{at}.cache_ttl"), "must be a number of seconds");
            }
            if authz.cache_size == 0 {
                problems.push(format!("{at}.cache_size"), "must be greater than 0");
            }
            let word = |value: &str| {
                !value.is_empty()
                    && value
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b))
            };
            for (name, value) in [
                ("relation", Some(&authz.relation)),
                ("object_type", Some(&authz.object_type)),
                ("store_id", authz.store_id.as_ref()),
                (
                    "authorization_model_id",
                    authz.authorization_model_id.as_ref(),
                ),
            ] {
                if let Some(value) = value
                    && !word(value)
                {
                    problems.push(
                        format!("{at}.{name}"),
                        format!("'{value}' is not a name (letters, digits, _ and -)"),
                    );
                }
            }
            if authz.authorization_model_id.is_some() && authz.store_id.is_none() {
                problems.push(
                    format!("{at}.authorization_model_id"),
                    "needs store_id (OpenFGA's API)",
                );
            }
        }
    }

    fn check_credentials(&self, problems: &mut Problems) {
        match &self.ssh_credentials {
            SshCredentialsConfig::CertificateAuthority {
                ca_private_key,
                certificate_lifetime,
                restrictions,
            } => {
                for (field, message) in restrictions.problems() {
                    problems.push(format!("ssh_credentials.restrictions.{field}"), message);
                }
                if ca_private_key.is_empty() {
                    problems.push("ssh_credentials.ca_private_key", "must not be empty");
                }
                if *certificate_lifetime < 60 {
                    problems.push(
                        "ssh_credentials.certificate_lifetime",
                        "must be at least 60 seconds, so a certificate outlives the login it is made for",
                    );
                }
            }
            SshCredentialsConfig::StaticKeys { keys } => {
                if keys.is_empty() {
                    problems.push("ssh_credentials.keys", "at least one user key is required");
                }
            }
            SshCredentialsConfig::KeyService { url, .. } => {
                check_url("ssh_credentials.url", url, problems);
            }
        }
    }
}

fn check_cluster(at: &str, cluster: &ClusterConfig, problems: &mut Problems) {
    if cluster.name.is_empty()
        || !cluster
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    {
        problems.push(
            format!("{at}.name"),
            "must be non-empty and use only letters, digits, '-', '_' and '.'",
        );
    }
    let ssh = &cluster.ssh;
    if ssh.host.is_empty() {
        problems.push(format!("{at}.ssh.host"), "must not be empty");
    }
    if ssh.port == 0 {
        problems.push(format!("{at}.ssh.port"), "must be between 1 and 65535");
    }
    match &ssh.known_hosts {
        None => problems.push(
            format!("{at}.ssh.known_hosts"),
            "required: the cluster's host key is always verified",
        ),
        Some(path) if !path.is_file() => problems.push(
            format!("{at}.ssh.known_hosts"),
            format!("file {} does not exist", path.display()),
        ),
        Some(_) => {}
    }
    if ssh.proxy_host.is_some() {
        problems.push(
            format!("{at}.ssh.proxy_host"),
            "SSH proxies are not supported yet",
        );
    }
    let max_age = cluster.scheduler.jobs_cache_max_age;
    if !(max_age.is_finite() && (0.0..=60.0).contains(&max_age)) {
        problems.push(
            format!("{at}.scheduler.jobs_cache_max_age"),
            "must be between 0 and 60 seconds",
        );
    }
    let max_age = cluster.scheduler.userinfo_cache_max_age;
    if !(max_age.is_finite() && (0.0..=3600.0).contains(&max_age)) {
        problems.push(
            format!("{at}.scheduler.userinfo_cache_max_age"),
            "must be between 0 and 3600 seconds",
        );
    }
    if ssh.max_clients == 0 {
        problems.push(format!("{at}.ssh.max_clients"), "must be greater than 0");
    }
    if ssh.max_sessions_per_connection == 0 {
        problems.push(
            format!("{at}.ssh.max_sessions_per_connection"),
            "must be greater than 0",
        );
    }
    if ssh.max_sftp_sessions_per_user == 0 {
        problems.push(
            format!("{at}.ssh.max_sftp_sessions_per_user"),
            "must be greater than 0",
        );
    }
    let timeouts = &ssh.timeout;
    for (name, value) in [
        ("connection", timeouts.connection),
        ("login", timeouts.login),
        ("command_execution", timeouts.command_execution),
        ("idle_timeout", timeouts.idle_timeout),
        ("keep_alive", timeouts.keep_alive),
    ] {
        if value == 0 {
            problems.push(format!("{at}.ssh.timeout.{name}"), "must be greater than 0");
        }
    }
    if timeouts.idle_timeout <= timeouts.command_execution {
        problems.push(
            format!("{at}.ssh.timeout.idle_timeout"),
            "must be greater than command_execution",
        );
    }

    let scheduler = &cluster.scheduler;
    if scheduler.version.is_empty() {
        problems.push(format!("{at}.scheduler.version"), "must not be empty");
    }
    match (scheduler.kind, scheduler.connection_mode) {
        (SchedulerType::Pbs, ConnectionMode::Rest | ConnectionMode::Hybrid) => problems.push(
            format!("{at}.scheduler.connection_mode"),
            "PBS is only supported over ssh",
        ),
        (SchedulerType::Slurm, ConnectionMode::Rest | ConnectionMode::Hybrid) => {
            match &scheduler.api_url {
                None => problems.push(
                    format!("{at}.scheduler.api_url"),
                    "required when connection_mode is rest or hybrid",
                ),
                Some(url) => check_url(&format!("{at}.scheduler.api_url"), url, problems),
            }
            if scheduler.api_version.is_none() {
                problems.push(
                    format!("{at}.scheduler.api_version"),
                    "required when connection_mode is rest or hybrid",
                );
            }
        }
        _ => {}
    }

    if cluster.service_account.client_id.is_empty() {
        problems.push(
            format!("{at}.service_account.client_id"),
            "must not be empty",
        );
    }
    if cluster.probing.interval == 0 {
        problems.push(format!("{at}.probing.interval"), "must be greater than 0");
    }
    for (service, settings) in &cluster.probing.services {
        if settings.timeout == 0 {
            problems.push(
                format!("{at}.probing.services.{service:?}.timeout").to_lowercase(),
                "must be greater than 0",
            );
        }
    }
    if cluster.probing.services.contains_key(&ProbedService::S3)
        && !matches!(
            cluster.data_operation.data_transfer,
            Some(DataTransferConfig::S3(_))
        )
    {
        problems.push(
            format!("{at}.probing.services.s3"),
            "probing s3 needs data_operation.data_transfer with service_type: s3",
        );
    }

    for (idx, fs) in cluster.file_systems.iter().enumerate() {
        if !fs.path.starts_with('/') {
            problems.push(
                format!("{at}.file_systems[{idx}].path"),
                format!("'{}' is not an absolute path", fs.path),
            );
        }
    }
    if cluster
        .file_systems
        .iter()
        .filter(|fs| fs.default_work_dir)
        .count()
        > 1
    {
        problems.push(
            format!("{at}.file_systems"),
            "at most one file system may have default_work_dir: true",
        );
    }

    let data = &cluster.data_operation;
    if data.max_ops_file_size == 0 {
        problems.push(
            format!("{at}.data_operation.max_ops_file_size"),
            "must be greater than 0",
        );
    }
    if let Some(DataTransferConfig::S3(s3)) = &data.data_transfer {
        let s3_at = format!("{at}.data_operation.data_transfer");
        check_url(
            &format!("{s3_at}.private_url"),
            s3.private_url.expose(),
            problems,
        );
        check_url(&format!("{s3_at}.public_url"), &s3.public_url, problems);
        // SigV4 presigned URLs are valid for at most seven days.
        if s3.ttl == 0 || s3.ttl > 604_800 {
            problems.push(
                format!("{s3_at}.ttl"),
                "must be between 1 and 604800 seconds (seven days, the SigV4 limit)",
            );
        }
        if s3.multipart.parallel_runs == 0 {
            problems.push(
                format!("{s3_at}.multipart.parallel_runs"),
                "must be greater than 0",
            );
        }
        if s3.multipart.max_part_size < 5 * 1024 * 1024 {
            problems.push(
                format!("{s3_at}.multipart.max_part_size"),
                "must be at least 5 MiB (the S3 minimum part size)",
            );
        }
    }
}

/// The `gateway` section alone, as a reload checks it too.
pub fn gateway_problems(gateway: &GatewayConfig) -> Vec<Problem> {
    let mut problems = Problems::default();
    check_gateway(gateway, &mut problems);
    problems.0
}

fn check_gateway(gateway: &GatewayConfig, problems: &mut Problems) {
    let family = |field: String, name: &str, problems: &mut Problems| {
        if !ROUTE_FAMILIES.contains(&name) {
            problems.push(
                field,
                format!(
                    "unknown route family '{name}' (one of {})",
                    ROUTE_FAMILIES.join(", ")
                ),
            );
        }
    };
    for name in gateway.scopes.keys() {
        family(format!("gateway.scopes.{name}"), name, problems);
    }
    if let Some(keys) = &gateway.api_keys
        && keys.secret.expose().len() < 32
    {
        problems.push(
            "gateway.api_keys.secret",
            "must be at least 32 characters (e.g. `openssl rand -hex 32`)",
        );
    }
    if let Some(policy) = &gateway.policy
        && policy.files.is_empty()
    {
        problems.push("gateway.policy.files", "at least one Rego file is required");
    }
    for (i, rate) in gateway.limits.rates.iter().enumerate() {
        let at = format!("gateway.limits.rates[{i}]");
        for name in &rate.families {
            family(format!("{at}.families"), name, problems);
        }
        if rate.requests == 0 {
            problems.push(format!("{at}.requests"), "must be greater than 0");
        }
        if !(rate.period > 0.0 && rate.period.is_finite()) {
            problems.push(
                format!("{at}.period"),
                "must be a positive number of seconds",
            );
        }
        if rate.burst == Some(0) {
            problems.push(format!("{at}.burst"), "must be greater than 0");
        }
    }
    if let Some(concurrency) = &gateway.limits.concurrency {
        if concurrency.per_user == 0 {
            problems.push(
                "gateway.limits.concurrency.per_user",
                "must be greater than 0",
            );
        }
        if !(concurrency.queue_timeout >= 0.0 && concurrency.queue_timeout.is_finite()) {
            problems.push(
                "gateway.limits.concurrency.queue_timeout",
                "must be a number of seconds",
            );
        }
    }
    let overload = &gateway.limits.overload;
    if !(overload.queue_timeout >= 0.0 && overload.queue_timeout.is_finite()) {
        problems.push(
            "gateway.limits.overload.queue_timeout",
            "must be a number of seconds",
        );
    }
    if overload.retry_after == 0 {
        problems.push(
            "gateway.limits.overload.retry_after",
            "must be at least 1 second (clients told 0 retry at once)",
        );
    }
    if !matches!(overload.status, 429 | 503) {
        problems.push("gateway.limits.overload.status", "must be 503 or 429");
    }
    let windows = gateway
        .maintenance
        .global
        .iter()
        .map(|w| ("gateway.maintenance.global".to_string(), w))
        .chain(
            gateway
                .maintenance
                .systems
                .iter()
                .map(|(name, w)| (format!("gateway.maintenance.systems.{name}"), w)),
        );
    for (at, window) in windows {
        if let Some(until) = &window.until
            && chrono::DateTime::parse_from_rfc3339(until).is_err()
        {
            problems.push(
                format!("{at}.until"),
                format!("'{until}' is not an RFC 3339 time"),
            );
        }
    }
    for (i, rule) in gateway.terminate.iter().enumerate() {
        let at = format!("gateway.terminate[{i}]");
        if !(400..=599).contains(&rule.status) {
            problems.push(
                format!("{at}.status"),
                "must be an HTTP error status (400-599)",
            );
        }
        if !rule.path.starts_with('/') {
            problems.push(format!("{at}.path"), "must start with /");
        }
    }
    let filter = &gateway.ip_filter;
    let blocks = filter
        .allow
        .iter()
        .map(|b| ("gateway.ip_filter.allow".to_string(), b))
        .chain(
            filter
                .deny
                .iter()
                .map(|b| ("gateway.ip_filter.deny".to_string(), b)),
        )
        .chain(filter.clients.iter().flat_map(|(client, blocks)| {
            blocks
                .iter()
                .map(move |b| (format!("gateway.ip_filter.clients.{client}"), b))
        }));
    for (at, block) in blocks {
        if parse_network(block).is_none() {
            problems.push(at, format!("'{block}' is not an address or CIDR block"));
        }
    }
}

/// An address (a one-host network) or a CIDR block.
pub fn parse_network(text: &str) -> Option<IpNet> {
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
}

fn check_url(field: &str, url: &str, problems: &mut Problems) {
    if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() <= "https://".len()
    {
        problems.push(field, format!("'{url}' is not an http(s) URL"));
    }
}

/// Lexical normalisation as Python's `os.path.normpath`: collapses `//`, `.` and `..`.
pub fn normalise_path(path: &str) -> String {
    let absolute = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|last| *last != "..") {
                    parts.pop();
                } else if !absolute {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (absolute, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            field: field.into(),
            message: message.into(),
        });
    }
}

#[cfg(test)]
mod tests;
