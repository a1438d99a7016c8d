//! Reading a request body within its limit and the shared byte budget.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::Body;
use http_body_util::{BodyExt, Limited};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::SMALL_BODY;
use crate::Config;

/// The error type bodies are read with.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a body could not be read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BodyError {
    /// Over the limit, by `Content-Length` or by counting.
    TooLarge,
    /// The byte budget stayed spent for longer than the budget wait.
    NoBudget,
    /// The client stopped sending or the connection broke.
    Broken,
}

/// The declared `Content-Length`, when present and well-formed.
pub(crate) fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// The bytes all unverified bodies may hold together: one pool for small
/// bodies, one for the rest, counted in bytes.
#[derive(Debug)]
pub(crate) struct Budget {
    small: Arc<Semaphore>,
    large: Arc<Semaphore>,
    wait: Duration,
}

impl Budget {
    pub(crate) fn new(config: &Config) -> Self {
        let small = config.small_body_share.min(config.body_budget);
        // A body at the limit must fit in its pool, or it could never be read.
        let large = (config.body_budget - small).max(config.body_limit);
        Self {
            small: Arc::new(Semaphore::new(small.max(SMALL_BODY))),
            large: Arc::new(Semaphore::new(large)),
            wait: config.budget_wait,
        }
    }

    /// The bytes free in the two pools (small, large).
    #[cfg(test)]
    fn available(&self) -> (usize, usize) {
        (
            self.small.available_permits(),
            self.large.available_permits(),
        )
    }
}

/// Bytes taken from the budget; given back when dropped.
#[derive(Debug)]
pub(crate) struct Held {
    pool: Arc<Semaphore>,
    permit: Option<OwnedSemaphorePermit>,
    wait: Duration,
}

impl Held {
    fn new(budget: &Budget, declared: Option<u64>) -> Self {
        let small = declared.is_some_and(|len| len <= SMALL_BODY as u64);
        Self {
            pool: Arc::clone(if small { &budget.small } else { &budget.large }),
            permit: None,
            wait: budget.wait,
        }
    }

    fn bytes(&self) -> usize {
        self.permit
            .as_ref()
            .map_or(0, OwnedSemaphorePermit::num_permits)
    }

    /// Takes `more` bytes, waiting for them up to the budget wait.
    async fn take(&mut self, more: usize) -> Result<(), BodyError> {
        let more = u32::try_from(more).map_err(|_| BodyError::TooLarge)?;
        // The usual case first, without building a timer.
        let permit = match Arc::clone(&self.pool).try_acquire_many_owned(more) {
            Ok(permit) => permit,
            Err(_) => {
                let acquire = Arc::clone(&self.pool).acquire_many_owned(more);
                // The semaphore is never closed: a failure is a wait past
                // the deadline, a budget that stayed spent.
                let Ok(Ok(permit)) = tokio::time::timeout(self.wait, acquire).await else {
                    return Err(BodyError::NoBudget);
                };
                permit
            }
        };
        match &mut self.permit {
            Some(held) => held.merge(permit),
            none => *none = Some(permit),
        }
        Ok(())
    }
}

