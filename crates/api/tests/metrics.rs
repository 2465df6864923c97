//! `/metrics` on the main router: open without a token, bounded labels (route templates,
//! never raw paths or user names unless per-user series are on). The test binary installs
//! a Prometheus recorder, as the server binary does; all tests here share it.

mod support;

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::json;
use support::{App, app_with, token};
use tower::ServiceExt;

fn recorder() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| PrometheusBuilder::new().install_recorder().unwrap())
}

async fn metrics_app(per_user_series: bool) -> App {
    let handle = recorder();
    app_with(|state| {
        state.metrics = Some(Arc::new(|| handle.render()));
        state.per_user_series = per_user_series;
    })
    .await
}

async fn send(app: &App, method: &str, uri: &str, token: Option<&str>) -> (StatusCode, String) {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = app
        .router
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

/// The value of the first series line starting with `series` (name and labels as rendered).
fn value(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

#[tokio::test]
async fn requests_are_counted_by_route_template_method_and_status() {
    let app = metrics_app(false).await;
    let alice = token(json!({}));
    assert_eq!(
        send(&app, "GET", "/status/systems", Some(&alice)).await.0,
        StatusCode::OK
    );
    // A system that does not exist: routed, so counted under its template.
    let (status, _) = send(
        &app,
        "GET",
        "/filesystem/no-such-system/ops/ls?path=/home/secret-name",
        Some(&alice),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        send(&app, "GET", "/secret-path/of-a-scanner", None).await.0,
        StatusCode::NOT_FOUND
    );
    send(&app, "BREW", "/status/systems", None).await;

    let (status, page) = send(&app, "GET", "/metrics", None).await;
    assert_eq!(status, StatusCode::OK, "no token needed");
    for series in [
        r#"ironcrest_http_requests_total{route="/status/systems",method="GET",status="200"}"#,
        r#"ironcrest_http_requests_total{route="/filesystem/{system_name}/ops/ls",method="GET",status="404"}"#,
        r#"ironcrest_http_requests_total{route="unmatched",method="GET",status="404"}"#,
        r#"ironcrest_http_requests_total{route="/status/systems",method="other",status="405"}"#,
    ] {
        assert!(
            value(&page, series).unwrap_or_default() >= 1.0,
            "{series}\n{page}"
        );
    }
    assert!(
        page.contains("ironcrest_http_request_duration_seconds"),
        "{page}"
    );
    assert!(page.contains("ironcrest_http_requests_in_flight"), "{page}");
    for raw in [
        "no-such-system",
        "secret-name",
        "secret-path",
        "BREW",
        "alice",
    ] {
        assert!(!page.contains(raw), "{raw} leaked into a label:\n{page}");
    }
}

#[tokio::test]
async fn users_are_labelled_only_when_per_user_series_are_on() {
    let app = metrics_app(true).await;
    let carol = token(json!({"preferred_username": "carol"}));
    send(&app, "GET", "/status/test-cluster/nodes", Some(&carol)).await;
    let (_, page) = send(&app, "GET", "/metrics", None).await;
    let series = r#"ironcrest_user_requests_total{user="carol",family="status-read"}"#;
    assert!(value(&page, series).unwrap_or_default() >= 1.0, "{page}");
}

#[tokio::test]
async fn without_a_metrics_page_the_route_is_not_served() {
    let app = support::app().await;
    let (status, _) = send(&app, "GET", "/metrics", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_not_modified_answer_is_counted_as_a_304() {
    let app = metrics_app(false).await;
    let request = |condition: Option<&str>| {
        let mut request = Request::get("/status/systems")
            .header("authorization", format!("Bearer {}", token(json!({}))));
        if let Some(tag) = condition {
            request = request.header("if-none-match", tag);
        }
        app.router
            .clone()
            .oneshot(request.body(Body::empty()).unwrap())
    };
    let answer = request(None).await.unwrap();
    let tag = answer.headers()["etag"].to_str().unwrap().to_string();
    assert_eq!(
        request(Some(&tag)).await.unwrap().status(),
        StatusCode::NOT_MODIFIED
    );
    let (_, page) = send(&app, "GET", "/metrics", None).await;
    let series =
        r#"ironcrest_http_requests_total{route="/status/systems",method="GET",status="304"}"#;
    assert!(value(&page, series).unwrap_or_default() >= 1.0, "{page}");
}
