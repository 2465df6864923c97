//! A private OpenSSH server for integration tests: its own port, host key, user CA and
//! config in a temporary directory; killed (with every process it spawned) on drop.
//!
//! Needs root (sshd must switch users) and `/usr/sbin/sshd`. Test login users are local
//! accounts created on first use ([`ensure_user`]: `useradd -m -s /bin/bash`, then
//! `usermod -p '*'` because `UsePAM no` refuses locked `!` accounts even for keys).
//! Without root or sshd, [`Sshd::start`] returns `None` and tests skip, unless
//! `IRONCREST_REQUIRE_SSHD=1` is set, which turns the skip into a failure.

#![allow(dead_code)] // each test binary uses a different part

use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ironcrest_config::SshTimeouts;
use ironcrest_ssh::PoolSettings;
use russh::keys::PrivateKey;
use russh::keys::ssh_key::{Algorithm, LineEnding};

pub const USER: &str = "sshtest";
pub const OTHER_USER: &str = "sshtest2";
const SSHD: &str = "/usr/sbin/sshd";

pub struct Sshd {
    pub port: u16,
    pub dir: tempfile::TempDir,
    /// The user CA's private key (OpenSSH text); only its public half is on disk.
    pub ca_private_key: String,
    pub ca_public_key: String,
    pub host_public_key: String,
    pub known_hosts: PathBuf,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Sshd {
    /// Starts a fresh sshd, or `None` (skip) where that is impossible.
    pub fn start() -> Option<Self> {
        if let Some(reason) = unavailable() {
            if std::env::var("IRONCREST_REQUIRE_SSHD").is_ok_and(|v| v == "1") {
                panic!("sshd integration tests required but {reason}");
            }
            eprintln!("skipping sshd integration test: {reason}");
            return None;
        }
        ensure_user(USER);
        ensure_user(OTHER_USER);
        install_privsep_dir();

        let dir = tempfile::Builder::new()
            .prefix("ironcrest-sshd-")
            .tempdir()
            .expect("tempdir");
        // Readable by the test users: commands use it for gate files and sshd reads
        // AuthorizedKeysFile as the user.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod tempdir");
        let mut rng = rand::rng();
        let host_key = PrivateKey::random(&mut rng, Algorithm::Ed25519).expect("host key");
        let host_key_path = dir.path().join("host_ed25519_key");
        host_key
            .write_openssh_file(&host_key_path, LineEnding::LF)
            .expect("write host key");
        let ca = PrivateKey::random(&mut rng, Algorithm::Ed25519).expect("ca key");
        let ca_public_key = ca.public_key().to_openssh().expect("ca pub");
        std::fs::write(dir.path().join("ca.pub"), format!("{ca_public_key}\n")).expect("ca.pub");
        std::fs::create_dir(dir.path().join("authorized_keys")).expect("authorized_keys dir");
        std::fs::set_permissions(
            dir.path().join("authorized_keys"),
            std::fs::Permissions::from_mode(0o755),
        )
        .expect("chmod");

        let port = free_port();
        let host_public_key = host_key.public_key().to_openssh().expect("host pub");
        let known_hosts = dir.path().join("known_hosts");
        std::fs::write(
            &known_hosts,
            format!("[127.0.0.1]:{port} {host_public_key}\n"),
        )
        .expect("known_hosts");

        let d = dir.path().display();
        let config = dir.path().join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\n\
                 ListenAddress 127.0.0.1\n\
                 HostKey {d}/host_ed25519_key\n\
                 PidFile {d}/sshd.pid\n\
                 PubkeyAuthentication yes\n\
                 PasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\n\
                 PermitRootLogin no\n\
                 AuthorizedKeysFile {d}/authorized_keys/%u\n\
                 TrustedUserCAKeys {d}/ca.pub\n\
                 UsePAM no\n\
                 StrictModes no\n\
                 MaxSessions 10\n\
                 MaxStartups 100:30:200\n\
                 LoginGraceTime 30\n\
                 LogLevel VERBOSE\n\
                 Subsystem sftp /usr/lib/openssh/sftp-server\n"
            ),
        )
        .expect("sshd_config");

