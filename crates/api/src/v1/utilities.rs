//! v1 `/utilities`: blocking file operations, each the v2 filesystem service's (or, for
//! `rename` and `copy`, which v2 has only as transfer jobs, a blocking `mv`/`cp`), with
//! v1's parameters (`targetPath`, `sourcePath` in the query or a form) and answers
//! (`{"description", "output"}`).

use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use ironcrest_services::ServiceError;
use ironcrest_services::filesystem::{self, BodyBroken, Compression, FileStat, LsOptions};
use ironcrest_services::status;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::V1Error;
use super::form::{Fields, MAX_FIELDS, V1Form, V1Query, invalid};
use super::{Described, MachineCall};
use crate::AppState;
use crate::error::ApiError;
use crate::multipart::{FilePart, MultipartError};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/utilities/ls", get(ls))
        .route("/utilities/mkdir", post(mkdir))
        .route("/utilities/rename", put(rename))
        .route("/utilities/chmod", put(chmod))
        .route("/utilities/chown", put(chown))
        .route("/utilities/copy", post(copy))
        .route("/utilities/file", get(file_type))
        .route("/utilities/stat", get(stat))
        .route("/utilities/symlink", post(symlink))
        .route("/utilities/head", get(head))
        .route("/utilities/tail", get(tail))
        .route("/utilities/download", get(download))
        // The limit is the system's `max_ops_file_size`, enforced while reading.
        .route(
            "/utilities/upload",
            post(upload).layer(DefaultBodyLimit::disable()),
        )
        .route("/utilities/rm", delete(rm))
        .route("/utilities/checksum", get(checksum))
        .route("/utilities/view", get(view))
        .route("/utilities/whoami", get(whoami))
        .route("/utilities/compress", post(compress))
        .route("/utilities/extract", post(extract))
}

/// A directory entry as v1 lists it (v2's `File` with snake_case names and an empty
/// `link_target` for what is not a link).
#[derive(Serialize, ToSchema)]
pub struct File {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    link_target: String,
    user: String,
    group: String,
    permissions: String,
    last_modified: String,
    size: String,
}

impl From<&filesystem::File> for File {
    fn from(file: &filesystem::File) -> Self {
        Self {
            name: file.name.clone(),
            kind: file.kind.clone(),
            link_target: file.link_target.clone().unwrap_or_default(),
            user: file.user.clone(),
            group: file.group.clone(),
            permissions: file.permissions.clone(),
            last_modified: file.last_modified.clone(),
            size: file.size.clone(),
        }
    }
}

/// `whoami?groups=true`: the user's identity as `id` prints it.
#[derive(Serialize, ToSchema)]
pub struct Identity {
    user: IdName,
    group: IdName,
    groups: Vec<IdName>,
}

#[derive(Serialize, ToSchema)]
pub struct IdName {
    name: String,
    id: String,
}

/// The path a field names, as bytes, recorded in the audit line under `audit_as`.
fn path<'f>(
    call: &MachineCall,
    fields: &'f Fields,
    name: &str,
    audit_as: &'static str,
) -> Result<&'f [u8], V1Error> {
    let path = fields.required(name).map_err(|e| call.refuse(e))?;
    call.audit(audit_as, path);
    Ok(path)
}

fn fail(call: &MachineCall) -> impl Fn(ServiceError) -> V1Error + '_ {
    |error| call.fail(error)
}

fn answer<T: Serialize>(status: StatusCode, description: &'static str, output: T) -> Response {
    (status, Described::new(description, output)).into_response()
}

async fn ls(call: MachineCall, V1Query(query): V1Query) -> Result<Response, V1Error> {
    let target = path(&call, &query, "targetPath", "path")?;
    let flag = |name| query.flag(name).map_err(|e| call.refuse(e));
    let options = LsOptions {
        show_hidden: flag("showhidden")?,
        numeric_uid: flag("numericUid")?,
        recursive: flag("recursive")?,
        ..LsOptions::default()
    };
    let files = filesystem::ls(&call.cluster, &call.user.caller, target, options)
        .await
        .map_err(fail(&call))?;
    let output: Vec<File> = files.iter().map(File::from).collect();
    Ok(answer(StatusCode::OK, "List of contents", output))
}

