//! The coalescing cache in front of slow remote queries: the scheduler's job listings and
//! lookups, and a user's identity and accounts (`userinfo`).
//!
//! Identical queries by the same user that arrive while one is running share that one
//! call; a finished answer is served again for at most `max_age`, if the cache's
//! `reusable` rule allows (a lookup of a job that is still active is not: clients wait for
//! a job's end by polling it, and a reused answer would show the end that much later). A
//! change by the user (a submit, a cancel) drops that user's entries, so their own change
//! shows at once. Failed calls are not cached: the next waiter runs the query itself.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ironcrest_scheduler::{Job, JobFilter};
use tokio::sync::OnceCell;
// Tokio's clock, so that tests can pause and advance it; the real clock otherwise.
use tokio::time::Instant;

/// One user's query to a [`Coalescing`] cache.
pub trait Query: Clone + Eq + Hash {
    type Answer;
    /// The cache's name in `ironcrest_cache_lookups_total{cache}`.
    const CACHE: &'static str;

    /// Whether a finished answer may serve later calls.
    fn reusable(&self, _answer: &Self::Answer) -> bool {
        true
    }
}

type Cell<A> = Arc<OnceCell<(Instant, Arc<A>)>>;
/// Per user and query: the answer, or the call in flight that will give it.
type Entries<Q> = HashMap<(String, Q), Cell<<Q as Query>::Answer>>;

pub struct Coalescing<Q: Query> {
    max_age: Duration,
    entries: Mutex<Entries<Q>>,
}

impl<Q: Query> Coalescing<Q> {
    pub fn new(max_age: Duration) -> Self {
        Self {
            max_age,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The answer to `query` for `user`: joined in flight, reused while fresh, else fetched.
    pub async fn get_or_fetch<E, F, Fut>(
        &self,
        user: &str,
        query: Q,
        fetch: F,
    ) -> Result<Arc<Q::Answer>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Q::Answer, E>>,
    {
        let cell = self.cell(user, query);
        let answered = cell.initialized();
        let mut fetched = false;
        let result = cell
            .get_or_try_init(|| async {
                fetched = true;
                Ok((Instant::now(), Arc::new(fetch().await?)))
            })
            .await;
        // A waiter whose call in flight failed fetches itself: a miss.
        let lookup = match (answered, fetched) {
            (true, _) => "hit",
            (false, true) => "miss",
            (false, false) => "coalesced",
        };
        metrics::counter!("ironcrest_cache_lookups_total", "cache" => Q::CACHE, "result" => lookup)
            .increment(1);
        let (_, answer) = result?;
        Ok(answer.clone())
    }

    /// Forgets every answer given to `user` (after their submit or cancel).
    pub fn invalidate(&self, user: &str) {
        self.lock().retain(|(owner, _), _| owner != user);
    }

    fn cell(&self, user: &str, query: Q) -> Cell<Q::Answer> {
        let mut entries = self.lock();
        let now = Instant::now();
        // Drop what has gone stale, so the map stays as small as the recent traffic.
        entries.retain(|(_, query), cell| match cell.get() {
            Some((at, answer)) => now.duration_since(*at) < self.max_age && query.reusable(answer),
            None => true,
        });
        entries
            .entry((user.to_string(), query))
            .or_insert_with(|| Arc::new(OnceCell::new()))
            .clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries<Q>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What was asked of the scheduler: a listing, or one job by id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum JobQuery {
    List(JobFilter),
    One(String),
}

impl Query for JobQuery {
    type Answer = Vec<Job>;
    const CACHE: &'static str = "jobs";

    /// A listing may be reused, a lookup only once the job has ended (its answer no longer
    /// changes).
    fn reusable(&self, jobs: &Vec<Job>) -> bool {
        matches!(self, JobQuery::List(_)) || jobs.iter().all(|job| !job.is_active())
    }
}

pub type JobsCache = Coalescing<JobQuery>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A scheduler stand-in that counts its calls and answers after `delay`.
    struct Counting {
        calls: AtomicUsize,
        delay: Duration,
    }

    impl Counting {
        fn new(delay: Duration) -> Arc<Self> {
            Arc::new(Self {
                calls: AtomicUsize::new(0),
                delay,
            })
        }

        async fn fetch(&self) -> Result<Vec<Job>, String> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            Ok(vec![Job {
                job_id: n.to_string(),
                ..Job::default()
            }])
        }

        fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }
    }

    fn list() -> JobQuery {
        JobQuery::List(JobFilter::default())
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_identical_listings_share_one_call() {
        let cache = Arc::new(JobsCache::new(Duration::ZERO));
        let scheduler = Counting::new(Duration::from_millis(100));
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                let (cache, scheduler) = (cache.clone(), scheduler.clone());
                tokio::spawn(async move {
                    cache
                        .get_or_fetch("alice", list(), || scheduler.fetch())
                        .await
                        .unwrap()
                })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap()[0].job_id, "0");
        }
        assert_eq!(scheduler.calls(), 1);
        // With max_age 0 a finished answer is not reused.
        cache
            .get_or_fetch("alice", list(), || scheduler.fetch())
            .await
            .unwrap();
        assert_eq!(scheduler.calls(), 2);
    }

