//! A slow login node: every command of the user waits seconds before it starts (the
//! certificates' forced command is a wrapper that sleeps, then runs the guard). Timeouts fire
//! as configured, the command is stopped and its pool slot returned, and once the node is
//! fast again nothing of the slowness remains.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ironcrest_config::SshCredentialsConfig;
use serde_json::json;

use crate::harness::{TestServer, env, guard_log, guard_path, user_token};
use crate::instances::shared_dir;
use crate::load::{Answer, Fixture, Load, Op, Phase, at_once, jobs_named, unique, verify};

const SYSTEM: &str = "faults-slow";
/// `ssh.timeout.command_execution` of the test server: above what a listing takes on a
/// busy 2-core machine.
const COMMAND_TIMEOUT: u64 = 4;
/// How long the slow node makes each command wait: well past the command timeout.
const DELAY: u64 = 8;
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

/// The forced command: while `<dir>/slow.<user>` exists, the user's commands wait `delay`
/// seconds (their wrapper's pid is noted in `<dir>/delayed`) before the guard runs them.
pub fn slow_wrapper(dir: &Path, delay: u64) -> String {
    let wrapper = dir.join("slow-login-node");
    let delayed = dir.join("delayed");
    std::fs::write(&delayed, b"").unwrap();
    std::fs::set_permissions(
        &delayed,
        std::os::unix::fs::PermissionsExt::from_mode(0o666),
    )
    .unwrap();
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\n\
             if [ -e '{dir}/slow.'\"$(id -un)\" ]; then\n  echo $$ >> '{delayed}'\n  sleep {delay}\nfi\n\
             exec '{guard}' --log-file '{log}'\n",
            dir = dir.display(),
            delayed = delayed.display(),
            guard = guard_path().display(),
            log = guard_log().display(),
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    wrapper.to_str().unwrap().to_string()
}

/// Makes `user`'s commands slow (or fast again).
pub fn set_slow(dir: &Path, user: &str, slow: bool) {
    let flag = dir.join(format!("slow.{user}"));
    if slow {
        std::fs::write(flag, b"").unwrap();
    } else {
        std::fs::remove_file(flag).unwrap();
    }
}

/// Waits until no delayed command is still waiting.
pub async fn wait_for_delayed_commands(dir: &Path) {
    for _ in 0..300 {
        let pids = std::fs::read_to_string(dir.join("delayed")).unwrap();
        if pids
            .lines()
            .all(|pid| !Path::new(&format!("/proc/{pid}")).exists())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("delayed commands still waiting after 30 s");
}

pub fn force_command(config: &mut ironcrest_config::Config, command: String) {
    let SshCredentialsConfig::CertificateAuthority { restrictions, .. } =
        &mut config.ssh_credentials
    else {
        panic!("the dev configuration uses the built-in CA");
    };
    restrictions.force_command = Some(command);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_login_node_times_out_as_configured_and_leaves_nothing_behind() {
    let dir = shared_dir();
    let wrapper = slow_wrapper(dir.path(), DELAY);
    let server = TestServer::start_with(|config| {
        force_command(config, wrapper);
        let cluster = &mut config.clusters[0];
        cluster.name = SYSTEM.into();
        cluster.ssh.timeout.command_execution = COMMAND_TIMEOUT;
    })
    .await;
    let token = user_token().await;
    let fixture = Arc::new(Fixture::new("faults-slow"));
    // No job listing: a day of a busy test cluster's jobs can take the command timeout
    // itself; submissions time out on the slow node all the same.
    let ops = [
        Op::Systems,
        Op::Userinfo,
        Op::Ls,
        Op::Stat,
        Op::Head,
        Op::Checksum,
        Op::Submit,
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

    let user = env("IRONCREST_DEV_USER");
    set_slow(dir.path(), &user, true);
    load.enter(Phase::Outage);
    // A submission with an Idempotency-Key times out; its retry must not make a second job.
    let key = unique("faults-slow-key");
    let name = unique("faults-slow-keyed");
    let job = json!({"job": {"name": name, "workingDirectory": fixture.dir,
                             "script": "#!/bin/bash\ntrue\n"}});
    let submit = || {
        server
            .http
            .post(format!("{}/compute/{SYSTEM}/jobs", server.url))
            .bearer_auth(&token)
            .header("Idempotency-Key", &key)
            .json(&job)
            .send()
    };
    let first = submit().await.unwrap();
    assert_eq!(first.status(), 408, "{:?}", first.text().await);
    load.rounds(3).await;
    let timeouts = server
        .metric(
            "ironcrest_remote_commands_total",
            &[
                ("cluster", SYSTEM),
                ("command", "Stat"),
                ("outcome", "command_timeout"),
            ],
        )
        .await;
    assert!(timeouts > 0.0, "no timed-out command counted");

    set_slow(dir.path(), &user, false);
    // The commands that timed out were stopped while they waited: none runs late.
    wait_for_delayed_commands(dir.path()).await;
    load.recover().await;
    load.rounds(2).await;
    let answers = load.finish().await;
    verify(&answers, |answer| {
        answer.op != Op::Systems && answer.is(408, "Command execution timeout limit exceeded.")
    });
    assert!(
        answers
            .iter()
            .any(|a| a.started == Phase::Outage && a.status == Some(408)),
        "nothing timed out"
    );
    crate::load::assert_no_job_twice(&answers);

    // Retried with the same key, as a client does after a timeout (again while the
    // busy machine's lookup of the key takes the command timeout).
    let mut retried = submit().await.unwrap();
    for _ in 0..5 {
        if retried.status() != 408 {
            break;
        }
        retried = submit().await.unwrap();
    }
    assert_eq!(retried.status(), 201, "{:?}", retried.text().await);
    assert_eq!(
        jobs_named(&name),
        1,
        "the keyed submission made another job"
    );

    // Every slot came back: a burst works, and once idle only the standing SFTP sessions
    // hold channels.
    let burst = at_once(
        &server.url,
        SYSTEM,
        &token,
        fixture.clone(),
        &[Op::Checksum; 8],
        Phase::After,
        CLIENT_TIMEOUT,
    )
    .await;
    assert!(burst.iter().all(Answer::is_success), "{burst:?}");
    let cluster = [("cluster", SYSTEM)];
    for _ in 0..100 {
        let channels = server
            .metric("ironcrest_ssh_channels_in_use", &cluster)
            .await;
        let sftp = server.metric("ironcrest_ssh_sftp_sessions", &cluster).await;
        if channels == sftp {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("channels still in use after the requests ended");
}
