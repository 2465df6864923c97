//! The OpenAPI document against the router: every documented operation is routed, every
//! route is documented, and the document is internally sound (path parameters are the
//! path's placeholders, operation ids are unique, every `$ref` resolves). The app is called
//! with `oneshot`, no socket and no cluster: requests name a system that does not exist, so
//! no handler reaches SSH.

mod support;

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use support::{App, app, token};
use tower::ServiceExt;

/// The routes each module's `router()` registers (axum cannot list a router's routes). A
/// route added to a module and not here fails `the_table_is_what_the_router_serves` only if
/// it shares a path with a listed route; it fails `every_route_is_documented` once listed.
const ROUTES: &[(&str, &str)] = &[
    // routes::status
    ("GET", "/status/systems"),
    ("GET", "/status/liveness/"),
    ("GET", "/status/liveness"),
    ("GET", "/status/{system_name}/nodes"),
    ("GET", "/status/{system_name}/partitions"),
    ("GET", "/status/{system_name}/reservations"),
    ("GET", "/status/{system_name}/userinfo"),
    // routes::compute
    ("GET", "/compute/{system_name}/jobs"),
    ("POST", "/compute/{system_name}/jobs"),
    ("GET", "/compute/{system_name}/jobs/events"),
    ("GET", "/compute/{system_name}/jobs/{job_id}"),
    ("DELETE", "/compute/{system_name}/jobs/{job_id}"),
    ("GET", "/compute/{system_name}/jobs/{job_id}/metadata"),
    ("PUT", "/compute/{system_name}/jobs/{job_id}/attach"),
    // routes::filesystem
    ("GET", "/filesystem/{system_name}/ops/ls"),
    ("GET", "/filesystem/{system_name}/ops/head"),
    ("GET", "/filesystem/{system_name}/ops/tail"),
    ("GET", "/filesystem/{system_name}/ops/view"),
    ("GET", "/filesystem/{system_name}/ops/checksum"),
    ("GET", "/filesystem/{system_name}/ops/file"),
    ("GET", "/filesystem/{system_name}/ops/stat"),
    ("DELETE", "/filesystem/{system_name}/ops/rm"),
    ("POST", "/filesystem/{system_name}/ops/mkdir"),
    ("POST", "/filesystem/{system_name}/ops/symlink"),
    ("PUT", "/filesystem/{system_name}/ops/chmod"),
    ("PUT", "/filesystem/{system_name}/ops/chown"),
    ("GET", "/filesystem/{system_name}/ops/download"),
    ("POST", "/filesystem/{system_name}/ops/upload"),
    ("POST", "/filesystem/{system_name}/ops/compress"),
    ("POST", "/filesystem/{system_name}/ops/extract"),
    // routes::transfer
    ("POST", "/filesystem/{system_name}/transfer/upload"),
    ("POST", "/filesystem/{system_name}/transfer/download"),
    ("POST", "/filesystem/{system_name}/transfer/mv"),
    ("POST", "/filesystem/{system_name}/transfer/cp"),
    ("DELETE", "/filesystem/{system_name}/transfer/rm"),
    ("POST", "/filesystem/{system_name}/transfer/compress"),
    ("POST", "/filesystem/{system_name}/transfer/extract"),
    // routes::tasks
    ("GET", "/tasks/{system_name}"),
    ("GET", "/tasks/{system_name}/{task_id}"),
    ("DELETE", "/tasks/{system_name}/{task_id}"),
    // routes::admin
    ("GET", "/admin/maintenance"),
    ("PUT", "/admin/maintenance/systems/{system}"),
    ("DELETE", "/admin/maintenance/systems/{system}"),
    ("PUT", "/admin/maintenance/global"),
    ("DELETE", "/admin/maintenance/global"),
    ("POST", "/admin/reload"),
];

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "DELETE", "PATCH"];

