//! The transfer (storage) service, wire reference §2.4: every operation is a batch job
//! submitted through the cluster's scheduler as the calling user. `mv`, `cp`, `rm`,
//! `compress` and `extract` run their tool in the job; `upload` and `download` stage the
//! file through S3 ([`StagingArea`]): the client talks to the store with presigned URLs and
//! the job moves the object between the store and the cluster's file system.

mod script;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ironcrest_config::{
    ClusterConfig, DataTransferConfig, ProbedService, SchedulerType, WorkLimits,
};
use ironcrest_remote::Caller;
pub use ironcrest_s3::Method;
use ironcrest_s3::{Endpoint, S3Client, S3Error, StagedObject};
use ironcrest_scheduler::{Job, JobDescription, JobEnv, JobFilter};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use script::TransferScript;

use crate::filesystem::path::display;
use crate::filesystem::{self, Compression, ValidPath, check_path};
use crate::tasks::TaskArguments;
use crate::{Cluster, ServiceError, compute};
use script::ExpiredLogs;

/// S3's limit on the parts of one multipart upload.
const MAX_PARTS: u64 = 10_000;

/// A submitted transfer job and where its logs go.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransferJob {
    pub job_id: String,
    pub system: String,
    pub working_directory: String,
    pub logs: TransferLogs,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransferLogs {
    pub output_log: String,
    pub error_log: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TransferMethod {
    S3,
    Streamer,
    Wormhole,
}

/// What the client needs to move the data (null members are left out, as in v2).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransferDirectives {
    pub transfer_method: TransferMethod,
    /// Upload: one presigned PUT URL per part, part `i` being bytes
    /// `[i·maxPartSize, min(size, (i+1)·maxPartSize))`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parts_upload_urls: Option<Vec<String>>,
    /// Upload: the presigned POST URL that takes the parts' ETags.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub complete_upload_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_part_size: Option<u64>,
    /// Download: the presigned GET URL of the staged file, valid once the job succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub download_url: Option<String>,
}

/// The S3 store of a cluster whose data transfer is `s3`, and the buckets known to exist.
pub struct StagingArea {
    pub client: S3Client,
    pub(crate) part_size: u64,
    parallel_runs: u32,
    tmp_folder: String,
    known_buckets: Mutex<HashSet<String>>,
}

impl StagingArea {
    pub fn from_config(config: &ClusterConfig) -> Option<Self> {
        let Some(DataTransferConfig::S3(s3)) = &config.data_operation.data_transfer else {
            return None;
        };
        let timeout = Duration::from_secs(config.scheduler.timeout);
        Some(Self {
            client: S3Client::new(s3, timeout),
            part_size: s3.multipart.max_part_size,
            parallel_runs: s3.multipart.parallel_runs,
            tmp_folder: s3.multipart.tmp_folder.clone(),
            known_buckets: Mutex::new(HashSet::new()),
        })
    }

    /// The user's bucket, created (with its expiry rule) on first use.
    async fn bucket(&self, username: &str) -> Result<String, S3Error> {
        let bucket = S3Client::bucket_for(username)?;
        let known = self
            .known_buckets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&bucket);
        if !known {
            self.client.ensure_bucket(&bucket).await?;
            self.known_buckets
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(bucket.clone());
        }
        Ok(bucket)
    }

    /// Starts a multipart upload of `size` bytes named `name` in the user's bucket (under
    /// the request's [`work_id`] `work`), with one presigned PUT URL per part and the
    /// completion URL, on `endpoint`.
    async fn start_upload(
        &self,
        user: &Caller,
        work: uuid::Uuid,
        name: &[u8],
        size: u64,
        endpoint: Endpoint,
    ) -> Result<StagedUpload, ServiceError> {
        let parts = size.div_ceil(self.part_size).max(1);
        if parts > MAX_PARTS {
            return Err(ServiceError::InvalidField {
                field: "fileSize",
                message: format!(
                    "A staged file may have at most {MAX_PARTS} parts of {} bytes ({} bytes in all); this one has {size} bytes.",
                    self.part_size,
                    MAX_PARTS * self.part_size
                ),
            });
        }
        let bucket = self.bucket(&user.username).await?;
        let object = StagedObject::new(&bucket, work, &String::from_utf8_lossy(name));
        let upload_id = match self.client.create_multipart_upload(&object).await {
            // The bucket went away since it was created (a reset store): create it again.
            Err(S3Error::Refused { code, .. }) if code == "NoSuchBucket" => {
                self.known_buckets
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&bucket);
                self.bucket(&user.username).await?;
                self.client.create_multipart_upload(&object).await?
            }
            started => started?,
        };
        let (part_urls, complete_url) = self.upload_urls(&object, &upload_id, parts, endpoint)?;
        Ok(StagedUpload {
            object,
            upload_id,
            part_urls,
            complete_url,
        })
    }
}

