//! Job events (docs/job-events.md): one poller per cluster feeds every event stream and long
//! poll on it, so the scheduler is asked the same with one watcher as with a thousand.
//!
//! - **The poller** runs only while someone watches: the first subscription starts it, and
//!   it stops `linger` after the last one ended. Each round it lists every user's jobs as
//!   the cluster's service account ([`Scheduler::cluster_jobs`]: one squeue, or slurmrestd
//!   with `update_time`), compares the listing with the last one ([`differ`]), and asks the
//!   accounting database only for the jobs that just ended ([`Scheduler::ended_jobs`]), for
//!   their exit codes. One listing for everyone, not one per watched user: the query rate
//!   does not depend on who watches, and a user the cluster does not know cannot break the
//!   listing of the others.
//! - **Each event goes to its job's owner only**: a change is recorded for the user the
//!   scheduler names as the job's owner, and delivered to that user's subscriptions (and of
//!   those, to the ones whose job filter has the job). The service account sees every job;
//!   the fan-out is decided here, never by the scheduler's filters.
//! - **Resumes**: the events of watched users are kept for a while ([`log`]), so a client
//!   that reconnects with `Last-Event-ID` gets what it missed, or a reset (list again) when
//!   they are no longer all held.
//! - **Bounded**: a subscription's queue holds `stream_queue` events; a reader that falls
//!   that far behind is disconnected (it resumes from the log). Subscriptions are capped per
//!   user and in all.
//!
//! [`Scheduler::cluster_jobs`]: ironcrest_scheduler::Scheduler::cluster_jobs
//! [`Scheduler::ended_jobs`]: ironcrest_scheduler::Scheduler::ended_jobs

mod differ;
mod log;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ironcrest_config::JobEventsConfig;
use ironcrest_scheduler::{Job, JobTime, Scheduler};
use serde::Serialize;
use tokio::sync::{Notify, mpsc};
use tracing::Instrument;
use utoipa::ToSchema;

pub use log::EventId;

use crate::ServiceError;
use crate::service_account::ActsAs;
use differ::{Change, Differ};
use log::{EventLog, Position, Resume};

/// A change of one of the caller's jobs, as its stream's `job` event carries it.
#[derive(Debug, Default, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobEvent {
    /// The event's id (the SSE `id` field, not in the data).
    #[serde(skip)]
    pub id: EventId,
    /// The job's owner, to whom alone the event goes.
    #[serde(skip)]
    pub user: String,
    pub job_id: String,
    pub name: String,
    /// The state the job was last seen in; `null` for a job seen for the first time.
    pub previous_state: Option<String>,
    pub state: String,
    pub state_reason: Option<String>,
    /// Set once the job has ended and the scheduler's accounting has its record.
    pub exit_code: Option<i64>,
    pub interrupt_signal: Option<i64>,
    pub time: JobTime,
    /// When the poller saw the change, epoch seconds.
    pub observed_at: i64,
}

impl JobEvent {
    fn new(id: EventId, user: String, change: Change) -> Self {
        let Change { job, previous } = change;
        let Job {
            job_id,
            name,
            status,
            time,
            ..
        } = job;
        Self {
            id,
            user,
            job_id,
            name,
            previous_state: previous,
            state: status.state,
            state_reason: status.state_reason,
            exit_code: status.exit_code,
            interrupt_signal: status.interrupt_signal,
            time,
            observed_at: (id.at_ms / 1000) as i64,
        }
    }
}

/// What a subscription receives, in order.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// The poller holds every job's current state: from here each change is delivered.
    /// Carries the position to resume from. After a resume, it follows the replayed events.
    Ready(EventId),
    /// Events after the client's `Last-Event-ID` are no longer all held: it should list its
    /// jobs again. Also the position to resume from; delivery goes on from it.
    Reset {
        id: EventId,
        reason: &'static str,
    },
    Event(Arc<JobEvent>),
}

/// What holds a subscription: an event stream or a long poll (counted apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Stream,
    LongPoll,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Stream => "stream",
            Kind::LongPoll => "long_poll",
        }
    }
}

