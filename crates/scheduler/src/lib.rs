//! Workload managers behind one [`Scheduler`] trait. The status and compute services only
//! see the trait; each backend turns its scheduler's answers into the FirecREST objects in
//! [`model`]. Backends: Slurm over SSH ([`slurm::SlurmCli`]) and Slurm through slurmrestd
//! ([`slurmrest::SlurmRest`], `rest` and `hybrid` connection modes).

pub mod comment;
pub mod job;
mod measured;
pub mod model;
pub mod pbs;
pub mod slurm;
pub mod slurmrest;

use async_trait::async_trait;
use ironcrest_remote::{Caller, CommandError, CommandExamples};
use ironcrest_ssh::{RunError, SshError};

pub use comment::{CommentedJob, JobComment, TaskNote};
pub use job::{
    Job, JobDescription, JobEnv, JobFilter, JobId, JobMetadata, JobStatus, JobTask, JobTime,
    TimeWindow,
};
pub use measured::Measured;
pub use model::{
    Account, Node, NodeState, Partition, PingStatus, Reservation, ReservationChange,
    ReservationSpec,
};

/// Every command this crate runs over SSH, for the cluster-side guard's allowlist (see
/// `ironcrest-services`' `allowlist` test, which checks that none is missing).
pub fn remote_commands() -> Vec<CommandExamples> {
    vec![
        CommandExamples::of::<slurm::UserAccounts>(),
        CommandExamples::of::<slurm::Attach>(),
        CommandExamples::of::<slurm::Scancel>(),
        CommandExamples::of::<slurm::Sacct>(),
        CommandExamples::of::<slurm::Squeue>(),
        CommandExamples::of::<slurm::Sbatch>(),
        CommandExamples::of::<slurm::Partitions>(),
        CommandExamples::of::<slurm::Reservations>(),
        CommandExamples::of::<slurm::ReservationUpdate>(),
        CommandExamples::of::<slurm::Ping>(),
        CommandExamples::of::<slurm::JobStreams>(),
        CommandExamples::of::<slurm::BatchScript>(),
        CommandExamples::of::<slurm::Nodes>(),
        CommandExamples::of::<slurm::JobComments>(),
        CommandExamples::of::<pbs::Qsub>(),
        CommandExamples::of::<pbs::Jobs>(),
        CommandExamples::of::<pbs::Qdel>(),
        CommandExamples::of::<pbs::Nodes>(),
        CommandExamples::of::<pbs::Queues>(),
        CommandExamples::of::<pbs::Server>(),
        CommandExamples::of::<pbs::Reservations>(),
    ]
}

/// Everything the API asks of a workload manager. Every call runs as `user`.
#[async_trait]
pub trait Scheduler: Send + Sync {
    async fn nodes(&self, user: &Caller) -> Result<Vec<Node>, SchedulerError>;
    async fn partitions(
        &self,
        user: &Caller,
        show_hidden: bool,
    ) -> Result<Vec<Partition>, SchedulerError>;
    async fn reservations(&self, user: &Caller) -> Result<Vec<Reservation>, SchedulerError>;
    /// The user's accounts, or `None` where the scheduler has no notion of accounts.
    async fn accounts(&self, user: &Caller) -> Result<Option<Vec<Account>>, SchedulerError>;
    /// One status per controller; the scheduler is healthy when all are up.
    async fn ping(&self, user: &Caller) -> Result<Vec<PingStatus>, SchedulerError>;