impl StagingArea {
    /// One presigned PUT URL per part of an upload, and its completion URL.
    fn upload_urls(
        &self,
        object: &StagedObject,
        upload_id: &str,
        parts: u64,
        endpoint: Endpoint,
    ) -> Result<(Vec<String>, String), S3Error> {
        let part_urls = (1..=parts)
            .map(|part| {
                let part = part.to_string();
                let query = [("partNumber", part.as_str()), ("uploadId", upload_id)];
                self.client.presign(endpoint, Method::Put, object, &query)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let complete_url =
            self.client
                .presign(endpoint, Method::Post, object, &[("uploadId", upload_id)])?;
        Ok((part_urls, complete_url))
    }
}

/// A started multipart upload and its presigned URLs.
struct StagedUpload {
    object: StagedObject,
    upload_id: String,
    part_urls: Vec<String>,
    complete_url: String,
}

impl StagedUpload {
    /// Submits the job that completes this upload's transfer; if that fails, the upload is
    /// abandoned rather than left for the lifecycle rule to find days later.
    async fn submit_or_abort(
        &self,
        staging: &StagingArea,
        cluster: &Cluster,
        user: &Caller,
        plan: JobPlan<'_>,
    ) -> Result<TransferJob, ServiceError> {
        let submitted = submit(cluster, user, plan).await;
        if submitted.is_err()
            && let Err(err) = staging
                .client
                .abort_multipart_upload(&self.object, &self.upload_id)
                .await
        {
            tracing::warn!(error = %err, "could not abort an unused multipart upload");
        }
        submitted
    }
}

/// What a transfer job does and what names its files; everything a transfer job shares.
struct JobPlan<'a> {
    kind: TransferKind,
    options: JobOptions<'a>,
    script: TransferScript<'a>,
    /// What the job's comment records of the request (see [`crate::tasks`]).
    arguments: TaskArguments,
    /// The request's [`work_id`], which names the job's log files (and staged object).
    work: uuid::Uuid,
}

/// How a transfer job is submitted besides its script: the account (for `{account}` in the
/// site's directives) and, on Slurm, FirecREST v1's time limit and the job it waits for.
/// An account alone converts into these options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobOptions<'a> {
    pub account: Option<&'a str>,
    /// Slurm's `--time`: `minutes`, `minutes:seconds`, `hours:minutes:seconds`, `days-hours`,
    /// `days-hours:minutes`, `days-hours:minutes:seconds`.
    pub time_limit: Option<&'a str>,
    /// A job that must complete successfully first (`--dependency=afterok:<id>`).
    pub after_job: Option<&'a str>,
}

impl<'a> From<Option<&'a str>> for JobOptions<'a> {
    fn from(account: Option<&'a str>) -> Self {
        Self {
            account,
            ..Self::default()
        }
    }
}

impl JobOptions<'_> {
    /// The directives the time limit and the dependency add, checked: only digits and the
    /// separators Slurm's time formats use, a job id; Slurm only.
    fn directives(&self, scheduler: SchedulerType) -> Result<Vec<String>, ServiceError> {
        let mut lines = Vec::new();
        if let Some(time) = self.time_limit {
            if !is_slurm_time(time) {
                return Err(ServiceError::InvalidField {
                    field: "time",
                    message: format!(
                        "{time:?} is not a time limit: minutes, minutes:seconds, hours:minutes:seconds, days-hours, days-hours:minutes or days-hours:minutes:seconds"
                    ),
                });
            }
            lines.push(format!("#SBATCH --time={time}"));
        }
        if let Some(job) = self.after_job {
            if !ironcrest_scheduler::job::is_valid_job_id(job) {
                return Err(ServiceError::InvalidField {
                    field: "stageOutJobId",
                    message: format!("{job:?} is not a job id"),
                });
            }
            lines.push(format!("#SBATCH --dependency=afterok:{job}"));
        }
        if !lines.is_empty() && scheduler != SchedulerType::Slurm {
            return Err(ServiceError::InvalidRequest(
                "A time limit or a job to wait for is given to transfer jobs on Slurm systems only."
                    .into(),
            ));
        }
        Ok(lines)
    }
}

/// `[days-]hours:minutes:seconds` and the shorter forms Slurm's `--time` reads.
fn is_slurm_time(text: &str) -> bool {
    let numbers = |part: &str, most: usize| {
        let fields: Vec<&str> = part.split(':').collect();
        fields.len() <= most
            && fields
                .iter()
                .all(|f| (1..=4).contains(&f.len()) && f.bytes().all(|b| b.is_ascii_digit()))
    };
    match text.split_once('-') {
        Some((days, clock)) => numbers(days, 1) && numbers(clock, 3),
        None => numbers(text, 3),
    }
}

