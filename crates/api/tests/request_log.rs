//! The request's ids and its one log line, as clients and log queries read them. In a test
//! binary of its own: the log subscriber is this thread's, and no other test's events mix in.

mod support;

use std::io;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use serde_json::{Value, json};
use support::{app, token};
use tower::ServiceExt;
use tracing_subscriber::fmt::MakeWriter;

/// The JSON log lines written so far.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

impl Captured {
    /// The request log lines (message `request`), taken out of the buffer.
    fn request_lines(&self) -> Vec<Value> {
        let bytes = std::mem::take(&mut *self.0.lock().unwrap());
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str::<Value>(line).unwrap())
            .filter(|line| line["fields"]["message"] == "request")
            .collect()
    }
}

async fn send(app: &support::App, request: Request<Body>) -> Response<Body> {
    let response = app.router.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    Response::from_parts(parts, Body::from(body))
}

fn header<'a>(response: &'a Response<Body>, name: &str) -> &'a str {
    response.headers()[name].to_str().unwrap()
}

fn is_made_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

#[tokio::test]
async fn ids_are_kept_or_made_echoed_and_on_the_one_log_line_of_the_request() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(captured.clone())
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let app = app().await;
    let bearer = format!("Bearer {}", token(json!({})));

    // Without ids: both are made, echoed and logged, with the lower-cased path and the
    // route family `Call` records.
    let request = Request::get("/STATUS/Other/nodes")
        .header("authorization", &bearer)
        .body(Body::empty())
        .unwrap();
    let response = send(&app, request).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let request_id = header(&response, "x-request-id");
    let correlation_id = header(&response, "x-correlation-id");
    assert!(is_made_id(request_id), "{request_id}");
    assert!(is_made_id(correlation_id), "{correlation_id}");
    assert_ne!(request_id, correlation_id);
    let lines = captured.request_lines();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    let line = &lines[0];
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["target"], "ironcrest_api::middleware");
    assert_eq!(line["fields"]["http.status"], 404);
    assert!(line["fields"]["duration_ms"].as_f64().unwrap() >= 0.0);
    let span = &line["span"];
    assert_eq!(span["name"], "request");
    assert_eq!(span["request.id"], request_id);
    assert_eq!(span["correlation.id"], correlation_id);
    assert_eq!(span["http.method"], "GET");
    assert_eq!(span["http.path"], "/status/other/nodes");
    assert_eq!(span["route.family"], "status-read");

    // A client's ids are kept as sent; a route in no family logs none.
    let request = Request::get("/status/systems")
        .header("authorization", &bearer)
        .header("x-request-id", "client-request-1")
        .header("x-correlation-id", "wf:run/42#step=3")
        .body(Body::empty())
        .unwrap();
    let response = send(&app, request).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "x-request-id"), "client-request-1");
    assert_eq!(header(&response, "x-correlation-id"), "wf:run/42#step=3");
    let lines = captured.request_lines();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    let span = &lines[0]["span"];
    assert_eq!(span["request.id"], "client-request-1");
    assert_eq!(span["correlation.id"], "wf:run/42#step=3");
    assert_eq!(lines[0]["fields"]["http.status"], 200);
    assert!(span.get("route.family").is_none(), "{span}");

    // A refused id is a 400 that echoes neither id.
    let request = Request::get("/status/liveness")
        .header("x-request-id", "client-request-2")
        .header("x-correlation-id", "with space")
        .body(Body::empty())
        .unwrap();
    let response = send(&app, request).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(header(&response, "f7t-appversion"), "2.6.0");
    assert!(!response.headers().contains_key("x-request-id"));
    assert!(!response.headers().contains_key("x-correlation-id"));
}
