//! The readers on slurmrestd v0.0.38 responses captured from the dev environment
//! (`scripts/devenv/capture-fixtures`, `scripts/devenv/capture-rest-compute-fixtures`), and
//! on v0.0.40+ shapes from the wire reference.

use serde_json::{Map, Value, json};

use super::parse;
use super::*;
use crate::slurm::job_rows::{Row, merge};
use crate::{JobEnv, NodeState};

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/slurmrestd-0.0.38/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{path}: {err}"));
    serde_json::from_str(&text).unwrap()
}

fn jobs(rows: Vec<Row>) -> Vec<Job> {
    merge(rows, Vec::new())
}

#[test]
fn nodes_of_the_dev_cluster() {
    let nodes = parse::nodes(&fixture("nodes")).unwrap();
    assert_eq!(nodes.len(), 1);
    let node = &nodes[0];
    assert_eq!(node.name, "localhost");
    assert_eq!(node.cpus, 2);
    assert_eq!(node.state, vec![NodeState::Idle, NodeState::Reserved]);
    assert_eq!(
        node.partitions,
        Some(vec!["normal".to_string(), "debug".to_string()])
    );
    assert_eq!(node.cpu_load, Some(1.14));
    assert_eq!(node.features, None);
    let busy = parse::nodes(&fixture("nodes_busy")).unwrap();
    assert!(busy[0].alloc_cpus.is_some());
}

#[test]
fn newer_node_shapes_are_read() {
    let body = json!({"nodes": [{"name": "n1", "cpus": 4, "state": ["MIXED", "DRAIN"],
        "free_memory": {"set": true, "infinite": false, "number": 100},
        "features": ["gpu", "a100"], "partitions": ["p"]}]});
    let node = &parse::nodes(&body).unwrap()[0];
    assert_eq!(node.state, vec![NodeState::Mixed, NodeState::Drain]);
    assert_eq!(node.free_memory, Some(100));
    assert_eq!(node.features, Some(vec!["gpu".into(), "a100".into()]));
}

#[test]
fn partitions_and_hidden_ones() {
    let partitions = parse::partitions(&fixture("partitions"), false).unwrap();
    let names: Vec<_> = partitions.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["normal", "debug"]);
    assert_eq!(partitions[0].partition, "UP");
    assert_eq!(partitions[0].cpus, Some(2));
    assert_eq!(partitions[0].total_nodes, Some(1));
    let body = json!({"partitions": [
        {"name": "h", "flags": ["hidden"], "state": "UP"},
        {"name": "n", "partition": {"state": ["DOWN"]}, "cpus": {"total": 8}, "nodes": {"total": 2}}
    ]});
    let visible = parse::partitions(&body, false).unwrap();
    assert_eq!(visible.len(), 1);
    assert_eq!(visible[0].partition, "DOWN");
    assert_eq!(visible[0].cpus, Some(8));
    assert_eq!(parse::partitions(&body, true).unwrap().len(), 2);
}

