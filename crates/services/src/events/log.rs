//! The recent events of one poller run, kept for `Last-Event-ID` resumes, and what an id
//! says: which run gave it, where in that run, and when.
//!
//! An id is `<epoch ms>-<seq>-<run>`: the time the event was recorded, its number in the
//! run, and the run's random name (a poller run lasts from its first watcher until it
//! stops for lack of watchers; a restart or another replica is another run). An id of
//! this run resumes exactly, by number. An id of another run can only be placed in time:
//! this run replays what it recorded since that time less [`Settings::cross_run_margin`]
//! (another poller may have seen the same change that much earlier or later), so such a
//! resume may repeat events but never skips one; when this run cannot cover that time,
//! the answer is a reset: the client lists its jobs again.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::JobEvent;

/// Where a resume may start from, and what a reader is told of a position.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventId {
    /// When the event (or position) was recorded, epoch milliseconds.
    pub at_ms: u64,
    /// Its number in the run; a position between events carries the last one's.
    pub seq: u64,
    /// The run's name.
    pub run: u32,
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{:08x}", self.at_ms, self.seq, self.run)
    }
}

impl EventId {
    /// An id as [`fmt::Display`] writes it; anything else is `None`.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split('-');
        let (at_ms, seq, run) = (parts.next()?, parts.next()?, parts.next()?);
        let decimal = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
        if parts.next().is_some() || !decimal(at_ms) || !decimal(seq) || run.len() != 8 {
            return None;
        }
        Some(Self {
            at_ms: at_ms.parse().ok()?,
            seq: seq.parse().ok()?,
            run: u32::from_str_radix(run, 16).ok()?,
        })
    }
}

/// What a resume from a client's last id comes to.
#[derive(Debug)]
pub enum Resume {
    /// Every event after the id that this run holds for the reader, in order (possibly none).
    Replay(Vec<Arc<JobEvent>>),
    /// The run does not hold everything since the id: the reader must list again.
    Reset(&'static str),
}

#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub max_events: usize,
    pub max_age: Duration,
    /// How far before another run's id this run replays from.
    pub cross_run_margin: Duration,
}

/// A place in the run: the last event's number then, and the time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub seq: u64,
    pub at_ms: u64,
}

pub struct EventLog {
    run: u32,
    settings: Settings,
    events: VecDeque<Arc<JobEvent>>,
    last_seq: u64,
    /// The newest event dropped for age or room: nothing at or before it can be replayed.
    evicted: Option<Position>,
}

impl EventLog {
    pub fn new(run: u32, settings: Settings) -> Self {
        Self {
            run,
            settings,
            events: VecDeque::new(),
            last_seq: 0,
            evicted: None,
        }
    }

    pub fn run(&self) -> u32 {
        self.run
    }

    /// The position now, as an id a reader may resume from.
    pub fn head(&self, now_ms: u64) -> EventId {
        EventId {
            at_ms: now_ms,
            seq: self.last_seq,
            run: self.run,
        }
    }

    pub fn position(&self, now_ms: u64) -> Position {
        Position {
            seq: self.last_seq,
            at_ms: now_ms,
        }
    }

    /// The next change's id. Every change the poller sees is numbered, also those it does
    /// not keep (of users nobody watches): a reader's number then tells whether it could
    /// have missed one.
    pub fn next_id(&mut self, now_ms: u64) -> EventId {
        self.last_seq += 1;
        EventId {
            at_ms: now_ms,
            seq: self.last_seq,
            run: self.run,
        }
    }

    pub fn push(&mut self, event: Arc<JobEvent>, now_ms: u64) {
        self.events.push_back(event);
        self.expire(now_ms);
    }

    /// Drops events past the age or the count kept.
    pub fn expire(&mut self, now_ms: u64) {
        let max_age = self.settings.max_age.as_millis() as u64;
        while let Some(oldest) = self.events.front() {
            let too_old = oldest.id.at_ms + max_age < now_ms;
            if !too_old && self.events.len() <= self.settings.max_events {
                break;
            }
            self.evicted = Some(Position {
                seq: oldest.id.seq,
                at_ms: oldest.id.at_ms,
            });
            self.events.pop_front();
        }
    }

    /// What a reader who last saw `last` gets, given that its user's events have been
    /// recorded since `watched_since`; `wanted` selects its events.
    pub fn resume(
        &self,
        last: EventId,
        watched_since: Position,
        wanted: impl Fn(&JobEvent) -> bool,
    ) -> Resume {
        let evicted = self.evicted.unwrap_or(Position { seq: 0, at_ms: 0 });
        if last.run == self.run {
            if last.seq > self.last_seq {
                return Resume::Reset("the Last-Event-ID is ahead of this server's events");
            }
            if last.seq < watched_since.seq || last.seq < evicted.seq {
                return Resume::Reset("events after the Last-Event-ID are no longer held");
            }
            return Resume::Replay(self.select(|event| event.id.seq > last.seq, wanted));
        }
        let margin = self.settings.cross_run_margin.as_millis() as u64;
        let from = last.at_ms.saturating_sub(margin);
        if from < watched_since.at_ms || from <= evicted.at_ms {
            return Resume::Reset(
                "the Last-Event-ID comes from another run of the poller (a restart or another replica) whose events this one does not hold",
            );
        }
        Resume::Replay(self.select(|event| event.id.at_ms > from, wanted))
    }

