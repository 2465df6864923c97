//! v1 `/storage`: transfer jobs (`xfer-internal`: the v2 transfer service's jobs, and
//! `rsync`) and staged transfers through the S3 store (`xfer-external`), each answering with
//! a task. A staged upload is one object the client sends with the `curl` command its task
//! hands out (v1 clients run it), which a job moves to the target; a staged download is v2's,
//! its task handing out the object's URL once the job has staged it.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use ironcrest_scheduler::SchedulerError;
use ironcrest_services::ServiceError;
use ironcrest_services::filesystem::{self, Compression};
use ironcrest_services::tasks::{self, TaskKind, TaskState};
use ironcrest_services::transfer::{
    self, JobOptions, Method, TransferJob, TransferKind, TransferMethod,
};
use serde_json::{Value, json};

use super::MachineCall;
use super::error::V1Error;
use super::form::{Fields, V1Form, invalid};
use super::tasks::{Progress, Service, Task, TaskId, TaskReader, created};
use super::utilities::extraction;
use crate::AppState;
use crate::call::Call;
use crate::error::ApiError;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/storage/xfer-internal/rsync", post(rsync))
        .route("/storage/xfer-internal/mv", post(mv))
        .route("/storage/xfer-internal/cp", post(cp))
        .route("/storage/xfer-internal/rm", post(rm))
        .route("/storage/xfer-internal/compress", post(compress))
        .route("/storage/xfer-internal/extract", post(extract))
        .route("/storage/xfer-external/upload", post(upload))
        .route("/storage/xfer-external/download", post(download))
        .route("/storage/xfer-external/invalidate", post(invalidate))
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

/// `account`, `time` and `stageOutJobId` of a transfer job (`jobName` is not used: the
/// job's name marks it as Ironcrest's transfer).
fn options<'f>(call: &MachineCall, fields: &'f Fields) -> Result<JobOptions<'f>, V1Error> {
    let text = |name| fields.present(name).map_err(|e| call.refuse(e));
    Ok(JobOptions {
        account: text("account")?,
        time_limit: text("time")?,
        after_job: text("stageOutJobId")?,
    })
}

/// The task of a transfer job of `kind` just submitted (the services' task `<kind>-<job>`,
/// under the id a listing gives it too), or of the scheduler's refusal of it.
fn answered(
    state: &AppState,
    call: &MachineCall,
    kind: TransferKind,
    submitted: Result<TransferJob, ServiceError>,
) -> Result<Response, V1Error> {
    let (cluster, user) = (call.cluster.name(), &call.user.caller.username);
    let id = match submitted {
        Ok(job) => {
            call.audit("transfer_job_id", &job.job_id);
            let id = format!("{}-{}", kind.as_str(), job.job_id);
            TaskId::of(cluster, user, Task::Tracked { id })
        }
        Err(ServiceError::Scheduler(
            error @ (SchedulerError::Rejected { .. }
            | SchedulerError::PolicyLimit { .. }
            | SchedulerError::AccessDenied { .. }),
        )) => TaskId::new(
            cluster,
            user,
            Task::Failed {
                service: Service::Storage,
                message: error.to_string(),
            },
        ),
        Err(error) => return Err(call.fail(error)),
    };
    Ok(created(state, StatusCode::CREATED, &id))
}

async fn rsync(
    State(state): State<AppState>,
    call: MachineCall,
    V1Form(form): V1Form,
) -> Result<Response, V1Error> {
    let source = path(&call, &form, "sourcePath", "path")?;
    let target = path(&call, &form, "targetPath", "target_path")?;
    let options = options(&call, &form)?;
    let submitted =
        transfer::rsync(&call.cluster, &call.user.caller, source, target, options).await;
    answered(&state, &call, TransferKind::Rsync, submitted)
}

