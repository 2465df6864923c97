//! [`Measured`]: any [`Scheduler`] with its calls counted and timed, per cluster, call and
//! outcome (`ironcrest_scheduler_calls_total`, `ironcrest_scheduler_call_duration_seconds`).

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use ironcrest_remote::Caller;

use crate::{
    Account, CommentedJob, Job, JobDescription, JobFilter, JobId, JobMetadata, Node, Partition,
    PingStatus, Reservation, ReservationChange, Scheduler, SchedulerError,
};

/// A scheduler backend whose calls are measured; otherwise the backend itself.
pub struct Measured {
    inner: Arc<dyn Scheduler>,
    cluster: String,
}

impl Measured {
    pub fn new(cluster: &str, inner: Arc<dyn Scheduler>) -> Self {
        Self {
            inner,
            cluster: cluster.to_string(),
        }
    }

    async fn measure<T>(
        &self,
        call: &'static str,
        run: impl Future<Output = Result<T, SchedulerError>>,
    ) -> Result<T, SchedulerError> {
        let started = Instant::now();
        let result = run.await;
        let labels = [
            ("cluster", self.cluster.clone()),
            ("call", call.to_string()),
            (
                "outcome",
                result
                    .as_ref()
                    .map_or_else(SchedulerError::kind, |_| "ok")
                    .to_string(),
            ),
        ];
        metrics::counter!("ironcrest_scheduler_calls_total", &labels).increment(1);
        metrics::histogram!("ironcrest_scheduler_call_duration_seconds", &labels)
            .record(started.elapsed());
        result
    }
}

/// Every method but `jobs`, whose default applies the filter to the measured `fetch_jobs`.
#[async_trait]
impl Scheduler for Measured {
    async fn nodes(&self, user: &Caller) -> Result<Vec<Node>, SchedulerError> {
        self.measure("nodes", self.inner.nodes(user)).await
    }

    async fn partitions(
        &self,
        user: &Caller,
        show_hidden: bool,
    ) -> Result<Vec<Partition>, SchedulerError> {
        self.measure("partitions", self.inner.partitions(user, show_hidden))
            .await
    }

    async fn reservations(&self, user: &Caller) -> Result<Vec<Reservation>, SchedulerError> {
        self.measure("reservations", self.inner.reservations(user))
            .await
    }

    async fn change_reservation(
        &self,
        user: &Caller,
        change: &ReservationChange,
    ) -> Result<(), SchedulerError> {
        self.measure(
            "change_reservation",
            self.inner.change_reservation(user, change),
        )
        .await
    }

    async fn accounts(&self, user: &Caller) -> Result<Option<Vec<Account>>, SchedulerError> {
        self.measure("accounts", self.inner.accounts(user)).await
    }

    async fn ping(&self, user: &Caller) -> Result<Vec<PingStatus>, SchedulerError> {
        self.measure("ping", self.inner.ping(user)).await
    }

    async fn submit(&self, user: &Caller, job: &JobDescription) -> Result<String, SchedulerError> {
        self.measure("submit", self.inner.submit(user, job)).await
    }

    async fn fetch_jobs(
        &self,
        user: &Caller,
        filter: &JobFilter,
    ) -> Result<Vec<Job>, SchedulerError> {
        self.measure("jobs", self.inner.fetch_jobs(user, filter))
            .await
    }

    async fn commented_jobs(
        &self,
        user: &Caller,
        window_seconds: u64,
    ) -> Result<Vec<CommentedJob>, SchedulerError> {
        self.measure(
            "commented_jobs",
            self.inner.commented_jobs(user, window_seconds),
        )
        .await
    }

    async fn cluster_jobs(
        &self,
        user: &Caller,
        changed_since: Option<i64>,
    ) -> Result<Option<Vec<Job>>, SchedulerError> {
        self.measure("cluster_jobs", self.inner.cluster_jobs(user, changed_since))
            .await
    }

    async fn ended_jobs(&self, user: &Caller, ids: &[JobId]) -> Result<Vec<Job>, SchedulerError> {
        self.measure("ended_jobs", self.inner.ended_jobs(user, ids))
            .await
    }

    async fn job(&self, user: &Caller, job_id: &str) -> Result<Job, SchedulerError> {
        self.measure("job", self.inner.job(user, job_id)).await
    }

    async fn job_metadata(
        &self,
        user: &Caller,
        job_id: &str,
    ) -> Result<JobMetadata, SchedulerError> {
        self.measure("job_metadata", self.inner.job_metadata(user, job_id))
            .await
    }

    async fn cancel(&self, user: &Caller, job_id: &str) -> Result<(), SchedulerError> {
        self.measure("cancel", self.inner.cancel(user, job_id))
            .await
    }

    async fn attach(
        &self,
        user: &Caller,
        job_id: &str,
        command: &str,
    ) -> Result<(), SchedulerError> {
        self.measure("attach", self.inner.attach(user, job_id, command))
            .await
    }
}
