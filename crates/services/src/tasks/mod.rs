//! Tasks: every asynchronous operation Ironcrest started for a user, as one view — the
//! transfer jobs (`mv`, `cp`, `rm`, `compress`, `extract`), the staged uploads and downloads
//! (their S3 side and their job), and the compute jobs submitted through the API (linked,
//! not copied: a task names the job). See docs/tasks-events-retries.md.
//!
//! **Nothing is kept in Ironcrest.** A task's state is read from where the work is, so any
//! replica answers for any task, after any restart:
//!
//! - **The scheduler.** Every job Ironcrest submits for a request carries its comment
//!   ([`ironcrest_scheduler::JobComment`]); a transfer job's adds `task <kind> <work id>
//!   [args <arguments>]`: the operation, the id that names its log files and staged object,
//!   and its arguments (base64url JSON of [`TaskArguments`], left out when Slurm's 1,024-byte
//!   comment cannot hold them). A job with Ironcrest's comment but no task is a compute job
//!   submitted through the API. The job's record gives the state, times and exit code.
//! - **The S3 staging area.** A staged task's object is `<work id>/<file name>` in the user's
//!   bucket: the multipart upload in progress (and its parts) or the completed object.
//! - **The job's log files**, named after the work id: the result line of a finished
//!   transfer (read only when one task is asked for).
//!
//! **A task id is `<kind>-<job id>`** (`upload-1234`, `job-1240`): the job finds everything
//! else (its comment names the work id, which names the S3 object and the logs), and the
//! kind makes an id say what it is; an id whose kind is not its job's is not found. Every
//! task has a job: a staged transfer's job is submitted with its multipart upload, and an
//! upload whose job could not be submitted is aborted at once.
//!
//! **Costs.** A listing is one job listing (the jobs cache's, shared with
//! `GET /compute/{system}/jobs`), one read of the jobs' comments (its own cache), and, if it
//! holds staged tasks, one listing of the user's multipart uploads and one of their objects:
//! never a command or an S3 request per task. One task adds a job lookup, the S3 state
//! under its work id (its parts, when its upload is in progress) and, once a transfer has
//! ended, the last line of its log.

mod state;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ironcrest_config::ProbedService;
use ironcrest_remote::Caller;
use ironcrest_s3::{S3Client, StagedObject, StoredObject, UploadInProgress, UploadedPart};
use ironcrest_scheduler::job::{can_exist, is_valid_job_id};
use ironcrest_scheduler::{
    CommentedJob, Job, JobComment, JobFilter, SchedulerError, TaskNote, TimeWindow,
};
use serde::{Deserialize, Serialize};

use crate::cache::Query;
use crate::filesystem::Compression;
use crate::transfer::{TransferKind, TransferLogs};
use crate::{Cluster, ServiceError, compute, filesystem, transfer};

/// What a task does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskKind {
    /// A transfer job, staged or not.
    Transfer(TransferKind),
    /// A job submitted through `POST /compute/{system}/jobs`.
    Job,
}

impl TaskKind {
    pub const ALL: [TaskKind; 9] = [
        Self::Transfer(TransferKind::Mv),
        Self::Transfer(TransferKind::Cp),
        Self::Transfer(TransferKind::Rsync),
        Self::Transfer(TransferKind::Rm),
        Self::Transfer(TransferKind::Compress),
        Self::Transfer(TransferKind::Extract),
        Self::Transfer(TransferKind::Upload),
        Self::Transfer(TransferKind::Download),
        Self::Job,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transfer(kind) => kind.as_str(),
            Self::Job => "job",
        }
    }

    pub fn named(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// The kind of a job with Ironcrest's comment: a compute job without a task note;
    /// `None` for a note of a kind this version does not know.
    fn of(note: Option<&TaskNote>) -> Option<Self> {
        match note {
            None => Some(Self::Job),
            Some(note) => TransferKind::named(&note.kind).map(Self::Transfer),
        }
    }

    fn is_staged(self) -> bool {
        matches!(self, Self::Transfer(kind) if kind.is_staged())
    }
}

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskState {
    /// Waiting: the job is queued, or a staged upload waits for the client's data.
    Pending,
    /// The job is at work.
    Running,
    Succeeded,
    Failed,
    Cancelled,
    /// A staged upload whose data never arrived before its deadline, or a staged download
    /// whose object has expired from the S3 store.
    Expired,
}

