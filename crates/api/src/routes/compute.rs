//! `/compute/{system_name}/jobs…`: submit, list, inspect, cancel and attach to jobs
//! (wire reference §2.2).

use axum::Router;

use crate::AppState;

#[derive(utoipa::OpenApi)]
#[openapi()]
pub struct ComputeDoc;

pub fn router() -> Router<AppState> {
    Router::new()
}
