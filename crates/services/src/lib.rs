//! The services: what Ironcrest does, independent of HTTP. Each service takes an
//! authenticated [`ironcrest_remote::Caller`] and a [`cluster::Cluster`], and returns domain
//! values or a [`ServiceError`], which the API layer maps to HTTP in one place.

pub mod cache;
pub mod cluster;
pub mod compute;
pub mod events;
pub mod filesystem;
pub mod health;
pub mod service_account;
pub mod status;
pub mod tasks;
pub mod transfer;

use ironcrest_remote::{CommandError, CommandExamples, QuoteError};
use ironcrest_s3::S3Error;
use ironcrest_scheduler::SchedulerError;
use ironcrest_ssh::{RunError, SshError};

pub use cluster::{Cluster, Clusters};

/// Every command Ironcrest runs over SSH, the scheduler's included: the source of the
/// cluster-side guard's allowlist (`tests/allowlist.rs` writes it and checks that every
/// [`RemoteCommand`](ironcrest_remote::RemoteCommand) type is here).
pub fn remote_commands() -> Vec<CommandExamples> {
    use filesystem::commands::*;
    let mut commands = ironcrest_scheduler::remote_commands();
    commands.extend([
        CommandExamples::of::<Sha256Sum>(),
        CommandExamples::of::<Compress>(),
        CommandExamples::of::<CopyTree>(),
        CommandExamples::of::<UtcOffsets>(),
        CommandExamples::of::<Cat>(),
        CommandExamples::of::<Extract>(),
        CommandExamples::of::<FileType>(),
        CommandExamples::of::<Head>(),
        CommandExamples::of::<Ls>(),
        CommandExamples::of::<ChangedEntry>(),
        CommandExamples::of::<Rename>(),
        CommandExamples::of::<Rm>(),
        CommandExamples::of::<Stat>(),
        CommandExamples::of::<StatBatch>(),
        CommandExamples::of::<Tail>(),
        CommandExamples::of::<Upload>(),
        CommandExamples::of::<View>(),
        CommandExamples::of::<status::Id>(),
        health::probe_shapes(),
    ]);
    commands
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("System not found")]
    SystemNotFound,
    /// A service the request needs failed its last health check.
    #[error("The {service} service for the requested system ({system}) is unhealthy.")]
    Unhealthy {
        service: &'static str,
        system: String,
    },
    /// A file system the request's path lies on failed its last health check.
    #[error("The requested filesystem ({filesystem} on {system}) is unhealthy.")]
    FilesystemUnhealthy { filesystem: String, system: String },
    /// The request is invalid (a path outside the file systems, conflicting options, …);
    /// the message names the problem.
    #[error("{0}")]
    InvalidRequest(String),
    /// One named field of the request has a value its grammar refuses.
    #[error("{message}")]
    InvalidField {
        field: &'static str,
        message: String,
    },
    /// A file past `max_ops_file_size`.
    #[error("{0}")]
    TooLarge(&'static str),
    /// The user already has as much unfinished work as they may (`gateway.limits.work`).
    #[error("{0}")]
    TooMuchWork(String),
    /// As many job event streams and long polls are open as `job_events` allows.
    #[error("{0}")]
    TooManyWatches(String),
    /// A retried staged upload whose multipart upload is over (completed, aborted or
    /// expired): its presigned URLs cannot be made again.
    #[error("{0}")]
    UploadOver(String),
    /// No task of the caller's has this id (`/tasks`).
    #[error("Task not found: {0}.")]
    TaskNotFound(String),
    /// The task has already ended, so it cannot be cancelled.
    #[error("Task {task_id} has already ended ({state}).")]
    TaskEnded {
        task_id: String,
        state: &'static str,
    },
    /// The deployment lacks something the request needs (e.g. a default work directory).
    #[error("{0}")]
    Misconfigured(String),
    #[error(transparent)]
    Staging(#[from] S3Error),
    #[error(transparent)]
    Scheduler(#[from] SchedulerError),
    #[error(transparent)]
    Ssh(#[from] SshError),
    #[error(transparent)]
    Command(#[from] CommandError),
}

impl From<QuoteError> for ServiceError {
    fn from(err: QuoteError) -> Self {
        ServiceError::InvalidRequest(format!("Invalid value: {err}"))
    }
}

impl<E: Into<ServiceError>> From<RunError<E>> for ServiceError {
    fn from(err: RunError<E>) -> Self {
        match err {
            RunError::Ssh(ssh) => ServiceError::Ssh(ssh),
            RunError::Command(command) => command.into(),
        }
    }
}
