//! Deduplication of redelivered events: the store trait and its in-memory
//! implementation.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use crate::VerifiedEvent;

/// The future a store's call returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Where the receiver records which events were handled, so a redelivery is
/// acknowledged without running handlers again.
///
/// The receiver calls [`claim`](DeliveryStore::claim) once an event is
/// verified and, for a [`Claim::Claimed`] event, exactly one
/// [`finish`](DeliveryStore::finish) when its handlers are done, or
/// [`abandon`](DeliveryStore::abandon) when the delivery is dropped before
/// they are (a timeout, a shutdown). An error from either call is never an
/// acknowledgement: the delivery is answered 503 with `Retry-After`, so the
/// API delivers it again.
///
/// The trait is runtime-agnostic: its calls return boxed futures, which a
/// database-backed store fills with its driver's work.
pub trait DeliveryStore: Send + Sync + 'static {
    /// Takes responsibility for handling `event` (a verified one), or says
    /// why not. A durable store may keep the event's body with its record.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot answer; the delivery is then
    /// refused with 503.
    fn claim<'a>(&'a self, event: &'a VerifiedEvent, now: SystemTime) -> StoreFuture<'a, Claim>;

    /// Ends a claim: `handled` true records the event as handled for good;
    /// false releases it so a redelivery runs the handlers again.
    ///
    /// # Errors
    /// [`StoreError`] when the outcome could not be recorded; the delivery
    /// is then answered 503 (its handlers may run again on the redelivery).
    fn finish<'a>(
        &'a self,
        event_id: &'a str,
        handled: bool,
        now: SystemTime,
    ) -> StoreFuture<'a, ()>;

    /// A claimed delivery was dropped before its handlers finished. Called
    /// from a destructor, so it cannot wait or fail: a store that needs I/O
    /// to release a claim can rely on the claim expiring instead (the
    /// default does nothing).
    fn abandon(&self, event_id: &str) {
        let _ = event_id;
    }
}

/// Where a receiver in the persist-then-acknowledge mode
/// ([`Receiver::queued`](crate::Receiver::queued)) commits verified events,
/// for workers of the store's own to run their handlers later.
///
/// The receiver answers 200 only once [`enqueue`](EventQueue::enqueue)
/// resolves `Ok`: the store must have made the event durable by then. An
/// event already in the queue (a redelivery) resolves `Ok` too, once that
/// first copy is committed; the first verified body is the one kept.
pub trait EventQueue: Send + Sync + 'static {
    /// Commits `event` to the queue, or finds it there already.
    ///
    /// # Errors
    /// [`StoreError`] when the event could not be made durable; the
    /// delivery is then answered 503, so the API delivers it again.
    fn enqueue<'a>(
        &'a self,
        event: &'a VerifiedEvent,
        now: SystemTime,
    ) -> StoreFuture<'a, Enqueued>;
}

/// The answer to [`EventQueue::enqueue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Enqueued {
    /// The event is new and now committed.
    New,
    /// The event was in the queue already (a redelivery); nothing changed.
    AlreadyQueued,
}

/// The answer to [`DeliveryStore::claim`].
#[non_exhaustive]
pub enum Claim {
    /// The caller now owns the event and must run its handlers.
    Claimed,
    /// The event was handled already: acknowledge without running handlers.
    AlreadyHandled,
    /// Another delivery of the same event is running; the future resolves to
    /// whether it ended handled (true) or released (false).
    InFlight(InFlight),
    /// Another delivery of the same event is running where this process
    /// cannot wait for it (another replica): answered 503 so the API
    /// delivers it again later.
    Busy,
}

impl fmt::Debug for Claim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Claimed => "Claimed",
            Self::AlreadyHandled => "AlreadyHandled",
            Self::InFlight(_) => "InFlight",
            Self::Busy => "Busy",
        })
    }
}

/// Waits for a concurrent delivery of the same event to end.
pub struct InFlight(Pin<Box<dyn Future<Output = bool> + Send>>);

impl InFlight {
    /// Wraps a future that resolves when the other delivery ends.
    pub fn new(future: impl Future<Output = bool> + Send + 'static) -> Self {
        Self(Box::pin(future))
    }
}

impl Future for InFlight {
    type Output = bool;

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<bool> {
        self.0.as_mut().poll(cx)
    }
}

impl fmt::Debug for InFlight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InFlight")
    }
}

