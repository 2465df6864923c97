//! The status service (wire reference §2.1): systems, nodes, partitions, reservations and
//! the calling user's identity and accounts.

mod id;

use std::sync::Arc;

use ironcrest_config::ProbedService;
use ironcrest_remote::Caller;
use ironcrest_scheduler::model::check_reservation_name;
use ironcrest_scheduler::{Account, Node, Partition, Reservation, ReservationChange};
use serde::Serialize;
use utoipa::ToSchema;

pub use id::{Id, IdName, Identity};

use crate::cache::Query;
use crate::{Cluster, ServiceError};

/// `/status/{system}/userinfo`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UserInfo {
    pub user: IdName,
    /// The primary group (FirecREST before API 2.6.0, and pyfirecrest 3.8's CLI, read it).
    pub group: IdName,
    /// Every group, the primary one marked `default` (API 2.6.0).
    pub groups: Vec<Group>,
    /// `null` where the scheduler has no accounts (PBS).
    pub accounts: Option<Vec<Account>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Group {
    pub id: String,
    pub name: String,
    pub default: bool,
}

pub async fn nodes(cluster: &Cluster, user: &Caller) -> Result<Vec<Node>, ServiceError> {
    Ok(cluster.scheduler.nodes(user).await?)
}

pub async fn partitions(
    cluster: &Cluster,
    user: &Caller,
    show_hidden: bool,
) -> Result<Vec<Partition>, ServiceError> {
    Ok(cluster.scheduler.partitions(user, show_hidden).await?)
}

pub async fn reservations(
    cluster: &Cluster,
    user: &Caller,
) -> Result<Vec<Reservation>, ServiceError> {
    Ok(cluster.scheduler.reservations(user).await?)
}

/// Makes, changes or deletes a reservation (FirecREST v1's `/reservations`), once its
/// values are ones the scheduler's parsers read as meant; the scheduler decides whether the
/// user may (Slurm: operators and administrators only, else 403).
pub async fn change_reservation(
    cluster: &Cluster,
    user: &Caller,
    change: &ReservationChange,
) -> Result<(), ServiceError> {
    cluster.require_healthy(ProbedService::Scheduler)?;
    let checked = match change {
        ReservationChange::Create(spec) | ReservationChange::Update(spec) => spec.check(),
        ReservationChange::Delete { name } => check_reservation_name(name),
    };
    checked.map_err(ServiceError::InvalidRequest)?;
    Ok(cluster.scheduler.change_reservation(user, change).await?)
}

/// A user's `userinfo`, the one query of the [`Cluster::userinfo_cache`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserInfoQuery;

impl Query for UserInfoQuery {
    type Answer = UserInfo;
    const CACHE: &'static str = "userinfo";
}

/// Identity from `id` and accounts from the scheduler, fetched concurrently; concurrent
/// calls of a user share one fetch, and an answer serves for `userinfo_cache_max_age`.
pub async fn userinfo(cluster: &Cluster, user: &Caller) -> Result<Arc<UserInfo>, ServiceError> {
    cluster.require_healthy(ProbedService::Ssh)?;
    cluster
        .userinfo_cache
        .get_or_fetch(&user.username, UserInfoQuery, || {
            fetch_userinfo(cluster, user)
        })
        .await
}

async fn fetch_userinfo(cluster: &Cluster, user: &Caller) -> Result<UserInfo, ServiceError> {
    let (identity, accounts) =
        tokio::join!(cluster.ssh.run(user, &Id), cluster.scheduler.accounts(user));
    let identity = identity?;
    let groups = identity
        .groups
        .into_iter()
        .map(|group| Group {
            default: group == identity.group,
            id: group.id,
            name: group.name,
        })
        .collect();
    Ok(UserInfo {
        user: identity.user,
        group: identity.group,
        groups,
        accounts: accounts?,
    })
}
