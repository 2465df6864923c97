//! The PBS commands on recorded OpenPBS 22.05 outputs (`tests/fixtures/pbs/`).

use ironcrest_remote::{Output, RemoteCommand};

use super::*;
use crate::{JobEnv, NodeState, TimeWindow};

fn recorded(name: &str, exit_status: u32) -> Output {
    let path = format!("{}/tests/fixtures/pbs/{name}", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).unwrap_or_else(|err| panic!("{path}: {err}"));
    if exit_status == 0 {
        Output {
            stdout: bytes,
            stderr: Vec::new(),
            exit_status,
        }
    } else {
        Output {
            stdout: Vec::new(),
            stderr: bytes,
            exit_status,
        }
    }
}

fn line<C: RemoteCommand>(command: &C) -> String {
    command.command_line().to_string()
}

fn all_jobs() -> Vec<PbsJob> {
    Jobs.parse(recorded("qstat_jobs.json", 0)).unwrap()
}

fn job(id: &str) -> PbsJob {
    all_jobs()
        .into_iter()
        .find(|job| job.job.job_id == id)
        .unwrap()
}

#[test]
fn command_lines() {
    assert_eq!(line(&Jobs), "LC_ALL=C qstat -F json -f -x");
    assert_eq!(line(&Nodes), "LC_ALL=C pbsnodes -a -F json");
    assert_eq!(line(&Queues), "LC_ALL=C qstat -F json -f -Q");
    assert_eq!(line(&Server), "LC_ALL=C qstat -F json -f -B");
    assert_eq!(line(&Reservations), "LC_ALL=C pbs_rstat -f");
    assert_eq!(
        line(&Qdel::new("1043[].pbs01", "1043").unwrap()),
        "LC_ALL=C qdel '1043[].pbs01'"
    );
}

#[test]
fn a_running_job() {
    let running = job("1041");
    assert_eq!(running.pbs_id, "1041.pbs01");
    let job = running.job;
    assert_eq!(job.name, "sim-run");
    assert_eq!(job.status.state, "RUNNING");
    assert_eq!(job.user.as_deref(), Some("fireuser"));
    assert_eq!(job.group.as_deref(), Some("hpcusers"));
    assert_eq!(job.account.as_deref(), Some("proj42"));
    assert_eq!(job.partition, "workq");
    assert_eq!(job.nodes, "cn001");
    assert_eq!(job.allocation_nodes, 1);
    assert_eq!(job.cluster, "pbs01");
    assert_eq!(job.working_directory, "/home/fireuser/sim");
    assert_eq!(job.time.elapsed, Some(602));
    assert_eq!(job.time.limit, Some(7200));
    // Wed Nov 22 10:59:58 2023 UTC
    assert_eq!(job.time.start, Some(1_700_650_798));
    assert_eq!(job.time.end, None);
    assert_eq!(job.status.exit_code, None);
    assert!(job.is_active());
}

#[test]
fn a_queued_job_has_no_nodes_and_no_start() {
    let job = job("1042").job;
    assert_eq!(job.status.state, "PENDING");
    assert_eq!(job.nodes, "");
    assert_eq!(job.time.start, None);
    assert_eq!(job.time.elapsed, Some(0));
    assert_eq!(job.account, None);
    assert!(
        job.status
            .state_reason
            .unwrap()
            .contains("Insufficient amount of resource")
    );
}

#[test]
fn a_job_array_is_one_running_job() {
    let array = job("1043");
    assert_eq!(array.pbs_id, "1043[].pbs01");
    assert_eq!(array.job.status.state, "RUNNING");
    assert_eq!(array.job.name, "sweep");
}

#[test]
fn finished_jobs_split_exit_code_and_signal() {
    let ok = job("1038").job;
    assert_eq!(ok.status.state, "COMPLETED");
    assert_eq!(
        (ok.status.exit_code, ok.status.interrupt_signal),
        (Some(0), Some(0))
    );
    assert_eq!(ok.time.end, Some(1_700_644_352));
    assert!(!ok.is_active());
    let killed = job("1039").job;
    assert_eq!(killed.status.state, "CANCELLED");
    assert_eq!(
        (killed.status.exit_code, killed.status.interrupt_signal),
        (Some(0), Some(15))
    );
    assert_eq!(killed.user.as_deref(), Some("otheruser"));
    let failed = job("1040").job;
    assert_eq!(failed.status.state, "FAILED");
    assert_eq!(failed.status.exit_code, Some(3));
}

