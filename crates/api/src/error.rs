//! [`ApiError`]: every error a request can meet, mapped to a status and FirecREST's error
//! body (wire reference §0) here and nowhere else. 5xx details are logged once, here.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ironcrest_auth::AuthError;
use ironcrest_gateway::Denial;
use ironcrest_remote::CommandError;
use ironcrest_s3::S3Error;
use ironcrest_scheduler::SchedulerError;
use ironcrest_services::ServiceError;
use ironcrest_ssh::SshError;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// `error` or `validation`.
    pub error_type: &'static str,
    pub message: String,
    pub caused_by: Option<Vec<String>>,
    pub data: Option<serde_json::Value>,
    pub user: Option<String>,
    /// `maintenance` when the system is under maintenance (firecrest-ui's maintenance page);
    /// `overloaded` when the server sheds load (retry after `Retry-After`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

#[derive(Debug)]
pub enum ApiError {
    /// No bearer token, or another scheme.
    NotAuthenticated,
    Auth(AuthError),
    /// The token's user name is not a POSIX user name.
    InvalidUsername,
    /// A query, path or body value failed validation.
    Validation {
        location: &'static str,
        name: String,
        message: String,
    },
    RouteNotFound,
    MethodNotAllowed,
    /// An error response made outside the handlers (an extractor's or a layer's).
    Http {
        status: StatusCode,
        message: String,
    },
    Service {
        error: ServiceError,
        user: String,
    },
    /// The gateway refused the request.
    Denied(Denial),
    /// The request's `Idempotency-Key` already started work for another request.
    IdempotencyKeyReused,
}

impl ApiError {
    pub(crate) fn status_and_message(&self) -> (StatusCode, String) {
        match self {
            ApiError::NotAuthenticated => (StatusCode::UNAUTHORIZED, "Not authenticated".into()),
            ApiError::Auth(err @ AuthError::MissingClaim { .. }) => {
                (StatusCode::BAD_REQUEST, err.to_string())
            }
            ApiError::Auth(err) => (StatusCode::UNAUTHORIZED, err.to_string()),
            ApiError::InvalidUsername => {
                (StatusCode::UNAUTHORIZED, "Access token is invalid.".into())
            }
            ApiError::Validation { message, .. } => (StatusCode::BAD_REQUEST, message.clone()),
            ApiError::RouteNotFound => (StatusCode::NOT_FOUND, "Not Found".into()),
            ApiError::MethodNotAllowed => {
                (StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed".into())
            }
            ApiError::Http { status, message } if message.is_empty() => (
                *status,
                status.canonical_reason().unwrap_or("Error").to_string(),
            ),
            ApiError::Http { status, message } => (*status, message.clone()),
            ApiError::Denied(denial) => (denial_status(denial), denial.to_string()),
            ApiError::IdempotencyKeyReused => (
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "This {} was already used with another request (method, route, system, user, query or body differ); use a new key for a new request.",
                    crate::idempotency::HEADER
                ),
            ),
            ApiError::Service { error, .. } => (service_status(error), error.to_string()),
        }
    }
}

