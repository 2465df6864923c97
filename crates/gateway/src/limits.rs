//! Limits (`gateway.limits`): token buckets per user, per client or for everyone
//! ([`RateLimits`], the `governor` crate's GCRA), and a cap on the requests one user has in
//! flight on the systems ([`Concurrency`], one fair tokio semaphore per user).
//!
//! Both are part of the gateway's `Rules` and replaced with them on reload: the buckets
//! start full again and the in-flight counts start from zero for new requests (requests
//! admitted before the reload keep their slot in the old count until they end).

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use ironcrest_config::{LimitsConfig, RateKey, RateLimit};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::overload::{Overload, Place};
use crate::{Denial, Layer, Request, RouteFamily};

/// Keyed buckets drop their idle keys every this many checks.
const HOUSEKEEPING_EVERY: u64 = 1024;

/// What a token bucket that refused tells the client: the `RateLimit-Policy` and
/// `RateLimit` headers of the IETF draft "RateLimit header fields for HTTP",
/// draft-ietf-httpapi-ratelimit-headers-07 (the structured-field form: `10;w=1` and
/// `limit=10, remaining=0, reset=1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateState {
    /// Requests per window (`limit`), as in the policy.
    pub limit: u32,
    /// Requests left now (`remaining`); 0 for a refusal.
    pub remaining: u32,
    /// Until a request passes again (`reset`, whole seconds rounded up on the wire).
    pub reset: Duration,
    /// The `RateLimit-Policy` item, e.g. `10;w=1` or `10;w=1;burst=20`.
    pub policy: String,
}

impl RateState {
    /// The `RateLimit` header's value.
    pub fn header(&self) -> String {
        format!(
            "limit={}, remaining={}, reset={}",
            self.limit,
            self.remaining,
            whole_seconds(self.reset)
        )
    }
}