async fn mkdir(call: MachineCall, V1Form(form): V1Form) -> Result<Response, V1Error> {
    let target = path(&call, &form, "targetPath", "path")?;
    let parents = form.flag("p").map_err(|e| call.refuse(e))?;
    filesystem::mkdir(&call.cluster, &call.user.caller, target, parents)
        .await
        .map_err(fail(&call))?;
    Ok(answer(StatusCode::CREATED, "Success create directory", ""))
}

async fn rename(call: MachineCall, V1Form(form): V1Form) -> Result<Response, V1Error> {
    let source = path(&call, &form, "sourcePath", "path")?;
    let target = path(&call, &form, "targetPath", "target_path")?;
    filesystem::rename(&call.cluster, &call.user.caller, source, target)
        .await
        .map_err(fail(&call))?;
    Ok(answer(
        StatusCode::OK,
        "Success to rename file or directory",
        "",
    ))
}

async fn copy(call: MachineCall, V1Form(form): V1Form) -> Result<Response, V1Error> {
    let source = path(&call, &form, "sourcePath", "path")?;
    let target = path(&call, &form, "targetPath", "target_path")?;
    filesystem::copy(&call.cluster, &call.user.caller, source, target)
        .await
        .map_err(fail(&call))?;
    Ok(answer(StatusCode::CREATED, "Object copy succesful", ""))
}

async fn chmod(call: MachineCall, V1Form(form): V1Form) -> Result<Response, V1Error> {
    let target = path(&call, &form, "targetPath", "path")?;
    let mode = form
        .text("mode")
        .map_err(|e| call.refuse(e))?
        .ok_or_else(|| call.refuse(invalid("mode", "is required")))?;
    call.audit("mode", mode);
    let file = filesystem::chmod(&call.cluster, &call.user.caller, target, mode)
        .await
        .map_err(fail(&call))?;
    let output = format!("mode of '{}' changed to {}", file.name, file.permissions);
    Ok(answer(StatusCode::OK, "Process completed", output))
}

async fn chown(call: MachineCall, V1Form(form): V1Form) -> Result<Response, V1Error> {
    let target = path(&call, &form, "targetPath", "path")?;
    let text = |name| form.text(name).map_err(|e| call.refuse(e));
    let (owner, group) = (text("owner")?.unwrap_or(""), text("group")?.unwrap_or(""));
    if owner.is_empty() && group.is_empty() {
        return Err(call.refuse(invalid("owner", "or 'group' must be set")));
    }
    call.audit("owner", owner);
    call.audit("group", group);
    let file = filesystem::chown(&call.cluster, &call.user.caller, target, owner, group)
        .await
        .map_err(fail(&call))?;
    let output = format!(
        "ownership of '{}' is {}:{}",
        file.name, file.user, file.group
    );
    Ok(answer(StatusCode::OK, "Process completed", output))
}

async fn file_type(call: MachineCall, V1Query(query): V1Query) -> Result<Response, V1Error> {
    let target = path(&call, &query, "targetPath", "path")?;
    let output = filesystem::file_type(&call.cluster, &call.user.caller, target)
        .await
        .map_err(fail(&call))?;
    Ok(answer(StatusCode::OK, "Process completed", output))
}

async fn stat(call: MachineCall, V1Query(query): V1Query) -> Result<Response, V1Error> {
    let target = path(&call, &query, "targetPath", "path")?;
    let dereference = query.flag("dereference").map_err(|e| call.refuse(e))?;
    let output: FileStat = filesystem::stat(&call.cluster, &call.user.caller, target, dereference)
        .await
        .map_err(fail(&call))?;
    Ok(answer(StatusCode::OK, "Process completed", output))
}

