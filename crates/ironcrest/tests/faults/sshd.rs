//! sshd on the login node: killed with every open connection, then started again; and
//! refusing new connections (MaxStartups) while the open ones keep working.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use crate::harness::{TestServer, user_token};
use crate::instances::Sshd;
use crate::load::{Answer, Fixture, Load, Op, Phase, assert_no_job_twice, at_once, verify};
use crate::{health_after, ssh_failure, unhealthy};

/// The configured timeouts a request can meet (connection, login, command, and the
/// scheduler's), with generous slack: a request not answered by then hung.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sshd_killed_with_its_connections_then_restarted() {
    const SYSTEM: &str = "faults-sshd-killed";
    let mut sshd = Sshd::start(&[]);
    let server = TestServer::start_with(|config| {
        sshd.serve(config);
        config.clusters[0].name = SYSTEM.into();
    })
    .await;
    let token = user_token().await;
    let fixture = Arc::new(Fixture::new("faults-sshd"));
    health_after(&server, &token, "ssh", Utc::now()).await;
    let load = Load::start(
        &server.url,
        SYSTEM,
        &token,
        fixture,
        &Op::ALL,
        CLIENT_TIMEOUT,
    );
    load.rounds(2).await;

    load.enter(Phase::Outage);
    sshd.instance.kill();
    let broken = Utc::now();
    // The first health check after the kill shows it, on /status/systems and /metrics.
    for service in ["ssh", "scheduler"] {
        let check = health_after(&server, &token, service, broken).await;
        assert_eq!(check["healthy"], false, "{check}");
        assert!(check["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let labels = [("cluster", SYSTEM), ("service", "ssh"), ("path", "")];
    assert_eq!(server.metric("ironcrest_health_up", &labels).await, 0.0);
    load.rounds(3).await;

    sshd.instance.restart();
    let mended = Utc::now();
    let check = health_after(&server, &token, "ssh", mended).await;
    assert_eq!(check["healthy"], true, "{check}");
    load.recover().await;
    load.rounds(2).await;
    let answers = load.finish().await;

    verify(&answers, |answer| match answer.op {
        // Needs no backend: never refused.
        Op::Systems => false,
        Op::Userinfo | Op::Ls | Op::Stat | Op::Head | Op::Checksum => {
            unhealthy(answer, "ssh", SYSTEM) || ssh_failure(answer)
        }
        Op::Jobs | Op::Submit => unhealthy(answer, "scheduler", SYSTEM) || ssh_failure(answer),
        Op::StagedDownload => {
            unhealthy(answer, "ssh", SYSTEM)
                || unhealthy(answer, "scheduler", SYSTEM)
                || ssh_failure(answer)
        }
    });
    let gated = answers
        .iter()
        .filter(|a| a.started == Phase::Outage && unhealthy(a, "ssh", SYSTEM))
        .count();
    assert!(gated > 0, "no request was refused as unhealthy");
    assert_no_job_twice(&answers);
}

/// sshd's MaxStartups at work (here `PerSourceMaxStartups`, all clients being on loopback;
/// the dev configuration's `MaxStartups` cannot be lowered with `-o`): with as many
/// unauthenticated connections pending as it allows, sshd drops every new one. Requests on the open connections go on; those that
/// need a new connection fail at once with 424, and succeed again once sshd accepts.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sshd_refusing_new_connections_while_the_open_ones_live() {
    const SYSTEM: &str = "faults-sshd-startups";
    // Two users (fireuser, and the health checker's firesrv) open at most one connection
    // each at a time, so two pending connections are never refused in normal operation.
    let sshd = Sshd::start(&["PerSourceMaxStartups=2", "LoginGraceTime=0"]);
    let server = TestServer::start_with(|config| {
        sshd.serve(config);
        let cluster = &mut config.clusters[0];
        cluster.name = SYSTEM.into();
        // Few channels per connection, so a burst of requests needs new connections.
        cluster.ssh.max_sessions_per_connection = 2;
    })
    .await;
    let token = user_token().await;
    let fixture = Arc::new(Fixture::new("faults-startups"));
    health_after(&server, &token, "ssh", Utc::now()).await;
    let ops = [
        Op::Systems,
        Op::Ls,
        Op::Stat,
        Op::Head,
        Op::Userinfo,
        Op::Jobs,
    ];
    let load = Load::start(
        &server.url,
        SYSTEM,
        &token,
        fixture.clone(),
        &ops,
        CLIENT_TIMEOUT,
    );
    load.rounds(2).await;

    // Two connections that never authenticate fill sshd's MaxStartups.
    let port = sshd.instance.port;
    let blockers: Vec<_> = (0..2)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    wait_until_refused(port).await;
    let broken = Utc::now();
    load.enter(Phase::Outage);
    let mut burst_answers = Vec::new();
    for _ in 0..3 {
        burst_answers.extend(burst(&server.url, SYSTEM, &token, &fixture, Phase::Outage).await);
    }
    // The health checker's open connection keeps working: the cluster is not unhealthy.
    let check = health_after(&server, &token, "ssh", broken).await;
    assert_eq!(check["healthy"], true, "{check}");
    let failed_opens = server
        .metric(
            "ironcrest_ssh_connection_opens_total",
            &[("cluster", SYSTEM), ("outcome", "connection_failed")],
        )
        .await;
    assert!(failed_opens > 0.0, "no failed connection counted");

    drop(blockers);
    load.enter(Phase::Recovering);
    let mut recovered = false;
    for _ in 0..30 {
        let answers = burst(&server.url, SYSTEM, &token, &fixture, Phase::Recovering).await;
        recovered = answers.iter().all(Answer::is_success);
        burst_answers.extend(answers);
        if recovered {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(recovered, "a burst never succeeded again");
    load.recover().await;
    load.rounds(2).await;
    let answers = load.finish().await;

    let refused = |answer: &Answer| answer.is(424, "Unable to establish SSH connection.");
    verify(&answers, |answer| {
        answer.op != Op::Systems && refused(answer)
    });
    verify(&burst_answers, refused);
    let during: Vec<&Answer> = burst_answers
        .iter()
        .filter(|a| a.started == Phase::Outage)
        .collect();
    assert!(
        during.iter().any(|a| refused(a)),
        "no request needed a new connection"
    );
    assert!(
        during.iter().any(|a| a.is_success()),
        "the open connections served nothing"
    );
}

/// Waits until sshd drops a new connection without its banner (it says `Exceeded
/// MaxStartups` instead).
async fn wait_until_refused(port: u16) {
    for _ in 0..100 {
        let banner = tokio::task::spawn_blocking(move || {
            use std::io::Read;
            let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut buffer = [0u8; 4];
            let read = stream.read(&mut buffer).ok()?;
            Some(buffer[..read].to_vec())
        })
        .await
        .unwrap();
        if banner.as_deref().is_none_or(|b| !b.starts_with(b"SSH-")) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("sshd kept accepting connections past MaxStartups");
}

/// Twelve checksums at once: more channels than the open connections have.
async fn burst(
    url: &str,
    system: &str,
    token: &str,
    fixture: &Arc<Fixture>,
    phase: Phase,
) -> Vec<Answer> {
    let ops = [Op::Checksum; 12];
    at_once(
        url,
        system,
        token,
        fixture.clone(),
        &ops,
        phase,
        CLIENT_TIMEOUT,
    )
    .await
}
