//! v1 `/compute`: job submission (a local script uploaded, or one already on the system),
//! cancellation, and the job, accounting and scheduler queries — each answering with a
//! task ([`super::tasks`]). A submission or a cancel runs when asked and its task carries
//! the outcome; a query runs when its task is read.

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use chrono::{Local, NaiveDate, NaiveDateTime, NaiveTime, TimeZone};
use futures::StreamExt;
use ironcrest_scheduler::job::is_valid_job_id;
use ironcrest_scheduler::{Job, JobDescription, JobEnv, JobFilter, SchedulerError, TimeWindow};
use ironcrest_services::{ServiceError, compute, status};
use serde_json::{Map, Value, json};

use super::MachineCall;
use super::error::V1Error;
use super::form::{Fields, MAX_FIELDS, V1Form, V1Query, invalid};
use super::tasks::{Page, Progress, SchedulerQuery, Service, Task, TaskId, created, local_time};
use crate::AppState;
use crate::call::Call;
use crate::error::ApiError;
use crate::multipart::{FilePart, MultipartError};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/compute/jobs/upload", post(submit_upload))
        .route("/compute/jobs/path", post(submit_path))
        .route("/compute/jobs", get(jobs))
        .route("/compute/jobs/{jobid}", get(job).delete(cancel))
        .route("/compute/acct", get(acct))
        .route("/compute/nodes", get(nodes))
        .route("/compute/nodes/{nodename}", get(node))
        .route("/compute/partitions", get(partitions))
        .route("/compute/reservations", get(reservations))
}

/// The largest batch script `jobs/upload` takes.
const MAX_SCRIPT: usize = 1024 * 1024;

/// How many jobs of a listing have their files looked up (one scheduler query each): v1's
/// default page size.
const JOB_FILES_LOOKUPS: usize = 25;

/// `env`: a JSON object of names to values (v1 sends it serialised in a form field).
fn environment(call: &MachineCall, fields: &Fields) -> Result<Option<JobEnv>, V1Error> {
    let Some(text) = fields.present("env").map_err(|e| call.refuse(e))? else {
        return Ok(None);
    };
    let map: BTreeMap<String, Value> = serde_json::from_str(text)
        .map_err(|e| call.refuse(invalid("env", &format!("is not a JSON object: {e}"))))?;
    let map = map
        .into_iter()
        .map(|(name, value)| {
            let value = match value {
                Value::String(text) => text,
                other => other.to_string(),
            };
            (name, value)
        })
        .collect();
    Ok(Some(JobEnv::Map(map)))
}

/// Submits `job` and answers with its task: the job, or the scheduler's refusal.
async fn submit(
    state: &AppState,
    call: &MachineCall,
    mut job: JobDescription,
    fields: &Fields,
) -> Result<Response, V1Error> {
    job.account = fields
        .present("account")
        .map_err(|e| call.refuse(e))?
        .map(str::to_string);
    job.env = Some(environment(call, fields)?.unwrap_or(JobEnv::Map(BTreeMap::new())));
    if let Some(path) = &job.script_path {
        call.audit("script_path", path);
    }
    call.audit("working_directory", &job.working_directory);
    let task = match compute::submit(&call.cluster, &call.user.caller, &job).await {
        Ok(job_id) => {
            call.audit("job_id", &job_id);
            Task::Submitted { job: job_id }
        }
        Err(error) => refused_now(call, Service::Compute, error)?,
    };
    let id = TaskId::new(call.cluster.name(), &call.user.caller.username, task);
    Ok(created(state, StatusCode::CREATED, &id))
}

/// An operation the scheduler refused when it was asked: v1 reports that in the task
/// (status 400 and the message). Failures of the cluster itself (unreachable, a timeout)
/// and invalid requests are errors of the request.
fn refused_now(call: &MachineCall, service: Service, error: ServiceError) -> Result<Task, V1Error> {
    match error {
        ServiceError::Scheduler(
            error @ (SchedulerError::Rejected { .. }
            | SchedulerError::PolicyLimit { .. }
            | SchedulerError::AccessDenied { .. }
            | SchedulerError::JobNotFound
            | SchedulerError::JobNotActive { .. }
            | SchedulerError::InvalidArgument(_)),
        ) => Ok(Task::Failed {
            service,
            message: error.to_string(),
        }),
        error => Err(call.fail(error)),
    }
}