/// Who watches what.
pub struct Watch {
    pub user: String,
    /// Only these jobs' events; all of the user's when `None`.
    pub jobs: Option<HashSet<String>>,
    /// The client's `Last-Event-ID`.
    pub resume_from: Option<EventId>,
    pub kind: Kind,
}

/// The deliveries of one subscription; dropping it ends the subscription.
pub struct Subscription {
    /// Whether the poller already held every job's state when it began (else a
    /// [`Delivery::Ready`] or [`Delivery::Reset`] comes once it does).
    pub ready: bool,
    first: VecDeque<Delivery>,
    receiver: mpsc::Receiver<Delivery>,
    _ends: Unsubscribe,
}

impl Subscription {
    /// The next delivery; `None` once the subscription has been ended (the server shuts
    /// down, or the reader fell `stream_queue` events behind).
    pub async fn next(&mut self) -> Option<Delivery> {
        match self.first.pop_front() {
            Some(delivery) => Some(delivery),
            None => self.receiver.recv().await,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub poll_interval: Duration,
    pub linger: Duration,
    pub stream_queue: usize,
    pub max_streams_per_user: usize,
    pub max_streams: usize,
    pub heartbeat: Duration,
    pub max_wait: Duration,
    log: log::Settings,
    /// How long an ended job's event waits for its accounting record.
    settle_grace: Duration,
}

impl Settings {
    pub fn from_config(config: &JobEventsConfig) -> Self {
        let poll_interval = Duration::from_secs(config.poll_interval);
        Self {
            poll_interval,
            linger: Duration::from_secs(config.linger),
            stream_queue: config.stream_queue,
            max_streams_per_user: config.max_streams_per_user,
            max_streams: config.max_streams,
            heartbeat: Duration::from_secs(config.heartbeat),
            max_wait: Duration::from_secs(config.max_wait),
            log: log::Settings {
                max_events: config.max_kept_events,
                max_age: Duration::from_secs(config.resume_window),
                // Another poller may see a change up to a round (its interval and a slow
                // listing) before or after this one does, and clocks differ a little.
                cross_run_margin: poll_interval + Duration::from_secs(60),
            },
            settle_grace: (poll_interval * 3).max(Duration::from_secs(15)),
        }
    }
}

/// One cluster's job events: its subscriptions, the recent events, and the poller.
#[derive(Clone)]
pub struct JobEvents {
    shared: Arc<Shared>,
}

struct Shared {
    cluster: String,
    scheduler: Arc<dyn Scheduler>,
    service_account: Arc<dyn ActsAs>,
    settings: Settings,
    /// Held briefly, never across an await: subscribing, ending, and a round's publishing.
    state: Mutex<State>,
    closing: Notify,
}

#[derive(Default)]
struct State {
    closed: bool,
    run: Option<Run>,
    subscribers: HashMap<u64, Subscriber>,
    next_subscriber: u64,
    /// The users whose events are recorded: those with a subscription, and for `linger`
    /// those who had one.
    watched: HashMap<String, Watched>,
}

/// A poller run: from its first watcher until it stops for lack of any.
struct Run {
    log: EventLog,
    /// Whether the first listing (the baseline) has been taken.
    baselined: bool,
    idle_since: Option<Instant>,
}

struct Watched {
    open: usize,
    /// Since when the user's events are recorded.
    since: Position,
    idle_since: Option<Instant>,
}

struct Subscriber {
    user: String,
    jobs: Option<HashSet<String>>,
    kind: Kind,
    sender: mpsc::Sender<Delivery>,
    /// Set while the subscription waits for the baseline: the resume to decide then.
    waiting: Option<Option<EventId>>,
}

impl Subscriber {
    fn wants(&self, event: &JobEvent) -> bool {
        event.user == self.user
            && self
                .jobs
                .as_ref()
                .is_none_or(|jobs| jobs.contains(&event.job_id))
    }
}

impl JobEvents {
    pub fn new(
        cluster: &str,
        scheduler: Arc<dyn Scheduler>,
        service_account: Arc<dyn ActsAs>,
        settings: Settings,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                cluster: cluster.to_string(),
                scheduler,
                service_account,
                settings,
                state: Mutex::new(State::default()),
                closing: Notify::new(),
            }),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.shared.settings
    }

