//! Compute (jobs) against the real Slurm 22.05 of the dev environment, over SSH as
//! fireuser: submit, wait, list with filters, get, metadata, attach, cancel, and errors.
//! The test process is root on the same machine, so it reads the jobs' files directly.
//! Only one core is free outside the reservation `fire_resv`, so jobs that must run while
//! the test watches are submitted into the reservation.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{SYSTEM, TestServer, env, user_token};

/// How the server reaches Slurm: the flows' expectations differ where `rest` refuses what
/// only the CLI can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Ssh,
    Hybrid,
    Rest,
}

pub const HOME: &str = "/home/fireuser";
pub const PWNED: &str = "/tmp/pwned";

/// A name no other test run uses.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

fn jobs_url(server: &TestServer) -> String {
    format!("{}/compute/{SYSTEM}/jobs", server.url)
}

pub async fn submit(server: &TestServer, token: &str, job: Value) -> reqwest::Response {
    server
        .http
        .post(jobs_url(server))
        .bearer_auth(token)
        .json(&json!({ "job": job }))
        .send()
        .await
        .unwrap()
}

pub async fn submit_ok(server: &TestServer, token: &str, job: Value) -> String {
    let response = submit(server, token, job).await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 201, "{body}");
    body["jobId"].as_str().unwrap().to_string()
}

