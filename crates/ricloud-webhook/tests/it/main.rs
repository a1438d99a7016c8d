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

/// A realistic event body with the given id, type and action.
pub(crate) fn event_body(id: &str, kind: &str, action: &str) -> Vec<u8> {
    ricloud_webhook_testkit::event_body(id, &format!("{kind}.{action}"))
}