impl TaskState {
    pub const ALL: [TaskState; 6] = [
        Self::Pending,
        Self::Running,
        Self::Succeeded,
        Self::Failed,
        Self::Cancelled,
        Self::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
        }
    }

    pub fn named(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == name)
    }

    /// Whether the task has ended (nothing will change it any more but S3's expiry).
    pub fn is_final(self) -> bool {
        !matches!(self, Self::Pending | Self::Running)
    }
}

/// A task's id: `<kind>-<job id>` (see the module's documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskId {
    pub kind: TaskKind,
    pub job_id: String,
}

impl TaskId {
    /// Reads an id; one of another form is a 400 naming `task_id`, one whose job id is too
    /// large to name a job is not found.
    pub fn parse(id: &str) -> Result<Self, ServiceError> {
        let invalid = || ServiceError::InvalidField {
            field: "task_id",
            message: format!(
                "Invalid task id {id:?}: a task id is <kind>-<job id>, e.g. upload-1234, the kind one of {}.",
                TaskKind::ALL.map(TaskKind::as_str).join(", ")
            ),
        };
        let (kind, job_id) = id.split_once('-').ok_or_else(invalid)?;
        let kind = TaskKind::named(kind).ok_or_else(invalid)?;
        if !is_valid_job_id(job_id) {
            return Err(invalid());
        }
        if !can_exist(job_id) {
            return Err(ServiceError::TaskNotFound(id.to_string()));
        }
        Ok(Self {
            kind,
            job_id: job_id.to_string(),
        })
    }

    fn job_number(&self) -> u64 {
        self.job_id.parse().unwrap_or(0)
    }
}

impl std::fmt::Display for TaskId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.kind.as_str(), self.job_id)
    }
}

/// The arguments of a transfer, as its job's comment records them (paths as the API shows
/// names). Absent members were not given, or do not apply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskArguments {
    /// `rm`'s path, an upload's target, a download's source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dereference: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<Compression>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_pattern: Option<String>,
    /// A staged transfer's size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

impl TaskArguments {
    /// The note a transfer job of `kind` under `work` carries in its comment.
    pub(crate) fn note(&self, kind: TransferKind, work: uuid::Uuid) -> TaskNote {
        let json = serde_json::to_vec(self).expect("arguments serialise");
        TaskNote {
            kind: kind.as_str().to_string(),
            work_id: work.simple().to_string(),
            arguments: Some(URL_SAFE_NO_PAD.encode(json)),
        }
    }

    /// The arguments a comment recorded; `None` if they are not there or not readable.
    fn read(note: &TaskNote) -> Option<Self> {
        let json = URL_SAFE_NO_PAD.decode(note.arguments.as_deref()?).ok()?;
        serde_json::from_slice(&json).ok()
    }
}

/// How far a task has come. The scheduler's view always; parts and bytes for a staged
/// transfer where they can be known; the result line once a transfer has ended, when one
/// task is asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskProgress {
    /// The job's state as the scheduler names it (`PENDING`, `RUNNING`, `COMPLETED`, …).
    pub job_state: String,
    pub job_state_reason: Option<String>,
    pub exit_code: Option<i64>,
    /// A staged transfer's parts and bytes in all.
    pub parts: Option<u64>,
    pub bytes: Option<u64>,
    /// The parts and bytes in S3 so far: an upload's sent by the client, a download's by
    /// its job. Known from the upload's parts (one task) or once the object is complete.
    pub parts_done: Option<u64>,
    pub bytes_done: Option<u64>,
    /// The last line a finished transfer job printed (its success sentence or its error).
    pub result: Option<String>,
}

