//! Authentication for Ironcrest: bearer-token verification and the service account's token.
//!
//! # Verifying tokens: [`TokenVerifier`]
//!
//! FirecREST v2 accepts JWT access tokens signed by the IdP. The verifier keeps the IdP's public
//! keys in memory, loaded from every `auth.authentication.public_certs` entry (an http(s) URL
//! of a JWKS, or `file:///path`) and, when `oidc_discovery_url` is set, from the `jwks_uri` of
//! its `/.well-known/openid-configuration`.
//!
//! Unlike FirecREST v2, which loads keys once, keys are reloaded every `jwks_refresh_interval`
//! seconds ([`TokenVerifier::refresh_periodically`]) and when a token names an unknown `kid`
//! (at most once per `jwks_min_refresh_interval`; concurrent requests share one reload). A
//! source that fails to load keeps its previous keys, so a flaky IdP never empties the cache.
//!
//! Each JWK is bound to one asymmetric algorithm: its `alg`, else `jwk_algorithm` when that
//! fits the key type, else the key type's usual one (RSA→RS256, EC P-256→ES256,
//! P-384→ES384, OKP Ed25519→EdDSA). Symmetric (`oct`) and encryption keys are ignored. A token
//! is checked with the algorithm of the key its `kid` names, and its header must name that same
//! algorithm, which rules out `alg: none` and algorithm confusion (HS256 with the RSA public
//! key as the HMAC secret). `exp` is required; `exp` and `nbf` allow [`LEEWAY_SECS`] of clock
//! skew; `iss` must equal `issuer` and `aud` must contain one of `audiences` when those are
//! configured; at least `min_token_ttl` seconds of lifetime must remain; the username is the
//! string claim `username_claim`.
//!
//! Errors ([`AuthError`]) display FirecREST v2's messages; the API layer maps them to HTTP
//! (all 401 except [`AuthError::MissingClaim`], a 400). The specific cause, for logs, is
//! [`AuthError::reason`].
//!
//! # Service-account tokens: [`ClientCredentials`]
//!
//! The health checker authenticates with the OAuth2 client-credentials grant at `token_url`
//! (`client_secret_basic` or `client_secret_post`). The token is cached and refetched once less
//! than 60 s or less than a quarter of its lifetime remains.
//!
//! Neither tokens nor secrets ever appear in errors, `Debug` output or logs.

mod client_credentials;
mod error;
mod keys;
mod sources;
mod verifier;

pub use client_credentials::ClientCredentials;
pub use error::{AuthError, AuthSetupError, TokenFetchError};
pub use verifier::{Grants, LEEWAY_SECS, TokenVerifier, VerifiedToken};
