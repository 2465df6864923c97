//! [`ClientCredentials`]: the OAuth2 client-credentials grant (RFC 6749 §4.4) for the health
//! checker's service account, with the token cached until shortly before it expires.

use std::time::Duration;

use ironcrest_config::{Secret, TokenEndpointAuthMethod};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::Value;
use tokio::time::Instant;

use crate::TokenFetchError;

/// Timeout of one token request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A cached token is replaced when less than this much of its lifetime remains...
const MIN_REMAINING: Duration = Duration::from_secs(60);
/// ...or less than this fraction (1/4) of it.
const MIN_REMAINING_DIVISOR: u32 = 4;
/// Longest OAuth2 error text copied into a [`TokenFetchError::Status`].
const MAX_DETAIL: usize = 200;

/// Fetches service-account tokens with the client-credentials grant and caches them.
#[derive(Debug)]
pub struct ClientCredentials {
    token_url: String,
    client_id: String,
    secret: Secret,
    method: TokenEndpointAuthMethod,
    http: reqwest::Client,
    /// Locked across a fetch, so concurrent callers share one request.
    cached: tokio::sync::Mutex<Option<CachedToken>>,
}

#[derive(Debug)]
struct CachedToken {
    token: SecretString,
    refetch_at: Instant,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    /// Seconds; some IdPs send it as a string.
    #[serde(default)]
    expires_in: Option<Value>,
}

#[derive(Deserialize)]
struct OAuthError {
    error: Option<String>,
    error_description: Option<String>,
}

impl ClientCredentials {
    pub fn new(
        token_url: String,
        client_id: String,
        secret: Secret,
        method: TokenEndpointAuthMethod,
        http: reqwest::Client,
    ) -> Self {
        Self {
            token_url,
            client_id,
            secret,
            method,
            http,
            cached: tokio::sync::Mutex::new(None),
        }
    }

    /// A valid access token: the cached one while more than 60 s and more than a quarter of its
    /// lifetime remain, else a fresh one. An answer without `expires_in` is not cached.
    pub async fn access_token(&self) -> Result<SecretString, TokenFetchError> {
        let mut cached = self.cached.lock().await;
        if let Some(entry) = cached.as_ref()
            && Instant::now() < entry.refetch_at
        {
            return Ok(entry.token.clone());
        }
        let started = Instant::now();
        let response = self.fetch().await?;
        let token = SecretString::from(response.access_token);
        *cached = match response.expires_in.as_ref().and_then(seconds) {
            Some(lifetime) => {
                let margin = MIN_REMAINING.max(lifetime / MIN_REMAINING_DIVISOR);
                Some(CachedToken {
                    token: token.clone(),
                    refetch_at: started + lifetime.saturating_sub(margin),
                })
            }
            None => None,
        };
        Ok(token)
    }

    async fn fetch(&self) -> Result<TokenResponse, TokenFetchError> {
        let url = &self.token_url;
        let request = self.http.post(url).timeout(REQUEST_TIMEOUT);
        let request = match self.method {
            // RFC 6749 §2.3.1: both parts form-urlencoded before the Basic encoding.
            TokenEndpointAuthMethod::ClientSecretBasic => request
                .basic_auth(
                    form_encode(&self.client_id),
                    Some(form_encode(self.secret.expose())),
                )
                .form(&[("grant_type", "client_credentials")]),
            TokenEndpointAuthMethod::ClientSecretPost => request.form(&[
                ("grant_type", "client_credentials"),
                ("client_id", self.client_id.as_str()),
                ("client_secret", self.secret.expose()),
            ]),
        };
        let request_error = |source| TokenFetchError::Request {
            url: url.clone(),
            source,
        };
        let response = request.send().await.map_err(request_error)?;
        let status = response.status();
        let body = response.bytes().await.map_err(request_error)?;
        if !status.is_success() {
            return Err(TokenFetchError::Status {
                url: url.clone(),
                status: status.as_u16(),
                detail: oauth_error_detail(&body),
            });
        }
        let parsed: TokenResponse =
            serde_json::from_slice(&body).map_err(|err| TokenFetchError::InvalidResponse {
                url: url.clone(),
                reason: format!("not a token response ({})", json_error_category(&err)),
            })?;
        if parsed.access_token.is_empty() {
            return Err(TokenFetchError::InvalidResponse {
                url: url.clone(),
                reason: "empty access_token".into(),
            });
        }
        tracing::debug!(
            oauth.token_url = %url,
            oauth.client_id = %self.client_id,
            oauth.expires_in = ?parsed.expires_in,
            "fetched a service-account token"
        );
        Ok(parsed)
    }
}

/// A JSON error's category only: its message could quote the token.
fn json_error_category(err: &serde_json::Error) -> &'static str {
    match err.classify() {
        serde_json::error::Category::Io => "I/O error",
        serde_json::error::Category::Syntax => "invalid JSON",
        serde_json::error::Category::Data => "missing or mistyped field",
        serde_json::error::Category::Eof => "truncated JSON",
    }
}

fn form_encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// `expires_in` as a number or a numeric string.
fn seconds(value: &Value) -> Option<Duration> {
    match value {
        Value::Number(number) => number.as_u64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
    .map(Duration::from_secs)
}

/// `error: error_description` from an OAuth2 error answer, truncated.
fn oauth_error_detail(body: &[u8]) -> Option<String> {
    let error: OAuthError = serde_json::from_slice(body).ok()?;
    let text = match (error.error, error.error_description) {
        (Some(code), Some(description)) => format!("{code}: {description}"),
        (Some(text), None) | (None, Some(text)) => text,
        (None, None) => return None,
    };
    Some(text.chars().take(MAX_DETAIL).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_in_accepts_numbers_and_numeric_strings() {
        assert_eq!(seconds(&Value::from(300)), Some(Duration::from_secs(300)));
        assert_eq!(seconds(&Value::from("300")), Some(Duration::from_secs(300)));
        assert_eq!(seconds(&Value::from(-1)), None);
        assert_eq!(seconds(&Value::Null), None);
    }

    #[test]
    fn oauth_errors_are_summarised() {
        assert_eq!(
            oauth_error_detail(br#"{"error":"invalid_client","error_description":"bad secret"}"#)
                .as_deref(),
            Some("invalid_client: bad secret")
        );
        assert_eq!(oauth_error_detail(b"<html>"), None);
        assert_eq!(form_encode("a b+c:%"), "a+b%2Bc%3A%25");
    }
}
