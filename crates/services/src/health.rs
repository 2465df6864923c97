//! The health checker: per cluster, every `probing.interval` seconds, probe each configured
//! service as the cluster's service account and cache the results. The cache feeds
//! `/status/systems`, liveness and the 503 gating of requests ([`Cluster::require_healthy`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::future::join_all;
use ironcrest_config::ProbedService;
use ironcrest_remote::{Caller, CommandExamples, CommandLine, QuoteError};

use crate::Cluster;
use crate::service_account::{ActsAs, ServiceAccount};

#[derive(Debug, Clone)]
pub struct HealthReport {
    /// When the last successful run started; a failed run leaves it unchanged.
    pub last_health_check: Option<DateTime<Utc>>,
    pub checks: Vec<HealthCheck>,
}

#[derive(Debug, Clone)]
pub struct HealthCheck {
    /// `None` for the single entry a failed run leaves (`serviceType: exception`).
    pub service: Option<ProbedService>,
    pub last_checked: DateTime<Utc>,
    /// Seconds.
    pub latency: f64,
    pub healthy: bool,
    pub message: Option<String>,
    /// For file-system checks: the probed path.
    pub path: Option<String>,
}

pub struct HealthChecker {
    cluster: Arc<Cluster>,
    service_account: Arc<ServiceAccount>,
}

impl HealthChecker {
    pub fn new(cluster: Arc<Cluster>, service_account: Arc<ServiceAccount>) -> Self {
        Self {
            cluster,
            service_account,
        }
    }

