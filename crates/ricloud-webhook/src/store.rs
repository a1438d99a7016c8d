//! Deduplication of redelivered events.

use std::collections::hash_map::Entry as MapEntry;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::{poll_fn, Future};
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where the receiver records which events were handled, so a redelivery is
/// acknowledged without running handlers again.
///
/// The receiver calls [`claim`](DeliveryStore::claim) once an event is
/// verified and, for a [`Claim::Claimed`] event, exactly one
/// [`finish`](DeliveryStore::finish) when its handlers are done, even when
/// the delivery is cancelled (a timeout dropping it). Both run on the
/// request path: they must not block for long.
pub trait DeliveryStore: Send + Sync + 'static {
    /// Takes responsibility for handling `event_id`, or says why not.
    fn claim(&self, event_id: &str, now: SystemTime) -> Claim;

    /// Ends a claim: `handled` true records the event as handled for good;
    /// false releases it so a redelivery runs the handlers again.
    fn finish(&self, event_id: &str, handled: bool, now: SystemTime);
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
}

impl fmt::Debug for Claim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Claimed => "Claimed",
            Self::AlreadyHandled => "AlreadyHandled",
            Self::InFlight(_) => "InFlight",
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

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<bool> {
        self.0.as_mut().poll(cx)
    }
}

impl fmt::Debug for InFlight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InFlight")
    }
}

/// A one-shot broadcast of how an in-flight delivery ended.
#[derive(Default)]
struct Signal {
    state: Mutex<SignalState>,
}

#[derive(Default)]
struct SignalState {
    done: Option<bool>,
    wakers: Vec<Waker>,
}

impl Signal {
    fn set(&self, handled: bool) {
        let wakers = {
            let mut state = lock(&self.state);
            state.done = Some(handled);
            std::mem::take(&mut state.wakers)
        };
        wakers.into_iter().for_each(Waker::wake);
    }

    fn wait(self: Arc<Self>) -> impl Future<Output = bool> + Send {
        poll_fn(move |cx| {
            let mut state = lock(&self.state);
            if let Some(done) = state.done {
                return Poll::Ready(done);
            }
            if !state.wakers.iter().any(|w| w.will_wake(cx.waker())) {
                state.wakers.push(cx.waker().clone());
            }
            Poll::Pending
        })
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The state stays consistent across a panic (every update is one
    // assignment), so a poisoned lock is still usable.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `time` in nanoseconds since the Unix epoch: eight bytes a record instead
/// of a `SystemTime`'s sixteen. Times before 1970 count as 1970, times
/// after 2554 as 2554.
fn nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |since| {
        u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
    })
}

/// A fast hash for event ids, eight bytes at a time.
///
/// Not resistant to chosen keys, and it need not be: the store only ever
/// sees the ids of verified events, which only the holder of the secret can
/// choose. (std's SipHash cost about 1.4k instructions per delivery here,
/// for the four lookups a claim and its finish make.)
#[derive(Default)]
struct IdHasher(u64);

impl IdHasher {
    const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;

    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(Self::K);
    }
}

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        let mut word = [0u8; 8];
        word[..rest.len()].copy_from_slice(rest);
        self.add(u64::from_le_bytes(word) ^ (rest.len() as u64) << 59);
    }

    fn write_u8(&mut self, byte: u8) {
        self.add(u64::from(byte));
    }

    fn write_u64(&mut self, word: u64) {
        self.add(word);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// An event id as the store keeps it.
///
/// The API's ids are UUIDs in their canonical lowercase form: those are
/// kept as their 128 bits, inline in the queue of handled events and in the
/// map of those in flight, so a delivery costs no allocation for its id
/// and the oldest id needs no pointer to be followed to be forgotten. Any
/// other text is kept as it is, shared. The two forms never stand for
/// the same id: only the canonical lowercase text of a UUID becomes
/// `Uuid`, and it is the only text that gives those bits.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Key {
    /// The high and low halves: two `u64` rather than a `u128`, whose
    /// 16-byte alignment would make every record larger.
    Uuid([u64; 2]),
    Text(Arc<str>),
}

