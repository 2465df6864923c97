//! Readers for OpenPBS outputs. Times in `-F json` are ctime strings in the server's local
//! time without a zone; they are read as UTC (run PBS servers in UTC, as most sites do).

use serde_json::Value;

use super::PbsJob;
use crate::slurm::job_rows::duration;
use crate::{Job, JobStatus, JobTime, Node, NodeState, Partition, PingStatus, Reservation};

/// `Wed Nov 22 10:58:30 2023` (ctime, day space-padded) or epoch seconds → epoch seconds.
pub fn time(value: &Value) -> Option<i64> {
    if let Some(n) = value.as_i64() {
        return Some(n);
    }
    let text = value
        .as_str()?
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    chrono::NaiveDateTime::parse_from_str(&text, "%a %b %d %H:%M:%S %Y")
        .ok()
        .map(|t| t.and_utc().timestamp())
}

fn text(value: &Value) -> Option<String> {
    value.as_str().filter(|s| !s.is_empty()).map(str::to_string)
}

fn int(value: &Value) -> Option<i64> {
    value
        .as_i64()
        .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
}

/// PBS sizes (`8010256kb`, `4gb`, `512`) in bytes.
pub fn bytes(value: &Value) -> Option<u64> {
    if let Some(n) = value.as_u64() {
        return Some(n);
    }
    let text = value.as_str()?.trim().to_ascii_lowercase();
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let number: u64 = digits.parse().ok()?;
    let multiplier: u64 = match &text[digits.len()..] {
        "" | "b" => 1,
        "kb" | "k" => 1 << 10,
        "mb" | "m" => 1 << 20,
        "gb" | "g" => 1 << 30,
        "tb" | "t" => 1 << 40,
        "w" => 8,
        "kw" => 8 << 10,
        "mw" => 8 << 20,
        "gw" => 8 << 30,
        _ => return None,
    };
    number.checked_mul(multiplier)
}

/// `host:/path` as PBS records output paths → `/path`.
fn strip_host(path: &str) -> String {
    match path.split_once(':') {
        Some((host, rest)) if !host.contains('/') => rest.to_string(),
        _ => path.to_string(),
    }
}

/// `cn001/0*4+cn002/1` → `cn001,cn002`.
fn exec_hosts(value: &Value) -> String {
    let mut hosts: Vec<&str> = Vec::new();
    for chunk in value.as_str().unwrap_or_default().split('+') {
        let host = chunk.split('/').next().unwrap_or_default();
        if !host.is_empty() && !hosts.contains(&host) {
            hosts.push(host);
        }
    }
    hosts.join(",")
}

/// PBS job states as FirecREST (Slurm) names; a finished job's name follows its exit.
fn job_state(state: &str, exit_status: Option<i64>) -> &'static str {
    match state {
        "Q" | "H" | "W" | "T" => "PENDING",
        "R" | "B" => "RUNNING",
        "E" => "COMPLETING",
        "S" | "U" => "SUSPENDED",
        "F" | "X" | "M" => match exit_status {
            Some(0) => "COMPLETED",
            Some(status) if status >= 256 => "CANCELLED",
            Some(_) => "FAILED",
            None => "COMPLETED",
        },
        _ => "UNKNOWN",
    }
}

/// `Exit_status`: ≥ 256 is 256 + the signal that killed the job.
fn exit_and_signal(exit_status: Option<i64>) -> (Option<i64>, Option<i64>) {
    match exit_status {
        Some(status) if status >= 256 => (Some(0), Some(status - 256)),
        Some(status) => (Some(status), Some(0)),
        None => (None, None),
    }
}

