//! The gateway in front of the real server, with real tokens from the dev IdP: scopes per
//! route family, maintenance, termination rules, the IP filter behind a trusted proxy, and
//! SIGHUP reloads of the binary under load.

use std::process::{Command, Stdio};
use std::time::Duration;

use ironcrest_config::{MaintenanceWindow, TerminationRule};
use serde_json::Value;

use crate::harness::{TestServer, dev_config, scoped_token, user_token, write_config};

const SYSTEM: &str = "cluster-slurm-ssh";

fn ls_home() -> String {
    format!("/filesystem/{SYSTEM}/ops/ls?path=/home/fireuser")
}

async fn read_only_token() -> String {
    scoped_token(
        "ironcrest-dev-readonly",
        "ironcrest-dev-readonly-secret",
        Some("firecrest firecrest:read"),
    )
    .await
}

async fn read_write_token() -> String {
    scoped_token(
        "ironcrest-dev",
        "ironcrest-dev-secret",
        Some("firecrest firecrest:read firecrest:write"),
    )
    .await
}

/// A POST of `body` to `path`: its status and JSON body.
async fn post(server: &TestServer, path: &str, token: &str, body: Value) -> (u16, Value) {
    let response = server
        .http
        .post(format!("{}{path}", server.url))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scopes_decide_per_route_family() {
    let server = TestServer::start_with(|config| {
        config.gateway.scopes = [
            (
                "filesystem-read".to_string(),
                vec!["firecrest:read".to_string()],
            ),
            (
                "filesystem-write".to_string(),
                vec!["firecrest:write".to_string()],
            ),
        ]
        .into();
    })
    .await;
    let (reader, writer, bare) = (
        read_only_token().await,
        read_write_token().await,
        user_token().await,
    );
    assert_eq!(server.get(&ls_home(), Some(&reader)).await.status(), 200);
    assert_eq!(server.get(&ls_home(), Some(&writer)).await.status(), 200);
    let refused = server.get(&ls_home(), Some(&bare)).await;
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("firecrest:read"),
        "{body}"
    );

    // A family without required scopes is open to every valid token.
    let userinfo = format!("/status/{SYSTEM}/userinfo");
    assert_eq!(server.get(&userinfo, Some(&bare)).await.status(), 200);

    let dir = format!("/home/fireuser/gateway-scopes-{}", std::process::id());
    let mkdir = format!("/filesystem/{SYSTEM}/ops/mkdir");
    let (status, body) = post(&server, &mkdir, &reader, serde_json::json!({"path": dir})).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("firecrest:write"),
        "{body}"
    );
    assert!(
        !std::path::Path::new(&dir).exists(),
        "a refused request changed nothing"
    );
    let (status, body) = post(&server, &mkdir, &writer, serde_json::json!({"path": dir})).await;
    assert_eq!(status, 201, "{body}");
    std::fs::remove_dir(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_answers_503_with_its_reason_and_status_still_answers() {
    let server = TestServer::start_with(|config| {
        config.gateway.maintenance.systems.insert(
            SYSTEM.to_string(),
            MaintenanceWindow {
                message: "Slurm is being upgraded.".into(),
                until: Some((chrono::Utc::now() + chrono::Duration::minutes(30)).to_rfc3339()),
            },
        );
    })
    .await;
    let token = user_token().await;
    let response = server.get(&ls_home(), Some(&token)).await;
    assert_eq!(response.status(), 503);
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1700..=1800).contains(&retry), "Retry-After {retry}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["reason"], "maintenance", "{body}");
    assert_eq!(body["message"], "Slurm is being upgraded.", "{body}");
    let systems = server.get_json("/status/systems", &token).await;
    let system = &systems["systems"][0];
    assert_eq!(system["name"], SYSTEM);
    assert_eq!(
        system["maintenance"]["message"], "Slurm is being upgraded.",
        "{system}"
    );
    assert!(system["maintenance"]["until"].is_string(), "{system}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_termination_rule_answers_its_status_and_message() {
    let server = TestServer::start_with(|config| {
        config.gateway.terminate.push(TerminationRule {
            methods: vec!["POST".into()],
            path: "/filesystem/*/ops/mkdir".into(),
            system: None,
            status: 403,
            message: "Creating directories is disabled today.".into(),
        });
    })
    .await;
    let token = user_token().await;
    let dir = format!("/home/fireuser/gateway-terminated-{}", std::process::id());
    let mkdir = format!("/filesystem/{SYSTEM}/ops/mkdir");
    let (status, body) = post(&server, &mkdir, &token, serde_json::json!({"path": dir})).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["message"], "Creating directories is disabled today.");
    assert!(!std::path::Path::new(&dir).exists());
    assert_eq!(server.get(&ls_home(), Some(&token)).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ip_filter_reads_forwarding_headers_only_from_trusted_proxies() {
    let filtered = |trusted: bool| {
        move |config: &mut ironcrest_config::Config| {
            config.gateway.ip_filter.allow = vec!["127.0.0.1".into(), "10.0.0.0/8".into()];
            config.gateway.ip_filter.clients = [(
                "ironcrest-dev-readonly".to_string(),
                vec!["10.1.0.0/16".to_string()],
            )]
            .into();
            if trusted {
                config.server.connections.trusted_proxies = vec!["127.0.0.1".into()];
            }
        }
    };
    let token = user_token().await;
    let forwarded = |server: &TestServer, from: &str, token: &str| {
        server
            .http
            .get(format!("{}{}", server.url, ls_home()))
            .bearer_auth(token)
            .header("x-forwarded-for", from)
            .send()
    };
    let behind_proxy = TestServer::start_with(filtered(true)).await;
    let refused = forwarded(&behind_proxy, "203.0.113.9", &token)
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("203.0.113.9"),
        "{body}"
    );
    assert_eq!(
        forwarded(&behind_proxy, "10.2.3.4", &token)
            .await
            .unwrap()
            .status(),
        200
    );
    // The read-only client is bound to 10.1.0.0/16.
    let reader = read_only_token().await;
    assert_eq!(
        forwarded(&behind_proxy, "10.2.3.4", &reader)
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        forwarded(&behind_proxy, "10.1.3.4", &reader)
            .await
            .unwrap()
            .status(),
        200
    );

    // Without a trusted proxy the header is the client's claim, and ignored.
    let direct = TestServer::start_with(filtered(false)).await;
    assert_eq!(
        forwarded(&direct, "203.0.113.9", &token)
            .await
            .unwrap()
            .status(),
        200
    );
}

/// The binary reloads its gateway rules on SIGHUP while requests run: none of them fails,
/// each is answered under the old rules or the new, and a file with problems keeps the
/// rules in force.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_rules_under_load_without_losing_a_request() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = dev_config();
    config.server.listen = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    config.gateway.admin_scope = Some("firecrest:admin".into());
    let path = write_config(dir.path(), &config);
    let mut child = Command::new(env!("CARGO_BIN_EXE_ironcrest"))
        .args(["serve", "--config"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}{}", ls_home());
    let http = reqwest::Client::new();
    let token = user_token().await;
    let status = || async {
        http.get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .map(|r| r.status().as_u16())
            .ok()
    };
    let mut up = false;
    for _ in 0..200 {
        if status().await == Some(200) {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "ironcrest never answered on {port}");
    let hangup = || {
        let sent = Command::new("kill")
            .args(["-HUP", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    };
    // Waits (bounded) until the server answers `wanted`.
    let answers = |wanted: u16| async move {
        for _ in 0..100 {
            if status().await == Some(wanted) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    };

    let load = {
        let (http, url, token) = (http.clone(), url.clone(), token.clone());
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            for _ in 0..400 {
                let answer = http.get(&url).bearer_auth(&token).send().await;
                statuses.push(
                    answer
                        .map(|r| r.status().as_u16())
                        .map_err(|e| e.to_string()),
                );
            }
            statuses
        })
    };
    let mut maintenance = config.clone();
    maintenance.gateway.maintenance.systems.insert(
        SYSTEM.into(),
        MaintenanceWindow {
            message: "reloaded".into(),
            until: None,
        },
    );
    write_config(dir.path(), &maintenance);
    hangup();
    assert!(answers(503).await, "the reload never took effect");

    let mut broken = maintenance.clone();
    broken.gateway.ip_filter.deny = vec!["not-a-network".into()];
    write_config(dir.path(), &broken);
    hangup();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        status().await,
        Some(503),
        "a file with problems keeps the rules"
    );

    write_config(dir.path(), &config);
    hangup();
    assert!(answers(200).await, "the maintenance never ended");

    // The admin route reloads the same way, and answers a file's problems.
    let admin = admin_token().await;
    let reload = || async {
        http.post(format!("http://127.0.0.1:{port}/admin/reload"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap()
    };
    write_config(dir.path(), &maintenance);
    assert_eq!(reload().await.status(), 200);
    assert_eq!(status().await, Some(503));
    write_config(dir.path(), &broken);
    let refused = reload().await;
    assert_eq!(refused.status(), 422);
    let body: Value = refused.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("gateway.ip_filter.deny"),
        "{body}"
    );
    write_config(dir.path(), &config);
    assert_eq!(reload().await.status(), 200);
    assert_eq!(status().await, Some(200));

    let statuses = load.await.unwrap();
    let failed: Vec<_> = statuses
        .iter()
        .filter(|s| !matches!(s, Ok(200 | 503)))
        .collect();
    assert!(
        failed.is_empty(),
        "requests lost during reloads: {failed:?}"
    );
    assert!(statuses.contains(&Ok(200)));

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    child.wait().unwrap();
}

async fn admin_token() -> String {
    scoped_token(
        "ironcrest-dev-admin",
        "ironcrest-dev-admin-secret",
        Some("firecrest firecrest:admin"),
    )
    .await
}

/// Maintenance switched on and off by an admin while the server runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_starts_and_ends_maintenance_at_run_time() {
    let server = TestServer::start_with(|config| {
        config.gateway.admin_scope = Some("firecrest:admin".into());
    })
    .await;
    let (user, admin) = (user_token().await, admin_token().await);
    let call = |method: reqwest::Method, path: &str, token: &str, body: Option<Value>| {
        let mut request = server
            .http
            .request(method, format!("{}{path}", server.url))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send()
    };
    let system_path = format!("/admin/maintenance/systems/{SYSTEM}");
    let window = serde_json::json!({"message": "Disk swap", "until": "2099-01-01T00:00:00Z"});
    // The process's metrics are shared by every test server in it, so this test counts
    // what its own requests added at least.
    let server = &server;
    let decisions = |outcome: &'static str| async move {
        server
            .metric(
                "ironcrest_gateway_decisions_total",
                &[("family", "filesystem-read"), ("outcome", outcome)],
            )
            .await
    };
    let (allowed_before, maintenance_before) =
        (decisions("allowed").await, decisions("maintenance").await);

    let refused = call(
        reqwest::Method::PUT,
        &system_path,
        &user,
        Some(window.clone()),
    )
    .await
    .unwrap();
    assert_eq!(refused.status(), 403);
    assert_eq!(server.get(&ls_home(), Some(&user)).await.status(), 200);

    let set = call(reqwest::Method::PUT, &system_path, &admin, Some(window))
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    let view: Value = set.json().await.unwrap();
    assert_eq!(view["systems"][SYSTEM]["message"], "Disk swap", "{view}");
    let during = server.get(&ls_home(), Some(&user)).await;
    assert_eq!(during.status(), 503);
    assert!(during.headers().contains_key("retry-after"));

    let bad = serde_json::json!({"message": "x", "until": "tomorrow"});
    let invalid = call(reqwest::Method::PUT, &system_path, &admin, Some(bad))
        .await
        .unwrap();
    assert_eq!(invalid.status(), 400);
    let unknown = call(
        reqwest::Method::PUT,
        "/admin/maintenance/systems/no-such-system",
        &admin,
        Some(serde_json::json!({"message": "x"})),
    )
    .await
    .unwrap();
    assert_eq!(unknown.status(), 404);

    let ended = call(reqwest::Method::DELETE, &system_path, &admin, None)
        .await
        .unwrap();
    assert_eq!(ended.status(), 200);
    assert_eq!(server.get(&ls_home(), Some(&user)).await.status(), 200);

    // Global maintenance covers every system.
    let global = serde_json::json!({"message": "Machine room power work"});
    let set = call(
        reqwest::Method::PUT,
        "/admin/maintenance/global",
        &admin,
        Some(global),
    )
    .await
    .unwrap();
    assert_eq!(set.status(), 200);
    assert_eq!(server.get(&ls_home(), Some(&user)).await.status(), 503);
    let ended = call(
        reqwest::Method::DELETE,
        "/admin/maintenance/global",
        &admin,
        None,
    )
    .await
    .unwrap();
    assert_eq!(ended.status(), 200);
    assert_eq!(server.get(&ls_home(), Some(&user)).await.status(), 200);

    // The refusals and admissions above, counted per family and layer.
    assert!(decisions("allowed").await - allowed_before >= 3.0);
    assert!(decisions("maintenance").await - maintenance_before >= 2.0);

    // This server was started without a file: nothing to reload.
    let reload = call(reqwest::Method::POST, "/admin/reload", &admin, None)
        .await
        .unwrap();
    assert_eq!(reload.status(), 409);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_admin_scope_the_admin_routes_are_off() {
    let server = TestServer::start_with(|config| config.gateway.admin_scope = None).await;
    let response = server
        .get("/admin/maintenance", Some(&admin_token().await))
        .await;
    assert_eq!(response.status(), 404);
}

/// A key made by `ironcrest api-key create` logs in with `X-API-Key`, holds its scopes, and
/// stops working once revoked and reloaded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_made_by_the_cli_log_in_hold_their_scopes_and_can_be_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = dev_config();
    config.gateway.api_keys = Some(ironcrest_config::ApiKeysConfig {
        file: dir.path().join("api-keys.yaml"),
        secret: ironcrest_config::Secret::new("an-api-key-secret-of-at-least-32-chars"),
    });
    config.gateway.scopes = [(
        "filesystem-write".to_string(),
        vec!["firecrest:write".to_string()],
    )]
    .into();
    let path = write_config(dir.path(), &config);
    let cli = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ironcrest"))
            .arg("api-key")
            .args(args)
            .arg("--config")
            .arg(&path)
            .output()
            .unwrap()
    };
    let created = cli(&[
        "create",
        "--user",
        "fireuser",
        "--scope",
        "firecrest:read",
        "--days",
        "1",
    ]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let key = String::from_utf8(created.stdout)
        .unwrap()
        .trim()
        .to_string();
    assert!(key.starts_with("ick_"), "{key}");
    let stored = std::fs::read_to_string(dir.path().join("api-keys.yaml")).unwrap();
    assert!(!stored.contains(&key), "only the key's hash is stored");
    let listed = String::from_utf8(cli(&["list"]).stdout).unwrap();
    let id = listed.split('\t').next().unwrap().to_string();
    assert!(key.contains(&id) && listed.contains("fireuser"), "{listed}");

    let keyed = config.clone();
    let server = TestServer::start_with(move |c| *c = keyed).await;
    let with_key = |path: String, key: &str| {
        server
            .http
            .get(format!("{}{path}", server.url))
            .header("x-api-key", key)
            .send()
    };
    let listing = with_key(ls_home(), &key).await.unwrap();
    assert_eq!(listing.status(), 200);
    let userinfo: Value = with_key(format!("/status/{SYSTEM}/userinfo"), &key)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(userinfo["user"]["name"], "fireuser", "{userinfo}");
    let mkdir = server
        .http
        .post(format!("{}/filesystem/{SYSTEM}/ops/mkdir", server.url))
        .header("x-api-key", &key)
        .json(&serde_json::json!({"path": "/home/fireuser/never-made-by-a-read-key"}))
        .send()
        .await
        .unwrap();
    assert_eq!(mkdir.status(), 403, "the key holds firecrest:read only");
    let forged = format!("{}x", &key[..key.len() - 1]);
    assert_eq!(with_key(ls_home(), &forged).await.unwrap().status(), 401);

    let revoked = cli(&["revoke", &id]);
    assert!(
        revoked.status.success(),
        "{}",
        String::from_utf8_lossy(&revoked.stderr)
    );
    let gone = TestServer::start_with(move |c| *c = config).await;
    let refused = gone
        .http
        .get(format!("{}{}", gone.url, ls_home()))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
}

/// The shipped example policy (deploy/policy) with the dev IdP's real tokens: fireuser's
/// groups may use the system; the read-only client may only read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_policy_admits_members_and_keeps_read_only_clients_reading() {
    let policy = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/policy");
    let server = TestServer::start_with(|config| {
        config.gateway.policy = Some(ironcrest_config::PolicyConfig {
            files: vec![format!("{policy}/ironcrest.rego").into()],
            data: vec![format!("{policy}/data.yaml").into()],
            allow: "data.ironcrest.allow".into(),
            reason: Some("data.ironcrest.reason".into()),
        });
    })
    .await;
    let (member, reader) = (user_token().await, read_only_token().await);
    assert_eq!(server.get(&ls_home(), Some(&member)).await.status(), 200);
    assert_eq!(server.get(&ls_home(), Some(&reader)).await.status(), 200);
    let dir = format!("/home/fireuser/gateway-policy-{}", std::process::id());
    let mkdir = format!("/filesystem/{SYSTEM}/ops/mkdir");
    let (status, body) = post(&server, &mkdir, &reader, serde_json::json!({"path": dir})).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("read-only"),
        "{body}"
    );
    assert!(!std::path::Path::new(&dir).exists());
    // firesrv is in none of the system's groups.
    let service = crate::harness::client_credentials_token(
        &crate::harness::env("IRONCREST_DEV_SERVICE_CLIENT_ID"),
        &crate::harness::env("IRONCREST_DEV_SERVICE_CLIENT_SECRET"),
    )
    .await;
    let refused = server
        .get(&format!("/status/{SYSTEM}/userinfo"), Some(&service))
        .await;
    assert_eq!(refused.status(), 403);
}
