//! `job_events`: the job event streams and long polls, and the one poller per cluster that
//! feeds them (docs/job-events.md).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct JobEventsConfig {
    /// Seconds between two rounds of a cluster's poller while anyone watches: how late an
    /// event can be, and how often the scheduler is asked.
    #[serde(default = "defaults::poll_interval")]
    pub poll_interval: u64,
    /// Seconds a poller keeps running after its last watcher left, and a user's events
    /// keep being recorded after their last stream ended: a client that reconnects within
    /// it resumes without a gap.
    #[serde(default = "defaults::linger")]
    pub linger: u64,
    /// Seconds of events kept for `Last-Event-ID` resumes (at most `max_kept_events`).
    #[serde(default = "defaults::resume_window")]
    pub resume_window: u64,
    /// Events kept for resumes, per cluster, whatever their age.
    #[serde(default = "defaults::max_kept_events")]
    pub max_kept_events: usize,
    /// Event streams and long polls one user may have open on one cluster; the next is 429.
    #[serde(default = "defaults::max_streams_per_user")]
    pub max_streams_per_user: usize,
    /// Event streams and long polls open on one cluster, all users together.
    #[serde(default = "defaults::max_streams")]
    pub max_streams: usize,
    /// Events queued for one stream; a reader that falls this far behind is disconnected
    /// (it resumes with `Last-Event-ID`) rather than buffered for.
    #[serde(default = "defaults::stream_queue")]
    pub stream_queue: usize,
    /// Seconds between two heartbeats (SSE comments) on an idle stream.
    #[serde(default = "defaults::heartbeat")]
    pub heartbeat: u64,
    /// The longest `wait` of a long poll (`GET …/jobs/{id}?wait=`), in seconds; more is 400.
    #[serde(default = "defaults::max_wait")]
    pub max_wait: u64,
}

impl Default for JobEventsConfig {
    fn default() -> Self {
        Self {
            poll_interval: defaults::poll_interval(),
            linger: defaults::linger(),
            resume_window: defaults::resume_window(),
            max_kept_events: defaults::max_kept_events(),
            max_streams_per_user: defaults::max_streams_per_user(),
            max_streams: defaults::max_streams(),
            stream_queue: defaults::stream_queue(),
            heartbeat: defaults::heartbeat(),
            max_wait: defaults::max_wait(),
        }
    }
}

impl JobEventsConfig {
    /// The fields that must not be 0, with what 0 would mean.
    pub(crate) fn problems(&self) -> Vec<crate::Problem> {
        let positive = [
            (
                "poll_interval",
                self.poll_interval,
                "a poller that never sleeps",
            ),
            ("resume_window", self.resume_window, "no resume at all"),
            ("heartbeat", self.heartbeat, "a heartbeat loop"),
            ("max_wait", self.max_wait, "no long poll at all"),
            (
                "max_streams_per_user",
                self.max_streams_per_user as u64,
                "no stream at all",
            ),
            ("max_streams", self.max_streams as u64, "no stream at all"),
            (
                "stream_queue",
                self.stream_queue as u64,
                "no event delivered",
            ),
            (
                "max_kept_events",
                self.max_kept_events as u64,
                "no resume at all",
            ),
        ];
        positive
            .into_iter()
            .filter(|(_, value, _)| *value == 0)
            .map(|(field, _, meaning)| crate::Problem {
                field: format!("job_events.{field}"),
                message: format!("must be at least 1 (0 would be {meaning})"),
            })
            .collect()
    }
}

mod defaults {
    /// Every 5 s: a job's change shows within seconds, and squeue runs 0.2 times a second.
    pub fn poll_interval() -> u64 {
        5
    }
    pub fn linger() -> u64 {
        60
    }
    /// Ten minutes: a laptop's sleep or a proxy's reconnect, not a day away.
    pub fn resume_window() -> u64 {
        600
    }
    pub fn max_kept_events() -> usize {
        10_000
    }
    pub fn max_streams_per_user() -> usize {
        32
    }
    pub fn max_streams() -> usize {
        10_000
    }
    pub fn stream_queue() -> usize {
        256
    }
    /// Under the 30–60 s after which proxies commonly close an idle connection.
    pub fn heartbeat() -> u64 {
        15
    }
    pub fn max_wait() -> u64 {
        60
    }
}
