//! slurmrestd's JSON → FirecREST objects, for every supported API version at once: where
//! versions differ in a response, the reader accepts each shape (v0.0.38 plain numbers and
//! state strings; v0.0.40+ `{set, infinite, number}` wrappers and state arrays). Request
//! bodies differ by version and are built from [`ApiVersion`].

use ironcrest_remote::{CORRELATION_ID_VARIABLE, REQUEST_ID_VARIABLE};
use serde_json::{Map, Value, json};

use super::ApiVersion;
use crate::comment::{CommentedJob, JobComment};
use crate::slurm::Streams;
use crate::slurm::job_rows::Row;
use crate::slurm::sinfo::node_state;
use crate::{
    Account, Job, JobDescription, JobStatus, JobTask, JobTime, Node, NodeState, Partition,
    PingStatus, Reservation,
};

/// Slurm's "no value" and "infinite" sentinels for 32-bit fields (time limits).
const NO_VAL32: i64 = 0xFFFF_FFFE;

/// The `errors` of a response, as `error (description)` texts.
pub fn errors(body: &Value) -> Vec<String> {
    body.get("errors")
        .and_then(Value::as_array)
        .map(|errors| {
            errors
                .iter()
                .map(|error| {
                    let main = text(&error["error"]).unwrap_or_default();
                    match text(&error["description"]) {
                        Some(description) if !main.is_empty() => {
                            format!("{main} ({description})")
                        }
                        Some(description) => description,
                        None => main,
                    }
                })
                .filter(|message| !message.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a job listing asked with `update_time` says that no job changed since (v0.0.39
/// on: a warning and no jobs; 22.05's v0.0.38 answers 304 instead).
pub fn unchanged(body: &Value) -> bool {
    body.get("warnings")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|warning| text(&warning["description"]))
        .any(|description| description.starts_with("No job changes since update_time"))
}

/// An integer, plain or wrapped as `{set, infinite, number}` (unset or infinite: `None`).
fn num(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::Object(map) => {
            if map.get("set") == Some(&Value::Bool(false))
                || map.get("infinite") == Some(&Value::Bool(true))
            {
                return None;
            }
            map.get("number").and_then(num)
        }
        _ => None,
    }
}

fn text(value: &Value) -> Option<String> {
    value.as_str().filter(|s| !s.is_empty()).map(str::to_string)
}

/// A state: a string (v0.0.38) or a list whose first entry is the base state (v0.0.40+).
fn state(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.to_ascii_uppercase()),
        Value::Array(items) => items.first().and_then(Value::as_str).map(str::to_uppercase),
        _ => None,
    }
    .filter(|s| !s.is_empty())
}

/// A list of words: a JSON list (v0.0.40+) or a comma-separated string (v0.0.38).
fn words(value: &Value) -> Vec<String> {
    match value {
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        Value::String(s) => s
            .split(',')
            .map(str::trim)
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

fn list<'a>(body: &'a Value, key: &str) -> Result<&'a Vec<Value>, String> {
    body.get(key)
        .and_then(Value::as_array)
        .ok_or_else(|| format!("the response has no `{key}` list"))
}

fn small(value: &Value) -> Option<u32> {
    num(value).and_then(|n| u32::try_from(n).ok())
}

fn big(value: &Value) -> Option<u64> {
    num(value).and_then(|n| u64::try_from(n).ok())
}

pub fn nodes(body: &Value) -> Result<Vec<Node>, String> {
    list(body, "nodes")?
        .iter()
        .map(|node| {
            let name = text(&node["name"]).ok_or("a node without a name")?;
            let mut state: Vec<NodeState> = Vec::new();
            let mut state_words = words(&node["state"]);
            state_words.extend(words(&node["state_flags"]));
            for word in state_words {
                let mapped = node_state(&word);
                // Flags Slurm adds that FirecREST has no name for are left out.
                if (mapped != NodeState::Unknown || state.is_empty()) && !state.contains(&mapped) {
                    state.push(mapped);
                }
            }
            if state.len() > 1 {
                state.retain(|s| *s != NodeState::Unknown);
            }
            let features = words(&node["features"]);
            Ok(Node {
                sockets: small(&node["sockets"]),
                cores: small(&node["cores"]),
                threads: small(&node["threads"]),
                cpus: small(&node["cpus"]).unwrap_or(0),
                // slurmrestd reports the load in hundredths, sinfo as a decimal.
                cpu_load: num(&node["cpu_load"]).map(|load| load as f64 / 100.0),
                free_memory: big(&node["free_memory"]),
                features: (!features.is_empty()).then_some(features),
                name,
                address: text(&node["address"]),
                hostname: text(&node["hostname"]),
                state,
                partitions: Some(words(&node["partitions"])),
                weight: small(&node["weight"]),
                alloc_memory: big(&node["alloc_memory"]),
                alloc_cpus: small(&node["alloc_cpus"]),
                idle_cpus: small(&node["idle_cpus"]),
            })
        })
        .collect()
}

pub fn partitions(body: &Value, show_hidden: bool) -> Result<Vec<Partition>, String> {
    let mut partitions = Vec::new();
    for partition in list(body, "partitions")? {
        let name = text(&partition["name"]).ok_or("a partition without a name")?;
        let mut flags = words(&partition["flags"]);
        flags.extend(words(&partition["partition"]["flags"]));
        if !show_hidden && flags.iter().any(|f| f.eq_ignore_ascii_case("hidden")) {
            continue;
        }
        let state = state(&partition["state"])
            .or_else(|| state(&partition["partition"]["state"]))
            .ok_or_else(|| format!("partition {name} has no state"))?;
        partitions.push(Partition {
            name,
            cpus: small(&partition["total_cpus"]).or_else(|| small(&partition["cpus"]["total"])),
            total_nodes: small(&partition["total_nodes"])
                .or_else(|| small(&partition["nodes"]["total"])),
            partition: state,
        });
    }
    Ok(partitions)
}

pub fn reservations(body: &Value, now: i64) -> Result<Vec<Reservation>, String> {
    list(body, "reservations")?
        .iter()
        .map(|reservation| {
            let name = text(&reservation["name"]).ok_or("a reservation without a name")?;
            let start_time = num(&reservation["start_time"]).unwrap_or(0);
            let end_time = num(&reservation["end_time"]).unwrap_or(0);
            // slurmrestd has no state field: scontrol's ACTIVE/INACTIVE, from the times.
            let active = start_time <= now && now < end_time;
            Ok(Reservation {
                name,
                node_list: text(&reservation["node_list"]).unwrap_or_default(),
                end_time,
                start_time,
                features: text(&reservation["features"]),
                state: Some(if active { "active" } else { "inactive" }.to_string()),
            })
        })
        .collect()
}

/// The user's associations, one entry per account (an account may have several
/// associations, e.g. one per partition).
pub fn accounts(body: &Value) -> Result<Vec<Account>, String> {
    let mut accounts: Vec<Account> = Vec::new();
    for association in list(body, "associations")? {
        let Some(name) = text(&association["account"]) else {
            continue;
        };
        let default = association["is_default"].as_bool() == Some(true)
            || num(&association["is_default"]).is_some_and(|n| n != 0)
            || words(&association["flags"])
                .iter()
                .any(|f| f.eq_ignore_ascii_case("default"));
        match accounts.iter_mut().find(|a| a.name == name) {
            Some(existing) => existing.default |= default,
            None => accounts.push(Account { name, default }),
        }
    }
    Ok(accounts)
}

pub fn pings(body: &Value) -> Result<Vec<PingStatus>, String> {
    Ok(list(body, "pings")?
        .iter()
        .map(|ping| PingStatus {
            controller: text(&ping["hostname"]).unwrap_or_default(),
            up: ping["ping"].as_str() == Some("UP")
                || ping["pinged"].as_str() == Some("UP")
                || ping["responding"].as_bool() == Some(true),
        })
        .collect())
}

pub fn submitted_job_id(body: &Value) -> Result<String, String> {
    num(&body["job_id"])
        .or_else(|| num(&body["result"]["job_id"]))
        .map(|id| id.to_string())
        .ok_or_else(|| "the submit response has no job_id".to_string())
}

/// The `job/submit` body for `version`: snake_case fields, unset ones left out, on top of
/// the fields of the script's `#SBATCH` directives. A job submitted for a request carries
/// its ids, as with sbatch: in the comment and as `IRONCREST_*` variables of its
/// environment (after the user's, so they cannot be overridden).
pub fn submit_body(
    version: ApiVersion,
    job: &JobDescription,
    script: &str,
    environment: &[(String, String)],
    directives: Map<String, Value>,
    request: Option<&JobComment>,
) -> Value {
    // The script's `#SBATCH` fields first; the request's own fields override them.
    let mut fields = directives;
    fields.insert(
        "current_working_directory".into(),
        json!(job.working_directory),
    );
    for (key, value) in [
        ("name", &job.name),
        ("account", &job.account),
        ("partition", &job.partition),
        ("reservation", &job.reservation),
        ("standard_input", &job.standard_input),
        ("standard_output", &job.standard_output),
        ("standard_error", &job.standard_error),
        ("constraints", &job.constraints),
    ] {
        if let Some(value) = value {
            fields.insert(key.into(), json!(value));
        }
    }
    let mut environment = environment.to_vec();
    if let Some(comment) = request {
        let ids = &comment.ids;
        fields.insert("comment".into(), json!(comment.to_string()));
        environment.push((REQUEST_ID_VARIABLE.into(), ids.request_id.clone()));
        if let Some(correlation_id) = &ids.correlation_id {
            environment.push((CORRELATION_ID_VARIABLE.into(), correlation_id.clone()));
        }
    }
    let environment = if version.environment_as_list() {
        json!(
            environment
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
        )
    } else {
        Value::Object(
            environment
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect(),
        )
    };
    fields.insert("environment".into(), environment);
    if version.script_inside_job() {
        fields.insert("script".into(), json!(script));
        json!({ "job": fields })
    } else {
        json!({ "script": script, "job": fields })
    }
}

/// `(exit code, signal)`: a raw wait status (v0.0.38 controller), or an object with
/// `return_code` and `signal` (accounting, and the controller from v0.0.40 on).
fn split_exit(value: &Value) -> (Option<i64>, Option<i64>) {
    match value {
        Value::Object(map) => {
            let code = map.get("return_code").and_then(num);
            let signal = map.get("signal").map(|signal| {
                num(&signal["id"])
                    .or_else(|| num(&signal["signal_id"]))
                    .unwrap_or(0)
            });
            (code, code.map(|_| signal.unwrap_or(0)))
        }
        other => match num(other) {
            Some(status) => (Some((status >> 8) & 0xff), Some(status & 0x7f)),
            None => (None, None),
        },
    }
}

/// A time limit in minutes → seconds; unset and infinite (also as sentinels) are null.
fn limit(value: &Value) -> Option<i64> {
    num(value)
        .filter(|&minutes| (0..NO_VAL32).contains(&minutes))
        .map(|minutes| minutes * 60)
}

/// An epoch time; 0 ("unknown") is null.
fn epoch(value: &Value) -> Option<i64> {
    num(value).filter(|&t| t > 0)
}

/// `GET /slurm/{v}/jobs` or `/job/{id}`: jobs the controller holds.
/// The standard streams of job `job_id` in the controller's answer; `None` if it is not there.
pub fn job_streams(body: &Value, job_id: &str) -> Result<Option<Streams>, String> {
    Ok(list(body, "jobs")?
        .iter()
        .find(|job| num(&job["job_id"]).is_some_and(|id| id.to_string() == job_id))
        .map(|job| Streams {
            stdin: text(&job["standard_input"]),
            stdout: text(&job["standard_output"]),
            stderr: text(&job["standard_error"]),
        }))
}

/// `user`'s jobs with Ironcrest's comment in a controller (`GET /slurm/{v}/jobs`: `comment`
/// a string, `user_name`) or an accounting listing (`GET /slurmdb/{v}/jobs`: `comment.job`
/// or a string, `user`).
pub fn commented_jobs(body: &Value, user: &str) -> Result<Vec<CommentedJob>, String> {
    let jobs = list(body, "jobs")?;
    let mut rows = Vec::new();
    for job in jobs {
        let owner = text(&job["user_name"]).or_else(|| text(&job["user"]));
        if owner.as_deref() != Some(user) {
            continue;
        }
        let job_id = num(&job["job_id"]).ok_or("a job without a job_id")?;
        let comment = text(&job["comment"]).or_else(|| text(&job["comment"]["job"]));
        if let Some(comment) = comment {
            rows.push((job_id.to_string(), comment));
        }
    }
    Ok(crate::comment::commented_jobs(
        rows.iter()
            .map(|(id, comment)| (id.as_str(), comment.as_str())),
    ))
}

pub fn controller_jobs(body: &Value, now: i64) -> Result<Vec<Row>, String> {
    list(body, "jobs")?
        .iter()
        .map(|job| {
            let job_id = num(&job["job_id"]).ok_or("a job without a job_id")?;
            let (exit_code, interrupt_signal) = split_exit(&job["exit_code"]);
            let state = state(&job["job_state"]).unwrap_or_else(|| "UNKNOWN".into());
            let start = epoch(&job["start_time"]);
            let end = epoch(&job["end_time"]);
            let elapsed = match (start, state.as_str()) {
                (Some(start), "PENDING") if start > now => Some(0),
                (Some(start), _) => Some((end.unwrap_or(now).min(now) - start).max(0)),
                (None, _) => Some(0),
            };
            Ok(Row::Job(Box::new(Job {
                job_id: job_id.to_string(),
                name: text(&job["name"]).unwrap_or_default(),
                status: JobStatus {
                    state,
                    state_reason: text(&job["state_reason"]),
                    exit_code,
                    interrupt_signal,
                },
                tasks: Some(Vec::new()),
                time: JobTime {
                    submit: epoch(&job["submit_time"]),
                    elapsed,
                    start,
                    end,
                    suspended: None,
                    limit: limit(&job["time_limit"]),
                },
                account: text(&job["account"]),
                allocation_nodes: num(&job["node_count"]).unwrap_or(0),
                cluster: text(&job["cluster"]).unwrap_or_default(),
                group: text(&job["group_name"]),
                nodes: text(&job["nodes"]).unwrap_or_default(),
                partition: text(&job["partition"]).unwrap_or_default(),
                kill_request_user: None,
                user: text(&job["user_name"]),
                working_directory: text(&job["current_working_directory"]).unwrap_or_default(),
                priority: num(&job["priority"]),
            })))
        })
        .collect()
}

fn job_time(time: &Value) -> JobTime {
    JobTime {
        submit: epoch(&time["submission"]),
        elapsed: num(&time["elapsed"]),
        start: epoch(&time["start"]),
        end: epoch(&time["end"]),
        suspended: num(&time["suspended"]),
        limit: limit(&time["limit"]),
    }
}

/// `GET /slurmdb/{v}/jobs` or `/job/{id}`: accounting records, each job followed by its
/// steps (which become `tasks`).
pub fn accounting_jobs(body: &Value) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    for job in list(body, "jobs")? {
        let job_id = num(&job["job_id"])
            .ok_or("a job without a job_id")?
            .to_string();
        let (exit_code, interrupt_signal) = split_exit(&job["exit_code"]);
        rows.push(Row::Job(Box::new(Job {
            job_id: job_id.clone(),
            name: text(&job["name"]).unwrap_or_default(),
            status: JobStatus {
                state: state(&job["state"]["current"]).unwrap_or_else(|| "UNKNOWN".into()),
                state_reason: text(&job["state"]["reason"]),
                exit_code,
                interrupt_signal,
            },
            tasks: Some(Vec::new()),
            time: job_time(&job["time"]),
            account: text(&job["account"]),
            allocation_nodes: num(&job["allocation_nodes"]).unwrap_or(0),
            cluster: text(&job["cluster"]).unwrap_or_default(),
            group: text(&job["group"]),
            nodes: text(&job["nodes"]).unwrap_or_default(),
            partition: text(&job["partition"]).unwrap_or_default(),
            kill_request_user: text(&job["kill_request_user"]),
            user: text(&job["user"]),
            working_directory: text(&job["working_directory"]).unwrap_or_default(),
            priority: num(&job["priority"]),
        })));
        for step in job["steps"].as_array().into_iter().flatten() {
            let id = text(&step["step"]["id"])
                .or_else(|| num(&step["step"]["id"]).map(|n| n.to_string()))
                .unwrap_or_default();
            // v0.0.38 names the step (`batch`); newer versions give the full `123.batch`.
            let id = if id.contains('.') {
                id
            } else {
                format!("{job_id}.{id}")
            };
            let (exit_code, interrupt_signal) = split_exit(&step["exit_code"]);
            rows.push(Row::Step {
                job_id: job_id.clone(),
                task: Box::new(JobTask {
                    id,
                    name: text(&step["step"]["name"]).unwrap_or_default(),
                    status: JobStatus {
                        state: state(&step["state"]).unwrap_or_else(|| "UNKNOWN".into()),
                        state_reason: None,
                        exit_code,
                        interrupt_signal,
                    },
                    time: job_time(&step["time"]),
                }),
            });
        }
    }
    Ok(rows)
}
