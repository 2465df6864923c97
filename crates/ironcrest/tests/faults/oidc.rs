//! The identity provider down, then back with a rotated key; and hanging (frozen: it
//! accepts connections and never answers). Tokens already verified keep working from the
//! cached keys throughout; a token signed with a key Ironcrest does not know waits for at
//! most one bounded JWKS fetch; a rotation is picked up once the provider answers again.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use crate::harness::{TestServer, now};
use crate::instances::{Instance, oidc, shared_dir};
use crate::load::{Answer, Fixture, Load, Op, Phase, verify};

/// Both JWKS fetches of a discovery (5 s each), one refresh already running before them,
/// and slack: a request waiting longer hung.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(45);

/// A signing key made by the dev environment's own key tool, with its private JWKS file.
struct Key {
    private_jwks: PathBuf,
    kid: String,
}

impl Key {
    fn new(dir: &Path, name: &str) -> Self {
        let private_jwks = dir.join(format!("{name}.json"));
        let tool = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../scripts/devenv/oidc/genkey.mjs"
        );
        let output = std::process::Command::new("node")
            .arg(tool)
            .arg(&private_jwks)
            .arg(dir.join(format!("{name}.public.json")))
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        let kid = String::from_utf8(output.stdout).unwrap().trim().to_string();
        Self { private_jwks, kid }
    }

    fn jwk(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(&self.private_jwks).unwrap();
        serde_json::from_str::<serde_json::Value>(&text).unwrap()["keys"][0].clone()
    }

    /// The key as PEM, exported with node (jsonwebtoken does not read JWK private keys).
    fn encoding_key(&self) -> EncodingKey {
        let script = format!(
            "const c=require('crypto');process.stdout.write(c.createPrivateKey({{key:{},format:'jwk'}}).export({{type:'pkcs8',format:'pem'}}))",
            self.jwk()
        );
        let output = std::process::Command::new("node")
            .arg("-e")
            .arg(script)
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        EncodingKey::from_rsa_pem(&output.stdout).unwrap()
    }
}

/// Makes the provider sign with `keys[0]` and publish them all, from its next start.
fn publish(file: &Path, keys: &[&Key]) {
    let keys: Vec<serde_json::Value> = keys.iter().map(|key| key.jwk()).collect();
    std::fs::write(file, json!({"keys": keys}).to_string()).unwrap();
}

/// A private provider, and a test server trusting it (keys refreshed every 2 s).
async fn provider_and_server(dir: &Path, system: &str, first: &Key) -> (Instance, TestServer) {
    let active = dir.join("active.json");
    publish(&active, &[first]);
    let idp = oidc(dir, &active);
    let issuer = format!("http://127.0.0.1:{}", idp.port);
    let server = TestServer::start_with(|config| {
        config.clusters[0].name = system.into();
        let authn = &mut config.auth.authentication;
        authn.token_url = format!("{issuer}/token");
        authn.oidc_discovery_url = Some(issuer.clone());
        authn.issuer = Some(issuer.clone());
        authn.public_certs.clear();
        authn.jwks_refresh_interval = 2;
        authn.jwks_min_refresh_interval = 1;
    })
    .await;
    (idp, server)
}

