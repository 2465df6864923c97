//! The compute service (wire reference §2.2): submit, list, inspect, cancel and attach to
//! jobs through the cluster's scheduler, gated on the scheduler's health. Job queries go
//! through the cluster's [`JobsCache`].

use std::collections::BTreeSet;
use std::time::Duration;

use ironcrest_config::ProbedService;
use ironcrest_remote::Caller;
use ironcrest_scheduler::job::ACTIVE_STATES;
use ironcrest_scheduler::{Job, JobDescription, JobFilter, JobMetadata, SchedulerError};

pub use crate::cache::{JobQuery, JobsCache};

use crate::events::{Delivery, Kind, Watch};
use crate::{Cluster, ServiceError};

pub async fn submit(
    cluster: &Cluster,
    user: &Caller,
    job: &JobDescription,
) -> Result<String, ServiceError> {
    cluster.require_healthy(ProbedService::Scheduler)?;
    let job_id = cluster.scheduler.submit(user, job).await;
    cluster.jobs_cache.invalidate(&user.username);
    cluster.job_comments.invalidate(&user.username);
    Ok(job_id?)
}

pub async fn jobs(
    cluster: &Cluster,
    user: &Caller,
    filter: JobFilter,
) -> Result<Vec<Job>, ServiceError> {
    cluster.require_healthy(ProbedService::Scheduler)?;
    let jobs = cluster
        .jobs_cache
        .get_or_fetch(&user.username, JobQuery::List(filter.clone()), || {
            cluster.scheduler.jobs(user, &filter)
        })
        .await?;
    Ok(jobs.as_ref().clone())
}

pub async fn job(cluster: &Cluster, user: &Caller, job_id: &str) -> Result<Job, ServiceError> {
    cluster.require_healthy(ProbedService::Scheduler)?;
    let found = cluster
        .jobs_cache
        .get_or_fetch(
            &user.username,
            JobQuery::One(job_id.to_string()),
            || async {
                // "Not found" is an answer worth sharing too: cache it as no job.
                match cluster.scheduler.job(user, job_id).await {
                    Ok(job) => Ok(vec![job]),
                    Err(SchedulerError::JobNotFound) => Ok(Vec::new()),
                    Err(err) => Err(err),
                }
            },
        )
        .await?;
    found
        .first()
        .cloned()
        .ok_or(ServiceError::Scheduler(SchedulerError::JobNotFound))
}

/// The job states a long poll waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AwaitedStates {
    /// Any final state (the job has ended).
    Final,
    /// These states (Slurm's names).
    Named(BTreeSet<String>),
}

impl AwaitedStates {
    pub fn includes(&self, state: &str) -> bool {
        match self {
            AwaitedStates::Final => !ACTIVE_STATES.contains(&state),
            AwaitedStates::Named(states) => states.contains(state),
        }
    }
}

/// The job once it is in one of the `until` states or `wait` has passed, whichever comes
/// first: then [`job`]'s answer, the same as without waiting. While it waits nothing is
/// asked of the scheduler: the cluster's job events poller tells when the job changes, so
/// a long poll costs two lookups (at its start and its answer) however long it waits.
pub async fn wait_for_job(
    cluster: &Cluster,
    user: &Caller,
    job_id: &str,
    until: &AwaitedStates,
    wait: Duration,
) -> Result<Job, ServiceError> {
    let found = job(cluster, user, job_id).await?;
    if wait.is_zero() || until.includes(&found.status.state) {
        return Ok(found);
    }
    let deadline = tokio::time::Instant::now() + wait;
    let mut subscription = cluster.job_events()?.subscribe(Watch {
        user: user.username.clone(),
        jobs: Some([job_id.to_string()].into()),
        resume_from: None,
        kind: Kind::LongPoll,
    })?;
    // A poller that starts with this subscription takes its first listing as the baseline,
    // telling no change: what changed between the lookup and that listing is looked up
    // again once it is taken. A running poller tells every change after the subscription
    // (one published in the instant between the lookup and it is answered at the end).
    let mut look_again = !subscription.ready;
    loop {
        match tokio::time::timeout_at(deadline, subscription.next()).await {
            Ok(Some(Delivery::Event(event))) if until.includes(&event.state) => break,
            Ok(Some(Delivery::Ready(_) | Delivery::Reset { .. })) if look_again => {
                look_again = false;
                let found = job(cluster, user, job_id).await?;
                if until.includes(&found.status.state) {
                    return Ok(found);
                }
            }
            Ok(Some(_)) => {}
            // The time is up, or the subscription ended (the server is stopping).
            Ok(None) | Err(_) => break,
        }
    }
    drop(subscription);
    job(cluster, user, job_id).await
}

