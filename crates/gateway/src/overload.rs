//! Load shedding (`gateway.limits.overload`): a bound on the requests on the systems this
//! server serves at once, all users together, so load beyond what it can serve is answered
//! at once with a 503 (or 429) and `Retry-After` instead of piling up in front of the SSH
//! pool and the scheduler until clients time out.
//!
//! A request takes one of `max_in_flight` places (a fair tokio semaphore) and holds it until
//! its handler has answered. When none is free it waits, in arrival order, for up to
//! `queue_timeout`; but only `max_queued` requests wait at a time, and one more is shed
//! without waiting. Unlike the per-user limit ([`crate::limits::Concurrency`]) this one is
//! on by default.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ironcrest_config::OverloadLimit;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{Denial, RouteFamily};

/// Why a request was shed (the `cause` label of `ironcrest_overload_shed_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShedCause {
    /// Every place taken and `max_queued` requests already waiting: shed without waiting.
    QueueFull,
    /// Waited `queue_timeout` without a place coming free.
    QueueTimeout,
}

impl ShedCause {
    pub fn as_str(self) -> &'static str {
        match self {
            ShedCause::QueueFull => "queue_full",
            ShedCause::QueueTimeout => "queue_timeout",
        }
    }
}

/// The bound of one configuration; `None` in [`crate::limits::Limits`] when it is off.
#[derive(Debug)]
pub(crate) struct Overload {
    places: Arc<Semaphore>,
    max_in_flight: usize,
    /// Requests waiting for a place now.
    waiting: AtomicUsize,
    max_queued: usize,
    queue_timeout: Duration,
    retry_after: Duration,
    status: u16,
}

/// A request's place among the `max_in_flight`; held in the [`crate::Permit`] until the
/// request ends.
#[derive(Debug)]
pub(crate) struct Place {
    _permit: OwnedSemaphorePermit,
}

impl Drop for Place {
    fn drop(&mut self) {
        metrics::gauge!("ironcrest_overload_in_flight").decrement(1.0);
    }
}

/// Counts a request among the waiting ones while it waits, however the wait ends (a place,
/// the timeout, or the client going away).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
        metrics::gauge!("ironcrest_overload_queued").decrement(1.0);
    }
}

impl Overload {
    /// The bound `config` describes, or `None` when `max_in_flight` is 0 (off).
    pub(crate) fn new(config: &OverloadLimit) -> Option<Self> {
        if config.max_in_flight == 0 {
            return None;
        }
        let max_in_flight = config.max_in_flight.min(Semaphore::MAX_PERMITS);
        Some(Self {
            places: Arc::new(Semaphore::new(max_in_flight)),
            max_in_flight,
            waiting: AtomicUsize::new(0),
            max_queued: config.max_queued,
            queue_timeout: Duration::from_secs_f64(config.queue_timeout.max(0.0)),
            retry_after: Duration::from_secs(config.retry_after.max(1)),
            status: config.status,
        })
    }

