//! The `telemetry.tracing` section: OpenTelemetry traces exported over OTLP (docs/tracing.md). Off
//! unless `enabled`; the log output (`logger`) does not depend on it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Secret;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TracingConfig {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub protocol: OtlpProtocol,
    /// The collector's base address; `/v1/traces` is appended for `http`. Without one, the
    /// protocol's usual local port: `http://127.0.0.1:4318` (http) or `:4317` (grpc).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub sampler: SamplerKind,
    /// The share of traces kept with `sampler: ratio`, from 0 to 1.
    #[serde(default = "default_ratio")]
    pub ratio: f64,
    /// Follow the caller's decision when a request carries a `traceparent`, and sample only
    /// traces that start here.
    #[serde(default = "default_parent_based")]
    pub parent_based: bool,
    /// `service.name` of the exported spans.
    #[serde(default = "default_service_name")]
    pub service_name: String,
    /// Sent with every export, e.g. a collector's `Authorization`; values may be
    /// `secret_file:`/`secret_env:` references.
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
}

impl Default for TracingConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            protocol: OtlpProtocol::default(),
            endpoint: None,
            sampler: SamplerKind::default(),
            ratio: default_ratio(),
            parent_based: default_parent_based(),
            service_name: default_service_name(),
            headers: BTreeMap::new(),
        }
    }
}

impl TracingConfig {
    /// The collector's base address, the protocol's default if none is configured.
    pub fn endpoint(&self) -> &str {
        match (&self.endpoint, self.protocol) {
            (Some(endpoint), _) => endpoint,
            (None, OtlpProtocol::Http) => "http://127.0.0.1:4318",
            (None, OtlpProtocol::Grpc) => "http://127.0.0.1:4317",
        }
    }

    /// What is wrong with this section, each naming its field under `at`.
    pub fn problems(&self, at: &str) -> Vec<crate::Problem> {
        let mut problems = Vec::new();
        let mut push = |field: &str, message: String| {
            problems.push(crate::Problem {
                field: format!("{at}.{field}"),
                message,
            });
        };
        let endpoint = self.endpoint();
        let host = endpoint
            .strip_prefix("http://")
            .or_else(|| endpoint.strip_prefix("https://"));
        if host.is_none_or(|host| host.is_empty() || host.starts_with('/')) {
            push(
                "endpoint",
                format!("{endpoint:?} is not an http:// or https:// address"),
            );
        }
        if !(0.0..=1.0).contains(&self.ratio) {
            push("ratio", format!("{} is not between 0 and 1", self.ratio));
        }
        if self.service_name.trim().is_empty() {
            push("service_name", "must not be empty".into());
        }
        for name in self.headers.keys() {
            let is_token = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !is_token {
                push(
                    &format!("headers.{name}"),
                    "is not a valid header name".into(),
                );
            }
        }
        problems
    }
}

/// How spans reach the collector.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OtlpProtocol {
    /// OTLP/HTTP with protobuf bodies (`POST /v1/traces`).
    #[default]
    Http,
    /// OTLP/gRPC.
    Grpc,
}

/// Which traces are kept (for those that start here when `parent_based`).
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SamplerKind {
    #[default]
    AlwaysOn,
    AlwaysOff,
    /// A share of traces chosen by trace id (`ratio`), so every service sampling by the
    /// same ratio keeps the same traces.
    Ratio,
}

fn default_ratio() -> f64 {
    1.0
}

fn default_parent_based() -> bool {
    true
}

fn default_service_name() -> String {
    "ironcrest".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> TracingConfig {
        serde_yaml_ng::from_str(yaml).unwrap_or_else(|err| panic!("{err}"))
    }

    #[test]
    fn an_absent_section_is_off_with_the_sdk_defaults() {
        let config = parse("{}");
        assert!(!config.enabled);
        assert_eq!(config.protocol, OtlpProtocol::Http);
        assert_eq!(config.endpoint(), "http://127.0.0.1:4318");
        assert_eq!(config.sampler, SamplerKind::AlwaysOn);
        assert!(config.parent_based);
        assert_eq!(config.service_name, "ironcrest");
        assert!(config.problems("tracing").is_empty());
    }

    #[test]
    fn every_field_is_read() {
        let token = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(token.path(), "Bearer t0ken\n").unwrap();
        let config = parse(&format!(
            r#"
enabled: true
protocol: grpc
endpoint: https://collector.example:4317
sampler: ratio
ratio: 0.25
parent_based: false
service_name: ironcrest-eiger
headers: {{authorization: "secret_file:{}", x-tenant: hpc}}
"#,
            token.path().display()
        ));
        assert!(config.enabled);
        assert_eq!(config.protocol, OtlpProtocol::Grpc);
        assert_eq!(config.endpoint(), "https://collector.example:4317");
        assert_eq!(config.sampler, SamplerKind::Ratio);
        assert_eq!(config.ratio, 0.25);
        assert!(!config.parent_based);
        assert_eq!(config.service_name, "ironcrest-eiger");
        assert_eq!(config.headers["authorization"].expose(), "Bearer t0ken");
        assert_eq!(config.headers["x-tenant"].expose(), "hpc");
        assert!(!format!("{config:?}").contains("t0ken"));
        assert!(config.problems("tracing").is_empty());
    }

    #[test]
    fn grpc_defaults_to_its_own_port() {
        assert_eq!(parse("protocol: grpc").endpoint(), "http://127.0.0.1:4317");
    }

    #[test]
    fn unknown_values_are_refused() {
        for yaml in ["sampler: sometimes", "protocol: thrift", "exporter: jaeger"] {
            assert!(
                serde_yaml_ng::from_str::<TracingConfig>(yaml).is_err(),
                "{yaml}"
            );
        }
    }

    #[test]
    fn problems_name_their_fields() {
        let config = parse(
            r#"
endpoint: collector:4318
ratio: 1.5
service_name: " "
headers: {"bad header": x}
"#,
        );
        let fields: Vec<String> = config
            .problems("tracing")
            .into_iter()
            .map(|problem| problem.field)
            .collect();
        assert_eq!(
            fields,
            [
                "tracing.endpoint",
                "tracing.ratio",
                "tracing.service_name",
                "tracing.headers.bad header"
            ]
        );
    }
}
