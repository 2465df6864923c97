//! `Idempotency-Key` (IETF draft `httpapi-idempotency-key-header`) on the routes that submit
//! a job (docs/retries.md). A request with a key is fingerprinted (method, route, system,
//! user, query and body); its job carries the hashes of both in its comment
//! ([`ironcrest_scheduler::JobComment`]), so a retry finds it again with one scheduler call
//! from any replica, after any restart, and gets the first answer back instead of a second
//! job. In this process, duplicates in flight wait for the first and share its answer.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use ironcrest_remote::{Caller, IdempotencyMark};
use ironcrest_scheduler::CommentedJob;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use crate::AppState;
use crate::audit::AuditArgs;
use crate::call::Call;
use crate::error::ApiError;
use crate::routes::ValidJson;

pub const HEADER: &str = "Idempotency-Key";

/// The header's description in the OpenAPI document.
pub const DESCRIPTION: &str = "Makes a retry safe: the same key with the same request (method, route, system, user, \
     query and body) within the window (24 h by default) answers the first response again and starts nothing; \
     with another request it is 422. 1 to 255 printable ASCII characters, else 400. See docs/retries.md.";

/// Answers kept in memory at most; beyond, finished ones are dropped (the scheduler still
/// finds their jobs).
const MAX_REMEMBERED: usize = 10_000;

/// A key as the draft allows it here: 1–255 printable ASCII characters (spaces included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(value: &HeaderValue) -> Result<Self, ApiError> {
        let bytes = value.as_bytes();
        if bytes.is_empty() || bytes.len() > 255 || !bytes.iter().all(|b| (0x20..0x7f).contains(b))
        {
            return Err(ApiError::Validation {
                location: "header",
                name: HEADER.into(),
                message: format!("{HEADER} must be 1 to 255 printable ASCII characters."),
            });
        }
        Ok(Self(String::from_utf8_lossy(bytes).into_owned()))
    }

    /// 16 hex digits of the key's SHA-256: what the job's comment carries.
    pub fn hash(&self) -> String {
        short_hex(&Sha256::digest(self.0.as_bytes()))
    }
}

fn short_hex(digest: &[u8]) -> String {
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// What identifies a request for its key: method, route template, query, system, user and
/// the body's bytes, each length-prefixed so no two requests share a fingerprint by
/// shifting bytes from one field to the next.
pub fn fingerprint(
    method: &str,
    route: &str,
    query: &str,
    system: &str,
    user: &str,
    body: &[u8],
) -> String {
    let mut hasher = Sha256::new();
    for field in [
        method.as_bytes(),
        route.as_bytes(),
        query.as_bytes(),
        system.as_bytes(),
        user.as_bytes(),
        body,
    ] {
        hasher.update((field.len() as u64).to_be_bytes());
        hasher.update(field);
    }
    short_hex(&hasher.finalize())
}

/// An answer as sent: status and JSON body.
#[derive(Debug, Clone)]
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    async fn of(response: Response) -> Self {
        let (parts, body) = response.into_parts();
        // Handlers answer small JSON bodies that cannot fail to be read.
        let body = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => Bytes::new(),
        };
        Self {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    fn response(&self) -> Response {
        (self.status, self.headers.clone(), self.body.clone()).into_response()
    }
}

/// The outcome of a key's first request, shared by its duplicates.
struct Recorded {
    /// The fingerprint of the request that used the key first.
    fingerprint: String,
    /// Its answer; `None` when another request's job holds the key (not replayed here).
    answer: Option<Answer>,
}

struct Entry {
    created: Instant,
    outcome: Arc<OnceCell<Recorded>>,
}

/// The keys of this process's recent requests, per system, user and key hash.
pub struct Idempotency {
    window: Duration,
    recent: Mutex<HashMap<(String, String, String), Entry>>,
}

impl Idempotency {
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            recent: Mutex::new(HashMap::new()),
        }
    }

    fn entry(&self, id: &(String, String, String)) -> Arc<OnceCell<Recorded>> {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = recent.get(id)
            && entry.created.elapsed() < self.window
        {
            return entry.outcome.clone();
        }
        if recent.len() >= MAX_REMEMBERED {
            recent.retain(|_, e| e.created.elapsed() < self.window && e.outcome.get().is_none());
        }
        let outcome = Arc::new(OnceCell::new());
        recent.insert(
            id.clone(),
            Entry {
                created: Instant::now(),
                outcome: outcome.clone(),
            },
        );
        outcome
    }

    /// Forgets an answer that must not be replayed (a failure), unless it was replaced.
    fn forget(&self, id: &(String, String, String), outcome: &Arc<OnceCell<Recorded>>) {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if recent
            .get(id)
            .is_some_and(|entry| Arc::ptr_eq(&entry.outcome, outcome))
        {
            recent.remove(id);
        }
    }
}