pub fn jobs(body: &Value) -> Result<Vec<PbsJob>, String> {
    let Some(jobs) = body.get("Jobs") else {
        // qstat prints no `Jobs` at all when there are none.
        return Ok(Vec::new());
    };
    let jobs = jobs.as_object().ok_or("`Jobs` is not an object")?;
    let cluster = text(&body["pbs_server"]).unwrap_or_default();
    let mut parsed = Vec::new();
    for (pbs_id, job) in jobs {
        let job_id: String = pbs_id.chars().take_while(char::is_ascii_digit).collect();
        if job_id.is_empty() {
            return Err(format!("job id {pbs_id:?} does not start with a number"));
        }
        let state = text(&job["job_state"]).ok_or_else(|| format!("job {pbs_id} has no state"))?;
        let exit_status = int(&job["Exit_status"]);
        let (exit_code, interrupt_signal) = exit_and_signal(exit_status);
        let finished = matches!(state.as_str(), "F" | "X" | "M");
        let owner = text(&job["Job_Owner"])
            .map(|owner| owner.split('@').next().unwrap_or_default().to_string())
            .or_else(|| text(&job["euser"]));
        let project = text(&job["project"]).filter(|p| p != "_pbs_project_default");
        let working_directory = text(&job["Variable_List"]["PBS_O_WORKDIR"])
            .or_else(|| text(&job["jobdir"]))
            .unwrap_or_default();
        let start = time(&job["stime"]);
        let end = if finished {
            time(&job["obittime"]).or_else(|| time(&job["mtime"]))
        } else {
            None
        };
        let elapsed = job["resources_used"]["walltime"]
            .as_str()
            .and_then(duration)
            .or(Some(0));
        parsed.push(PbsJob {
            pbs_id: pbs_id.clone(),
            job: Job {
                job_id,
                name: text(&job["Job_Name"]).unwrap_or_default(),
                status: JobStatus {
                    state: job_state(&state, exit_status).to_string(),
                    state_reason: text(&job["comment"]),
                    exit_code,
                    interrupt_signal,
                },
                tasks: Some(Vec::new()),
                time: JobTime {
                    submit: time(&job["qtime"]).or_else(|| time(&job["ctime"])),
                    elapsed,
                    start,
                    end,
                    suspended: None,
                    limit: job["Resource_List"]["walltime"].as_str().and_then(duration),
                },
                account: project,
                allocation_nodes: int(&job["Resource_List"]["nodect"]).unwrap_or(0),
                cluster: cluster.clone(),
                group: text(&job["egroup"]),
                nodes: exec_hosts(&job["exec_host"]),
                partition: text(&job["queue"]).unwrap_or_default(),
                kill_request_user: None,
                user: owner,
                working_directory,
                priority: int(&job["Priority"]),
            },
            stdout: text(&job["Output_Path"]).map(|p| strip_host(&p)),
            stderr: text(&job["Error_Path"]).map(|p| strip_host(&p)),
        });
    }
    Ok(parsed)
}

fn node_state(word: &str) -> NodeState {
    match word.trim() {
        "free" => NodeState::Idle,
        "job-exclusive" | "job-busy" | "resv-exclusive" => NodeState::Allocated,
        "job-sharing" | "time-shared" => NodeState::Mixed,
        "down" | "stale" | "state-unknown" => NodeState::Down,
        "offline" | "maintenance" => NodeState::Offline,
        "reserve" => NodeState::Reserved,
        "busy" => NodeState::Busy,
        "provisioning" | "wait-provisioning" => NodeState::PoweringUp,
        "sleep" => NodeState::PoweringDown,
        _ => NodeState::Unknown,
    }
}

