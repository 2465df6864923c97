//! `scontrol` queries: partitions, reservations, the controller ping, and a job's record
//! and batch script (for its metadata).

use ironcrest_remote::{CommandError, CommandLine, Output, QuoteError, RemoteCommand};

use super::SLURM;
use super::key_value::{non_null, parse_record};
use crate::{
    JobId, Partition, PingStatus, Reservation, ReservationChange, ReservationSpec, SchedulerError,
};

/// `scontrol -a show -o <entity>` with times as epoch seconds.
fn show_all(entity: &'static str) -> CommandLine {
    CommandLine::builder("scontrol")
        .env("SLURM_TIME_FORMAT", "%s")
        .expect("a constant has no NUL")
        .word("-a")
        .word("show")
        .word("-o")
        .word(entity)
        .build()
}

fn unexpected(detail: String) -> CommandError {
    CommandError::UnexpectedOutput {
        command: "scontrol",
        detail,
    }
}

fn required<'a>(
    record: &std::collections::HashMap<&str, &'a str>,
    key: &str,
    line: &str,
) -> Result<&'a str, CommandError> {
    record
        .get(key)
        .copied()
        .ok_or_else(|| unexpected(format!("no {key} in {line:?}")))
}

fn count(value: &str, key: &str) -> Result<u32, CommandError> {
    value
        .parse()
        .map_err(|_| unexpected(format!("{key}={value:?} is not a number")))
}

/// Partitions; hidden ones only when asked for.
pub struct Partitions {
    pub show_hidden: bool,
}

impl RemoteCommand for Partitions {
    type Parsed = Vec<Partition>;
    type Error = CommandError;

    fn command_line(&self) -> CommandLine {
        show_all("partitions")
    }

    fn parse(&self, output: Output) -> Result<Vec<Partition>, CommandError> {
        if output.exit_status != 0 {
            return Err(CommandError::failed(&output));
        }
        let mut partitions = Vec::new();
        for line in output
            .stdout_text()
            .lines()
            .filter(|l| !l.trim().is_empty())
        {
            let record = parse_record(line);
            if !self.show_hidden && record.get("Hidden") == Some(&"YES") {
                continue;
            }
            partitions.push(Partition {
                name: required(&record, "PartitionName", line)?.to_string(),
                cpus: Some(count(required(&record, "TotalCPUs", line)?, "TotalCPUs")?),
                total_nodes: Some(count(required(&record, "TotalNodes", line)?, "TotalNodes")?),
                partition: required(&record, "State", line)?.to_string(),
            });
        }
        Ok(partitions)
    }

    fn examples() -> Vec<Self> {
        vec![Self { show_hidden: false }]
    }
}

/// Reservations, with their state in lower case.
pub struct Reservations;

impl RemoteCommand for Reservations {
    type Parsed = Vec<Reservation>;
    type Error = CommandError;

    fn command_line(&self) -> CommandLine {
        show_all("reservations")
    }

    fn parse(&self, output: Output) -> Result<Vec<Reservation>, CommandError> {
        if output.exit_status != 0 {
            return Err(CommandError::failed(&output));
        }
        let text = output.stdout_text();
        if text.trim_start().starts_with("No reservations") {
            return Ok(Vec::new());
        }
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|line| {
                let record = parse_record(line);
                let time = |key: &str| -> Result<i64, CommandError> {
                    let value = required(&record, key, line)?;
                    value
                        .parse()
                        .map_err(|_| unexpected(format!("{key}={value:?} is not an epoch time")))
                };
                Ok(Reservation {
                    name: required(&record, "ReservationName", line)?.to_string(),
                    node_list: non_null(record.get("Nodes").copied())
                        .unwrap_or_default()
                        .to_string(),
                    start_time: time("StartTime")?,
                    end_time: time("EndTime")?,
                    features: non_null(record.get("Features").copied()).map(String::from),
                    state: non_null(record.get("State").copied()).map(str::to_lowercase),
                })
            })
            .collect()
    }

    fn examples() -> Vec<Self> {
        vec![Self]
    }
}

