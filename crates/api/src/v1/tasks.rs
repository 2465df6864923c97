//! v1's tasks, without a task store: a task id says what the task is — the system, the
//! user it belongs to, when it was made, and what it tracks (a job that was submitted or
//! cancelled, a job query to answer, a transfer job, a staged upload or download, or an
//! operation that failed at once with its message) — so any replica answers for it, after
//! any restart. Reading a task asks the systems that hold its state (the scheduler, the S3
//! store) then; a query's task is answered when it is read.
//!
//! An id is the base64url (unpadded) of a small JSON object. It binds the task to its user
//! by a hash of the user's name: a task id of another user reads as "does not exist", and a
//! forged id can only make the caller's own request (everything a task reads runs as the
//! caller). Ids are not secret from their user, and carry nothing the user could not read
//! through the API.

use std::collections::BTreeMap;

use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{Local, TimeZone};
use ironcrest_gateway::RouteFamily;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::error::V1Error;
use super::form::V1Query;
use super::{compute, storage};
use crate::AppState;
use crate::auth::AuthenticatedUser;
use crate::call::{Call, RequestHead};
use crate::error::ApiError;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/tasks", get(tasks))
        .route("/tasks/{taskid}", get(task))
}

/// What a task tracks. Short tags keep ids short.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "k")]
pub enum Task {
    /// `compute/jobs/upload|path`: the job it submitted.
    #[serde(rename = "submit")]
    Submitted { job: String },
    /// `DELETE compute/jobs/{id}`: the job it cancelled.
    #[serde(rename = "cancel")]
    Cancelled { job: String },
    /// An operation refused when it was asked (a submission the scheduler refused, a
    /// cancel of a finished job): its message.
    #[serde(rename = "failed")]
    Failed { service: Service, message: String },
    /// `GET compute/jobs[/{id}]`: the queue, or the named jobs, when the task is read.
    #[serde(rename = "jobs")]
    Jobs {
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        ids: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        page: Option<Page>,
    },
    /// `GET compute/acct`: accounting records, when the task is read.
    #[serde(rename = "acct")]
    Accounting {
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        ids: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        start: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        end: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        page: Option<Page>,
    },
    /// `GET compute/nodes|partitions|reservations`, when the task is read.
    #[serde(rename = "sched")]
    Scheduler {
        what: SchedulerQuery,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        names: Vec<String>,
    },
    /// `storage/xfer-internal/*`: the transfer job.
    #[serde(rename = "xfer")]
    TransferJob { job: String },
    /// `storage/xfer-external/upload`: the staged object (its key in the user's bucket) the
    /// client uploads, and the job that moves it to `target`.
    #[serde(rename = "upload")]
    StagedUpload {
        job: String,
        object: String,
        source: String,
        target: String,
    },
    /// `storage/xfer-external/download`: the job that stages `source` as `object`.
    #[serde(rename = "download")]
    StagedDownload {
        job: String,
        object: String,
        source: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    Compute,
    Storage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SchedulerQuery {
    Nodes,
    Partitions,
    Reservations,
}

/// v1's pagination of job listings: `pageSize` entries from page `pageNumber` (0 first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    pub size: u64,
    pub number: u64,
}

impl Task {
    pub fn service(&self) -> Service {
        match self {
            Task::Failed { service, .. } => *service,
            Task::TransferJob { .. } | Task::StagedUpload { .. } | Task::StagedDownload { .. } => {
                Service::Storage
            }
            _ => Service::Compute,
        }
    }

    /// The family a read of the task is admitted in: what reading it does.
    fn family(&self) -> RouteFamily {
        match self.service() {
            Service::Compute => RouteFamily::ComputeRead,
            Service::Storage => RouteFamily::Transfer,
        }
    }
}

/// Everything a task id holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskId {
    /// The format's version.
    v: u8,
    /// The system.
    s: String,
    /// The owner: the first 8 bytes of SHA-256 of the user name, in hex.
    u: String,
    /// Made at, in seconds since the epoch.
    t: i64,
    #[serde(flatten)]
    task: Task,
}

const VERSION: u8 = 1;