/// One task, as every wire form shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub id: TaskId,
    pub state: TaskState,
    /// Epoch seconds: the job's submission; the last change known (a job's start or end, a
    /// part or object arriving in S3).
    pub created: Option<i64>,
    pub updated: Option<i64>,
    /// A transfer's arguments; `None` for a compute job (see its job) or when the comment
    /// could not hold them.
    pub arguments: Option<TaskArguments>,
    pub progress: TaskProgress,
    /// Why a failed or expired task ended so.
    pub error: Option<String>,
    /// A transfer job's log files.
    pub logs: Option<TransferLogs>,
    /// The id that names a transfer's log files and staged object, as its job's comment
    /// recorded it.
    pub work: Option<uuid::Uuid>,
}

impl Task {
    pub fn kind(&self) -> TaskKind {
        self.id.kind
    }

    pub fn job_id(&self) -> &str {
        &self.id.job_id
    }
}

/// Which of the user's tasks a listing shows: newest (highest job id) first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskFilter {
    /// Only these kinds; every kind when empty.
    pub kinds: Vec<TaskKind>,
    /// Only these states; every state when empty.
    pub states: Vec<TaskState>,
    /// Tasks whose job is active or ended within this window.
    pub window: TimeWindow,
    /// Only tasks older than this one (the last task of the previous page).
    pub after: Option<TaskId>,
    pub limit: usize,
}

impl Default for TaskFilter {
    fn default() -> Self {
        Self {
            kinds: Vec::new(),
            states: Vec::new(),
            window: TimeWindow::default(),
            after: None,
            limit: DEFAULT_PAGE,
        }
    }
}

/// Tasks a page holds unless the filter says otherwise.
pub const DEFAULT_PAGE: usize = 100;
/// The most a page may hold.
pub const MAX_PAGE: usize = 1000;

/// A page of tasks; `more` when older ones matched too (ask again `after` the last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskPage {
    pub tasks: Vec<Task>,
    pub more: bool,
}

/// The user's tasks that `filter` selects.
pub async fn list(
    cluster: &Cluster,
    user: &Caller,
    filter: &TaskFilter,
) -> Result<TaskPage, ServiceError> {
    cluster.require_healthy(ProbedService::Scheduler)?;
    let listing = JobFilter {
        time_window: filter.window,
        ..JobFilter::default()
    };
    let (jobs, (comments, _)) = tokio::try_join!(
        compute::jobs(cluster, user, listing),
        read_comments(cluster, user, filter.window),
    )?;
    let sources = sources(jobs, &comments, filter);
    let staging = if sources.iter().any(|source| source.id.kind.is_staged()) {
        staging_area(cluster)?
    } else {
        None
    };
    let staged = match staging {
        Some(staging) => Some(snapshot(staging, user).await?),
        None => None,
    };
    let now = now();
    let tasks = sources.into_iter().map(|source| {
        let view = source
            .work()
            .and_then(|work| staged.as_ref().map(|all| all.of(work)));
        source.task(cluster, user, view.as_ref(), now)
    });
    Ok(page(tasks, filter))
}

/// The jobs that do tasks of the kinds `filter` asks for (older than its `after`), newest
/// first: those among `jobs` whose comment is Ironcrest's.
fn sources(jobs: Vec<Job>, comments: &[CommentedJob], filter: &TaskFilter) -> Vec<Source> {
    let by_job: HashMap<&str, &JobComment> = comments
        .iter()
        .map(|commented| (commented.job_id.as_str(), &commented.comment))
        .collect();
    let after = filter.after.as_ref().map(TaskId::job_number);
    let mut sources: Vec<Source> = jobs
        .into_iter()
        .filter_map(|job| {
            let comment = by_job.get(job.job_id.as_str())?;
            let kind = TaskKind::of(comment.task.as_ref())?;
            Some(Source {
                id: TaskId {
                    kind,
                    job_id: job.job_id.clone(),
                },
                note: comment.task.clone(),
                job,
            })
        })
        .filter(|source| filter.kinds.is_empty() || filter.kinds.contains(&source.id.kind))
        .filter(|source| after.is_none_or(|after| source.id.job_number() < after))
        .collect();
    sources.sort_by_key(|source| std::cmp::Reverse(source.id.job_number()));
    sources
}

