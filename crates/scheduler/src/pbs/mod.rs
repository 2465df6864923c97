//! PBS / OpenPBS over SSH: `qsub` (script on stdin, in the working directory), `qstat -F
//! json -f -x` for jobs (finished ones included), `qdel`, `pbsnodes -a -F json`,
//! `qstat -F json -f -Q` (queues as partitions), `pbs_rstat -f`, and `qstat -F json -f -B`
//! as the ping. PBS has no accounts (userinfo's `accounts` is null) and no equivalent of
//! `srun --overlap`, so attach is unsupported.
//!
//! A job's FirecREST id is the numeric part of its PBS id (`1043[].pbs01` → `1043`); the
//! full id is kept for `qdel`. Jobs are looked up in the full listing, which also covers
//! arrays (`qstat <id>` would need the `[]` suffix) and answers 404 for an unknown id
//! where v2 gives 500.

mod commands;
mod parse;

use async_trait::async_trait;
use ironcrest_remote::Caller;
use ironcrest_remote::RemoteCommand;
use ironcrest_ssh::SshPool;

pub use commands::{Jobs, Nodes, Qdel, Qsub, Queues, Reservations, Server};

use crate::comment::CommentedJob;
use crate::{
    Account, Job, JobDescription, JobFilter, JobMetadata, Node, ParseError, Partition, PingStatus,
    Reservation, Scheduler, SchedulerError,
};

const PBS: &str = "PBS";

/// A job as `qstat` reports it: the FirecREST view plus what only PBS needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PbsJob {
    /// The full PBS id (`1041.pbs01`, `1043[].pbs01`).
    pub pbs_id: String,
    pub job: Job,
    /// `Output_Path` and `Error_Path` without their `host:` prefix.
    pub stdout: Option<String>,
    pub stderr: Option<String>,
}

pub struct PbsCli {
    ssh: SshPool,
}

impl PbsCli {
    pub fn new(ssh: SshPool) -> Self {
        Self { ssh }
    }

    async fn run<C>(&self, user: &Caller, command: &C) -> Result<C::Parsed, SchedulerError>
    where
        C: RemoteCommand<Error: ParseError> + Sync,
    {
        self.ssh
            .run(user, command)
            .await
            .map_err(|err| SchedulerError::from_run(PBS, err))
    }

    async fn find(&self, user: &Caller, job_id: &str) -> Result<PbsJob, SchedulerError> {
        self.run(user, &Jobs)
            .await?
            .into_iter()
            .find(|job| job.job.job_id == job_id)
            .ok_or(SchedulerError::JobNotFound)
    }
}

#[async_trait]
impl Scheduler for PbsCli {
    #[tracing::instrument(
        name = "scheduler.nodes",
        level = "debug",
        skip_all,
        fields(scheduler = "pbs")
    )]
    async fn nodes(&self, user: &Caller) -> Result<Vec<Node>, SchedulerError> {
        self.run(user, &Nodes).await
    }

    #[tracing::instrument(
        name = "scheduler.partitions",
        level = "debug",
        skip_all,
        fields(scheduler = "pbs")
    )]
    async fn partitions(
        &self,
        user: &Caller,
        _show_hidden: bool,
    ) -> Result<Vec<Partition>, SchedulerError> {
        // PBS queues have no hidden flag.
        self.run(user, &Queues).await
    }

    #[tracing::instrument(
        name = "scheduler.reservations",
        level = "debug",
        skip_all,
        fields(scheduler = "pbs")
    )]
    async fn reservations(&self, user: &Caller) -> Result<Vec<Reservation>, SchedulerError> {
        self.run(user, &Reservations).await
    }

    #[tracing::instrument(
        name = "scheduler.accounts",
        level = "debug",
        skip_all,
        fields(scheduler = "pbs")
    )]
    async fn accounts(&self, _user: &Caller) -> Result<Option<Vec<Account>>, SchedulerError> {
        Ok(None)
    }

    #[tracing::instrument(
        name = "scheduler.ping",
        level = "debug",
        skip_all,
        fields(scheduler = "pbs")
    )]
    async fn ping(&self, user: &Caller) -> Result<Vec<PingStatus>, SchedulerError> {
        self.run(user, &Server).await
    }

    #[tracing::instrument(
        name = "scheduler.submit",
        level = "debug",
        skip_all,
        fields(scheduler = "pbs")
    )]
    async fn submit(&self, user: &Caller, job: &JobDescription) -> Result<String, SchedulerError> {
        self.run(user, &Qsub::new(job)?).await
    }

    /// Every job the server still holds (`qstat` has no owner or time filter worth using:
    /// `Scheduler::jobs` filters them, the time window included, which v2 ignores for PBS).
    #[tracing::instrument(
        name = "scheduler.fetch_jobs",
        level = "debug",
        skip_all,
        fields(scheduler = "pbs")
    )]
    async fn fetch_jobs(&self, user: &Caller, _: &JobFilter) -> Result<Vec<Job>, SchedulerError> {
        Ok(self
            .run(user, &Jobs)
            .await?
            .into_iter()
            .map(|job| job.job)
            .collect())
    }

    #[tracing::instrument(
        name = "scheduler.job",
        level = "debug",
        skip_all,
        fields(scheduler = "pbs")
    )]
    async fn job(&self, user: &Caller, job_id: &str) -> Result<Job, SchedulerError> {
        Ok(self.find(user, job_id).await?.job)
    }

    #[tracing::instrument(
        name = "scheduler.job_metadata",
        level = "debug",
        skip_all,
        fields(scheduler = "pbs")
    )]
    async fn job_metadata(
        &self,
        user: &Caller,
        job_id: &str,
    ) -> Result<JobMetadata, SchedulerError> {
        let job = self.find(user, job_id).await?;
        Ok(JobMetadata {
            job_id: job_id.to_string(),
            script: None,
            standard_input: None,
            standard_output: job.stdout,
            standard_error: job.stderr,
        })
    }

    #[tracing::instrument(
        name = "scheduler.cancel",
        level = "debug",
        skip_all,
        fields(scheduler = "pbs")
    )]
    async fn cancel(&self, user: &Caller, job_id: &str) -> Result<(), SchedulerError> {
        let job = self.find(user, job_id).await?;
        job.job.check_cancellable()?;
        self.run(user, &Qdel::new(&job.pbs_id, job_id)?).await
    }

    #[tracing::instrument(
        name = "scheduler.attach",
        level = "debug",
        skip_all,
        fields(scheduler = "pbs")
    )]
    /// qsub sets no comment (PBS's `comment` is the scheduler's own); an `Idempotency-Key`
    /// is refused rather than honoured without a record that outlives this process.
    async fn commented_jobs(
        &self,
        _: &Caller,
        _: u64,
    ) -> Result<Vec<CommentedJob>, SchedulerError> {
        Err(SchedulerError::NotSupported(
            "Idempotency-Key is not available with PBS: its jobs carry no comment of Ironcrest's."
                .into(),
        ))
    }

    async fn attach(&self, _: &Caller, _: &str, _: &str) -> Result<(), SchedulerError> {
        Err(SchedulerError::NotSupported(
            "Attaching to a job is not available with PBS.".into(),
        ))
    }
}

#[cfg(test)]
mod tests;
