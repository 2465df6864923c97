//! Server-side sessions of the web UI: the browser holds only an opaque random id in an
//! `HttpOnly` cookie; the user's tokens stay here, refreshed before they expire.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use axum::http::header::COOKIE;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The cookie naming a session.
pub(crate) const SESSION_COOKIE: &str = "ironcrest_session";
/// The short-lived cookie binding a login in progress to the browser that started it.
pub(crate) const LOGIN_COOKIE: &str = "ironcrest_login";

/// At most this many sessions (and, separately, logins in progress) are held; past it a
/// new login is refused rather than memory growing without bound.
const MAX_ENTRIES: usize = 100_000;

/// How long a login may take between `/ui/login` and `/ui/callback`.
pub(crate) const LOGIN_TIMEOUT: Duration = Duration::from_secs(600);

/// 256 random bits, URL-safe: session ids, CSRF tokens, `state`s and PKCE verifiers.
pub(crate) fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// Compares two secrets in time independent of where they differ.
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// A cookie's value in the request's `Cookie` headers.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// The tokens of a session. Not `Debug`: nothing may print them.
pub(crate) struct Tokens {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_at: Instant,
}

pub(crate) struct Session {
    pub username: String,
    /// Sent by the page as `X-CSRF-Token` on every state-changing call.
    pub csrf_token: String,
    created: Instant,
    last_used: Mutex<Instant>,
    /// Held across a refresh, so concurrent requests refresh once.
    pub tokens: tokio::sync::Mutex<Tokens>,
}

/// A login between `/ui/login` and `/ui/callback`.
pub(crate) struct PendingLogin {
    pub code_verifier: String,
    started: Instant,
}

pub(crate) struct Sessions {
    lifetime: Duration,
    idle_timeout: Duration,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    logins: Mutex<HashMap<String, PendingLogin>>,
}

impl Sessions {
    pub fn new(lifetime: Duration, idle_timeout: Duration) -> Self {
        Self {
            lifetime,
            idle_timeout,
            sessions: Mutex::default(),
            logins: Mutex::default(),
        }
    }

    /// Remembers a login's PKCE verifier under its `state`; `None` when too many are pending.
    pub fn start_login(&self, state: String, code_verifier: String) -> Option<()> {
        let mut logins = self.logins.lock().unwrap();
        logins.retain(|_, login| login.started.elapsed() < LOGIN_TIMEOUT);
        if logins.len() >= MAX_ENTRIES {
            return None;
        }
        logins.insert(
            state,
            PendingLogin {
                code_verifier,
                started: Instant::now(),
            },
        );
        Some(())
    }

    /// The login of `state`, once: a replayed callback finds nothing.
    pub fn finish_login(&self, state: &str) -> Option<PendingLogin> {
        let login = self.logins.lock().unwrap().remove(state)?;
        (login.started.elapsed() < LOGIN_TIMEOUT).then_some(login)
    }

    /// A new session for `username`; its id, or `None` when too many are held.
    pub fn create(&self, username: String, tokens: Tokens) -> Option<String> {
        let mut sessions = self.sessions.lock().unwrap();
        sessions.retain(|_, session| self.is_live(session));
        if sessions.len() >= MAX_ENTRIES {
            return None;
        }
        let id = random_token();
        let now = Instant::now();
        sessions.insert(
            id.clone(),
            Arc::new(Session {
                username,
                csrf_token: random_token(),
                created: now,
                last_used: Mutex::new(now),
                tokens: tokio::sync::Mutex::new(tokens),
            }),
        );
        Some(id)
    }

    /// The live session of `id`, marked as used; an expired one is forgotten.
    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        let mut sessions = self.sessions.lock().unwrap();
        let session = sessions.get(id)?.clone();
        if !self.is_live(&session) {
            sessions.remove(id);
            return None;
        }
        *session.last_used.lock().unwrap() = Instant::now();
        Some(session)
    }

    pub fn remove(&self, id: &str) -> Option<Arc<Session>> {
        self.sessions.lock().unwrap().remove(id)
    }

    fn is_live(&self, session: &Session) -> bool {
        session.created.elapsed() < self.lifetime
            && session.last_used.lock().unwrap().elapsed() < self.idle_timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn tokens() -> Tokens {
        Tokens {
            access_token: "a".into(),
            refresh_token: None,
            expires_at: Instant::now(),
        }
    }

    #[test]
    fn a_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.append(
            COOKIE,
            HeaderValue::from_static("a=1; ironcrest_session=xyz"),
        );
        headers.append(COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("xyz"));
        assert_eq!(cookie(&headers, "b"), Some("2"));
        assert_eq!(cookie(&headers, "ironcrest"), None);
    }

    #[test]
    fn a_login_is_finished_once() {
        let sessions = Sessions::new(Duration::from_secs(60), Duration::from_secs(60));
        sessions.start_login("s".into(), "v".into()).unwrap();
        assert_eq!(sessions.finish_login("s").unwrap().code_verifier, "v");
        assert!(sessions.finish_login("s").is_none());
        assert!(sessions.finish_login("other").is_none());
    }

    #[test]
    fn an_idle_session_ends() {
        let sessions = Sessions::new(Duration::from_secs(60), Duration::ZERO);
        let id = sessions.create("alice".into(), tokens()).unwrap();
        assert!(sessions.get(&id).is_none());
        let sessions = Sessions::new(Duration::from_secs(60), Duration::from_secs(60));
        let id = sessions.create("alice".into(), tokens()).unwrap();
        assert_eq!(sessions.get(&id).unwrap().username, "alice");
        assert!(sessions.remove(&id).is_some());
        assert!(sessions.get(&id).is_none());
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
    }
}
