//! Metrics in the binary: the process's Prometheus recorder (every crate records through
//! the `metrics` facade), the page it renders with the SSH pools sampled at scrape time,
//! and the separate metrics listener (`telemetry.metrics.listen`). See docs/metrics.md.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use anyhow::Context;
use ironcrest_api::metrics::RenderMetrics;
use ironcrest_services::Clusters;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Buckets of every `*_seconds` histogram: from a cached answer (~1 ms) through SSH
/// commands (tens of ms to seconds) to the longest command timeouts.
const SECONDS_BUCKETS: [f64; 15] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// The process's recorder, installed on first use: the `metrics` facade has one global
/// recorder, and tests start many servers in one process.
fn recorder() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS_BUCKETS)
            .expect("the buckets are not empty")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder is installed; /metrics stays empty");
        }
        metrics::gauge!(
            "ironcrest_build_info",
            "version" => ironcrest_api::IRONCREST_VERSION,
            "api_version" => ironcrest_api::APP_VERSION,
        )
        .set(1.0);
        handle
    })
}

/// The metrics page: the pools' state sampled now, then everything recorded, rendered.
pub fn page(clusters: Clusters) -> RenderMetrics {
    let handle = recorder();
    Arc::new(move || {
        for cluster in clusters.iter() {
            sample_pool(cluster.name(), &cluster.ssh);
        }
        // Without the exporter's own HTTP server nobody else drains the histograms.
        handle.run_upkeep();
        handle.render()
    })
}

/// `PoolStats` of one cluster's SSH pool as gauges (and its lifetime totals as counters).
fn sample_pool(cluster: &str, pool: &ironcrest_ssh::SshPool) {
    let stats = pool.stats();
    let label = || [("cluster", cluster.to_string())];
    let gauges = [
        ("ironcrest_ssh_connections", stats.connections),
        ("ironcrest_ssh_connections_opening", stats.connecting),
        ("ironcrest_ssh_max_connections", pool.settings().max_clients),
        ("ironcrest_ssh_channels_in_use", stats.channels),
        ("ironcrest_ssh_free_channel_slots", stats.free_channel_slots),
        ("ironcrest_ssh_sftp_sessions", stats.sftp_sessions),
    ];
    for (name, value) in gauges {
        metrics::gauge!(name, &label()).set(value as f64);
    }
    metrics::counter!("ironcrest_ssh_exec_channels_opened_total", &label())
        .absolute(stats.exec_channels_total);
    metrics::counter!("ironcrest_ssh_sftp_sessions_opened_total", &label())
        .absolute(stats.sftp_opened_total);
}

/// Serves only `GET /metrics` on `address` until `shutdown`.
pub async fn serve_separately(
    address: SocketAddr,
    page: RenderMetrics,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address} (telemetry.metrics.listen)"))?;
    tracing::info!(listen = %address, "metrics serving");
    tokio::spawn(async move {
        let app = ironcrest_api::metrics::router(page);
        if let Err(err) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
        {
            tracing::error!(error = %err, "the metrics listener failed");
        }
    });
    Ok(())
}