pub fn nodes(body: &Value) -> Result<Vec<Node>, String> {
    let nodes = body["nodes"]
        .as_object()
        .ok_or("the output has no `nodes` object")?;
    Ok(nodes
        .iter()
        .map(|(name, node)| {
            let available = &node["resources_available"];
            let assigned = &node["resources_assigned"];
            let ncpus = int(&available["ncpus"]);
            let used = int(&assigned["ncpus"]).unwrap_or(0);
            let mut state: Vec<NodeState> = Vec::new();
            for word in node["state"].as_str().unwrap_or_default().split(',') {
                let mapped = node_state(word);
                if !state.contains(&mapped) {
                    state.push(mapped);
                }
            }
            let total_memory = bytes(&available["mem"]);
            let alloc_memory = bytes(&assigned["mem"]).or(total_memory.map(|_| 0));
            Node {
                sockets: None,
                cores: None,
                threads: None,
                cpus: int(&node["pcpus"])
                    .or(ncpus)
                    .and_then(|n| u32::try_from(n).ok())
                    .unwrap_or(0),
                cpu_load: None,
                free_memory: total_memory
                    .zip(alloc_memory)
                    .map(|(total, used)| total.saturating_sub(used)),
                features: None,
                name: name.clone(),
                address: text(&node["Mom"]),
                hostname: text(&available["host"]),
                state,
                partitions: None,
                weight: None,
                alloc_memory,
                alloc_cpus: u32::try_from(used).ok(),
                idle_cpus: ncpus.and_then(|n| u32::try_from((n - used).max(0)).ok()),
            }
        })
        .collect())
}

pub fn queues(body: &Value) -> Result<Vec<Partition>, String> {
    let queues = body["Queue"]
        .as_object()
        .ok_or("the output has no `Queue` object")?;
    Ok(queues
        .iter()
        .map(|(name, queue)| Partition {
            name: name.clone(),
            cpus: None,
            total_nodes: None,
            partition: if queue["started"].as_str() == Some("True") {
                "UP"
            } else {
                "DOWN"
            }
            .to_string(),
        })
        .collect())
}

pub fn servers(body: &Value) -> Result<Vec<PingStatus>, String> {
    let servers = body["Server"]
        .as_object()
        .ok_or("the output has no `Server` object")?;
    Ok(servers
        .iter()
        .map(|(name, server)| PingStatus {
            controller: name.clone(),
            up: matches!(
                server["server_state"].as_str(),
                Some("Active" | "Scheduling" | "Idle")
            ),
        })
        .collect())
}

/// `pbs_rstat -f`: blocks that start with `Resv ID: <id>`, then `key = value` lines.
pub fn reservations(text: &str, now: i64) -> Result<Vec<Reservation>, String> {
    let mut blocks: Vec<Vec<(&str, &str)>> = Vec::new();
    for line in text.lines() {
        if let Some(id) = line.strip_prefix("Resv ID:") {
            blocks.push(vec![("Resv ID", id.trim())]);
        } else if let Some((key, value)) = line.split_once(" = ") {
            let block = blocks
                .last_mut()
                .ok_or_else(|| format!("{line:?} before any `Resv ID:`"))?;
            block.push((key.trim(), value.trim()));
        }
    }
    blocks
        .into_iter()
        .map(|block| {
            let get = |key: &str| block.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
            let name = get("Reserve_Name")
                .or_else(|| get("Resv ID"))
                .unwrap_or_default()
                .to_string();
            let parse_time = |key: &str| {
                get(key)
                    .and_then(|v| time(&Value::String(v.to_string())))
                    .ok_or_else(|| format!("reservation {name} has no readable {key}"))
            };
            let start_time = parse_time("reserve_start")?;
            let end_time = parse_time("reserve_end")?;
            let state = match get("reserve_state") {
                Some("RESV_RUNNING") => "active".to_string(),
                Some(state) => state.trim_start_matches("RESV_").to_ascii_lowercase(),
                None if start_time <= now && now < end_time => "active".to_string(),
                None => "inactive".to_string(),
            };
            let node_list = exec_hosts(&Value::String(
                get("resv_nodes")
                    .unwrap_or_default()
                    .replace(['(', ')'], "")
                    .split('+')
                    .map(|chunk| chunk.split(':').next().unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join("+"),
            ));
            Ok(Reservation {
                name,
                node_list,
                end_time,
                start_time,
                features: None,
                state: Some(state),
            })
        })
        .collect()
}
