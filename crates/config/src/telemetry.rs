//! The `telemetry` section: what Ironcrest tells operators about itself — Prometheus
//! metrics (docs/metrics.md) and OpenTelemetry traces (docs/tracing.md). Metrics are on by default, served at `/metrics` on the main
//! listener unless `listen` names a separate address (so they need not be public).

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// OpenTelemetry traces over OTLP (docs/tracing.md); off by default.
    #[serde(default)]
    pub tracing: crate::TracingConfig,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Whether metrics are recorded and served at all.
    #[serde(default = "enabled")]
    pub enabled: bool,
    /// A separate address for `GET /metrics`; `None` serves it on the main listener
    /// (without authentication, like the liveness route).
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// Whether series may carry a `user` label. Off by default: each user would add series
    /// to every scrape, without bound.
    #[serde(default)]
    pub per_user_series: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: enabled(),
            listen: None,
            per_user_series: false,
        }
    }
}

fn enabled() -> bool {
    true
}