const JOB_PATH: &str = "/bin:/usr/bin/:/usr/local/bin/";

/// The names Ironcrest gives its transfer jobs; a staged upload's is `IngressFileTransfer`.
const TRANSFER_JOB_NAMES: [&str; 7] = [
    "MoveFiles",
    "CopyFiles",
    "SyncFiles",
    "DeleteFiles",
    "CompressFiles",
    "IngressFileTransfer",
    "OutgressFileTransfer",
];
const STAGED_UPLOAD_JOB_NAME: &str = "IngressFileTransfer";

/// The operations the transfer service runs as jobs, as `/tasks` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransferKind {
    Mv,
    Cp,
    /// `rsync -a` (FirecREST v1's `xfer-internal/rsync`).
    Rsync,
    Rm,
    Compress,
    Extract,
    Upload,
    Download,
}

impl TransferKind {
    pub const ALL: [TransferKind; 8] = [
        Self::Mv,
        Self::Cp,
        Self::Rsync,
        Self::Rm,
        Self::Compress,
        Self::Extract,
        Self::Upload,
        Self::Download,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mv => "mv",
            Self::Cp => "cp",
            Self::Rsync => "rsync",
            Self::Rm => "rm",
            Self::Compress => "compress",
            Self::Extract => "extract",
            Self::Upload => "upload",
            Self::Download => "download",
        }
    }

    pub fn named(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// Whether the data goes through the S3 staging area.
    pub fn is_staged(self) -> bool {
        matches!(self, Self::Upload | Self::Download)
    }

    /// The job's name, v2's (extract's jobs are named as compress's).
    fn job_name(self) -> &'static str {
        match self {
            Self::Mv => "MoveFiles",
            Self::Cp => "CopyFiles",
            Self::Rsync => "SyncFiles",
            Self::Rm => "DeleteFiles",
            Self::Compress | Self::Extract => "CompressFiles",
            Self::Upload => STAGED_UPLOAD_JOB_NAME,
            Self::Download => "OutgressFileTransfer",
        }
    }
}

/// Refuses another transfer job (`name`) of `user` past the caps on their unfinished ones:
/// a fuzzing client once queued 367 staged uploads in 100 s, each waiting for its data, and
/// filled the partition. The count is the scheduler's (cached briefly, dropped at each of the
/// user's submits), so two submissions at the same instant may both pass.
async fn check_work_caps(cluster: &Cluster, user: &Caller, name: &str) -> Result<(), ServiceError> {
    let caps = (cluster.work_limits)();
    let staged = name == STAGED_UPLOAD_JOB_NAME;
    if caps.transfer_jobs.is_none() && !(staged && caps.staged_uploads.is_some()) {
        return Ok(());
    }
    let jobs = compute::jobs(cluster, user, JobFilter::default()).await?;
    match work_refusal(&caps, &jobs, name) {
        Some(message) => Err(ServiceError::TooMuchWork(message)),
        None => Ok(()),
    }
}

/// Why another transfer job `name` would exceed `caps`, given the user's `jobs`.
fn work_refusal(caps: &WorkLimits, jobs: &[Job], name: &str) -> Option<String> {
    let unfinished = |names: &[&str]| {
        jobs.iter()
            .filter(|job| job.is_active() && names.contains(&job.name.as_str()))
            .count()
    };
    if let Some(cap) = caps.transfer_jobs
        && unfinished(&TRANSFER_JOB_NAMES) >= cap
    {
        return Some(format!(
            "You already have {cap} unfinished transfer jobs, the most allowed; submit more once some have ended."
        ));
    }
    if let Some(cap) = caps
        .staged_uploads
        .filter(|_| name == STAGED_UPLOAD_JOB_NAME)
        && unfinished(&[STAGED_UPLOAD_JOB_NAME]) >= cap
    {
        return Some(format!(
            "You already have {cap} staged uploads waiting for their data, the most allowed; finish or cancel one first."
        ));
    }
    None
}

