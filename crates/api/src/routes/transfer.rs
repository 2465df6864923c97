//! `/filesystem/{system_name}/transfer/…`: file operations as scheduler jobs, and staged
//! uploads and downloads through S3 (wire reference §2.4). Paths are validated as for
//! the ops endpoints; each answer names the job, its logs, and what the client does next.

use axum::http::StatusCode;
use axum::routing::{delete, post};
use std::future::Future;

use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use ironcrest_remote::Caller;
use ironcrest_services::ServiceError;
use ironcrest_services::transfer::{self, TransferDirectives, TransferJob, TransferMethod};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ValidQuery;
use super::filesystem::{AbsolutePath, CompressBody, ExtractBody, QueryPath, audit_path, present};
use crate::AppState;
use crate::audit::{AuditArgs, AuditRecord};
use crate::call::Call;
use crate::error::ApiError;
use crate::idempotency::{Idempotent, RawJson};

#[derive(utoipa::OpenApi)]
#[openapi(paths(upload, download, mv, cp, rm, compress, extract))]
pub struct TransferDoc;

pub fn router() -> Router<AppState> {
    const TRANSFER: &str = "/filesystem/{system_name}/transfer";
    Router::new()
        .route(&format!("{TRANSFER}/upload"), post(upload))
        .route(&format!("{TRANSFER}/download"), post(download))
        .route(&format!("{TRANSFER}/mv"), post(mv))
        .route(&format!("{TRANSFER}/cp"), post(cp))
        .route(&format!("{TRANSFER}/rm"), delete(rm))
        .route(&format!("{TRANSFER}/compress"), post(compress))
        .route(&format!("{TRANSFER}/extract"), post(extract))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransferJobResponse {
    transfer_job: TransferJob,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StagedTransferResponse {
    transfer_job: TransferJob,
    transfer_directives: TransferDirectives,
}

/// How a staged transfer moves the data: through the system's S3 store, the one method
/// Ironcrest implements (another, such as v2's `streamer`, is a 400).
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // Describes the wire format only.
pub enum StagingMethod {
    S3,
}

/// The account a transfer job is charged to. Used only when the system's transfer-job
/// directives name `{account}`: then required, of letters, digits, `_`, `-` and `.` (else
/// 400); otherwise ignored.
#[derive(ToSchema)]
#[allow(dead_code)] // Describes the wire format only.
pub struct TransferAccount(String);

/// `transferDirectives` of an upload; pyfirecrest sends the snake_case spellings.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UploadDirectives {
    #[serde(alias = "transfer_method")]
    #[schema(value_type = StagingMethod)]
    transfer_method: TransferMethod,
    /// The file's size in bytes: at most 10,000 parts of the system's S3 `max_part_size`
    /// (the answer's `maxPartSize`), else 400.
    #[serde(default, alias = "file_size", deserialize_with = "size")]
    #[schema(value_type = u64, required = true, maximum = 18446744073709551615u64)]
    file_size: Option<u64>,
}

/// `transferDirectives` of a download; pyfirecrest sends the snake_case spellings.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DownloadDirectives {
    #[serde(alias = "transfer_method")]
    #[schema(value_type = StagingMethod)]
    transfer_method: TransferMethod,
    /// Ignored; a value that is not a size is refused (400), as in v2.
    #[serde(default, alias = "file_size", deserialize_with = "size")]
    #[schema(maximum = 18446744073709551615u64)]
    #[allow(dead_code)] // Read only to refuse what is not a size.
    file_size: Option<u64>,
}

