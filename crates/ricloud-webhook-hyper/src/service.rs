//! The webhook endpoint as a hyper and tower service.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, CONTENT_TYPE, RETRY_AFTER};
use http::request::Parts;
use http::{HeaderName, Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::Full;
use ricloud_webhook::{Delivery, Outcome, Reason, Receiver};
use tokio::sync::Semaphore;

use crate::body::{self, content_length, BodyError, BoxError, Budget};
use crate::{telemetry, Config};

/// The response type of [`WebhookService`].
pub type WebhookResponse = Response<Full<Bytes>>;

/// The ricloud webhook endpoint: routes, limits, and the core receiver.
///
/// - `POST <prefix>/<event id>` (a trailing slash tolerated) goes to the
///   [`Receiver`] and is answered with its status table.
/// - `GET /healthz` answers 200.
/// - Other methods on the webhook path: 405 with `Allow: POST`.
/// - Other paths: 404.
/// - A content type other than JSON: 415. A body over the limit: 413, refused
///   from `Content-Length` before reading, or as soon as a body without one
///   passes the limit.
/// - A body not received within [`Config::body_read_timeout`]: 408.
/// - No room in the byte budget within [`Config::budget_wait`], more
///   verified deliveries at once than [`Config::max_deliveries`], handlers
///   slower than [`Config::delivery_timeout`], or a receiver shutting down:
///   503 with `Retry-After`.
///
/// It is cheap to clone and implements both `hyper::service::Service` and
/// `tower::Service`, so it can be served by [`serve`](crate::serve), by
/// hyper directly, or mounted in an axum router:
///
/// ```no_run
/// # use ricloud_webhook::{Dispatcher, Receiver, Secret, Verifier};
/// # use ricloud_webhook_hyper::WebhookService;
/// # fn secret() -> Secret { Secret::new("s").unwrap() }
/// let receiver = Receiver::new(Verifier::new(secret()), Dispatcher::new());
/// let service = WebhookService::new(receiver);
/// let app: axum::Router = axum::Router::new().route_service("/webhooks/{id}", service);
/// ```
#[derive(Clone)]
pub struct WebhookService {
    shared: Arc<Shared>,
}

struct Shared {
    receiver: Receiver,
    config: Config,
    budget: Budget,
    deliveries: Semaphore,
    retry_after: HeaderValue,
    warned_route: AtomicBool,
}

impl WebhookService {
    /// A service with the default [`Config`].
    pub fn new(receiver: Receiver) -> Self {
        Self::with_config(receiver, Config::default())
    }

    /// A service with the given limits.
    pub fn with_config(receiver: Receiver, config: Config) -> Self {
        let retry_after = HeaderValue::from(config.retry_after.as_secs().max(1));
        Self {
            shared: Arc::new(Shared {
                receiver,
                budget: Budget::new(&config),
                deliveries: Semaphore::new(config.max_deliveries),
                config,
                retry_after,
                warned_route: AtomicBool::new(false),
            }),
        }
    }

    /// The core receiver (for [`Receiver::begin_shutdown`], for example).
    pub fn receiver(&self) -> &Receiver {
        &self.shared.receiver
    }

    /// The limits in force.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// The webhook path prefix in force, normalised (`/webhooks`; empty
    /// for the root), as [`Config::prefix`] set it.
    pub fn prefix(&self) -> &str {
        &self.shared.config.prefix
    }

    /// The body limit in force, in bytes, as [`Config::body_limit`] set it.
    pub fn body_limit(&self) -> usize {
        self.shared.config.body_limit
    }

    /// Answers one request.
    pub async fn handle<B>(&self, request: Request<B>) -> WebhookResponse
    where
        B: Body + Unpin,
        B::Data: Into<Bytes>,
        B::Error: Into<BoxError>,
    {
        match self.shared.admit(request) {
            Admit::Deliver(parts, body, declared, started) => {
                let Ok(response) = Arc::clone(&self.shared)
                    .deliver(parts, body, declared, started)
                    .await;
                response
            }
            Admit::Answer(response) => response,
        }
    }
}

/// What the checks on a request's head decided.
enum Admit<B> {
    /// Answer now (health check, wrong route, method, type or length).
    Answer(WebhookResponse),
    /// A delivery to read and receive: the request's head, its body, the
    /// length it declared, and when it arrived.
    Deliver(Parts, B, Option<u64>, Instant),
}

impl Shared {
    /// The checks on the request's head, made before anything is read; an
    /// answer given here is timed in the deliveries' histogram too.
    fn admit<B>(&self, request: Request<B>) -> Admit<B> {
        let path = request.uri().path();
        if path == "/healthz" && matches!(*request.method(), Method::GET | Method::HEAD) {
            return Admit::Answer(text(StatusCode::OK, "ok", "ok"));
        }
        let started = Instant::now();
        match self.check_head(request, started) {
            Admit::Answer(response) => {
                telemetry::delivery_seconds(started.elapsed());
                Admit::Answer(response)
            }
            deliver => deliver,
        }
    }

    fn check_head<B>(&self, request: Request<B>, started: Instant) -> Admit<B> {
        let (parts, body) = request.into_parts();
        let path = parts.uri.path();
        if !self.is_webhook_path(path) {
            self.warn_once_about_route(path);
            tracing::debug!(status = 404, "no route for this path");
            return Admit::Answer(refused(StatusCode::NOT_FOUND, "not_found", "not found"));
        }
        if parts.method != Method::POST {
            tracing::debug!(status = 405, method = %parts.method, "method not allowed");
            let mut response = refused(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "only POST is accepted",
            );
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("POST"));
            return Admit::Answer(response);
        }
        if !is_json(parts.headers.get(CONTENT_TYPE)) {
            tracing::debug!(status = 415, "content type is not JSON");
            return Admit::Answer(refused(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "content type must be application/json",
            ));
        }
        let declared = content_length(&parts.headers);
        if declared.is_some_and(|len| len > self.config.body_limit as u64) {
            return Admit::Answer(too_large(self.config.body_limit));
        }
        Admit::Deliver(parts, body, declared, started)
    }

    /// The first request to a path outside the webhook route: logged once
    /// at WARN with what was expected, since a service mounted under
    /// another prefix than [`Config::prefix`] answers every delivery 404.
    fn warn_once_about_route(&self, path: &str) {
        if self.warned_route.load(Ordering::Relaxed)
            || self.warned_route.swap(true, Ordering::Relaxed)
        {
            return;
        }
        let path: String = path.chars().take(100).collect();
        let expected = if self.receiver.verifiers().is_named() {
            "<config name>/<event id>"
        } else {
            "<event id>"
        };
        tracing::warn!(
            status = 404,
            path = ?path,
            "a request outside the webhook route, answered 404: deliveries go to {}/{expected} (Config::prefix); said once",
            self.config.prefix
        );
    }

    /// Reads the body within the budget, verifies it, gives the budget
    /// back, and only then takes a delivery slot and runs the handlers
    /// within the delivery timeout.
    async fn deliver<B>(
        self: Arc<Self>,
        parts: Parts,
        body: B,
        declared: Option<u64>,
        started: Instant,
    ) -> Result<WebhookResponse, Infallible>
    where
        B: Body + Unpin,
        B::Data: Into<Bytes>,
        B::Error: Into<BoxError>,
    {
        let response = self.deliver_timed(parts, body, declared).await;
        telemetry::delivery_seconds(started.elapsed());
        Ok(response)
    }

    async fn deliver_timed<B>(
        &self,
        parts: Parts,
        body: B,
        declared: Option<u64>,
    ) -> WebhookResponse
    where
        B: Body + Unpin,
        B::Data: Into<Bytes>,
        B::Error: Into<BoxError>,
    {
        let limit = self.config.body_limit;
        // The two stages are boxed apart, so the future hyper boxes per
        // request stays small: one large block a request costs more in the
        // allocator than three that fit its per-thread cache.
        let reading = Box::pin(body::read(body, limit, declared, &self.budget));
        let (body, held) = match within(self.config.body_read_timeout, reading).await {
            Ok(Ok(read)) => read,
            Ok(Err(BodyError::TooLarge)) => return too_large(limit),
            Ok(Err(BodyError::NoBudget)) => {
                tracing::warn!(status = 503, "byte budget for unverified bodies spent");
                return self.unavailable("too many bodies being received; please retry");
            }
            Ok(Err(BodyError::Broken)) => {
                tracing::debug!(status = 400, "body could not be read");
                return refused(
                    StatusCode::BAD_REQUEST,
                    "broken_body",
                    "request body could not be read",
                );
            }
            Err(_) => {
                tracing::debug!(status = 408, "body not received in time");
                return refused(
                    StatusCode::REQUEST_TIMEOUT,
                    "body_timeout",
                    "request body not received in time",
                );
            }
        };
        let delivery = Delivery {
            method: &parts.method,
            path: parts.uri.path(),
            headers: &parts.headers,
            body,
        };
        let now = SystemTime::now();
        let verified = self.receiver.verify_at(delivery, now);
        drop(held);
        let event = match verified {
            Ok(event) => event,
            Err(refused) => return self.answer(&refused),
        };
        let Ok(_slot) = self.deliveries.try_acquire() else {
            tracing::warn!(
                status = 503,
                event_id = event.event().id.as_str(),
                slug = event.event().slug_label(),
                reason = "overloaded",
                "too many deliveries at once; asking for redelivery"
            );
            return self.unavailable("too many deliveries at once; please retry");
        };
        let id = Arc::clone(event.event());
        let handled = Box::pin(self.receiver.handle_at(event, now));
        match within(self.config.delivery_timeout, handled).await {
            Ok(outcome) => self.answer(&outcome),
            Err(_) => {
                tracing::error!(
                    status = 503,
                    event_id = id.id.as_str(),
                    slug = %id.slug(),
                    config = id.config(),
                    reason = "handler_timeout",
                    "delivery timed out; handlers cancelled"
                );
                telemetry::delivery(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "handler_timeout",
                    id.config(),
                );
                self.retry_later(text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "handler_timeout",
                    "delivery timed out; please redeliver",
                ))
            }
        }
    }

    fn answer(&self, outcome: &Outcome) -> WebhookResponse {
        let label = outcome.reason().label();
        telemetry::delivery(outcome.status(), label, outcome.config());
        let body = if outcome.status().is_success() {
            Bytes::from_static(b"OK")
        } else {
            Bytes::from(outcome.body())
        };
        let response = text(outcome.status(), label, body);
        if outcome.status() == StatusCode::SERVICE_UNAVAILABLE {
            self.retry_later(response)
        } else {
            response
        }
    }

    /// `<prefix>/<id>` or `<prefix>/<id>/`, with a non-empty id of one
    /// segment; `<prefix>/<config>/<id>` when the receiver serves named
    /// configs (the receiver checks the name).
    fn is_webhook_path(&self, path: &str) -> bool {
        let Some(rest) = path
            .strip_prefix(self.config.prefix.as_str())
            .and_then(|rest| rest.strip_prefix('/'))
        else {
            return false;
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let segment = |s: &str| !s.is_empty() && !s.contains('/');
        if self.receiver.verifiers().is_named() {
            rest.split_once('/')
                .is_some_and(|(config, id)| segment(config) && segment(id))
        } else {
            segment(rest)
        }
    }

    /// A 503 with `Retry-After` for a delivery not taken now (`overloaded`).
    fn unavailable(&self, message: &'static str) -> WebhookResponse {
        self.retry_later(refused(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            message,
        ))
    }

    fn retry_later(&self, mut response: WebhookResponse) -> WebhookResponse {
        response
            .headers_mut()
            .insert(RETRY_AFTER, self.retry_after.clone());
        response
    }
}

