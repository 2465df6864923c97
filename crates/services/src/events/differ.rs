//! What changed between two listings of a cluster's jobs: the poller's memory of every
//! job's last state, and the jobs whose end waits for its accounting record.
//!
//! A job's final state is told together with its exit code. The controller's listing
//! (squeue) has none, so a job seen ending is held until the accounting database's record
//! gives it — usually in the same round — or until [`Differ::settle_grace`] has passed,
//! after which it goes out without one. A job that left the listing while active (it ended
//! and the controller forgot it between two rounds) is looked up there too.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ironcrest_scheduler::{Job, JobId};

/// One change of one job: its new record, and the state it was last seen in (`None`: the
/// job is new).
#[derive(Debug)]
pub struct Change {
    pub job: Job,
    pub previous: Option<String>,
}

struct Seen {
    state: Box<str>,
    active: bool,
}

/// A job that ended, waiting for its accounting record.
struct Ending {
    /// The controller's record; `None` for a job that left the listing unseen.
    listed: Option<Job>,
    previous: Option<String>,
    since: Instant,
}

pub struct Differ {
    /// Every job of the last listing; `None` until the first (the baseline).
    jobs: Option<HashMap<String, Seen>>,
    ending: HashMap<String, Ending>,
    settle_grace: Duration,
}

impl Differ {
    pub fn new(settle_grace: Duration) -> Self {
        Self {
            jobs: None,
            ending: HashMap::new(),
            settle_grace,
        }
    }

    /// Whether a listing has been taken: from then on every change is told.
    pub fn has_baseline(&self) -> bool {
        self.jobs.is_some()
    }

    /// The changes from the last listing to `listing`; the first listing is the baseline
    /// and tells none. Ending jobs are held back (see [`Differ::awaiting_accounting`]).
    pub fn compare(&mut self, listing: Vec<Job>, now: Instant) -> Vec<Change> {
        let mut next = HashMap::with_capacity(listing.len());
        let mut changes = Vec::new();
        let Some(mut last) = self.jobs.take() else {
            for job in listing {
                next.insert(job.job_id.clone(), seen(&job));
            }
            self.jobs = Some(next);
            return changes;
        };
        for job in listing {
            let before = last.remove(&job.job_id);
            next.insert(job.job_id.clone(), seen(&job));
            let previous = before.map(|seen| String::from(seen.state));
            if previous.as_deref() == Some(job.status.state.as_str()) {
                continue;
            }
            // An ending job that moved on again (requeued): its end goes out as it was.
            if let Some(ending) = self.ending.remove(&job.job_id) {
                changes.extend(ending.told());
            }
            if !job.is_active() && job.status.exit_code.is_none() {
                let job_id = job.job_id.clone();
                let ending = Ending {
                    listed: Some(job),
                    previous,
                    since: now,
                };
                self.ending.insert(job_id, ending);
            } else {
                changes.push(Change { job, previous });
            }
        }
        // What is left was listed last time and is not now.
        for (job_id, gone) in last {
            if gone.active && !self.ending.contains_key(&job_id) {
                let ending = Ending {
                    listed: None,
                    previous: Some(gone.state.into()),
                    since: now,
                };
                self.ending.insert(job_id, ending);
            }
        }
        self.jobs = Some(next);
        changes
    }

    /// The jobs whose end waits for their accounting record.
    pub fn awaiting_accounting(&self) -> Vec<JobId> {
        self.ending
            .keys()
            .filter_map(|job_id| JobId::parse(job_id).ok())
            .collect()
    }

    /// The ends that `records` (accounting records in a final state) complete, and those
    /// that waited longer than the grace: told without an exit code, or (a job that left
    /// the listing and has no record) not at all.
    pub fn settle(&mut self, records: Vec<Job>, now: Instant) -> Vec<Change> {
        let mut changes = Vec::new();
        for record in records {
            if let Some(ending) = self.ending.remove(&record.job_id) {
                let job = match ending.listed {
                    Some(listed) => listed.completed_by(record),
                    None => record,
                };
                changes.push(Change {
                    job,
                    previous: ending.previous,
                });
            }
        }
        let overdue: Vec<String> = self
            .ending
            .iter()
            .filter(|(_, ending)| now.duration_since(ending.since) >= self.settle_grace)
            .map(|(job_id, _)| job_id.clone())
            .collect();
        for job_id in overdue {
            if let Some(ending) = self.ending.remove(&job_id) {
                changes.extend(ending.told());
            }
        }
        changes
    }
}

impl Ending {
    /// The end as the listing showed it, when it showed it.
    fn told(self) -> Option<Change> {
        self.listed.map(|job| Change {
            job,
            previous: self.previous,
        })
    }
}

