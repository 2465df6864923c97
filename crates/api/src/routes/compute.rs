//! `/compute/{system_name}/jobs…`: submit, list, inspect, cancel and attach to jobs
//! (wire reference §2.2).

use std::collections::{BTreeSet, HashSet};
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use ironcrest_scheduler::SchedulerError;
use ironcrest_scheduler::job::{
    ACTIVE_STATES, FINAL_STATES, JOB_ID_PATTERN, can_exist, is_valid_job_id,
};
use ironcrest_scheduler::{Job, JobDescription, JobFilter, JobMetadata, TimeWindow};
use ironcrest_services::compute::AwaitedStates;
use ironcrest_services::events::{Delivery, EventId, Kind, Watch};
use ironcrest_services::{ServiceError, compute};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::{ValidJson, ValidQuery, lenient_bool};
use crate::AppState;
use crate::audit::{AuditArgs, AuditRecord};
use crate::call::Call;
use crate::conditional;
use crate::error::ApiError;
use crate::idempotency::{Idempotent, RawJson};

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(submit, jobs, events, job, metadata, cancel, attach),
    components(schemas(ironcrest_services::events::JobEvent))
)]
pub struct ComputeDoc;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/compute/{system_name}/jobs",
            conditional::get(jobs).post(submit),
        )
        // A path of its own before `{job_id}` (a static segment wins over a parameter).
        .route("/compute/{system_name}/jobs/events", get(events))
        .route(
            "/compute/{system_name}/jobs/{job_id}",
            conditional::get(job).delete(cancel),
        )
        .route(
            "/compute/{system_name}/jobs/{job_id}/metadata",
            conditional::get(metadata),
        )
        .route("/compute/{system_name}/jobs/{job_id}/attach", put(attach))
}

/// What the `JobDescription` schema derived in the scheduler crate does not say: the rules
/// `JobDescription::check` and `JobDescription::environment` apply before anything runs.
pub(crate) fn constrain_job_description(document: &mut utoipa::openapi::OpenApi) {
    let Some(schema) = document
        .components
        .as_mut()
        .and_then(|components| components.schemas.get_mut("JobDescription"))
    else {
        return;
    };
    // Control characters (Unicode Cc), which the scheduler's line-based listings cannot carry.
    const PRINTABLE: &str = r"^[^\x00-\x1f\x7f-\x9f]*$";
    const ABSOLUTE: &str = r"^/[^\x00-\x1f\x7f-\x9f]*$";
    let mut value = serde_json::to_value(&*schema).expect("a schema is JSON");
    let properties = &mut value["properties"];
    properties["workingDirectory"] = json!({
        "type": "string",
        "pattern": ABSOLUTE,
        "description": "The job's working directory, an absolute path; without control characters.",
    });
    properties["script"] = json!({
        "type": ["string", "null"],
        "minLength": 1,
        "description": "The batch script's text, written to the scheduler's standard input. Give \
            `script` or `scriptPath`, not both. A script the scheduler refuses (Slurm: one that \
            does not start with `#!`) is a 400 with its message.",
    });
    properties["scriptPath"] = json!({
        "type": ["string", "null"],
        "pattern": ABSOLUTE,
        "description": "A script already on the cluster: an absolute path, without control characters.",
    });
    properties["name"] = json!({
        "type": ["string", "null"],
        "pattern": r#"^[^"\x00-\x1f\x7f-\x9f]*$"#,
        "description": "The job's name: no `\"` (slurmdbd would store it changed) or control characters.",
    });
    for field in [
        "account",
        "partition",
        "reservation",
        "standardInput",
        "standardOutput",
        "standardError",
        "constraints",
    ] {
        properties[field]["pattern"] = json!(PRINTABLE);
    }
    properties["env"] = json!({
        "description": "The job's environment: an object `{\"NAME\": \"value\"}` or a list \
            `[\"NAME=value\"]`, names of letters, digits and `_` not starting with a digit, values \
            without NUL. Default `{\"F7T_version\": \"v2.0.0\"}`.",
        "oneOf": [
            {"type": "null"},
            {
                "type": "object",
                "propertyNames": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
                "additionalProperties": {"type": "string", "pattern": r"^[^\x00]*$"},
            },
            {
                "type": "array",
                "items": {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]*=[^\x00]*$"},
            },
        ],
    });
    // Exactly one of `script` and `scriptPath` is a string (null is the same as absent).
    let description = value["description"].take();
    let value = json!({
        "description": description,
        "allOf": [value, {"oneOf": [
            {"type": "object", "required": ["script"], "properties": {"script": {"type": "string"}, "scriptPath": {"type": "null"}}},
            {"type": "object", "required": ["scriptPath"], "properties": {"scriptPath": {"type": "string"}, "script": {"type": "null"}}},
        ]}],
    });
    *schema = serde_json::from_value(value).expect("the constrained schema is a schema");
}

