//! Ironcrest's SSH layer: a pure-Rust (russh) async client pool per cluster that runs
//! remote commands as the API's caller ([`ironcrest_remote::Caller`]), with delegated
//! credentials.
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

pub use credentials::{
    CertificateAuthority, Clock, CredentialProvider, Credentials, KeyService, StaticKeys,
    provider_from_config,
};
pub use error::{CredentialsSetupError, RunError, SshError};
pub use exec::{Input, InputAborted, Streamed};
pub use pool::{PoolStats, SshPool};
pub use settings::PoolSettings;
pub use sftp::{READ_CHUNK, Sftp, SftpAttrs, SftpEntry, SftpError, SftpHandle};
