//! FirecREST v1, served beside v2 under a prefix (`v1.prefix`, `/v1` by default) as a wire
//! façade over the same services: each v1 route reads v1's request (the system in the
//! `X-Machine-Name` header, form-encoded bodies), calls the service v2's route calls
//! through the same [`Call`] (token, system, gateway, audit, metrics), and answers in v1's
//! shapes (`{"description", "output"}`, tasks) and errors ([`error`]). docs/v1.md says
//! what is served and how it differs from FirecREST v1.
//!
//! v1's asynchronous operations answer with a task ([`tasks`]): its id says what the task
//! is, so no task store is kept and any replica answers for it.

mod compute;
mod error;
mod form;
mod openapi;
mod reservations;
mod status;
mod storage;
mod tasks;
mod utilities;

use std::collections::BTreeMap;
use std::ops::Deref;

use axum::Router;
use axum::extract::{FromRequestParts, MatchedPath, Path};
use axum::http::StatusCode;
use axum::http::request::Parts;
use ironcrest_gateway::RouteFamily;
use ironcrest_services::ServiceError;

pub use error::{TIMEOUT, V1Error, V1ErrorBody};

use crate::AppState;
use crate::auth::AuthenticatedUser;
use crate::call::{Call, RequestHead};
use crate::error::ApiError;

/// The header v1 names the system in.
pub const MACHINE_HEADER: &str = "x-machine-name";

/// The FirecREST v1 release whose API is served: pyfirecrest's v1 client reads it from
/// `/status/parameters` (`FIRECREST_VERSION`) to enable what that release has (compress,
/// extract, nodes, partitions and reservations from 1.16.0).
pub const V1_VERSION: &str = "1.16.0";

/// The v1 routes, nested under `prefix`.
pub fn router(prefix: &str) -> Router<AppState> {
    let v1 = status::router()
        .merge(utilities::router())
        .merge(compute::router())
        .merge(storage::router())
        .merge(tasks::router())
        .merge(reservations::router())
        .fallback(|| async { V1Error::new("Not Found", ApiError::RouteNotFound) })
        .method_not_allowed_fallback(|| async {
            V1Error::new("Method Not Allowed", ApiError::MethodNotAllowed)
        });
    Router::new().nest(prefix, v1)
}

/// The v1 OpenAPI document at `<prefix>/openapi.json` and its pages (`<prefix>/docs`,
/// `<prefix>/redoc`).
pub fn docs(prefix: &str) -> Router {
    openapi::router(prefix)
}

pub use openapi::{OPERATIONS, document};

/// The route's template under the v1 prefix (`/utilities/ls`).
fn template(parts: &Parts, state: &AppState) -> Option<String> {
    let matched = parts.extensions.get::<MatchedPath>()?.as_str();
    matched
        .strip_prefix(state.v1.prefix.as_str())
        .map(str::to_string)
}

/// v1's `description` of an error on a route: `Error on <operation> operation`, named by
/// the template's last literal segment (`/utilities/ls` → `ls`).
fn operation(template: &str) -> String {
    let name = template
        .rsplit('/')
        .find(|segment| !segment.is_empty() && !segment.starts_with('{'))
        .unwrap_or("v1");
    format!("Error on {name} operation")
}

/// A v1 request on one system, named by the `X-Machine-Name` header: the same [`Call`] as
/// v2's routes take (token 401, system, gateway), the route's family from its template
/// ([`RouteFamily::of_v1`]). Its refusals are v1 errors.
pub struct MachineCall {
    pub call: Call,
    /// v1's `description` of this route's errors.
    pub operation: String,
}

impl Deref for MachineCall {
    type Target = Call;

    fn deref(&self) -> &Call {
        &self.call
    }
}

impl MachineCall {
    /// A service error as v1 answers it.
    pub fn fail(&self, error: ServiceError) -> V1Error {
        V1Error::new(self.operation.clone(), self.call.error(error))
    }

    /// A refusal made before the service was called (a missing field, a bad value).
    pub fn refuse(&self, error: ApiError) -> V1Error {
        V1Error::new(self.operation.clone(), error)
    }
}

impl FromRequestParts<AppState> for MachineCall {
    type Rejection = V1Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, V1Error> {
        let template = template(parts, state).unwrap_or_default();
        let operation = operation(&template);
        let fail = |error| V1Error::new(operation.clone(), error);
        let family = RouteFamily::of_v1(parts.method.as_str(), &template)
            .ok_or_else(|| fail(internal("the v1 route is in no route family")))?;
        let head = RequestHead::of(parts, state).map_err(fail)?;
        let user = AuthenticatedUser::from_request_parts(parts, state)
            .await
            .map_err(fail)?;
        let system = parts
            .headers
            .get(MACHINE_HEADER)
            .and_then(|value| value.to_str().ok())
            .filter(|system| !system.is_empty())
            .map(str::to_string)
            .ok_or_else(|| {
                fail(ApiError::Validation {
                    location: "header",
                    name: "X-Machine-Name".into(),
                    message: "No machine name given: the X-Machine-Name header names the system."
                        .into(),
                })
            })?;
        let Path(params) = Path::<BTreeMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| {
                fail(ApiError::Http {
                    status: rejection.status(),
                    message: rejection.body_text(),
                })
            })?;
        let call = Call::on_system(&head, state, user, &system, family, params)
            .await
            .map_err(fail)?;
        Ok(MachineCall { call, operation })
    }
}

/// A route wired against these rules: a server bug, answered (and logged) as a 500.
fn internal(message: &str) -> ApiError {
    ApiError::Http {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        message: format!("Internal Server Error: {message}"),
    }
}

/// v1's success body: `{"description": …, "output": …}`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Described<T> {
    pub description: &'static str,
    pub output: T,
}

impl<T> Described<T> {
    pub fn new(description: &'static str, output: T) -> axum::Json<Self> {
        axum::Json(Self {
            description,
            output,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_operation_by_its_route() {
        assert_eq!(operation("/utilities/ls"), "Error on ls operation");
        assert_eq!(
            operation("/compute/jobs/{jobid}"),
            "Error on jobs operation"
        );
        assert_eq!(operation(""), "Error on v1 operation");
    }
}
