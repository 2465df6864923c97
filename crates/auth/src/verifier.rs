//! [`TokenVerifier`]: the JWKS cache, its refreshes, and the token checks.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ironcrest_config::AuthenticationConfig;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use secrecy::SecretString;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tokio::time::{Instant, MissedTickBehavior};

use crate::keys::{self, KeySet, VerificationKey};
use crate::sources::{KeySource, LoadError};
use crate::{AuthError, AuthSetupError};

/// Clock-skew tolerance for `exp` and `nbf`, in seconds.
pub const LEEWAY_SECS: u64 = 5;

/// Longest `kid` copied into an [`AuthError::UnknownKey`] (the header is attacker-controlled).
const MAX_LOGGED_KID: usize = 64;

/// A token that passed every check.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    /// The `username_claim` claim.
    pub username: String,
    /// The bearer token itself, to forward to the key service, slurmrestd or OpenFGA.
    pub access_token: SecretString,
    /// `exp`, in seconds since the epoch.
    pub expires_at: u64,
    /// What the token grants beyond who it names, for the gateway's policies.
    pub grants: Arc<Grants>,
}

/// The claims authorization reads: the OAuth client the token was issued to (`client_id`,
/// RFC 9068, else `azp`), its scopes (`scope`, space-separated, or a `scope`/`scp` array)
/// and the caller's groups (`groups_claim`, an array or a space-separated string).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    pub client_id: Option<String>,
    pub scopes: Vec<String>,
    pub groups: Vec<String>,
}

impl Grants {
    fn from_claims(claims: &Map<String, Value>, groups_claim: &str) -> Self {
        let words = |value: Option<&Value>| -> Vec<String> {
            match value {
                Some(Value::String(text)) => text.split_whitespace().map(str::to_owned).collect(),
                Some(Value::Array(items)) => items
                    .iter()
                    .filter_map(|item| item.as_str().map(str::to_owned))
                    .collect(),
                _ => Vec::new(),
            }
        };
        let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
        Self {
            client_id: text("client_id").or_else(|| text("azp")),
            scopes: words(claims.get("scope").or_else(|| claims.get("scp"))),
            groups: words(claims.get(groups_claim)),
        }
    }
}

/// Verifies bearer tokens against the IdP's keys. Cheap to clone (`Arc` inside).
#[derive(Clone)]
pub struct TokenVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    sources: Vec<KeySource>,
    /// `jwk_algorithm`: the algorithm of JWKs without `alg` (when it fits the key type).
    fallback_alg: Option<Algorithm>,
    keys: RwLock<Arc<KeySet>>,
    /// Serialises refreshes; holds when the last one (periodic or on demand) started.
    refresh: tokio::sync::Mutex<Option<Instant>>,
    /// Completed refreshes, so that requests queued behind one do not start another.
    refreshes: AtomicU64,
    refresh_interval: Duration,
    min_refresh_interval: Duration,
    rules: Rules,
    /// Tokens verified since the last key reload, by their SHA-256.
    verified: Mutex<HashMap<[u8; 32], Verified>>,
}

/// What a verified token proved, and under which keys (the reload count when it was checked).
#[derive(Clone)]
struct Verified {
    username: String,
    expires_at: u64,
    grants: Arc<Grants>,
    generation: u64,
}

/// At most this many tokens are remembered; past it the expired ones, then all, are dropped.
const MAX_VERIFIED: usize = 10_000;

struct Rules {
    issuer: Option<String>,
    audiences: Vec<String>,
    username_claim: String,
    groups_claim: String,
    min_ttl: u64,
}

impl fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenVerifier")
            .field(
                "sources",
                &self
                    .inner
                    .sources
                    .iter()
                    .map(KeySource::describe)
                    .collect::<Vec<_>>(),
            )
            .field("keys", &self.inner.current_keys().len())
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Copy)]
enum Trigger {
    Startup,
    Periodic,
    UnknownKey,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::Startup => "startup",
            Trigger::Periodic => "periodic",
            Trigger::UnknownKey => "unknown_kid",
        }
    }
}

