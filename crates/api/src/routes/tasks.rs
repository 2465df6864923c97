//! `/tasks/{system_name}…`: every asynchronous operation Ironcrest started for the caller —
//! transfer jobs, staged uploads and downloads, compute jobs submitted through the API —
//! listed, looked up and cancelled (docs/tasks-events-retries.md). The model is the
//! services' ([`ironcrest_services::tasks`]); this module is its wire form, in v2's style.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::{Json, Router};
use ironcrest_services::filesystem::Compression;
use ironcrest_services::tasks::{
    self, MAX_PAGE, Task, TaskArguments, TaskFilter, TaskId, TaskKind, TaskProgress, TaskState,
};
use ironcrest_services::transfer::TransferLogs;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ValidQuery;
use super::compute::{time_window, time_window_schema, validation};
use crate::AppState;
use crate::call::Call;
use crate::conditional;
use crate::error::ApiError;

#[derive(utoipa::OpenApi)]
#[openapi(paths(list_tasks, get_task, cancel_task))]
pub struct TasksDoc;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/tasks/{system_name}", conditional::get(list_tasks))
        .route(
            "/tasks/{system_name}/{task_id}",
            conditional::get(get_task).delete(cancel_task),
        )
}

/// What a task does: a transfer job of the `/filesystem/{system}/transfer/…` operation of
/// that name (`rsync`: FirecREST v1's `xfer-internal/rsync`), or `job`, a job submitted
/// through `POST /compute/{system}/jobs`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TaskKindName {
    Mv,
    Cp,
    Rsync,
    Rm,
    Compress,
    Extract,
    Upload,
    Download,
    Job,
}

/// `pending` (queued, or a staged upload waiting for the client's data), `running`,
/// `succeeded`, `failed`, `cancelled`, or `expired` (a staged upload whose data did not
/// arrive in time, a staged download whose object has expired from the S3 store).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TaskStateName {
    Pending,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    Expired,
}

/// A transfer's arguments as it was asked for (paths as the API shows names); members
/// that were not given, or do not apply, are left out.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskArgumentsWire {
    /// `rm`'s path, an upload's target, a download's source.
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    target_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dereference: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    compression: Option<Compression>,
    #[serde(skip_serializing_if = "Option::is_none")]
    match_pattern: Option<String>,
    /// A staged transfer's size in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    file_size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    account: Option<String>,
}

/// How far a task has come: the scheduler's view of its job always; parts and bytes of a
/// staged transfer where they can be known (in a listing only once its object is whole;
/// for one task also while parts arrive); the last line of a finished transfer's log when
/// one task is asked for.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskProgressWire {
    /// The job's state as the scheduler names it (`PENDING`, `RUNNING`, `COMPLETED`, …).
    job_state: String,
    job_state_reason: Option<String>,
    exit_code: Option<i64>,
    parts: Option<u64>,
    parts_done: Option<u64>,
    bytes: Option<u64>,
    bytes_done: Option<u64>,
    result: Option<String>,
}

/// Where to find more: this task, and its job in the compute API.
#[derive(Serialize, ToSchema)]
pub struct TaskLinks {
    #[serde(rename = "self")]
    this: String,
    job: String,
}

/// An asynchronous operation of the caller's. Times are epoch seconds.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Task)]
pub struct TaskWire {
    /// `<kind>-<job id>`: any replica answers for it (docs/tasks-events-retries.md).
    #[schema(pattern = "^(mv|cp|rsync|rm|compress|extract|upload|download|job)-[1-9][0-9]{0,9}$")]
    id: String,
    kind: TaskKindName,
    state: TaskStateName,
    system: String,
    /// The scheduler job that does the work.
    job_id: String,
    /// When the job was submitted.
    created: Option<i64>,
    /// The last change known: the job's start or end, a part or the object arriving in S3.
    updated: Option<i64>,
    /// A transfer's arguments; null for a compute job (its job says what it runs) or when
    /// the job's comment could not hold them.
    arguments: Option<TaskArgumentsWire>,
    progress: TaskProgressWire,
    /// Why a failed or expired task ended so: the job's own message when one task is
    /// asked for, the scheduler's state and exit code in a listing.
    error: Option<String>,
    /// A transfer job's log files.
    logs: Option<TransferLogs>,
    links: TaskLinks,
}

