//! The core's metrics, recorded through the `metrics` facade: nothing is
//! recorded until the application installs a recorder (a Prometheus
//! exporter, say).
//!
//! Labels have bounded values: slugs outside [`Event::DOCUMENTED_SLUGS`]
//! are `other`, a config is one of the names the receiver serves, and an
//! event id is never a label. The per-delivery counter uses keys the
//! compiler builds, so without a recorder it costs a look for one.

use std::sync::Arc;
use std::time::Duration;

use metrics::Label;

use crate::{Event, Reason};

/// Counter: verified signatures, by which secret matched.
pub const SECRET_MATCHED: &str = "ricloud_webhook_secret_matched_total";
/// Counter: dispatches of an event to its handlers, by slug and outcome.
pub const HANDLER_RUNS: &str = "ricloud_webhook_handler_runs_total";
/// Histogram: how long an event's handlers took, by slug.
pub const HANDLER_SECONDS: &str = "ricloud_webhook_handler_seconds";

/// `labels`, plus `config` when the receiver serves several.
fn with_config(mut labels: Vec<Label>, config: Option<&Arc<str>>) -> Vec<Label> {
    if let Some(config) = config {
        labels.push(Label::new("config", Arc::clone(config)));
    }
    labels
}

pub(crate) fn secret_matched(index: usize, config: Option<&Arc<str>>) {
    match (index, config) {
        (0, None) => metrics::counter!(
            "ricloud_webhook_secret_matched_total",
            "secret" => "current"
        )
        .increment(1),
        (_, None) => metrics::counter!(
            "ricloud_webhook_secret_matched_total",
            "secret" => "previous"
        )
        .increment(1),
        (index, config) => {
            let secret = if index == 0 { "current" } else { "previous" };
            metrics::counter!(
                SECRET_MATCHED,
                with_config(vec![Label::from_static_parts("secret", secret)], config)
            )
            .increment(1);
        }
    }
}

pub(crate) fn handlers_ran(event: &Event, reason: &Reason, took: Duration) {
    let slug = Label::from_static_parts("slug", event.slug_label());
    let config = event.config.as_ref();
    metrics::histogram!(HANDLER_SECONDS, with_config(vec![slug.clone()], config))
        .record(took.as_secs_f64());
    let outcome = Label::from_static_parts("outcome", reason.label());
    metrics::counter!(HANDLER_RUNS, with_config(vec![slug, outcome], config)).increment(1);
}
