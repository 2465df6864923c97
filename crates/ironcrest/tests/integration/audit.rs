//! The audit log against the real cluster: one JSON line per request naming who, what and
//! how it ended, never a token or a script; and the binary reopening its file on SIGUSR1
//! and SIGHUP, as logrotate needs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{SYSTEM, TestServer, dev_config, env, user_token, write_config};

/// The audit lines of `file` carrying `correlation_id`, once there are `count` of them.
pub async fn audit_lines(file: &Path, correlation_id: &str, count: usize) -> Vec<Value> {
    let mut lines = Vec::new();
    for _ in 0..100 {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        lines = text
            .lines()
            .map(|line| serde_json::from_str::<Value>(line).expect("each line is JSON"))
            .filter(|line| line["correlation_id"] == correlation_id)
            .collect();
        if lines.len() >= count {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "{} audit lines for {correlation_id}, wanted {count}: {lines:?}",
        lines.len()
    );
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

#[tokio::test]
async fn every_request_is_one_line_naming_who_what_and_how_it_ended() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.log");
    let server = TestServer::start_with(|config| {
        config.audit.enabled = true;
        config.audit.path = Some(file.clone());
    })
    .await;
    let token = user_token().await;
    let correlation = unique("audit");
    let directory = format!("/home/fireuser/{}", unique("audited"));
    let script_marker = unique("script-text");
    let send = |method: reqwest::Method, path: &str, body: Option<Value>, token: Option<&str>| {
        let mut request = server
            .http
            .request(method, format!("{}{path}", server.url))
            .header("x-correlation-id", &correlation);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send()
    };

    let listing = send(
        reqwest::Method::GET,
        &format!("/filesystem/{SYSTEM}/ops/ls?path=/home/fireuser"),
        None,
        Some(&token),
    )
    .await
    .unwrap();
    assert_eq!(listing.status(), 200);
    let listing_id = listing.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let listing_bytes = listing.bytes().await.unwrap().len() as u64;

    let mkdir_body = json!({"path": directory});
    let made = send(
        reqwest::Method::POST,
        &format!("/filesystem/{SYSTEM}/ops/mkdir"),
        Some(mkdir_body.clone()),
        Some(&token),
    )
    .await
    .unwrap();
    assert_eq!(made.status(), 201, "{}", made.text().await.unwrap());

    let submitted = send(
        reqwest::Method::POST,
        &format!("/compute/{SYSTEM}/jobs"),
        Some(json!({"job": {
            "name": "audited",
            "workingDirectory": directory,
            "script": format!("#!/bin/bash\necho {script_marker}\n"),
        }})),
        Some(&token),
    )
    .await
    .unwrap();
    assert_eq!(submitted.status(), 201);
    let job: Value = submitted.json().await.unwrap();
    let job_id = job["jobId"].as_str().unwrap().to_string();

    let anonymous = send(reqwest::Method::GET, "/status/systems", None, None)
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let probe = send(reqwest::Method::GET, "/status/liveness/", None, None)
        .await
        .unwrap();
    assert_eq!(probe.status(), 200);
    let removed = send(
        reqwest::Method::DELETE,
        &format!("/filesystem/{SYSTEM}/transfer/rm?path={directory}"),
        None,
        Some(&token),
    )
    .await
    .unwrap();
    assert_eq!(removed.status(), 200, "{}", removed.text().await.unwrap());

    audit_lines(&file, &correlation, 5).await;
    // Give a stray sixth line (the probe's) the time to show up before counting.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let lines = audit_lines(&file, &correlation, 5).await;
    assert_eq!(
        lines.len(),
        5,
        "the liveness probe is not audited: {lines:#?}"
    );
    let by_route = |method: &str, route: &str| -> &Value {
        lines
            .iter()
            .find(|line| line["method"] == method && line["route"] == route)
            .unwrap_or_else(|| panic!("no line for {method} {route}: {lines:#?}"))
    };

    let ls = by_route("GET", "/filesystem/{system_name}/ops/ls");
    assert_eq!(ls["type"], "audit");
    assert_eq!(ls["request_id"], listing_id.as_str());
    assert_eq!(ls["user"], "fireuser");
    assert_eq!(ls["client_id"], env("IRONCREST_DEV_CLIENT_ID").as_str());
    assert_eq!(ls["client_ip"], "127.0.0.1");
    assert_eq!(ls["system"], SYSTEM);
    assert_eq!(ls["family"], "filesystem-read");
    assert_eq!(ls["path"], format!("/filesystem/{SYSTEM}/ops/ls"));
    assert_eq!(ls["args"], json!({"path": "/home/fireuser"}));
    assert_eq!(ls["status"], 200);
    assert_eq!(ls["completed"], true);
    assert_eq!(ls["bytes_in"], 0);
    assert_eq!(ls["bytes_out"], listing_bytes);
    assert!(ls["duration_ms"].as_f64().unwrap() > 0.0);
    assert!(
        chrono::DateTime::parse_from_rfc3339(ls["time"].as_str().unwrap()).is_ok(),
        "{ls}"
    );

    let mkdir = by_route("POST", "/filesystem/{system_name}/ops/mkdir");
    assert_eq!(mkdir["args"], json!({"path": directory}));
    assert_eq!(mkdir["status"], 201);
    assert_eq!(
        mkdir["bytes_in"],
        serde_json::to_vec(&mkdir_body).unwrap().len()
    );

    let submit = by_route("POST", "/compute/{system_name}/jobs");
    assert_eq!(
        submit["args"],
        json!({"working_directory": directory, "job_name": "audited", "job_id": job_id})
    );

    let rm = by_route("DELETE", "/filesystem/{system_name}/transfer/rm");
    assert_eq!(rm["args"]["path"], directory.as_str());
    assert!(rm["args"]["transfer_job_id"].as_str().is_some(), "{rm}");

    let refused = by_route("GET", "/status/systems");
    assert_eq!(refused["status"], 401);
    assert_eq!(refused["user"], Value::Null);

    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains(&token), "a token reached the audit log");
    assert!(
        !text.contains(&script_marker),
        "a script's text reached the audit log"
    );
}