#[test]
fn reservations_with_state_from_the_times() {
    let reservations = parse::reservations(&fixture("reservations"), 1_795_386_400).unwrap();
    assert_eq!(reservations.len(), 1);
    assert_eq!(reservations[0].name, "fire_resv");
    assert_eq!(reservations[0].node_list, "localhost");
    assert_eq!(reservations[0].state.as_deref(), Some("active"));
    assert_eq!(reservations[0].features, None);
    let later = parse::reservations(&fixture("reservations"), 1_795_386_000).unwrap();
    assert_eq!(later[0].state.as_deref(), Some("inactive"));
    assert!(
        parse::reservations(&fixture("reservations_none"), 0)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn accounts_with_the_default_marked() {
    let accounts = parse::accounts(&fixture("associations")).unwrap();
    assert_eq!(
        accounts,
        vec![
            Account {
                name: "project1".into(),
                default: false
            },
            Account {
                name: "staff".into(),
                default: true
            }
        ]
    );
    let newer = json!({"associations": [{"account": "a", "flags": ["DEFAULT"]}, {"account": "a"}]});
    assert_eq!(
        parse::accounts(&newer).unwrap(),
        vec![Account {
            name: "a".into(),
            default: true
        }]
    );
}

#[test]
fn pings_old_and_new() {
    let pings = parse::pings(&fixture("ping")).unwrap();
    assert_eq!(
        pings,
        vec![PingStatus {
            controller: "vm".into(),
            up: true
        }]
    );
    let newer = json!({"pings": [{"hostname": "c", "pinged": "DOWN", "responding": false}]});
    assert!(!parse::pings(&newer).unwrap()[0].up);
}

#[test]
fn a_running_job_from_the_controller() {
    let rows = parse::controller_jobs(&fixture("job_running"), 1_795_389_200).unwrap();
    let job = &jobs(rows)[0];
    assert_eq!(job.name, "rest-sleeper");
    assert_eq!(job.user.as_deref(), Some("fireuser"));
    assert_eq!(job.working_directory, "/home/fireuser");
    assert_eq!(job.cluster, "hpcenv");
    assert!(job.is_active());
    assert_eq!(job.status.exit_code, Some(0));
}

#[test]
fn the_controller_listing_and_accounting_merge() {
    let controller = parse::controller_jobs(&fixture("jobs"), 1_795_389_200).unwrap();
    let accounting = parse::accounting_jobs(&fixture("db_jobs")).unwrap();
    let merged = merge(accounting, controller);
    let completed = merged
        .iter()
        .find(|job| job.status.state == "COMPLETED")
        .expect("a completed job");
    let tasks = completed.tasks.as_ref().unwrap();
    assert!(
        tasks
            .iter()
            .any(|t| t.id == format!("{}.batch", completed.job_id))
    );
    assert_eq!(completed.status.interrupt_signal, Some(0));
}

#[test]
fn an_accounting_record_of_a_pending_job() {
    let job = &jobs(parse::accounting_jobs(&fixture("db_job_failed")).unwrap())[0];
    assert_eq!(job.name, "rest-fail3");
    assert_eq!(job.time.start, None);
    assert_eq!(job.time.limit, None);
    assert_eq!(job.status.state, "PENDING");
}

#[test]
fn newer_job_shapes_unwrap_numbers_and_states() {
    let body = json!({"jobs": [{"job_id": 7, "name": "n", "user": "u",
        "state": {"current": ["FAILED"], "reason": "NonZeroExitCode"},
        "exit_code": {"status": ["FAILED"], "return_code": {"set": true, "number": 3},
                      "signal": {"id": {"set": false, "number": 0}, "name": ""}},
        "time": {"elapsed": 5, "start": 10, "end": 15, "suspended": 0,
                 "limit": {"set": true, "infinite": false, "number": 30}},
        "priority": {"set": true, "number": 9},
        "steps": [{"step": {"id": "7.batch", "name": "batch"}, "state": ["FAILED"],
                   "exit_code": {"return_code": {"set": true, "number": 3}}, "time": {}}]}]});
    let job = &jobs(parse::accounting_jobs(&body).unwrap())[0];
    assert_eq!(job.status.state, "FAILED");
    assert_eq!(job.status.exit_code, Some(3));
    assert_eq!(job.status.interrupt_signal, Some(0));
    assert_eq!(job.time.limit, Some(1800));
    assert_eq!(job.priority, Some(9));
    assert_eq!(job.tasks.as_ref().unwrap()[0].id, "7.batch");
    let controller = json!({"jobs": [{"job_id": 8, "job_state": ["RUNNING"],
        "time_limit": {"set": true, "infinite": true, "number": 0}, "start_time": {"set": true, "number": 100},
        "end_time": {"set": true, "number": 0}}]});
    let job = &jobs(parse::controller_jobs(&controller, 160).unwrap())[0];
    assert_eq!(job.status.state, "RUNNING");
    assert_eq!(job.time.limit, None);
    assert_eq!(job.time.elapsed, Some(60));
}

#[test]
fn a_raw_wait_status_splits_into_code_and_signal() {
    let body = json!({"jobs": [{"job_id": 1, "job_state": "FAILED", "exit_code": 768},
                               {"job_id": 2, "job_state": "CANCELLED", "exit_code": 9}]});
    let jobs = jobs(parse::controller_jobs(&body, 0).unwrap());
    assert_eq!(
        (jobs[0].status.exit_code, jobs[0].status.interrupt_signal),
        (Some(3), Some(0))
    );
    assert_eq!(
        (jobs[1].status.exit_code, jobs[1].status.interrupt_signal),
        (Some(0), Some(9))
    );
}

#[test]
fn submit_ids_are_read() {
    assert!(
        parse::submitted_job_id(&fixture("job_submit"))
            .unwrap()
            .parse::<u64>()
            .is_ok()
    );
    assert_eq!(
        parse::submitted_job_id(&json!({"result": {"job_id": 5}})).unwrap(),
        "5"
    );
    assert!(parse::submitted_job_id(&json!({})).is_err());
}

#[test]
fn submit_bodies_follow_the_api_version() {
    let job = JobDescription {
        working_directory: "/w".into(),
        name: Some("n '$(x)'".into()),
        env: Some(JobEnv::List(vec!["A=1".into()])),
        ..JobDescription::default()
    };
    let env = job.environment().unwrap();
    let old = parse::submit_body(
        ApiVersion::V0038,
        &job,
        "#!/bin/sh\n",
        &env,
        Map::new(),
        None,
    );
    assert_eq!(
        old,
        json!({"script": "#!/bin/sh\n", "job": {"current_working_directory": "/w",
            "name": "n '$(x)'", "environment": {"A": "1"}}})
    );
    let v40 = parse::submit_body(ApiVersion::V0040, &job, "s", &env, Map::new(), None);
    assert_eq!(v40["job"]["environment"], json!(["A=1"]));
    assert_eq!(v40["script"], json!("s"));
    let v41 = parse::submit_body(ApiVersion::V0041, &job, "s", &env, Map::new(), None);
    assert_eq!(v41["job"]["script"], json!("s"));
    assert!(v41.get("script").is_none());
    let directives: Map<String, Value> = [
        ("name".to_string(), json!("from-script")),
        ("partition".to_string(), json!("debug")),
    ]
    .into_iter()
    .collect();
    let merged = parse::submit_body(ApiVersion::V0038, &job, "s", &env, directives, None);
    assert_eq!(merged["job"]["name"], "n '$(x)'");
    assert_eq!(merged["job"]["partition"], "debug");
    assert!(merged["job"].get("comment").is_none());

    let comment = crate::JobComment {
        ids: ironcrest_remote::RequestIds {
            request_id: "r1".into(),
            correlation_id: Some("c1".into()),
        },
        idempotency: Some(ironcrest_remote::IdempotencyMark {
            key_hash: "0123456789abcdef".into(),
            fingerprint_hash: "fedcba9876543210".into(),
        }),
        task: None,
    };
    let traced = parse::submit_body(
        ApiVersion::V0040,
        &job,
        "s",
        &env,
        Map::new(),
        Some(&comment),
    );
    assert_eq!(
        traced["job"]["comment"],
        "ironcrest request r1 correlation c1 idempotency 0123456789abcdef fedcba9876543210"
    );
    assert_eq!(
        traced["job"]["environment"],
        json!([
            "A=1",
            "IRONCREST_REQUEST_ID=r1",
            "IRONCREST_CORRELATION_ID=c1"
        ])
    );
}

#[test]
fn slurmrestd_quirks_map_to_firecrest_errors() {
    let errors = |name| parse::errors(&fixture(name));
    assert!(matches!(
        classify(500, &errors("job_unknown")),
        SchedulerError::JobNotFound
    ));
    assert!(matches!(
        classify(500, &errors("job_cancel_unknown")),
        SchedulerError::JobNotFound
    ));
    assert!(matches!(
        classify(200, &errors("db_job_unknown")),
        SchedulerError::JobNotFound
    ));
    assert!(matches!(
        classify(500, &errors("jobs_bad_token")),
        SchedulerError::RestTokenRefused { .. }
    ));
    assert!(matches!(
        classify(401, &[]),
        SchedulerError::RestTokenRefused { .. }
    ));
    let epoch = classify(500, &errors("db_jobs_epoch"));
    assert!(matches!(epoch, SchedulerError::RestApi { status: 500, .. }));
    let partition = submit_refusal(classify(500, &errors("job_submit_bad_partition")));
    match partition {
        SchedulerError::Rejected { message, .. } => {
            assert!(message.contains("Invalid partition name specified"))
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        submit_refusal(SchedulerError::RestApi {
            status: 500,
            message: "Job violates accounting/QOS policy (job submit limit, user's size and/or time limits)".into()
        }),
        SchedulerError::PolicyLimit { .. }
    ));
}

#[test]
fn paths_carry_the_configured_version() {
    let rest = SlurmRest::new(
        reqwest::Client::new(),
        "http://h:6820/",
        ApiVersion::V0041,
        Duration::from_secs(1),
        None,
    );
    assert_eq!(rest.slurm_path("jobs"), "/slurm/v0.0.41/jobs");
    assert_eq!(rest.slurmdb_path("job/1"), "/slurmdb/v0.0.41/job/1");
    assert_eq!(rest.base_url, "http://h:6820");
    assert!(matches!(
        rest.cli("Job metadata"),
        Err(SchedulerError::NotSupported(_))
    ));
}

#[test]
fn commented_jobs_of_the_caller_in_both_listings() {
    let keyed = "ironcrest request r idempotency 0123456789abcdef fedcba9876543210";
    // The controller's comment is a string and its owner `user_name`; the accounting
    // database's comment an object (v0.0.38 fixture shape) and its owner `user`.
    let controller = json!({"jobs": [
        {"job_id": 7, "user_name": "fireuser", "comment": keyed},
        {"job_id": 8, "user_name": "other", "comment": keyed},
        {"job_id": 9, "user_name": "fireuser", "comment": ""},
    ]});
    let accounting = json!({"jobs": [
        {"job_id": 5, "user": "fireuser", "comment": {"administrator": null, "job": "ironcrest request q", "system": null}},
        {"job_id": 6, "user": "fireuser", "comment": {"administrator": null, "job": null, "system": null}},
    ]});
    let ids = |body: &Value| {
        parse::commented_jobs(body, "fireuser")
            .unwrap()
            .into_iter()
            .map(|job| (job.job_id, job.comment.idempotency.is_some()))
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&controller), [("7".to_string(), true)]);
    assert_eq!(ids(&accounting), [("5".to_string(), false)]);
    // The captured listings (no job of the fixtures carries Ironcrest's comment) parse.
    assert!(
        parse::commented_jobs(&fixture("jobs"), "fireuser")
            .unwrap()
            .is_empty()
    );
    assert!(
        parse::commented_jobs(&fixture("db_jobs"), "fireuser")
            .unwrap()
            .is_empty()
    );
}