/// A request's `Idempotency-Key`, if it has one, and what its fingerprint is made of. Take
/// it after [`Call`]; pass the body's bytes to [`Idempotent::run`] (see [`RawJson`]).
pub struct Idempotent {
    key: Option<IdempotencyKey>,
    method: String,
    route: String,
    query: String,
    store: Arc<Idempotency>,
}

impl FromRequestParts<AppState> for Idempotent {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let key = parts
            .headers
            .get(HEADER)
            .map(IdempotencyKey::parse)
            .transpose()?;
        Ok(Self {
            key,
            method: parts.method.to_string(),
            route: parts
                .extensions
                .get::<MatchedPath>()
                .map(|path| path.as_str().to_string())
                .unwrap_or_default(),
            query: parts.uri.query().unwrap_or_default().to_string(),
            store: state.idempotency.clone(),
        })
    }
}

impl Idempotent {
    /// Runs `start` (with the caller marked, so its job carries the key) unless the key
    /// already started work: then the first answer again, from memory or rebuilt by
    /// `replay` (given the marked caller and the job id) from the job the scheduler holds.
    /// Without a key, `start` runs as is.
    pub async fn run<S, SF, R, RF>(self, call: &Call, body: &[u8], start: S, replay: R) -> Response
    where
        S: FnOnce(Caller) -> SF,
        SF: Future<Output = Response>,
        R: FnOnce(Caller, String) -> RF,
        RF: Future<Output = Response>,
    {
        let caller = call.user.caller.clone();
        let Some(key) = self.key else {
            return start(caller).await;
        };
        let system = call.cluster.name().to_string();
        let mark = IdempotencyMark {
            key_hash: key.hash(),
            fingerprint_hash: fingerprint(
                &self.method,
                &self.route,
                &self.query,
                &system,
                &caller.username,
                body,
            ),
        };
        let id = (system, caller.username.clone(), mark.key_hash.clone());
        let outcome = self.store.entry(&id);
        let window = self.store.window.as_secs();
        let recorded = outcome
            .get_or_init(|| async {
                let found = call
                    .cluster
                    .scheduler
                    .commented_jobs(&caller, window)
                    .await
                    .map(|jobs| first_job_with(&jobs, &mark.key_hash));
                match found {
                    Err(error) => Recorded {
                        fingerprint: mark.fingerprint_hash.clone(),
                        answer: Some(Answer::of(call.error(error.into()).into_response()).await),
                    },
                    Ok(Some((_, fingerprint))) if fingerprint != mark.fingerprint_hash => {
                        Recorded {
                            fingerprint,
                            answer: None,
                        }
                    }
                    Ok(Some((job_id, fingerprint))) => Recorded {
                        fingerprint,
                        answer: Some(
                            Answer::of(
                                replay(caller.clone().with_idempotency(mark.clone()), job_id).await,
                            )
                            .await,
                        ),
                    },
                    Ok(None) => {
                        let marked = caller.clone().with_idempotency(mark.clone());
                        Recorded {
                            fingerprint: mark.fingerprint_hash.clone(),
                            answer: Some(Answer::of(start(marked).await).await),
                        }
                    }
                }
            })
            .await;
        let answer = recorded.answer.as_ref();
        if answer.is_none_or(|answer| !answer.status.is_success()) {
            // A failure is shared with the duplicates in flight, never replayed later; a
            // job found for another request is looked up again by its own retries.
            self.store.forget(&id, &outcome);
        }
        match answer {
            Some(answer) if recorded.fingerprint == mark.fingerprint_hash => answer.response(),
            _ => ApiError::IdempotencyKeyReused.into_response(),
        }
    }
}