impl Key {
    fn of(id: &str) -> Self {
        canonical_uuid(id).map_or_else(
            || Self::Text(Arc::from(id)),
            |bits| Self::Uuid([(bits >> 64) as u64, bits as u64]),
        )
    }
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // The two forms never stand for the same id (above), so a UUID's
        // words and a text's bytes may hash alike without harm.
        match self {
            Self::Uuid([high, low]) => {
                state.write_u64(*high);
                state.write_u64(*low);
            }
            Self::Text(text) => state.write(text.as_bytes()),
        }
    }
}

/// The hash of `key` kept in its index slot: the high half of its
/// [`IdHasher`] hash (the better mixed one), never all ones (see [`EMPTY`]).
fn slot_hash(key: &Key) -> u32 {
    let mut hasher = IdHasher::default();
    key.hash(&mut hasher);
    let high = (hasher.finish() >> 32) as u32;
    high.min(u32::MAX - 1)
}

/// The bits of `id` when it is a UUID in canonical lowercase form
/// (`8-4-4-4-12` hexadecimal digits), else `None`.
///
/// It runs twice per delivery (claim and finish), so it reads eight digits
/// at a time: four words of eight digits (the groups of four paired up),
/// each checked and packed by [`hex_word`].
fn canonical_uuid(id: &str) -> Option<u128> {
    let b: &[u8; 36] = id.as_bytes().try_into().ok()?;
    if b[8] != b'-' || b[13] != b'-' || b[18] != b'-' || b[23] != b'-' {
        return None;
    }
    let word = |at: usize| u64::from(u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]));
    let high = u64::from(hex_word(word(0) | word(4) << 32)?) << 32
        | u64::from(hex_word(word(9) | word(14) << 32)?);
    let low = u64::from(hex_word(word(19) | word(24) << 32)?) << 32
        | u64::from(hex_word(word(28) | word(32) << 32)?);
    Some(u128::from(high) << 64 | u128::from(low))
}

/// Eight lowercase hexadecimal digits, the first in the lowest byte of
/// `word`, as the number they write; `None` if any byte is not one.
fn hex_word(word: u64) -> Option<u32> {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    const fn each(byte: u8) -> u64 {
        u64::from_le_bytes([byte; 8])
    }
    if word & HIGH != 0 {
        return None;
    }
    // With every byte below 0x80, adding `0x80 - n` to each byte sets its
    // high bit exactly when the byte is at least `n`, and never carries
    // into the next byte.
    let at_least = |n: u8| word + each(0x80 - n);
    let digit = at_least(b'0') & !at_least(b'9' + 1) & HIGH;
    let letter = at_least(b'a') & !at_least(b'f' + 1) & HIGH;
    if digit | letter != HIGH {
        return None;
    }
    // Each byte's value: its low four bits, plus 9 for `a` to `f`.
    let v = (word & each(0x0f)) + (letter >> 7) * 9;
    // Pack the nibbles, first digit highest: pairs, then fours, then eight.
    let v = ((v << 4) + (v >> 8)) & 0x00ff_00ff_00ff_00ff;
    let v = ((v << 8) + (v >> 16)) & 0x0000_ffff_0000_ffff;
    u32::try_from(((v << 16) + (v >> 32)) & 0xffff_ffff).ok()
}

/// A free slot of [`Handled::slots`]; no used slot is all ones, since no
/// [`slot_hash`] is.
const EMPTY: u64 = u64::MAX;

