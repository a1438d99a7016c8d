//! The endpoint's limits and routes.

use std::time::Duration;

/// Routes and network limits of a [`WebhookService`](crate::WebhookService)
/// and of [`serve`](crate::serve).
///
/// ```
/// use std::time::Duration;
/// use ricloud_webhook_hyper::Config;
///
/// let config = Config::default()
///     .prefix("/hooks/ricloud")
///     .body_limit(1024 * 1024)
///     .delivery_timeout(Duration::from_secs(10));
/// assert_eq!(config.webhook_prefix(), "/hooks/ricloud");
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) prefix: String,
    pub(crate) body_limit: usize,
    pub(crate) delivery_timeout: Duration,
    pub(crate) header_read_timeout: Duration,
    pub(crate) body_read_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_deliveries: usize,
    pub(crate) max_connections: usize,
    pub(crate) shutdown_grace: Duration,
    pub(crate) retry_after: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            prefix: "/webhooks".to_owned(),
            body_limit: 5 * 1024 * 1024,
            delivery_timeout: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            max_deliveries: 256,
            max_connections: 1024,
            shutdown_grace: Duration::from_secs(30),
            retry_after: Duration::from_secs(5),
        }
    }
}

impl Config {
    /// The path under which deliveries arrive, `POST <prefix>/<event id>`
    /// (default `/webhooks`, as ricloud-py registers). Trailing slashes are
    /// dropped; a missing leading slash is added.
    #[must_use]
    pub fn prefix(mut self, prefix: &str) -> Self {
        let trimmed = prefix.trim_end_matches('/');
        self.prefix = if trimmed.is_empty() || trimmed.starts_with('/') {
            trimmed.to_owned()
        } else {
            format!("/{trimmed}")
        };
        self
    }

    /// The largest body accepted, in bytes (default 5 MiB); larger ones get
    /// 413 and are never buffered past the limit.
    #[must_use]
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// Time allowed to read a body and run the handlers (default 30 s);
    /// past it the delivery is answered 503 with `Retry-After` so the API
    /// redelivers, and the handlers are cancelled.
    #[must_use]
    pub fn delivery_timeout(mut self, timeout: Duration) -> Self {
        self.delivery_timeout = timeout;
        self
    }

    /// Time allowed for a client to send a request's headers (default 10 s);
    /// a slower connection is closed. [`serve`](crate::serve) counts it
    /// from the moment a connection opens (whichever protocol it turns out
    /// to speak) and, over HTTP/1, from the end of its previous request, so
    /// it also closes an HTTP/1 connection kept alive with nothing to send.
    /// Checked every quarter of `min(header_read_timeout, idle_timeout)`:
    /// a connection may close up to a quarter late.
    #[must_use]
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// Time allowed to receive a delivery's body once its headers are in
    /// (default 10 s); past it the delivery is answered 408 and its slot
    /// (see [`Config::max_deliveries`]) is freed, so slow unsigned uploads
    /// cannot hold the slots for the whole delivery timeout.
    #[must_use]
    pub fn body_read_timeout(mut self, timeout: Duration) -> Self {
        self.body_read_timeout = timeout;
        self
    }

    /// How long [`serve`](crate::serve) keeps a connection with no request
    /// in progress (default 30 s; an HTTP/1 connection is closed sooner
    /// when [`Config::header_read_timeout`] is shorter). Checked every
    /// quarter of `min(header_read_timeout, idle_timeout)`, so a connection
    /// may close up to a quarter late. An idle HTTP/2 connection, or
    /// a client that stops reading its responses, cannot hold one of the
    /// [`Config::max_connections`] for good.
    #[must_use]
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Deliveries processed at once (default 256); more get 503 with
    /// `Retry-After`.
    #[must_use]
    pub fn max_deliveries(mut self, max: usize) -> Self {
        self.max_deliveries = max.max(1);
        self
    }

    /// Connections open at once in [`serve`](crate::serve) (default 1024);
    /// past it, new connections wait in the listen backlog.
    #[must_use]
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max.max(1);
        self
    }

    /// How long [`serve`](crate::serve) lets in-flight deliveries finish
    /// after shutdown starts (default 30 s).
    #[must_use]
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// The `Retry-After` sent with 503 answers (default 5 s).
    #[must_use]
    pub fn retry_after(mut self, after: Duration) -> Self {
        self.retry_after = after;
        self
    }

    /// The normalised webhook path prefix.
    pub fn webhook_prefix(&self) -> &str {
        &self.prefix
    }

    /// The body limit in bytes.
    pub fn max_body(&self) -> usize {
        self.body_limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_is_normalised() {
        assert_eq!(Config::default().prefix("/a/").webhook_prefix(), "/a");
        assert_eq!(Config::default().prefix("a").webhook_prefix(), "/a");
        assert_eq!(Config::default().prefix("/").webhook_prefix(), "");
    }
}
