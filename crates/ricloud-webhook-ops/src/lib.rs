//! Operating a ricloud webhook receiver: one **admin listener** per process
//! and the process's **logging**.
//!
//! The admin listener ([`Admin`]) is a separate address from the public
//! webhook listener (loopback by default, [`admin_addr_from_env`]) and
//! carries:
//!
//! - `GET /metrics`: the Prometheus text format, from the `metrics`
//!   facade's recorder that [`Admin::install`] installs (histograms as
//!   buckets, so they aggregate across replicas);
//! - `GET /healthz`: 200 while the process serves at all;
//! - `GET /readyz`: 200 when every readiness check passes, else 503 with
//!   the failing checks (shutting down, the inbox's database unreachable);
//! - whatever else [`Admin::routes`] adds, such as the inbox console
//!   (`ricloud_webhook_inbox::console`, feature `console`).
//!
//! The library crates record their metrics through the facade and record
//! nothing until a recorder is installed; see the README's "Operating it"
//! for each metric and what to alert on.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! ricloud_webhook_ops::init_logging()?;
//! let admin = ricloud_webhook_ops::Admin::install()?
//!     .ready_when("example", || async { Ok(()) });
//! if let Some(addr) = ricloud_webhook_ops::admin_addr_from_env()? {
//!     let listener = tokio::net::TcpListener::bind(addr).await?;
//!     tokio::spawn(admin.serve(listener, std::future::pending()));
//! }
//! # Ok(()) }
//! ```

mod admin;
mod logging;

pub use admin::{admin_addr_from_env, Admin, AdminError, ADMIN_ADDR_ENV, DEFAULT_ADMIN_ADDR};
pub use logging::{init_logging, LogError, LOG_FORMAT_ENV};