#[derive(Serialize, ToSchema)]
pub struct TaskResponse {
    task: TaskWire,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TasksResponse {
    /// Newest (highest job id) first.
    tasks: Vec<TaskWire>,
    /// The next page (the same query `after` this page's last task), or null on the last.
    next_page: Option<String>,
}

/// The filters and the page of `GET /tasks/{system_name}`; empty values are absent.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TasksQuery {
    /// Only tasks in these states, comma-separated (`pending,running`).
    #[param(
        pattern = "^((pending|running|succeeded|failed|cancelled|expired)(,(pending|running|succeeded|failed|cancelled|expired))*)?$"
    )]
    state: Option<String>,
    /// Only tasks of these kinds, comma-separated (`upload,download`).
    #[param(
        pattern = "^((mv|cp|rsync|rm|compress|extract|upload|download|job)(,(mv|cp|rsync|rm|compress|extract|upload|download|job))*)?$"
    )]
    kind: Option<String>,
    #[param(schema_with = time_window_schema)]
    time_window: Option<String>,
    /// Tasks on a page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// Only tasks older than this one: the last task of the previous page.
    #[param(
        pattern = "^((mv|cp|rsync|rm|compress|extract|upload|download|job)-[1-9][0-9]{0,9})?$"
    )]
    after: Option<String>,
}

impl TasksQuery {
    fn filter(&self) -> Result<TaskFilter, ApiError> {
        let present = |value: &Option<String>| value.clone().filter(|v| !v.is_empty());
        let states = names(present(&self.state), "state", TaskState::named, || {
            TaskState::ALL.map(TaskState::as_str).join(", ")
        })?;
        let kinds = names(present(&self.kind), "kind", TaskKind::named, || {
            TaskKind::ALL.map(TaskKind::as_str).join(", ")
        })?;
        let limit = self.limit.unwrap_or(tasks::DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(validation(
                "query",
                "limit",
                format!("Input should be from 1 to {MAX_PAGE}, not {limit}"),
            ));
        }
        let after = present(&self.after)
            .map(|after| {
                TaskId::parse(&after)
                    .map_err(|_| validation("query", "after", format!("Invalid task id {after:?}")))
            })
            .transpose()?;
        Ok(TaskFilter {
            kinds,
            states,
            window: time_window(present(&self.time_window))?,
            after,
            limit,
        })
    }

    /// This query's next page, after `last`.
    fn next_page(&self, system: &str, last: &TaskId) -> String {
        let mut query = Vec::new();
        for (name, value) in [
            ("state", &self.state),
            ("kind", &self.kind),
            ("time_window", &self.time_window),
        ] {
            if let Some(value) = value.as_ref().filter(|v| !v.is_empty()) {
                // Validated: enum words, commas and digits, nothing to escape.
                query.push(format!("{name}={value}"));
            }
        }
        if let Some(limit) = self.limit {
            query.push(format!("limit={limit}"));
        }
        query.push(format!("after={last}"));
        format!("/tasks/{system}?{}", query.join("&"))
    }
}

/// A comma-separated list of names `named` reads; an unknown one is a 400 naming the
/// accepted ones.
fn names<T>(
    value: Option<String>,
    field: &str,
    named: impl Fn(&str) -> Option<T>,
    accepted: impl Fn() -> String,
) -> Result<Vec<T>, ApiError> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    value
        .split(',')
        .map(|name| {
            named(name).ok_or_else(|| {
                validation(
                    "query",
                    field,
                    format!("Input should be a list of {}, not '{name}'", accepted()),
                )
            })
        })
        .collect()
}

