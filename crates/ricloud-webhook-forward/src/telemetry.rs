//! The forwarder's metrics, through the `metrics` facade (nothing is
//! recorded until the application installs a recorder).

use std::time::Duration;

use crate::Published;

/// Counter: publishes by `broker` (`nats`, `redis`) and `result`: `new`
/// (the broker took it), `duplicate` (it had the event id already) or
/// `failed` (not acknowledged: the delivery was answered 503, or the inbox
/// keeps the row pending).
pub const PUBLISHES: &str = "ricloud_webhook_forward_publishes_total";
/// Histogram: seconds from publish to the broker's acknowledgement (or the
/// failure), by `broker`.
pub const PUBLISH_SECONDS: &str = "ricloud_webhook_forward_publish_seconds";

pub(crate) fn published(broker: &'static str, result: Option<Published>, took: Duration) {
    let result = match result {
        Some(Published::New) => "new",
        Some(Published::Duplicate) => "duplicate",
        None => "failed",
    };
    metrics::counter!(PUBLISHES, "broker" => broker, "result" => result).increment(1);
    metrics::histogram!(PUBLISH_SECONDS, "broker" => broker).record(took.as_secs_f64());
}