/// Seconds rounded up, at least 1: a client that waits that long finds a token (and one
/// told 0 would retry at once).
pub fn whole_seconds(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

type Keyed<C> =
    RateLimiter<String, DashMapStateStore<String>, C, NoOpMiddleware<<C as Clock>::Instant>>;
type Direct<C> = RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;

enum Bucket<C: Clock> {
    /// One bucket per user or per client id.
    Keyed(Keyed<C>),
    /// One bucket for everyone.
    Direct(Direct<C>),
}

struct Rate<C: Clock> {
    per: RateKey,
    /// The families it counts; all when empty.
    families: Vec<RouteFamily>,
    bucket: Bucket<C>,
    config: RateLimit,
    state: RateState,
}

impl<C: Clock + Clone> Rate<C> {
    fn new(config: &RateLimit, clock: &C) -> Self {
        let burst = config.burst.unwrap_or(config.requests).max(1);
        // One token back every period/requests; at least a nanosecond (governor's floor).
        let every = Duration::from_secs_f64(config.period / f64::from(config.requests.max(1)))
            .max(Duration::from_nanos(1));
        let quota = Quota::with_period(every)
            .expect("a positive period")
            .allow_burst(NonZeroU32::new(burst).expect("burst is at least 1"));
        let bucket = match config.per {
            RateKey::Global => Bucket::Direct(RateLimiter::direct_with_clock(quota, clock.clone())),
            RateKey::User | RateKey::Client => {
                Bucket::Keyed(RateLimiter::dashmap_with_clock(quota, clock.clone()))
            }
        };
        // The policy in whole seconds (the draft's `w` is an integer): the same rate over
        // the period rounded up.
        let window = config.period.ceil().max(1.0);
        let limit = (f64::from(config.requests) * window / config.period).floor() as u32;
        let mut policy = format!("{limit};w={window}");
        if burst != config.requests {
            policy.push_str(&format!(";burst={burst}"));
        }
        Self {
            per: config.per,
            families: config
                .families
                .iter()
                .filter_map(|name| RouteFamily::named(name))
                .collect(),
            bucket,
            config: config.clone(),
            state: RateState {
                limit,
                remaining: 0,
                reset: Duration::ZERO,
                policy,
            },
        }
    }

    fn applies(&self, family: RouteFamily) -> bool {
        self.families.is_empty() || self.families.contains(&family)
    }

    /// Takes a token, or says how long until one is there.
    fn take(&self, request: &Request<'_>, clock: &C) -> Result<(), Duration> {
        let outcome = match &self.bucket {
            Bucket::Direct(limiter) => limiter.check(),
            Bucket::Keyed(limiter) => {
                let key = match self.per {
                    // A token without a client id counts in its user's bucket of this rule,
                    // so leaving the claim out does not escape the limit.
                    RateKey::Client => match &request.grants.client_id {
                        Some(client) => format!("client:{client}"),
                        None => format!("user:{}", request.user),
                    },
                    _ => request.user.to_owned(),
                };
                limiter.check_key(&key)
            }
        };
        outcome.map_err(|not_until| not_until.wait_time_from(clock.now()))
    }

    fn refusal(&self, wait: Duration) -> Denial {
        let whose = match self.per {
            RateKey::User => "per user",
            RateKey::Client => "per client",
            RateKey::Global => "for all users together",
        };
        let families = if self.families.is_empty() {
            "requests on the systems".to_owned()
        } else {
            let names: Vec<&str> = self.families.iter().map(|f| f.as_str()).collect();
            format!("{} requests", names.join(", "))
        };
        let burst = self.config.burst.unwrap_or(self.config.requests);
        Denial::TooManyRequests {
            layer: Layer::RateLimit,
            message: format!(
                "Too many requests: the limit of {} {families} every {} s {whose} (bursts of {burst}) \
                 is reached; retry in {} s.",
                self.config.requests,
                self.config.period,
                whole_seconds(wait)
            ),
            retry_after: wait,
            rate: Some(RateState {
                reset: wait,
                ..self.state.clone()
            }),
        }
    }
}

/// The token buckets of one configuration.
pub(crate) struct RateLimits<C: Clock = DefaultClock> {
    /// Per-user rules first, then per-client, then global: a request refused by its own
    /// bucket does not spend the shared ones.
    rates: Vec<Rate<C>>,
    clock: C,
    checks: AtomicU64,
}

impl<C: Clock> std::fmt::Debug for RateLimits<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rules: Vec<&RateLimit> = self.rates.iter().map(|rate| &rate.config).collect();
        f.debug_struct("RateLimits").field("rates", &rules).finish()
    }
}

impl Default for RateLimits {
    fn default() -> Self {
        Self::with_clock(&[], DefaultClock::default())
    }
}

impl RateLimits {
    pub(crate) fn new(config: &[RateLimit]) -> Self {
        Self::with_clock(config, DefaultClock::default())
    }
}

impl<C: Clock + Clone> RateLimits<C> {
    pub(crate) fn with_clock(config: &[RateLimit], clock: C) -> Self {
        let mut rates: Vec<Rate<C>> = config.iter().map(|rate| Rate::new(rate, &clock)).collect();
        rates.sort_by_key(|rate| match rate.per {
            RateKey::User => 0,
            RateKey::Client => 1,
            RateKey::Global => 2,
        });
        Self {
            rates,
            clock,
            checks: AtomicU64::new(0),
        }
    }

    /// Takes a token from every bucket that applies to `request`, in order, and stops at the
    /// first that has none (the tokens already taken stay spent: a refused request still
    /// counted against the narrower buckets).
    pub(crate) fn check(&self, request: &Request<'_>) -> Result<(), Denial> {
        if self.rates.is_empty() {
            return Ok(());
        }
        if self.checks.fetch_add(1, Ordering::Relaxed) % HOUSEKEEPING_EVERY
            == HOUSEKEEPING_EVERY - 1
        {
            self.forget_idle();
        }
        for rate in self
            .rates
            .iter()
            .filter(|rate| rate.applies(request.family))
        {
            rate.take(request, &self.clock)
                .map_err(|wait| rate.refusal(wait))?;
        }
        Ok(())
    }

