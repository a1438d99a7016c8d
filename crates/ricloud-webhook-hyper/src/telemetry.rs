//! The endpoint's metrics, through the `metrics` facade (nothing is
//! recorded until the application installs a recorder).

use std::time::Duration;

use http::StatusCode;
use metrics::Label;

/// Counter: every answer to a delivery, by status and reason label
/// ([`Reason::label`](ricloud_webhook::Reason::label), or the adapter's own:
/// `not_found`, `method_not_allowed`, `unsupported_media_type`,
/// `too_large`, `body_timeout`, `broken_body`, `overloaded`,
/// `handler_timeout`), and by `config` when the receiver serves several.
pub const DELIVERIES: &str = "ricloud_webhook_deliveries_total";
/// Histogram: seconds from a delivery's head to its answer.
pub const DELIVERY_SECONDS: &str = "ricloud_webhook_delivery_seconds";

pub(crate) fn delivery(status: StatusCode, reason: &'static str, config: Option<&str>) {
    let mut labels = vec![
        Label::from_static_parts("status", status_label(status)),
        Label::from_static_parts("reason", reason),
    ];
    if let Some(config) = config {
        labels.push(Label::new("config", config.to_owned()));
    }
    metrics::counter!(DELIVERIES, labels).increment(1);
}

pub(crate) fn delivery_seconds(took: Duration) {
    metrics::histogram!(DELIVERY_SECONDS).record(took.as_secs_f64());
}

/// The statuses the endpoint answers, as static label values.
fn status_label(status: StatusCode) -> &'static str {
    match status.as_u16() {
        200 => "200",
        400 => "400",
        401 => "401",
        404 => "404",
        405 => "405",
        408 => "408",
        413 => "413",
        415 => "415",
        500 => "500",
        503 => "503",
        _ => "other",
    }
}