    /// Starts watching (and the poller, if it is not running). Refused with
    /// [`ServiceError::TooManyWatches`] past the limits. After [`JobEvents::close`] the
    /// subscription ends at once.
    pub fn subscribe(&self, watch: Watch) -> Result<Subscription, ServiceError> {
        let shared = &self.shared;
        let settings = &shared.settings;
        let mut state = shared.lock();
        let (sender, receiver) = mpsc::channel(settings.stream_queue);
        if state.closed {
            drop(sender);
            return Ok(Subscription {
                ready: false,
                first: VecDeque::new(),
                receiver,
                _ends: Unsubscribe {
                    shared: shared.clone(),
                    id: None,
                },
            });
        }
        let open = state.watched.get(&watch.user).map_or(0, |w| w.open);
        if open >= settings.max_streams_per_user {
            return Err(ServiceError::TooManyWatches(format!(
                "User {} already has {open} job event streams and long polls open on {}, the most allowed (job_events.max_streams_per_user).",
                watch.user, shared.cluster
            )));
        }
        if state.subscribers.len() >= settings.max_streams {
            return Err(ServiceError::TooManyWatches(format!(
                "{} job event streams and long polls are open on {}, the most allowed (job_events.max_streams); try again later.",
                state.subscribers.len(),
                shared.cluster
            )));
        }
        let now_ms = epoch_ms();
        if state.run.is_none() {
            let run = uuid::Uuid::new_v4().as_u128() as u32;
            state.run = Some(Run {
                log: EventLog::new(run, settings.log),
                baselined: false,
                idle_since: None,
            });
            tokio::spawn(poll(shared.clone(), run));
        }
        let State {
            run,
            subscribers,
            next_subscriber,
            watched,
            ..
        } = &mut *state;
        let run = run.as_mut().expect("a run was started above");
        let user = watched.entry(watch.user.clone()).or_insert(Watched {
            open: 0,
            since: run.log.position(now_ms),
            idle_since: None,
        });
        user.open += 1;
        user.idle_since = None;
        let mut subscriber = Subscriber {
            user: watch.user,
            jobs: watch.jobs,
            kind: watch.kind,
            sender,
            waiting: None,
        };
        let mut first = VecDeque::new();
        if run.baselined {
            first.extend(shared.opening(&run.log, user.since, &subscriber, watch.resume_from));
        } else {
            subscriber.waiting = Some(watch.resume_from);
        }
        let id = *next_subscriber;
        *next_subscriber += 1;
        let ready = run.baselined;
        subscribers.insert(id, subscriber);
        shared.count_subscribers(&state);
        Ok(Subscription {
            ready,
            first,
            receiver,
            _ends: Unsubscribe {
                shared: shared.clone(),
                id: Some(id),
            },
        })
    }

    /// Ends every subscription and the poller (the server shuts down); later ones end at
    /// once.
    pub fn close(&self) {
        let mut state = self.shared.lock();
        state.closed = true;
        state.run = None;
        state.subscribers.clear();
        state.watched.clear();
        self.shared.count_subscribers(&state);
        drop(state);
        self.shared.closing.notify_waiters();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What a subscription gets first once the poller has its baseline: the events since
    /// its `Last-Event-ID` and `Ready`, or `Reset`.
    fn opening(
        &self,
        log: &EventLog,
        since: Position,
        subscriber: &Subscriber,
        resume_from: Option<EventId>,
    ) -> Vec<Delivery> {
        let head = log.head(epoch_ms());
        let Some(last) = resume_from else {
            return vec![Delivery::Ready(head)];
        };
        let outcome = |outcome: &'static str| {
            metrics::counter!("ironcrest_job_event_resumes_total", "cluster" => self.cluster.clone(), "outcome" => outcome)
                .increment(1);
        };
        match log.resume(last, since, |event| subscriber.wants(event)) {
            Resume::Replay(events) => {
                outcome("replayed");
                let mut deliveries: Vec<Delivery> =
                    events.into_iter().map(Delivery::Event).collect();
                deliveries.push(Delivery::Ready(head));
                deliveries
            }
            Resume::Reset(reason) => {
                outcome("reset");
                vec![Delivery::Reset { id: head, reason }]
            }
        }
    }

