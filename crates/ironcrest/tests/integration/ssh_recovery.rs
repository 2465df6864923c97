//! sshd dies and comes back: health shows it, requests are refused with 503 meanwhile, and
//! work again afterwards without restarting Ironcrest. The test runs its own sshd (same
//! configuration, CA and host key as the dev one, another port) so other tests are unaffected.

use std::process::{Child, Command};

use crate::harness::{SYSTEM, TestServer, env, user_token};

struct Sshd {
    child: Child,
}

impl Sshd {
    fn start(port: u16, dir: &std::path::Path) -> Self {
        let prefix = env("IRONCREST_DEV_PREFIX");
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-f", &format!("{prefix}/ssh/sshd_config")])
            .args(["-o", &format!("Port={port}")])
            .args(["-o", &format!("PidFile={}/sshd.pid", dir.display())])
            .args(["-E", &format!("{}/sshd.log", dir.display())])
            .spawn()
            .unwrap();
        let sshd = Self { child };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return sshd;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("sshd did not start on port {port}");
    }

    /// Kills the listener and every per-connection process it forked, as a crash would.
    fn kill(mut self) {
        kill_descendants(self.child.id());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        kill_descendants(self.child.id());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn kill_descendants(pid: u32) {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        // The parent pid is the second field after the parenthesised command name.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1));
        if ppid == Some(&pid.to_string()) {
            kill_descendants(child);
            let _ = Command::new("kill")
                .args(["-KILL", &child.to_string()])
                .status();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_sshd_is_seen_unhealthy_then_healthy_and_requests_recover() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let host_key = std::fs::read_to_string(format!(
        "{}/ssh/ssh_host_ed25519_key.pub",
        env("IRONCREST_DEV_PREFIX")
    ))
    .unwrap();
    let host_key = host_key
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    let known_hosts = dir.path().join("known_hosts");
    std::fs::write(&known_hosts, format!("[127.0.0.1]:{port} {host_key}\n")).unwrap();

    let sshd = Sshd::start(port, dir.path());
    let server = TestServer::start_with(|config| {
        let ssh = &mut config.clusters[0].ssh;
        ssh.port = port;
        ssh.known_hosts = Some(known_hosts.clone());
    })
    .await;
    let token = user_token().await;
    let userinfo = format!("/status/{SYSTEM}/userinfo");
    let ssh_healthy = |health: &[serde_json::Value], healthy: bool| {
        health
            .iter()
            .any(|h| h["serviceType"] == "ssh" && h["healthy"] == healthy)
    };

    server
        .wait_for_health(&token, |h| ssh_healthy(h, true))
        .await;
    assert_eq!(server.get(&userinfo, Some(&token)).await.status(), 200);

    sshd.kill();
    let health = server
        .wait_for_health(&token, |h| ssh_healthy(h, false))
        .await;
    let ssh = health.iter().find(|h| h["serviceType"] == "ssh").unwrap();
    assert!(ssh["message"].is_string());
    let refused = server.get(&userinfo, Some(&token)).await;
    assert_eq!(refused.status(), 503);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(
        body["message"],
        format!("The ssh service for the requested system ({SYSTEM}) is unhealthy.")
    );

    let _sshd = Sshd::start(port, dir.path());
    server
        .wait_for_health(&token, |h| ssh_healthy(h, true))
        .await;
    let info: serde_json::Value = server
        .get(&userinfo, Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(info["user"]["name"], "fireuser");
}
