//! Per-cluster pool settings, derived from the cluster's `ssh` configuration.

use std::path::PathBuf;
use std::time::Duration;

use ironcrest_config::{SshConfig, SshTimeouts};

/// How a [`crate::SshPool`] reaches one cluster and how it bounds its work.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// The cluster's name, which labels the pool's metrics.
    pub cluster: String,
    pub host: String,
    pub port: u16,
    /// OpenSSH `known_hosts` file the server's host key must appear in.
    pub known_hosts: PathBuf,
    /// Bound on open connections to this cluster, all users together.
    pub max_clients: usize,
    /// Channels multiplexed on one connection (keep it at or below sshd's `MaxSessions`).
    pub max_sessions_per_connection: usize,
    /// Standing SFTP sessions (sftp-server processes) one user may have at once.
    pub max_sftp_sessions_per_user: usize,
    pub timeouts: SshTimeouts,
    /// Bytes accepted per output stream (stdout and stderr separately); more is an error.
    pub output_limit: u64,
}

impl PoolSettings {
    /// Settings for a cluster. A missing `known_hosts` (which config validation rejects)
    /// becomes an empty path, so every host key is refused rather than accepted.
    pub fn from_config(cluster: &str, ssh: &SshConfig, output_limit: u64) -> Self {
        Self {
            cluster: cluster.to_string(),
            host: ssh.host.clone(),
            port: ssh.port,
            known_hosts: ssh.known_hosts.clone().unwrap_or_default(),
            max_clients: ssh.max_clients.max(1),
            max_sessions_per_connection: ssh.max_sessions_per_connection.max(1),
            max_sftp_sessions_per_user: ssh.max_sftp_sessions_per_user.max(1),
            timeouts: ssh.timeout.clone(),
            output_limit,
        }
    }

    pub(crate) fn connection_timeout(&self) -> Duration {
        Duration::from_secs(self.timeouts.connection)
    }

    pub(crate) fn login_timeout(&self) -> Duration {
        Duration::from_secs(self.timeouts.login)
    }

    pub fn command_timeout(&self) -> Duration {
        Duration::from_secs(self.timeouts.command_execution)
    }

    pub(crate) fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.timeouts.idle_timeout)
    }

    pub(crate) fn keep_alive(&self) -> Duration {
        Duration::from_secs(self.timeouts.keep_alive)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_follow_the_cluster_config() {
        let ssh: SshConfig = serde_json::from_value(serde_json::json!({
            "host": "cluster.example",
            "port": 2222,
            "known_hosts": "/etc/ironcrest/known_hosts",
            "max_clients": 7,
            "timeout": {"command_execution": 9}
        }))
        .unwrap();
        let settings = PoolSettings::from_config("c", &ssh, 5 << 20);
        assert_eq!(settings.host, "cluster.example");
        assert_eq!(settings.port, 2222);
        assert_eq!(
            settings.known_hosts,
            PathBuf::from("/etc/ironcrest/known_hosts")
        );
        assert_eq!(settings.max_clients, 7);
        assert_eq!(settings.max_sessions_per_connection, 10);
        assert_eq!(settings.max_sftp_sessions_per_user, 4);
        assert_eq!(settings.command_timeout(), Duration::from_secs(9));
        assert_eq!(settings.connection_timeout(), Duration::from_secs(5));
        assert_eq!(settings.output_limit, 5 << 20);
    }
}
