//! Starts an Ironcrest server for one test and gives it tokens.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;

use ironcrest_config::Config;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub const SYSTEM: &str = "cluster-slurm-ssh";

pub fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run the tests through scripts/test (or eval \"$(scripts/dev-env env)\")"))
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The dev configuration template with `${VAR}` taken from the environment (what
/// `scripts/dev-env` renders with envsubst).
pub fn dev_config_yaml() -> String {
    let template =
        std::fs::read_to_string(repo_root().join("scripts/devenv/ironcrest.yaml.in")).unwrap();
    let mut yaml = template;
    for var in ["IRONCREST_DEV_PREFIX", "IRONCREST_DEV_PORT"] {
        yaml = yaml.replace(&format!("${{{var}}}"), &env(var));
    }
    yaml
}

/// The dev configuration as the model, for a test to change fields of (a renamed field
/// breaks the build, not the test); without the dev server's audit log (a test that
/// audits names its own file).
pub fn dev_config() -> Config {
    static GUARD_CHECKED: std::sync::Once = std::sync::Once::new();
    GUARD_CHECKED.call_once(check_installed_guard);
    let mut config = Config::from_yaml(&dev_config_yaml()).unwrap_or_else(|err| panic!("{err}"));
    config.audit = Default::default();
    config
}

/// The installed guard, which the dev certificates force, must allow exactly what this
/// tree's commands send; one built from older sources would refuse new commands.
fn check_installed_guard() {
    let guard = guard_path();
    let output = Command::new(&guard)
        .arg("--print-allowlist")
        .output()
        .unwrap_or_else(|err| panic!("{}: {err}: run `scripts/dev-env guard`", guard.display()));
    assert!(
        output.stdout == ironcrest_remote::Allowlist::current_text().as_bytes(),
        "{} was built from other sources than these (its allowlist differs): run          `scripts/dev-env guard`",
        guard.display()
    );
}

/// The cluster-side guard `scripts/dev-env` installs.
pub fn guard_path() -> PathBuf {
    PathBuf::from(env("IRONCREST_DEV_PREFIX")).join("bin/ironcrest-guard")
}

/// The log the dev configuration's guard writes.
pub fn guard_log() -> PathBuf {
    PathBuf::from(env("IRONCREST_DEV_PREFIX")).join("guard/guard.log")
}

/// `config` as a configuration file holds it (secrets as given: references as references).
pub fn config_yaml(config: &Config) -> String {
    serde_yaml_ng::to_string(config).unwrap_or_else(|err| panic!("{err}"))
}

/// `config` written out and loaded back as the server loads its file: normalised, and
/// validated (an edit that a check refuses panics here, naming the field).
pub fn reloaded(config: &Config) -> Config {
    let yaml = config_yaml(config);
    Config::from_yaml(&yaml).unwrap_or_else(|err| panic!("{err}\n{yaml}"))
}

/// Writes `config` to `config.yaml` in `dir` for the `ironcrest` binary; returns the path.
pub fn write_config(dir: &std::path::Path, config: &Config) -> PathBuf {
    let path = dir.join("config.yaml");
    std::fs::write(&path, config_yaml(config)).unwrap();
    path
}

pub struct TestServer {
    pub url: String,
    pub http: reqwest::Client,
    shutdown: CancellationToken,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts a server whose configuration is the dev one changed by `edit`, with health
    /// checks every second (so tests see a change of health quickly).
    pub async fn start_with(edit: impl FnOnce(&mut Config)) -> Self {
        let mut config = dev_config();
        for cluster in &mut config.clusters {
            cluster.probing.interval = 1;
        }
        edit(&mut config);
        let config = reloaded(&config);
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let server_shutdown = shutdown.clone();
        tokio::spawn(async move {
            if let Err(err) = ironcrest::serve(listener, config, None, server_shutdown).await {
                panic!("server failed: {err:#}");
            }
        });
        Self {
            url,
            http: reqwest::Client::new(),
            shutdown,
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut request = self.http.get(format!("{}{path}", self.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    pub async fn get_json(&self, path: &str, token: &str) -> serde_json::Value {
        let response = self.get(path, Some(token)).await;
        let status = response.status();
        let body = response.text().await.unwrap();
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// The value of the series `name{labels}` in the server's `/metrics` (0 while it has
    /// not been recorded). Labels are compared as a set, so their order does not matter.
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let response = self.get("/metrics", None).await;
        assert_eq!(response.status(), 200);
        let text = response.text().await.unwrap();
        let mut wanted: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        wanted.sort();
        for line in text.lines().filter(|line| !line.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let (series_name, series_labels) = match series.split_once('{') {
                Some((series_name, rest)) => (series_name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let mut found: Vec<String> = series_labels
                .split(',')
                .filter(|label| !label.is_empty())
                .map(str::to_string)
                .collect();
            found.sort();
            if series_name == name && found == wanted {
                return value.parse().unwrap();
            }
        }
        0.0
    }

    /// Waits until a health-check run has recorded results that satisfy `done`.
    pub async fn wait_for_health(
        &self,
        token: &str,
        done: impl Fn(&[serde_json::Value]) -> bool,
    ) -> Vec<serde_json::Value> {
        for _ in 0..120 {
            let systems = self.get_json("/status/systems", token).await;
            if let Some(health) = systems["systems"][0]["servicesHealth"].as_array()
                && done(health)
            {
                return health.clone();
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        panic!("health never reached the expected state");
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A fresh access token for fireuser from the real OIDC provider.
pub async fn user_token() -> String {
    client_credentials_token(
        &env("IRONCREST_DEV_CLIENT_ID"),
        &env("IRONCREST_DEV_CLIENT_SECRET"),
    )
    .await
}

pub async fn client_credentials_token(client_id: &str, secret: &str) -> String {
    scoped_token(client_id, secret, None).await
}

/// A token of the dev IdP's `client_id`, asking for `scope` (space-separated) if given.
pub async fn scoped_token(client_id: &str, secret: &str, scope: Option<&str>) -> String {
    let mut form = vec![("grant_type", "client_credentials")];
    form.extend(scope.map(|scope| ("scope", scope)));
    let response = reqwest::Client::new()
        .post(env("IRONCREST_DEV_OIDC_TOKEN_URL"))
        .basic_auth(client_id, Some(secret))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_string()
}

/// The IdP's signing key as PEM, exported with node from the provider's persisted JWK,
/// so tests can mint tokens the real IdP would never issue (expired, wrong audience).
pub fn idp_signing_key() -> (jsonwebtoken::EncodingKey, String) {
    let jwks_path = format!("{}/oidc/private/jwks.json", env("IRONCREST_DEV_PREFIX"));
    let script = format!(
        "const c=require('crypto');const k=JSON.parse(require('fs').readFileSync('{jwks_path}','utf8')).keys[0];\
         process.stdout.write(JSON.stringify({{kid:k.kid,pem:c.createPrivateKey({{key:k,format:'jwk'}}).export({{type:'pkcs8',format:'pem'}})}}))"
    );
    let output = Command::new("node").arg("-e").arg(script).output().unwrap();
    assert!(output.status.success(), "{output:?}");
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let key =
        jsonwebtoken::EncodingKey::from_rsa_pem(value["pem"].as_str().unwrap().as_bytes()).unwrap();
    (key, value["kid"].as_str().unwrap().to_string())
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
