//! The gateway's authorization layers through the real server and real dev-IdP tokens
//! (fireuser, client `ironcrest-dev`, no groups): the embedded Rego policy, and OpenFGA
//! played by `scripts/devenv/openfga-standin` on a free loopback port.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ironcrest_config::{AuthorizationConfig, Config, PolicyConfig};

use crate::harness::{SYSTEM, TestServer, user_token};

fn userinfo() -> String {
    format!("/status/{SYSTEM}/userinfo")
}

fn listing() -> String {
    format!("/filesystem/{SYSTEM}/ops/ls?path=/home/fireuser")
}

/// The status and JSON body of a GET.
async fn get(server: &TestServer, path: &str, token: &str) -> (u16, serde_json::Value) {
    let response = server.get(path, Some(token)).await;
    let status = response.status().as_u16();
    let body = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&body).unwrap_or_else(|_| panic!("{status}: {body}")),
    )
}

#[tokio::test]
async fn the_rego_policy_decides_on_user_client_family_and_system() {
    let dir = tempfile::tempdir().unwrap();
    let rego = dir.path().join("policy.rego");
    std::fs::write(
        &rego,
        format!(
            r#"package ironcrest

default allow := false

allow if {{
    input.user == "fireuser"
    input.client_id == "ironcrest-dev"
    input.system == "{SYSTEM}"
    input.family == "status-read"
    input.method == "GET"
}}

reason := sprintf("%s via %s may not make %s requests on %s.", [input.user, input.client_id, input.family, input.system])
"#
        ),
    )
    .unwrap();
    let server = TestServer::start_with(|config| {
        config.gateway.policy = Some(PolicyConfig {
            files: vec![rego],
            data: vec![],
            allow: "data.ironcrest.allow".into(),
            reason: Some("data.ironcrest.reason".into()),
        });
    })
    .await;
    let token = user_token().await;
    let (status, body) = get(&server, &userinfo(), &token).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = get(&server, &listing(), &token).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body["message"],
        format!("fireuser via ironcrest-dev may not make filesystem-read requests on {SYSTEM}.")
    );
}

/// The stand-in, killed when dropped.
struct StandIn {
    child: Child,
    url: String,
    tuples: PathBuf,
    _dir: tempfile::TempDir,
}

impl StandIn {
    /// Started with fireuser a member of the system, or not, and the stand-in's `flags`.
    fn start(member: bool, flags: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let tuples = dir.path().join("tuples.json");
        Self::write_tuples(&tuples, member);
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/devenv/openfga-standin");
        let mut child = Command::new(script)
            .args(["--port", "0", "--tuples"])
            .arg(&tuples)
            .args(flags)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let address = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("stand-in said {line:?}"));
        Self {
            child,
            url: format!("http://{address}"),
            tuples,
            _dir: dir,
        }
    }

    fn write_tuples(path: &Path, member: bool) {
        let tuples = if member {
            serde_json::json!([{"user": "user:fireuser", "relation": "member", "object": format!("vcluster:{SYSTEM}")}])
        } else {
            serde_json::json!([{"user": "user:someone", "relation": "member", "object": format!("vcluster:{SYSTEM}")}])
        };
        std::fs::write(path, tuples.to_string()).unwrap();
    }

    async fn checks(&self) -> u64 {
        let body: serde_json::Value = reqwest::get(format!("{}/_standin/checks", self.url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["checks"].as_u64().unwrap()
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `auth.authorization` as a configuration file would give it.
fn authorization(yaml: &str) -> impl FnOnce(&mut Config) + use<> {
    let section: AuthorizationConfig = serde_yaml_ng::from_str(yaml).unwrap();
    move |config| config.auth.authorization = Some(section)
}

#[tokio::test]
async fn openfga_api_allows_members_and_denies_others() {
    let token = user_token().await;
    let member = StandIn::start(true, &["--store", "S1"]);
    let server = TestServer::start_with(authorization(&format!(
        "{{url: '{}', store_id: S1, authorization_model_id: M1}}",
        member.url
    )))
    .await;
    let (status, body) = get(&server, &userinfo(), &token).await;
    assert_eq!(status, 200, "{body}");
    drop(server);

    // OpenFGA answers a non-member with 200 {"allowed": false}.
    let other = StandIn::start(false, &["--store", "S1"]);
    let server = TestServer::start_with(authorization(&format!(
        "{{url: '{}', store_id: S1}}",
        other.url
    )))
    .await;
    let (status, body) = get(&server, &listing(), &token).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["message"], "Not authorized to access system");
    assert_eq!(other.checks().await, 1);
}

#[tokio::test]
async fn v2s_check_reads_allowed_and_not_only_the_status() {
    let token = user_token().await;
    let check = |standin: &StandIn| authorization(&format!("{{url: '{}/check'}}", standin.url));

    let member = StandIn::start(true, &[]);
    let server = TestServer::start_with(check(&member)).await;
    assert_eq!(get(&server, &userinfo(), &token).await.0, 200);
    drop(server);

    // A 200 that says allowed: false denies (v2 would let it through).
    let other = StandIn::start(false, &[]);
    let server = TestServer::start_with(check(&other)).await;
    let (status, body) = get(&server, &userinfo(), &token).await;
    assert_eq!(status, 403, "{body}");
    drop(server);

    // A service that denies with 403, as v2 reads any non-200.
    let forbidding = StandIn::start(false, &["--deny-status", "403"]);
    let server = TestServer::start_with(check(&forbidding)).await;
    assert_eq!(get(&server, &userinfo(), &token).await.0, 403);
    drop(server);

    // A 200 without `allowed` is no decision: refused as unavailable.
    let mute = StandIn::start(true, &["--allowed-missing"]);
    let server = TestServer::start_with(check(&mute)).await;
    let (status, body) = get(&server, &userinfo(), &token).await;
    assert_eq!(status, 503, "{body}");
}

#[tokio::test]
async fn openfga_down_or_too_slow_is_503() {
    let token = user_token().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let server = TestServer::start_with(authorization(&format!(
        "{{url: 'http://127.0.0.1:{port}/check'}}"
    )))
    .await;
    let (status, body) = get(&server, &userinfo(), &token).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body["message"],
        "Unable to verify system access authorization"
    );
    drop(server);

    let slow = StandIn::start(true, &["--delay", "3"]);
    let server = TestServer::start_with(authorization(&format!(
        "{{url: '{}/check', timeout: 1}}",
        slow.url
    )))
    .await;
    let started = Instant::now();
    let (status, body) = get(&server, &userinfo(), &token).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn decisions_are_cached_for_cache_ttl() {
    let token = user_token().await;
    let standin = StandIn::start(true, &[]);
    let server = TestServer::start_with(authorization(&format!(
        "{{url: '{}/check', cache_ttl: 2}}",
        standin.url
    )))
    .await;
    assert_eq!(get(&server, &userinfo(), &token).await.0, 200);
    assert_eq!(standin.checks().await, 1);
    // Membership revoked: the cached decision holds until the TTL is over.
    StandIn::write_tuples(&standin.tuples, false);
    assert_eq!(get(&server, &userinfo(), &token).await.0, 200);
    assert_eq!(standin.checks().await, 1);
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(get(&server, &userinfo(), &token).await.0, 403);
    assert_eq!(standin.checks().await, 2);
}
