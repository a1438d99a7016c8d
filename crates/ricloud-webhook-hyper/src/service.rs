//! The webhook endpoint as a hyper and tower service.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, CONTENT_TYPE, RETRY_AFTER};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::Full;
use ricloud_webhook::{Delivery, RawBody, Receiver};
use tokio::sync::Semaphore;

use crate::body::{content_length, read_limited, BodyError};
use crate::Config;

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
///   from `Content-Length` before reading, or as soon as a chunked body
///   passes the limit.
/// - A body not received within [`Config::body_read_timeout`]: 408.
/// - More deliveries at once than [`Config::max_deliveries`], a delivery
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
    deliveries: Semaphore,
    retry_after: HeaderValue,
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
                deliveries: Semaphore::new(config.max_deliveries),
                config,
                retry_after,
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

    /// Answers one request.
    pub async fn handle<B>(&self, request: Request<B>) -> WebhookResponse
    where
        B: Body + Unpin,
        B::Data: Into<Bytes>,
    {
        match self.shared.admit(request) {
            Admit::Answer(response) => response,
            Admit::Deliver(parts, body, declared) => {
                let Ok(response) = Arc::clone(&self.shared)
                    .deliver(parts, body, declared)
                    .await;
                response
            }
        }
    }
}

/// What the checks that need no body decided.
enum Admit<B> {
    /// Answer now (health check, wrong route, method, type or length).
    Answer(WebhookResponse),
    /// A delivery to read and receive: the request's head, its body, and
    /// the length it declared.
    Deliver(Parts, B, Option<u64>),
}

impl Shared {
    /// The checks on the request's head, made before anything is read or
    /// any future is built, so a refused request costs no allocation.
    fn admit<B>(&self, request: Request<B>) -> Admit<B> {
        let (parts, body) = request.into_parts();
        let path = parts.uri.path();
        if path == "/healthz" && matches!(parts.method, Method::GET | Method::HEAD) {
            return Admit::Answer(text(StatusCode::OK, "ok"));
        }
        if !self.is_webhook_path(path) {
            tracing::debug!(status = 404, "no route for this path");
            return Admit::Answer(text(StatusCode::NOT_FOUND, "not found"));
        }
        if parts.method != Method::POST {
            tracing::debug!(status = 405, method = %parts.method, "method not allowed");
            let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "only POST is accepted");
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("POST"));
            return Admit::Answer(response);
        }
        if !is_json(parts.headers.get(CONTENT_TYPE)) {
            tracing::warn!(status = 415, "content type is not JSON");
            return Admit::Answer(text(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "content type must be application/json",
            ));
        }
        let declared = content_length(&parts.headers);
        if declared.is_some_and(|len| len > self.config.body_limit as u64) {
            return Admit::Answer(too_large(self.config.body_limit));
        }
        Admit::Deliver(parts, body, declared)
    }

    /// Reads the body and hands the delivery to the receiver, within the
    /// delivery slots and the delivery timeout.
    ///
    /// This future is what hyper boxes per request, so it is kept small
    /// (under 1 KiB: see `future_sizes` below): it owns the request's head
    /// once, the body reader's state is gone before the receiver runs, and
    /// the receiver's own future is boxed apart. Both allocations then come
    /// from glibc's per-thread cache; one larger block cost a trip through
    /// the allocator's bins per request, and made it merge the small blocks
    /// a typed view had just freed.
    async fn deliver<B>(
        self: Arc<Self>,
        parts: Parts,
        body: B,
        declared: Option<u64>,
    ) -> Result<WebhookResponse, Infallible>
    where
        B: Body + Unpin,
        B::Data: Into<Bytes>,
    {
        let Ok(_permit) = self.deliveries.try_acquire() else {
            tracing::warn!(status = 503, "too many deliveries at once");
            return Ok(self.unavailable("too many deliveries at once; please retry"));
        };
        let delivered = tokio::time::timeout(
            self.config.delivery_timeout,
            Box::pin(async {
                let body = match self.read_body(body, declared).await {
                    Ok(body) => body,
                    Err(response) => return response,
                };
                let delivery = Delivery {
                    method: &parts.method,
                    path: parts.uri.path(),
                    headers: &parts.headers,
                    body,
                };
                let outcome = Box::pin(self.receiver.receive(delivery)).await;
                // `Outcome::body` is "OK" on success: answer with the static
                // bytes instead of allocating the same two bytes per delivery.
                let body = if outcome.status().is_success() {
                    Bytes::from_static(b"OK")
                } else {
                    Bytes::from(outcome.body())
                };
                let mut response = text(outcome.status(), body);
                if outcome.status() == StatusCode::SERVICE_UNAVAILABLE {
                    response
                        .headers_mut()
                        .insert(RETRY_AFTER, self.retry_after.clone());
                }
                response
            }),
        )
        .await;
        Ok(delivered.unwrap_or_else(|_| {
            tracing::error!(status = 503, "delivery timed out; handlers cancelled");
            self.unavailable("delivery timed out; please redeliver")
        }))
    }

    /// The whole body, or the response refusing it.
    async fn read_body<B>(&self, body: B, declared: Option<u64>) -> Result<RawBody, WebhookResponse>
    where
        B: Body + Unpin,
        B::Data: Into<Bytes>,
    {
        let limit = self.config.body_limit;
        // Its own, shorter limit: the body comes before the signature is
        // checked, so anyone can send it slowly. A body that is in already
        // (the usual case) is taken without building a timer, which costs a
        // clock reading and a timer entry per delivery.
        let mut reading = std::pin::pin!(read_limited(body, limit, declared));
        let first = std::future::poll_fn(|cx| Poll::Ready(reading.as_mut().poll(cx))).await;
        let read = match first {
            Poll::Ready(read) => Ok(read),
            // Boxed: only a body still on its way needs the timer, and
            // its room in this future would be paid by every delivery.
            Poll::Pending => {
                Box::pin(tokio::time::timeout(self.config.body_read_timeout, reading)).await
            }
        };
        match read {
            Ok(Ok(body)) => Ok(body),
            Ok(Err(BodyError::TooLarge)) => Err(too_large(limit)),
            Ok(Err(BodyError::Broken)) => {
                tracing::debug!(status = 400, "body could not be read");
                Err(text(
                    StatusCode::BAD_REQUEST,
                    "request body could not be read",
                ))
            }
            Err(_) => {
                tracing::warn!(status = 408, "body not received in time");
                Err(text(
                    StatusCode::REQUEST_TIMEOUT,
                    "request body not received in time",
                ))
            }
        }
    }

    /// `<prefix>/<id>` or `<prefix>/<id>/`, with a non-empty id of one segment.
    fn is_webhook_path(&self, path: &str) -> bool {
        let Some(rest) = path.strip_prefix(self.config.prefix.as_str()) else {
            return false;
        };
        let Some(id) = rest.strip_prefix('/') else {
            return false;
        };
        let id = id.strip_suffix('/').unwrap_or(id);
        // A plain loop: for an id this short, `contains`'s `memchr` call
        // costs more than the search.
        !id.is_empty() && !id.bytes().any(|b| b == b'/')
    }

    fn unavailable(&self, message: &'static str) -> WebhookResponse {
        let mut response = text(StatusCode::SERVICE_UNAVAILABLE, message);
        response
            .headers_mut()
            .insert(RETRY_AFTER, self.retry_after.clone());
        response
    }
}

