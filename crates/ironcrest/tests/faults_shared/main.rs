//! Outages of the dev environment's slurmctld, slurmdbd and MariaDB, which exist once: these
//! tests stop the shared ones (`scripts/dev-env down`) and always start them again
//! (`scripts/dev-env start`, waiting until they answer), one outage at a time. Not run by a
//! plain `cargo test` (the target has `test = false`): `scripts/test` runs it last, after
//! every other test, as `cargo test -p ironcrest --test faults_shared`.

// Shared with the integration and fault tests; not every helper is used here.
#[allow(dead_code)]
#[path = "../integration/harness.rs"]
mod harness;
#[allow(dead_code)]
#[path = "../faults/load.rs"]
mod load;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::harness::{TestServer, user_token};
use crate::load::{Answer, Fixture, Load, Op, Phase, assert_no_job_twice, verify};

/// Squeue waits up to 18 s for a controller that is gone; the command timeout (10 s) and
/// slack bound every request.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

/// How the API names the accounting database when it cannot be reached.
const ACCOUNTING: &str = "Slurm's accounting database (slurmdbd) is unavailable: ";

/// One shared outage at a time, whatever the test threads.
static OUTAGE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn dev_env(args: &[&str]) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/dev-env");
    let output = Command::new(script).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "scripts/dev-env {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Shared services stopped; started again when dropped, also when the test fails.
struct Stopped(&'static [&'static str]);

impl Stopped {
    fn new(services: &'static [&'static str]) -> Self {
        let stopped = Self(services);
        let mut args = vec!["down"];
        args.extend(services);
        dev_env(&args);
        stopped
    }

    /// Starts them again now, waiting until they answer.
    fn start(self) {
        drop(self);
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        let mut args = vec!["start"];
        args.extend(self.0);
        if std::thread::panicking() {
            // Start them whatever happened, without hiding the test's own failure.
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/dev-env");
            let _ = Command::new(script).args(&args).status();
        } else {
            dev_env(&args);
        }
    }
}