async fn symlink(call: MachineCall, V1Form(form): V1Form) -> Result<Response, V1Error> {
    let target = path(&call, &form, "targetPath", "path")?;
    let link = path(&call, &form, "linkPath", "link_path")?;
    filesystem::symlink(&call.cluster, &call.user.caller, target, link)
        .await
        .map_err(fail(&call))?;
    Ok(answer(
        StatusCode::CREATED,
        "Success create the symlink",
        "",
    ))
}

/// A count as `head`/`tail` take one: digits, optionally with GNU's multiplier suffix
/// (`K` = 1024, `KB` = 1000, … up to `G`/`GB`), as v1 documents ("accepts K, KB, MB").
fn count(fields: &Fields, name: &str) -> Result<Option<u64>, ApiError> {
    let Some(text) = fields.present(name)? else {
        return Ok(None);
    };
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let multiplier: u64 = match &text[digits.len()..] {
        "" => 1,
        "K" | "KiB" => 1 << 10,
        "KB" => 1000,
        "M" | "MiB" => 1 << 20,
        "MB" => 1000 * 1000,
        "G" | "GiB" => 1 << 30,
        "GB" => 1000 * 1000 * 1000,
        _ => return Err(invalid(name, &format!("is not a count: {text:?}"))),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(multiplier))
        .map(Some)
        .ok_or_else(|| invalid(name, &format!("is not a count: {text:?}")))
}

/// v1's `grep` filter of head and tail is not served: refused rather than ignored.
fn no_grep(call: &MachineCall, fields: &Fields) -> Result<(), V1Error> {
    match fields.present("grep").map_err(|e| call.refuse(e))? {
        None => Ok(()),
        Some(_) => Err(call.refuse(invalid("grep", "is not supported by this server"))),
    }
}

async fn head(call: MachineCall, V1Query(query): V1Query) -> Result<Response, V1Error> {
    let target = path(&call, &query, "targetPath", "path")?;
    no_grep(&call, &query)?;
    let bytes = count(&query, "bytes").map_err(|e| call.refuse(e))?;
    let lines = count(&query, "lines").map_err(|e| call.refuse(e))?;
    let skip = query.flag("skip_ending").map_err(|e| call.refuse(e))?;
    let content = filesystem::head(&call.cluster, &call.user.caller, target, bytes, lines, skip)
        .await
        .map_err(fail(&call))?;
    Ok(answer(
        StatusCode::OK,
        "File content successfully returned",
        content.content,
    ))
}

async fn tail(call: MachineCall, V1Query(query): V1Query) -> Result<Response, V1Error> {
    let target = path(&call, &query, "targetPath", "path")?;
    no_grep(&call, &query)?;
    let bytes = count(&query, "bytes").map_err(|e| call.refuse(e))?;
    let lines = count(&query, "lines").map_err(|e| call.refuse(e))?;
    let skip = query.flag("skip_beginning").map_err(|e| call.refuse(e))?;
    let content = filesystem::tail(&call.cluster, &call.user.caller, target, bytes, lines, skip)
        .await
        .map_err(fail(&call))?;
    Ok(answer(
        StatusCode::OK,
        "File content successfully returned",
        content.content,
    ))
}

async fn download(call: MachineCall, V1Query(query): V1Query) -> Result<Response, V1Error> {
    let source = path(&call, &query, "sourcePath", "path")?;
    let content = filesystem::download(&call.cluster, &call.user.caller, source)
        .await
        .map_err(fail(&call))?;
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream")],
        Body::from_stream(content),
    )
        .into_response())
}

