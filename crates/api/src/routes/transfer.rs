//! `/filesystem/{system_name}/transfer/…`: file operations as scheduler jobs, and staged
//! uploads and downloads through S3 (wire reference §2.4). Paths are validated as for
//! the ops endpoints; each answer names the job, its logs, and what the client does next.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, post};
use axum::{Json, Router};
use ironcrest_services::transfer::{self, TransferDirectives, TransferJob, TransferMethod};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::filesystem::{CompressBody, Context, ExtractBody, QueryPath, present};
use super::{ValidJson, ValidQuery};
use crate::AppState;
use crate::auth::AuthenticatedUser;
use crate::error::ApiError;

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

/// `transferDirectives` of a request; pyfirecrest sends the snake_case spellings.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestDirectives {
    #[serde(alias = "transfer_method")]
    transfer_method: TransferMethod,
    /// Upload only: the file's size in bytes.
    #[serde(default, alias = "file_size")]
    file_size: Option<u64>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StagedBody {
    /// Upload: the target file; download: the source file.
    #[serde(
        default,
        alias = "sourcePath",
        alias = "source_path",
        deserialize_with = "present"
    )]
    #[schema(value_type = String, required = true)]
    path: Option<Option<String>>,
    #[serde(default)]
    account: Option<String>,
    #[serde(alias = "transfer_directives")]
    transfer_directives: RequestDirectives,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MoveBody {
    #[serde(alias = "source_path")]
    source_path: String,
    #[serde(alias = "target_path")]
    target_path: String,
    #[serde(default)]
    account: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CopyBody {
    #[serde(alias = "source_path")]
    source_path: String,
    #[serde(alias = "target_path")]
    target_path: String,
    #[serde(default)]
    dereference: bool,
    #[serde(default)]
    account: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct CompressJobBody {
    #[serde(flatten)]
    compress: CompressBody,
    #[serde(default)]
    account: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct ExtractJobBody {
    #[serde(flatten)]
    extract: ExtractBody,
    #[serde(default)]
    account: Option<String>,
}

/// `account` of `DELETE transfer/rm` (its `path` is read as bytes, as for the ops).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AccountQuery {
    #[serde(default)]
    account: Option<String>,
}

type Created<T> = Result<(StatusCode, Json<T>), ApiError>;

fn created(transfer_job: TransferJob) -> (StatusCode, Json<TransferJobResponse>) {
    (
        StatusCode::CREATED,
        Json(TransferJobResponse { transfer_job }),
    )
}

fn staged(
    (transfer_job, transfer_directives): (TransferJob, TransferDirectives),
) -> (StatusCode, Json<StagedTransferResponse>) {
    (
        StatusCode::CREATED,
        Json(StagedTransferResponse {
            transfer_job,
            transfer_directives,
        }),
    )
}

#[utoipa::path(post, path = "/filesystem/{system_name}/transfer/upload", tag = "transfer",
    params(("system_name" = String, Path)), request_body = StagedBody,
    responses((status = 201, body = StagedTransferResponse), (status = "4XX", body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
async fn upload(
    State(state): State<AppState>,
    user: AuthenticatedUser,
    Path(system_name): Path<String>,
    ValidJson(body): ValidJson<StagedBody>,
) -> Created<StagedTransferResponse> {
    let cx = Context::new(&state, user, &system_name)?;
    let target = cx.body_path(body.path)?;
    transfer::upload(
        &cx.cluster,
        &cx.user.0,
        &target,
        body.transfer_directives.transfer_method,
        body.transfer_directives.file_size,
        body.account.as_deref(),
    )
    .await
    .map(staged)
    .map_err(|e| cx.error(e))
}

#[utoipa::path(post, path = "/filesystem/{system_name}/transfer/download", tag = "transfer",
    params(("system_name" = String, Path)), request_body = StagedBody,
    responses((status = 201, body = StagedTransferResponse), (status = "4XX", body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
async fn download(
    State(state): State<AppState>,
    user: AuthenticatedUser,
    Path(system_name): Path<String>,
    ValidJson(body): ValidJson<StagedBody>,
) -> Created<StagedTransferResponse> {
    let cx = Context::new(&state, user, &system_name)?;
    let source = cx.body_path(body.path)?;
    transfer::download(
        &cx.cluster,
        &cx.user.0,
        &source,
        body.transfer_directives.transfer_method,
        body.account.as_deref(),
    )
    .await
    .map(staged)
    .map_err(|e| cx.error(e))
}

#[utoipa::path(post, path = "/filesystem/{system_name}/transfer/mv", tag = "transfer",
    params(("system_name" = String, Path)), request_body = MoveBody,
    responses((status = 201, body = TransferJobResponse), (status = "4XX", body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
async fn mv(
    State(state): State<AppState>,
    user: AuthenticatedUser,
    Path(system_name): Path<String>,
    ValidJson(body): ValidJson<MoveBody>,
) -> Created<TransferJobResponse> {
    let cx = Context::new(&state, user, &system_name)?;
    transfer::mv(
        &cx.cluster,
        &cx.user.0,
        body.source_path.as_bytes(),
        body.target_path.as_bytes(),
        body.account.as_deref(),
    )
    .await
    .map(created)
    .map_err(|e| cx.error(e))
}

#[utoipa::path(post, path = "/filesystem/{system_name}/transfer/cp", tag = "transfer",
    params(("system_name" = String, Path)), request_body = CopyBody,
    responses((status = 201, body = TransferJobResponse), (status = "4XX", body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
async fn cp(
    State(state): State<AppState>,
    user: AuthenticatedUser,
    Path(system_name): Path<String>,
    ValidJson(body): ValidJson<CopyBody>,
) -> Created<TransferJobResponse> {
    let cx = Context::new(&state, user, &system_name)?;
    transfer::cp(
        &cx.cluster,
        &cx.user.0,
        body.source_path.as_bytes(),
        body.target_path.as_bytes(),
        body.dereference,
        body.account.as_deref(),
    )
    .await
    .map(created)
    .map_err(|e| cx.error(e))
}

/// 200, not 201, as in v2.
#[utoipa::path(delete, path = "/filesystem/{system_name}/transfer/rm", tag = "transfer",
    params(("system_name" = String, Path), ("path" = String, Query, description = "Absolute path under one of the system's file systems"), AccountQuery),
    responses((status = 200, body = TransferJobResponse), (status = "4XX", body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
async fn rm(
    State(state): State<AppState>,
    user: AuthenticatedUser,
    Path(system_name): Path<String>,
    path: QueryPath,
    ValidQuery(query): ValidQuery<AccountQuery>,
) -> Result<Json<TransferJobResponse>, ApiError> {
    let cx = Context::new(&state, user, &system_name)?;
    let path = cx.query_path(path)?;
    transfer::rm(&cx.cluster, &cx.user.0, &path, query.account.as_deref())
        .await
        .map(|transfer_job| Json(TransferJobResponse { transfer_job }))
        .map_err(|e| cx.error(e))
}

#[utoipa::path(post, path = "/filesystem/{system_name}/transfer/compress", tag = "transfer",
    params(("system_name" = String, Path)), request_body = CompressJobBody,
    responses((status = 201, body = TransferJobResponse), (status = "4XX", body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
async fn compress(
    State(state): State<AppState>,
    user: AuthenticatedUser,
    Path(system_name): Path<String>,
    ValidJson(body): ValidJson<CompressJobBody>,
) -> Created<TransferJobResponse> {
    let cx = Context::new(&state, user, &system_name)?;
    let CompressJobBody { compress, account } = body;
    let source = cx.body_path(compress.path)?;
    transfer::compress(
        &cx.cluster,
        &cx.user.0,
        &source,
        compress.target_path.as_bytes(),
        compress.match_pattern.as_deref(),
        compress.compression.unwrap_or_default(),
        compress.dereference.unwrap_or(false),
        account.as_deref(),
    )
    .await
    .map(created)
    .map_err(|e| cx.error(e))
}

#[utoipa::path(post, path = "/filesystem/{system_name}/transfer/extract", tag = "transfer",
    params(("system_name" = String, Path)), request_body = ExtractJobBody,
    responses((status = 201, body = TransferJobResponse), (status = "4XX", body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
async fn extract(
    State(state): State<AppState>,
    user: AuthenticatedUser,
    Path(system_name): Path<String>,
    ValidJson(body): ValidJson<ExtractJobBody>,
) -> Created<TransferJobResponse> {
    let cx = Context::new(&state, user, &system_name)?;
    let ExtractJobBody { extract, account } = body;
    let source = cx.body_path(extract.path)?;
    transfer::extract(
        &cx.cluster,
        &cx.user.0,
        &source,
        extract.target_path.as_bytes(),
        extract.compression.unwrap_or_default(),
        account.as_deref(),
    )
    .await
    .map(created)
    .map_err(|e| cx.error(e))
}
