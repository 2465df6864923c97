//! The filesystem (utilities) service, wire reference §2.3: blocking, bounded operations on
//! the cluster's file systems as the calling user, one [`commands`] type per remote tool.
//!
//! Every operation first checks the ssh service's health, then validates its paths
//! ([`path::validate`]: absolute, normalised, under a configured file system; always on)
//! and the health of the file system they lie on (503), then runs its command under
//! `timeout <T>` with `T` = `ssh.timeout.command_execution`. What SFTP can do exactly as
//! the tools do is served over the user's standing SFTP session instead ([`sftp`]), with
//! the command as the fallback. Concurrent `stat`s of a user share one `stat` ([`batch`]),
//! and concurrent identical listings of a user share one listing ([`ListingQuery`]).

mod batch;
pub mod commands;
pub mod path;
mod sftp;

use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use ironcrest_config::ProbedService;
use ironcrest_remote::{Caller, RemoteCommand};
use ironcrest_ssh::{Input, InputAborted, SshError, Streamed};
use tokio::sync::mpsc;

pub use commands::{
    AccountName, Amount, Checksum, Compression, File, FileContent, FileMode, FileStat, LsOptions,
};
pub use path::{ValidPath, validate};

use crate::cache::Query;
use crate::{Cluster, ServiceError};

/// A user's listing, as [`ls`] coalesces it: identical listings by one user that arrive
/// while one runs share its answer (a workflow engine's tasks polling one directory, a page
/// refreshing), so a burst costs the cluster one listing. No answer is reused once given,
/// and a change the user makes through the API ends the sharing of listings in flight
/// ([`Change`]), so their own changes always show.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ListingQuery {
    path: Vec<u8>,
    options: LsOptions,
}

impl Query for ListingQuery {
    type Answer = Vec<File>;
    const CACHE: &'static str = "listings";
}

/// Held by an operation that changes files for as long as it runs: when it ends, the user's
/// listings in flight take no more company, so a listing asked for after the change
/// completed runs after it.
struct Change<'a> {
    cluster: &'a Cluster,
    user: &'a Caller,
}

impl<'a> Change<'a> {
    fn new(cluster: &'a Cluster, user: &'a Caller) -> Self {
        Self { cluster, user }
    }
}

impl Drop for Change<'_> {
    fn drop(&mut self) {
        self.cluster.listings.invalidate(&self.user.username);
    }
}

/// Health gating and path validation of one path (wire reference §0).
pub fn check_path(cluster: &Cluster, raw: &[u8]) -> Result<ValidPath, ServiceError> {
    cluster.require_healthy(ProbedService::Ssh)?;
    let path = validate(&cluster.config, raw)?;
    if let Some(report) = cluster.health() {
        let unhealthy = report.checks.iter().find(|check| {
            check.service == Some(ProbedService::Filesystem)
                && !check.healthy
                && check
                    .path
                    .as_deref()
                    .is_some_and(|fs| path::is_under(path.as_bytes(), fs.as_bytes()))
        });
        if let Some(check) = unhealthy {
            return Err(ServiceError::FilesystemUnhealthy {
                filesystem: check.path.clone().unwrap_or_default(),
                system: cluster.name().to_string(),
            });
        }
    }
    Ok(path)
}

fn timeout(cluster: &Cluster) -> u64 {
    cluster.config.ssh.timeout.command_execution
}

fn max_size(cluster: &Cluster) -> u64 {
    cluster.config.data_operation.max_ops_file_size
}

async fn run<C: RemoteCommand<Error: Into<ServiceError>> + Sync>(
    cluster: &Cluster,
    user: &Caller,
    command: C,
) -> Result<C::Parsed, ServiceError> {
    Ok(cluster.ssh.run(user, &command).await?)
}