impl TokenVerifier {
    /// Builds the verifier and tries an initial key load. If the IdP is unreachable at start the
    /// verifier still comes up (logs a warning) and loads keys on first use / next refresh: the
    /// start-up load does not count against `jwks_min_refresh_interval`.
    pub async fn new(
        config: &AuthenticationConfig,
        http: reqwest::Client,
    ) -> Result<Self, AuthSetupError> {
        let mut sources = config
            .public_certs
            .iter()
            .map(|location| KeySource::from_location(location))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(url) = &config.oidc_discovery_url {
            sources.push(KeySource::discovery(url)?);
        }
        if sources.is_empty() {
            return Err(AuthSetupError::NoKeySource);
        }
        if config.jwks_refresh_interval == 0 {
            return Err(AuthSetupError::ZeroRefreshInterval);
        }
        let fallback_alg = config
            .jwk_algorithm
            .as_deref()
            .map(keys::configured_algorithm)
            .transpose()?;
        let inner = Inner {
            http,
            keys: RwLock::new(Arc::new(KeySet::empty(sources.len()))),
            sources,
            fallback_alg,
            refresh: tokio::sync::Mutex::new(None),
            refreshes: AtomicU64::new(0),
            refresh_interval: Duration::from_secs(config.jwks_refresh_interval),
            min_refresh_interval: Duration::from_secs(config.jwks_min_refresh_interval),
            rules: Rules {
                issuer: config.issuer.clone(),
                audiences: config.audiences.clone(),
                username_claim: config.username_claim.clone(),
                groups_claim: config.groups_claim.clone(),
                min_ttl: config.min_token_ttl,
            },
            verified: Mutex::new(HashMap::new()),
        };
        inner.reload(Trigger::Startup).await;
        if inner.current_keys().len() == 0 {
            tracing::warn!(
                "no signing keys loaded at start-up; retrying on the first token and at each refresh"
            );
        }
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// Reloads the keys every `jwks_refresh_interval` seconds until `shutdown` resolves. Spawn it:
    /// `tokio::spawn(verifier.clone().refresh_periodically(shutdown))`.
    pub async fn refresh_periodically(self, shutdown: impl Future<Output = ()>) {
        let period = self.inner.refresh_interval;
        let mut ticker = tokio::time::interval_at(Instant::now() + period, period);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                _ = ticker.tick() => {
                    let mut last = self.inner.refresh.lock().await;
                    *last = Some(Instant::now());
                    self.inner.reload(Trigger::Periodic).await;
                }
            }
        }
        tracing::debug!("JWKS refresh stopped");
    }

    /// Checks a bearer token (the text after `Bearer `): signature with a loaded key whose
    /// algorithm the header must name, `exp` (required), `nbf`, `iss`, `aud`, the remaining
    /// lifetime, and the username claim.
    pub async fn verify(&self, token: &str) -> Result<VerifiedToken, AuthError> {
        let result = self.inner.verify(token).await;
        if let Err(err) = &result {
            tracing::debug!(auth.error = %err, auth.reason = err.reason(), "token rejected");
            metrics::counter!("ironcrest_auth_token_failures_total", "reason" => err.kind())
                .increment(1);
        }
        result
    }
}

