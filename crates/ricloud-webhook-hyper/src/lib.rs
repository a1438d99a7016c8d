//! The listening endpoint for ricloud webhooks: a hyper 1.x (and tower)
//! service over the [`ricloud_webhook`] receiver, with every network limit.
//!
//! ```no_run
//! use ricloud_webhook::{Dispatcher, Receiver, Secret, Task, Verifier};
//! use ricloud_webhook_hyper::{serve, Config, WebhookService};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let secret = Secret::new(std::env::var("RICLOUD_WEBHOOK_SECRET")?)?;
//!     let dispatcher = Dispatcher::new().on("task.succeeded", |task: Task| async move {
//!         println!("task {} succeeded", task.id);
//!         Ok(())
//!     });
//!     let service = WebhookService::with_config(
//!         Receiver::new(Verifier::new(secret), dispatcher),
//!         Config::default(),
//!     );
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//!     serve(listener, service, ricloud_webhook_hyper::shutdown_signal()?).await?;
//!     Ok(())
//! }
//! ```
//!
//! # Routes and statuses
//!
//! | request | answer |
//! |---|---|
//! | `POST <prefix>/<event id>` (prefix `/webhooks` by default) | the core's status table: 200 (inline: handled; queued: committed to the inbox), 400, 401, 500, 503 (a store or database error among them; every 503 carries `Retry-After`) |
//! | `GET /healthz` | 200 |
//! | other method on the webhook path | 405 with `Allow: POST` |
//! | other path | 404 |
//! | content type not JSON | 415 |
//! | body over [`Config::body_limit`] (1 MiB) | 413, before reading when `Content-Length` says so |
//! | body not received within [`Config::body_read_timeout`] (10 s) | 408 |
//! | byte budget spent for [`Config::budget_wait`], more than [`Config::max_deliveries`] verified deliveries at once, handlers over [`Config::delivery_timeout`], shutting down | 503 with `Retry-After` |
//!
//! # Mounting in your own server
//!
//! [`WebhookService`] implements `hyper::service::Service` and
//! `tower::Service` for any request body, so it can be given to hyper's
//! connection builders or mounted in axum with
//! `Router::route_service("/webhooks/{id}", service)`. The service sees
//! the full path: mount it at its prefix, not with `nest_service`, and make
//! [`Config::prefix`] the route's (a request outside it is answered 404,
//! and the first one is logged at WARN with what was expected).
//!
//! What belongs to [`serve`] and is then the application's to do:
//! [`Receiver::begin_shutdown`](ricloud_webhook::Receiver::begin_shutdown)
//! when draining starts (new deliveries get 503), a `/healthz` route of its
//! own if its load balancer wants one, and the connection limits and
//! timeouts below. `examples/axum.rs` does all of it and is compiled into
//! this crate's tests.
//!
//! # TLS
//!
//! With the `tls` feature, [`serve_tls`] terminates TLS itself (rustls,
//! HTTP/2 by ALPN), and [`TlsFiles`] reads the certificate chain and key
//! from PEM files and reads them again on [`TlsFiles::reload`] (the
//! example receiver calls it on SIGHUP, through
//! [`reload_or_shutdown_signal`]) without dropping a connection.
//!
//! # Metrics
//!
//! Every answer to a delivery is counted in
//! `ricloud_webhook_deliveries_total{status, reason}` and timed in
//! `ricloud_webhook_delivery_seconds` ([`telemetry`]), through the
//! `metrics` facade: nothing is recorded until the application installs a
//! recorder. Each answer also carries its reason in the
//! `Ricloud-Webhook-Outcome` header (`ok`, `duplicate`, `bad_signature`, ...).
//!
//! # Security: strangers cannot shut the API out
//!
//! Anyone can send a request; only the API holds the secret. What a sender
//! without it can make this process hold is bounded, and the API's
//! deliveries get through while it tries:
//!
//! - **Bodies** are read only as the byte budget allows
//!   ([`Config::body_budget`], 64 MiB for all bodies not verified yet). A
//!   body is paid for as its bytes arrive and given back once its
//!   signature is checked; when the budget is spent, the next frame is not
//!   read, so the rest waits in the kernel's socket buffers, not here.
//!   Small bodies (the API's events are a few KiB) have a share of their
//!   own ([`Config::small_body_share`], 16 MiB), so large uploads cannot
//!   starve them. A delivery that finds no room within
//!   [`Config::budget_wait`] gets 503, and an upload that has not finished
//!   within [`Config::body_read_timeout`] gets 408 and gives its bytes back.
//! - **Delivery slots** ([`Config::max_deliveries`]) are taken only after
//!   verification, so strangers never hold one.
//! - **Connections** ([`serve`]): at most [`Config::max_connections`]
//!   (1024), and at most [`Config::max_connections_per_ip`] (256) from
//!   one address (an IPv6 /64 counts as one; more are sent a 503 and
//!   closed at once), so one host cannot hold them all; hyper's HTTP/1 read buffer is capped at 64 KiB and HTTP/2
//!   windows at 64 KiB, at most [`Config::max_concurrent_streams`] (64)
//!   streams per connection; headers must arrive within
//!   [`Config::header_read_timeout`], and a connection with nothing in
//!   progress is closed after [`Config::idle_timeout`].
//! - **Headers**: an HTTP/1 head fits the 64 KiB read buffer with at most
//!   [`Config::max_headers`] (64) headers; an HTTP/2 request's decoded
//!   header list is at most [`Config::max_header_list_size`] (16 KiB).
//! - **Requests in progress**, over every connection and stream: at most
//!   [`Config::max_requests`] (1024), and [`Config::max_requests_per_ip`]
//!   (128) from one address; past either, 503 with `Retry-After` before
//!   the body is read.
//!
//! Memory is therefore bounded by about `body_budget + max_connections ×
//! 64 KiB + max_requests × 16 KiB` for everything strangers can send
//! (144 MiB with the defaults), plus, for verified deliveries only,
//! `max_deliveries × body_limit`. The example receiver's test runs 300
//! connections that each send most of a 1 MiB body and hold it, and checks
//! that it stays under 128 MiB and answers signed deliveries sent meanwhile
//! with 200.
//!
//! What these limits cannot do: a sender with many addresses (a botnet, or
//! many IPv6 networks) can still fill [`Config::max_connections`]; limits
//! beyond that belong in the proxy or load balancer in front. Behind a
//! reverse proxy every connection comes from the proxy's address: raise
//! [`Config::max_connections_per_ip`] and [`Config::max_requests_per_ip`]
//! to the totals there. Refusals a stranger can cause are logged at
//! `DEBUG`; logs never hold the secret, a signature or the body.
//!
//! # Feature flags
//!
//! | flag | default | what |
//! |---|---|---|
//! | `tls` | no | [`serve_tls`] and [`TlsFiles`] (rustls; the application installs its crypto provider) |
//!
//! # Minimum supported Rust version
//!
//! Rust 1.94 (the workspace's; sqlx 0.9 in `ricloud-webhook-inbox` sets it).

mod body;
mod config;
mod serve;
mod service;
mod signal;
pub mod telemetry;
#[cfg(feature = "tls")]
mod tls;

pub use config::{Config, SMALL_BODY};
pub use serve::serve;
#[cfg(feature = "tls")]
pub use serve::serve_tls;
pub use service::{WebhookResponse, WebhookService};
pub use signal::{reload_or_shutdown_signal, shutdown_signal};
#[cfg(feature = "tls")]
pub use tls::{TlsError, TlsFiles};