/// Submits a transfer job in the user's directory of the default work file system, with
/// the cluster's transfer directives (`{account}` filled in) heading its script.
async fn submit(
    cluster: &Cluster,
    user: &Caller,
    plan: JobPlan<'_>,
) -> Result<TransferJob, ServiceError> {
    cluster.require_healthy(ProbedService::Scheduler)?;
    let name = plan.kind.job_name();
    check_work_caps(cluster, user, name).await?;
    let working_directory = work_dir(&cluster.config, &user.username)?;
    let mut directives = directives(
        &cluster.config.data_operation.datatransfer_jobs_directives,
        plan.options.account,
    )?;
    directives.extend(plan.options.directives(cluster.config.scheduler.kind)?);
    let log_directory = log_directory(&cluster.config, &working_directory, &user.username);
    ensure_log_directory(cluster, user, &log_directory).await?;
    let days = cluster.config.data_operation.transfer_log_max_age_days;
    let expired = (days > 0).then_some(ExpiredLogs {
        directory: log_directory.as_bytes(),
        days,
    });
    let script = plan.script.render(&directives, expired.as_ref())?;
    let logs = logs(&log_directory, plan.work);
    let job = JobDescription {
        working_directory: working_directory.clone(),
        script: Some(script),
        name: Some(name.to_string()),
        standard_input: Some("/dev/null".into()),
        standard_output: Some(logs.output_log.clone()),
        standard_error: Some(logs.error_log.clone()),
        env: Some(JobEnv::Map([("PATH".into(), JOB_PATH.into())].into())),
        task: Some(plan.arguments.note(plan.kind, plan.work)),
        ..JobDescription::default()
    };
    let job_id = compute::submit(cluster, user, &job).await?;
    Ok(TransferJob {
        job_id,
        system: cluster.name().to_string(),
        working_directory,
        logs,
    })
}

/// The transfer job a request with an `Idempotency-Key` submitted as `job_id`, as its
/// submission answered: its log files are named after the request's marks.
pub fn submitted_job(
    cluster: &Cluster,
    user: &Caller,
    job_id: String,
) -> Result<TransferJob, ServiceError> {
    let working_directory = work_dir(&cluster.config, &user.username)?;
    let log_directory = log_directory(&cluster.config, &working_directory, &user.username);
    Ok(TransferJob {
        job_id,
        system: cluster.name().to_string(),
        logs: logs(&log_directory, work_id(user)),
        working_directory,
    })
}

/// The log files of `user`'s transfer job whose [`work_id`] is `work`.
pub(crate) fn job_logs(
    cluster: &Cluster,
    user: &Caller,
    work: uuid::Uuid,
) -> Result<TransferLogs, ServiceError> {
    let working_directory = work_dir(&cluster.config, &user.username)?;
    let log_directory = log_directory(&cluster.config, &working_directory, &user.username);
    Ok(logs(&log_directory, work))
}

/// What names a request's log files and staged object: a random id, or, for a request
/// with an `Idempotency-Key`, its marks (32 hex digits: a UUID), so that a replay names
/// what the job writes. Taken once per request; the job's comment records it.
fn work_id(user: &Caller) -> uuid::Uuid {
    user.idempotency
        .as_ref()
        .and_then(|mark| {
            u128::from_str_radix(&format!("{}{}", mark.key_hash, mark.fingerprint_hash), 16).ok()
        })
        .map_or_else(uuid::Uuid::new_v4, uuid::Uuid::from_u128)
}

fn logs(log_directory: &str, id: uuid::Uuid) -> TransferLogs {
    TransferLogs {
        output_log: format!("{log_directory}/.f7t_file_handling_job_{id}.log"),
        error_log: format!("{log_directory}/.f7t_file_handling_job_error_{id}.log"),
    }
}

/// How long a log directory made (or found) for a user is trusted to still exist.
const LOG_DIRECTORY_RECHECK: Duration = Duration::from_secs(600);

/// `data_operation.transfer_log_directory` for `username`: absolute with `{username}`
/// filled in, or under the job's working directory.
fn log_directory(config: &ClusterConfig, working_directory: &str, username: &str) -> String {
    let configured = &config.data_operation.transfer_log_directory;
    if configured.starts_with('/') {
        configured.replace("{username}", username)
    } else {
        format!("{working_directory}/{}", configured.trim_end_matches('/'))
    }
}

/// Slurm opens a job's log files before its script runs, so their directory must exist:
/// made with `mkdir -p` as the user, at most once per [`LOG_DIRECTORY_RECHECK`].
async fn ensure_log_directory(
    cluster: &Cluster,
    user: &Caller,
    directory: &str,
) -> Result<(), ServiceError> {
    let key = (user.username.clone(), directory.to_string());
    let known = cluster
        .transfer_log_directories
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&key)
        .is_some_and(|made| made.elapsed() < LOG_DIRECTORY_RECHECK);
    if known {
        return Ok(());
    }
    let timeout = cluster.config.ssh.timeout.command_execution;
    let mkdir = crate::filesystem::commands::mkdir(timeout, directory.as_bytes(), true)?;
    cluster.ssh.run(user, &mkdir).await?;
    cluster
        .transfer_log_directories
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key, std::time::Instant::now());
    Ok(())
}

