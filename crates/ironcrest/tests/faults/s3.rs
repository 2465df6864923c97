//! The S3 store stopped while a staged upload and a staged download are under way, and
//! started again (moto keeps nothing across a restart, like a store reset; a real store's
//! upgrade keeps its objects, which only makes the retries easier). The transfers fail
//! cleanly with a message, their targets untouched; staged requests meanwhile are refused
//! with a message naming S3; the rest of the API works; retries after the restart succeed.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use ironcrest_config::{DataTransferConfig, Secret};
use serde_json::{Value, json};

use crate::harness::{TestServer, user_token};
use crate::instances::{moto, shared_dir};
use crate::load::{Fixture, Load, Op, Phase, chown_fireuser, verify};
use crate::{health_after, unhealthy};

const SYSTEM: &str = "faults-s3";
const MIB: usize = 1024 * 1024;
/// The dev configuration's part size (S3's minimum).
const PART: usize = 5 * MIB;
/// Presigned URLs live this long, and a staged upload's job waits this long for its data.
const TTL: u64 = 15;
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_stopped_during_staged_transfers_then_restarted() {
    let dir = shared_dir();
    let mut store = moto(dir.path());
    let store_url = format!("http://127.0.0.1:{}", store.port);
    let server = TestServer::start_with(|config| {
        let cluster = &mut config.clusters[0];
        cluster.name = SYSTEM.into();
        let operation = &mut cluster.data_operation;
        // Transfer jobs start a few seconds after submission, so the store is down by then.
        operation
            .datatransfer_jobs_directives
            .push("#SBATCH --begin=now+4".into());
        let Some(DataTransferConfig::S3(s3)) = &mut operation.data_transfer else {
            panic!("the dev cluster stages transfers through S3");
        };
        s3.private_url = Secret::new(store_url.clone());
        s3.public_url = store_url.clone();
        s3.ttl = TTL;
    })
    .await;
    let token = user_token().await;
    let fixture = Arc::new(Fixture::new("faults-s3"));
    // The transfers' files, apart from the load's.
    let files = Fixture::new("faults-s3-files");
    let target = files.dir.join("upload.bin");
    std::fs::write(&target, b"original").unwrap();
    let source = files.dir.join("download.bin");
    let source_content = random_bytes(PART + 17);
    std::fs::write(&source, &source_content).unwrap();
    chown_fireuser(&files.dir);
    let entries = || listing(&files.dir);
    let files_before = entries();
    health_after(&server, &token, "s3", Utc::now()).await;
    let ops = [Op::Systems, Op::Ls, Op::Stat, Op::Head, Op::Jobs];
    let load = Load::start(
        &server.url,
        SYSTEM,
        &token,
        fixture.clone(),
        &ops,
        CLIENT_TIMEOUT,
    );
    load.rounds(2).await;

    // Under way: an upload with its first part sent, and a download whose job is queued.
    let upload_content = random_bytes(PART + 10);
    let (status, upload) = post(&server, &token, "upload", json!({
        "path": target, "transferDirectives": {"transferMethod": "s3", "fileSize": upload_content.len()}})).await;
    assert_eq!(status, 201, "{upload}");
    let part_urls = upload["transferDirectives"]["partsUploadUrls"]
        .as_array()
        .unwrap();
    assert_eq!(put(&part_urls[0], &upload_content[..PART]).await, Some(200));
    let (status, download) = post(
        &server,
        &token,
        "download",
        json!({
        "sourcePath": source, "transferDirectives": {"transferMethod": "s3"}}),
    )
    .await;
    assert_eq!(status, 201, "{download}");

    load.enter(Phase::Outage);
    store.kill();
    let broken = Utc::now();
    // Before a health check has seen it: a clear 424 naming the store (or the 503 below).
    let (status, answer) = post(
        &server,
        &token,
        "download",
        json!({"sourcePath": source,
        "transferDirectives": {"transferMethod": "s3"}}),
    )
    .await;
    let message = answer["message"].as_str().unwrap_or_default();
    assert!(
        (status == 424
            && message.starts_with(&format!(
                "The S3 storage at {store_url} could not be reached"
            )))
            || (status == 503 && message.contains("The s3 service")),
        "{status} {answer}"
    );
    assert_eq!(
        put(&part_urls[1], &upload_content[PART..]).await,
        None,
        "the store still answers"
    );
    let check = health_after(&server, &token, "s3", broken).await;
    assert_eq!(check["healthy"], false, "{check}");
    let labels = [("cluster", SYSTEM), ("service", "s3"), ("path", "")];
    assert_eq!(server.metric("ironcrest_health_up", &labels).await, 0.0);
    // Staged transfers are refused meanwhile, naming the store.
    let refused = [
        post(
            &server,
            &token,
            "upload",
            json!({"path": target,
            "transferDirectives": {"transferMethod": "s3", "fileSize": 10}}),
        )
        .await,
        post(
            &server,
            &token,
            "download",
            json!({"sourcePath": source,
            "transferDirectives": {"transferMethod": "s3"}}),
        )
        .await,
    ];
    for (status, answer) in &refused {
        assert_eq!(*status, 503, "{answer}");
        assert_eq!(
            answer["message"],
            format!("The s3 service for the requested system ({SYSTEM}) is unhealthy."),
        );
    }
    // The download's job ran while the store was down: it failed, saying why.
    let (state, error) = job_outcome(&server, &token, &download).await;
    assert!(state.starts_with("FAILED"), "{state}");
    assert!(
        error.contains("Unable to download the file: part 1 of 2 could not be uploaded"),
        "{error}"
    );
    load.rounds(2).await;

    store.restart();
    let mended = Utc::now();
    let check = health_after(&server, &token, "s3", mended).await;
    assert_eq!(check["healthy"], true, "{check}");
    load.recover().await;
    // The upload never completed: its job gives up once its URLs expire, target untouched.
    let (state, error) = job_outcome(&server, &token, &upload).await;
    assert!(state.starts_with("FAILED"), "{state}");
    assert!(
        error.contains("Unable to upload the file: the staged upload was not completed in time"),
        "{error}"
    );
    assert_eq!(std::fs::read(&target).unwrap(), b"original");
    assert_eq!(entries(), files_before, "a partial file was left");

    // Retries after the restart succeed.
    let (status, download) = post(
        &server,
        &token,
        "download",
        json!({
        "sourcePath": source, "transferDirectives": {"transferMethod": "s3"}}),
    )
    .await;
    assert_eq!(status, 201, "{download}");
    let (state, error) = job_outcome(&server, &token, &download).await;
    assert_eq!(state, "COMPLETED", "{error}");
    let url = download["transferDirectives"]["downloadUrl"]
        .as_str()
        .unwrap();
    let staged = reqwest::get(url).await.unwrap().bytes().await.unwrap();
    assert!(staged == source_content, "the staged download differs");

    let (status, upload) = post(&server, &token, "upload", json!({
        "path": target, "transferDirectives": {"transferMethod": "s3", "fileSize": upload_content.len()}})).await;
    assert_eq!(status, 201, "{upload}");
    complete_upload(&upload["transferDirectives"], &upload_content).await;
    let (state, error) = job_outcome(&server, &token, &upload).await;
    assert_eq!(state, "COMPLETED", "{error}");
    assert!(std::fs::read(&target).unwrap() == upload_content);
    assert_eq!(entries(), files_before);
    load.rounds(2).await;
    let answers = load.finish().await;
    // Nothing but staged transfers needs S3: the load never failed.
    verify(&answers, |answer| unhealthy(answer, "s3", SYSTEM));
}