    fn count_subscribers(&self, state: &State) {
        for kind in [Kind::Stream, Kind::LongPoll] {
            let open = state
                .subscribers
                .values()
                .filter(|s| s.kind == kind)
                .count();
            metrics::gauge!("ironcrest_job_event_streams", "cluster" => self.cluster.clone(), "kind" => kind.label())
                .set(open as f64);
        }
    }

    fn unsubscribe(&self, id: u64) {
        let mut state = self.lock();
        let Some(subscriber) = state.subscribers.remove(&id) else {
            return;
        };
        forget(&mut state, &subscriber);
        self.count_subscribers(&state);
    }

    /// Whether run `run` goes on: not if the hub closed, or nobody watched for `linger`
    /// (then the run ends, and with it every recorded event). Forgets the users nobody
    /// watched for `linger`.
    fn keep_running(&self, run: u32) -> bool {
        let mut state = self.lock();
        let linger = self.settings.linger;
        let now = Instant::now();
        state
            .watched
            .retain(|_, w| w.open > 0 || w.idle_since.is_none_or(|t| now - t < linger));
        let nobody = state.subscribers.is_empty();
        let Some(current) = state.run.as_mut().filter(|r| r.log.run() == run) else {
            return false;
        };
        if !nobody {
            current.idle_since = None;
            return true;
        }
        let idle = *current.idle_since.get_or_insert(now);
        if now - idle < linger {
            return true;
        }
        state.run = None;
        state.watched.clear();
        false
    }

