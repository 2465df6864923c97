//! [`Caller`]: whom a remote command runs as.

use std::fmt;

use secrecy::SecretString;

/// The authenticated caller of a request: the cluster account its commands run as, the
/// access token it came with, and the request's ids. The token is only ever sent to an
/// external key service, and `Debug` leaves it out.
#[derive(Clone)]
pub struct Caller {
    pub username: String,
    pub access_token: SecretString,
    /// The HTTP request's ids, which every command run for it carries to the cluster; none
    /// for background work (health checks), which has no request.
    pub request_ids: Option<RequestIds>,
    /// The hashes of the request's `Idempotency-Key` and of the request itself, which a job
    /// submitted for it carries in its comment (see `docs/retries.md`).
    pub idempotency: Option<IdempotencyMark>,
}

/// What an `Idempotency-Key` leaves on the work it started: 16 hex digits of the key's hash
/// and of the request's fingerprint, never the key itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyMark {
    pub key_hash: String,
    pub fingerprint_hash: String,
}

/// The ids of the HTTP request a command runs for: already checked by the API to be
/// printable ASCII without spaces (any value would be quoted all the same).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestIds {
    pub request_id: String,
    pub correlation_id: Option<String>,
}

impl Caller {
    pub fn new(username: impl Into<String>, access_token: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            access_token: SecretString::from(access_token.into()),
            request_ids: None,
            idempotency: None,
        }
    }

    /// The same caller, acting for the request with these ids.
    pub fn for_request(mut self, ids: RequestIds) -> Self {
        self.request_ids = Some(ids);
        self
    }

    /// The same caller, acting for a request made with an `Idempotency-Key`.
    pub fn with_idempotency(mut self, mark: IdempotencyMark) -> Self {
        self.idempotency = Some(mark);
        self
    }
}

impl fmt::Debug for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Caller")
            .field("username", &self.username)
            .field("request_ids", &self.request_ids)
            .field("idempotency", &self.idempotency)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::Caller;

    #[test]
    fn debug_leaves_the_token_out() {
        let caller = Caller::new("fireuser", "secret-token");
        let shown = format!("{caller:?}");
        assert_eq!(
            shown,
            r#"Caller { username: "fireuser", request_ids: None, idempotency: None, .. }"#
        );
    }
}
