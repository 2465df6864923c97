//! v1's tasks, without a task store: a task id says what the task is — the system, the
//! user it belongs to, when it was made, and what it tracks (a job that was submitted or
//! cancelled, a job query to answer, an operation that failed at once with its message, or a
//! task of the services' task model: a transfer job, a staged upload or download, by its
//! `<kind>-<job id>`) — so any replica answers for it, after any restart. Reading a task
//! asks the systems that hold its state (the scheduler, the S3 store, through
//! `ironcrest_services::tasks` for the model's tasks) then; a query's task is answered when
//! it is read. v2's `/tasks/{system}` and v1's `/tasks` are two wire forms of that one model.
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
    /// A task of the services' model (`storage/xfer-internal/*`, `xfer-external/*`): a
    /// transfer job, a staged upload or a staged download, by its `<kind>-<job id>`. Its id
    /// is the same made and listed.
    #[serde(rename = "task")]
    Tracked { id: String },
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
            Task::Tracked { .. } => Service::Storage,
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
    /// Made at, in seconds since the epoch; left out where the task's source says (a job's
    /// submission), so that an id listed twice is the same id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    t: Option<i64>,
    #[serde(flatten)]
    task: Task,
}

const VERSION: u8 = 1;

fn owner(username: &str) -> String {
    let digest = Sha256::digest(username.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

impl TaskId {
    /// The id of a task made now.
    pub fn new(system: &str, username: &str, task: Task) -> Self {
        Self {
            t: Some(chrono::Utc::now().timestamp()),
            ..Self::of(system, username, task)
        }
    }

    /// The id of a task whose source knows when it was made (a job): the same however often
    /// it is listed.
    pub fn of(system: &str, username: &str, task: Task) -> Self {
        Self {
            v: VERSION,
            s: system.to_string(),
            u: owner(username),
            t: None,
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

    pub fn task(&self) -> &Task {
        &self.task
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

    /// Whether nothing will change the task any more.
    pub fn is_final(&self) -> bool {
        matches!(self.status, 114 | 115 | 117 | 118) || self.status >= 200
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
    ) -> Result<Option<(Call, TaskId)>, V1Error> {
        let Some(decoded) = TaskId::decode(id, &self.user.caller.username) else {
            return Ok(None);
        };
        match self
            .call_on(state, decoded.system(), decoded.task.family())
            .await
        {
            Ok(call) => Ok(Some((call, decoded))),
            Err(ApiError::Service { .. }) => Ok(None),
            Err(error) => Err(V1Error::new("Error on tasks operation", error)),
        }
    }

    async fn call_on(
        &self,
        state: &AppState,
        system: &str,
        family: RouteFamily,
    ) -> Result<Call, ApiError> {
        Call::on_system(
            &self.head,
            state,
            self.user.clone(),
            system,
            family,
            BTreeMap::new(),
        )
        .await
    }

    /// The task `id` names as it stands now, or `None` if it is not the caller's (or not a
    /// task at all). A failure of what the task reads is the task's (status 400).
    async fn read(&self, state: &AppState, id: &str) -> Result<Option<TaskView>, V1Error> {
        let Some((call, decoded)) = self.call_for(state, id).await? else {
            return Ok(None);
        };
        let now = chrono::Utc::now().timestamp();
        let (progress, created, updated) = match &decoded.task {
            Task::Failed { message, .. } => (Progress::failed(message.clone()), None, None),
            Task::Tracked { id } => match storage::tracked(&call, id).await {
                Ok(task) => {
                    let progress = storage::progress(&call, &task);
                    (progress, task.created, task.updated)
                }
                Err(error) => (Progress::failed(error.to_string()), None, None),
            },
            compute => (compute::progress(&call, compute).await, None, None),
        };
        let created = created.or(decoded.t).unwrap_or(now);
        // A query is answered now; a transfer changed when its source says.
        let updated = updated.unwrap_or(if progress.is_final() { now } else { created });
        Ok(Some(view(
            state,
            &call,
            id,
            &decoded.task,
            progress,
            created,
            updated,
        )))
    }

    /// Every recent task of the caller's on every system the gateway lets them read tasks
    /// on: the services' task model (one job listing, one read of the jobs' comments and,
    /// with staged tasks, one S3 listing per system), each under its v1 id. A system that
    /// cannot answer now is left out, unless none can.
    async fn list(&self, state: &AppState) -> Result<BTreeMap<String, TaskView>, V1Error> {
        let mut tasks = BTreeMap::new();
        let mut failure = None;
        let mut answered = false;
        for cluster in state.clusters.iter() {
            let listed = async {
                let call = self
                    .call_on(state, cluster.name(), RouteFamily::ComputeRead)
                    .await?;
                let page = ironcrest_services::tasks::list(
                    &call.cluster,
                    &call.user.caller,
                    &ironcrest_services::tasks::TaskFilter::default(),
                )
                .await
                .map_err(|error| call.error(error))?;
                Ok::<_, ApiError>((call, page))
            };
            let (call, page) = match listed.await {
                Ok(listed) => listed,
                Err(error) => {
                    tracing::warn!(system = cluster.name(), error = ?error, "v1 task listing left out a system");
                    failure.get_or_insert(error);
                    continue;
                }
            };
            answered = true;
            for task in page.tasks {
                let (v1_task, progress) = storage::listed(&call, &task);
                let id = TaskId::of(call.cluster.name(), &call.user.caller.username, v1_task);
                let encoded = id.encode();
                let now = chrono::Utc::now().timestamp();
                let created = task.created.unwrap_or(now);
                let updated = task.updated.unwrap_or(created);
                let view = view(state, &call, &encoded, &id.task, progress, created, updated);
                tasks.insert(encoded, view);
            }
        }
        match failure {
            Some(error) if !answered => Err(V1Error::new("Error on tasks operation", error)),
            _ => Ok(tasks),
        }
    }
}

/// A task as v1 shows it, from what it tracks and where that stands.
fn view(
    state: &AppState,
    call: &Call,
    id: &str,
    task: &Task,
    progress: Progress,
    created: i64,
    updated: i64,
) -> TaskView {
    TaskView {
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
/// for ids it does not know); without `tasks`, every recent task of the caller's.
async fn tasks(
    State(state): State<AppState>,
    reader: TaskReader,
    V1Query(query): V1Query,
) -> Result<Json<TasksResponse>, V1Error> {
    let asked = query
        .present("tasks")
        .map_err(|e| V1Error::new("Error on tasks operation", e))?;
    if asked.is_none() {
        return Ok(Json(TasksResponse {
            tasks: reader.list(&state).await?,
        }));
    }
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
            Task::Tracked { id: "mv-3".into() },
        ];
        for task in tasks {
            let id = TaskId::new("c", "u", task.clone());
            assert_eq!(TaskId::decode(&id.encode(), "u").unwrap().task, task);
        }
        let listed = |job: &str| TaskId::of("c", "u", Task::Submitted { job: job.into() }).encode();
        assert_eq!(
            listed("9"),
            listed("9"),
            "a listed task's id is the same every time"
        );
    }

    #[test]
    fn statuses_are_described() {
        assert_eq!(described(200), "Finished successfully");
        assert_eq!(described(111), "Form URL from Object Storage received");
    }
}
