//! `/admin`: the operator's switches while the server runs — maintenance per system or for
//! every system, and reloading the gateway's rules from the configuration file. Open only to
//! tokens with `gateway.admin_scope`; without that setting the routes answer 404.

use std::collections::BTreeMap;

use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::routing::{post, put};
use axum::{Json, Router};
use ironcrest_config::{MaintenanceConfig, MaintenanceWindow};
use ironcrest_gateway::{Denial, Layer};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ValidJson;
use crate::AppState;
use crate::audit::{AuditArgs, AuditRecord};
use crate::auth::AuthenticatedUser;
use crate::error::ApiError;

#[derive(utoipa::OpenApi)]
#[openapi(paths(
    maintenance,
    set_system_maintenance,
    end_system_maintenance,
    set_global_maintenance,
    end_global_maintenance,
    reload
))]
pub struct AdminDoc;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/maintenance", axum::routing::get(maintenance))
        .route(
            "/admin/maintenance/systems/{system}",
            put(set_system_maintenance).delete(end_system_maintenance),
        )
        .route(
            "/admin/maintenance/global",
            put(set_global_maintenance).delete(end_global_maintenance),
        )
        .route("/admin/reload", post(reload))
}

/// A caller holding the admin scope.
pub struct Admin(AuthenticatedUser);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(scope) = state.gateway.admin_scope() else {
            return Err(ApiError::Http {
                status: StatusCode::NOT_FOUND,
                message: "The admin routes are off (no gateway.admin_scope is configured).".into(),
            });
        };
        let user = AuthenticatedUser::from_request_parts(parts, state).await?;
        if !user.grants.scopes.contains(&scope) {
            return Err(ApiError::Denied(Denial::Forbidden {
                layer: Layer::Scopes,
                reason: format!("The admin routes need the scope {scope}."),
            }));
        }
        Ok(Admin(user))
    }
}

/// A maintenance window as the admin routes show and take it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Window {
    message: String,
    /// When it is expected to end (RFC 3339); answers carry `Retry-After` until then.
    #[serde(default)]
    until: Option<String>,
}

/// The maintenance in force.
#[derive(Serialize, ToSchema)]
pub struct MaintenanceView {
    global: Option<Window>,
    systems: BTreeMap<String, Window>,
}

impl From<MaintenanceConfig> for MaintenanceView {
    fn from(config: MaintenanceConfig) -> Self {
        let window = |w: MaintenanceWindow| Window {
            message: w.message,
            until: w.until,
        };
        Self {
            global: config.global.map(window),
            systems: config
                .systems
                .into_iter()
                .map(|(name, w)| (name, window(w)))
                .collect(),
        }
    }
}

impl Window {
    fn checked(self) -> Result<MaintenanceWindow, ApiError> {
        if let Some(until) = &self.until
            && chrono::DateTime::parse_from_rfc3339(until).is_err()
        {
            return Err(ApiError::Validation {
                location: "body",
                name: "until".into(),
                message: format!("'{until}' is not an RFC 3339 time"),
            });
        }
        Ok(MaintenanceWindow {
            message: self.message,
            until: self.until,
        })
    }
}

fn view(state: &AppState) -> Json<MaintenanceView> {
    Json(state.gateway.maintenance_overview().into())
}

/// A system the server serves, by name (case-insensitive), as its canonical name.
fn known_system(state: &AppState, name: &str) -> Result<String, ApiError> {
    state
        .clusters
        .get(name)
        .map(|cluster| cluster.name().to_string())
        .map_err(|error| ApiError::Service {
            error,
            user: String::new(),
        })
}

const ADMIN_RESPONSES: &str = "Not an admin token (403); the admin routes are off or no such system (404); an invalid body (400).";

