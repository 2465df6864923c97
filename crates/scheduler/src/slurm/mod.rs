//! Slurm over SSH: each Slurm command is a [`RemoteCommand`](ironcrest_remote::RemoteCommand)
//! type in its own file, run through the cluster's SSH pool as the calling user.

mod comments;
pub(crate) mod job_rows;
mod key_value;
mod sacct;
mod sacctmgr;
pub(crate) mod sbatch;
mod scancel;
mod scontrol;
pub(crate) mod sinfo;
mod squeue;
mod srun;

use std::collections::HashSet;

use async_trait::async_trait;
use ironcrest_remote::{Caller, CommandError};
use ironcrest_ssh::SshPool;

pub use comments::JobComments;
pub use sacct::Sacct;
pub use sacctmgr::UserAccounts;
pub use sbatch::Sbatch;
pub use scancel::Scancel;
pub use scontrol::{
    BatchScript, JobStreams, Partitions, Ping, ReservationUpdate, Reservations, Streams,
};
pub use sinfo::Nodes;
pub use squeue::Squeue;
pub use srun::Attach;

use ironcrest_remote::RemoteCommand;

use crate::comment::{CommentedJob, JobComment};
use crate::{
    Account, Job, JobDescription, JobFilter, JobId, JobMetadata, Node, ParseError, Partition,
    PingStatus, Reservation, ReservationChange, Scheduler, SchedulerError,
};

const SLURM: &str = "Slurm";
/// The accounting database, as an unavailable scheduler names it.
const ACCOUNTING: &str = "Slurm's accounting database (slurmdbd)";

/// A failed accounting command (sacct, sacctmgr) is [`SchedulerError::Unavailable`] naming
/// the accounting database (a 503): they run with fixed, valid arguments, so when they fail
/// the database did not answer. slurmdbd down, its MariaDB down or going down: Slurm says so
/// in many words (`Problem talking to the database`, `Sending PersistInit msg`, `DBD_*
/// failure`, even `insufficient priority`), all kept in the message.
fn accounting(err: SchedulerError) -> SchedulerError {
    match err {
        SchedulerError::Command {
            source: source @ CommandError::Failed { .. },
            ..
        } => SchedulerError::Unavailable {
            scheduler: ACCOUNTING,
            message: source.to_string(),
        },
        other => other,
    }
}

pub struct SlurmCli {
    ssh: SshPool,
}

impl SlurmCli {
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
            .map_err(|err| SchedulerError::from_run(SLURM, err))
    }
}

