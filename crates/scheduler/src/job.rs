//! Jobs as FirecREST shows them (wire reference §1, §2.2): the submitted [`JobDescription`]
//! (camelCase or snake_case keys, as v2 accepts both), and the [`Job`] and [`JobMetadata`]
//! a scheduler reports back.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::SchedulerError;
use crate::comment::TaskNote;

/// What `POST /compute/{system}/jobs` submits. Unknown keys are ignored, as in v2.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobDescription {
    #[serde(alias = "working_directory", alias = "current_working_directory")]
    pub working_directory: String,
    /// The batch script's text, written to the scheduler's standard input.
    #[serde(default)]
    pub script: Option<String>,
    /// A script already on the cluster (absolute path).
    #[serde(default, alias = "script_path")]
    pub script_path: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub account: Option<String>,
    #[serde(default)]
    pub partition: Option<String>,
    #[serde(default)]
    pub reservation: Option<String>,
    #[serde(default, alias = "standard_input")]
    pub standard_input: Option<String>,
    #[serde(default, alias = "standard_output")]
    pub standard_output: Option<String>,
    #[serde(default, alias = "standard_error")]
    pub standard_error: Option<String>,
    #[serde(default)]
    pub constraints: Option<String>,
    /// An object `{"K": "V"}` or a list `["K=V"]`; v2's default is `{"F7T_version": "v2.0.0"}`.
    #[serde(default, alias = "environment")]
    #[schema(value_type = Option<Object>)]
    pub env: Option<JobEnv>,
    /// The API's operation this job does, recorded in its comment ([`crate::JobComment`]);
    /// set by Ironcrest for its transfer jobs, never read from a request.
    #[serde(skip)]
    pub task: Option<TaskNote>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum JobEnv {
    Map(BTreeMap<String, String>),
    List(Vec<String>),
}

/// Jobs with every optional field set and unset, inline and at a path: what the submit
/// commands' [`examples`](ironcrest_remote::RemoteCommand::examples) are built from.
pub(crate) fn job_examples() -> Vec<JobDescription> {
    let set = |value: &str| Some(value.to_string());
    let full = JobDescription {
        working_directory: "/home/fireuser".into(),
        script: None,
        script_path: set("/home/fireuser/job.sh"),
        name: set("job"),
        account: set("project"),
        partition: set("normal"),
        reservation: set("resv"),
        standard_input: set("/dev/null"),
        standard_output: set("/home/fireuser/out"),
        standard_error: set("/home/fireuser/err"),
        constraints: set("x86"),
        env: Some(JobEnv::Map([("A".to_string(), "1".to_string())].into())),
        task: Some(TaskNote {
            kind: "mv".into(),
            work_id: "0123456789abcdef0123456789abcdef".into(),
            arguments: Some("e30".into()),
        }),
    };
    let inline = JobDescription {
        working_directory: "/home/fireuser".into(),
        script: set("#!/bin/bash\nhostname\n"),
        ..JobDescription::default()
    };
    vec![full, inline]
}

impl JobDescription {
    /// What every backend refuses: not exactly one of script and scriptPath, an empty
    /// working directory, and a job name slurmdbd would store differently (it turns `"`
    /// into a backtick) or that would split a listing's rows (control characters).
    pub fn check(&self) -> Result<(), String> {
        match (&self.script, &self.script_path) {
            (Some(_), Some(_)) => return Err("Give either script or scriptPath, not both.".into()),
            (None, None) => return Err("A job needs a script or a scriptPath.".into()),
            _ => {}
        }
        if self.working_directory.is_empty() {
            return Err("The working directory must not be empty.".into());
        }
        if !self.working_directory.starts_with('/') {
            return Err(format!(
                "`workingDirectory` must be an absolute path, not {:?}.",
                self.working_directory
            ));
        }
        // The scheduler's listings are lines of text: a control character in a path or a
        // name would break the record of this job for every later listing.
        let fields = [
            ("workingDirectory", Some(&self.working_directory)),
            ("scriptPath", self.script_path.as_ref()),
            ("standardInput", self.standard_input.as_ref()),
            ("standardOutput", self.standard_output.as_ref()),
            ("standardError", self.standard_error.as_ref()),
            ("partition", self.partition.as_ref()),
            ("reservation", self.reservation.as_ref()),
            ("account", self.account.as_ref()),
            ("constraints", self.constraints.as_ref()),
        ];
        for (field, value) in fields {
            if value.is_some_and(|v| v.chars().any(char::is_control)) {
                return Err(format!("`{field}` must not contain control characters."));
            }
        }
        if self.script.as_ref().is_some_and(|s| s.contains('\0')) {
            return Err("`script` must not contain NUL characters.".into());
        }
        if self
            .name
            .as_deref()
            .is_some_and(|n| n.chars().any(|c| c == '"' || c.is_control()))
        {
            return Err("Job names cannot contain '\"' or control characters.".into());
        }
        Ok(())
    }

