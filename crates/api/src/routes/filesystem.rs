//! `/filesystem/{system_name}/ops/…`: blocking, bounded file operations as the calling
//! user (wire reference §2.3).
//!
//! The `path` query parameter is read from the raw query string and percent-decoded to
//! bytes, so names that are not UTF-8 reach the cluster unchanged (a query decoder would
//! replace their bytes). JSON bodies carry Unicode paths only.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use ironcrest_services::filesystem::{
    self, BodyBroken, Checksum, Compression, File, FileContent, FileStat, LsOptions,
};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ValidJson, ValidQuery, lenient_bool};
use crate::AppState;
use crate::audit::{AuditArgs, AuditRecord};
use crate::call::Call;
use crate::conditional;
use crate::error::ApiError;
use crate::multipart::{FilePart, MultipartError};

#[derive(utoipa::OpenApi)]
#[openapi(paths(
    ls, head, tail, view, checksum, file_type, stat, rm, mkdir, symlink, chmod, chown, download,
    upload, compress, extract
))]
pub struct FilesystemDoc;

pub fn router() -> Router<AppState> {
    const OPS: &str = "/filesystem/{system_name}/ops";
    Router::new()
        .route(&format!("{OPS}/ls"), conditional::get(ls))
        .route(&format!("{OPS}/head"), get(head))
        .route(&format!("{OPS}/tail"), get(tail))
        .route(&format!("{OPS}/view"), get(view))
        .route(&format!("{OPS}/checksum"), get(checksum))
        .route(&format!("{OPS}/file"), get(file_type))
        .route(&format!("{OPS}/stat"), conditional::get(stat))
        .route(&format!("{OPS}/rm"), delete(rm))
        .route(&format!("{OPS}/mkdir"), post(mkdir))
        .route(&format!("{OPS}/symlink"), post(symlink))
        .route(&format!("{OPS}/chmod"), put(chmod))
        .route(&format!("{OPS}/chown"), put(chown))
        .route(&format!("{OPS}/download"), get(download))
        // The upload limit is the cluster's `max_ops_file_size`, enforced while reading.
        .route(
            &format!("{OPS}/upload"),
            post(upload).layer(DefaultBodyLimit::disable()),
        )
        .route(&format!("{OPS}/compress"), post(compress))
        .route(&format!("{OPS}/extract"), post(extract))
}

/// The `path` query parameter's description.
const PATH: &str =
    "The file or directory: an absolute path under one of the system's file systems.";

/// The `path` query parameter as bytes: percent-decoded without UTF-8 decoding.
pub(crate) struct QueryPath(pub(crate) Option<Vec<u8>>);

impl<S: Send + Sync> FromRequestParts<S> for QueryPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        Ok(QueryPath(
            parts
                .uri
                .query()
                .and_then(|query| query_value(query.as_bytes(), b"path")),
        ))
    }
}

/// The first value of `key` in a query string, percent-decoded to bytes (`+` is a space).
fn query_value(query: &[u8], key: &[u8]) -> Option<Vec<u8>> {
    query.split(|b| *b == b'&').find_map(|pair| {
        let (name, value) = match pair.iter().position(|b| *b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        (percent_decode(name) == key).then(|| percent_decode(value))
    })
}

pub(crate) fn percent_decode(input: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                input.get(i + 1).and_then(|b| hex(*b)),
                input.get(i + 2).and_then(|b| hex(*b)),
            ) {
                (Some(high), Some(low)) => {
                    out.push(high * 16 + low);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            other => out.push(other),
        }
        i += 1;
    }
    out
}

/// Tells a missing field (`None`) from an explicit `null` (`Some(None)`).
pub(super) fn present<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

