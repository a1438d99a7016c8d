//! Reading a request body without ever holding more than the limit.

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::Body;
use http_body_util::BodyExt;
use ricloud_webhook::RawBody;

/// Why a body could not be read.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// Over the limit, by `Content-Length` or by counting.
    TooLarge,
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

/// The largest piece a body is kept in once it arrives in more than one
/// frame.
///
/// Pieces of one size are what the allocator reuses best: a refused 5 MiB
/// upload leaves 80 of them behind for the next one, where a single 5 MiB
/// buffer per body left holes that the next body did not fit (glibc kept
/// about 55 MiB more under 100 concurrent uploads). Under glibc's default
/// mmap threshold (128 KiB), so a piece is never a mapping of its own.
pub(crate) const PIECE: usize = 64 * 1024;

/// Reads the whole body, refusing it as soon as it passes `limit` bytes.
///
/// A body that arrives as one frame (the usual case for an event) is
/// returned without a copy. Otherwise frames are copied into pieces of at
/// most [`PIECE`] bytes, sized from `Content-Length` (already checked
/// against the limit) when there is one, and each frame is let go at once,
/// so hyper's read buffer is reused rather than held: the memory a body
/// holds is its length rounded up to a piece. The verifier hashes the
/// pieces in order and joins them only for a body whose signature matched.
pub(crate) async fn read_limited<B>(
    mut body: B,
    limit: usize,
    declared: Option<u64>,
) -> Result<RawBody, BodyError>
where
    B: Body + Unpin,
    B::Data: Into<Bytes>,
{
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(BodyError::TooLarge);
    }
    let mut first: Option<Bytes> = None;
    let mut pieces: Option<Pieces> = None;
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| BodyError::Broken)?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers carry nothing we use
        };
        let data: Bytes = data.into();
        total = total.saturating_add(data.len());
        if total > limit {
            return Err(BodyError::TooLarge);
        }
        if let Some(pieces) = &mut pieces {
            pieces.append(&data);
        } else if let Some(head) = first.take() {
            let mut started = Pieces::new(declared);
            started.append(&head);
            started.append(&data);
            pieces = Some(started);
            // `head` is dropped here, not at the end: it is a view into
            // hyper's read buffer and would keep that whole allocation
            // alive for as long as the body is read.
        } else {
            first = Some(data);
        }
    }
    Ok(match (pieces, first) {
        (Some(pieces), _) => pieces.finish(),
        (None, Some(head)) => RawBody::from(head),
        (None, None) => RawBody::new(),
    })
}

/// A body being copied into pieces of at most [`PIECE`] bytes.
struct Pieces {
    body: RawBody,
    piece: BytesMut,
    /// How many bytes `piece` is meant to hold before it is sealed.
    room: usize,
    declared: Option<usize>,
}

impl Pieces {
    fn new(declared: Option<u64>) -> Self {
        Self {
            body: RawBody::new(),
            piece: BytesMut::new(),
            room: 0,
            declared: declared.and_then(|d| usize::try_from(d).ok()),
        }
    }

    fn append(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.piece.len() == self.room {
                self.seal();
                self.room = self.next_room(data.len());
                self.piece = BytesMut::with_capacity(self.room);
            }
            let take = data.len().min(self.room - self.piece.len());
            self.piece.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
    }

    /// The size of the next piece: what `Content-Length` says is left, or,
    /// without one, twice what the body has so far (at least 8 KiB), never
    /// more than [`PIECE`].
    fn next_room(&self, incoming: usize) -> usize {
        let so_far = self.body.len();
        let wanted = match self.declared {
            Some(declared) => declared.saturating_sub(so_far).max(incoming),
            None => so_far
                .saturating_add(incoming)
                .saturating_mul(2)
                .max(8 * 1024),
        };
        wanted.clamp(1, PIECE)
    }

    fn seal(&mut self) {
        if !self.piece.is_empty() {
            self.body.push(std::mem::take(&mut self.piece).freeze());
        }
    }

    fn finish(mut self) -> RawBody {
        self.seal();
        self.body
    }
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

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
    }

    /// A body that yields its chunks one frame at a time and counts how many
    /// were pulled.
    struct Chunks {
        chunks: VecDeque<Bytes>,
        pulled: std::sync::Arc<std::sync::atomic::AtomicUsize>,
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

    fn chunks(n: usize, size: usize) -> (Chunks, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        let pulled = std::sync::Arc::default();
        let body = Chunks {
            chunks: (0..n).map(|_| Bytes::from(vec![b'x'; size])).collect(),
            pulled: std::sync::Arc::clone(&pulled),
        };
        (body, pulled)
    }

    #[test]
    fn single_frame_is_not_copied() {
        let data = Bytes::from_static(b"{\"id\":\"x\"}");
        let out = rt()
            .block_on(read_limited(Full::new(data.clone()), 100, Some(10)))
            .expect("read");
        assert_eq!(out.chunks().len(), 1);
        assert_eq!(out.into_bytes().as_ptr(), data.as_ptr());
    }

    #[test]
    fn frames_are_joined() {
        let (body, _) = chunks(3, 4);
        let out = rt().block_on(read_limited(body, 12, None)).expect("read");
        assert_eq!(out.chunks().len(), 1, "a small body fits one piece");
        assert_eq!(&out.into_bytes()[..], b"xxxxxxxxxxxx");
    }

    /// Frames of every size, declared or not, land in pieces of at most
    /// `PIECE` bytes that hold the body byte for byte, with no piece
    /// allocated larger than the body needs.
    #[test]
    fn large_bodies_are_kept_in_bounded_pieces() {
        for declared in [true, false] {
            for frame in [1, 1000, 4096, PIECE - 1, PIECE, PIECE + 1, 3 * PIECE + 5] {
                let len = 5 * PIECE + 123;
                let source: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
                let frames: VecDeque<Bytes> =
                    source.chunks(frame).map(Bytes::copy_from_slice).collect();
                let body = Chunks {
                    chunks: frames,
                    pulled: std::sync::Arc::default(),
                };
                let out = rt()
                    .block_on(read_limited(body, len, declared.then_some(len as u64)))
                    .expect("read");
                assert_eq!(out.len(), len);
                let pieces = out.chunks();
                assert!(pieces.iter().all(|p| p.len() <= PIECE && !p.is_empty()));
                let held: usize = pieces.iter().map(Bytes::len).sum();
                assert_eq!(held, len);
                if declared {
                    // Sized from Content-Length: full pieces, then the rest.
                    assert_eq!(pieces.len(), len.div_ceil(PIECE), "frame {frame}");
                }
                assert_eq!(
                    &out.into_bytes()[..],
                    &source[..],
                    "frame {frame}, declared {declared}"
                );
            }
        }
    }

    #[test]
    fn declared_length_over_limit_is_refused_before_reading() {
        let (body, pulled) = chunks(3, 4);
        let out = rt().block_on(read_limited(body, 11, Some(12)));
        assert!(matches!(out, Err(BodyError::TooLarge)));
        assert_eq!(pulled.load(std::sync::atomic::Ordering::SeqCst), 0);
    }

    #[test]
    fn chunked_body_stops_at_the_limit() {
        let (body, pulled) = chunks(1000, 1024);
        let out = rt().block_on(read_limited(body, 10 * 1024, None));
        assert!(matches!(out, Err(BodyError::TooLarge)));
        // Stopped on the 11th chunk, the first past the limit.
        assert_eq!(pulled.load(std::sync::atomic::Ordering::SeqCst), 11);
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
