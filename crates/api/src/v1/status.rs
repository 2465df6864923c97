//! v1 `/status`: the services, the systems and their file systems, and the deployment's
//! parameters (the limits v1 clients read, e.g. `UTILITIES_MAX_FILE_SIZE`). None of these
//! runs anything on a cluster: they answer from the configuration and the health checker.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use ironcrest_config::{
    ClusterConfig, DataTransferConfig, MaintenanceWindow, ProbedService, SchedulerType,
};
use ironcrest_services::Cluster;
use ironcrest_services::health::HealthReport;
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::error::V1Error;
use crate::AppState;
use crate::auth::AuthenticatedUser;
use crate::error::ApiError;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/status/services", get(services))
        .route("/status/services/{servicename}", get(service))
        .route("/status/systems", get(systems))
        .route("/status/systems/{machinename}", get(system))
        .route("/status/filesystems", get(filesystems))
        .route("/status/filesystems/{machinename}", get(system_filesystems))
        .route("/status/parameters", get(parameters))
}

/// v1's microservices: all are parts of this one process, so all are up while it answers.
const SERVICES: &[(&str, &str)] = &[
    (
        "certificator",
        "SSH certificates, signed by the built-in certificate authority",
    ),
    ("utilities", "Blocking file operations"),
    ("compute", "Jobs through the workload manager"),
    ("storage", "Transfer jobs and staged transfers through S3"),
    ("tasks", "Tasks of asynchronous operations"),
    ("reservations", "Reservations of the workload manager"),
];