    /// One round: list, compare, settle ends, publish.
    async fn round(&self, run: u32, differ: &mut Differ, changed_since: &mut Option<i64>) {
        let outcome = |outcome: &'static str| {
            metrics::counter!("ironcrest_job_event_polls_total", "cluster" => self.cluster.clone(), "outcome" => outcome)
                .increment(1);
        };
        let caller = match self.service_account.caller().await {
            Ok(caller) => caller,
            Err(message) => {
                tracing::warn!(cluster = self.cluster, error = %message, "job events: no service account");
                outcome("failed");
                return;
            }
        };
        let asked_at = (epoch_ms() / 1000) as i64;
        let listing = self.scheduler.cluster_jobs(&caller, *changed_since).await;
        let now = Instant::now();
        // Counted once the round is over, so that a reader of the metrics between two rounds
        // sees each round's calls whole.
        let (mut changes, listed) = match listing {
            Ok(Some(jobs)) => {
                *changed_since = Some(asked_at);
                (differ.compare(jobs, now), "changed")
            }
            Ok(None) => {
                *changed_since = Some(asked_at);
                (Vec::new(), "unchanged")
            }
            Err(error) => {
                tracing::warn!(cluster = self.cluster, %error, "job events: the job listing failed");
                (Vec::new(), "failed")
            }
        };
        if !differ.has_baseline() {
            outcome(listed);
            return;
        }
        let ending = differ.awaiting_accounting();
        if !ending.is_empty() {
            let records = self
                .scheduler
                .ended_jobs(&caller, &ending)
                .await
                .unwrap_or_else(|error| {
                    tracing::warn!(cluster = self.cluster, %error, "job events: the accounting records failed");
                    Vec::new()
                });
            changes.extend(differ.settle(records, Instant::now()));
        }
        self.publish(run, changes);
        outcome(listed);
    }

    /// Numbers the changes and delivers those of watched users; the first call of a run
    /// also opens the subscriptions that waited for the baseline.
    fn publish(&self, run: u32, changes: Vec<Change>) {
        let mut state = self.lock();
        let State {
            run: current,
            subscribers,
            watched,
            ..
        } = &mut *state;
        let Some(current) = current.as_mut().filter(|r| r.log.run() == run) else {
            return;
        };
        let now_ms = epoch_ms();
        if !current.baselined {
            current.baselined = true;
            for user in watched.values_mut() {
                user.since = current.log.position(now_ms);
            }
            let mut opened = Vec::new();
            for (id, subscriber) in subscribers.iter_mut() {
                if let Some(resume_from) = subscriber.waiting.take() {
                    let since = watched[&subscriber.user].since;
                    for delivery in self.opening(&current.log, since, subscriber, resume_from) {
                        opened.push((*id, delivery));
                    }
                }
            }
            for (id, delivery) in opened {
                deliver(subscribers, id, delivery);
            }
        }
        let mut published = 0u64;
        let mut slow = Vec::new();
        for change in changes {
            let id = current.log.next_id(now_ms);
            let Some(user) = change.job.user.clone() else {
                continue;
            };
            if !watched.contains_key(&user) {
                continue;
            }
            let event = Arc::new(JobEvent::new(id, user, change));
            current.log.push(event.clone(), now_ms);
            published += 1;
            for (subscriber_id, subscriber) in subscribers.iter() {
                if subscriber.wants(&event)
                    && let Err(mpsc::error::TrySendError::Full(_)) =
                        subscriber.sender.try_send(Delivery::Event(event.clone()))
                {
                    slow.push(*subscriber_id);
                }
            }
        }
        current.log.expire(now_ms);
        metrics::counter!("ironcrest_job_events_total", "cluster" => self.cluster.clone())
            .increment(published);
        if slow.is_empty() {
            return;
        }
        for id in &slow {
            if let Some(subscriber) = state.subscribers.remove(id) {
                tracing::info!(
                    cluster = self.cluster,
                    user.name = subscriber.user,
                    "job events: a reader fell behind and was disconnected"
                );
                forget(&mut state, &subscriber);
            }
        }
        metrics::counter!("ironcrest_job_event_drops_total", "cluster" => self.cluster.clone())
            .increment(slow.len() as u64);
        self.count_subscribers(&state);
    }
}

/// One delivery to one subscriber, if it has room (a queue full this early is not
/// expected: it has just opened).
fn deliver(subscribers: &HashMap<u64, Subscriber>, id: u64, delivery: Delivery) {
    if let Some(subscriber) = subscribers.get(&id) {
        let _ = subscriber.sender.try_send(delivery);
    }
}

/// A subscription has ended: its user watches one less.
fn forget(state: &mut State, subscriber: &Subscriber) {
    if let Some(user) = state.watched.get_mut(&subscriber.user) {
        user.open -= 1;
        if user.open == 0 {
            user.idle_since = Some(Instant::now());
        }
    }
}

/// The poller of run `run`: a round, then the interval, while [`Shared::keep_running`].
async fn poll(shared: Arc<Shared>, run: u32) {
    let cluster = shared.cluster.clone();
    metrics::gauge!("ironcrest_job_event_poller_running", "cluster" => cluster.clone()).set(1.0);
    tracing::info!(cluster, "job events: poller started");
    let mut differ = Differ::new(shared.settings.settle_grace);
    let mut changed_since = None;
    while shared.keep_running(run) {
        let span = tracing::debug_span!("job_events.poll", cluster = %cluster);
        shared
            .round(run, &mut differ, &mut changed_since)
            .instrument(span)
            .await;
        tokio::select! {
            () = tokio::time::sleep(shared.settings.poll_interval) => {}
            () = shared.closing.notified() => {}
        }
    }
    metrics::gauge!("ironcrest_job_event_poller_running", "cluster" => cluster.clone()).set(0.0);
    tracing::info!(cluster, "job events: poller stopped");
}

/// Ends its subscription when dropped.
struct Unsubscribe {
    shared: Arc<Shared>,
    id: Option<u64>,
}

impl Drop for Unsubscribe {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.shared.unsubscribe(id);
        }
    }
}

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests;