impl App {
    async fn document(&self) -> Value {
        let (status, body) = self.call("GET", "/openapi.json").await;
        assert_eq!(status, StatusCode::OK);
        body.expect("the document is JSON")
    }

    async fn call(&self, method: &str, uri: &str) -> (StatusCode, Option<Value>) {
        self.call_as(method, uri, Some(token(json!({})))).await
    }

    async fn call_as(
        &self,
        method: &str,
        uri: &str,
        token: Option<String>,
    ) -> (StatusCode, Option<Value>) {
        let mut request = Request::builder().method(Method::from_bytes(method.as_bytes()).unwrap());
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = request.uri(uri).body(Body::empty()).unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).ok())
    }

    /// Whether the router has a handler for `method` on `template` (placeholders filled in
    /// with a system that does not exist and a job id), rather than its fallbacks: 404
    /// "Not Found" for an unknown path, 405 "Method Not Allowed" for another method.
    async fn routes(&self, method: &str, template: &str) -> bool {
        let uri = template
            .replace("{system_name}", "no-such-system")
            .replace("{job_id}", "1")
            .replace("{task_id}", "mv-1");
        let (status, body) = self.call(method, &uri).await;
        let message = body.as_ref().map(|body| body["message"].clone());
        let fallback = (status == StatusCode::NOT_FOUND && message == Some(json!("Not Found")))
            || status == StatusCode::METHOD_NOT_ALLOWED;
        !fallback
    }
}

/// The document's operations as (METHOD, path).
fn operations(document: &Value) -> BTreeSet<(String, String)> {
    let mut operations = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if METHODS.contains(&method.to_uppercase().as_str()) {
                operations.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    operations
}

fn table() -> BTreeSet<(String, String)> {
    ROUTES
        .iter()
        .map(|(method, path)| (method.to_string(), path.to_string()))
        .collect()
}

#[tokio::test]
async fn every_documented_operation_is_routed() {
    let app = app().await;
    let document = app.document().await;
    for (method, path) in operations(&document) {
        assert!(
            app.routes(&method, &path).await,
            "{method} {path} is documented but the router does not serve it"
        );
    }
}

#[tokio::test]
async fn every_route_is_documented() {
    let app = app().await;
    let documented = operations(&app.document().await);
    let served = table();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty(),
        "undocumented routes: {undocumented:?}"
    );
    assert!(
        unserved.is_empty(),
        "documented, not in the table: {unserved:?}"
    );
}

/// Every route on a system takes the call context, which places it in a route family (a
/// route in none would be a 500) and checks the token before the system.
#[tokio::test]
async fn every_route_on_a_system_checks_the_token_then_the_system() {
    let app = app().await;
    for (method, path) in ROUTES {
        if !path.contains("{system_name}") {
            continue;
        }
        let uri = path
            .replace("{system_name}", "no-such-system")
            .replace("{job_id}", "1")
            .replace("{task_id}", "mv-1");
        let (status, body) = app.call_as(method, &uri, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
        assert_eq!(body.unwrap()["message"], "Not authenticated");
        let (status, body) = app.call(method, &uri).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}");
        assert_eq!(body.unwrap()["message"], "System not found");
    }
}

/// The table is what the route modules register: each listed route is served, and every
/// other method on a listed path is answered by the router's 405.
#[tokio::test]
async fn the_table_is_what_the_router_serves() {
    let app = app().await;
    let served = table();
    let paths: BTreeSet<&String> = served.iter().map(|(_, path)| path).collect();
    for path in paths {
        for method in METHODS {
            let listed = served.contains(&(method.to_string(), path.clone()));
            assert_eq!(
                app.routes(method, path).await,
                listed,
                "{method} {path}: the router and the table disagree"
            );
        }
    }
}

