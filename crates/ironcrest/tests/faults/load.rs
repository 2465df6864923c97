//! The steady mixed load a fault test keeps up while it breaks a backend: a few client tasks,
//! each repeating one kind of request (status, userinfo, ls, stat, head, checksum, the job
//! list, a submission, a staged download), recording every answer with the phases of the
//! test it started and ended in, and whether a success carried the right content.
//!
//! Nothing here measures speed. The client gives up on a request only after the server's
//! configured timeouts plus generous slack ([`Load::start`]'s `client_timeout`): an answer
//! that did not come by then hung, whatever the machine's speed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// Where the test is: the load's answers are judged by the phases they started and ended in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Everything is up.
    Before,
    /// The backend is broken.
    Outage,
    /// The backend is back; Ironcrest has not been seen to work again yet.
    Recovering,
    /// Ironcrest was seen to work again: every answer must be a success.
    After,
}

impl Phase {
    fn from_u8(value: u8) -> Self {
        match value {
            0 => Phase::Before,
            1 => Phase::Outage,
            2 => Phase::Recovering,
            _ => Phase::After,
        }
    }
}

/// One kind of request of the load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    /// `GET /status/systems`: needs no backend.
    Systems,
    /// `GET /status/{system}/userinfo` (`id` over SSH).
    Userinfo,
    /// `GET …/ops/ls` of the fixture directory (SFTP, or `ls`).
    Ls,
    /// `GET …/ops/stat` of the fixture file (`stat`).
    Stat,
    /// `GET …/ops/head` of the fixture file (SFTP, or `head`).
    Head,
    /// `GET …/ops/checksum` of the fixture file (`sha256sum`).
    Checksum,
    /// `GET /compute/{system}/jobs`.
    Jobs,
    /// `POST /compute/{system}/jobs`, each with a job name of its own.
    Submit,
    /// `POST …/transfer/download` of the fixture file through S3.
    StagedDownload,
}

impl Op {
    /// Every request of the load.
    pub const ALL: [Op; 9] = [
        Op::Systems,
        Op::Userinfo,
        Op::Ls,
        Op::Stat,
        Op::Head,
        Op::Checksum,
        Op::Jobs,
        Op::Submit,
        Op::StagedDownload,
    ];

    fn starts_jobs(self) -> bool {
        matches!(self, Op::Submit | Op::StagedDownload)
    }

    /// Requests that start a job come seldom: the dev cluster runs a few jobs a minute
    /// (one free core), and other tests' jobs queue behind the load's. A job listing (a
    /// day of the cluster's jobs) costs the scheduler most of the rest.
    fn pause(self) -> Duration {
        match self {
            Op::Submit | Op::StagedDownload => Duration::from_secs(5),
            Op::Jobs => Duration::from_secs(1),
            _ => Duration::from_millis(150),
        }
    }
}

/// One answer of the load.
#[derive(Debug, Clone)]
pub struct Answer {
    pub op: Op,
    pub started: Phase,
    pub ended: Phase,
    /// `None`: no answer within the client's timeout, or the connection failed.
    pub status: Option<u16>,
    /// The error's `message`, or what went wrong on the client's side.
    pub message: String,
    /// For a success: why its content is wrong, if it is.
    pub wrong_content: Option<String>,
    /// For the report only; never asserted.
    pub elapsed: Duration,
    /// A submission's job name.
    pub job_name: Option<String>,
}

impl Answer {
    pub fn is_success(&self) -> bool {
        self.status
            .is_some_and(|status| (200..300).contains(&status) && self.wrong_content.is_none())
    }

    /// Whether it was answered with `status` and a message containing `text`.
    pub fn is(&self, status: u16, text: &str) -> bool {
        self.status == Some(status) && self.message.contains(text)
    }
}

/// A directory with known files in fireuser's home, for the load's file operations.
pub struct Fixture {
    pub dir: PathBuf,
    pub file: PathBuf,
    pub content: Vec<u8>,
    pub sha256: String,
}

impl Fixture {
    pub fn new(name: &str) -> Self {
        let dir = PathBuf::from(format!("/home/fireuser/{}", unique(name)));
        std::fs::create_dir(&dir).unwrap();
        let file = dir.join("a.txt");
        let content = b"first line\nsecond line\nthird line\n".to_vec();
        std::fs::write(&file, &content).unwrap();
        std::fs::write(dir.join("b"), b"b").unwrap();
        chown_fireuser(&dir);
        let output = std::process::Command::new("sha256sum")
            .arg(&file)
            .output()
            .unwrap();
        let sha256 = String::from_utf8(output.stdout).unwrap()[..64].to_string();
        Self {
            dir,
            file,
            content,
            sha256,
        }
    }