#[derive(Serialize, ToSchema)]
pub struct Service {
    service: &'static str,
    status: &'static str,
    status_code: u16,
    description: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct ServicesResponse {
    description: &'static str,
    out: Vec<Service>,
}

/// A system as v1 shows it: `available` while every health check passes and it is not
/// under maintenance, else `not available` with the reason.
#[derive(Serialize, ToSchema)]
pub struct System {
    system: String,
    status: &'static str,
    description: String,
}

#[derive(Serialize, ToSchema)]
pub struct SystemsResponse {
    description: &'static str,
    out: Vec<System>,
}

#[derive(Serialize, ToSchema)]
pub struct SystemResponse {
    description: &'static str,
    out: System,
}

/// A file system of a system, with the health checker's last word on it.
#[derive(Serialize, ToSchema)]
pub struct Filesystem {
    /// Its kind (`users`, `scratch`, …), as the configuration names it.
    name: &'static str,
    path: String,
    description: String,
    status: &'static str,
    status_code: u16,
}

#[derive(Serialize, ToSchema)]
pub struct FilesystemsResponse {
    description: &'static str,
    #[schema(value_type = Object)]
    out: BTreeMap<String, Vec<Filesystem>>,
}

#[derive(Serialize, ToSchema)]
pub struct SystemFilesystemsResponse {
    description: &'static str,
    out: Vec<Filesystem>,
}

#[derive(Serialize, ToSchema)]
pub struct Parameter {
    name: &'static str,
    #[schema(value_type = Object)]
    value: Value,
    unit: &'static str,
    description: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct Parameters {
    general: Vec<Parameter>,
    compute: Vec<Parameter>,
    utilities: Vec<Parameter>,
    storage: Vec<Parameter>,
}

#[derive(Serialize, ToSchema)]
pub struct ParametersResponse {
    description: &'static str,
    out: Parameters,
}

fn service_of(name: &'static str, description: &'static str) -> Service {
    Service {
        service: name,
        status: "available",
        status_code: 200,
        description,
    }
}

async fn services(_user: AuthenticatedUser) -> Json<ServicesResponse> {
    Json(ServicesResponse {
        description: "List of services with status and description.",
        out: SERVICES
            .iter()
            .map(|(name, description)| service_of(name, description))
            .collect(),
    })
}

async fn service(
    _user: AuthenticatedUser,
    Path(name): Path<String>,
) -> Result<Json<Service>, V1Error> {
    SERVICES
        .iter()
        .find(|(service, _)| *service == name)
        .map(|(service, description)| Json(service_of(service, description)))
        .ok_or_else(|| not_found("Service does not exists"))
}

fn not_found(description: &'static str) -> V1Error {
    V1Error::new(
        description,
        ApiError::Http {
            status: StatusCode::NOT_FOUND,
            message: description.into(),
        },
    )
}

fn system_of(
    config: &ClusterConfig,
    health: Option<HealthReport>,
    maintenance: Option<MaintenanceWindow>,
) -> System {
    let failed = health
        .as_ref()
        .and_then(|report| report.checks.iter().find(|check| !check.healthy).cloned());
    let (status, description) = if let Some(window) = maintenance {
        (
            "not available",
            format!("System under maintenance: {}", window.message),
        )
    } else if let Some(check) = failed {
        (
            "not available",
            check
                .message
                .unwrap_or_else(|| "A health check of the system failed".into()),
        )
    } else {
        ("available", "System ready".into())
    };
    System {
        system: config.name.clone(),
        status,
        description,
    }
}

async fn systems(State(state): State<AppState>, _user: AuthenticatedUser) -> Json<SystemsResponse> {
    let out = state
        .clusters
        .iter()
        .map(|cluster| {
            let maintenance = state.gateway.maintenance(cluster.name());
            system_of(&cluster.config, cluster.health(), maintenance)
        })
        .collect();
    Json(SystemsResponse {
        description: "List of systems with status and description.",
        out,
    })
}

fn cluster(state: &AppState, name: &str) -> Result<std::sync::Arc<Cluster>, V1Error> {
    state
        .clusters
        .get(name)
        .map_err(|_| not_found("System does not exists."))
}

async fn system(
    State(state): State<AppState>,
    _user: AuthenticatedUser,
    Path(name): Path<String>,
) -> Result<Json<SystemResponse>, V1Error> {
    let cluster = cluster(&state, &name)?;
    let maintenance = state.gateway.maintenance(cluster.name());
    Ok(Json(SystemResponse {
        description: "System information",
        out: system_of(&cluster.config, cluster.health(), maintenance),
    }))
}

fn filesystems_of(cluster: &Cluster) -> Vec<Filesystem> {
    let health = cluster.health();
    cluster
        .config
        .file_systems
        .iter()
        .map(|fs| {
            let failed = health.as_ref().and_then(|report| {
                report.checks.iter().find(|check| {
                    check.service == Some(ProbedService::Filesystem)
                        && check.path.as_deref() == Some(fs.path.as_str())
                        && !check.healthy
                })
            });
            let name = serde_json::to_value(fs.data_type)
                .ok()
                .and_then(|value| value.as_str().map(data_type_name))
                .unwrap_or("users");
            match failed {
                Some(check) => Filesystem {
                    name,
                    path: fs.path.clone(),
                    description: check.message.clone().unwrap_or_default(),
                    status: "not available",
                    status_code: 400,
                },
                None => Filesystem {
                    name,
                    path: fs.path.clone(),
                    description: "Filesystem is available".into(),
                    status: "available",
                    status_code: 200,
                },
            }
        })
        .collect()
}

/// The configuration's name of a file system's kind, as a `'static` string.
fn data_type_name(name: &str) -> &'static str {
    ["users", "store", "archive", "apps", "scratch", "project"]
        .into_iter()
        .find(|known| *known == name)
        .unwrap_or("users")
}

async fn filesystems(
    State(state): State<AppState>,
    _user: AuthenticatedUser,
) -> Json<FilesystemsResponse> {
    Json(FilesystemsResponse {
        description: "Filesystem information",
        out: state
            .clusters
            .iter()
            .map(|cluster| (cluster.name().to_string(), filesystems_of(cluster)))
            .collect(),
    })
}

async fn system_filesystems(
    State(state): State<AppState>,
    _user: AuthenticatedUser,
    Path(name): Path<String>,
) -> Result<Json<SystemFilesystemsResponse>, V1Error> {
    let cluster = cluster(&state, &name)?;
    Ok(Json(SystemFilesystemsResponse {
        description: "Filesystem information",
        out: filesystems_of(&cluster),
    }))
}

fn parameter(
    name: &'static str,
    value: Value,
    unit: &'static str,
    description: &'static str,
) -> Parameter {
    Parameter {
        name,
        value,
        unit,
        description,
    }
}

/// Megabytes as v1 counts them (MiB), whole where exact.
fn megabytes(bytes: u64) -> Value {
    let mib = 1024 * 1024;
    if bytes.is_multiple_of(mib) {
        json!(bytes / mib)
    } else {
        json!(bytes as f64 / mib as f64)
    }
}

/// The largest object one presigned PUT may carry (S3's single-request limit), which bounds
/// a v1 staged upload.
const SINGLE_PUT_LIMIT: u64 = 5 * 1024 * 1024 * 1024;

async fn parameters(
    State(state): State<AppState>,
    _user: AuthenticatedUser,
) -> Json<ParametersResponse> {
    let clusters: Vec<_> = state.clusters.iter().collect();
    // One value for the deployment: the strictest system's, so it holds on every system.
    let max_file_size = clusters
        .iter()
        .map(|c| c.config.data_operation.max_ops_file_size)
        .min()
        .unwrap_or_default();
    let timeout = clusters
        .iter()
        .map(|c| c.config.ssh.timeout.command_execution)
        .min()
        .unwrap_or_default();
    let managers: Vec<&str> = {
        let mut names: Vec<&str> = clusters
            .iter()
            .map(|c| match c.config.scheduler.kind {
                SchedulerType::Slurm => "Slurm",
                SchedulerType::Pbs => "PBS",
            })
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    };
    let url_lifetime = clusters
        .iter()
        .filter_map(|c| match &c.config.data_operation.data_transfer {
            Some(DataTransferConfig::S3(s3)) => Some(s3.ttl),
            _ => None,
        })
        .min();
    let mounted: Vec<Value> = clusters
        .iter()
        .map(|c| {
            json!({
                "system": c.name(),
                "mounted": c.config.file_systems.iter().map(|fs| fs.path.clone()).collect::<Vec<_>>(),
            })
        })
        .collect();
    let out = Parameters {
        general: vec![
            parameter(
                "FIRECREST_VERSION",
                json!(super::V1_VERSION),
                "",
                "FirecREST version.",
            ),
            parameter(
                "FIRECREST_BUILD",
                json!(format!("Ironcrest {}", crate::IRONCREST_VERSION)),
                "",
                "FirecREST build timestamp.",
            ),
        ],
        compute: vec![parameter(
            "WORKLOAD_MANAGER",
            json!(managers.join(", ")),
            "",
            "Type of resource and workload manager used in compute microservice.",
        )],
        utilities: vec![
            parameter(
                "UTILITIES_MAX_FILE_SIZE",
                megabytes(max_file_size),
                "MB",
                "The maximum allowable file size for various operations of the utilities microservice.",
            ),
            parameter(
                "UTILITIES_TIMEOUT",
                json!(timeout),
                "seconds",
                "Maximum time duration for executing the commands in the cluster for the utilities microservice.",
            ),
        ],
        storage: vec![
            parameter(
                "OBJECT_STORAGE",
                json!(if url_lifetime.is_some() { "s3v4" } else { "" }),
                "",
                "Type of object storage, like `swift`, `s3v2` or `s3v4`.",
            ),
            parameter(
                "STORAGE_TEMPURL_EXP_TIME",
                json!(url_lifetime.unwrap_or_default()),
                "seconds",
                "Expiration time for temp URLs.",
            ),
            parameter(
                "STORAGE_MAX_FILE_SIZE",
                megabytes(SINGLE_PUT_LIMIT),
                "MB",
                "Maximum file size for temp URLs.",
            ),
            parameter(
                "FILESYSTEMS",
                Value::Array(mounted),
                "",
                "Available filesystems through the API.",
            ),
        ],
    };
    Json(ParametersResponse {
        description: "Firecrest's parameters",
        out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn megabytes_are_whole_where_exact() {
        assert_eq!(megabytes(5 * 1024 * 1024), json!(5));
        assert_eq!(megabytes(1024 * 1024 + 512 * 1024), json!(1.5));
    }
}
