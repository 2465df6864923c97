//! The call context every handler on a system starts from: who calls ([`AuthenticatedUser`]),
//! on which cluster, under which request and correlation ids, in which [`RouteFamily`].
//! [`Call::admit`] is the one place where cross-cutting policy meets a request.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{FromRequestParts, MatchedPath, Path};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use ironcrest_services::{Cluster, ServiceError};

use crate::AppState;
use crate::auth::AuthenticatedUser;
use crate::error::ApiError;
use crate::middleware::RequestIds;
use crate::routes::filesystem::QueryPath;

const NO_PATH: &str =
    "Unable to decode request and retreive the required path or source_path parameter.";
const NULL_PATH: &str = "All filesystem requests require a path or source_path parameter.";

/// What a route does, as policy sees it: the unit authorization, rate limits and audit
/// are decided per.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteFamily {
    /// `GET /status/{system_name}/…`
    StatusRead,
    /// `GET /compute/{system_name}/jobs…`
    ComputeRead,
    /// Submitting, cancelling and attaching to jobs.
    ComputeWrite,
    /// `GET /filesystem/{system_name}/ops/…` (download included).
    FilesystemRead,
    /// The other `/filesystem/{system_name}/ops/…` (upload included).
    FilesystemWrite,
    /// `/filesystem/{system_name}/transfer/…`: scheduler jobs and S3 staging.
    Transfer,
}

impl RouteFamily {
    /// The family of a route, from its template (`MatchedPath`) and method; `None` for a
    /// route outside every family, which [`Call`] refuses rather than guess.
    pub fn of(method: &Method, template: &str) -> Option<Self> {
        let read = method == Method::GET || method == Method::HEAD;
        if template.starts_with("/status/{system_name}/") {
            read.then_some(Self::StatusRead)
        } else if template.starts_with("/compute/{system_name}/") {
            Some(if read {
                Self::ComputeRead
            } else {
                Self::ComputeWrite
            })
        } else if template.starts_with("/filesystem/{system_name}/transfer/") {
            Some(Self::Transfer)
        } else if template.starts_with("/filesystem/{system_name}/ops/") {
            Some(if read {
                Self::FilesystemRead
            } else {
                Self::FilesystemWrite
            })
        } else {
            None
        }
    }

    /// The name logged as `route.family`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StatusRead => "status-read",
            Self::ComputeRead => "compute-read",
            Self::ComputeWrite => "compute-write",
            Self::FilesystemRead => "filesystem-read",
            Self::FilesystemWrite => "filesystem-write",
            Self::Transfer => "transfer",
        }
    }
}

/// A request on one system, as every such handler receives it. Extracting it checks, in
/// this order: the token (401), the path's parameters (400), the system (404 `System not
/// found`), then [`Call::admit`]. Take it before any query or body extractor.
pub struct Call {
    pub cluster: Arc<Cluster>,
    pub user: AuthenticatedUser,
    pub ids: RequestIds,
    pub family: RouteFamily,
}

impl FromRequestParts<AppState> for Call {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let family = parts
            .extensions
            .get::<MatchedPath>()
            .and_then(|path| RouteFamily::of(&parts.method, path.as_str()))
            .ok_or_else(|| internal("the route is in no route family"))?;
        tracing::Span::current().record("route.family", tracing::field::display(family.as_str()));
        let ids = parts
            .extensions
            .get::<RequestIds>()
            .cloned()
            .ok_or_else(|| internal("the request has no request ids"))?;
        let user = AuthenticatedUser::from_request_parts(parts, state).await?;
        // `Path` (not `RawPathParams`) so a path that does not decode is refused in the words
        // a handler's own `Path` would use.
        let Path(mut params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| ApiError::Http {
                status: rejection.status(),
                message: rejection.body_text(),
            })?;
        let system = params
            .remove("system_name")
            .ok_or_else(|| internal("the route has no system_name"))?;
        let cluster = state
            .clusters
            .get(&system)
            .map_err(|error| ApiError::Service {
                error,
                user: user.0.username.clone(),
            })?;
        let call = Call {
            cluster,
            user,
            ids,
            family,
        };
        call.admit()?;
        Ok(call)
    }
}

impl Call {
    /// THE hook for cross-cutting policy: every request on a system passes here once, after
    /// authentication and the system lookup and before its handler reads its query or body,
    /// with the caller, the cluster, the ids and the [`RouteFamily`] at hand. Authorization,
    /// rate limits and audit go here, decided per family; a refusal is an [`ApiError`],
    /// answered like any other. Today every call is admitted.
    fn admit(&self) -> Result<(), ApiError> {
        match self.family {
            RouteFamily::StatusRead
            | RouteFamily::ComputeRead
            | RouteFamily::ComputeWrite
            | RouteFamily::FilesystemRead
            | RouteFamily::FilesystemWrite
            | RouteFamily::Transfer => Ok(()),
        }
    }

    /// A service error as the API answers it, naming the caller.
    pub(crate) fn error(&self, error: ServiceError) -> ApiError {
        ApiError::Service {
            error,
            user: self.user.0.username.clone(),
        }
    }

    /// A 400 with `message`, naming the caller.
    pub(crate) fn invalid(&self, message: &str) -> ApiError {
        self.error(ServiceError::InvalidRequest(message.into()))
    }

    /// The query's `path`, which every GET/DELETE filesystem op requires.
    pub(crate) fn query_path(&self, path: QueryPath) -> Result<Vec<u8>, ApiError> {
        path.0.ok_or_else(|| self.invalid(NO_PATH))
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

/// A route wired against these rules: a server bug, answered (and logged) as a 500.
fn internal(message: &str) -> ApiError {
    ApiError::Http {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        message: format!("Internal Server Error: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_follow_the_route_and_the_method() {
        let of = |method: Method, path: &str| RouteFamily::of(&method, path);
        assert_eq!(
            of(Method::GET, "/status/{system_name}/nodes"),
            Some(RouteFamily::StatusRead)
        );
        assert_eq!(
            of(Method::GET, "/compute/{system_name}/jobs/{job_id}"),
            Some(RouteFamily::ComputeRead)
        );
        for method in [Method::POST, Method::DELETE, Method::PUT] {
            assert_eq!(
                of(method, "/compute/{system_name}/jobs"),
                Some(RouteFamily::ComputeWrite)
            );
        }
        assert_eq!(
            of(Method::GET, "/filesystem/{system_name}/ops/download"),
            Some(RouteFamily::FilesystemRead)
        );
        assert_eq!(
            of(Method::POST, "/filesystem/{system_name}/ops/upload"),
            Some(RouteFamily::FilesystemWrite)
        );
        assert_eq!(
            of(Method::DELETE, "/filesystem/{system_name}/ops/rm"),
            Some(RouteFamily::FilesystemWrite)
        );
        assert_eq!(
            of(Method::DELETE, "/filesystem/{system_name}/transfer/rm"),
            Some(RouteFamily::Transfer)
        );
        assert_eq!(of(Method::GET, "/status/systems"), None);
        assert_eq!(of(Method::POST, "/status/{system_name}/nodes"), None);
        assert_eq!(of(Method::GET, "/storage/{system_name}/x"), None);
    }
}