/// `<default work file system>/<username>`.
fn work_dir(config: &ClusterConfig, username: &str) -> Result<String, ServiceError> {
    let file_system = config
        .file_systems
        .iter()
        .find(|fs| fs.default_work_dir)
        .ok_or_else(|| {
            ServiceError::Misconfigured(
                "No file system of this system is marked default_work_dir, so transfer jobs have no working directory.".into(),
            )
        })?;
    Ok(format!(
        "{}/{username}",
        file_system.path.trim_end_matches('/')
    ))
}

/// The transfer directives with `{account}` replaced. The account becomes part of the
/// script, so only the characters schedulers allow in account names are accepted.
fn directives(templates: &[String], account: Option<&str>) -> Result<Vec<String>, ServiceError> {
    let needs_account = templates.iter().any(|line| line.contains("{account}"));
    let account = match (needs_account, account) {
        (false, _) => return Ok(templates.to_vec()),
        (true, None | Some("")) => {
            return Err(ServiceError::InvalidRequest(
                "Account parameter is required on this system.".into(),
            ));
        }
        (true, Some(account)) => account,
    };
    let valid = account
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if !valid {
        return Err(ServiceError::InvalidRequest(format!(
            "Invalid account '{account}': only letters, digits, '_', '-' and '.' are allowed."
        )));
    }
    Ok(templates
        .iter()
        .map(|line| line.replace("{account}", account))
        .collect())
}

pub async fn mv<'a>(
    cluster: &Cluster,
    user: &Caller,
    source: &[u8],
    target: &[u8],
    options: impl Into<JobOptions<'a>>,
) -> Result<TransferJob, ServiceError> {
    let source = check_path(cluster, source)?;
    let target = check_path(cluster, target)?;
    let script = TransferScript::Move {
        source: source.as_bytes(),
        target: target.as_bytes(),
    };
    let arguments = TaskArguments {
        source_path: Some(display(source.as_bytes())),
        target_path: Some(display(target.as_bytes())),
        ..TaskArguments::default()
    };
    let plan = plan(
        TransferKind::Mv,
        options.into(),
        script,
        arguments,
        work_id(user),
    );
    submit(cluster, user, plan).await
}

pub async fn cp<'a>(
    cluster: &Cluster,
    user: &Caller,
    source: &[u8],
    target: &[u8],
    dereference: bool,
    options: impl Into<JobOptions<'a>>,
) -> Result<TransferJob, ServiceError> {
    let source = check_path(cluster, source)?;
    let target = check_path(cluster, target)?;
    let script = TransferScript::Copy {
        source: source.as_bytes(),
        target: target.as_bytes(),
        dereference,
    };
    let arguments = TaskArguments {
        source_path: Some(display(source.as_bytes())),
        target_path: Some(display(target.as_bytes())),
        dereference: Some(dereference),
        ..TaskArguments::default()
    };
    let plan = plan(
        TransferKind::Cp,
        options.into(),
        script,
        arguments,
        work_id(user),
    );
    submit(cluster, user, plan).await
}

pub async fn rm<'a>(
    cluster: &Cluster,
    user: &Caller,
    path: &[u8],
    options: impl Into<JobOptions<'a>>,
) -> Result<TransferJob, ServiceError> {
    let path = check_path(cluster, path)?;
    let script = TransferScript::Delete {
        path: path.as_bytes(),
    };
    let arguments = TaskArguments {
        path: Some(display(path.as_bytes())),
        ..TaskArguments::default()
    };
    let plan = plan(
        TransferKind::Rm,
        options.into(),
        script,
        arguments,
        work_id(user),
    );
    submit(cluster, user, plan).await
}

/// `rsync -a source target` as a job (FirecREST v1's `xfer-internal/rsync`). A source
/// ending in `/` keeps it, as rsync reads it: the directory's contents, not the directory.
pub async fn rsync(
    cluster: &Cluster,
    user: &Caller,
    source: &[u8],
    target: &[u8],
    options: JobOptions<'_>,
) -> Result<TransferJob, ServiceError> {
    let contents = source.ends_with(b"/");
    let source = check_path(cluster, source)?;
    let target = check_path(cluster, target)?;
    let source = match source.as_bytes() {
        path if contents && path != b"/" => [path, b"/"].concat(),
        path => path.to_vec(),
    };
    let script = TransferScript::Sync {
        source: &source,
        target: target.as_bytes(),
    };
    let arguments = TaskArguments {
        source_path: Some(display(&source)),
        target_path: Some(display(target.as_bytes())),
        ..TaskArguments::default()
    };
    let plan = plan(
        TransferKind::Rsync,
        options,
        script,
        arguments,
        work_id(user),
    );
    submit(cluster, user, plan).await
}

