//! The UI's side of the OIDC authorization-code flow with PKCE, as a confidential client:
//! the IdP's endpoints from its discovery document, the authorization URL, and the token
//! endpoint's code exchange, refresh and revocation.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ironcrest_config::Secret;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use super::session::Tokens;

/// What the IdP's discovery document says the UI needs.
#[derive(Deserialize)]
struct Endpoints {
    authorization_endpoint: String,
    token_endpoint: String,
    #[serde(default)]
    revocation_endpoint: Option<String>,
    #[serde(default)]
    end_session_endpoint: Option<String>,
}

/// The token endpoint's answer (RFC 6749 §5.1).
#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// Why the IdP could not be used; its text never carries a token.
#[derive(Debug)]
pub(crate) struct IdpError(pub String);

pub(crate) struct Idp {
    issuer: String,
    client_id: String,
    client_secret: Secret,
    pub redirect_url: String,
    scope: String,
    http: reqwest::Client,
    endpoints: OnceCell<Endpoints>,
}

/// Without `expires_in`, a token is taken to live this long (and is refreshed after).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(300);

impl Idp {
    pub fn new(
        issuer: String,
        client_id: String,
        client_secret: Secret,
        redirect_url: String,
        scope: String,
        http: reqwest::Client,
    ) -> Self {
        Self {
            issuer,
            client_id,
            client_secret,
            redirect_url,
            scope,
            http,
            endpoints: OnceCell::new(),
        }
    }

    /// The discovery document, read on first use (and again after a failure).
    async fn endpoints(&self) -> Result<&Endpoints, IdpError> {
        self.endpoints
            .get_or_try_init(|| async {
                let base = self.issuer.trim_end_matches('/');
                let url = if base.ends_with("/.well-known/openid-configuration") {
                    base.to_string()
                } else {
                    format!("{base}/.well-known/openid-configuration")
                };
                let response = self.http.get(&url).send().await;
                let response = response
                    .and_then(|r| r.error_for_status())
                    .map_err(|err| IdpError(format!("cannot read {url}: {err}")))?;
                response
                    .json::<Endpoints>()
                    .await
                    .map_err(|err| IdpError(format!("{url} is not a discovery document: {err}")))
            })
            .await
    }

    /// Where the browser is sent to log in: the code flow with an S256 PKCE challenge.
    pub async fn authorization_url(
        &self,
        state: &str,
        code_verifier: &str,
    ) -> Result<String, IdpError> {
        let endpoint = &self.endpoints().await?.authorization_endpoint;
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(code_verifier.as_bytes()));
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", &self.redirect_url)
            .append_pair("scope", &self.scope)
            .append_pair("state", state)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            .finish();
        let separator = if endpoint.contains('?') { '&' } else { '?' };
        Ok(format!("{endpoint}{separator}{query}"))
    }

    pub async fn exchange_code(&self, code: &str, code_verifier: &str) -> Result<Tokens, IdpError> {
        self.token_request(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &self.redirect_url),
            ("code_verifier", code_verifier),
        ])
        .await
    }

    /// New tokens for a refresh token; the IdP may rotate it, else the old one is kept.
    pub async fn refresh(&self, refresh_token: &str) -> Result<Tokens, IdpError> {
        let mut tokens = self
            .token_request(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ])
            .await?;
        tokens
            .refresh_token
            .get_or_insert_with(|| refresh_token.to_string());
        Ok(tokens)
    }

    async fn token_request(&self, form: &[(&str, &str)]) -> Result<Tokens, IdpError> {
        let endpoint = &self.endpoints().await?.token_endpoint;
        let sent = Instant::now();
        let response = self
            .http
            .post(endpoint)
            .basic_auth(&self.client_id, Some(self.client_secret.expose()))
            .form(form)
            .send()
            .await
            .map_err(|err| IdpError(format!("token request failed: {}", err.without_url())))?;
        let status = response.status();
        if !status.is_success() {
            // The IdP's error code and description (RFC 6749 §5.2) carry no token.
            let body = response.text().await.unwrap_or_default();
            let brief: String = body.chars().take(300).collect();
            return Err(IdpError(format!("the IdP answered {status}: {brief}")));
        }
        let answer: TokenResponse = response
            .json()
            .await
            .map_err(|err| IdpError(format!("unreadable token response: {}", err.without_url())))?;
        let lifetime = answer
            .expires_in
            .map_or(DEFAULT_TOKEN_LIFETIME, Duration::from_secs);
        Ok(Tokens {
            access_token: answer.access_token,
            refresh_token: answer.refresh_token,
            expires_at: sent + lifetime,
        })
    }

    /// Revokes a token at the IdP (RFC 7009), when it has a revocation endpoint.
    pub async fn revoke(&self, token: &str, hint: &str) -> Result<(), IdpError> {
        let Some(endpoint) = &self.endpoints().await?.revocation_endpoint else {
            return Ok(());
        };
        let response = self
            .http
            .post(endpoint)
            .basic_auth(&self.client_id, Some(self.client_secret.expose()))
            .form(&[("token", token), ("token_type_hint", hint)])
            .send()
            .await
            .map_err(|err| IdpError(format!("revocation failed: {}", err.without_url())))?;
        match response.status().is_success() {
            true => Ok(()),
            false => Err(IdpError(format!(
                "the IdP answered {} to a revocation",
                response.status()
            ))),
        }
    }

    /// The IdP's end-session page (RP-initiated logout), sending the browser back to the UI.
    pub async fn end_session_url(&self, back_to: &str) -> Option<String> {
        let endpoint = self.endpoints().await.ok()?.end_session_endpoint.as_ref()?;
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("client_id", &self.client_id)
            .append_pair("post_logout_redirect_uri", back_to)
            .finish();
        Some(format!("{endpoint}?{query}"))
    }
}