/// `future`'s output if it comes within `limit`. A future that is ready at
/// once (a body that came with its headers, handlers that did not wait)
/// costs no timer: the timer is built, and boxed, only for one that is not.
async fn within<F: Future + Unpin>(
    limit: Duration,
    mut future: F,
) -> Result<F::Output, tokio::time::error::Elapsed> {
    let first = std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut future).poll(cx))).await;
    match first {
        Poll::Ready(output) => Ok(output),
        Poll::Pending => Box::pin(tokio::time::timeout(limit, future)).await,
    }
}

fn too_large(limit: usize) -> WebhookResponse {
    tracing::debug!(status = 413, limit, "body over the limit");
    refused(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!("body is larger than the {limit} byte limit"),
    )
}

/// An answer the adapter decides before the receiver has an outcome,
/// counted in the deliveries metric under `label`.
fn refused(status: StatusCode, label: &'static str, body: impl Into<Bytes>) -> WebhookResponse {
    telemetry::delivery(status, label, None);
    text(status, label, body)
}

/// `application/json`, or any `+json` type, with or without parameters.
fn is_json(content_type: Option<&HeaderValue>) -> bool {
    let Some(value) = content_type.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let media = value.split(';').next().unwrap_or("").trim();
    media.eq_ignore_ascii_case("application/json")
        || media.rsplit_once('+').is_some_and(|(kind, suffix)| {
            suffix.eq_ignore_ascii_case("json")
                && kind.len() > 12
                && kind[..12].eq_ignore_ascii_case("application/")
        })
}