    /// A change by the user while a call is in flight: calls asked for after it run anew (a
    /// listing must show the user's own change), calls before it still share.
    #[tokio::test(start_paused = true)]
    async fn invalidation_ends_the_sharing_of_a_call_in_flight() {
        let cache = Arc::new(JobsCache::new(Duration::ZERO));
        let scheduler = Counting::new(Duration::from_millis(100));
        let call = || {
            let (cache, scheduler) = (cache.clone(), scheduler.clone());
            tokio::spawn(async move {
                let answer = cache.get_or_fetch("alice", list(), || scheduler.fetch());
                answer.await.unwrap()[0].job_id.clone()
            })
        };
        let (first, joined) = (call(), call());
        tokio::time::advance(Duration::from_millis(10)).await;
        cache.invalidate("alice");
        let after = call();
        assert_eq!(first.await.unwrap(), "0");
        assert_eq!(joined.await.unwrap(), "0");
        assert_eq!(
            after.await.unwrap(),
            "1",
            "asked after the change: its own call"
        );
        assert_eq!(scheduler.calls(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn users_and_queries_do_not_share() {
        let cache = JobsCache::new(Duration::from_secs(1));
        let scheduler = Counting::new(Duration::from_millis(10));
        let one = JobQuery::One("7".into());
        let (a, b, c) = tokio::join!(
            cache.get_or_fetch("alice", list(), || scheduler.fetch()),
            cache.get_or_fetch("bob", list(), || scheduler.fetch()),
            cache.get_or_fetch("alice", one, || scheduler.fetch()),
        );
        let mut ids = vec![
            a.unwrap()[0].job_id.clone(),
            b.unwrap()[0].job_id.clone(),
            c.unwrap()[0].job_id.clone(),
        ];
        ids.sort();
        assert_eq!(ids, ["0", "1", "2"]);
        assert_eq!(scheduler.calls(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn answers_expire_and_invalidation_is_per_user() {
        let cache = JobsCache::new(Duration::from_millis(500));
        let scheduler = Counting::new(Duration::ZERO);
        let get = |user: &'static str| cache.get_or_fetch(user, list(), || scheduler.fetch());
        get("alice").await.unwrap();
        get("bob").await.unwrap();
        get("alice").await.unwrap();
        assert_eq!(scheduler.calls(), 2, "fresh answers are reused");
        cache.invalidate("alice");
        get("alice").await.unwrap();
        get("bob").await.unwrap();
        assert_eq!(scheduler.calls(), 3, "only alice's entries were dropped");
        tokio::time::advance(Duration::from_millis(600)).await;
        get("bob").await.unwrap();
        assert_eq!(scheduler.calls(), 4, "stale answers are fetched again");
    }

    #[tokio::test(start_paused = true)]
    async fn a_lookup_is_reused_only_once_the_job_has_ended() {
        let cache = JobsCache::new(Duration::from_secs(10));
        let calls = AtomicUsize::new(0);
        let lookup = |state: &'static str| {
            cache.get_or_fetch("alice", JobQuery::One("7".into()), || async {
                calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(100)).await;
                let mut job = Job::default();
                job.status.state = state.into();
                Ok::<_, String>(vec![job])
            })
        };
        let (a, b) = tokio::join!(lookup("RUNNING"), lookup("RUNNING"));
        assert_eq!(
            (a.unwrap()[0].status.state.as_str(), b.is_ok()),
            ("RUNNING", true)
        );
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "concurrent lookups share one call"
        );
        lookup("RUNNING").await.unwrap();
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "an active job is looked up again"
        );
        lookup("COMPLETED").await.unwrap();
        let state = lookup("RUNNING").await.unwrap()[0].status.state.clone();
        assert_eq!(state, "COMPLETED", "an ended job's answer is reused");
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn failures_are_not_cached() {
        let cache = JobsCache::new(Duration::from_secs(10));
        let failing = cache
            .get_or_fetch("alice", list(), || async { Err::<Vec<Job>, _>("down") })
            .await;
        assert_eq!(failing.unwrap_err(), "down");
        let scheduler = Counting::new(Duration::ZERO);
        cache
            .get_or_fetch("alice", list(), || scheduler.fetch())
            .await
            .unwrap();
        assert_eq!(scheduler.calls(), 1);
    }
}
