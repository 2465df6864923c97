//! The crate's error types. None of them ever holds the token text or a secret.

use jsonwebtoken::errors::{Error as JwtError, ErrorKind};

/// Why a bearer token was refused.
///
/// `Display` gives FirecREST v2's public message (the `message` of the error body); the fields
/// and [`AuthError::reason`] carry the specific cause for logs. The API layer maps these to
/// HTTP statuses (400 for [`AuthError::MissingClaim`], 401 otherwise).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// `exp` lies in the past (beyond the clock-skew leeway).
    #[error("Access token expired")]
    Expired,
    /// The token is valid but has less than `min_token_ttl` seconds left.
    #[error("Access token expires too soon (less than {min_ttl}s remaining).")]
    ExpiresTooSoon { min_ttl: u64 },
    /// No loaded key matches the token's `kid`, even after a JWKS refresh.
    /// `kid` is the token header's `kid` (truncated), for logs.
    #[error("Token's public key not found.")]
    UnknownKey { kid: Option<String> },
    /// Anything else: bad signature, algorithm, shape, issuer, audience, `nbf`, ...
    #[error("Access token is invalid.")]
    Invalid { reason: String },
    /// The username claim is absent, not a string, or empty. This one is a 400.
    #[error("Authentication token '{claim}' claim is missing")]
    MissingClaim { claim: String },
}

impl AuthError {
    /// The specific cause, for logs (never shown to the client).
    pub fn reason(&self) -> &str {
        match self {
            AuthError::Expired => "token expired",
            AuthError::ExpiresTooSoon { .. } => "token expires within min_token_ttl",
            AuthError::UnknownKey { .. } => "no loaded key matches the token's kid",
            AuthError::Invalid { reason } => reason,
            AuthError::MissingClaim { .. } => "username claim missing, empty or not a string",
        }
    }

    /// The variant as a metric label value (bounded: the reason's text is not).
    pub fn kind(&self) -> &'static str {
        match self {
            AuthError::Expired => "expired",
            AuthError::ExpiresTooSoon { .. } => "expires_too_soon",
            AuthError::UnknownKey { .. } => "unknown_key",
            AuthError::Invalid { .. } => "invalid",
            AuthError::MissingClaim { .. } => "missing_claim",
        }
    }

    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        AuthError::Invalid {
            reason: reason.into(),
        }
    }

    /// Maps a `jsonwebtoken` error without copying its inner text, which may quote token content.
    pub(crate) fn from_jwt(err: &JwtError) -> Self {
        let reason = match err.kind() {
            ErrorKind::ExpiredSignature => return AuthError::Expired,
            ErrorKind::ImmatureSignature => "not valid yet (nbf is in the future)".into(),
            ErrorKind::InvalidSignature => "signature does not verify".into(),
            ErrorKind::InvalidIssuer => "issuer (iss) is not the configured issuer".into(),
            ErrorKind::InvalidAudience => {
                "audience (aud) names none of the configured audiences".into()
            }
            ErrorKind::MissingRequiredClaim(claim) => {
                format!("required claim '{claim}' is missing")
            }
            ErrorKind::InvalidClaimFormat(claim) => format!("claim '{claim}' is malformed"),
            ErrorKind::InvalidAlgorithm => "algorithm not allowed for this key".into(),
            ErrorKind::InvalidToken => "not a JWT (malformed)".into(),
            ErrorKind::Base64(_) => "malformed (bad base64)".into(),
            ErrorKind::Json(_) => "malformed (bad or unsupported JSON in header or claims)".into(),
            ErrorKind::Utf8(_) => "malformed (bad UTF-8)".into(),
            ErrorKind::InvalidRsaKey(_)
            | ErrorKind::InvalidEcdsaKey
            | ErrorKind::InvalidEddsaKey
            | ErrorKind::InvalidKeyFormat => "the key cannot check this token".into(),
            _ => "rejected by the JWT library".into(),
        };
        AuthError::Invalid { reason }
    }
}

/// The authentication configuration cannot be used (normally caught earlier by config validation).
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    #[error(
        "auth.authentication.jwk_algorithm: unsupported algorithm '{0}' (asymmetric algorithms only)"
    )]
    UnsupportedAlgorithm(String),
    #[error(
        "auth.authentication.{field}: '{location}' is neither an http(s):// URL nor a file:// path"
    )]
    InvalidLocation {
        field: &'static str,
        location: String,
    },
    #[error(
        "auth.authentication: give at least one JWKS location (public_certs) or oidc_discovery_url"
    )]
    NoKeySource,
    #[error("auth.authentication.jwks_refresh_interval must be greater than 0")]
    ZeroRefreshInterval,
}

/// The client-credentials grant failed.
#[derive(Debug, thiserror::Error)]
pub enum TokenFetchError {
    #[error("token request to {url} failed: {source}")]
    Request {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("token endpoint {url} answered HTTP {status}{}", detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Status {
        url: String,
        status: u16,
        /// The OAuth2 `error` / `error_description` of the answer, when it had them (truncated).
        detail: Option<String>,
    },
    #[error("token endpoint {url} sent an unusable answer: {reason}")]
    InvalidResponse { url: String, reason: String },
}