async fn mv(
    State(state): State<AppState>,
    call: MachineCall,
    V1Form(form): V1Form,
) -> Result<Response, V1Error> {
    let source = path(&call, &form, "sourcePath", "path")?;
    let target = path(&call, &form, "targetPath", "target_path")?;
    let options = options(&call, &form)?;
    let submitted = transfer::mv(&call.cluster, &call.user.caller, source, target, options).await;
    answered(&state, &call, TransferKind::Mv, submitted)
}

async fn cp(
    State(state): State<AppState>,
    call: MachineCall,
    V1Form(form): V1Form,
) -> Result<Response, V1Error> {
    let source = path(&call, &form, "sourcePath", "path")?;
    let target = path(&call, &form, "targetPath", "target_path")?;
    let options = options(&call, &form)?;
    let submitted = transfer::cp(
        &call.cluster,
        &call.user.caller,
        source,
        target,
        false,
        options,
    )
    .await;
    answered(&state, &call, TransferKind::Cp, submitted)
}

async fn rm(
    State(state): State<AppState>,
    call: MachineCall,
    V1Form(form): V1Form,
) -> Result<Response, V1Error> {
    let target = path(&call, &form, "targetPath", "path")?;
    let options = options(&call, &form)?;
    let submitted = transfer::rm(&call.cluster, &call.user.caller, target, options).await;
    answered(&state, &call, TransferKind::Rm, submitted)
}

async fn compress(
    State(state): State<AppState>,
    call: MachineCall,
    V1Form(form): V1Form,
) -> Result<Response, V1Error> {
    let source = path(&call, &form, "sourcePath", "path")?;
    let target = path(&call, &form, "targetPath", "target_path")?;
    let dereference = form.flag("dereference").map_err(|e| call.refuse(e))?;
    let options = options(&call, &form)?;
    let submitted = transfer::compress(
        &call.cluster,
        &call.user.caller,
        source,
        target,
        None,
        Compression::Gzip,
        dereference,
        options,
    )
    .await;
    answered(&state, &call, TransferKind::Compress, submitted)
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
    let options = options(&call, &form)?;
    let submitted = transfer::extract(
        &call.cluster,
        &call.user.caller,
        source,
        target,
        compression,
        options,
    )
    .await;
    answered(&state, &call, TransferKind::Extract, submitted)
}

/// The last component of a client's path (`/` or `\\` separated).
fn file_name(path: &str) -> &str {
    path.rsplit(['/', '\\']).next().unwrap_or(path)
}

/// `xfer-external/upload`: into `targetPath` if it is a file's path, or into the directory
/// `targetPath` under the name of the client's `sourcePath`, as v1 did.
async fn upload(
    State(state): State<AppState>,
    call: MachineCall,
    V1Form(form): V1Form,
) -> Result<Response, V1Error> {
    let source = form
        .present("sourcePath")
        .map_err(|e| call.refuse(e))?
        .ok_or_else(|| call.refuse(invalid("sourcePath", "is required")))?
        .to_string();
    let target = path(&call, &form, "targetPath", "path")?;
    let (cluster, user) = (&call.cluster, &call.user.caller);
    let is_directory = match filesystem::stat(cluster, user, target, true).await {
        Ok(stat) => stat.mode & 0o170_000 == 0o040_000,
        Err(ServiceError::Command(_)) => false,
        Err(error) => return Err(call.fail(error)),
    };
    let target = if is_directory {
        let name = file_name(&source);
        if name.is_empty() || name == "." || name == ".." {
            return Err(call.refuse(invalid("sourcePath", "names no file")));
        }
        [
            target.strip_suffix(b"/").unwrap_or(target),
            b"/",
            name.as_bytes(),
        ]
        .concat()
    } else {
        target.to_vec()
    };
    let account = form.present("account").map_err(|e| call.refuse(e))?;
    let submitted = transfer::upload_whole(cluster, user, &target, &source, account)
        .await
        .map(|staged| staged.job);
    answered(&state, &call, TransferKind::Upload, submitted)
}

