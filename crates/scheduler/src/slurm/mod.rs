//! Slurm over SSH: each Slurm command is a [`RemoteCommand`](ironcrest_remote::RemoteCommand)
//! type in its own file, run through the cluster's SSH pool as the calling user.

mod key_value;
mod sacctmgr;
mod scontrol;
mod sinfo;

use async_trait::async_trait;
use ironcrest_ssh::{SshPool, SshUser};

pub use sacctmgr::UserAccounts;
pub use scontrol::{Partitions, Ping, Reservations};
pub use sinfo::Nodes;

use crate::{Account, Node, Partition, PingStatus, Reservation, Scheduler, SchedulerError};

const SLURM: &str = "Slurm";

pub struct SlurmCli {
    ssh: SshPool,
}

impl SlurmCli {
    pub fn new(ssh: SshPool) -> Self {
        Self { ssh }
    }
}

#[async_trait]
impl Scheduler for SlurmCli {
    async fn nodes(&self, user: &SshUser) -> Result<Vec<Node>, SchedulerError> {
        self.ssh
            .run(user, &Nodes)
            .await
            .map_err(|err| SchedulerError::from_run(SLURM, err))
    }

    async fn partitions(
        &self,
        user: &SshUser,
        show_hidden: bool,
    ) -> Result<Vec<Partition>, SchedulerError> {
        self.ssh
            .run(user, &Partitions { show_hidden })
            .await
            .map_err(|err| SchedulerError::from_run(SLURM, err))
    }

    async fn reservations(&self, user: &SshUser) -> Result<Vec<Reservation>, SchedulerError> {
        self.ssh
            .run(user, &Reservations)
            .await
            .map_err(|err| SchedulerError::from_run(SLURM, err))
    }

    async fn accounts(&self, user: &SshUser) -> Result<Option<Vec<Account>>, SchedulerError> {
        let command =
            UserAccounts::new(&user.username).map_err(|source| SchedulerError::Command {
                scheduler: SLURM,
                source: ironcrest_remote::CommandError::UnexpectedOutput {
                    command: "sacctmgr",
                    detail: source.to_string(),
                },
            })?;
        self.ssh
            .run(user, &command)
            .await
            .map(Some)
            .map_err(|err| SchedulerError::from_run(SLURM, err))
    }

    async fn ping(&self, user: &SshUser) -> Result<Vec<PingStatus>, SchedulerError> {
        self.ssh
            .run(user, &Ping)
            .await
            .map_err(|err| SchedulerError::from_run(SLURM, err))
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
}