/// `scontrol create reservation …`, `scontrol update ReservationName=… …` and `scontrol
/// delete ReservationName=…`: what Slurm lets its operators and administrators do; anyone
/// else is told `Invalid user id` (or `Access/permission denied`).
pub struct ReservationUpdate {
    line: CommandLine,
}

impl ReservationUpdate {
    pub fn new(change: &ReservationChange) -> Result<Self, QuoteError> {
        let with_spec = |line: ironcrest_remote::CommandLineBuilder, spec: &ReservationSpec| {
            line.option("ReservationName", &spec.name)?
                .option("Accounts", &spec.account)?
                .option("NodeCnt", spec.node_count.to_string())?
                .option_if("Features", spec.features.as_ref())?
                .option("StartTime", &spec.start)?
                .option("EndTime", &spec.end)
        };
        let line = match change {
            ReservationChange::Create(spec) => with_spec(
                CommandLine::builder("scontrol")
                    .word("create")
                    .word("reservation"),
                spec,
            )?,
            ReservationChange::Update(spec) => {
                with_spec(CommandLine::builder("scontrol").word("update"), spec)?
            }
            ReservationChange::Delete { name } => CommandLine::builder("scontrol")
                .word("delete")
                .option("ReservationName", name)?,
        };
        Ok(Self { line: line.build() })
    }
}

impl RemoteCommand for ReservationUpdate {
    type Parsed = ();
    /// Why Slurm refused.
    type Error = SchedulerError;

    fn command_line(&self) -> CommandLine {
        self.line.clone()
    }

    fn parse(&self, output: Output) -> Result<(), SchedulerError> {
        if output.exit_status == 0 {
            return Ok(());
        }
        let message = output.stderr_text().trim().to_string();
        if message.contains("Invalid user id") || message.contains("Access/permission denied") {
            Err(SchedulerError::AccessDenied {
                scheduler: SLURM,
                message,
            })
        } else if message.is_empty() {
            Err(SchedulerError::Command {
                scheduler: SLURM,
                source: CommandError::failed(&output),
            })
        } else {
            Err(SchedulerError::Rejected {
                scheduler: SLURM,
                message,
            })
        }
    }

    fn examples() -> Vec<Self> {
        let spec = |features: Option<&str>| ReservationSpec {
            name: "resv".into(),
            account: "project".into(),
            node_count: 2,
            features: features.map(String::from),
            start: "2030-01-01T00:00:00".into(),
            end: "2030-01-01T01:00:00".into(),
        };
        [
            ReservationChange::Create(spec(Some("gpu"))),
            ReservationChange::Create(spec(None)),
            ReservationChange::Update(spec(Some("gpu"))),
            ReservationChange::Update(spec(None)),
            ReservationChange::Delete {
                name: "resv".into(),
            },
        ]
        .iter()
        .map(|change| Self::new(change).expect("no NUL"))
        .collect()
    }
}

/// `scontrol ping`: one line per controller, `Slurmctld(primary) at host is UP`.
pub struct Ping;

impl RemoteCommand for Ping {
    type Parsed = Vec<PingStatus>;
    type Error = CommandError;

    fn command_line(&self) -> CommandLine {
        CommandLine::builder("scontrol")
            .env("SLURM_TIME_FORMAT", "%s")
            .expect("a constant has no NUL")
            .word("ping")
            .build()
    }

    fn parse(&self, output: Output) -> Result<Vec<PingStatus>, CommandError> {
        // A down controller makes scontrol exit non-zero while still printing its status line.
        let statuses: Vec<PingStatus> = output
            .stdout_text()
            .lines()
            .filter_map(|line| {
                let (controller, state) = line.trim().rsplit_once(" is ")?;
                let controller = controller.strip_prefix("Slurmctld")?.trim().to_string();
                Some(PingStatus {
                    controller,
                    up: state.trim() == "UP",
                })
            })
            .collect();
        if statuses.is_empty() {
            return Err(if output.exit_status != 0 {
                CommandError::failed(&output)
            } else {
                unexpected(format!(
                    "no controller status in {:?}",
                    output.stdout_text()
                ))
            });
        }
        Ok(statuses)
    }

