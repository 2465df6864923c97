//! What wraps every request, as FirecREST v2 does it (wire reference §0): the path is
//! lower-cased before routing, every response carries `F7T-AppVersion`, `F7T-Timestamp`
//! and the request id, and every request is logged once with its status and duration.
//!
//! The ids are tower-http's: [`SetRequestIdLayer`] keeps a client's id or makes one, and
//! [`PropagateRequestIdLayer`] echoes it; an id Ironcrest does not accept is refused in
//! front of them ([`refuse_bad_ids`]). The log line is tower-http's [`TraceLayer`], with
//! Ironcrest's span ([`request_span`]) and event ([`log_request`]). The version headers,
//! the JSON error shape and the draining of unread bodies are Ironcrest's own.
//!
//! When traces are exported, that span is also the request's OpenTelemetry server span: a
//! W3C `traceparent` the client sends is its parent, and the response's `traceparent`
//! names it ([`trace_headers`]).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use tower::ServiceBuilder;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::error::ApiError;
use crate::{APP_VERSION, IRONCREST_VERSION, TraceContext};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const CORRELATION_ID: HeaderName = HeaderName::from_static("x-correlation-id");
const APP_VERSION_HEADER: HeaderName = HeaderName::from_static("f7t-appversion");
const TIMESTAMP_HEADER: HeaderName = HeaderName::from_static("f7t-timestamp");
const IRONCREST_VERSION_HEADER: HeaderName = HeaderName::from_static("x-ironcrest-version");

/// Wraps the routed `app`; paths under `v1_prefix` keep their case (v1 was not lower-cased:
/// its reservation names and task ids are case-sensitive).
pub fn wrap(app: Router, trace_context: Option<TraceContext>, v1_prefix: Option<String>) -> Router {
    let span_trace_context = trace_context.clone();
    // Outermost first. A refused id is answered before the id layers, so it is neither
    // echoed nor logged; `RequestIds` are read from the headers once both ids are set.
    // (Both `SetRequestIdLayer`s write tower-http's single `RequestId` extension, so it is
    // not what to read: `RequestIds` is.)
    let layers = ServiceBuilder::new()
        // Outermost, so that every answer is counted, a refused id's included.
        .layer(middleware::from_fn(crate::metrics::record))
        .map_response(version_headers)
        .layer(middleware::from_fn(refuse_bad_ids))
        .layer(SetRequestIdLayer::new(REQUEST_ID, NewId))
        .layer(SetRequestIdLayer::new(CORRELATION_ID, NewId))
        // Inside the setters: it echoes the request's header as it reaches it.
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(PropagateRequestIdLayer::new(CORRELATION_ID))
        .map_request(record_ids)
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(move |request: &Request| {
                    request_span(request, span_trace_context.as_ref())
                })
                .on_request(())
                .on_response(log_request)
                .on_body_chunk(())
                .on_eos(())
                // A 5xx is logged once, with its detail, by `ApiError`.
                .on_failure(()),
        )
        // Inside the `TraceLayer`: its span is the current one while the response passes.
        .map_response(move |response| trace_headers(response, trace_context.as_ref()))
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::from_fn(crate::drain::drain_unread_body));
    // Rewriting the URI must happen before routing, so the routed app sits behind the
    // rewrite as a fallback service of an otherwise empty router.
    let rewritten = ServiceBuilder::new()
        .map_request(move |request: Request| match &v1_prefix {
            Some(prefix) if is_under(request.uri().path(), prefix) => request,
            _ => lowercase_path(request),
        })
        .service(app.layer(layers));
    Router::new().fallback_service(rewritten)
}

