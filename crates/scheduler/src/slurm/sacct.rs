//! `sacct`: the accounting database's view of jobs and their steps, finished ones included.

use ironcrest_remote::{
    CommandError, CommandLine, CommandLineBuilder, Output, QuoteError, RemoteCommand,
};

use super::job_rows::{Row, Source, parse_rows};
use crate::{JobId, TimeWindow};

/// The 20 columns of [`job_rows`](super::job_rows).
const FORMAT: &str = "JobID,AllocNodes,Cluster,ExitCode,Group,Account,JobName,NodeList,Partition,Priority,State,Reason,ElapsedRaw,Submit,Start,End,Suspended,TimelimitRaw,User,WorkDir";

pub struct Sacct {
    line: CommandLine,
}

impl Sacct {
    /// The listing: the caller's jobs (everyone's with `all_users`) started within `window`.
    /// Names and accounts are filtered by [`JobFilter::selects`](crate::JobFilter::selects).
    pub fn list(all_users: bool, window: TimeWindow) -> Result<Self, QuoteError> {
        let mut builder = base()?;
        if all_users {
            builder = builder.word("--allusers");
        }
        Self::finish(builder.word(start_time(window)))
    }

    /// One job, whoever owns it, however old (`--jobs` without `--starttime` searches all).
    pub fn job(job_id: &str) -> Result<Self, QuoteError> {
        Self::finish(base()?.word("--allusers").option("--jobs", job_id)?)
    }

    /// Several jobs at once, as [`Sacct::job`] asks for one (the same line, a list of ids).
    pub fn jobs(job_ids: &[JobId]) -> Result<Self, QuoteError> {
        let ids: Vec<&str> = job_ids.iter().map(JobId::as_str).collect();
        Self::job(&ids.join(","))
    }

    fn finish(builder: CommandLineBuilder) -> Result<Self, QuoteError> {
        Ok(Self {
            line: builder
                .word("--parsable2")
                .word("--noheader")
                .option("--format", FORMAT)?
                .build(),
        })
    }
}

fn base() -> Result<CommandLineBuilder, QuoteError> {
    CommandLine::builder("sacct").env("SLURM_TIME_FORMAT", "%s")
}

fn start_time(window: TimeWindow) -> &'static str {
    match window {
        TimeWindow::OneHour => "--starttime=now-1hours",
        TimeWindow::EightHours => "--starttime=now-8hours",
        TimeWindow::OneDay => "--starttime=now-24hours",
        TimeWindow::ThreeDays => "--starttime=now-3days",
        TimeWindow::SevenDays => "--starttime=now-7days",
    }
}

impl RemoteCommand for Sacct {
    type Parsed = Vec<Row>;
    type Error = CommandError;

    fn command_line(&self) -> CommandLine {
        self.line.clone()
    }

    fn parse(&self, output: Output) -> Result<Vec<Row>, CommandError> {
        if output.exit_status != 0 {
            return Err(CommandError::failed(&output));
        }
        parse_rows(&output.stdout_text(), Source::Sacct, "sacct")
    }

    fn examples() -> Vec<Self> {
        let windows = [
            TimeWindow::OneHour,
            TimeWindow::EightHours,
            TimeWindow::OneDay,
            TimeWindow::ThreeDays,
            TimeWindow::SevenDays,
        ];
        let lists = windows
            .into_iter()
            .flat_map(|window| [false, true].map(|all| Self::list(all, window)));
        lists
            .chain([Self::job("42")])
            .collect::<Result<_, _>>()
            .expect("no NUL")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slurm::fixtures;
    use crate::slurm::job_rows::merge;

    #[test]
    fn command_lines_match_the_captured_ones() {
        assert_eq!(
            Sacct::list(false, TimeWindow::OneDay)
                .unwrap()
                .command_line()
                .to_string(),
            fixtures::slurm("sacct_list").command
        );
        assert_eq!(
            Sacct::job("999999").unwrap().command_line().to_string(),
            fixtures::slurm("sacct_job_unknown").command
        );
    }

    #[test]
    fn finished_jobs_with_steps_merge_with_the_queue() {
        let sacct = Sacct::list(false, TimeWindow::OneDay)
            .unwrap()
            .parse(fixtures::slurm("sacct_list").output)
            .unwrap();
        let squeue = super::super::squeue::Squeue::list(None)
            .unwrap()
            .parse(fixtures::slurm("squeue_user").output)
            .unwrap();
        let jobs = merge(sacct, squeue);
        let completed = jobs.iter().find(|j| j.name == "cap-env").unwrap();
        assert_eq!(completed.status.state, "COMPLETED");
        assert_eq!(completed.status.exit_code, Some(0));
        assert_eq!(completed.status.interrupt_signal, Some(0));
        assert!(completed.time.end.is_some());
        let tasks = completed.tasks.as_ref().unwrap();
        assert_eq!(tasks.len(), 1);
        assert_eq!(tasks[0].id, format!("{}.batch", completed.job_id));
        assert_eq!(tasks[0].name, "batch");
        assert_eq!(completed.account.as_deref(), Some("project1"));
        let pending = jobs.iter().find(|j| j.name == "later").unwrap();
        // squeue's PENDING record wins: only the controller knows the real reason.
        assert_eq!(pending.status.state, "PENDING");
        assert_eq!(pending.status.state_reason.as_deref(), Some("BeginTime"));
        let failed = jobs.iter().find(|j| j.name == "fail3").unwrap();
        assert_eq!(failed.status.state, "FAILED");
        let ids: std::collections::HashSet<&str> = jobs.iter().map(|j| j.job_id.as_str()).collect();
        assert_eq!(ids.len(), jobs.len(), "one entry per job");
    }

    #[test]
    fn exit_code_and_limit_of_a_finished_failing_job() {
        let fixture = fixtures::slurm("sacct_job_failed");
        let command = Sacct::job(&fixtures::job_id(&fixture.command)).unwrap();
        assert_eq!(command.command_line().to_string(), fixture.command);
        let rows = command.parse(fixture.output).unwrap();
        let jobs = merge(rows, Vec::new());
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].status.state, "FAILED");
        assert_eq!(jobs[0].status.exit_code, Some(3));
        assert_eq!(jobs[0].time.limit, Some(30 * 60));
    }

    #[test]
    fn several_jobs_are_one_line_of_the_single_jobs_shape() {
        let ids = [JobId::parse("12").unwrap(), JobId::parse("345").unwrap()];
        let line = Sacct::jobs(&ids).unwrap().command_line();
        assert_eq!(
            line.shape(),
            Sacct::job("42").unwrap().command_line().shape()
        );
        assert!(line.to_string().contains("--jobs='12,345'"), "{line}");
    }

    #[test]
    fn an_unknown_job_is_no_row() {
        let rows = Sacct::job("999999")
            .unwrap()
            .parse(fixtures::slurm("sacct_job_unknown").output)
            .unwrap();
        assert!(rows.is_empty());
    }
}
