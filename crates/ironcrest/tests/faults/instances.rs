//! Private copies of the dev environment's services, started by a test on a free port from
//! the environment's own configuration, so the test can break them (kill, pause, refuse)
//! without touching what other tests use. Each is killed, with every process it forked,
//! when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rustix::process::{Pid, Signal, kill_process};

use crate::harness::env;

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A directory the cluster's users can read (for wrappers and logs they use).
pub fn shared_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    dir
}

/// One private service process, restartable, listening on `port`.
pub struct Instance {
    name: &'static str,
    pub port: u16,
    command: Box<dyn Fn() -> Command + Send + Sync>,
    log: PathBuf,
    child: Option<Child>,
}

impl Instance {
    /// Starts `command` (its output to `log`) and waits until it listens on `port`.
    pub fn start(
        name: &'static str,
        port: u16,
        log: PathBuf,
        command: impl Fn() -> Command + Send + Sync + 'static,
    ) -> Self {
        let mut instance = Self {
            name,
            port,
            command: Box::new(command),
            log,
            child: None,
        };
        instance.restart();
        instance
    }

    /// Starts the service again (after [`Self::kill`]) and waits until it listens.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "{} is running", self.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = (self.command)()
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| panic!("{}: {err}", self.name));
        self.child = Some(child);
        for _ in 0..600 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "{} exited ({status}): see {}",
                    self.name,
                    self.log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "{} did not listen on {} within 30 s: see {}",
            self.name,
            self.port,
            self.log.display()
        );
    }

    /// Kills the service and every process it forked (for sshd: every connection), as a
    /// crash or a power cut would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Frozen first, so it forks nothing the walk below would miss.
            signal(child.id(), Signal::STOP);
            for pid in descendants(child.id()) {
                signal(pid, Signal::KILL);
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the service (SIGSTOP): connections are accepted by the kernel and never answered.
    pub fn pause(&self) {
        signal(self.pid(), Signal::STOP);
    }

    pub fn resume(&self) {
        signal(self.pid(), Signal::CONT);
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            signal(child.id(), Signal::CONT);
        }
        self.kill();
    }
}

fn signal(pid: u32, signal: Signal) {
    if let Some(pid) = Pid::from_raw(pid as i32) {
        let _ = kill_process(pid, signal);
    }
}

/// Every process below `pid`, children before their own children.
fn descendants(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    let children: Vec<u32> = entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| parent_of(*child) == Some(pid))
        .collect();
    for child in children {
        found.push(child);
        found.extend(descendants(child));
    }
    found
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The parent pid is the second field after the parenthesised command name.
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// A private sshd: the dev sshd's configuration (host key, user CA, subsystem) on a free
/// port, with `options` (`-o` values) on top.
pub struct Sshd {
    pub instance: Instance,
    pub known_hosts: PathBuf,
    _dir: tempfile::TempDir,
}

impl Sshd {
    pub fn start(options: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let prefix = env("IRONCREST_DEV_PREFIX");
        let host_key =
            std::fs::read_to_string(format!("{prefix}/ssh/ssh_host_ed25519_key.pub")).unwrap();
        let host_key = host_key.split_whitespace().take(2).collect::<Vec<_>>();
        let known_hosts = dir.path().join("known_hosts");
        std::fs::write(
            &known_hosts,
            format!("[127.0.0.1]:{port} {}\n", host_key.join(" ")),
        )
        .unwrap();
        let pid_file = dir.path().join("sshd.pid");
        let log = dir.path().join("sshd.log");
        let options: Vec<String> = options.iter().map(|o| o.to_string()).collect();
        let instance = Instance::start("sshd", port, dir.path().join("sshd.out"), move || {
            let mut command = Command::new("/usr/sbin/sshd");
            command
                .args(["-D", "-f", &format!("{prefix}/ssh/sshd_config")])
                .args(["-o", &format!("Port={port}")])
                .args(["-o", &format!("PidFile={}", pid_file.display())])
                .arg("-E")
                .arg(&log);
            for option in &options {
                command.args(["-o", option]);
            }
            command
        });
        Self {
            instance,
            known_hosts,
            _dir: dir,
        }
    }

    /// Points the test server's (only) cluster at this sshd.
    pub fn serve(&self, config: &mut ironcrest_config::Config) {
        let ssh = &mut config.clusters[0].ssh;
        ssh.port = self.instance.port;
        ssh.known_hosts = Some(self.known_hosts.clone());
    }
}

/// A private S3 server: the dev environment's moto, in memory, on a free port.
pub fn moto(dir: &Path) -> Instance {
    let port = free_port();
    let server = format!("{}/moto/venv/bin/moto_server", env("IRONCREST_DEV_PREFIX"));
    Instance::start("moto", port, dir.join("moto.log"), move || {
        let mut command = Command::new(&server);
        command.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        command
    })
}

/// A private slurmrestd in front of the dev cluster's Slurm, run as the dev environment
/// runs its own (user slurmrest, JWT authentication, the same plugins).
pub fn slurmrestd(dir: &Path) -> Instance {
    let port = free_port();
    let slurm_conf = format!("{}/slurm/etc/slurm.conf", env("IRONCREST_DEV_PREFIX"));
    Instance::start("slurmrestd", port, dir.join("slurmrestd.log"), move || {
        let mut command = Command::new("setpriv");
        command
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("SLURM_CONF", &slurm_conf)
            .env("SLURM_JWT", "daemon")
            .args([
                "--reuid=slurmrest",
                "--regid=slurmrest",
                "--init-groups",
                "--",
            ])
            .args(["slurmrestd", "-a", "rest_auth/jwt"])
            .args(["-s", "openapi/v0.0.38,openapi/dbv0.0.38", "-t", "4"])
            .arg(format!("127.0.0.1:{port}"));
        command
    })
}

/// A private OIDC provider: the dev environment's (panva's oidc-provider, its clients and
/// claims) on a free port, signing with the keys in `private_jwks` (the first one signs).
pub fn oidc(dir: &Path, private_jwks: &Path) -> Instance {
    let port = free_port();
    let app = format!("{}/oidc/app/server.mjs", env("IRONCREST_DEV_PREFIX"));
    let jwks = private_jwks.to_path_buf();
    Instance::start("oidc", port, dir.join("oidc.log"), move || {
        let mut command = Command::new("node");
        command
            .env("OIDC_HOST", "127.0.0.1")
            .env("OIDC_PORT", port.to_string())
            .env("OIDC_ISSUER", format!("http://127.0.0.1:{port}"))
            .env("OIDC_PRIVATE_JWKS", &jwks)
            .arg(&app);
        command
    })
}
