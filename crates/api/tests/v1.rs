//! FirecREST v1 through the whole app (`oneshot`, no socket, no cluster: the test cluster's
//! SSH pool refuses every login): every v1 route of the document is served and on its
//! system takes the call context; v1's error headers and statuses; the document itself.

mod support;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use ironcrest_api::v1::OPERATIONS;
use serde_json::{Value, json};
use support::{App, app, app_with, token};
use tower::ServiceExt;

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

async fn send(app: &App, method: &str, uri: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let mut request = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = app.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    Answer {
        status,
        headers,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

fn bearer() -> String {
    format!("Bearer {}", token(json!({})))
}

/// `path` with its placeholders filled in.
fn filled(path: &str) -> String {
    path.replace("{jobid}", "1")
        .replace("{taskid}", "no-such-task")
        .replace(['{', '}'], "")
}

#[tokio::test]
async fn every_documented_operation_is_routed_and_checks_the_token_then_the_system() {
    let app = app().await;
    let auth = bearer();
    for op in OPERATIONS {
        let uri = format!("/v1{}", filled(op.path));
        let method = op.method.to_uppercase();
        let without = send(&app, &method, &uri, &[], "").await;
        assert_eq!(without.status, StatusCode::UNAUTHORIZED, "{method} {uri}");
        assert_eq!(without.headers["www-authenticate"], "Bearer");
        let answered = send(
            &app,
            &method,
            &uri,
            &[
                ("authorization", &auth),
                ("x-machine-name", "no-such-system"),
            ],
            "",
        )
        .await;
        assert_ne!(
            answered.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {uri}"
        );
        assert_ne!(answered.body["description"], "Not Found", "{method} {uri}");
        let on_a_system = op.path.starts_with("/utilities")
            || op.path.starts_with("/compute")
            || op.path.starts_with("/storage/xfer-internal")
            || op.path == "/storage/xfer-external/upload"
            || op.path == "/storage/xfer-external/download"
            || op.path.starts_with("/reservations");
        if on_a_system {
            assert_eq!(answered.status, StatusCode::BAD_REQUEST, "{method} {uri}");
            assert_eq!(
                answered.headers["x-machine-does-not-exist"], "Machine does not exist",
                "{method} {uri}"
            );
            assert_eq!(answered.body["error"], "System not found", "{method} {uri}");
        }
    }
}

#[tokio::test]
async fn routes_outside_the_document_are_v1_404s_and_other_methods_405() {
    let app = app().await;
    let auth = bearer();
    let missing = send(
        &app,
        "GET",
        "/v1/utilities/nope",
        &[("authorization", &auth)],
        "",
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(
        missing.body,
        json!({"description": "Not Found", "error": "Not Found"})
    );
    let wrong = send(
        &app,
        "PATCH",
        "/v1/utilities/ls",
        &[("authorization", &auth)],
        "",
    )
    .await;
    assert_eq!(wrong.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn a_request_without_x_machine_name_is_refused_naming_it() {
    let app = app().await;
    let answer = send(
        &app,
        "GET",
        "/v1/utilities/ls?targetPath=/home",
        &[("authorization", &bearer())],
        "",
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.body["description"], "Error on ls operation");
    assert!(
        answer.body["error"]
            .as_str()
            .unwrap()
            .contains("X-Machine-Name"),
        "{}",
        answer.body
    );
}

#[tokio::test]
async fn invalid_requests_are_400s_naming_the_field_and_cluster_failures_keep_their_status() {
    let app = app().await;
    let auth = bearer();
    let machine = [
        ("authorization", auth.as_str()),
        ("x-machine-name", "test-cluster"),
    ];
    let missing = send(&app, "GET", "/v1/utilities/ls", &machine, "").await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert_eq!(missing.body["error"], "'targetPath' is required.");
    let outside = send(
        &app,
        "GET",
        "/v1/utilities/ls?targetPath=/etc",
        &machine,
        "",
    )
    .await;
    assert_eq!(outside.status, StatusCode::BAD_REQUEST);
    let error_headers: Vec<_> = outside
        .headers
        .keys()
        .filter(|name| {
            !["x-request-id", "x-correlation-id", "x-ironcrest-version"].contains(&name.as_str())
        })
        .filter(|name| name.as_str().starts_with("x-"))
        .collect();
    assert!(
        error_headers.is_empty(),
        "a validation error has no error header: {error_headers:?}"
    );
    let boolean = send(
        &app,
        "GET",
        "/v1/utilities/ls?targetPath=/home&showhidden=maybe",
        &machine,
        "",
    )
    .await;
    assert_eq!(boolean.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        boolean.body["error"],
        "'showhidden' is not a boolean: \"maybe\"."
    );
    let mode = send(
        &app,
        "PUT",
        "/v1/utilities/chmod",
        &machine,
        "targetPath=/home/a&mode=a%3Dxyz",
    )
    .await;
    assert_eq!(mode.status, StatusCode::BAD_REQUEST);
    assert_eq!(mode.headers["x-invalid-mode"], "mode is an invalid mode");
    let zip = send(
        &app,
        "POST",
        "/v1/utilities/extract",
        &machine,
        "sourcePath=/home/a.zip&targetPath=/home",
    )
    .await;
    assert_eq!(zip.status, StatusCode::BAD_REQUEST);
    assert!(zip.body["error"].as_str().unwrap().contains(".zip"));
    // The test cluster refuses every SSH login: the failure is the cluster's (5xx), as v2.
    let unreachable = send(
        &app,
        "GET",
        "/v1/utilities/ls?targetPath=/home",
        &machine,
        "",
    )
    .await;
    assert!(
        unreachable.status.is_server_error(),
        "{}",
        unreachable.status
    );
    assert_eq!(unreachable.body["description"], "Error on ls operation");
}

#[tokio::test]
async fn a_gateway_denial_carries_x_permission_denied() {
    let gateway = ironcrest_gateway::Gateway::new(
        &serde_yaml_ng::from_str("{scopes: {filesystem-read: [firecrest:read]}}").unwrap(),
    )
    .unwrap();
    let app = app_with(|state| state.gateway = Arc::new(gateway)).await;
    let answer = send(
        &app,
        "GET",
        "/v1/utilities/ls?targetPath=/home",
        &[
            ("authorization", &bearer()),
            ("x-machine-name", "test-cluster"),
        ],
        "",
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(
        answer.headers["x-permission-denied"],
        "User does not have permissions to access machine or path"
    );
}

#[tokio::test]
async fn tasks_of_others_and_non_tasks_do_not_exist() {
    let app = app().await;
    let auth = bearer();
    let machine = [
        ("authorization", auth.as_str()),
        ("x-machine-name", "test-cluster"),
    ];
    // A job query makes a task at once; alice reads it (the query fails: no SSH), bob not.
    let created = send(&app, "GET", "/v1/compute/jobs?jobs=7", &machine, "").await;
    assert_eq!(created.status, StatusCode::OK);
    assert_eq!(created.body["success"], "Task created");
    let id = created.body["task_id"].as_str().unwrap().to_string();
    assert_eq!(created.body["task_url"], format!("/v1/tasks/{id}"));
    let read = send(
        &app,
        "GET",
        &format!("/v1/tasks/{id}"),
        &[("authorization", &auth)],
        "",
    )
    .await;
    assert_eq!(read.status, StatusCode::OK);
    let task = &read.body["task"];
    assert_eq!(task["task_id"], id.as_str());
    assert_eq!(task["user"], "alice");
    assert_eq!(task["service"], "compute");
    assert_eq!(task["system"], "test-cluster");
    assert_eq!(task["status"], "400", "{task}");
    let bob = format!("Bearer {}", token(json!({"preferred_username": "bob"})));
    let other = send(
        &app,
        "GET",
        &format!("/v1/tasks/{id}"),
        &[("authorization", &bob)],
        "",
    )
    .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    assert_eq!(other.body["error"], format!("Task {id} does not exist"));
    let listed = send(
        &app,
        "GET",
        &format!("/v1/tasks?tasks={id},Not-A-Task"),
        &[("authorization", &auth)],
        "",
    )
    .await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(
        listed.body["tasks"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        vec![&id]
    );
    let none = send(
        &app,
        "GET",
        &format!("/v1/tasks?tasks={id}"),
        &[("authorization", &bob)],
        "",
    )
    .await;
    assert_eq!(none.body, json!({"tasks": {}}));
    // v1's paths keep their case (task ids are case-sensitive).
    let cased = send(
        &app,
        "GET",
        "/v1/tasks/AbC",
        &[("authorization", &auth)],
        "",
    )
    .await;
    assert_eq!(cased.body["error"], "Task AbC does not exist");
}

#[tokio::test]
async fn the_v1_document_is_served_with_its_pages() {
    let app = app().await;
    let document = send(&app, "GET", "/v1/openapi.json", &[], "").await;
    assert_eq!(document.status, StatusCode::OK);
    let paths = document.body["paths"].as_object().unwrap();
    for op in OPERATIONS {
        let path = format!("/v1{}", op.path);
        assert!(paths[&path][op.method].is_object(), "{} {path}", op.method);
    }
    let ls = &paths["/v1/utilities/ls"]["get"];
    let headers = ls["responses"]["4XX"]["headers"].as_object().unwrap();
    for name in [
        "X-Machine-Does-Not-Exist",
        "X-Invalid-Path",
        "X-Permission-Denied",
        "X-Timeout",
    ] {
        assert!(headers.contains_key(name), "{name}");
    }
    for page in ["/v1/docs/", "/v1/redoc"] {
        let answer = app
            .router
            .clone()
            .oneshot(Request::get(page).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::OK, "{page}");
    }
    // v2's document is v2's alone.
    let v2 = send(&app, "GET", "/openapi.json", &[], "").await;
    assert!(
        v2.body["paths"]
            .as_object()
            .unwrap()
            .keys()
            .all(|p| !p.starts_with("/v1"))
    );
}

#[tokio::test]
async fn v1_can_be_turned_off_or_moved() {
    let off = app_with(|state| state.v1.enabled = false).await;
    let answer = send(
        &off,
        "GET",
        "/v1/status/systems",
        &[("authorization", &bearer())],
        "",
    )
    .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(answer.body["message"], "Not Found", "v2's fallback");
    let moved = app_with(|state| state.v1.prefix = "/api/v1".into()).await;
    let answer = send(
        &moved,
        "GET",
        "/api/v1/status/systems",
        &[("authorization", &bearer())],
        "",
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["out"][0]["system"], "test-cluster");
}
