//! Job events against the dev cluster, read by a streaming HTTP client (reqwest, chunk by
//! chunk as they arrive): a job's whole life on the stream, a resume by `Last-Event-ID`,
//! the job filter, the long poll, the limits, and the poller's scheduler calls, which do not
//! grow with the number of watchers.
//!
//! Each test's server names its cluster apart: the process's metrics are shared by every
//! test server in it and counted by cluster. Jobs run in the reservation (the one core
//! outside it may be busy with other tests' jobs), and the job scripts begin later
//! (`--begin`) where a test must see them pending.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::compute::{HOME, unique};
use crate::harness::{TestServer, env, user_token};

/// One event as a Server-Sent Events client reads it.
#[derive(Debug, Clone)]
struct SseEvent {
    event: String,
    id: String,
    data: Value,
}

/// A `text/event-stream` answer, read as it arrives and split into events (the field
/// rules of the WHATWG's `EventSource` parsing, the part this server writes: `event`,
/// `id`, `data`, comments).
struct EventStream {
    response: reqwest::Response,
    buffer: String,
    heartbeats: usize,
    /// The ids of other jobs whose events [`EventStream::life_of`] passed over.
    other_jobs: Vec<String>,
}

impl EventStream {
    async fn open(
        server: &TestServer,
        system: &str,
        token: &str,
        query: &str,
        last_event_id: Option<&str>,
    ) -> Self {
        let response = Self::request(server, system, token, query, last_event_id).await;
        let status = response.status();
        assert_eq!(status, 200, "{}", response.text().await.unwrap());
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|value| value.to_str().unwrap().to_string())
        };
        assert_eq!(header("content-type").as_deref(), Some("text/event-stream"));
        assert_eq!(header("cache-control").as_deref(), Some("no-cache"));
        Self {
            response,
            buffer: String::new(),
            heartbeats: 0,
            other_jobs: Vec::new(),
        }
    }

    async fn request(
        server: &TestServer,
        system: &str,
        token: &str,
        query: &str,
        last_event_id: Option<&str>,
    ) -> reqwest::Response {
        let mut request = server
            .http
            .get(format!(
                "{}/compute/{system}/jobs/events{query}",
                server.url
            ))
            .bearer_auth(token);
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        request.send().await.unwrap()
    }

    /// The next event; `None` when the server ended the stream. Panics after two minutes
    /// without one (heartbeats do not count).
    async fn next(&mut self) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(event) = self.parse(&block) {
                    return Some(event);
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .expect("no event within two minutes")
                .unwrap();
            match chunk {
                Some(bytes) => self.buffer.push_str(std::str::from_utf8(&bytes).unwrap()),
                None => return None,
            }
        }
    }

    fn parse(&mut self, block: &str) -> Option<SseEvent> {
        let mut fields: BTreeMap<&str, String> = BTreeMap::new();
        for line in block.lines() {
            if line.starts_with(':') {
                self.heartbeats += 1;
                continue;
            }
            let (name, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            let field = fields.entry(name).or_default();
            if name == "data" && !field.is_empty() {
                field.push('\n');
            }
            field.push_str(value);
        }
        let data = fields.remove("data")?;
        Some(SseEvent {
            event: fields.remove("event").unwrap_or_else(|| "message".into()),
            id: fields.remove("id").unwrap_or_default(),
            data: serde_json::from_str(&data).unwrap(),
        })
    }

    /// Reads until an event named `name`, returning it and the `job` events before it.
    async fn until(&mut self, name: &str) -> (SseEvent, Vec<SseEvent>) {
        let mut before = Vec::new();
        loop {
            let event = self.next().await.expect("the stream ended");
            if event.event == name {
                return (event, before);
            }
            before.push(event);
        }
    }

    /// Reads `job_id`'s events until one in a final state; returns them all.
    async fn life_of(&mut self, job_id: &str) -> Vec<SseEvent> {
        let mut life = Vec::new();
        loop {
            let event = self.next().await.expect("the stream ended");
            assert_eq!(event.event, "job", "{event:?}");
            if event.data["jobId"] != job_id {
                self.other_jobs
                    .push(event.data["jobId"].as_str().unwrap().to_string());
                continue;
            }
            let state = event.data["state"].as_str().unwrap().to_string();
            life.push(event);
            if is_final(&state) {
                return life;
            }
        }
    }
}