    fn examples() -> Vec<Self> {
        vec![Self]
    }
}

/// The standard streams of a job, from `scontrol show -o job <id>`; `None` for a job the
/// controller does not know (never did, or purged after `MinJobAge`).
pub struct JobStreams {
    line: CommandLine,
    /// `JobId=<id> `: the record asked for, never another job's.
    record_start: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Streams {
    pub stdin: Option<String>,
    pub stdout: Option<String>,
    pub stderr: Option<String>,
}

impl JobStreams {
    pub fn new(job_id: &JobId) -> Result<Self, QuoteError> {
        Ok(Self {
            line: CommandLine::builder("scontrol")
                .env("SLURM_TIME_FORMAT", "%s")?
                .word("show")
                .word("-o")
                .word("job")
                .checked(job_id)
                .build(),
            record_start: format!("JobId={} ", job_id.as_str()),
        })
    }
}

impl RemoteCommand for JobStreams {
    type Parsed = Option<Streams>;
    type Error = CommandError;

    fn command_line(&self) -> CommandLine {
        self.line.clone()
    }

    fn parse(&self, output: Output) -> Result<Option<Streams>, CommandError> {
        if output.exit_status != 0 {
            if output.stderr_text().contains("Invalid job id specified") {
                return Ok(None);
            }
            return Err(CommandError::failed(&output));
        }
        let text = output.stdout_text();
        let Some(line) = text.lines().find(|l| l.starts_with(&self.record_start)) else {
            return Ok(None);
        };
        let get = |key: &str| spaced_value(line, key).filter(|v| !v.is_empty() && v != "(null)");
        Ok(Some(Streams {
            stdin: get("StdIn"),
            stdout: get("StdOut"),
            stderr: get("StdErr"),
        }))
    }

    fn examples() -> Vec<Self> {
        let id = JobId::parse("42").expect("a job id");
        vec![Self::new(&id).expect("no NUL")]
    }
}

/// The value of `key` in a one-line record where values (paths) may contain spaces: it
/// runs up to the next ` Word=`.
fn spaced_value(line: &str, key: &str) -> Option<String> {
    let needle = format!(" {key}=");
    let start = line.find(&needle)? + needle.len();
    let rest = &line[start..];
    let mut end = rest.len();
    for (i, _) in rest.match_indices(' ') {
        let word: String = rest[i + 1..]
            .chars()
            .take_while(|c| *c != '=' && *c != ' ')
            .collect();
        let starts_key = word.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && rest[i + 1 + word.len()..].starts_with('=');
        if starts_key {
            end = i;
            break;
        }
    }
    Some(rest[..end].trim_end().to_string())
}

/// `scontrol write batch_script <id> -`: the script while the controller holds the job;
/// `None` otherwise (Slurm then says so on stderr, exiting 0).
pub struct BatchScript {
    line: CommandLine,
}

impl BatchScript {
    pub fn new(job_id: &JobId) -> Self {
        Self {
            line: CommandLine::builder("scontrol")
                .word("write")
                .word("batch_script")
                .checked(job_id)
                .word("-")
                .build(),
        }
    }
}

impl RemoteCommand for BatchScript {
    type Parsed = Option<String>;
    type Error = CommandError;

    fn command_line(&self) -> CommandLine {
        self.line.clone()
    }

    fn parse(&self, output: Output) -> Result<Option<String>, CommandError> {
        let stderr = output.stderr_text();
        if stderr.contains("retrieval failed") || stderr.contains("Invalid job id specified") {
            return Ok(None);
        }
        if output.exit_status != 0 {
            return Err(CommandError::failed(&output));
        }
        Ok(Some(output.stdout_text().into_owned()))
    }