/// Why a store could not answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store holds as many events as it may, and every one of them is
    /// still inside the replay window, so none can be forgotten.
    #[error("delivery store is full: every event it remembers is still inside the replay window")]
    Full,
    /// The store could not be reached, or refused the operation.
    #[error("delivery store is unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// Wraps a driver's error.
    pub fn unavailable(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Unavailable(error.into())
    }
}

/// The default [`DeliveryStore`]: in memory, bounded in count and age.
///
/// It remembers handled events for `max_age` (default 24 hours: the API
/// retries over "a few hours"), at most `capacity` of them (default
/// 100 000) together with those in flight. When it is full, the oldest
/// handled event is forgotten if it is older than the replay window
/// (default 15 minutes: the verifier's default 600 s of age plus 300 s
/// ahead), so a captured delivery can never be replayed into the handlers;
/// otherwise the claim fails with [`StoreError::Full`] and the delivery is
/// answered 503 until room is made.
///
/// Memory is lost on restart and not shared between processes; use a
/// durable store for that.
pub struct MemoryStore {
    inner: Mutex<Inner>,
    capacity: usize,
    max_age: Duration,
    replay_window: Duration,
}

#[derive(Default)]
struct Inner {
    /// Every event remembered: in flight or handled, one entry each.
    events: HashMap<Arc<str>, State>,
    /// How many of `events` are in flight.
    in_flight: usize,
    /// The handled events, oldest first: the order they are forgotten in.
    order: VecDeque<(Arc<str>, SystemTime)>,
}

enum State {
    /// Being handled; the sender exists once another delivery of the same
    /// event waits for the outcome. The id is the map's key, kept here to
    /// queue it once handled.
    InFlight {
        id: Arc<str>,
        waiters: Option<watch::Sender<Option<bool>>>,
    },
    /// Handled (when is in `order`).
    Handled,
}

impl MemoryStore {
    /// A store with the default bounds.
    pub fn new() -> Self {
        Self::with_bounds(100_000, Duration::from_secs(24 * 60 * 60))
    }

    /// A store remembering at most `capacity` events (at least 1) for at
    /// most `max_age`.
    pub fn with_bounds(capacity: usize, max_age: Duration) -> Self {
        Self {
            inner: Mutex::default(),
            capacity: capacity.max(1),
            max_age,
            replay_window: Duration::from_secs(15 * 60),
        }
    }

    /// How long a handled event is kept however full the store is (default
    /// 15 minutes). Keep it at least the verifier's
    /// [`TimeWindow`](crate::TimeWindow) (age plus ahead), or a captured
    /// delivery could be replayed once its event is forgotten.
    #[must_use]
    pub fn replay_window(mut self, window: Duration) -> Self {
        self.replay_window = window;
        self
    }

    /// How many handled events are remembered now.
    pub fn handled_len(&self) -> usize {
        let inner = self.lock();
        inner.events.len() - inner.in_flight
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every update leaves the maps consistent between statements that
        // cannot panic, so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn claim_now(&self, event_id: &str, now: SystemTime) -> Result<Claim, StoreError> {
        let mut inner = self.lock();
        inner.forget_older_than(self.max_age, now);
        match inner.events.get_mut(event_id) {
            Some(State::Handled) => return Ok(Claim::AlreadyHandled),
            Some(State::InFlight { waiters, .. }) => {
                let mut outcome = waiters
                    .get_or_insert_with(|| watch::channel(None).0)
                    .subscribe();
                return Ok(Claim::InFlight(InFlight::new(async move {
                    // A sender dropped without an outcome counts as released.
                    matches!(
                        outcome.wait_for(Option::is_some).await.as_deref(),
                        Ok(Some(true))
                    )
                })));
            }
            None => {}
        }
        if inner.events.len() >= self.capacity
            && !inner.forget_oldest_outside(self.replay_window, now)
        {
            return Err(StoreError::Full);
        }
        let id: Arc<str> = Arc::from(event_id);
        let state = State::InFlight {
            id: Arc::clone(&id),
            waiters: None,
        };
        inner.events.insert(id, state);
        inner.in_flight += 1;
        Ok(Claim::Claimed)
    }

