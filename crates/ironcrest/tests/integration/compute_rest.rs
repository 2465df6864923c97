//! Compute and status through the dev environment's slurmrestd (API v0.0.38), in `hybrid`
//! mode (the compute flows of [`crate::compute`], with metadata, `scriptPath` submits and
//! attach over SSH) and in `rest` mode (everything through slurmrestd; metadata without
//! the script, which slurmrestd does not return; what it cannot do is a 501).

use serde_json::{Value, json};

use crate::compute::{
    HOME, Mode, PWNED, delete, errors_flow, finished, get_job, inline_job_flow, listings_flow,
    message, script_path_job_flow, submit_ok, unique, wait_for,
};
use ironcrest_config::{Config, ConnectionMode, SchedulerType};

use crate::harness::{SYSTEM, TestServer, dev_config, env, reloaded, user_token};

/// The dev cluster's Slurm through slurmrestd at `url`, API `version`, in `mode`.
pub fn through_slurmrestd(config: &mut Config, mode: ConnectionMode, url: &str, version: &str) {
    let scheduler = &mut config.clusters[0].scheduler;
    assert_eq!(scheduler.connection_mode, ConnectionMode::Ssh);
    scheduler.connection_mode = mode;
    scheduler.api_url = Some(url.into());
    scheduler.api_version = Some(version.into());
}

async fn start(mode: Mode) -> TestServer {
    let mode = match mode {
        Mode::Ssh => ConnectionMode::Ssh,
        Mode::Hybrid => ConnectionMode::Hybrid,
        Mode::Rest => ConnectionMode::Rest,
    };
    let url = env("IRONCREST_DEV_SLURMRESTD_URL");
    TestServer::start_with(|config| through_slurmrestd(config, mode, &url, "0.0.38")).await
}

#[tokio::test]
async fn hybrid_inline_job_completes() {
    inline_job_flow(&start(Mode::Hybrid).await).await;
}

#[tokio::test]
async fn hybrid_script_path_job_can_be_inspected_attached_to_and_cancelled() {
    script_path_job_flow(&start(Mode::Hybrid).await).await;
}

#[tokio::test]
async fn hybrid_listings_apply_each_filter() {
    listings_flow(&start(Mode::Hybrid).await).await;
}

#[tokio::test]
async fn hybrid_errors() {
    errors_flow(&start(Mode::Hybrid).await, Mode::Hybrid).await;
}

/// Through slurmrestd too, a job carries its request's id in its comment and environment.
#[tokio::test]
async fn rest_jobs_carry_the_request_id() {
    crate::guard::submit_with_request_id(&start(Mode::Rest).await).await;
}

#[tokio::test]
async fn rest_inline_job_completes() {
    inline_job_flow(&start(Mode::Rest).await).await;
}

#[tokio::test]
async fn rest_listings_apply_each_filter() {
    listings_flow(&start(Mode::Rest).await).await;
}

#[tokio::test]
async fn rest_errors() {
    errors_flow(&start(Mode::Rest).await, Mode::Rest).await;
}

#[tokio::test]
async fn rest_running_job_is_cancelled_metadata_has_no_script_and_attach_is_501() {
    let server = start(Mode::Rest).await;
    let token = user_token().await;
    let job_id = submit_ok(
        &server,
        &token,
        json!({
            "workingDirectory": HOME,
            "script": "#!/bin/bash\nsleep 120\n",
            "name": unique("ironcrest-rest-sleeper"),
            "standardOutput": "/dev/null",
            "standardError": format!("{HOME}/rest-sleeper.err"),
            "reservation": env("IRONCREST_DEV_SLURM_RESERVATION"),
        }),
    )
    .await;
    let job = get_job(&server, &token, &job_id).await;
    assert_eq!(job["user"], "fireuser");
    let response = server
        .get(
            &format!("/compute/{SYSTEM}/jobs/{job_id}/metadata"),
            Some(&token),
        )
        .await;
    assert_eq!(response.status(), 200);
    let metadata: Value = response.json().await.unwrap();
    let metadata = &metadata["jobs"][0];
    assert_eq!(metadata["jobId"], job_id.as_str(), "{metadata}");
    assert_eq!(metadata["script"], Value::Null, "{metadata}");
    assert_eq!(metadata["standardOutput"], "/dev/null", "{metadata}");
    assert_eq!(
        metadata["standardError"],
        format!("{HOME}/rest-sleeper.err"),
        "{metadata}"
    );
    wait_for(&server, &token, &job_id, |s| s == "RUNNING").await;
    let response = crate::compute::attach(&server, &token, &job_id, "true").await;
    assert_eq!(response.status(), 501);

    let response = delete(&server, &token, &job_id).await;
    assert_eq!(response.status(), 204, "{}", response.text().await.unwrap());
    let job = wait_for(&server, &token, &job_id, finished).await;
    assert!(
        job["status"]["state"]
            .as_str()
            .unwrap()
            .starts_with("CANCELLED"),
        "{job}"
    );
    let response = delete(&server, &token, &job_id).await;
    assert_eq!(response.status(), 409);
    assert!(!std::path::Path::new(PWNED).exists());
}

