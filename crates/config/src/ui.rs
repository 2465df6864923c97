//! `ui`: the web page for users served by the binary (docs/ui.md). It logs users in by
//! the OIDC authorization-code flow with PKCE as a confidential client and keeps their
//! tokens on the server.

use serde::{Deserialize, Serialize};

use crate::Secret;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UiConfig {
    /// Whether `/ui` is served; off, every `/ui` route is a 404 and no session cookie is read.
    #[serde(default)]
    pub enabled: bool,
    /// The UI's client at the IdP (authorization code and refresh token grants).
    #[serde(default)]
    pub client_id: String,
    #[serde(default)]
    pub client_secret: Option<Secret>,
    /// The URL of `/ui/callback` as the browser reaches it, registered at the IdP. Its
    /// scheme decides whether the session cookie is `Secure`.
    #[serde(default)]
    pub redirect_url: String,
    /// The IdP whose discovery document names the authorization, token, revocation and
    /// end-session endpoints; `auth.authentication.oidc_discovery_url` when absent.
    #[serde(default)]
    pub issuer: Option<String>,
    /// The scopes the UI asks for (`offline_access` for a refresh token).
    #[serde(default = "default_scope")]
    pub scope: String,
    /// Seconds a session lives at most, however often its tokens are refreshed.
    #[serde(default = "default_session_lifetime")]
    pub session_lifetime: u64,
    /// Seconds a session lives without a request.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: u64,
}

impl Default for UiConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            client_id: String::new(),
            client_secret: None,
            redirect_url: String::new(),
            issuer: None,
            scope: default_scope(),
            session_lifetime: default_session_lifetime(),
            idle_timeout: default_idle_timeout(),
        }
    }
}

fn default_scope() -> String {
    "openid offline_access firecrest firecrest:read firecrest:write".into()
}

/// A working day.
fn default_session_lifetime() -> u64 {
    12 * 3600
}

fn default_idle_timeout() -> u64 {
    3600
}

impl UiConfig {
    /// What is wrong with an enabled UI's settings, as `(field, message)`.
    pub(crate) fn problems(&self, discovery: Option<&str>) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if !self.enabled {
            return problems;
        }
        if self.client_id.is_empty() {
            problems.push(("client_id", "is required when the UI is enabled".into()));
        }
        if self.client_secret.as_ref().is_none_or(Secret::is_empty) {
            problems.push((
                "client_secret",
                "is required when the UI is enabled (it is a confidential client)".into(),
            ));
        }
        if !self.redirect_url.ends_with("/ui/callback")
            || !(self.redirect_url.starts_with("http://")
                || self.redirect_url.starts_with("https://"))
        {
            problems.push((
                "redirect_url",
                "must be the http(s) URL of this server's /ui/callback".into(),
            ));
        }
        if self.issuer.is_none() && discovery.is_none() {
            problems.push((
                "issuer",
                "is required when auth.authentication.oidc_discovery_url is not set".into(),
            ));
        }
        if self.session_lifetime == 0 {
            problems.push(("session_lifetime", "must be greater than 0".into()));
        }
        if self.idle_timeout == 0 {
            problems.push(("idle_timeout", "must be greater than 0".into()));
        }
        problems
    }
}