/// An absolute path on the system, without NUL and with no name (component) longer than 255
/// bytes (the pattern bounds characters; a longer UTF-8 name is refused too). It must equal
/// or lie under one of the system's configured file systems (`GET /status/systems`), after
/// lexical normalisation (`.`, `..`, doubled `/`). Otherwise the answer is 400.
#[derive(ToSchema)]
#[schema(pattern = r"^/([^/\x00]{0,255}/)*[^/\x00]{0,255}$")]
#[allow(dead_code)] // Describes the wire format only.
pub struct AbsolutePath(String);

/// An absolute path whose last component names a new entry: not empty (the path does not
/// end in `/`), not `.` or `..`, at most 255 bytes (the pattern bounds its characters; a
/// longer UTF-8 name is refused with 400 too). Otherwise as [`AbsolutePath`].
#[derive(ToSchema)]
#[schema(
    pattern = r"^/([^/\x00]{0,255}/)*([^/\x00.][^/\x00]{0,254}|\.[^/\x00.][^/\x00]{0,253}|\.\.[^/\x00]{1,253})$"
)]
#[allow(dead_code)] // Describes the wire format only.
pub struct NewEntryPath(String);

/// A directory to create: a [`NewEntryPath`], which may end in one `/` (`dir/` means `dir`).
#[derive(ToSchema)]
#[schema(
    pattern = r"^/([^/\x00]{0,255}/)*([^/\x00.][^/\x00]{0,254}|\.[^/\x00.][^/\x00]{0,253}|\.\.[^/\x00]{1,253})/?$"
)]
#[allow(dead_code)] // Describes the wire format only.
pub struct NewDirectoryPath(String);

/// A mode as `chmod` documents it: 1 to 4 octal digits (`755`), or comma-separated symbolic
/// clauses `[ugoa]*([-+=]([rwxXst]*|[ugo]))+` (`u+x,go-w`). Anything else is refused (400)
/// before anything runs.
#[derive(ToSchema)]
#[schema(
    pattern = r"^([0-7]{1,4}|[ugoa]*([-+=]([rwxXst]*|[ugo]))+(,[ugoa]*([-+=]([rwxXst]*|[ugo]))+)*)$"
)]
#[allow(dead_code)] // Describes the wire format only.
pub struct FileMode(String);

/// `owner`/`group` of chown, as `AccountName::parse` of the services crate takes them; the
/// schema is written by hand for its `maxLength`, which a newtype's derive cannot carry.
pub struct AccountName;

impl utoipa::PartialSchema for AccountName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .description(Some(
                "A user or group name (letters, digits, `.`, `_`, and `-` but not first; not \
                 only dots; at most 256 characters) or a numeric id; empty leaves it unchanged. \
                 Anything else is refused (400) before anything runs; a name the system does not \
                 know is `chown`'s refusal (400).",
            ))
            .max_length(Some(256))
            .pattern(Some(
                r"^(|[A-Za-z0-9_][A-Za-z0-9._-]*|\.[A-Za-z0-9._-]*[A-Za-z0-9_-][A-Za-z0-9._-]*)$",
            ))
            .into()
    }
}

impl ToSchema for AccountName {}

