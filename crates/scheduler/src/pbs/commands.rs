//! The PBS commands, each a [`RemoteCommand`] run over SSH as the calling user, and their
//! readers for OpenPBS's `-F json` and `pbs_rstat -f` outputs.

use std::borrow::Cow;

use ironcrest_remote::{Checked, CommandError, CommandLine, Output, RemoteCommand};
use serde_json::Value;

use super::parse;
use super::{PBS, PbsJob};
use crate::job::job_examples;
use crate::slurm::sbatch::is_policy_limit;
use crate::{JobDescription, Node, ParseError, Partition, PingStatus, Reservation, SchedulerError};

fn json(output: &Output, command: &'static str) -> Result<Value, CommandError> {
    if output.exit_status != 0 {
        return Err(CommandError::failed(output));
    }
    serde_json::from_slice(&output.stdout).map_err(|err| CommandError::UnexpectedOutput {
        command,
        detail: format!("invalid JSON: {err}"),
    })
}

fn unexpected(command: &'static str) -> impl Fn(String) -> CommandError {
    move |detail| CommandError::UnexpectedOutput { command, detail }
}

/// `qsub`, the script on standard input or at a remote path, run in the working directory
/// (`cd <wd> && …`: PBS starts jobs in the home directory otherwise). The environment
/// reaches qsub's own process through `env -- 'K=V' …` and the job through `-V`, so every
/// value arrives literally (qsub's `-v` splits on commas).
pub struct Qsub {
    line: CommandLine,
    script: Option<Vec<u8>>,
}

impl Qsub {
    /// The submitting request's ids reach the job's environment as every command's
    /// `IRONCREST_*` variables do, through `-V`.
    pub fn new(job: &JobDescription) -> Result<Self, SchedulerError> {
        job.check().map_err(SchedulerError::InvalidArgument)?;
        let refuse =
            |what: &str| SchedulerError::InvalidArgument(format!("PBS jobs cannot set {what}."));
        if job.standard_input.is_some() {
            return Err(refuse("standardInput"));
        }
        if job.constraints.is_some() {
            return Err(refuse("constraints"));
        }
        let environment = job.environment().map_err(SchedulerError::InvalidArgument)?;
        let cd = CommandLine::builder("cd")
            .operands([&job.working_directory])?
            .build();
        let mut qsub = CommandLine::builder("env")
            .assignments(environment)?
            .word("qsub")
            .word("-V");
        // A reservation is a queue in PBS, and takes the partition's place.
        let queue = job.reservation.as_ref().or(job.partition.as_ref());
        for (flag, value) in [
            ("-N", job.name.as_ref()),
            ("-q", queue),
            ("-P", job.account.as_ref()),
            ("-o", job.standard_output.as_ref()),
            ("-e", job.standard_error.as_ref()),
        ] {
            if value.is_some_and(|value| value.starts_with('-')) {
                return Err(SchedulerError::InvalidArgument(format!(
                    "The value of qsub {flag} must not start with '-'."
                )));
            }
            qsub = qsub.option_arg_if(flag, value)?;
        }
        if let Some(path) = &job.script_path {
            // qsub reads `--` as "an executable follows", so the script path is checked
            // to be absolute instead: it cannot begin with `-`.
            qsub = qsub.checked(&AbsolutePath::new(path)?);
        }
        Ok(Self {
            line: cd.and_then(qsub.build()),
            script: job.script.as_ref().map(|s| s.as_bytes().to_vec()),
        })
    }
}

impl RemoteCommand for Qsub {
    /// The job id.
    type Parsed = String;
    /// PBS's refusal, or an output that names no job.
    type Error = SchedulerError;

    fn command_line(&self) -> CommandLine {
        self.line.clone()
    }

    fn stdin(&self) -> Option<&[u8]> {
        self.script.as_deref()
    }

    fn parse(&self, output: Output) -> Result<String, SchedulerError> {
        if output.exit_status != 0 {
            let stderr = output.stderr_text().trim().to_string();
            let lower = stderr.to_ascii_lowercase();
            if is_policy_limit(&stderr) || lower.contains("would exceed") {
                return Err(SchedulerError::PolicyLimit { message: stderr });
            }
            if lower.starts_with("qsub:") && !lower.contains("cannot connect") {
                return Err(SchedulerError::Rejected {
                    scheduler: PBS,
                    message: stderr,
                });
            }
            return Err(CommandError::failed(&output).into_scheduler_error(PBS));
        }
        let stdout = output.stdout_text();
        let id: String = stdout
            .trim()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        if id.is_empty() {
            return Err(CommandError::UnexpectedOutput {
                command: "qsub",
                detail: format!("no job id in {stdout:?}"),
            }
            .into_scheduler_error(PBS));
        }
        Ok(id)
    }

    fn examples() -> Vec<Self> {
        job_examples()
            .into_iter()
            .map(|job| {
                Self::new(&JobDescription {
                    standard_input: None,
                    constraints: None,
                    ..job
                })
            })
            .collect::<Result<_, _>>()
            .expect("valid jobs")
    }
}

/// `qstat -F json -f -x`: every job the server still knows, finished ones included.
pub struct Jobs;

impl RemoteCommand for Jobs {
    type Parsed = Vec<PbsJob>;
    type Error = CommandError;

    fn command_line(&self) -> CommandLine {
        CommandLine::builder("qstat")
            .word("-F")
            .word("json")
            .word("-f")
            .word("-x")
            .build()
    }

    fn parse(&self, output: Output) -> Result<Vec<PbsJob>, CommandError> {
        parse::jobs(&json(&output, "qstat")?).map_err(unexpected("qstat"))
    }