/// The first `filter.limit` of `tasks` in the states it asks for, and whether more follow.
fn page(tasks: impl Iterator<Item = Task>, filter: &TaskFilter) -> TaskPage {
    let mut tasks: Vec<Task> = tasks
        .filter(|task| filter.states.is_empty() || filter.states.contains(&task.state))
        .take(filter.limit.saturating_add(1))
        .collect();
    let more = tasks.len() > filter.limit;
    tasks.truncate(filter.limit);
    TaskPage { tasks, more }
}

/// One of the user's tasks, with what a listing leaves out: the parts of an upload in
/// progress, and the result line of a transfer that has ended.
pub async fn get(cluster: &Cluster, user: &Caller, id: &TaskId) -> Result<Task, ServiceError> {
    let source = find(cluster, user, id).await?;
    let view = staged_view(cluster, user, &source, true).await?;
    let mut task = source.task(cluster, user, view.as_ref(), now());
    // A cancelled job's log ends with whatever its signal cut short: no result of its own.
    let ended = matches!(
        task.state,
        TaskState::Succeeded | TaskState::Failed | TaskState::Expired
    );
    if let (Some(logs), true) = (&task.logs, ended) {
        // A job that completed (a download may have expired since) printed its result on
        // its output; one that failed its reason on its error output.
        let completed = task.progress.job_state == "COMPLETED";
        let log = if completed {
            &logs.output_log
        } else {
            &logs.error_log
        };
        if let Some(line) = last_line(cluster, user, log).await {
            if !completed {
                task.error = Some(line.clone());
            }
            task.progress.result = Some(line);
        }
    }
    Ok(task)
}

/// Cancels a task that has not ended: its job as `DELETE /compute/{system}/jobs/{id}`
/// does, and a staged transfer's multipart upload in progress is aborted. One that has
/// ended is [`ServiceError::TaskEnded`] (409).
pub async fn cancel(cluster: &Cluster, user: &Caller, id: &TaskId) -> Result<(), ServiceError> {
    let source = find(cluster, user, id).await?;
    let view = staged_view(cluster, user, &source, false).await?;
    let task = source.task(cluster, user, view.as_ref(), now());
    if task.state.is_final() {
        return Err(ServiceError::TaskEnded {
            task_id: id.to_string(),
            state: task.state.as_str(),
        });
    }
    compute::cancel(cluster, user, &id.job_id).await?;
    let upload = view.and_then(|view| view.upload);
    if let (Some(staging), Some(upload)) = (cluster.staging.as_ref(), upload) {
        let object = StagedObject {
            bucket: S3Client::bucket_for(&user.username)?,
            key: upload.key,
        };
        // The job is cancelled; an upload left behind expires by the bucket's rule.
        if let Err(error) = staging
            .client
            .abort_multipart_upload(&object, &upload.upload_id)
            .await
        {
            tracing::warn!(%error, task.id = %id, "could not abort a cancelled task's upload");
        }
    }
    Ok(())
}

/// A job of the user's that does a task, with its comment's note.
struct Source {
    id: TaskId,
    job: Job,
    note: Option<TaskNote>,
}

impl Source {
    /// The work id that names the task's files, if its comment recorded one.
    fn work(&self) -> Option<uuid::Uuid> {
        uuid::Uuid::try_parse(&self.note.as_ref()?.work_id).ok()
    }

