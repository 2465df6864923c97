//! `Idempotency-Key` against the real Slurm of the dev environment: concurrent duplicates
//! make one job, a retry after a restart of Ironcrest (a new server on the same
//! configuration) finds the job the first one submitted through its comment, in `ssh` and
//! `rest` mode, and a key reused for another request is refused. The test process is root
//! on the cluster's machine, so it counts jobs with `squeue` itself.

use std::path::PathBuf;

use futures::future::join_all;
use ironcrest_config::ConnectionMode;
use serde_json::{Value, json};

use crate::compute::{HOME, unique};
use crate::harness::{SYSTEM, TestServer, env, user_token};

const KEY: &str = "Idempotency-Key";

async fn submit(server: &TestServer, token: &str, key: &str, job: &Value) -> (u16, Value) {
    let response = server
        .http
        .post(format!("{}/compute/{SYSTEM}/jobs", server.url))
        .bearer_auth(token)
        .header(KEY, key)
        .json(&json!({ "job": job }))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// A job that ends at once, named `name` so the test can count its copies.
fn job(name: &str) -> Value {
    json!({"name": name, "workingDirectory": HOME, "script": "#!/bin/bash\ntrue\n"})
}

/// The ids of every job named `name` the controller holds (pending, running or just ended).
fn jobs_named(name: &str) -> Vec<String> {
    let output = std::process::Command::new("squeue")
        .args(["--states=all", "--noheader", "--format=%i", "--name", name])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout)
        .unwrap()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn concurrent_identical_submits_with_one_key_make_one_job() {
    let server = TestServer::start().await;
    let token = user_token().await;
    let name = unique("idem-concurrent");
    let key = unique("key");
    let job = job(&name);
    let answers = join_all((0..100).map(|_| submit(&server, &token, &key, &job))).await;
    let (status, first) = &answers[0];
    assert_eq!(*status, 201, "{first}");
    for answer in &answers {
        assert_eq!(answer, &answers[0], "every duplicate gets the first answer");
    }
    let job_id = first["jobId"].as_str().unwrap();
    assert_eq!(jobs_named(&name), [job_id], "exactly one job");
}

#[tokio::test]
async fn a_retry_after_a_restart_gets_the_same_job() {
    retry_after_restart(None).await;
}

#[tokio::test]
async fn a_retry_after_a_restart_gets_the_same_job_through_slurmrestd() {
    retry_after_restart(Some(ConnectionMode::Rest)).await;
}

/// Submits with a key, stops the server, and retries on a new one (with `mode`, else
/// `ssh`): the same answer, no second job; the same key with another body is a 422.
async fn retry_after_restart(mode: Option<ConnectionMode>) {
    let start = || {
        TestServer::start_with(|config| {
            if let Some(mode) = mode {
                let scheduler = &mut config.clusters[0].scheduler;
                scheduler.connection_mode = mode;
                scheduler.api_url = Some(env("IRONCREST_DEV_SLURMRESTD_URL"));
                scheduler.api_version = Some("0.0.38".into());
            }
        })
    };
    let token = user_token().await;
    let name = unique("idem-restart");
    let key = unique("key");
    let first = {
        let server = start().await;
        let (status, first) = submit(&server, &token, &key, &job(&name)).await;
        assert_eq!(status, 201, "{first}");
        first
    };
    let server = start().await;
    let (status, retried) = submit(&server, &token, &key, &job(&name)).await;
    assert_eq!(status, 201, "{retried}");
    assert_eq!(retried, first);
    assert_eq!(jobs_named(&name), [first["jobId"].as_str().unwrap()]);

    // Another request under the same key, on yet another server (from the scheduler's
    // record) and on this one (from memory).
    let other = job(&format!("{name}-other"));
    for server in [&start().await, &server] {
        let (status, refused) = submit(server, &token, &key, &other).await;
        assert_eq!(status, 422, "{refused}");
        assert!(
            refused["message"].as_str().unwrap().contains(KEY),
            "{refused}"
        );
    }
    assert!(jobs_named(&format!("{name}-other")).is_empty());
}

#[tokio::test]
async fn keys_that_are_not_printable_ascii_of_1_to_255_characters_are_400() {
    let server = TestServer::start().await;
    let token = user_token().await;
    let name = unique("idem-bad-key");
    for key in [String::new(), "k".repeat(256), "tab\there".into()] {
        let (status, refused) = submit(&server, &token, &key, &job(&name)).await;
        assert_eq!(status, 400, "{key:?}: {refused}");
        assert_eq!(refused["data"]["fields"][0]["name"], KEY, "{refused}");
    }
    assert!(jobs_named(&name).is_empty());
}

/// A directory of fireuser's, removed on drop.
struct WorkDir(PathBuf);

impl WorkDir {
    fn new() -> Self {
        let path = PathBuf::from(format!("{HOME}/{}", unique("it-idem")));
        std::fs::create_dir(&path).unwrap();
        std::fs::write(path.join("a.txt"), b"moved once").unwrap();
        let status = std::process::Command::new("chown")
            .args(["-R", "fireuser:fireuser"])
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success());
        Self(path)
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn a_transfer_mv_retried_is_the_same_transfer_job() {
    let dir = WorkDir::new();
    let token = user_token().await;
    let key = unique("key");
    let body = json!({
        "sourcePath": format!("{}/a.txt", dir.0.display()),
        "targetPath": format!("{}/b.txt", dir.0.display()),
    });
    let mv = |server: &TestServer| {
        server
            .http
            .post(format!("{}/filesystem/{SYSTEM}/transfer/mv", server.url))
            .bearer_auth(&token)
            .header(KEY, &key)
            .json(&body)
            .send()
    };
    let first = {
        let server = TestServer::start().await;
        let response = mv(&server).await.unwrap();
        assert_eq!(response.status(), 201);
        response.json::<Value>().await.unwrap()
    };
    let server = TestServer::start().await;
    let response = mv(&server).await.unwrap();
    assert_eq!(response.status(), 201);
    let retried: Value = response.json().await.unwrap();
    assert_eq!(retried, first, "the same job, working directory and logs");
    let job_id = first["transferJob"]["jobId"].as_str().unwrap();
    let log = first["transferJob"]["logs"]["outputLog"].as_str().unwrap();
    assert_eq!(jobs_writing(log), [job_id], "one job writes that log");
}

/// The ids of the jobs the controller holds whose standard output is `log`.
fn jobs_writing(log: &str) -> Vec<String> {
    let output = std::process::Command::new("squeue")
        .args(["--states=all", "--noheader", "--Format=JobID:|,StdOut:"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| line.split_once('|'))
        .filter(|(_, out)| out.trim() == log)
        .map(|(id, _)| id.trim().to_string())
        .collect()
}

#[tokio::test]
async fn a_staged_download_retried_after_a_restart_is_the_same_job_and_object() {
    let dir = WorkDir::new();
    let token = user_token().await;
    let key = unique("key");
    let body = json!({
        "path": format!("{}/a.txt", dir.0.display()),
        "transferDirectives": {"transferMethod": "s3"},
    });
    let download = |server: &TestServer| {
        server
            .http
            .post(format!(
                "{}/filesystem/{SYSTEM}/transfer/download",
                server.url
            ))
            .bearer_auth(&token)
            .header(KEY, &key)
            .json(&body)
            .send()
    };
    let first = {
        let server = TestServer::start().await;
        let response = download(&server).await.unwrap();
        assert_eq!(response.status(), 201);
        response.json::<Value>().await.unwrap()
    };
    let server = TestServer::start().await;
    let response = download(&server).await.unwrap();
    assert_eq!(response.status(), 201);
    let retried: Value = response.json().await.unwrap();
    assert_eq!(retried["transferJob"], first["transferJob"]);
    // Signed again, for the same object.
    let object = |answer: &Value| {
        let url = answer["transferDirectives"]["downloadUrl"]
            .as_str()
            .unwrap();
        url.split_once('?').unwrap().0.to_string()
    };
    assert_eq!(object(&retried), object(&first));
    let log = first["transferJob"]["logs"]["outputLog"].as_str().unwrap();
    assert_eq!(jobs_writing(log).len(), 1, "one job writes that log");
}

#[tokio::test]
async fn a_staged_upload_retried_after_a_restart_signs_the_same_upload_again() {
    let dir = WorkDir::new();
    let token = user_token().await;
    let key = unique("key");
    let body = json!({
        "path": format!("{}/up.bin", dir.0.display()),
        "transferDirectives": {"transferMethod": "s3", "fileSize": 11 * 1024 * 1024},
    });
    let upload = |server: &TestServer| {
        server
            .http
            .post(format!(
                "{}/filesystem/{SYSTEM}/transfer/upload",
                server.url
            ))
            .bearer_auth(&token)
            .header(KEY, &key)
            .json(&body)
            .send()
    };
    let first = {
        let server = TestServer::start().await;
        let response = upload(&server).await.unwrap();
        assert_eq!(response.status(), 201);
        response.json::<Value>().await.unwrap()
    };
    let server = TestServer::start().await;
    let response = upload(&server).await.unwrap();
    assert_eq!(response.status(), 201);
    let retried: Value = response.json().await.unwrap();
    assert_eq!(retried["transferJob"], first["transferJob"]);
    // The same object and multipart upload; the signatures are new.
    let target = |url: &Value| {
        let url = url.as_str().unwrap();
        let (path, query) = url.split_once('?').unwrap();
        let upload_id = query
            .split('&')
            .find(|pair| pair.starts_with("uploadId="))
            .unwrap()
            .to_string();
        (path.to_string(), upload_id)
    };
    let directives = |answer: &Value| {
        let directives = &answer["transferDirectives"];
        let mut urls: Vec<_> = directives["partsUploadUrls"]
            .as_array()
            .unwrap()
            .iter()
            .map(target)
            .collect();
        urls.push(target(&directives["completeUploadUrl"]));
        urls
    };
    assert_eq!(directives(&retried), directives(&first));
    assert_eq!(
        directives(&first).len(),
        4,
        "3 parts of 5 MiB and the completion"
    );
    let log = first["transferJob"]["logs"]["outputLog"].as_str().unwrap();
    assert_eq!(jobs_writing(log).len(), 1, "one job writes that log");
    // The job waits for data that never comes: cancel it.
    let job_id = first["transferJob"]["jobId"].as_str().unwrap();
    let status = std::process::Command::new("scancel")
        .arg(job_id)
        .status()
        .unwrap();
    assert!(status.success());
}
