//! `scancel --verbose`: Slurm exits 0 even for an unknown or finished job and only
//! `--verbose` makes it say so on stderr, which is why the caller checks the job first and
//! this parser still reads stderr.

use ironcrest_remote::{CommandError, CommandLine, Output, QuoteError, RemoteCommand};

use super::SLURM;
use crate::{ParseError, SchedulerError};

pub struct Scancel {
    job_id: String,
    line: CommandLine,
}

impl Scancel {
    pub fn new(job_id: &str) -> Result<Self, QuoteError> {
        Ok(Self {
            job_id: job_id.to_string(),
            line: CommandLine::builder("scancel")
                .word("--verbose")
                .operands([job_id])?
                .build(),
        })
    }
}

impl RemoteCommand for Scancel {
    type Parsed = ();
    /// Why Slurm did not cancel.
    type Error = SchedulerError;

    fn command_line(&self) -> CommandLine {
        self.line.clone()
    }

    fn parse(&self, output: Output) -> Result<(), SchedulerError> {
        let stderr = output.stderr_text();
        let error_line = stderr
            .lines()
            .find(|line| line.contains("error:"))
            .map(str::trim);
        if output.exit_status == 0 && error_line.is_none() {
            return Ok(());
        }
        let message = error_line.unwrap_or(stderr.trim()).to_string();
        if message.contains("Invalid job id specified") {
            return Err(SchedulerError::JobNotFound);
        }
        if message.contains("already completing or completed") {
            return Err(SchedulerError::JobNotActive {
                job_id: self.job_id.clone(),
                state: "COMPLETED".into(),
            });
        }
        // 210: ESLURM_ACCESS_DENIED (2002) truncated to 8 bits.
        if output.exit_status == 210 || message.contains("Access/permission denied") {
            return Err(SchedulerError::AccessDenied {
                scheduler: SLURM,
                message,
            });
        }
        Err(CommandError::failed(&output).into_scheduler_error(SLURM))
    }

    fn examples() -> Vec<Self> {
        vec![Self::new("42").expect("no NUL")]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slurm::fixtures;

    #[test]
    fn cancelling_a_running_job() {
        let fixture = fixtures::slurm("scancel_running");
        let scancel = Scancel::new(&fixtures::job_id(&fixture.command)).unwrap();
        assert_eq!(scancel.command_line().to_string(), fixture.command);
        assert!(scancel.parse(fixture.output).is_ok());
    }

    #[test]
    fn an_unknown_job_exits_zero_but_is_not_found() {
        let fixture = fixtures::slurm("scancel_unknown");
        assert_eq!(fixture.output.exit_status, 0);
        let result = Scancel::new("999999").unwrap().parse(fixture.output);
        assert!(
            matches!(result, Err(SchedulerError::JobNotFound)),
            "{result:?}"
        );
    }

    #[test]
    fn another_users_job_is_access_denied() {
        let fixture = fixtures::slurm("scancel_other_user");
        let scancel = Scancel::new(&fixtures::job_id(&fixture.command)).unwrap();
        assert_eq!(scancel.command_line().to_string(), fixture.command);
        let result = scancel.parse(fixture.output);
        assert!(
            matches!(result, Err(SchedulerError::AccessDenied { .. })),
            "{result:?}"
        );
    }
}
