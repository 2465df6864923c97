//! FirecREST v1's errors: `{"description": <what failed>, "error": <why>}` with v1's
//! statuses and its error headers (`X-Machine-Does-Not-Exist`, `X-Invalid-Path`,
//! `X-Permission-Denied`, `X-Timeout`, …), which v1 clients test for by name (pyfirecrest
//! raises its `HeaderException` when one is present). Every error is first what v2 answers
//! ([`ApiError`], mapped to HTTP in `crate::error` once): this module only reshapes it, so
//! a refusal's status headers (`Retry-After`, `WWW-Authenticate`, rate-limit fields) and its
//! log line are v2's.

use axum::Json;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ironcrest_gateway::Denial;
use ironcrest_remote::CommandError;
use ironcrest_services::ServiceError;
use ironcrest_ssh::SshError;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;

/// v1's error body.
#[derive(Debug, Serialize, ToSchema)]
pub struct V1ErrorBody {
    /// What failed, e.g. `Error on ls operation`.
    pub description: String,
    /// Why, e.g. the tool's message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// An error of a v1 route: the v2 error and the operation it interrupted.
#[derive(Debug)]
pub struct V1Error {
    /// Boxed: an `ApiError` is large, and every v1 result carries this.
    pub error: Box<ApiError>,
    /// v1's `description`, e.g. `Error on ls operation`.
    pub operation: String,
}

impl V1Error {
    pub fn new(operation: impl Into<String>, error: ApiError) -> Self {
        Self {
            error: Box::new(error),
            operation: operation.into(),
        }
    }
}

/// What v1 says of an error beyond v2's status: its own status, and the error header that
/// names the kind of failure with its fixed text.
struct V1Reading {
    status: StatusCode,
    header: Option<(&'static str, &'static str)>,
    /// v1's own wording replaces v2's message (a timeout's fixed sentence, which
    /// pyfirecrest compares to decide to fall back to a job).
    message: Option<&'static str>,
}

/// The sentence v1 answers a timeout with, word for word.
pub const TIMEOUT: &str = "Command has finished with timeout signal";

const MACHINE_MISSING: (&str, &str) = ("x-machine-does-not-exist", "Machine does not exist");
const MACHINE_UNAVAILABLE: (&str, &str) = ("x-machine-not-available", "Machine is not available");
const PERMISSION_DENIED: (&str, &str) = (
    "x-permission-denied",
    "User does not have permissions to access machine or path",
);
const INVALID_PATH: (&str, &str) = ("x-invalid-path", "path is an invalid path");
const NOT_FOUND: (&str, &str) = ("x-not-found", "sourcePath not found");
const EXISTS: (&str, &str) = ("x-exists", "targetPath already exists");
const NOT_A_DIRECTORY: (&str, &str) = ("x-not-a-directory", "targetPath is not a directory");
const A_DIRECTORY: (&str, &str) = ("x-a-directory", "path is a directory");
const INVALID_OWNER: (&str, &str) = ("x-invalid-owner", "owner is an invalid user");
const INVALID_GROUP: (&str, &str) = ("x-invalid-group", "group is an invalid group");
const INVALID_MODE: (&str, &str) = ("x-invalid-mode", "mode is an invalid mode");
const SIZE_LIMIT: (&str, &str) = ("x-size-limit", "File exceeds size limit");
const FAILED: (&str, &str) = ("x-error", "The operation failed");

/// The error headers v1 clients know (names in lower case, as HTTP/2 sends them; clients
/// compare them case-insensitively), for the OpenAPI document.
pub const HEADERS: &[(&str, &str)] = &[
    MACHINE_MISSING,
    MACHINE_UNAVAILABLE,
    PERMISSION_DENIED,
    INVALID_PATH,
    NOT_FOUND,
    EXISTS,
    NOT_A_DIRECTORY,
    A_DIRECTORY,
    INVALID_OWNER,
    INVALID_GROUP,
    INVALID_MODE,
    SIZE_LIMIT,
    ("x-timeout", TIMEOUT),
    FAILED,
];

/// How v1 reads a failed tool's message: the strerror texts of `TOOL_MESSAGES` in
/// `crate::error` and the tools' own words, as FirecREST v1 matched them; first match wins.
const TOOL_HEADERS: &[(&str, (&str, &str))] = &[
    ("cannot stat", NOT_FOUND),
    ("No such file or directory", INVALID_PATH),
    ("Permission denied", PERMISSION_DENIED),
    ("Operation not permitted", PERMISSION_DENIED),
    ("Read-only file system", PERMISSION_DENIED),
    ("File exists", EXISTS),
    ("Not a directory", NOT_A_DIRECTORY),
    ("Is a directory", A_DIRECTORY),
    ("invalid user", INVALID_OWNER),
    ("invalid group", INVALID_GROUP),
    ("invalid mode", INVALID_MODE),
];

fn reading(error: &ApiError, v2_status: StatusCode) -> V1Reading {
    let v2 = V1Reading {
        status: v2_status,
        header: None,
        message: None,
    };
    let refused = |header| V1Reading {
        status: StatusCode::BAD_REQUEST,
        header: Some(header),
        message: None,
    };
    let timeout = V1Reading {
        status: StatusCode::BAD_REQUEST,
        header: Some(("x-timeout", TIMEOUT)),
        message: Some(TIMEOUT),
    };
    match error {
        ApiError::Denied(Denial::Forbidden { .. }) => V1Reading {
            header: Some(PERMISSION_DENIED),
            ..v2
        },
        ApiError::Service { error, .. } => match error {
            ServiceError::SystemNotFound => refused(MACHINE_MISSING),
            ServiceError::Unhealthy { .. } => refused(MACHINE_UNAVAILABLE),
            ServiceError::TooLarge(_) => refused(SIZE_LIMIT),
            ServiceError::Scheduler(ironcrest_scheduler::SchedulerError::AccessDenied {
                ..
            }) => V1Reading {
                header: Some(PERMISSION_DENIED),
                ..v2
            },
            ServiceError::InvalidField { field: "mode", .. } => refused(INVALID_MODE),
            ServiceError::InvalidField { field: "owner", .. } => refused(INVALID_OWNER),
            ServiceError::InvalidField { field: "group", .. } => refused(INVALID_GROUP),
            ServiceError::Ssh(ssh)
            | ServiceError::Scheduler(ironcrest_scheduler::SchedulerError::Ssh(ssh)) => match ssh {
                SshError::CommandTimeout => timeout,
                SshError::ConnectTimeout
                | SshError::LoginTimeout
                | SshError::ConnectionFailed(_)
                | SshError::ConnectionLost(_)
                | SshError::HostKeyRejected { .. }
                | SshError::PoolFull => refused(MACHINE_UNAVAILABLE),
                SshError::AuthenticationFailed { .. } => refused(PERMISSION_DENIED),
                _ => v2,
            },
            ServiceError::Command(CommandError::Failed {
                exit_status: 124, ..
            }) => timeout,
            ServiceError::Command(CommandError::Failed { stderr, .. })
                if v2_status.is_client_error() =>
            {
                let header = TOOL_HEADERS
                    .iter()
                    .find(|(text, _)| stderr.contains(text))
                    .map_or(FAILED, |(_, header)| *header);
                refused(header)
            }
            _ => v2,
        },
        _ => v2,
    }
}

impl IntoResponse for V1Error {
    fn into_response(self) -> Response {
        let (v2_status, v2_message) = self.error.status_and_message();
        let reading = reading(&self.error, v2_status);
        // v2's response first: its log line and its headers (Retry-After, WWW-Authenticate).
        let (mut parts, _) = (*self.error).into_response().into_parts();
        parts.status = reading.status;
        parts.headers.remove(header::CONTENT_LENGTH);
        if let Some((name, text)) = reading.header {
            parts.headers.insert(
                HeaderName::from_static(name),
                HeaderValue::from_static(text),
            );
        }
        let body = V1ErrorBody {
            description: self.operation,
            error: Some(reading.message.map_or(v2_message, str::to_string)),
        };
        let (_, body) = Json(body).into_response().into_parts();
        Response::from_parts(parts, body)
    }
}
