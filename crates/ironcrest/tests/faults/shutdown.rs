//! Ironcrest itself gets SIGTERM with requests in flight (on a slow login node, so they
//! are): new connections are refused at once, the requests in flight finish within the
//! grace period, an upload still incomplete when it ends is cut off and leaves neither a
//! temporary file nor a changed target, and the server starts again cleanly.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rustix::process::{Pid, Signal, kill_process};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{dev_config, env, user_token, write_config};
use crate::instances::{free_port, shared_dir};
use crate::load::{Fixture, Op, Phase, at_once, chown_fireuser};
use crate::slow_cluster::{force_command, set_slow, slow_wrapper};

const BIN: &str = env!("CARGO_BIN_EXE_ironcrest");
const SYSTEM: &str = "faults-sigterm";
/// `server.shutdown_grace_period`.
const GRACE: u64 = 8;
/// How long each command waits on the slow node: well within the grace period.
const DELAY: u64 = 2;

struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(config: &Path, port: u16, log_path: &Path) -> Self {
        let log = std::fs::File::create(log_path).unwrap();
        let child = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut server = Self { child, port };
        for _ in 0..600 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return server;
            }
            if let Some(status) = server.child.try_wait().unwrap() {
                let log = std::fs::read_to_string(log_path).unwrap_or_default();
                panic!("ironcrest exited ({status}):\n{log}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("ironcrest never listened on {port}");
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn terminate(&self) {
        let pid = Pid::from_raw(self.child.id() as i32).unwrap();
        kill_process(pid, Signal::TERM).unwrap();
    }

    /// Waits for the process to exit (bounded: the grace period and the pools' closing).
    async fn exit_status(&mut self) -> std::process::ExitStatus {
        for _ in 0..600 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("ironcrest still running 60 s after SIGTERM");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An upload through `ops/upload` over a raw connection, so the test decides when each part
/// of the body is sent: the head and the first `sent` bytes now.
async fn start_upload(
    port: u16,
    token: &str,
    dir: &Path,
    name: &str,
    content: &[u8],
    sent: usize,
) -> (TcpStream, Vec<u8>) {
    let mut body = format!(
        "--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(content);
    body.extend_from_slice(b"\r\n--b--\r\n");
    let head = format!(
        "POST /filesystem/{SYSTEM}/ops/upload?path={dir} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Authorization: Bearer {token}\r\nContent-Type: multipart/form-data; boundary=b\r\n\
         Content-Length: {length}\r\n\r\n",
        dir = dir.display(),
        length = body.len(),
    );
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let rest = body.split_off(sent);
    stream.write_all(&body).await.unwrap();
    (stream, rest)
}

fn temporary_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|entry| {
            entry
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".ironcrest-upload.")
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_under_load_finishes_what_is_in_flight_and_leaves_nothing_behind() {
    let dir = shared_dir();
    let wrapper = slow_wrapper(dir.path(), DELAY);
    let port = free_port();
    let mut config = dev_config();
    config.server.listen = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    config.server.shutdown_grace_period = GRACE;
    force_command(&mut config, wrapper);
    let cluster = &mut config.clusters[0];
    cluster.name = SYSTEM.into();
    cluster.probing.interval = 1;
    // Longer than the grace period and the pools' closing: the stalled upload is cut off
    // by the shutdown, not by its own timeout.
    cluster.ssh.timeout.command_execution = 30;
    let config_path = write_config(dir.path(), &config);
    let mut server = Server::start(&config_path, port, &dir.path().join("ironcrest.log"));
    let token = user_token().await;
    let fixture = std::sync::Arc::new(Fixture::new("faults-sigterm"));
    let uploads = Fixture::new("faults-sigterm-uploads");
    let kept = uploads.dir.join("kept.bin");
    std::fs::write(&kept, b"original").unwrap();
    chown_fireuser(&uploads.dir);
    // A listing first: the upload's SFTP session then stands before the node turns slow.
    let warm = at_once(
        &server.url(),
        SYSTEM,
        &token,
        fixture.clone(),
        &[Op::Ls],
        Phase::Before,
        Duration::from_secs(60),
    )
    .await;
    assert!(warm[0].is_success(), "{warm:?}");

    set_slow(dir.path(), &env("IRONCREST_DEV_USER"), true);
    let in_flight = tokio::spawn({
        let (url, token, fixture) = (server.url(), token.clone(), fixture.clone());
        async move {
            let ops = [Op::Stat, Op::Checksum, Op::Userinfo, Op::Jobs];
            let timeout = Duration::from_secs(GRACE + 60);
            at_once(&url, SYSTEM, &token, fixture, &ops, Phase::Outage, timeout).await
        }
    });
    let content = vec![b'x'; 3 * 1024 * 1024];
    let (mut finishing, rest) = start_upload(
        port,
        &token,
        &uploads.dir,
        "done.bin",
        &content,
        1024 * 1024,
    )
    .await;
    let (mut stalled, _) = start_upload(
        port,
        &token,
        &uploads.dir,
        "kept.bin",
        &content,
        1024 * 1024,
    )
    .await;
    // Both uploads are writing their temporary files, and four commands are waiting on the
    // slow node: then the signal comes.
    for _ in 0..300 {
        let delayed = std::fs::read_to_string(dir.path().join("delayed")).unwrap();
        if temporary_files(&uploads.dir) == 2 && delayed.lines().count() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(temporary_files(&uploads.dir), 2, "the uploads never began");
    server.terminate();

    // New connections are refused from now on.
    let mut refused = false;
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refused, "new connections still accepted after SIGTERM");
    // What was in flight finishes, with the right content.
    finishing.write_all(&rest).await.unwrap();
    let mut answer = String::new();
    finishing.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 204"), "{answer}");
    for answer in in_flight.await.unwrap() {
        assert!(answer.is_success(), "{answer:?}");
    }
    // The stalled upload is cut off when the grace period ends.
    let mut rest = Vec::new();
    let _ = stalled.read_to_end(&mut rest).await;
    let status = server.exit_status().await;
    assert!(status.success(), "exit status after SIGTERM: {status:?}");
    assert!(std::fs::read(uploads.dir.join("done.bin")).unwrap() == content);
    assert_eq!(std::fs::read(&kept).unwrap(), b"original");
    assert_eq!(
        temporary_files(&uploads.dir),
        0,
        "a temporary file was left"
    );

    // A clean start on the same port.
    set_slow(dir.path(), &env("IRONCREST_DEV_USER"), false);
    let mut server = Server::start(&config_path, port, &dir.path().join("restarted.log"));
    let answers = at_once(
        &server.url(),
        SYSTEM,
        &token,
        fixture.clone(),
        &[Op::Ls, Op::Stat],
        Phase::After,
        Duration::from_secs(60),
    )
    .await;
    assert!(answers.iter().all(|a| a.is_success()), "{answers:?}");
    server.terminate();
    assert!(server.exit_status().await.success());
}