#[utoipa::path(get, path = "/admin/maintenance", tag = "admin",
    responses((status = 200, body = MaintenanceView),
        (status = "4XX", description = ADMIN_RESPONSES, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
async fn maintenance(_admin: Admin, State(state): State<AppState>) -> Json<MaintenanceView> {
    view(&state)
}

#[utoipa::path(put, path = "/admin/maintenance/systems/{system}", tag = "admin",
    params(("system" = String, Path, description = super::SYSTEM_NAME)),
    request_body = Window,
    responses((status = 200, body = MaintenanceView),
        (status = "4XX", description = ADMIN_RESPONSES, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
async fn set_system_maintenance(
    Admin(admin): Admin,
    State(state): State<AppState>,
    Path(system): Path<String>,
    ValidJson(window): ValidJson<Window>,
) -> Result<Json<MaintenanceView>, ApiError> {
    let system = known_system(&state, &system)?;
    let window = window.checked()?;
    tracing::info!(admin = admin.caller.username, system, message = window.message, until = ?window.until, "maintenance started");
    state.gateway.set_maintenance(Some(&system), Some(window));
    Ok(view(&state))
}

#[utoipa::path(delete, path = "/admin/maintenance/systems/{system}", tag = "admin",
    params(("system" = String, Path, description = super::SYSTEM_NAME)),
    responses((status = 200, body = MaintenanceView),
        (status = "4XX", description = ADMIN_RESPONSES, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
async fn end_system_maintenance(
    Admin(admin): Admin,
    State(state): State<AppState>,
    Path(system): Path<String>,
) -> Result<Json<MaintenanceView>, ApiError> {
    let system = known_system(&state, &system)?;
    tracing::info!(admin = admin.caller.username, system, "maintenance ended");
    state.gateway.set_maintenance(Some(&system), None);
    Ok(view(&state))
}

#[utoipa::path(put, path = "/admin/maintenance/global", tag = "admin",
    request_body = Window,
    responses((status = 200, body = MaintenanceView),
        (status = "4XX", description = ADMIN_RESPONSES, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
async fn set_global_maintenance(
    Admin(admin): Admin,
    State(state): State<AppState>,
    ValidJson(window): ValidJson<Window>,
) -> Result<Json<MaintenanceView>, ApiError> {
    let window = window.checked()?;
    tracing::info!(admin = admin.caller.username, message = window.message, until = ?window.until, "maintenance of every system started");
    state.gateway.set_maintenance(None, Some(window));
    Ok(view(&state))
}

#[utoipa::path(delete, path = "/admin/maintenance/global", tag = "admin",
    responses((status = 200, body = MaintenanceView),
        (status = "4XX", description = ADMIN_RESPONSES, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
async fn end_global_maintenance(
    Admin(admin): Admin,
    State(state): State<AppState>,
) -> Json<MaintenanceView> {
    tracing::info!(
        admin = admin.caller.username,
        "maintenance of every system ended"
    );
    state.gateway.set_maintenance(None, None);
    view(&state)
}

#[derive(Serialize, ToSchema)]
pub struct Reloaded {
    message: &'static str,
}

/// Reloads the gateway's rules from the configuration file, as SIGHUP does; a file with
/// problems changes nothing and is answered 422 with every problem.
#[utoipa::path(post, path = "/admin/reload", tag = "admin",
    responses((status = 200, body = Reloaded),
        (status = 422, description = "The file has problems; the rules in force stay.", body = crate::error::ErrorBody),
        (status = "4XX", description = ADMIN_RESPONSES, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
async fn reload(
    Admin(admin): Admin,
    State(state): State<AppState>,
) -> Result<Json<Reloaded>, ApiError> {
    let Some(path) = &state.config_path else {
        return Err(ApiError::Http {
            status: StatusCode::CONFLICT,
            message: "This server was not started from a configuration file.".into(),
        });
    };
    match state.gateway.reload_file(path) {
        Ok(()) => {
            tracing::info!(admin = admin.caller.username, config = %path.display(), "gateway rules reloaded");
            Ok(Json(Reloaded {
                message: "The gateway's rules were reloaded.",
            }))
        }
        Err(problems) => Err(ApiError::Http {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            message: problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        }),
    }
}

impl AuditArgs for Window {
    fn audit_args(&self, record: &AuditRecord) {
        record.arg("message", &self.message);
        if let Some(until) = &self.until {
            record.arg("until", until);
        }
    }
}