fn seen(job: &Job) -> Seen {
    Seen {
        state: job.status.state.as_str().into(),
        active: job.is_active(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironcrest_scheduler::JobStatus;

    const GRACE: Duration = Duration::from_secs(15);

    fn job(id: &str, state: &str, exit_code: Option<i64>) -> Job {
        Job {
            job_id: id.into(),
            user: Some("alice".into()),
            status: JobStatus {
                state: state.into(),
                exit_code,
                ..JobStatus::default()
            },
            ..Job::default()
        }
    }

    fn told(changes: &[Change]) -> Vec<(String, Option<String>, String, Option<i64>)> {
        changes
            .iter()
            .map(|change| {
                (
                    change.job.job_id.clone(),
                    change.previous.clone(),
                    change.job.status.state.clone(),
                    change.job.status.exit_code,
                )
            })
            .collect()
    }

    fn change(
        id: &str,
        previous: Option<&str>,
        state: &str,
        exit_code: Option<i64>,
    ) -> (String, Option<String>, String, Option<i64>) {
        (
            id.into(),
            previous.map(String::from),
            state.into(),
            exit_code,
        )
    }

    #[test]
    fn the_baseline_tells_nothing_and_then_each_change_is_told_once() {
        let now = Instant::now();
        let mut differ = Differ::new(GRACE);
        assert!(!differ.has_baseline());
        let baseline = differ.compare(
            vec![job("1", "PENDING", None), job("2", "COMPLETED", None)],
            now,
        );
        assert!(baseline.is_empty() && differ.has_baseline());
        assert!(differ.awaiting_accounting().is_empty(), "no old end waits");
        let changes = differ.compare(
            vec![
                job("1", "RUNNING", None),
                job("2", "COMPLETED", None),
                job("3", "PENDING", None),
            ],
            now,
        );
        assert_eq!(
            told(&changes),
            [
                change("1", Some("PENDING"), "RUNNING", None),
                change("3", None, "PENDING", None),
            ]
        );
        let same = differ.compare(
            vec![job("1", "RUNNING", None), job("3", "PENDING", None)],
            now,
        );
        assert!(same.is_empty(), "{:?}", told(&same));
    }

    #[test]
    fn an_end_waits_for_its_exit_code_from_accounting() {
        let now = Instant::now();
        let mut differ = Differ::new(GRACE);
        differ.compare(vec![job("1", "RUNNING", None)], now);
        assert!(
            differ
                .compare(vec![job("1", "FAILED", None)], now)
                .is_empty()
        );
        let awaiting: Vec<String> = differ
            .awaiting_accounting()
            .iter()
            .map(|id| id.as_str().to_string())
            .collect();
        assert_eq!(awaiting, ["1"]);
        // No record yet, within the grace: still waiting.
        assert!(differ.settle(Vec::new(), now + GRACE / 2).is_empty());
        let changes = differ.settle(vec![job("1", "FAILED", Some(3))], now + GRACE / 2);
        assert_eq!(
            told(&changes),
            [change("1", Some("RUNNING"), "FAILED", Some(3))]
        );
        assert!(differ.awaiting_accounting().is_empty());
    }

    #[test]
    fn an_end_without_a_record_goes_out_after_the_grace() {
        let now = Instant::now();
        let mut differ = Differ::new(GRACE);
        differ.compare(vec![job("1", "RUNNING", None)], now);
        differ.compare(vec![job("1", "TIMEOUT", None)], now);
        assert!(differ.settle(Vec::new(), now + GRACE / 2).is_empty());
        assert_eq!(
            told(&differ.settle(Vec::new(), now + GRACE)),
            [change("1", Some("RUNNING"), "TIMEOUT", None)]
        );
    }

    #[test]
    fn an_end_with_its_exit_code_listed_goes_out_at_once() {
        let now = Instant::now();
        let mut differ = Differ::new(GRACE);
        differ.compare(vec![job("1", "RUNNING", None)], now);
        let changes = differ.compare(vec![job("1", "COMPLETED", Some(0))], now);
        assert_eq!(
            told(&changes),
            [change("1", Some("RUNNING"), "COMPLETED", Some(0))]
        );
    }

    #[test]
    fn a_job_that_left_the_listing_active_is_told_from_its_record_or_not_at_all() {
        let now = Instant::now();
        let mut differ = Differ::new(GRACE);
        differ.compare(
            vec![job("1", "RUNNING", None), job("2", "PENDING", None)],
            now,
        );
        assert!(differ.compare(Vec::new(), now).is_empty());
        assert_eq!(differ.awaiting_accounting().len(), 2);
        let changes = differ.settle(vec![job("1", "COMPLETED", Some(0))], now);
        assert_eq!(
            told(&changes),
            [change("1", Some("RUNNING"), "COMPLETED", Some(0))]
        );
        assert!(
            differ.settle(Vec::new(), now + GRACE).is_empty(),
            "nothing known of job 2's end"
        );
        assert!(differ.awaiting_accounting().is_empty());
    }

    #[test]
    fn a_requeued_ending_job_tells_its_end_then_its_new_state() {
        let now = Instant::now();
        let mut differ = Differ::new(GRACE);
        differ.compare(vec![job("1", "RUNNING", None)], now);
        differ.compare(vec![job("1", "NODE_FAIL", None)], now);
        let changes = differ.compare(vec![job("1", "PENDING", None)], now);
        assert_eq!(
            told(&changes),
            [
                change("1", Some("RUNNING"), "NODE_FAIL", None),
                change("1", Some("NODE_FAIL"), "PENDING", None),
            ]
        );
    }
}
