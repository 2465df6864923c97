//! HTTP metrics and the metrics page. Every request is counted and timed by its route
//! template (axum's [`MatchedPath`], `unmatched` when no route matched), never its raw
//! path, so the series stay bounded whatever clients send. The page itself is rendered by
//! the binary's Prometheus recorder ([`RenderMetrics`]).

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// Renders the metrics page in Prometheus' text format, at scrape time.
pub type RenderMetrics = Arc<dyn Fn() -> String + Send + Sync>;

/// `GET /metrics`: no token, no gateway (like the liveness route), and not in the OpenAPI
/// document. Served on the main listener or on `telemetry.metrics.listen`.
pub fn router(render: RenderMetrics) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let page = render();
            async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    page,
                )
                    .into_response()
            }
        }),
    )
}

/// Counts a request in `ironcrest_http_requests_total`, times it until its response's head
/// in `ironcrest_http_request_duration_seconds` (both by route, method and status), and
/// holds it in `ironcrest_http_requests_in_flight` (by route and method) meanwhile.
pub async fn record(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |path| path.as_str().to_string());
    let method = method_label(request.method());
    let in_flight = InFlight::enter(&route, method);
    let started = Instant::now();
    let response = next.run(request).await;
    drop(in_flight);
    let labels = [
        ("route", route),
        ("method", method.to_string()),
        ("status", response.status().as_u16().to_string()),
    ];
    metrics::counter!("ironcrest_http_requests_total", &labels).increment(1);
    metrics::histogram!("ironcrest_http_request_duration_seconds", &labels)
        .record(started.elapsed());
    response
}

/// The standard methods by name; any other (clients may send anything) is `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// A request in flight; leaves the gauge when dropped, also when the client went away and
/// the request's future was dropped.
struct InFlight(metrics::Gauge);

impl InFlight {
    fn enter(route: &str, method: &'static str) -> Self {
        let gauge = metrics::gauge!(
            "ironcrest_http_requests_in_flight",
            "route" => route.to_string(),
            "method" => method,
        );
        gauge.increment(1.0);
        Self(gauge)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}