    fn finish_now(&self, event_id: &str, handled: bool, now: SystemTime) {
        let mut guard = self.lock();
        let inner = &mut *guard;
        // A finish without a claim (a stray call) changes nothing.
        let Some(state) = inner.events.get_mut(event_id) else {
            return;
        };
        let State::InFlight { id, waiters } = state else {
            return;
        };
        let (id, waiters) = (Arc::clone(id), waiters.take());
        if handled {
            *state = State::Handled;
            inner.order.push_back((id, now));
        } else {
            inner.events.remove(event_id);
        }
        inner.in_flight -= 1;
        drop(guard);
        if let Some(waiters) = waiters {
            waiters.send_replace(Some(handled));
        }
    }
}

impl Inner {
    /// Forgets the events handled more than `max_age` before `now`.
    fn forget_older_than(&mut self, max_age: Duration, now: SystemTime) {
        while self
            .order
            .front()
            .is_some_and(|(_, at)| age(*at, now) > max_age)
        {
            self.forget_oldest();
        }
    }

    /// Forgets the oldest handled event if it is older than `window`.
    fn forget_oldest_outside(&mut self, window: Duration, now: SystemTime) -> bool {
        let outside = self
            .order
            .front()
            .is_some_and(|(_, at)| age(*at, now) > window);
        if outside {
            self.forget_oldest();
        }
        outside
    }

    fn forget_oldest(&mut self) {
        if let Some((id, _)) = self.order.pop_front() {
            self.events.remove(&id);
        }
    }
}

