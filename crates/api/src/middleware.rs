//! What wraps every request, as FirecREST v2 does it (wire reference §0): the path is
//! lower-cased before routing, every response carries `F7T-AppVersion`, `F7T-Timestamp`
//! and the request id, and every request is logged once with its status and duration.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower::ServiceBuilder;
use tracing::Instrument;

use crate::APP_VERSION;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const CORRELATION_ID: HeaderName = HeaderName::from_static("x-correlation-id");
const APP_VERSION_HEADER: HeaderName = HeaderName::from_static("f7t-appversion");
const TIMESTAMP_HEADER: HeaderName = HeaderName::from_static("f7t-timestamp");

pub fn wrap(app: Router) -> Router {
    // Rewriting the URI must happen before routing, so the routed app sits behind the
    // rewrite as a fallback service of an otherwise empty router.
    let rewritten = ServiceBuilder::new()
        .map_request(lowercase_path)
        .service(app.layer(middleware::from_fn(headers_and_log)));
    Router::new().fallback_service(rewritten)
}

fn lowercase_path(mut request: Request) -> Request {
    let uri = request.uri();
    let path = uri.path();
    if path.bytes().any(|b| b.is_ascii_uppercase()) {
        let lowered = match uri.query() {
            Some(query) => format!("{}?{query}", path.to_ascii_lowercase()),
            None => path.to_ascii_lowercase(),
        };
        if let Ok(path_and_query) = lowered.parse() {
            let mut parts = uri.clone().into_parts();
            parts.path_and_query = Some(path_and_query);
            if let Ok(new_uri) = Uri::from_parts(parts) {
                *request.uri_mut() = new_uri;
            }
        }
    }
    request
}

/// A client may send its own request or correlation id; it must be a UUID, as in v2.
fn incoming_id(request: &Request, name: &HeaderName) -> Result<Option<String>, ()> {
    match request.headers().get(name) {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|text| uuid::Uuid::parse_str(text).ok())
            .map(|id| Some(id.simple().to_string()))
            .ok_or(()),
    }
}

async fn headers_and_log(request: Request, next: Next) -> Response {
    let (Ok(request_id), Ok(correlation_id)) = (
        incoming_id(&request, &REQUEST_ID),
        incoming_id(&request, &CORRELATION_ID),
    ) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let request_id = request_id.unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let correlation_id =
        correlation_id.unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let span = tracing::info_span!("request", request.id = %request_id, http.method = %method, http.path = %path);
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    span.in_scope(|| {
        tracing::info!(
            http.status = response.status().as_u16(),
            duration_ms = started.elapsed().as_secs_f64() * 1000.0,
            "request"
        )
    });
    let headers = response.headers_mut();
    headers.insert(APP_VERSION_HEADER, HeaderValue::from_static(APP_VERSION));
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default();
    if let Ok(value) = HeaderValue::from_str(&timestamp.to_string()) {
        headers.insert(TIMESTAMP_HEADER, value);
    }
    for (name, id) in [(REQUEST_ID, request_id), (CORRELATION_ID, correlation_id)] {
        if let Ok(value) = HeaderValue::from_str(&id) {
            headers.insert(name, value);
        }
    }
    response
}
