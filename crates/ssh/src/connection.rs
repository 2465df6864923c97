//! Opening one authenticated SSH connection: TCP, handshake with host key verification,
//! then public-key or certificate login, each step bounded by its timeout.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use russh::client::{self, AuthResult, Handle};
use russh::keys::{PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::credentials::Credentials;
use crate::{PoolSettings, SshError, known_hosts};

pub(crate) type SshHandle = Handle<ClientHandler>;

/// The russh callbacks of a client connection: only host key checking matters here.
pub(crate) struct ClientHandler {
    host: String,
    port: u16,
    known_hosts: PathBuf,
}

/// Errors surfaced through russh's handler plumbing.
#[derive(Debug)]
pub(crate) enum HandlerError {
    Russh(russh::Error),
    HostKey(String),
}

impl From<russh::Error> for HandlerError {
    fn from(err: russh::Error) -> Self {
        HandlerError::Russh(err)
    }
}

impl client::Handler for ClientHandler {
    type Error = HandlerError;

    async fn check_server_key(
        &mut self,
        server_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        // A host certificate is checked by its embedded key: `@cert-authority` trust is
        // not supported, the plain key must be listed.
        let key = match server_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.clone(),
            PublicKeyOrCertificate::Certificate(cert) => PublicKey::from(cert.public_key().clone()),
        };
        known_hosts::verify(&self.known_hosts, &self.host, self.port, &key)
            .await
            .map(|()| true)
            .map_err(HandlerError::HostKey)
    }
}

/// The russh client configuration shared by a pool's connections.
pub(crate) fn client_config(settings: &PoolSettings) -> Arc<client::Config> {
    Arc::new(client::Config {
        // sshd answers keepalive@openssh.com; three unanswered probes drop the connection
        // (as FirecREST's asyncssh setup), which the pool then notices and replaces.
        keepalive_interval: Some(settings.keep_alive()),
        keepalive_max: 3,
        nodelay: true,
        ..Default::default()
    })
}

/// Opens and authenticates a connection for `username`.
pub(crate) async fn open(
    settings: &PoolSettings,
    config: Arc<client::Config>,
    username: &str,
    credentials: Credentials,
) -> Result<SshHandle, SshError> {
    let started = Instant::now();
    let connect_timeout = settings.connection_timeout();
    let address = (settings.host.as_str(), settings.port);
    let tcp = timeout(connect_timeout, TcpStream::connect(address))
        .await
        .map_err(|_| SshError::ConnectTimeout)?
        .map_err(|err| {
            SshError::ConnectionFailed(format!(
                "TCP connect to {}:{}: {err}",
                settings.host, settings.port
            ))
        })?;
    // `client::connect_stream` does not apply `Config::nodelay` itself (only `connect`
    // does); without it every small request waits for delayed ACKs.
    if let Err(err) = tcp.set_nodelay(true) {
        tracing::debug!(error = %err, "cannot set TCP_NODELAY");
    }
    let handler = ClientHandler {
        host: settings.host.clone(),
        port: settings.port,
        known_hosts: settings.known_hosts.clone(),
    };
    let remaining = connect_timeout.saturating_sub(started.elapsed());
    let mut handle = timeout(remaining, client::connect_stream(config, tcp, handler))
        .await
        .map_err(|_| SshError::ConnectTimeout)?
        .map_err(|err| match err {
            HandlerError::HostKey(detail) => SshError::HostKeyRejected {
                host: format!("{}:{}", settings.host, settings.port),
                detail,
            },
            HandlerError::Russh(err) => SshError::ConnectionFailed(format!("SSH handshake: {err}")),
        })?;

    let login = authenticate(&mut handle, username, credentials);
    match timeout(settings.login_timeout(), login).await {
        Ok(Ok(())) => Ok(handle),
        Ok(Err(err)) => Err(err),
        Err(_) => Err(SshError::LoginTimeout),
    }
}

async fn authenticate(
    handle: &mut SshHandle,
    username: &str,
    credentials: Credentials,
) -> Result<(), SshError> {
    let failed = |detail: String| SshError::AuthenticationFailed {
        user: username.to_string(),
        detail,
    };
    let result = match credentials.certificate {
        Some(cert) => {
            handle
                .authenticate_openssh_cert(username, credentials.key, cert)
                .await
        }
        None => {
            // RSA keys need a signature hash the server accepts; others ignore it.
            let hash = handle
                .best_supported_rsa_hash()
                .await
                .map_err(|err| failed(format!("server-sig-algs: {err}")))?
                .flatten();
            let key = PrivateKeyWithHashAlg::new(credentials.key, hash);
            handle.authenticate_publickey(username, key).await
        }
    };
    match result {
        Ok(AuthResult::Success) => Ok(()),
        Ok(AuthResult::Failure {
            remaining_methods,
            partial_success,
        }) => Err(failed(format!(
            "refused by server (partial success: {partial_success}, remaining methods: {remaining_methods:?})"
        ))),
        Err(err) => Err(failed(err.to_string())),
    }
}

/// Ends a connection politely; the server may already be gone, which is fine.
pub(crate) async fn close(handle: &SshHandle) {
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        handle.disconnect(russh::Disconnect::ByApplication, "", "en"),
    )
    .await;
}
