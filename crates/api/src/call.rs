//! The call context every handler on a system starts from: who calls ([`AuthenticatedUser`]),
//! on which cluster, under which request and correlation ids, in which [`RouteFamily`].
//! `admit`, run while [`Call`] is extracted, is the one place where cross-cutting policy meets a request.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, Path};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use ironcrest_gateway::{Permit, Request, RouteFamily, ip};
use ironcrest_services::{Cluster, ServiceError};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::AppState;
use crate::audit::AuditRecord;
use crate::auth::AuthenticatedUser;
use crate::error::ApiError;
use crate::middleware::RequestIds;
use crate::routes::filesystem::QueryPath;

const NO_PATH: &str =
    "Unable to decode request and retreive the required path or source_path parameter.";
const NULL_PATH: &str = "All filesystem requests require a path or source_path parameter.";

/// A request on one system, as every such handler receives it. Extracting it checks, in
/// this order: the token (401), the path's parameters (400), the system (404 `System not
/// found`), then `admit` (the gateway). Take it before any query or body extractor.
pub struct Call {
    pub cluster: Arc<Cluster>,
    pub user: AuthenticatedUser,
    pub ids: RequestIds,
    pub family: RouteFamily,
    /// The request's audit record, when the audit log is on.
    audit: Option<AuditRecord>,
    /// Held until the handler ends (a concurrency slot, when limits hold one).
    permit: Permit,
}

impl FromRequestParts<AppState> for Call {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let family = parts
            .extensions
            .get::<MatchedPath>()
            .and_then(|path| RouteFamily::of(parts.method.as_str(), path.as_str()))
            .ok_or_else(|| internal("the route is in no route family"))?;
        let head = RequestHead::of(parts, state)?;
        let user = AuthenticatedUser::from_request_parts(parts, state).await?;
        // `Path` (not `RawPathParams`) so a path that does not decode is refused in the words
        // a handler's own `Path` would use.
        let Path(mut params) = Path::<BTreeMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| ApiError::Http {
                status: rejection.status(),
                message: rejection.body_text(),
            })?;
        let system = params
            .remove("system_name")
            .ok_or_else(|| internal("the route has no system_name"))?;
        Call::on_system(&head, state, user, &system, family, params).await
    }
}

/// What the call context reads of a request's head, taken once: enough to admit calls on
/// systems the request names elsewhere than in its path (FirecREST v1's `X-Machine-Name`,
/// a v1 task id), after the handler has started.
#[derive(Clone)]
pub(crate) struct RequestHead {
    method: Method,
    path: String,
    client_address: IpAddr,
    ids: RequestIds,
    audit: Option<AuditRecord>,
}

impl RequestHead {
    pub(crate) fn of(parts: &Parts, state: &AppState) -> Result<Self, ApiError> {
        let ids = parts
            .extensions
            .get::<RequestIds>()
            .cloned()
            .ok_or_else(|| internal("the request has no request ids"))?;
        Ok(Self {
            method: parts.method.clone(),
            path: parts.uri.path().to_string(),
            client_address: client_address(parts, state),
            ids,
            audit: AuditRecord::of(&parts.extensions),
        })
    }
}

impl Call {
    /// The call on `system` (404 `System not found` if there is none) of a route in
    /// `family`, whose other path parameters are `params`, once the gateway admitted it.
    /// Every way of naming the system ends here: v2's `{system_name}`, v1's header and task
    /// ids.
    pub(crate) async fn on_system(
        head: &RequestHead,
        state: &AppState,
        user: AuthenticatedUser,
        system: &str,
        family: RouteFamily,
        params: BTreeMap<String, String>,
    ) -> Result<Self, ApiError> {
        tracing::Span::current().record("route.family", tracing::field::display(family.as_str()));
        let cluster = state
            .clusters
            .get(system)
            .map_err(|error| ApiError::Service {
                error,
                user: user.caller.username.clone(),
            })?;
        let audit = head.audit.clone();
        if let Some(record) = &audit {
            record.system(cluster.name(), family.as_str());
            for (name, value) in &params {
                if let Some(name) = audited_param(name) {
                    record.arg(name, value);
                }
            }
        }
        tracing::Span::current().set_attribute("ironcrest.system", cluster.name().to_string());
        let permit = admit(head, state, &user, &cluster, family, &params).await?;
        Ok(Call {
            cluster,
            user,
            ids: head.ids.clone(),
            family,
            audit,
            permit,
        })
    }
}

