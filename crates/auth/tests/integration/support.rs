//! A fake IdP on 127.0.0.1 (JWKS, discovery, token endpoint) and token minting with the
//! committed test keys.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ironcrest_auth::TokenVerifier;
use ironcrest_config::AuthenticationConfig;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

pub const ISSUER: &str = "https://idp.test/realms/hpc";

/// A test key: its private half (to sign) and public JWK (to serve).
#[derive(Clone, Copy)]
pub enum Key {
    RsaA,
    RsaB,
    RsaAttacker,
    EcP256,
    Ed25519,
}

impl Key {
    pub fn alg(self) -> Algorithm {
        match self {
            Key::RsaA | Key::RsaB | Key::RsaAttacker => Algorithm::RS256,
            Key::EcP256 => Algorithm::ES256,
            Key::Ed25519 => Algorithm::EdDSA,
        }
    }

    fn encoding_key(self) -> EncodingKey {
        match self {
            Key::RsaA => EncodingKey::from_rsa_pem(include_bytes!("../keys/rsa-a.pem")),
            Key::RsaB => EncodingKey::from_rsa_pem(include_bytes!("../keys/rsa-b.pem")),
            Key::RsaAttacker => {
                EncodingKey::from_rsa_pem(include_bytes!("../keys/rsa-attacker.pem"))
            }
            Key::EcP256 => EncodingKey::from_ec_pem(include_bytes!("../keys/ec-p256.pem")),
            Key::Ed25519 => EncodingKey::from_ed_pem(include_bytes!("../keys/ed25519.pem")),
        }
        .expect("test key parses")
    }

    /// The public JWK with the given `kid`/`alg` members (each left out when `None`).
    pub fn jwk(self, kid: Option<&str>, alg: Option<&str>) -> Value {
        let text = match self {
            Key::RsaA => include_str!("../keys/rsa-a.jwk.json"),
            Key::RsaB => include_str!("../keys/rsa-b.jwk.json"),
            Key::RsaAttacker => panic!("the attacker's key is never published"),
            Key::EcP256 => include_str!("../keys/ec-p256.jwk.json"),
            Key::Ed25519 => include_str!("../keys/ed25519.jwk.json"),
        };
        let mut jwk: Value = serde_json::from_str(text).unwrap();
        if let Some(kid) = kid {
            jwk["kid"] = kid.into();
        }
        if let Some(alg) = alg {
            jwk["alg"] = alg.into();
        }
        jwk
    }
}

pub fn jwks(keys: &[Value]) -> Value {
    json!({ "keys": keys })
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Claims of a good token for `alice`, valid for 10 minutes, from [`ISSUER`] for `firecrest`.
pub fn claims() -> Value {
    json!({
        "preferred_username": "alice",
        "sub": "0b6c-alice",
        "iss": ISSUER,
        "aud": "firecrest",
        "iat": now(),
        "exp": now() + 600,
    })
}

pub fn mint(key: Key, kid: Option<&str>, claims: &Value) -> String {
    mint_with(key.alg(), &key.encoding_key(), kid, claims)
}

pub fn mint_with(alg: Algorithm, key: &EncodingKey, kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

/// The `auth.authentication` section, from YAML-like JSON over the required `token_url`.
pub fn config(extra: Value) -> AuthenticationConfig {
    let mut value = json!({ "token_url": "http://127.0.0.1:9/token" });
    for (field, item) in extra.as_object().unwrap() {
        value[field] = item.clone();
    }
    serde_json::from_value(value).unwrap()
}

pub async fn verifier(config: &AuthenticationConfig) -> TokenVerifier {
    TokenVerifier::new(config, reqwest::Client::new())
        .await
        .unwrap()
}

/// One request seen by the token endpoint.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub authorization: Option<String>,
    pub body: String,
}

#[derive(Default)]
struct IdpState {
    base: String,
    jwks: Mutex<Value>,
    jwks_status: AtomicU16,
    jwks_delay: Mutex<Duration>,
    jwks_fetches: AtomicUsize,
    discovery_fetches: AtomicUsize,
    token_answer: Mutex<(u16, String)>,
    token_requests: Mutex<Vec<TokenRequest>>,
}

/// The fake IdP. Routes: `GET /jwks`, `GET /realms/hpc/.well-known/openid-configuration`,
/// `POST /token`.
pub struct Idp {
    state: Arc<IdpState>,
}

impl Idp {
    pub async fn start(keys: Value) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let state = Arc::new(IdpState {
            base: format!("http://{addr}"),
            jwks: Mutex::new(keys),
            jwks_status: AtomicU16::new(200),
            token_answer: Mutex::new((
                200,
                json!({"access_token": "sa-token-1", "token_type": "Bearer", "expires_in": 300})
                    .to_string(),
            )),
            ..IdpState::default()
        });
        let app = Router::new()
            .route("/jwks", get(serve_jwks))
            .route(
                "/realms/hpc/.well-known/openid-configuration",
                get(serve_discovery),
            )
            .route("/token", post(serve_token))
            .with_state(Arc::clone(&state));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { state }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.state.base)
    }

    pub fn jwks_url(&self) -> String {
        self.url("/jwks")
    }

    pub fn set_jwks(&self, keys: Value) {
        *self.state.jwks.lock().unwrap() = keys;
    }

    /// Makes `/jwks` answer with this status (200 serves the keys).
    pub fn set_jwks_status(&self, status: u16) {
        self.state.jwks_status.store(status, Ordering::SeqCst);
    }

    /// Makes `/jwks` slow, to widen the window in which requests overlap.
    pub fn set_jwks_delay(&self, delay: Duration) {
        *self.state.jwks_delay.lock().unwrap() = delay;
    }

    pub fn jwks_fetches(&self) -> usize {
        self.state.jwks_fetches.load(Ordering::SeqCst)
    }

    pub fn discovery_fetches(&self) -> usize {
        self.state.discovery_fetches.load(Ordering::SeqCst)
    }

    pub fn set_token_answer(&self, status: u16, body: Value) {
        *self.state.token_answer.lock().unwrap() = (status, body.to_string());
    }

    pub fn token_requests(&self) -> Vec<TokenRequest> {
        self.state.token_requests.lock().unwrap().clone()
    }
}

async fn serve_jwks(State(state): State<Arc<IdpState>>) -> Response {
    state.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    let delay = *state.jwks_delay.lock().unwrap();
    tokio::time::sleep(delay).await;
    let status = state.jwks_status.load(Ordering::SeqCst);
    if status != 200 {
        return StatusCode::from_u16(status).unwrap().into_response();
    }
    let keys = state.jwks.lock().unwrap().clone();
    Json(keys).into_response()
}

async fn serve_discovery(State(state): State<Arc<IdpState>>) -> Json<Value> {
    state.discovery_fetches.fetch_add(1, Ordering::SeqCst);
    Json(json!({
        "issuer": ISSUER,
        "jwks_uri": format!("{}/jwks", state.base),
        "token_endpoint": format!("{}/token", state.base),
    }))
}

async fn serve_token(
    State(state): State<Arc<IdpState>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let authorization = headers
        .get("authorization")
        .map(|value| value.to_str().unwrap().to_owned());
    state.token_requests.lock().unwrap().push(TokenRequest {
        authorization,
        body,
    });
    let (status, body) = state.token_answer.lock().unwrap().clone();
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json")],
        body,
    )
        .into_response()
}