#[utoipa::path(get, path = "/tasks/{system_name}", tag = "tasks",
    params(("If-None-Match" = Option<String>, Header, description = super::IF_NONE_MATCH), ("system_name" = String, Path, description = super::SYSTEM_NAME), TasksQuery),
    responses((status = 200, body = TasksResponse, headers(("ETag" = String))), (status = 304, description = super::NOT_MODIFIED, headers(("ETag" = String))), (status = "4XX", description = super::REFUSED, body = crate::error::ErrorBody),
        (status = "5XX", description = super::FAILED, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
async fn list_tasks(
    call: Call,
    ValidQuery(query): ValidQuery<TasksQuery>,
) -> Result<Json<TasksResponse>, ApiError> {
    let filter = query.filter()?;
    let page = tasks::list(&call.cluster, &call.user.caller, &filter)
        .await
        .map_err(|e| call.error(e))?;
    let system = call.cluster.name();
    let next_page = page
        .tasks
        .last()
        .filter(|_| page.more)
        .map(|last| query.next_page(system, &last.id));
    Ok(Json(TasksResponse {
        tasks: page.tasks.iter().map(|task| wire(system, task)).collect(),
        next_page,
    }))
}

#[utoipa::path(get, path = "/tasks/{system_name}/{task_id}", tag = "tasks",
    params(("If-None-Match" = Option<String>, Header, description = super::IF_NONE_MATCH), ("system_name" = String, Path, description = super::SYSTEM_NAME),
        ("task_id" = String, Path, pattern = "^(mv|cp|rsync|rm|compress|extract|upload|download|job)-[1-9][0-9]{0,9}$")),
    responses((status = 200, body = TaskResponse, headers(("ETag" = String))), (status = 304, description = super::NOT_MODIFIED, headers(("ETag" = String))), (status = "4XX", description = super::REFUSED, body = crate::error::ErrorBody),
        (status = "5XX", description = super::FAILED, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
async fn get_task(
    call: Call,
    Path((_system_name, task_id)): Path<(String, String)>,
) -> Result<Json<TaskResponse>, ApiError> {
    let id = TaskId::parse(&task_id).map_err(|e| call.error(e))?;
    let task = tasks::get(&call.cluster, &call.user.caller, &id)
        .await
        .map_err(|e| call.error(e))?;
    Ok(Json(TaskResponse {
        task: wire(call.cluster.name(), &task),
    }))
}

/// Cancels a task that has not ended: its job, and a staged transfer's multipart upload in
/// progress. One that has ended is a 409.
#[utoipa::path(delete, path = "/tasks/{system_name}/{task_id}", tag = "tasks",
    params(("system_name" = String, Path, description = super::SYSTEM_NAME),
        ("task_id" = String, Path, pattern = "^(mv|cp|rsync|rm|compress|extract|upload|download|job)-[1-9][0-9]{0,9}$")),
    responses((status = 204), (status = "4XX", description = super::REFUSED, body = crate::error::ErrorBody),
        (status = "5XX", description = super::FAILED, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
async fn cancel_task(
    call: Call,
    Path((_system_name, task_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let id = TaskId::parse(&task_id).map_err(|e| call.error(e))?;
    call.audit("job_id", &id.job_id);
    tasks::cancel(&call.cluster, &call.user.caller, &id)
        .await
        .map_err(|e| call.error(e))?;
    Ok(StatusCode::NO_CONTENT)
}

/// The task on `system`, as this API shows it.
fn wire(system: &str, task: &Task) -> TaskWire {
    let id = task.id.to_string();
    TaskWire {
        kind: kind_name(task.kind()),
        state: state_name(task.state),
        system: system.to_string(),
        job_id: task.job_id().to_string(),
        created: task.created,
        updated: task.updated,
        arguments: task.arguments.as_ref().map(arguments),
        progress: progress(&task.progress),
        error: task.error.clone(),
        logs: task.logs.clone(),
        links: TaskLinks {
            this: format!("/tasks/{system}/{id}"),
            job: format!("/compute/{system}/jobs/{}", task.job_id()),
        },
        id,
    }
}

fn kind_name(kind: TaskKind) -> TaskKindName {
    use ironcrest_services::transfer::TransferKind;
    match kind {
        TaskKind::Transfer(TransferKind::Mv) => TaskKindName::Mv,
        TaskKind::Transfer(TransferKind::Cp) => TaskKindName::Cp,
        TaskKind::Transfer(TransferKind::Rsync) => TaskKindName::Rsync,
        TaskKind::Transfer(TransferKind::Rm) => TaskKindName::Rm,
        TaskKind::Transfer(TransferKind::Compress) => TaskKindName::Compress,
        TaskKind::Transfer(TransferKind::Extract) => TaskKindName::Extract,
        TaskKind::Transfer(TransferKind::Upload) => TaskKindName::Upload,
        TaskKind::Transfer(TransferKind::Download) => TaskKindName::Download,
        TaskKind::Job => TaskKindName::Job,
    }
}

fn state_name(state: TaskState) -> TaskStateName {
    match state {
        TaskState::Pending => TaskStateName::Pending,
        TaskState::Running => TaskStateName::Running,
        TaskState::Succeeded => TaskStateName::Succeeded,
        TaskState::Failed => TaskStateName::Failed,
        TaskState::Cancelled => TaskStateName::Cancelled,
        TaskState::Expired => TaskStateName::Expired,
    }
}

fn arguments(arguments: &TaskArguments) -> TaskArgumentsWire {
    let arguments = arguments.clone();
    TaskArgumentsWire {
        path: arguments.path,
        source_path: arguments.source_path,
        target_path: arguments.target_path,
        dereference: arguments.dereference,
        compression: arguments.compression,
        match_pattern: arguments.match_pattern,
        file_size: arguments.file_size,
        account: arguments.account,
    }
}

fn progress(progress: &TaskProgress) -> TaskProgressWire {
    let progress = progress.clone();
    TaskProgressWire {
        job_state: progress.job_state,
        job_state_reason: progress.job_state_reason,
        exit_code: progress.exit_code,
        parts: progress.parts,
        parts_done: progress.parts_done,
        bytes: progress.bytes,
        bytes_done: progress.bytes_done,
        result: progress.result,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(state: &str, kind: &str, limit: Option<usize>, after: &str) -> TasksQuery {
        TasksQuery {
            state: Some(state.into()),
            kind: Some(kind.into()),
            time_window: Some("3d".into()),
            limit,
            after: Some(after.into()),
        }
    }

    #[test]
    fn filters_are_lists_of_names() {
        let filter = query("pending,running", "upload,job", Some(5), "mv-9")
            .filter()
            .unwrap();
        assert_eq!(filter.states, [TaskState::Pending, TaskState::Running]);
        assert_eq!(filter.kinds.len(), 2);
        assert_eq!(filter.limit, 5);
        assert_eq!(filter.after.unwrap().to_string(), "mv-9");
        let empty = query("", "", None, "").filter().unwrap();
        assert!(empty.states.is_empty() && empty.kinds.is_empty() && empty.after.is_none());
        assert_eq!(empty.limit, tasks::DEFAULT_PAGE);
        for bad in [
            query("done", "", None, ""),
            query("pending,", "", None, ""),
            query("", "move", None, ""),
            query("", "", Some(0), ""),
            query("", "", Some(MAX_PAGE + 1), ""),
            query("", "", None, "mv-0"),
        ] {
            assert!(
                matches!(bad.filter(), Err(ApiError::Validation { .. })),
                "{:?} {:?} {:?} {:?}",
                bad.state,
                bad.kind,
                bad.limit,
                bad.after
            );
        }
    }

    #[test]
    fn the_next_page_repeats_the_query_after_the_last_task() {
        let query = query("failed", "cp", Some(2), "cp-100");
        let last = TaskId::parse("cp-42").unwrap();
        assert_eq!(
            query.next_page("cluster", &last),
            "/tasks/cluster?state=failed&kind=cp&time_window=3d&limit=2&after=cp-42"
        );
    }

    /// The patterns in the document (attributes take literals) name the kinds and states
    /// the services know.
    #[test]
    fn the_documented_patterns_are_the_services_names() {
        let document = serde_json::to_string(&<TasksDoc as utoipa::OpenApi>::openapi()).unwrap();
        let kinds = TaskKind::ALL.map(TaskKind::as_str).join("|");
        let id = format!("^({kinds})-[1-9][0-9]{{0,9}}$");
        assert!(document.matches(&id).count() >= 2, "{id} in {document}");
        let states = TaskState::ALL.map(TaskState::as_str).join("|");
        assert!(document.contains(&format!("(,({states}))*")), "{document}");
        assert!(document.contains(&format!("(,({kinds}))*")), "{document}");
    }
}
