//! What the benchmarks share.

use bytes::Bytes;

/// A JSON-looking body of exactly `len` bytes.
///
/// Static, so that handing a clone to `verify_at` costs no reference count:
/// the adapter moves the body in, it does not clone it.
pub(crate) fn body_of(len: usize) -> Bytes {
    let mut body = br#"{"id": "d921bf95-cc9f-4851-b6ab-9f1ab79db4df", "data": ""#.to_vec();
    while body.len() + 2 < len {
        body.push(b'a' + (body.len() % 26) as u8);
    }
    body.extend_from_slice(b"\"}");
    body.truncate(len);
    Bytes::from_static(Box::leak(body.into_boxed_slice()))
}
