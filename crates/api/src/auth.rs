//! The bearer-token check (the FirecREST v1 gateway's job), as an axum extractor: a
//! handler that takes an [`AuthenticatedUser`] only runs for a valid token.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use ironcrest_auth::Grants;
use ironcrest_gateway::KeyRefusal;
use ironcrest_remote::Caller;
use tracing::Instrument;

use crate::AppState;
use crate::audit::AuditRecord;
use crate::call::client_address;
use crate::error::ApiError;
use crate::middleware::RequestIds;

/// The caller a valid token names, and what the token grants (for the gateway).
#[derive(Clone)]
pub struct AuthenticatedUser {
    pub caller: Caller,
    pub grants: Arc<Grants>,
}

impl FromRequestParts<AppState> for AuthenticatedUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let span = tracing::debug_span!("authenticate", auth.method = tracing::field::Empty);
        let user = authenticate(parts, state)
            .instrument(span)
            .await?
            .acting_for(parts);
        if let Some(record) = AuditRecord::of(&parts.extensions) {
            record.caller(&user.caller.username, user.grants.client_id.as_deref());
        }
        Ok(user)
    }
}

impl AuthenticatedUser {
    /// The caller with the request's ids, which its commands carry to the cluster.
    fn acting_for(mut self, parts: &Parts) -> Self {
        if let Some(ids) = parts.extensions.get::<RequestIds>() {
            self.caller = self.caller.for_request(ironcrest_remote::RequestIds {
                request_id: ids.request_id.clone(),
                correlation_id: Some(ids.correlation_id.clone()),
            });
        }
        self
    }
}

/// The caller of a bearer token, an API key or the UI's session cookie (in that order).
async fn authenticate(parts: &Parts, state: &AppState) -> Result<AuthenticatedUser, ApiError> {
    let token = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            let (scheme, token) = value.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .filter(|token| !token.is_empty());
    let method = |name: &str| {
        tracing::Span::current().record("auth.method", name);
    };
    let session_token;
    let token = match (token, parts.headers.get(API_KEY)) {
        (Some(token), _) => {
            method("bearer");
            token
        }
        (None, Some(key)) => {
            method("api_key");
            return api_key_holder(parts, state, key);
        }
        // The web UI's session cookie, the only other credential (docs/ui.md).
        (None, None) => {
            let ui = state.ui.as_ref().ok_or(ApiError::NotAuthenticated)?;
            session_token = ui
                .session_token(parts)
                .await?
                .ok_or(ApiError::NotAuthenticated)?;
            method("session");
            session_token.as_str()
        }
    };
    let verified = state.verifier.verify(token).await?;
    if !is_posix_username(&verified.username) {
        return Err(ApiError::InvalidUsername);
    }
    Ok(AuthenticatedUser {
        caller: Caller {
            username: verified.username,
            access_token: verified.access_token,
            request_ids: None,
            idempotency: None,
        },
        grants: verified.grants,
    })
}

/// The header pyfirecrest's `ApiKeyAuth` sends.
const API_KEY: &str = "x-api-key";

/// The caller an API key stands for. Such a caller has no IdP token: backends that need
/// one (an external key service, slurmrestd, OpenFGA) refuse it.
fn api_key_holder(
    parts: &Parts,
    state: &AppState,
    key: &HeaderValue,
) -> Result<AuthenticatedUser, ApiError> {
    let refused = |message: String| ApiError::Http {
        status: StatusCode::UNAUTHORIZED,
        message,
    };
    let key = key
        .to_str()
        .map_err(|_| refused(KeyRefusal::Unknown.to_string()))?;
    let address = client_address(parts, state);
    let holder = state
        .gateway
        .key_holder(key, address)
        .ok_or_else(|| refused("API keys are not accepted by this server.".into()))?
        .map_err(|refusal| refused(refusal.to_string()))?;
    if !is_posix_username(&holder.user) {
        return Err(ApiError::InvalidUsername);
    }
    Ok(AuthenticatedUser {
        caller: Caller::new(holder.user, ""),
        grants: Arc::new(Grants {
            client_id: Some(format!("api-key:{}", holder.id)),
            scopes: holder.scopes,
            groups: Vec::new(),
        }),
    })
}

/// The portable POSIX user-name set (plus a trailing `$` for machine accounts). A user
/// name becomes the SSH login and a scheduler argument, so nothing else is let through.
pub(crate) fn is_posix_username(name: &str) -> bool {
    let name = name.strip_suffix('$').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::is_posix_username;

    #[test]
    fn only_portable_user_names_pass() {
        for good in ["fireuser", "a.b-c_d", "svc$", "u1"] {
            assert!(is_posix_username(good), "{good}");
        }
        for bad in [
            "",
            "-rf",
            "a b",
            "x'y",
            "$(id)",
            "a/b",
            "ü",
            "a\nb",
            &"x".repeat(65),
        ] {
            assert!(!is_posix_username(bad), "{bad:?}");
        }
    }
}