/// The records of handled events: a queue in the order they were handled,
/// which is also the order they are forgotten in, and an index from id to
/// record.
///
/// The index is a table of eight-byte slots (open addressing, linear
/// probing), each holding an id's [`slot_hash`] and its record's number in
/// the queue. A delivery touches the queue only at its two ends, and two
/// places of the index: its id's (looked up when claimed, written when
/// handled) and the forgotten record's. A lookup reads a record only when
/// a slot's hash matches, which for an id not handled yet happens once in
/// four billion probes, so the usual delivery reads no record at all.
/// (With `std`'s map, each record sat in a 32-byte bucket of a table of
/// its own: at 100,000 ids, two random reads per delivery in a 4 MB table
/// besides the queue, missing the caches and the TLB.)
#[derive(Default)]
struct Handled {
    /// The records, oldest first: the id and when it was handled (see
    /// [`nanos`]). The record at `queue[i]` has the number `front + i`.
    queue: VecDeque<(Key, u64)>,
    /// The number of the record at the front of the queue.
    front: u64,
    /// [`EMPTY`], or a record's number (its low 32 bits) in the high half
    /// and its id's hash in the low half. The length is zero or a power of
    /// two, and at most three quarters of the slots are used, so a probe
    /// always ends at a free one.
    slots: Vec<u64>,
}

impl Handled {
    fn len(&self) -> usize {
        self.queue.len()
    }

    /// When the oldest record was handled.
    fn oldest(&self) -> Option<u64> {
        self.queue.front().map(|(_, at)| *at)
    }

    /// The record numbered `number` (low 32 bits: the queue never holds
    /// more than 2³² records, see [`MemoryStore::with_bounds`]).
    fn record(&self, number: u32) -> Option<&(Key, u64)> {
        let offset = number.wrapping_sub(self.front as u32);
        self.queue.get(offset as usize)
    }

    /// The slot with `hash` whose record number `is_it` accepts.
    fn find(&self, hash: u32, is_it: impl Fn(u32) -> bool) -> Option<usize> {
        let mask = self.slots.len().checked_sub(1)?;
        let mut i = hash as usize & mask;
        loop {
            let slot = self.slots[i];
            if slot == EMPTY {
                return None;
            }
            if slot as u32 == hash && is_it((slot >> 32) as u32) {
                return Some(i);
            }
            i = (i + 1) & mask;
        }
    }

    fn contains(&self, key: &Key) -> bool {
        self.find(slot_hash(key), |number| {
            self.record(number).is_some_and(|(other, _)| other == key)
        })
        .is_some()
    }

    /// Records `key` (not recorded yet) as handled at `at`.
    fn push(&mut self, key: Key, at: u64) {
        if (self.queue.len() + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        let number = self.front.wrapping_add(self.queue.len() as u64) as u32;
        place(&mut self.slots, slot_hash(&key), number);
        self.queue.push_back((key, at));
    }

    /// Doubles the index and places every record again.
    fn grow(&mut self) {
        self.slots = vec![EMPTY; (self.slots.len() * 2).max(8)];
        let mut number = self.front as u32;
        for (key, _) in &self.queue {
            place(&mut self.slots, slot_hash(key), number);
            number = number.wrapping_add(1);
        }
    }

    /// Forgets the oldest record.
    fn pop(&mut self) {
        let Some((key, _)) = self.queue.pop_front() else {
            return;
        };
        let number = self.front as u32;
        self.front = self.front.wrapping_add(1);
        if let Some(slot) = self.find(slot_hash(&key), |n| n == number) {
            self.free(slot);
        }
    }

    /// Empties slot `hole`, moving back the later slots of its run that
    /// may then no longer be found (no tombstones: a table that forgets a
    /// record per delivery would fill up with them).
    fn free(&mut self, mut hole: usize) {
        let mask = self.slots.len() - 1;
        let mut i = hole;
        loop {
            i = (i + 1) & mask;
            let slot = self.slots[i];
            if slot == EMPTY {
                break;
            }
            // The entry at `i` is found by probing from its home to `i`;
            // it moves to the hole when the hole is on that way.
            let home = slot as u32 as usize & mask;
            if i.wrapping_sub(home) & mask >= i.wrapping_sub(hole) & mask {
                self.slots[hole] = slot;
                hole = i;
            }
        }
        self.slots[hole] = EMPTY;
    }
}

/// Puts the entry for `hash` and record `number` in the first free slot
/// from its home.
fn place(slots: &mut [u64], hash: u32, number: u32) {
    let mask = slots.len() - 1;
    let mut i = hash as usize & mask;
    while slots[i] != EMPTY {
        i = (i + 1) & mask;
    }
    slots[i] = u64::from(number) << 32 | u64::from(hash);
}

#[derive(Default)]
struct Inner {
    /// Events being handled, as many as deliveries run at once; the signal
    /// exists once a second delivery waits on one.
    in_flight: HashMap<Key, Option<Arc<Signal>>, BuildHasherDefault<IdHasher>>,
    /// Events handled.
    handled: Handled,
}

/// The default [`DeliveryStore`]: in memory, bounded in count and age.
///
/// It remembers up to `capacity` handled events for up to `max_age`
/// (defaults: 100 000 events, 24 hours: the API retries over "a few hours").
/// In-flight events are not counted: they are bounded by the number of
/// concurrent deliveries. Memory is lost on restart and not shared between
/// processes; implement [`DeliveryStore`] over a shared database for that.
///
/// Ids that are UUIDs in canonical lowercase form, as the API sends them,
/// are kept as their 128 bits, without an allocation of their own. A
/// remembered event takes 32 bytes in a queue (oldest first, the order
/// they are forgotten in) and a slot of 8 bytes in an index of the queue,
/// a quarter to five eighths of whose slots are free: about 6 MB when full
/// at the default bound. Other ids are kept as text.
pub struct MemoryStore {
    capacity: usize,
    max_age: Duration,
    inner: Mutex<Inner>,
}

impl MemoryStore {
    /// Default number of handled events remembered.
    pub const DEFAULT_CAPACITY: usize = 100_000;
    /// Default time a handled event is remembered.
    pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);

