//! What wraps every request, as FirecREST v2 does it (wire reference §0): the path is
//! lower-cased before routing, every response carries `F7T-AppVersion`, `F7T-Timestamp`
//! and the request id, and every request is logged once with its status and duration.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower::ServiceBuilder;
use tracing::Instrument;

use crate::error::ApiError;
use crate::{APP_VERSION, IRONCREST_VERSION};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const CORRELATION_ID: HeaderName = HeaderName::from_static("x-correlation-id");
const APP_VERSION_HEADER: HeaderName = HeaderName::from_static("f7t-appversion");
const TIMESTAMP_HEADER: HeaderName = HeaderName::from_static("f7t-timestamp");
const IRONCREST_VERSION_HEADER: HeaderName = HeaderName::from_static("x-ironcrest-version");

pub fn wrap(app: Router) -> Router {
    // Rewriting the URI must happen before routing, so the routed app sits behind the
    // rewrite as a fallback service of an otherwise empty router.
    let rewritten = ServiceBuilder::new().map_request(lowercase_path).service(
        app.layer(middleware::from_fn(crate::drain::drain_unread_body))
            .layer(middleware::from_fn(headers_and_log)),
    );
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

/// The longest request or correlation id a client may send.
const MAX_ID_LENGTH: usize = 200;

/// A client's request or correlation id: any printable ASCII without spaces, up to
/// [`MAX_ID_LENGTH`] (pyfirecrest sends dashed UUIDs, other clients their own ids).
fn incoming_id(request: &Request, name: &HeaderName) -> Result<Option<String>, ApiError> {
    let Some(value) = request.headers().get(name) else {
        return Ok(None);
    };
    let bytes = value.as_bytes();
    if (1..=MAX_ID_LENGTH).contains(&bytes.len()) && bytes.iter().all(u8::is_ascii_graphic) {
        return Ok(Some(String::from_utf8_lossy(bytes).into_owned()));
    }
    Err(ApiError::Validation {
        location: "header",
        name: name.as_str().to_string(),
        message: format!(
            "The {} header must be 1 to {MAX_ID_LENGTH} printable ASCII characters without spaces.",
            name.as_str()
        ),
    })
}

/// The request's ids, as sent back in `x-request-id` and `x-correlation-id` and logged on
/// its span; in the request's extensions for extractors ([`crate::call::Call`]).
#[derive(Clone, Debug)]
pub struct RequestIds {
    pub request_id: String,
    pub correlation_id: String,
}

async fn headers_and_log(mut request: Request, next: Next) -> Response {
    let ids = incoming_id(&request, &REQUEST_ID)
        .and_then(|request_id| Ok((request_id, incoming_id(&request, &CORRELATION_ID)?)));
    let (request_id, correlation_id) = match ids {
        Ok(ids) => ids,
        Err(error) => return with_headers(error.into_response(), None, None),
    };
    let request_id = request_id.unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let correlation_id =
        correlation_id.unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    request.extensions_mut().insert(RequestIds {
        request_id: request_id.clone(),
        correlation_id: correlation_id.clone(),
    });
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    // `route.family` is recorded by `Call` on routes that have one.
    let span = tracing::info_span!(
        "request",
        request.id = %request_id,
        correlation.id = %correlation_id,
        http.method = %method,
        http.path = %path,
        route.family = tracing::field::Empty
    );
    let started = Instant::now();
    let response = next.run(request).instrument(span.clone()).await;
    let response = json_errors(response).instrument(span.clone()).await;
    span.in_scope(|| {
        tracing::info!(
            http.status = response.status().as_u16(),
            duration_ms = started.elapsed().as_secs_f64() * 1000.0,
            "request"
        )
    });
    with_headers(response, Some(request_id), Some(correlation_id))
}

/// Every error response has FirecREST's JSON error shape: those of axum's extractors and
/// layers (a path that does not decode, 405, 413, …) are rewritten through [`ApiError`],
/// their plain text becoming the message.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let body = axum::body::to_bytes(response.into_body(), 16 * 1024)
        .await
        .unwrap_or_default();
    let message = String::from_utf8_lossy(&body).trim().to_string();
    ApiError::Http { status, message }.into_response()
}

fn with_headers(
    mut response: Response,
    request_id: Option<String>,
    correlation_id: Option<String>,
) -> Response {
    let headers = response.headers_mut();
    headers.insert(APP_VERSION_HEADER, HeaderValue::from_static(APP_VERSION));
    headers.insert(
        IRONCREST_VERSION_HEADER,
        HeaderValue::from_static(IRONCREST_VERSION),
    );
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default();
    if let Ok(value) = HeaderValue::from_str(&timestamp.to_string()) {
        headers.insert(TIMESTAMP_HEADER, value);
    }
    for (name, id) in [(REQUEST_ID, request_id), (CORRELATION_ID, correlation_id)] {
        if let Some(value) = id.and_then(|id| HeaderValue::from_str(&id).ok()) {
            headers.insert(name, value);
        }
    }
    response
}
