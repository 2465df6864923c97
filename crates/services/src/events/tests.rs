//! The hub's fan-out, queues, limits and life, against a scheduler stand-in whose listing
//! the test sets (the poller's rounds run for real, every 20 ms).

use std::sync::Mutex as StdMutex;

use async_trait::async_trait;
use ironcrest_remote::Caller;
use ironcrest_scheduler::{
    Account, CommentedJob, JobDescription, JobFilter, JobId, JobMetadata, JobStatus, Node,
    Partition, PingStatus, Reservation, SchedulerError,
};

use super::*;

/// The cluster's jobs as the test sets them; accounting knows only what the listing shows.
#[derive(Default)]
struct Cluster {
    jobs: StdMutex<Vec<Job>>,
}

impl Cluster {
    fn set(&self, jobs: &[(&str, &str, &str)]) {
        *self.jobs.lock().unwrap() = jobs
            .iter()
            .map(|(id, user, state)| Job {
                job_id: id.to_string(),
                user: Some(user.to_string()),
                status: JobStatus {
                    state: state.to_string(),
                    exit_code: Some(0),
                    ..JobStatus::default()
                },
                ..Job::default()
            })
            .collect();
    }
}

fn unused() -> SchedulerError {
    SchedulerError::NotSupported("not in this test".into())
}

#[async_trait]
impl Scheduler for Cluster {
    async fn cluster_jobs(
        &self,
        _: &Caller,
        _: Option<i64>,
    ) -> Result<Option<Vec<Job>>, SchedulerError> {
        Ok(Some(self.jobs.lock().unwrap().clone()))
    }
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
        Err(unused())
    }
    async fn fetch_jobs(&self, _: &Caller, _: &JobFilter) -> Result<Vec<Job>, SchedulerError> {
        Err(unused())
    }
    async fn commented_jobs(
        &self,
        _: &Caller,
        _: u64,
    ) -> Result<Vec<CommentedJob>, SchedulerError> {
        Err(unused())
    }
    async fn job(&self, _: &Caller, _: &str) -> Result<Job, SchedulerError> {
        Err(unused())
    }
    async fn job_metadata(&self, _: &Caller, _: &str) -> Result<JobMetadata, SchedulerError> {
        Err(unused())
    }
    async fn cancel(&self, _: &Caller, _: &str) -> Result<(), SchedulerError> {
        Err(unused())
    }
    async fn attach(&self, _: &Caller, _: &str, _: &str) -> Result<(), SchedulerError> {
        Err(unused())
    }
    async fn ended_jobs(&self, _: &Caller, _: &[JobId]) -> Result<Vec<Job>, SchedulerError> {
        Ok(Vec::new())
    }
}

struct Service;

#[async_trait]
impl ActsAs for Service {
    async fn caller(&self) -> Result<Caller, String> {
        Ok(Caller::new("service", "token"))
    }
}

fn settings(stream_queue: usize, max_streams_per_user: usize) -> Settings {
    let mut settings = Settings::from_config(&JobEventsConfig::default());
    settings.poll_interval = Duration::from_millis(20);
    settings.linger = Duration::from_millis(100);
    settings.stream_queue = stream_queue;
    settings.max_streams_per_user = max_streams_per_user;
    settings
}

fn hub(settings: Settings) -> (JobEvents, Arc<Cluster>) {
    let cluster = Arc::new(Cluster::default());
    let events = JobEvents::new("test", cluster.clone(), Arc::new(Service), settings);
    (events, cluster)
}

fn watch(user: &str, jobs: Option<&[&str]>, resume_from: Option<EventId>) -> Watch {
    Watch {
        user: user.into(),
        jobs: jobs.map(|jobs| jobs.iter().map(|id| id.to_string()).collect()),
        resume_from,
        kind: Kind::Stream,
    }
}

/// The next delivery, within ten seconds (the poller runs every 20 ms).
async fn next(subscription: &mut Subscription) -> Option<Delivery> {
    tokio::time::timeout(Duration::from_secs(10), subscription.next())
        .await
        .expect("nothing delivered within 10 s")
}

async fn ready(subscription: &mut Subscription) -> EventId {
    match next(subscription).await {
        Some(Delivery::Ready(id)) => id,
        other => panic!("not ready: {other:?}"),
    }
}

/// The next `n` events as (job id, state).
async fn events(subscription: &mut Subscription, n: usize) -> Vec<(String, String)> {
    let mut events = Vec::new();
    while events.len() < n {
        match next(subscription).await {
            Some(Delivery::Event(event)) => {
                events.push((event.job_id.clone(), event.state.clone()))
            }
            other => panic!("not an event: {other:?}"),
        }
    }
    events
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(id, state)| (id.to_string(), state.to_string()))
        .collect()
}