    fn examples() -> Vec<Self> {
        vec![Self::new(&JobId::parse("42").expect("a job id"))]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slurm::fixtures;

    #[test]
    fn command_lines_match_the_captured_ones() {
        assert_eq!(
            Partitions { show_hidden: false }.command_line().to_string(),
            fixtures::slurm("scontrol_partitions").command
        );
        assert_eq!(
            Reservations.command_line().to_string(),
            fixtures::slurm("scontrol_reservations").command
        );
        assert_eq!(
            Ping.command_line().to_string(),
            fixtures::slurm("scontrol_ping").command
        );
    }

    #[test]
    fn partitions_of_the_dev_cluster() {
        let partitions = Partitions { show_hidden: false }
            .parse(fixtures::slurm("scontrol_partitions").output)
            .unwrap();
        let names: Vec<&str> = partitions.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["normal", "debug"]);
        assert!(
            partitions
                .iter()
                .all(|p| p.partition == "UP" && p.cpus == Some(2) && p.total_nodes == Some(1))
        );
    }

    #[test]
    fn hidden_partitions_are_shown_only_on_request() {
        let output = Output {
            stdout: b"PartitionName=a Hidden=NO State=UP TotalCPUs=4 TotalNodes=1\n\
                      PartitionName=b Hidden=YES State=DOWN TotalCPUs=8 TotalNodes=2\n"
                .to_vec(),
            ..Output::default()
        };
        assert_eq!(
            Partitions { show_hidden: false }
                .parse(output.clone())
                .unwrap()
                .len(),
            1
        );
        let all = Partitions { show_hidden: true }.parse(output).unwrap();
        assert_eq!(all[1].partition, "DOWN");
        assert_eq!(all[1].total_nodes, Some(2));
    }

    #[test]
    fn a_partition_missing_a_field_is_an_error() {
        let output = Output {
            stdout: b"PartitionName=a State=UP TotalCPUs=4\n".to_vec(),
            ..Output::default()
        };
        assert!(Partitions { show_hidden: true }.parse(output).is_err());
    }

    #[test]
    fn the_dev_reservation_is_read() {
        let reservations = Reservations
            .parse(fixtures::slurm("scontrol_reservations").output)
            .unwrap();
        assert_eq!(reservations.len(), 1);
        let reservation = &reservations[0];
        assert_eq!(reservation.name, "fire_resv");
        assert_eq!(reservation.node_list, "localhost");
        assert_eq!(reservation.state.as_deref(), Some("active"));
        assert!(reservation.end_time > reservation.start_time);
        assert_eq!(reservation.features, None);
    }

    #[test]
    fn no_reservations_is_an_empty_list() {
        let reservations = Reservations
            .parse(fixtures::slurm("scontrol_reservations_none").output)
            .unwrap();
        assert!(reservations.is_empty());
    }

    #[test]
    fn ping_up_and_down() {
        let up = Ping.parse(fixtures::slurm("scontrol_ping").output).unwrap();
        assert_eq!(
            up,
            vec![PingStatus {
                controller: "(primary) at vm".into(),
                up: true
            }]
        );
        let down = Ping
            .parse(fixtures::slurm("scontrol_ping_down").output)
            .unwrap();
        assert!(!down[0].up);
    }

    #[test]
    fn ping_without_a_status_line_is_an_error() {
        let output = Output {
            stderr: b"scontrol: command not found".to_vec(),
            exit_status: 127,
            ..Output::default()
        };
        assert!(matches!(
            Ping.parse(output),
            Err(CommandError::Failed {
                exit_status: 127,
                ..
            })
        ));
    }