/// A size in bytes: a JSON integer, also written with a fraction of zero (`666.0`), which
/// JSON Schema's `integer` and v2 (pydantic) accept too; `null` is absent.
fn size<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Number {
        Integer(u64),
        Float(f64),
    }
    match Option::<Number>::deserialize(deserializer)? {
        None => Ok(None),
        Some(Number::Integer(size)) => Ok(Some(size)),
        // 2^64 is the first float above u64::MAX; `as` is exact below it for whole numbers.
        Some(Number::Float(size))
            if size.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&size) =>
        {
            Ok(Some(size as u64))
        }
        Some(Number::Float(size)) => Err(serde::de::Error::custom(format!(
            "invalid value: {size}, expected a size in bytes (a whole number from 0 to 2^64-1)"
        ))),
    }
}

/// A staged upload: the client sends the file to S3, then a job moves it to `path`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UploadBody {
    /// The file to write, replacing an existing one (`sourcePath` and `source_path` are
    /// accepted too).
    #[serde(
        default,
        alias = "sourcePath",
        alias = "source_path",
        deserialize_with = "present"
    )]
    #[schema(value_type = AbsolutePath, required = true)]
    path: Option<Option<String>>,
    #[serde(default)]
    #[schema(value_type = Option<TransferAccount>)]
    account: Option<String>,
    #[serde(alias = "transfer_directives")]
    transfer_directives: UploadDirectives,
}

