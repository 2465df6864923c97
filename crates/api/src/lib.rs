//! The HTTP API, wire-compatible with FirecREST v2: routes, wire models, the OpenAPI
//! document, and [`error::ApiError`], the one place where errors become HTTP responses.

mod auth;
pub mod error;
mod middleware;
mod models;
mod openapi;
mod routes;

use axum::Router;
use ironcrest_auth::TokenVerifier;
use ironcrest_services::Clusters;

pub use auth::AuthenticatedUser;

/// FirecREST v2 clients read this literal from `F7T-AppVersion` (pyfirecrest maps it to "2").
pub const APP_VERSION: &str = "2.x.x";

#[derive(Clone)]
pub struct AppState {
    pub clusters: Clusters,
    pub verifier: TokenVerifier,
}

/// The whole application, ready to serve.
pub fn router(state: AppState) -> Router {
    let api = routes::router().with_state(state);
    middleware::wrap(api.merge(openapi::router()))
}
