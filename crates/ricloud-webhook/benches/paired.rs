//! Verification against its limit, measured in interleaved pairs.
//!
//! criterion measures one routine after another, so on a shared machine
//! whose speed drifts (this one's moves by 10 % within a minute) the limit
//! and `verify_at` of one size can be measured at different speeds, and
//! their ratio moves with the drift. Here the two alternate: each round
//! times a batch of the bare HMAC (the limit) and a batch of `verify_at`
//! back to back, the order swapped every round, and the ratio of each
//! round is kept. The median of the rounds' ratios is the figure for the
//! targets (BENCHMARKS.md), the quartiles say how far the machine moved.
//!
//! The same way, the typed views of a 1 KiB `task.succeeded` event's
//! `data` as the crate reads them (`Event::data_as`) against serde_json
//! reading the same text, the way the crate did before.
//!
//! Run with `cargo bench -p ricloud-webhook --bench paired` (`-- 64B` for
//! one size, `-- view` for the views; `PAIRED_ROUNDS` sets the rounds, 41
//! by default).

use std::hint::black_box;
use std::time::{Duration, Instant, UNIX_EPOCH};

use anyhow::{ensure, Context as _};
use hmac::{Hmac, Mac};
use ricloud_webhook::{sign, Event, Secret, Task, Verifier};
use serde::de::DeserializeOwned;
use sha2::Sha256;

mod common;
use common::{body_of, task_template};

const SECRET: &str = "nImrOk-vkjdfLCJQ4GFblOo-8Lw2DGmm";
const T: u64 = 1_896_602_237;

/// How long one batch of one routine runs.
const BATCH: Duration = Duration::from_millis(4);

/// The targets of the issue: verify within this factor of the limit.
const SIZES: [(&str, usize, f64); 4] = [
    ("64B", 64, 1.25),
    ("1KiB", 1024, 1.10),
    ("64KiB", 64 * 1024, 1.10),
    ("1MiB", 1024 * 1024, 1.10),
];

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; anything else is a filter on the size.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let rounds = match std::env::var("PAIRED_ROUNDS") {
        Ok(n) => n.parse().context("PAIRED_ROUNDS must be a number")?,
        Err(_) => 41,
    };
    ensure!(rounds >= 3, "PAIRED_ROUNDS must be at least 3");
    let secret = Secret::new(SECRET)?;
    let verifier = Verifier::new(secret.clone());
    let keyed = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).context("hmac key")?;
    let prefix = format!("{T}.");
    let now = UNIX_EPOCH + Duration::from_secs(T);

    println!("| body | limit (bare HMAC, pre-keyed) | `verify_at` | verify / limit, median of {rounds} paired rounds | quartiles | target |");
    println!("|---|---|---|---|---|---|");
    for (name, len, target) in SIZES {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let body = body_of(len);
        let header = sign(&secret, T, &body).to_string();
        let header = header.as_bytes();
        // Both routines must be on their success path, and agree.
        let verified = verifier.verify_at(Some(header), body.clone(), now);
        ensure!(verified.is_ok(), "the {name} delivery does not verify");
        let limit = || {
            let mut mac = black_box(&keyed).clone();
            mac.update(prefix.as_bytes());
            mac.update(black_box(&body));
            black_box(mac.finalize().into_bytes());
        };
        let verify = || {
            let _ = black_box(verifier.verify_at(black_box(Some(header)), body.clone(), now));
        };
        let result = paired(rounds, limit, verify);
        let verdict = if result.ratio <= target {
            "met"
        } else {
            "missed"
        };
        println!(
            "| {name} | {} | {} | {:.3}x | {:.3}x to {:.3}x | <= {target:.2}x: {verdict} |",
            nanos(result.a),
            nanos(result.b),
            result.ratio,
            result.low,
            result.high,
        );
    }
    if filter.is_empty() || filter.iter().any(|f| "view".contains(f.as_str())) {
        views(rounds)?;
    }
    Ok(())
}

/// The views of `data`: serde_json against the crate's reader.
fn views(rounds: usize) -> anyhow::Result<()> {
    let event = Event::from_json(task_template()?.into_bytes())?;
    println!();
    println!("| view of a 1 KiB `task.succeeded` | serde_json | `Event::data_as` | ours / serde_json, median of {rounds} paired rounds | quartiles |");
    println!("|---|---|---|---|---|");
    view::<Task>(&event, "`Task`", rounds)?;
    view::<serde_json::Value>(&event, "`serde_json::Value`", rounds)?;
    Ok(())
}

fn view<T: DeserializeOwned + PartialEq>(
    event: &Event,
    name: &str,
    rounds: usize,
) -> anyhow::Result<()> {
    let reference = serde_json::from_str::<T>(event.data_json())?;
    ensure!(
        event.data_as::<T>().ok() == Some(reference),
        "{name}: not the same view"
    );
    let serde = || {
        black_box(serde_json::from_str::<T>(black_box(event).data_json()).is_ok());
    };
    let ours = || {
        black_box(black_box(event).data_as::<T>().is_ok());
    };
    let result = paired(rounds, serde, ours);
    println!(
        "| {name} | {} | {} | {:.3}x | {:.3}x to {:.3}x |",
        nanos(result.a),
        nanos(result.b),
        result.ratio,
        result.low,
        result.high,
    );
    Ok(())
}

/// Medians of the per-call times of `a` and `b` and of the rounds' ratios
/// `b / a`, with the ratios' quartiles.
struct Paired {
    a: f64,
    b: f64,
    ratio: f64,
    low: f64,
    high: f64,
}

fn paired(rounds: usize, mut a: impl FnMut(), mut b: impl FnMut()) -> Paired {
    let calls = calls_per_batch(&mut a).max(calls_per_batch(&mut b));
    let time = |f: &mut dyn FnMut()| {
        let start = Instant::now();
        for _ in 0..calls {
            f();
        }
        start.elapsed().as_secs_f64() * 1e9 / calls as f64
    };
    // One round of each to warm up, not kept.
    time(&mut a);
    time(&mut b);
    let (mut ta, mut tb, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let (x, y) = if round % 2 == 0 {
            let x = time(&mut a);
            (x, time(&mut b))
        } else {
            let y = time(&mut b);
            (time(&mut a), y)
        };
        ta.push(x);
        tb.push(y);
        ratios.push(y / x);
    }
    Paired {
        a: quantile(&mut ta, 0.5),
        b: quantile(&mut tb, 0.5),
        ratio: quantile(&mut ratios, 0.5),
        low: quantile(&mut ratios, 0.25),
        high: quantile(&mut ratios, 0.75),
    }
}

/// How many calls of `f` take about [`BATCH`].
fn calls_per_batch(f: &mut impl FnMut()) -> u64 {
    let mut calls = 1u64;
    loop {
        let start = Instant::now();
        for _ in 0..calls {
            f();
        }
        let took = start.elapsed();
        if took >= BATCH / 4 || calls >= 1 << 30 {
            let per_call = took.as_secs_f64() / calls as f64;
            return ((BATCH.as_secs_f64() / per_call) as u64).max(1);
        }
        calls *= 4;
    }
}

/// The `q` quantile of `values` (nearest rank).
fn quantile(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let rank = ((values.len() - 1) as f64 * q).round() as usize;
    values[rank]
}

fn nanos(ns: f64) -> String {
    if ns >= 10_000.0 {
        format!("{:.1} µs", ns / 1000.0)
    } else {
        format!("{ns:.0} ns")
    }
}
