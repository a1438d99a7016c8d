//! Integration tests of the core crate: one binary, shared helpers.

mod dispatch;
mod logging;
mod props;
mod receiver;
mod vectors;
mod views;

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ricloud_webhook::Secret;

/// A fixed instant for tests that do not care about the clock.
pub(crate) const NOW: u64 = 1_800_000_000;

pub(crate) fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

pub(crate) fn secret(s: &str) -> Secret {
    Secret::new(s).expect("non-empty secret")
}

/// Runs a future to completion on a current-thread runtime.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(future)
}

/// A realistic event body with the given id and slug.
pub(crate) fn event_body(id: &str, kind: &str, action: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "id": id, "resource": "event", "type": kind, "action": action,
        "data": {"id": "f3e452f2-3cbb-4daa-a4c1-84fa48a7c825", "resource": kind, "state": "succeeded"},
        "state": "pending", "retries": 0, "date_created": "2026-11-27T10:43:00.123Z",
        "date_delivered": null
    }))
    .expect("json")
}