#[allow(clippy::too_many_arguments)]
pub async fn compress<'a>(
    cluster: &Cluster,
    user: &Caller,
    source: &[u8],
    target: &[u8],
    pattern: Option<&str>,
    compression: Compression,
    dereference: bool,
    options: impl Into<JobOptions<'a>>,
) -> Result<TransferJob, ServiceError> {
    let source = check_path(cluster, source)?;
    let target = check_path(cluster, target)?;
    let (parent, base) = source.split_parent();
    let script = TransferScript::Compress {
        parent,
        base,
        target: target.as_bytes(),
        pattern,
        compression,
        dereference,
    };
    let arguments = TaskArguments {
        source_path: Some(display(source.as_bytes())),
        target_path: Some(display(target.as_bytes())),
        match_pattern: pattern.map(str::to_string),
        compression: Some(compression),
        dereference: Some(dereference),
        ..TaskArguments::default()
    };
    let plan = plan(
        TransferKind::Compress,
        options.into(),
        script,
        arguments,
        work_id(user),
    );
    submit(cluster, user, plan).await
}

pub async fn extract<'a>(
    cluster: &Cluster,
    user: &Caller,
    source: &[u8],
    target: &[u8],
    compression: Compression,
    options: impl Into<JobOptions<'a>>,
) -> Result<TransferJob, ServiceError> {
    let source = check_path(cluster, source)?;
    let target = check_path(cluster, target)?;
    let script = TransferScript::Extract {
        source: source.as_bytes(),
        target: target.as_bytes(),
        compression,
    };
    let arguments = TaskArguments {
        source_path: Some(display(source.as_bytes())),
        target_path: Some(display(target.as_bytes())),
        compression: Some(compression),
        ..TaskArguments::default()
    };
    let plan = plan(
        TransferKind::Extract,
        options.into(),
        script,
        arguments,
        work_id(user),
    );
    submit(cluster, user, plan).await
}

/// A job plan under the request's [`work_id`] `work`, whose recorded arguments include
/// the account.
fn plan<'a>(
    kind: TransferKind,
    options: JobOptions<'a>,
    script: TransferScript<'a>,
    arguments: TaskArguments,
    work: uuid::Uuid,
) -> JobPlan<'a> {
    JobPlan {
        kind,
        options,
        script,
        arguments: TaskArguments {
            account: options
                .account
                .filter(|a| !a.is_empty())
                .map(str::to_string),
            ..arguments
        },
        work,
    }
}

/// The staging area, if the request's method is the cluster's (v2's 400 otherwise), and
/// healthy.
fn staging(cluster: &Cluster, method: TransferMethod) -> Result<&StagingArea, ServiceError> {
    let not_available =
        || ServiceError::InvalidRequest("Requested transfer method is not available.".into());
    if method != TransferMethod::S3 {
        return Err(not_available());
    }
    let staging = cluster.staging.as_ref().ok_or_else(not_available)?;
    cluster.require_healthy(ProbedService::S3)?;
    Ok(staging)
}

/// Client → cluster through S3: a multipart upload whose part URLs and completion URL go
/// to the client, and a job that fetches the completed object into `target`.
pub async fn upload(
    cluster: &Cluster,
    user: &Caller,
    target: &[u8],
    method: TransferMethod,
    file_size: Option<u64>,
    account: Option<&str>,
) -> Result<(TransferJob, TransferDirectives), ServiceError> {
    let staging = staging(cluster, method)?;
    let size = file_size.ok_or_else(|| {
        ServiceError::InvalidRequest(
            "transferDirectives.fileSize (the size of the file to upload, in bytes) is required."
                .into(),
        )
    })?;
    let target = check_path(cluster, target)?;
    let (directory, name) = upload_target(&target)?;
    let work = work_id(user);
    let staged = staging
        .start_upload(user, work, name, size, Endpoint::Public)
        .await?;
    let presign = |method| {
        staging
            .client
            .presign(Endpoint::Private, method, &staged.object, &[])
    };
    let partial = partial_name(directory);
    let script = TransferScript::StageIn {
        target: target.as_bytes(),
        partial: &partial,
        size: Some(size),
        part_size: staging.part_size,
        parallel: staging.parallel_runs,
        wait_limit: staging.client.ttl().as_secs(),
        head_url: &presign(Method::Head)?,
        get_url: &presign(Method::Get)?,
        delete_url: &presign(Method::Delete)?,
    };
    let arguments = TaskArguments {
        path: Some(display(target.as_bytes())),
        file_size: Some(size),
        ..TaskArguments::default()
    };
    let plan = plan(
        TransferKind::Upload,
        account.into(),
        script,
        arguments,
        work,
    );
    let job = staged.submit_or_abort(staging, cluster, user, plan).await?;
    let directives = TransferDirectives {
        transfer_method: TransferMethod::S3,
        parts_upload_urls: Some(staged.part_urls),
        complete_upload_url: Some(staged.complete_url),
        max_part_size: Some(staging.part_size),
        download_url: None,
    };
    Ok((job, directives))
}

