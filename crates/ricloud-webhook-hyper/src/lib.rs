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
//!     serve(listener, service, async {
//!         let _ = tokio::signal::ctrl_c().await;
//!     })
//!     .await?;
//!     Ok(())
//! }
//! ```
//!
//! # Routes and statuses
//!
//! | request | answer |
//! |---|---|
//! | `POST <prefix>/<event id>` (prefix `/webhooks` by default) | the core's status table: 200, 400, 401, 500, 503 |
//! | `GET /healthz` | 200 |
//! | other method on the webhook path | 405 with `Allow: POST` |
//! | other path | 404 |
//! | content type not JSON | 415 |
//! | body over [`Config::body_limit`] (5 MiB) | 413, before reading when `Content-Length` says so |
//! | body not received within [`Config::body_read_timeout`] (10 s) | 408 |
//! | more than [`Config::max_deliveries`] at once, delivery over [`Config::delivery_timeout`], shutting down | 503 with `Retry-After` |
//!
//! # Mounting in your own server
//!
//! [`WebhookService`] implements `hyper::service::Service` and
//! `tower::Service` for any request body, so it can be given to hyper's
//! connection builders or mounted in axum with
//! `Router::route_service("/webhooks/{id}", service)` (the service sees the
//! full path, so mount it at its prefix, not with `nest_service`).
//!
//! # Security
//!
//! Memory per delivery is bounded by the body limit: a body that arrives
//! in several frames is kept in pieces of at most 64 KiB, hashed piece by
//! piece, and joined into one buffer only once its signature matched, so a
//! refused upload costs its length (rounded up to a piece) and no large
//! allocation; a signed one costs twice its length while it is joined.
//! Connections are bounded by
//! [`Config::max_connections`]; slow clients by the header read timeout
//! (counted from a connection's opening, before its protocol is known, and
//! over HTTP/1 from the end of its previous request; held by a watcher per
//! connection, not a timer per request), the body read timeout and the
//! delivery timeout;
//! connections with nothing in progress by [`Config::idle_timeout`]. An
//! error of the listener (out of file descriptors) pauses accepting for a
//! second instead of ending [`serve`] or spinning; when the shutdown grace
//! period is over, the connections still open are closed.
//!
//! What these limits cannot do: a delivery slot is taken before the body is
//! read (that is what bounds memory), so an unsigned client sending bodies
//! slowly holds slots for up to the body read timeout each, and enough
//! connections can keep every slot busy. Limits per client address belong
//! in the proxy or load balancer in front. Logs carry the status and reason of each rejection,
//! never the secret, a signature or the body.
//!
//! # Feature flags
//!
//! | flag | default | what |
//! |---|---|---|
//! | (none) | | no optional features |
//!
//! # Minimum supported Rust version
//!
//! Rust 1.85.

mod body;
mod config;
mod serve;
mod service;

pub use config::Config;
pub use serve::serve;
pub use service::{WebhookResponse, WebhookService};