#[tokio::test]
async fn rest_status_routes_and_health_come_from_slurmrestd() {
    let server = start(Mode::Rest).await;
    let token = user_token().await;
    let health = server
        .wait_for_health(&token, |health| health.iter().all(|h| h["healthy"] == true))
        .await;
    assert!(health.iter().any(|h| h["serviceType"] == "scheduler"));

    let partitions = server
        .get_json(&format!("/status/{SYSTEM}/partitions"), &token)
        .await;
    let names: Vec<&str> = partitions["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["normal", "debug"]);
    assert_eq!(partitions["partitions"][0]["partition"], "UP");
    let hidden = server
        .get_json(
            &format!("/status/{SYSTEM}/partitions?show_hidden=true"),
            &token,
        )
        .await;
    assert!(hidden["partitions"].as_array().unwrap().len() >= 2);

    let nodes = server
        .get_json(&format!("/status/{SYSTEM}/nodes"), &token)
        .await;
    assert_eq!(nodes["nodes"][0]["name"], "localhost");
    assert_eq!(nodes["nodes"][0]["cpus"], 2);

    let reservations = server
        .get_json(&format!("/status/{SYSTEM}/reservations"), &token)
        .await;
    let reservation = reservations["reservations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "fire_resv")
        .expect("the dev reservation");
    assert_eq!(reservation["nodeList"], "localhost");
    assert_eq!(reservation["state"], "active");

    let info: Value = server
        .get_json(&format!("/status/{SYSTEM}/userinfo"), &token)
        .await;
    let mut accounts: Vec<(String, bool)> = info["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap().to_string(),
                a["default"].as_bool().unwrap(),
            )
        })
        .collect();
    accounts.sort();
    assert_eq!(
        accounts,
        // staff and project1, and one account per Unix group (scripts/dev-env ensure_accounts).
        [
            ("fireuser".to_string(), false),
            ("hpcusers".to_string(), false),
            ("project1".to_string(), false),
            ("staff".to_string(), true)
        ]
    );
}

#[test]
fn every_scheduler_backend_is_served_and_api_versions_are_checked() {
    let problems = |edit: &dyn Fn(&mut Config)| {
        let mut config = dev_config();
        edit(&mut config);
        ironcrest::unsupported_features(&reloaded(&config))
            .into_iter()
            .map(|problem| problem.field)
            .collect::<Vec<_>>()
    };
    let rest = |version: &'static str| {
        move |config: &mut Config| {
            through_slurmrestd(
                config,
                ConnectionMode::Hybrid,
                "http://127.0.0.1:6820",
                version,
            )
        }
    };
    for version in ["0.0.38", "0.0.40", "v0.0.42"] {
        assert!(problems(&rest(version)).is_empty(), "{version}");
    }
    assert_eq!(
        problems(&rest("0.0.37")),
        ["clusters[0].scheduler.api_version"]
    );
    let pbs = |config: &mut Config| config.clusters[0].scheduler.kind = SchedulerType::Pbs;
    assert!(problems(&pbs).is_empty());
}

#[tokio::test]
async fn rest_reads_sbatch_directives_that_slurmrestd_ignores() {
    let server = start(Mode::Rest).await;
    let token = user_token().await;
    let response = crate::compute::submit(
        &server,
        &token,
        json!({"workingDirectory": HOME, "script": "#!/bin/bash\n#SBATCH --partition=nosuchpartition\ntrue\n"}),
    )
    .await;
    assert_eq!(response.status(), 400);
    assert!(
        message(response)
            .await
            .contains("Invalid partition name specified")
    );
    let response = crate::compute::submit(
        &server,
        &token,
        json!({"workingDirectory": HOME, "script": "#!/bin/bash\n#SBATCH --gres=gpu:1\ntrue\n"}),
    )
    .await;
    assert_eq!(response.status(), 400);
    assert!(
        message(response)
            .await
            .contains("not supported through slurmrestd")
    );

    let name = unique("ironcrest-directive");
    let job_id = submit_ok(
        &server,
        &token,
        json!({"workingDirectory": HOME, "standardOutput": "/dev/null",
               "script": format!("#!/bin/bash\n#SBATCH --job-name={name} --time=7\ntrue\n")}),
    )
    .await;
    let job = get_job(&server, &token, &job_id).await;
    assert_eq!(job["name"], name.as_str());
    assert_eq!(job["time"]["limit"], 7 * 60);
}