/// The file goes where `targetPath` (a directory, sent before the file) says, named as the
/// multipart `filename`; past the system's `max_ops_file_size` it is refused (413, v1's
/// status) and nothing is left behind.
async fn upload(call: MachineCall, headers: HeaderMap, body: Body) -> Result<Response, V1Error> {
    let refused = |message: String| {
        call.refuse(ApiError::Validation {
            location: "body",
            name: "file".into(),
            message,
        })
    };
    let (fields, file) = FilePart::with_fields(&headers, body, MAX_FIELDS)
        .await
        .map_err(|MultipartError(message)| refused(message))?;
    let fields = Fields(fields);
    let directory = path(&call, &fields, "targetPath", "path")?.to_vec();
    let mut file = file.ok_or_else(|| {
        refused("Field required: `file` (after `targetPath` in the form).".into())
    })?;
    filesystem::check_path(&call.cluster, &directory).map_err(fail(&call))?;
    let name = std::mem::take(&mut file.file_name);
    let body = futures::stream::unfold(file, |mut file| async move {
        match file.chunk().await {
            Ok(None) => None,
            Ok(Some(chunk)) => Some((Ok(chunk), file)),
            Err(MultipartError(message)) => Some((Err(BodyBroken(message)), file)),
        }
    });
    match filesystem::upload(&call.cluster, &call.user.caller, &directory, &name, body).await {
        Ok(()) => Ok(answer(StatusCode::CREATED, "File upload successful", "")),
        Err(ServiceError::TooLarge(message)) => Err(call.refuse(ApiError::Http {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: message.into(),
        })),
        Err(error) => Err(call.fail(error)),
    }
}

