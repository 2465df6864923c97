//! `/status`: systems and their health, liveness, and per-system nodes, partitions,
//! reservations and the caller's user information (wire reference §2.1).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::Redirect;
use axum::routing::get;
use axum::{Json, Router};
use chrono::Utc;
use ironcrest_scheduler::{Node, Partition, Reservation};
use ironcrest_services::status::{self, UserInfo};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ValidQuery, lenient_bool};
use crate::AppState;
use crate::auth::AuthenticatedUser;
use crate::call::Call;
use crate::conditional;
use crate::error::ApiError;
use crate::models::System;

#[derive(utoipa::OpenApi)]
#[openapi(paths(
    systems,
    liveness,
    liveness_redirect,
    nodes,
    partitions,
    reservations,
    userinfo
))]
pub struct StatusDoc;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/status/systems", conditional::get(systems))
        .route("/status/liveness/", get(liveness))
        .route("/status/liveness", get(liveness_redirect))
        .route("/status/{system_name}/nodes", conditional::get(nodes))
        .route(
            "/status/{system_name}/partitions",
            conditional::get(partitions),
        )
        .route(
            "/status/{system_name}/reservations",
            conditional::get(reservations),
        )
        .route("/status/{system_name}/userinfo", conditional::get(userinfo))
}

#[derive(Serialize, ToSchema)]
pub struct SystemsResponse {
    systems: Vec<System>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LivenessResponse {
    /// Per cluster, when its last health-check run started.
    healthcheck_runs: BTreeMap<String, String>,
    /// Age in seconds of the oldest cluster's last run; 0 before any run.
    last_update: i64,
    /// The FirecREST API level served (also the `F7T-AppVersion` header).
    api_version: &'static str,
    /// This Ironcrest build's version (also the `X-Ironcrest-Version` header).
    ironcrest_version: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct NodesResponse {
    nodes: Vec<Node>,
}

#[derive(Serialize, ToSchema)]
pub struct PartitionsResponse {
    partitions: Vec<Partition>,
}

#[derive(Serialize, ToSchema)]
pub struct ReservationsResponse {
    reservations: Vec<Reservation>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PartitionsQuery {
    /// Also list hidden partitions.
    #[serde(default, deserialize_with = "lenient_bool")]
    #[param(value_type = bool)]
    show_hidden: bool,
}

#[utoipa::path(get, path = "/status/systems", tag = "status",
    params(("If-None-Match" = Option<String>, Header, description = super::IF_NONE_MATCH)),
    responses((status = 200, body = SystemsResponse, headers(("ETag" = String))), (status = 304, description = super::NOT_MODIFIED, headers(("ETag" = String))),
        (status = "4XX", description = super::REFUSED, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
async fn systems(State(state): State<AppState>, _user: AuthenticatedUser) -> Json<SystemsResponse> {
    let systems = state
        .clusters
        .iter()
        .map(|cluster| {
            let maintenance = state.gateway.maintenance(cluster.name());
            System::new(&cluster.config, cluster.health(), maintenance)
        })
        .collect();
    Json(SystemsResponse { systems })
}

/// The liveness check's other spelling, as FastAPI answers a path without its `/`.
#[utoipa::path(get, path = "/status/liveness", tag = "status",
    responses((status = 307, description = "Redirect to `/status/liveness/`.",
        headers(("location" = String, description = "`/status/liveness/`")))))]
async fn liveness_redirect() -> Redirect {
    Redirect::temporary("/status/liveness/")
}

#[utoipa::path(get, path = "/status/liveness/", tag = "status",
    responses((status = 200, body = LivenessResponse)))]
async fn liveness(State(state): State<AppState>) -> Json<LivenessResponse> {
    let now = Utc::now();
    let mut healthcheck_runs = BTreeMap::new();
    let mut oldest = None;
    for cluster in state.clusters.iter() {
        if let Some(last) = cluster.health().and_then(|report| report.last_health_check) {
            healthcheck_runs.insert(
                cluster.name().to_string(),
                last.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            );
            oldest = Some(oldest.map_or(last, |o: chrono::DateTime<Utc>| o.min(last)));
        }
    }
    Json(LivenessResponse {
        healthcheck_runs,
        last_update: oldest.map_or(0, |o| (now - o).num_seconds()),
        api_version: crate::APP_VERSION,
        ironcrest_version: crate::IRONCREST_VERSION,
    })
}

#[utoipa::path(get, path = "/status/{system_name}/nodes", tag = "status",
    params(("If-None-Match" = Option<String>, Header, description = super::IF_NONE_MATCH), ("system_name" = String, Path, description = super::SYSTEM_NAME)),
    responses((status = 200, body = NodesResponse, headers(("ETag" = String))), (status = 304, description = super::NOT_MODIFIED, headers(("ETag" = String))), (status = "4XX", description = super::REFUSED, body = crate::error::ErrorBody),
        (status = "5XX", description = super::FAILED, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
async fn nodes(call: Call) -> Result<Json<NodesResponse>, ApiError> {
    let nodes = status::nodes(&call.cluster, &call.user.caller)
        .await
        .map_err(|e| call.error(e))?;
    Ok(Json(NodesResponse { nodes }))
}

#[utoipa::path(get, path = "/status/{system_name}/partitions", tag = "status",
    params(("If-None-Match" = Option<String>, Header, description = super::IF_NONE_MATCH), ("system_name" = String, Path, description = super::SYSTEM_NAME), PartitionsQuery),
    responses((status = 200, body = PartitionsResponse, headers(("ETag" = String))), (status = 304, description = super::NOT_MODIFIED, headers(("ETag" = String))), (status = "4XX", description = super::REFUSED, body = crate::error::ErrorBody),
        (status = "5XX", description = super::FAILED, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
async fn partitions(
    call: Call,
    ValidQuery(query): ValidQuery<PartitionsQuery>,
) -> Result<Json<PartitionsResponse>, ApiError> {
    let partitions = status::partitions(&call.cluster, &call.user.caller, query.show_hidden)
        .await
        .map_err(|e| call.error(e))?;
    Ok(Json(PartitionsResponse { partitions }))
}

#[utoipa::path(get, path = "/status/{system_name}/reservations", tag = "status",
    params(("If-None-Match" = Option<String>, Header, description = super::IF_NONE_MATCH), ("system_name" = String, Path, description = super::SYSTEM_NAME)),
    responses((status = 200, body = ReservationsResponse, headers(("ETag" = String))), (status = 304, description = super::NOT_MODIFIED, headers(("ETag" = String))), (status = "4XX", description = super::REFUSED, body = crate::error::ErrorBody),
        (status = "5XX", description = super::FAILED, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
async fn reservations(call: Call) -> Result<Json<ReservationsResponse>, ApiError> {
    let reservations = status::reservations(&call.cluster, &call.user.caller)
        .await
        .map_err(|e| call.error(e))?;
    Ok(Json(ReservationsResponse { reservations }))
}

#[utoipa::path(get, path = "/status/{system_name}/userinfo", tag = "status",
    params(("If-None-Match" = Option<String>, Header, description = super::IF_NONE_MATCH), ("system_name" = String, Path, description = super::SYSTEM_NAME)),
    responses((status = 200, body = UserInfo, headers(("ETag" = String))), (status = 304, description = super::NOT_MODIFIED, headers(("ETag" = String))), (status = "4XX", description = super::REFUSED, body = crate::error::ErrorBody),
        (status = "5XX", description = super::FAILED, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
async fn userinfo(call: Call) -> Result<Json<UserInfo>, ApiError> {
    let info = status::userinfo(&call.cluster, &call.user.caller)
        .await
        .map_err(|e| call.error(e))?;
    Ok(Json(UserInfo::clone(&info)))
}