/// The upload's `multipart/form-data` body.
#[derive(ToSchema)]
#[allow(dead_code)] // Describes the wire format only.
pub struct UploadForm {
    /// The file. Its `filename` is the new file's name in the `path` directory: not empty,
    /// `.` or `..`, no `/` or NUL, at most 255 bytes (else 400). It replaces a file of that
    /// name. Larger than the system's `max_ops_file_size`: 413.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

#[derive(Serialize, ToSchema)]
pub struct FilesResponse {
    /// Shared with the identical listings it was coalesced with.
    #[schema(value_type = Vec<File>)]
    output: Arc<Vec<File>>,
}

#[derive(Serialize, ToSchema)]
pub struct FileResponse {
    output: File,
}

#[derive(Serialize, ToSchema)]
pub struct FileContentResponse {
    output: FileContent,
}

#[derive(Serialize, ToSchema)]
pub struct TextResponse {
    output: String,
}

#[derive(Serialize, ToSchema)]
pub struct ChecksumResponse {
    output: Checksum,
}

#[derive(Serialize, ToSchema)]
pub struct StatResponse {
    output: FileStat,
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct LsQuery {
    #[serde(default, deserialize_with = "lenient_bool")]
    #[param(value_type = bool)]
    show_hidden: bool,
    #[serde(default, deserialize_with = "lenient_bool")]
    #[param(value_type = bool)]
    numeric_uid: bool,
    #[serde(default, deserialize_with = "lenient_bool")]
    #[param(value_type = bool)]
    recursive: bool,
    #[serde(default, deserialize_with = "lenient_bool")]
    #[param(value_type = bool)]
    dereference: bool,
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct HeadQuery {
    /// The first `bytes` bytes (with `skipTrailing`: all but the last `bytes`). Give
    /// `bytes` or `lines`, not both (400).
    #[param(minimum = 0, maximum = 9223372036854775807i64)]
    bytes: Option<i64>,
    /// The first `lines` lines (default 10; with `skipTrailing`: all but the last `lines`).
    /// Give `bytes` or `lines`, not both (400).
    #[param(minimum = 0, maximum = 9223372036854775807i64)]
    lines: Option<i64>,
    #[serde(default, deserialize_with = "lenient_bool")]
    #[param(value_type = bool)]
    skip_trailing: bool,
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct TailQuery {
    /// The last `bytes` bytes (with `skipHeading`: from byte `bytes` on). Give `bytes` or
    /// `lines`, not both (400).
    #[param(minimum = 0, maximum = 9223372036854775807i64)]
    bytes: Option<i64>,
    /// The last `lines` lines (default 10; with `skipHeading`: from line `lines` on). Give
    /// `bytes` or `lines`, not both (400).
    #[param(minimum = 0, maximum = 9223372036854775807i64)]
    lines: Option<i64>,
    #[serde(default, deserialize_with = "lenient_bool")]
    #[param(value_type = bool)]
    skip_heading: bool,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ViewQuery {
    /// How many bytes, at most the system's `max_ops_file_size` (5 MiB by default; more is
    /// a 400).
    #[serde(default = "default_view_size")]
    #[param(
        exclusive_minimum = 0,
        maximum = 9223372036854775807i64,
        default = 5242880
    )]
    size: i64,
    /// The first byte's offset.
    #[serde(default)]
    #[param(minimum = 0, maximum = 9223372036854775807i64, default = 0)]
    offset: i64,
}

fn default_view_size() -> i64 {
    5 * 1024 * 1024
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatQuery {
    #[serde(default, deserialize_with = "lenient_bool")]
    #[param(value_type = bool)]
    dereference: bool,
}

#[derive(Deserialize, ToSchema)]
pub struct MkdirBody {
    /// The directory to create (`sourcePath` and `source_path` are accepted too).
    #[serde(
        default,
        alias = "sourcePath",
        alias = "source_path",
        deserialize_with = "present"
    )]
    #[schema(value_type = NewDirectoryPath, required = true)]
    path: Option<Option<String>>,
    /// Also create missing parent directories, and accept an existing directory.
    #[serde(default)]
    parent: bool,
}

#[derive(Deserialize, ToSchema)]
pub struct SymlinkBody {
    /// The link's target (`sourcePath` and `source_path` are accepted too).
    #[serde(
        default,
        alias = "sourcePath",
        alias = "source_path",
        deserialize_with = "present"
    )]
    #[schema(value_type = AbsolutePath, required = true)]
    path: Option<Option<String>>,
    /// The link to create.
    #[serde(rename = "linkPath", alias = "link_path")]
    #[schema(value_type = NewEntryPath)]
    link_path: String,
}