async fn rm(call: MachineCall, V1Form(form): V1Form) -> Result<Response, V1Error> {
    let target = path(&call, &form, "targetPath", "path")?;
    filesystem::rm(&call.cluster, &call.user.caller, target)
        .await
        .map_err(fail(&call))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn checksum(call: MachineCall, V1Query(query): V1Query) -> Result<Response, V1Error> {
    let target = path(&call, &query, "targetPath", "path")?;
    let checksum = filesystem::checksum(&call.cluster, &call.user.caller, target)
        .await
        .map_err(fail(&call))?;
    Ok(answer(
        StatusCode::OK,
        "Checksum successfully retrieved",
        checksum.checksum,
    ))
}

/// The whole file as text, if it is within the system's `max_ops_file_size` (else v1's
/// `X-Size-Limit`).
async fn view(call: MachineCall, V1Query(query): V1Query) -> Result<Response, V1Error> {
    let target = path(&call, &query, "targetPath", "path")?;
    let limit = call.cluster.config.data_operation.max_ops_file_size;
    let size = filesystem::stat(&call.cluster, &call.user.caller, target, true)
        .await
        .map_err(fail(&call))?
        .size;
    if size > limit {
        return Err(call.fail(ServiceError::TooLarge("File to view is too large.")));
    }
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let output = filesystem::view(&call.cluster, &call.user.caller, target, 0, limit)
        .await
        .map_err(fail(&call))?;
    Ok(answer(
        StatusCode::OK,
        "File content successfully returned",
        output,
    ))
}

async fn whoami(call: MachineCall, V1Query(query): V1Query) -> Result<Response, V1Error> {
    let groups = query.flag("groups").map_err(|e| call.refuse(e))?;
    let info = status::userinfo(&call.cluster, &call.user.caller)
        .await
        .map_err(fail(&call))?;
    if !groups {
        return Ok(answer(
            StatusCode::OK,
            "Success on whoami operation",
            info.user.name.clone(),
        ));
    }
    let id_name = |name: &str, id: &str| IdName {
        name: name.to_string(),
        id: id.to_string(),
    };
    let output = Identity {
        user: id_name(&info.user.name, &info.user.id),
        group: id_name(&info.group.name, &info.group.id),
        groups: info
            .groups
            .iter()
            .map(|group| id_name(&group.name, &group.id))
            .collect(),
    };
    Ok(
        Json(serde_json::json!({"description": "User information", "output": output}))
            .into_response(),
    )
}

async fn compress(call: MachineCall, V1Form(form): V1Form) -> Result<Response, V1Error> {
    let source = path(&call, &form, "sourcePath", "path")?;
    let target = path(&call, &form, "targetPath", "target_path")?;
    let dereference = form.flag("dereference").map_err(|e| call.refuse(e))?;
    filesystem::compress(
        &call.cluster,
        &call.user.caller,
        source,
        target,
        None,
        Compression::Gzip,
        dereference,
    )
    .await
    .map_err(fail(&call))?;
    Ok(answer(StatusCode::CREATED, "Object compress succesful", ""))
}

/// v1's `extension` of an archive to extract: `auto` (from the file's name) or one of
/// `.tar`, `.tgz`, `.gz`, `.bz2` (and `.xz`, `.txz`, which `tar` reads as well). `.zip` is
/// refused: only tar archives are extracted.
pub fn extraction(extension: &str, source: &[u8]) -> Result<Compression, String> {
    let name = String::from_utf8_lossy(source).to_ascii_lowercase();
    let extension = if extension == "auto" || extension.is_empty() {
        [
            ".tar.gz", ".tgz", ".gz", ".tar.bz2", ".tbz2", ".bz2", ".tar.xz", ".txz", ".xz",
            ".tar", ".zip",
        ]
        .into_iter()
        .find(|suffix| name.ends_with(suffix))
        .ok_or_else(|| {
            "Could not tell the archive's format from its name: give `extension`.".to_string()
        })?
    } else {
        extension
    };
    match extension {
        ".tar" => Ok(Compression::None),
        ".tar.gz" | ".tgz" | ".gz" => Ok(Compression::Gzip),
        ".tar.bz2" | ".tbz2" | ".bz2" => Ok(Compression::Bzip2),
        ".tar.xz" | ".txz" | ".xz" => Ok(Compression::Xz),
        other => Err(format!(
            "Extension {other:?} is not supported: only tar archives (.tar, .tgz, .gz, .bz2, .xz) are extracted."
        )),
    }
}

async fn extract(call: MachineCall, V1Form(form): V1Form) -> Result<Response, V1Error> {
    let source = path(&call, &form, "sourcePath", "path")?;
    let target = path(&call, &form, "targetPath", "target_path")?;
    let extension = form
        .text("extension")
        .map_err(|e| call.refuse(e))?
        .unwrap_or("auto");
    let compression = extraction(extension, source)
        .map_err(|message| call.refuse(invalid("extension", &message)))?;
    filesystem::extract(
        &call.cluster,
        &call.user.caller,
        source,
        target,
        compression,
    )
    .await
    .map_err(fail(&call))?;
    Ok(answer(StatusCode::CREATED, "Object extract succesful", ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_take_gnu_suffixes() {
        let fields = Fields::from_urlencoded(b"a=10&b=2K&c=3KB&d=1M&e=x&f=5Q&g=");
        assert_eq!(count(&fields, "a").unwrap(), Some(10));
        assert_eq!(count(&fields, "b").unwrap(), Some(2048));
        assert_eq!(count(&fields, "c").unwrap(), Some(3000));
        assert_eq!(count(&fields, "d").unwrap(), Some(1 << 20));
        assert!(count(&fields, "e").is_err());
        assert!(count(&fields, "f").is_err());
        assert_eq!(count(&fields, "g").unwrap(), None);
    }

    #[test]
    fn archives_are_read_by_their_extension() {
        assert_eq!(extraction("auto", b"/a/b.tar.gz"), Ok(Compression::Gzip));
        assert_eq!(extraction("auto", b"/a/b.TAR"), Ok(Compression::None));
        assert_eq!(extraction(".bz2", b"/a/b"), Ok(Compression::Bzip2));
        assert!(extraction("auto", b"/a/b.zip").is_err());
        assert!(extraction(".zip", b"/a/b.zip").is_err());
    }
}
