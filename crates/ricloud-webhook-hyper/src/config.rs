//! The endpoint's limits and routes.

use std::time::Duration;

/// Bodies whose `Content-Length` is at most this many bytes are small: they
/// draw on the share of the byte budget kept for them. The API's events are
/// a few KiB.
pub const SMALL_BODY: usize = 64 * 1024;

/// Routes and network limits of a [`WebhookService`](crate::WebhookService)
/// and of [`serve`](crate::serve).
///
/// The defaults are safe against senders without the secret: see the
/// crate's documentation for what each limit protects.
///
/// Setters take bare names, as reqwest's and hyper-util's builders do;
/// the [`WebhookService`](crate::WebhookService) built with a config reads
/// back what it uses ([`prefix`](crate::WebhookService::prefix),
/// [`body_limit`](crate::WebhookService::body_limit)).
///
/// ```
/// use std::time::Duration;
/// use ricloud_webhook::{Dispatcher, Receiver, Secret, Verifier};
/// use ricloud_webhook_hyper::{Config, WebhookService};
///
/// let config = Config::default()
///     .prefix("/hooks/ricloud/")
///     .body_limit(256 * 1024)
///     .delivery_timeout(Duration::from_secs(10));
/// let receiver = Receiver::new(Verifier::new(Secret::new("s")?), Dispatcher::new());
/// let service = WebhookService::with_config(receiver, config);
/// assert_eq!(service.prefix(), "/hooks/ricloud");
/// # Ok::<(), ricloud_webhook::SecretError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) prefix: String,
    pub(crate) body_limit: usize,
    pub(crate) body_budget: usize,
    pub(crate) small_body_share: usize,
    pub(crate) budget_wait: Duration,
    pub(crate) delivery_timeout: Duration,
    pub(crate) header_read_timeout: Duration,
    pub(crate) body_read_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_deliveries: usize,
    pub(crate) max_connections: usize,
    pub(crate) max_connections_per_ip: usize,
    pub(crate) max_requests: usize,
    pub(crate) max_requests_per_ip: usize,
    pub(crate) max_streams: u32,
    pub(crate) max_headers: usize,
    pub(crate) max_header_list_size: u32,
    pub(crate) shutdown_grace: Duration,
    pub(crate) retry_after: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            prefix: "/webhooks".to_owned(),
            body_limit: 1024 * 1024,
            body_budget: 64 * 1024 * 1024,
            small_body_share: 16 * 1024 * 1024,
            budget_wait: Duration::from_secs(2),
            delivery_timeout: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            max_deliveries: 256,
            max_connections: 1024,
            max_connections_per_ip: 256,
            max_requests: 1024,
            max_requests_per_ip: 128,
            max_streams: 64,
            max_headers: 64,
            max_header_list_size: 16 * 1024,
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

    /// The largest body accepted, in bytes (default 1 MiB); larger ones get
    /// 413 and are never buffered past the limit.
    #[must_use]
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// The bytes all bodies not verified yet may hold together (default
    /// 64 MiB). Reading a body takes from it as the bytes arrive and gives
    /// them back once the signature is checked. When it is spent, a
    /// delivery stops reading (its bytes wait in the kernel's socket
    /// buffers, not in this process) for up to
    /// [`Config::budget_wait`], then gets 503 with `Retry-After`.
    #[must_use]
    pub fn body_budget(mut self, bytes: usize) -> Self {
        self.body_budget = bytes;
        self
    }

    /// The part of [`Config::body_budget`] only small bodies (a
    /// `Content-Length` of at most [`SMALL_BODY`]) may use (default
    /// 16 MiB), so large uploads from strangers cannot starve the API's
    /// events of it.
    #[must_use]
    pub fn small_body_share(mut self, bytes: usize) -> Self {
        self.small_body_share = bytes;
        self
    }

    /// How long a delivery waits for room in the byte budget before it is
    /// answered 503 (default 2 s).
    #[must_use]
    pub fn budget_wait(mut self, wait: Duration) -> Self {
        self.budget_wait = wait;
        self
    }

    /// Time allowed for the handlers of a verified delivery (default 30 s);
    /// past it the delivery is answered 503 with `Retry-After` so the API
    /// redelivers, and the handlers are cancelled.
    #[must_use]
    pub fn delivery_timeout(mut self, timeout: Duration) -> Self {
        self.delivery_timeout = timeout;
        self
    }

    /// Time allowed for a client to send a request's headers (default
    /// 10 s), counted from the moment a connection opens (whichever
    /// protocol it turns out to speak) and, over HTTP/1 (hyper's own
    /// timeout), from the end of its previous response; a slower connection
    /// is closed.
    #[must_use]
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// Time allowed to receive a delivery's body once its headers are in
    /// (default 10 s); past it the delivery is answered 408 and its share
    /// of the byte budget is freed, so a stalled upload holds it no longer.
    #[must_use]
    pub fn body_read_timeout(mut self, timeout: Duration) -> Self {
        self.body_read_timeout = timeout;
        self
    }

    /// How long [`serve`](crate::serve) keeps a connection with no request
    /// in progress (default 30 s; an HTTP/1 connection is closed sooner,
    /// by [`Config::header_read_timeout`]). An idle HTTP/2 connection
    /// cannot hold one of the [`Config::max_connections`] for good.
    #[must_use]
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Verified deliveries handled at once (default 256); more get 503 with
    /// `Retry-After`. Taken only once a delivery's signature is checked, so
    /// senders without the secret never hold one.
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

    /// Connections open at once from one address in [`serve`](crate::serve)
    /// (default 256, a quarter of the default
    /// [`Config::max_connections`]; IPv6 addresses count by their /64
    /// network, which one host commonly has whole). Past it, a new
    /// connection from that address is sent a `503` with `Retry-After` at
    /// once, without waiting for its request, and closed, so one host
    /// cannot hold every connection. Behind a reverse proxy every
    /// connection comes from the proxy: raise it to `max_connections`
    /// there.
    #[must_use]
    pub fn max_connections_per_ip(mut self, max: usize) -> Self {
        self.max_connections_per_ip = max.max(1);
        self
    }

    /// Requests in progress at once in [`serve`](crate::serve), over every
    /// connection and stream (default 1024); more are answered 503 with
    /// `Retry-After` before their body is read.
    #[must_use]
    pub fn max_requests(mut self, max: usize) -> Self {
        self.max_requests = max.max(1);
        self
    }

    /// Requests in progress at once from one address (counted as for
    /// [`Config::max_connections_per_ip`]; default 128); more are answered
    /// 503 with `Retry-After` before their body is read.
    #[must_use]
    pub fn max_requests_per_ip(mut self, max: usize) -> Self {
        self.max_requests_per_ip = max.max(1);
        self
    }

    /// Headers a request may have over HTTP/1 (default 64); more close the
    /// connection with 431. The whole head is bounded besides by hyper's
    /// 64 KiB read buffer.
    #[must_use]
    pub fn max_headers(mut self, max: usize) -> Self {
        self.max_headers = max.max(8);
        self
    }

    /// The largest decoded header list an HTTP/2 request may have, in
    /// bytes (default 16 KiB, as HPACK counts it: names, values and 32
    /// bytes per header).
    #[must_use]
    pub fn max_header_list_size(mut self, bytes: u32) -> Self {
        self.max_header_list_size = bytes.max(1024);
        self
    }

    /// Requests at once on one HTTP/2 connection (default 64).
    #[must_use]
    pub fn max_concurrent_streams(mut self, max: u32) -> Self {
        self.max_streams = max.max(1);
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_is_normalised() {
        assert_eq!(Config::default().prefix("/a/").prefix, "/a");
        assert_eq!(Config::default().prefix("a").prefix, "/a");
        assert_eq!(Config::default().prefix("/").prefix, "");
    }
}