#[derive(Deserialize, ToSchema)]
pub struct ChmodBody {
    /// The file or directory (`sourcePath` and `source_path` are accepted too).
    #[serde(
        default,
        alias = "sourcePath",
        alias = "source_path",
        deserialize_with = "present"
    )]
    #[schema(value_type = AbsolutePath, required = true)]
    path: Option<Option<String>>,
    /// The new mode.
    #[schema(value_type = FileMode)]
    mode: String,
}

#[derive(Deserialize, ToSchema)]
pub struct ChownBody {
    /// The file or directory (`sourcePath` and `source_path` are accepted too).
    #[serde(
        default,
        alias = "sourcePath",
        alias = "source_path",
        deserialize_with = "present"
    )]
    #[schema(value_type = AbsolutePath, required = true)]
    path: Option<Option<String>>,
    /// The new owner; empty or absent leaves it unchanged.
    #[serde(default)]
    #[schema(value_type = AccountName)]
    owner: String,
    /// The new group; empty or absent leaves it unchanged.
    #[serde(default)]
    #[schema(value_type = AccountName)]
    group: String,
}

#[derive(Deserialize, ToSchema)]
pub struct CompressBody {
    /// The file or directory to archive (`sourcePath` and `source_path` are accepted too).
    #[serde(
        default,
        alias = "sourcePath",
        alias = "source_path",
        deserialize_with = "present"
    )]
    #[schema(value_type = AbsolutePath, required = true)]
    pub(super) path: Option<Option<String>>,
    /// The archive to write.
    #[serde(rename = "targetPath", alias = "target_path")]
    #[schema(value_type = AbsolutePath)]
    pub(super) target_path: String,
    /// Only the files whose path (`./<name>/…`) matches this `find -regex` expression (an
    /// expression `find` refuses is a 400).
    #[serde(default, rename = "matchPattern", alias = "match_pattern")]
    pub(super) match_pattern: Option<String>,
    /// Archive what symbolic links point to rather than the links (default false).
    #[serde(default)]
    pub(super) dereference: Option<bool>,
    /// Default `gzip`.
    #[serde(default)]
    pub(super) compression: Option<Compression>,
}

#[derive(Deserialize, ToSchema)]
pub struct ExtractBody {
    /// The archive (`sourcePath` and `source_path` are accepted too); one `tar` cannot read is
    /// a 400.
    #[serde(
        default,
        alias = "sourcePath",
        alias = "source_path",
        deserialize_with = "present"
    )]
    #[schema(value_type = AbsolutePath, required = true)]
    pub(super) path: Option<Option<String>>,
    /// The directory to extract into.
    #[serde(rename = "targetPath", alias = "target_path")]
    #[schema(value_type = AbsolutePath)]
    pub(super) target_path: String,
    /// Default `gzip`.
    #[serde(default)]
    pub(super) compression: Option<Compression>,
}

/// A count that must not be negative.
fn count(call: &Call, name: &str, value: Option<i64>) -> Result<Option<u64>, ApiError> {
    value
        .map(|v| {
            u64::try_from(v).map_err(|_| {
                call.invalid(&format!(
                    "`{name}` value must be an integer value equal or greater than 0"
                ))
            })
        })
        .transpose()
}