/// The first job (the lowest id: two replicas may each have submitted one) carrying
/// `key_hash`, and its fingerprint.
fn first_job_with(jobs: &[CommentedJob], key_hash: &str) -> Option<(String, String)> {
    jobs.iter()
        .filter_map(|job| {
            let mark = job.comment.idempotency.as_ref()?;
            (mark.key_hash == key_hash).then(|| {
                let number = job.job_id.parse::<u64>().unwrap_or(u64::MAX);
                (number, job.job_id.clone(), mark.fingerprint_hash.clone())
            })
        })
        .min()
        .map(|(_, job_id, fingerprint)| (job_id, fingerprint))
}

/// A JSON body as [`ValidJson`] reads it, and its bytes, which the fingerprint covers.
pub struct RawJson<T> {
    pub value: T,
    pub bytes: Bytes,
}

impl<T: DeserializeOwned + AuditArgs, S: Send + Sync> FromRequest<S> for RawJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let (parts, body) = request.into_parts();
        let bytes = Bytes::from_request(Request::from_parts(parts.clone(), body), state)
            .await
            .map_err(|rejection| ApiError::Http {
                status: rejection.status(),
                message: rejection.body_text(),
            })?;
        let request = Request::from_parts(parts, axum::body::Body::from(bytes.clone()));
        let ValidJson(value) = ValidJson::from_request(request, state).await?;
        Ok(Self { value, bytes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironcrest_remote::RequestIds;
    use ironcrest_scheduler::JobComment;

    #[test]
    fn keys_are_printable_ascii_of_1_to_255_characters() {
        for good in [
            "a",
            "8e03978e-40d5-43e8-bc93-6894a57f9324",
            "with space ~!",
            &"k".repeat(255),
        ] {
            assert!(
                IdempotencyKey::parse(&HeaderValue::from_str(good).unwrap()).is_ok(),
                "{good}"
            );
        }
        for bad in [
            HeaderValue::from_static(""),
            HeaderValue::from_str(&"k".repeat(256)).unwrap(),
            HeaderValue::from_bytes(b"tab\there").unwrap(),
            HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap(),
        ] {
            assert!(
                matches!(IdempotencyKey::parse(&bad), Err(ApiError::Validation { name, .. }) if name == HEADER),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn key_hashes_are_short_fixed_and_hide_the_key() {
        let key = IdempotencyKey::parse(&HeaderValue::from_static("my-secret-key")).unwrap();
        let hash = key.hash();
        assert_eq!(hash.len(), 16);
        assert!(
            hash.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert!(!hash.contains("secret"));
        assert_eq!(hash, IdempotencyKey("my-secret-key".into()).hash());
        assert_ne!(hash, IdempotencyKey("my-secret-kez".into()).hash());
    }

    #[test]
    fn every_part_of_a_request_changes_its_fingerprint() {
        let base = [
            "POST",
            "/compute/{system_name}/jobs",
            "",
            "cluster",
            "fireuser",
        ];
        let of = |parts: [&str; 5], body: &[u8]| {
            fingerprint(parts[0], parts[1], parts[2], parts[3], parts[4], body)
        };
        let first = of(base, b"{}");
        assert_eq!(first, of(base, b"{}"));
        assert_eq!(first.len(), 16);
        assert_ne!(first, of(base, b"{ }"));
        for i in 0..base.len() {
            let mut other = base;
            other[i] = "x";
            assert_ne!(first, of(other, b"{}"), "part {i}");
        }
        // Bytes moved from one field to the next make another request.
        assert_ne!(
            fingerprint("POST", "/a", "", "b", "c", b""),
            fingerprint("POST", "/", "a", "b", "c", b"")
        );
    }

    #[test]
    fn the_lowest_job_with_the_key_is_the_first() {
        let job = |id: &str, key: &str, fingerprint: &str| CommentedJob {
            job_id: id.into(),
            comment: JobComment {
                ids: RequestIds {
                    request_id: "r".into(),
                    correlation_id: None,
                },
                idempotency: Some(IdempotencyMark {
                    key_hash: key.into(),
                    fingerprint_hash: fingerprint.into(),
                }),
                task: None,
            },
        };
        let jobs = [
            job("120", "aaaa", "f2"),
            job("99", "bbbb", "f0"),
            job("100", "aaaa", "f1"),
        ];
        assert_eq!(
            first_job_with(&jobs, "aaaa"),
            Some(("100".to_string(), "f1".to_string()))
        );
        assert_eq!(first_job_with(&jobs, "cccc"), None);
    }
}