/// An event id's number in its poller run.
fn seq(id: &str) -> u64 {
    id.split('-').nth(1).unwrap().parse().unwrap()
}

fn is_final(state: &str) -> bool {
    ironcrest_scheduler::job::FINAL_STATES.contains(&state)
}

/// A server whose cluster is named `system`, its poller polling every second.
async fn server(
    system: &'static str,
    edit: impl FnOnce(&mut ironcrest_config::Config),
) -> TestServer {
    TestServer::start_with(|config| {
        config.clusters[0].name = system.into();
        config.job_events.poll_interval = 1;
        config.job_events.heartbeat = 1;
        edit(config);
    })
    .await
}

/// Submits a job into the reservation that begins `begin_in` seconds from now and runs
/// `body`; returns its id.
async fn submit(
    server: &TestServer,
    system: &str,
    token: &str,
    begin_in: u32,
    body: &str,
) -> String {
    let script = format!("#!/bin/bash\n#SBATCH --begin=now+{begin_in}\n{body}\n");
    let job = json!({
        "workingDirectory": HOME,
        "name": unique("it-events"),
        "script": script,
        "standardOutput": "/dev/null",
        "reservation": env("IRONCREST_DEV_SLURM_RESERVATION"),
    });
    let response = server
        .http
        .post(format!("{}/compute/{system}/jobs", server.url))
        .bearer_auth(token)
        .json(&json!({ "job": job }))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 201, "{body}");
    body["jobId"].as_str().unwrap().to_string()
}