#[utoipa::path(get, path = "/filesystem/{system_name}/ops/ls", tag = "filesystem",
    params(("If-None-Match" = Option<String>, Header, description = super::IF_NONE_MATCH), ("system_name" = String, Path, description = super::SYSTEM_NAME), ("path" = AbsolutePath, Query, description = PATH), LsQuery),
    responses((status = 200, body = FilesResponse, headers(("ETag" = String))), (status = 304, description = super::NOT_MODIFIED, headers(("ETag" = String))), (status = "4XX", description = super::REFUSED, body = crate::error::ErrorBody),
        (status = "5XX", description = super::FAILED, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
async fn ls(
    call: Call,
    path: QueryPath,
    ValidQuery(query): ValidQuery<LsQuery>,
) -> Result<Json<FilesResponse>, ApiError> {
    let path = call.query_path(path)?;
    let options = LsOptions {
        show_hidden: query.show_hidden,
        numeric_uid: query.numeric_uid,
        recursive: query.recursive,
        dereference: query.dereference,
        directory: false,
    };
    let output = filesystem::ls(&call.cluster, &call.user.caller, &path, options)
        .await
        .map_err(|e| call.error(e))?;
    Ok(Json(FilesResponse { output }))
}

#[utoipa::path(get, path = "/filesystem/{system_name}/ops/head", tag = "filesystem",
    params(("system_name" = String, Path, description = super::SYSTEM_NAME), ("path" = AbsolutePath, Query, description = PATH), HeadQuery),
    responses((status = 200, body = FileContentResponse), (status = "4XX", description = super::REFUSED, body = crate::error::ErrorBody),
        (status = "5XX", description = super::FAILED, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
async fn head(
    call: Call,
    path: QueryPath,
    ValidQuery(query): ValidQuery<HeadQuery>,
) -> Result<Json<FileContentResponse>, ApiError> {
    let path = call.query_path(path)?;
    let bytes = count(&call, "bytes", query.bytes)?;
    let lines = count(&call, "lines", query.lines)?;
    let output = filesystem::head(
        &call.cluster,
        &call.user.caller,
        &path,
        bytes,
        lines,
        query.skip_trailing,
    )
    .await
    .map_err(|e| call.error(e))?;
    Ok(Json(FileContentResponse { output }))
}

#[utoipa::path(get, path = "/filesystem/{system_name}/ops/tail", tag = "filesystem",
    params(("system_name" = String, Path, description = super::SYSTEM_NAME), ("path" = AbsolutePath, Query, description = PATH), TailQuery),
    responses((status = 200, body = FileContentResponse), (status = "4XX", description = super::REFUSED, body = crate::error::ErrorBody),
        (status = "5XX", description = super::FAILED, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
async fn tail(
    call: Call,
    path: QueryPath,
    ValidQuery(query): ValidQuery<TailQuery>,
) -> Result<Json<FileContentResponse>, ApiError> {
    let path = call.query_path(path)?;
    let bytes = count(&call, "bytes", query.bytes)?;
    let lines = count(&call, "lines", query.lines)?;
    let output = filesystem::tail(
        &call.cluster,
        &call.user.caller,
        &path,
        bytes,
        lines,
        query.skip_heading,
    )
    .await
    .map_err(|e| call.error(e))?;
    Ok(Json(FileContentResponse { output }))
}

#[utoipa::path(get, path = "/filesystem/{system_name}/ops/view", tag = "filesystem",
    params(("system_name" = String, Path, description = super::SYSTEM_NAME), ("path" = AbsolutePath, Query, description = PATH), ViewQuery),
    responses((status = 200, body = TextResponse), (status = "4XX", description = super::REFUSED, body = crate::error::ErrorBody),
        (status = "5XX", description = super::FAILED, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
async fn view(
    call: Call,
    path: QueryPath,
    ValidQuery(query): ValidQuery<ViewQuery>,
) -> Result<Json<TextResponse>, ApiError> {
    let path = call.query_path(path)?;
    let output = filesystem::view(
        &call.cluster,
        &call.user.caller,
        &path,
        query.offset,
        query.size,
    )
    .await
    .map_err(|e| call.error(e))?;
    Ok(Json(TextResponse { output }))
}

#[utoipa::path(get, path = "/filesystem/{system_name}/ops/checksum", tag = "filesystem",
    params(("system_name" = String, Path, description = super::SYSTEM_NAME), ("path" = AbsolutePath, Query, description = PATH)),
    responses((status = 200, body = ChecksumResponse), (status = "4XX", description = super::REFUSED, body = crate::error::ErrorBody),
        (status = "5XX", description = super::FAILED, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
async fn checksum(call: Call, path: QueryPath) -> Result<Json<ChecksumResponse>, ApiError> {
    let path = call.query_path(path)?;
    let output = filesystem::checksum(&call.cluster, &call.user.caller, &path)
        .await
        .map_err(|e| call.error(e))?;
    Ok(Json(ChecksumResponse { output }))
}

#[utoipa::path(get, path = "/filesystem/{system_name}/ops/file", tag = "filesystem",
    params(("system_name" = String, Path, description = super::SYSTEM_NAME), ("path" = AbsolutePath, Query, description = PATH)),
    responses((status = 200, body = TextResponse), (status = "4XX", description = super::REFUSED, body = crate::error::ErrorBody),
        (status = "5XX", description = super::FAILED, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
async fn file_type(call: Call, path: QueryPath) -> Result<Json<TextResponse>, ApiError> {
    let path = call.query_path(path)?;
    let output = filesystem::file_type(&call.cluster, &call.user.caller, &path)
        .await
        .map_err(|e| call.error(e))?;
    Ok(Json(TextResponse { output }))
}

#[utoipa::path(get, path = "/filesystem/{system_name}/ops/stat", tag = "filesystem",
    params(("If-None-Match" = Option<String>, Header, description = super::IF_NONE_MATCH), ("system_name" = String, Path, description = super::SYSTEM_NAME), ("path" = AbsolutePath, Query, description = PATH), StatQuery),
    responses((status = 200, body = StatResponse, headers(("ETag" = String))), (status = 304, description = super::NOT_MODIFIED, headers(("ETag" = String))), (status = "4XX", description = super::REFUSED, body = crate::error::ErrorBody),
        (status = "5XX", description = super::FAILED, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
async fn stat(
    call: Call,
    path: QueryPath,
    ValidQuery(query): ValidQuery<StatQuery>,
) -> Result<Json<StatResponse>, ApiError> {
    let path = call.query_path(path)?;
    let output = filesystem::stat(&call.cluster, &call.user.caller, &path, query.dereference)
        .await
        .map_err(|e| call.error(e))?;
    Ok(Json(StatResponse { output }))
}

#[utoipa::path(delete, path = "/filesystem/{system_name}/ops/rm", tag = "filesystem",
    params(("system_name" = String, Path, description = super::SYSTEM_NAME), ("path" = AbsolutePath, Query, description = PATH)),
    responses((status = 204), (status = "4XX", description = super::REFUSED, body = crate::error::ErrorBody),
        (status = "5XX", description = super::FAILED, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
async fn rm(call: Call, path: QueryPath) -> Result<StatusCode, ApiError> {
    let path = call.query_path(path)?;
    filesystem::rm(&call.cluster, &call.user.caller, &path)
        .await
        .map_err(|e| call.error(e))?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/filesystem/{system_name}/ops/mkdir", tag = "filesystem",
    params(("system_name" = String, Path, description = super::SYSTEM_NAME)), request_body = MkdirBody,
    responses((status = 201, body = FileResponse), (status = "4XX", description = super::REFUSED, body = crate::error::ErrorBody),
        (status = "5XX", description = super::FAILED, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
async fn mkdir(
    call: Call,
    ValidJson(body): ValidJson<MkdirBody>,
) -> Result<(StatusCode, Json<FileResponse>), ApiError> {
    let path = call.body_path(body.path)?;
    let output = filesystem::mkdir(&call.cluster, &call.user.caller, &path, body.parent)
        .await
        .map_err(|e| call.error(e))?;
    Ok((StatusCode::CREATED, Json(FileResponse { output })))
}

#[utoipa::path(post, path = "/filesystem/{system_name}/ops/symlink", tag = "filesystem",
    params(("system_name" = String, Path, description = super::SYSTEM_NAME)), request_body = SymlinkBody,
    responses((status = 201, body = FileResponse), (status = "4XX", description = super::REFUSED, body = crate::error::ErrorBody),
        (status = "5XX", description = super::FAILED, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
async fn symlink(
    call: Call,
    ValidJson(body): ValidJson<SymlinkBody>,
) -> Result<(StatusCode, Json<FileResponse>), ApiError> {
    let target = call.body_path(body.path)?;
    let output = filesystem::symlink(
        &call.cluster,
        &call.user.caller,
        &target,
        body.link_path.as_bytes(),
    )
    .await
    .map_err(|e| call.error(e))?;
    Ok((StatusCode::CREATED, Json(FileResponse { output })))
}

#[utoipa::path(put, path = "/filesystem/{system_name}/ops/chmod", tag = "filesystem",
    params(("system_name" = String, Path, description = super::SYSTEM_NAME)), request_body = ChmodBody,
    responses((status = 200, body = FileResponse), (status = "4XX", description = super::REFUSED, body = crate::error::ErrorBody),
        (status = "5XX", description = super::FAILED, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
async fn chmod(
    call: Call,
    ValidJson(body): ValidJson<ChmodBody>,
) -> Result<Json<FileResponse>, ApiError> {
    let path = call.body_path(body.path)?;
    let output = filesystem::chmod(&call.cluster, &call.user.caller, &path, &body.mode)
        .await
        .map_err(|e| call.error(e))?;
    Ok(Json(FileResponse { output }))
}

#[utoipa::path(put, path = "/filesystem/{system_name}/ops/chown", tag = "filesystem",
    params(("system_name" = String, Path, description = super::SYSTEM_NAME)), request_body = ChownBody,
    responses((status = 200, body = FileResponse), (status = "4XX", description = super::REFUSED, body = crate::error::ErrorBody),
        (status = "5XX", description = super::FAILED, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
async fn chown(
    call: Call,
    ValidJson(body): ValidJson<ChownBody>,
) -> Result<Json<FileResponse>, ApiError> {
    let path = call.body_path(body.path)?;
    let output = filesystem::chown(
        &call.cluster,
        &call.user.caller,
        &path,
        &body.owner,
        &body.group,
    )
    .await
    .map_err(|e| call.error(e))?;
    Ok(Json(FileResponse { output }))
}

#[utoipa::path(get, path = "/filesystem/{system_name}/ops/download", tag = "filesystem",
    params(("system_name" = String, Path, description = super::SYSTEM_NAME), ("path" = AbsolutePath, Query, description = PATH)),
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>),
        (status = "4XX", description = super::REFUSED, body = crate::error::ErrorBody),
        (status = "5XX", description = super::FAILED, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
async fn download(call: Call, path: QueryPath) -> Result<Response, ApiError> {
    let path = call.query_path(path)?;
    let content = filesystem::download(&call.cluster, &call.user.caller, &path)
        .await
        .map_err(|e| call.error(e))?;
    // Streamed as it arrives; a failure after the first byte aborts the body.
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream")],
        Body::from_stream(content),
    )
        .into_response())
}

#[utoipa::path(post, path = "/filesystem/{system_name}/ops/upload", tag = "filesystem",
    params(("system_name" = String, Path, description = super::SYSTEM_NAME),
        ("path" = AbsolutePath, Query, description = "The directory the file is written into.")),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses((status = 204), (status = "4XX", description = super::REFUSED, body = crate::error::ErrorBody),
        (status = "5XX", description = super::FAILED, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
async fn upload(
    call: Call,
    path: QueryPath,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let directory = call.query_path(path)?;
    // Validate before reading the body: a bad path is refused without receiving the file.
    filesystem::check_path(&call.cluster, &directory).map_err(|e| call.error(e))?;
    let invalid_body = |message: String| ApiError::Validation {
        location: "body",
        name: "file".into(),
        message,
    };
    let mut file = FilePart::from_body(&headers, body)
        .await
        .map_err(|MultipartError(message)| invalid_body(message))?;
    let name = std::mem::take(&mut file.file_name);
    // The file flows from the request to the cluster chunk by chunk.
    let body = futures::stream::unfold(file, |mut file| async move {
        match file.chunk().await {
            Ok(None) => None,
            Ok(Some(chunk)) => Some((Ok(chunk), file)),
            Err(MultipartError(message)) => Some((Err(BodyBroken(message)), file)),
        }
    });
    filesystem::upload(&call.cluster, &call.user.caller, &directory, &name, body)
        .await
        .map_err(|e| call.error(e))?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/filesystem/{system_name}/ops/compress", tag = "filesystem",
    params(("system_name" = String, Path, description = super::SYSTEM_NAME)), request_body = CompressBody,
    responses((status = 204), (status = "4XX", description = super::REFUSED, body = crate::error::ErrorBody),
        (status = "5XX", description = super::FAILED, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
async fn compress(
    call: Call,
    ValidJson(body): ValidJson<CompressBody>,
) -> Result<StatusCode, ApiError> {
    let source = call.body_path(body.path)?;
    filesystem::compress(
        &call.cluster,
        &call.user.caller,
        &source,
        body.target_path.as_bytes(),
        body.match_pattern.as_deref(),
        body.compression.unwrap_or_default(),
        body.dereference.unwrap_or(false),
    )
    .await
    .map_err(|e| call.error(e))?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/filesystem/{system_name}/ops/extract", tag = "filesystem",
    params(("system_name" = String, Path, description = super::SYSTEM_NAME)), request_body = ExtractBody,
    responses((status = 204), (status = "4XX", description = super::REFUSED, body = crate::error::ErrorBody),
        (status = "5XX", description = super::FAILED, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
async fn extract(
    call: Call,
    ValidJson(body): ValidJson<ExtractBody>,
) -> Result<StatusCode, ApiError> {
    let source = call.body_path(body.path)?;
    filesystem::extract(
        &call.cluster,
        &call.user.caller,
        &source,
        body.target_path.as_bytes(),
        body.compression.unwrap_or_default(),
    )
    .await
    .map_err(|e| call.error(e))?;
    Ok(StatusCode::NO_CONTENT)
}

/// A body's `path` (or `sourcePath`), when it has one.
pub(super) fn audit_path(record: &AuditRecord, path: &Option<Option<String>>) {
    if let Some(Some(path)) = path {
        record.arg("path", path);
    }
}

impl AuditArgs for MkdirBody {
    fn audit_args(&self, record: &AuditRecord) {
        audit_path(record, &self.path);
    }
}

impl AuditArgs for SymlinkBody {
    fn audit_args(&self, record: &AuditRecord) {
        audit_path(record, &self.path);
        record.arg("link_path", &self.link_path);
    }
}

impl AuditArgs for ChmodBody {
    fn audit_args(&self, record: &AuditRecord) {
        audit_path(record, &self.path);
        record.arg("mode", &self.mode);
    }
}

impl AuditArgs for ChownBody {
    fn audit_args(&self, record: &AuditRecord) {
        audit_path(record, &self.path);
        record.arg("owner", &self.owner);
        record.arg("group", &self.group);
    }
}

impl AuditArgs for CompressBody {
    fn audit_args(&self, record: &AuditRecord) {
        audit_path(record, &self.path);
        record.arg("target_path", &self.target_path);
    }
}

impl AuditArgs for ExtractBody {
    fn audit_args(&self, record: &AuditRecord) {
        audit_path(record, &self.path);
        record.arg("target_path", &self.target_path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_paths_are_decoded_to_exact_bytes() {
        assert_eq!(
            query_value(b"a=1&path=%2Fhome%2F%FF+x%27&path=2", b"path"),
            Some(b"/home/\xff x'".to_vec())
        );
        assert_eq!(query_value(b"path", b"path"), Some(Vec::new()));
        assert_eq!(query_value(b"paths=1", b"path"), None);
        assert_eq!(percent_decode(b"%zz%4"), b"%zz%4");
    }
}
