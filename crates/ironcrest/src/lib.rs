//! Ironcrest's wiring: configuration → backends (SSH pools, schedulers, token verifier) →
//! services → HTTP. [`serve`] takes an already-bound listener and a shutdown token, so
//! tests run the real server in-process on `127.0.0.1:0`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use ironcrest_api::idempotency::Idempotency;
use ironcrest_api::ui::Ui;
use ironcrest_api::{AppState, AuditLog};
use ironcrest_auth::{ClientCredentials, TokenVerifier};
use ironcrest_config::{
    Config, ConnectionMode, DataTransferConfig, LogFormat, LoggerConfig, Problem, SchedulerConfig,
    SchedulerType, TracingConfig,
};
use ironcrest_gateway::{Gateway, OpenFga};
use ironcrest_scheduler::Scheduler;
use ironcrest_scheduler::pbs::PbsCli;
use ironcrest_scheduler::slurm::SlurmCli;
use ironcrest_scheduler::slurmrest::{ApiVersion, SlurmRest};
use ironcrest_services::events::{self, JobEvents};
use ironcrest_services::health::HealthChecker;
use ironcrest_services::service_account::ServiceAccount;
use ironcrest_services::{Cluster, Clusters};
use ironcrest_ssh::{PoolSettings, SshPool};
use tokio::net::TcpListener;

mod listener;
mod telemetry;
pub mod traces;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Installs the log (`logger`, filtered by `RUST_LOG` if set) and, when `telemetry.tracing.enabled`,
/// the export of traces, each with its own filter. Returns the tracer provider, to shut
/// down when the server stops so the last spans are sent. With gRPC export, call it
/// inside a Tokio runtime.
pub fn init_logging(
    logger: &LoggerConfig,
    tracing: &TracingConfig,
) -> anyhow::Result<Option<SdkTracerProvider>> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&logger.level));
    let log = match logger.format {
        LogFormat::Json => tracing_subscriber::fmt::layer().json().boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer().boxed(),
    };
    let provider = tracing
        .enabled
        .then(|| traces::provider(tracing))
        .transpose()?;
    tracing_subscriber::registry()
        .with(log.with_filter(filter))
        .with(provider.as_ref().map(traces::layer))
        .try_init()
        .context("cannot install the log")?;
    Ok(provider)
}

/// Features the configuration can name that this build does not serve yet.
pub fn unsupported_features(config: &Config) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (idx, cluster) in config.clusters.iter().enumerate() {
        if cluster.scheduler.kind == SchedulerType::Slurm
            && cluster.scheduler.connection_mode != ConnectionMode::Ssh
            && api_version(&cluster.scheduler).is_none()
        {
            problems.push(Problem {
                field: format!("clusters[{idx}].scheduler.api_version"),
                message: "supported slurmrestd API versions are 0.0.38 to 0.0.42".into(),
            });
        }
        // A cluster set up for a method Ironcrest cannot serve would answer every staged
        // transfer with 400; refuse it at start instead.
        if matches!(
            cluster.data_operation.data_transfer,
            Some(DataTransferConfig::Streamer(_) | DataTransferConfig::Wormhole { .. })
        ) {
            problems.push(Problem {
                field: format!("clusters[{idx}].data_operation.data_transfer.service_type"),
                message: "only service_type: s3 is available (streamer and wormhole are not)"
                    .into(),
            });
        }
    }
    problems
}

fn api_version(scheduler: &SchedulerConfig) -> Option<ApiVersion> {
    scheduler.api_version.as_deref().and_then(ApiVersion::parse)
}

/// The cluster's scheduler backend: PBS over SSH, the Slurm CLI over SSH, or slurmrestd
/// (with the CLI beside it for what REST cannot do in `hybrid` mode). PBS in rest or hybrid
/// mode is refused by configuration validation.
fn scheduler(
    config: &SchedulerConfig,
    pool: &SshPool,
    http: &reqwest::Client,
) -> anyhow::Result<Arc<dyn Scheduler>> {
    if config.kind == SchedulerType::Pbs {
        return Ok(Arc::new(PbsCli::new(pool.clone())));
    }
    let cli = SlurmCli::new(pool.clone());
    let (api_url, version) = match config.connection_mode {
        ConnectionMode::Ssh => return Ok(Arc::new(cli)),
        ConnectionMode::Rest | ConnectionMode::Hybrid => (
            config
                .api_url
                .as_deref()
                .context("scheduler.api_url is required for rest and hybrid")?,
            api_version(config).context("unsupported scheduler.api_version")?,
        ),
    };
    let cli = (config.connection_mode == ConnectionMode::Hybrid).then_some(cli);
    Ok(Arc::new(SlurmRest::new(
        http.clone(),
        api_url,
        version,
        Duration::from_secs(config.timeout),
        cli,
    )))
}

