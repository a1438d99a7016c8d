//! Reading a request body without ever holding more than the limit.

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::Body;
use http_body_util::BodyExt;

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

/// Reads the whole body, refusing it as soon as it passes `limit` bytes.
///
/// A body that arrives as one frame (the usual case with `Content-Length`)
/// is returned without a copy; otherwise frames are appended to one buffer
/// sized from `Content-Length` (already checked against the limit).
pub(crate) async fn read_limited<B>(
    mut body: B,
    limit: usize,
    declared: Option<u64>,
) -> Result<Bytes, BodyError>
where
    B: Body + Unpin,
    B::Data: Into<Bytes>,
{
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(BodyError::TooLarge);
    }
    let mut first: Option<Bytes> = None;
    let mut rest: Option<BytesMut> = None;
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
        if let Some(buf) = &mut rest {
            buf.extend_from_slice(&data);
        } else if let Some(head) = first.take() {
            let hint = declared.map_or(total, |d| d as usize).max(total);
            let mut buf = BytesMut::with_capacity(hint);
            buf.extend_from_slice(&head);
            buf.extend_from_slice(&data);
            rest = Some(buf);
            // `head` is dropped here, not at the end: it is a view into
            // hyper's read buffer and would keep that whole allocation
            // (up to ~400 KiB) alive for as long as the body is read.
        } else {
            first = Some(data);
        }
    }
    Ok(match (rest, first) {
        (Some(buf), _) => buf.freeze(),
        (None, Some(head)) => head,
        (None, None) => Bytes::new(),
    })
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
        assert_eq!(out.as_ptr(), data.as_ptr());
    }

    #[test]
    fn frames_are_joined() {
        let (body, _) = chunks(3, 4);
        let out = rt().block_on(read_limited(body, 12, None)).expect("read");
        assert_eq!(&out[..], b"xxxxxxxxxxxx");
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