    /// Drops the keys whose buckets are full again (indistinguishable from a new key), so
    /// the keyed buckets hold only users and clients seen lately.
    fn forget_idle(&self) {
        for rate in &self.rates {
            if let Bucket::Keyed(limiter) = &rate.bucket {
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
        }
    }

    #[cfg(test)]
    fn keys(&self) -> usize {
        self.rates
            .iter()
            .map(|rate| match &rate.bucket {
                Bucket::Keyed(limiter) => limiter.len(),
                Bucket::Direct(_) => 0,
            })
            .sum()
    }
}

type Semaphores = Arc<Mutex<HashMap<String, Arc<Semaphore>>>>;

/// At most `per_user` requests of a user in flight; the others wait in arrival order (tokio's
/// semaphore is fair) for up to `queue_timeout`. Each user has a semaphore of their own, so
/// one user's queue never delays another's requests; a user's semaphore exists only while
/// one of their requests holds or waits for a slot.
#[derive(Debug)]
pub(crate) struct Concurrency {
    per_user: usize,
    queue_timeout: Duration,
    users: Semaphores,
}

/// A request's place in its user's count; held in the [`crate::Permit`] until the request
/// ends.
#[derive(Debug)]
pub(crate) struct Slot {
    permit: Option<OwnedSemaphorePermit>,
    user: String,
    users: Semaphores,
}

impl Drop for Slot {
    fn drop(&mut self) {
        drop(self.permit.take());
        forget_if_idle(&self.users, &self.user);
    }
}

/// Removes `user`'s semaphore when the map holds the only reference: no request of theirs
/// holds a slot (a permit keeps its semaphore) or waits for one (a waiter holds a clone,
/// taken under the lock).
fn forget_if_idle(users: &Semaphores, user: &str) {
    let mut users = users.lock().unwrap_or_else(PoisonError::into_inner);
    if users
        .get(user)
        .is_some_and(|semaphore| Arc::strong_count(semaphore) == 1)
    {
        users.remove(user);
    }
}

struct Forget<'a> {
    users: &'a Semaphores,
    user: &'a str,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        forget_if_idle(self.users, self.user);
    }
}

impl Concurrency {
    pub(crate) fn new(per_user: usize, queue_timeout: f64) -> Self {
        Self {
            per_user: per_user.clamp(1, Semaphore::MAX_PERMITS),
            queue_timeout: Duration::from_secs_f64(queue_timeout.max(0.0)),
            users: Semaphores::default(),
        }
    }

