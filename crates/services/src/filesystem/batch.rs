//! Coalescing per key: while a key's batches are in flight (at most [`Cap::in_flight`] at
//! once), further items for that key queue, and the next batch takes the queued ones at
//! once (up to a count and a total weight). A runner task per batch in flight; it takes
//! batch after batch and ends when the queue is empty.
//!
//! Pure logic: what a batch does is the `run` function given to [`Coalescer::submit`].

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;
use tracing::Instrument;

/// How much one batch may take: at most `count` items whose weights add up to at most
/// `weight` (a first item heavier than that still goes, alone); and how many batches of a
/// key may be in flight at once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cap {
    pub count: usize,
    pub weight: usize,
    pub in_flight: usize,
}

/// A key's waiting items and how many runners it has; present while it has runners.
struct Key<T, R> {
    queue: Vec<(T, oneshot::Sender<R>)>,
    runners: usize,
}

type Keys<K, T, R> = Arc<Mutex<HashMap<K, Key<T, R>>>>;

/// Queues keyed by `K` of items `T` waiting for results `R`.
pub(crate) struct Coalescer<K, T, R> {
    keys: Keys<K, T, R>,
}

impl<K, T, R> Default for Coalescer<K, T, R> {
    fn default() -> Self {
        Self {
            keys: Arc::default(),
        }
    }
}

impl<K, T, R> Coalescer<K, T, R>
where
    K: Hash + Eq + Clone + Send + 'static,
    T: Send + 'static,
    R: Send + 'static,
{
    /// `item`'s result from the batch it ran in: `run` gets the batch's items and returns
    /// one result per item, in order. `None` if its batch was lost (`run` panicked or
    /// returned too few results).
    pub(crate) async fn submit<F, Fut>(
        &self,
        key: K,
        item: T,
        cap: Cap,
        weight: fn(&T) -> usize,
        run: F,
    ) -> Option<R>
    where
        F: Fn(Vec<T>) -> Fut + Send + 'static,
        Fut: Future<Output = Vec<R>> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
            let state = keys.entry(key.clone()).or_insert_with(|| Key {
                queue: Vec::new(),
                runners: 0,
            });
            state.queue.push((item, tx));
            let start = state.runners < cap.in_flight.max(1);
            if start {
                state.runners += 1;
            }
            start
        };
        if start {
            let runner = Runner {
                keys: self.keys.clone(),
                key: Some(key),
            };
            // In the trace of the request that started the batch.
            tokio::spawn(runner.run(cap, weight, run).in_current_span());
        }
        rx.await.ok()
    }
}

/// Runs a key's batches until its queue is empty. Dropped early (a panic in `run`), it
/// gives up its place; the key's last runner gone, queued items are answered `None`.
struct Runner<K: Hash + Eq, T, R> {
    keys: Keys<K, T, R>,
    /// `None` once the runner has given up its place itself.
    key: Option<K>,
}

impl<K: Hash + Eq, T, R> Runner<K, T, R> {
    async fn run<F, Fut>(mut self, cap: Cap, weight: fn(&T) -> usize, run: F)
    where
        F: Fn(Vec<T>) -> Fut,
        Fut: Future<Output = Vec<R>>,
    {
        loop {
            let batch = {
                let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
                let Some(key) = self.key.as_ref() else { return };
                let batch = keys
                    .get_mut(key)
                    .map(|state| take(&mut state.queue, cap, weight))
                    .unwrap_or_default();
                if batch.is_empty() {
                    leave(&mut keys, key);
                    self.key = None;
                    return;
                }
                batch
            };
            let (items, senders): (Vec<T>, Vec<_>) = batch.into_iter().unzip();
            let results = run(items).await;
            for (sender, result) in senders.into_iter().zip(results) {
                // The requester may have gone away.
                let _ = sender.send(result);
            }
        }
    }
}

impl<K: Hash + Eq, T, R> Drop for Runner<K, T, R> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            leave(
                &mut self.keys.lock().unwrap_or_else(PoisonError::into_inner),
                &key,
            );
        }
    }
}

/// A runner of `key` ends; with the last one the key (and whatever is queued) goes.
fn leave<K: Hash + Eq, T, R>(keys: &mut HashMap<K, Key<T, R>>, key: &K) {
    if let Some(state) = keys.get_mut(key) {
        state.runners -= 1;
        if state.runners == 0 {
            keys.remove(key);
        }
    }
}

