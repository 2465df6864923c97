//! `sbatch`: submits a batch job, its script on standard input or at a remote path.
//!
//! The job's environment is not spelled into `--export=ALL,K=V` (sbatch splits that on
//! commas and cannot carry every value): each variable is given to sbatch's own process
//! through `env -- 'K=V' … sbatch --export=ALL`, every assignment one quoted word, so
//! quotes, `$(..)`, commas and newlines reach the job literally.

use ironcrest_remote::{CommandError, CommandLine, Output, RemoteCommand, RequestIds};

use crate::comment::JobComment;

use super::SLURM;
use crate::job::job_examples;
use crate::{JobDescription, ParseError, SchedulerError};

pub struct Sbatch {
    line: CommandLine,
    script: Option<Vec<u8>>,
}

impl Sbatch {
    /// `comment` (the submitting request's ids and idempotency marks) becomes the job's
    /// comment (`sacct -o comment`); the ids reach the job's environment as every command's
    /// `IRONCREST_*` variables do, through `--export=ALL`.
    pub fn new(job: &JobDescription, comment: Option<&JobComment>) -> Result<Self, SchedulerError> {
        job.check().map_err(SchedulerError::InvalidArgument)?;
        let script = job.script.as_ref().map(|s| s.as_bytes().to_vec());
        let environment = job.environment().map_err(SchedulerError::InvalidArgument)?;
        let mut builder = CommandLine::builder("env")
            .assignments(environment)?
            .word("sbatch")
            .word("--export=ALL")
            .option("--chdir", &job.working_directory)?;
        let options: [(&'static str, &Option<String>); 8] = [
            ("--partition", &job.partition),
            ("--reservation", &job.reservation),
            ("--account", &job.account),
            ("--job-name", &job.name),
            ("--error", &job.standard_error),
            ("--output", &job.standard_output),
            ("--input", &job.standard_input),
            ("--constraint", &job.constraints),
        ];
        for (option, value) in options {
            builder = builder.option_if(option, value.as_deref().filter(|v| !v.is_empty()))?;
        }
        builder = builder.option_if("--comment", comment.map(JobComment::to_string))?;
        if let Some(path) = &job.script_path {
            builder = builder.operands([path])?;
        }
        Ok(Self {
            line: builder.build(),
            script,
        })
    }
}

impl RemoteCommand for Sbatch {
    /// The job id.
    type Parsed = String;
    /// The scheduler's refusal, or an output that names no job.
    type Error = SchedulerError;

    fn command_line(&self) -> CommandLine {
        self.line.clone()
    }

    fn stdin(&self) -> Option<&[u8]> {
        self.script.as_deref()
    }

    fn parse(&self, output: Output) -> Result<String, SchedulerError> {
        if output.exit_status != 0 {
            return Err(refusal(&output));
        }
        let stdout = output.stdout_text();
        stdout
            .lines()
            .find_map(|line| line.trim().strip_prefix("Submitted batch job "))
            .and_then(|rest| rest.split_whitespace().next())
            .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
            .map(str::to_string)
            .ok_or_else(|| {
                CommandError::UnexpectedOutput {
                    command: "sbatch",
                    detail: format!("no job id in {stdout:?}"),
                }
                .into_scheduler_error(SLURM)
            })
    }

