//! slurmrestd killed and started again, in `rest` and in `hybrid` mode: the job routes are
//! refused with a message naming the scheduler's REST API (or, once the health checker saw
//! it, as an unhealthy scheduler), the file routes keep working, and jobs work again after.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use ironcrest_config::{ConnectionMode, ProbedService};

use crate::harness::{TestServer, user_token};
use crate::instances::{shared_dir, slurmrestd};
use crate::load::{Fixture, Load, Op, Phase, assert_no_job_twice, verify};
use crate::{health_after, unhealthy};

const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

async fn server(system: &str, mode: ConnectionMode, port: u16) -> TestServer {
    TestServer::start_with(|config| {
        let cluster = &mut config.clusters[0];
        cluster.name = system.into();
        cluster.scheduler.connection_mode = mode;
        cluster.scheduler.api_url = Some(format!("http://127.0.0.1:{port}"));
        cluster.scheduler.api_version = Some("0.0.38".into());
        // slurmrestd 22.05 takes seconds for a day's job listing on a busy machine, and its
        // pings wait behind them: neither may time out while it is up. The outage's
        // refusals do not wait for these timeouts.
        cluster.scheduler.timeout = 30;
        let probes = &mut cluster.probing.services;
        probes.get_mut(&ProbedService::Scheduler).unwrap().timeout = 30;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slurmrestd_killed_then_restarted_in_rest_and_hybrid_mode() {
    let dir = shared_dir();
    let mut restd = slurmrestd(dir.path());
    let systems = [
        ("faults-restd-rest", ConnectionMode::Rest),
        ("faults-restd-hybrid", ConnectionMode::Hybrid),
    ];
    let mut servers = Vec::new();
    for (system, mode) in systems {
        servers.push(server(system, mode, restd.port).await);
    }
    let token = user_token().await;
    let fixture = Arc::new(Fixture::new("faults-restd"));
    // Listings through slurmrestd are slow (seconds for a day of jobs): one load lists, and
    // in hybrid mode submissions (through slurmrestd as well) are enough.
    let ops: [&[Op]; 2] = [
        &[Op::Systems, Op::Ls, Op::Stat, Op::Jobs, Op::Submit],
        &[Op::Systems, Op::Ls, Op::Submit],
    ];
    let loads: Vec<Load> = servers
        .iter()
        .zip(systems)
        .zip(ops)
        .map(|((server, (system, _)), ops)| {
            Load::start(
                &server.url,
                system,
                &token,
                fixture.clone(),
                ops,
                CLIENT_TIMEOUT,
            )
        })
        .collect();
    for load in &loads {
        load.rounds(2).await;
    }

    for load in &loads {
        load.enter(Phase::Outage);
    }
    restd.kill();
    let broken = Utc::now();
    for server in &servers {
        let check = health_after(server, &token, "scheduler", broken).await;
        assert_eq!(check["healthy"], false, "{check}");
    }
    for load in &loads {
        load.rounds(3).await;
    }

    restd.restart();
    let mended = Utc::now();
    for server in &servers {
        let check = health_after(server, &token, "scheduler", mended).await;
        assert_eq!(check["healthy"], true, "{check}");
    }
    for load in &loads {
        load.recover().await;
        load.rounds(2).await;
    }
    for (load, (system, _)) in loads.into_iter().zip(systems) {
        let answers = load.finish().await;
        verify(&answers, |answer| {
            matches!(answer.op, Op::Jobs | Op::Submit)
                && (unhealthy(answer, "scheduler", system)
                    || answer.is(424, "Slurm API unavailable: "))
        });
        assert!(
            answers.iter().any(|a| a.started == Phase::Outage
                && (unhealthy(a, "scheduler", system) || a.is(424, "Slurm API unavailable: "))),
            "{system}: no job request was refused"
        );
        assert_no_job_twice(&answers);
    }
}