pub async fn ls(
    cluster: &Cluster,
    user: &Caller,
    raw: &[u8],
    options: LsOptions,
) -> Result<Arc<Vec<File>>, ServiceError> {
    let path = check_path(cluster, raw)?;
    let command = commands::Ls::new(timeout(cluster), path.as_bytes(), options)?;
    let query = ListingQuery {
        path: path.as_bytes().to_vec(),
        options,
    };
    let listing = async {
        if let Some(files) = sftp::ls(cluster, user, &path, options).await {
            return Ok(files);
        }
        run(cluster, user, command).await
    };
    cluster
        .listings
        .get_or_fetch(&user.username, query, || listing)
        .await
}

/// Exactly one of `bytes`/`lines` (lines, 10, by default).
fn amount(bytes: Option<u64>, lines: Option<u64>) -> Result<Amount, ServiceError> {
    match (bytes, lines) {
        (Some(_), Some(_)) => Err(ServiceError::InvalidRequest(
            "Only one of `bytes` or `lines` can be specified.".into(),
        )),
        (Some(bytes), None) => Ok(Amount::Bytes(bytes)),
        (None, lines) => Ok(Amount::Lines(lines.unwrap_or(10))),
    }
}

pub async fn head(
    cluster: &Cluster,
    user: &Caller,
    raw: &[u8],
    bytes: Option<u64>,
    lines: Option<u64>,
    skip_trailing: bool,
) -> Result<FileContent, ServiceError> {
    let path = check_path(cluster, raw)?;
    let amount = amount(bytes, lines)?;
    let command = commands::Head::new(timeout(cluster), path.as_bytes(), amount, skip_trailing)?;
    if !skip_trailing && let Some(content) = sftp::head(cluster, user, &path, amount).await {
        return Ok(content);
    }
    run(cluster, user, command).await
}

pub async fn tail(
    cluster: &Cluster,
    user: &Caller,
    raw: &[u8],
    bytes: Option<u64>,
    lines: Option<u64>,
    skip_heading: bool,
) -> Result<FileContent, ServiceError> {
    let path = check_path(cluster, raw)?;
    let amount = amount(bytes, lines)?;
    let command = commands::Tail::new(timeout(cluster), path.as_bytes(), amount, skip_heading)?;
    run(cluster, user, command).await
}

/// `size` bytes from `offset`, as text (v2's checks and messages).
pub async fn view(
    cluster: &Cluster,
    user: &Caller,
    raw: &[u8],
    offset: i64,
    size: i64,
) -> Result<String, ServiceError> {
    let path = check_path(cluster, raw)?;
    let max = max_size(cluster);
    let Ok(offset) = u64::try_from(offset) else {
        return Err(ServiceError::InvalidRequest(
            "`offset` value must be an integer value equal or greater than 0".into(),
        ));
    };
    let size = match u64::try_from(size) {
        Ok(size) if size > 0 => size,
        _ => {
            return Err(ServiceError::InvalidRequest(
                "`size` value must be an integer value greater than 0".into(),
            ));
        }
    };
    if size > max {
        return Err(ServiceError::InvalidRequest(format!(
            "`size` value must be less than {max} bytes"
        )));
    }
    let command = commands::View::new(timeout(cluster), path.as_bytes(), offset, size)?;
    if let Some(text) = sftp::view(cluster, user, &path, offset, size).await {
        return Ok(text);
    }
    run(cluster, user, command).await
}

pub async fn checksum(
    cluster: &Cluster,
    user: &Caller,
    raw: &[u8],
) -> Result<Checksum, ServiceError> {
    let path = check_path(cluster, raw)?;
    run(
        cluster,
        user,
        commands::Sha256Sum::new(timeout(cluster), path.as_bytes())?,
    )
    .await
}

pub async fn file_type(
    cluster: &Cluster,
    user: &Caller,
    raw: &[u8],
) -> Result<String, ServiceError> {
    let path = check_path(cluster, raw)?;
    run(
        cluster,
        user,
        commands::FileType::new(timeout(cluster), path.as_bytes())?,
    )
    .await
}

/// `stat` requests of one user with one `dereference`, coalesced: see [`stat`].
pub(crate) type StatBatches = batch::Coalescer<(String, bool), (Vec<u8>, Caller), Option<FileStat>>;

