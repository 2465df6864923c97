//! A cluster's service account (`clusters[].service_account`): what Ironcrest runs as when
//! it acts for no user — the health checker's probes and the job events poller's listings.

use async_trait::async_trait;
use ironcrest_auth::{ClientCredentials, TokenVerifier};
use ironcrest_remote::Caller;

/// Who Ironcrest is when it acts for no user: the [`ServiceAccount`] (a unit test's stand-in
/// names a fixed caller).
#[async_trait]
pub trait ActsAs: Send + Sync {
    async fn caller(&self) -> Result<Caller, String>;
}

pub struct ServiceAccount {
    credentials: ClientCredentials,
    verifier: TokenVerifier,
}

impl ServiceAccount {
    pub fn new(credentials: ClientCredentials, verifier: TokenVerifier) -> Self {
        Self {
            credentials,
            verifier,
        }
    }
}

#[async_trait]
impl ActsAs for ServiceAccount {
    /// The account as a caller: a token by the client-credentials grant (cached until it
    /// nears its end), verified as a user's would be, which names the account's user.
    /// Its commands answer no request, so they carry no request id.
    async fn caller(&self) -> Result<Caller, String> {
        let token = self
            .credentials
            .access_token()
            .await
            .map_err(|err| format!("service account token: {err}"))?;
        let verified = self
            .verifier
            .verify(secrecy::ExposeSecret::expose_secret(&token))
            .await
            .map_err(|err| format!("service account token: {err}"))?;
        Ok(Caller {
            username: verified.username,
            access_token: verified.access_token,
            request_ids: None,
            idempotency: None,
        })
    }
}