pub async fn metadata(
    cluster: &Cluster,
    user: &Caller,
    job_id: &str,
) -> Result<JobMetadata, ServiceError> {
    cluster.require_healthy(ProbedService::Scheduler)?;
    Ok(cluster.scheduler.job_metadata(user, job_id).await?)
}

pub async fn cancel(cluster: &Cluster, user: &Caller, job_id: &str) -> Result<(), ServiceError> {
    cluster.require_healthy(ProbedService::Scheduler)?;
    let result = cluster.scheduler.cancel(user, job_id).await;
    cluster.jobs_cache.invalidate(&user.username);
    Ok(result?)
}

pub async fn attach(
    cluster: &Cluster,
    user: &Caller,
    job_id: &str,
    command: &str,
) -> Result<(), ServiceError> {
    cluster.require_healthy(ProbedService::Scheduler)?;
    Ok(cluster.scheduler.attach(user, job_id, command).await?)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;
    use chrono::Utc;
    use ironcrest_scheduler::{Account, Node, Partition, PingStatus, Reservation, Scheduler};
    use ironcrest_ssh::{CredentialProvider, Credentials, PoolSettings, SshError, SshPool};

    use super::*;
    use crate::health::{HealthCheck, HealthReport};

    /// Counts job queries; everything else is out of scope here.
    #[derive(Default)]
    struct Fake {
        listings: AtomicUsize,
        lookups: AtomicUsize,
    }

    fn unused() -> SchedulerError {
        SchedulerError::InvalidArgument("not used in this test".into())
    }

    #[async_trait]
    impl Scheduler for Fake {
        async fn nodes(&self, _: &Caller) -> Result<Vec<Node>, SchedulerError> {
            Err(unused())
        }
        async fn partitions(&self, _: &Caller, _: bool) -> Result<Vec<Partition>, SchedulerError> {
            Err(unused())
        }
        async fn reservations(&self, _: &Caller) -> Result<Vec<Reservation>, SchedulerError> {
            Err(unused())
        }
        async fn accounts(&self, _: &Caller) -> Result<Option<Vec<Account>>, SchedulerError> {
            Err(unused())
        }
        async fn ping(&self, _: &Caller) -> Result<Vec<PingStatus>, SchedulerError> {
            Err(unused())
        }
        async fn submit(&self, _: &Caller, _: &JobDescription) -> Result<String, SchedulerError> {
            Ok("1".into())
        }
        async fn fetch_jobs(&self, _: &Caller, _: &JobFilter) -> Result<Vec<Job>, SchedulerError> {
            self.listings.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            Ok(Vec::new())
        }
        async fn commented_jobs(
            &self,
            _: &Caller,
            _: u64,
        ) -> Result<Vec<ironcrest_scheduler::CommentedJob>, SchedulerError> {
            Err(unused())
        }
        async fn job(&self, _: &Caller, _: &str) -> Result<Job, SchedulerError> {
            self.lookups.fetch_add(1, Ordering::SeqCst);
            Err(SchedulerError::JobNotFound)
        }
        async fn job_metadata(&self, _: &Caller, _: &str) -> Result<JobMetadata, SchedulerError> {
            Err(unused())
        }
        async fn cancel(&self, _: &Caller, _: &str) -> Result<(), SchedulerError> {
            Ok(())
        }
        async fn attach(&self, _: &Caller, _: &str, _: &str) -> Result<(), SchedulerError> {
            Ok(())
        }
    }

    struct NoCredentials;

    #[async_trait]
    impl CredentialProvider for NoCredentials {
        async fn credentials(&self, _: &Caller) -> Result<Credentials, SshError> {
            Err(SshError::Credentials("no SSH in these tests".into()))
        }
    }

    fn cluster(fake: Arc<Fake>, max_age: f64) -> Cluster {
        let yaml = format!(
            "name: c\nssh: {{host: h, port: 22}}\n\
             scheduler: {{type: slurm, version: \"1\", jobs_cache_max_age: {max_age}}}\n\
             service_account: {{client_id: a, secret: b}}\nprobing: {{interval: 10}}\n"
        );
        let config: ironcrest_config::ClusterConfig = serde_yaml_ng::from_str(&yaml).unwrap();
        let pool = SshPool::new(
            PoolSettings::from_config(&config.name, &config.ssh, 1024),
            Arc::new(NoCredentials),
        );
        Cluster::new(config, pool, fake)
    }

    fn alice() -> Caller {
        Caller::new("alice", "token")
    }

    #[tokio::test]
    async fn concurrent_listings_share_a_call_and_submit_invalidates() {
        let fake = Arc::new(Fake::default());
        let cluster = cluster(fake.clone(), 30.0);
        let user = alice();
        let results =
            futures::future::join_all((0..16).map(|_| jobs(&cluster, &user, JobFilter::default())))
                .await;
        assert!(results.iter().all(Result::is_ok));
        assert_eq!(fake.listings.load(Ordering::SeqCst), 1);
        jobs(&cluster, &user, JobFilter::default()).await.unwrap();
        assert_eq!(
            fake.listings.load(Ordering::SeqCst),
            1,
            "fresh answer reused"
        );
        submit(&cluster, &user, &JobDescription::default())
            .await
            .unwrap();
        jobs(&cluster, &user, JobFilter::default()).await.unwrap();
        assert_eq!(
            fake.listings.load(Ordering::SeqCst),
            2,
            "the submit showed at once"
        );
        cancel(&cluster, &user, "1").await.unwrap();
        jobs(&cluster, &user, JobFilter::default()).await.unwrap();
        assert_eq!(
            fake.listings.load(Ordering::SeqCst),
            3,
            "the cancel showed at once"
        );
    }

    #[tokio::test]
    async fn an_unknown_job_is_not_found_and_that_answer_is_shared() {
        let fake = Arc::new(Fake::default());
        let cluster = cluster(fake.clone(), 30.0);
        for _ in 0..2 {
            let error = job(&cluster, &alice(), "7").await.unwrap_err();
            assert!(matches!(
                error,
                ServiceError::Scheduler(SchedulerError::JobNotFound)
            ));
        }
        assert_eq!(fake.lookups.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_unhealthy_scheduler_gates_every_compute_call() {
        let fake = Arc::new(Fake::default());
        let cluster = cluster(fake.clone(), 0.0);
        cluster.record_health(HealthReport {
            last_health_check: Some(Utc::now()),
            checks: vec![HealthCheck {
                service: Some(ProbedService::Scheduler),
                last_checked: Utc::now(),
                latency: 0.1,
                healthy: false,
                message: Some("down".into()),
                path: None,
            }],
        });
        let user = alice();
        let gated = |result: Result<(), ServiceError>| {
            matches!(
                result,
                Err(ServiceError::Unhealthy {
                    service: "scheduler",
                    ..
                })
            )
        };
        assert!(gated(
            jobs(&cluster, &user, JobFilter::default()).await.map(drop)
        ));
        assert!(gated(job(&cluster, &user, "1").await.map(drop)));
        assert!(gated(metadata(&cluster, &user, "1").await.map(drop)));
        assert!(gated(
            submit(&cluster, &user, &JobDescription::default())
                .await
                .map(drop)
        ));
        assert!(gated(cancel(&cluster, &user, "1").await));
        assert!(gated(attach(&cluster, &user, "1", "true").await));
        assert_eq!(fake.listings.load(Ordering::SeqCst), 0);
    }
}