    /// Submits a batch job and returns its id.
    async fn submit(&self, user: &Caller, job: &JobDescription) -> Result<String, SchedulerError>;
    /// Every job the listing may show, parsed and merged from every source the scheduler
    /// has. A backend may narrow what it fetches with `filter` (the owner, the time window),
    /// but decides nothing: [`Scheduler::jobs`] applies the filter.
    async fn fetch_jobs(
        &self,
        user: &Caller,
        filter: &JobFilter,
    ) -> Result<Vec<Job>, SchedulerError>;
    /// The jobs `filter` selects for `user`: active ones and those finished within its time
    /// window (see [`JobFilter::selects`]). Backends implement [`Scheduler::fetch_jobs`].
    async fn jobs(&self, user: &Caller, filter: &JobFilter) -> Result<Vec<Job>, SchedulerError> {
        // Taken before fetching: a cutoff the scheduler computes from its own later "now"
        // is never earlier than this one, so nothing it sent is dropped as too old.
        let now = job::now();
        let jobs = self.fetch_jobs(user, filter).await?;
        Ok(filter.apply(jobs, &user.username, now))
    }
    /// The caller's jobs that carry Ironcrest's [`JobComment`], active or submitted within
    /// the last `window_seconds`: one call, however many jobs. `NotSupported` where the
    /// scheduler keeps no comment of Ironcrest's.
    async fn commented_jobs(
        &self,
        user: &Caller,
        window_seconds: u64,
    ) -> Result<Vec<CommentedJob>, SchedulerError>;
    /// Every job the scheduler's controller holds, of every user `user` may see (active
    /// ones, and those that ended a short while ago): what the job events poller compares
    /// round after round, as a service account. `None` when the scheduler says that nothing
    /// changed since `changed_since` (epoch seconds; slurmrestd's `update_time`), so there is
    /// nothing to compare. Backends without a cheaper way list every user's jobs of the last
    /// hour.
    async fn cluster_jobs(
        &self,
        user: &Caller,
        _changed_since: Option<i64>,
    ) -> Result<Option<Vec<Job>>, SchedulerError> {
        let everyone = JobFilter {
            all_users: true,
            time_window: TimeWindow::OneHour,
            ..JobFilter::default()
        };
        self.fetch_jobs(user, &everyone).await.map(Some)
    }
    /// The accounting records of jobs that have ended, in a final state with the exit code
    /// the controller's listing may lack; a job without such a record (yet) is left out.
    /// Backends whose listing is all there is answer none.
    async fn ended_jobs(&self, _user: &Caller, _ids: &[JobId]) -> Result<Vec<Job>, SchedulerError> {
        Ok(Vec::new())
    }
    /// One job (any user's, as the scheduler's privacy settings allow); `JobNotFound` if none.
    async fn job(&self, user: &Caller, job_id: &str) -> Result<Job, SchedulerError>;
    async fn job_metadata(
        &self,
        user: &Caller,
        job_id: &str,
    ) -> Result<JobMetadata, SchedulerError>;
    /// Cancels an active job; an unknown or finished job is an error, never a silent success
    /// ([`Job::check_cancellable`]).
    async fn cancel(&self, user: &Caller, job_id: &str) -> Result<(), SchedulerError>;
    /// Runs a shell command inside a running job's allocation and waits for it
    /// ([`Job::check_attachable`]).
    async fn attach(
        &self,
        user: &Caller,
        job_id: &str,
        command: &str,
    ) -> Result<(), SchedulerError>;
    /// Makes, changes or deletes a reservation, as the scheduler lets the user (Slurm: its
    /// operators and administrators; anyone else is `AccessDenied`). `NotSupported` where
    /// the backend does not manage reservations.
    async fn change_reservation(
        &self,
        _user: &Caller,
        _change: &ReservationChange,
    ) -> Result<(), SchedulerError> {
        Err(SchedulerError::NotSupported(
            "Reservations are not managed through this scheduler backend.".into(),
        ))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error(transparent)]
    Ssh(#[from] SshError),
    /// The scheduler command failed or printed something unreadable.
    #[error("Unexpected {scheduler} command response. {source}")]
    Command {
        scheduler: &'static str,
        source: CommandError,
    },
    #[error("Job not found.")]
    JobNotFound,
    /// The job exists but has already finished, so it cannot be cancelled or attached to.
    #[error("Job {job_id} is not active (state {state}).")]
    JobNotActive { job_id: String, state: String },
    /// A request value the scheduler cannot be given safely or at all.
    #[error("{0}")]
    InvalidArgument(String),
    /// The scheduler refused the request (unknown partition or account, bad option).
    #[error("{scheduler} refused the request: {message}")]
    Rejected {
        scheduler: &'static str,
        message: String,
    },
    /// The scheduler could not take the request now (controller unreachable, timed out).
    #[error("{scheduler} is unavailable: {message}")]
    Unavailable {
        scheduler: &'static str,
        message: String,
    },
    /// The submission would exceed an accounting or QOS limit.
    #[error("Job submission rejected: accounting/QOS policy limit exceeded. {message}")]
    PolicyLimit { message: String },
    /// The scheduler says the user may not act on this job.
    #[error("{scheduler} denied access: {message}")]
    AccessDenied {
        scheduler: &'static str,
        message: String,
    },
    /// slurmrestd answered with an error or something unreadable.
    #[error("Unexpected Slurm API response. status:{status} message:{message}")]
    RestApi { status: u16, message: String },
    /// slurmrestd could not be reached or did not answer in time.
    #[error("Slurm API unavailable: {0}")]
    RestUnavailable(String),
    /// slurmrestd did not accept the caller's token, which Ironcrest had accepted.
    #[error(
        "slurmrestd did not accept the user's access token ({message}); it must trust the identity provider's keys and find a `sun` or `username` claim."
    )]
    RestTokenRefused { message: String },
    /// The configured backend cannot do this (e.g. job metadata in `rest` mode).
    #[error("{0}")]
    NotSupported(String),
}

