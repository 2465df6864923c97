//! The 20-column job rows that `squeue --Format` and `sacct --parsable2` print (the same
//! columns in the same order, squeue padded with empty ones), and how they merge.

use std::collections::HashMap;

use ironcrest_remote::CommandError;

use crate::{Job, JobStatus, JobTask, JobTime};

pub const COLUMNS: usize = 20;
/// Columns before the job name, and after it: a `|` inside a job name is told apart from
/// a separator by counting from both ends.
const BEFORE_NAME: usize = 6;
const AFTER_NAME: usize = COLUMNS - BEFORE_NAME - 1;

/// Which command printed the row: their duration columns differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `TimeUsed` and `TimeLimit` are `[D-]HH:MM:SS`.
    Squeue,
    /// `ElapsedRaw` in seconds, `TimelimitRaw` in minutes, `Suspended` as `HH:MM:SS`.
    Sacct,
}

/// A parsed row: a job, or a step of one (`123.batch`).
pub enum Row {
    Job(Box<Job>),
    Step { job_id: String, task: Box<JobTask> },
}

pub fn parse_rows(
    text: &str,
    source: Source,
    command: &'static str,
) -> Result<Vec<Row>, CommandError> {
    let mut rows = Vec::new();
    let mut pending = String::new();
    // A newline inside a value (a job name or working directory submitted elsewhere)
    // splits a row: a line continues the row before it until that row has all its columns,
    // and after that unless it starts a row of its own (with a job id).
    for line in text.lines() {
        if pending.is_empty() && line.trim().is_empty() {
            continue;
        }
        let complete = pending.matches('|').count() >= COLUMNS - 1;
        if complete && starts_row(line) {
            rows.push(parse_row(&pending, source, command)?);
            pending.clear();
        }
        if !pending.is_empty() {
            pending.push('\n');
        }
        pending.push_str(line);
    }
    if !pending.is_empty() {
        rows.push(parse_row(&pending, source, command)?);
    }
    Ok(rows)
}

