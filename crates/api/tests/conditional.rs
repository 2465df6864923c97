//! Conditional GETs on the router, no cluster: `/status/systems` answers from the health
//! results Ironcrest holds, so it shows the tag, `If-None-Match` and the 304 whole.

mod support;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use serde_json::json;
use support::{App, app, token};
use tower::ServiceExt;

/// Status, headers and body of `method uri` with alice's token and these `If-None-Match` lines.
async fn send(
    app: &App,
    method: Method,
    uri: &str,
    if_none_match: &[&str],
) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {}", token(json!({}))));
    for value in if_none_match {
        request = request.header(header::IF_NONE_MATCH, *value);
    }
    let response = app
        .router
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    (parts.status, parts.headers, body.to_vec())
}

async fn tag_of_systems(app: &App) -> String {
    let (status, headers, body) = send(app, Method::GET, "/status/systems", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!body.is_empty());
    headers[header::ETAG].to_str().unwrap().to_string()
}

#[tokio::test]
async fn an_answer_has_a_strong_tag_that_is_stable_and_is_private() {
    let app = app().await;
    let (_, headers, _) = send(&app, Method::GET, "/status/systems", &[]).await;
    let tag = headers[header::ETAG].to_str().unwrap();
    assert!(tag.starts_with('"') && tag.ends_with('"'), "strong: {tag}");
    assert_eq!(headers[header::CACHE_CONTROL], "private, no-cache");
    assert_eq!(
        tag_of_systems(&app).await,
        tag,
        "the same answer, the same tag"
    );
}

#[tokio::test]
async fn a_matching_tag_is_304_with_the_tag_and_no_body() {
    let app = app().await;
    let tag = tag_of_systems(&app).await;
    let (status, headers, body) = send(&app, Method::GET, "/status/systems", &[&tag]).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());
    assert_eq!(headers[header::ETAG], tag.as_str());
    assert_eq!(headers[header::CACHE_CONTROL], "private, no-cache");
    assert!(!headers.contains_key(header::CONTENT_TYPE));
    let (status, _, body) = send(&app, Method::HEAD, "/status/systems", &[&tag]).await;
    assert_eq!((status, body.len()), (StatusCode::NOT_MODIFIED, 0), "HEAD");
}

/// RFC 9110 §13.1.2: a list (also over several lines), `*`, and the weak comparison.
#[tokio::test]
async fn if_none_match_takes_lists_any_and_weak_tags() {
    let app = app().await;
    let tag = tag_of_systems(&app).await;
    let weak = format!("W/{tag}");
    let listed = format!("\"a,b\", W/\"other\", {tag}");
    for condition in [
        vec![listed.as_str()],
        vec!["\"other\"", tag.as_str()],
        vec!["*"],
        vec![weak.as_str()],
    ] {
        let (status, _, body) = send(&app, Method::GET, "/status/systems", &condition).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED, "{condition:?}");
        assert!(body.is_empty());
    }
}

#[tokio::test]
async fn another_tag_or_a_malformed_condition_gets_the_whole_answer() {
    let app = app().await;
    let tag = tag_of_systems(&app).await;
    let unquoted = tag.trim_matches('"').to_string();
    for condition in ["\"other\", W/\"else\"", unquoted.as_str(), "W/", ""] {
        let (status, headers, body) =
            send(&app, Method::GET, "/status/systems", &[condition]).await;
        assert_eq!(status, StatusCode::OK, "{condition:?}");
        assert_eq!(headers[header::ETAG], tag.as_str());
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["systems"][0]["name"], "test-cluster");
    }
}

#[tokio::test]
async fn errors_and_other_routes_are_untouched() {
    let app = app().await;
    // An error answer is neither tagged nor turned into a 304.
    let response = app
        .router
        .clone()
        .oneshot(
            Request::get("/status/systems")
                .header(header::IF_NONE_MATCH, "*")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(!response.headers().contains_key(header::ETAG));
    // Liveness is not a conditional route.
    let (status, headers, body) = send(&app, Method::GET, "/status/liveness/", &["*"]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!headers.contains_key(header::ETAG));
    assert!(!body.is_empty());
}

/// The routes registered with `conditional::get` (docs/conditional-gets.md).
const CONDITIONAL: &[&str] = &[
    "/compute/{system_name}/jobs",
    "/compute/{system_name}/jobs/{job_id}",
    "/compute/{system_name}/jobs/{job_id}/metadata",
    "/filesystem/{system_name}/ops/ls",
    "/filesystem/{system_name}/ops/stat",
    "/status/systems",
    "/status/{system_name}/nodes",
    "/status/{system_name}/partitions",
    "/status/{system_name}/reservations",
    "/status/{system_name}/userinfo",
    "/tasks/{system_name}",
    "/tasks/{system_name}/{task_id}",
];

#[tokio::test]
async fn the_document_shows_the_condition_on_exactly_the_conditional_routes() {
    let app = app().await;
    let (status, _, body) = send(&app, Method::GET, "/openapi.json", &[]).await;
    assert_eq!(status, StatusCode::OK);
    let document: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let mut documented = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let not_modified = &operation["responses"]["304"];
            if not_modified.is_null() {
                continue;
            }
            assert_eq!(method, "get", "{path}");
            assert!(not_modified["headers"]["ETag"].is_object(), "{path}");
            assert!(
                operation["responses"]["200"]["headers"]["ETag"].is_object(),
                "{path}"
            );
            let takes_the_header = operation["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "If-None-Match" && p["in"] == "header");
            assert!(takes_the_header, "{path}");
            documented.push(path.clone());
        }
    }
    documented.sort();
    let mut expected: Vec<_> = CONDITIONAL.iter().map(|path| path.to_string()).collect();
    expected.sort();
    assert_eq!(documented, expected);
}