/// Whether `path` is `prefix` or lies under it.
fn is_under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
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
fn check_incoming_id(request: &Request, name: &HeaderName) -> Result<(), ApiError> {
    let Some(value) = request.headers().get(name) else {
        return Ok(());
    };
    let bytes = value.as_bytes();
    if (1..=MAX_ID_LENGTH).contains(&bytes.len()) && bytes.iter().all(u8::is_ascii_graphic) {
        return Ok(());
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

/// A request whose request or correlation id is not acceptable is a JSON 400, with neither
/// id echoed; every id that passes is kept as the client sent it.
async fn refuse_bad_ids(request: Request, next: Next) -> Response {
    let checked = check_incoming_id(&request, &REQUEST_ID)
        .and_then(|()| check_incoming_id(&request, &CORRELATION_ID));
    match checked {
        Ok(()) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

/// The id of a request that came without one: a random UUID as 32 hex digits.
#[derive(Clone, Copy)]
struct NewId;

impl MakeRequestId for NewId {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        HeaderValue::from_str(&id).ok().map(RequestId::new)
    }
}

/// The request's ids, as sent back in `x-request-id` and `x-correlation-id` and logged on
/// its span; in the request's extensions for extractors ([`crate::call::Call`]).
#[derive(Clone, Debug)]
pub struct RequestIds {
    pub request_id: String,
    pub correlation_id: String,
}

/// Both id headers are set (and checked) by now.
fn record_ids(mut request: Request) -> Request {
    let id = |name: &HeaderName| {
        request
            .headers()
            .get(name)
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
            .unwrap_or_default()
    };
    let ids = RequestIds {
        request_id: id(&REQUEST_ID),
        correlation_id: id(&CORRELATION_ID),
    };
    request.extensions_mut().insert(ids);
    request
}

/// The span every log line of a request is in. `route.family` is recorded by `Call` on
/// routes that have one.
///
/// With traces exported, its OpenTelemetry span is named and kinded as the HTTP conventions
/// name a server span (`GET /status/{system_name}/nodes`; fields left out of the log line
/// otherwise), the incoming trace context is its parent, and the request's ids go in that
/// context, so every span under it carries them.
fn request_span(request: &Request, trace_context: Option<&TraceContext>) -> Span {
    let ids = request.extensions().get::<RequestIds>();
    let (request_id, correlation_id) = ids.map_or(("", ""), |ids| {
        (ids.request_id.as_str(), ids.correlation_id.as_str())
    });
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    let traced = trace_context.is_some();
    let span = tracing::info_span!(
        "request",
        request.id = %request_id,
        correlation.id = %correlation_id,
        http.method = %request.method(),
        http.path = %request.uri().path(),
        route.family = tracing::field::Empty,
        otel.name = traced.then(|| match route {
            Some(route) => format!("{} {route}", request.method()),
            None => request.method().to_string(),
        }),
        otel.kind = traced.then_some("server"),
    );
    if let Some(propagator) = trace_context {
        // A missing or malformed `traceparent` extracts as no parent: a new trace.
        let parent = propagator.extract(&HeaderExtractor(request.headers()));
        let parent = match ids {
            Some(ids) => parent.with_value(ids.clone()),
            None => parent,
        };
        // Refused only without an OpenTelemetry layer, when there is nothing to trace.
        let _ = span.set_parent(parent);
        if let Some(route) = route {
            span.set_attribute("http.route", route.to_string());
        }
    }
    span
}

/// The request's one log line, in its span; the status also goes on its trace span.
fn log_request(response: &Response, latency: Duration, span: &Span) {
    let status = response.status();
    tracing::info!(
        http.status = status.as_u16(),
        duration_ms = latency.as_secs_f64() * 1000.0,
        "request"
    );
    span.set_attribute("http.response.status_code", i64::from(status.as_u16()));
    if status.is_server_error() {
        span.set_status(opentelemetry::trace::Status::error(status.to_string()));
    }
}

/// `traceparent` (and `tracestate`) naming the request's span, when traces are exported.
fn trace_headers(mut response: Response, trace_context: Option<&TraceContext>) -> Response {
    if let Some(propagator) = trace_context {
        let context = Span::current().context();
        propagator.inject_context(&context, &mut HeaderInjector(response.headers_mut()));
    }
    response
}

/// Every error response has FirecREST's JSON error shape: those of axum's extractors and
/// layers (a path that does not decode, 405, 413, …) are rewritten through [`ApiError`],
/// their plain text becoming the message.
async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
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

/// `F7T-AppVersion`, `X-Ironcrest-Version` and `F7T-Timestamp`, on every response.
fn version_headers(mut response: Response) -> Response {
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
    response
}
