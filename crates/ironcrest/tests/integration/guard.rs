//! The cluster-side guard (`ironcrest-guard`), which the dev CA's certificates force on
//! every connection, so every integration test runs its commands through it. Here: the id
//! of one HTTP request reaches the job's comment in Slurm's accounting, the job's
//! environment and the guard's log; and a certificate-holder's own command is refused.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use ironcrest_config::SshCredentialsConfig;
use ironcrest_ssh::CertificateAuthority;
use serde_json::{Value, json};

use crate::compute::{HOME, finished, read_when_present, unique, wait_for};
use crate::harness::{SYSTEM, TestServer, dev_config, env, guard_log, user_token};

/// The guard's log entries that name `needle` (in their request id or command).
fn guard_entries(needle: &str) -> Vec<Value> {
    std::fs::read_to_string(guard_log())
        .unwrap()
        .lines()
        .filter(|line| line.contains(needle))
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// Submits a job under a request id of the test's and checks that the id reached the job's
/// environment and its comment in Slurm's accounting; returns the id.
pub async fn submit_with_request_id(server: &TestServer) -> String {
    let token = user_token().await;
    let request_id = unique("guard-request");
    let output = format!("{HOME}/{request_id}.out");
    let response = server
        .http
        .post(format!("{}/compute/{SYSTEM}/jobs", server.url))
        .bearer_auth(&token)
        .header("x-request-id", &request_id)
        .json(&json!({ "job": {
            "name": "guard-ids",
            "workingDirectory": HOME,
            "reservation": env("IRONCREST_DEV_SLURM_RESERVATION"),
            "standardOutput": output,
            "script": "#!/bin/bash\necho \"id=$IRONCREST_REQUEST_ID\"\n",
        }}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    let job_id = body["jobId"].as_str().unwrap().to_string();

    // The job's environment: sbatch's own, exported to the job.
    wait_for(server, &token, &job_id, finished).await;
    let printed = read_when_present(Path::new(&output)).await;
    assert_eq!(
        String::from_utf8_lossy(&printed),
        format!("id={request_id}\n")
    );
    std::fs::remove_file(&output).unwrap();

    // The comment, as Slurm's accounting keeps it (slurmdbd may lag the controller).
    let mut comment = String::new();
    for _ in 0..100 {
        let sacct = Command::new("sacct")
            .args(["-n", "-P", "-X", "-o", "comment", "-j", &job_id])
            .output()
            .unwrap();
        comment = String::from_utf8_lossy(&sacct.stdout).trim().to_string();
        if !comment.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        comment.starts_with(&format!("ironcrest request {request_id} correlation ")),
        "{comment:?}"
    );
    request_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_id_reaches_the_job_comment_its_environment_and_the_guard_log() {
    let server = TestServer::start().await;
    let request_id = submit_with_request_id(&server).await;

    // The guard logged the submission with the request's id, as accepted.
    let entries = guard_entries(&request_id);
    let submission = entries
        .iter()
        .find(|entry| entry["command"].as_str().unwrap().contains(" sbatch "))
        .unwrap_or_else(|| panic!("no sbatch in the guard's log for {request_id}: {entries:?}"));
    assert_eq!(submission["request_id"], request_id.as_str());
    assert_eq!(submission["verdict"], "accepted");
    assert_eq!(submission["user"], env("IRONCREST_DEV_USER").as_str());
    assert_eq!(submission["client"], "127.0.0.1");
}

#[tokio::test]
async fn a_certificate_holder_cannot_run_a_command_of_its_own() {
    // A certificate signed as Ironcrest signs them, with the dev configuration's
    // force-command, used by the system's ssh client.
    let SshCredentialsConfig::CertificateAuthority {
        ca_private_key,
        restrictions,
        ..
    } = dev_config().ssh_credentials
    else {
        panic!("the dev configuration uses the built-in CA");
    };
    assert!(restrictions.force_command.is_some());
    let user = env("IRONCREST_DEV_USER");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let credentials = CertificateAuthority::from_openssh(ca_private_key.expose(), 300)
        .unwrap()
        .restricted(restrictions)
        .issue(&user, now)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("id");
    std::fs::write(
        &key,
        credentials.key.to_openssh(Default::default()).unwrap(),
    )
    .unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let certificate = credentials.certificate.unwrap().to_openssh().unwrap();
    std::fs::write(dir.path().join("id-cert.pub"), certificate).unwrap();

    let marker = unique("guard-refused");
    let command = format!("bash -c 'id; echo {marker}'");
    let known_hosts = format!(
        "UserKnownHostsFile={}",
        env("IRONCREST_DEV_SSH_KNOWN_HOSTS")
    );
    let output = Command::new("ssh")
        .args(["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes"])
        .args(["-o", "StrictHostKeyChecking=yes", "-o", &known_hosts])
        .arg("-i")
        .arg(&key)
        .args(["-p", &env("IRONCREST_DEV_SSH_PORT")])
        .arg(format!("{user}@{}", env("IRONCREST_DEV_SSH_HOST")))
        .arg(&command)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(126), "{stdout} {stderr}");
    assert!(!stdout.contains("uid="), "the command ran: {stdout}");
    assert!(
        stderr.contains("ironcrest-guard: refused:")
            && stderr.contains("This certificate runs only the commands Ironcrest sends."),
        "{stderr}"
    );

    let entries = guard_entries(&marker);
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["verdict"], "refused");
    assert_eq!(entries[0]["command"], command.as_str());
    assert_eq!(entries[0]["user"], user.as_str());
    assert!(entries[0]["request_id"].is_null());
}
