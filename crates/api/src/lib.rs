//! The HTTP API, wire-compatible with FirecREST v2: routes, wire models, the OpenAPI
//! document, and [`error::ApiError`], the one place where errors become HTTP responses;
//! and FirecREST v1 beside it under a prefix ([`v1`]), a façade over the same services.

mod audit;
mod auth;
mod call;
mod conditional;
mod drain;
pub mod error;
pub mod idempotency;
pub mod metrics;
mod middleware;
mod models;
mod multipart;
mod openapi;
mod routes;
pub mod ui;
pub mod v1;

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use ipnet::IpNet;
use ironcrest_auth::TokenVerifier;
use ironcrest_gateway::Gateway;
use ironcrest_services::Clusters;
use opentelemetry::propagation::TextMapPropagator;

pub use audit::AuditLog;
pub use auth::AuthenticatedUser;
pub use call::Call;
pub use ironcrest_gateway::RouteFamily;
pub use middleware::RequestIds;

/// How a request's trace context is read from and written to HTTP headers (W3C
/// `traceparent`/`tracestate`).
pub type TraceContext = Arc<dyn TextMapPropagator + Send + Sync>;

/// The FirecREST API level Ironcrest implements, sent as `F7T-AppVersion`. pyfirecrest
/// parses it as a version and enables what that level has (job-list `name` and
/// `time_window`, userinfo groups with `default`, …); "2.x.x" would leave it guessing.
pub const APP_VERSION: &str = "2.6.0";

/// Ironcrest's own version, sent as `X-Ironcrest-Version` and in `/status/liveness`.
pub const IRONCREST_VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Clone)]
pub struct AppState {
    pub clusters: Clusters,
    pub verifier: TokenVerifier,
    pub gateway: Arc<Gateway>,
    /// Proxies whose forwarding headers name the client (`server.connections.trusted_proxies`).
    pub trusted_proxies: Arc<[IpNet]>,
    /// The configuration file, which `POST /admin/reload` reads again; `None` when the
    /// server was not started from one.
    pub config_path: Option<Arc<Path>>,
    /// Where each request's audit line goes; `None` when `audit.enabled` is off.
    pub audit: Option<Arc<AuditLog>>,
    /// The metrics page, when `/metrics` is served on this router (not on its own listener).
    pub metrics: Option<metrics::RenderMetrics>,
    /// Whether requests are also counted per user (`telemetry.metrics.per_user_series`).
    pub per_user_series: bool,
    /// Set when traces are exported: an incoming trace context is the parent of the
    /// request's span, and the response names that span. `None`: headers are left alone.
    pub trace_context: Option<TraceContext>,
    /// The `Idempotency-Key`s of this process's recent requests (`idempotency`).
    pub idempotency: Arc<idempotency::Idempotency>,
    /// The web page for users and its sessions (`ui.enabled`); `None`: no `/ui` routes,
    /// and no session cookie is read.
    pub ui: Option<Arc<ui::Ui>>,
    /// Whether and where FirecREST v1 is served (`v1`, docs/v1.md).
    pub v1: ironcrest_config::V1Config,
}

/// The whole application, ready to serve.
pub fn router(state: AppState) -> Router {
    let docs = openapi::router(&state.gateway);
    let page = state.metrics.clone();
    let trace_context = state.trace_context.clone();
    let page_for_users = state.ui.is_some().then(|| ui::router(state.clone()));
    let v1_prefix = state.v1.enabled.then(|| state.v1.prefix.clone());
    let mut routes = routes::router();
    if let Some(prefix) = &v1_prefix {
        routes = routes.merge(v1::router(prefix));
    }
    let api = routes
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            audit::audit_requests,
        ))
        .with_state(state);
    let mut app = api.merge(docs);
    if let Some(page_for_users) = page_for_users {
        app = app.merge(page_for_users);
    }
    if let Some(prefix) = &v1_prefix {
        app = app.merge(v1::docs(prefix));
    }
    if let Some(render) = page {
        app = app.merge(metrics::router(render));
    }
    middleware::wrap(app, trace_context, v1_prefix)
}