/// A staged upload the client sends in one `PUT` (FirecREST v1's): the job that fetches
/// the object into its target, and the presigned URL to send it to.
pub struct WholeUpload {
    pub job: TransferJob,
    pub put_url: String,
}

/// Client → cluster through S3 in one request, the size unknown beforehand (so at most S3's
/// 5 GiB for one `PUT`): a presigned `PUT` URL of the object, and a job that waits for it
/// within the URL's lifetime, checks it against its ETag and renames it over `target`. Its
/// task is an `upload` task, as a multipart one's; `source`, the client's name of its file,
/// is recorded with its arguments (as `sourcePath`) for the client to be told again.
pub async fn upload_whole(
    cluster: &Cluster,
    user: &Caller,
    target: &[u8],
    source: &str,
    account: Option<&str>,
) -> Result<WholeUpload, ServiceError> {
    let staging = staging(cluster, TransferMethod::S3)?;
    let target = check_path(cluster, target)?;
    let (directory, name) = upload_target(&target)?;
    let work = work_id(user);
    let bucket = staging.bucket(&user.username).await?;
    let object = StagedObject::new(&bucket, work, &String::from_utf8_lossy(name));
    let presign = |endpoint, method| staging.client.presign(endpoint, method, &object, &[]);
    let partial = partial_name(directory);
    let script = TransferScript::StageIn {
        target: target.as_bytes(),
        partial: &partial,
        size: None,
        part_size: staging.part_size,
        parallel: staging.parallel_runs,
        wait_limit: staging.client.ttl().as_secs(),
        head_url: &presign(Endpoint::Private, Method::Head)?,
        get_url: &presign(Endpoint::Private, Method::Get)?,
        delete_url: &presign(Endpoint::Private, Method::Delete)?,
    };
    let arguments = TaskArguments {
        path: Some(display(target.as_bytes())),
        source_path: Some(source.to_string()),
        ..TaskArguments::default()
    };
    let plan = plan(
        TransferKind::Upload,
        account.into(),
        script,
        arguments,
        work,
    );
    let job = submit(cluster, user, plan).await?;
    Ok(WholeUpload {
        job,
        put_url: presign(Endpoint::Public, Method::Put)?,
    })
}

/// The user's staged object of a transfer under `work` of the file `path` (an upload's
/// target, a download's source): `<work id>/<file name>` in their bucket.
fn staged_object(
    user: &Caller,
    work: uuid::Uuid,
    path: &str,
) -> Result<StagedObject, ServiceError> {
    let name = path.rsplit('/').next().unwrap_or(path);
    Ok(StagedObject::new(
        &S3Client::bucket_for(&user.username)?,
        work,
        name,
    ))
}

/// A presigned URL for the client of the staged object of the transfer under `work` of the
/// file `path`: `PUT` for an upload in one request, `GET` for a download. Signed anew each
/// time: URLs are not stored.
pub fn staged_url(
    cluster: &Cluster,
    user: &Caller,
    work: uuid::Uuid,
    path: &str,
    method: Method,
) -> Result<String, ServiceError> {
    let staging = staging(cluster, TransferMethod::S3)?;
    let object = staged_object(user, work, path)?;
    Ok(staging
        .client
        .presign(Endpoint::Public, method, &object, &[])?)
}

/// Deletes the staged object of the transfer under `work` of the file `path`: its URLs stop
/// working.
pub async fn delete_staged(
    cluster: &Cluster,
    user: &Caller,
    work: uuid::Uuid,
    path: &str,
) -> Result<(), ServiceError> {
    let staging = staging(cluster, TransferMethod::S3)?;
    Ok(staging
        .client
        .delete_object(&staged_object(user, work, path)?)
        .await?)
}

