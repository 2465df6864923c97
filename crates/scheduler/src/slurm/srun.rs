//! `srun --jobid=<id> --overlap`: runs a user's shell command inside a running job.
//! The command is shell code by design (v2's attach); it reaches `bash -c` as one quoted
//! word, so it is run as given, as the user, and nothing else is.

use ironcrest_remote::{CommandError, CommandLine, Output, QuoteError, RemoteCommand};

use super::SLURM;
use crate::{ParseError, SchedulerError};

pub struct Attach {
    job_id: String,
    line: CommandLine,
}

impl Attach {
    pub fn new(job_id: &str, command: &str) -> Result<Self, QuoteError> {
        Ok(Self {
            job_id: job_id.to_string(),
            line: CommandLine::builder("srun")
                .option("--jobid", job_id)?
                .word("--overlap")
                .operands(["bash", "-c", command])?
                .build(),
        })
    }
}

impl RemoteCommand for Attach {
    type Parsed = ();
    /// Why the command could not run in the job.
    type Error = SchedulerError;

    fn command_line(&self) -> CommandLine {
        self.line.clone()
    }

    fn parse(&self, output: Output) -> Result<(), SchedulerError> {
        if output.exit_status == 0 {
            return Ok(());
        }
        let stderr = output.stderr_text();
        if stderr.contains("Invalid job id specified") {
            return Err(SchedulerError::JobNotFound);
        }
        if stderr.contains("has expired") || stderr.contains("already completing or completed") {
            return Err(SchedulerError::JobNotActive {
                job_id: self.job_id.clone(),
                state: "COMPLETED".into(),
            });
        }
        Err(CommandError::failed(&output).into_scheduler_error(SLURM))
    }

    fn examples() -> Vec<Self> {
        vec![Self::new("42", "hostname; id").expect("no NUL")]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slurm::fixtures;

    #[test]
    fn attaching_to_a_running_job() {
        let fixture = fixtures::slurm("srun_attach");
        let attach = Attach::new(
            &fixtures::job_id(&fixture.command),
            "echo attached; hostname",
        )
        .unwrap();
        assert_eq!(attach.command_line().to_string(), fixture.command);
        assert!(attach.parse(fixture.output).is_ok());
    }

    #[test]
    fn unknown_and_finished_jobs() {
        let unknown = Attach::new("999999", "true")
            .unwrap()
            .parse(fixtures::slurm("srun_attach_unknown").output);
        assert!(
            matches!(unknown, Err(SchedulerError::JobNotFound)),
            "{unknown:?}"
        );
        let expired = Attach::new("10", "true")
            .unwrap()
            .parse(fixtures::slurm("srun_attach_finished").output);
        assert!(
            matches!(expired, Err(SchedulerError::JobNotActive { .. })),
            "{expired:?}"
        );
    }
}