async fn health_after(
    server: &TestServer,
    token: &str,
    service: &str,
    since: DateTime<Utc>,
) -> Value {
    for _ in 0..300 {
        let systems = server.get_json("/status/systems", token).await;
        if let Some(check) = systems["systems"][0]["servicesHealth"]
            .as_array()
            .and_then(|checks| checks.iter().find(|c| c["serviceType"] == service))
            && let Some(checked) = check["lastChecked"].as_str()
            && DateTime::parse_from_rfc3339(checked).unwrap() > since
        {
            return check.clone();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("no {service} health check ran in the 60 s after {since}");
}

async fn start_server(system: &str) -> (TestServer, String, Arc<Fixture>) {
    let server = TestServer::start_with(|config| config.clusters[0].name = system.into()).await;
    let token = user_token().await;
    health_after(&server, &token, "scheduler", Utc::now()).await;
    (server, token, Arc::new(Fixture::new(system)))
}

fn scheduler_unhealthy(answer: &Answer, system: &str) -> bool {
    answer.is(
        503,
        &format!("The scheduler service for the requested system ({system}) is unhealthy."),
    )
}

/// slurmctld stopped: the job routes time out as configured or are refused as unhealthy
/// once the health checker saw it, the file routes work on, and jobs work again after.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slurmctld_stopped_then_started() {
    const SYSTEM: &str = "faults-slurmctld";
    let _alone = OUTAGE.lock().await;
    let (server, token, fixture) = start_server(SYSTEM).await;
    let load = Load::start(
        &server.url,
        SYSTEM,
        &token,
        fixture,
        &Op::ALL,
        CLIENT_TIMEOUT,
    );
    load.rounds(2).await;

    load.enter(Phase::Outage);
    let stopped = Stopped::new(&["slurmctld"]);
    let broken = Utc::now();
    let check = health_after(&server, &token, "scheduler", broken).await;
    assert_eq!(check["healthy"], false, "{check}");
    let labels = [("cluster", SYSTEM), ("service", "scheduler"), ("path", "")];
    assert_eq!(server.metric("ironcrest_health_up", &labels).await, 0.0);
    load.rounds(2).await;

    stopped.start();
    let check = health_after(&server, &token, "scheduler", Utc::now()).await;
    assert_eq!(check["healthy"], true, "{check}");
    load.recover().await;
    load.rounds(2).await;
    let answers = load.finish().await;
    verify(&answers, |answer| {
        matches!(answer.op, Op::Jobs | Op::Submit | Op::StagedDownload)
            && (scheduler_unhealthy(answer, SYSTEM)
                || answer.is(408, "Command execution timeout limit exceeded.")
                || answer.is(503, "Slurm is unavailable: ")
                || answer.is(503, "Unexpected Slurm command response."))
    });
    assert!(
        answers
            .iter()
            .any(|a| a.started == Phase::Outage && scheduler_unhealthy(a, SYSTEM)),
        "no job request was refused as unhealthy"
    );
    assert_no_job_twice(&answers);
}

/// slurmdbd, then MariaDB under it, stopped: job listings are refused naming the accounting
/// database (a listing without it would lack the finished jobs), a job the controller
/// still holds is still found, submissions work; all of it again once accounting is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slurmdbd_or_its_database_stopped_then_started() {
    const SYSTEM: &str = "faults-slurmdbd";
    let _alone = OUTAGE.lock().await;
    let (server, token, fixture) = start_server(SYSTEM).await;
    let job_id = submitted_job(&server, &token, &fixture).await;
    for services in [&["slurmdbd"][..], &["mariadb"][..]] {
        let load = Load::start(
            &server.url,
            SYSTEM,
            &token,
            fixture.clone(),
            &Op::ALL,
            CLIENT_TIMEOUT,
        );
        load.rounds(2).await;

        load.enter(Phase::Outage);
        let stopped = Stopped::new(services);
        load.rounds(3).await;
        // The controller's record of a job answers for it meanwhile.
        let job = server
            .get_json(&format!("/compute/{SYSTEM}/jobs/{job_id}"), &token)
            .await;
        assert_eq!(job["jobs"][0]["jobId"], job_id.as_str(), "{job}");
        // A keyed submission cannot look for its earlier job: refused, not submitted blind.
        let keyed = server
            .http
            .post(format!("{}/compute/{SYSTEM}/jobs", server.url))
            .bearer_auth(&token)
            .header("Idempotency-Key", load::unique("faults-slurmdbd-key"))
            .json(&serde_json::json!({"job": {"name": "faults-slurmdbd-keyed",
                "workingDirectory": "/home/fireuser", "script": "#!/bin/bash\ntrue\n"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(keyed.status(), 503);
        let body: Value = keyed.json().await.unwrap();
        assert!(
            body["message"].as_str().unwrap().starts_with(ACCOUNTING),
            "{body}"
        );
        // Accounting is no part of the health checks: the scheduler is healthy.
        let check = health_after(&server, &token, "scheduler", Utc::now()).await;
        assert_eq!(check["healthy"], true, "{check}");

        stopped.start();
        load.recover().await;
        load.rounds(2).await;
        let answers = load.finish().await;
        verify(&answers, |answer| {
            matches!(answer.op, Op::Jobs | Op::Userinfo) && answer.is(503, ACCOUNTING)
        });
        for op in [Op::Jobs, Op::Submit] {
            let during: Vec<&Answer> = answers
                .iter()
                .filter(|a| a.op == op && a.started == Phase::Outage && a.ended == Phase::Outage)
                .collect();
            assert!(
                !during.is_empty(),
                "{services:?}: no {op:?} during the outage"
            );
            let refused = during.iter().any(|a| a.is(503, ACCOUNTING));
            // Listings are refused; submissions go through.
            assert_eq!(refused, op == Op::Jobs, "{services:?} {op:?}: {during:?}");
        }
        assert_no_job_twice(&answers);
    }
    let cancelled = server
        .http
        .delete(format!("{}/compute/{SYSTEM}/jobs/{job_id}", server.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), 204);
}

/// A job of fireuser's the controller holds: submitted and left pending for the test.
async fn submitted_job(server: &TestServer, token: &str, fixture: &Fixture) -> String {
    let response = server
        .http
        .post(format!("{}/compute/faults-slurmdbd/jobs", server.url))
        .bearer_auth(token)
        .json(&serde_json::json!({"job": {
            "name": "faults-slurmdbd-held",
            "workingDirectory": fixture.dir,
            "script": "#!/bin/bash\n#SBATCH --begin=now+600\ntrue\n",
        }}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    body["jobId"].as_str().unwrap().to_string()
}