    fn examples() -> Vec<Self> {
        vec![Self]
    }
}

/// A PBS job id as the server prints it (`1043.pbs01`, `1043[].pbs01`): it starts with a
/// digit and is one word, so it may stand where `qdel` parses options.
struct ServerJobId<'a>(&'a str);

impl<'a> ServerJobId<'a> {
    fn new(id: &'a str) -> Result<Self, SchedulerError> {
        let word = |b: u8| b.is_ascii_alphanumeric() || b"[].-_".contains(&b);
        if id.starts_with(|c: char| c.is_ascii_digit()) && id.bytes().all(word) {
            Ok(Self(id))
        } else {
            Err(SchedulerError::InvalidArgument(format!(
                "Invalid PBS job id {id:?}."
            )))
        }
    }
}

impl Checked for ServerJobId<'_> {
    fn checked_word(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(self.0.as_bytes())
    }
}

/// A script path that starts with `/`, so `qsub` cannot read it as an option.
struct AbsolutePath<'a>(&'a str);

impl<'a> AbsolutePath<'a> {
    fn new(path: &'a str) -> Result<Self, SchedulerError> {
        if path.starts_with('/') && !path.contains('\0') {
            Ok(Self(path))
        } else {
            Err(SchedulerError::InvalidArgument(
                "scriptPath must be an absolute path.".into(),
            ))
        }
    }
}

impl Checked for AbsolutePath<'_> {
    fn checked_word(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(self.0.as_bytes())
    }
}

/// `qdel <full id>`.
pub struct Qdel {
    line: CommandLine,
    job_id: String,
}

impl Qdel {
    pub fn new(pbs_id: &str, job_id: &str) -> Result<Self, SchedulerError> {
        Ok(Self {
            line: CommandLine::builder("qdel")
                .checked(&ServerJobId::new(pbs_id)?)
                .build(),
            job_id: job_id.to_string(),
        })
    }
}

impl RemoteCommand for Qdel {
    type Parsed = ();
    /// Why PBS did not delete the job.
    type Error = SchedulerError;

    fn command_line(&self) -> CommandLine {
        self.line.clone()
    }

    fn parse(&self, output: Output) -> Result<(), SchedulerError> {
        if output.exit_status == 0 {
            return Ok(());
        }
        let stderr = output.stderr_text().trim().to_string();
        if stderr.contains("Unknown Job Id") {
            return Err(SchedulerError::JobNotFound);
        }
        if stderr.contains("Job has finished") {
            return Err(SchedulerError::JobNotActive {
                job_id: self.job_id.clone(),
                state: "COMPLETED".into(),
            });
        }
        if stderr.contains("Unauthorized Request") {
            return Err(SchedulerError::AccessDenied {
                scheduler: PBS,
                message: stderr,
            });
        }
        Err(CommandError::failed(&output).into_scheduler_error(PBS))
    }

    fn examples() -> Vec<Self> {
        vec![Self::new("42.server", "42").expect("a job id")]
    }
}

/// `pbsnodes -a -F json`.
pub struct Nodes;

impl RemoteCommand for Nodes {
    type Parsed = Vec<Node>;
    type Error = CommandError;

    fn command_line(&self) -> CommandLine {
        CommandLine::builder("pbsnodes")
            .word("-a")
            .word("-F")
            .word("json")
            .build()
    }

    fn parse(&self, output: Output) -> Result<Vec<Node>, CommandError> {
        parse::nodes(&json(&output, "pbsnodes")?).map_err(unexpected("pbsnodes"))
    }

    fn examples() -> Vec<Self> {
        vec![Self]
    }
}

/// `qstat -F json -f -Q`: queues are PBS's partitions.
pub struct Queues;

impl RemoteCommand for Queues {
    type Parsed = Vec<Partition>;
    type Error = CommandError;

    fn command_line(&self) -> CommandLine {
        CommandLine::builder("qstat")
            .word("-F")
            .word("json")
            .word("-f")
            .word("-Q")
            .build()
    }

    fn parse(&self, output: Output) -> Result<Vec<Partition>, CommandError> {
        parse::queues(&json(&output, "qstat")?).map_err(unexpected("qstat"))
    }

    fn examples() -> Vec<Self> {
        vec![Self]
    }
}

/// `qstat -F json -f -B`: the server's state is the ping.
pub struct Server;

impl RemoteCommand for Server {
    type Parsed = Vec<PingStatus>;
    type Error = CommandError;

    fn command_line(&self) -> CommandLine {
        CommandLine::builder("qstat")
            .word("-F")
            .word("json")
            .word("-f")
            .word("-B")
            .build()
    }

    fn parse(&self, output: Output) -> Result<Vec<PingStatus>, CommandError> {
        parse::servers(&json(&output, "qstat")?).map_err(unexpected("qstat"))
    }

    fn examples() -> Vec<Self> {
        vec![Self]
    }
}

/// `pbs_rstat -f` (no JSON form exists).
pub struct Reservations;

impl RemoteCommand for Reservations {
    type Parsed = Vec<Reservation>;
    type Error = CommandError;

    fn command_line(&self) -> CommandLine {
        CommandLine::builder("pbs_rstat").word("-f").build()
    }

    fn parse(&self, output: Output) -> Result<Vec<Reservation>, CommandError> {
        if output.exit_status != 0 {
            return Err(CommandError::failed(&output));
        }
        parse::reservations(&output.stdout_text(), crate::job::now())
            .map_err(unexpected("pbs_rstat"))
    }

    fn examples() -> Vec<Self> {
        vec![Self]
    }
}
