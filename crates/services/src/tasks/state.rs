//! A task's state, progress and times from what the scheduler and the S3 store hold: pure
//! functions of what was observed, so every replica derives the same task.

use ironcrest_scheduler::Job;

use super::{Staged, TaskKind, TaskProgress, TaskState};
use crate::transfer::TransferKind;

/// The exit code of a staged upload's job that stopped waiting for the client's data
/// (`stage_in.sh`: "the staged upload was not completed in time").
const UPLOAD_DEADLINE_EXIT: i64 = 4;

/// What was observed of one task.
pub(super) struct Observed<'a> {
    pub kind: TaskKind,
    pub job: &'a Job,
    /// The staging area's view of a staged task; `None` when unknown.
    pub staged: Option<&'a Staged>,
    /// A staged transfer's size, as its comment recorded it.
    pub file_size: Option<u64>,
    /// The staging area's part size.
    pub part_size: Option<u64>,
}

pub(super) struct Derived {
    pub state: TaskState,
    pub error: Option<String>,
    pub progress: TaskProgress,
    pub created: Option<i64>,
    pub updated: Option<i64>,
}

/// The job's place in its life, from the scheduler's state names (every backend maps its
/// own to Slurm's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Queued,
    Running,
    Completed,
    Cancelled,
    Failed,
}

/// How long after a failed job's end its exit code may still be unknown (see [`phase`]).
const SETTLE_SECONDS: i64 = 60;

/// slurmdbd lags the controller: for a few seconds after a job ends, the merged record may
/// have its final state but not its exit code yet (none, or the running record's `0`). A
/// failed job whose exit code is not known is still finishing, so that a task never shows
/// one final state and then another (an upload's `failed`, then `expired`), up to
/// [`SETTLE_SECONDS`] after its end.
fn phase(job: &Job, now: i64) -> Phase {
    let state = job.status.state.as_str();
    if job.is_active() {
        let queued = matches!(
            state,
            "PENDING" | "REQUEUED" | "REQUEUE_HOLD" | "REQUEUE_FED" | "RESV_DEL_HOLD"
        );
        return if queued {
            Phase::Queued
        } else {
            Phase::Running
        };
    }
    match state {
        "COMPLETED" => Phase::Completed,
        "CANCELLED" => Phase::Cancelled,
        // FAILED, TIMEOUT, NODE_FAIL, OUT_OF_MEMORY, PREEMPTED, BOOT_FAIL, DEADLINE, …
        _ if settled(job, now) => Phase::Failed,
        _ => Phase::Running,
    }
}

/// Whether a failed job's record says how it ended: a non-zero exit code or signal, or
/// enough time since its end for the accounting record to have arrived.
fn settled(job: &Job, now: i64) -> bool {
    let status = &job.status;
    let known = status.exit_code.is_some_and(|code| code != 0)
        || status.interrupt_signal.is_some_and(|signal| signal != 0);
    known || job.time.end.is_none_or(|end| now - end >= SETTLE_SECONDS)
}

pub(super) fn derive(observed: &Observed<'_>, now: i64) -> Derived {
    let job = observed.job;
    let phase = phase(job, now);
    let staged = observed.staged;
    let upload_in_progress = staged.map(|staged| staged.upload.is_some());
    let state = match (observed.kind, phase) {
        (_, Phase::Cancelled) => TaskState::Cancelled,
        (TaskKind::Transfer(TransferKind::Upload), Phase::Failed)
            if job.status.exit_code == Some(UPLOAD_DEADLINE_EXIT) =>
        {
            TaskState::Expired
        }
        // Running, but the client has not completed the upload: still waiting for the data.
        (TaskKind::Transfer(TransferKind::Upload), Phase::Running)
            if upload_in_progress == Some(true) =>
        {
            TaskState::Pending
        }
        (TaskKind::Transfer(TransferKind::Download), Phase::Completed)
            if staged.is_some_and(|staged| staged.object.is_none()) =>
        {
            TaskState::Expired
        }
        (_, Phase::Queued) => TaskState::Pending,
        (_, Phase::Running) => TaskState::Running,
        (_, Phase::Completed) => TaskState::Succeeded,
        (_, Phase::Failed) => TaskState::Failed,
    };
    let error = match state {
        TaskState::Failed => Some(failure(observed.kind, job)),
        TaskState::Expired if observed.kind == TaskKind::Transfer(TransferKind::Upload) => Some(
            "The staged upload was not completed in time: its job stopped waiting for the data."
                .to_string(),
        ),
        TaskState::Expired => Some(
            "The staged file is no longer in the S3 store: it expired (the bucket's lifecycle rule)."
                .to_string(),
        ),
        _ => None,
    };
    Derived {
        progress: progress(observed, phase, upload_in_progress),
        created: job.time.submit.or(job.time.start),
        updated: updated(job, staged, now),
        state,
        error,
    }
}

