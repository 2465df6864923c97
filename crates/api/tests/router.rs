//! Router tests: the whole axum app called with `oneshot`, no socket and no cluster. They
//! cover what happens before any SSH: token checks, routing, validation and headers.

mod support;

use axum::body::Body;
use axum::http::{HeaderValue, Request, StatusCode};
use serde_json::{Value, json};
use support::{App, app, now, token};
use tower::ServiceExt;

async fn call(
    app: &App,
    request: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, Option<Value>) {
    let response = app.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, headers, serde_json::from_slice(&bytes).ok())
}

fn get(path: &str, token: Option<&str>) -> Request<Body> {
    let mut builder = Request::get(path);
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    builder.body(Body::empty()).unwrap()
}

#[tokio::test]
async fn a_valid_token_lists_the_systems_with_firecrest_headers() {
    let app = app().await;
    let (status, headers, body) = call(&app, get("/status/systems", Some(&token(json!({}))))).await;
    assert_eq!(status, StatusCode::OK);
    let body = body.unwrap();
    assert_eq!(body["systems"][0]["name"], "test-cluster");
    assert_eq!(body["systems"][0]["servicesHealth"], Value::Null);
    assert_eq!(
        body["systems"][0]["dataOperation"]["max_ops_file_size"],
        5242880
    );
    assert_eq!(headers["f7t-appversion"], "2.6.0");
    assert_eq!(headers["x-ironcrest-version"], env!("CARGO_PKG_VERSION"));
    assert!(headers.contains_key("f7t-timestamp"));
    assert_eq!(headers["x-request-id"].len(), 32);
}

#[tokio::test]
async fn missing_bad_and_expired_tokens_are_401_with_the_firecrest_body() {
    let app = app().await;
    for (token, message) in [
        (None, "Not authenticated"),
        (Some("garbage".to_string()), "Access token is invalid."),
        (
            Some(token(json!({"exp": now() - 120}))),
            "Access token expired",
        ),
        (
            Some(token(json!({"exp": now() + 10}))),
            "Access token expires too soon (less than 30s remaining).",
        ),
        (
            Some(token(json!({"aud": "urn:other"}))),
            "Access token is invalid.",
        ),
        (
            Some(token(json!({"preferred_username": "bad user"}))),
            "Access token is invalid.",
        ),
    ] {
        let (status, headers, body) = call(&app, get("/status/systems", token.as_deref())).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{message}");
        assert_eq!(headers["www-authenticate"], "Bearer");
        let body = body.unwrap();
        assert_eq!(body["message"], message);
        assert_eq!(body["errorType"], "error");
        assert_eq!(body["user"], Value::Null);
    }
}