/// A request to the server on `port`, waiting (bounded) until it answers.
async fn request_until_up(port: u16, correlation: &str) {
    let url = format!("http://127.0.0.1:{port}/status/systems");
    for _ in 0..200 {
        let answer = reqwest::Client::new()
            .get(&url)
            .header("x-correlation-id", correlation)
            .send()
            .await;
        if answer.is_ok_and(|response| response.status() == 401) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("ironcrest never answered on {port}");
}

fn signal(pid: u32, name: &str) {
    let sent = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

/// logrotate renames the file and signals: the lines after the signal go to a new file at
/// the configured path, none is lost.
#[tokio::test]
async fn the_binary_reopens_its_file_on_sigusr1_and_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.log");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = dev_config();
    config.server.listen = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    config.audit.enabled = true;
    config.audit.path = Some(file.clone());
    let config_path = write_config(dir.path(), &config);
    let mut child = Command::new(env!("CARGO_BIN_EXE_ironcrest"))
        .args(["serve", "--config"])
        .arg(&config_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let first = unique("before-rotation");
    request_until_up(port, &first).await;
    audit_lines(&file, &first, 1).await;

    let mut rotated = Vec::<PathBuf>::new();
    for (round, signal_name) in ["USR1", "HUP"].into_iter().enumerate() {
        let moved = dir.path().join(format!("audit.log.{}", round + 1));
        std::fs::rename(&file, &moved).unwrap();
        rotated.push(moved);
        signal(child.id(), signal_name);
        // Lines in flight when the signal arrives may still go to the moved file: ask until
        // one reaches the new one.
        let after = unique("after-rotation");
        let mut reopened = false;
        for _ in 0..100 {
            request_until_up(port, &after).await;
            if std::fs::read_to_string(&file).is_ok_and(|text| text.contains(&after)) {
                reopened = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            reopened,
            "no line reached the reopened file after SIGHUP/{signal_name}"
        );
    }
    let before = std::fs::read_to_string(&rotated[0]).unwrap();
    assert!(
        before.contains(&first),
        "the line before rotation stayed in the moved file"
    );
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o640);
    child.kill().unwrap();
    child.wait().unwrap();
}
