//! Workload managers behind one [`Scheduler`] trait. The status and compute services only
//! see the trait; each backend turns its scheduler's answers into the FirecREST objects in
//! [`model`]. Slurm over SSH ([`slurm::SlurmCli`]) is the first backend; slurmrestd and PBS
//! follow behind the same trait.

pub mod model;
pub mod slurm;

use async_trait::async_trait;
use ironcrest_remote::CommandError;
use ironcrest_ssh::{RunError, SshError, SshUser};

pub use model::{Account, Node, NodeState, Partition, PingStatus, Reservation};

/// Everything the API asks of a workload manager. Every call runs as `user`.
#[async_trait]
pub trait Scheduler: Send + Sync {
    async fn nodes(&self, user: &SshUser) -> Result<Vec<Node>, SchedulerError>;
    async fn partitions(
        &self,
        user: &SshUser,
        show_hidden: bool,
    ) -> Result<Vec<Partition>, SchedulerError>;
    async fn reservations(&self, user: &SshUser) -> Result<Vec<Reservation>, SchedulerError>;
    /// The user's accounts, or `None` where the scheduler has no notion of accounts.
    async fn accounts(&self, user: &SshUser) -> Result<Option<Vec<Account>>, SchedulerError>;
    /// One status per controller; the scheduler is healthy when all are up.
    async fn ping(&self, user: &SshUser) -> Result<Vec<PingStatus>, SchedulerError>;
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
}

impl SchedulerError {
    fn from_run(scheduler: &'static str, err: RunError) -> Self {
        match err {
            RunError::Ssh(ssh) => SchedulerError::Ssh(ssh),
            RunError::Command(source) => SchedulerError::Command { scheduler, source },
        }
    }
}