/// The next batch: the oldest items, as many as `cap` allows.
fn take<T, S>(queue: &mut Vec<(T, S)>, cap: Cap, weight: fn(&T) -> usize) -> Vec<(T, S)> {
    let mut total = 0;
    let mut count = 0;
    for (item, _) in queue.iter() {
        let w = weight(item);
        if count == cap.count || (count > 0 && total + w > cap.weight) {
            break;
        }
        total += w;
        count += 1;
    }
    queue.drain(..count).collect()
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;

    use futures::FutureExt;
    use tokio::sync::{Semaphore, mpsc};

    use super::*;

    const CAP: Cap = Cap {
        count: 4,
        weight: 10,
        in_flight: 1,
    };

    /// Weighs an item by its length.
    const LEN: fn(&String) -> usize = |item| item.len();

    #[test]
    fn a_batch_takes_the_oldest_items_within_the_cap() {
        let mut queue: Vec<(String, ())> = ["aaa", "bb", "c", "dddd", "e", "f"]
            .iter()
            .map(|s| (s.to_string(), ()))
            .collect();
        let names =
            |batch: Vec<(String, ())>| batch.into_iter().map(|(s, _)| s).collect::<Vec<_>>();
        assert_eq!(
            names(take(&mut queue, CAP, LEN)),
            ["aaa", "bb", "c", "dddd"]
        );
        assert_eq!(names(take(&mut queue, CAP, LEN)), ["e", "f"]);
        assert!(take(&mut queue, CAP, LEN).is_empty());

        let mut heavy = vec![("x".repeat(20), ()), ("y".into(), ())];
        assert_eq!(names(take(&mut heavy, CAP, LEN)), ["x".repeat(20)]);
        assert_eq!(names(take(&mut heavy, CAP, LEN)), ["y"]);
    }

    type Batches = Arc<Mutex<Vec<(&'static str, Vec<String>)>>>;

    /// A run function that records its batches, reports each start on `started`, and
    /// then waits for a permit of `gate`. Results are the items upper-cased.
    fn gated(
        key: &'static str,
        batches: &Batches,
        started: &mpsc::UnboundedSender<&'static str>,
        gate: &Arc<Semaphore>,
    ) -> impl Fn(Vec<String>) -> Pin<Box<dyn Future<Output = Vec<String>> + Send>> + Send + 'static
    {
        let (batches, started, gate) = (batches.clone(), started.clone(), gate.clone());
        move |items: Vec<String>| {
            let (batches, started, gate) = (batches.clone(), started.clone(), gate.clone());
            async move {
                batches.lock().unwrap().push((key, items.clone()));
                started.send(key).unwrap();
                gate.acquire().await.unwrap().forget();
                items.iter().map(|i| i.to_uppercase()).collect()
            }
            .boxed()
        }
    }

    #[tokio::test]
    async fn items_queued_during_a_batch_run_together_in_the_next_one() {
        let coalescer: Arc<Coalescer<&str, String, String>> = Arc::default();
        let batches = Batches::default();
        let (started_tx, mut started) = mpsc::unbounded_channel();
        let gate = Arc::new(Semaphore::new(0));
        let submit = |key: &'static str, item: String| {
            let coalescer = coalescer.clone();
            let run = gated(key, &batches, &started_tx, &gate);
            async move { coalescer.submit(key, item, CAP, LEN, run).await }.boxed()
        };

        let mut first = submit("user", "a".into());
        assert!(futures::poll!(&mut first).is_pending());
        assert_eq!(started.recv().await, Some("user"));
        // The first batch is in flight: these queue (seven items, cap four).
        let mut queued: Vec<_> = (0..7).map(|i| submit("user", format!("q{i}"))).collect();
        for future in &mut queued {
            assert!(futures::poll!(future).is_pending());
        }
        // Another key has its own runner, not held up by the first.
        let mut other = submit("other", "o".into());
        assert!(futures::poll!(&mut other).is_pending());
        assert_eq!(started.recv().await, Some("other"));

        gate.add_permits(4);
        assert_eq!(first.await.as_deref(), Some("A"));
        assert_eq!(other.await.as_deref(), Some("O"));
        let results = futures::future::join_all(queued).await;
        let expected: Vec<Option<String>> = (0..7).map(|i| Some(format!("Q{i}"))).collect();
        assert_eq!(results, expected);

        let batches = batches.lock().unwrap().clone();
        let q = |range: std::ops::Range<usize>| range.map(|i| format!("q{i}")).collect::<Vec<_>>();
        assert_eq!(
            batches,
            [
                ("user", vec!["a".to_string()]),
                ("other", vec!["o".to_string()]),
                ("user", q(0..4)),
                ("user", q(4..7)),
            ]
        );
        // Every runner has finished: the queues are gone.
        assert!(coalescer.keys.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn up_to_in_flight_batches_run_at_once_and_the_rest_queue() {
        let coalescer: Arc<Coalescer<&str, String, String>> = Arc::default();
        let batches = Batches::default();
        let (started_tx, mut started) = mpsc::unbounded_channel();
        let gate = Arc::new(Semaphore::new(0));
        let cap = Cap {
            in_flight: 2,
            ..CAP
        };
        let submit = |item: &str| {
            let coalescer = coalescer.clone();
            let run = gated("user", &batches, &started_tx, &gate);
            let item = item.to_string();
            async move { coalescer.submit("user", item, cap, LEN, run).await }.boxed()
        };
        let mut running: Vec<_> = ["a", "b"].into_iter().map(submit).collect();
        for future in &mut running {
            assert!(futures::poll!(future).is_pending());
            assert_eq!(started.recv().await, Some("user"));
        }
        let mut queued: Vec<_> = ["c", "d", "e"].into_iter().map(submit).collect();
        for future in &mut queued {
            assert!(futures::poll!(future).is_pending());
        }
        gate.add_permits(3);
        running.extend(queued);
        let results: Vec<Option<String>> = futures::future::join_all(running).await;
        let upper = ["A", "B", "C", "D", "E"].map(|s| Some(s.to_string()));
        assert_eq!(results, upper);
        let batches: Vec<Vec<String>> = batches
            .lock()
            .unwrap()
            .iter()
            .map(|b| b.1.clone())
            .collect();
        assert_eq!(batches, [vec!["a"], vec!["b"], vec!["c", "d", "e"]]);
        assert!(coalescer.keys.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_lost_batch_answers_none_and_the_next_submit_starts_afresh() {
        let coalescer: Coalescer<&str, String, String> = Coalescer::default();
        let fail = |_: Vec<String>| async { panic!("the batch fails") };
        assert_eq!(
            coalescer.submit("k", "x".into(), CAP, LEN, fail).await,
            None
        );
        let short = |_: Vec<String>| async { Vec::new() };
        assert_eq!(
            coalescer.submit("k", "x".into(), CAP, LEN, short).await,
            None
        );
        let echo = |items: Vec<String>| async { items };
        assert_eq!(
            coalescer
                .submit("k", "x".into(), CAP, LEN, echo)
                .await
                .as_deref(),
            Some("x")
        );
    }
}
