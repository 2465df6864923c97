//! Transfers against the real Slurm and the dev environment's S3 server (moto): staged
//! uploads and downloads across part boundaries, byte-exact, and the internal operations
//! as jobs. The test plays the client's part with the presigned URLs, as pyfirecrest does.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ironcrest_config::{DataTransferConfig, ProbedService, Secret, StreamerConfig};
use serde_json::{Value, json};

use crate::compute::{HOME, delete, finished, unique, wait_for};
use crate::harness::{SYSTEM, TestServer, dev_config, reloaded, user_token};

pub const MIB: usize = 1024 * 1024;
/// The dev configuration's `multipart.max_part_size`.
pub const PART: usize = 5 * MIB;

/// A fresh directory owned by fireuser, removed on drop.
pub struct WorkDir(pub PathBuf);

impl WorkDir {
    pub fn new(name: &str) -> Self {
        let path = PathBuf::from(format!("{HOME}/{}", unique(&format!("it-xfer-{name}"))));
        std::fs::create_dir(&path).unwrap();
        chown_fireuser(&path);
        Self(path)
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    pub fn file(&self, name: &str, content: &[u8]) -> PathBuf {
        let path = self.join(name);
        std::fs::write(&path, content).unwrap();
        chown_fireuser(&path);
        path
    }

    /// Names of the entries left in the directory.
    pub fn entries(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn chown_fireuser(path: &Path) {
    let status = std::process::Command::new("chown")
        .args(["-R", "fireuser:fireuser"])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
    if path.is_dir() {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

pub fn random_bytes(len: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(len);
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .take(len as u64)
        .read_to_end(&mut bytes)
        .unwrap();
    bytes
}

pub fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

pub async fn post(server: &TestServer, token: &str, op: &str, body: Value) -> (u16, Value) {
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

/// Waits for the transfer job and returns its final state and output log.
async fn finish(server: &TestServer, token: &str, answer: &Value) -> (String, String, String) {
    let job = &answer["transferJob"];
    assert_eq!(job["system"], SYSTEM);
    assert_eq!(job["workingDirectory"], HOME);
    let job_id = job["jobId"].as_str().unwrap();
    let record = wait_for(server, token, job_id, finished).await;
    let state = record["status"]["state"].as_str().unwrap().to_string();
    let read =
        |key: &str| std::fs::read_to_string(job["logs"][key].as_str().unwrap()).unwrap_or_default();
    let (output, error) = (read("outputLog"), read("errorLog"));
    for key in ["outputLog", "errorLog"] {
        let _ = std::fs::remove_file(job["logs"][key].as_str().unwrap());
    }
    (state, output, error)
}

/// Uploads `content` to the presigned part URLs (all but the `skip`ped part numbers) and
/// completes the upload, as pyfirecrest does; returns the completion's status.
pub async fn client_uploads(directives: &Value, content: &[u8], skip: &[usize]) -> u16 {
    let http = reqwest::Client::new();
    let part_size = directives["maxPartSize"].as_u64().unwrap() as usize;
    let mut parts = String::new();
    for (index, url) in directives["partsUploadUrls"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        let number = index + 1;
        if skip.contains(&number) {
            continue;
        }
        let start = index * part_size;
        let chunk = content[start..content.len().min(start + part_size)].to_vec();
        let response = http
            .put(url.as_str().unwrap())
            .body(chunk)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "part {number}");
        let etag = response.headers()["etag"].to_str().unwrap().to_string();
        parts.push_str(&format!(
            "<Part><ETag>{etag}</ETag><PartNumber>{number}</PartNumber></Part>"
        ));
    }
    let complete = format!(
        "<?xml version='1.0' encoding='utf-8'?>\n<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">{parts}</CompleteMultipartUpload>"
    );
    http.post(directives["completeUploadUrl"].as_str().unwrap())
        .body(complete)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_three_part_upload_arrives_byte_exact_under_its_name() {
    let server = TestServer::start().await;
    let token = user_token().await;
    let dir = WorkDir::new("upload");
    let content = random_bytes(2 * PART + 123_457);
    let target = dir.join("big upload 'quoted' $(x).bin");

    let (status, answer) = post(
        &server,
        &token,
        "upload",
        json!({"path": path_str(&target),
               "transfer_directives": {"transfer_method": "s3", "file_size": content.len()}}),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    let directives = &answer["transferDirectives"];
    assert_eq!(directives["transferMethod"], "s3");
    assert_eq!(directives["maxPartSize"], PART);
    assert_eq!(directives["partsUploadUrls"].as_array().unwrap().len(), 3);
    assert!(directives.get("downloadUrl").is_none(), "{directives}");
    let url = directives["partsUploadUrls"][0].as_str().unwrap();
    assert!(
        url.contains("/fireuser/") && url.contains("X-Amz-Signature="),
        "{url}"
    );
    assert!(
        url.contains("big%20upload%20%27quoted%27%20%24%28x%29.bin?"),
        "{url}"
    );

    assert_eq!(client_uploads(directives, &content, &[]).await, 200);
    let (state, output, error) = finish(&server, &token, &answer).await;
    assert_eq!(state, "COMPLETED", "{output}\n{error}");
    assert!(
        output.contains("File was successfully downloaded"),
        "{output}"
    );
    assert!(
        std::fs::read(&target).unwrap() == content,
        "the target differs"
    );
    assert_eq!(dir.entries(), ["big upload 'quoted' $(x).bin"]);

    // The user's bucket expires what is staged in it.
    let lifecycle = reqwest::get("http://127.0.0.1:9000/fireuser?lifecycle")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(lifecycle.contains("<ID>ExpireObjects</ID>"), "{lifecycle}");
    assert!(lifecycle.contains("<Days>1</Days>"), "{lifecycle}");
}

#[tokio::test]
async fn an_upload_missing_a_part_or_never_completed_leaves_the_target_untouched() {
    let server = TestServer::start().await;
    let token = user_token().await;
    let dir = WorkDir::new("partial");
    let target = dir.file("keep.txt", b"original");
    let content = random_bytes(PART + 10);
    let request = json!({"path": path_str(&target),
        "transferDirectives": {"transferMethod": "s3", "fileSize": content.len()}});

    // Part 2 never arrives: S3 completes an object of part 1 alone, which the job refuses.
    let (status, answer) = post(&server, &token, "upload", request.clone()).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(
        client_uploads(&answer["transferDirectives"], &content, &[2]).await,
        200
    );
    let (state, output, error) = finish(&server, &token, &answer).await;
    assert_eq!(state, "FAILED", "{output}");
    assert!(!output.contains("successfully"), "{output}");
    assert!(
        error.contains(&format!("{PART} bytes, {} were announced", content.len())),
        "{error}"
    );
    assert_eq!(std::fs::read(&target).unwrap(), b"original");
    assert_eq!(dir.entries(), ["keep.txt"]);

    // The upload is never completed: the job waits for it until it is cancelled.
    let (status, answer) = post(&server, &token, "upload", request).await;
    assert_eq!(status, 201, "{answer}");
    let job_id = answer["transferJob"]["jobId"].as_str().unwrap();
    wait_for(&server, &token, job_id, |s| s == "RUNNING" || finished(s)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cancelled = delete(&server, &token, job_id).await;
    assert_eq!(cancelled.status(), 204);
    let (state, _, _) = finish(&server, &token, &answer).await;
    assert!(state.starts_with("CANCELLED"), "{state}");
    assert_eq!(std::fs::read(&target).unwrap(), b"original");
    assert_eq!(dir.entries(), ["keep.txt"]);
}

#[tokio::test]
async fn downloads_stage_the_file_byte_exact_in_one_or_several_parts() {
    let server = TestServer::start().await;
    let token = user_token().await;
    let dir = WorkDir::new("download");
    for (name, size) in [
        ("one part.bin", 2 * MIB + 5),
        ("three 'parts'.bin", 2 * PART + 7),
    ] {
        let content = random_bytes(size);
        let source = dir.file(name, &content);
        let (status, answer) = post(
            &server,
            &token,
            "download",
            json!({"source_path": path_str(&source),
                   "transfer_directives": {"transfer_method": "s3"}}),
        )
        .await;
        assert_eq!(status, 201, "{answer}");
        let (state, output, error) = finish(&server, &token, &answer).await;
        assert_eq!(state, "COMPLETED", "{output}\n{error}");
        assert!(
            output.contains("[INFO] Multipart file upload successfully completed"),
            "{output}"
        );
        let url = answer["transferDirectives"]["downloadUrl"]
            .as_str()
            .unwrap();
        assert!(
            url.contains(&name.replace(' ', "%20").replace('\'', "%27")),
            "{url}"
        );
        let staged = reqwest::get(url).await.unwrap();
        assert_eq!(staged.status(), 200);
        assert!(staged.bytes().await.unwrap() == content, "{name} differs");
    }
    // Nothing of the cut parts is left in the scratch directory.
    let scratch = Path::new(HOME).join("tmp");
    let leftovers = std::fs::read_dir(&scratch)
        .map(|entries| entries.count())
        .unwrap_or(0);
    assert_eq!(leftovers, 0, "parts left in {}", scratch.display());
}

#[tokio::test]
async fn staged_requests_are_checked_before_anything_is_submitted() {
    let server = TestServer::start().await;
    let token = user_token().await;
    let missing = format!("{HOME}/{}", unique("missing"));
    for (op, body, status, message) in [
        (
            "download",
            json!({"path": missing, "transferDirectives": {"transferMethod": "s3"}}),
            404,
            "No such file or directory",
        ),
        (
            "upload",
            json!({"path": format!("{HOME}/x"), "transferDirectives": {"transferMethod": "s3"}}),
            400,
            "fileSize",
        ),
        (
            "upload",
            json!({"path": format!("{HOME}/x"), "transferDirectives": {"transferMethod": "streamer", "fileSize": 1}}),
            400,
            "Requested transfer method is not available.",
        ),
        (
            "upload",
            json!({"path": "/etc/passwd", "transferDirectives": {"transferMethod": "s3", "fileSize": 1}}),
            400,
            "/etc/passwd",
        ),
        (
            "mv",
            json!({"sourcePath": "relative", "targetPath": format!("{HOME}/y")}),
            400,
            "relative",
        ),
    ] {
        let (got, answer) = post(&server, &token, op, body).await;
        assert_eq!(got, status, "{op}: {answer}");
        let text = answer["message"].as_str().unwrap();
        assert!(text.contains(message), "{op}: {text}");
    }
}

#[tokio::test]
async fn the_account_placeholder_needs_an_account() {
    let server = TestServer::start_with(|config| {
        let directives = &mut config.clusters[0]
            .data_operation
            .datatransfer_jobs_directives;
        assert_eq!(directives, &["#SBATCH --partition=normal"]);
        directives.push("#SBATCH --account={account}".into());
    })
    .await;
    let token = user_token().await;
    let dir = WorkDir::new("account");
    let source = dir.file("a", b"a");
    let body = |account: Option<&str>| {
        let mut body =
            json!({"sourcePath": path_str(&source), "targetPath": path_str(&dir.join("b"))});
        if let Some(account) = account {
            body["account"] = json!(account);
        }
        body
    };
    let (status, answer) = post(&server, &token, "cp", body(None)).await;
    assert_eq!(status, 400);
    assert_eq!(
        answer["message"],
        "Account parameter is required on this system."
    );
    let (status, _) = post(&server, &token, "cp", body(Some("fire\nrm -rf ~"))).await;
    assert_eq!(status, 400);
    let (status, answer) = post(&server, &token, "cp", body(Some("fireproject"))).await;
    assert_eq!(status, 201, "{answer}");
    let (state, output, error) = finish(&server, &token, &answer).await;
    assert_eq!(state, "COMPLETED", "{output}\n{error}");
    assert_eq!(std::fs::read(dir.join("b")).unwrap(), b"a");
}

#[tokio::test]
async fn internal_operations_run_as_jobs_and_report_in_their_logs() {
    let server = TestServer::start().await;
    let token = user_token().await;
    let dir = WorkDir::new("ops");
    let name = "it's a \"file\" $(touch pwned)";
    let source = dir.file(name, b"content");

    let copied = dir.join("copied");
    let (status, answer) = post(
        &server,
        &token,
        "cp",
        json!({"sourcePath": path_str(&source), "targetPath": path_str(&copied), "dereference": true}),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(
        answer["transferJob"]["logs"]["outputLog"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .len(),
        ".f7t_file_handling_job_.log".len() + 36
    );
    let (state, output, _) = finish(&server, &token, &answer).await;
    assert_eq!(state, "COMPLETED");
    assert!(output.contains("Copy Files Job (id:"), "{output}");
    assert!(output.contains("Files were successfully copied."));
    assert_eq!(std::fs::read(&copied).unwrap(), b"content");

    let moved = dir.join("moved 'x'");
    let (_, answer) = post(
        &server,
        &token,
        "mv",
        json!({"sourcePath": path_str(&copied), "targetPath": path_str(&moved)}),
    )
    .await;
    let (state, output, _) = finish(&server, &token, &answer).await;
    assert_eq!(state, "COMPLETED");
    assert!(output.contains("Files were successfully moved."));
    assert!(moved.exists() && !copied.exists());

    let archive = dir.join("archive.tar.bz2");
    let (_, answer) = post(
        &server,
        &token,
        "compress",
        json!({"source_path": path_str(&moved), "target_path": path_str(&archive),
               "compression": "bzip2", "account": null}),
    )
    .await;
    let (state, output, _) = finish(&server, &token, &answer).await;
    assert_eq!(state, "COMPLETED", "{output}");
    assert!(output.contains("Files were successfully compressed."));

    let unpacked = dir.join("unpacked");
    std::fs::create_dir(&unpacked).unwrap();
    chown_fireuser(&unpacked);
    let (_, answer) = post(
        &server,
        &token,
        "extract",
        json!({"source_path": path_str(&archive), "target_path": path_str(&unpacked),
               "compression": "bzip2"}),
    )
    .await;
    let (state, output, _) = finish(&server, &token, &answer).await;
    assert_eq!(state, "COMPLETED", "{output}");
    assert!(output.contains("Files were successfully extracted."));
    assert_eq!(
        std::fs::read(unpacked.join("moved 'x'")).unwrap(),
        b"content"
    );

    let response = server
        .http
        .delete(format!("{}/filesystem/{SYSTEM}/transfer/rm", server.url))
        .query(&[("path", path_str(&moved))])
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    let (state, output, _) = finish(&server, &token, &answer).await;
    assert_eq!(state, "COMPLETED");
    assert!(output.contains("Files were successfully deleted."));
    assert!(!moved.exists());
    assert!(!dir.join("pwned").exists() && !Path::new(HOME).join("pwned").exists());
}

#[tokio::test]
async fn a_failing_copy_is_a_failed_job_with_the_reason_in_its_error_log() {
    let server = TestServer::start().await;
    let token = user_token().await;
    let dir = WorkDir::new("failing");
    let (status, answer) = post(
        &server,
        &token,
        "cp",
        json!({"sourcePath": path_str(&dir.join("absent")), "targetPath": path_str(&dir.join("b"))}),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    let (state, output, error) = finish(&server, &token, &answer).await;
    assert_eq!(state, "FAILED", "{output}");
    assert!(!output.contains("successfully"), "{output}");
    assert!(error.contains("No such file or directory"), "{error}");
    assert!(
        error.contains("Unable to copy files, exit code:1"),
        "{error}"
    );
}

#[tokio::test]
async fn s3_is_probed_and_an_unreachable_store_gates_staged_transfers() {
    let healthy = TestServer::start().await;
    let token = user_token().await;
    let health = healthy
        .wait_for_health(&token, |checks| {
            checks.iter().any(|c| c["serviceType"] == "s3")
        })
        .await;
    let s3 = health.iter().find(|c| c["serviceType"] == "s3").unwrap();
    assert_eq!(s3["healthy"], true, "{s3}");

    // Port 9 (discard) on loopback: nothing listens there.
    let broken = TestServer::start_with(|config| {
        let Some(DataTransferConfig::S3(s3)) = &mut config.clusters[0].data_operation.data_transfer
        else {
            panic!("the dev cluster stages transfers through S3");
        };
        assert_eq!(s3.private_url.expose(), "http://127.0.0.1:9000");
        s3.private_url = Secret::new("http://127.0.0.1:9");
    })
    .await;
    broken
        .wait_for_health(&token, |checks| {
            checks
                .iter()
                .any(|c| c["serviceType"] == "s3" && c["healthy"] == false)
        })
        .await;
    let (status, answer) = post(
        &broken,
        &token,
        "download",
        json!({"path": format!("{HOME}/x"), "transferDirectives": {"transferMethod": "s3"}}),
    )
    .await;
    assert_eq!(status, 503, "{answer}");
    assert!(
        answer["message"].as_str().unwrap().contains("s3"),
        "{answer}"
    );
}

#[test]
fn a_transfer_method_ironcrest_cannot_serve_is_refused_at_start() {
    let s3 = dev_config();
    let mut streamer = s3.clone();
    let cluster = &mut streamer.clusters[0];
    cluster.data_operation.data_transfer =
        Some(DataTransferConfig::Streamer(StreamerConfig::default()));
    // Probing S3 needs an S3 data transfer.
    let s3_probe = cluster.probing.services.remove(&ProbedService::S3);
    assert!(s3_probe.is_some());
    let config = reloaded(&streamer);
    let fields: Vec<String> = ironcrest::unsupported_features(&config)
        .into_iter()
        .map(|problem| problem.field)
        .collect();
    assert_eq!(
        fields,
        ["clusters[0].data_operation.data_transfer.service_type"]
    );
    assert!(ironcrest::unsupported_features(&s3).is_empty());
}

/// A cap on unfinished transfer jobs (`gateway.limits.work`, here 0 so no other test's jobs
/// matter) is a 429 that pyfirecrest waits out (`Retry-After`), before any job or S3 upload.
#[tokio::test]
async fn past_the_cap_on_unfinished_transfer_jobs_a_submission_is_429() {
    let server = TestServer::start_with(|config| {
        config.gateway.limits.work.transfer_jobs = Some(0);
    })
    .await;
    let token = user_token().await;
    let dir = WorkDir::new("capped");
    let source = dir.file("a.txt", b"capped");
    let request = json!({"sourcePath": path_str(&source),
        "targetPath": format!("{}/b.txt", dir.0.display())});
    let response = server
        .http
        .post(format!("{}/filesystem/{SYSTEM}/transfer/mv", server.url))
        .bearer_auth(&token)
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "10");
    let body: Value = response.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("unfinished transfer jobs"),
        "{body}"
    );
    let upload = json!({"path": format!("{}/c.txt", dir.0.display()),
        "transferDirectives": {"transferMethod": "s3", "fileSize": 10}});
    let (status, answer) = post(&server, &token, "upload", upload).await;
    assert_eq!(status, 429, "{answer}");
    assert_eq!(dir.entries(), ["a.txt"], "nothing was moved or staged");
}
