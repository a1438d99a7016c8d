//! Receive webhooks from Reincubate's ricloud API: verify their signatures in
//! constant time, parse them into typed events, and dispatch them to your
//! async handlers, once per event: a redelivery of an event already handled
//! does not run them again.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::{Duration, UNIX_EPOCH};
//! use http::{HeaderMap, HeaderValue, Method, StatusCode};
//! use ricloud_webhook::{sign, Delivery, Dispatcher, Event, Receiver, Secret, Task, Verifier};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // What the API does: sign the body with the shared secret.
//! let secret = Secret::new("EZVNcphl95WzskoobnuXh_28qCZG_blz")?;
//! let body = br#"{"id": "d921bf95-cc9f-4851-b6ab-9f1ab79db4df", "resource": "event",
//!     "type": "task", "action": "succeeded", "data": {"id": "f3e4", "state": "succeeded"},
//!     "state": "pending", "retries": 0}"#;
//! let header = sign(&secret, 1_700_000_000, body);
//!
//! // What you do: a verifier for your secret, handlers, a receiver.
//! let verifier = Verifier::new(secret);
//! let dispatcher = Dispatcher::new()
//!     .on("task.succeeded", |task: Task| async move {
//!         assert_eq!(task.id, "f3e4");
//!         Ok(())
//!     })
//!     .on("*", |event: Arc<Event>| async move {
//!         println!("got {}", event.slug());
//!         Ok(())
//!     });
//! let receiver = Receiver::new(verifier, dispatcher);
//!
//! // One delivery, as an HTTP server hands it over.
//! let mut headers = HeaderMap::new();
//! headers.insert("ricloud-signature", HeaderValue::from_str(&header.to_string())?);
//! let delivery = |body: &'static [u8]| Delivery {
//!     method: &Method::POST,
//!     path: "/webhooks/d921bf95-cc9f-4851-b6ab-9f1ab79db4df",
//!     headers: &headers,
//!     body: body.into(),
//! };
//! let now = UNIX_EPOCH + Duration::from_secs(1_700_000_030);
//! let rt = tokio::runtime::Builder::new_current_thread().build()?;
//!
//! let outcome = rt.block_on(receiver.receive_at(delivery(body), now));
//! assert_eq!(outcome.status(), StatusCode::OK);
//! assert_eq!(outcome.slug().as_deref(), Some("task.succeeded"));
//!
//! // A redelivery is acknowledged without running the handlers again.
//! let again = rt.block_on(receiver.receive_at(delivery(body), now));
//! assert_eq!(again.status(), StatusCode::OK);
//! assert_eq!(again.body(), "OK");
//!
//! // A forged or tampered body is refused.
//! let tampered = rt.block_on(receiver.receive_at(delivery(b"{}"), now));
//! assert_eq!(tampered.status(), StatusCode::UNAUTHORIZED);
//! # Ok(())
//! # }
//! ```
//!
//! This crate has no sockets and no async runtime: it takes request parts and
//! returns an [`Outcome`]. What a delivery can end as, why, and what the
//! endpoint answers is one vocabulary, [`Reason`]: see its module's table. The `ricloud-webhook-hyper` crate is the listening
//! endpoint built on it.
//!
//! # Security
//!
//! - **What is signed.** `Ricloud-Signature: t=<unix seconds>,s=<base64>` with
//!   `s = HMAC-SHA256(secret, "<t>.<raw body>")`. The body and the timestamp
//!   are covered; the URL path, the other headers and the method are not.
//!   That is why the receiver requires the event id in the path to equal the
//!   `id` inside the signed body.
//! - **Constant time.** HMAC-SHA256 is RustCrypto's `hmac` over `sha2`; the
//!   tag is compared by `hmac`'s `verify_slice` (`subtle`'s constant-time
//!   equality). The header is parsed strictly, its tag decoded by the
//!   `base64` crate; lengths are public and may exit early.
//! - **Keys.** Each secret is keyed into an HMAC state once, at
//!   construction, and each verification clones that state. The states sign
//!   as well as the secrets do, so they are treated like them: each lives
//!   in a heap slot of its own that never moves (adding a previous secret
//!   moves only pointers), `hmac` and `sha2` wipe it and every per-delivery
//!   clone on drop (their `zeroize` features), [`Secret`] wipes its bytes,
//!   and the stack that keying used is overwritten afterwards (`hmac`
//!   leaves its padded key blocks there). The `key-wipe` check
//!   (`checks/key-wipe`, run by CI) makes sure of it: it scans every heap
//!   block the process frees, and the stack below a verification, for the
//!   key's bytes and its keyed states.
//! - **Order.** The signature is checked before the timestamp, so nothing
//!   about the window is revealed to a sender without the secret.
//! - **Replay window.** By default a timestamp more than 600 s old (ricloud-py's
//!   default) or more than 300 s ahead is refused ([`TimeWindow`]). Within the
//!   window, a replayed event is caught by deduplication on its id
//!   ([`DeliveryStore`]); the in-memory store never forgets an id inside the
//!   window, and answers 503 when it is full instead.
//! - **Fail closed.** A [`Verifier`] cannot be built without a secret, and a
//!   [`Secret`] cannot be empty. Handlers only ever run on a [`VerifiedEvent`],
//!   which only a successful verification produces, or on a [`StoredEvent`],
//!   which a store builds only from bytes it verified before committing. A store error is never
//!   an acknowledgement: it is answered 503.
//! - **No leaks.** [`Secret`] prints `[redacted]` and has no `Display`. No
//!   error, log line or panic message holds a secret, an expected
//!   signature or the body.
//!
//! # Status table
//!
//! | status | when |
//! |---|---|
//! | 200 | inline: handled; a duplicate of an event already handled; no handler matches (unknown slugs included, and `webhook_config.test` with no handler); a handler gave up with [`HandlerError::give_up`]; the data does not fit a handler's typed view (logged at ERROR with the event id and the view; [`OnViewMismatch::Redeliver`] makes it 500). Queued: the verified event is committed to the [`EventQueue`], or a copy of it already was |
//! | 400 | malformed signature header; verified body that is not an event (an `id`, `type` or `action` with a control character or over [`Event::MAX_NAME_LEN`] bytes included: it cannot be stored or logged safely); path id different from body id |
//! | 401 | missing signature header; no secret matches; timestamp outside the window |
//! | 404 | no event id in the path: the receiver takes the last non-empty segment (one trailing `/` allowed) as the id and knows no prefix; the adapter answers 404 for every path but `<prefix>/<id>`. With several configs ([`Verifiers::named`]), a segment before the id that names no config served |
//! | 405 | method other than POST |
//! | 500 | inline: a handler asked for redelivery or panicked |
//! | 503 | shutting down; the store is full of events inside the replay window; the store or the queue failed (a database error); another replica is handling the event |
//!
//! # Modes, and what a 200 means
//!
//! - **Inline** ([`Receiver::new`], [`Receiver::inline`]): the handlers
//!   run before the answer. A 200 means they ran to an outcome that needs
//!   no redelivery and the [`DeliveryStore`] recorded the event as handled.
//!   With the default [`MemoryStore`] that record is in this process only;
//!   a durable store (`ricloud-webhook-inbox`) keeps it across restarts
//!   and replicas.
//! - **Queued** ([`Receiver::queued`]): a verified event is handed to an
//!   [`EventQueue`] and answered 200 once the queue has committed it;
//!   workers of the queue run the handlers afterwards, and nothing they do
//!   changes the answer. *Acknowledged* then means stored durably, to be
//!   run until done. `ricloud-webhook-inbox` provides the queue.
//!
//! In both, a store or queue error is answered 503 (the adapter adds
//! `Retry-After`), never 200. The adapter also adds 408, 413, 415, and 503
//! for overload and handler timeouts.
//!
//! # Several webhook configs
//!
//! A receiver built with [`Verifiers::named`] serves several webhook
//! configs, each on its own path (`<prefix>/<config name>/<event id>`) with
//! its own secrets: one config's secret is refused on another's path. The
//! name is the event's [`Event::config`], which durable stores record.
//!
//! # Metrics
//!
//! Handler runs and their time, and which secret verified each delivery,
//! are recorded through the `metrics` facade ([`telemetry`]); nothing is
//! recorded until the application installs a recorder.
//!
//! # Handlers
//!
//! [`Dispatcher::on`] takes a pattern (`"task.succeeded"`, `"task.*"`, `"*"`)
//! and an async function of `Arc<Event>`, a typed view ([`Task`], [`Poll`],
//! [`Session`], [`WebhookConfig`]) or a pair of them. Every matching handler
//! runs; any failure that asks for redelivery fails the delivery, and the
//! event stays redeliverable. Concurrent deliveries of one event id run the
//! handlers once: with the [`MemoryStore`] the second waits for the first's
//! outcome; with a store shared by replicas (the inbox) it is answered 503
//! ([`Reason::Busy`]) and delivered again later.
//!
//! # Feature flags
//!
//! | flag | default | what |
//! |---|---|---|
//! | (none) | | the crate has no optional features |
//!
//! # Minimum supported Rust version
//!
//! Rust 1.94 (the workspace's; sqlx 0.9 in `ricloud-webhook-inbox` sets it).

mod dispatch;
mod event;
mod key;
mod outcome;
mod receiver;
pub mod resources;
mod secret;
mod signature;
mod store;
pub mod telemetry;
mod verified;
mod verifiers;
mod verify;

pub use dispatch::{
    BoxFuture, Dispatcher, FromEvent, Handler, HandlerError, HandlerResult, OnViewMismatch,
    SlugPattern,
};
pub use event::{Event, EventData, EventError, ViewError};
pub use outcome::{Outcome, Reason};
pub use receiver::{Delivery, Receiver};
pub use resources::{Poll, Session, Task, WebhookConfig};
pub use secret::{Secret, SecretError};
pub use signature::{sign, HeaderError, SignatureHeader};
pub use store::{
    Claim, DeliveryStore, Enqueued, EventQueue, InFlight, MemoryStore, StoreError, StoreFuture,
};
pub use verified::{StoredEvent, VerifiedEvent};
pub use verifiers::{ConfigNameError, Verifiers};
pub use verify::{TimeWindow, VerifiedBody, Verifier, VerifyError};

/// Re-exported for callers that build [`Delivery`] values.
pub use bytes::Bytes;