/// A value for a scheduler command that no shell word can carry.
impl From<ironcrest_remote::QuoteError> for SchedulerError {
    fn from(_: ironcrest_remote::QuoteError) -> Self {
        SchedulerError::InvalidArgument("Values must not contain NUL characters.".into())
    }
}

impl SchedulerError {
    /// The variant as a metric label value.
    pub fn kind(&self) -> &'static str {
        match self {
            SchedulerError::Ssh(_) => "ssh",
            SchedulerError::Command { .. } => "command",
            SchedulerError::JobNotFound => "job_not_found",
            SchedulerError::JobNotActive { .. } => "job_not_active",
            SchedulerError::InvalidArgument(_) => "invalid_argument",
            SchedulerError::Rejected { .. } => "rejected",
            SchedulerError::Unavailable { .. } => "unavailable",
            SchedulerError::PolicyLimit { .. } => "policy_limit",
            SchedulerError::AccessDenied { .. } => "access_denied",
            SchedulerError::RestApi { .. } => "rest_api",
            SchedulerError::RestUnavailable(_) => "rest_unavailable",
            SchedulerError::RestTokenRefused { .. } => "rest_token_refused",
            SchedulerError::NotSupported(_) => "not_supported",
        }
    }

    /// A scheduler command that failed to run, or whose output its parser refused.
    fn from_run<E: ParseError>(scheduler: &'static str, err: RunError<E>) -> Self {
        match err {
            RunError::Ssh(ssh) => SchedulerError::Ssh(ssh),
            RunError::Command(err) => err.into_scheduler_error(scheduler),
        }
    }
}

/// What a scheduler command's parser fails with (its
/// [`RemoteCommand::Error`](ironcrest_remote::RemoteCommand::Error)), as a
/// [`SchedulerError`].
pub(crate) trait ParseError {
    fn into_scheduler_error(self, scheduler: &'static str) -> SchedulerError;
}

/// An output the command could not read: `scheduler` answered unexpectedly.
impl ParseError for CommandError {
    fn into_scheduler_error(self, scheduler: &'static str) -> SchedulerError {
        SchedulerError::Command {
            scheduler,
            source: self,
        }
    }
}

/// A refusal the command recognised in the output (an unknown job, a rejected submit).
impl ParseError for SchedulerError {
    fn into_scheduler_error(self, _: &'static str) -> SchedulerError {
        self
    }
}