async fn download(
    State(state): State<AppState>,
    call: MachineCall,
    V1Form(form): V1Form,
) -> Result<Response, V1Error> {
    let source = path(&call, &form, "sourcePath", "path")?;
    let account = form.present("account").map_err(|e| call.refuse(e))?;
    let submitted = transfer::download(
        &call.cluster,
        &call.user.caller,
        source,
        TransferMethod::S3,
        account,
    )
    .await
    .map(|(job, _)| job);
    answered(&state, &call, TransferKind::Download, submitted)
}

/// `xfer-external/invalidate` (`X-Task-Id`): deletes a staged download's object, so its URL
/// no longer works.
async fn invalidate(
    State(state): State<AppState>,
    reader: TaskReader,
    headers: HeaderMap,
) -> Result<Response, V1Error> {
    const OPERATION: &str = "Error on invalidate operation";
    let refuse = |message: &str| {
        V1Error::new(
            OPERATION,
            ApiError::Http {
                status: StatusCode::BAD_REQUEST,
                message: message.to_string(),
            },
        )
    };
    let id = headers
        .get("x-task-id")
        .and_then(|value| value.to_str().ok())
        .ok_or_else(|| refuse("The X-Task-Id header names the task."))?;
    let (call, decoded) = reader
        .call_for(&state, id)
        .await?
        .ok_or_else(|| refuse(&format!("Task {id} does not exist")))?;
    let Task::Tracked { id: tracked_id, .. } = decoded.task() else {
        return Err(refuse("Only a staged download's URL can be invalidated."));
    };
    let fail = |error| V1Error::new(OPERATION, call.error(error));
    let task = tracked(&call, tracked_id).await.map_err(fail)?;
    let (TaskKind::Transfer(TransferKind::Download), Some(work), Some(path)) = (
        task.kind(),
        task.work,
        task.arguments.as_ref().and_then(|a| a.path.as_deref()),
    ) else {
        return Err(refuse("Only a staged download's URL can be invalidated."));
    };
    transfer::delete_staged(&call.cluster, &call.user.caller, work, path)
        .await
        .map_err(fail)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"success": "URL invalidated successfully"})),
    )
        .into_response())
}

/// The services' task `id` of the caller's.
pub async fn tracked(call: &Call, id: &str) -> Result<tasks::Task, ServiceError> {
    let id = tasks::TaskId::parse(id)?;
    tasks::get(&call.cluster, &call.user.caller, &id).await
}

/// A task of the services' model as v1 tells it. A transfer job's task is done once the job
/// is submitted, its data the job and its log files (v1 clients follow the job through
/// `compute/jobs`). A staged upload waits for the client's object (111, with the command
/// that sends it), which the job then fetches (112 queued, 113 at work) into place (114),
/// or fails (115); a staged download's job stages the file (116), whose URL is then handed
/// out (117), or fails (118).
pub fn progress(call: &Call, task: &tasks::Task) -> Progress {
    let system = call.cluster.name();
    let path = task.arguments.as_ref().and_then(|a| a.path.clone());
    let failed = || {
        task.error
            .clone()
            .unwrap_or_else(|| format!("The transfer job ended {}", task.progress.job_state))
    };
    let url = |method| match (task.work, path.as_deref()) {
        (Some(work), Some(path)) => {
            transfer::staged_url(&call.cluster, &call.user.caller, work, path, method)
                .map_err(|error| error.to_string())
        }
        _ => Err("The transfer's job no longer says what it staged.".to_string()),
    };
    match task.kind() {
        TaskKind::Transfer(TransferKind::Upload) => {
            // The client's file as it named it (v1's uploads), else the target's name.
            let source = task
                .arguments
                .as_ref()
                .and_then(|a| a.source_path.clone())
                .or_else(|| path.as_deref().map(|p| file_name(p).to_string()))
                .unwrap_or_default();
            let with = |status: u16, msg: Value| Progress {
                status,
                data: json!({
                    "user": call.user.caller.username,
                    "system_name": system,
                    "source": source,
                    "target": path,
                    "status": status.to_string(),
                    "msg": msg,
                }),
            };
            // The object is in S3 once the model counts its bytes (an upload in one `PUT`
            // has no parts to count).
            let uploaded = task.progress.bytes_done.is_some();
            match (task.state, uploaded) {
                (TaskState::Pending | TaskState::Running, false) => match url(Method::Put) {
                    Ok(url) => with(111, upload_instructions(&source, &url)),
                    Err(message) => with(115, json!(message)),
                },
                (TaskState::Pending, true) => with(
                    112,
                    json!("Object Storage confirms that upload to Object Storage has finished"),
                ),
                (TaskState::Running, true) => with(
                    113,
                    json!("Download from Object Storage to server has started"),
                ),
                (TaskState::Succeeded, _) => with(
                    114,
                    json!("Download from Object Storage to server has finished"),
                ),
                _ => with(115, json!(failed())),
            }
        }
        TaskKind::Transfer(TransferKind::Download) => {
            let mut data = json!({"source": path, "system_name": system});
            let status = match task.state {
                TaskState::Pending | TaskState::Running => 116,
                TaskState::Succeeded => match url(Method::Get) {
                    Ok(url) => {
                        data["url"] = json!(url);
                        117
                    }
                    Err(message) => {
                        data["error"] = json!(message);
                        118
                    }
                },
                _ => {
                    data["error"] = json!(failed());
                    118
                }
            };
            Progress { status, data }
        }
        _ => Progress::done(json!({
            "result": "Job submitted",
            "jobid": job_number(task.job_id()),
            "job_file": "command-not-found",
            "job_file_out": task.logs.as_ref().map_or("stdout-file-not-found", |l| l.output_log.as_str()),
            "job_file_err": task.logs.as_ref().map_or("stderr-file-not-found", |l| l.error_log.as_str()),
            "job_data_out": "",
            "job_data_err": "",
        })),
    }
}