/// Cluster → client through S3: a job uploads `source` in parts; the client gets the
/// object's presigned GET URL, valid once the job has succeeded.
pub async fn download(
    cluster: &Arc<Cluster>,
    user: &Caller,
    source: &[u8],
    method: TransferMethod,
    account: Option<&str>,
) -> Result<(TransferJob, TransferDirectives), ServiceError> {
    let staging = staging(cluster, method)?;
    let source = check_path(cluster, source)?;
    // Sizes the parts, and answers 404/403 now for a missing or unreadable file.
    let size = filesystem::stat(cluster, user, source.as_bytes(), true)
        .await?
        .size;
    let (_, name) = source.split_parent();
    let work = work_id(user);
    let staged = staging
        .start_upload(user, work, name, size, Endpoint::Private)
        .await?;
    let download_url =
        staging
            .client
            .presign(Endpoint::Public, Method::Get, &staged.object, &[])?;
    let working_directory = work_dir(&cluster.config, &user.username)?;
    let scratch = if staging.tmp_folder.starts_with('/') {
        staging.tmp_folder.clone()
    } else {
        format!("{working_directory}/{}", staging.tmp_folder)
    };
    let script = TransferScript::StageOut {
        source: source.as_bytes(),
        size,
        part_size: staging.part_size,
        parallel: staging.parallel_runs,
        scratch: scratch.as_bytes(),
        part_urls: &staged.part_urls,
        complete_url: &staged.complete_url,
    };
    let arguments = TaskArguments {
        path: Some(display(source.as_bytes())),
        file_size: Some(size),
        ..TaskArguments::default()
    };
    let plan = plan(
        TransferKind::Download,
        account.into(),
        script,
        arguments,
        work,
    );
    let job = staged.submit_or_abort(staging, cluster, user, plan).await?;
    let directives = TransferDirectives {
        transfer_method: TransferMethod::S3,
        parts_upload_urls: None,
        complete_upload_url: None,
        max_part_size: None,
        download_url: Some(download_url),
    };
    Ok((job, directives))
}

/// The staged upload a request with an `Idempotency-Key` started as `job_id`, as its
/// submission answered, with its URLs signed again for the multipart upload still in
/// progress; once that is over (completed, aborted, expired) there is nothing to sign: 409.
pub async fn submitted_upload(
    cluster: &Cluster,
    user: &Caller,
    target: &[u8],
    method: TransferMethod,
    file_size: Option<u64>,
    job_id: String,
) -> Result<(TransferJob, TransferDirectives), ServiceError> {
    let staging = staging(cluster, method)?;
    let target = check_path(cluster, target)?;
    let (_, name) = target.split_parent();
    let object = StagedObject::new(
        &S3Client::bucket_for(&user.username)?,
        work_id(user),
        &String::from_utf8_lossy(name),
    );
    let Some(upload_id) = staging.client.multipart_uploads(&object).await?.pop() else {
        return Err(ServiceError::UploadOver(format!(
            "The staged upload this Idempotency-Key started (transfer job {job_id}) is no longer in progress: completed, cancelled or expired."
        )));
    };
    // The first request passed these checks, else no job would carry the key.
    let parts = file_size.unwrap_or(0).div_ceil(staging.part_size).max(1);
    let (part_urls, complete_url) =
        staging.upload_urls(&object, &upload_id, parts, Endpoint::Public)?;
    let directives = TransferDirectives {
        transfer_method: TransferMethod::S3,
        parts_upload_urls: Some(part_urls),
        complete_upload_url: Some(complete_url),
        max_part_size: Some(staging.part_size),
        download_url: None,
    };
    Ok((submitted_job(cluster, user, job_id)?, directives))
}

/// The staged download a request with an `Idempotency-Key` started as `job_id`, as its
/// submission answered, with the download URL signed again (a presigned URL is not stored).
pub fn submitted_download(
    cluster: &Cluster,
    user: &Caller,
    source: &[u8],
    method: TransferMethod,
    job_id: String,
) -> Result<(TransferJob, TransferDirectives), ServiceError> {
    let staging = staging(cluster, method)?;
    let source = check_path(cluster, source)?;
    let (_, name) = source.split_parent();
    let object = StagedObject::new(
        &S3Client::bucket_for(&user.username)?,
        work_id(user),
        &String::from_utf8_lossy(name),
    );
    let download_url = staging
        .client
        .presign(Endpoint::Public, Method::Get, &object, &[])?;
    let directives = TransferDirectives {
        transfer_method: TransferMethod::S3,
        parts_upload_urls: None,
        complete_upload_url: None,
        max_part_size: None,
        download_url: Some(download_url),
    };
    Ok((submitted_job(cluster, user, job_id)?, directives))
}

/// A hidden, unique name beside the target for the file being fetched; short whatever
/// the target's name, so it never exceeds NAME_MAX.
fn partial_name(directory: &[u8]) -> Vec<u8> {
    let name = format!(".f7t-upload-{}.part", uuid::Uuid::new_v4());
    let directory = directory.strip_suffix(b"/").unwrap_or(directory);
    [directory, b"/", name.as_bytes()].concat()
}

/// The directory and the file name an upload's target names; a directory alone is refused.
fn upload_target(target: &ValidPath) -> Result<(&[u8], &[u8]), ServiceError> {
    let (directory, name) = target.split_parent();
    if name.is_empty() {
        return Err(ServiceError::InvalidRequest(format!(
            "'{}' names no file to upload to.",
            display(target.as_bytes())
        )));
    }
    Ok((directory, name))
}

#[cfg(test)]
mod tests;