fn service_status(error: &ServiceError) -> StatusCode {
    match error {
        ServiceError::SystemNotFound => StatusCode::NOT_FOUND,
        ServiceError::Unhealthy { .. } | ServiceError::FilesystemUnhealthy { .. } => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        ServiceError::InvalidRequest(_) | ServiceError::InvalidField { .. } => {
            StatusCode::BAD_REQUEST
        }
        ServiceError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        ServiceError::TooMuchWork(_) | ServiceError::TooManyWatches(_) => {
            StatusCode::TOO_MANY_REQUESTS
        }
        ServiceError::Ssh(ssh) | ServiceError::Scheduler(SchedulerError::Ssh(ssh)) => {
            ssh_status(ssh)
        }
        ServiceError::Command(command) => command_status(command),
        ServiceError::Scheduler(SchedulerError::Command { source, .. }) => {
            scheduler_command_status(source)
        }
        ServiceError::Scheduler(SchedulerError::Unavailable { .. }) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        ServiceError::Scheduler(SchedulerError::JobNotFound) => StatusCode::NOT_FOUND,
        ServiceError::Scheduler(SchedulerError::JobNotActive { .. }) => StatusCode::CONFLICT,
        ServiceError::Scheduler(
            SchedulerError::InvalidArgument(_) | SchedulerError::Rejected { .. },
        ) => StatusCode::BAD_REQUEST,
        ServiceError::Scheduler(
            SchedulerError::PolicyLimit { .. } | SchedulerError::AccessDenied { .. },
        ) => StatusCode::FORBIDDEN,
        // slurmrestd misbehaving is a bad gateway; unreachable, or refusing a token Ironcrest
        // accepted, is a failed dependency like an unreachable SSH host.
        ServiceError::Scheduler(SchedulerError::RestApi { .. }) => StatusCode::BAD_GATEWAY,
        ServiceError::Scheduler(
            SchedulerError::RestUnavailable(_) | SchedulerError::RestTokenRefused { .. },
        ) => StatusCode::FAILED_DEPENDENCY,
        ServiceError::Scheduler(SchedulerError::NotSupported(_)) => StatusCode::NOT_IMPLEMENTED,
        ServiceError::Misconfigured(_) => StatusCode::INTERNAL_SERVER_ERROR,
        ServiceError::UploadOver(_) | ServiceError::TaskEnded { .. } => StatusCode::CONFLICT,
        ServiceError::TaskNotFound(_) => StatusCode::NOT_FOUND,
        // Like the scheduler's REST API: a store refusing Ironcrest's signed request is a
        // bad gateway, an unreachable one a failed dependency.
        ServiceError::Staging(S3Error::Refused { .. }) => StatusCode::BAD_GATEWAY,
        ServiceError::Staging(S3Error::Unreachable { .. }) => StatusCode::FAILED_DEPENDENCY,
        ServiceError::Staging(S3Error::InvalidBucket(_)) => StatusCode::BAD_REQUEST,
        ServiceError::Staging(S3Error::Signing(_)) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn ssh_status(error: &SshError) -> StatusCode {
    match error {
        SshError::ConnectTimeout
        | SshError::LoginTimeout
        | SshError::CommandTimeout
        | SshError::KeyServiceTimeout => StatusCode::REQUEST_TIMEOUT,
        SshError::OutputTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        SshError::ConnectionFailed(_)
        | SshError::ConnectionLost(_)
        | SshError::Protocol(_)
        | SshError::AuthenticationFailed { .. }
        | SshError::HostKeyRejected { .. }
        | SshError::ChannelOpenFailed(_)
        | SshError::PoolFull => StatusCode::FAILED_DEPENDENCY,
        SshError::Credentials(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// What a tool's message means, by the error text it prints (`strerror` under `LC_ALL=C`,
/// or the tool's own words); the first match wins. A tool refusing the caller's input is a
/// 4xx carrying the tool's message; only a broken cluster is a 5xx.
const TOOL_MESSAGES: &[(&str, StatusCode)] = &[
    // ENOENT
    ("No such file or directory", StatusCode::NOT_FOUND),
    // EACCES, EPERM, EROFS: the cluster refuses this user this change.
    ("Permission denied", StatusCode::FORBIDDEN),
    ("Operation not permitted", StatusCode::FORBIDDEN),
    ("Read-only file system", StatusCode::FORBIDDEN),
    // ENOSPC, EDQUOT: the request is fine, the storage is full.
    ("No space left on device", StatusCode::INSUFFICIENT_STORAGE),
    ("Disk quota exceeded", StatusCode::INSUFFICIENT_STORAGE),
    // The file system itself is failing: EIO, ESTALE, ENOTCONN (a dead FUSE mount).
    ("Input/output error", StatusCode::SERVICE_UNAVAILABLE),
    ("Stale file handle", StatusCode::SERVICE_UNAVAILABLE),
    (
        "Transport endpoint is not connected",
        StatusCode::SERVICE_UNAVAILABLE,
    ),
    ("Cannot allocate memory", StatusCode::SERVICE_UNAVAILABLE),
];

/// FirecREST's reading of a failed remote command.
fn command_status(error: &CommandError) -> StatusCode {
    match error {
        CommandError::Failed {
            exit_status: 124, ..
        } => StatusCode::REQUEST_TIMEOUT,
        CommandError::Failed { stderr, .. } => {
            if let Some((_, status)) = TOOL_MESSAGES.iter().find(|(text, _)| stderr.contains(text))
            {
                *status
            } else {
                failed_tool_status(error)
            }
        }
        // The tool succeeded but printed what Ironcrest cannot read: the cluster's tools
        // are not what Ironcrest expects.
        CommandError::UnexpectedOutput { .. } => StatusCode::BAD_GATEWAY,
    }
}

/// A failure whose message is not in [`TOOL_MESSAGES`]: the tool refused the input
/// (ENAMETOOLONG, EISDIR, ENOTEMPTY, an unknown group, not an archive, …), unless it could
/// not run at all (126, 127: the cluster lacks it) or was killed by a signal.
fn failed_tool_status(error: &CommandError) -> StatusCode {
    match error {
        CommandError::Failed {
            exit_status: 126 | 127,
            ..
        } => StatusCode::INTERNAL_SERVER_ERROR,
        CommandError::Failed { exit_status, .. } if *exit_status > 128 => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        _ => StatusCode::BAD_REQUEST,
    }
}

/// A scheduler command that failed: its message read like a tool's, but a failure the
/// table does not know is the scheduler's (503), not the caller's.
fn scheduler_command_status(error: &CommandError) -> StatusCode {
    match command_status(error) {
        StatusCode::BAD_REQUEST => StatusCode::SERVICE_UNAVAILABLE,
        status => status,
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        ApiError::Auth(err)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = self.status_and_message();
        let user = match &self {
            ApiError::Service { user, .. } => Some(user.clone()),
            _ => None,
        };
        if let ApiError::Denied(_) = &self {
            // The gateway logged the decision with its layer.
        } else if status.is_server_error() {
            tracing::error!(status = status.as_u16(), error = ?self, "request failed");
        } else if let ApiError::Auth(err) = &self {
            tracing::info!(
                status = status.as_u16(),
                reason = err.reason(),
                "token refused"
            );
        } else {
            tracing::info!(status = status.as_u16(), message = %message, "request refused");
        }
        let (error_type, data) = match &self {
            ApiError::Validation {
                location,
                name,
                message,
            } => (
                "validation",
                Some(
                    serde_json::json!({"fields": [{"location": location, "name": name, "message": message}]}),
                ),
            ),
            ApiError::Service {
                error: ServiceError::InvalidField { field, message },
                ..
            } => (
                "validation",
                Some(serde_json::json!({"fields": [{"name": field, "message": message}]})),
            ),
            _ => ("error", None),
        };
        let reason = match &self {
            ApiError::Denied(Denial::Maintenance { .. }) => Some("maintenance"),
            ApiError::Denied(Denial::Overloaded { .. }) => Some("overloaded"),
            _ => None,
        };
        let body = ErrorBody {
            error_type,
            message,
            caused_by: None,
            data,
            user,
            reason,
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let ApiError::Denied(Denial::Maintenance {
            retry_after: Some(wait),
            ..
        }) = &self
        {
            // Whole seconds, rounded up: a client retrying then finds the window over.
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let ApiError::Denied(Denial::TooManyRequests {
            retry_after, rate, ..
        }) = &self
        {
            too_many_requests_headers(response.headers_mut(), *retry_after, rate.as_ref());
        }
        if let ApiError::Denied(Denial::Overloaded { retry_after, .. }) = &self {
            too_many_requests_headers(response.headers_mut(), *retry_after, None);
        }
        if let ApiError::Service {
            error: ServiceError::TooMuchWork(_),
            ..
        } = &self
        {
            // pyfirecrest sleeps this long and asks again: by then a job may have ended.
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(WORK_RETRY_AFTER_SECS),
            );
        }
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// When a client refused for too much unfinished work is told to ask again.
const WORK_RETRY_AFTER_SECS: u64 = 10;

fn denial_status(denial: &Denial) -> StatusCode {
    match denial {
        Denial::Forbidden { .. } => StatusCode::FORBIDDEN,
        Denial::Maintenance { .. } => StatusCode::SERVICE_UNAVAILABLE,
        Denial::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        Denial::Terminated { status, .. } => {
            StatusCode::from_u16(*status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
        }
        Denial::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
        Denial::Overloaded { status, .. } => {
            StatusCode::from_u16(*status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
        }
    }
}

/// A 429's `Retry-After` (whole seconds, rounded up, at least 1: pyfirecrest sleeps that
/// long and retries) and, for a token bucket, the `RateLimit-Policy` and `RateLimit` fields
/// of draft-ietf-httpapi-ratelimit-headers-07 (`10;w=1`, `limit=10, remaining=0, reset=1`).
fn too_many_requests_headers(
    headers: &mut axum::http::HeaderMap,
    retry_after: std::time::Duration,
    rate: Option<&ironcrest_gateway::RateState>,
) {
    let seconds = ironcrest_gateway::whole_seconds(retry_after);
    headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    if let Some(rate) = rate {
        for (name, value) in [
            ("ratelimit-policy", rate.policy.clone()),
            ("ratelimit", rate.header()),
        ] {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(exit_status: u32, stderr: &str) -> ServiceError {
        ServiceError::Command(CommandError::Failed {
            exit_status,
            stderr: stderr.into(),
        })
    }

    #[test]
    fn every_error_maps_to_its_firecrest_status() {
        let cases: Vec<(ApiError, u16)> = vec![
            (ApiError::NotAuthenticated, 401),
            (
                ApiError::Auth(AuthError::MissingClaim {
                    claim: "preferred_username".into(),
                }),
                400,
            ),
            (ApiError::InvalidUsername, 401),
            (ApiError::RouteNotFound, 404),
            (ApiError::MethodNotAllowed, 405),
        ];
        let service_cases: Vec<(ServiceError, u16)> = vec![
            (ServiceError::SystemNotFound, 404),
            (
                ServiceError::Unhealthy {
                    service: "ssh",
                    system: "c".into(),
                },
                503,
            ),
            (
                ServiceError::FilesystemUnhealthy {
                    filesystem: "/home".into(),
                    system: "c".into(),
                },
                503,
            ),
            (ServiceError::InvalidRequest("bad path".into()), 400),
            (ServiceError::TaskNotFound("mv-1".into()), 404),
            (
                ServiceError::TaskEnded {
                    task_id: "mv-1".into(),
                    state: "succeeded",
                },
                409,
            ),
            (ServiceError::TooLarge("File to upload is too large."), 413),
            (ServiceError::Scheduler(SchedulerError::JobNotFound), 404),
            (
                ServiceError::Scheduler(SchedulerError::JobNotActive {
                    job_id: "1".into(),
                    state: "COMPLETED".into(),
                }),
                409,
            ),
            (
                ServiceError::Scheduler(SchedulerError::InvalidArgument("x".into())),
                400,
            ),
            (
                ServiceError::Scheduler(SchedulerError::Rejected {
                    scheduler: "Slurm",
                    message: "Invalid partition name specified".into(),
                }),
                400,
            ),
            (
                ServiceError::Scheduler(SchedulerError::PolicyLimit {
                    message: "QOSMaxSubmitJobPerUserLimit".into(),
                }),
                403,
            ),
            (
                ServiceError::Scheduler(SchedulerError::AccessDenied {
                    scheduler: "Slurm",
                    message: "Access/permission denied".into(),
                }),
                403,
            ),
            (
                ServiceError::Scheduler(SchedulerError::RestApi {
                    status: 500,
                    message: "x".into(),
                }),
                502,
            ),
            (
                ServiceError::Scheduler(SchedulerError::RestUnavailable("refused".into())),
                424,
            ),
            (
                ServiceError::Scheduler(SchedulerError::RestTokenRefused {
                    message: "Unspecified error".into(),
                }),
                424,
            ),
            (
                ServiceError::Scheduler(SchedulerError::NotSupported("metadata".into())),
                501,
            ),
            (ServiceError::Misconfigured("no work dir".into()), 500),
            (ServiceError::TooManyWatches("32 streams".into()), 429),
            (
                ServiceError::Staging(S3Error::Refused {
                    operation: "CreateBucket",
                    status: 403,
                    code: "AccessDenied".into(),
                    message: String::new(),
                }),
                502,
            ),
            (
                ServiceError::Staging(S3Error::Unreachable {
                    endpoint: "http://s3".into(),
                    message: "refused".into(),
                }),
                424,
            ),
            (
                ServiceError::Staging(S3Error::InvalidBucket("A_b".into())),
                400,
            ),
            (ServiceError::Ssh(SshError::CommandTimeout), 408),
            (ServiceError::Ssh(SshError::ConnectTimeout), 408),
            (
                ServiceError::Ssh(SshError::OutputTooLarge { limit: 10 }),
                413,
            ),
            (ServiceError::Ssh(SshError::PoolFull), 424),
            (
                ServiceError::Ssh(SshError::ConnectionFailed("reset".into())),
                424,
            ),
            (failed(124, ""), 408),
            (
                failed(2, "ls: cannot access '/x': No such file or directory"),
                404,
            ),
            (failed(1, "rm: cannot remove '/x': Permission denied"), 403),
            (
                failed(
                    1,
                    "chown: changing ownership of '/x': Operation not permitted",
                ),
                403,
            ),
            (
                failed(1, "mkdir: cannot create directory '/x': File exists"),
                400,
            ),
            (failed(1, "chown: invalid user: 'nobody2'"), 400),
            (failed(1, "boom"), 400),
            (failed(127, "sh: 1: sbatch: not found"), 500),
            (failed(137, ""), 503),
            (
                ServiceError::Command(CommandError::UnexpectedOutput {
                    command: "ls",
                    detail: "?".into(),
                }),
                502,
            ),
            (
                ServiceError::Scheduler(SchedulerError::Command {
                    scheduler: "Slurm",
                    source: CommandError::Failed {
                        exit_status: 1,
                        stderr: "sacct: error: Problem talking to the database".into(),
                    },
                }),
                503,
            ),
            (
                ServiceError::Scheduler(SchedulerError::Unavailable {
                    scheduler: "Slurm",
                    message: "Unable to contact slurm controller".into(),
                }),
                503,
            ),
            (
                ServiceError::InvalidField {
                    field: "mode",
                    message: "Invalid mode".into(),
                },
                400,
            ),
        ];
        let all = cases
            .into_iter()
            .chain(service_cases.into_iter().map(|(error, status)| {
                (
                    ApiError::Service {
                        error,
                        user: "u".into(),
                    },
                    status,
                )
            }));
        for (error, status) in all {
            let description = format!("{error:?}");
            assert_eq!(
                error.into_response().status().as_u16(),
                status,
                "{description}"
            );
        }
    }

    #[test]
    fn unauthorized_responses_ask_for_a_bearer_token() {
        let response = ApiError::NotAuthenticated.into_response();
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
    }

    #[test]
    fn too_many_requests_carry_retry_after_and_the_rate_limit_fields() {
        let denial = |rate| {
            ApiError::Denied(Denial::TooManyRequests {
                layer: ironcrest_gateway::Layer::RateLimit,
                message: "slow down".into(),
                retry_after: std::time::Duration::from_millis(1200),
                rate,
            })
            .into_response()
        };
        let response = denial(Some(ironcrest_gateway::RateState {
            limit: 10,
            remaining: 0,
            reset: std::time::Duration::from_millis(1200),
            policy: "10;w=1".into(),
        }));
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
        assert_eq!(response.headers()["ratelimit-policy"], "10;w=1");
        assert_eq!(
            response.headers()["ratelimit"],
            "limit=10, remaining=0, reset=2"
        );
        let queued = denial(None);
        assert_eq!(queued.headers()[header::RETRY_AFTER], "2");
        assert!(queued.headers().get("ratelimit").is_none());
    }

    #[tokio::test]
    async fn a_shed_request_is_its_configured_status_with_retry_after_and_the_reason() {
        for status in [503, 429] {
            let response = ApiError::Denied(Denial::Overloaded {
                message: "The server is overloaded: …".into(),
                cause: ironcrest_gateway::ShedCause::QueueFull,
                retry_after: std::time::Duration::from_secs(2),
                status,
            })
            .into_response();
            assert_eq!(response.status().as_u16(), status);
            assert_eq!(response.headers()[header::RETRY_AFTER], "2");
            let body = axum::body::to_bytes(response.into_body(), 1 << 16)
                .await
                .unwrap();
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(body["reason"], "overloaded");
            assert_eq!(body["message"], "The server is overloaded: …");
        }
    }

    /// Errors as the real tools print them, made on this machine under `LC_ALL=C`: each
    /// status comes from the same table as the cluster's messages.
    #[test]
    fn real_tool_errors_map_to_client_errors() {
        let long = "n".repeat(256);
        let cases: Vec<(String, u16)> = vec![
            (format!("mkdir -- \"$D/{long}\""), 400), // ENAMETOOLONG
            (format!("ls -- \"$D/{long}\""), 400),
            ("cat -- \"$D\"".into(), 400), // EISDIR
            ("sha256sum --zero -- \"$D\"".into(), 400),
            ("head -c 1 -- \"$D\"".into(), 400),
            ("tail -c 1 -- \"$D\"".into(), 400),
            ("mkdir -- \"$D/sub\" && mkdir -- \"$D/sub\"".into(), 400), // EEXIST
            ("touch \"$D/f\" && ls -- \"$D/f/x\"".into(), 400),         // ENOTDIR
            ("mkdir -p \"$D/full/x\" && rmdir -- \"$D/full\"".into(), 400), // ENOTEMPTY
            ("ln -s loop \"$D/loop\" && cat -- \"$D/loop\"".into(), 400), // ELOOP
            (
                "touch \"$D/g\" && chown -- :nosuchgroup-ironcrest \"$D/g\"".into(),
                400,
            ),
            (
                "touch \"$D/u\" && chown -- nosuchuser-ironcrest \"$D/u\"".into(),
                400,
            ),
            ("touch \"$D/m\" && chmod -- '' \"$D/m\"".into(), 400),
            (
                "echo plain > \"$D/t\" && tar -xzf \"$D/t\" -C \"$D\"".into(),
                400,
            ),
            (
                "echo plain > \"$D/t2\" && tar -xf \"$D/t2\" -C \"$D\"".into(),
                400,
            ),
            ("ls -- \"$D/missing\"".into(), 404),
            ("rm -- \"$D/missing\"".into(), 404),
        ];
        for (script, status) in cases {
            let dir = tempfile::tempdir().unwrap();
            let output = std::process::Command::new("sh")
                .arg("-c")
                .arg(&script)
                .env("D", dir.path())
                .env("LC_ALL", "C")
                .output()
                .unwrap();
            assert!(!output.status.success(), "{script} succeeded");
            let error = CommandError::Failed {
                exit_status: output.status.code().unwrap() as u32,
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            };
            assert_eq!(command_status(&error).as_u16(), status, "{script}: {error}");
        }
    }
}