    fn select(
        &self,
        after: impl Fn(&JobEvent) -> bool,
        wanted: impl Fn(&JobEvent) -> bool,
    ) -> Vec<Arc<JobEvent>> {
        self.events
            .iter()
            .filter(|event| after(event) && wanted(event))
            .cloned()
            .collect()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.events.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUN: u32 = 0x00c0_ffee;

    fn settings() -> Settings {
        Settings {
            max_events: 3,
            max_age: Duration::from_secs(600),
            cross_run_margin: Duration::from_secs(70),
        }
    }

    fn record(log: &mut EventLog, user: &str, at_ms: u64) -> EventId {
        let id = log.next_id(at_ms);
        let event = JobEvent {
            id,
            user: user.into(),
            job_id: id.seq.to_string(),
            ..JobEvent::default()
        };
        log.push(Arc::new(event), at_ms);
        id
    }

    fn replayed(resume: Resume) -> Vec<u64> {
        match resume {
            Resume::Replay(events) => events.iter().map(|e| e.id.seq).collect(),
            Resume::Reset(why) => panic!("reset: {why}"),
        }
    }

    fn everyone(_: &JobEvent) -> bool {
        true
    }

    const SINCE_START: Position = Position { seq: 0, at_ms: 0 };

    #[test]
    fn ids_read_back_and_nothing_else_reads() {
        let id = EventId {
            at_ms: 1_796_678_477_123,
            seq: 42,
            run: RUN,
        };
        assert_eq!(id.to_string(), "1796678477123-42-00c0ffee");
        assert_eq!(EventId::parse(&id.to_string()), Some(id));
        for bad in [
            "",
            "42",
            "1-2",
            "1-2-3",
            "1-2-00c0ffee-4",
            "x-2-00c0ffee",
            "1--00c0ffee",
            "-1-2-00c0ffee",
            "1-2-00c0ffeg",
            "99999999999999999999999-2-00c0ffee",
        ] {
            assert_eq!(EventId::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_resume_in_the_same_run_replays_exactly_what_followed() {
        let mut log = EventLog::new(RUN, settings());
        let first = record(&mut log, "alice", 1_000);
        record(&mut log, "bob", 2_000);
        record(&mut log, "alice", 3_000);
        let alice = |e: &JobEvent| e.user == "alice";
        assert_eq!(replayed(log.resume(first, SINCE_START, alice)), [3]);
        assert_eq!(replayed(log.resume(first, SINCE_START, everyone)), [2, 3]);
        let head = log.head(4_000);
        assert!(replayed(log.resume(head, SINCE_START, everyone)).is_empty());
    }

    #[test]
    fn a_resume_from_before_what_is_kept_is_a_reset() {
        let mut log = EventLog::new(RUN, settings());
        let first = record(&mut log, "alice", 1_000);
        let second = record(&mut log, "alice", 2_000);
        for at in [3_000, 4_000, 5_000] {
            record(&mut log, "alice", at);
        }
        assert_eq!(log.len(), 3, "room for 3");
        assert!(matches!(
            log.resume(first, SINCE_START, everyone),
            Resume::Reset(_)
        ));
        // The first event kept follows `second`: nothing after `second` is lost.
        assert_eq!(
            replayed(log.resume(second, SINCE_START, everyone)),
            [3, 4, 5]
        );
        // Age drops events too.
        log.expire(5_000 + 600_000 + 1);
        assert_eq!(log.len(), 0);
        let fifth = EventId { seq: 5, ..second };
        assert!(replayed(log.resume(fifth, SINCE_START, everyone)).is_empty());
        assert!(matches!(
            log.resume(second, SINCE_START, everyone),
            Resume::Reset(_)
        ));
    }

    #[test]
    fn a_resume_across_a_change_made_while_the_user_was_not_watched_is_a_reset() {
        let mut log = EventLog::new(RUN, settings());
        let last_seen = log.head(900);
        // A change of the user's while nobody watched them: numbered, not kept.
        log.next_id(1_000);
        let watched_since = log.position(1_500);
        record(&mut log, "alice", 2_000);
        assert!(matches!(
            log.resume(last_seen, watched_since, everyone),
            Resume::Reset(_)
        ));
        let at_start = EventId {
            seq: watched_since.seq,
            ..last_seen
        };
        assert_eq!(replayed(log.resume(at_start, watched_since, everyone)), [2]);
    }

    #[test]
    fn an_id_ahead_of_the_run_is_a_reset() {
        let log = EventLog::new(RUN, settings());
        let ahead = EventId {
            at_ms: 0,
            seq: 9,
            run: RUN,
        };
        assert!(matches!(
            log.resume(ahead, SINCE_START, everyone),
            Resume::Reset(_)
        ));
    }

    #[test]
    fn another_runs_id_replays_by_time_with_the_margin_or_resets() {
        let mut log = EventLog::new(RUN, settings());
        let watched_since = log.position(100_000);
        for at in [150_000, 180_000, 200_000] {
            record(&mut log, "alice", at);
        }
        let other = |at_ms| EventId {
            at_ms,
            seq: 7,
            run: RUN + 1,
        };
        // 70 s of margin: from 190 s back to 120 s, so all three (the others' poller may
        // have seen the changes of 150 s and 180 s after 190 s).
        assert_eq!(
            replayed(log.resume(other(190_000), watched_since, everyone)),
            [1, 2, 3]
        );
        assert_eq!(
            replayed(log.resume(other(260_000), watched_since, everyone)),
            [3]
        );
        // 150 s less the margin is before this run watched: it cannot know.
        assert!(matches!(
            log.resume(other(150_000), watched_since, everyone),
            Resume::Reset(_)
        ));
    }
}