    fn examples() -> Vec<Self> {
        let comment = JobComment {
            ids: RequestIds {
                request_id: "r".into(),
                correlation_id: None,
            },
            idempotency: None,
            task: None,
        };
        job_examples()
            .iter()
            .flat_map(|job| [Self::new(job, None), Self::new(job, Some(&comment))])
            .collect::<Result<_, _>>()
            .expect("valid jobs")
    }
}

/// A failed sbatch: a policy limit (403), the controller out of reach (503), or else a
/// request Slurm refuses (400, with its message: an empty script, no `#!` line, an unknown
/// partition, …).
fn refusal(output: &Output) -> SchedulerError {
    let stderr = output.stderr_text().trim().to_string();
    if is_policy_limit(&stderr) {
        return SchedulerError::PolicyLimit { message: stderr };
    }
    if is_transient(&stderr) || output.exit_status > 128 || output.exit_status == 127 {
        return SchedulerError::Unavailable {
            scheduler: SLURM,
            message: CommandError::failed(output).to_string(),
        };
    }
    SchedulerError::Rejected {
        scheduler: SLURM,
        message: stderr,
    }
}

/// Slurm's words for a controller it could not reach or that did not answer in time.
pub(crate) fn is_transient(stderr: &str) -> bool {
    let lower = stderr.to_ascii_lowercase();
    [
        "timed out",
        "unable to contact",
        "connection refused",
        "zero bytes were transmitted",
        "temporarily unable",
        "slurm_persist_conn",
    ]
    .iter()
    .any(|t| lower.contains(t))
}

/// v2's test: a word like `QOSMaxSubmitJobPerUserLimit` or `AssocGrpCpuLimit`'s `Max`/`Min`
/// kin, or sbatch's own wording of such a refusal.
pub(crate) fn is_policy_limit(stderr: &str) -> bool {
    let lower = stderr.to_ascii_lowercase();
    lower.contains("accounting/qos policy")
        || lower
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .any(|word| {
                ["qos", "assoc"].iter().any(|prefix| {
                    word.strip_prefix(prefix).is_some_and(|rest| {
                        (rest.starts_with("max") || rest.starts_with("min"))
                            && rest.ends_with("limit")
                    })
                })
            })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::JobEnv;
    use crate::slurm::fixtures;

    fn inline(script: &str) -> JobDescription {
        JobDescription {
            working_directory: "/home/fireuser".into(),
            script: Some(script.into()),
            ..JobDescription::default()
        }
    }

    #[test]
    fn the_captured_submission() {
        let fixture = fixtures::slurm("sbatch_inline");
        let job = JobDescription {
            name: Some("cap-env".into()),
            account: Some("project1".into()),
            standard_output: Some("/home/fireuser/cap-%j.out".into()),
            env: Some(JobEnv::Map(
                [("MYVAR".to_string(), "a,b 'q' $(x)".to_string())].into(),
            )),
            ..inline("#!/bin/bash\necho $MYVAR\n")
        };
        let sbatch = Sbatch::new(&job, None).unwrap();
        assert_eq!(sbatch.command_line().to_string(), fixture.command);
        assert_eq!(
            sbatch.stdin(),
            Some(b"#!/bin/bash\necho $MYVAR\n".as_slice())
        );
        let id = sbatch.parse(fixture.output).unwrap();
        assert!(id.bytes().all(|b| b.is_ascii_digit()));
    }

    #[test]
    fn every_field_is_one_quoted_word() {
        let hostile = "x' $(touch /tmp/pwned) `id` \"q\" -n next,comma";
        let name = "x' $(touch /tmp/pwned) |;&";
        let value = format!("{hostile}\nsecond line");
        let job = JobDescription {
            working_directory: format!("/w/{hostile}"),
            script: None,
            script_path: Some(format!("/s/{hostile}")),
            name: Some(name.into()),
            account: Some(hostile.into()),
            partition: Some(hostile.into()),
            reservation: Some(hostile.into()),
            standard_input: Some(hostile.into()),
            standard_output: Some(hostile.into()),
            standard_error: Some(hostile.into()),
            constraints: Some(hostile.into()),
            env: Some(JobEnv::List(vec![format!("V={value}")])),
            task: None,
        };
        let line = Sbatch::new(&job, None).unwrap().command_line();
        // Run the line with printf in place of env to see the words the shell makes.
        let text = line.to_string().replacen(" env ", " printf %s\\\\0 ", 1);
        let output = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(&text)
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        let words: Vec<String> = String::from_utf8(output.stdout)
            .unwrap()
            .split('\0')
            .map(String::from)
            .collect();
        assert!(words.contains(&format!("V={value}")));
        assert!(words.contains(&format!("--job-name={name}")));
        assert!(words.contains(&format!("--chdir=/w/{hostile}")));
        assert!(words.contains(&format!("/s/{hostile}")));
        assert!(!std::path::Path::new("/tmp/pwned").exists());
    }

    #[test]
    fn refusals_of_the_request() {
        let nul = JobDescription {
            name: Some("a\0b".into()),
            ..inline("x")
        };
        assert!(matches!(
            Sbatch::new(&nul, None),
            Err(SchedulerError::InvalidArgument(_))
        ));
        let nul_env = JobDescription {
            env: Some(JobEnv::List(vec!["V=a\0b".into()])),
            ..inline("x")
        };
        let Err(SchedulerError::InvalidArgument(message)) = Sbatch::new(&nul_env, None) else {
            panic!("a NUL in an env value was accepted");
        };
        assert!(
            message.contains("`env`") && message.contains('V'),
            "{message}"
        );
        for name in ["a\"b", "a\nb", "a\tb"] {
            let job = JobDescription {
                name: Some(name.into()),
                ..inline("x")
            };
            assert!(matches!(
                Sbatch::new(&job, None),
                Err(SchedulerError::InvalidArgument(_))
            ));
        }
        for directory in ["/w/a\nb", "/w/\x01", "/w/\r"] {
            let job = JobDescription {
                working_directory: directory.into(),
                ..inline("x")
            };
            let Err(SchedulerError::InvalidArgument(message)) = Sbatch::new(&job, None) else {
                panic!("{directory:?} accepted");
            };
            assert!(message.contains("workingDirectory"), "{message}");
        }
        let neither = JobDescription {
            script: None,
            ..inline("x")
        };
        assert!(matches!(
            Sbatch::new(&neither, None),
            Err(SchedulerError::InvalidArgument(_))
        ));
        let both = JobDescription {
            script_path: Some("/s".into()),
            ..inline("x")
        };
        assert!(matches!(
            Sbatch::new(&both, None),
            Err(SchedulerError::InvalidArgument(_))
        ));
    }

    #[test]
    fn an_invalid_partition_is_rejected_with_slurms_message() {
        let fixture = fixtures::slurm("sbatch_bad_partition");
        let result = Sbatch::new(&inline("x"), None)
            .unwrap()
            .parse(fixture.output);
        match result {
            Err(SchedulerError::Rejected { message, .. }) => {
                assert!(
                    message.contains("Invalid partition name specified"),
                    "{message}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn policy_limits_are_recognised() {
        for stderr in [
            "sbatch: error: QOSMaxSubmitJobPerUserLimit",
            "sbatch: error: Batch job submission failed: Job violates accounting/QOS policy (job submit limit, user's size and/or time limits)",
            "error: AssocMaxJobsLimit",
        ] {
            assert!(is_policy_limit(stderr), "{stderr}");
        }
        assert!(!is_policy_limit(
            "sbatch: error: invalid partition specified: nope"
        ));
        let output = Output {
            stderr: b"sbatch: error: Batch job submission failed: Socket timed out on send/recv operation".to_vec(),
            exit_status: 1,
            ..Output::default()
        };
        assert!(
            matches!(refusal(&output), SchedulerError::Unavailable { .. }),
            "a transient failure is the scheduler's"
        );
    }

    #[test]
    fn scripts_sbatch_refuses_are_the_callers_error() {
        for stderr in [
            "sbatch: error: Batch script is empty!",
            "sbatch: error: This does not look like a batch script.  The first\nsbatch: error: line must start with #! followed by the path to an interpreter.",
            "sbatch: error: Batch script contains DOS line breaks (\\r\\n)",
            "sbatch: error: invalid partition specified: nope",
        ] {
            let output = Output {
                stderr: stderr.as_bytes().to_vec(),
                exit_status: 1,
                ..Output::default()
            };
            assert!(
                matches!(refusal(&output), SchedulerError::Rejected { .. }),
                "{stderr}"
            );
        }
    }
}
