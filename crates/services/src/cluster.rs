//! A configured cluster at run time: its SSH pool, its scheduler and its latest health.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use ironcrest_config::{ClusterConfig, ProbedService, WorkLimits};
use ironcrest_scheduler::Scheduler;
use ironcrest_ssh::SshPool;

use crate::ServiceError;
use crate::cache::Coalescing;
use crate::compute::JobsCache;
use crate::events::JobEvents;
use crate::health::HealthReport;
use crate::status::UserInfoQuery;
use crate::transfer::StagingArea;

pub struct Cluster {
    pub config: ClusterConfig,
    pub ssh: SshPool,
    pub scheduler: Arc<dyn Scheduler>,
    pub jobs_cache: JobsCache,
    pub userinfo_cache: Coalescing<UserInfoQuery>,
    /// The comments of users' jobs, which say which jobs do tasks (`tasks`).
    pub(crate) job_comments: Coalescing<crate::tasks::CommentsQuery>,
    /// Listings in flight, shared by identical ones; see `filesystem::ListingQuery`.
    pub(crate) listings: Coalescing<crate::filesystem::ListingQuery>,
    /// The S3 staging area, when the cluster's data transfer is `s3`.
    pub staging: Option<StagingArea>,
    /// The latest health-check run; `None` until the first one finishes.
    health: RwLock<Option<HealthReport>>,
    /// The cluster's UTC offset in seconds if its zone has a fixed one (`None`: it has
    /// daylight saving time), and when it was learnt; see `filesystem::sftp`.
    utc_offset: Mutex<Option<(Instant, Option<i32>)>>,
    /// `stat` requests waiting for their user's batch; see `filesystem::stat`.
    pub(crate) stat_batches: crate::filesystem::StatBatches,
    /// Per user and directory, when a transfer log directory was last made sure of.
    pub(crate) transfer_log_directories:
        Mutex<std::collections::HashMap<(String, String), Instant>>,
    /// The caps on work a user may have started, as configured now (they are reloadable).
    pub(crate) work_limits: Arc<dyn Fn() -> WorkLimits + Send + Sync>,
    /// The job event streams and long polls, and their poller; `None` until wired.
    job_events: Option<JobEvents>,
}

impl Cluster {
    pub fn new(config: ClusterConfig, ssh: SshPool, scheduler: Arc<dyn Scheduler>) -> Self {
        let max_age = std::time::Duration::from_secs_f64(config.scheduler.jobs_cache_max_age);
        let userinfo_max_age =
            std::time::Duration::from_secs_f64(config.scheduler.userinfo_cache_max_age);
        Self {
            jobs_cache: JobsCache::new(max_age),
            job_comments: Coalescing::new(max_age),
            userinfo_cache: Coalescing::new(userinfo_max_age),
            listings: Coalescing::new(std::time::Duration::ZERO),
            staging: StagingArea::from_config(&config),
            config,
            ssh,
            scheduler,
            health: RwLock::new(None),
            utc_offset: Mutex::new(None),
            stat_batches: Default::default(),
            transfer_log_directories: Default::default(),
            work_limits: Arc::new(WorkLimits::default),
            job_events: None,
        }
    }

    /// Serves job events through `events` (which polls as the cluster's service account).
    pub fn with_job_events(mut self, events: JobEvents) -> Self {
        self.job_events = Some(events);
        self
    }

    /// The cluster's job events; a server built without them answers 500, naming why.
    pub fn job_events(&self) -> Result<&JobEvents, ServiceError> {
        self.job_events.as_ref().ok_or_else(|| {
            ServiceError::Misconfigured(format!(
                "Job events are not set up for {} (they need its service account).",
                self.name()
            ))
        })
    }

    /// Takes the caps on a user's unfinished work from `limits`, asked at each submission.
    pub fn with_work_limits(
        mut self,
        limits: impl Fn() -> WorkLimits + Send + Sync + 'static,
    ) -> Self {
        self.work_limits = Arc::new(limits);
        self
    }

    /// The UTC offset learnt less than `max_age` ago, if any.
    pub(crate) fn utc_offset(&self, max_age: Duration) -> Option<Option<i32>> {
        let learnt = *self.utc_offset.lock().unwrap_or_else(|p| p.into_inner());
        learnt
            .filter(|(at, _)| at.elapsed() < max_age)
            .map(|(_, offset)| offset)
    }

    pub(crate) fn record_utc_offset(&self, offset: Option<i32>) {
        *self.utc_offset.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), offset));
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn health(&self) -> Option<HealthReport> {
        self.health
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn record_health(&self, report: HealthReport) {
        *self.health.write().unwrap_or_else(|p| p.into_inner()) = Some(report);
    }

    /// Answers 503 early when `service` failed its last check. Nothing is gated before the
    /// first check has run, or when that service is not probed.
    pub fn require_healthy(&self, service: ProbedService) -> Result<(), ServiceError> {
        let Some(report) = self.health() else {
            return Ok(());
        };
        let unhealthy = report
            .checks
            .iter()
            .any(|check| check.service == Some(service) && check.path.is_none() && !check.healthy);
        if unhealthy {
            return Err(ServiceError::Unhealthy {
                service: match service {
                    ProbedService::Scheduler => "scheduler",
                    ProbedService::Ssh => "ssh",
                    ProbedService::Filesystem => "filesystem",
                    ProbedService::S3 => "s3",
                },
                system: self.name().to_string(),
            });
        }
        Ok(())
    }
}

/// Every configured cluster, looked up by case-insensitive name.
#[derive(Clone)]
pub struct Clusters(Arc<Vec<Arc<Cluster>>>);

impl Clusters {
    pub fn new(clusters: Vec<Cluster>) -> Self {
        Self(Arc::new(clusters.into_iter().map(Arc::new).collect()))
    }

    pub fn get(&self, name: &str) -> Result<Arc<Cluster>, ServiceError> {
        self.0
            .iter()
            .find(|cluster| cluster.name().eq_ignore_ascii_case(name))
            .cloned()
            .ok_or(ServiceError::SystemNotFound)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Cluster>> {
        self.0.iter()
    }
}