/// `GET …/jobs/{id}{query}`: the status and the body.
async fn job_info(
    server: &TestServer,
    system: &str,
    token: &str,
    job_id: &str,
    query: &str,
) -> (u16, Value) {
    let response = server
        .get(
            &format!("/compute/{system}/jobs/{job_id}{query}"),
            Some(token),
        )
        .await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

fn states(events: &[SseEvent]) -> Vec<&str> {
    events
        .iter()
        .map(|event| event.data["state"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jobs_whole_life_streams_and_a_reconnect_resumes_where_it_left() {
    const SYSTEM: &str = "events-life";
    let server = server(SYSTEM, |_| {}).await;
    let token = user_token().await;
    let mut stream = EventStream::open(&server, SYSTEM, &token, "", None).await;
    let (ready, _) = stream.until("ready").await;
    assert!(!ready.id.is_empty(), "ready carries a position: {ready:?}");

    let job_id = submit(&server, SYSTEM, &token, 3, "sleep 2\nexit 0").await;
    let life = stream.life_of(&job_id).await;
    let seen = states(&life);
    assert_eq!(seen.first(), Some(&"PENDING"), "{life:#?}");
    assert!(seen.contains(&"RUNNING"), "{life:#?}");
    assert_eq!(seen.last(), Some(&"COMPLETED"), "{life:#?}");
    // Each event says what it changed from: a chain from nothing.
    assert_eq!(life[0].data["previousState"], Value::Null);
    for pair in life.windows(2) {
        assert_eq!(
            pair[1].data["previousState"], pair[0].data["state"],
            "{life:#?}"
        );
    }
    let end = &life.last().unwrap().data;
    assert_eq!(end["exitCode"], 0, "{end}");
    assert!(
        end["time"]["start"].is_i64() && end["time"]["end"].is_i64(),
        "{end}"
    );
    assert!(end["observedAt"].is_i64(), "{end}");
    assert!(stream.heartbeats > 0, "heartbeats every second");

    // A reconnect from the RUNNING event gets what followed it, then `ready`.
    let running = life
        .iter()
        .position(|e| e.data["state"] == "RUNNING")
        .unwrap();
    let query = format!("?jobs={job_id}");
    let mut resumed =
        EventStream::open(&server, SYSTEM, &token, &query, Some(&life[running].id)).await;
    let (_, replayed) = resumed.until("ready").await;
    let replayed_ids: Vec<&str> = replayed.iter().map(|e| e.id.as_str()).collect();
    let expected: Vec<&str> = life[running + 1..].iter().map(|e| e.id.as_str()).collect();
    assert_eq!(replayed_ids, expected);
    // From the last event: nothing to replay.
    let last = &life.last().unwrap().id;
    let mut caught_up = EventStream::open(&server, SYSTEM, &token, &query, Some(last)).await;
    let (_, replayed) = caught_up.until("ready").await;
    assert!(replayed.is_empty(), "{replayed:?}");

    // An id of another run (a restart, another replica) from long ago: list again.
    let elsewhere = format!("{}-7-0badc0de", 1_000 * (crate::harness::now() - 3600));
    let mut reset = EventStream::open(&server, SYSTEM, &token, "", Some(&elsewhere)).await;
    let first = reset.next().await.unwrap();
    assert_eq!(first.event, "reset", "{first:?}");
    assert!(
        first.data["message"]
            .as_str()
            .unwrap()
            .contains("list the jobs again")
    );

    let bad = EventStream::request(&server, SYSTEM, &token, "", Some("yesterday")).await;
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("Last-Event-ID"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filtered_stream_sees_only_its_jobs_and_long_polls_answer_on_change_or_time() {
    const SYSTEM: &str = "events-filter";
    let server = server(SYSTEM, |_| {}).await;
    let token = user_token().await;
    let mut everything = EventStream::open(&server, SYSTEM, &token, "", None).await;
    everything.until("ready").await;
    // The reservation runs one job at a time: `other` ends before `watched` starts.
    let other = submit(&server, SYSTEM, &token, 1, "exit 0").await;
    let watched = submit(&server, SYSTEM, &token, 4, "sleep 1\nexit 3").await;
    let mut filtered =
        EventStream::open(&server, SYSTEM, &token, &format!("?jobs={watched}"), None).await;
    let (ready, _) = filtered.until("ready").await;

    // The long poll: the default is any final state, answered with the job-info body.
    let (status, body) = job_info(&server, SYSTEM, &token, &watched, "?wait=60").await;
    assert_eq!(status, 200, "{body}");
    let job = &body["jobs"][0];
    assert_eq!(
        (
            job["status"]["state"].as_str(),
            job["status"]["exitCode"].as_i64()
        ),
        (Some("FAILED"), Some(3)),
        "{body}"
    );

    let life = filtered.life_of(&watched).await;
    assert_eq!(states(&life).last(), Some(&"FAILED"));
    assert_eq!(life.last().unwrap().data["exitCode"], 3);
    assert!(filtered.other_jobs.is_empty(), "{:?}", filtered.other_jobs);
    // The other job changed while the filtered stream was open (after its `ready`): the
    // unfiltered stream has those events, the filtered one does not.
    let others = everything.life_of(&other).await;
    assert!(
        others.iter().any(|event| seq(&event.id) > seq(&ready.id)),
        "{others:#?} {ready:?}"
    );

    // Until RUNNING, on a job that runs 30 s with up to 60 s to wait: answered on reaching
    // RUNNING (a timeout would have found it COMPLETED).
    let long = submit(&server, SYSTEM, &token, 1, "sleep 30").await;
    let (status, body) = job_info(&server, SYSTEM, &token, &long, "?wait=60&until=running").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["jobs"][0]["status"]["state"], "RUNNING", "{body}");
    let cancelled = server
        .http
        .delete(format!("{}/compute/{SYSTEM}/jobs/{long}", server.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), 204);

    // A job pending for a minute, 2 s to wait: the answer is its state when the time is up.
    let later = submit(&server, SYSTEM, &token, 60, "true").await;
    let (status, body) = job_info(&server, SYSTEM, &token, &later, "?wait=2&until=COMPLETED").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["jobs"][0]["status"]["state"], "PENDING", "{body}");
    server
        .http
        .delete(format!("{}/compute/{SYSTEM}/jobs/{later}", server.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();

    for (query, names) in [
        ("?wait=61", "60"),
        ("?wait=5&until=DONE", "COMPLETED"),
        ("?until=RUNNING", "wait"),
        ("?wait=soon", "wait"),
    ] {
        let (status, body) = job_info(&server, SYSTEM, &token, &watched, query).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains(names),
            "{query}: {body}"
        );
    }
    let bad = EventStream::request(&server, SYSTEM, &token, "?jobs=1,x", None).await;
    assert_eq!(bad.status(), 400);
}

/// From one read of `/metrics`: the `ironcrest_scheduler_calls_total` series of `system`,
/// summed over their outcomes, as (listings, accounting lookups, every call).
async fn scheduler_calls(server: &TestServer, system: &str) -> (f64, f64, f64) {
    let page = server.get("/metrics", None).await.text().await.unwrap();
    let sum = |call: Option<&str>| -> f64 {
        page.lines()
            .filter(|line| line.starts_with("ironcrest_scheduler_calls_total{"))
            .filter(|line| line.contains(&format!("cluster=\"{system}\"")))
            .filter(|line| call.is_none_or(|call| line.contains(&format!("call=\"{call}\""))))
            .map(|line| line.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap())
            .sum()
    };
    (
        sum(Some("cluster_jobs")),
        sum(Some("ended_jobs")),
        sum(None),
    )
}

async fn rounds(server: &TestServer, system: &str) -> f64 {
    let mut total = 0.0;
    for outcome in ["changed", "unchanged", "failed"] {
        total += server
            .metric(
                "ironcrest_job_event_polls_total",
                &[("cluster", system), ("outcome", outcome)],
            )
            .await;
    }
    total
}

/// Scheduler calls over `n` poller rounds, counted from just after one round to just after
/// the `n`-th next (a round is counted once its calls are done, and the poller then sleeps a
/// second: the counts are read while it sleeps). Returns (rounds, listings, accounting
/// lookups, every call).
async fn over_rounds(server: &TestServer, system: &str, n: f64) -> (f64, f64, f64, f64) {
    async fn after_a_round(server: &TestServer, system: &str, from: f64) -> f64 {
        for _ in 0..600 {
            let now = rounds(server, system).await;
            if now > from {
                return now;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the poller stopped");
    }
    let first = after_a_round(server, system, rounds(server, system).await).await;
    let before = scheduler_calls(server, system).await;
    let mut last = first;
    while last < first + n {
        last = after_a_round(server, system, last).await;
    }
    let after = scheduler_calls(server, system).await;
    (
        last - first,
        after.0 - before.0,
        after.1 - before.1,
        after.2 - before.2,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_is_asked_the_same_with_one_watcher_as_with_fifty() {
    const SYSTEM: &str = "events-count";
    let server = server(SYSTEM, |config| {
        config.job_events.max_streams_per_user = 64;
        // No health probes in the counts: one run at start, then none for the test's length.
        config.clusters[0].probing.interval = 3600;
    })
    .await;
    let token = user_token().await;
    let mut one = EventStream::open(&server, SYSTEM, &token, "", None).await;
    one.until("ready").await;
    let (rounds_one, listings_one, accounting_one, calls_one) =
        over_rounds(&server, SYSTEM, 3.0).await;

    let mut many = Vec::new();
    for _ in 0..49 {
        let mut stream = EventStream::open(&server, SYSTEM, &token, "", None).await;
        stream.until("ready").await;
        many.push(stream);
    }
    let open = server
        .metric(
            "ironcrest_job_event_streams",
            &[("cluster", SYSTEM), ("kind", "stream")],
        )
        .await;
    assert_eq!(open, 50.0);
    let (rounds_fifty, listings_fifty, accounting_fifty, calls_fifty) =
        over_rounds(&server, SYSTEM, 3.0).await;

    // One listing a round, whoever watches; nothing else but the accounting lookups of
    // jobs that ended (other tests' jobs end meanwhile): no call per watcher.
    assert_eq!(listings_one, rounds_one);
    assert_eq!(listings_fifty, rounds_fifty);
    assert_eq!(calls_one, listings_one + accounting_one);
    assert_eq!(calls_fifty, listings_fifty + accounting_fifty);
    drop((one, many));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_are_limited_and_the_poller_runs_only_while_watched() {
    const SYSTEM: &str = "events-limits";
    let server = server(SYSTEM, |config| {
        config.job_events.max_streams_per_user = 2;
        config.job_events.linger = 1;
    })
    .await;
    let token = user_token().await;
    let running = || server.metric("ironcrest_job_event_poller_running", &[("cluster", SYSTEM)]);
    let mut first = EventStream::open(&server, SYSTEM, &token, "", None).await;
    first.until("ready").await;
    assert_eq!(running().await, 1.0);
    let mut second = EventStream::open(&server, SYSTEM, &token, "", None).await;
    second.until("ready").await;
    let third = EventStream::request(&server, SYSTEM, &token, "", None).await;
    assert_eq!(third.status(), 429);
    let body: Value = third.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("max_streams_per_user"),
        "{body}"
    );
    // A long poll counts too (once its job, pending for a minute, is found).
    let pending = submit(&server, SYSTEM, &token, 60, "true").await;
    let (status, body) = job_info(&server, SYSTEM, &token, &pending, "?wait=5").await;
    assert_eq!(status, 429, "{body}");
    let cancelled = server
        .http
        .delete(format!("{}/compute/{SYSTEM}/jobs/{pending}", server.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), 204);

    // A closed stream frees its place once the server notices, at the latest when its next
    // heartbeat finds the connection gone.
    drop(second);
    let mut again = None;
    for _ in 0..100 {
        let response = EventStream::request(&server, SYSTEM, &token, "", None).await;
        if response.status() == 200 {
            again = Some(response);
            break;
        }
        assert_eq!(response.status(), 429);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let again = again.expect("the closed stream's place was never freed");
    drop((first, again));
    // Nobody watches: the poller stops after `linger` (1 s) and a round.
    for _ in 0..100 {
        if running().await == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        running().await,
        0.0,
        "the poller still runs without watchers"
    );

    // A stream ends when the server stops, instead of holding the shutdown.
    let mut last = EventStream::open(&server, SYSTEM, &token, "", None).await;
    last.until("ready").await;
    drop(server);
    assert!(last.next().await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_slurmrestd_the_stream_tells_a_jobs_end_with_its_exit_code() {
    const SYSTEM: &str = "events-rest";
    let url = env("IRONCREST_DEV_SLURMRESTD_URL");
    let server = server(SYSTEM, |config| {
        let scheduler = &mut config.clusters[0].scheduler;
        scheduler.connection_mode = ironcrest_config::ConnectionMode::Rest;
        scheduler.api_url = Some(url);
        scheduler.api_version = Some("0.0.38".into());
    })
    .await;
    let token = user_token().await;
    let mut stream = EventStream::open(&server, SYSTEM, &token, "", None).await;
    stream.until("ready").await;
    // slurmrestd takes no `--begin` directive: the job may be seen first running, or ended.
    let job = json!({
        "workingDirectory": HOME,
        "name": unique("it-events-rest"),
        "script": "#!/bin/bash\nsleep 2\nexit 3\n",
        "standardOutput": "/dev/null",
        "reservation": env("IRONCREST_DEV_SLURM_RESERVATION"),
    });
    let response = server
        .http
        .post(format!("{}/compute/{SYSTEM}/jobs", server.url))
        .bearer_auth(&token)
        .json(&json!({ "job": job }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let job_id = response.json::<Value>().await.unwrap()["jobId"]
        .as_str()
        .unwrap()
        .to_string();
    let life = stream.life_of(&job_id).await;
    let end = &life.last().unwrap().data;
    assert_eq!(
        (end["state"].as_str(), end["exitCode"].as_i64()),
        (Some("FAILED"), Some(3)),
        "{life:#?}"
    );
    let failed = server
        .metric(
            "ironcrest_job_event_polls_total",
            &[("cluster", SYSTEM), ("outcome", "failed")],
        )
        .await;
    assert_eq!(failed, 0.0, "a round failed through slurmrestd");
}
