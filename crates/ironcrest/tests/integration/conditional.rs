//! Conditional GETs against the dev cluster: a job list polled with its tag is a 304 and,
//! while the jobs cache holds the answer, asks Slurm nothing; the user's own change (a
//! submit, a mkdir, a chmod) gives a 200 with a new tag.

use reqwest::StatusCode;
use reqwest::header::{ETAG, IF_NONE_MATCH};
use serde_json::{Value, json};

use std::path::Path;

use crate::audit::audit_lines;
use crate::compute::{HOME, unique};
use crate::harness::{TestServer, user_token};

/// A cluster name of this module's own: the process's metrics are shared by every test
/// server in it, and the scheduler calls are counted by cluster.
const SYSTEM: &str = "conditional-slurm";

/// The correlation id of every poll, which finds their audit lines.
const CORRELATION: &str = "conditional-poll";

/// The dev server on this module's cluster, writing its audit log to `audit`.
async fn server(audit: &Path) -> TestServer {
    TestServer::start_with(|config| {
        config.audit.enabled = true;
        config.audit.path = Some(audit.to_path_buf());
        let cluster = &mut config.clusters[0];
        cluster.name = SYSTEM.into();
        // The longest freshness allowed, so the test's polls fall in it.
        cluster.scheduler.jobs_cache_max_age = 60.0;
    })
    .await
}

/// GET `path` with `If-None-Match: tag`, correlated by [`CORRELATION`]: the status, the
/// `ETag` and the body's bytes.
async fn poll(
    server: &TestServer,
    token: &str,
    path: &str,
    tag: Option<&str>,
) -> (StatusCode, String, Vec<u8>) {
    let mut request = server
        .http
        .get(format!("{}{path}", server.url))
        .bearer_auth(token)
        .header("x-correlation-id", CORRELATION);
    if let Some(tag) = tag {
        request = request.header(IF_NONE_MATCH, tag);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let etag = response
        .headers()
        .get(ETAG)
        .map(|value| value.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = response.bytes().await.unwrap().to_vec();
    (status, etag, body)
}

async fn scheduler_job_listings(server: &TestServer) -> f64 {
    let labels = [("cluster", SYSTEM), ("call", "jobs"), ("outcome", "ok")];
    server
        .metric("ironcrest_scheduler_calls_total", &labels)
        .await
}

async fn submit(server: &TestServer, token: &str, name: &str) {
    let job = json!({"workingDirectory": HOME, "script": "#!/bin/bash\ntrue\n",
        "name": name, "standardOutput": "/dev/null"});
    let response = server
        .http
        .post(format!("{}/compute/{SYSTEM}/jobs", server.url))
        .bearer_auth(token)
        .json(&json!({ "job": job }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_polled_job_list_is_304_without_a_scheduler_call_while_fresh() {
    let audit = tempfile::tempdir().unwrap();
    let audit = audit.path().join("audit.log");
    let server = server(&audit).await;
    let token = user_token().await;
    let name = unique("ironcrest-conditional");
    let path = format!("/compute/{SYSTEM}/jobs?name={name}");
    submit(&server, &token, &name).await;

    let before = scheduler_job_listings(&server).await;
    let (status, tag, body) = poll(&server, &token, &path, None).await;
    assert_eq!(status, 200);
    let jobs: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(jobs["jobs"].as_array().unwrap().len(), 1, "{jobs}");
    assert_eq!(scheduler_job_listings(&server).await, before + 1.0);

    let (status, again, body) = poll(&server, &token, &path, Some(&tag)).await;
    assert_eq!(
        (status, again.as_str(), body.len()),
        (StatusCode::NOT_MODIFIED, tag.as_str(), 0)
    );
    assert_eq!(
        scheduler_job_listings(&server).await,
        before + 1.0,
        "the 304 came from the fresh cached answer"
    );

    // The user's own submit drops their cached answers: the next poll asks Slurm.
    submit(&server, &token, &name).await;
    let (status, changed, body) = poll(&server, &token, &path, Some(&tag)).await;
    assert_eq!(status, 200);
    assert_ne!(changed, tag);
    let jobs: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(jobs["jobs"].as_array().unwrap().len(), 2, "{jobs}");
    assert_eq!(scheduler_job_listings(&server).await, before + 2.0);

    // The audit log records the 304 as such, with nothing sent.
    let lines = audit_lines(&audit, CORRELATION, 3).await;
    let statuses: Vec<_> = lines
        .iter()
        .map(|line| (&line["status"], &line["bytes_out"]))
        .collect();
    assert_eq!(statuses[1], (&json!(304), &json!(0)), "{lines:?}");
    assert_eq!(lines[1]["route"], "/compute/{system_name}/jobs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ls_and_stat_are_304_until_the_user_changes_something() {
    let audit = tempfile::tempdir().unwrap();
    let server = server(&audit.path().join("audit.log")).await;
    let token = user_token().await;
    let dir = format!("{HOME}/{}", unique("it-conditional"));
    let call = |method: reqwest::Method, op: &str, body: Value| {
        server
            .http
            .request(
                method,
                format!("{}/filesystem/{SYSTEM}/ops/{op}", server.url),
            )
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let made = call(reqwest::Method::POST, "mkdir", json!({"path": dir}))
        .await
        .unwrap();
    assert_eq!(made.status(), 201, "{}", made.text().await.unwrap());

    let ls = format!("/filesystem/{SYSTEM}/ops/ls?path={dir}");
    let stat = format!("/filesystem/{SYSTEM}/ops/stat?path={dir}");
    // Each stat before the listings: reading the directory may update its access time.
    let mut tags = Vec::new();
    for path in [&stat, &ls] {
        let (status, tag, _) = poll(&server, &token, path, None).await;
        assert_eq!(status, 200, "{path}");
        let (status, again, body) = poll(&server, &token, path, Some(&tag)).await;
        assert_eq!(
            (status, &again, body.len()),
            (StatusCode::NOT_MODIFIED, &tag, 0),
            "{path}"
        );
        tags.push(tag);
    }
    let (stat_tag, ls_tag) = (&tags[0], &tags[1]);

    // A new entry changes the listing; a new mode changes the directory's stat.
    let sub = call(
        reqwest::Method::POST,
        "mkdir",
        json!({"path": format!("{dir}/sub")}),
    )
    .await
    .unwrap();
    assert_eq!(sub.status(), 201);
    let (status, changed, body) = poll(&server, &token, &ls, Some(ls_tag)).await;
    assert_eq!(status, 200);
    assert_ne!(&changed, ls_tag);
    let listing: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(listing["output"][0]["name"], "sub", "{listing}");
    let chmod = call(
        reqwest::Method::PUT,
        "chmod",
        json!({"path": dir, "mode": "700"}),
    )
    .await
    .unwrap();
    assert_eq!(chmod.status(), 200);
    let (status, changed, _) = poll(&server, &token, &stat, Some(stat_tag)).await;
    assert_eq!(status, 200);
    assert_ne!(&changed, stat_tag);

    let removed = server
        .http
        .delete(format!(
            "{}/filesystem/{SYSTEM}/ops/rm?path={dir}",
            server.url
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), 204);
}