fn owner(username: &str) -> String {
    let digest = Sha256::digest(username.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

impl TaskId {
    pub fn new(system: &str, username: &str, task: Task) -> Self {
        Self {
            v: VERSION,
            s: system.to_string(),
            u: owner(username),
            t: chrono::Utc::now().timestamp(),
            task,
        }
    }

    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(self).expect("a task id is JSON");
        URL_SAFE_NO_PAD.encode(json)
    }

    /// The task `id` names, if it is a task of `username`'s.
    pub fn decode(id: &str, username: &str) -> Option<Self> {
        let json = URL_SAFE_NO_PAD.decode(id).ok()?;
        let task: Self = serde_json::from_slice(&json).ok()?;
        (task.v == VERSION && task.u == owner(username)).then_some(task)
    }

    pub fn system(&self) -> &str {
        &self.s
    }
}

/// A task's state when it is read: v1's status code and the `data` its status carries.
pub struct Progress {
    pub status: u16,
    pub data: Value,
}

impl Progress {
    pub fn done(data: Value) -> Self {
        Self { status: 200, data }
    }

    pub fn failed(message: impl Into<String>) -> Self {
        Self {
            status: 400,
            data: Value::String(message.into()),
        }
    }
}

/// v1's status codes and what they say.
pub const STATUSES: &[(u16, &str)] = &[
    (100, "Queued"),
    (101, "In progress"),
    (200, "Finished successfully"),
    (400, "Finished with errors"),
    (
        110,
        "Waiting for Form URL from Object Storage to be retrieved",
    ),
    (111, "Form URL from Object Storage received"),
    (
        112,
        "Object Storage confirms that upload to Object Storage has finished",
    ),
    (113, "Download from Object Storage to server has started"),
    (114, "Download from Object Storage to server has finished"),
    (115, "Download from Object Storage error"),
    (116, "Started upload from filesystem to Object Storage"),
    (
        117,
        "Upload from filesystem to Object Storage has finished succesfully",
    ),
    (
        118,
        "Upload from filesystem to Object Storage has finished with errors",
    ),
];

fn described(status: u16) -> &'static str {
    STATUSES
        .iter()
        .find(|(code, _)| *code == status)
        .map_or("Unknown", |(_, text)| text)
}

/// A task as v1 shows it. `status` is a string of three digits, which v1 clients compare
/// as text (`"100" < "200"`).
#[derive(Serialize, ToSchema)]
pub struct TaskView {
    task_id: String,
    /// The same as `task_id` (v1 kept both).
    hash_id: String,
    user: String,
    status: String,
    description: &'static str,
    #[schema(value_type = Object)]
    data: Value,
    service: Service,
    system: String,
    created_at: String,
    updated_at: String,
    last_modify: String,
    task_url: String,
}

impl ToSchema for Service {}
impl utoipa::PartialSchema for Service {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .enum_values(Some(["compute", "storage"]))
            .into()
    }
}

/// v1's time format, in this server's time zone.
pub fn local_time(seconds: i64) -> String {
    Local
        .timestamp_opt(seconds, 0)
        .single()
        .map(|time| time.format("%Y-%m-%dT%H:%M:%S").to_string())
        .unwrap_or_default()
}

/// `{"success": "Task created", "task_id", "task_url"}`, the answer of every operation
/// that makes a task.
#[derive(Serialize, ToSchema)]
pub struct TaskCreated {
    success: &'static str,
    task_id: String,
    task_url: String,
}

/// The answer to a request that made `task`.
pub fn created(state: &AppState, status: StatusCode, id: &TaskId) -> Response {
    let task_id = id.encode();
    let task_url = format!("{}/tasks/{task_id}", state.v1.prefix);
    (
        status,
        Json(TaskCreated {
            success: "Task created",
            task_id,
            task_url,
        }),
    )
        .into_response()
}

/// A request reading tasks: the caller and what the gateway needs to admit a read on each
/// task's system.
pub struct TaskReader {
    head: RequestHead,
    user: AuthenticatedUser,
}

impl FromRequestParts<AppState> for TaskReader {
    type Rejection = V1Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, V1Error> {
        let fail = |error| V1Error::new("Error on tasks operation", error);
        let head = RequestHead::of(parts, state).map_err(fail)?;
        let user = AuthenticatedUser::from_request_parts(parts, state)
            .await
            .map_err(fail)?;
        Ok(Self { head, user })
    }
}

impl TaskReader {
    /// The call on the system of the caller's task `id`, admitted in the family of what
    /// reading the task does, and the task; `None` if `id` names no task of the caller's (or
    /// its system is gone). A refusal of the gateway is an error.
    pub async fn call_for(
        &self,
        state: &AppState,
        id: &str,
    ) -> Result<Option<(Call, Task, i64)>, V1Error> {
        let Some(decoded) = TaskId::decode(id, &self.user.caller.username) else {
            return Ok(None);
        };
        match Call::on_system(
            &self.head,
            state,
            self.user.clone(),
            decoded.system(),
            decoded.task.family(),
            BTreeMap::new(),
        )
        .await
        {
            Ok(call) => Ok(Some((call, decoded.task, decoded.t))),
            Err(ApiError::Service { .. }) => Ok(None),
            Err(error) => Err(V1Error::new("Error on tasks operation", error)),
        }
    }

