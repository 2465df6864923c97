//! `/tasks` against the real Slurm and the dev environment's S3 server (moto): the life of a
//! task of every kind, from its submission to its end (succeeded, failed, cancelled,
//! expired), read back from the scheduler and the store by a server that never saw it
//! submitted, as another replica or a restarted one would.

use std::time::Duration;

use ironcrest_config::DataTransferConfig;
use serde_json::{Value, json};

use crate::audit::audit_lines;
use crate::compute::{HOME, submit_ok, unique};
use crate::harness::{SYSTEM, TestServer, user_token};
use crate::transfer::{
    MIB, PART, WorkDir, chown_fireuser, client_uploads, path_str, post, random_bytes,
};

/// `GET /tasks/{SYSTEM}{path}`: its status and body.
async fn get(server: &TestServer, token: &str, path: &str) -> (u16, Value) {
    let response = server
        .get(&format!("/tasks/{SYSTEM}{path}"), Some(token))
        .await;
    let status = response.status().as_u16();
    let body = response.text().await.unwrap();
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

async fn task(server: &TestServer, token: &str, id: &str) -> Value {
    let (status, body) = get(server, token, &format!("/{id}")).await;
    assert_eq!(status, 200, "{id}: {body}");
    body["task"].clone()
}

/// Task `id` in the listing `query` selects (its last hour, a wide page: other tests' tasks
/// are there too), once it is there: a listing reads the accounting database, which may lag
/// the lookup of one job by a moment.
async fn listed(server: &TestServer, token: &str, query: &str, id: &str) -> Value {
    for _ in 0..50 {
        let query = format!("{query}&time_window=1h&limit=1000");
        let (status, listing) = get(server, token, &query).await;
        assert_eq!(status, 200, "{listing}");
        let found = listing["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|task| task["id"] == id)
            .cloned();
        if let Some(task) = found {
            return task;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{id} is not in the listing {query}");
}

async fn cancel(server: &TestServer, token: &str, id: &str) -> (u16, Value) {
    let response = server
        .http
        .delete(format!("{}/tasks/{SYSTEM}/{id}", server.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.text().await.unwrap();
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// The task once `done` holds for it (bounded: two minutes).
async fn wait_until(
    server: &TestServer,
    token: &str,
    id: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    for _ in 0..400 {
        let task = task(server, token, id).await;
        if done(&task) {
            return task;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    panic!(
        "task {id} never got there: {}",
        task(server, token, id).await
    );
}

fn ended(task: &Value) -> bool {
    !["pending", "running"].contains(&task["state"].as_str().unwrap())
}

/// The id of the task a transfer request started.
fn task_id(kind: &str, answer: &Value) -> String {
    format!(
        "{kind}-{}",
        answer["transferJob"]["jobId"].as_str().unwrap()
    )
}

async fn transfer(server: &TestServer, token: &str, op: &str, body: Value) -> Value {
    let (status, answer) = post(server, token, op, body).await;
    assert_eq!(status, 201, "{op}: {answer}");
    answer
}

/// Every kind of transfer job and a compute job, each followed to its end by its task, on
/// a server other than the one that submitted them.
#[tokio::test]
async fn every_kind_of_job_is_a_task_until_it_ends() {
    let submitter = TestServer::start().await;
    let server = TestServer::start().await;
    let token = user_token().await;
    let dir = WorkDir::new("tasks");
    let source = dir.file("source 'a'.txt", b"content");
    let copied = dir.join("copied.txt");
    let unpacked = dir.join("unpacked");
    std::fs::create_dir(&unpacked).unwrap();
    chown_fireuser(&unpacked);

    let cp = transfer(
        &submitter,
        &token,
        "cp",
        json!({"sourcePath": path_str(&source), "targetPath": path_str(&copied), "dereference": true}),
    )
    .await;
    let failing = transfer(
        &submitter,
        &token,
        "cp",
        json!({"sourcePath": path_str(&dir.join("absent")), "targetPath": path_str(&copied)}),
    )
    .await;
    let cp_id = task_id("cp", &cp);
    let failing_id = task_id("cp", &failing);
    let done = wait_until(&server, &token, &cp_id, ended).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["kind"], "cp");
    assert_eq!(done["system"], SYSTEM);
    assert_eq!(done["jobId"], cp["transferJob"]["jobId"]);
    assert_eq!(
        done["arguments"],
        json!({"sourcePath": path_str(&source), "targetPath": path_str(&copied), "dereference": true})
    );
    assert_eq!(done["logs"], cp["transferJob"]["logs"]);
    assert_eq!(done["progress"]["jobState"], "COMPLETED");
    assert_eq!(
        done["progress"]["result"],
        "Files were successfully copied."
    );
    assert_eq!(done["error"], Value::Null);
    assert_eq!(
        done["links"],
        json!({"self": format!("/tasks/{SYSTEM}/{cp_id}"),
               "job": format!("/compute/{SYSTEM}/jobs/{}", done["jobId"].as_str().unwrap())})
    );
    let (created, updated) = (
        done["created"].as_i64().unwrap(),
        done["updated"].as_i64().unwrap(),
    );
    assert!(created <= updated, "{done}");

    let failed = wait_until(&server, &token, &failing_id, ended).await;
    assert_eq!(failed["state"], "failed", "{failed}");
    assert_eq!(failed["progress"]["exitCode"], 1);
    let error = failed["error"].as_str().unwrap();
    assert!(
        error.starts_with("Unable to copy files, exit code:1"),
        "the job's own message: {error}"
    );

    // The file then moves, is archived, unpacked and deleted, each a task of its kind.
    let moved = dir.join("moved.txt");
    let archive = dir.join("archive.tar.xz");
    let mut ids = Vec::new();
    for (kind, op, body, result) in [
        (
            "mv",
            "mv",
            json!({"sourcePath": path_str(&copied), "targetPath": path_str(&moved)}),
            "Files were successfully moved.",
        ),
        (
            "compress",
            "compress",
            json!({"source_path": path_str(&moved), "target_path": path_str(&archive), "compression": "xz"}),
            "Files were successfully compressed.",
        ),
        (
            "extract",
            "extract",
            json!({"source_path": path_str(&archive), "target_path": path_str(&unpacked), "compression": "xz"}),
            "Files were successfully extracted.",
        ),
    ] {
        let answer = transfer(&submitter, &token, op, body).await;
        let id = task_id(kind, &answer);
        let done = wait_until(&server, &token, &id, ended).await;
        assert_eq!(done["state"], "succeeded", "{done}");
        assert_eq!(done["kind"], kind);
        assert_eq!(done["progress"]["result"], result, "{done}");
        ids.push(id);
    }
    let compressed = task(&server, &token, &ids[1]).await;
    assert_eq!(compressed["arguments"]["compression"], "xz");
    assert_eq!(
        std::fs::read(unpacked.join("moved.txt")).unwrap(),
        b"content"
    );
    let response = submitter
        .http
        .delete(format!("{}/filesystem/{SYSTEM}/transfer/rm", submitter.url))
        .query(&[("path", path_str(&moved))])
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let rm_id = task_id("rm", &response.json().await.unwrap());
    let removed = wait_until(&server, &token, &rm_id, ended).await;
    assert_eq!(removed["state"], "succeeded", "{removed}");
    assert_eq!(removed["arguments"], json!({"path": path_str(&moved)}));
    assert!(!moved.exists());

    // A compute job is linked, not copied: its task names the job.
    let job_id = submit_ok(
        &submitter,
        &token,
        json!({"name": unique("task-job"), "workingDirectory": HOME,
               "script": "#!/bin/bash\nexit 3\n"}),
    )
    .await;
    let job_task = wait_until(&server, &token, &format!("job-{job_id}"), ended).await;
    assert_eq!(job_task["kind"], "job");
    assert_eq!(job_task["state"], "failed", "{job_task}");
    assert_eq!(job_task["arguments"], Value::Null);
    assert_eq!(job_task["logs"], Value::Null);
    assert_eq!(
        job_task["links"]["job"],
        format!("/compute/{SYSTEM}/jobs/{job_id}")
    );
    assert_eq!(
        job_task["error"],
        "The job ended FAILED with exit code 3 (NonZeroExitCode)."
    );

    // The listing holds them all, newest first, filtered by kind and state (polled: the
    // accounting database the listing reads may lag the lookups above by a moment).
    let mine: Vec<String> = [
        format!("job-{job_id}"),
        rm_id.clone(),
        ids[2].clone(),
        ids[1].clone(),
        ids[0].clone(),
        failing_id.clone(),
        cp_id.clone(),
    ]
    .into();
    let query =
        format!("/tasks/{SYSTEM}?kind=cp,mv,compress,extract,rm,job&time_window=1h&limit=1000");
    let mut order = Vec::new();
    for _ in 0..50 {
        let listing = server.get_json(&query, &token).await;
        order = listing["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|task| task["id"].as_str().unwrap().to_string())
            .filter(|id| mine.contains(id))
            .collect();
        if order == mine {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(order, mine);
    let in_listing = listed(&server, &token, "?kind=cp", &cp_id).await;
    assert_eq!(in_listing["state"], "succeeded");
    assert_eq!(
        in_listing["progress"]["result"],
        Value::Null,
        "a listing reads no log"
    );
    let failure = listed(&server, &token, "?state=failed&kind=cp", &failing_id).await;
    assert_eq!(
        failure["error"],
        "The transfer job ended FAILED with exit code 1 (NonZeroExitCode)."
    );
    let (_, failures) = get(&server, &token, "?state=failed&kind=cp&limit=1000").await;
    assert!(
        !failures["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|task| task["id"] == cp_id.as_str()),
        "{failures}"
    );

    // Pages: one task each, the next page after the last task of this one.
    let (_, first) = get(&server, &token, "?kind=cp&limit=1").await;
    assert_eq!(first["tasks"].as_array().unwrap().len(), 1);
    let next = first["nextPage"].as_str().unwrap();
    let first_id = first["tasks"][0]["id"].as_str().unwrap();
    assert_eq!(
        next,
        format!("/tasks/{SYSTEM}?kind=cp&limit=1&after={first_id}")
    );
    let second = server.get_json(next, &token).await;
    let second_id = second["tasks"][0]["id"].as_str().unwrap();
    let number = |id: &str| id.rsplit('-').next().unwrap().parse::<u64>().unwrap();
    assert!(
        number(second_id) < number(first_id),
        "{first_id} then {second_id}"
    );

    // An ended task cannot be cancelled; a finished one's answer is conditional.
    let (status, body) = cancel(&server, &token, &cp_id).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        body["message"],
        format!("Task {cp_id} has already ended (succeeded).")
    );
    let response = server
        .get(&format!("/tasks/{SYSTEM}/{cp_id}"), Some(&token))
        .await;
    let tag = response.headers()["etag"].clone();
    let again = server
        .http
        .get(format!("{}/tasks/{SYSTEM}/{cp_id}", server.url))
        .bearer_auth(&token)
        .header("if-none-match", tag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
}

/// An upload is pending while its parts arrive (counted in S3), runs once the client
/// completes it, and succeeds; its task says how far it came at each step.
#[tokio::test]
async fn a_staged_upload_counts_its_parts_until_it_succeeds() {
    let server = TestServer::start().await;
    let token = user_token().await;
    let dir = WorkDir::new("task-upload");
    let content = random_bytes(PART + 4321);
    let target = dir.join("uploaded.bin");
    let answer = transfer(
        &server,
        &token,
        "upload",
        json!({"path": path_str(&target),
               "transferDirectives": {"transferMethod": "s3", "fileSize": content.len()}}),
    )
    .await;
    let id = task_id("upload", &answer);
    let waiting = task(&server, &token, &id).await;
    assert_eq!(waiting["state"], "pending", "{waiting}");
    assert_eq!(
        waiting["arguments"],
        json!({"path": path_str(&target), "fileSize": content.len()})
    );
    let progress = &waiting["progress"];
    assert_eq!(
        (progress["parts"].as_u64(), progress["bytes"].as_u64()),
        (Some(2), Some(content.len() as u64))
    );
    assert_eq!(progress["partsDone"], 0, "{waiting}");

    // Part 1 arrives (the test plays the client, as pyfirecrest does).
    let directives = &answer["transferDirectives"];
    let part_url = directives["partsUploadUrls"][0].as_str().unwrap();
    let response = reqwest::Client::new()
        .put(part_url)
        .body(content[..PART].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let sending = task(&server, &token, &id).await;
    assert_eq!(sending["state"], "pending", "{sending}");
    assert_eq!(sending["progress"]["partsDone"], 1);
    assert_eq!(sending["progress"]["bytesDone"], PART);

    assert_eq!(client_uploads(directives, &content, &[]).await, 200);
    let done = wait_until(&server, &token, &id, ended).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["progress"]["partsDone"], 2);
    assert_eq!(done["progress"]["bytesDone"], content.len());
    let result = done["progress"]["result"].as_str().unwrap();
    assert!(
        result.starts_with("File was successfully downloaded"),
        "{result}"
    );
    assert!(
        std::fs::read(&target).unwrap() == content,
        "the target differs"
    );
}

/// Cancelling an upload that waits for its data cancels its job and aborts its multipart
/// upload, so nothing is left in S3; the task is then cancelled, and cannot be cancelled
/// again. The audit line names the task and its job.
#[tokio::test]
async fn a_cancelled_upload_leaves_nothing_in_s3() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.log");
    let server = TestServer::start_with(|config| {
        config.audit.enabled = true;
        config.audit.path = Some(file.clone());
    })
    .await;
    let token = user_token().await;
    let work = WorkDir::new("task-cancel");
    let target = work.file("keep.txt", b"original");
    let answer = transfer(
        &server,
        &token,
        "upload",
        json!({"path": path_str(&target),
               "transferDirectives": {"transferMethod": "s3", "fileSize": 3 * MIB}}),
    )
    .await;
    let id = task_id("upload", &answer);
    let url = answer["transferDirectives"]["partsUploadUrls"][0]
        .as_str()
        .unwrap();
    let key = url
        .split('?')
        .next()
        .unwrap()
        .split("/fireuser/")
        .nth(1)
        .unwrap();
    assert_eq!(uploads_in_progress(key).await, 1);

    let correlation = unique("task-cancel");
    let response = server
        .http
        .delete(format!("{}/tasks/{SYSTEM}/{id}", server.url))
        .bearer_auth(&token)
        .header("x-correlation-id", &correlation)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204, "{}", response.text().await.unwrap());
    assert_eq!(uploads_in_progress(key).await, 0, "the upload was aborted");
    let cancelled = wait_until(&server, &token, &id, ended).await;
    assert_eq!(cancelled["state"], "cancelled", "{cancelled}");
    assert_eq!(cancelled["error"], Value::Null);
    let (status, _) = cancel(&server, &token, &id).await;
    assert_eq!(status, 409);
    assert_eq!(std::fs::read(&target).unwrap(), b"original");

    let lines = audit_lines(&file, &correlation, 1).await;
    assert_eq!(lines[0]["route"], "/tasks/{system_name}/{task_id}");
    assert_eq!(lines[0]["family"], "compute-write");
    let job_id = answer["transferJob"]["jobId"].as_str().unwrap();
    assert_eq!(lines[0]["args"], json!({"task_id": id, "job_id": job_id}));
}

/// The multipart uploads in progress under `key` in fireuser's bucket (moto takes
/// unsigned requests).
async fn uploads_in_progress(key: &str) -> usize {
    let listing = reqwest::get(format!(
        "http://127.0.0.1:9000/fireuser?uploads&prefix={key}"
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    listing.matches("<UploadId>").count()
}

/// An upload whose data never comes expires when its job stops waiting: the deadline is
/// the staging area's `ttl`, here a few seconds.
#[tokio::test]
async fn an_abandoned_upload_expires_at_its_deadline() {
    let server = TestServer::start_with(|config| {
        let Some(DataTransferConfig::S3(s3)) = &mut config.clusters[0].data_operation.data_transfer
        else {
            panic!("the dev cluster stages transfers through S3");
        };
        s3.ttl = 3;
    })
    .await;
    let token = user_token().await;
    let dir = WorkDir::new("task-expire");
    let answer = transfer(
        &server,
        &token,
        "upload",
        json!({"path": path_str(&dir.join("never.bin")),
               "transferDirectives": {"transferMethod": "s3", "fileSize": 10}}),
    )
    .await;
    let id = task_id("upload", &answer);
    let expired = wait_until(&server, &token, &id, ended).await;
    assert_eq!(expired["state"], "expired", "{expired}");
    assert_eq!(expired["progress"]["exitCode"], 4);
    assert_eq!(
        expired["error"],
        "Unable to upload the file: the staged upload was not completed in time"
    );
    let listed = listed(&server, &token, "?kind=upload&state=expired", &id).await;
    assert_eq!(
        listed["error"],
        "The staged upload was not completed in time: its job stopped waiting for the data."
    );
    assert!(dir.entries().is_empty());
}

/// A download succeeds once its job has put the file in S3, and expires when the object
/// is gone (here removed as the bucket's lifecycle rule would, a day later).
#[tokio::test]
async fn a_staged_download_expires_with_its_object() {
    let server = TestServer::start().await;
    let token = user_token().await;
    let dir = WorkDir::new("task-download");
    let content = random_bytes(PART + 17);
    let source = dir.file("big.bin", &content);
    let answer = transfer(
        &server,
        &token,
        "download",
        json!({"path": path_str(&source), "transferDirectives": {"transferMethod": "s3"}}),
    )
    .await;
    let id = task_id("download", &answer);
    let done = wait_until(&server, &token, &id, ended).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(
        done["arguments"],
        json!({"path": path_str(&source), "fileSize": content.len()})
    );
    let progress = &done["progress"];
    assert_eq!(
        (progress["parts"].as_u64(), progress["partsDone"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(progress["bytesDone"], content.len());
    assert_eq!(
        progress["result"],
        "[INFO] Multipart file upload successfully completed"
    );

    let url = answer["transferDirectives"]["downloadUrl"]
        .as_str()
        .unwrap();
    let object = url.split('?').next().unwrap();
    let removed = reqwest::Client::new().delete(object).send().await.unwrap();
    assert_eq!(removed.status(), 204);
    let expired = task(&server, &token, &id).await;
    assert_eq!(expired["state"], "expired", "{expired}");
    assert!(
        expired["error"].as_str().unwrap().contains("expired"),
        "{expired}"
    );
    let (status, _) = cancel(&server, &token, &id).await;
    assert_eq!(status, 409);
}

/// Only Ironcrest's jobs are tasks, each under its own kind; ids are checked.
#[tokio::test]
async fn only_ironcrests_jobs_are_tasks_under_their_own_kind() {
    let server = TestServer::start().await;
    let token = user_token().await;
    // A job submitted with sbatch directly, not through Ironcrest.
    let output = std::process::Command::new("runuser")
        .args([
            "-u",
            "fireuser",
            "--",
            "sbatch",
            "--parsable",
            "--chdir",
            HOME,
        ])
        .args(["--output=/dev/null", "--wrap", "true"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let own = String::from_utf8(output.stdout).unwrap().trim().to_string();
    let (status, body) = get(&server, &token, &format!("/job-{own}")).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["message"], format!("Task not found: job-{own}."));

    let dir = WorkDir::new("task-kinds");
    let source = dir.file("a", b"a");
    let answer = transfer(
        &server,
        &token,
        "cp",
        json!({"sourcePath": path_str(&source), "targetPath": path_str(&dir.join("b"))}),
    )
    .await;
    let job_id = answer["transferJob"]["jobId"].as_str().unwrap();
    for other in ["mv", "upload", "job"] {
        let (status, _) = get(&server, &token, &format!("/{other}-{job_id}")).await;
        assert_eq!(status, 404, "{other}-{job_id}");
    }
    assert_eq!(get(&server, &token, &format!("/cp-{job_id}")).await.0, 200);
    for (bad, status) in [
        ("cp-0", 400),
        ("copy-1", 400),
        ("cp-x", 400),
        ("cp-4294967296", 404),
    ] {
        let (got, body) = get(&server, &token, &format!("/{bad}")).await;
        assert_eq!(got, status, "{bad}: {body}");
    }
    let (status, body) = get(&server, &token, "?state=done").await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = get(&server, &token, "?limit=0").await;
    assert_eq!(status, 400);
}

/// Through slurmrestd (`rest` mode) a transfer job's comment is written and read back the
/// same: its task, with its arguments, from the controller and the accounting database.
#[tokio::test]
async fn tasks_are_read_back_through_slurmrestd() {
    let url = crate::harness::env("IRONCREST_DEV_SLURMRESTD_URL");
    let server = TestServer::start_with(|config| {
        crate::compute_rest::through_slurmrestd(
            config,
            ironcrest_config::ConnectionMode::Rest,
            &url,
            "0.0.38",
        );
    })
    .await;
    let token = user_token().await;
    let dir = WorkDir::new("task-rest");
    let source = dir.file("a.txt", b"rest");
    let target = dir.join("b.txt");
    let answer = transfer(
        &server,
        &token,
        "cp",
        json!({"sourcePath": path_str(&source), "targetPath": path_str(&target)}),
    )
    .await;
    let id = task_id("cp", &answer);
    let pending_or_later = task(&server, &token, &id).await;
    assert_eq!(
        pending_or_later["arguments"],
        json!({"sourcePath": path_str(&source), "targetPath": path_str(&target), "dereference": false})
    );
    let done = wait_until(&server, &token, &id, ended).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(
        done["progress"]["result"],
        "Files were successfully copied."
    );
    let in_listing = listed(&server, &token, "?kind=cp&state=succeeded", &id).await;
    assert_eq!(in_listing["arguments"], pending_or_later["arguments"]);
    assert_eq!(std::fs::read(&target).unwrap(), b"rest");
}