/// `123|…`, `123.batch|…`, `123_4|…`: a line that begins a job's or a step's row.
fn starts_row(line: &str) -> bool {
    let Some((id, _)) = line.split_once('|') else {
        return false;
    };
    let digits = id.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0
        && id[digits..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._+[]-".contains(&b))
}

fn parse_row(line: &str, source: Source, command: &'static str) -> Result<Row, CommandError> {
    let parts: Vec<&str> = line.split('|').collect();
    if parts.len() < COLUMNS {
        return Err(CommandError::UnexpectedOutput {
            command,
            detail: format!("expected {COLUMNS} columns in {line:?}"),
        });
    }
    let name_end = parts.len() - AFTER_NAME;
    let name = parts[BEFORE_NAME..name_end].join("|");
    let mut f: Vec<&str> = parts[..BEFORE_NAME].to_vec();
    f.push(&name);
    f.extend_from_slice(&parts[name_end..]);
    let [
        job_id,
        alloc_nodes,
        cluster,
        exit_code,
        group,
        account,
        name,
        nodes,
        partition,
        priority,
        state,
        reason,
        elapsed,
        submit,
        start,
        end,
        suspended,
        limit,
        user,
        work_dir,
    ] = f[..]
    else {
        return Err(CommandError::UnexpectedOutput {
            command,
            detail: format!("expected {COLUMNS} columns in {line:?}"),
        });
    };
    let (exit_code, interrupt_signal) = split_exit_code(exit_code);
    let (state, kill_request_user) = match state.split_once(" by ") {
        Some((state, by)) => (state.trim(), Some(by.trim().to_string())),
        None => (state.trim(), None),
    };
    let status = JobStatus {
        state: state.to_string(),
        state_reason: text(reason),
        exit_code,
        interrupt_signal,
    };
    let time = JobTime {
        submit: number(submit),
        elapsed: match source {
            Source::Squeue => duration(elapsed),
            Source::Sacct => number(elapsed),
        },
        start: number(start),
        end: number(end),
        suspended: duration(suspended),
        limit: match source {
            Source::Squeue => duration(limit),
            Source::Sacct => number(limit).map(|minutes| minutes * 60),
        },
    };
    if let Some((parent, _)) = job_id.split_once('.') {
        return Ok(Row::Step {
            job_id: parent.to_string(),
            task: Box::new(JobTask {
                id: job_id.to_string(),
                name: name.to_string(),
                status,
                time,
            }),
        });
    }
    Ok(Row::Job(Box::new(Job {
        job_id: job_id.to_string(),
        name: name.to_string(),
        status,
        tasks: Some(Vec::new()),
        time,
        account: text(account),
        allocation_nodes: number(alloc_nodes).unwrap_or(0),
        cluster: cluster.to_string(),
        group: text(group),
        nodes: nodes.to_string(),
        partition: partition.to_string(),
        kill_request_user,
        user: text(user),
        working_directory: work_dir.to_string(),
        priority: number(priority),
    })))
}

/// `rc:signal`, as `sacct` prints `ExitCode`.
fn split_exit_code(value: &str) -> (Option<i64>, Option<i64>) {
    match value.split_once(':') {
        Some((rc, signal)) => (rc.parse().ok(), signal.parse().ok()),
        None => (value.parse().ok(), None),
    }
}

fn text(value: &str) -> Option<String> {
    (!value.is_empty() && value != "(null)").then(|| value.to_string())
}

/// Integers; Slurm's placeholders (`Unknown`, `N/A`, `NONE`, `UNLIMITED`) are null.
fn number(value: &str) -> Option<i64> {
    value.trim().parse().ok()
}

/// `[D-][[HH:]MM:]SS[.fff]` (or `D-HH`) in seconds; placeholders are null.
pub fn duration(value: &str) -> Option<i64> {
    let value = value.trim();
    let (days, clock) = match value.split_once('-') {
        Some((days, clock)) => (Some(days.parse::<i64>().ok()?), clock),
        None => (None, value),
    };
    let fields: Vec<i64> = clock
        .split(':')
        .map(|part| part.split('.').next().unwrap_or(part).parse().ok())
        .collect::<Option<_>>()?;
    let seconds = match (days, fields.as_slice()) {
        (Some(_), &[hours]) => hours * 3600,
        (_, &[seconds]) => seconds,
        (_, &[minutes, seconds]) => minutes * 60 + seconds,
        (_, &[hours, minutes, seconds]) => hours * 3600 + minutes * 60 + seconds,
        _ => return None,
    };
    Some(days.unwrap_or(0) * 86400 + seconds)
}

/// Merges `sacct` rows (jobs with their steps) with `squeue` rows. v2 lets the accounting
/// record win except for `PENDING` jobs; but slurmdbd lags the controller (22.05 even keeps a
/// placeholder record named `allocation` with no working directory for a short job for a
/// while), so while the controller still holds a job its record is the base, and the
/// accounting record adds what only it has: the exit code and signal, the steps (`tasks`),
/// and any field the controller left empty. Order: accounting order, then controller-only
/// jobs.
/// Whether `rows` hold the record of job `job_id` (not only steps of it).
pub fn holds(rows: &[Row], job_id: &str) -> bool {
    rows.iter()
        .any(|row| matches!(row, Row::Job(job) if job.job_id == job_id))
}

pub fn merge(sacct: Vec<Row>, squeue: Vec<Row>) -> Vec<Job> {
    let mut jobs: Vec<Job> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut steps = Vec::new();
    for row in sacct {
        match row {
            Row::Job(job) => {
                index.insert(job.job_id.clone(), jobs.len());
                jobs.push(*job);
            }
            Row::Step { job_id, task } => steps.push((job_id, task)),
        }
    }
    for (job_id, task) in steps {
        if let Some(tasks) = index.get(&job_id).and_then(|&i| jobs[i].tasks.as_mut()) {
            tasks.push(*task);
        }
    }
    for row in squeue {
        let Row::Job(job) = row else { continue };
        match index.get(&job.job_id) {
            Some(&i) => {
                let accounted = std::mem::take(&mut jobs[i]);
                jobs[i] = (*job).completed_by(accounted);
            }
            None => {
                index.insert(job.job_id.clone(), jobs.len());
                jobs.push(*job);
            }
        }
    }
    jobs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_slurm_formats() {
        assert_eq!(duration("0:03"), Some(3));
        assert_eq!(duration("30:00"), Some(1800));
        assert_eq!(duration("00:00:00"), Some(0));
        assert_eq!(duration("1:02:03"), Some(3723));
        assert_eq!(duration("2-01:00:00"), Some(2 * 86400 + 3600));
        assert_eq!(duration("1-02"), Some(86400 + 7200));
        assert_eq!(duration("00:01:02.500"), Some(62));
        for placeholder in ["UNLIMITED", "INVALID", "N/A", "", "Partition_Limit"] {
            assert_eq!(duration(placeholder), None, "{placeholder}");
        }
    }

    #[test]
    fn exit_codes_split_into_code_and_signal() {
        assert_eq!(split_exit_code("3:0"), (Some(3), Some(0)));
        assert_eq!(split_exit_code("0:15"), (Some(0), Some(15)));
        assert_eq!(split_exit_code(""), (None, None));
    }

    #[test]
    fn a_pipe_in_a_job_name_does_not_shift_columns() {
        let line = "7|1|c|0:0|g|a|x|y|localhost|normal|1|COMPLETED|None|5|1|2|3|00:00:00|1|u|/w";
        let Row::Job(job) = parse_row(line, Source::Sacct, "sacct").unwrap() else {
            panic!("not a job")
        };
        assert_eq!(job.name, "x|y");
        assert_eq!(job.nodes, "localhost");
        assert_eq!(job.time.limit, Some(60));
        assert_eq!(job.working_directory, "/w");
    }

    #[test]
    fn cancelled_by_names_the_killer() {
        let line =
            "7|1|c|0:15|g|a|n|localhost|normal|1|CANCELLED by 1001|None|5|1|2|3|00:00:00|1|u|/w";
        let Row::Job(job) = parse_row(line, Source::Sacct, "sacct").unwrap() else {
            panic!("not a job")
        };
        assert_eq!(job.status.state, "CANCELLED");
        assert_eq!(job.kill_request_user.as_deref(), Some("1001"));
        assert_eq!(job.status.interrupt_signal, Some(15));
    }

    #[test]
    fn a_newline_in_a_job_name_joins_the_split_row() {
        let text = "7|1|c|0:0|g|a|first\nsecond|localhost|normal|1|COMPLETED|None|5|1|2|3|00:00:00|1|u|/w\n\
                    8|1|c|0:0|g|a|n|localhost|normal|1|COMPLETED|None|5|1|2|3|00:00:00|1|u|/w\n";
        let jobs = merge(
            parse_rows(text, Source::Sacct, "sacct").unwrap(),
            Vec::new(),
        );
        assert_eq!(jobs.len(), 2);
        assert_eq!(jobs[0].name, "first\nsecond");
        assert_eq!(jobs[1].job_id, "8");
    }

    #[test]
    fn a_newline_in_the_last_column_stays_with_its_row() {
        let text = "7|1|c|0:0|g|a|n|localhost|normal|1|COMPLETED|None|5|1|2|3|00:00:00|1|u|/w/a\nb\n\
                    7.batch|1|c|0:0||a|batch|localhost|||COMPLETED||5|1|2|3|00:00:00|||\n\
                    8|1|c|0:0|g|a|n|localhost|normal|1|COMPLETED|None|5|1|2|3|00:00:00|1|u|/w/c\n\n784\n";
        let jobs = merge(
            parse_rows(text, Source::Sacct, "sacct").unwrap(),
            Vec::new(),
        );
        let ids: Vec<&str> = jobs.iter().map(|j| j.job_id.as_str()).collect();
        assert_eq!(ids, ["7", "8"]);
        assert_eq!(jobs[0].working_directory, "/w/a\nb");
        assert_eq!(jobs[0].tasks.as_ref().map(Vec::len), Some(1));
        assert_eq!(jobs[1].working_directory, "/w/c\n\n784");
    }

    #[test]
    fn the_controller_record_wins_and_accounting_adds_exit_code_and_steps() {
        let sacct = "7|1|c|3:0|g|a|allocation|localhost|normal|1|FAILED|None|5|1|2|3|00:00:00|1|u|\n\
                     7.batch|1|c|3:0||a|batch|localhost|||FAILED||5|1|2|3|00:00:00|||\n";
        let squeue = "7|1|c||g|a|real-name|localhost|normal|1|FAILED|NonZeroExitCode|0:05|1|2|3||1:00|u|/w\n";
        let jobs = merge(
            parse_rows(sacct, Source::Sacct, "sacct").unwrap(),
            parse_rows(squeue, Source::Squeue, "squeue").unwrap(),
        );
        assert_eq!(jobs.len(), 1);
        let job = &jobs[0];
        assert_eq!(job.name, "real-name");
        assert_eq!(job.working_directory, "/w");
        assert_eq!(job.status.state_reason.as_deref(), Some("NonZeroExitCode"));
        assert_eq!(job.status.exit_code, Some(3));
        assert_eq!(job.status.interrupt_signal, Some(0));
        assert_eq!(job.time.suspended, Some(0));
        assert_eq!(job.tasks.as_ref().unwrap().len(), 1);
    }

    #[test]
    fn short_rows_are_errors() {
        assert!(parse_rows("1|2|3\n", Source::Squeue, "squeue").is_err());
    }
}
