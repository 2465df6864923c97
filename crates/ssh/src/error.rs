//! Errors of the SSH layer. `Display` is the message FirecREST v2 returns to API clients
//! (pyfirecrest and scripts match on it); the detail that explains *why* is kept in the
//! variant's fields for logs and is available through [`SshError::detail`].

use ironcrest_remote::CommandError;

/// Why an SSH operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SshError {
    /// TCP connect plus SSH handshake took longer than `timeouts.connection`.
    #[error("SSH connection timeout limit exceeded.")]
    ConnectTimeout,
    /// User authentication took longer than `timeouts.login`.
    #[error("SSH connection timeout limit exceeded.")]
    LoginTimeout,
    /// The command ran longer than `timeouts.command_execution`; it was signalled and its
    /// channel closed.
    #[error("Command execution timeout limit exceeded.")]
    CommandTimeout,
    /// stdout or stderr exceeded the pool's output limit; the command was stopped.
    #[error("Command output exceeded buffer limit.")]
    OutputTooLarge { limit: u64 },
    /// TCP or SSH transport failure while connecting.
    #[error("Unable to establish SSH connection.")]
    ConnectionFailed(String),
    /// The connection died while a command was running on it (not retried: the command
    /// may have had effects).
    #[error("Unable to establish SSH connection.")]
    ConnectionLost(String),
    /// sshd refused the key or certificate.
    #[error("Unable to establish SSH connection.")]
    AuthenticationFailed { user: String, detail: String },
    /// The server's host key is not in `known_hosts`, or differs from the recorded one.
    #[error("Unable to establish SSH connection.")]
    HostKeyRejected { host: String, detail: String },
    /// sshd refused a new session channel, or refused the `exec` request on it.
    #[error("Unable to open a new SSH channel.")]
    ChannelOpenFailed(String),
    /// The server broke the protocol (for example, closed a channel without an exit status).
    #[error("SSH Protocol Error.")]
    Protocol(String),
    /// `max_clients` connections are open and none became free within `timeouts.connection`.
    #[error("SSH connection pool capacity exceeded")]
    PoolFull,
    /// No credentials could be produced for the user (unknown static user, key service
    /// refused, unparsable key). The message never contains key material or tokens.
    #[error("{0}")]
    Credentials(String),
    /// The external key service did not answer within its timeout.
    #[error("SSH keys generation timeout limit exceeded.")]
    KeyServiceTimeout,
}

impl SshError {
    /// The variant as a metric label value (bounded, no detail).
    pub fn kind(&self) -> &'static str {
        match self {
            SshError::ConnectTimeout => "connect_timeout",
            SshError::LoginTimeout => "login_timeout",
            SshError::CommandTimeout => "command_timeout",
            SshError::OutputTooLarge { .. } => "output_too_large",
            SshError::ConnectionFailed(_) => "connection_failed",
            SshError::ConnectionLost(_) => "connection_lost",
            SshError::AuthenticationFailed { .. } => "authentication_failed",
            SshError::HostKeyRejected { .. } => "host_key_rejected",
            SshError::ChannelOpenFailed(_) => "channel_open_failed",
            SshError::Protocol(_) => "protocol",
            SshError::PoolFull => "pool_full",
            SshError::Credentials(_) => "credentials",
            SshError::KeyServiceTimeout => "key_service_timeout",
        }
    }

    /// A longer, log-oriented explanation (never contains secrets).
    pub fn detail(&self) -> String {
        match self {
            SshError::ConnectTimeout => "TCP connect or SSH handshake timed out".into(),
            SshError::LoginTimeout => "SSH user authentication timed out".into(),
            SshError::CommandTimeout => "command execution timed out".into(),
            SshError::OutputTooLarge { limit } => {
                format!("command output exceeded {limit} bytes")
            }
            SshError::ConnectionFailed(detail) => format!("connection failed: {detail}"),
            SshError::ConnectionLost(detail) => format!("connection lost: {detail}"),
            SshError::AuthenticationFailed { user, detail } => {
                format!("authentication as {user} failed: {detail}")
            }
            SshError::HostKeyRejected { host, detail } => {
                format!("host key of {host} rejected: {detail}")
            }
            SshError::ChannelOpenFailed(detail) => format!("channel open failed: {detail}"),
            SshError::Protocol(detail) => format!("protocol error: {detail}"),
            SshError::PoolFull => "no free connection slot within the connection timeout".into(),
            SshError::Credentials(detail) => format!("credentials: {detail}"),
            SshError::KeyServiceTimeout => "key service timed out".into(),
        }
    }
}

/// Why [`crate::SshPool::run`] failed: either the transport, or the command's parser (its
/// [`RemoteCommand::Error`](ironcrest_remote::RemoteCommand::Error), a [`CommandError`]
/// unless the command says otherwise).
#[derive(Debug, Clone, thiserror::Error)]
pub enum RunError<E = CommandError> {
    #[error(transparent)]
    Ssh(#[from] SshError),
    #[error(transparent)]
    Command(E),
}

/// A credentials configuration that cannot be used (bad CA key, unparsable static key...).
#[derive(Debug, thiserror::Error)]
pub enum CredentialsSetupError {
    #[error("ssh_credentials.ca_private_key: {0}")]
    CaKey(String),
    #[error("ssh_credentials.keys.{user}: {detail}")]
    StaticKey { user: String, detail: String },
    #[error("ssh_credentials.url: {0}")]
    KeyService(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_statuses_follow_firecrest() {
        let cases = [
            (
                SshError::ConnectTimeout,
                "SSH connection timeout limit exceeded.",
            ),
            (
                SshError::LoginTimeout,
                "SSH connection timeout limit exceeded.",
            ),
            (
                SshError::CommandTimeout,
                "Command execution timeout limit exceeded.",
            ),
            (
                SshError::KeyServiceTimeout,
                "SSH keys generation timeout limit exceeded.",
            ),
            (
                SshError::OutputTooLarge { limit: 1 },
                "Command output exceeded buffer limit.",
            ),
            (
                SshError::ConnectionFailed("x".into()),
                "Unable to establish SSH connection.",
            ),
            (
                SshError::ConnectionLost("x".into()),
                "Unable to establish SSH connection.",
            ),
            (
                SshError::AuthenticationFailed {
                    user: "u".into(),
                    detail: "d".into(),
                },
                "Unable to establish SSH connection.",
            ),
            (
                SshError::HostKeyRejected {
                    host: "h".into(),
                    detail: "d".into(),
                },
                "Unable to establish SSH connection.",
            ),
            (
                SshError::ChannelOpenFailed("x".into()),
                "Unable to open a new SSH channel.",
            ),
            (SshError::Protocol("x".into()), "SSH Protocol Error."),
            (SshError::PoolFull, "SSH connection pool capacity exceeded"),
            (SshError::Credentials("no key for u".into()), "no key for u"),
        ];
        for (err, message) in cases {
            assert_eq!(err.to_string(), message, "{err:?}");
            assert!(!err.detail().is_empty());
            assert!(
                err.kind()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_')
            );
        }
    }
}
