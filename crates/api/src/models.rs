//! Wire models of the status API (wire reference §1). `dataOperation` and its `multipart`
//! block stay snake_case because FirecREST v2 emits them that way; secrets are masked.

use chrono::{DateTime, SecondsFormat, Utc};
use ironcrest_config::{
    ClusterConfig, ConnectionMode, DataTransferConfig, FileSystemDataType, MaintenanceWindow,
    ProbedService, SchedulerType, Secret,
};
use ironcrest_services::health::{HealthCheck, HealthReport};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct System {
    pub name: String,
    pub ssh: Ssh,
    pub scheduler: Scheduler,
    pub services_health: Option<Vec<ServiceHealth>>,
    pub probing: Probing,
    pub last_health_check: Option<String>,
    pub file_systems: Vec<FileSystem>,
    pub data_operation: DataOperation,
    /// Present while the system is under maintenance (Ironcrest's addition): its routes
    /// answer 503 with `reason: maintenance` meanwhile.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<Maintenance>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Maintenance {
    pub message: String,
    /// When it is expected to end (RFC 3339), if announced.
    pub until: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Ssh {
    pub host: String,
    pub port: u16,
    pub proxy_host: Option<String>,
    pub proxy_port: Option<u16>,
    pub max_clients: usize,
    pub timeout: SshTimeout,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SshTimeout {
    pub connection: u64,
    pub login: u64,
    pub command_execution: u64,
    pub idle_timeout: u64,
    pub keep_alive: u64,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Scheduler {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub connection_mode: &'static str,
    pub version: String,
    pub api_url: Option<String>,
    pub api_version: Option<String>,
    pub timeout: u64,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceHealth {
    /// `scheduler`, `ssh`, `filesystem`, `s3`, or `exception` for a failed run.
    pub service_type: &'static str,
    pub last_checked: String,
    /// Seconds.
    pub latency: f64,
    pub healthy: bool,
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Probing {
    pub services: std::collections::BTreeMap<&'static str, ProbeTimeout>,
    pub interval_check: u64,
}

#[derive(Serialize, ToSchema)]
pub struct ProbeTimeout {
    pub timeout: u64,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FileSystem {
    pub path: String,
    pub data_type: &'static str,
    pub default_work_dir: bool,
}

#[derive(Serialize, ToSchema)]
pub struct DataOperation {
    pub datatransfer_jobs_directives: Vec<String>,
    pub max_ops_file_size: u64,
    #[schema(value_type = Option<Object>)]
    pub data_transfer: Option<serde_json::Value>,
}

fn iso(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn service_name(service: ProbedService) -> &'static str {
    match service {
        ProbedService::Scheduler => "scheduler",
        ProbedService::Ssh => "ssh",
        ProbedService::Filesystem => "filesystem",
        ProbedService::S3 => "s3",
    }
}

fn masked(secret: &Secret) -> &'static str {
    if secret.is_empty() { "" } else { "**********" }
}

impl From<&HealthCheck> for ServiceHealth {
    fn from(check: &HealthCheck) -> Self {
        Self {
            service_type: check.service.map(service_name).unwrap_or("exception"),
            last_checked: iso(check.last_checked),
            latency: check.latency,
            healthy: check.healthy,
            message: check.message.clone(),
            path: check.path.clone(),
        }
    }
}

impl System {
    pub fn new(
        config: &ClusterConfig,
        health: Option<HealthReport>,
        maintenance: Option<MaintenanceWindow>,
    ) -> Self {
        let ssh = &config.ssh;
        let scheduler = &config.scheduler;
        Self {
            name: config.name.clone(),
            ssh: Ssh {
                host: ssh.host.clone(),
                port: ssh.port,
                proxy_host: ssh.proxy_host.clone(),
                proxy_port: ssh.proxy_port,
                max_clients: ssh.max_clients,
                timeout: SshTimeout {
                    connection: ssh.timeout.connection,
                    login: ssh.timeout.login,
                    command_execution: ssh.timeout.command_execution,
                    idle_timeout: ssh.timeout.idle_timeout,
                    keep_alive: ssh.timeout.keep_alive,
                },
            },
            scheduler: Scheduler {
                kind: match scheduler.kind {
                    SchedulerType::Slurm => "slurm",
                    SchedulerType::Pbs => "pbs",
                },
                connection_mode: match scheduler.connection_mode {
                    ConnectionMode::Ssh => "ssh",
                    ConnectionMode::Rest => "rest",
                    ConnectionMode::Hybrid => "hybrid",
                },
                version: scheduler.version.clone(),
                api_url: scheduler.api_url.clone(),
                api_version: scheduler.api_version.clone(),
                timeout: scheduler.timeout,
            },
            services_health: health
                .as_ref()
                .map(|report| report.checks.iter().map(ServiceHealth::from).collect()),
            probing: Probing {
                services: config
                    .probing
                    .services
                    .iter()
                    .map(|(service, settings)| {
                        (
                            service_name(*service),
                            ProbeTimeout {
                                timeout: settings.timeout,
                            },
                        )
                    })
                    .collect(),
                interval_check: config.probing.interval,
            },
            last_health_check: health.and_then(|report| report.last_health_check).map(iso),
            file_systems: config
                .file_systems
                .iter()
                .map(|fs| FileSystem {
                    path: fs.path.clone(),
                    data_type: match fs.data_type {
                        FileSystemDataType::Users => "users",
                        FileSystemDataType::Store => "store",
                        FileSystemDataType::Archive => "archive",
                        FileSystemDataType::Apps => "apps",
                        FileSystemDataType::Scratch => "scratch",
                        FileSystemDataType::Project => "project",
                    },
                    default_work_dir: fs.default_work_dir,
                })
                .collect(),
            data_operation: DataOperation {
                datatransfer_jobs_directives: config
                    .data_operation
                    .datatransfer_jobs_directives
                    .clone(),
                max_ops_file_size: config.data_operation.max_ops_file_size,
                data_transfer: config
                    .data_operation
                    .data_transfer
                    .as_ref()
                    .map(data_transfer),
            },
            maintenance: maintenance.map(|window| Maintenance {
                message: window.message,
                until: window.until,
            }),
        }
    }
}

fn data_transfer(config: &DataTransferConfig) -> serde_json::Value {
    match config {
        DataTransferConfig::S3(s3) => serde_json::json!({
            "serviceType": "s3",
            "name": s3.name,
            "privateUrl": masked(&s3.private_url),
            "publicUrl": s3.public_url,
            "accessKeyId": masked(&s3.access_key_id),
            "secretAccessKey": masked(&s3.secret_access_key),
            "region": s3.region,
            "ttl": s3.ttl,
            "tenant": s3.tenant,
            "multipart": s3.multipart,
            "bucketLifecycleConfiguration": s3.bucket_lifecycle_configuration,
        }),
        DataTransferConfig::Streamer(streamer) => serde_json::json!({
            "serviceType": "streamer",
            "pypiIndexUrl": streamer.pypi_index_url,
            "host": streamer.host,
            "portRange": [streamer.port_range.0, streamer.port_range.1],
            "publicIps": streamer.public_ips,
            "waitTimeout": streamer.wait_timeout,
            "inboundTransferLimit": streamer.inbound_transfer_limit,
        }),
        DataTransferConfig::Wormhole { pypi_index_url } => serde_json::json!({
            "serviceType": "wormhole",
            "pypiIndexUrl": pypi_index_url,
        }),
    }
}