/// A plain-text answer carrying its reason's label in
/// [`Reason::OUTCOME_HEADER`](ricloud_webhook::Reason::OUTCOME_HEADER),
/// but for `ok`: a 2xx without the header is a new event taken.
fn text(status: StatusCode, label: &'static str, body: impl Into<Bytes>) -> WebhookResponse {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    // A new event taken is the common answer, and the only one without it.
    if label != "ok" {
        headers.insert(OUTCOME_HEADER, HeaderValue::from_static(label));
    }
    response
}

/// [`Reason::OUTCOME_HEADER`](ricloud_webhook::Reason::OUTCOME_HEADER) as a header name.
const OUTCOME_HEADER: HeaderName = HeaderName::from_static(Reason::OUTCOME_HEADER);

impl fmt::Debug for WebhookService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookService")
            .field("receiver", &self.shared.receiver)
            .field("config", &self.shared.config)
            .finish()
    }
}

impl WebhookService {
    /// The 503 with `Retry-After` for a request refused before it is read:
    /// too many in progress.
    pub(crate) fn overloaded(&self) -> WebhookResponse {
        self.shared
            .unavailable("too many requests in progress; retry later")
    }
}

/// The future of [`WebhookService`]'s `call`.
pub(crate) type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<WebhookResponse, Infallible>> + Send>>;