    fn task(self, cluster: &Cluster, user: &Caller, staged: Option<&Staged>, now: i64) -> Task {
        let arguments = self.note.as_ref().and_then(TaskArguments::read);
        let part_size = cluster.staging.as_ref().map(|staging| staging.part_size);
        let observed = state::Observed {
            kind: self.id.kind,
            job: &self.job,
            staged,
            file_size: arguments.as_ref().and_then(|a| a.file_size),
            part_size,
        };
        let derived = state::derive(&observed, now);
        let work = self.work();
        let logs = work.and_then(|work| transfer::job_logs(cluster, user, work).ok());
        Task {
            id: self.id,
            state: derived.state,
            created: derived.created,
            updated: derived.updated,
            arguments,
            progress: derived.progress,
            error: derived.error,
            logs,
            work,
        }
    }
}

/// The task `id` of the user's: its job (the user's own), whose comment says it does a
/// task of `id`'s kind; else not found.
async fn find(cluster: &Cluster, user: &Caller, id: &TaskId) -> Result<Source, ServiceError> {
    cluster.require_healthy(ProbedService::Scheduler)?;
    let not_found = || ServiceError::TaskNotFound(id.to_string());
    let job = match compute::job(cluster, user, &id.job_id).await {
        Err(ServiceError::Scheduler(SchedulerError::JobNotFound)) => return Err(not_found()),
        found => found?,
    };
    if job.user.as_deref() != Some(user.username.as_str()) {
        return Err(not_found());
    }
    let window = window_since(job.time.submit.or(job.time.start), now());
    let comment = comment_of(cluster, user, window, &id.job_id)
        .await?
        .ok_or_else(not_found)?;
    if TaskKind::of(comment.task.as_ref()) != Some(id.kind) {
        return Err(not_found());
    }
    Ok(Source {
        id: id.clone(),
        job,
        note: comment.task,
    })
}

/// The shortest listing window that reaches back to `since` (the longest for an older or
/// unknown time).
fn window_since(since: Option<i64>, now: i64) -> TimeWindow {
    // Slack for the clocks of Ironcrest and the scheduler.
    let age = since.map_or(i64::MAX, |since| {
        now.saturating_sub(since).saturating_add(60)
    });
    [
        TimeWindow::OneHour,
        TimeWindow::EightHours,
        TimeWindow::OneDay,
        TimeWindow::ThreeDays,
    ]
    .into_iter()
    .find(|window| window.seconds() >= age)
    .unwrap_or(TimeWindow::SevenDays)
}

/// The comment of job `job_id`. A job submitted since the cached comments were read (by
/// another replica: this one drops them at each submission) is not among them, so a miss
/// in a cached answer reads them again.
async fn comment_of(
    cluster: &Cluster,
    user: &Caller,
    window: TimeWindow,
    job_id: &str,
) -> Result<Option<JobComment>, ServiceError> {
    let find = |comments: &[CommentedJob]| {
        comments
            .iter()
            .find(|commented| commented.job_id == job_id)
            .map(|commented| commented.comment.clone())
    };
    let (comments, fetched) = read_comments(cluster, user, window).await?;
    if let Some(comment) = find(&comments) {
        return Ok(Some(comment));
    }
    if fetched {
        return Ok(None);
    }
    cluster.job_comments.invalidate(&user.username);
    let (comments, _) = read_comments(cluster, user, window).await?;
    Ok(find(&comments))
}

/// The comments of the user's jobs active or submitted within `window`, through the
/// cluster's cache; and whether this call read them from the scheduler.
async fn read_comments(
    cluster: &Cluster,
    user: &Caller,
    window: TimeWindow,
) -> Result<(Arc<Vec<CommentedJob>>, bool), ServiceError> {
    let fetched = AtomicBool::new(false);
    let seconds = u64::try_from(window.seconds()).unwrap_or(u64::MAX);
    let comments = cluster
        .job_comments
        .get_or_fetch(&user.username, CommentsQuery(window), || {
            fetched.store(true, Ordering::Relaxed);
            cluster.scheduler.commented_jobs(user, seconds)
        })
        .await?;
    Ok((comments, fetched.load(Ordering::Relaxed)))
}