/// Runs the server until SIGTERM or Ctrl-C; SIGHUP reloads the gateway's rules from `path`.
pub async fn run(config: Config, path: PathBuf) -> anyhow::Result<()> {
    // Watched before the port is bound: a SIGTERM as soon as connections are accepted
    // stops the server gracefully instead of killing it.
    let stop_signal = stop_signal()?;
    let listener = TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    let shutdown = CancellationToken::new();
    let signal_token = shutdown.clone();
    tokio::spawn(async move {
        stop_signal.await;
        tracing::info!("shutdown requested");
        signal_token.cancel();
    });
    serve(listener, config, Some(path), shutdown).await
}

/// On every SIGHUP, reopens the audit log and reads `path` again to apply its `gateway`
/// section (the rest of the configuration needs a restart). A file with problems changes
/// nothing; each problem is logged.
async fn reload_on_hangup(
    gateway: Arc<Gateway>,
    audit: Option<Arc<AuditLog>>,
    path: PathBuf,
    shutdown: CancellationToken,
) {
    let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    else {
        tracing::warn!("cannot watch SIGHUP; the gateway's rules reload only on restart");
        return;
    };
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            received = hangups.recv() => if received.is_none() { return },
        }
        if let Some(audit) = &audit {
            audit.reopen();
        }
        match gateway.reload_file(&path) {
            Ok(()) => tracing::info!(config = %path.display(), "gateway rules reloaded"),
            Err(problems) => {
                for problem in &problems {
                    tracing::error!(config = %path.display(), %problem, "reload refused; the previous rules stay");
                }
            }
        }
    }
}

/// On every SIGUSR1, reopens the audit log (logrotate's `postrotate`), nothing else.
async fn reopen_on_usr1(audit: Arc<AuditLog>, shutdown: CancellationToken) {
    let Ok(mut signals) =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())
    else {
        tracing::warn!("cannot watch SIGUSR1; the audit log reopens on SIGHUP only");
        return;
    };
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            received = signals.recv() => if received.is_none() { return },
        }
        audit.reopen();
        tracing::info!("audit log reopened");
    }
}

/// SIGTERM or SIGINT (Ctrl-C), each watched from the moment this returns.
#[cfg(unix)]
fn stop_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = interrupt.recv() => {}
        }
    })
}

#[cfg(not(unix))]
fn stop_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

