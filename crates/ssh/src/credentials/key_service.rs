//! FirecREST v2's `SSHService` protocol: an external service signs a short-lived key for
//! the user, authorised by the user's own access token.
//!
//! `POST <url>/api/v1/ssh-keys` with `Authorization: Bearer <token>` and
//! `{"duration": "1min", "username": u}`; the answer is 201
//! `{"sshKey": {"privateKey": "...", "publicKey": "<certificate>"}}`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use ironcrest_remote::Caller;
use russh::keys::{Certificate, decode_secret_key};
use secrecy::ExposeSecret;
use serde::Deserialize;

use super::{Clock, CredentialProvider, Credentials, system_clock};
use crate::{CredentialsSetupError, SshError};

/// Stop using a cached certificate this long before it expires, so the login that
/// uses it still falls inside its validity.
const EXPIRY_MARGIN_SECS: u64 = 15;

pub struct KeyService {
    http: reqwest::Client,
    endpoint: String,
    timeout: Duration,
    clock: Clock,
    cache: Mutex<HashMap<String, Credentials>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyResponse {
    ssh_key: SignedKey,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SignedKey {
    private_key: String,
    public_key: String,
}

impl KeyService {
    /// `url` is the service root; `timeout_secs` bounds each HTTP request.
    pub fn new(
        http: reqwest::Client,
        url: &str,
        timeout_secs: u64,
    ) -> Result<Self, CredentialsSetupError> {
        let root = url.trim_end_matches('/');
        let endpoint = format!("{root}/api/v1/ssh-keys");
        reqwest::Url::parse(&endpoint)
            .map_err(|err| CredentialsSetupError::KeyService(format!("invalid URL: {err}")))?;
        Ok(Self {
            http,
            endpoint,
            timeout: Duration::from_secs(timeout_secs.max(1)),
            clock: system_clock(),
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// Replaces the wall clock (seconds since the epoch), for tests.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Like [`KeyService::new`] with a sub-second timeout, for tests.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn cached(&self, username: &str, now: u64) -> Option<Credentials> {
        let cache = self.cache.lock().ok()?;
        let creds = cache.get(username)?;
        let cert = creds.certificate.as_ref()?;
        (cert.valid_before() > now.saturating_add(EXPIRY_MARGIN_SECS)).then(|| creds.clone())
    }

    async fn fetch(&self, user: &Caller) -> Result<Credentials, SshError> {
        let request_failed = |err: reqwest::Error| {
            if err.is_timeout() {
                SshError::KeyServiceTimeout
            } else {
                // Without the URL: it is configuration, and the error is shown to clients.
                SshError::Credentials(format!(
                    "SSH key service request failed: {}",
                    err.without_url()
                ))
            }
        };
        let response = self
            .http
            .post(&self.endpoint)
            .timeout(self.timeout)
            .bearer_auth(user.access_token.expose_secret())
            .header("x-client-type", "api")
            .header("x-client-name", "ironcrest")
            .header("x-client-version", env!("CARGO_PKG_VERSION"))
            .json(&serde_json::json!({"duration": "1min", "username": user.username}))
            .send()
            .await
            .map_err(request_failed)?;
        let status = response.status();
        if !status.is_success() {
            return Err(SshError::Credentials(format!(
                "SSH key service answered {} for user {}",
                status.as_u16(),
                user.username
            )));
        }
        let body = response.bytes().await.map_err(request_failed)?;
        parse_response(&body)
    }
}

fn parse_response(body: &[u8]) -> Result<Credentials, SshError> {
    let unreadable =
        |what: String| SshError::Credentials(format!("unreadable SSH key service answer: {what}"));
    let parsed: KeyResponse =
        serde_json::from_slice(body).map_err(|err| unreadable(err.to_string()))?;
    let key = decode_secret_key(&parsed.ssh_key.private_key, None)
        .map_err(|err| unreadable(format!("privateKey: {err}")))?;
    let certificate = Certificate::from_openssh(parsed.ssh_key.public_key.trim())
        .map_err(|err| unreadable(format!("publicKey is not a certificate: {err}")))?;
    if certificate.public_key() != key.public_key().key_data() {
        return Err(unreadable("the certificate is for another key".into()));
    }
    Ok(Credentials {
        key: Arc::new(key),
        certificate: Some(certificate),
    })
}

#[async_trait]
impl CredentialProvider for KeyService {
    async fn credentials(&self, user: &Caller) -> Result<Credentials, SshError> {
        if let Some(creds) = self.cached(&user.username, (self.clock)()) {
            return Ok(creds);
        }
        let creds = self.fetch(user).await?;
        tracing::debug!(ssh.user = %user.username, "obtained SSH key from key service");
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(user.username.clone(), creds.clone());
        }
        Ok(creds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh::keys::PrivateKey;
    use russh::keys::ssh_key::certificate::Builder;
    use russh::keys::ssh_key::{Algorithm, LineEnding};
    use secrecy::SecretString;
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    const NOW: u64 = 1_700_000_000;

    fn user() -> Caller {
        Caller {
            username: "alice".into(),
            access_token: SecretString::from("token-123"),
            request_ids: None,
            idempotency: None,
        }
    }

    fn signed_key_json(valid_before: u64) -> String {
        let key = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).unwrap();
        let ca = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).unwrap();
        let mut builder = Builder::new_with_random_nonce(
            &mut rand::rng(),
            key.public_key().key_data().clone(),
            NOW - 60,
            valid_before,
        )
        .unwrap();
        builder.valid_principal("alice").unwrap();
        let cert = builder.sign(&ca).unwrap();
        serde_json::json!({"sshKey": {
            "privateKey": key.to_openssh(LineEnding::LF).unwrap().to_string(),
            "publicKey": cert.to_openssh().unwrap(),
        }})
        .to_string()
    }

    /// A one-route HTTP server: answers every request with `status` and `body` after
    /// `delay`, and records the raw requests.
    struct FakeService {
        url: String,
        requests: Arc<Mutex<Vec<String>>>,
        hits: Arc<AtomicUsize>,
    }

    async fn serve(status: u16, body: String, delay: Duration) -> FakeService {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let hits = Arc::new(AtomicUsize::new(0));
        let (requests_in, hits_in) = (requests.clone(), hits.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                hits_in.fetch_add(1, Ordering::SeqCst);
                let body = body.clone();
                let requests = requests_in.clone();
                tokio::spawn(async move {
                    let mut raw = Vec::new();
                    let mut buf = [0u8; 4096];
                    // Read the head, then Content-Length bytes of body.
                    loop {
                        let n = socket.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        raw.extend_from_slice(&buf[..n]);
                        let text = String::from_utf8_lossy(&raw).to_string();
                        if let Some(head_end) = text.find("\r\n\r\n") {
                            let length = text[..head_end]
                                .lines()
                                .find_map(|l| {
                                    l.to_ascii_lowercase()
                                        .strip_prefix("content-length:")
                                        .map(|v| v.trim().parse::<usize>().unwrap())
                                })
                                .unwrap_or(0);
                            if raw.len() >= head_end + 4 + length {
                                break;
                            }
                        }
                    }
                    requests
                        .lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&raw).to_string());
                    tokio::time::sleep(delay).await;
                    let reply = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(reply.as_bytes()).await;
                });
            }
        });
        FakeService {
            url,
            requests,
            hits,
        }
    }

    fn fixed_clock(now: &Arc<AtomicU64>) -> Clock {
        let now = now.clone();
        Arc::new(move || now.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn created_answer_gives_credentials_and_is_cached_until_near_expiry() {
        let service = serve(201, signed_key_json(NOW + 60), Duration::ZERO).await;
        let now = Arc::new(AtomicU64::new(NOW));
        let provider = KeyService::new(reqwest::Client::new(), &service.url, 5)
            .unwrap()
            .with_clock(fixed_clock(&now));
        let creds = provider.credentials(&user()).await.unwrap();
        assert!(creds.certificate.is_some());

        let request = service.requests.lock().unwrap()[0].clone();
        let lower = request.to_ascii_lowercase();
        assert!(
            request.starts_with("POST /api/v1/ssh-keys HTTP/1.1"),
            "{request}"
        );
        assert!(
            lower.contains("authorization: bearer token-123"),
            "{request}"
        );
        assert!(lower.contains("x-client-type: api"), "{request}");
        assert!(lower.contains("x-client-name: ironcrest"), "{request}");
        let body = &request[request.find("\r\n\r\n").unwrap() + 4..];
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"duration": "1min", "username": "alice"})
        );

        now.store(NOW + 40, Ordering::SeqCst); // 20 s left: still cached
        provider.credentials(&user()).await.unwrap();
        assert_eq!(service.hits.load(Ordering::SeqCst), 1);
        now.store(NOW + 46, Ordering::SeqCst); // 14 s left: fetch again
        provider.credentials(&user()).await.unwrap();
        assert_eq!(service.hits.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn server_errors_and_garbage_are_credential_errors() {
        let service = serve(500, r#"{"detail":"boom"}"#.into(), Duration::ZERO).await;
        let provider = KeyService::new(reqwest::Client::new(), &service.url, 5).unwrap();
        let err = provider.credentials(&user()).await.unwrap_err();
        assert!(matches!(err, SshError::Credentials(_)), "{err:?}");
        assert!(err.to_string().contains("500"), "{err}");
        assert!(!err.to_string().contains("token-123"));

        let service = serve(201, r#"{"sshKey":{}}"#.into(), Duration::ZERO).await;
        let provider = KeyService::new(reqwest::Client::new(), &service.url, 5).unwrap();
        let err = provider.credentials(&user()).await.unwrap_err();
        assert!(matches!(err, SshError::Credentials(_)), "{err:?}");
    }

    #[tokio::test]
    async fn a_slow_service_times_out() {
        let service = serve(201, signed_key_json(NOW + 60), Duration::from_secs(5)).await;
        let provider = KeyService::new(reqwest::Client::new(), &service.url, 5)
            .unwrap()
            .with_timeout(Duration::from_millis(200));
        let err = provider.credentials(&user()).await.unwrap_err();
        assert!(matches!(err, SshError::KeyServiceTimeout), "{err:?}");
        assert_eq!(
            err.to_string(),
            "SSH keys generation timeout limit exceeded."
        );
    }

    #[test]
    fn a_certificate_for_another_key_is_refused() {
        let good: serde_json::Value = serde_json::from_str(&signed_key_json(NOW + 60)).unwrap();
        let other: serde_json::Value = serde_json::from_str(&signed_key_json(NOW + 60)).unwrap();
        let mixed = serde_json::json!({"sshKey": {
            "privateKey": good["sshKey"]["privateKey"],
            "publicKey": other["sshKey"]["publicKey"],
        }});
        assert!(parse_response(mixed.to_string().as_bytes()).is_err());
        assert!(parse_response(good.to_string().as_bytes()).is_ok());
    }
}