/// Reads the whole body, taking from the budget as bytes arrive.
///
/// The body is polled for its next frame only once the bytes read so far
/// are paid for, so when the budget is spent the connection is not read
/// from and the rest of the body waits in the kernel's buffers. A body that
/// arrives as one frame (the usual case for an event) is returned without
/// a copy; otherwise frames are copied into one buffer, grown by doubling
/// (never past `Content-Length` when there is one) and paid for as it
/// grows, so the memory a body holds is at most twice its length and
/// always within the budget.
pub(crate) async fn read<B>(
    body: B,
    limit: usize,
    declared: Option<u64>,
    budget: &Budget,
) -> Result<(Bytes, Held), BodyError>
where
    B: Body + Unpin,
    B::Data: Into<Bytes>,
    B::Error: Into<BoxError>,
{
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(BodyError::TooLarge);
    }
    let mut held = Held::new(budget, declared);
    let mut body = Limited::new(body, limit);
    let mut first: Option<Bytes> = None;
    let mut joined: Option<BytesMut> = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                BodyError::TooLarge
            } else {
                BodyError::Broken
            }
        })?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers carry nothing we use
        };
        let data: Bytes = data.into();
        let len = joined.as_ref().map_or(0, BytesMut::len) + first.as_ref().map_or(0, Bytes::len);
        let needed = len + data.len();
        if needed > held.bytes() {
            let room = match &joined {
                None if first.is_none() => needed,
                _ => needed.max(2 * held.bytes()).max(16 * 1024),
            };
            let room = declared
                .and_then(|d| usize::try_from(d).ok())
                .map_or(room, |d| room.min(d).max(needed))
                .min(limit);
            held.take(room - held.bytes()).await?;
        }
        match (&mut joined, first.take()) {
            (Some(buf), _) => buf.extend_from_slice(&data),
            (None, None) => first = Some(data),
            (None, Some(head)) => {
                let mut buf = BytesMut::with_capacity(held.bytes());
                buf.extend_from_slice(&head);
                buf.extend_from_slice(&data);
                joined = Some(buf);
            }
        }
    }
    let whole = match (joined, first) {
        (Some(buf), _) => buf.freeze(),
        (None, Some(one)) => one,
        (None, None) => Bytes::new(),
    };
    Ok((whole, held))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::convert::Infallible;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use http_body::Frame;
    use http_body_util::Full;

    /// A body that yields its chunks one frame at a time and counts how many
    /// were pulled.
    struct Chunks {
        chunks: VecDeque<Bytes>,
        pulled: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl Body for Chunks {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            let next = self.chunks.pop_front();
            if next.is_some() {
                self.pulled
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            Poll::Ready(next.map(|c| Ok(Frame::data(c))))
        }
    }

    fn chunks(n: usize, size: usize) -> (Chunks, Arc<std::sync::atomic::AtomicUsize>) {
        let pulled = Arc::default();
        let body = Chunks {
            chunks: (0..n).map(|i| Bytes::from(vec![i as u8; size])).collect(),
            pulled: Arc::clone(&pulled),
        };
        (body, pulled)
    }

    fn budget(total: usize, small: usize) -> Budget {
        Budget::new(
            &Config::default()
                .body_budget(total)
                .small_body_share(small)
                .body_limit(1024)
                .budget_wait(Duration::from_millis(50)),
        )
    }

    #[tokio::test]
    async fn a_single_frame_is_not_copied_and_pays_its_length() {
        let data = Bytes::from_static(b"{\"id\":\"x\"}");
        let budget = budget(1 << 20, 1 << 18);
        let (out, held) = read(Full::new(data.clone()), 100, Some(10), &budget)
            .await
            .expect("read");
        assert_eq!(out.as_ptr(), data.as_ptr());
        assert_eq!(held.bytes(), 10);
        assert_eq!(budget.available(), ((1 << 18) - 10, 3 << 18));
        drop(held);
        assert_eq!(budget.available(), (1 << 18, 3 << 18));
    }

    #[tokio::test]
    async fn frames_are_joined_in_order_within_twice_their_length() {
        for declared in [None, Some(5000)] {
            let budget = budget(1 << 20, 1 << 18);
            let (body, _) = chunks(5, 1000);
            let (out, held) = read(body, 1 << 20, declared, &budget).await.expect("read");
            let expected: Vec<u8> = (0..5u8).flat_map(|i| [i; 1000]).collect();
            assert_eq!(&out[..], &expected[..]);
            assert!(held.bytes() >= 5000, "{declared:?}: {}", held.bytes());
            if declared.is_some() {
                // Never past the declared length.
                assert_eq!(held.bytes(), 5000);
            }
        }
        // Many frames: the buffer grows by doubling, paid as it grows.
        let budget = budget(1 << 22, 1 << 18);
        let (body, _) = chunks(300, 1000);
        let (out, held) = read(body, 1 << 20, None, &budget).await.expect("read");
        assert_eq!(out.len(), 300_000);
        assert!(
            held.bytes() >= 300_000 && held.bytes() <= 600_000,
            "{}",
            held.bytes()
        );
    }

    #[tokio::test]
    async fn declared_length_over_limit_is_refused_before_reading() {
        let (body, pulled) = chunks(3, 4);
        let out = read(body, 11, Some(12), &budget(1 << 20, 1 << 18)).await;
        assert_eq!(out.err(), Some(BodyError::TooLarge));
        assert_eq!(pulled.load(std::sync::atomic::Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_body_without_length_stops_at_the_limit() {
        let (body, pulled) = chunks(1000, 1024);
        let out = read(body, 10 * 1024, None, &budget(1 << 22, 1 << 18)).await;
        assert_eq!(out.err(), Some(BodyError::TooLarge));
        // Stopped on the 11th chunk, the first past the limit.
        assert_eq!(pulled.load(std::sync::atomic::Ordering::SeqCst), 11);
    }

    #[tokio::test(start_paused = true)]
    async fn a_spent_budget_stops_reading_then_refuses() {
        let budget = budget(128 * 1024, 64 * 1024);
        // A large body takes the whole large pool...
        let (body, _) = chunks(1, 64 * 1024);
        let (_, hog) = read(body, 1 << 20, None, &budget).await.expect("read");
        assert_eq!(budget.available(), (64 * 1024, 0));
        // ...so the next large one cannot read: its first frame is pulled
        // and then waits for room, and none comes.
        let (body, pulled) = chunks(2, 1024);
        let out = read(body, 1 << 20, None, &budget).await;
        assert_eq!(out.err(), Some(BodyError::NoBudget));
        assert_eq!(pulled.load(std::sync::atomic::Ordering::SeqCst), 1);
        // A small body still reads, from its own share.
        let (body, _) = chunks(2, 1024);
        assert!(read(body, 1 << 20, Some(2048), &budget).await.is_ok());
        // Once the hog is gone, room is back.
        drop(hog);
        let (body, _) = chunks(2, 1024);
        assert!(read(body, 1 << 20, None, &budget).await.is_ok());
    }

    #[test]
    fn content_length_parsing() {
        let mut h = HeaderMap::new();
        assert_eq!(content_length(&h), None);
        h.insert(
            http::header::CONTENT_LENGTH,
            http::HeaderValue::from_static("42"),
        );
        assert_eq!(content_length(&h), Some(42));
        h.insert(
            http::header::CONTENT_LENGTH,
            http::HeaderValue::from_static("x"),
        );
        assert_eq!(content_length(&h), None);
    }
}