#[tokio::test]
async fn path_parameters_are_the_paths_placeholders() {
    let document = app().await.document().await;
    for (path, item) in document["paths"].as_object().unwrap() {
        let placeholders: BTreeSet<String> = path
            .split('/')
            .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
            .map(String::from)
            .collect();
        for (method, operation) in item.as_object().unwrap() {
            let in_path: BTreeSet<String> = operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|parameter| parameter["in"] == "path")
                .map(|parameter| {
                    assert_eq!(parameter["required"], true, "{method} {path}");
                    parameter["name"].as_str().unwrap().to_string()
                })
                .collect();
            assert_eq!(
                in_path, placeholders,
                "{method} {path}: path parameters must be exactly the path's placeholders"
            );
        }
    }
}

#[tokio::test]
async fn operation_ids_are_unique_and_every_reference_resolves() {
    let document = app().await.document().await;
    let mut ids = BTreeSet::new();
    for item in document["paths"].as_object().unwrap().values() {
        for operation in item.as_object().unwrap().values() {
            let id = operation["operationId"].as_str().unwrap().to_string();
            assert!(ids.insert(id.clone()), "operationId {id} is used twice");
        }
    }
    let mut references = Vec::new();
    collect_references(&document, &mut references);
    assert!(!references.is_empty());
    for reference in references {
        let name = reference
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected reference {reference}"));
        assert!(
            document["components"]["schemas"].get(name).is_some(),
            "{reference} does not resolve"
        );
    }
}

fn collect_references(value: &Value, references: &mut Vec<String>) {
    match value {
        Value::Object(object) => {
            if let Some(Value::String(reference)) = object.get("$ref") {
                references.push(reference.clone());
            }
            object
                .values()
                .for_each(|value| collect_references(value, references));
        }
        Value::Array(items) => items
            .iter()
            .for_each(|value| collect_references(value, references)),
        _ => {}
    }
}

/// Operations that use the cluster document its failures: `5XX` with the error body.
#[tokio::test]
async fn operations_on_a_system_document_the_clusters_failures() {
    let document = app().await.document().await;
    for (path, item) in document["paths"].as_object().unwrap() {
        if !path.contains("{system_name}") {
            continue;
        }
        for (method, operation) in item.as_object().unwrap() {
            for status in ["4XX", "5XX"] {
                assert_eq!(
                    operation["responses"][status]["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{method} {path} {status}"
                );
            }
        }
    }
}

/// A job id in a path is documented with the pattern the handlers check.
#[tokio::test]
async fn job_ids_are_documented_with_the_checked_pattern() {
    let document = app().await.document().await;
    let mut seen = 0;
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                if parameter["name"] == "job_id" {
                    seen += 1;
                    assert_eq!(
                        parameter["schema"]["pattern"],
                        ironcrest_scheduler::job::JOB_ID_PATTERN,
                        "{method} {path}"
                    );
                }
            }
        }
    }
    assert_eq!(seen, 4);
}

/// The operations that start a job, where `Idempotency-Key` makes a retry safe
/// (docs/retries.md); nowhere else is it documented.
const IDEMPOTENT: &[(&str, &str)] = &[
    ("POST", "/compute/{system_name}/jobs"),
    ("POST", "/filesystem/{system_name}/transfer/upload"),
    ("POST", "/filesystem/{system_name}/transfer/download"),
    ("POST", "/filesystem/{system_name}/transfer/mv"),
    ("POST", "/filesystem/{system_name}/transfer/cp"),
    ("DELETE", "/filesystem/{system_name}/transfer/rm"),
    ("POST", "/filesystem/{system_name}/transfer/compress"),
    ("POST", "/filesystem/{system_name}/transfer/extract"),
];

#[tokio::test]
async fn the_idempotency_key_is_documented_on_the_operations_that_start_jobs() {
    let document = app().await.document().await;
    for (method, path) in ROUTES {
        let operation = &document["paths"][path][method.to_lowercase()];
        let documented = operation["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header");
        assert_eq!(
            documented,
            IDEMPOTENT.contains(&(method, path)),
            "{method} {path}"
        );
    }
}