    /// A store with the default bounds.
    pub fn new() -> Self {
        Self::with_bounds(Self::DEFAULT_CAPACITY, Self::DEFAULT_MAX_AGE)
    }

    /// A store remembering at most `capacity` handled events for `max_age`.
    ///
    /// A `capacity` over 2³² − 1 counts as 2³² − 1 (some 170 GB of records).
    pub fn with_bounds(capacity: usize, max_age: Duration) -> Self {
        Self {
            capacity: capacity.min(u32::MAX as usize),
            max_age,
            inner: Mutex::default(),
        }
    }

    /// Number of handled events remembered now.
    pub fn handled_len(&self) -> usize {
        lock(&self.inner).handled.len()
    }

    /// Forgets the records over the count or older than the age.
    fn evict(&self, handled: &mut Handled, now: u64) {
        while let Some(at) = handled.oldest() {
            let expired = now
                .checked_sub(at)
                .is_some_and(|age| u128::from(age) > self.max_age.as_nanos());
            if handled.len() <= self.capacity && !expired {
                break;
            }
            handled.pop();
        }
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("capacity", &self.capacity)
            .field("max_age", &self.max_age)
            .field("handled", &self.handled_len())
            .finish()
    }
}

impl DeliveryStore for MemoryStore {
    fn claim(&self, event_id: &str, now: SystemTime) -> Claim {
        let now = nanos(now);
        let key = Key::of(event_id);
        let mut guard = lock(&self.inner);
        let inner = &mut *guard;
        self.evict(&mut inner.handled, now);
        if inner.handled.contains(&key) {
            return Claim::AlreadyHandled;
        }
        match inner.in_flight.entry(key) {
            MapEntry::Occupied(mut running) => {
                let signal = running.get_mut().get_or_insert_with(Arc::default);
                Claim::InFlight(InFlight::new(Arc::clone(signal).wait()))
            }
            MapEntry::Vacant(slot) => {
                slot.insert(None);
                Claim::Claimed
            }
        }
    }

