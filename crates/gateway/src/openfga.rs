//! OpenFGA: is `user:<name>` a `member` of `vcluster:<system>`? Asked of the service
//! configured in `auth.authorization`, either as FirecREST v2 asks it (a POST of
//! `{"user", "relation", "object"}` to the configured URL) or, with `store_id`, through
//! OpenFGA's own API (`POST <url>/stores/<store_id>/check` with a `tuple_key`). Both carry
//! the caller's access token, as v2 does.
//!
//! Only an answer's `allowed: true` lets a request through (v2 lets any 200 through). An
//! explicit `allowed: false`, or a 401/403 (the service refusing the caller's token, as v2
//! reads it), is a 403. A service that is down, slow past `timeout` or answering anything
//! else is a 503: the request is refused, but the caller is not told they lack access.
//! Decisions are kept per (user, system) for `cache_ttl` seconds, at most `cache_size`.
//!
//! Built once at startup (the section is not part of the reloaded gateway rules).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use ironcrest_config::AuthorizationConfig;
use secrecy::ExposeSecret;
use tokio::sync::Semaphore;

use crate::{Denial, Layer, Request};

/// v2's words for a refusal.
const NOT_AUTHORIZED: &str = "Not authorized to access system";
const UNAVAILABLE: &str = "Unable to verify system access authorization";

pub struct OpenFga {
    http: reqwest::Client,
    /// The URL checks are POSTed to.
    check_url: String,
    /// OpenFGA's API (a `tuple_key` body) rather than v2's flat body.
    api: bool,
    authorization_model_id: Option<String>,
    relation: String,
    object_type: String,
    timeout: Duration,
    /// Checks in flight at once, when limited.
    slots: Option<Arc<Semaphore>>,
    cache_ttl: Duration,
    cache_size: usize,
    cache: Mutex<HashMap<(String, String), (Instant, bool)>>,
}

impl std::fmt::Debug for OpenFga {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenFga")
            .field("check_url", &self.check_url)
            .field("api", &self.api)
            .finish_non_exhaustive()
    }
}

/// Why a check has no answer (a 503).
#[derive(Debug)]
enum Failure {
    Timeout,
    Transport(reqwest::Error),
    Status(u16),
    Unreadable(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Timeout => write!(f, "no answer in time"),
            Failure::Transport(err) => write!(f, "{err}"),
            Failure::Status(status) => write!(f, "answered HTTP {status}"),
            Failure::Unreadable(what) => write!(f, "unreadable answer: {what}"),
        }
    }
}

impl OpenFga {
    pub fn new(config: &AuthorizationConfig) -> Result<Self, reqwest::Error> {
        let timeout = Duration::from_secs(config.timeout);
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()?;
        let base = config.url.trim_end_matches('/');
        let check_url = match &config.store_id {
            Some(store) => format!("{base}/stores/{store}/check"),
            None => config.url.clone(),
        };
        Ok(Self {
            http,
            check_url,
            api: config.store_id.is_some(),
            authorization_model_id: config.authorization_model_id.clone(),
            relation: config.relation.clone(),
            object_type: config.object_type.clone(),
            timeout,
            slots: (config.max_connections > 0)
                .then(|| Arc::new(Semaphore::new(config.max_connections))),
            cache_ttl: Duration::try_from_secs_f64(config.cache_ttl).unwrap_or(Duration::MAX),
            cache_size: config.cache_size,
            cache: Mutex::default(),
        })
    }

    /// Whether the caller may use the system: from the cache while fresh, else asked.
    pub(crate) async fn check(&self, request: &Request<'_>) -> Result<(), Denial> {
        let key = (request.user.to_owned(), request.system.to_owned());
        let allowed = match self.cached(&key) {
            Some(allowed) => allowed,
            None => {
                let asked = tokio::time::timeout(self.timeout, self.ask(request))
                    .await
                    .unwrap_or(Err(Failure::Timeout));
                match asked {
                    Ok(Some(allowed)) => {
                        self.remember(key, allowed);
                        allowed
                    }
                    Ok(None) => false,
                    Err(failure) => {
                        tracing::warn!(
                            gateway.layer = Layer::OpenFga.as_str(),
                            gateway.user = request.user,
                            gateway.system = request.system,
                            url = %self.check_url,
                            error = %failure,
                            "authorization check failed"
                        );
                        return Err(Denial::Unavailable {
                            layer: Layer::OpenFga,
                            message: UNAVAILABLE.into(),
                        });
                    }
                }
            }
        };
        if allowed {
            Ok(())
        } else {
            Err(Denial::Forbidden {
                layer: Layer::OpenFga,
                reason: NOT_AUTHORIZED.into(),
            })
        }
    }