    /// A slot for `user`, after waiting for one in turn; a 429 after `queue_timeout`.
    pub(crate) async fn enter(&self, user: &str) -> Result<Slot, Denial> {
        // Dropped after `semaphore` (declared before it) however this ends — admitted, timed
        // out, or cancelled while waiting (the client went away): then the user's semaphore
        // goes if nothing else holds it.
        let _forget = Forget {
            users: &self.users,
            user,
        };
        let semaphore = self
            .users
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(user.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_user)))
            .clone();
        let waited = tokio::time::timeout(self.queue_timeout, semaphore.acquire_owned()).await;
        match waited {
            Ok(Ok(permit)) => Ok(Slot {
                permit: Some(permit),
                user: user.to_owned(),
                users: self.users.clone(),
            }),
            // Timed out (the semaphore is never closed).
            _ => Err(Denial::TooManyRequests {
                layer: Layer::Concurrency,
                message: format!(
                    "Too many requests: {user} already has {} request(s) in flight on the \
                         systems, the most one user may have, and this one waited {} s for its \
                         turn; retry when some have finished.",
                    self.per_user,
                    self.queue_timeout.as_secs_f64()
                ),
                retry_after: Duration::from_secs(1),
                rate: None,
            }),
        }
    }

    #[cfg(test)]
    fn users(&self) -> usize {
        self.users
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// The limits of one configuration.
#[derive(Debug, Default)]
pub(crate) struct Limits {
    pub(crate) rates: RateLimits,
    pub(crate) concurrency: Option<Concurrency>,
    pub(crate) overload: Option<Overload>,
}

impl Limits {
    pub(crate) fn new(config: &LimitsConfig) -> Self {
        Self {
            rates: RateLimits::new(&config.rates),
            concurrency: config
                .concurrency
                .as_ref()
                .map(|c| Concurrency::new(c.per_user, c.queue_timeout)),
            overload: Overload::new(&config.overload),
        }
    }

    /// The user's slot when concurrency is limited (after waiting in turn).
    pub(crate) async fn enter(&self, request: &Request<'_>) -> Result<Option<Slot>, Denial> {
        match &self.concurrency {
            Some(concurrency) => concurrency.enter(request.user).await.map(Some),
            None => Ok(None),
        }
    }

    /// The request's place among the server's when shedding is on (after waiting in turn).
    pub(crate) async fn place(&self, request: &Request<'_>) -> Result<Option<Place>, Denial> {
        match &self.overload {
            Some(overload) => overload.enter(request.family).await.map(Some),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use governor::clock::FakeRelativeClock;
    use ironcrest_auth::Grants;

    use super::*;

    fn rates(yaml: &str) -> (RateLimits<FakeRelativeClock>, FakeRelativeClock) {
        let config: Vec<RateLimit> = serde_yaml_ng::from_str(yaml).unwrap();
        let clock = FakeRelativeClock::default();
        (RateLimits::with_clock(&config, clock.clone()), clock)
    }

    struct Caller {
        user: &'static str,
        grants: Grants,
        params: BTreeMap<String, String>,
        token: secrecy::SecretString,
    }

    impl Caller {
        fn new(user: &'static str, client: Option<&str>) -> Self {
            Self {
                user,
                grants: Grants {
                    client_id: client.map(str::to_owned),
                    ..Grants::default()
                },
                params: BTreeMap::new(),
                token: secrecy::SecretString::from("unused"),
            }
        }

        fn request(&self, family: RouteFamily) -> Request<'_> {
            Request {
                user: self.user,
                grants: &self.grants,
                system: "daint",
                family,
                method: "GET",
                path: "/status/daint/nodes",
                params: &self.params,
                client_address: "127.0.0.1".parse().unwrap(),
                access_token: &self.token,
            }
        }
    }

    const READ: RouteFamily = RouteFamily::FilesystemRead;

    fn refused(result: Result<(), Denial>) -> (String, Duration, RateState) {
        match result {
            Err(Denial::TooManyRequests {
                layer: Layer::RateLimit,
                message,
                retry_after,
                rate: Some(rate),
            }) => (message, retry_after, rate),
            other => panic!("expected a rate-limit refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_bucket_empties_then_refills_at_its_rate() {
        let (limits, clock) = rates("[{per: user, requests: 2, period: 1}]");
        let alice = Caller::new("alice", None);
        assert!(limits.check(&alice.request(READ)).is_ok());
        assert!(limits.check(&alice.request(READ)).is_ok());
        let (message, wait, rate) = refused(limits.check(&alice.request(READ)));
        assert_eq!(wait, Duration::from_millis(500), "one token every 0.5 s");
        assert!(
            message.contains("2 requests on the systems every 1 s per user"),
            "{message}"
        );
        assert_eq!(rate.policy, "2;w=1");
        assert_eq!(rate.header(), "limit=2, remaining=0, reset=1");

        clock.advance(Duration::from_millis(499));
        refused(limits.check(&alice.request(READ)));
        clock.advance(Duration::from_millis(1));
        assert!(limits.check(&alice.request(READ)).is_ok());
        refused(limits.check(&alice.request(READ)));
        // A quiet spell refills the bucket up to its burst, not beyond.
        clock.advance(Duration::from_secs(60));
        assert!(limits.check(&alice.request(READ)).is_ok());
        assert!(limits.check(&alice.request(READ)).is_ok());
        refused(limits.check(&alice.request(READ)));
    }

    #[test]
    fn a_burst_above_the_rate_and_a_fractional_period_read_in_whole_seconds() {
        let (limits, _clock) = rates("[{per: user, requests: 5, period: 0.5, burst: 3}]");
        let alice = Caller::new("alice", None);
        for _ in 0..3 {
            assert!(limits.check(&alice.request(READ)).is_ok());
        }
        let (_, wait, rate) = refused(limits.check(&alice.request(READ)));
        assert_eq!(wait, Duration::from_millis(100));
        assert_eq!(rate.policy, "10;w=1;burst=3");
        assert_eq!(rate.header(), "limit=10, remaining=0, reset=1");
    }

    #[test]
    fn users_have_their_own_buckets_and_share_the_global_one() {
        let (limits, _clock) =
            rates("[{per: global, requests: 3, period: 10}, {per: user, requests: 2, period: 10}]");
        let (alice, bob, carol) = (
            Caller::new("alice", None),
            Caller::new("bob", None),
            Caller::new("carol", None),
        );
        assert!(limits.check(&alice.request(READ)).is_ok());
        assert!(limits.check(&alice.request(READ)).is_ok());
        let (message, _, _) = refused(limits.check(&alice.request(READ)));
        assert!(message.contains("per user"), "{message}");
        // Alice's refusal by her own bucket did not spend the global one.
        assert!(limits.check(&bob.request(READ)).is_ok());
        let (message, wait, rate) = refused(limits.check(&carol.request(READ)));
        assert!(message.contains("for all users together"), "{message}");
        assert_eq!(rate.policy, "3;w=10");
        assert_eq!(wait, Duration::from_secs_f64(10.0 / 3.0));
    }

    #[test]
    fn a_rule_counts_only_its_families() {
        let (limits, _clock) = rates("[{per: user, families: [compute-write], requests: 1}]");
        let alice = Caller::new("alice", None);
        assert!(
            limits
                .check(&alice.request(RouteFamily::ComputeWrite))
                .is_ok()
        );
        let (message, _, _) = refused(limits.check(&alice.request(RouteFamily::ComputeWrite)));
        assert!(message.contains("compute-write requests"), "{message}");
        for _ in 0..10 {
            assert!(limits.check(&alice.request(READ)).is_ok());
            assert!(
                limits
                    .check(&alice.request(RouteFamily::ComputeRead))
                    .is_ok()
            );
        }
    }

    #[test]
    fn clients_have_their_own_buckets_and_a_token_without_one_counts_as_its_user() {
        let (limits, _clock) = rates("[{per: client, requests: 1, period: 10}]");
        let (a, b) = (
            Caller::new("alice", Some("ui")),
            Caller::new("bob", Some("ui")),
        );
        assert!(limits.check(&a.request(READ)).is_ok());
        refused(limits.check(&b.request(READ)));
        let other = Caller::new("alice", Some("cli"));
        assert!(limits.check(&other.request(READ)).is_ok());
        let (bare1, bare2) = (Caller::new("carol", None), Caller::new("dave", None));
        assert!(limits.check(&bare1.request(READ)).is_ok());
        refused(limits.check(&bare1.request(READ)));
        assert!(limits.check(&bare2.request(READ)).is_ok());
    }

    #[test]
    fn idle_keys_are_forgotten() {
        let (limits, clock) = rates("[{per: user, requests: 1, period: 1}]");
        let names: Vec<String> = (0..100).map(|i| format!("user{i}")).collect();
        for name in &names {
            let caller = Caller::new("", None);
            let mut request = caller.request(READ);
            request.user = name;
            assert!(limits.check(&request).is_ok());
        }
        assert_eq!(limits.keys(), 100);
        clock.advance(Duration::from_secs(2));
        // Housekeeping runs every HOUSEKEEPING_EVERY checks, from `check` itself.
        let alice = Caller::new("alice", None);
        for _ in 0..HOUSEKEEPING_EVERY {
            let _ = limits.check(&alice.request(READ));
        }
        assert_eq!(limits.keys(), 1, "only alice's bucket is not full");
    }

    fn concurrency(per_user: usize, queue_timeout: f64) -> Arc<Concurrency> {
        Arc::new(Concurrency::new(per_user, queue_timeout))
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_waits_its_turn_then_times_out() {
        let limits = concurrency(2, 3.0);
        let first = limits.enter("alice").await.unwrap();
        let _second = limits.enter("alice").await.unwrap();
        let started = tokio::time::Instant::now();
        match limits.enter("alice").await {
            Err(Denial::TooManyRequests {
                layer: Layer::Concurrency,
                message,
                retry_after,
                rate: None,
            }) => {
                assert!(
                    message.contains("alice already has 2 request(s)"),
                    "{message}"
                );
                assert_eq!(retry_after, Duration::from_secs(1));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(started.elapsed(), Duration::from_secs(3));

        // A slot given back within the timeout is taken by the waiter.
        let waiter = tokio::spawn({
            let limits = limits.clone();
            async move { limits.enter("alice").await.map(drop) }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        drop(first);
        assert!(waiter.await.unwrap().is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn waiters_are_served_in_arrival_order() {
        let limits = concurrency(1, 60.0);
        let holder = limits.enter("alice").await.unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..5 {
            let (limits, order) = (limits.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let _slot = limits.enter("alice").await.unwrap();
                order.lock().unwrap().push(i);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }));
            // Let the task reach the queue before the next one starts.
            tokio::task::yield_now().await;
        }
        drop(holder);
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4]);
    }

    #[tokio::test(start_paused = true)]
    async fn one_users_queue_does_not_delay_another_user() {
        let limits = concurrency(1, 60.0);
        let _alice = limits.enter("alice").await.unwrap();
        let queued: Vec<_> = (0..10)
            .map(|_| {
                let limits = limits.clone();
                tokio::spawn(async move { limits.enter("alice").await.map(drop) })
            })
            .collect();
        tokio::task::yield_now().await;
        // Bob enters at once: no time passes while alice's ten wait.
        let bob = tokio::time::timeout(Duration::ZERO, limits.enter("bob")).await;
        assert!(matches!(bob, Ok(Ok(_))), "{bob:?}");
        for task in queued {
            task.abort();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_users_semaphore_goes_when_they_have_nothing_in_flight() {
        let limits = concurrency(1, 1.0);
        let slot = limits.enter("alice").await.unwrap();
        let _bob = limits.enter("bob").await.unwrap();
        assert_eq!(limits.users(), 2);
        // A waiter that times out leaves alice's semaphore to her running request.
        assert!(limits.enter("alice").await.is_err());
        assert_eq!(limits.users(), 2);
        drop(slot);
        assert_eq!(limits.users(), 1, "only bob's is left");
        let waiter = tokio::spawn({
            let limits = limits.clone();
            async move { limits.enter("bob").await.map(drop) }
        });
        tokio::task::yield_now().await;
        assert!(
            waiter.await.unwrap().is_err(),
            "timed out behind bob's slot"
        );
        drop(_bob);
        assert_eq!(limits.users(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_cancelled_after_its_turn_came_leaves_nothing_behind() {
        let limits = concurrency(1, 60.0);
        let holder = limits.enter("alice").await.unwrap();
        let waiter = tokio::spawn({
            let limits = limits.clone();
            async move { limits.enter("alice").await.map(drop) }
        });
        tokio::task::yield_now().await;
        // The slot passes to the waiter, which is cancelled before it runs again.
        drop(holder);
        waiter.abort();
        assert!(waiter.await.unwrap_err().is_cancelled());
        assert_eq!(limits.users(), 0);
        assert!(limits.enter("alice").await.is_ok());
    }
}