#[tokio::test]
async fn the_path_is_case_insensitive_and_unknown_systems_are_404() {
    let app = app().await;
    let user = token(json!({}));
    let (status, _, _) = call(&app, get("/STATUS/Systems", Some(&user))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = call(&app, get("/status/other/nodes", Some(&user))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let body = body.unwrap();
    assert_eq!(body["message"], "System not found");
    assert_eq!(body["user"], "alice");
}

#[tokio::test]
async fn routes_methods_and_query_values_are_checked() {
    let app = app().await;
    let user = token(json!({}));
    let (status, _, body) = call(&app, get("/nope", Some(&user))).await;
    assert_eq!(
        (status, body.unwrap()["message"].clone()),
        (StatusCode::NOT_FOUND, json!("Not Found"))
    );
    let post = Request::post("/status/systems")
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = call(&app, post).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body.unwrap()["message"], "Method Not Allowed");
    let (status, _, body) = call(
        &app,
        get(
            "/status/test-cluster/partitions?show_hidden=perhaps",
            Some(&user),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let body = body.unwrap();
    assert_eq!(body["errorType"], "validation");
    assert!(body["message"].as_str().unwrap().contains("perhaps"));
}

#[tokio::test]
async fn request_ids_are_echoed_when_printable_and_refused_as_json_when_not() {
    let app = app().await;
    let liveness = |name: &str, value: &[u8]| {
        Request::get("/status/liveness/")
            .header(name, HeaderValue::from_bytes(value).unwrap())
            .body(Body::empty())
            .unwrap()
    };
    for id in [
        "0f6a3a7e-5a8c-4d1e-9c59-7d1f4f4c2f10",
        "not-a-uuid",
        "wf:run/42#step=3",
        &"x".repeat(200),
    ] {
        for name in ["x-request-id", "x-correlation-id"] {
            let (status, headers, body) = call(&app, liveness(name, id.as_bytes())).await;
            assert_eq!(status, StatusCode::OK, "{name}: {id}");
            assert_eq!(headers[name], id);
            let body = body.unwrap();
            assert_eq!(body["lastUpdate"], 0);
            assert_eq!(body["apiVersion"], "2.6.0");
        }
    }
    for bad in [
        "with space".as_bytes(),
        "tab\there".as_bytes(),
        b"\xc3\xa9".as_slice(),
        "x".repeat(201).as_bytes(),
    ] {
        let (status, headers, body) = call(&app, liveness("x-correlation-id", bad)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad:?}");
        assert_eq!(headers["f7t-appversion"], "2.6.0");
        let body = body.expect("a JSON error body");
        assert_eq!(body["errorType"], "validation");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("x-correlation-id")
        );
    }
}

#[tokio::test]
async fn errors_made_outside_the_handlers_have_the_json_shape() {
    let app = app().await;
    let user = token(json!({}));
    // A path segment that does not decode to UTF-8 is refused by axum's Path extractor.
    let (status, _, body) = call(&app, get("/status/%FF/nodes", Some(&user))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let body = body.expect("a JSON error body");
    assert_eq!(body["errorType"], "error");
    assert_eq!(
        body["message"],
        "Invalid URL: Invalid UTF-8 in `system_name`"
    );
    let (status, _, body) = call(&app, get("/compute/test-cluster/jobs/%FF", Some(&user))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body.unwrap()["message"],
        "Invalid URL: Invalid UTF-8 in `job_id`"
    );
}

/// The call context's checks, in v2's order: the token (401), then the system (404), then
/// the request's query and body (400).
#[tokio::test]
async fn the_token_is_checked_before_the_system_and_the_system_before_the_input() {
    let app = app().await;
    let user = token(json!({}));
    for path in [
        "/status/other/nodes",
        "/status/%FF/nodes",
        "/compute/other/jobs/1",
        "/filesystem/other/ops/ls?path=/home",
    ] {
        let (status, _, body) = call(&app, get(path, None)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(body.unwrap()["message"], "Not authenticated", "{path}");
    }
    let (status, _, body) = call(
        &app,
        get("/status/other/partitions?show_hidden=perhaps", Some(&user)),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body.unwrap()["message"], "System not found");
    let post = Request::post("/compute/other/jobs")
        .header("authorization", format!("Bearer {user}"))
        .header("content-type", "application/json")
        .body(Body::from("{}"))
        .unwrap();
    let (status, _, body) = call(&app, post).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body.unwrap()["message"], "System not found");
}

#[tokio::test]
async fn compute_requests_are_validated_before_any_scheduler_call() {
    let app = app().await;
    let user = token(json!({}));
    let post = |body: Value| {
        Request::post("/compute/test-cluster/jobs")
            .header("authorization", format!("Bearer {user}"))
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    for body in [
        json!({}),
        json!({"job": {"script": "x"}}),
        json!({"job": {"workingDirectory": "/home", "env": 3}}),
    ] {
        let (status, _, response) = call(&app, post(body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(response.unwrap()["errorType"], "validation");
    }
    for path in [
        "/compute/test-cluster/jobs/1.batch",
        "/compute/test-cluster/jobs/a-b/metadata",
        "/compute/test-cluster/jobs?time_window=2h",
        "/compute/test-cluster/jobs?allusers=perhaps",
    ] {
        let (status, _, response) = call(&app, get(path, Some(&user))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(response.unwrap()["errorType"], "validation");
    }
    let (status, _, response) = call(&app, get("/compute/other/jobs/1", Some(&user))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(response.unwrap()["message"], "System not found");
}
