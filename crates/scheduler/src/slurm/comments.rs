//! The comments of the caller's jobs, where Ironcrest finds the jobs it submitted (see
//! [`crate::comment`]). slurmdbd stores a comment only once the job has started (with
//! `AccountingStoreFlags=job_comment`), so a pending job's is read from the controller.

use ironcrest_remote::{CommandError, CommandLine, Output, QuoteError, RemoteCommand};

use crate::comment::{CommentedJob, commented_jobs};

pub struct JobComments {
    line: CommandLine,
}

impl JobComments {
    /// The accounting database's: the caller's jobs (allocations only) active within the
    /// last `seconds`.
    pub fn accounting(seconds: u64) -> Result<Self, QuoteError> {
        Ok(Self {
            line: CommandLine::builder("sacct")
                .word("--allocations")
                .option("--starttime", format!("now-{seconds}"))?
                .word("--parsable2")
                .word("--noheader")
                .word("--format=JobID,Comment")
                .build(),
        })
    }

    /// The controller's: the caller's jobs it still holds, pending ones included.
    pub fn queue() -> Self {
        Self {
            line: CommandLine::builder("squeue")
                .word("--me")
                .word("--states=all")
                .word("--noheader")
                .word("--format=%i|%k")
                .build(),
        }
    }
}

impl RemoteCommand for JobComments {
    type Parsed = Vec<CommentedJob>;
    type Error = CommandError;

    fn command_line(&self) -> CommandLine {
        self.line.clone()
    }

    fn parse(&self, output: Output) -> Result<Vec<CommentedJob>, CommandError> {
        if output.exit_status != 0 {
            return Err(CommandError::failed(&output));
        }
        let text = output.stdout_text();
        // A job id holds no `|`; a comment may.
        Ok(commented_jobs(
            text.lines().filter_map(|line| line.split_once('|')),
        ))
    }

    fn examples() -> Vec<Self> {
        vec![Self::accounting(86_400).expect("no NUL"), Self::queue()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slurm::fixtures;

    #[test]
    fn ironcrests_comments_among_the_users_jobs() {
        for (name, command) in [
            ("sacct_comments", JobComments::accounting(86_400).unwrap()),
            ("squeue_comments", JobComments::queue()),
        ] {
            let fixture = fixtures::slurm(name);
            assert_eq!(command.command_line().to_string(), fixture.command);
            let jobs = command.parse(fixture.output).unwrap();
            let marked = jobs
                .iter()
                .filter(|job| job.comment.idempotency.is_some())
                .count();
            assert_eq!(marked, 1, "{name}: {jobs:?}");
            assert!(jobs.len() > marked, "{name}: {jobs:?}");
            assert!(jobs.iter().all(|job| job.job_id.parse::<u64>().is_ok()));
        }
    }
}