#[test]
fn output_paths_are_not_swapped_and_lose_their_host() {
    let job = job("1041");
    assert_eq!(
        job.stdout.as_deref(),
        Some("/home/fireuser/out/sim-run.log")
    );
    assert_eq!(job.stderr.as_deref(), Some("/home/fireuser/sim-run.e1041"));
}

#[test]
fn listings_filter_by_owner_name_account_and_window() {
    let now = 1_700_651_400;
    let ids = |filter: &JobFilter, now: i64| -> Vec<String> {
        let jobs = all_jobs().into_iter().map(|j| j.job).collect();
        let mut ids: Vec<String> = filter
            .apply(jobs, "fireuser", now)
            .into_iter()
            .map(|j| j.job_id)
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(
        ids(&JobFilter::default(), now),
        ["1038", "1040", "1041", "1042", "1043"]
    );
    let all = JobFilter {
        all_users: true,
        ..JobFilter::default()
    };
    assert!(ids(&all, now).contains(&"1039".to_string()));
    let named = JobFilter {
        name: Some("sweep".into()),
        ..JobFilter::default()
    };
    assert_eq!(ids(&named, now), ["1043"]);
    let account = JobFilter {
        account: Some("proj42".into()),
        ..JobFilter::default()
    };
    assert_eq!(ids(&account, now), ["1041"]);
    let hour = JobFilter {
        time_window: TimeWindow::OneHour,
        ..JobFilter::default()
    };
    // Two days later, with a 1h window, only active jobs remain.
    assert_eq!(ids(&hour, now + 2 * 86400), ["1041", "1042", "1043"]);
}

#[test]
fn no_jobs_at_all() {
    let output = Output {
        stdout: br#"{"timestamp":1700651400,"pbs_version":"22.05.11","pbs_server":"pbs01"}"#
            .to_vec(),
        stderr: Vec::new(),
        exit_status: 0,
    };
    assert!(Jobs.parse(output).unwrap().is_empty());
}

#[test]
fn nodes_with_states_and_memory() {
    let nodes = Nodes.parse(recorded("pbsnodes.json", 0)).unwrap();
    assert_eq!(nodes.len(), 3);
    let busy = &nodes[0];
    assert_eq!(busy.name, "cn001");
    assert_eq!(busy.state, vec![NodeState::Allocated]);
    assert_eq!(busy.cpus, 4);
    assert_eq!(busy.alloc_cpus, Some(4));
    assert_eq!(busy.idle_cpus, Some(0));
    assert_eq!(busy.alloc_memory, Some(4_194_304 * 1024));
    assert_eq!(busy.free_memory, Some((8_010_256 - 4_194_304) * 1024));
    assert_eq!(busy.hostname.as_deref(), Some("cn001"));
    assert_eq!(nodes[1].state, vec![NodeState::Idle]);
    assert_eq!(nodes[1].idle_cpus, Some(31));
    assert_eq!(nodes[2].state, vec![NodeState::Down, NodeState::Offline]);
    assert_eq!(nodes[2].alloc_cpus, Some(0));
}

#[test]
fn queues_are_partitions() {
    let queues = Queues.parse(recorded("qstat_queues.json", 0)).unwrap();
    let view: Vec<(&str, &str)> = queues
        .iter()
        .map(|q| (q.name.as_str(), q.partition.as_str()))
        .collect();
    assert_eq!(view, [("R1050", "UP"), ("debug", "DOWN"), ("workq", "UP")]);
    assert_eq!(queues[0].cpus, None);
}

#[test]
fn the_server_is_the_ping() {
    let pings = Server.parse(recorded("qstat_server.json", 0)).unwrap();
    assert_eq!(
        pings,
        vec![PingStatus {
            controller: "pbs01".into(),
            up: true
        }]
    );
    let failed = Server.parse(Output {
        stdout: Vec::new(),
        stderr: b"Connection refused\nqstat: cannot connect to server pbs01 (errno=15010)\n"
            .to_vec(),
        exit_status: 2,
    });
    assert!(failed.is_err());
}

#[test]
fn reservations_from_pbs_rstat() {
    let reservations = Reservations.parse(recorded("pbs_rstat.txt", 0)).unwrap();
    assert_eq!(reservations.len(), 2);
    assert_eq!(reservations[0].name, "maintenance");
    assert_eq!(reservations[0].node_list, "cn002,cn003");
    assert_eq!(reservations[0].state.as_deref(), Some("confirmed"));
    assert_eq!(
        reservations[0].end_time - reservations[0].start_time,
        14_400
    );
    assert_eq!(reservations[1].state.as_deref(), Some("active"));
    assert_eq!(reservations[1].node_list, "cn001");
    assert!(
        Reservations
            .parse(Output {
                stdout: Vec::new(),
                stderr: Vec::new(),
                exit_status: 0
            })
            .unwrap()
            .is_empty()
    );
}

#[test]
fn qsub_quotes_every_value_and_runs_in_the_working_directory() {
    let job = JobDescription {
        working_directory: "/home/u/it's here".into(),
        script: Some("#!/bin/bash\necho hi\n".into()),
        name: Some("n$(touch /tmp/pwned)'`x".into()),
        account: Some("proj42".into()),
        partition: Some("workq".into()),
        standard_output: Some("/home/u/o ut".into()),
        env: Some(JobEnv::Map(
            [("HOSTILE".to_string(), "a,b 'q' $(x)\nline".to_string())].into(),
        )),
        ..JobDescription::default()
    };
    let qsub = Qsub::new(&job).unwrap();
    // Every value is one quoted word (crates/remote checks the quoting through a real sh).
    assert_eq!(
        line(&qsub),
        "LC_ALL=C cd -- \"/home/u/it's here\" && LC_ALL=C env -- \"HOSTILE=a,b 'q' \"'$(x)\nline' qsub -V -N 'n$(touch /tmp/pwned)'\"'\"'`x' -q workq -P proj42 -o '/home/u/o ut'"
    );
    assert_eq!(qsub.stdin(), Some(&b"#!/bin/bash\necho hi\n"[..]));
    let reserved = JobDescription {
        reservation: Some("R1050".into()),
        script: None,
        script_path: Some("/home/u/job.sh".into()),
        ..job.clone()
    };
    let qsub = Qsub::new(&reserved).unwrap();
    assert!(line(&qsub).ends_with("-q R1050 -P proj42 -o '/home/u/o ut' /home/u/job.sh"));
    assert_eq!(qsub.stdin(), None);
}

#[test]
fn qsub_refuses_what_pbs_cannot_do() {
    let base = JobDescription {
        working_directory: "/w".into(),
        script: Some("x".into()),
        ..JobDescription::default()
    };
    for job in [
        JobDescription {
            standard_input: Some("/in".into()),
            ..base.clone()
        },
        JobDescription {
            constraints: Some("gpu".into()),
            ..base.clone()
        },
        JobDescription {
            script: None,
            script_path: Some("relative.sh".into()),
            ..base.clone()
        },
        JobDescription {
            name: Some("-W x".into()),
            ..base.clone()
        },
        JobDescription {
            name: Some("a\"b".into()),
            ..base.clone()
        },
    ] {
        assert!(
            matches!(Qsub::new(&job), Err(SchedulerError::InvalidArgument(_))),
            "{job:?}"
        );
    }
}

#[test]
fn qsub_reads_the_id_and_pbs_refusals() {
    let qsub = Qsub::new(&JobDescription {
        working_directory: "/w".into(),
        script: Some("x".into()),
        ..JobDescription::default()
    })
    .unwrap();
    let ok = Output {
        stdout: b"1044.pbs01\n".to_vec(),
        stderr: Vec::new(),
        exit_status: 0,
    };
    assert_eq!(qsub.parse(ok).unwrap(), "1044");
    assert!(matches!(
        qsub.parse(recorded("qsub_rejected.txt", 169)),
        Err(SchedulerError::Rejected { .. })
    ));
    assert!(matches!(
        qsub.parse(recorded("qsub_limit.txt", 38)),
        Err(SchedulerError::PolicyLimit { .. })
    ));
}

#[test]
fn qdel_errors() {
    let qdel = Qdel::new("1038.pbs01", "1038").unwrap();
    assert!(matches!(
        qdel.parse(recorded("qdel_finished.txt", 35)),
        Err(SchedulerError::JobNotActive { .. })
    ));
    assert!(matches!(
        qdel.parse(recorded("qstat_unknown.txt", 153)),
        Err(SchedulerError::JobNotFound)
    ));
}

#[test]
fn sizes_and_times() {
    use serde_json::json;
    assert_eq!(parse::bytes(&json!("4gb")), Some(4 << 30));
    assert_eq!(parse::bytes(&json!("512")), Some(512));
    assert_eq!(parse::bytes(&json!("1kw")), Some(8192));
    assert_eq!(parse::bytes(&json!("x")), None);
    assert_eq!(
        parse::time(&json!("Thu Nov  2 08:00:00 2023")),
        Some(1_698_912_000)
    );
    assert_eq!(parse::time(&json!(17)), Some(17));
}
