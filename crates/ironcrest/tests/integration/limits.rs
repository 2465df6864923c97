//! The gateway's limits on the real server with real IdP tokens: token buckets answer 429
//! with `Retry-After` and the rate-limit fields, a user's requests beyond their concurrency
//! wait and then are refused, and pyfirecrest waits out 429s until its calls complete.

use std::time::{Duration, Instant};

use ironcrest_config::{ConcurrencyLimit, Config, RateKey, RateLimit};
use tokio::io::AsyncWriteExt;

use crate::harness::{SYSTEM, TestServer, client_credentials_token, env, user_token};

fn rate(per: RateKey, requests: u32, period: f64) -> RateLimit {
    RateLimit {
        per,
        families: Vec::new(),
        requests,
        period,
        burst: None,
    }
}

fn listing() -> String {
    format!(
        "/filesystem/{SYSTEM}/ops/ls?path=/home/{}",
        env("IRONCREST_DEV_USER")
    )
}

async fn service_token() -> String {
    client_credentials_token(
        &env("IRONCREST_DEV_SERVICE_CLIENT_ID"),
        &env("IRONCREST_DEV_SERVICE_CLIENT_SECRET"),
    )
    .await
}

#[tokio::test]
async fn a_burst_beyond_a_users_rate_is_429_with_retry_after_and_the_rate_limit_fields() {
    let server = TestServer::start_with(|config: &mut Config| {
        config.gateway.limits.rates = vec![rate(RateKey::User, 3, 60.0)];
    })
    .await;
    let token = user_token().await;
    let path = listing();
    let responses =
        futures::future::join_all((0..5).map(|_| server.get(&path, Some(&token)))).await;
    let mut refused = Vec::new();
    let mut served = 0;
    for response in responses {
        match response.status().as_u16() {
            200 => served += 1,
            429 => refused.push(response),
            other => panic!("{other}: {}", response.text().await.unwrap()),
        }
    }
    assert_eq!((served, refused.len()), (3, 2));
    let response = refused.pop().unwrap();
    let headers = response.headers().clone();
    assert_eq!(headers["retry-after"], "20", "one token every 60/3 s");
    assert_eq!(headers["ratelimit-policy"], "3;w=60");
    assert_eq!(headers["ratelimit"], "limit=3, remaining=0, reset=20");
    let body: serde_json::Value = response.json().await.unwrap();
    let message = body["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "Too many requests: the limit of 3 requests on the systems every 60 s per user"
        ),
        "{message}"
    );

    // Another user has a bucket of their own; routes on no system are not counted.
    let other = service_token().await;
    let path = listing().replace(
        &env("IRONCREST_DEV_USER"),
        &env("IRONCREST_DEV_SERVICE_USER"),
    );
    assert_eq!(server.get(&path, Some(&other)).await.status(), 200);
    assert_eq!(
        server.get("/status/systems", Some(&token)).await.status(),
        200
    );
}

/// Starts an upload whose body never comes: its handler holds the caller's concurrency
/// slot until the connection is dropped.
async fn stalled_upload(server: &TestServer, token: &str) -> tokio::net::TcpStream {
    let address = server.url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST /filesystem/{SYSTEM}/ops/upload?path=/home/{user} HTTP/1.1\r\nHost: {address}\r\n\
         Authorization: Bearer {token}\r\nContent-Type: multipart/form-data; boundary=b\r\n\
         Content-Length: 100000\r\n\r\n--b\r\nContent-Disposition: form-data; name=\"file\"; \
         filename=\"stalled.bin\"\r\n\r\nsome",
        user = env("IRONCREST_DEV_USER"),
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

#[tokio::test]
async fn a_users_requests_beyond_their_concurrency_wait_then_get_429_and_others_pass() {
    let server = TestServer::start_with(|config: &mut Config| {
        config.gateway.limits.concurrency = Some(ConcurrencyLimit {
            per_user: 1,
            queue_timeout: 1.0,
        });
    })
    .await;
    let token = user_token().await;
    let upload = stalled_upload(&server, &token).await;
    // Let the upload reach its handler (it then holds the one slot).
    let (refusal, waited) = loop {
        let started = Instant::now();
        let response = server.get(&listing(), Some(&token)).await;
        let waited = started.elapsed();
        if response.status() == 429 {
            break (response, waited);
        }
        assert_eq!(response.status(), 200);
        assert!(
            waited < Duration::from_secs(1),
            "served without the upload holding the slot"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        waited >= Duration::from_secs(1),
        "queued for queue_timeout: {waited:?}"
    );
    assert_eq!(refusal.headers()["retry-after"], "1");
    assert!(refusal.headers().get("ratelimit").is_none());
    let body: serde_json::Value = refusal.json().await.unwrap();
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("already has 1 request(s) in flight"),
        "{message}"
    );

    // Another user is not delayed by this user's queue.
    let other = service_token().await;
    let path = listing().replace(
        &env("IRONCREST_DEV_USER"),
        &env("IRONCREST_DEV_SERVICE_USER"),
    );
    let started = Instant::now();
    assert_eq!(server.get(&path, Some(&other)).await.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(1));

    // The slot comes back when the stalled request ends; a queued request then gets it.
    let queued = tokio::spawn({
        let (http, url, token) = (server.http.clone(), server.url.clone(), token.clone());
        async move {
            http.get(format!("{url}{}", listing()))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(upload);
    assert_eq!(queued.await.unwrap(), 200);
}

/// pyfirecrest sleeps `Retry-After` on a 429 and retries: with the real client every call
/// completes under a tight rate limit. Needs the pyfirecrest venv that `scripts/test` makes
/// before the Rust tests.
#[tokio::test]
async fn pyfirecrest_waits_out_429s() {
    let python = format!(
        "{}/pytest-venv-3.10.0/bin/python",
        env("IRONCREST_DEV_PREFIX")
    );
    assert!(
        std::path::Path::new(&python).exists(),
        "no pyfirecrest venv at {python}: run scripts/test, which makes it"
    );
    let server = TestServer::start_with(|config: &mut Config| {
        config.gateway.limits.rates = vec![rate(RateKey::User, 3, 1.0)];
    })
    .await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/python/clients/rate_limited.py"
    );
    let run = tokio::process::Command::new(&python)
        .arg(script)
        .arg(SYSTEM)
        .arg(format!("/home/{}", env("IRONCREST_DEV_USER")))
        .args(["5", "2"])
        .env("IRONCREST_DEV_URL", &server.url)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("pyfirecrest finished within 120 s")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(result["completed"], 10, "{result}");
    assert!(result["retries"].as_u64().unwrap() >= 1, "{result}");
    // 10 calls at 3 per second after a burst of 3 take over 2 s.
    assert!(result["seconds"].as_f64().unwrap() >= 2.0, "{result}");
}