/// A job id as v1 gives it: a number where it is one.
fn job_number(job_id: &str) -> Value {
    job_id
        .parse::<u64>()
        .map_or_else(|_| json!(job_id), |id| json!(id))
}

/// A task of a listing as v1 lists it, with what v1's task says of it: a job submitted
/// through the API is a submission's task (without its files: a listing runs no command per
/// task), anything else is its model task.
pub fn listed(call: &Call, task: &tasks::Task) -> (Task, Progress) {
    match task.kind() {
        TaskKind::Job => (
            Task::Submitted {
                job: task.job_id().to_string(),
            },
            Progress::done(json!({"result": "Job submitted", "jobid": job_number(task.job_id())})),
        ),
        TaskKind::Transfer(_) => (
            Task::Tracked {
                id: task.id.to_string(),
            },
            progress(call, task),
        ),
    }
}

/// What a v1 client needs to send the file: a `curl` command (pyfirecrest runs it, split
/// as a shell would), and its parts for other tools.
fn upload_instructions(source: &str, url: &str) -> Value {
    let quote = |word: &str| {
        shlex::try_quote(word).map_or_else(|_| "''".to_string(), |quoted| quoted.into_owned())
    };
    json!({
        "command": format!(
            "curl --fail --silent --show-error --upload-file {} {}",
            quote(source),
            quote(url)
        ),
        "parameters": {
            "method": "PUT",
            "url": url,
            "data": {},
            "files": source,
            "json": {},
            "headers": {},
            "params": {},
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upload_command_is_one_shell_word_per_value() {
        let url = "http://s3:9000/b/k?X-Amz-Signature=a&X-Amz-Date=b";
        let data = upload_instructions("/tmp/it's a file", url);
        let words = shlex::split(data["command"].as_str().unwrap()).unwrap();
        assert_eq!(
            words,
            [
                "curl",
                "--fail",
                "--silent",
                "--show-error",
                "--upload-file",
                "/tmp/it's a file",
                url
            ]
        );
    }

    #[test]
    fn client_paths_name_their_file() {
        assert_eq!(file_name("/home/me/data.bin"), "data.bin");
        assert_eq!(file_name("C:\\\\data\\\\x.bin"), "x.bin");
        assert_eq!(file_name("x"), "x");
    }
}