    fn finish(&self, event_id: &str, handled: bool, now: SystemTime) {
        let now = nanos(now);
        let key = Key::of(event_id);
        let signal = {
            let mut guard = lock(&self.inner);
            let inner = &mut *guard;
            // Only a claim in flight ends: a stray `finish` for an event
            // handled already must not erase its record. The map's own key
            // goes to the queue (a text id's `Arc` is not copied).
            let Some((key, signal)) = inner.in_flight.remove_entry(&key) else {
                return;
            };
            if handled {
                inner.handled.push(key, now);
                self.evict(&mut inner.handled, now);
            }
            signal
        };
        if let Some(signal) = signal {
            signal.set(handled);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn handled_events_are_remembered() {
        let store = MemoryStore::new();
        assert!(matches!(store.claim("a", at(0)), Claim::Claimed));
        store.finish("a", true, at(0));
        assert!(matches!(store.claim("a", at(1)), Claim::AlreadyHandled));
    }

    #[test]
    fn a_stray_finish_keeps_the_handled_record() {
        let store = MemoryStore::new();
        assert!(matches!(store.claim("a", at(0)), Claim::Claimed));
        store.finish("a", true, at(0));
        // A second finish (a wrapper store's bug) for an event no longer in
        // flight, and one for an event never claimed, change nothing.
        store.finish("a", false, at(1));
        store.finish("b", true, at(1));
        assert!(matches!(store.claim("a", at(2)), Claim::AlreadyHandled));
        assert!(matches!(store.claim("b", at(2)), Claim::Claimed));
        assert_eq!(store.handled_len(), 1);
    }

    #[test]
    fn released_events_can_be_claimed_again() {
        let store = MemoryStore::new();
        assert!(matches!(store.claim("a", at(0)), Claim::Claimed));
        store.finish("a", false, at(0));
        assert!(matches!(store.claim("a", at(1)), Claim::Claimed));
        assert_eq!(store.handled_len(), 0);
    }

    #[test]
    fn a_handled_id_moves_from_the_in_flight_map_to_the_queue() {
        let store = MemoryStore::new();
        assert!(matches!(store.claim("evt_1", at(0)), Claim::Claimed));
        assert_eq!(lock(&store.inner).in_flight.len(), 1);
        store.finish("evt_1", true, at(0));
        let inner = lock(&store.inner);
        assert!(inner.in_flight.is_empty());
        // The in-flight map's key itself, not a copy: the only reference.
        let Some((Key::Text(text), _)) = inner.handled.queue.front() else {
            panic!("a text record");
        };
        assert_eq!(&**text, "evt_1");
        assert_eq!(Arc::strong_count(text), 1);
        let used = inner.handled.slots.iter().filter(|s| **s != EMPTY).count();
        assert_eq!(used, 1);
    }

    /// Two ids whose index hashes are equal: found by brute force among
    /// numbered ids (a 32-bit hash repeats within a few hundred thousand).
    fn ids_with_one_hash() -> (String, String) {
        let mut seen = HashMap::new();
        for i in 0u32.. {
            let id = format!("evt_{i}");
            if let Some(other) = seen.insert(slot_hash(&Key::of(&id)), id.clone()) {
                return (other, id);
            }
        }
        unreachable!("a 32-bit hash repeats")
    }

    #[test]
    fn ids_with_the_same_hash_are_told_apart() {
        let (a, b) = ids_with_one_hash();
        assert_ne!(a, b);
        assert_eq!(slot_hash(&Key::of(&a)), slot_hash(&Key::of(&b)));
        let store = MemoryStore::with_bounds(1, Duration::from_secs(3600));
        assert!(matches!(store.claim(&a, at(0)), Claim::Claimed));
        store.finish(&a, true, at(0));
        // `a`'s slot matches `b`'s hash: its record says it is not `b`.
        assert!(matches!(store.claim(&b, at(0)), Claim::Claimed));
        assert!(matches!(store.claim(&a, at(0)), Claim::AlreadyHandled));
        // Handling `b` forgets `a` (capacity 1), and only `a`.
        store.finish(&b, true, at(0));
        assert!(matches!(store.claim(&b, at(0)), Claim::AlreadyHandled));
        assert!(matches!(store.claim(&a, at(0)), Claim::Claimed));
    }

    proptest::proptest! {
        /// The index against the queue, over random runs of records handled
        /// and forgotten (small tables, so runs of used slots collide and
        /// wrap around the end; record numbers that wrap past 2³²): after
        /// every step each record is found at its own number, nothing
        /// forgotten is found, and as many slots are used as records kept.
        #[test]
        fn the_index_finds_every_record_and_nothing_else(
            steps in proptest::collection::vec(0u8..3, 1..400),
            front in proptest::prop_oneof![proptest::strategy::Just(0u64), proptest::strategy::Just(u64::from(u32::MAX) - 20)],
        ) {
            use proptest::prelude::*;
            let mut handled = Handled { front, ..Handled::default() };
            let (mut next, mut forgotten) = (0u32, Vec::new());
            for step in steps {
                if step == 0 {
                    if let Some((key, _)) = handled.queue.front().cloned() {
                        handled.pop();
                        forgotten.push(key);
                    }
                } else {
                    let key = Key::of(&format!("{next:08x}-0000-4000-8000-000000000000"));
                    next += 1;
                    handled.push(key, 0);
                }
                let used = handled.slots.iter().filter(|s| **s != EMPTY).count();
                prop_assert_eq!(used, handled.len());
                prop_assert!(handled.len() * 4 <= handled.slots.len() * 3);
                for (i, (key, _)) in handled.queue.iter().enumerate() {
                    let number = handled.front.wrapping_add(i as u64) as u32;
                    prop_assert!(handled.find(slot_hash(key), |n| n == number).is_some());
                    prop_assert!(handled.contains(key));
                }
                for key in &forgotten {
                    prop_assert!(!handled.contains(key));
                }
            }
        }
    }

    #[test]
    fn bounded_by_capacity() {
        let store = MemoryStore::with_bounds(2, Duration::from_secs(3600));
        for id in ["a", "b", "c"] {
            assert!(matches!(store.claim(id, at(0)), Claim::Claimed));
            store.finish(id, true, at(0));
        }
        assert_eq!(store.handled_len(), 2);
        // "a" was evicted first.
        assert!(matches!(store.claim("a", at(0)), Claim::Claimed));
        assert!(matches!(store.claim("c", at(0)), Claim::AlreadyHandled));
    }

    #[test]
    fn bounded_by_age() {
        let store = MemoryStore::with_bounds(10, Duration::from_secs(60));
        assert!(matches!(store.claim("a", at(0)), Claim::Claimed));
        store.finish("a", true, at(0));
        assert!(matches!(store.claim("a", at(60)), Claim::AlreadyHandled));
        assert!(matches!(store.claim("a", at(61)), Claim::Claimed));
        assert_eq!(store.handled_len(), 0);
    }

    #[test]
    fn id_hash_tells_ids_apart() {
        use std::hash::BuildHasher;
        let hash = |s: &str| BuildHasherDefault::<IdHasher>::default().hash_one(s);
        let ids = [
            "",
            "a",
            "b",
            "ab",
            "ba",
            "a\0",
            "abcdefgh",
            "abcdefgh\0",
            "abcdefghi",
            "d921bf95-cc9f-4851-b6ab-9f1ab79db4df",
            "d921bf95-cc9f-4851-b6ab-9f1ab79db4de",
        ];
        let mut seen = std::collections::HashSet::new();
        for id in ids {
            assert!(seen.insert(hash(id)), "{id:?} collides");
            assert_eq!(hash(id), hash(id));
        }
        // Many similar ids spread over the map's buckets.
        let store = MemoryStore::with_bounds(10_000, Duration::from_secs(60));
        for i in 0..10_000 {
            let id = format!("d921bf95-cc9f-4851-b6ab-{i:012}");
            assert!(matches!(store.claim(&id, at(0)), Claim::Claimed));
            store.finish(&id, true, at(0));
        }
        assert_eq!(store.handled_len(), 10_000);
        assert!(matches!(
            store.claim("d921bf95-cc9f-4851-b6ab-000000000042", at(1)),
            Claim::AlreadyHandled
        ));
    }

    #[test]
    fn only_canonical_lowercase_uuids_are_kept_as_bits() {
        let id = "d921bf95-cc9f-4851-b6ab-9f1ab79db4df";
        let bits = u128::from_str_radix(&id.replace('-', ""), 16).expect("hex");
        assert_eq!(canonical_uuid(id), Some(bits));
        assert_eq!(
            canonical_uuid("00000000-0000-0000-0000-000000000000"),
            Some(0)
        );
        assert_eq!(
            canonical_uuid("ffffffff-ffff-ffff-ffff-ffffffffffff"),
            Some(u128::MAX)
        );
        for other in [
            "D921BF95-CC9F-4851-B6AB-9F1AB79DB4DF",
            "d921bf95-cc9f-4851-b6ab-9f1ab79db4dF",
            "d921bf95cc9f-4851-b6ab-9f1ab79db4df-",
            "d921bf95-cc9f-4851-b6ab-9f1ab79db4d",
            "d921bf95-cc9f-4851-b6ab-9f1ab79db4dff",
            "d921bf95-cc9f-4851-b6ab-9f1ab79db4-f",
            "d921bf95-cc9f-4851-b6ab-9f1ab79db4dg",
            "d921bf95+cc9f-4851-b6ab-9f1ab79db4df",
            "{921bf95-cc9f-4851-b6ab-9f1ab79db4df",
            "",
            "a",
        ] {
            assert_eq!(canonical_uuid(other), None, "{other}");
            assert_eq!(Key::of(other), Key::Text(Arc::from(other)));
        }
        assert_eq!(
            Key::of(id),
            Key::Uuid([0xd921_bf95_cc9f_4851, 0xb6ab_9f1a_b79d_b4df])
        );
        // A UUID id's record in the queue.
        assert_eq!(std::mem::size_of::<(Key, u64)>(), 32);
    }

    proptest::proptest! {
        /// Every UUID's canonical text gives its bits back, and any text of
        /// 36 bytes from digits, both cases of `a` to `g` and dashes gives
        /// bits exactly when a plain reading says it is canonical.
        #[test]
        fn uuid_reading_agrees_with_a_plain_one(bits: u128, text in "[0-9a-gA-G-]{36}") {
            let hex = format!("{bits:032x}");
            let canonical = format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..]);
            proptest::prop_assert_eq!(canonical_uuid(&canonical), Some(bits));
            let dashes_in_place = text.char_indices().all(|(i, c)| (c == '-') == matches!(i, 8 | 13 | 18 | 23));
            let lowercase_hex = text.chars().all(|c| c == '-' || matches!(c, '0'..='9' | 'a'..='f'));
            let plain = (dashes_in_place && lowercase_hex)
                .then(|| u128::from_str_radix(&text.replace('-', ""), 16).ok())
                .flatten();
            proptest::prop_assert_eq!(canonical_uuid(&text), plain);
        }

        /// Eight bytes of any value, and eight digits with now and then a
        /// byte just outside the ranges, read as `from_str_radix` would
        /// (lowercase only).
        #[test]
        fn hex_words_agree_with_a_plain_reading(
            any: [u8; 8],
            edges in proptest::collection::vec(proptest::prop_oneof![
                8 => proptest::sample::select(b"0123456789abcdef".to_vec()),
                1 => proptest::sample::select(b"/:`g@AFG \x7f\x80\xb0\xe1".to_vec()),
            ], 8),
        ) {
            for bytes in [any, <[u8; 8]>::try_from(edges.as_slice()).expect("eight")] {
                let plain = bytes
                    .iter()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
                    .then(|| u32::from_str_radix(std::str::from_utf8(&bytes).ok()?, 16).ok())
                    .flatten();
                proptest::prop_assert_eq!(hex_word(u64::from_le_bytes(bytes)), plain, "{:?}", bytes);
            }
        }
    }