        let mut sshd = Sshd {
            port,
            ca_private_key: ca.to_openssh(LineEnding::LF).expect("ca text").to_string(),
            ca_public_key,
            host_public_key,
            known_hosts,
            log: dir.path().join("sshd.log"),
            config,
            dir,
            child: None,
        };
        sshd.spawn();
        Some(sshd)
    }

    fn spawn(&mut self) {
        let child = Command::new(SSHD)
            .arg("-D")
            .arg("-f")
            .arg(&self.config)
            .arg("-E")
            .arg(&self.log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sshd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("sshd exited with {status}: {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "sshd did not listen: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills sshd and every connection process, then starts it again on the same port with
    /// the same keys (what clients see when a cluster's sshd restarts).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Kills sshd and all its descendants (connection handlers and user processes).
    pub fn kill(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let mut pids = descendants(child.id());
        pids.push(child.id());
        for pid in &pids {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .stderr(Stdio::null())
                .status();
        }
        let _ = child.wait();
    }

    /// Sends `signal` (a `kill` name like `STOP`) to every connection process of this sshd
    /// (not the listener), e.g. to make established connections hang.
    pub fn signal_connections(&self, signal: &str) {
        let Some(child) = self.child.as_ref() else {
            return;
        };
        for pid in descendants(child.id()) {
            let _ = Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(pid.to_string())
                .stderr(Stdio::null())
                .status();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Lets `user` log in with `public_key` (OpenSSH one-line form).
    pub fn authorize(&self, user: &str, public_key: &str) {
        let path = self.dir.path().join("authorized_keys").join(user);
        std::fs::write(&path, format!("{public_key}\n")).expect("authorized_keys");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }

    /// A directory the test users can read, for gate files.
    pub fn shared_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn settings(&self) -> PoolSettings {
        PoolSettings {
            cluster: "test".into(),
            host: "127.0.0.1".into(),
            port: self.port,
            known_hosts: self.known_hosts.clone(),
            max_clients: 10,
            max_sessions_per_connection: 10,
            max_sftp_sessions_per_user: 4,
            timeouts: SshTimeouts {
                connection: 10,
                login: 10,
                command_execution: 20,
                idle_timeout: 60,
                keep_alive: 5,
            },
            output_limit: 8 << 20,
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.kill();
    }
}

fn unavailable() -> Option<String> {
    if !Path::new(SSHD).exists() {
        return Some(format!("{SSHD} is not installed"));
    }
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("not running as root".into());
    }
    None
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

fn install_privsep_dir() {
    let status = Command::new("install")
        .args(["-d", "-m", "755", "/run/sshd"])
        .status()
        .expect("install");
    assert!(status.success(), "cannot create /run/sshd");
}

/// Creates a local login account if missing (tests run as root).
pub fn ensure_user(name: &str) {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let exists = || {
        Command::new("id")
            .arg("-u")
            .arg(name)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !exists() {
        // Another test binary may be creating it at the same moment: retry briefly.
        for _ in 0..50 {
            let created = Command::new("useradd")
                .args(["-m", "-s", "/bin/bash", name])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if created || exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(exists(), "cannot create user {name}");
    }
    // `useradd` leaves the account locked (`!`), which sshd refuses without PAM.
    let status = Command::new("usermod")
        .args(["-p", "*", name])
        .status()
        .expect("usermod");
    assert!(status.success(), "usermod -p '*' {name} failed");
}

/// Every process below `root`, children first found by walking /proc.
fn descendants(root: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // The command name may contain spaces; fields after its closing ')' are fixed.
            let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
                continue;
            };
            if let Some(ppid) = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok()) {
                parents.push((pid, ppid));
            }
        }
    }
    let mut found = vec![root];
    let mut index = 0;
    while index < found.len() {
        let parent = found[index];
        found.extend(
            parents
                .iter()
                .filter(|(_, p)| *p == parent)
                .map(|(c, _)| *c),
        );
        index += 1;
    }
    found.remove(0);
    found
}

/// Processes of `user` whose full command line is exactly `command`.
pub fn processes_of(user: &str, command: &str) -> usize {
    let output = Command::new("pgrep")
        .args(["-u", user, "-x", "-f", command])
        .output()
        .expect("pgrep");
    String::from_utf8_lossy(&output.stdout).lines().count()
}
