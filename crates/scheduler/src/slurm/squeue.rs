//! `squeue`: the jobs the controller holds (pending, running, just finished).

use ironcrest_remote::{CommandError, CommandLine, Output, QuoteError, RemoteCommand};

use super::job_rows::{Row, Source, parse_rows};

/// The 20 columns of [`job_rows`](super::job_rows); `||` pads squeue to sacct's columns.
const FORMAT: &str = "JobID:|,NumNodes:|,Cluster:||,GroupName:|,Account:|,Name:|,NodeList:|,Partition:|,PriorityLong:|,State:|,Reason:|,TimeUsed:|,SubmitTime:|,StartTime:|,EndTime:||,TimeLimit:|,UserName:|,WorkDir:";

pub struct Squeue {
    line: CommandLine,
}

impl Squeue {
    /// The listing: the user's jobs (everyone's with `user` = `None`), optionally filtered.
    /// `--states=all` keeps jobs that just finished: the accounting database may not have
    /// them yet, and without it they would vanish from the listing for a moment.
    /// Names and accounts are filtered by [`JobFilter::selects`](crate::JobFilter::selects).
    pub fn list(user: Option<&str>) -> Result<Self, QuoteError> {
        let mut builder = base()?.word("--states=all");
        if let Some(user) = user {
            builder = builder.option("--user", user)?;
        }
        Self::finish(builder)
    }

    /// One job, whoever owns it, in any state the controller still holds it in.
    pub fn job(job_id: &str) -> Result<Self, QuoteError> {
        Self::finish(base()?.word("--states=all").option("--jobs", job_id)?)
    }

    fn finish(builder: ironcrest_remote::CommandLineBuilder) -> Result<Self, QuoteError> {
        Ok(Self {
            line: builder
                .word("--noheader")
                .option("--Format", FORMAT)?
                .build(),
        })
    }
}

fn base() -> Result<ironcrest_remote::CommandLineBuilder, QuoteError> {
    CommandLine::builder("squeue").env("SLURM_TIME_FORMAT", "%s")
}

impl RemoteCommand for Squeue {
    type Parsed = Vec<Row>;
    type Error = CommandError;

    fn command_line(&self) -> CommandLine {
        self.line.clone()
    }

    fn parse(&self, output: Output) -> Result<Vec<Row>, CommandError> {
        if output.exit_status != 0 {
            // `--jobs=<id>` of a job the controller no longer (or never) knew.
            if output.stderr_text().contains("Invalid job id") {
                return Ok(Vec::new());
            }
            return Err(CommandError::failed(&output));
        }
        parse_rows(&output.stdout_text(), Source::Squeue, "squeue")
    }

    fn examples() -> Vec<Self> {
        [
            Self::list(None),
            Self::list(Some("fireuser")),
            Self::job("42"),
        ]
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("no NUL")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slurm::fixtures;

    fn jobs(rows: Vec<Row>) -> Vec<crate::Job> {
        rows.into_iter()
            .filter_map(|row| match row {
                Row::Job(job) => Some(*job),
                Row::Step { .. } => None,
            })
            .collect()
    }

    #[test]
    fn command_lines_match_the_captured_ones() {
        assert_eq!(
            Squeue::list(Some("fireuser"))
                .unwrap()
                .command_line()
                .to_string(),
            fixtures::slurm("squeue_user").command
        );
        assert_eq!(
            Squeue::job("999999").unwrap().command_line().to_string(),
            fixtures::slurm("squeue_job_unknown").command
        );
    }

    #[test]
    fn pending_and_running_jobs() {
        let fixture = fixtures::slurm("squeue_user");
        let parsed = jobs(Squeue::list(None).unwrap().parse(fixture.output).unwrap());
        let running = parsed.iter().find(|j| j.status.state == "RUNNING").unwrap();
        assert_eq!(running.name, "sleeper");
        assert_eq!(running.nodes, "localhost");
        assert_eq!(running.partition, "normal");
        assert_eq!(running.user.as_deref(), Some("fireuser"));
        assert_eq!(running.account.as_deref(), Some("staff"));
        assert_eq!(running.working_directory, "/home/fireuser");
        assert_eq!(running.time.limit, None, "UNLIMITED");
        assert!(running.time.start.is_some());
        assert!(running.time.elapsed.is_some());
        assert_eq!(running.status.exit_code, None);
        let pending = parsed.iter().find(|j| j.status.state == "PENDING").unwrap();
        assert_eq!(pending.name, "later");
        // squeue gives a pending job its expected start (here the --begin time).
        assert!(pending.time.start.is_some());
        assert_eq!(pending.time.limit, Some(30 * 60));
        assert_eq!(pending.status.state_reason.as_deref(), Some("BeginTime"));
        assert!(pending.priority.is_some());
    }

    #[test]
    fn an_unknown_job_is_no_row() {
        let fixture = fixtures::slurm("squeue_job_unknown");
        assert_eq!(fixture.output.exit_status, 1);
        assert!(
            Squeue::job("999999")
                .unwrap()
                .parse(fixture.output)
                .unwrap()
                .is_empty()
        );
    }
}
