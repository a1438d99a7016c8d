//! A request body as it arrived: one buffer, or several chunks in order.

use std::fmt;

use bytes::{Bytes, BytesMut};

/// A request body, byte for byte, held as one buffer or as chunks in order.
///
/// An adapter that reads a large body in pieces hands the pieces over as
/// they are: [`Verifier::verify_at`](crate::Verifier::verify_at) hashes
/// them in order and joins them into one buffer only after the signature
/// matched. A refused upload then never costs a second copy, and the
/// memory it holds is in pieces the allocator can reuse for the next one
/// instead of one large block per body.
///
/// Every form converts into it (`Bytes`, `Vec<u8>`, `String`, static
/// slices), so code with the whole body at hand passes it as before.
///
/// ```
/// use ricloud_webhook::{Bytes, RawBody};
///
/// let whole = RawBody::from(r#"{"id": "e"}"#);
/// let pieces = RawBody::from_chunks([Bytes::from_static(b"{\"id\""), Bytes::from_static(b": \"e\"}")]);
/// assert_eq!(pieces.len(), whole.len());
/// assert_eq!(pieces.into_bytes(), whole.into_bytes());
/// ```
#[derive(Clone, Default)]
pub struct RawBody {
    /// No chunk is empty; a body of one chunk is never a `Vec`.
    repr: Repr,
    len: usize,
}

#[derive(Clone)]
enum Repr {
    One(Bytes),
    Chunks(Vec<Bytes>),
}

impl Default for Repr {
    fn default() -> Self {
        Repr::One(Bytes::new())
    }
}

impl RawBody {
    /// An empty body.
    pub fn new() -> Self {
        Self::default()
    }

    /// A body made of `chunks`, in order. Empty chunks are dropped.
    pub fn from_chunks(chunks: impl IntoIterator<Item = Bytes>) -> Self {
        let mut body = Self::new();
        for chunk in chunks {
            body.push(chunk);
        }
        body
    }

    /// Appends `chunk` to the body. An empty chunk changes nothing.
    pub fn push(&mut self, chunk: Bytes) {
        if chunk.is_empty() {
            return;
        }
        self.len += chunk.len();
        match &mut self.repr {
            Repr::One(one) if one.is_empty() => *one = chunk,
            Repr::One(one) => {
                let first = std::mem::take(one);
                self.repr = Repr::Chunks(vec![first, chunk]);
            }
            Repr::Chunks(chunks) => chunks.push(chunk),
        }
    }

    /// The body's length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The chunks in order: one for a body that arrived whole, none for an
    /// empty one.
    pub fn chunks(&self) -> &[Bytes] {
        match &self.repr {
            Repr::One(one) if one.is_empty() => &[],
            Repr::One(one) => std::slice::from_ref(one),
            Repr::Chunks(chunks) => chunks,
        }
    }

    /// The body as one buffer: without a copy when it is one chunk,
    /// otherwise joined into a buffer of exactly its length, each chunk
    /// released as soon as it is copied.
    pub fn into_bytes(self) -> Bytes {
        match self.repr {
            Repr::One(one) => one,
            Repr::Chunks(chunks) => {
                let mut whole = BytesMut::with_capacity(self.len);
                for chunk in chunks {
                    whole.extend_from_slice(&chunk);
                }
                whole.freeze()
            }
        }
    }
}

impl From<Bytes> for RawBody {
    fn from(bytes: Bytes) -> Self {
        Self {
            len: bytes.len(),
            repr: Repr::One(bytes),
        }
    }
}

impl From<BytesMut> for RawBody {
    fn from(bytes: BytesMut) -> Self {
        bytes.freeze().into()
    }
}

impl From<Vec<u8>> for RawBody {
    fn from(bytes: Vec<u8>) -> Self {
        Bytes::from(bytes).into()
    }
}

impl From<Box<[u8]>> for RawBody {
    fn from(bytes: Box<[u8]>) -> Self {
        Bytes::from(bytes).into()
    }
}

impl From<String> for RawBody {
    fn from(text: String) -> Self {
        Bytes::from(text).into()
    }
}

impl From<&'static [u8]> for RawBody {
    fn from(bytes: &'static [u8]) -> Self {
        Bytes::from_static(bytes).into()
    }
}

impl<const N: usize> From<&'static [u8; N]> for RawBody {
    fn from(bytes: &'static [u8; N]) -> Self {
        Bytes::from_static(bytes).into()
    }
}

impl From<&'static str> for RawBody {
    fn from(text: &'static str) -> Self {
        Bytes::from_static(text.as_bytes()).into()
    }
}

impl FromIterator<Bytes> for RawBody {
    fn from_iter<I: IntoIterator<Item = Bytes>>(chunks: I) -> Self {
        Self::from_chunks(chunks)
    }
}

impl fmt::Debug for RawBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The content is left out: it may hold personal data.
        f.debug_struct("RawBody")
            .field("len", &self.len)
            .field("chunks", &self.chunks().len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_chunk_is_given_back_without_a_copy() {
        let bytes = Bytes::from(vec![7u8; 100]);
        let ptr = bytes.as_ptr();
        let body = RawBody::from_chunks([Bytes::new(), bytes, Bytes::new()]);
        assert_eq!(body.chunks().len(), 1);
        assert_eq!(body.into_bytes().as_ptr(), ptr);
    }

    #[test]
    fn chunks_are_joined_in_order_and_empty_ones_dropped() {
        let mut body = RawBody::new();
        assert!(body.is_empty());
        assert!(body.chunks().is_empty());
        for piece in ["ab", "", "cde", "f"] {
            body.push(Bytes::from_static(piece.as_bytes()));
        }
        assert_eq!(body.len(), 6);
        assert_eq!(body.chunks().len(), 3);
        assert_eq!(format!("{body:?}"), "RawBody { len: 6, chunks: 3 }");
        assert_eq!(&body.into_bytes()[..], b"abcdef");
    }

    #[test]
    fn every_form_converts_with_its_length() {
        assert_eq!(RawBody::from("abc").len(), 3);
        assert_eq!(RawBody::from(b"abcd").len(), 4);
        assert_eq!(RawBody::from(vec![1u8, 2]).len(), 2);
        assert_eq!(RawBody::from(String::from("xyz")).into_bytes(), "xyz");
        assert_eq!(RawBody::from(BytesMut::from(&b"q"[..])).len(), 1);
        assert_eq!(RawBody::from(Vec::<u8>::new().into_boxed_slice()).len(), 0);
    }
}