    fn dir_str(&self) -> &str {
        self.dir.to_str().unwrap()
    }

    fn file_str(&self) -> &str {
        self.file.to_str().unwrap()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Makes `path` (recursively) fireuser's, readable by all.
pub fn chown_fireuser(path: &Path) {
    let status = std::process::Command::new("chown")
        .args(["-R", "fireuser:fireuser"])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
    let status = std::process::Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

/// A name no other test run uses.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// The load while it runs.
pub struct Load {
    phase: Arc<AtomicU8>,
    answers: Arc<Mutex<Vec<Answer>>>,
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    ops: Vec<Op>,
}

/// What every task of a load shares.
struct Target {
    url: String,
    system: String,
    token: Mutex<String>,
    http: reqwest::Client,
    fixture: Arc<Fixture>,
    /// The jobs the load submitted, by id, and when their answer came.
    submitted: Mutex<Vec<(String, Instant)>>,
}

impl Target {
    fn new(url: &str, system: &str, token: &str, fixture: Arc<Fixture>, timeout: Duration) -> Self {
        Self {
            url: url.to_string(),
            system: system.to_string(),
            token: Mutex::new(token.to_string()),
            // Idle connections are dropped before the server's `header_timeout` closes
            // them, as a careful client does (a request on one it is closing just then
            // would fail on the client's side).
            http: reqwest::Client::builder()
                .timeout(timeout)
                .pool_idle_timeout(Duration::from_secs(5))
                .build()
                .unwrap(),
            fixture,
            submitted: Mutex::new(Vec::new()),
        }
    }
}

/// One request of each of `ops`, all at once, answered as in `phase`.
pub async fn at_once(
    url: &str,
    system: &str,
    token: &str,
    fixture: Arc<Fixture>,
    ops: &[Op],
    phase: Phase,
    client_timeout: Duration,
) -> Vec<Answer> {
    let target = Target::new(url, system, token, fixture, client_timeout);
    let answers = futures::future::join_all(ops.iter().map(|&op| request(&target, op))).await;
    answers
        .into_iter()
        .map(|answer| Answer {
            started: phase,
            ended: phase,
            ..answer
        })
        .collect()
}

impl Load {
    /// Starts one task per op against the server at `url`, as fireuser with `token`. A
    /// request not answered within `client_timeout` counts as hung.
    pub fn start(
        url: &str,
        system: &str,
        token: &str,
        fixture: Arc<Fixture>,
        ops: &[Op],
        client_timeout: Duration,
    ) -> Self {
        let target = Arc::new(Target::new(url, system, token, fixture, client_timeout));
        let phase = Arc::new(AtomicU8::new(Phase::Before as u8));
        let answers = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let tasks = ops
            .iter()
            .map(|&op| {
                let (target, phase, answers, stop) =
                    (target.clone(), phase.clone(), answers.clone(), stop.clone());
                tokio::spawn(async move {
                    while !stop.is_cancelled() {
                        let started = Phase::from_u8(phase.load(Ordering::SeqCst));
                        let mut answer = request(&target, op).await;
                        answer.started = started;
                        answer.ended = Phase::from_u8(phase.load(Ordering::SeqCst));
                        answers.lock().unwrap().push(answer);
                        tokio::select! {
                            () = stop.cancelled() => {}
                            () = tokio::time::sleep(op.pause()) => {}
                        }
                    }
                })
            })
            .collect();
        Self {
            phase,
            answers,
            stop,
            tasks,
            ops: ops.to_vec(),
        }
    }

    pub fn enter(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::SeqCst);
    }

    /// Waits until every op has answered at least `rounds` times since the current phase
    /// began (each op's requests, whatever their outcome); those that start jobs, once.
    pub async fn rounds(&self, rounds: usize) {
        let phase = Phase::from_u8(self.phase.load(Ordering::SeqCst));
        self.wait_until(&format!("{rounds} rounds in {phase:?}"), |answers| {
            self.ops.iter().all(|op| {
                let wanted = if op.starts_jobs() { 1 } else { rounds };
                answers
                    .iter()
                    .filter(|a| a.op == *op && a.started == phase)
                    .count()
                    >= wanted
            })
        })
        .await;
    }

    /// After the backend came back: waits until every op has succeeded in the
    /// `Recovering` phase, then enters `After`. Panics if they never all do (bounded):
    /// Ironcrest did not heal without a restart.
    pub async fn recover(&self) {
        self.enter(Phase::Recovering);
        self.wait_until("every request to succeed again", |answers| {
            self.ops.iter().all(|op| {
                answers
                    .iter()
                    .any(|a| a.op == *op && a.started == Phase::Recovering && a.is_success())
            })
        })
        .await;
        self.enter(Phase::After);
    }

    async fn wait_until(&self, what: &str, done: impl Fn(&[Answer]) -> bool) {
        for _ in 0..600 {
            if done(&self.answers.lock().unwrap()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let answers = self.answers.lock().unwrap().clone();
        panic!("waited 120 s for {what}:\n{}", summary(&answers));
    }

    /// Stops the tasks (each finishes its request) and returns every answer.
    pub async fn finish(self) -> Vec<Answer> {
        self.stop.cancel();
        for task in self.tasks {
            task.await.unwrap();
        }
        let answers = self.answers.lock().unwrap().clone();
        eprintln!("{}", summary(&answers));
        answers
    }
}

async fn request(target: &Target, op: Op) -> Answer {
    let system = &target.system;
    let fixture = &target.fixture;
    let token = target.token.lock().unwrap().clone();
    let mut job_name = None;
    let get = |path: String| target.http.get(format!("{}{path}", target.url));
    let builder = match op {
        Op::Systems => get("/status/systems".into()),
        Op::Userinfo => get(format!("/status/{system}/userinfo")),
        Op::Ls => get(format!("/filesystem/{system}/ops/ls")).query(&[("path", fixture.dir_str())]),
        Op::Stat => {
            get(format!("/filesystem/{system}/ops/stat")).query(&[("path", fixture.file_str())])
        }
        Op::Head => {
            get(format!("/filesystem/{system}/ops/head")).query(&[("path", fixture.file_str())])
        }
        Op::Checksum => {
            get(format!("/filesystem/{system}/ops/checksum")).query(&[("path", fixture.file_str())])
        }
        Op::Jobs => get(format!("/compute/{system}/jobs")),
        Op::Submit => {
            let name = unique("fault-load");
            job_name = Some(name.clone());
            target
                .http
                .post(format!("{}/compute/{system}/jobs", target.url))
                .json(&json!({"job": {
                    "name": name,
                    "workingDirectory": "/home/fireuser",
                    "standardOutput": "/dev/null",
                    "standardError": "/dev/null",
                    "script": "#!/bin/bash\ntrue\n",
                }}))
        }
        Op::StagedDownload => target
            .http
            .post(format!(
                "{}/filesystem/{system}/transfer/download",
                target.url
            ))
            .json(&json!({"sourcePath": fixture.file_str(),
                          "transferDirectives": {"transferMethod": "s3"}})),
    };
    let submitted_before: Vec<String> = target
        .submitted
        .lock()
        .unwrap()
        .iter()
        .map(|(id, _)| id.clone())
        .collect();
    let started = Instant::now();
    let sent = builder.bearer_auth(token).send().await;
    let mut answer = Answer {
        op,
        started: Phase::Before,
        ended: Phase::Before,
        status: None,
        message: String::new(),
        wrong_content: None,
        elapsed: Duration::ZERO,
        job_name,
    };
    let response = match sent {
        Ok(response) => response,
        Err(err) => {
            answer.message = format!("no answer: {err}");
            answer.elapsed = started.elapsed();
            return answer;
        }
    };
    let status = response.status().as_u16();
    let body = response.text().await;
    answer.elapsed = started.elapsed();
    let body = match body {
        Ok(body) => body,
        Err(err) => {
            answer.message = format!("body cut off: {err}");
            return answer;
        }
    };
    answer.status = Some(status);
    let value: Value = match serde_json::from_str(&body) {
        Ok(value) => value,
        Err(_) => {
            answer.message = format!("not JSON: {body}");
            answer.wrong_content = Some(answer.message.clone());
            return answer;
        }
    };
    if !(200..300).contains(&status) {
        answer.message = value["message"].as_str().unwrap_or_default().to_string();
        if answer.message.is_empty() {
            answer.wrong_content = Some(format!("an error without a message: {body}"));
        }
        return answer;
    }
    answer.wrong_content = content_problem(op, &value, fixture, &submitted_before, system);
    if op == Op::Submit
        && let Some(id) = value["jobId"].as_str()
    {
        target
            .submitted
            .lock()
            .unwrap()
            .push((id.to_string(), Instant::now()));
    }
    answer
}

/// Why a success's body is not what the fixture and the cluster hold, if it is not.
fn content_problem(
    op: Op,
    value: &Value,
    fixture: &Fixture,
    submitted_before: &[String],
    system: &str,
) -> Option<String> {
    let right = match op {
        Op::Systems => value["systems"]
            .as_array()
            .is_some_and(|systems| systems.iter().any(|s| s["name"] == system)),
        Op::Userinfo => value["user"]["name"] == "fireuser",
        Op::Ls => {
            let mut names: Vec<&str> = value["output"]
                .as_array()
                .map(|entries| entries.iter().filter_map(|e| e["name"].as_str()).collect())
                .unwrap_or_default();
            names.sort();
            names == ["a.txt", "b"]
        }
        Op::Stat => value["output"]["size"] == fixture.content.len(),
        Op::Head => {
            value["output"]["content"].as_str() == std::str::from_utf8(&fixture.content).ok()
        }
        Op::Checksum => value["output"]["checksum"] == fixture.sha256.as_str(),
        Op::Jobs => {
            let listed: Vec<&str> = value["jobs"]
                .as_array()
                .map(|jobs| jobs.iter().filter_map(|j| j["jobId"].as_str()).collect())
                .unwrap_or_default();
            // Every job the load had been told it submitted is listed.
            submitted_before
                .iter()
                .all(|id| listed.contains(&id.as_str()))
        }
        Op::Submit => value["jobId"]
            .as_str()
            .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())),
        Op::StagedDownload => {
            value["transferJob"]["jobId"].is_string()
                && value["transferDirectives"]["downloadUrl"].is_string()
        }
    };
    (!right).then(|| value.to_string().chars().take(400).collect())
}

/// The rules every fault test holds its load to, with `during` judging each failure that
/// touched the fault (it started or ended in `Outage` or `Recovering`) by its op, status
/// and message. Panics listing every answer that breaks one:
/// - every request was answered (none hung past the client's timeout);
/// - every success carried the right content;
/// - before the fault and once recovered, every answer is a success.
pub fn verify(answers: &[Answer], during: impl Fn(&Answer) -> bool) {
    let mut broken = Vec::new();
    for answer in answers {
        let problem = if answer.status.is_none() {
            Some("hung or failed on the client's side".to_string())
        } else if let Some(wrong) = &answer.wrong_content {
            Some(format!("wrong content: {wrong}"))
        } else if answer.is_success() {
            None
        } else if answer.started == Phase::After
            || (answer.started == Phase::Before && answer.ended == Phase::Before)
        {
            Some("failed while everything was up".to_string())
        } else if !during(answer) {
            Some("not an expected answer during the fault".to_string())
        } else {
            None
        };
        if let Some(problem) = problem {
            broken.push(format!(
                "{:?} ({:?}→{:?}): {problem}: {:?} {}",
                answer.op, answer.started, answer.ended, answer.status, answer.message
            ));
        }
    }
    assert!(
        broken.is_empty(),
        "{} answers break the rules:\n{}\n{}",
        broken.len(),
        broken.join("\n"),
        summary(answers)
    );
}

/// Answers per op, phase and status, with each status's longest wait (for the report).
pub fn summary(answers: &[Answer]) -> String {
    let mut table: BTreeMap<(Op, Phase, String), (usize, Duration)> = BTreeMap::new();
    for answer in answers {
        let status = match (answer.status, &answer.wrong_content) {
            (Some(status), Some(wrong)) => {
                let wrong: String = wrong.chars().take(120).collect();
                format!("{status} with wrong content: {wrong}")
            }
            (Some(status), None) if answer.message.is_empty() => status.to_string(),
            (Some(status), None) => format!("{status} {}", answer.message),
            (None, _) => format!("none ({})", answer.message),
        };
        let entry = table
            .entry((answer.op, answer.started, status))
            .or_insert((0, Duration::ZERO));
        entry.0 += 1;
        entry.1 = entry.1.max(answer.elapsed);
    }
    let mut lines = vec!["op phase: count × status (longest)".to_string()];
    for ((op, phase, status), (count, longest)) in table {
        lines.push(format!(
            "  {op:?} {phase:?}: {count} × {status} ({longest:.1?})"
        ));
    }
    lines.join("\n")
}

/// How many of fireuser's jobs are named `name`, as the controller lists them
/// (`squeue --states=all` keeps finished jobs for MinJobAge, 300 s in the dev cluster).
pub fn jobs_named(name: &str) -> usize {
    let output = std::process::Command::new("squeue")
        .args([
            "--noheader",
            "--states=all",
            "--user=fireuser",
            "--format=%j",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "squeue: {output:?}");
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter(|line| line.trim() == name)
        .count()
}

/// No submission made two jobs, and every one answered with a job id made exactly one.
pub fn assert_no_job_twice(answers: &[Answer]) {
    for answer in answers.iter().filter(|a| a.op == Op::Submit) {
        let name = answer.job_name.as_ref().unwrap();
        let count = jobs_named(name);
        if answer.is_success() {
            assert_eq!(count, 1, "{name}, answered {:?}", answer.status);
        } else {
            assert!(count <= 1, "{name} made {count} jobs");
        }
    }
}
