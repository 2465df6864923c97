//! v1 `/storage`: transfer jobs (`xfer-internal`) and staged transfers through S3
//! (`xfer-external`), each answering with a task whose state is the transfer's.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use ironcrest_services::transfer::{self, TransferJob};
use ironcrest_services::{ServiceError, filesystem::Compression};

use super::MachineCall;
use super::compute;
use super::error::V1Error;
use super::form::{Fields, V1Form, invalid};
use super::tasks::{Progress, Service, Task, TaskId, created};
use super::utilities::extraction;
use crate::AppState;
use crate::call::Call;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/storage/xfer-internal/mv", post(mv))
        .route("/storage/xfer-internal/cp", post(cp))
        .route("/storage/xfer-internal/rm", post(rm))
        .route("/storage/xfer-internal/compress", post(compress))
        .route("/storage/xfer-internal/extract", post(extract))
}

fn path<'f>(
    call: &MachineCall,
    fields: &'f Fields,
    name: &str,
    audit_as: &'static str,
) -> Result<&'f [u8], V1Error> {
    let path = fields.required(name).map_err(|e| call.refuse(e))?;
    call.audit(audit_as, path);
    Ok(path)
}

fn account<'f>(call: &MachineCall, fields: &'f Fields) -> Result<Option<&'f str>, V1Error> {
    fields.present("account").map_err(|e| call.refuse(e))
}

/// The task of a transfer job just submitted, or of the submission's refusal.
fn answered(
    state: &AppState,
    call: &MachineCall,
    submitted: Result<TransferJob, ServiceError>,
) -> Result<Response, V1Error> {
    let task = match submitted {
        Ok(job) => {
            call.audit("transfer_job_id", &job.job_id);
            Task::TransferJob { job: job.job_id }
        }
        Err(error @ (ServiceError::Scheduler(_) | ServiceError::TooMuchWork(_))) => Task::Failed {
            service: Service::Storage,
            message: error.to_string(),
        },
        Err(error) => return Err(call.fail(error)),
    };
    let id = TaskId::new(call.cluster.name(), &call.user.caller.username, task);
    Ok(created(state, StatusCode::CREATED, &id))
}

async fn mv(
    State(state): State<AppState>,
    call: MachineCall,
    V1Form(form): V1Form,
) -> Result<Response, V1Error> {
    let source = path(&call, &form, "sourcePath", "path")?;
    let target = path(&call, &form, "targetPath", "target_path")?;
    let submitted = transfer::mv(
        &call.cluster,
        &call.user.caller,
        source,
        target,
        account(&call, &form)?,
    )
    .await;
    answered(&state, &call, submitted)
}

async fn cp(
    State(state): State<AppState>,
    call: MachineCall,
    V1Form(form): V1Form,
) -> Result<Response, V1Error> {
    let source = path(&call, &form, "sourcePath", "path")?;
    let target = path(&call, &form, "targetPath", "target_path")?;
    let submitted = transfer::cp(
        &call.cluster,
        &call.user.caller,
        source,
        target,
        false,
        account(&call, &form)?,
    )
    .await;
    answered(&state, &call, submitted)
}

async fn rm(
    State(state): State<AppState>,
    call: MachineCall,
    V1Form(form): V1Form,
) -> Result<Response, V1Error> {
    let target = path(&call, &form, "targetPath", "path")?;
    let submitted = transfer::rm(
        &call.cluster,
        &call.user.caller,
        target,
        account(&call, &form)?,
    )
    .await;
    answered(&state, &call, submitted)
}

async fn compress(
    State(state): State<AppState>,
    call: MachineCall,
    V1Form(form): V1Form,
) -> Result<Response, V1Error> {
    let source = path(&call, &form, "sourcePath", "path")?;
    let target = path(&call, &form, "targetPath", "target_path")?;
    let dereference = form.flag("dereference").map_err(|e| call.refuse(e))?;
    let submitted = transfer::compress(
        &call.cluster,
        &call.user.caller,
        source,
        target,
        None,
        Compression::Gzip,
        dereference,
        account(&call, &form)?,
    )
    .await;
    answered(&state, &call, submitted)
}

async fn extract(
    State(state): State<AppState>,
    call: MachineCall,
    V1Form(form): V1Form,
) -> Result<Response, V1Error> {
    let source = path(&call, &form, "sourcePath", "path")?;
    let target = path(&call, &form, "targetPath", "target_path")?;
    let extension = form
        .text("extension")
        .map_err(|e| call.refuse(e))?
        .unwrap_or("auto");
    let compression = extraction(extension, source)
        .map_err(|message| call.refuse(invalid("extension", &message)))?;
    let submitted = transfer::extract(
        &call.cluster,
        &call.user.caller,
        source,
        target,
        compression,
        account(&call, &form)?,
    )
    .await;
    answered(&state, &call, submitted)
}

/// A transfer job's task: done once submitted, its result the job and its files (v1 read
/// the job's outcome from its files, or the job's state through `compute/jobs`).
pub async fn transfer_job(call: &Call, job: &str) -> Progress {
    compute::submitted(call, job)
        .await
        .unwrap_or_else(|error| Progress::failed(error.to_string()))
}

/// A staged transfer's task.
pub async fn staged(_call: &Call, _task: &Task) -> Progress {
    Progress::failed("Staged transfers are not served yet.")
}
