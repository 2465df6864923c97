//! The pool against a real OpenSSH server (see `support`): every test starts its own
//! sshd on a free port, so tests run in parallel and leave nothing behind.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ironcrest_config::{Secret, StaticKey};
use ironcrest_remote::{Caller, CommandError, CommandLine, Output, RemoteCommand};
use ironcrest_ssh::{
    CertificateAuthority, CredentialProvider, Credentials, Input, InputAborted, PoolSettings,
    RunError, SftpError, SshError, SshPool, StaticKeys, Streamed,
};
use russh::keys::PrivateKey;
use russh::keys::ssh_key::{Algorithm, LineEnding};
use support::{OTHER_USER, Sshd, USER};

fn user(name: &str) -> Caller {
    Caller::new(name, "unused-token")
}

fn sh(script: &str) -> CommandLine {
    CommandLine::builder("sh")
        .option_arg("-c", script)
        .expect("quotable")
        .build()
}

fn ca_pool(sshd: &Sshd, settings: PoolSettings) -> SshPool {
    let ca = CertificateAuthority::from_openssh(&sshd.ca_private_key, 300).expect("ca");
    SshPool::new(settings, Arc::new(ca))
}

/// Always the same credentials, whatever the user.
struct Fixed(Credentials);

#[async_trait]
impl CredentialProvider for Fixed {
    async fn credentials(&self, _: &Caller) -> Result<Credentials, SshError> {
        Ok(self.0.clone())
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// Polls `condition` for up to 20 s (a bound for a hung test, not a performance claim).
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !condition() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

struct WhoAmI;

impl RemoteCommand for WhoAmI {
    type Parsed = String;
    type Error = CommandError;

    fn command_line(&self) -> CommandLine {
        CommandLine::builder("id").word("-un").build()
    }

    fn parse(&self, output: Output) -> Result<String, CommandError> {
        if output.exit_status != 0 {
            return Err(CommandError::failed(&output));
        }
        Ok(output.stdout_text().trim().to_string())
    }

    fn examples() -> Vec<Self> {
        vec![WhoAmI]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_commands_as_the_user_with_a_ca_certificate() {
    let Some(sshd) = Sshd::start() else { return };
    let pool = ca_pool(&sshd, sshd.settings());

    assert_eq!(pool.run(&user(USER), &WhoAmI).await.expect("id"), USER);
    let failed = pool
        .execute(&user(USER), &sh("echo out; echo err >&2; exit 3"), None)
        .await
        .expect("runs");
    assert_eq!(failed.exit_status, 3);
    assert_eq!(failed.stdout, b"out\n");
    assert_eq!(failed.stderr, b"err\n");

    struct Fails;
    impl RemoteCommand for Fails {
        type Parsed = ();
        type Error = CommandError;
        fn command_line(&self) -> CommandLine {
            CommandLine::builder("ls")
                .operands(["/nonexistent-ironcrest"])
                .expect("quotable")
                .build()
        }
        fn parse(&self, output: Output) -> Result<(), CommandError> {
            Err(CommandError::failed(&output))
        }
        fn examples() -> Vec<Self> {
            vec![Fails]
        }
    }
    let err = pool.run(&user(USER), &Fails).await.unwrap_err();
    assert!(matches!(err, RunError::Command(_)), "{err:?}");
    assert!(
        err.to_string().contains("No such file or directory"),
        "{err}"
    );

    assert_eq!(pool.stats().opened_total, 1);
    assert!(
        sshd.log()
            .contains(&format!("Accepted certificate ID \"ironcrest:{USER}\"")),
        "{}",
        sshd.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdin_round_trips_one_mebibyte_of_binary_data() {
    let Some(sshd) = Sshd::start() else { return };
    let pool = ca_pool(&sshd, sshd.settings());
    let data: Vec<u8> = (0..(1u32 << 20))
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let output = pool
        .execute(
            &user(USER),
            &CommandLine::builder("cat").build(),
            Some(&data),
        )
        .await
        .expect("cat");
    assert_eq!(output.exit_status, 0);
    assert_eq!(output.stdout.len(), data.len());
    assert!(output.stdout == data, "bytes differ");

    // A command that ignores its input still finishes.
    let output = pool
        .execute(&user(USER), &sh("echo done"), Some(&data))
        .await
        .expect("ignores stdin");
    assert_eq!(output.stdout, b"done\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_concurrent_commands_use_exactly_three_connections() {
    let Some(sshd) = Sshd::start() else { return };
    let pool = ca_pool(&sshd, sshd.settings());
    // Every command waits for a gate file, so all 30 are in flight at once.
    let gate = sshd.shared_dir().join("go");
    let script = format!(
        "while [ ! -e {} ]; do sleep 0.05; done; echo $$",
        gate.display()
    );
    let mut tasks = Vec::new();
    for _ in 0..30 {
        let (pool, command) = (pool.clone(), sh(&script));
        tasks.push(tokio::spawn(async move {
            pool.execute(&user(USER), &command, None).await
        }));
    }
    eventually("30 channels open", || pool.stats().channels == 30).await;
    assert_eq!(pool.connection_count(), 3);
    std::fs::write(&gate, b"").expect("gate");
    for task in tasks {
        let output = task.await.expect("join").expect("command");
        assert_eq!(output.exit_status, 0);
    }
    let stats = pool.stats();
    assert_eq!(stats.opened_total, 3, "{stats:?}");
    assert_eq!(stats.connections, 3);
    eventually("channels released", || pool.stats().channels == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_requests_share_one_handshake() {
    let Some(sshd) = Sshd::start() else { return };
    let pool = ca_pool(&sshd, sshd.settings());
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            pool.execute(&user(USER), &CommandLine::builder("true").build(), None)
                .await
        }));
    }
    for task in tasks {
        task.await.expect("join").expect("true");
    }
    assert_eq!(pool.stats().opened_total, 1);
    let handshakes = sshd.log().matches("Accepted publickey for").count();
    assert_eq!(handshakes, 1, "{}", sshd.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_clients_bounds_connections_and_waits_for_free_slots() {
    let Some(sshd) = Sshd::start() else { return };
    let settings = PoolSettings {
        max_clients: 2,
        max_sessions_per_connection: 1,
        ..sshd.settings()
    };
    let pool = ca_pool(&sshd, settings);
    let mut tasks = Vec::new();
    for i in 0..6 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            pool.execute(&user(USER), &sh(&format!("sleep 0.2; echo {i}")), None)
                .await
        }));
    }
    let watcher = {
        let pool = pool.clone();
        tokio::spawn(async move {
            let mut peak = 0;
            for _ in 0..100 {
                let stats = pool.stats();
                peak = peak.max(stats.connections + stats.connecting);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            peak
        })
    };
    for (i, task) in tasks.into_iter().enumerate() {
        let output = task.await.expect("join").expect("command");
        assert_eq!(output.stdout, format!("{i}\n").as_bytes());
    }
    assert!(watcher.await.expect("join") <= 2);
    assert!(pool.stats().opened_total <= 2, "{:?}", pool.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_pool_answers_pool_full_after_the_connection_timeout() {
    let Some(sshd) = Sshd::start() else { return };
    let mut settings = PoolSettings {
        max_clients: 1,
        max_sessions_per_connection: 1,
        ..sshd.settings()
    };
    settings.timeouts.connection = 1;
    let pool = ca_pool(&sshd, settings);
    let gate = sshd.shared_dir().join("release");
    let busy = {
        let (pool, command) = (
            pool.clone(),
            sh(&format!(
                "while [ ! -e {} ]; do sleep 0.05; done",
                gate.display()
            )),
        );
        tokio::spawn(async move { pool.execute(&user(USER), &command, None).await })
    };
    eventually("the only slot is taken", || pool.stats().channels == 1).await;
    let err = pool
        .execute(&user(USER), &CommandLine::builder("true").build(), None)
        .await
        .unwrap_err();
    assert!(matches!(err, SshError::PoolFull), "{err:?}");
    assert_eq!(err.to_string(), "SSH connection pool capacity exceeded");
    std::fs::write(&gate, b"").expect("gate");
    busy.await.expect("join").expect("busy command");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_max_clients_an_idle_connection_of_another_user_is_evicted() {
    let Some(sshd) = Sshd::start() else { return };
    let settings = PoolSettings {
        max_clients: 1,
        ..sshd.settings()
    };
    let pool = ca_pool(&sshd, settings);
    assert_eq!(pool.run(&user(USER), &WhoAmI).await.expect("first"), USER);
    assert_eq!(
        pool.run(&user(OTHER_USER), &WhoAmI).await.expect("second"),
        OTHER_USER
    );
    assert_eq!(pool.connection_count(), 1);
    assert_eq!(pool.user_connection_count(USER), 0);
    assert_eq!(pool.user_connection_count(OTHER_USER), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_over_the_limit_is_refused() {
    let Some(sshd) = Sshd::start() else { return };
    let settings = PoolSettings {
        output_limit: 100_000,
        ..sshd.settings()
    };
    let pool = ca_pool(&sshd, settings);
    let exact = pool
        .execute(&user(USER), &sh("head -c 100000 /dev/zero"), None)
        .await
        .expect("at the limit");
    assert_eq!(exact.stdout.len(), 100_000);
    for script in [
        "head -c 100001 /dev/zero",
        "head -c 5000000 /dev/zero >&2",
        "yes",
    ] {
        let err = pool
            .execute(&user(USER), &sh(script), None)
            .await
            .unwrap_err();
        assert!(
            matches!(err, SshError::OutputTooLarge { .. }),
            "{script}: {err:?}"
        );
        assert_eq!(err.to_string(), "Command output exceeded buffer limit.");
    }
    // `yes` was stopped, and the connection still works.
    eventually("yes stopped", || support::processes_of(USER, "yes") == 0).await;
    assert_eq!(pool.run(&user(USER), &WhoAmI).await.expect("after"), USER);
    assert_eq!(pool.stats().opened_total, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_past_its_timeout_is_stopped() {
    let Some(sshd) = Sshd::start() else { return };
    let mut settings = sshd.settings();
    settings.timeouts.command_execution = 1;
    let pool = ca_pool(&sshd, settings);
    // Durations no other test uses, so the process checks below are unambiguous. The
    // second command ignores TERM (and is a shell with a child), so it needs KILL.
    for script in [
        "exec sleep 10.417",
        "trap '' TERM; sleep 10.418; echo unreachable",
    ] {
        let err = pool
            .execute(&user(USER), &sh(script), None)
            .await
            .unwrap_err();
        assert!(matches!(err, SshError::CommandTimeout), "{err:?}");
        assert_eq!(err.to_string(), "Command execution timeout limit exceeded.");
    }
    for leftover in ["sleep 10.417", "sleep 10.418"] {
        eventually(&format!("remote {leftover} gone"), || {
            support::processes_of(USER, leftover) == 0
        })
        .await;
    }
    // The same connection carries on.
    assert_eq!(pool.run(&user(USER), &WhoAmI).await.expect("after"), USER);
    assert_eq!(pool.stats().opened_total, 1);
    eventually("channel released", || pool.stats().channels == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_or_changed_host_key_is_rejected() {
    let Some(sshd) = Sshd::start() else { return };
    let stranger = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).expect("key");
    let wrong = sshd.shared_dir().join("wrong_known_hosts");
    std::fs::write(
        &wrong,
        format!(
            "[127.0.0.1]:{} {}\n",
            sshd.port,
            stranger.public_key().to_openssh().expect("pub")
        ),
    )
    .expect("write");
    let empty = sshd.shared_dir().join("empty_known_hosts");
    std::fs::write(&empty, "").expect("write");
    let other_port = sshd.shared_dir().join("other_port_known_hosts");
    std::fs::write(&other_port, format!("127.0.0.1 {}\n", sshd.host_public_key)).expect("write");

    for (path, expected) in [
        (&wrong, "matches none"),
        (&empty, "no known_hosts entry"),
        (&other_port, "no known_hosts entry"),
    ] {
        let settings = PoolSettings {
            known_hosts: path.clone(),
            ..sshd.settings()
        };
        let pool = ca_pool(&sshd, settings);
        let err = pool.run(&user(USER), &WhoAmI).await.unwrap_err();
        let RunError::Ssh(err) = err else {
            panic!("{err:?}")
        };
        match &err {
            SshError::HostKeyRejected { detail, .. } => {
                assert!(detail.contains(expected), "{detail}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(pool.connection_count(), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_and_foreign_certificates_are_refused() {
    let Some(sshd) = Sshd::start() else { return };
    let trusted = CertificateAuthority::from_openssh(&sshd.ca_private_key, 600).expect("ca");
    let expired = trusted.issue(USER, now() - 3_600).expect("expired cert");
    let foreign_ca_key = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519)
        .expect("key")
        .to_openssh(LineEnding::LF)
        .expect("text")
        .to_string();
    let foreign = CertificateAuthority::from_openssh(&foreign_ca_key, 600)
        .expect("ca")
        .issue(USER, now())
        .expect("foreign cert");
    let wrong_principal = trusted.issue(OTHER_USER, now()).expect("cert");

    for (what, credentials) in [
        ("expired", expired),
        ("foreign CA", foreign),
        ("wrong principal", wrong_principal),
    ] {
        let pool = SshPool::new(sshd.settings(), Arc::new(Fixed(credentials)));
        let err = pool
            .execute(&user(USER), &CommandLine::builder("true").build(), None)
            .await
            .unwrap_err();
        assert!(
            matches!(err, SshError::AuthenticationFailed { .. }),
            "{what}: {err:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_keys_log_in_with_a_plain_key_or_a_certificate() {
    let Some(sshd) = Sshd::start() else { return };
    let plain = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).expect("key");
    sshd.authorize(USER, &plain.public_key().to_openssh().expect("pub"));
    let ca = CertificateAuthority::from_openssh(&sshd.ca_private_key, 600).expect("ca");
    let certified = ca.issue(OTHER_USER, now()).expect("cert");
    let mut keys = std::collections::BTreeMap::new();
    keys.insert(
        USER.to_string(),
        StaticKey {
            private_key: Secret::new(plain.to_openssh(LineEnding::LF).expect("text").to_string()),
            public_cert: None,
            passphrase: None,
        },
    );
    keys.insert(
        OTHER_USER.to_string(),
        StaticKey {
            private_key: Secret::new(
                certified
                    .key
                    .to_openssh(LineEnding::LF)
                    .expect("text")
                    .to_string(),
            ),
            public_cert: Some(
                certified
                    .certificate
                    .as_ref()
                    .expect("cert")
                    .to_openssh()
                    .expect("cert text"),
            ),
            passphrase: None,
        },
    );
    let provider = StaticKeys::from_config(&keys).expect("static keys");
    let pool = SshPool::new(sshd.settings(), Arc::new(provider));
    assert_eq!(
        pool.run(&user(USER), &WhoAmI).await.expect("plain key"),
        USER
    );
    assert_eq!(
        pool.run(&user(OTHER_USER), &WhoAmI).await.expect("cert"),
        OTHER_USER
    );
    let err = pool
        .run(&user("nobody-configured"), &WhoAmI)
        .await
        .unwrap_err();
    assert!(
        matches!(err, RunError::Ssh(SshError::Credentials(_))),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_sshd_is_reconnected_transparently() {
    let Some(mut sshd) = Sshd::start() else {
        return;
    };
    let pool = ca_pool(&sshd, sshd.settings());
    assert_eq!(pool.run(&user(USER), &WhoAmI).await.expect("before"), USER);
    sshd.restart();
    assert_eq!(pool.run(&user(USER), &WhoAmI).await.expect("after"), USER);
    assert_eq!(pool.stats().opened_total, 2);
    assert_eq!(pool.connection_count(), 1);

    // Same, but the old connection is used before the client noticed anything: restart
    // and run at once.
    sshd.restart();
    let results = futures_like_join(
        pool.run(&user(USER), &WhoAmI),
        pool.run(&user(USER), &WhoAmI),
    )
    .await;
    assert_eq!(results.0.expect("a"), USER);
    assert_eq!(results.1.expect("b"), USER);
}

async fn futures_like_join<A: std::future::Future, B: std::future::Future>(
    a: A,
    b: B,
) -> (A::Output, B::Output) {
    tokio::join!(a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_evicted_and_reopened_on_demand() {
    let Some(sshd) = Sshd::start() else { return };
    let mut settings = sshd.settings();
    settings.timeouts.idle_timeout = 1;
    let pool = ca_pool(&sshd, settings);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let maintenance = tokio::spawn(pool.clone().maintain(async {
        let _ = stopped.await;
    }));

    assert_eq!(pool.run(&user(USER), &WhoAmI).await.expect("first"), USER);
    assert_eq!(pool.connection_count(), 1);
    eventually("idle connection evicted", || pool.connection_count() == 0).await;
    eventually("sshd saw the disconnect", || {
        sshd.log().contains("Disconnected from user") || sshd.log().contains("Received disconnect")
    })
    .await;

    assert_eq!(pool.run(&user(USER), &WhoAmI).await.expect("again"), USER);
    assert_eq!(pool.stats().opened_total, 2);
    stop.send(()).expect("stop");
    maintenance.await.expect("maintain");
    assert_eq!(pool.connection_count(), 0, "shutdown closes everything");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_connection_is_not_evicted() {
    let Some(sshd) = Sshd::start() else { return };
    let mut settings = sshd.settings();
    settings.timeouts.idle_timeout = 1;
    let pool = ca_pool(&sshd, settings);
    let gate = sshd.shared_dir().join("done");
    let busy = {
        let (pool, command) = (
            pool.clone(),
            sh(&format!(
                "while [ ! -e {} ]; do sleep 0.05; done",
                gate.display()
            )),
        );
        tokio::spawn(async move { pool.execute(&user(USER), &command, None).await })
    };
    eventually("command running", || pool.stats().channels == 1).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(pool.evict_idle(), 0);
    std::fs::write(&gate, b"").expect("gate");
    busy.await.expect("join").expect("busy");
    assert_eq!(pool.connection_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_port_fails_to_connect() {
    let Some(sshd) = Sshd::start() else { return };
    let mut settings = sshd.settings();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    settings.port = listener.local_addr().expect("addr").port();
    drop(listener);
    let pool = ca_pool(&sshd, settings);
    let err = pool.run(&user(USER), &WhoAmI).await.unwrap_err();
    assert!(
        matches!(err, RunError::Ssh(SshError::ConnectionFailed(_))),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_command_is_stopped_and_its_slot_released() {
    let Some(sshd) = Sshd::start() else { return };
    let pool = ca_pool(&sshd, sshd.settings());
    let running = {
        let pool = pool.clone();
        tokio::spawn(async move {
            pool.execute(&user(USER), &sh("exec sleep 10.419"), None)
                .await
        })
    };
    eventually("command running", || {
        support::processes_of(USER, "sleep 10.419") == 1
    })
    .await;
    // What happens when an HTTP client goes away mid-request.
    running.abort();
    assert!(running.await.unwrap_err().is_cancelled());
    eventually("remote sleep gone", || {
        support::processes_of(USER, "sleep 10.419") == 0
    })
    .await;
    eventually("slot released", || pool.stats().channels == 0).await;
    assert_eq!(pool.run(&user(USER), &WhoAmI).await.expect("after"), USER);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_larger_than_the_ssh_window_flows_both_ways() {
    let Some(sshd) = Sshd::start() else { return };
    let pool = ca_pool(&sshd, sshd.settings());
    // Both directions well past the 2 MiB initial channel windows.
    let data: Vec<u8> = (0..(5u32 << 20)).map(|i| (i % 251) as u8).collect();
    let output = pool
        .execute(
            &user(USER),
            &sh("cat; cat >&2 </dev/null; head -c 3000000 /dev/zero >&2"),
            Some(&data),
        )
        .await
        .expect("cat");
    assert_eq!(output.exit_status, 0);
    assert!(output.stdout == data, "stdout differs");
    assert_eq!(output.stderr.len(), 3_000_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_speaks_ssh_times_out() {
    // No sshd needed: the kernel accepts the TCP connection into the backlog, nothing
    // ever answers the SSH identification.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let key = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).expect("key");
    let settings = PoolSettings {
        cluster: "test".into(),
        host: "127.0.0.1".into(),
        port: listener.local_addr().expect("addr").port(),
        known_hosts: "/nonexistent".into(),
        max_clients: 1,
        max_sessions_per_connection: 1,
        max_sftp_sessions_per_user: 1,
        timeouts: ironcrest_config::SshTimeouts {
            connection: 1,
            ..Default::default()
        },
        output_limit: 1024,
    };
    let pool = SshPool::new(
        settings,
        Arc::new(Fixed(Credentials {
            key: Arc::new(key),
            certificate: None,
        })),
    );
    let err = pool
        .execute(&user(USER), &CommandLine::builder("true").build(), None)
        .await
        .unwrap_err();
    assert!(matches!(err, SshError::ConnectTimeout), "{err:?}");
    assert_eq!(err.to_string(), "SSH connection timeout limit exceeded.");
    assert_eq!(pool.stats(), Default::default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_connection_is_replaced_before_the_channel_opens() {
    let Some(sshd) = Sshd::start() else { return };
    let mut settings = sshd.settings();
    settings.timeouts.connection = 2;
    let pool = ca_pool(&sshd, settings);
    assert_eq!(pool.run(&user(USER), &WhoAmI).await.expect("before"), USER);
    // The connection stays open at TCP level but sshd no longer answers on it: the
    // channel open times out, the connection is dropped and the command retried.
    sshd.signal_connections("STOP");
    assert_eq!(pool.run(&user(USER), &WhoAmI).await.expect("after"), USER);
    assert_eq!(pool.stats().opened_total, 2);
    assert_eq!(pool.connection_count(), 1);
    sshd.signal_connections("CONT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdout_streams_and_failures_before_output_are_finished_outputs() {
    let Some(sshd) = Sshd::start() else { return };
    let pool = ca_pool(&sshd, sshd.settings());
    let Streamed::Stdout(mut chunks) = pool
        .execute_streaming(&user(USER), &sh("head -c 3145728 /dev/urandom | tee /tmp/ironcrest-stream-$$ | sha256sum >&2; cat /tmp/ironcrest-stream-$$; rm -f /tmp/ironcrest-stream-$$"))
        .await
        .expect("streaming")
    else {
        panic!("expected output");
    };
    let mut received = 0;
    let mut pieces = 0;
    while let Some(chunk) = chunks.recv().await {
        received += chunk.expect("chunk").len();
        pieces += 1;
    }
    assert_eq!(received, 3 << 20);
    assert!(pieces > 1);

    match pool
        .execute_streaming(&user(USER), &sh("echo nope >&2; exit 3"))
        .await
        .expect("finished")
    {
        Streamed::Finished(output) => {
            assert_eq!(
                (output.exit_status, output.stderr.as_slice()),
                (3, &b"nope\n"[..])
            );
        }
        Streamed::Stdout(_) => panic!("no output was expected"),
    }

    let Streamed::Stdout(mut chunks) = pool
        .execute_streaming(&user(USER), &sh("echo partial; exit 4"))
        .await
        .expect("streaming")
    else {
        panic!("expected output");
    };
    assert_eq!(
        chunks.recv().await.expect("data").expect("ok").as_ref(),
        b"partial\n"
    );
    assert!(chunks.recv().await.expect("end").is_err());
    eventually("channel released", || pool.stats().channels == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_stdout_stream_stops_the_command() {
    let Some(sshd) = Sshd::start() else { return };
    let pool = ca_pool(&sshd, sshd.settings());
    let Streamed::Stdout(mut chunks) = pool
        .execute_streaming(
            &user(USER),
            &CommandLine::builder("cat")
                .operands(["/dev/zero"])
                .expect("arg")
                .build(),
        )
        .await
        .expect("streaming")
    else {
        panic!("expected output");
    };
    assert!(chunks.recv().await.expect("data").is_ok());
    drop(chunks);
    eventually("remote cat gone", || {
        support::processes_of(USER, "cat /dev/zero") == 0
    })
    .await;
    eventually("channel released", || pool.stats().channels == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_stdin_is_delivered_and_an_abandoned_one_never_reaches_eof() {
    let Some(sshd) = Sshd::start() else { return };
    let pool = ca_pool(&sshd, sshd.settings());
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    let feed = async move {
        for i in 0..64u8 {
            tx.send(Ok(bytes::Bytes::from(vec![i; 16384])))
                .await
                .expect("send");
        }
    };
    let (who, wc) = (user(USER), sh("wc -c"));
    let (_, output) = tokio::join!(feed, pool.execute_with_input(&who, &wc, Input::Stream(rx)));
    let output = output.expect("wc");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        (64 * 16384).to_string()
    );

    let marker =
        std::path::PathBuf::from(format!("/tmp/ironcrest-eof-seen-{}", std::process::id()));
    // The same script with a complete input does create the marker.
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    drop(tx);
    let control = format!("cat > /dev/null && touch {}.control", marker.display());
    pool.execute_with_input(&user(USER), &sh(&control), Input::Stream(rx))
        .await
        .expect("control");
    let control = std::path::PathBuf::from(format!("{}.control", marker.display()));
    assert!(control.exists());
    let _ = std::fs::remove_file(&control);
    let script = format!("cat > /dev/null && touch {}", marker.display());
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    let feed = async move {
        tx.send(Ok(bytes::Bytes::from_static(b"some")))
            .await
            .expect("send");
        tx.send(Err(InputAborted)).await.expect("abort");
    };
    let script = sh(&script);
    let (_, result) = tokio::join!(
        feed,
        pool.execute_with_input(&who, &script, Input::Stream(rx))
    );
    assert!(result.is_err());
    eventually("channel released", || pool.stats().channels == 0).await;
    assert!(!marker.exists(), "the command saw EOF");
}

/// The CA's credentials, held back for one user until released: a login that stalls.
struct Stalled {
    ca: CertificateAuthority,
    user: &'static str,
    release: tokio::sync::Semaphore,
}

#[async_trait::async_trait]
impl CredentialProvider for Stalled {
    async fn credentials(&self, user: &Caller) -> Result<Credentials, SshError> {
        if user.username == self.user {
            let _ = self.release.acquire().await.expect("open").forget();
        }
        self.ca.credentials(user).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_login_does_not_delay_another_users_sftp() {
    let Some(sshd) = Sshd::start() else { return };
    let dir = sshd.shared_dir().as_os_str().as_encoded_bytes().to_vec();
    let stalled = Arc::new(Stalled {
        ca: CertificateAuthority::from_openssh(&sshd.ca_private_key, 300).expect("ca"),
        user: USER,
        release: tokio::sync::Semaphore::new(0),
    });
    let pool = SshPool::new(sshd.settings(), stalled.clone());
    let slow = tokio::spawn({
        let pool = pool.clone();
        let dir = dir.clone();
        async move {
            pool.sftp(&user(USER))
                .await
                .expect("sftp")
                .read_dir(&dir)
                .await
        }
    });
    // The stalled user's first request is waiting for its login…
    for _ in 0..5000 {
        if slow_is_waiting(&pool) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    assert!(slow_is_waiting(&pool), "the stalled login never started");
    // …and another user's listing is served meanwhile (the bound only turns a deadlock,
    // as with one pool-wide lock, into a failure).
    let other = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        pool.sftp(&user(OTHER_USER))
            .await
            .expect("other user's sftp")
            .read_dir(&dir)
            .await
    })
    .await
    .expect("another user's listing waited for the stalled login");
    assert!(other.is_ok(), "{other:?}");
    assert!(!slow.is_finished(), "the stalled login went through early");
    stalled.release.add_permits(1);
    assert!(slow.await.expect("task").is_ok());
}

/// Whether the pool is opening a connection (the stalled user's).
fn slow_is_waiting(pool: &SshPool) -> bool {
    pool.stats().connecting > 0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_standing_sftp_session_serves_concurrent_requests_without_exec() {
    let Some(sshd) = Sshd::start() else { return };
    let dir = sshd.shared_dir().to_path_buf();
    std::fs::write(dir.join("a file"), b"hello sftp").expect("file");
    std::os::unix::fs::symlink("a file", dir.join("link")).expect("link");
    let settings = PoolSettings {
        max_sftp_sessions_per_user: 1,
        ..sshd.settings()
    };
    let pool = ca_pool(&sshd, settings);
    let me = user(USER);
    let dir_bytes = dir.as_os_str().as_encoded_bytes().to_vec();

    let listings = futures::future::join_all((0..20).map(|_| {
        let pool = pool.clone();
        let me = me.clone();
        let dir_bytes = dir_bytes.clone();
        async move {
            pool.sftp(&me)
                .await
                .expect("sftp")
                .read_dir(&dir_bytes)
                .await
        }
    }))
    .await;
    for listing in listings {
        let mut names: Vec<String> = listing
            .expect("listed")
            .into_iter()
            .map(|e| e.name)
            .collect();
        names.sort();
        assert!(names.contains(&"a file".to_string()), "{names:?}");
        assert!(names.contains(&"link".to_string()), "{names:?}");
    }
    let sftp = pool.sftp(&me).await.expect("sftp");
    let mut link = dir_bytes.clone();
    link.extend_from_slice(b"/link");
    assert_eq!(sftp.read_link(&link).await.expect("readlink"), "a file");
    let mut file = dir_bytes.clone();
    file.extend_from_slice(b"/a file");
    let (handle, attrs) = sftp.open_read(&file).await.expect("open");
    assert_eq!(attrs.size, Some(10));
    assert_eq!(&handle.read(6, 100).await.expect("read")[..], b"sftp");
    assert!(handle.read(10, 100).await.expect("eof").is_empty());
    drop(handle);
    let mut missing = dir_bytes.clone();
    missing.extend_from_slice(b"/missing");
    // SSH_FX_NO_SUCH_FILE.
    assert!(matches!(
        sftp.lstat(&missing).await,
        Err(SftpError::Status { code: 2, .. })
    ));
    assert!(matches!(
        sftp.lstat(b"/tmp/\xff").await,
        Err(SftpError::NotUtf8)
    ));
    drop(sftp);

    let stats = pool.stats();
    assert_eq!(stats.opened_total, 1, "{stats:?}");
    assert_eq!(
        stats.sftp_opened_total, 1,
        "one session for every request: {stats:?}"
    );
    assert_eq!(stats.sftp_sessions, 1, "{stats:?}");
    assert_eq!(
        stats.channels, 1,
        "the session holds one channel: {stats:?}"
    );
    assert_eq!(stats.exec_channels_total, 0, "{stats:?}");
    let log = sshd.log();
    assert_eq!(log.matches("subsystem 'sftp'").count(), 1, "{log}");
    assert!(!log.contains("Starting session: command"), "{log}");

    // The session ends with its connection; the next request opens both again.
    pool.close_all().await;
    assert_eq!(pool.stats().sftp_sessions, 0);
    let sftp = pool.sftp(&me).await.expect("reopened");
    sftp.lstat(&file).await.expect("lstat");
    assert_eq!(pool.stats().sftp_opened_total, 2);
    assert_eq!(pool.stats().opened_total, 2);
}

/// While every session of a user is busy another is opened, up to the user's bound; a
/// request goes to the least busy one; a listing longer than one READDIR batch arrives
/// whole; none of it runs a command.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_sessions_get_company_up_to_the_users_bound() {
    let Some(sshd) = Sshd::start() else { return };
    let dir = sshd.shared_dir().join("many");
    std::fs::create_dir(&dir).expect("dir");
    // sftp-server answers a READDIR with at most 100 entries.
    for i in 0..1234 {
        std::fs::write(dir.join(format!("entry-{i}")), b"").expect("file");
    }
    let dir = dir.as_os_str().as_encoded_bytes().to_vec();
    let settings = PoolSettings {
        max_sftp_sessions_per_user: 3,
        ..sshd.settings()
    };
    let pool = ca_pool(&sshd, settings);
    let me = user(USER);

    // Requests held, each asked for after the sessions it caused are open: the second finds
    // the only session busy, the third takes the new idle one, the fourth finds both busy.
    let mut held = Vec::new();
    for sessions in [1, 2, 2, 3, 3, 3, 3, 3] {
        held.push(pool.sftp(&me).await.expect("sftp"));
        eventually("the sessions", || pool.stats().sftp_sessions == sessions).await;
    }
    let listings = futures::future::join_all(held.iter().map(|sftp| sftp.read_dir(&dir))).await;
    for listing in listings {
        let mut names: Vec<String> = listing
            .expect("listed")
            .into_iter()
            .map(|e| e.name)
            .collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 1234 + 2, "every entry once, with . and ..");
    }
    let stats = pool.stats();
    assert_eq!(stats.sftp_sessions, 3, "never past the bound: {stats:?}");
    assert_eq!(stats.sftp_opened_total, 3, "{stats:?}");
    assert_eq!(stats.opened_total, 1, "all on one connection: {stats:?}");
    assert_eq!(stats.channels, 3, "one channel each: {stats:?}");
    assert_eq!(stats.exec_channels_total, 0, "{stats:?}");
    assert_eq!(sshd.log().matches("subsystem 'sftp'").count(), 3);

    // Idle again, the next request takes a session without opening one.
    drop(held);
    let sftp = pool.sftp(&me).await.expect("sftp");
    sftp.lstat(&dir).await.expect("lstat");
    assert_eq!(pool.stats().sftp_opened_total, 3);
    // Commands still find room beside the sessions.
    let output = pool.execute(&me, &sh("echo ok"), None).await.expect("exec");
    assert_eq!(output.stdout_text().trim(), "ok");
}

/// The changes served over SFTP, against the real sftp-server: mkdir, symlink (OpenSSH's
/// argument order), chmod, an exclusive create written and renamed over an existing file,
/// and owner names from `users-groups-by-id@openssh.com` — all without a command.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sftp_changes_files_and_names_owners_without_exec() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    let Some(sshd) = Sshd::start() else { return };
    let dir = sshd.shared_dir().join("writable");
    std::fs::create_dir(&dir).expect("dir");
    let id = |flag: &str| {
        let out = std::process::Command::new("id")
            .args([flag, USER])
            .output()
            .expect("id");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<u32>()
            .expect("id")
    };
    std::os::unix::fs::chown(&dir, Some(id("-u")), Some(id("-g"))).expect("chown");
    let pool = ca_pool(&sshd, sshd.settings());
    let sftp = pool.sftp(&user(USER)).await.expect("sftp");
    let at = |name: &str| dir.join(name).as_os_str().as_encoded_bytes().to_vec();

    sftp.mkdir(&at("new dir")).await.expect("mkdir");
    assert!(dir.join("new dir").is_dir());
    assert!(matches!(
        sftp.mkdir(&at("new dir")).await,
        Err(SftpError::Status { .. })
    ));

    sftp.symlink(b"new dir", &at("link"))
        .await
        .expect("symlink");
    assert_eq!(
        std::fs::read_link(dir.join("link")).expect("link"),
        std::path::Path::new("new dir")
    );

    std::fs::write(dir.join("target"), b"old").expect("file");
    std::os::unix::fs::chown(dir.join("target"), Some(id("-u")), None).expect("chown");
    sftp.set_mode(&at("target"), 0o4751).await.expect("chmod");
    let meta = std::fs::metadata(dir.join("target")).expect("meta");
    assert_eq!(meta.permissions().mode() & 0o7777, 0o4751);

    assert!(sftp.can_replace());
    let file = sftp.create_new(&at(".tmp")).await.expect("create");
    assert!(sftp.create_new(&at(".tmp")).await.is_err(), "exclusive");
    file.write(0, b"new ").await.expect("write");
    file.write(4, b"content").await.expect("write");
    file.close().await.expect("close");
    sftp.replace(&at(".tmp"), &at("target"))
        .await
        .expect("rename over");
    assert_eq!(
        std::fs::read(dir.join("target")).expect("read"),
        b"new content"
    );
    assert!(!dir.join(".tmp").exists());

    assert!(sftp.can_name_owners());
    let (owner, group) = sftp
        .owner_names(meta.uid(), 4_000_000)
        .await
        .expect("names");
    assert_eq!(owner, USER);
    assert_eq!(group, "4000000", "an id without a name reads as its number");
    drop(sftp);
    assert_eq!(pool.stats().exec_channels_total, 0);
}