fn too_large(limit: usize) -> WebhookResponse {
    tracing::warn!(status = 413, limit, "body over the limit");
    text(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("body is larger than the {limit} byte limit"),
    )
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

fn text(status: StatusCode, body: impl Into<Bytes>) -> WebhookResponse {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

impl fmt::Debug for WebhookService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookService")
            .field("receiver", &self.shared.receiver)
            .field("config", &self.shared.config)
            .finish()
    }
}

pub(crate) type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<WebhookResponse, Infallible>> + Send>>;

impl<B> hyper::service::Service<Request<B>> for WebhookService
where
    B: Body + Send + Unpin + 'static,
    B::Data: Into<Bytes> + Send,
{
    type Response = WebhookResponse;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn call(&self, request: Request<B>) -> Self::Future {
        match self.shared.admit(request) {
            Admit::Answer(response) => Box::pin(std::future::ready(Ok(response))),
            Admit::Deliver(parts, body, declared) => {
                Box::pin(Arc::clone(&self.shared).deliver(parts, body, declared))
            }
        }
    }
}

impl<B> tower_service::Service<Request<B>> for WebhookService
where
    B: Body + Send + Unpin + 'static,
    B::Data: Into<Bytes> + Send,
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

    /// The future hyper boxes per delivery stays under glibc's per-thread
    /// cache limit (1,032 bytes with its header), and so does the
    /// receiver's, boxed apart (see `Shared::deliver`).
    #[test]
    fn future_sizes() {
        let service = WebhookService::new(Receiver::new(
            ricloud_webhook::Verifier::new(ricloud_webhook::Secret::new("s").expect("secret")),
            ricloud_webhook::Dispatcher::new(),
        ));
        let request = Request::post("/webhooks/e")
            .header(CONTENT_TYPE, "application/json")
            .body(http_body_util::Full::new(Bytes::new()))
            .expect("request");
        let Admit::Deliver(parts, body, declared) = service.shared.admit(request) else {
            panic!("a delivery");
        };
        let fits = |name: &str, size: usize| assert!(size <= 1016, "{name}: {size} bytes");
        let delivering = Arc::clone(&service.shared).deliver(parts, body, declared);
        fits("delivery", std::mem::size_of_val(&delivering));
        let headers = http::HeaderMap::new();
        let receiving = service.receiver().receive(Delivery {
            method: &Method::POST,
            path: "/webhooks/e",
            headers: &headers,
            body: RawBody::new(),
        });
        fits("receiver", std::mem::size_of_val(&receiving));
    }

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
