//! The whole axum app for tests that call it with `oneshot`: no socket and no cluster. Its
//! one cluster, `test-cluster`, has an SSH pool that refuses to log in, and tokens are
//! signed with the test key `rsa-a`.

use std::sync::Arc;

use ironcrest_api::{AppState, router};
use ironcrest_auth::TokenVerifier;
use ironcrest_config::Config;
use ironcrest_remote::Caller;
use ironcrest_scheduler::slurm::SlurmCli;
use ironcrest_services::{Cluster, Clusters};
use ironcrest_ssh::{CredentialProvider, Credentials, PoolSettings, SshError, SshPool};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../auth/tests/keys");
const KID: &str = "api-test";

/// The pool is never reached in these tests; any login attempt fails loudly.
struct NoCredentials;

#[async_trait::async_trait]
impl CredentialProvider for NoCredentials {
    async fn credentials(&self, _user: &Caller) -> Result<Credentials, SshError> {
        Err(SshError::Credentials(
            "API tests open no SSH connection".into(),
        ))
    }
}

pub struct App {
    pub router: axum::Router,
    _dir: tempfile::TempDir,
}

pub async fn app() -> App {
    app_with(|_| {}).await
}

/// The app with its state changed by `edit` first.
pub async fn app_with(edit: impl FnOnce(&mut AppState)) -> App {
    let dir = tempfile::tempdir().unwrap();
    let mut jwk: Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{KEYS}/rsa-a.jwk.json")).unwrap())
            .unwrap();
    jwk["kid"] = json!(KID);
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, json!({"keys": [jwk]}).to_string()).unwrap();
    let known_hosts = dir.path().join("known_hosts");
    std::fs::write(&known_hosts, "").unwrap();
    let yaml = format!(
        r#"
auth:
  authentication:
    token_url: http://127.0.0.1:9/token
    public_certs: ["file://{jwks}"]
    audiences: [urn:test]
ssh_credentials: {{type: SSHService, url: "http://127.0.0.1:9"}}
clusters:
  - name: Test-Cluster
    ssh: {{host: 127.0.0.1, port: 9, known_hosts: "{known_hosts}"}}
    scheduler: {{type: slurm, version: "22.05.8"}}
    service_account: {{client_id: health, secret: s}}
    probing: {{}}
    file_systems: [{{path: /home, data_type: users, default_work_dir: true}}]
"#,
        jwks = jwks.display(),
        known_hosts = known_hosts.display()
    );
    let config = Config::from_yaml(&yaml).unwrap();
    let verifier = TokenVerifier::new(&config.auth.authentication, reqwest::Client::new())
        .await
        .unwrap();
    let cluster_config = config.clusters[0].clone();
    let pool = SshPool::new(
        PoolSettings::from_config(&cluster_config.name, &cluster_config.ssh, 1024),
        Arc::new(NoCredentials),
    );
    let cluster = Cluster::new(cluster_config, pool.clone(), Arc::new(SlurmCli::new(pool)));
    let mut state = AppState {
        clusters: Clusters::new(vec![cluster]),
        verifier,
        gateway: Default::default(),
        trusted_proxies: Arc::from([]),
        config_path: None,
        metrics: None,
        per_user_series: false,
        audit: None,
        trace_context: None,
        idempotency: Arc::new(ironcrest_api::idempotency::Idempotency::new(
            std::time::Duration::from_secs(config.idempotency.window),
        )),
        ui: None,
        v1: config.v1.clone(),
    };
    edit(&mut state);
    App {
        router: router(state),
        _dir: dir,
    }
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A token for `alice`, valid for 10 minutes, with `claims` added or replaced.
pub fn token(claims: Value) -> String {
    let mut full = json!({"aud": "urn:test", "preferred_username": "alice", "exp": now() + 600});
    for (key, value) in claims.as_object().unwrap() {
        full[key] = value.clone();
    }
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(KID.into());
    let pem = std::fs::read(format!("{KEYS}/rsa-a.pem")).unwrap();
    encode(&header, &full, &EncodingKey::from_rsa_pem(&pem).unwrap()).unwrap()
}