/// The job's record, once it appears.
pub async fn get_job(server: &TestServer, token: &str, job_id: &str) -> Value {
    for _ in 0..100 {
        let response = server
            .get(&format!("/compute/{SYSTEM}/jobs/{job_id}"), Some(token))
            .await;
        if response.status() == 200 {
            let body: Value = response.json().await.unwrap();
            return body["jobs"][0].clone();
        }
        assert_eq!(response.status(), 404, "{}", response.text().await.unwrap());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("job {job_id} never appeared");
}

/// Polls until the job's state satisfies `done` (bounded: jobs may queue behind others).
pub async fn wait_for(
    server: &TestServer,
    token: &str,
    job_id: &str,
    done: impl Fn(&str) -> bool,
) -> Value {
    for _ in 0..600 {
        let job = get_job(server, token, job_id).await;
        if done(job["status"]["state"].as_str().unwrap()) {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    panic!("job {job_id} never reached the expected state");
}

pub fn finished(state: &str) -> bool {
    [
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "TIMEOUT",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
    ]
    .iter()
    .any(|s| state.starts_with(s))
}

/// Waits for a file the job writes (NFS-free, but the job may still be flushing).
pub async fn read_when_present(path: &Path) -> Vec<u8> {
    for _ in 0..100 {
        if let Ok(bytes) = std::fs::read(path) {
            return bytes;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{} never appeared", path.display());
}

pub async fn delete(server: &TestServer, token: &str, job_id: &str) -> reqwest::Response {
    server
        .http
        .delete(format!("{}/{job_id}", jobs_url(server)))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

pub async fn attach(
    server: &TestServer,
    token: &str,
    job_id: &str,
    command: &str,
) -> reqwest::Response {
    server
        .http
        .put(format!("{}/{job_id}/attach", jobs_url(server)))
        .bearer_auth(token)
        .json(&json!({ "command": command }))
        .send()
        .await
        .unwrap()
}

pub async fn message(response: reqwest::Response) -> String {
    let body: Value = response.json().await.unwrap();
    body["message"].as_str().unwrap_or_default().to_string()
}

pub async fn inline_job_flow(server: &TestServer) {
    let token = user_token().await;
    let out = PathBuf::from(HOME).join(unique("ironcrest-env"));
    let hostile = "$(touch /tmp/pwned) `touch /tmp/pwned` 'single' \"double\" a,b=c\nsecond line";
    let name = "n$(touch /tmp/pwned)'`x;|&";
    let job_id = submit_ok(
        server,
        &token,
        json!({
            "working_directory": HOME,
            "script": format!("#!/bin/bash\nprintf '%s' \"$HOSTILE\" > '{}'\n", out.display()),
            "env": {"HOSTILE": hostile},
            "account": "project1",
            "name": name,
            "standardOutput": "/dev/null",
        }),
    )
    .await;
    let mut job = wait_for(server, &token, &job_id, finished).await;
    // The controller reports the final state at once; the exit code comes with the
    // accounting record a little later, and is null until then.
    for _ in 0..150 {
        if !job["status"]["exitCode"].is_null() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        job = get_job(server, &token, &job_id).await;
    }
    assert_eq!(job["status"]["state"], "COMPLETED", "{job}");
    assert_eq!(job["status"]["exitCode"], 0);
    assert_eq!(job["account"], "project1");
    assert_eq!(job["name"], name);
    assert_eq!(job["user"], "fireuser");
    assert_eq!(job["workingDirectory"], HOME);
    assert!(job["time"]["end"].as_i64().is_some());
    assert_eq!(read_when_present(&out).await, hostile.as_bytes());
    assert!(!Path::new(PWNED).exists());
    let _ = std::fs::remove_file(&out);

    // The list form of env, and the snake_case aliases, are accepted too.
    let out = PathBuf::from(HOME).join(unique("ironcrest-envlist"));
    let job_id = submit_ok(
        server,
        &token,
        json!({
            "current_working_directory": HOME,
            "script": "#!/bin/bash\necho \"$A-$B\"\n",
            "environment": ["A=1", "B=x=y"],
            "standard_output": out.to_str().unwrap(),
        }),
    )
    .await;
    wait_for(server, &token, &job_id, finished).await;
    assert_eq!(read_when_present(&out).await, b"1-x=y\n");
    let _ = std::fs::remove_file(&out);
}

pub async fn script_path_job_flow(server: &TestServer) {
    let token = user_token().await;
    let script_path = PathBuf::from(HOME).join(unique("ironcrest-script"));
    let script = "#!/bin/bash\nsleep 120\n";
    std::fs::write(&script_path, script).unwrap();
    std::fs::set_permissions(&script_path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = format!("{}.out", script_path.display());
    let job_id = submit_ok(
        server,
        &token,
        json!({
            "workingDirectory": HOME,
            "scriptPath": script_path.to_str().unwrap(),
            "standardOutput": out,
            "reservation": env("IRONCREST_DEV_SLURM_RESERVATION"),
        }),
    )
    .await;

    let metadata: Value = server
        .get_json(&format!("/compute/{SYSTEM}/jobs/{job_id}/metadata"), &token)
        .await;
    let metadata = &metadata["jobs"][0];
    assert_eq!(metadata["jobId"], job_id.as_str());
    assert_eq!(metadata["script"], script);
    assert_eq!(metadata["standardOutput"], out.as_str());
    assert_eq!(metadata["standardInput"], "/dev/null");

    wait_for(server, &token, &job_id, |s| s == "RUNNING").await;
    let marker = PathBuf::from(HOME).join(unique("ironcrest-attached"));
    let response = attach(
        server,
        &token,
        &job_id,
        &format!("echo \"in $SLURM_JOB_ID\" > '{}'", marker.display()),
    )
    .await;
    assert_eq!(response.status(), 204, "{}", response.text().await.unwrap());
    assert_eq!(
        read_when_present(&marker).await,
        format!("in {job_id}\n").as_bytes()
    );
    let _ = std::fs::remove_file(&marker);

    let response = delete(server, &token, &job_id).await;
    assert_eq!(response.status(), 204, "{}", response.text().await.unwrap());
    let job = wait_for(server, &token, &job_id, finished).await;
    assert!(
        job["status"]["state"]
            .as_str()
            .unwrap()
            .starts_with("CANCELLED"),
        "{job}"
    );
    // Slurm's scancel would exit 0 again; Ironcrest says the job is over.
    let response = delete(server, &token, &job_id).await;
    assert_eq!(response.status(), 409);
    assert!(message(response).await.contains("is not active"));
    let response = attach(server, &token, &job_id, "true").await;
    assert_eq!(response.status(), 409);
    let _ = std::fs::remove_file(&script_path);
    let _ = std::fs::remove_file(&out);
}

pub async fn listings_flow(server: &TestServer) {
    let token = user_token().await;
    let name_a = unique("ironcrest-list-a");
    let name_b = unique("ironcrest-list-b");
    let job_a = submit_ok(
        server,
        &token,
        json!({"workingDirectory": HOME, "script": "#!/bin/bash\ntrue\n", "name": name_a, "account": "project1", "standardOutput": "/dev/null"}),
    )
    .await;
    let job_b = submit_ok(
        server,
        &token,
        json!({"workingDirectory": HOME, "script": "#!/bin/bash\ntrue\n", "name": name_b, "standardOutput": "/dev/null"}),
    )
    .await;
    // Listed while pending or running, and after finishing.
    let ids = |body: &Value| -> Vec<String> {
        body["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["jobId"].as_str().unwrap().to_string())
            .collect()
    };
    let all = server
        .get_json(&format!("/compute/{SYSTEM}/jobs"), &token)
        .await;
    assert!(
        ids(&all).contains(&job_a) && ids(&all).contains(&job_b),
        "{all}"
    );
    wait_for(server, &token, &job_a, finished).await;
    wait_for(server, &token, &job_b, finished).await;

    let cases: Vec<(String, bool, bool)> = vec![
        (String::new(), true, true),
        // httpx sends None as an empty value: no filter.
        ("?allusers=false&account=&name=".into(), true, true),
        (format!("?name={name_a}"), true, false),
        ("?account=project1".into(), true, false),
        ("?account=staff".into(), false, true),
        ("?allusers=true".into(), true, true),
        ("?time_window=1h".into(), true, true),
        ("?time_window=7d".into(), true, true),
    ];
    for (query, has_a, has_b) in cases {
        let body = server
            .get_json(&format!("/compute/{SYSTEM}/jobs{query}"), &token)
            .await;
        let listed = ids(&body);
        assert_eq!(listed.contains(&job_a), has_a, "{query}: {body}");
        assert_eq!(listed.contains(&job_b), has_b, "{query}: {body}");
        let job = body["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["jobId"] == job_a.as_str());
        if let Some(job) = job {
            assert_eq!(job["status"]["state"], "COMPLETED");
            assert!(job["tasks"].as_array().is_some());
        }
    }
    let response = server
        .get(
            &format!("/compute/{SYSTEM}/jobs?time_window=2h"),
            Some(&token),
        )
        .await;
    assert_eq!(response.status(), 400);
}

pub async fn errors_flow(server: &TestServer, mode: Mode) {
    let token = user_token().await;

    let response = submit(
        server,
        &token,
        json!({"workingDirectory": HOME, "script": "#!/bin/bash\ntrue\n", "partition": "nosuchpartition"}),
    )
    .await;
    assert_eq!(response.status(), 400);
    assert!(
        message(response)
            .await
            .contains("Invalid partition name specified")
    );

    let response = submit(
        server,
        &token,
        json!({"workingDirectory": HOME, "scriptPath": "/home/fireuser/no-such-script.sh"}),
    )
    .await;
    if mode == Mode::Rest {
        assert_eq!(response.status(), 501);
    } else {
        assert_eq!(response.status(), 400);
        assert!(message(response).await.contains("Unable to open file"));
    }

    for job in [
        json!({"workingDirectory": HOME, "script": "x", "name": "quote\"d"}),
        json!({"workingDirectory": HOME, "script": "x", "name": "new\nline"}),
        json!({"script": "#!/bin/bash\ntrue\n"}),
        json!({"workingDirectory": HOME}),
        json!({"workingDirectory": HOME, "script": "x", "env": {"1BAD": "v"}}),
        json!({"workingDirectory": HOME, "script": "x", "env": ["NOEQUALS"]}),
    ] {
        let response = submit(server, &token, job.clone()).await;
        assert_eq!(response.status(), 400, "{job}");
    }

    for path in ["1.batch", "1;ls", "a%20b"] {
        let response = server
            .get(&format!("/compute/{SYSTEM}/jobs/{path}"), Some(&token))
            .await;
        assert_eq!(response.status(), 400, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["errorType"], "validation");
    }

    let unknown = "999999999";
    let response = server
        .get(&format!("/compute/{SYSTEM}/jobs/{unknown}"), Some(&token))
        .await;
    assert_eq!(response.status(), 404);
    assert_eq!(message(response).await, "Job not found.");
    let response = server
        .get(
            &format!("/compute/{SYSTEM}/jobs/{unknown}/metadata"),
            Some(&token),
        )
        .await;
    // Every mode looks the job up (rest mode in slurmrestd's record) and finds none.
    assert_eq!(response.status(), 404);
    assert_eq!(message(response).await, "Job not found.");
    let response = delete(server, &token, unknown).await;
    assert_eq!(response.status(), 404);
    assert_eq!(message(response).await, "Job not found.");
    let response = attach(server, &token, unknown, "true").await;
    let expected = if mode == Mode::Rest { 501 } else { 404 };
    assert_eq!(response.status(), expected);

    let response = server.get("/compute/nosuchsystem/jobs", Some(&token)).await;
    assert_eq!(response.status(), 404);
    assert!(!Path::new(PWNED).exists());
}

#[tokio::test]
async fn an_inline_job_gets_hostile_values_literally_and_completes() {
    inline_job_flow(&TestServer::start().await).await;
}

#[tokio::test]
async fn a_script_path_job_can_be_inspected_attached_to_and_cancelled() {
    script_path_job_flow(&TestServer::start().await).await;
}

#[tokio::test]
async fn listings_apply_each_filter() {
    listings_flow(&TestServer::start().await).await;
}

#[tokio::test]
async fn errors_have_firecrest_statuses_and_slurms_messages() {
    errors_flow(&TestServer::start().await, Mode::Ssh).await;
}