/// An access token for fireuser from the provider.
async fn issued_token(idp: &Instance) -> String {
    let response = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}/token", idp.port))
        .basic_auth("ironcrest-dev", Some("ironcrest-dev-secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_string()
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

/// A token as the provider would issue it, signed with `key` (one it may not publish).
fn minted_token(idp: &Instance, key: &Key) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(key.kid.clone());
    let claims = json!({
        "iss": format!("http://127.0.0.1:{}", idp.port),
        "aud": "urn:ironcrest",
        "sub": "ironcrest-dev",
        "preferred_username": "fireuser",
        "iat": now(),
        "exp": now() + 600,
    });
    jsonwebtoken::encode(&header, &claims, &key.encoding_key()).unwrap()
}

/// `GET /status/systems` with `token`: its status and message, and how long it took (for
/// the report only).
async fn systems(server: &TestServer, token: &str) -> (u16, String, Duration) {
    let started = Instant::now();
    let response = reqwest::Client::builder()
        .timeout(CLIENT_TIMEOUT)
        .build()
        .unwrap()
        .get(format!("{}/status/systems", server.url))
        .bearer_auth(token)
        .send()
        .await
        .expect("answered within the client's timeout");
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap();
    (
        status,
        body["message"].as_str().unwrap_or_default().to_string(),
        started.elapsed(),
    )
}

async fn failed_jwks_loads(server: &TestServer) -> f64 {
    let mut total = 0.0;
    for trigger in ["periodic", "unknown_kid"] {
        total += server
            .metric(
                "ironcrest_auth_jwks_loads_total",
                &[("trigger", trigger), ("outcome", "failed")],
            )
            .await;
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idp_down_then_back_with_a_rotated_key() {
    const SYSTEM: &str = "faults-idp-down";
    let dir = shared_dir();
    let (old_key, new_key) = (Key::new(dir.path(), "old"), Key::new(dir.path(), "new"));
    let (mut idp, server) = provider_and_server(dir.path(), SYSTEM, &old_key).await;
    let token = issued_token(&idp).await;
    assert_eq!(kid_of(&token), old_key.kid);
    let fixture = Arc::new(Fixture::new("faults-idp"));
    let ops = [Op::Systems, Op::Ls, Op::Stat, Op::Userinfo];
    let load = Load::start(&server.url, SYSTEM, &token, fixture, &ops, CLIENT_TIMEOUT);
    load.rounds(2).await;

    load.enter(Phase::Outage);
    let failed_before = failed_jwks_loads(&server).await;
    idp.kill();
    // A token with a key Ironcrest has never seen: refused at once, the provider being down.
    let (status, message, _) = systems(&server, &minted_token(&idp, &new_key)).await;
    assert_eq!(
        (status, message.as_str()),
        (401, "Token's public key not found.")
    );
    // The periodic refreshes fail (and are counted); issued tokens keep working meanwhile.
    for _ in 0..100 {
        if failed_jwks_loads(&server).await > failed_before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(failed_jwks_loads(&server).await > failed_before);
    load.rounds(3).await;

    // The provider comes back signing with a new key (and still publishing the old one).
    publish(&dir.path().join("active.json"), &[&new_key, &old_key]);
    idp.restart();
    let rotated = issued_token(&idp).await;
    assert_eq!(kid_of(&rotated), new_key.kid);
    load.recover().await;
    let mut answers = Vec::new();
    for _ in 0..50 {
        let answer = systems(&server, &rotated).await;
        answers.push(answer.clone());
        if answer.0 == 200 {
            break;
        }
        // Refused only until the next refresh (at most jwks_min_refresh_interval away).
        assert_eq!(
            (answer.0, answer.1.as_str()),
            (401, "Token's public key not found.")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        answers.last().unwrap().0,
        200,
        "the new key was never loaded: {answers:?}"
    );
    eprintln!("rotated token: {answers:?}");
    load.rounds(2).await;
    // Every request of the load (with the token issued before the outage) succeeded.
    verify(&load.finish().await, |_| false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idp_hanging_blocks_no_request_past_the_fetch_timeout() {
    const SYSTEM: &str = "faults-idp-hanging";
    let dir = shared_dir();
    let (key, unknown_key) = (Key::new(dir.path(), "key"), Key::new(dir.path(), "other"));
    let (idp, server) = provider_and_server(dir.path(), SYSTEM, &key).await;
    let token = issued_token(&idp).await;
    let fixture = Arc::new(Fixture::new("faults-idp-hang"));
    let ops = [Op::Systems, Op::Ls, Op::Stat, Op::Userinfo];
    let load = Load::start(&server.url, SYSTEM, &token, fixture, &ops, CLIENT_TIMEOUT);
    load.rounds(2).await;

    load.enter(Phase::Outage);
    let failed_before = failed_jwks_loads(&server).await;
    idp.pause();
    // Tokens with an unknown key wait for one refresh (a fetch that times out), together.
    let unknown = minted_token(&idp, &unknown_key);
    let waits: Vec<(u16, String, Duration)> =
        futures::future::join_all((0..10).map(|_| systems(&server, &unknown))).await;
    for (status, message, _) in &waits {
        assert_eq!(
            (*status, message.as_str()),
            (401, "Token's public key not found.")
        );
    }
    eprintln!(
        "unknown-key requests during the hang waited up to {:?}",
        waits.iter().map(|w| w.2).max()
    );
    for _ in 0..200 {
        if failed_jwks_loads(&server).await > failed_before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(failed_jwks_loads(&server).await > failed_before);
    load.rounds(3).await;

    idp.resume();
    load.recover().await;
    load.rounds(2).await;
    let answers: Vec<Answer> = load.finish().await;
    verify(&answers, |_| false);
}