/// Filter values are quoted; only a NUL cannot be passed at all.
#[async_trait]
impl Scheduler for SlurmCli {
    #[tracing::instrument(
        name = "scheduler.nodes",
        level = "debug",
        skip_all,
        fields(scheduler = "slurm")
    )]
    async fn nodes(&self, user: &Caller) -> Result<Vec<Node>, SchedulerError> {
        self.run(user, &Nodes).await
    }

    #[tracing::instrument(
        name = "scheduler.partitions",
        level = "debug",
        skip_all,
        fields(scheduler = "slurm")
    )]
    async fn partitions(
        &self,
        user: &Caller,
        show_hidden: bool,
    ) -> Result<Vec<Partition>, SchedulerError> {
        self.run(user, &Partitions { show_hidden }).await
    }

    #[tracing::instrument(
        name = "scheduler.reservations",
        level = "debug",
        skip_all,
        fields(scheduler = "slurm")
    )]
    async fn reservations(&self, user: &Caller) -> Result<Vec<Reservation>, SchedulerError> {
        self.run(user, &Reservations).await
    }

    #[tracing::instrument(
        name = "scheduler.change_reservation",
        level = "debug",
        skip_all,
        fields(scheduler = "slurm")
    )]
    async fn change_reservation(
        &self,
        user: &Caller,
        change: &ReservationChange,
    ) -> Result<(), SchedulerError> {
        self.run(user, &ReservationUpdate::new(change)?).await
    }

    #[tracing::instrument(
        name = "scheduler.accounts",
        level = "debug",
        skip_all,
        fields(scheduler = "slurm")
    )]
    async fn accounts(&self, user: &Caller) -> Result<Option<Vec<Account>>, SchedulerError> {
        self.run(user, &UserAccounts::new(&user.username)?)
            .await
            .map(Some)
            .map_err(accounting)
    }

    #[tracing::instrument(
        name = "scheduler.ping",
        level = "debug",
        skip_all,
        fields(scheduler = "slurm")
    )]
    async fn ping(&self, user: &Caller) -> Result<Vec<PingStatus>, SchedulerError> {
        self.run(user, &Ping).await
    }

    #[tracing::instrument(
        name = "scheduler.submit",
        level = "debug",
        skip_all,
        fields(scheduler = "slurm")
    )]
    async fn submit(&self, user: &Caller, job: &JobDescription) -> Result<String, SchedulerError> {
        self.run(user, &Sbatch::new(job, JobComment::of(user, job).as_ref())?)
            .await
    }

    /// sacct's finished jobs back to the time window, squeue's of the controller; both
    /// only the caller's unless `all_users`.
    #[tracing::instrument(
        name = "scheduler.fetch_jobs",
        level = "debug",
        skip_all,
        fields(scheduler = "slurm")
    )]
    async fn fetch_jobs(
        &self,
        user: &Caller,
        filter: &JobFilter,
    ) -> Result<Vec<Job>, SchedulerError> {
        let sacct = Sacct::list(filter.all_users, filter.time_window)?;
        let own = (!filter.all_users).then_some(user.username.as_str());
        let squeue = Squeue::list(own)?;
        let (sacct, squeue) = tokio::join!(self.run(user, &sacct), self.run(user, &squeue));
        // Without accounting a listing would lack the finished jobs: refused, not partial.
        Ok(job_rows::merge(sacct.map_err(accounting)?, squeue?))
    }

    /// squeue of every user's jobs in any state the controller still holds (squeue has no
    /// way to ask only for changes).
    #[tracing::instrument(
        name = "scheduler.cluster_jobs",
        level = "debug",
        skip_all,
        fields(scheduler = "slurm")
    )]
    async fn cluster_jobs(
        &self,
        user: &Caller,
        _changed_since: Option<i64>,
    ) -> Result<Option<Vec<Job>>, SchedulerError> {
        let rows = self.run(user, &Squeue::list(None)?).await?;
        Ok(Some(job_rows::merge(Vec::new(), rows)))
    }

    /// One sacct for all of them; a record still active (slurmdbd lags: a running job's
    /// `0:0` is no exit code) is left out.
    #[tracing::instrument(
        name = "scheduler.ended_jobs",
        level = "debug",
        skip_all,
        fields(scheduler = "slurm")
    )]
    async fn ended_jobs(&self, user: &Caller, ids: &[JobId]) -> Result<Vec<Job>, SchedulerError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self.run(user, &Sacct::jobs(ids)?).await?;
        let mut jobs = job_rows::merge(rows, Vec::new());
        jobs.retain(|job| !job.is_active());
        Ok(jobs)
    }

    /// The controller's jobs (a pending job's comment is only there) and sacct's.
    #[tracing::instrument(
        name = "scheduler.commented_jobs",
        level = "debug",
        skip_all,
        fields(scheduler = "slurm")
    )]
    async fn commented_jobs(
        &self,
        user: &Caller,
        window_seconds: u64,
    ) -> Result<Vec<CommentedJob>, SchedulerError> {
        let accounting = JobComments::accounting(window_seconds)?;
        let queue = JobComments::queue();
        let (accounting, queue) = tokio::join!(self.run(user, &accounting), self.run(user, &queue));
        let mut jobs = queue?;
        let queued: HashSet<String> = jobs.iter().map(|job| job.job_id.clone()).collect();
        jobs.extend(
            accounting
                .map_err(self::accounting)?
                .into_iter()
                .filter(|job| !queued.contains(&job.job_id)),
        );
        Ok(jobs)
    }

    #[tracing::instrument(
        name = "scheduler.job",
        level = "debug",
        skip_all,
        fields(scheduler = "slurm")
    )]
    async fn job(&self, user: &Caller, job_id: &str) -> Result<Job, SchedulerError> {
        let sacct = Sacct::job(job_id)?;
        let squeue = Squeue::job(job_id)?;
        let (sacct, squeue) = tokio::join!(self.run(user, &sacct), self.run(user, &squeue));
        let squeue = squeue?;
        let sacct = match sacct.map_err(accounting) {
            Ok(rows) => rows,
            // Accounting is out of reach, but the controller still holds the job: its record
            // alone, as while slurmdbd lags behind (no exit code yet).
            Err(SchedulerError::Unavailable { .. }) if job_rows::holds(&squeue, job_id) => {
                Vec::new()
            }
            Err(err) => return Err(err),
        };
        job_rows::merge(sacct, squeue)
            .into_iter()
            .find(|job| job.job_id == job_id)
            .ok_or(SchedulerError::JobNotFound)
    }

    #[tracing::instrument(
        name = "scheduler.job_metadata",
        level = "debug",
        skip_all,
        fields(scheduler = "slurm")
    )]
    async fn job_metadata(
        &self,
        user: &Caller,
        job_id: &str,
    ) -> Result<JobMetadata, SchedulerError> {
        let id = JobId::parse(job_id)?;
        let streams = JobStreams::new(&id)?;
        let script = BatchScript::new(&id);
        let (streams, script) = tokio::join!(self.run(user, &streams), self.run(user, &script));
        let streams = streams?.ok_or(SchedulerError::JobNotFound)?;
        Ok(JobMetadata {
            job_id: job_id.to_string(),
            script: script?,
            standard_input: streams.stdin,
            standard_output: streams.stdout,
            standard_error: streams.stderr,
        })
    }

    #[tracing::instrument(
        name = "scheduler.cancel",
        level = "debug",
        skip_all,
        fields(scheduler = "slurm")
    )]
    async fn cancel(&self, user: &Caller, job_id: &str) -> Result<(), SchedulerError> {
        // scancel answers 0 for unknown and finished jobs: learn the true state first.
        self.job(user, job_id).await?.check_cancellable()?;
        self.run(user, &Scancel::new(job_id)?).await
    }

    #[tracing::instrument(
        name = "scheduler.attach",
        level = "debug",
        skip_all,
        fields(scheduler = "slurm")
    )]
    async fn attach(
        &self,
        user: &Caller,
        job_id: &str,
        command: &str,
    ) -> Result<(), SchedulerError> {
        self.job(user, job_id).await?.check_attachable()?;
        self.run(user, &Attach::new(job_id, command)?).await
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Outputs captured from the real Slurm 22.05 of the dev environment
    //! (`scripts/devenv/capture-fixtures` regenerates them).

    use ironcrest_remote::Output;

    pub struct Fixture {
        pub command: String,
        pub output: Output,
    }

    pub fn load(dir: &str, name: &str) -> Fixture {
        let path = format!(
            "{}/tests/fixtures/{dir}/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{path}: {err}"));
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let text_field = |key: &str| value[key].as_str().unwrap_or_default().as_bytes().to_vec();
        Fixture {
            command: value["command"].as_str().unwrap_or_default().to_string(),
            output: Output {
                stdout: text_field("stdout"),
                stderr: text_field("stderr"),
                exit_status: value["exit_status"].as_u64().unwrap_or_default() as u32,
            },
        }
    }

    pub fn slurm(name: &str) -> Fixture {
        load("slurm-22.05", name)
    }

    /// The job id a captured command line names (ids differ between captures).
    pub fn job_id(command: &str) -> String {
        command
            .split_whitespace()
            .map(|word| {
                word.trim_start_matches("--jobid=")
                    .trim_start_matches("--jobs=")
            })
            .find(|word| !word.is_empty() && word.bytes().all(|b| b.is_ascii_digit()))
            .unwrap_or_else(|| panic!("no job id in {command}"))
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(stderr: &str) -> SchedulerError {
        SchedulerError::Command {
            scheduler: SLURM,
            source: CommandError::Failed {
                exit_status: 1,
                stderr: stderr.into(),
            },
        }
    }

    /// What the dev cluster's sacct and sacctmgr printed with slurmdbd, then MariaDB, stopped.
    #[test]
    fn a_failing_accounting_command_is_the_database_unavailable() {
        for stderr in [
            "sacct: error: Problem talking to the database: Connection refused",
            "sacct: error: slurm_persist_conn_open_without_init: failed to open persistent connection to host:localhost:6819: Connection refused\nsacct: error: Getting response to message type: DBD_GET_JOBS_COND\nsacct: error: DBD_GET_JOBS_COND failure: Unspecified error",
            "sacct: error: Problem talking to the database: Unable to connect to database",
            "sacct: error: Immediate execution impossible, insufficient priority",
            "sacctmgr: error: Sending PersistInit msg: Connection refused",
            "sacctmgr: error: Sending PersistInit msg: Unable to connect to database",
        ] {
            let error = accounting(failed(stderr));
            assert!(
                matches!(
                    error,
                    SchedulerError::Unavailable {
                        scheduler: ACCOUNTING,
                        ..
                    }
                ),
                "{stderr}: {error:?}"
            );
            assert!(error.to_string().ends_with(stderr), "{error}");
        }
        // Output it cannot read is not an outage.
        let unreadable = accounting(SchedulerError::Command {
            scheduler: SLURM,
            source: CommandError::UnexpectedOutput {
                command: "sacct",
                detail: "?".into(),
            },
        });
        assert!(
            matches!(unreadable, SchedulerError::Command { .. }),
            "{unreadable:?}"
        );
    }
}