    /// A place for a request of `family`: at once when one is free, else after waiting in
    /// turn; shed when the queue is full or the wait runs out.
    pub(crate) async fn enter(&self, family: RouteFamily) -> Result<Place, Denial> {
        if let Ok(permit) = self.places.clone().try_acquire_owned() {
            return Ok(self.place(permit));
        }
        let queued = self
            .waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |waiting| {
                (waiting < self.max_queued).then_some(waiting + 1)
            });
        if queued.is_err() {
            return Err(self.shed(family, ShedCause::QueueFull));
        }
        metrics::gauge!("ironcrest_overload_queued").increment(1.0);
        let waiting = Waiting(&self.waiting);
        let started = Instant::now();
        let waited =
            tokio::time::timeout(self.queue_timeout, self.places.clone().acquire_owned()).await;
        drop(waiting);
        metrics::histogram!("ironcrest_overload_queue_wait_seconds").record(started.elapsed());
        match waited {
            Ok(Ok(permit)) => Ok(self.place(permit)),
            // Timed out (the semaphore is never closed).
            _ => Err(self.shed(family, ShedCause::QueueTimeout)),
        }
    }

    fn place(&self, permit: OwnedSemaphorePermit) -> Place {
        metrics::gauge!("ironcrest_overload_in_flight").increment(1.0);
        Place { _permit: permit }
    }

    fn shed(&self, family: RouteFamily, cause: ShedCause) -> Denial {
        metrics::counter!(
            "ironcrest_overload_shed_total",
            "family" => family.as_str(),
            "cause" => cause.as_str(),
        )
        .increment(1);
        let why = match cause {
            ShedCause::QueueFull => format!(
                "its {} places for requests on the systems are taken and {} requests already \
                 wait for one",
                self.max_in_flight, self.max_queued
            ),
            ShedCause::QueueTimeout => format!(
                "this request waited {} s and none of its {} places for requests on the \
                 systems came free",
                self.queue_timeout.as_secs_f64(),
                self.max_in_flight
            ),
        };
        Denial::Overloaded {
            message: format!(
                "The server is overloaded: {why}; retry in {} s.",
                self.retry_after.as_secs()
            ),
            cause,
            retry_after: self.retry_after,
            status: self.status,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const READ: RouteFamily = RouteFamily::FilesystemRead;

    fn overload(max_in_flight: usize, max_queued: usize, queue_timeout: f64) -> Overload {
        Overload::new(&OverloadLimit {
            max_in_flight,
            max_queued,
            queue_timeout,
            ..OverloadLimit::default()
        })
        .expect("on")
    }

    fn cause(result: Result<Place, Denial>) -> ShedCause {
        match result {
            Err(Denial::Overloaded { cause, .. }) => cause,
            other => panic!("expected a shed request, got {other:?}"),
        }
    }

    #[test]
    fn zero_places_turns_it_off() {
        let config = OverloadLimit {
            max_in_flight: 0,
            ..OverloadLimit::default()
        };
        assert!(Overload::new(&config).is_none());
    }

    #[tokio::test]
    async fn past_the_places_and_the_queue_a_request_is_shed_without_waiting() {
        // A queue timeout no test would wait out: the refusal must not wait for it.
        let overload = overload(2, 0, 3600.0);
        let first = overload.enter(READ).await.expect("a place");
        let _second = overload.enter(READ).await.expect("a place");
        assert_eq!(cause(overload.enter(READ).await), ShedCause::QueueFull);
        drop(first);
        assert!(
            overload.enter(READ).await.is_ok(),
            "a place comes back when its request ends"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_queued_request_gets_the_next_free_place_or_is_shed_after_the_timeout() {
        let overload = Arc::new(overload(1, 1, 5.0));
        let held = overload.enter(READ).await.expect("a place");

        // One waits; a second waiter is over the queue bound.
        let waiter = tokio::spawn({
            let overload = overload.clone();
            async move { overload.enter(READ).await.map(drop) }
        });
        tokio::task::yield_now().await;
        assert_eq!(overload.waiting.load(Ordering::Acquire), 1);
        assert_eq!(cause(overload.enter(READ).await), ShedCause::QueueFull);

        drop(held);
        waiter
            .await
            .unwrap()
            .expect("the waiter got the freed place");
        assert_eq!(overload.waiting.load(Ordering::Acquire), 0);

        // Nothing frees the place in time: shed after queue_timeout.
        let _held = overload.enter(READ).await.expect("a place");
        let started = tokio::time::Instant::now();
        assert_eq!(cause(overload.enter(READ).await), ShedCause::QueueTimeout);
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        assert_eq!(overload.waiting.load(Ordering::Acquire), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_whose_client_left_leaves_the_queue() {
        let overload = Arc::new(overload(1, 1, 60.0));
        let _held = overload.enter(READ).await.expect("a place");
        let waiter = tokio::spawn({
            let overload = overload.clone();
            async move { overload.enter(READ).await.map(drop) }
        });
        tokio::task::yield_now().await;
        assert_eq!(overload.waiting.load(Ordering::Acquire), 1);
        waiter.abort();
        let _ = waiter.await;
        assert_eq!(overload.waiting.load(Ordering::Acquire), 0);
        // Its place in the queue is free again: the next request waits instead of being shed.
        let next = tokio::spawn({
            let overload = overload.clone();
            async move { overload.enter(READ).await.map(drop) }
        });
        tokio::task::yield_now().await;
        assert_eq!(overload.waiting.load(Ordering::Acquire), 1);
        next.abort();
    }

    #[tokio::test]
    async fn the_refusal_names_the_bound_and_carries_the_configured_answer() {
        let overload = Overload::new(&OverloadLimit {
            max_in_flight: 1,
            max_queued: 0,
            retry_after: 3,
            status: 429,
            ..OverloadLimit::default()
        })
        .unwrap();
        let _held = overload.enter(READ).await.unwrap();
        match overload.enter(READ).await {
            Err(Denial::Overloaded {
                message,
                retry_after,
                status,
                ..
            }) => {
                assert_eq!(
                    message,
                    "The server is overloaded: its 1 places for requests on the systems are \
                     taken and 0 requests already wait for one; retry in 3 s."
                );
                assert_eq!(retry_after, Duration::from_secs(3));
                assert_eq!(status, 429);
            }
            other => panic!("{other:?}"),
        }
    }
}