/// What the scheduler says of a failed job (its own message comes from its log).
fn failure(kind: TaskKind, job: &Job) -> String {
    let what = match kind {
        TaskKind::Job => "The job",
        TaskKind::Transfer(_) => "The transfer job",
    };
    let mut message = format!("{what} ended {}", job.status.state);
    if let Some(code) = job.status.exit_code {
        message.push_str(&format!(" with exit code {code}"));
    }
    if let Some(reason) = job
        .status
        .state_reason
        .as_deref()
        .filter(|reason| *reason != "None")
    {
        message.push_str(&format!(" ({reason})"));
    }
    message.push('.');
    message
}

fn progress(
    observed: &Observed<'_>,
    phase: Phase,
    upload_in_progress: Option<bool>,
) -> TaskProgress {
    let job = observed.job;
    let mut progress = TaskProgress {
        job_state: job.status.state.clone(),
        job_state_reason: job.status.state_reason.clone(),
        exit_code: job.status.exit_code,
        ..TaskProgress::default()
    };
    let TaskKind::Transfer(kind) = observed.kind else {
        return progress;
    };
    if !kind.is_staged() {
        return progress;
    }
    progress.bytes = observed.file_size;
    progress.parts = observed
        .file_size
        .zip(observed.part_size.filter(|size| *size > 0))
        .map(|(size, part)| size.div_ceil(part).max(1));
    let staged = observed.staged;
    // The object is whole in S3: the client completed the upload, or the job the download.
    let complete = match kind {
        TransferKind::Upload => {
            phase == Phase::Completed
                || staged.is_some_and(|staged| staged.object.is_some())
                || (upload_in_progress == Some(false) && phase == Phase::Running)
        }
        _ => phase == Phase::Completed,
    };
    if let Some(parts) = staged.and_then(|staged| staged.parts.as_ref()) {
        progress.parts_done = Some(parts.len() as u64);
        progress.bytes_done = Some(parts.iter().map(|part| part.size).sum());
    } else if complete {
        progress.parts_done = progress.parts;
        progress.bytes_done = staged
            .and_then(|staged| staged.object.as_ref())
            .map(|object| object.size)
            .or(progress.bytes);
    } else if kind == TransferKind::Download && phase == Phase::Queued {
        progress.parts_done = Some(0);
        progress.bytes_done = Some(0);
    }
    progress
}

/// The latest time something happened to the task that is known: the job's submission,
/// start and end (not the expected ones of a job yet to start or end), and S3's times.
fn updated(job: &Job, staged: Option<&Staged>, now: i64) -> Option<i64> {
    let job_times = [job.time.submit, job.time.start, job.time.end];
    let staged_times = staged.into_iter().flat_map(|staged| {
        let parts = staged.parts.iter().flatten().map(|part| part.last_modified);
        [
            staged.upload.as_ref().and_then(|upload| upload.initiated),
            staged
                .object
                .as_ref()
                .and_then(|object| object.last_modified),
        ]
        .into_iter()
        .chain(parts)
    });
    job_times
        .into_iter()
        .chain(staged_times)
        .flatten()
        .filter(|time| *time <= now)
        .max()
}