    /// The service's decision; `None` when it refused the caller's token (not cached).
    async fn ask(&self, request: &Request<'_>) -> Result<Option<bool>, Failure> {
        let _slot = match &self.slots {
            Some(slots) => Some(slots.acquire().await.map_err(|_| Failure::Timeout)?),
            None => None,
        };
        let tuple = serde_json::json!({
            "user": format!("user:{}", request.user),
            "relation": self.relation,
            "object": format!("{}:{}", self.object_type, request.system),
        });
        let body = if self.api {
            let mut body = serde_json::json!({ "tuple_key": tuple });
            if let Some(model) = &self.authorization_model_id {
                body["authorization_model_id"] = model.as_str().into();
            }
            body
        } else {
            tuple
        };
        let response = self
            .http
            .post(&self.check_url)
            .bearer_auth(request.access_token.expose_secret())
            .json(&body)
            .send()
            .await
            .map_err(|err| {
                if err.is_timeout() {
                    Failure::Timeout
                } else {
                    Failure::Transport(err.without_url())
                }
            })?;
        let status = response.status().as_u16();
        if status == 401 || status == 403 {
            return Ok(None);
        }
        if status != 200 {
            return Err(Failure::Status(status));
        }
        let answer: serde_json::Value = response
            .json()
            .await
            .map_err(|err| Failure::Unreadable(err.to_string()))?;
        match answer.get("allowed") {
            Some(serde_json::Value::Bool(allowed)) => Ok(Some(*allowed)),
            _ => Err(Failure::Unreadable("no boolean 'allowed'".into())),
        }
    }

    fn cached(&self, key: &(String, String)) -> Option<bool> {
        let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        let (at, allowed) = cache.get(key)?;
        (at.elapsed() < self.cache_ttl).then_some(*allowed)
    }

    fn remember(&self, key: (String, String), allowed: bool) {
        if self.cache_ttl.is_zero() {
            return;
        }
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= self.cache_size && !cache.contains_key(&key) {
            let ttl = self.cache_ttl;
            cache.retain(|_, (at, _)| at.elapsed() < ttl);
            // Still full of fresh decisions: the oldest goes.
            if cache.len() >= self.cache_size
                && let Some(oldest) = cache
                    .iter()
                    .min_by_key(|(_, (at, _))| *at)
                    .map(|(key, _)| key.clone())
            {
                cache.remove(&oldest);
            }
        }
        cache.insert(key, (Instant::now(), allowed));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn openfga(yaml: &str) -> OpenFga {
        OpenFga::new(&serde_yaml_ng::from_str(yaml).unwrap()).unwrap()
    }

    #[test]
    fn the_check_url_is_v2s_or_openfgas() {
        let v2 = openfga("{url: 'http://127.0.0.1:1/check'}");
        assert_eq!(v2.check_url, "http://127.0.0.1:1/check");
        assert!(!v2.api);
        let api = openfga("{url: 'http://127.0.0.1:1/', store_id: S1}");
        assert_eq!(api.check_url, "http://127.0.0.1:1/stores/S1/check");
        assert!(api.api);
    }

    #[test]
    fn the_cache_is_bounded_and_drops_the_oldest() {
        let fga = openfga("{url: 'http://127.0.0.1:1/', cache_size: 2}");
        let key = |user: &str| (user.to_owned(), "daint".to_owned());
        fga.remember(key("a"), true);
        fga.remember(key("b"), false);
        fga.remember(key("c"), true);
        assert_eq!(fga.cache.lock().unwrap().len(), 2);
        assert_eq!(fga.cached(&key("a")), None);
        assert_eq!(fga.cached(&key("b")), Some(false));
        assert_eq!(fga.cached(&key("c")), Some(true));
    }

    #[test]
    fn a_zero_ttl_caches_nothing() {
        let fga = openfga("{url: 'http://127.0.0.1:1/', cache_ttl: 0}");
        fga.remember(("a".into(), "daint".into()), true);
        assert_eq!(fga.cached(&("a".into(), "daint".into())), None);
    }
}
