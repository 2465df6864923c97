//! Metrics through the real scraper: traffic to the dev Ironcrest shows up in the dev
//! environment's Prometheus, which scrapes its `/metrics` every 2 s (so the text format is
//! proven by Prometheus itself); and `telemetry.metrics.listen` moves the page to its own
//! listener.

use std::time::Duration;

use serde_json::Value;

use crate::harness::{TestServer, env, user_token};

/// The sum of `query` (an instant vector) as Prometheus answers it now; 0 when empty.
async fn prometheus_sum(http: &reqwest::Client, query: &str) -> f64 {
    let answer: Value = http
        .get(format!(
            "{}/api/v1/query",
            env("IRONCREST_DEV_PROMETHEUS_URL")
        ))
        .query(&[("query", format!("sum({query})"))])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["status"], "success", "{answer}");
    answer["data"]["result"][0]["value"][1]
        .as_str()
        .map_or(0.0, |value| value.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_requests_of_the_dev_server() {
    let http = reqwest::Client::new();
    let url = env("IRONCREST_DEV_URL");
    let token = user_token().await;
    let series =
        r#"ironcrest_http_requests_total{route="/status/systems",method="GET",status="200"}"#;
    let before = prometheus_sum(&http, series).await;
    for _ in 0..5 {
        let response = http
            .get(format!("{url}/status/systems"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    // Scraped every 2 s: within a minute the five requests are in.
    for _ in 0..60 {
        if prometheus_sum(&http, series).await >= before + 5.0 {
            let build = prometheus_sum(&http, "ironcrest_build_info").await;
            assert_eq!(build, 1.0, "one dev server, one build_info series");
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    panic!("Prometheus never saw the 5 requests of {series} (had {before})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_separate_metrics_listener_takes_the_page_off_the_api() {
    // A free port, found by binding it and letting go.
    let address = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let server =
        TestServer::start_with(|config| config.telemetry.metrics.listen = Some(address)).await;
    let token = user_token().await;
    assert_eq!(
        server.get("/status/systems", Some(&token)).await.status(),
        200
    );
    assert_eq!(server.get("/metrics", None).await.status(), 404);
    let page = server
        .http
        .get(format!("http://{address}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let text = page.text().await.unwrap();
    assert!(
        text.contains(
            r#"ironcrest_http_requests_total{route="/status/systems",method="GET",status="200"}"#
        ),
        "{text}"
    );
    assert!(text.contains("ironcrest_ssh_connections{"), "{text}");
}
