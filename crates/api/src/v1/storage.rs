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
use ironcrest_services::filesystem::{self, Compression};
use ironcrest_services::transfer::{self, JobOptions, Method, TransferJob, TransferMethod};
use ironcrest_services::{ServiceError, compute};
use serde_json::{Value, json};

use super::MachineCall;
use super::compute as v1_compute;
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

/// The task of a transfer job just submitted, or of the scheduler's refusal of it.
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
        Err(ServiceError::Scheduler(
            error @ (SchedulerError::Rejected { .. }
            | SchedulerError::PolicyLimit { .. }
            | SchedulerError::AccessDenied { .. }),
        )) => Task::Failed {
            service: Service::Storage,
            message: error.to_string(),
        },
        Err(error) => return Err(call.fail(error)),
    };
    let id = TaskId::new(call.cluster.name(), &call.user.caller.username, task);
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
    answered(&state, &call, submitted)
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
    answered(&state, &call, submitted)
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
    answered(&state, &call, submitted)
}

async fn rm(
    State(state): State<AppState>,
    call: MachineCall,
    V1Form(form): V1Form,
) -> Result<Response, V1Error> {
    let target = path(&call, &form, "targetPath", "path")?;
    let options = options(&call, &form)?;
    let submitted = transfer::rm(&call.cluster, &call.user.caller, target, options).await;
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
    answered(&state, &call, submitted)
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
    let task = match transfer::upload_whole(cluster, user, &target, account).await {
        Ok(staged) => {
            call.audit("transfer_job_id", &staged.job.job_id);
            Task::StagedUpload {
                job: staged.job.job_id,
                object: staged.object_key,
                source,
                target: String::from_utf8_lossy(&target).into_owned(),
            }
        }
        Err(ServiceError::Scheduler(error)) => Task::Failed {
            service: Service::Storage,
            message: error.to_string(),
        },
        Err(error) => return Err(call.fail(error)),
    };
    let id = TaskId::new(cluster.name(), &user.username, task);
    Ok(created(&state, StatusCode::CREATED, &id))
}

async fn download(
    State(state): State<AppState>,
    call: MachineCall,
    V1Form(form): V1Form,
) -> Result<Response, V1Error> {
    let source = path(&call, &form, "sourcePath", "path")?;
    let account = form.present("account").map_err(|e| call.refuse(e))?;
    let (cluster, user) = (&call.cluster, &call.user.caller);
    let task = match transfer::download(cluster, user, source, TransferMethod::S3, account).await {
        Ok((job, directives)) => {
            call.audit("transfer_job_id", &job.job_id);
            Task::StagedDownload {
                job: job.job_id,
                object: directives.object_key.unwrap_or_default(),
                source: String::from_utf8_lossy(source).into_owned(),
            }
        }
        Err(ServiceError::Scheduler(error)) => Task::Failed {
            service: Service::Storage,
            message: error.to_string(),
        },
        Err(error) => return Err(call.fail(error)),
    };
    let id = TaskId::new(cluster.name(), &user.username, task);
    Ok(created(&state, StatusCode::CREATED, &id))
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
    let (call, task, _) = reader
        .call_for(&state, id)
        .await?
        .ok_or_else(|| refuse(&format!("Task {id} does not exist")))?;
    let Task::StagedDownload { object, .. } = task else {
        return Err(refuse("Only a staged download's URL can be invalidated."));
    };
    transfer::delete_staged(&call.cluster, &call.user.caller, &object)
        .await
        .map_err(|error| V1Error::new(OPERATION, call.error(error)))?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"success": "URL invalidated successfully"})),
    )
        .into_response())
}

/// A transfer job's task: done once submitted, its result the job and its files (v1 read
/// the job's outcome from its files, or its state through `compute/jobs`).
pub async fn transfer_job(call: &Call, job: &str) -> Progress {
    v1_compute::submitted(call, job)
        .await
        .unwrap_or_else(|error| Progress::failed(error.to_string()))
}