fn random_bytes(len: usize) -> Vec<u8> {
    use std::io::Read;
    let mut bytes = Vec::with_capacity(len);
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .take(len as u64)
        .read_to_end(&mut bytes)
        .unwrap();
    bytes
}

fn listing(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

async fn post(server: &TestServer, token: &str, op: &str, body: Value) -> (u16, Value) {
    let response = server
        .http
        .post(format!("{}/filesystem/{SYSTEM}/transfer/{op}", server.url))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// PUTs one part as a client does; `None` if the store cannot be reached.
async fn put(url: &Value, bytes: &[u8]) -> Option<u16> {
    let response = reqwest::Client::new()
        .put(url.as_str().unwrap())
        .body(bytes.to_vec())
        .send()
        .await
        .ok()?;
    Some(response.status().as_u16())
}

/// Uploads every part and completes the upload, as pyfirecrest does.
async fn complete_upload(directives: &Value, content: &[u8]) {
    let http = reqwest::Client::new();
    let mut parts = String::new();
    for (index, url) in directives["partsUploadUrls"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        let chunk = &content[index * PART..content.len().min((index + 1) * PART)];
        let response = http
            .put(url.as_str().unwrap())
            .body(chunk.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let etag = response.headers()["etag"].to_str().unwrap().to_string();
        parts.push_str(&format!(
            "<Part><ETag>{etag}</ETag><PartNumber>{}</PartNumber></Part>",
            index + 1
        ));
    }
    let completed = http
        .post(directives["completeUploadUrl"].as_str().unwrap())
        .body(format!(
            "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">{parts}</CompleteMultipartUpload>"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(completed.status(), 200);
}

/// Waits for a transfer's job to end; its state and error log.
async fn job_outcome(server: &TestServer, token: &str, answer: &Value) -> (String, String) {
    let job = &answer["transferJob"];
    let id = job["jobId"].as_str().unwrap();
    for _ in 0..600 {
        let record = server
            .get_json(&format!("/compute/{SYSTEM}/jobs/{id}"), token)
            .await;
        let state = record["jobs"][0]["status"]["state"]
            .as_str()
            .unwrap()
            .to_string();
        if !["PENDING", "RUNNING", "CONFIGURING", "COMPLETING"]
            .iter()
            .any(|s| state.starts_with(s))
        {
            let error = std::fs::read_to_string(job["logs"]["errorLog"].as_str().unwrap())
                .unwrap_or_default();
            return (state, error);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("job {id} did not end within 300 s");
}
