//! Routes, one module per FirecREST service.

pub mod admin;
pub mod compute;
pub mod filesystem;
pub mod status;
pub mod tasks;
pub mod transfer;

use axum::Json;
use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use crate::AppState;
use crate::audit::{AuditArgs, AuditRecord};
use crate::error::ApiError;

/// The `system_name` path parameter's description.
const SYSTEM_NAME: &str = "A system's name as `GET /status/systems` lists it (compared case-insensitively); any other is 404.";

/// The description of the documented `4XX` answers.
const REFUSED: &str = "Refused: invalid input (400; `errorType` `validation` for a malformed value), \
     a missing or invalid token (401), not permitted on the system (403), no such system, file or \
     job (404), not in a state that allows it (409), too large (413); or the cluster did not \
     answer in time (408) or could not be reached (424).";

/// The `If-None-Match` header of a conditional route (docs/conditional-gets.md).
const IF_NONE_MATCH: &str = "Tags of answers the client holds (a list, `*`, weak tags compared weakly); \
     the `ETag` of a `200` is a strong tag of its body. If the answer's tag is among them, the \
     answer is `304` without a body.";

/// The description of a conditional route's `304` answer.
const NOT_MODIFIED: &str = "Not modified: `If-None-Match` names this answer's tag. No body.";

/// The description of the documented `5XX` answers, for operations that use the cluster.
const FAILED: &str = "The cluster failed: the system, its scheduler or a file system is unhealthy or \
     unavailable (503), a tool or the scheduler answered what Ironcrest cannot read (502) or could \
     not run (500), the scheduler does not support the request (501), or the storage is full (507).";

pub fn router() -> Router<AppState> {
    status::router()
        .merge(compute::router())
        .merge(filesystem::router())
        .merge(transfer::router())
        .merge(tasks::router())
        .merge(admin::router())
        .fallback(|| async { ApiError::RouteNotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
}

/// Query parameters, with failures answered as FirecREST validation errors (400).
pub struct ValidQuery<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ValidQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        Query::<T>::try_from_uri(&parts.uri)
            .map(|Query(value)| ValidQuery(value))
            .map_err(|rejection| ApiError::Validation {
                location: "query",
                name: String::new(),
                message: rejection.body_text(),
            })
    }
}

/// A JSON body, with failures answered as FirecREST validation errors (400).
pub struct ValidJson<T>(pub T);

impl<T: DeserializeOwned + AuditArgs, S: Send + Sync> FromRequest<S> for ValidJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let audit = AuditRecord::of(request.extensions());
        let Json(value) = Json::<T>::from_request(request, state)
            .await
            .map_err(|rejection| ApiError::Validation {
                location: "body",
                name: String::new(),
                message: rejection.body_text(),
            })?;
        if let Some(record) = audit {
            value.audit_args(&record);
        }
        Ok(ValidJson(value))
    }
}

/// Booleans as FastAPI reads them: true/false, 1/0, yes/no, on/off.
pub fn lenient_bool<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    let text = String::deserialize(deserializer)?;
    match text.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" | "t" | "y" => Ok(true),
        "false" | "0" | "no" | "off" | "f" | "n" => Ok(false),
        _ => Err(serde::de::Error::custom(format!(
            "Input should be a valid boolean, unable to interpret input '{text}'"
        ))),
    }
}
