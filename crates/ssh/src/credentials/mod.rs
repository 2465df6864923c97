//! Where a user's SSH login credentials come from. A [`CredentialProvider`] is asked only
//! when a new connection is opened; a connection outlives the certificate it logged in with.
//!
//! - [`CertificateAuthority`]: Ironcrest is the user CA; ephemeral keys, in memory only.
//! - [`StaticKeys`]: one configured key (and optional certificate) per user.
//! - [`KeyService`]: FirecREST v2's `SSHService` protocol, called with the user's token.

mod ca;
mod key_service;
mod static_keys;

use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use ironcrest_config::SshCredentialsConfig;
use ironcrest_remote::Caller;
use russh::keys::{Certificate, PrivateKey};

pub use ca::CertificateAuthority;
pub use key_service::KeyService;
pub use static_keys::StaticKeys;

use crate::{CredentialsSetupError, SshError};

/// A private key and, for certificate logins, the certificate for its public key.
#[derive(Clone)]
pub struct Credentials {
    pub key: Arc<PrivateKey>,
    pub certificate: Option<Certificate>,
}

impl fmt::Debug for Credentials {
    /// Never prints key material: only what identifies the credentials in a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("Credentials");
        out.field("key_algorithm", &self.key.algorithm().as_str());
        if let Some(cert) = &self.certificate {
            out.field("cert_key_id", &cert.key_id())
                .field("cert_serial", &cert.serial())
                .field("cert_valid_before", &cert.valid_before());
        }
        out.finish_non_exhaustive()
    }
}

/// Produces login credentials for a user.
#[async_trait]
pub trait CredentialProvider: Send + Sync {
    async fn credentials(&self, user: &Caller) -> Result<Credentials, SshError>;

    /// The command the credentials force on the cluster (the guard), if they force one.
    fn forced_command(&self) -> Option<&str> {
        None
    }
}

/// Seconds since the Unix epoch; injectable so certificate renewal can be tested.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

pub(crate) fn system_clock() -> Clock {
    Arc::new(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs())
    })
}

/// The provider the configuration asks for. Keys are parsed here, so a broken key is a
/// startup error rather than a failure of the first request.
pub fn provider_from_config(
    config: &SshCredentialsConfig,
    http: reqwest::Client,
) -> Result<Arc<dyn CredentialProvider>, CredentialsSetupError> {
    Ok(match config {
        SshCredentialsConfig::CertificateAuthority {
            ca_private_key,
            certificate_lifetime,
            restrictions,
        } => Arc::new(
            CertificateAuthority::from_openssh(ca_private_key.expose(), *certificate_lifetime)?
                .restricted(restrictions.clone()),
        ),
        SshCredentialsConfig::StaticKeys { keys } => Arc::new(StaticKeys::from_config(keys)?),
        SshCredentialsConfig::KeyService { url, timeout } => {
            Arc::new(KeyService::new(http, url, *timeout)?)
        }
    })
}