    /// Checks now, then every interval, until `shutdown` resolves.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        let interval = Duration::from_secs(self.cluster.config.probing.interval);
        tokio::pin!(shutdown);
        loop {
            self.check_once().await;
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = &mut shutdown => return,
            }
        }
    }

    /// One run, one trace: its probes' commands and requests are in its span.
    #[tracing::instrument(name = "health.check", level = "debug", skip_all, fields(cluster = self.cluster.name()))]
    pub async fn check_once(&self) {
        let started = Utc::now();
        let report = match self.service_account.caller().await {
            Ok(user) => HealthReport {
                last_health_check: Some(started),
                checks: self.probe_all(&user).await,
            },
            Err(message) => {
                tracing::warn!(cluster = self.cluster.name(), error = %message, "health check run failed");
                HealthReport {
                    last_health_check: self.cluster.health().and_then(|r| r.last_health_check),
                    checks: vec![HealthCheck {
                        service: None,
                        last_checked: started,
                        latency: 0.0,
                        healthy: false,
                        message: Some(format!(
                            "Cluster HealthChecker execution failed with error: {message}"
                        )),
                        path: None,
                    }],
                }
            }
        };
        for check in report.checks.iter().filter(|c| !c.healthy) {
            tracing::warn!(
                cluster = self.cluster.name(),
                service = ?check.service,
                path = check.path.as_deref(),
                message = check.message.as_deref(),
                "service unhealthy"
            );
        }
        self.export(&report);
        self.cluster.record_health(report);
    }

    /// The run's results as `ironcrest_health_up` (1 healthy, 0 not) and
    /// `ironcrest_health_check_duration_seconds`, per service (and path for file systems).
    /// A run that could not probe at all (no service account token) is the service
    /// `health_checker`, down.
    fn export(&self, report: &HealthReport) {
        for check in &report.checks {
            let service = match check.service {
                None => "health_checker",
                Some(ProbedService::Scheduler) => "scheduler",
                Some(ProbedService::Ssh) => "ssh",
                Some(ProbedService::Filesystem) => "filesystem",
                Some(ProbedService::S3) => "s3",
            };
            let labels = [
                ("cluster", self.cluster.name().to_string()),
                ("service", service.to_string()),
                ("path", check.path.clone().unwrap_or_default()),
            ];
            metrics::gauge!("ironcrest_health_up", &labels).set(f64::from(u8::from(check.healthy)));
            if check.service.is_some() {
                metrics::histogram!("ironcrest_health_check_duration_seconds", &labels)
                    .record(check.latency);
            }
        }
        if report.checks.iter().any(|check| check.service.is_some()) {
            metrics::gauge!(
                "ironcrest_health_up",
                "cluster" => self.cluster.name().to_string(),
                "service" => "health_checker",
                "path" => "",
            )
            .set(1.0);
        }
    }

    async fn probe_all(&self, user: &Caller) -> Vec<HealthCheck> {
        let services = &self.cluster.config.probing.services;
        let mut probes = Vec::new();
        for (service, settings) in services {
            let timeout = Duration::from_secs(settings.timeout);
            match service {
                ProbedService::Filesystem => {
                    for fs in &self.cluster.config.file_systems {
                        probes.push(self.probe(*service, Some(fs.path.clone()), timeout, user));
                    }
                }
                _ => probes.push(self.probe(*service, None, timeout, user)),
            }
        }
        join_all(probes).await
    }

    async fn probe(
        &self,
        service: ProbedService,
        path: Option<String>,
        timeout: Duration,
        user: &Caller,
    ) -> HealthCheck {
        let last_checked = Utc::now();
        let start = Instant::now();
        let outcome =
            tokio::time::timeout(timeout, self.probe_service(service, path.as_deref(), user))
                .await
                .unwrap_or_else(|_| Err(format!("no answer within {} s", timeout.as_secs())));
        HealthCheck {
            service: Some(service),
            last_checked,
            latency: start.elapsed().as_secs_f64(),
            healthy: outcome.is_ok(),
            message: outcome.err(),
            path,
        }
    }

    async fn probe_service(
        &self,
        service: ProbedService,
        path: Option<&str>,
        user: &Caller,
    ) -> Result<(), String> {
        let ssh = &self.cluster.ssh;
        match service {
            ProbedService::Scheduler => {
                let statuses = self
                    .cluster
                    .scheduler
                    .ping(user)
                    .await
                    .map_err(|e| e.to_string())?;
                if statuses.iter().all(|s| s.up) {
                    Ok(())
                } else {
                    Err(format!("{statuses:?}"))
                }
            }
            ProbedService::Ssh => {
                let output = ssh
                    .execute(user, &ssh_probe(), None)
                    .await
                    .map_err(|e| e.to_string())?;
                exit_ok(output.exit_status, &output.stderr_text())
            }
            ProbedService::Filesystem => {
                let command = filesystem_probe(path.unwrap_or("/")).map_err(|e| e.to_string())?;
                let output = ssh
                    .execute(user, &command, None)
                    .await
                    .map_err(|e| e.to_string())?;
                exit_ok(output.exit_status, &output.stderr_text())
            }
            ProbedService::S3 => match &self.cluster.staging {
                Some(staging) => staging.client.probe().await.map_err(|e| e.to_string()),
                None => Err("no S3 data transfer is configured".into()),
            },
        }
    }
}

/// The SSH probe: a command that only succeeds.
fn ssh_probe() -> CommandLine {
    CommandLine::builder("true").build()
}

/// The file system probe: `ls -l -d` of its mount point.
fn filesystem_probe(path: &str) -> Result<CommandLine, QuoteError> {
    Ok(CommandLine::builder("ls")
        .word("-l")
        .word("-d")
        .operands([path])?
        .build())
}

/// The probes' lines, for the cluster-side guard's allowlist.
pub(crate) fn probe_shapes() -> CommandExamples {
    CommandExamples {
        // The probes are the bare lines the pool runs (`impl RemoteCommand for CommandLine`).
        name: std::any::type_name::<ironcrest_remote::CommandLine>(),
        lines: vec![ssh_probe(), filesystem_probe("/").expect("no NUL")],
    }
}

fn exit_ok(exit_status: u32, stderr: &str) -> Result<(), String> {
    if exit_status == 0 {
        Ok(())
    } else {
        Err(format!("exit status {exit_status}: {}", stderr.trim()))
    }
}