/// A `stat` batch: at most 64 paths, and a command line well within what a shell takes as
/// one argument (128 KiB on Linux): a quoted path is at most four times its length plus 2
/// (the weight given to `submit`). Two batches of a user may run at once: with one, clients
/// that resubmit as soon as they are answered split into a lone request that starts a batch
/// and the rest that wait for it to end; a second one in flight takes them at once.
const STAT_BATCH: batch::Cap = batch::Cap {
    count: 64,
    weight: 64 * 1024,
    in_flight: 2,
};

/// While `stat`s of a user are in flight (see [`STAT_BATCH`]), that user's further `stat`s
/// queue and then run as one [`commands::StatBatch`]. A path the batch could not read (or a batch that failed)
/// runs alone as [`commands::Stat`], so its error is exactly that of a single `stat`.
pub async fn stat(
    cluster: &Arc<Cluster>,
    user: &Caller,
    raw: &[u8],
    dereference: bool,
) -> Result<FileStat, ServiceError> {
    let path = check_path(cluster, raw)?;
    let single = commands::Stat::new(timeout(cluster), path.as_bytes(), dereference)?;
    let runner = {
        let cluster = cluster.clone();
        move |items| stat_batch(cluster.clone(), items, dereference)
    };
    let key = (user.username.clone(), dereference);
    let item = (path.as_bytes().to_vec(), user.clone());
    let batched = cluster
        .stat_batches
        .submit(
            key,
            item,
            STAT_BATCH,
            |(path, _)| path.len() * 4 + 3,
            runner,
        )
        .await;
    match batched.flatten() {
        Some(stat) => Ok(stat),
        None => run(cluster, user, single).await,
    }
}

/// Each path's data from one `stat` of them all (`None` for a path it could not read), run
/// with the newest request's credentials.
async fn stat_batch(
    cluster: Arc<Cluster>,
    items: Vec<(Vec<u8>, Caller)>,
    dereference: bool,
) -> Vec<Option<FileStat>> {
    let Some(user) = items.last().map(|(_, user)| user.clone()) else {
        return Vec::new();
    };
    let paths: Vec<Vec<u8>> = items.into_iter().map(|(path, _)| path).collect();
    let mut unique = paths.clone();
    unique.sort();
    unique.dedup();
    let read = match commands::StatBatch::new(timeout(&cluster), &unique, dereference) {
        Ok(command) => cluster.ssh.run(&user, &command).await,
        Err(err) => {
            tracing::debug!(error = %err, "cannot build a stat batch");
            return vec![None; paths.len()];
        }
    };
    let read: std::collections::HashMap<Vec<u8>, FileStat> = read
        .inspect_err(|err| tracing::debug!(error = %err, "stat batch failed; running alone"))
        .map(|records| records.into_iter().collect())
        .unwrap_or_default();
    paths.iter().map(|path| read.get(path).copied()).collect()
}

pub async fn rm(cluster: &Cluster, user: &Caller, raw: &[u8]) -> Result<(), ServiceError> {
    let _change = Change::new(cluster, user);
    let path = check_path(cluster, raw)?;
    let command = commands::Rm::new(timeout(cluster), path.as_bytes())?;
    if sftp::rm(cluster, user, &path).await.is_some() {
        return Ok(());
    }
    run(cluster, user, command).await
}

/// `mv --force source target` (FirecREST v1's `rename`): both must lie under a configured
/// file system.
pub async fn rename(
    cluster: &Cluster,
    user: &Caller,
    source: &[u8],
    target: &[u8],
) -> Result<(), ServiceError> {
    let _change = Change::new(cluster, user);
    let source = check_path(cluster, source)?;
    let target = check_path(cluster, target)?;
    let command = commands::Rename::new(timeout(cluster), source.as_bytes(), target.as_bytes())?;
    run(cluster, user, command).await
}

