//! [`ApiError`]: every error a request can meet, mapped to a status and FirecREST's error
//! body (wire reference §0) here and nowhere else. 5xx details are logged once, here.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ironcrest_auth::AuthError;
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
    Service {
        error: ServiceError,
        user: String,
    },
}

impl ApiError {
    fn status_and_message(&self) -> (StatusCode, String) {
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
        ServiceError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
        ServiceError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        ServiceError::Ssh(ssh) | ServiceError::Scheduler(SchedulerError::Ssh(ssh)) => {
            ssh_status(ssh)
        }
        ServiceError::Command(command) => command_status(command),
        ServiceError::Scheduler(SchedulerError::Command { .. }) => {
            StatusCode::INTERNAL_SERVER_ERROR
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

/// FirecREST's reading of a failed remote command; the first match wins.
fn command_status(error: &CommandError) -> StatusCode {
    match error {
        CommandError::Failed {
            exit_status: 124, ..
        } => StatusCode::REQUEST_TIMEOUT,
        CommandError::Failed { stderr, .. } if stderr.contains("No such file or directory") => {
            StatusCode::NOT_FOUND
        }
        CommandError::Failed { stderr, .. }
            if stderr.contains("Permission denied")
                || stderr.contains("Operation not permitted") =>
        {
            StatusCode::FORBIDDEN
        }
        CommandError::Failed { stderr, .. }
            if stderr.contains("File exists") || stderr.contains("invalid user") =>
        {
            StatusCode::BAD_REQUEST
        }
        CommandError::Failed { .. } | CommandError::UnexpectedOutput { .. } => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
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
        if status.is_server_error() {
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
            _ => ("error", None),
        };
        let body = ErrorBody {
            error_type,
            message,
            caused_by: None,
            data,
            user,
        };
        let mut response = (status, axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
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
            (failed(1, "boom"), 500),
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
}