    /// The task `id` names as it stands now, or `None` if it is not the caller's (or not a
    /// task at all). A failure of what the task reads is the task's (status 400).
    async fn read(&self, state: &AppState, id: &str) -> Result<Option<TaskView>, V1Error> {
        let Some((call, task, created)) = self.call_for(state, id).await? else {
            return Ok(None);
        };
        let progress = match &task {
            Task::Failed { message, .. } => Progress::failed(message.clone()),
            Task::TransferJob { job } => storage::transfer_job(&call, job).await,
            Task::StagedUpload { .. } | Task::StagedDownload { .. } => {
                storage::staged(&call, &task).await
            }
            compute => compute::progress(&call, compute).await,
        };
        let finished = matches!(progress.status, 114 | 115 | 117 | 118) || progress.status >= 200;
        let updated = if finished {
            chrono::Utc::now().timestamp()
        } else {
            created
        };
        Ok(Some(TaskView {
            task_id: id.to_string(),
            hash_id: id.to_string(),
            user: call.user.caller.username.clone(),
            status: progress.status.to_string(),
            description: described(progress.status),
            data: progress.data,
            service: task.service(),
            system: call.cluster.name().to_string(),
            created_at: local_time(created),
            updated_at: local_time(updated),
            last_modify: local_time(updated),
            task_url: format!("{}/tasks/{id}", state.v1.prefix),
        }))
    }
}

#[derive(Serialize, ToSchema)]
pub struct TasksResponse {
    #[schema(value_type = Object)]
    tasks: BTreeMap<String, TaskView>,
}

#[derive(Serialize, ToSchema)]
pub struct TaskResponse {
    task: TaskView,
}

/// `GET /tasks?tasks=a,b`: the named tasks of the caller (others are left out, as v1 does
/// for ids it does not know).
async fn tasks(
    State(state): State<AppState>,
    reader: TaskReader,
    V1Query(query): V1Query,
) -> Result<Json<TasksResponse>, V1Error> {
    let ids = query
        .present("tasks")
        .map_err(|e| V1Error::new("Error on tasks operation", e))?
        .unwrap_or_default()
        .split(',')
        .filter(|id| !id.is_empty())
        .map(str::to_string)
        .collect::<Vec<_>>();
    let read = futures::future::join_all(ids.iter().map(|id| reader.read(&state, id))).await;
    let mut tasks = BTreeMap::new();
    for (id, view) in ids.into_iter().zip(read) {
        if let Some(view) = view? {
            tasks.insert(id, view);
        }
    }
    Ok(Json(TasksResponse { tasks }))
}

/// `GET /tasks/{taskid}`: one task, or 404.
async fn task(
    State(state): State<AppState>,
    reader: TaskReader,
    Path(id): Path<String>,
) -> Result<Json<TaskResponse>, V1Error> {
    match reader.read(&state, &id).await? {
        Some(task) => Ok(Json(TaskResponse { task })),
        None => Err(V1Error::new(
            format!("Task {id} does not exist"),
            ApiError::Http {
                status: StatusCode::NOT_FOUND,
                message: format!("Task {id} does not exist"),
            },
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_for_their_user_only() {
        let id = TaskId::new("cluster", "alice", Task::Submitted { job: "42".into() });
        let text = id.encode();
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{text}: no comma, no slash, nothing to escape in a URL"
        );
        assert_eq!(TaskId::decode(&text, "alice"), Some(id));
        assert_eq!(TaskId::decode(&text, "bob"), None);
        assert_eq!(TaskId::decode("not-a-task", "alice"), None);
        assert_eq!(TaskId::decode("", "alice"), None);
    }

    #[test]
    fn every_kind_round_trips() {
        let tasks = [
            Task::Cancelled { job: "1".into() },
            Task::Failed {
                service: Service::Compute,
                message: "sbatch: error: Batch job submission failed".into(),
            },
            Task::Jobs {
                ids: vec!["1".into(), "2".into()],
                page: Some(Page {
                    size: 25,
                    number: 0,
                }),
            },
            Task::Accounting {
                ids: vec![],
                start: Some("2024-01-01".into()),
                end: None,
                page: None,
            },
            Task::Scheduler {
                what: SchedulerQuery::Nodes,
                names: vec!["n1".into()],
            },
            Task::TransferJob { job: "3".into() },
            Task::StagedUpload {
                job: "4".into(),
                object: "a/b".into(),
                source: "x".into(),
                target: "/home/u/x".into(),
            },
            Task::StagedDownload {
                job: "5".into(),
                object: "c/d".into(),
                source: "/home/u/y".into(),
            },
        ];
        for task in tasks {
            let id = TaskId::new("c", "u", task.clone());
            assert_eq!(TaskId::decode(&id.encode(), "u").unwrap().task, task);
        }
    }

    #[test]
    fn statuses_are_described() {
        assert_eq!(described(200), "Finished successfully");
        assert_eq!(described(111), "Form URL from Object Storage received");
    }
}