/// Builds every backend from `config` and serves on `listener` until `shutdown` is
/// cancelled; in-flight requests then get `server.shutdown_grace_period` seconds, and the
/// SSH pools close after them.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    config_path: Option<PathBuf>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let problems = unsupported_features(&config);
    if let Some(problem) = problems.first() {
        anyhow::bail!("{problem}");
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .context("cannot build the HTTP client")?;
    let authn = &config.auth.authentication;
    let verifier = TokenVerifier::new(authn, http.clone())
        .await
        .context("cannot set up token verification")?;
    tokio::spawn(
        verifier
            .clone()
            .refresh_periodically(shutdown.clone().cancelled_owned()),
    );
    let credentials = ironcrest_ssh::provider_from_config(&config.ssh_credentials, http.clone())
        .context("invalid ssh_credentials")?;

    let mut gateway = Gateway::new(&config.gateway)
        .map_err(|problems| anyhow::anyhow!("invalid gateway configuration: {}", problems[0]))?;
    if let Some(authorization) = &config.auth.authorization {
        let openfga = OpenFga::new(authorization)
            .context("cannot build the HTTP client of auth.authorization")?;
        gateway = gateway.with_openfga(openfga);
    }
    let gateway = Arc::new(gateway);
    let audit = AuditLog::open(&config.audit).with_context(|| {
        let path = config.audit.path.as_deref().unwrap_or("stdout".as_ref());
        format!("cannot open the audit log {}", path.display())
    })?;

    // The SSH pools outlive the HTTP server: in-flight requests keep their connections
    // through the grace period, and what cut-off requests clean up still reaches the cluster.
    let pools_stop = CancellationToken::new();
    let _stop_pools_on_error = pools_stop.clone().drop_guard();
    let mut pools_closed = Vec::new();
    let mut clusters = Vec::new();
    let mut service_accounts = Vec::new();
    for cluster_config in &config.clusters {
        let settings = PoolSettings::from_config(
            &cluster_config.name,
            &cluster_config.ssh,
            cluster_config.data_operation.max_ops_file_size,
        );
        let pool = SshPool::new(settings, credentials.clone());
        pools_closed.push(tokio::spawn(
            pool.clone().maintain(pools_stop.clone().cancelled_owned()),
        ));
        let scheduler = Arc::new(ironcrest_scheduler::Measured::new(
            &cluster_config.name,
            scheduler(&cluster_config.scheduler, &pool, &http)?,
        ));
        let work = gateway.clone();
        let service_account = Arc::new(ServiceAccount::new(
            ClientCredentials::new(
                authn.token_url.clone(),
                cluster_config.service_account.client_id.clone(),
                cluster_config.service_account.secret.clone(),
                authn.token_endpoint_auth_method,
                http.clone(),
            ),
            verifier.clone(),
        ));
        let events = JobEvents::new(
            &cluster_config.name,
            scheduler.clone(),
            service_account.clone(),
            events::Settings::from_config(&config.job_events),
        );
        service_accounts.push(service_account);
        clusters.push(
            Cluster::new(cluster_config.clone(), pool, scheduler)
                .with_work_limits(move || work.work_limits())
                .with_job_events(events),
        );
    }
    let clusters = Clusters::new(clusters);
    for (cluster, service_account) in clusters.iter().zip(service_accounts) {
        let checker = HealthChecker::new(cluster.clone(), service_account);
        tokio::spawn(checker.run(shutdown.clone().cancelled_owned()));
    }
    // Event streams never end by themselves: they end when the server stops, so the
    // graceful shutdown does not wait its whole grace period for them.
    let streaming = clusters.clone();
    let stopping = shutdown.clone();
    tokio::spawn(async move {
        stopping.cancelled().await;
        for cluster in streaming.iter() {
            if let Ok(events) = cluster.job_events() {
                events.close();
            }
        }
    });

    if let Some(path) = &config_path {
        tokio::spawn(reload_on_hangup(
            gateway.clone(),
            audit.clone(),
            path.clone(),
            shutdown.clone(),
        ));
    }
    if let Some(audit) = &audit {
        tokio::spawn(reopen_on_usr1(audit.clone(), shutdown.clone()));
    }
    let metrics = &config.telemetry.metrics;
    let page = metrics.enabled.then(|| telemetry::page(clusters.clone()));
    let page_here = match (&page, metrics.listen) {
        (Some(page), Some(address)) => {
            telemetry::serve_separately(address, page.clone(), shutdown.clone()).await?;
            None
        }
        (page, _) => page.clone(),
    };
    let app = ironcrest_api::router(AppState {
        metrics: page_here,
        per_user_series: metrics.per_user_series,
        clusters,
        verifier,
        gateway,
        trusted_proxies: config.server.connections.trusted_networks().into(),
        config_path: config_path.map(Arc::from),
        audit,
        trace_context: traces::trace_context(&config.telemetry.tracing),
        idempotency: Arc::new(Idempotency::new(Duration::from_secs(
            config.idempotency.window,
        ))),
        ui: config.ui.enabled.then(|| {
            let storage_urls: Vec<String> = config
                .clusters
                .iter()
                .filter_map(|c| c.data_operation.data_transfer.as_ref())
                .filter_map(|transfer| match transfer {
                    DataTransferConfig::S3(s3) => Some(s3.public_url.clone()),
                    _ => None,
                })
                .collect();
            Arc::new(Ui::new(
                &config.ui,
                authn.oidc_discovery_url.as_deref(),
                &storage_urls,
                http.clone(),
            ))
        }),
        v1: config.v1.clone(),
    });
    let address = listener.local_addr()?;
    let limits = listener::Limits::from_config(&config.server.connections);
    tracing::info!(
        listen = %address,
        max_connections = limits.max_connections,
        max_connections_per_address = limits.max_connections_per_address,
        "ironcrest serving"
    );
    let grace = Duration::from_secs(config.server.shutdown_grace_period);
    listener::serve(listener, app, limits, shutdown, grace).await;
    pools_stop.cancel();
    for closed in pools_closed {
        let _ = closed.await;
    }
    tracing::info!("ironcrest stopped");
    Ok(())
}
