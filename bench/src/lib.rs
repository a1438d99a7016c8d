//! Benchmark tooling for the ricloud webhook endpoint: realistic signed
//! deliveries, latency statistics, and the small parsing helpers shared by
//! the `loadgen` and `bench-server` binaries.
//!
//! ```
//! use ricloud_webhook::Secret;
//! use ricloud_webhook_bench::{Deliveries, Summary};
//!
//! # fn main() -> anyhow::Result<()> {
//! let secret = Secret::new("bench-secret")?;
//! let deliveries = Deliveries::signed(&secret, 1_700_000_000, 4, 1)?;
//! assert_eq!(deliveries.len(), 4);
//! assert!(deliveries.get(0).body().len() > 1024);
//!
//! let summary = Summary::new(vec![3_000, 1_000, 2_000], 1.0);
//! assert_eq!(summary.p50_ns(), 2_000);
//! # Ok(())
//! # }
//! ```
//!
//! Run the whole comparison with `scripts/bench.sh`; see `BENCHMARKS.md`.
//! This crate is not published and nothing in CI depends on its timings.

mod deliveries;
mod stats;

pub use deliveries::{Deliveries, Prepared, TEMPLATE_ID};
pub use stats::{StatusCounts, Summary};
