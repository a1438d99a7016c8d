//! What the benchmarks share.

use anyhow::{ensure, Context as _};
use bytes::Bytes;

/// The reference vectors; the `task.succeeded` body is the template of a
/// realistic delivery.
const VECTORS: &str = include_str!("../../tests/data/ricloud-py-signatures.json");

/// The event id of the template body.
pub(crate) const TEMPLATE_ID: &str = "d921bf95-cc9f-4851-b6ab-9f1ab79db4df";

/// The ricloud-py vector's `task.succeeded` body (~1.2 KiB, pretty-printed).
pub(crate) fn task_template() -> anyhow::Result<String> {
    let vectors: serde_json::Value = serde_json::from_str(VECTORS)?;
    let template = vectors["vectors"]
        .as_array()
        .and_then(|v| v.iter().find(|v| v["name"] == "task.succeeded"))
        .and_then(|v| v["body"].as_str())
        .context("no task.succeeded vector")?
        .to_owned();
    ensure!(template.contains(TEMPLATE_ID));
    Ok(template)
}

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
