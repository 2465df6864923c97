//! `/compute/{system_name}/jobs…`: submit, list, inspect, cancel and attach to jobs
//! (wire reference §2.2).

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::put;
use axum::{Json, Router};
use ironcrest_scheduler::SchedulerError;
use ironcrest_scheduler::job::{JOB_ID_PATTERN, can_exist, is_valid_job_id};
use ironcrest_scheduler::{Job, JobDescription, JobFilter, JobMetadata, TimeWindow};
use ironcrest_services::{ServiceError, compute};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ValidJson, ValidQuery, lenient_bool};
use crate::AppState;
use crate::audit::{AuditArgs, AuditRecord};
use crate::call::Call;
use crate::conditional;
use crate::error::ApiError;
use crate::idempotency::{Idempotent, RawJson};

#[derive(utoipa::OpenApi)]
#[openapi(paths(submit, jobs, job, metadata, cancel, attach))]
pub struct ComputeDoc;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/compute/{system_name}/jobs",
            conditional::get(jobs).post(submit),
        )
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
    use serde_json::json;
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
fn time_window_schema() -> utoipa::openapi::Object {
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
        let time_window = match present(self.time_window) {
            None => TimeWindow::default(),
            Some(text) => {
                serde_json::from_value(serde_json::Value::String(text.clone())).map_err(|_| {
                    validation(
                        "query",
                        "time_window",
                        format!("Input should be '1h', '8h', '24h', '3d' or '7d', not '{text}'"),
                    )
                })?
            }
        };
        Ok(JobFilter {
            all_users: self.allusers,
            account: present(self.account),
            name,
            time_window,
        })
    }
}

fn validation(location: &'static str, name: &str, message: String) -> ApiError {
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

#[utoipa::path(get, path = "/compute/{system_name}/jobs/{job_id}", tag = "compute",
    params(("If-None-Match" = Option<String>, Header, description = super::IF_NONE_MATCH), ("system_name" = String, Path, description = super::SYSTEM_NAME), ("job_id" = String, Path, pattern = "^[1-9][0-9]{0,9}$")),
    responses((status = 200, body = JobsResponse, headers(("ETag" = String))), (status = 304, description = super::NOT_MODIFIED, headers(("ETag" = String))), (status = "4XX", description = super::REFUSED, body = crate::error::ErrorBody),
        (status = "5XX", description = super::FAILED, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
async fn job(
    call: Call,
    Path((_system_name, job_id)): Path<(String, String)>,
) -> Result<Json<JobsResponse>, ApiError> {
    let job_id = checked_job_id(job_id, |e| call.error(e))?;
    let job = compute::job(&call.cluster, &call.user.caller, &job_id)
        .await
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