/// `cp --force -dR --preserve=all source target` (FirecREST v1's `copy`), within the
/// command timeout: larger copies are transfer jobs.
pub async fn copy(
    cluster: &Cluster,
    user: &Caller,
    source: &[u8],
    target: &[u8],
) -> Result<(), ServiceError> {
    let _change = Change::new(cluster, user);
    let source = check_path(cluster, source)?;
    let target = check_path(cluster, target)?;
    let command = commands::CopyTree::new(timeout(cluster), source.as_bytes(), target.as_bytes())?;
    run(cluster, user, command).await
}

pub async fn mkdir(
    cluster: &Cluster,
    user: &Caller,
    raw: &[u8],
    parents: bool,
) -> Result<File, ServiceError> {
    let _change = Change::new(cluster, user);
    // `mkdir dir/` is common and means `dir`; `dir/.` or `dir/..` name no new directory.
    let trimmed = raw.strip_suffix(b"/").unwrap_or(raw);
    path::check_new_name("path", trimmed)?;
    let path = check_path(cluster, raw)?;
    let command = commands::mkdir(timeout(cluster), path.as_bytes(), parents)?;
    if let Some(made) = sftp::mkdir(cluster, user, &path, parents).await {
        return made;
    }
    run(cluster, user, command).await
}

/// A link at `link` pointing to `target`; both must lie under a configured file system.
pub async fn symlink(
    cluster: &Cluster,
    user: &Caller,
    target: &[u8],
    link: &[u8],
) -> Result<File, ServiceError> {
    let _change = Change::new(cluster, user);
    let target = check_path(cluster, target)?;
    path::check_new_name("linkPath", link)?;
    let link = check_path(cluster, link)?;
    let command = commands::symlink(timeout(cluster), target.as_bytes(), link.as_bytes())?;
    if let Some(linked) = sftp::symlink(cluster, user, &target, &link).await {
        return linked;
    }
    run(cluster, user, command).await
}

pub async fn chmod(
    cluster: &Cluster,
    user: &Caller,
    raw: &[u8],
    mode: &str,
) -> Result<File, ServiceError> {
    let _change = Change::new(cluster, user);
    let mode = FileMode::parse(mode).map_err(|message| ServiceError::InvalidField {
        field: "mode",
        message,
    })?;
    let path = check_path(cluster, raw)?;
    let command = commands::chmod(timeout(cluster), path.as_bytes(), &mode)?;
    if let Some(changed) = sftp::chmod(cluster, user, &path, &mode).await {
        return changed;
    }
    run(cluster, user, command).await
}

pub async fn chown(
    cluster: &Cluster,
    user: &Caller,
    raw: &[u8],
    owner: &str,
    group: &str,
) -> Result<File, ServiceError> {
    let _change = Change::new(cluster, user);
    let invalid = |field| move |message| ServiceError::InvalidField { field, message };
    let owner = AccountName::parse("owner", owner).map_err(invalid("owner"))?;
    let group = AccountName::parse("group", group).map_err(invalid("group"))?;
    let path = check_path(cluster, raw)?;
    let command = commands::chown(timeout(cluster), path.as_bytes(), &owner, &group)?;
    run(cluster, user, command).await
}

/// A file's bytes as they arrive from the cluster; an `Err` item ends the download early.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, SshError>> + Send>>;

/// A file's bytes, streamed: refused (413) past `max_ops_file_size` before any is read, and
/// a failure before the first byte (missing, unreadable) is an error with v2's status.
pub async fn download(
    cluster: &Cluster,
    user: &Caller,
    raw: &[u8],
) -> Result<ByteStream, ServiceError> {
    let path = check_path(cluster, raw)?;
    if let Some(stream) = sftp::download(cluster, user, &path).await {
        return stream;
    }
    let stat = commands::Stat::new(timeout(cluster), path.as_bytes(), true)?;
    let stat = run(cluster, user, stat).await?;
    if stat.size > max_size(cluster) {
        return Err(ServiceError::TooLarge("File to download is too large."));
    }
    let cat = commands::Cat::new(timeout(cluster), path.as_bytes())?;
    match cluster.ssh.execute_streaming(user, &cat).await? {
        Streamed::Finished(output) => {
            cat.parse(output)?;
            Ok(Box::pin(futures::stream::empty()))
        }
        Streamed::Stdout(chunks) => Ok(Box::pin(futures::stream::unfold(
            chunks,
            |mut chunks| async move { chunks.recv().await.map(|item| (item, chunks)) },
        ))),
    }
}