/// A staged download: a job copies `path` to S3, from where the client fetches it.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DownloadBody {
    /// The file to read (`sourcePath` and `source_path` are accepted too).
    #[serde(
        default,
        alias = "sourcePath",
        alias = "source_path",
        deserialize_with = "present"
    )]
    #[schema(value_type = AbsolutePath, required = true)]
    path: Option<Option<String>>,
    #[serde(default)]
    #[schema(value_type = Option<TransferAccount>)]
    account: Option<String>,
    #[serde(alias = "transfer_directives")]
    transfer_directives: DownloadDirectives,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MoveBody {
    #[serde(alias = "source_path")]
    #[schema(value_type = AbsolutePath)]
    source_path: String,
    #[serde(alias = "target_path")]
    #[schema(value_type = AbsolutePath)]
    target_path: String,
    #[serde(default)]
    #[schema(value_type = Option<TransferAccount>)]
    account: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CopyBody {
    #[serde(alias = "source_path")]
    #[schema(value_type = AbsolutePath)]
    source_path: String,
    #[serde(alias = "target_path")]
    #[schema(value_type = AbsolutePath)]
    target_path: String,
    /// Copy what symbolic links point to rather than the links.
    #[serde(default)]
    dereference: bool,
    #[serde(default)]
    #[schema(value_type = Option<TransferAccount>)]
    account: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct CompressJobBody {
    #[serde(flatten)]
    compress: CompressBody,
    #[serde(default)]
    #[schema(value_type = Option<TransferAccount>)]
    account: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct ExtractJobBody {
    #[serde(flatten)]
    extract: ExtractBody,
    #[serde(default)]
    #[schema(value_type = Option<TransferAccount>)]
    account: Option<String>,
}

/// `account` of `DELETE transfer/rm` (its `path` is read as bytes, as for the ops).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AccountQuery {
    /// Used only when the system's transfer-job directives name `{account}`: then required,
    /// of letters, digits, `_`, `-` and `.` (else 400); otherwise ignored.
    #[serde(default)]
    account: Option<String>,
}

/// The transfer job, whose id the audit line records.
fn answer(call: &Call, transfer_job: TransferJob) -> Json<TransferJobResponse> {
    call.audit("transfer_job_id", &transfer_job.job_id);
    Json(TransferJobResponse { transfer_job })
}

/// Submits a transfer job with `start`, unless the request's `Idempotency-Key` already did:
/// then the job it submitted, answered as then.
async fn transfer_job<F, Fut>(
    call: &Call,
    idempotent: Idempotent,
    body: &[u8],
    status: StatusCode,
    start: F,
) -> Response
where
    F: FnOnce(Caller) -> Fut,
    Fut: Future<Output = Result<TransferJob, ServiceError>>,
{
    let answered = |submitted: Result<TransferJob, ServiceError>| match submitted {
        Ok(job) => (status, answer(call, job)).into_response(),
        Err(error) => call.error(error).into_response(),
    };
    idempotent
        .run(
            call,
            body,
            |caller| async move { answered(start(caller).await) },
            |caller, job_id| async move {
                answered(transfer::submitted_job(&call.cluster, &caller, job_id))
            },
        )
        .await
}

fn staged(
    call: &Call,
    (transfer_job, transfer_directives): (TransferJob, TransferDirectives),
) -> (StatusCode, Json<StagedTransferResponse>) {
    call.audit("transfer_job_id", &transfer_job.job_id);
    (
        StatusCode::CREATED,
        Json(StagedTransferResponse {
            transfer_job,
            transfer_directives,
        }),
    )
}

#[utoipa::path(post, path = "/filesystem/{system_name}/transfer/upload", tag = "transfer",
    operation_id = "transfer_upload",
    params(("system_name" = String, Path, description = super::SYSTEM_NAME),
        ("Idempotency-Key" = Option<String>, Header, description = crate::idempotency::DESCRIPTION)),
    request_body = UploadBody,
    responses((status = 201, body = StagedTransferResponse), (status = "4XX", description = super::REFUSED, body = crate::error::ErrorBody),
        (status = "5XX", description = super::FAILED, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
async fn upload(
    call: Call,
    idempotent: Idempotent,
    body: RawJson<UploadBody>,
) -> Result<Response, ApiError> {
    let RawJson { value: body, bytes } = body;
    let target = call.body_path(body.path)?;
    let UploadDirectives {
        transfer_method: method,
        file_size,
    } = body.transfer_directives;
    let (call, target) = (&call, &target);
    let answered = |started: Result<_, ServiceError>| match started {
        Ok(job) => staged(call, job).into_response(),
        Err(error) => call.error(error).into_response(),
    };
    let start = |caller: Caller| async move {
        let started = transfer::upload(
            &call.cluster,
            &caller,
            target,
            method,
            file_size,
            body.account.as_deref(),
        )
        .await;
        answered(started)
    };
    // The URLs are signed again for the upload in progress: a fresh expiry.
    let replay = |caller: Caller, job_id| async move {
        let started =
            transfer::submitted_upload(&call.cluster, &caller, target, method, file_size, job_id)
                .await;
        answered(started)
    };
    Ok(idempotent.run(call, &bytes, start, replay).await)
}

#[utoipa::path(post, path = "/filesystem/{system_name}/transfer/download", tag = "transfer",
    operation_id = "transfer_download",
    params(("system_name" = String, Path, description = super::SYSTEM_NAME),
        ("Idempotency-Key" = Option<String>, Header, description = crate::idempotency::DESCRIPTION)),
    request_body = DownloadBody,
    responses((status = 201, body = StagedTransferResponse), (status = "4XX", description = super::REFUSED, body = crate::error::ErrorBody),
        (status = "5XX", description = super::FAILED, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
async fn download(
    call: Call,
    idempotent: Idempotent,
    body: RawJson<DownloadBody>,
) -> Result<Response, ApiError> {
    let RawJson { value: body, bytes } = body;
    let source = call.body_path(body.path)?;
    let method = body.transfer_directives.transfer_method;
    let (call, source) = (&call, &source);
    let answered = |started: Result<_, ServiceError>| match started {
        Ok(job) => staged(call, job).into_response(),
        Err(error) => call.error(error).into_response(),
    };
    let start = |caller: Caller| async move {
        let started = transfer::download(
            &call.cluster,
            &caller,
            source,
            method,
            body.account.as_deref(),
        )
        .await;
        answered(started)
    };
    // The download URL is signed again: the same object, a fresh expiry.
    let replay = |caller: Caller, job_id| async move {
        answered(transfer::submitted_download(
            &call.cluster,
            &caller,
            source,
            method,
            job_id,
        ))
    };
    Ok(idempotent.run(call, &bytes, start, replay).await)
}

#[utoipa::path(post, path = "/filesystem/{system_name}/transfer/mv", tag = "transfer",
    operation_id = "transfer_mv",
    params(("system_name" = String, Path, description = super::SYSTEM_NAME),
        ("Idempotency-Key" = Option<String>, Header, description = crate::idempotency::DESCRIPTION)),
    request_body = MoveBody,
    responses((status = 201, body = TransferJobResponse), (status = "4XX", description = super::REFUSED, body = crate::error::ErrorBody),
        (status = "5XX", description = super::FAILED, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
async fn mv(call: Call, idempotent: Idempotent, body: RawJson<MoveBody>) -> Response {
    let RawJson { value: body, bytes } = body;
    let cluster = &call.cluster;
    let start = |caller: Caller| async move {
        transfer::mv(
            cluster,
            &caller,
            body.source_path.as_bytes(),
            body.target_path.as_bytes(),
            body.account.as_deref(),
        )
        .await
    };
    transfer_job(&call, idempotent, &bytes, StatusCode::CREATED, start).await
}

#[utoipa::path(post, path = "/filesystem/{system_name}/transfer/cp", tag = "transfer",
    operation_id = "transfer_cp",
    params(("system_name" = String, Path, description = super::SYSTEM_NAME),
        ("Idempotency-Key" = Option<String>, Header, description = crate::idempotency::DESCRIPTION)),
    request_body = CopyBody,
    responses((status = 201, body = TransferJobResponse), (status = "4XX", description = super::REFUSED, body = crate::error::ErrorBody),
        (status = "5XX", description = super::FAILED, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
async fn cp(call: Call, idempotent: Idempotent, body: RawJson<CopyBody>) -> Response {
    let RawJson { value: body, bytes } = body;
    let cluster = &call.cluster;
    let start = |caller: Caller| async move {
        transfer::cp(
            cluster,
            &caller,
            body.source_path.as_bytes(),
            body.target_path.as_bytes(),
            body.dereference,
            body.account.as_deref(),
        )
        .await
    };
    transfer_job(&call, idempotent, &bytes, StatusCode::CREATED, start).await
}

/// 200, not 201, as in v2.
#[utoipa::path(delete, path = "/filesystem/{system_name}/transfer/rm", tag = "transfer",
    operation_id = "transfer_rm",
    params(("system_name" = String, Path, description = super::SYSTEM_NAME), ("path" = AbsolutePath, Query, description = "The file or directory to delete: an absolute path under one of the system's file systems."), AccountQuery,
        ("Idempotency-Key" = Option<String>, Header, description = crate::idempotency::DESCRIPTION)),
    responses((status = 200, body = TransferJobResponse), (status = "4XX", description = super::REFUSED, body = crate::error::ErrorBody),
        (status = "5XX", description = super::FAILED, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
async fn rm(
    call: Call,
    path: QueryPath,
    ValidQuery(query): ValidQuery<AccountQuery>,
    idempotent: Idempotent,
) -> Result<Response, ApiError> {
    let path = call.query_path(path)?;
    let cluster = &call.cluster;
    let start = |caller: Caller| async move {
        transfer::rm(cluster, &caller, &path, query.account.as_deref()).await
    };
    // No body: the fingerprint covers the query, which holds the path and the account.
    Ok(transfer_job(&call, idempotent, b"", StatusCode::OK, start).await)
}

#[utoipa::path(post, path = "/filesystem/{system_name}/transfer/compress", tag = "transfer",
    operation_id = "transfer_compress",
    params(("system_name" = String, Path, description = super::SYSTEM_NAME),
        ("Idempotency-Key" = Option<String>, Header, description = crate::idempotency::DESCRIPTION)),
    request_body = CompressJobBody,
    responses((status = 201, body = TransferJobResponse), (status = "4XX", description = super::REFUSED, body = crate::error::ErrorBody),
        (status = "5XX", description = super::FAILED, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
async fn compress(
    call: Call,
    idempotent: Idempotent,
    body: RawJson<CompressJobBody>,
) -> Result<Response, ApiError> {
    let RawJson { value: body, bytes } = body;
    let CompressJobBody { compress, account } = body;
    let source = call.body_path(compress.path)?;
    let cluster = &call.cluster;
    let start = |caller: Caller| async move {
        transfer::compress(
            cluster,
            &caller,
            &source,
            compress.target_path.as_bytes(),
            compress.match_pattern.as_deref(),
            compress.compression.unwrap_or_default(),
            compress.dereference.unwrap_or(false),
            account.as_deref(),
        )
        .await
    };
    Ok(transfer_job(&call, idempotent, &bytes, StatusCode::CREATED, start).await)
}

#[utoipa::path(post, path = "/filesystem/{system_name}/transfer/extract", tag = "transfer",
    operation_id = "transfer_extract",
    params(("system_name" = String, Path, description = super::SYSTEM_NAME),
        ("Idempotency-Key" = Option<String>, Header, description = crate::idempotency::DESCRIPTION)),
    request_body = ExtractJobBody,
    responses((status = 201, body = TransferJobResponse), (status = "4XX", description = super::REFUSED, body = crate::error::ErrorBody),
        (status = "5XX", description = super::FAILED, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
async fn extract(
    call: Call,
    idempotent: Idempotent,
    body: RawJson<ExtractJobBody>,
) -> Result<Response, ApiError> {
    let RawJson { value: body, bytes } = body;
    let ExtractJobBody { extract, account } = body;
    let source = call.body_path(extract.path)?;
    let cluster = &call.cluster;
    let start = |caller: Caller| async move {
        transfer::extract(
            cluster,
            &caller,
            &source,
            extract.target_path.as_bytes(),
            extract.compression.unwrap_or_default(),
            account.as_deref(),
        )
        .await
    };
    Ok(transfer_job(&call, idempotent, &bytes, StatusCode::CREATED, start).await)
}

impl AuditArgs for UploadBody {
    fn audit_args(&self, record: &AuditRecord) {
        audit_path(record, &self.path);
    }
}

impl AuditArgs for DownloadBody {
    fn audit_args(&self, record: &AuditRecord) {
        audit_path(record, &self.path);
    }
}

impl AuditArgs for MoveBody {
    fn audit_args(&self, record: &AuditRecord) {
        record.arg("source_path", &self.source_path);
        record.arg("target_path", &self.target_path);
    }
}

impl AuditArgs for CopyBody {
    fn audit_args(&self, record: &AuditRecord) {
        record.arg("source_path", &self.source_path);
        record.arg("target_path", &self.target_path);
    }
}

impl AuditArgs for CompressJobBody {
    fn audit_args(&self, record: &AuditRecord) {
        self.compress.audit_args(record);
    }
}

impl AuditArgs for ExtractJobBody {
    fn audit_args(&self, record: &AuditRecord) {
        self.extract.audit_args(record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_whole_numbers_however_written() {
        let size = |json: &str| {
            serde_json::from_str::<UploadDirectives>(&format!(
                r#"{{"transferMethod": "s3", "fileSize": {json}}}"#
            ))
            .map(|directives| directives.file_size)
        };
        assert_eq!(size("666").unwrap(), Some(666));
        assert_eq!(size("666.0").unwrap(), Some(666));
        assert_eq!(size("6.66e2").unwrap(), Some(666));
        assert_eq!(size("null").unwrap(), None);
        assert_eq!(size("18446744073709551615").unwrap(), Some(u64::MAX));
        for refused in ["-1", "0.5", "18446744073709551616", "1e20", "\"1\""] {
            assert!(size(refused).is_err(), "{refused}");
        }
    }
}