/// THE hook for cross-cutting policy: every request on a system passes here once, after
/// authentication and the system lookup and before its handler reads its query or body,
/// with the caller, the cluster, the client's address and the [`RouteFamily`] at hand. The
/// gateway decides (authorization, limits, maintenance); a refusal is an [`ApiError`],
/// answered like any other.
#[tracing::instrument(name = "gateway.admit", level = "debug", skip_all, fields(route.family = family.as_str()))]
async fn admit(
    head: &RequestHead,
    state: &AppState,
    user: &AuthenticatedUser,
    cluster: &Cluster,
    family: RouteFamily,
    params: &BTreeMap<String, String>,
) -> Result<Permit, ApiError> {
    if state.per_user_series {
        metrics::counter!(
            "ironcrest_user_requests_total",
            "user" => user.caller.username.clone(),
            "family" => family.as_str(),
        )
        .increment(1);
    }
    let request = Request {
        user: &user.caller.username,
        grants: &user.grants,
        system: cluster.name(),
        family,
        method: head.method.as_str(),
        path: &head.path,
        params,
        client_address: head.client_address,
        access_token: &user.caller.access_token,
    };
    state
        .gateway
        .admit(&request)
        .await
        .map_err(ApiError::Denied)
}

impl Call {
    /// Gives back the request's concurrency slot and its place among the server's (load
    /// shedding) early, for a handler that goes on waiting without working the cluster (a
    /// long poll).
    pub(crate) fn release_slot(&mut self) {
        drop(std::mem::take(&mut self.permit));
    }

    /// A service error as the API answers it, naming the caller.
    pub(crate) fn error(&self, error: ServiceError) -> ApiError {
        ApiError::Service {
            error,
            user: self.user.caller.username.clone(),
        }
    }

    /// A 400 with `message`, naming the caller.
    pub(crate) fn invalid(&self, message: &str) -> ApiError {
        self.error(ServiceError::InvalidRequest(message.into()))
    }

    /// The query's `path`, which every GET/DELETE filesystem op requires.
    pub(crate) fn query_path(&self, path: QueryPath) -> Result<Vec<u8>, ApiError> {
        let path = path.0.ok_or_else(|| self.invalid(NO_PATH))?;
        self.audit("path", &path);
        Ok(path)
    }

    /// Records an argument or a result (a new job's id) in the request's audit line.
    pub(crate) fn audit(&self, name: &'static str, value: impl AsRef<[u8]>) {
        if let Some(record) = &self.audit {
            record.arg(name, value);
        }
    }

    /// A body's `path`/`sourcePath`/`source_path`: absent and `null` are refused apart.
    pub(crate) fn body_path(&self, path: Option<Option<String>>) -> Result<Vec<u8>, ApiError> {
        match path {
            None => Err(self.invalid(NO_PATH)),
            Some(None) => Err(self.invalid(NULL_PATH)),
            Some(Some(path)) => Ok(path.into_bytes()),
        }
    }
}

/// The audit name of a route's path parameter other than the system, if it names what
/// the request touches (`job_id`, `task_id`); names are `'static` so lines stay cheap.
fn audited_param(name: &str) -> Option<&'static str> {
    match name {
        "job_id" => Some("job_id"),
        "task_id" => Some("task_id"),
        _ => None,
    }
}

/// The client's address: the peer's, or behind a trusted proxy the forwarded one.
pub(crate) fn client_address(parts: &Parts, state: &AppState) -> IpAddr {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(Ipv4Addr::LOCALHOST.into(), |info| info.0.ip());
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    ip::client_address(
        peer,
        header("forwarded"),
        header("x-forwarded-for"),
        &state.trusted_proxies,
    )
}

/// A route wired against these rules: a server bug, answered (and logged) as a 500.
fn internal(message: &str) -> ApiError {
    ApiError::Http {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        message: format!("Internal Server Error: {message}"),
    }
}