/// `name` is limited to 235 characters, as in v2.
const MAX_NAME: usize = 235;

#[derive(Deserialize, ToSchema)]
pub struct SubmitRequest {
    job: JobDescription,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubmitResponse {
    job_id: String,
}

#[derive(Serialize, ToSchema)]
pub struct JobsResponse {
    jobs: Vec<Job>,
}

#[derive(Serialize, ToSchema)]
pub struct JobMetadataResponse {
    jobs: Vec<JobMetadata>,
}

#[derive(Deserialize, ToSchema)]
pub struct AttachRequest {
    /// A shell command, run inside the job's allocation as the user.
    command: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobsQuery {
    /// Everyone's jobs, as far as the scheduler shows them.
    #[serde(default, deserialize_with = "lenient_bool")]
    #[param(value_type = bool)]
    allusers: bool,
    /// Only jobs of this account; empty means no filter.
    account: Option<String>,
    /// Only jobs of this name; empty means no filter.
    #[param(max_length = 235)]
    name: Option<String>,
    #[param(schema_with = time_window_schema)]
    time_window: Option<String>,
}

/// `time_window` of the job list: v2's windows, or empty for the default.
pub(crate) fn time_window_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .enum_values(Some(["", "1h", "8h", "24h", "3d", "7d"]))
        .description(Some(
            "How far back finished jobs are listed (default `24h`; empty means the default).",
        ))
        .build()
}

impl JobsQuery {
    fn into_filter(self) -> Result<JobFilter, ApiError> {
        // httpx sends a None parameter as an empty value: v2 reads that as absent.
        let present = |value: Option<String>| value.filter(|v| !v.is_empty());
        let name = present(self.name);
        if name.as_ref().is_some_and(|n| n.chars().count() > MAX_NAME) {
            return Err(validation(
                "query",
                "name",
                format!("String should have at most {MAX_NAME} characters"),
            ));
        }
        let time_window = time_window(self.time_window)?;
        Ok(JobFilter {
            all_users: self.allusers,
            account: present(self.account),
            name,
            time_window,
        })
    }
}

/// The `time_window` query parameter: v2's windows, the default when absent or empty.
pub(crate) fn time_window(value: Option<String>) -> Result<TimeWindow, ApiError> {
    match value.filter(|v| !v.is_empty()) {
        None => Ok(TimeWindow::default()),
        Some(text) => {
            serde_json::from_value(serde_json::Value::String(text.clone())).map_err(|_| {
                validation(
                    "query",
                    "time_window",
                    format!("Input should be '1h', '8h', '24h', '3d' or '7d', not '{text}'"),
                )
            })
        }
    }
}

pub(crate) fn validation(location: &'static str, name: &str, message: String) -> ApiError {
    ApiError::Validation {
        location,
        name: name.to_string(),
        message,
    }
}

/// A job id of the documented pattern; one too large to name any job is `404 Job not found`.
fn checked_job_id(
    job_id: String,
    to_api: impl Fn(ServiceError) -> ApiError,
) -> Result<String, ApiError> {
    if is_valid_job_id(&job_id) && !can_exist(&job_id) {
        Err(to_api(ServiceError::Scheduler(SchedulerError::JobNotFound)))
    } else if is_valid_job_id(&job_id) {
        Ok(job_id)
    } else {
        Err(validation(
            "path",
            "job_id",
            format!("String should match pattern '{JOB_ID_PATTERN}'"),
        ))
    }
}

#[utoipa::path(post, path = "/compute/{system_name}/jobs", tag = "compute",
    params(("system_name" = String, Path, description = super::SYSTEM_NAME),
        ("Idempotency-Key" = Option<String>, Header, description = crate::idempotency::DESCRIPTION)),
    request_body = SubmitRequest,
    responses((status = 201, body = SubmitResponse), (status = "4XX", description = super::REFUSED, body = crate::error::ErrorBody),
        (status = "5XX", description = super::FAILED, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
async fn submit(call: Call, idempotent: Idempotent, body: RawJson<SubmitRequest>) -> Response {
    let job = &body.value.job;
    let call = &call;
    idempotent
        .run(
            call,
            &body.bytes,
            |caller| async move {
                let submitted = compute::submit(&call.cluster, &caller, job).await;
                submitted_answer(call, submitted.map_err(|e| call.error(e)))
            },
            |_, job_id| async move { submitted_answer(call, Ok(job_id)) },
        )
        .await
}

fn submitted_answer(call: &Call, submitted: Result<String, ApiError>) -> Response {
    match submitted {
        Ok(job_id) => {
            call.audit("job_id", &job_id);
            (StatusCode::CREATED, Json(SubmitResponse { job_id })).into_response()
        }
        Err(error) => error.into_response(),
    }
}

#[utoipa::path(get, path = "/compute/{system_name}/jobs", tag = "compute",
    params(("If-None-Match" = Option<String>, Header, description = super::IF_NONE_MATCH), ("system_name" = String, Path, description = super::SYSTEM_NAME), JobsQuery),
    responses((status = 200, body = JobsResponse, headers(("ETag" = String))), (status = 304, description = super::NOT_MODIFIED, headers(("ETag" = String))), (status = "4XX", description = super::REFUSED, body = crate::error::ErrorBody),
        (status = "5XX", description = super::FAILED, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
async fn jobs(
    call: Call,
    ValidQuery(query): ValidQuery<JobsQuery>,
) -> Result<Json<JobsResponse>, ApiError> {
    let filter = query.into_filter()?;
    let jobs = compute::jobs(&call.cluster, &call.user.caller, filter)
        .await
        .map_err(|e| call.error(e))?;
    Ok(Json(JobsResponse { jobs }))
}

/// The most job ids one event stream's filter may name.
const MAX_WATCHED_JOBS: usize = 1000;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Only the events of these jobs: job ids separated by commas (at most 1000). All of
    /// the caller's jobs when absent or empty.
    #[param(pattern = "^([1-9][0-9]{0,9}(,[1-9][0-9]{0,9})*)?$")]
    jobs: Option<String>,
}

impl EventsQuery {
    fn job_ids(&self) -> Result<Option<HashSet<String>>, ApiError> {
        let Some(list) = self.jobs.as_deref().filter(|list| !list.is_empty()) else {
            return Ok(None);
        };
        let ids: HashSet<String> = list.split(',').map(str::to_string).collect();
        if let Some(bad) = ids.iter().find(|id| !is_valid_job_id(id)) {
            return Err(validation(
                "query",
                "jobs",
                format!(
                    "{bad:?} is not a job id: give job ids (pattern '{JOB_ID_PATTERN}') separated by commas"
                ),
            ));
        }
        if ids.len() > MAX_WATCHED_JOBS {
            return Err(validation(
                "query",
                "jobs",
                format!("At most {MAX_WATCHED_JOBS} job ids, not {}", ids.len()),
            ));
        }
        Ok(Some(ids))
    }
}

const LAST_EVENT_ID: &str = "last-event-id";

/// The `Last-Event-ID` header's description.
const LAST_EVENT_ID_DESCRIPTION: &str = "The `id` of the last event the client received \
     (what EventSource sends when it reconnects): the stream first replays the events after it, \
     or answers `reset` when they are no longer all held.";

/// `Last-Event-ID`, if the client sent one; one this server could not have given is a 400.
fn last_event_id(headers: &HeaderMap) -> Result<Option<EventId>, ApiError> {
    let Some(value) = headers.get(LAST_EVENT_ID) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default().trim();
    if text.is_empty() {
        return Ok(None);
    }
    EventId::parse(text).map(Some).ok_or_else(|| {
        validation(
            "header",
            "Last-Event-ID",
            "Last-Event-ID must be the id of an event of this stream (<ms>-<number>-<run>)".into(),
        )
    })
}

#[utoipa::path(get, path = "/compute/{system_name}/jobs/events", tag = "compute",
    params(("system_name" = String, Path, description = super::SYSTEM_NAME),
        ("Last-Event-ID" = Option<String>, Header, description = LAST_EVENT_ID_DESCRIPTION), EventsQuery),
    responses((status = 200, content_type = "text/event-stream", body = String,
            description = "Server-sent events, without end: `job` (data: a `JobEvent`) for each change of \
                one of the caller's jobs, `ready` once the server holds every job's state (every change \
                after it is sent), `reset` when a resume cannot replay what followed its `Last-Event-ID` \
                (list the jobs again), and comment lines as heartbeats. Each event's `id` is where a \
                reconnect resumes. See docs/job-events.md."),
        (status = 429, description = "Too many streams and long polls open (the caller's, or the server's).", body = crate::error::ErrorBody),
        (status = "4XX", description = super::REFUSED, body = crate::error::ErrorBody),
        (status = "5XX", description = super::FAILED, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
async fn events(
    call: Call,
    headers: HeaderMap,
    ValidQuery(query): ValidQuery<EventsQuery>,
) -> Result<Response, ApiError> {
    let jobs = query.job_ids()?;
    let resume_from = last_event_id(&headers)?;
    let events = call.cluster.job_events().map_err(|e| call.error(e))?;
    let subscription = events
        .subscribe(Watch {
            user: call.user.caller.username.clone(),
            jobs,
            resume_from,
            kind: Kind::Stream,
        })
        .map_err(|e| call.error(e))?;
    let stream = futures::stream::unfold(subscription, |mut subscription| async move {
        let delivery = subscription.next().await?;
        Some((Ok::<_, Infallible>(sse_event(delivery)), subscription))
    });
    let keep_alive = KeepAlive::new()
        .interval(events.settings().heartbeat)
        .text("heartbeat");
    let mut response = Sse::new(stream).keep_alive(keep_alive).into_response();
    // nginx buffers proxied answers unless told not to, which would hold events back.
    response.headers_mut().insert(
        HeaderName::from_static("x-accel-buffering"),
        HeaderValue::from_static("no"),
    );
    Ok(response)
}

fn sse_event(delivery: Delivery) -> Event {
    let (name, id, data) = match delivery {
        Delivery::Event(event) => (
            "job",
            event.id,
            serde_json::to_string(&*event).expect("an event is JSON"),
        ),
        Delivery::Ready(id) => (
            "ready",
            id,
            json!({"message": "Every job's state is known: each change from here is an event."})
                .to_string(),
        ),
        Delivery::Reset { id, reason } => (
            "reset",
            id,
            json!({
                "reason": reason,
                "message": "Some events since the Last-Event-ID are not held: list the jobs again; each change from here is an event.",
            })
            .to_string(),
        ),
    };
    Event::default().event(name).id(id.to_string()).data(data)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobWaitQuery {
    /// A long poll: answer once the job is in one of the `until` states, or after this many
    /// seconds (at most `job_events.max_wait`, 60 by default; more is 400), with the job as
    /// it is then. Absent or 0: answer at once.
    // The document states the default limit; a server configured otherwise names its own in
    // the 400.
    #[param(maximum = 60)]
    wait: Option<u64>,
    /// The states to wait for, separated by commas (Slurm's names, e.g. `RUNNING` or
    /// `COMPLETED,FAILED`); needs `wait`. Default: any final state.
    // The pattern names every state (a test keeps it so); any case is accepted.
    #[param(
        pattern = "^ *(PENDING|RUNNING|SUSPENDED|REQUEUED|REQUEUE_HOLD|REQUEUE_FED|CONFIGURING|COMPLETING|RESIZING|RESV_DEL_HOLD|SIGNALING|STAGE_OUT|STOPPED|BOOT_FAIL|CANCELLED|COMPLETED|DEADLINE|FAILED|NODE_FAIL|OUT_OF_MEMORY|PREEMPTED|REVOKED|SPECIAL_EXIT|TIMEOUT)( *, *(PENDING|RUNNING|SUSPENDED|REQUEUED|REQUEUE_HOLD|REQUEUE_FED|CONFIGURING|COMPLETING|RESIZING|RESV_DEL_HOLD|SIGNALING|STAGE_OUT|STOPPED|BOOT_FAIL|CANCELLED|COMPLETED|DEADLINE|FAILED|NODE_FAIL|OUT_OF_MEMORY|PREEMPTED|REVOKED|SPECIAL_EXIT|TIMEOUT))* *$"
    )]
    until: Option<String>,
}

impl JobWaitQuery {
    /// What to wait for and how long, if anything; `max_wait` asks for the configured
    /// limit (only when a wait is asked for).
    fn waiting(
        &self,
        max_wait: impl FnOnce() -> Result<Duration, ApiError>,
    ) -> Result<Option<(AwaitedStates, Duration)>, ApiError> {
        let until = self.until.as_deref().filter(|until| !until.is_empty());
        let Some(wait) = self.wait.filter(|wait| *wait > 0) else {
            return match until {
                Some(_) => Err(validation(
                    "query",
                    "until",
                    "`until` needs `wait`: the seconds to wait for those states".into(),
                )),
                None => Ok(None),
            };
        };
        let max_wait = max_wait()?;
        if wait > max_wait.as_secs() {
            return Err(validation(
                "query",
                "wait",
                format!(
                    "`wait` may be at most {} seconds (job_events.max_wait), not {wait}",
                    max_wait.as_secs()
                ),
            ));
        }
        let states = match until {
            None => AwaitedStates::Final,
            Some(list) => AwaitedStates::Named(awaited_states(list)?),
        };
        Ok(Some((states, Duration::from_secs(wait))))
    }
}

/// `until`'s states, in any case; a name that is no job state is a 400 listing them.
fn awaited_states(list: &str) -> Result<BTreeSet<String>, ApiError> {
    list.split(',')
        .map(|state| {
            let state = state.trim().to_ascii_uppercase();
            if ACTIVE_STATES.contains(&state.as_str()) || FINAL_STATES.contains(&state.as_str()) {
                Ok(state)
            } else {
                Err(validation(
                    "query",
                    "until",
                    format!(
                        "{state:?} is not a job state; states are {}",
                        ACTIVE_STATES
                            .iter()
                            .chain(FINAL_STATES)
                            .copied()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ))
            }
        })
        .collect()
}

#[utoipa::path(get, path = "/compute/{system_name}/jobs/{job_id}", tag = "compute",
    params(("If-None-Match" = Option<String>, Header, description = super::IF_NONE_MATCH), ("system_name" = String, Path, description = super::SYSTEM_NAME), ("job_id" = String, Path, pattern = "^[1-9][0-9]{0,9}$"), JobWaitQuery),
    responses((status = 200, body = JobsResponse, headers(("ETag" = String))), (status = 304, description = super::NOT_MODIFIED, headers(("ETag" = String))), (status = "4XX", description = super::REFUSED, body = crate::error::ErrorBody),
        (status = "5XX", description = super::FAILED, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
async fn job(
    mut call: Call,
    Path((_system_name, job_id)): Path<(String, String)>,
    ValidQuery(query): ValidQuery<JobWaitQuery>,
) -> Result<Json<JobsResponse>, ApiError> {
    let job_id = checked_job_id(job_id, |e| call.error(e))?;
    let waiting = query.waiting(|| {
        call.cluster
            .job_events()
            .map(|events| events.settings().max_wait)
            .map_err(|e| call.error(e))
    })?;
    let job = match waiting {
        None => compute::job(&call.cluster, &call.user.caller, &job_id).await,
        Some((until, wait)) => {
            // A waiting long poll does no cluster work: it gives its concurrency slot and its
            // place among the server's (load shedding) back.
            call.release_slot();
            compute::wait_for_job(&call.cluster, &call.user.caller, &job_id, &until, wait).await
        }
    }
    .map_err(|e| call.error(e))?;
    Ok(Json(JobsResponse { jobs: vec![job] }))
}

#[utoipa::path(get, path = "/compute/{system_name}/jobs/{job_id}/metadata", tag = "compute",
    params(("If-None-Match" = Option<String>, Header, description = super::IF_NONE_MATCH), ("system_name" = String, Path, description = super::SYSTEM_NAME), ("job_id" = String, Path, pattern = "^[1-9][0-9]{0,9}$")),
    responses((status = 200, body = JobMetadataResponse, headers(("ETag" = String))), (status = 304, description = super::NOT_MODIFIED, headers(("ETag" = String))), (status = "4XX", description = super::REFUSED, body = crate::error::ErrorBody),
        (status = "5XX", description = super::FAILED, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
async fn metadata(
    call: Call,
    Path((_system_name, job_id)): Path<(String, String)>,
) -> Result<Json<JobMetadataResponse>, ApiError> {
    let job_id = checked_job_id(job_id, |e| call.error(e))?;
    let metadata = compute::metadata(&call.cluster, &call.user.caller, &job_id)
        .await
        .map_err(|e| call.error(e))?;
    Ok(Json(JobMetadataResponse {
        jobs: vec![metadata],
    }))
}

#[utoipa::path(delete, path = "/compute/{system_name}/jobs/{job_id}", tag = "compute",
    params(("system_name" = String, Path, description = super::SYSTEM_NAME), ("job_id" = String, Path, pattern = "^[1-9][0-9]{0,9}$")),
    responses((status = 204), (status = "4XX", description = super::REFUSED, body = crate::error::ErrorBody),
        (status = "5XX", description = super::FAILED, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
async fn cancel(
    call: Call,
    Path((_system_name, job_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let job_id = checked_job_id(job_id, |e| call.error(e))?;
    compute::cancel(&call.cluster, &call.user.caller, &job_id)
        .await
        .map_err(|e| call.error(e))?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(put, path = "/compute/{system_name}/jobs/{job_id}/attach", tag = "compute",
    params(("system_name" = String, Path, description = super::SYSTEM_NAME), ("job_id" = String, Path, pattern = "^[1-9][0-9]{0,9}$")),
    request_body = AttachRequest,
    responses((status = 204), (status = "4XX", description = super::REFUSED, body = crate::error::ErrorBody),
        (status = "5XX", description = super::FAILED, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
async fn attach(
    call: Call,
    Path((_system_name, job_id)): Path<(String, String)>,
    ValidJson(request): ValidJson<AttachRequest>,
) -> Result<StatusCode, ApiError> {
    let job_id = checked_job_id(job_id, |e| call.error(e))?;
    compute::attach(&call.cluster, &call.user.caller, &job_id, &request.command)
        .await
        .map_err(|e| call.error(e))?;
    Ok(StatusCode::NO_CONTENT)
}

/// Where the job runs and what it runs, never the script's text.
impl AuditArgs for SubmitRequest {
    fn audit_args(&self, record: &AuditRecord) {
        record.arg("working_directory", &self.job.working_directory);
        if let Some(script_path) = &self.job.script_path {
            record.arg("script_path", script_path);
        }
        if let Some(name) = &self.job.name {
            record.arg("job_name", name);
        }
    }
}

impl AuditArgs for AttachRequest {
    fn audit_args(&self, record: &AuditRecord) {
        record.arg("command", &self.command);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_until_pattern_names_exactly_the_job_states() {
        use utoipa::OpenApi;
        let json = serde_json::to_value(ComputeDoc::openapi()).unwrap();
        let parameters = json["paths"]["/compute/{system_name}/jobs/{job_id}"]["get"]["parameters"]
            .as_array()
            .unwrap();
        let until = parameters.iter().find(|p| p["name"] == "until").unwrap();
        let pattern = until["schema"]["pattern"].as_str().unwrap();
        let first = pattern
            .strip_prefix("^ *(")
            .and_then(|rest| rest.split_once(')'))
            .unwrap()
            .0;
        let mut documented: Vec<&str> = first.split('|').collect();
        let mut states: Vec<&str> = ACTIVE_STATES.iter().chain(FINAL_STATES).copied().collect();
        documented.sort_unstable();
        states.sort_unstable();
        assert_eq!(documented, states);
        assert_eq!(pattern, format!("^ *({first})( *, *({first}))* *$"));
    }

    #[test]
    fn the_document_lists_the_compute_routes() {
        use utoipa::OpenApi;
        let json = serde_json::to_value(ComputeDoc::openapi()).unwrap();
        let paths = &json["paths"];
        assert!(paths["/compute/{system_name}/jobs"]["post"].is_object());
        assert!(paths["/compute/{system_name}/jobs"]["get"].is_object());
        assert!(paths["/compute/{system_name}/jobs/{job_id}"]["get"].is_object());
        assert!(paths["/compute/{system_name}/jobs/{job_id}"]["delete"].is_object());
        assert!(paths["/compute/{system_name}/jobs/{job_id}/metadata"]["get"].is_object());
        assert!(paths["/compute/{system_name}/jobs/{job_id}/attach"]["put"].is_object());
    }

    #[test]
    fn empty_query_values_are_absent_and_windows_are_checked() {
        let query = |account: &str, name: &str, window: Option<&str>| JobsQuery {
            allusers: false,
            account: Some(account.into()),
            name: Some(name.into()),
            time_window: window.map(String::from),
        };
        let filter = query("", "", Some("")).into_filter().unwrap();
        assert_eq!(filter, JobFilter::default());
        let filter = query("p", "n", Some("7d")).into_filter().unwrap();
        assert_eq!(filter.account.as_deref(), Some("p"));
        assert_eq!(filter.time_window, TimeWindow::SevenDays);
        assert!(query("", "", Some("2d")).into_filter().is_err());
        assert!(query("", &"x".repeat(236), None).into_filter().is_err());
    }

    #[test]
    fn a_long_poll_names_known_states_and_waits_at_most_the_maximum() {
        let query = |wait: Option<u64>, until: Option<&str>| JobWaitQuery {
            wait,
            until: until.map(String::from),
        };
        let max = || Ok(Duration::from_secs(60));
        assert!(query(None, None).waiting(max).unwrap().is_none());
        assert!(query(Some(0), Some("")).waiting(max).unwrap().is_none());
        let (until, wait) = query(Some(60), None).waiting(max).unwrap().unwrap();
        assert_eq!(
            (until, wait),
            (AwaitedStates::Final, Duration::from_secs(60))
        );
        let (until, _) = query(Some(5), Some("running, completed"))
            .waiting(max)
            .unwrap()
            .unwrap();
        assert!(until.includes("RUNNING") && until.includes("COMPLETED"));
        assert!(!until.includes("PENDING") && !until.includes("FAILED"));
        for (wait, until) in [
            (Some(61), None),
            (Some(5), Some("DONE")),
            (None, Some("RUNNING")),
            (Some(5), Some("RUNNING,")),
        ] {
            assert!(
                query(wait, until).waiting(max).is_err(),
                "{wait:?} {until:?}"
            );
        }
        assert!(AwaitedStates::Final.includes("CANCELLED"));
        assert!(!AwaitedStates::Final.includes("COMPLETING"));
    }

    #[test]
    fn an_event_filter_takes_job_ids_only() {
        let filter = |jobs: &str| EventsQuery {
            jobs: Some(jobs.into()),
        };
        assert_eq!(filter("").job_ids().unwrap(), None);
        let ids = filter("12,345,12").job_ids().unwrap().unwrap();
        assert_eq!(ids.len(), 2);
        for bad in ["12,", "x", "1;2", "0", "12 ,3"] {
            assert!(filter(bad).job_ids().is_err(), "{bad:?}");
        }
        let many = (1..=1001)
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(",");
        assert!(filter(&many).job_ids().is_err());
    }

    #[test]
    fn job_ids_are_validated() {
        assert!(
            checked_job_id("123".into(), |e| ApiError::Service {
                error: e,
                user: "u".into()
            })
            .is_ok()
        );
        assert!(
            checked_job_id("1.batch".into(), |e| ApiError::Service {
                error: e,
                user: "u".into()
            })
            .is_err()
        );
    }
}
