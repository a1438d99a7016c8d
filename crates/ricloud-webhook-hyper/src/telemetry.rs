//! The endpoint's metrics, through the `metrics` facade (nothing is
//! recorded until the application installs a recorder).
//!
//! Every answer is counted, so the common ones use keys the compiler
//! builds (literal names and labels): without a recorder such a call costs
//! a look for one, not a key built and hashed per delivery.

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

/// Counts one answer: with a key built at compile time for each status
/// and reason the endpoint answers, else (a config's name, a reason this
/// list lacks) with one built now.
macro_rules! count {
    ($status:expr, $reason:expr, $config:expr; $($code:literal $label:literal),* $(,)?) => {
        match ($config, status_label($status), $reason) {
            $((None, $code, $label) => metrics::counter!(
                "ricloud_webhook_deliveries_total",
                "status" => $code,
                "reason" => $label
            )
            .increment(1),)*
            (config, status, reason) => counted_with(status, reason, config),
        }
    };
}

pub(crate) fn delivery(status: StatusCode, reason: &'static str, config: Option<&str>) {
    count!(status, reason, config;
        "200" "ok", "200" "duplicate", "200" "no_handler", "200" "handler_gave_up",
        "200" "view_mismatch", "500" "view_mismatch", "500" "handler_failed",
        "500" "handler_panicked", "400" "malformed_header", "400" "not_an_event",
        "400" "path_mismatch", "400" "broken_body", "401" "missing_signature",
        "401" "bad_signature", "401" "stale", "404" "not_found", "404" "unknown_config",
        "405" "method_not_allowed", "408" "body_timeout", "413" "too_large",
        "415" "unsupported_media_type", "503" "shutting_down", "503" "overloaded",
        "503" "busy", "503" "store_full", "503" "store_error", "503" "handler_timeout",
    );
}

#[cold]
fn counted_with(status: &'static str, reason: &'static str, config: Option<&str>) {
    let mut labels = vec![
        Label::from_static_parts("status", status),
        Label::from_static_parts("reason", reason),
    ];
    if let Some(config) = config {
        labels.push(Label::new("config", config.to_owned()));
    }
    metrics::counter!(DELIVERIES, labels).increment(1);
}

pub(crate) fn delivery_seconds(took: Duration) {
    metrics::histogram!("ricloud_webhook_delivery_seconds").record(took.as_secs_f64());
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