impl<B> hyper::service::Service<Request<B>> for WebhookService
where
    B: Body + Send + Unpin + 'static,
    B::Data: Into<Bytes> + Send,
    B::Error: Into<BoxError>,
{
    type Response = WebhookResponse;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn call(&self, request: Request<B>) -> Self::Future {
        match self.shared.admit(request) {
            // Boxed as it is, without a wrapper: it fits the allocator's
            // per-thread cache (see `future_size` below).
            Admit::Deliver(parts, body, declared, started) => {
                Box::pin(Arc::clone(&self.shared).deliver(parts, body, declared, started))
            }
            Admit::Answer(response) => Box::pin(std::future::ready(Ok(response))),
        }
    }
}

impl<B> tower_service::Service<Request<B>> for WebhookService
where
    B: Body + Send + Unpin + 'static,
    B::Data: Into<Bytes> + Send,
    B::Error: Into<BoxError>,
{
    type Response = WebhookResponse;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // Overload is answered with 503 per request, not by back-pressure, so
        // the API learns to retry instead of waiting on a full queue.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        hyper::service::Service::call(self, request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types() {
        let ok = |s: &'static str| is_json(Some(&HeaderValue::from_static(s)));
        assert!(ok("application/json"));
        assert!(ok("Application/JSON; charset=utf-8"));
        assert!(ok("application/vnd.ricloud+json"));
        assert!(!ok("text/plain"));
        assert!(!ok("application/x-www-form-urlencoded"));
        assert!(!ok("text/+json"));
        assert!(!ok("application/jsonp"));
        assert!(!is_json(None));
    }
}