impl Inner {
    fn current_keys(&self) -> Arc<KeySet> {
        Arc::clone(&self.keys.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Loads every source; a source that fails keeps its previous keys. Each load is
    /// counted in `ironcrest_auth_jwks_loads_total` (by trigger and outcome), so an IdP
    /// that cannot be reached shows on the metrics before a token with a new key fails.
    async fn reload(&self, trigger: Trigger) {
        let loads = futures::future::join_all(self.sources.iter().map(|source| async move {
            let location = source.describe();
            let loaded = self.load(source, &location).await;
            metrics::counter!(
                "ironcrest_auth_jwks_loads_total",
                "trigger" => trigger.as_str(),
                "outcome" => if loaded.is_ok() { "ok" } else { "failed" },
            )
            .increment(1);
            match loaded {
                Ok(keys) => {
                    tracing::debug!(jwks.source = %location, jwks.keys = keys.len(), "loaded JWKS");
                    Some(keys)
                }
                Err(err) => {
                    tracing::warn!(
                        jwks.source = %location,
                        jwks.trigger = trigger.as_str(),
                        error = %err,
                        "cannot load JWKS; keeping the previous keys of this source"
                    );
                    None
                }
            }
        }))
        .await;
        let previous = self.current_keys();
        let next = Arc::new(previous.merged(loads));
        let (before, after) = (previous.kids(), next.kids());
        if before != after {
            tracing::info!(
                jwks.trigger = trigger.as_str(),
                jwks.keys = after.len(),
                jwks.kids = ?after,
                "signing keys changed"
            );
        }
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = next;
        self.refreshes.fetch_add(1, Ordering::Release);
    }

    async fn load(
        &self,
        source: &KeySource,
        location: &str,
    ) -> Result<Vec<Arc<VerificationKey>>, LoadError> {
        let body = source.fetch(&self.http).await?;
        let keys = keys::parse_jwks(&body, self.fallback_alg, location)?;
        if keys.is_empty() {
            return Err(LoadError::NoUsableKeys);
        }
        Ok(keys)
    }

    /// A token named a key we do not have: reload, unless a reload finished while this request
    /// waited for the lock (it then just looks again) or the last one started less than
    /// `jwks_min_refresh_interval` ago.
    async fn refresh_for_unknown_key(&self, seen_refreshes: u64) {
        let mut last = self.refresh.lock().await;
        if self.refreshes.load(Ordering::Acquire) != seen_refreshes {
            return;
        }
        if let Some(started) = *last
            && started.elapsed() < self.min_refresh_interval
        {
            tracing::debug!("unknown kid, but the JWKS was refreshed recently; not refetching");
            return;
        }
        *last = Some(Instant::now());
        self.reload(Trigger::UnknownKey).await;
    }

    /// A token seen before under the same keys is not checked again while it has at least
    /// `min_ttl` left: its signature, issuer, audience and username cannot have changed.
    /// Every request carries its token, and an RS256 check costs more than the rest of a
    /// small request.
    async fn verify(&self, token: &str) -> Result<VerifiedToken, AuthError> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let generation = self.refreshes.load(Ordering::Acquire);
        if let Some(known) = self.remembered(&digest, generation) {
            return Ok(VerifiedToken {
                username: known.username,
                access_token: SecretString::from(token.to_owned()),
                expires_at: known.expires_at,
                grants: known.grants,
            });
        }
        let verified = self.check(token).await?;
        self.remember(digest, &verified, generation);
        Ok(verified)
    }

    fn remembered(&self, digest: &[u8; 32], generation: u64) -> Option<Verified> {
        let verified = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
        verified
            .get(digest)
            .filter(|known| {
                known.generation == generation && self.lives_long_enough(known.expires_at)
            })
            .cloned()
    }

    fn remember(&self, digest: [u8; 32], token: &VerifiedToken, generation: u64) {
        let mut verified = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
        if verified.len() >= MAX_VERIFIED {
            let current = self.refreshes.load(Ordering::Acquire);
            verified.retain(|_, known| {
                known.generation == current && self.lives_long_enough(known.expires_at)
            });
            if verified.len() >= MAX_VERIFIED {
                verified.clear();
            }
        }
        verified.insert(
            digest,
            Verified {
                username: token.username.clone(),
                expires_at: token.expires_at,
                grants: token.grants.clone(),
                generation,
            },
        );
    }

    fn lives_long_enough(&self, expires_at: u64) -> bool {
        i128::from(expires_at) - i128::from(now()) >= i128::from(self.rules.min_ttl)
    }

    /// The full check: signature by a current key, registered claims, then [`Self::accept`].
    async fn check(&self, token: &str) -> Result<VerifiedToken, AuthError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|err| match AuthError::from_jwt(&err) {
                AuthError::Invalid { reason } => AuthError::invalid(format!("header: {reason}")),
                other => other,
            })?;
        let kid = header.kid.as_deref();