/// Where a staged transfer's job is: waiting or at work, done, or failed (and why).
enum JobOutcome {
    Active { running: bool },
    Done,
    Failed(String),
}

async fn outcome(call: &Call, job: &str) -> Result<JobOutcome, ServiceError> {
    let job = compute::job(&call.cluster, &call.user.caller, job).await?;
    Ok(if job.is_active() {
        JobOutcome::Active {
            running: job.status.state == "RUNNING",
        }
    } else if job.status.state == "COMPLETED" && job.status.exit_code.unwrap_or(0) == 0 {
        JobOutcome::Done
    } else {
        JobOutcome::Failed(format!(
            "The transfer job {} ended {}{}",
            job.job_id,
            job.status.state,
            job.status
                .exit_code
                .map_or_else(String::new, |code| format!(" (exit code {code})"))
        ))
    })
}

/// A staged transfer's task, in v1's statuses: an upload waits for the client's object
/// (111, with the command that sends it), then the job fetches it (112 queued, 113 at
/// work) into place (114) or fails (115); a download's job stages the file (116) and its
/// URL is handed out (117), or it fails (118).
pub async fn staged(call: &Call, task: &Task) -> Progress {
    let system = call.cluster.name().to_string();
    match task {
        Task::StagedUpload {
            job,
            object,
            source,
            target,
        } => {
            let base = json!({"source": source, "target": target, "system_name": system, "user": call.user.caller.username});
            let with = |status: u16, msg: Value| {
                let mut data = base.clone();
                data["msg"] = msg;
                data["status"] = json!(status.to_string());
                Progress { status, data }
            };
            let state = async {
                let outcome = outcome(call, job).await?;
                let uploaded = match outcome {
                    JobOutcome::Active { .. } => {
                        transfer::staged_object_exists(&call.cluster, &call.user.caller, object)
                            .await?
                    }
                    _ => true,
                };
                Ok::<_, ServiceError>((outcome, uploaded))
            };
            match state.await {
                Ok((JobOutcome::Active { .. }, false)) => {
                    match transfer::staged_url(
                        &call.cluster,
                        &call.user.caller,
                        object,
                        Method::Put,
                    ) {
                        Ok(url) => with(111, upload_instructions(source, &url)),
                        Err(error) => with(115, json!(error.to_string())),
                    }
                }
                Ok((JobOutcome::Active { running: false }, true)) => with(
                    112,
                    json!("Object Storage confirms that upload to Object Storage has finished"),
                ),
                Ok((JobOutcome::Active { running: true }, true)) => with(
                    113,
                    json!("Download from Object Storage to server has started"),
                ),
                Ok((JobOutcome::Done, _)) => with(
                    114,
                    json!("Download from Object Storage to server has finished"),
                ),
                Ok((JobOutcome::Failed(message), _)) => with(115, json!(message)),
                Err(error) => with(115, json!(error.to_string())),
            }
        }
        Task::StagedDownload {
            job,
            object,
            source,
        } => {
            let base = json!({"source": source, "system_name": system});
            let with = |status: u16, key: &str, value: Value| {
                let mut data = base.clone();
                data[key] = value;
                Progress { status, data }
            };
            match outcome(call, job).await {
                Ok(JobOutcome::Active { .. }) => Progress {
                    status: 116,
                    data: base,
                },
                Ok(JobOutcome::Done) => {
                    match transfer::staged_url(
                        &call.cluster,
                        &call.user.caller,
                        object,
                        Method::Get,
                    ) {
                        Ok(url) => with(117, "url", json!(url)),
                        Err(error) => with(118, "error", json!(error.to_string())),
                    }
                }
                Ok(JobOutcome::Failed(message)) => with(118, "error", json!(message)),
                Err(error) => with(118, "error", json!(error.to_string())),
            }
        }
        _ => Progress::failed("Not a staged transfer."),
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