/// How long ago `at` was; zero for a time in the future.
fn age(at: SystemTime, now: SystemTime) -> Duration {
    now.duration_since(at).unwrap_or_default()
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl DeliveryStore for MemoryStore {
    fn claim<'a>(&'a self, event: &'a VerifiedEvent, now: SystemTime) -> StoreFuture<'a, Claim> {
        let claim = self.claim_now(&event.event().id, now);
        Box::pin(std::future::ready(claim))
    }

    fn finish<'a>(
        &'a self,
        event_id: &'a str,
        handled: bool,
        now: SystemTime,
    ) -> StoreFuture<'a, ()> {
        self.finish_now(event_id, handled, now);
        Box::pin(std::future::ready(Ok(())))
    }

    fn abandon(&self, event_id: &str) {
        self.finish_now(event_id, false, SystemTime::now());
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.lock();
        f.debug_struct("MemoryStore")
            .field("handled", &(inner.events.len() - inner.in_flight))
            .field("in_flight", &inner.in_flight)
            .field("capacity", &self.capacity)
            .field("max_age", &self.max_age)
            .field("replay_window", &self.replay_window)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn claim(store: &MemoryStore, id: &str, now: u64) -> String {
        match store.claim_now(id, at(now)) {
            Ok(claim) => format!("{claim:?}"),
            Err(e) => format!("{e:?}"),
        }
    }

    fn handle(store: &MemoryStore, id: &str, now: u64) {
        assert_eq!(claim(store, id, now), "Claimed", "{id}");
        store.finish_now(id, true, at(now));
    }

    #[test]
    fn claim_finish_and_duplicates() {
        let store = MemoryStore::new();
        assert_eq!(claim(&store, "a", 0), "Claimed");
        assert_eq!(claim(&store, "a", 0), "InFlight");
        store.finish_now("a", true, at(1));
        assert_eq!(claim(&store, "a", 2), "AlreadyHandled");
        assert_eq!(store.handled_len(), 1);
    }

    #[test]
    fn released_events_can_be_claimed_again_and_stray_finishes_do_nothing() {
        let store = MemoryStore::new();
        assert_eq!(claim(&store, "a", 0), "Claimed");
        store.finish_now("a", false, at(0));
        assert_eq!(claim(&store, "a", 1), "Claimed");
        store.finish_now("b", true, at(1));
        assert_eq!(claim(&store, "b", 1), "Claimed");
        assert_eq!(store.handled_len(), 0);
    }

    #[test]
    fn forgets_by_age() {
        let store = MemoryStore::with_bounds(10, Duration::from_secs(60));
        handle(&store, "a", 0);
        assert_eq!(claim(&store, "a", 60), "AlreadyHandled");
        assert_eq!(claim(&store, "a", 61), "Claimed");
        assert_eq!(store.handled_len(), 0);
    }

    #[test]
    fn when_full_forgets_only_what_is_outside_the_replay_window() {
        let store = MemoryStore::with_bounds(2, Duration::from_secs(24 * 3600))
            .replay_window(Duration::from_secs(900));
        handle(&store, "a", 0);
        handle(&store, "b", 100);
        // Full, and "a" is only 800 s old: refused, nothing forgotten.
        assert_eq!(claim(&store, "c", 800), "Full");
        assert_eq!(claim(&store, "a", 800), "AlreadyHandled");
        // At 901 s "a" may go, and only "a".
        assert_eq!(claim(&store, "c", 901), "Claimed");
        assert_eq!(claim(&store, "a", 901), "Full");
        assert_eq!(claim(&store, "b", 901), "AlreadyHandled");
        store.finish_now("c", true, at(901));
        assert_eq!(store.handled_len(), 2);
    }

    #[test]
    fn events_in_flight_count_against_the_capacity() {
        let store = MemoryStore::with_bounds(2, Duration::from_secs(3600));
        assert_eq!(claim(&store, "a", 0), "Claimed");
        assert_eq!(claim(&store, "b", 0), "Claimed");
        assert_eq!(claim(&store, "c", 0), "Full");
        store.finish_now("a", false, at(0));
        assert_eq!(claim(&store, "c", 0), "Claimed");
    }

    #[tokio::test]
    async fn waiters_learn_the_outcome() {
        let store = MemoryStore::new();
        for handled in [false, true] {
            let id = if handled { "h" } else { "r" };
            assert_eq!(claim(&store, id, 0), "Claimed");
            let waiters: Vec<InFlight> = (0..3)
                .map(|_| match store.claim_now(id, at(0)) {
                    Ok(Claim::InFlight(wait)) => wait,
                    other => panic!("expected in flight, got {other:?}"),
                })
                .collect();
            store.finish_now(id, handled, at(0));
            for wait in waiters {
                assert_eq!(wait.await, handled);
            }
        }
    }

    #[test]
    fn abandoning_releases_the_claim() {
        let store = MemoryStore::new();
        assert_eq!(claim(&store, "a", 0), "Claimed");
        store.abandon("a");
        assert_eq!(claim(&store, "a", 0), "Claimed");
    }

    /// The store against a model kept as plain lists, over random
    /// sequences of claims and finishes, with eviction by count and age.
    #[test]
    fn agrees_with_a_model() {
        use proptest::prelude::*;
        #[derive(Clone, Copy, PartialEq, Debug)]
        enum Model {
            InFlight,
            Handled(u64),
        }
        let ids = prop::sample::select(vec!["a", "b", "c", "d", "e"]);
        let step = (ids, any::<bool>(), any::<bool>(), 0u64..40);
        let config = ProptestConfig::with_cases(300);
        proptest!(config, |(steps in prop::collection::vec(step, 1..120))| {
            let (capacity, max_age, window) = (3usize, 60u64, 30u64);
            let store = MemoryStore::with_bounds(capacity, Duration::from_secs(max_age))
                .replay_window(Duration::from_secs(window));
            let mut model: Vec<(&str, Model)> = Vec::new();
            let mut now = 0;
            for (id, is_claim, handled, advance) in steps {
                now += advance;
                if is_claim {
                    model.retain(|(_, m)| !matches!(m, Model::Handled(t) if now - t > max_age));
                    let expected = match model.iter().find(|(i, _)| *i == id).map(|(_, m)| *m) {
                        Some(Model::Handled(_)) => "AlreadyHandled",
                        Some(Model::InFlight) => "InFlight",
                        None if model.len() < capacity => "Claimed",
                        None => {
                            // Handled events sit in the model in the order they were handled.
                            let oldest = model.iter().position(|(_, m)| matches!(m, Model::Handled(_)));
                            match oldest {
                                Some(i) if matches!(model[i].1, Model::Handled(t) if now - t > window) => {
                                    model.remove(i);
                                    "Claimed"
                                }
                                _ => "Full",
                            }
                        }
                    };
                    if expected == "Claimed" {
                        model.push((id, Model::InFlight));
                    }
                    prop_assert_eq!(claim(&store, id, now), expected, "claim {} at {}", id, now);
                } else {
                    store.finish_now(id, handled, at(now));
                    if let Some(i) = model.iter().position(|(i, m)| *i == id && *m == Model::InFlight) {
                        model.remove(i);
                        if handled {
                            model.push((id, Model::Handled(now)));
                        }
                    }
                }
                let remembered = model.iter().filter(|(_, m)| matches!(m, Model::Handled(_))).count();
                prop_assert_eq!(store.handled_len(), remembered);
            }
        });
    }
}