/// `POST compute/jobs/upload`: the script is the form's `file` (after `account` and
/// `env`); it runs in the user's directory on the default work file system.
async fn submit_upload(
    State(state): State<AppState>,
    call: MachineCall,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, V1Error> {
    let refused = |message: String| {
        call.refuse(ApiError::Validation {
            location: "body",
            name: "file".into(),
            message,
        })
    };
    let (fields, file) = FilePart::with_fields(&headers, body, MAX_FIELDS)
        .await
        .map_err(|MultipartError(message)| refused(message))?;
    let mut file = file.ok_or_else(|| refused("Field required: `file`.".into()))?;
    let mut script = Vec::new();
    while let Some(chunk) = file
        .chunk()
        .await
        .map_err(|MultipartError(message)| refused(message))?
    {
        script.extend_from_slice(&chunk);
        if script.len() > MAX_SCRIPT {
            return Err(refused(format!("The script exceeds {MAX_SCRIPT} bytes.")));
        }
    }
    let script =
        String::from_utf8(script).map_err(|_| refused("The script is not UTF-8 text.".into()))?;
    let working_directory = default_work_dir(&call)?;
    let job = JobDescription {
        working_directory,
        script: Some(script),
        ..JobDescription::default()
    };
    submit(&state, &call, job, &Fields(fields)).await
}

/// The user's directory on the system's default work file system, where jobs whose script
/// was uploaded run (v1 ran them in a directory of its own there).
fn default_work_dir(call: &MachineCall) -> Result<String, V1Error> {
    let file_system = call
        .cluster
        .config
        .file_systems
        .iter()
        .find(|fs| fs.default_work_dir)
        .ok_or_else(|| {
            call.fail(ServiceError::Misconfigured(
                "No file system of this system is marked default_work_dir, so uploaded job scripts have no working directory.".into(),
            ))
        })?;
    Ok(format!(
        "{}/{}",
        file_system.path.trim_end_matches('/'),
        call.user.caller.username
    ))
}

/// `POST compute/jobs/path`: a script already on the system, run in its own directory.
async fn submit_path(
    State(state): State<AppState>,
    call: MachineCall,
    V1Form(form): V1Form,
) -> Result<Response, V1Error> {
    let path = form
        .text("targetPath")
        .map_err(|e| call.refuse(e))?
        .filter(|path| !path.is_empty())
        .ok_or_else(|| call.refuse(invalid("targetPath", "is required")))?;
    let directory = match path.rsplit_once('/') {
        Some(("", _)) => "/".to_string(),
        Some((directory, _)) => directory.to_string(),
        None => {
            return Err(call.refuse(invalid("targetPath", "must be an absolute path")));
        }
    };
    let job = JobDescription {
        working_directory: directory,
        script_path: Some(path.to_string()),
        ..JobDescription::default()
    };
    submit(&state, &call, job, &form).await
}

/// v1's `pageSize`/`pageNumber`: a page when `pageNumber` is given (25 entries by default).
fn page(call: &MachineCall, fields: &Fields) -> Result<Option<Page>, V1Error> {
    let number = fields.number("pageNumber").map_err(|e| call.refuse(e))?;
    let size = fields.number("pageSize").map_err(|e| call.refuse(e))?;
    Ok(number.map(|number| Page {
        size: size.unwrap_or(25).max(1),
        number,
    }))
}

/// A comma-separated list of job ids, each a job id.
fn job_ids(call: &MachineCall, fields: &Fields) -> Result<Vec<String>, V1Error> {
    let text = fields.present("jobs").map_err(|e| call.refuse(e))?;
    let ids: Vec<String> = text
        .unwrap_or_default()
        .split(',')
        .filter(|id| !id.is_empty())
        .map(str::to_string)
        .collect();
    if let Some(bad) = ids.iter().find(|id| !is_valid_job_id(id)) {
        return Err(call.refuse(invalid(
            "jobs",
            &format!("names {bad:?}, which is not a job id"),
        )));
    }
    Ok(ids)
}

/// Names of nodes, partitions or reservations: a comma-separated list.
fn names(call: &MachineCall, fields: &Fields, field: &str) -> Result<Vec<String>, V1Error> {
    Ok(fields
        .present(field)
        .map_err(|e| call.refuse(e))?
        .unwrap_or_default()
        .split(',')
        .filter(|name| !name.is_empty())
        .map(str::to_string)
        .collect())
}

fn task_for(state: &AppState, call: &MachineCall, task: Task) -> Response {
    let id = TaskId::new(call.cluster.name(), &call.user.caller.username, task);
    created(state, StatusCode::OK, &id)
}

async fn jobs(
    State(state): State<AppState>,
    call: MachineCall,
    V1Query(query): V1Query,
) -> Result<Response, V1Error> {
    let ids = job_ids(&call, &query)?;
    let page = page(&call, &query)?;
    Ok(task_for(&state, &call, Task::Jobs { ids, page }))
}

async fn job(
    State(state): State<AppState>,
    call: MachineCall,
    Path(job_id): Path<String>,
) -> Result<Response, V1Error> {
    if !is_valid_job_id(&job_id) {
        return Err(call.refuse(invalid("jobid", "is not a job id")));
    }
    let ids = vec![job_id];
    Ok(task_for(&state, &call, Task::Jobs { ids, page: None }))
}

async fn cancel(
    State(state): State<AppState>,
    call: MachineCall,
    Path(job_id): Path<String>,
) -> Result<Response, V1Error> {
    if !is_valid_job_id(&job_id) {
        return Err(call.refuse(invalid("jobid", "is not a job id")));
    }
    let task = match compute::cancel(&call.cluster, &call.user.caller, &job_id).await {
        Ok(()) => Task::Cancelled { job: job_id },
        Err(error) => refused_now(&call, Service::Compute, error)?,
    };
    Ok(task_for(&state, &call, task))
}

async fn acct(
    State(state): State<AppState>,
    call: MachineCall,
    V1Query(query): V1Query,
) -> Result<Response, V1Error> {
    let ids = job_ids(&call, &query)?;
    let text = |name| {
        query
            .present(name)
            .map(|value| value.map(str::to_string))
            .map_err(|e| call.refuse(e))
    };
    let (start, end) = (text("starttime")?, text("endtime")?);
    for (field, value) in [("starttime", &start), ("endtime", &end)] {
        if let Some(value) = value
            && sacct_time(value).is_none()
        {
            return Err(call.refuse(invalid(
                field,
                &format!("is not a time sacct reads: {value:?}"),
            )));
        }
    }
    let page = page(&call, &query)?;
    Ok(task_for(
        &state,
        &call,
        Task::Accounting {
            ids,
            start,
            end,
            page,
        },
    ))
}

async fn scheduler_query(
    state: &AppState,
    call: &MachineCall,
    what: SchedulerQuery,
    names: Vec<String>,
) -> Response {
    task_for(state, call, Task::Scheduler { what, names })
}

async fn nodes(
    State(state): State<AppState>,
    call: MachineCall,
    V1Query(query): V1Query,
) -> Result<Response, V1Error> {
    let names = names(&call, &query, "nodes")?;
    Ok(scheduler_query(&state, &call, SchedulerQuery::Nodes, names).await)
}

async fn node(
    State(state): State<AppState>,
    call: MachineCall,
    Path(name): Path<String>,
) -> Response {
    scheduler_query(&state, &call, SchedulerQuery::Nodes, vec![name]).await
}

async fn partitions(
    State(state): State<AppState>,
    call: MachineCall,
    V1Query(query): V1Query,
) -> Result<Response, V1Error> {
    let names = names(&call, &query, "partitions")?;
    Ok(scheduler_query(&state, &call, SchedulerQuery::Partitions, names).await)
}

async fn reservations(
    State(state): State<AppState>,
    call: MachineCall,
    V1Query(query): V1Query,
) -> Result<Response, V1Error> {
    let names = names(&call, &query, "reservations")?;
    Ok(scheduler_query(&state, &call, SchedulerQuery::Reservations, names).await)
}

/// A compute task's state now.
pub async fn progress(call: &Call, task: &Task) -> Progress {
    let answered = match task {
        Task::Submitted { job } => submitted(call, job).await,
        Task::Cancelled { job } => Ok(Progress::done(json!(format!("Job {job} cancelled")))),
        Task::Jobs { ids, page } => queue(call, ids, *page).await,
        Task::Accounting {
            ids,
            start,
            end,
            page,
        } => accounting(call, ids, start.as_deref(), end.as_deref(), *page).await,
        Task::Scheduler { what, names } => scheduler(call, *what, names).await,
        _ => Ok(Progress::failed("Not a compute task.")),
    };
    answered.unwrap_or_else(|error| Progress::failed(error.to_string()))
}

/// A submitted job as v1's submission result: the job id and its files.
pub async fn submitted(call: &Call, job_id: &str) -> Result<Progress, ServiceError> {
    let mut data = Map::new();
    data.insert("result".into(), json!("Job submitted"));
    data.insert(
        "jobid".into(),
        job_id
            .parse::<u64>()
            .map_or_else(|_| json!(job_id), |id| json!(id)),
    );
    data.extend(job_files(call, job_id).await);
    Ok(Progress::done(Value::Object(data)))
}

/// `job_file`, `job_file_out`, `job_file_err` (the scheduler's record of the job; v1's
/// placeholders where it has none) and v1's `job_data_out`/`job_data_err`, which are left
/// empty (read the files with `utilities/head` or `tail`).
async fn job_files(call: &Call, job_id: &str) -> Map<String, Value> {
    let metadata = compute::metadata(&call.cluster, &call.user.caller, job_id)
        .await
        .ok();
    let file = |value: Option<&String>, absent: &str| json!(value.map_or(absent, String::as_str));
    let mut data = Map::new();
    data.insert("job_file".into(), json!("command-not-found"));
    data.insert(
        "job_file_out".into(),
        file(
            metadata.as_ref().and_then(|m| m.standard_output.as_ref()),
            "stdout-file-not-found",
        ),
    );
    data.insert(
        "job_file_err".into(),
        file(
            metadata.as_ref().and_then(|m| m.standard_error.as_ref()),
            "stderr-file-not-found",
        ),
    );
    data.insert("job_data_out".into(), json!(""));
    data.insert("job_data_err".into(), json!(""));
    data
}

/// `D-HH:MM:SS`, `H:MM:SS` or `M:SS`, as `squeue` prints times.
fn squeue_duration(seconds: i64) -> String {
    let seconds = seconds.max(0);
    let (days, hours, minutes, secs) = (
        seconds / 86_400,
        seconds % 86_400 / 3600,
        seconds % 3600 / 60,
        seconds % 60,
    );
    if days > 0 {
        format!("{days}-{hours:02}:{minutes:02}:{secs:02}")
    } else if hours > 0 {
        format!("{hours}:{minutes:02}:{secs:02}")
    } else {
        format!("{minutes}:{secs:02}")
    }
}

/// `[D-]HH:MM:SS`, as `sacct` prints durations.
fn sacct_duration(seconds: i64) -> String {
    let seconds = seconds.max(0);
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    let clock = format!(
        "{:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    );
    if days > 0 {
        format!("{days}-{clock}")
    } else {
        clock
    }
}

/// A job as v1's queue listing (`squeue`) shows it.
fn queued(job: &Job) -> Map<String, Value> {
    let elapsed = job.time.elapsed.unwrap_or_default();
    let time_left = match job.time.limit {
        Some(limit) if job.is_active() => squeue_duration(limit - elapsed),
        Some(_) => "0:00".to_string(),
        None => "UNLIMITED".to_string(),
    };
    let nodelist = if job.nodes.is_empty() {
        job.status
            .state_reason
            .as_ref()
            .map_or_else(String::new, |reason| format!("({reason})"))
    } else {
        job.nodes.clone()
    };
    let mut record = Map::new();
    record.insert("jobid".into(), json!(job.job_id));
    record.insert("partition".into(), json!(job.partition));
    record.insert("name".into(), json!(job.name));
    record.insert("user".into(), json!(job.user.clone().unwrap_or_default()));
    record.insert("state".into(), json!(job.status.state));
    record.insert(
        "start_time".into(),
        json!(job.time.start.map_or_else(|| "N/A".to_string(), local_time)),
    );
    record.insert("time".into(), json!(squeue_duration(elapsed)));
    record.insert("time_left".into(), json!(time_left));
    record.insert("nodes".into(), json!(job.allocation_nodes.to_string()));
    record.insert("nodelist".into(), json!(nodelist));
    record
}

/// The job ids asked for, each looked up (one cached query each); an id the scheduler does
/// not know is left out, and if it knows none of them the task fails as `squeue` does.
async fn named_jobs(call: &Call, ids: &[String]) -> Result<Vec<Job>, ServiceError> {
    let found = futures::future::join_all(
        ids.iter()
            .map(|id| compute::job(&call.cluster, &call.user.caller, id)),
    )
    .await;
    let mut jobs = Vec::new();
    for result in found {
        match result {
            Ok(job) => jobs.push(job),
            Err(ServiceError::Scheduler(SchedulerError::JobNotFound)) => {}
            Err(error) => return Err(error),
        }
    }
    if jobs.is_empty() && !ids.is_empty() {
        return Err(ServiceError::Scheduler(SchedulerError::JobNotFound));
    }
    Ok(jobs)
}

fn paged<T>(items: Vec<T>, page: Option<Page>) -> Result<Vec<T>, String> {
    let Some(Page { size, number }) = page else {
        return Ok(items);
    };
    let pages = (items.len() as u64).div_ceil(size).max(1);
    if number >= pages {
        return Err(format!(
            "pageNumber ({number}) is greater than total pages ({pages})"
        ));
    }
    Ok(items
        .into_iter()
        .skip((number * size) as usize)
        .take(size as usize)
        .collect())
}

/// `compute/jobs`: the caller's active jobs (or the named ones, finished too), by index.
async fn queue(call: &Call, ids: &[String], page: Option<Page>) -> Result<Progress, ServiceError> {
    let jobs = if ids.is_empty() {
        let all = compute::jobs(&call.cluster, &call.user.caller, JobFilter::default()).await?;
        all.into_iter().filter(Job::is_active).collect()
    } else {
        named_jobs(call, ids).await?
    };
    let jobs = match paged(jobs, page) {
        Ok(jobs) => jobs,
        Err(message) => return Ok(Progress::failed(message)),
    };
    let looked_up: Vec<String> = jobs
        .iter()
        .take(JOB_FILES_LOOKUPS)
        .map(|job| job.job_id.clone())
        .collect();
    let files = futures::stream::iter(looked_up)
        .map(|job_id| async move { job_files(call, &job_id).await })
        .buffered(4)
        .collect::<Vec<_>>()
        .await;
    let mut data = Map::new();
    for (index, job) in jobs.iter().enumerate() {
        let mut record = queued(job);
        match files.get(index) {
            Some(files) => record.extend(files.clone()),
            None => {
                record.insert(
                    "job_info_extra".into(),
                    json!(format!(
                        "Job files are given for the first {JOB_FILES_LOOKUPS} jobs of a listing: ask for fewer jobs (jobs, pageSize)."
                    )),
                );
            }
        }
        data.insert(index.to_string(), Value::Object(record));
    }
    Ok(Progress::done(Value::Object(data)))
}

/// A time as `sacct --starttime` takes it (the common forms), in this server's time zone:
/// `YYYY-MM-DD[THH:MM[:SS]]`, `MM/DD[/YY][-HH:MM[:SS]]`, `HH:MM[:SS]` (today).
pub fn sacct_time(text: &str) -> Option<i64> {
    let local = |time: NaiveDateTime| {
        Local
            .from_local_datetime(&time)
            .earliest()
            .map(|t| t.timestamp())
    };
    for format in ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"] {
        if let Ok(time) = NaiveDateTime::parse_from_str(text, format) {
            return local(time);
        }
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return local(date.and_time(NaiveTime::MIN));
    }
    let today = Local::now().date_naive();
    for format in ["%H:%M:%S", "%H:%M"] {
        if let Ok(time) = NaiveTime::parse_from_str(text, format) {
            return local(today.and_time(time));
        }
    }
    let (date, time) = text.split_once('-').unwrap_or((text, ""));
    let year = chrono::Datelike::year(&today);
    let date = NaiveDate::parse_from_str(date, "%m/%d/%y")
        .or_else(|_| NaiveDate::parse_from_str(&format!("{date}/{year}"), "%m/%d/%Y"))
        .ok()?;
    let time = match time {
        "" => NaiveTime::MIN,
        time => NaiveTime::parse_from_str(time, "%H:%M:%S")
            .or_else(|_| NaiveTime::parse_from_str(time, "%H:%M"))
            .ok()?,
    };
    local(date.and_time(time))
}

/// The narrowest listing window reaching back to `start` (at most seven days back).
fn window_from(start: i64, now: i64) -> TimeWindow {
    let back = now - start;
    [
        TimeWindow::OneHour,
        TimeWindow::EightHours,
        TimeWindow::OneDay,
        TimeWindow::ThreeDays,
    ]
    .into_iter()
    .find(|window| window.seconds() >= back)
    .unwrap_or(TimeWindow::SevenDays)
}

/// A job as v1's accounting (`sacct`) shows it.
fn accounted(job: &Job) -> Map<String, Value> {
    let elapsed = sacct_duration(job.time.elapsed.unwrap_or_default());
    let end = job
        .time
        .end
        .map_or_else(|| "Unknown".to_string(), local_time);
    let exit_code = format!(
        "{}:{}",
        job.status.exit_code.unwrap_or_default(),
        job.status.interrupt_signal.unwrap_or_default()
    );
    let mut record = Map::new();
    record.insert("jobid".into(), json!(job.job_id));
    record.insert("partition".into(), json!(job.partition));
    record.insert("name".into(), json!(job.name));
    record.insert("user".into(), json!(job.user.clone().unwrap_or_default()));
    record.insert("state".into(), json!(job.status.state));
    record.insert(
        "start_time".into(),
        json!(
            job.time
                .start
                .map_or_else(|| "Unknown".to_string(), local_time)
        ),
    );
    record.insert("time".into(), json!(elapsed));
    record.insert("cpu_time".into(), json!(elapsed));
    record.insert("elapsed_time".into(), json!(elapsed));
    record.insert("termination_time".into(), json!(end));
    record.insert("time_left".into(), json!(end));
    record.insert("nodes".into(), json!(job.allocation_nodes.to_string()));
    record.insert("nodelist".into(), json!(job.nodes));
    record.insert("exit_code".into(), json!(exit_code));
    record
}

/// `compute/acct`: the named jobs, or the caller's jobs that ran in the window (from
/// `starttime`, by default today's midnight as `sacct`'s, to `endtime` or now).
async fn accounting(
    call: &Call,
    ids: &[String],
    start: Option<&str>,
    end: Option<&str>,
    page: Option<Page>,
) -> Result<Progress, ServiceError> {
    let jobs = if ids.is_empty() {
        let now = chrono::Utc::now().timestamp();
        let midnight = Local::now().date_naive().and_time(NaiveTime::MIN);
        let start = start
            .and_then(sacct_time)
            .or_else(|| {
                Local
                    .from_local_datetime(&midnight)
                    .earliest()
                    .map(|t| t.timestamp())
            })
            .unwrap_or(now);
        let end = end.and_then(sacct_time).unwrap_or(now);
        let filter = JobFilter {
            time_window: window_from(start, now),
            ..JobFilter::default()
        };
        compute::jobs(&call.cluster, &call.user.caller, filter)
            .await?
            .into_iter()
            .filter(|job| {
                let began = job.time.start.unwrap_or(now);
                let ended = job.time.end.unwrap_or(now);
                ended >= start && began <= end
            })
            .collect()
    } else {
        match named_jobs(call, ids).await {
            Err(ServiceError::Scheduler(SchedulerError::JobNotFound)) => Vec::new(),
            found => found?,
        }
    };
    let jobs = match paged(jobs, page) {
        Ok(jobs) => jobs,
        Err(message) => return Ok(Progress::failed(message)),
    };
    Ok(Progress::done(Value::Array(
        jobs.iter()
            .map(|job| Value::Object(accounted(job)))
            .collect(),
    )))
}

/// `compute/nodes|partitions|reservations`, in v1's shapes (Slurm's field names).
async fn scheduler(
    call: &Call,
    what: SchedulerQuery,
    names: &[String],
) -> Result<Progress, ServiceError> {
    let wanted = |name: &str| names.is_empty() || names.iter().any(|n| n == name);
    let (cluster, user) = (&call.cluster, &call.user.caller);
    let records: Vec<Value> = match what {
        SchedulerQuery::Nodes => status::nodes(cluster, user)
            .await?
            .into_iter()
            .filter(|node| wanted(&node.name))
            .map(|node| {
                json!({
                    "NodeName": node.name,
                    "ActiveFeatures": node.features.unwrap_or_default(),
                    "Partitions": node.partitions.unwrap_or_default(),
                    "State": node.state,
                })
            })
            .collect(),
        SchedulerQuery::Partitions => status::partitions(cluster, user, true)
            .await?
            .into_iter()
            .filter(|partition| wanted(&partition.name))
            .map(|partition| {
                json!({
                    "PartitionName": partition.name,
                    "State": partition.partition,
                    "TotalCPUs": partition.cpus.map(|n| n.to_string()).unwrap_or_default(),
                    "TotalNodes": partition.total_nodes.map(|n| n.to_string()).unwrap_or_default(),
                    "Default": "UNKNOWN",
                })
            })
            .collect(),
        SchedulerQuery::Reservations => status::reservations(cluster, user)
            .await?
            .into_iter()
            .filter(|reservation| wanted(&reservation.name))
            .map(|reservation| {
                json!({
                    "ReservationName": reservation.name,
                    "State": reservation.state.unwrap_or_default().to_uppercase(),
                    "Nodes": reservation.node_list,
                    "StartTime": local_time(reservation.start_time),
                    "EndTime": local_time(reservation.end_time),
                    "Features": reservation.features.map(|f| f.split('&').map(str::to_string).collect::<Vec<_>>()).unwrap_or_default(),
                })
            })
            .collect(),
    };
    if records.is_empty() && !names.is_empty() {
        return Ok(Progress::failed(format!(
            "{} not found: {}",
            match what {
                SchedulerQuery::Nodes => "Nodes",
                SchedulerQuery::Partitions => "Partitions",
                SchedulerQuery::Reservations => "Reservations",
            },
            names.join(",")
        )));
    }
    Ok(Progress::done(Value::Array(records)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_the_tools_print_them() {
        assert_eq!(squeue_duration(5), "0:05");
        assert_eq!(squeue_duration(3723), "1:02:03");
        assert_eq!(squeue_duration(90_061), "1-01:01:01");
        assert_eq!(sacct_duration(5), "00:00:05");
        assert_eq!(sacct_duration(90_061), "1-01:01:01");
    }

    #[test]
    fn sacct_times_are_read_in_the_common_forms() {
        let day = sacct_time("2024-03-05").unwrap();
        assert_eq!(sacct_time("2024-03-05T00:00"), Some(day));
        assert_eq!(sacct_time("2024-03-05T00:00:00"), Some(day));
        assert_eq!(sacct_time("03/05/24"), Some(day));
        assert_eq!(sacct_time("03/05/24-01:00"), Some(day + 3600));
        assert!(sacct_time("10:30").is_some());
        assert!(sacct_time("03/05").is_some());
        assert_eq!(sacct_time("yesterday"), None);
        assert_eq!(sacct_time("2024-13-01"), None);
    }

    #[test]
    fn pages_are_cut_and_checked() {
        let items: Vec<u32> = (0..30).collect();
        assert_eq!(paged(items.clone(), None).unwrap().len(), 30);
        let page = |size, number| Some(Page { size, number });
        assert_eq!(
            paged(items.clone(), page(25, 1)).unwrap(),
            (25..30).collect::<Vec<_>>()
        );
        assert!(paged(items.clone(), page(25, 2)).is_err());
        assert_eq!(
            paged(Vec::<u32>::new(), page(25, 0)).unwrap(),
            Vec::<u32>::new()
        );
    }

    #[test]
    fn windows_reach_back_to_the_start() {
        let now = 1_000_000;
        assert_eq!(window_from(now - 60, now), TimeWindow::OneHour);
        assert_eq!(window_from(now - 4 * 3600, now), TimeWindow::EightHours);
        assert_eq!(window_from(now - 30 * 86_400, now), TimeWindow::SevenDays);
    }
}