        let seen_refreshes = self.refreshes.load(Ordering::Acquire);
        let mut candidates = self.current_keys().candidates(kid);
        if candidates.is_empty() {
            self.refresh_for_unknown_key(seen_refreshes).await;
            candidates = self.current_keys().candidates(kid);
        }
        if candidates.is_empty() {
            return Err(AuthError::UnknownKey {
                kid: kid.map(|kid| kid.chars().take(MAX_LOGGED_KID).collect()),
            });
        }

        // The algorithm is the key's; the header must agree (no `none`, no HS256-with-RSA-key).
        let mut outcome = Err(AuthError::invalid(format!(
            "token algorithm {:?} is not the key's ({:?})",
            header.alg, candidates[0].alg
        )));
        for key in candidates.iter().filter(|key| key.alg == header.alg) {
            let validation = self.validation(key.alg);
            match jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation) {
                Ok(data) => {
                    outcome = Ok(data.claims);
                    break;
                }
                Err(err) => {
                    outcome = Err(AuthError::from_jwt(&err));
                    // Another key with the same kid (or another keyless key) may still match.
                    if !matches!(err.kind(), ErrorKind::InvalidSignature) {
                        break;
                    }
                }
            }
        }
        let claims = outcome?;
        self.accept(token, &claims)
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut validation = Validation::new(alg);
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        let mut required = vec!["exp"];
        if let Some(issuer) = &self.rules.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        if self.rules.audiences.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&self.rules.audiences);
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);
        validation
    }

    /// The checks after the signature and the registered claims passed.
    fn accept(&self, token: &str, claims: &Map<String, Value>) -> Result<VerifiedToken, AuthError> {
        let expires_at = claims
            .get("exp")
            .and_then(numeric_date)
            .ok_or_else(|| AuthError::invalid("claim 'exp' is malformed"))?;
        let remaining = i128::from(expires_at) - i128::from(now());
        let min_ttl = self.rules.min_ttl;
        if remaining < i128::from(min_ttl) {
            return Err(AuthError::ExpiresTooSoon { min_ttl });
        }
        let claim = &self.rules.username_claim;
        let username = match claims.get(claim) {
            Some(Value::String(name)) if !name.is_empty() => name.clone(),
            _ => {
                return Err(AuthError::MissingClaim {
                    claim: claim.clone(),
                });
            }
        };
        Ok(VerifiedToken {
            username,
            access_token: SecretString::from(token.to_owned()),
            expires_at,
            grants: Arc::new(Grants::from_claims(claims, &self.rules.groups_claim)),
        })
    }
}

/// A JSON NumericDate (integer or fractional seconds) as whole seconds.
fn numeric_date(value: &Value) -> Option<u64> {
    value.as_u64().or_else(|| {
        value
            .as_f64()
            .filter(|secs| secs.is_finite() && *secs >= 0.0)
            .map(|secs| secs as u64)
    })
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants(claims: serde_json::Value) -> Grants {
        Grants::from_claims(claims.as_object().expect("object"), "groups")
    }

    #[test]
    fn grants_read_the_client_scopes_and_groups_in_either_form() {
        assert_eq!(
            grants(serde_json::json!({
                "client_id": "portal", "azp": "other",
                "scope": "openid  firecrest fs:read", "groups": ["hpc", "staff", 7]
            })),
            Grants {
                client_id: Some("portal".into()),
                scopes: vec!["openid".into(), "firecrest".into(), "fs:read".into()],
                groups: vec!["hpc".into(), "staff".into()],
            }
        );
        assert_eq!(
            grants(
                serde_json::json!({"azp": "keycloak-client", "scp": ["a", "b"], "groups": "x y"})
            ),
            Grants {
                client_id: Some("keycloak-client".into()),
                scopes: vec!["a".into(), "b".into()],
                groups: vec!["x".into(), "y".into()],
            }
        );
        assert_eq!(grants(serde_json::json!({"scope": 3})), Grants::default());
    }
}
