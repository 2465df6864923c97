//! Ironcrest's SSH layer: a pure-Rust (russh) async client pool per cluster that runs
//! remote commands as the API's user, with delegated credentials.
//!
//! - [`SshPool`]: per-user connections multiplexing channels, a global connection bound,
//!   idle eviction, keepalive, transparent replacement of dead connections; stdin and stdout
//!   can be streamed ([`Input::Stream`], [`SshPool::execute_streaming`]).
//! - [`Sftp`]: a standing per-connection SFTP session for file operations that need no
//!   remote process ([`SshPool::sftp`]).
//! - [`CredentialProvider`]: where login keys come from ([`CertificateAuthority`],
//!   [`StaticKeys`], [`KeyService`]); see [`provider_from_config`].
//! - Host keys are always verified against the cluster's `known_hosts` file.
//! - [`SshError`] displays FirecREST v2's client-facing messages; the API layer maps each
//!   variant to its HTTP status.

mod connection;
mod credentials;
mod error;
mod exec;
mod known_hosts;
mod pool;
mod settings;
mod sftp;

use std::fmt;

use secrecy::SecretString;

pub use credentials::{
    CertificateAuthority, Clock, CredentialProvider, Credentials, KeyService, StaticKeys,
    provider_from_config,
};
pub use error::{CredentialsSetupError, RunError, SshError};
pub use exec::{Input, InputAborted, Streamed};
pub use pool::{PoolStats, SshPool};
pub use settings::PoolSettings;
pub use sftp::{READ_CHUNK, Sftp, SftpAttrs, SftpEntry, SftpError, SftpHandle};

/// The account a command runs as. The token is only sent to an external key service.
#[derive(Clone)]
pub struct SshUser {
    pub username: String,
    pub access_token: SecretString,
}

impl SshUser {
    pub fn new(username: impl Into<String>, access_token: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            access_token: SecretString::from(access_token.into()),
        }
    }
}

impl fmt::Debug for SshUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SshUser")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}
