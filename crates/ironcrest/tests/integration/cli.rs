//! The `ironcrest` binary itself: `check-config` and graceful shutdown on SIGTERM.

use std::process::{Command, Stdio};
use std::time::Duration;

use ironcrest_config::ConnectionMode;

use crate::harness::{dev_config, dev_config_yaml, write_config};

const BIN: &str = env!("CARGO_BIN_EXE_ironcrest");

#[test]
fn check_config_accepts_the_dev_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, dev_config_yaml()).unwrap();
    let output = Command::new(BIN)
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
}

#[test]
fn check_config_names_every_broken_field() {
    let dir = tempfile::tempdir().unwrap();
    let mut broken = dev_config();
    broken.clusters[0].ssh.timeout.idle_timeout = 1;
    broken.auth.authentication.token_url = "nowhere".into();
    broken.clusters[0].scheduler.connection_mode = ConnectionMode::Rest;
    let path = write_config(dir.path(), &broken);
    let output = Command::new(BIN)
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    for field in [
        "auth.authentication.token_url",
        "clusters[0].ssh.timeout.idle_timeout",
        "clusters[0].scheduler.api_url",
    ] {
        assert!(stdout.contains(field), "{field} not named in:\n{stdout}");
    }
}

#[test]
fn serve_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = dev_config();
    config.server.listen = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let path = write_config(dir.path(), &config);
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut listening = false;
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            listening = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(listening, "ironcrest never listened on {port}");
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status after SIGTERM: {status:?}");
}