/// The comments of a user's jobs within a window, as the cluster's `job_comments` cache
/// keeps them. A comment never changes once the job is submitted, and the user's own
/// submissions drop the cache's answers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CommentsQuery(TimeWindow);

impl Query for CommentsQuery {
    type Answer = Vec<CommentedJob>;
    const CACHE: &'static str = "job_comments";
}

/// What the staging area holds of one staged task.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Staged {
    pub upload: Option<UploadInProgress>,
    pub object: Option<StoredObject>,
    /// The upload's parts, read only when one task is asked for.
    pub parts: Option<Vec<UploadedPart>>,
}

/// The user's uploads in progress and objects, by work id.
struct Snapshot {
    uploads: Vec<UploadInProgress>,
    objects: Vec<StoredObject>,
}

impl Snapshot {
    fn of(&self, work: uuid::Uuid) -> Staged {
        let prefix = format!("{work}/");
        Staged {
            upload: self
                .uploads
                .iter()
                .find(|upload| upload.key.starts_with(&prefix))
                .cloned(),
            object: self
                .objects
                .iter()
                .find(|object| object.key.starts_with(&prefix))
                .cloned(),
            parts: None,
        }
    }
}

/// The staging area, gated on its health; `None` where the cluster stages nothing.
fn staging_area(cluster: &Cluster) -> Result<Option<&transfer::StagingArea>, ServiceError> {
    let Some(staging) = cluster.staging.as_ref() else {
        return Ok(None);
    };
    cluster.require_healthy(ProbedService::S3)?;
    Ok(Some(staging))
}

/// Everything in the user's bucket: one listing of uploads, one of objects.
async fn snapshot(
    staging: &transfer::StagingArea,
    user: &Caller,
) -> Result<Snapshot, ServiceError> {
    let bucket = S3Client::bucket_for(&user.username)?;
    let (uploads, objects) = tokio::try_join!(
        staging.client.uploads_in_progress(&bucket, ""),
        staging.client.objects(&bucket, ""),
    )?;
    Ok(Snapshot { uploads, objects })
}

/// The S3 state of one staged task (with its upload's parts if `parts`); `None` for a task
/// that stages nothing or whose work id is unknown.
async fn staged_view(
    cluster: &Cluster,
    user: &Caller,
    source: &Source,
    parts: bool,
) -> Result<Option<Staged>, ServiceError> {
    let (true, Some(work)) = (source.id.kind.is_staged(), source.work()) else {
        return Ok(None);
    };
    let Some(staging) = staging_area(cluster)? else {
        return Ok(None);
    };
    let bucket = S3Client::bucket_for(&user.username)?;
    let prefix = format!("{work}/");
    let (uploads, objects) = tokio::try_join!(
        staging.client.uploads_in_progress(&bucket, &prefix),
        staging.client.objects(&bucket, &prefix),
    )?;
    let mut view = Snapshot { uploads, objects }.of(work);
    if let (true, Some(upload)) = (parts, &view.upload) {
        let object = StagedObject {
            bucket,
            key: upload.key.clone(),
        };
        view.parts = match staging.client.parts(&object, &upload.upload_id).await {
            Ok(parts) => Some(parts),
            // Completed or aborted since it was listed: the next look will tell.
            Err(ironcrest_s3::S3Error::Refused { code, .. }) if code == "NoSuchUpload" => None,
            Err(error) => return Err(error.into()),
        };
    }
    Ok(Some(view))
}

/// The last line of a log file, if it can be read.
async fn last_line(cluster: &Cluster, user: &Caller, path: &str) -> Option<String> {
    const TAIL_BYTES: u64 = 4096;
    let content = filesystem::tail(
        cluster,
        user,
        path.as_bytes(),
        Some(TAIL_BYTES),
        None,
        false,
    )
    .await
    .inspect_err(|error| tracing::debug!(%error, "a task's log could not be read"))
    .ok()?;
    content
        .content
        .lines()
        .map(str::trim)
        .rfind(|line| !line.is_empty())
        .map(str::to_string)
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[cfg(test)]
mod tests;