    /// The environment as `(name, value)` pairs, v2's default when none was given. A list
    /// entry without `=` is refused rather than guessed at.
    pub fn environment(&self) -> Result<Vec<(String, String)>, String> {
        let pairs: Vec<(String, String)> = match &self.env {
            None => vec![("F7T_version".into(), "v2.0.0".into())],
            Some(JobEnv::Map(map)) => map.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            Some(JobEnv::List(list)) => list
                .iter()
                .map(|entry| {
                    entry
                        .split_once('=')
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .ok_or_else(|| {
                            format!("Environment entry {entry:?} is not of the form NAME=VALUE.")
                        })
                })
                .collect::<Result<_, _>>()?,
        };
        for (name, value) in &pairs {
            if !is_env_name(name) {
                return Err(format!(
                    "Environment variable name {name:?} is invalid: use letters, digits and '_', not starting with a digit."
                ));
            }
            if value.contains('\0') {
                return Err(format!(
                    "The value of environment variable {name} (`env`) contains a NUL character, which no process environment can carry."
                ));
            }
        }
        Ok(pairs)
    }
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The pattern of a job id in a path: a positive decimal number. Slurm and PBS number their
/// jobs so; v2's looser `^[a-zA-Z0-9]+$` let through `0`, which `scontrol` and `sacct` read
/// as "every job", and words that `sacct` refuses with an error rather than "not found".
pub const JOB_ID_PATTERN: &str = "^[1-9][0-9]{0,9}$";

/// The largest job id a job can have: Slurm's ids are 32-bit, and its tools read larger
/// numbers modulo 2^32 (`4294967296` as job 0: every job) or refuse them with an error.
pub const MAX_JOB_ID: u64 = 4_294_967_293;

pub fn is_valid_job_id(job_id: &str) -> bool {
    (1..=10).contains(&job_id.len())
        && !job_id.starts_with('0')
        && job_id.bytes().all(|b| b.is_ascii_digit())
}

/// Whether a valid job id can name a job at all (see [`MAX_JOB_ID`]).
pub fn can_exist(job_id: &str) -> bool {
    job_id.parse::<u64>().is_ok_and(|id| id <= MAX_JOB_ID)
}

/// A job id that passed [`is_valid_job_id`], so it may stand anywhere on a command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobId(String);

impl JobId {
    pub fn parse(job_id: &str) -> Result<Self, SchedulerError> {
        if is_valid_job_id(job_id) && !can_exist(job_id) {
            return Err(SchedulerError::JobNotFound);
        }
        if is_valid_job_id(job_id) {
            Ok(Self(job_id.to_string()))
        } else {
            Err(SchedulerError::InvalidArgument(format!(
                "Invalid job id {job_id:?}: job ids are positive decimal numbers."
            )))
        }
    }
}

impl JobId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl ironcrest_remote::Checked for JobId {
    fn checked_word(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(self.0.as_bytes())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobStatus {
    pub state: String,
    pub state_reason: Option<String>,
    pub exit_code: Option<i64>,
    pub interrupt_signal: Option<i64>,
}

/// Times are epoch seconds; `elapsed`, `suspended` and `limit` are durations in seconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobTime {
    /// When the job was submitted: not on v2's wire, read by `/tasks`.
    #[serde(skip)]
    pub submit: Option<i64>,
    pub elapsed: Option<i64>,
    pub start: Option<i64>,
    pub end: Option<i64>,
    pub suspended: Option<i64>,
    pub limit: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobTask {
    pub id: String,
    pub name: String,
    pub status: JobStatus,
    pub time: JobTime,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub job_id: String,
    pub name: String,
    pub status: JobStatus,
    pub tasks: Option<Vec<JobTask>>,
    pub time: JobTime,
    pub account: Option<String>,
    pub allocation_nodes: i64,
    pub cluster: String,
    pub group: Option<String>,
    pub nodes: String,
    pub partition: String,
    pub kill_request_user: Option<String>,
    pub user: Option<String>,
    pub working_directory: String,
    pub priority: Option<i64>,
}

/// The states in which the scheduler may still run or stop a job; every other state
/// (`COMPLETED`, `FAILED`, `CANCELLED`, `TIMEOUT`, …) is final. Backends map their own
/// states to these (Slurm's) names when they parse.
pub const ACTIVE_STATES: &[&str] = &[
    "PENDING",
    "RUNNING",
    "SUSPENDED",
    "REQUEUED",
    "REQUEUE_HOLD",
    "REQUEUE_FED",
    "CONFIGURING",
    "COMPLETING",
    "RESIZING",
    "RESV_DEL_HOLD",
    "SIGNALING",
    "STAGE_OUT",
    "STOPPED",
];

/// The final states Slurm names (backends map theirs to these): what a client may wait
/// for. A state outside both lists (`UNKNOWN`) is final too, as [`Job::is_active`] says.
pub const FINAL_STATES: &[&str] = &[
    "BOOT_FAIL",
    "CANCELLED",
    "COMPLETED",
    "DEADLINE",
    "FAILED",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "PREEMPTED",
    "REVOKED",
    "SPECIAL_EXIT",
    "TIMEOUT",
];

impl Job {
    /// Whether the scheduler may still run or stop the job (not in a final state).
    pub fn is_active(&self) -> bool {
        ACTIVE_STATES.contains(&self.status.state.as_str())
    }

    /// Whether the job may be cancelled: only an active one; cancelling a finished job is
    /// `JobNotActive` (409), whatever the scheduler's own tool would answer.
    pub fn check_cancellable(&self) -> Result<(), SchedulerError> {
        if self.is_active() {
            Ok(())
        } else {
            Err(self.not_active())
        }
    }

    /// Whether a command may be run inside the job's allocation: only a running job has
    /// one (Slurm's `srun` would wait for a pending job's allocation instead).
    pub fn check_attachable(&self) -> Result<(), SchedulerError> {
        if self.status.state == "RUNNING" {
            Ok(())
        } else {
            Err(self.not_active())
        }
    }

    fn not_active(&self) -> SchedulerError {
        SchedulerError::JobNotActive {
            job_id: self.job_id.clone(),
            state: self.status.state.clone(),
        }
    }

    /// The controller's record of a job (`self`), completed by the accounting database's:
    /// the exit code and signal, the steps (`tasks`), and any field the controller left
    /// empty. slurmdbd lags the controller, so the controller's record is the base.
    pub fn completed_by(mut self, accounted: Job) -> Job {
        self.tasks = accounted.tasks;
        self.status.exit_code = self.status.exit_code.or(accounted.status.exit_code);
        self.status.interrupt_signal = self
            .status
            .interrupt_signal
            .or(accounted.status.interrupt_signal);
        self.status.state_reason = self.status.state_reason.or(accounted.status.state_reason);
        self.kill_request_user = self.kill_request_user.or(accounted.kill_request_user);
        self.time.submit = self.time.submit.or(accounted.time.submit);
        self.time.suspended = self.time.suspended.or(accounted.time.suspended);
        self.time.end = self.time.end.or(accounted.time.end);
        self.account = self.account.or(accounted.account);
        self.group = self.group.or(accounted.group);
        self.user = self.user.or(accounted.user);
        self.priority = self.priority.or(accounted.priority);
        if self.working_directory.is_empty() {
            self.working_directory = accounted.working_directory;
        }
        self
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobMetadata {
    pub job_id: String,
    pub script: Option<String>,
    pub standard_input: Option<String>,
    pub standard_output: Option<String>,
    pub standard_error: Option<String>,
}

/// v2's `time_window` values: how far back finished jobs are listed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, ToSchema)]
pub enum TimeWindow {
    #[serde(rename = "1h")]
    OneHour,
    #[serde(rename = "8h")]
    EightHours,
    #[default]
    #[serde(rename = "24h")]
    OneDay,
    #[serde(rename = "3d")]
    ThreeDays,
    #[serde(rename = "7d")]
    SevenDays,
}

impl TimeWindow {
    pub fn seconds(self) -> i64 {
        match self {
            TimeWindow::OneHour => 3600,
            TimeWindow::EightHours => 8 * 3600,
            TimeWindow::OneDay => 24 * 3600,
            TimeWindow::ThreeDays => 3 * 24 * 3600,
            TimeWindow::SevenDays => 7 * 24 * 3600,
        }
    }
}

/// The filters of `GET /compute/{system}/jobs`; empty strings are already `None`.
///
/// This is the one place the listing is decided, for every backend: backends fetch and
/// parse (and may hand the owner or the time window to the scheduler so it sends less),
/// and [`Scheduler::jobs`](crate::Scheduler::jobs) keeps what [`JobFilter::selects`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct JobFilter {
    pub all_users: bool,
    pub account: Option<String>,
    pub name: Option<String>,
    pub time_window: TimeWindow,
}

impl JobFilter {
    /// Whether `job` is one `username` asked for at `now` (epoch seconds): their own (or
    /// anyone's with `all_users`), of the name and account asked for, and either still
    /// active or finished within the time window.
    ///
    /// Names and accounts are compared here, exactly, never by the scheduler: its tools
    /// split them at commas and its database may refuse characters a job name can hold.
    pub fn selects(&self, job: &Job, username: &str, now: i64) -> bool {
        (self.all_users || job.user.as_deref() == Some(username))
            && self.name.as_ref().is_none_or(|name| &job.name == name)
            && self
                .account
                .as_ref()
                .is_none_or(|account| job.account.as_ref() == Some(account))
            && self.in_window(job, now)
    }

    /// Active jobs in any state are always listed; a finished one while it ended no earlier
    /// than [`JobFilter::earliest_end`]. A job without an end time is listed: the scheduler
    /// gave it, and no time says it is too old. An active job's end time (an expected end,
    /// or a suspended job's suspension) says nothing about its age.
    fn in_window(&self, job: &Job, now: i64) -> bool {
        job.is_active() || job.time.end.is_none_or(|end| end >= self.earliest_end(now))
    }

    /// The earliest end time (epoch seconds) a finished job may have and still be listed
    /// at `now`; backends may pass it to the scheduler to fetch fewer jobs.
    pub fn earliest_end(&self, now: i64) -> i64 {
        now - self.time_window.seconds()
    }

    /// The `jobs` that [`JobFilter::selects`] for `username` at `now`, in their order.
    pub fn apply(&self, mut jobs: Vec<Job>, username: &str, now: i64) -> Vec<Job> {
        jobs.retain(|job| self.selects(job, username, now));
        jobs
    }
}

/// Now, in epoch seconds.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_accept_camel_and_snake_case() {
        let camel: JobDescription = serde_json::from_value(serde_json::json!({
            "workingDirectory": "/home/u", "scriptPath": "/home/u/s.sh",
            "standardOutput": "o", "environment": ["A=1", "B=x=y"], "unknown": 1
        }))
        .unwrap();
        assert_eq!(camel.working_directory, "/home/u");
        assert_eq!(camel.script_path.as_deref(), Some("/home/u/s.sh"));
        assert_eq!(camel.standard_output.as_deref(), Some("o"));
        assert_eq!(
            camel.environment().unwrap(),
            vec![("A".into(), "1".into()), ("B".into(), "x=y".into())]
        );
        for key in ["working_directory", "current_working_directory"] {
            let snake: JobDescription = serde_json::from_value(serde_json::json!({
                key: "/w", "script_path": "/s", "env": {"K": "v"}
            }))
            .unwrap();
            assert_eq!(snake.working_directory, "/w");
            assert_eq!(snake.script_path.as_deref(), Some("/s"));
            assert_eq!(snake.environment().unwrap(), vec![("K".into(), "v".into())]);
        }
    }

    #[test]
    fn environment_defaults_and_refusals() {
        let none = JobDescription::default();
        assert_eq!(
            none.environment().unwrap(),
            vec![("F7T_version".into(), "v2.0.0".into())]
        );
        for bad in [
            JobEnv::List(vec!["NOEQUALS".into()]),
            JobEnv::Map([("1A".to_string(), "v".to_string())].into()),
            JobEnv::Map([("A B".to_string(), "v".to_string())].into()),
            JobEnv::Map([("".to_string(), "v".to_string())].into()),
        ] {
            let description = JobDescription {
                env: Some(bad),
                ..JobDescription::default()
            };
            assert!(description.environment().is_err());
        }
    }

    #[test]
    fn job_ids_are_positive_numbers() {
        assert!(is_valid_job_id("123"));
        assert!(is_valid_job_id("9999999999") && !can_exist("9999999999"));
        assert!(can_exist("4294967293") && !can_exist("4294967294"));
        for bad in [
            "",
            "0",
            "007",
            "abc1",
            "Inf",
            "1;2",
            "1 2",
            "1.batch",
            "-1",
            "1\n",
            "99999999999",
        ] {
            assert!(!is_valid_job_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn time_windows_parse_v2_spellings() {
        let window: TimeWindow = serde_json::from_str("\"3d\"").unwrap();
        assert_eq!(window.seconds(), 3 * 24 * 3600);
        assert!(serde_json::from_str::<TimeWindow>("\"2h\"").is_err());
        assert_eq!(TimeWindow::default(), TimeWindow::OneDay);
    }

    const NOW: i64 = 1_700_000_000;

    fn job(name: &str, user: &str) -> Job {
        Job {
            name: name.into(),
            user: Some(user.into()),
            account: Some("staff".into()),
            status: JobStatus {
                state: "RUNNING".into(),
                ..JobStatus::default()
            },
            ..Job::default()
        }
    }

    fn finished(state: &str, end: Option<i64>) -> Job {
        let mut job = job("j", "u");
        job.status.state = state.into();
        job.time.end = end;
        job
    }

    #[test]
    fn filters_compare_names_and_accounts_exactly() {
        let filter = |name: &str| JobFilter {
            name: Some(name.into()),
            ..JobFilter::default()
        };
        assert!(filter("a,b").selects(&job("a,b", "u"), "u", NOW));
        assert!(!filter("a,b").selects(&job("a", "u"), "u", NOW));
        assert!(filter("🚀 run").selects(&job("🚀 run", "u"), "u", NOW));
        assert!(!filter("x").selects(&job("x", "other"), "u", NOW));
        let everyone = JobFilter {
            all_users: true,
            account: Some("staff".into()),
            ..JobFilter::default()
        };
        assert!(everyone.selects(&job("x", "other"), "u", NOW));
        let other_account = JobFilter {
            account: Some("project1".into()),
            ..JobFilter::default()
        };
        assert!(!other_account.selects(&job("x", "u"), "u", NOW));
        let no_owner = Job {
            user: None,
            ..job("x", "u")
        };
        assert!(!JobFilter::default().selects(&no_owner, "u", NOW));
        assert!(everyone.selects(&no_owner, "u", NOW));
    }

    #[test]
    fn a_finished_job_is_listed_until_its_window_has_passed() {
        for window in [
            TimeWindow::OneHour,
            TimeWindow::EightHours,
            TimeWindow::OneDay,
            TimeWindow::ThreeDays,
            TimeWindow::SevenDays,
        ] {
            let filter = JobFilter {
                time_window: window,
                ..JobFilter::default()
            };
            let cutoff = NOW - window.seconds();
            assert_eq!(filter.earliest_end(NOW), cutoff);
            for (end, listed) in [
                (NOW, true),
                (cutoff + 1, true),
                // The edge itself is inside, as sacct's `--starttime` (end >= start).
                (cutoff, true),
                (cutoff - 1, false),
                (0, false),
            ] {
                assert_eq!(
                    filter.selects(&finished("COMPLETED", Some(end)), "u", NOW),
                    listed,
                    "{window:?}, ended {} s before now",
                    NOW - end
                );
            }
        }
    }

    #[test]
    fn the_default_window_is_a_day() {
        let day_ago = NOW - 24 * 3600;
        assert!(JobFilter::default().selects(&finished("FAILED", Some(day_ago)), "u", NOW));
        assert!(!JobFilter::default().selects(&finished("FAILED", Some(day_ago - 1)), "u", NOW));
    }

    #[test]
    fn active_jobs_are_listed_whatever_their_end_time() {
        let hour = JobFilter {
            time_window: TimeWindow::OneHour,
            ..JobFilter::default()
        };
        let long_ago = Some(NOW - 30 * 86400);
        for state in ACTIVE_STATES {
            // A suspended job's end time is when it was suspended; a pending one's may be
            // an old estimate: neither makes it a finished job.
            assert!(
                hour.selects(&finished(state, long_ago), "u", NOW),
                "{state}"
            );
            assert!(hour.selects(&finished(state, None), "u", NOW), "{state}");
        }
    }

    #[test]
    fn final_states_are_listed_only_within_the_window() {
        let hour = JobFilter {
            time_window: TimeWindow::OneHour,
            ..JobFilter::default()
        };
        let recent = Some(NOW - 60);
        let old = Some(NOW - 2 * 3600);
        for state in [
            "COMPLETED",
            "FAILED",
            "CANCELLED",
            "TIMEOUT",
            "NODE_FAIL",
            "PREEMPTED",
            "OUT_OF_MEMORY",
            "BOOT_FAIL",
            "DEADLINE",
            "UNKNOWN",
        ] {
            assert!(hour.selects(&finished(state, recent), "u", NOW), "{state}");
            assert!(!hour.selects(&finished(state, old), "u", NOW), "{state}");
            // No end time: nothing says the job is too old.
            assert!(hour.selects(&finished(state, None), "u", NOW), "{state}");
        }
    }

    #[test]
    fn apply_keeps_the_selected_jobs_in_order() {
        let jobs = vec![
            Job {
                job_id: "1".into(),
                ..finished("COMPLETED", Some(NOW - 10))
            },
            Job {
                job_id: "2".into(),
                ..finished("COMPLETED", Some(NOW - 2 * 86400))
            },
            Job {
                job_id: "3".into(),
                ..job("j", "other")
            },
            Job {
                job_id: "4".into(),
                ..finished("PENDING", None)
            },
        ];
        let ids = |jobs: Vec<Job>| jobs.into_iter().map(|j| j.job_id).collect::<Vec<_>>();
        assert_eq!(
            ids(JobFilter::default().apply(jobs.clone(), "u", NOW)),
            ["1", "4"]
        );
        let everyone = JobFilter {
            all_users: true,
            ..JobFilter::default()
        };
        assert_eq!(ids(everyone.apply(jobs, "u", NOW)), ["1", "3", "4"]);
    }

    #[test]
    fn only_active_jobs_can_be_cancelled_and_only_running_ones_attached_to() {
        for state in ACTIVE_STATES {
            let job = finished(state, None);
            assert!(job.is_active(), "{state}");
            assert!(job.check_cancellable().is_ok(), "{state}");
            assert_eq!(
                job.check_attachable().is_ok(),
                *state == "RUNNING",
                "{state}"
            );
        }
        let done = Job {
            job_id: "42".into(),
            ..finished("COMPLETED", Some(NOW))
        };
        assert!(!done.is_active());
        for refusal in [done.check_cancellable(), done.check_attachable()] {
            match refusal {
                Err(SchedulerError::JobNotActive { job_id, state }) => {
                    assert_eq!((job_id.as_str(), state.as_str()), ("42", "COMPLETED"));
                }
                other => panic!("{other:?}"),
            }
        }
        let pending = Job {
            job_id: "43".into(),
            ..finished("PENDING", None)
        };
        assert!(matches!(
            pending.check_attachable(),
            Err(SchedulerError::JobNotActive { state, .. }) if state == "PENDING"
        ));
    }
}