    #[test]
    fn the_streams_of_a_job() {
        let fixture = fixtures::slurm("scontrol_job");
        let command =
            JobStreams::new(&JobId::parse(&fixtures::job_id(&fixture.command)).unwrap()).unwrap();
        assert_eq!(command.command_line().to_string(), fixture.command);
        let streams = command.parse(fixture.output).unwrap().unwrap();
        assert_eq!(streams.stdin.as_deref(), Some("/dev/null"));
        assert!(
            streams
                .stdout
                .as_deref()
                .unwrap()
                .starts_with("/home/fireuser/")
        );
        assert!(streams.stderr.is_some());
        let unknown = JobStreams::new(&JobId::parse("999999").unwrap())
            .unwrap()
            .parse(fixtures::slurm("scontrol_job_unknown").output)
            .unwrap();
        assert_eq!(unknown, None);
    }

    #[test]
    fn paths_with_spaces_are_read_whole() {
        let line = "JobId=1 WorkDir=/a b StdErr=/a b/e.txt StdIn=/dev/null StdOut=/x y=z/o Power=";
        assert_eq!(spaced_value(line, "StdErr").as_deref(), Some("/a b/e.txt"));
        assert_eq!(spaced_value(line, "WorkDir").as_deref(), Some("/a b"));
        assert_eq!(spaced_value(line, "Power").as_deref(), Some(""));
        assert_eq!(spaced_value(line, "Missing"), None);
    }

    #[test]
    fn the_batch_script() {
        let fixture = fixtures::slurm("scontrol_batch_script");
        let command = BatchScript::new(&JobId::parse(&fixtures::job_id(&fixture.command)).unwrap());
        assert_eq!(command.command_line().to_string(), fixture.command);
        let script = command.parse(fixture.output).unwrap().unwrap();
        assert!(script.starts_with("#!/bin/bash"));
        let unknown = BatchScript::new(&JobId::parse("999999").unwrap())
            .parse(fixtures::slurm("scontrol_batch_script_unknown").output)
            .unwrap();
        assert_eq!(unknown, None);
    }

    fn captured_change(name: &str, change: ReservationChange) -> Result<(), SchedulerError> {
        let fixture = fixtures::slurm(name);
        let command = ReservationUpdate::new(&change).unwrap();
        assert_eq!(
            command.command_line().to_string(),
            fixture.command,
            "{name}"
        );
        command.parse(fixture.output)
    }

    #[test]
    fn reservations_are_made_changed_and_deleted_by_operators_only() {
        let spec = |account: &str, end: &str, features: Option<&str>| ReservationSpec {
            name: "v1-capture".into(),
            account: account.into(),
            node_count: 1,
            features: features.map(String::from),
            start: "2030-01-01T00:00:00".into(),
            end: end.into(),
        };
        let end = "2030-01-01T01:00:00";
        let create = |s| ReservationChange::Create(s);
        captured_change(
            "scontrol_reservation_create",
            create(spec("project1", end, None)),
        )
        .unwrap();
        let denied = captured_change(
            "scontrol_reservation_create_denied",
            create(spec("project1", end, None)),
        );
        assert!(
            matches!(denied, Err(SchedulerError::AccessDenied { .. })),
            "{denied:?}"
        );
        let refused = captured_change(
            "scontrol_reservation_create_feature",
            create(spec("project1", end, Some("x"))),
        );
        assert!(
            matches!(&refused, Err(SchedulerError::Rejected { message, .. }) if message.contains("Invalid feature")),
            "{refused:?}"
        );
        captured_change(
            "scontrol_reservation_update",
            ReservationChange::Update(spec("project1", "2030-01-01T02:00:00", None)),
        )
        .unwrap();
        let delete = || ReservationChange::Delete {
            name: "v1-capture".into(),
        };
        captured_change("scontrol_reservation_delete", delete()).unwrap();
        let unknown = captured_change("scontrol_reservation_delete_unknown", delete());
        assert!(
            matches!(unknown, Err(SchedulerError::Rejected { .. })),
            "{unknown:?}"
        );
    }
}