#[tokio::test]
async fn each_event_goes_to_its_owner_and_to_the_filters_that_name_its_job() {
    let (events_hub, cluster) = hub(settings(16, 8));
    cluster.set(&[
        ("1", "alice", "PENDING"),
        ("2", "alice", "PENDING"),
        ("3", "bob", "PENDING"),
    ]);
    let mut alice = events_hub.subscribe(watch("alice", None, None)).unwrap();
    let mut alice_two = events_hub
        .subscribe(watch("alice", Some(&["2"]), None))
        .unwrap();
    let mut bob = events_hub.subscribe(watch("bob", None, None)).unwrap();
    for subscription in [&mut alice, &mut alice_two, &mut bob] {
        ready(subscription).await;
    }
    cluster.set(&[
        ("1", "alice", "RUNNING"),
        ("2", "alice", "RUNNING"),
        ("3", "bob", "RUNNING"),
    ]);
    let mut seen = events(&mut alice, 2).await;
    seen.sort();
    assert_eq!(seen, pairs(&[("1", "RUNNING"), ("2", "RUNNING")]));
    assert_eq!(events(&mut alice_two, 1).await, pairs(&[("2", "RUNNING")]));
    assert_eq!(events(&mut bob, 1).await, pairs(&[("3", "RUNNING")]));
    // Then job 3 ends: bob hears of it, the others of nothing (their next is a later change).
    cluster.set(&[
        ("1", "alice", "RUNNING"),
        ("2", "alice", "COMPLETED"),
        ("3", "bob", "COMPLETED"),
    ]);
    assert_eq!(events(&mut bob, 1).await, pairs(&[("3", "COMPLETED")]));
    assert_eq!(events(&mut alice, 1).await, pairs(&[("2", "COMPLETED")]));
    assert_eq!(
        events(&mut alice_two, 1).await,
        pairs(&[("2", "COMPLETED")])
    );
}

#[tokio::test]
async fn a_reader_that_falls_behind_is_disconnected_and_resumes_from_the_log() {
    let (events_hub, cluster) = hub(settings(2, 8));
    let mut first = events_hub.subscribe(watch("alice", None, None)).unwrap();
    ready(&mut first).await;
    drop(first);
    // Subscribed once the baseline is taken: `ready` comes at once, then a queue of 2.
    let mut slow = events_hub.subscribe(watch("alice", None, None)).unwrap();
    assert!(slow.ready);
    ready(&mut slow).await;
    cluster.set(&[
        ("1", "alice", "PENDING"),
        ("2", "alice", "PENDING"),
        ("3", "alice", "PENDING"),
    ]);
    // Three new jobs in one round: two are queued, the third finds the queue full and the
    // subscription is let go; its reader gets what was queued, then the end.
    let mut kept = Vec::new();
    while let Some(delivery) = next(&mut slow).await {
        match delivery {
            Delivery::Event(event) => kept.push(event),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(kept.len(), 2, "{kept:?}");
    let mut resumed = events_hub
        .subscribe(watch("alice", None, Some(kept[1].id)))
        .unwrap();
    let replayed = events(&mut resumed, 1).await;
    assert_ne!(replayed[0].0, kept[0].job_id);
    assert_ne!(replayed[0].0, kept[1].job_id);
    ready(&mut resumed).await;
}

#[tokio::test]
async fn subscriptions_past_the_limits_are_refused() {
    let (events_hub, _) = hub(settings(16, 2));
    let _one = events_hub.subscribe(watch("alice", None, None)).unwrap();
    let _two = events_hub.subscribe(watch("alice", None, None)).unwrap();
    let refused = events_hub.subscribe(watch("alice", None, None));
    assert!(matches!(refused, Err(ServiceError::TooManyWatches(_))));
    let _bob = events_hub.subscribe(watch("bob", None, None)).unwrap();
    drop(_two);
    assert!(events_hub.subscribe(watch("alice", None, None)).is_ok());
}

#[tokio::test]
async fn the_poller_stops_after_the_last_watcher_and_close_ends_every_subscription() {
    let (events_hub, _) = hub(settings(16, 8));
    let running = |hub: &JobEvents| hub.shared.lock().run.is_some();
    let mut subscription = events_hub.subscribe(watch("alice", None, None)).unwrap();
    ready(&mut subscription).await;
    assert!(running(&events_hub));
    drop(subscription);
    for _ in 0..500 {
        if !running(&events_hub) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!running(&events_hub), "still polling with nobody watching");

    let mut open = events_hub.subscribe(watch("alice", None, None)).unwrap();
    ready(&mut open).await;
    events_hub.close();
    assert!(next(&mut open).await.is_none());
    let mut late = events_hub.subscribe(watch("alice", None, None)).unwrap();
    assert!(next(&mut late).await.is_none());
}
