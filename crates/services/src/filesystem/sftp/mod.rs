//! The operations served over the user's standing SFTP session ([`ironcrest_ssh::Sftp`])
//! instead of a remote process: `ls` of a directory (not recursive, not dereferencing),
//! `head` (not `skipTrailing`), `view`, `rm` of a non-directory, `download`, `mkdir`,
//! `symlink`, `chmod` with an octal mode of a non-directory, and `upload` (two-phase).
//!
//! Each returns `None` when SFTP cannot give exactly what the exec path gives, and the
//! caller then runs the tool: any SFTP error before a result (so error statuses and
//! messages are always the tools'), a path or name that is not UTF-8 (russh-sftp decodes
//! names lossily), a variant SFTP has no equivalent for, or a cluster time zone with
//! daylight saving time. `ls` prints times in the cluster's zone, SFTP gives UTC seconds:
//! the zone's offset is learnt with `date` at three instants of the year (hourly per
//! cluster) and used only when they agree.
//!
//! By what they serve: [`listing`] (`ls`), [`reading`] (`head`, `view`, `download`),
//! [`changes`] (`rm`, `mkdir`, `symlink`, `chmod`, answered like `ls -d`) and [`upload`].

mod changes;
mod listing;
mod reading;
mod upload;

use std::time::Duration;

use chrono::{Datelike, TimeZone, Utc};
use ironcrest_remote::Caller;
use ironcrest_ssh::{Sftp, SftpError};

pub(super) use changes::{chmod, mkdir, rm, symlink};
pub(super) use listing::ls;
pub(super) use reading::{download, head, view};
pub(super) use upload::upload;

use super::{commands, timeout};
use crate::Cluster;

/// How long a learnt UTC offset is trusted.
const OFFSET_MAX_AGE: Duration = Duration::from_secs(3600);
/// SSH_FX_NO_SUCH_FILE.
const NO_SUCH_FILE: u32 = 2;

const S_IFMT: u32 = 0o170_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFREG: u32 = 0o100_000;

/// The session, or `None` (logged) if it cannot be had.
async fn session(cluster: &Cluster, user: &Caller) -> Option<Sftp> {
    cluster
        .ssh
        .sftp(user)
        .await
        .inspect_err(|err| tracing::debug!(error = %err, "SFTP unavailable; using exec"))
        .ok()
}

/// Logs why SFTP gave up on a request.
fn fallback<T>(result: Result<T, SftpError>) -> Option<T> {
    result
        .inspect_err(|err| tracing::debug!(error = %err, "SFTP request failed; using exec"))
        .ok()
}

/// The cluster's fixed UTC offset, learnt as `user` if not known; `None` if it has none.
async fn utc_offset(cluster: &Cluster, user: &Caller) -> Option<i32> {
    if let Some(known) = cluster.utc_offset(OFFSET_MAX_AGE) {
        return known;
    }
    let now = Utc::now();
    let instant = |month| {
        Utc.with_ymd_and_hms(now.year(), month, 1, 12, 0, 0)
            .single()
            .map_or(now.timestamp(), |t| t.timestamp())
    };
    let probe =
        commands::UtcOffsets::new(timeout(cluster), &[now.timestamp(), instant(1), instant(7)])
            .ok()?;
    let offsets = cluster
        .ssh
        .run(user, &probe)
        .await
        .inspect_err(|err| tracing::debug!(error = %err, "cannot learn the cluster's UTC offset"))
        .ok()?;
    let fixed = offsets
        .windows(2)
        .all(|pair| pair[0] == pair[1])
        .then(|| offsets.first().copied())
        .flatten();
    cluster.record_utc_offset(fixed);
    fixed
}