    #[test]
    fn a_uuid_in_capitals_is_another_event() {
        let store = MemoryStore::new();
        let lower = "d921bf95-cc9f-4851-b6ab-9f1ab79db4df";
        let upper = lower.to_ascii_uppercase();
        assert!(matches!(store.claim(lower, at(0)), Claim::Claimed));
        store.finish(lower, true, at(0));
        assert!(matches!(store.claim(&upper, at(0)), Claim::Claimed));
        store.finish(&upper, true, at(0));
        assert!(matches!(store.claim(lower, at(1)), Claim::AlreadyHandled));
        assert!(matches!(store.claim(&upper, at(1)), Claim::AlreadyHandled));
        assert_eq!(store.handled_len(), 2);
    }

    /// The store against a model that keeps ids as plain strings, over
    /// random sequences of claims and finishes of UUID-shaped ids (in both
    /// cases), other text, releases, stray finishes, eviction by count and
    /// by age: every answer and the number remembered agree.
    #[test]
    fn agrees_with_a_model_keyed_by_text() {
        use proptest::prelude::*;
        use std::collections::HashMap as Map;

        #[derive(Clone, Copy, PartialEq, Debug)]
        enum Model {
            InFlight,
            Handled(u64),
        }
        let ids = prop::sample::select(vec![
            "d921bf95-cc9f-4851-b6ab-9f1ab79db4df".to_owned(),
            "D921BF95-CC9F-4851-B6AB-9F1AB79DB4DF".to_owned(),
            "00000000-0000-4000-8000-000000000001".to_owned(),
            "00000000-0000-4000-8000-000000000002".to_owned(),
            "00000000-0000-4000-8000-00000000000a".to_owned(),
            "00000000-0000-4000-8000-00000000000A".to_owned(),
            "a".to_owned(),
            "b".to_owned(),
            "evt_1".to_owned(),
        ]);
        // (id, claim or finish, handled, seconds to advance)
        let step = (ids, any::<bool>(), any::<bool>(), 0u64..40);
        let config = ProptestConfig::with_cases(300);
        proptest!(config, |(steps in prop::collection::vec(step, 1..120))| {
            let (capacity, max_age) = (3, 60);
            let store = MemoryStore::with_bounds(capacity, Duration::from_secs(max_age));
            let mut map: Map<String, Model> = Map::new();
            let mut queue: VecDeque<(String, u64)> = VecDeque::new();
            let mut now = 0;
            let evict = |map: &mut Map<String, Model>, queue: &mut VecDeque<(String, u64)>, now: u64| {
                while let Some((id, t)) = queue.front().cloned() {
                    if queue.len() <= capacity && now.saturating_sub(t) <= max_age {
                        break;
                    }
                    if map.get(&id) == Some(&Model::Handled(t)) {
                        map.remove(&id);
                    }
                    queue.pop_front();
                }
            };
            for (id, is_claim, handled, advance) in steps {
                now += advance;
                if is_claim {
                    evict(&mut map, &mut queue, now);
                    let expected = match map.get(&id) {
                        None => {
                            map.insert(id.clone(), Model::InFlight);
                            "Claimed"
                        }
                        Some(Model::InFlight) => "InFlight",
                        Some(Model::Handled(_)) => "AlreadyHandled",
                    };
                    let got = format!("{:?}", store.claim(&id, at(now)));
                    prop_assert_eq!(got.as_str(), expected, "claim {} at {}", id, now);
                } else {
                    store.finish(&id, handled, at(now));
                    if map.get(&id) == Some(&Model::InFlight) {
                        if handled {
                            map.insert(id.clone(), Model::Handled(now));
                            queue.push_back((id.clone(), now));
                            evict(&mut map, &mut queue, now);
                        } else {
                            map.remove(&id);
                        }
                    }
                }
                prop_assert_eq!(store.handled_len(), queue.len());
            }
        });
    }

    #[test]
    fn in_flight_waiters_learn_the_outcome() {
        let store = MemoryStore::new();
        assert!(matches!(store.claim("a", at(0)), Claim::Claimed));
        let Claim::InFlight(wait) = store.claim("a", at(0)) else {
            panic!("expected in-flight");
        };
        store.finish("a", false, at(0));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        assert!(!rt.block_on(wait));
    }
}