/// The client's side of an upload broke off (a malformed or cut body); the message says how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyBroken(pub String);

/// Writes the file arriving on `body` to `directory/name` atomically: over SFTP to a
/// temporary name renamed over the target once complete ([`sftp::upload`]), else by
/// [`commands::Upload`]. The bytes flow chunk by chunk; past `max_ops_file_size` (413) or on
/// a broken body (400) the upload is abandoned, which leaves no file behind.
pub async fn upload<S>(
    cluster: &Cluster,
    user: &Caller,
    directory: &[u8],
    name: &[u8],
    body: S,
) -> Result<(), ServiceError>
where
    S: Stream<Item = Result<Bytes, BodyBroken>> + Send,
{
    let _change = Change::new(cluster, user);
    let directory = check_path(cluster, directory)?;
    // Refuses `/`, `..` and NUL in the name: the file lands in `directory`, nowhere else.
    directory.join(name)?;
    let command = commands::Upload::new(timeout(cluster), directory.as_bytes(), name)?;
    let (chunks, input) = mpsc::channel(4);
    let feed = feed_upload(body, chunks, max_size(cluster));
    let store = async move {
        let mut input = input;
        if let Some(stored) = sftp::upload(cluster, user, &directory, name, &mut input).await {
            return stored;
        }
        let output = cluster
            .ssh
            .execute_with_input(user, &command, Input::Stream(input))
            .await?;
        Ok(command.parse(output)?)
    };
    let (fed, stored) = tokio::join!(feed, store);
    fed?;
    stored
}

/// Passes `body`'s chunks on while they stay within `limit`; past it, or on a broken body,
/// tells the writer to abandon the file (`InputAborted`) and says why.
async fn feed_upload<S>(
    body: S,
    chunks: mpsc::Sender<Result<Bytes, InputAborted>>,
    limit: u64,
) -> Result<(), ServiceError>
where
    S: Stream<Item = Result<Bytes, BodyBroken>> + Send,
{
    let mut body = std::pin::pin!(body);
    let mut received = 0u64;
    let refusal = loop {
        match body.next().await {
            None => return Ok(()),
            Some(Ok(chunk)) => {
                received += chunk.len() as u64;
                if received > limit {
                    break ServiceError::TooLarge("File to upload is too large.");
                }
                if chunks.send(Ok(chunk)).await.is_err() {
                    // The writer ended early; its result says why.
                    return Ok(());
                }
            }
            Some(Err(BodyBroken(message))) => break ServiceError::InvalidRequest(message),
        }
    };
    let _ = chunks.send(Err(InputAborted)).await;
    Err(refusal)
}

pub async fn compress(
    cluster: &Cluster,
    user: &Caller,
    source: &[u8],
    target: &[u8],
    pattern: Option<&str>,
    compression: Compression,
    dereference: bool,
) -> Result<(), ServiceError> {
    let _change = Change::new(cluster, user);
    let source = check_path(cluster, source)?;
    let target = check_path(cluster, target)?;
    let (parent, base) = source.split_parent();
    let command = commands::Compress::new(
        Some(timeout(cluster)),
        parent,
        base,
        target.as_bytes(),
        pattern,
        compression,
        dereference,
    )?;
    run(cluster, user, command).await
}

pub async fn extract(
    cluster: &Cluster,
    user: &Caller,
    source: &[u8],
    target: &[u8],
    compression: Compression,
) -> Result<(), ServiceError> {
    let _change = Change::new(cluster, user);
    let source = check_path(cluster, source)?;
    let target = check_path(cluster, target)?;
    let command = commands::Extract::new(
        Some(timeout(cluster)),
        source.as_bytes(),
        target.as_bytes(),
        compression,
    )?;
    run(cluster, user, command).await
}
