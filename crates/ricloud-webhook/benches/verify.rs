//! Verification against its limit, parsing, dispatch overhead and tag
//! comparison, in one criterion run so the ratios compare like with like.
//!
//! Run with `cargo bench -p ricloud-webhook --bench verify`; pass a filter
//! (`-- sha256_limit/1KiB`) to run part of it. Groups:
//!
//! - `sha256_limit/<size>`: `Verifier::verify_at` on a signed delivery, the
//!   bare HMAC-SHA256 of `"<t>.<body>"` from a pre-keyed state cloned per
//!   message (the limit), and HMAC keyed per message (naive).
//! - `pipeline`: `Event::from_json` (alone, then the owned `Task` view, then
//!   the same fields borrowed with `Event::data_borrowed`), verify alone, verify then parse, and
//!   `Receiver::receive_at` with one trivial handler, each on a fresh ~1 KiB
//!   `task.succeeded` delivery with a new event id per iteration.
//! - `tag_compare`: the 32-byte tag comparison on its own, four ways.
//! - `store`: `MemoryStore` claim then finish of a new UUID-shaped id, as
//!   each delivery does, in a store full at 1,000 and at 100,000 ids (the
//!   default), so each one also evicts the oldest.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{ensure, Context as _};
use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput};
use hmac::digest::generic_array::GenericArray;
use hmac::digest::CtOutput;
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use ricloud_webhook::{
    sign, Delivery, Dispatcher, Event, FromEvent, Receiver, Secret, SignatureHeader, Task,
    VerifiedEvent, Verifier, SIGNATURE_HEADER,
};
use sha2::Sha256;
use subtle::{Choice, ConstantTimeEq};

mod common;
use common::{body_of, task_template, TEMPLATE_ID};

const SECRET: &str = "nImrOk-vkjdfLCJQ4GFblOo-8Lw2DGmm";
const T: u64 = 1_896_602_237;

fn main() -> anyhow::Result<()> {
    let secret = Secret::new(SECRET)?;
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(4))
        .configure_from_args();
    sha256_limit(&mut c, &secret)?;
    pipeline(&mut c, &secret)?;
    tag_compare(&mut c);
    store(&mut c);
    c.final_summary();
    Ok(())
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn sha256_limit(c: &mut Criterion, secret: &Secret) -> anyhow::Result<()> {
    let verifier = Verifier::new(secret.clone());
    let keyed = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).context("hmac key")?;
    let prefix = format!("{T}.");
    for (name, len) in [
        ("64B", 64),
        ("1KiB", 1024),
        ("64KiB", 64 * 1024),
        ("1MiB", 1024 * 1024),
    ] {
        let body = body_of(len);
        let header = sign(secret, T, &body).to_string();
        let header = header.as_bytes();
        // What each routine measures must be the success path.
        ensure!(verifier
            .verify_at(Some(header), body.clone(), at(T))
            .is_ok());

        let mut group = c.benchmark_group(format!("sha256_limit/{name}"));
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_function("verify_at", |b| {
            b.iter(|| black_box(verifier.verify_at(black_box(Some(header)), body.clone(), at(T))));
        });
        // The two halves of `verify_at`: the tag of the message (what
        // `Verifier::sign` computes, decimal timestamp included) and
        // parsing the header.
        group.bench_function("part_verifier_sign", |b| {
            b.iter(|| black_box(verifier.sign(black_box(T), &body)));
        });
        group.bench_function("part_header_parse", |b| {
            b.iter(|| black_box(SignatureHeader::parse(black_box(header))));
        });
        group.bench_function("hmac_prekeyed_clone", |b| {
            b.iter(|| {
                let mut mac = black_box(&keyed).clone();
                mac.update(prefix.as_bytes());
                mac.update(black_box(&body));
                black_box(mac.finalize().into_bytes())
            });
        });
        group.bench_function("hmac_rekeyed_naive", |b| {
            b.iter(|| {
                let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(black_box(SECRET.as_bytes()))
                else {
                    unreachable!("HMAC takes keys of any length")
                };
                mac.update(prefix.as_bytes());
                mac.update(black_box(&body));
                black_box(mac.finalize().into_bytes())
            });
        });
        group.finish();
    }
    Ok(())
}

/// The envelope parsed straight into a typed view (reference only).
#[derive(serde::Deserialize)]
struct TypedEnvelope {
    #[serde(rename = "id")]
    _id: String,
    #[serde(rename = "type")]
    _kind: String,
    #[serde(rename = "action")]
    _action: String,
    #[serde(rename = "data")]
    _data: Task,
}

/// The envelope as serde_json's derive reads it with `data` kept raw: what
/// `Event::from_json` did before its own reader (reference only).
#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct SerdeEnvelope<'a> {
    id: String,
    #[serde(default)]
    resource: Option<String>,
    #[serde(rename = "type")]
    kind: String,
    action: String,
    #[serde(default, borrow)]
    data: Option<&'a serde_json::value::RawValue>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    retries: Option<u64>,
    #[serde(default)]
    date_created: Option<String>,
    #[serde(default)]
    date_delivered: Option<String>,
}

/// The fields of `Task` (and of its results) as a view that borrows its
/// text from the event (`Event::data_borrowed`), for the cost of the owned
/// view's strings. Ids as `Cow` (the borrowing that survives an escape),
/// the rest as `Option<&str>` (serde cannot borrow through `Option<Cow>`).
#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct TaskRef<'a> {
    #[serde(borrow)]
    id: std::borrow::Cow<'a, str>,
    resource: Option<&'a str>,
    organisation: Option<serde_json::Number>,
    key: Option<serde_json::Number>,
    user: Option<&'a str>,
    source: Option<&'a str>,
    session: Option<&'a str>,
    poll: Option<&'a str>,
    source_type: Option<&'a str>,
    #[serde(rename = "type")]
    kind: Option<&'a str>,
    target: Option<&'a str>,
    state: Option<&'a str>,
    #[serde(borrow)]
    results: Option<ResultsRef<'a>>,
    error: Option<&'a str>,
    date_created: Option<&'a str>,
    date_started: Option<&'a str>,
    date_completed: Option<&'a str>,
}

#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct ResultsRef<'a> {
    #[serde(borrow)]
    data: Vec<ResultRef<'a>>,
    has_more: bool,
}

#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct ResultRef<'a> {
    #[serde(borrow)]
    id: std::borrow::Cow<'a, str>,
    resource: Option<&'a str>,
    task: Option<&'a str>,
    identifier: Option<&'a str>,
    url: Option<&'a str>,
    checksum: Option<&'a str>,
    size: Option<u64>,
    state: Option<&'a str>,
    date_created: Option<&'a str>,
    date_consumed: Option<&'a str>,
    date_deleted: Option<&'a str>,
}

/// Realistic deliveries: the reference `task.succeeded` body, each with a new
/// event id, signed at `T`.
struct Deliveries {
    template: String,
    secret: Secret,
    next: AtomicU64,
}

struct OneDelivery {
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

impl Deliveries {
    fn new(secret: &Secret) -> anyhow::Result<Self> {
        Ok(Self {
            template: task_template()?,
            secret: secret.clone(),
            next: AtomicU64::new(0),
        })
    }

    /// A fresh delivery; building it is setup, never timed.
    fn next(&self) -> OneDelivery {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let id = format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            n >> 32,
            (n >> 16) & 0xffff,
            n & 0xfff,
            (n >> 12) & 0xfff,
            n
        );
        let body = Bytes::from(self.template.replacen(TEMPLATE_ID, &id, 1));
        let header = sign(&self.secret, T, &body).to_string();
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_str(&header) {
            headers.insert(SIGNATURE_HEADER, value);
        }
        OneDelivery {
            path: format!("/webhooks/{id}"),
            headers,
            body,
        }
    }
}

impl OneDelivery {
    fn header(&self) -> Option<&[u8]> {
        self.headers.get(SIGNATURE_HEADER).map(|v| v.as_bytes())
    }

    fn delivery(&self) -> Delivery<'_> {
        Delivery {
            method: &Method::POST,
            path: &self.path,
            headers: &self.headers,
            body: self.body.clone().into(),
        }
    }
}

fn pipeline(c: &mut Criterion, secret: &Secret) -> anyhow::Result<()> {
    let deliveries = Deliveries::new(secret)?;
    let verifier = Verifier::new(secret.clone());
    let handled = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&handled);
    // One trivial handler with the typed view a real app would take.
    let dispatcher = Dispatcher::new().on("task.succeeded", move |task: Task| {
        let counter = Arc::clone(&counter);
        async move {
            black_box(task.id);
            counter.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
    });
    let receiver = Receiver::new(verifier.clone(), dispatcher);
    // The same with a handler that takes the event as parsed, no typed view.
    let untyped = Receiver::new(
        verifier.clone(),
        Dispatcher::new().on("task.succeeded", |event: Arc<Event>| async move {
            black_box(&event.id);
            Ok(())
        }),
    );
    let rt = tokio::runtime::Builder::new_current_thread().build()?;

    let sample = deliveries.next();
    ensure!(sample.body.len() > 1024);
    let event = Event::from_json(sample.body.clone())?;
    ensure!(event.data_borrowed::<TaskRef<'_>>().is_ok());
    let outcome = rt.block_on(receiver.receive_at(sample.delivery(), at(T)));
    ensure!(outcome.status() == StatusCode::OK);
    ensure!(handled.load(Ordering::Relaxed) == 1);

    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(1));
    group.bench_function("event_from_json", |b| {
        b.iter_batched_ref(
            || deliveries.next(),
            |d| black_box(Event::from_json(d.body.clone())),
            BatchSize::SmallInput,
        );
    });
    group.bench_function("event_from_json_then_task_view", |b| {
        b.iter_batched_ref(
            || deliveries.next(),
            |d| {
                let event = Event::from_json(d.body.clone()).map(Arc::new);
                black_box(event.map(|e| <Task as FromEvent>::from_event(&e)))
            },
            BatchSize::SmallInput,
        );
    });
    group.bench_function("event_from_json_then_borrowed_view", |b| {
        b.iter_batched_ref(
            || deliveries.next(),
            |d| {
                let event = Event::from_json(d.body.clone());
                black_box(event.map(|e| e.data_borrowed::<TaskRef<'_>>().is_ok()))
            },
            BatchSize::SmallInput,
        );
    });
    // Not the crate's code: serde_json's derive reading the same envelope
    // with `data` raw, the baseline for the crate's own envelope reader.
    group.bench_function("reference_serde_envelope_raw_data", |b| {
        b.iter_batched_ref(
            || deliveries.next(),
            |d| black_box(serde_json::from_slice::<SerdeEnvelope<'_>>(&d.body).is_ok()),
            BatchSize::SmallInput,
        );
    });
    // Not the crate's code: the whole event parsed straight into a typed
    // struct in one pass, for comparison with reading then viewing.
    group.bench_function("reference_typed_parse_without_value", |b| {
        b.iter_batched_ref(
            || deliveries.next(),
            |d| black_box(serde_json::from_slice::<TypedEnvelope>(&d.body)),
            BatchSize::SmallInput,
        );
    });
    group.bench_function("verify_at", |b| {
        b.iter_batched_ref(
            || deliveries.next(),
            |d| black_box(verifier.verify_at(d.header(), d.body.clone(), at(T))),
            BatchSize::SmallInput,
        );
    });
    group.bench_function("verify_then_parse", |b| {
        b.iter_batched_ref(
            || deliveries.next(),
            |d| {
                black_box(
                    verifier
                        .verify_at(d.header(), d.body.clone(), at(T))
                        .ok()
                        .map(VerifiedEvent::parse),
                )
            },
            BatchSize::SmallInput,
        );
    });
    group.bench_function("receive_at_one_task_handler", |b| {
        b.iter_batched_ref(
            || deliveries.next(),
            |d| black_box(rt.block_on(receiver.receive_at(d.delivery(), at(T)))),
            BatchSize::SmallInput,
        );
    });
    group.bench_function("receive_at_one_event_handler", |b| {
        b.iter_batched_ref(
            || deliveries.next(),
            |d| black_box(rt.block_on(untyped.receive_at(d.delivery(), at(T)))),
            BatchSize::SmallInput,
        );
    });
    group.finish();
    Ok(())
}

/// A cheaper candidate, measured and not taken: the four words'
/// differences or-ed together branch-free, then one `subtle` comparison of
/// the fold with zero. One optimisation barrier instead of one per word, so
/// nothing but today's code generation keeps the fold free of an early exit.
fn tags_equal_fold(a: &[u8; 32], b: &[u8; 32]) -> Choice {
    let mut diff = 0u64;
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        let x = u64::from_le_bytes(x.try_into().unwrap_or([0; 8]));
        let y = u64::from_le_bytes(y.try_into().unwrap_or([0; 8]));
        diff |= x ^ y;
    }
    diff.ct_eq(&0)
}

/// The comparison used before, measured and replaced: the words'
/// differences or-ed into an accumulator that passes `black_box` after
/// each word, then one `subtle` comparison with zero. As fast as `subtle`
/// per word once subtle's barrier is `black_box`, and hand-rolled.
fn tags_equal_fold_barrier_per_word(a: &[u8; 32], b: &[u8; 32]) -> Choice {
    let mut diff = 0u64;
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        let x = u64::from_le_bytes(x.try_into().unwrap_or([0; 8]));
        let y = u64::from_le_bytes(y.try_into().unwrap_or([0; 8]));
        diff = black_box(diff | (x ^ y));
    }
    diff.ct_eq(&0)
}

fn tag_compare(c: &mut Criterion) {
    let a: [u8; 32] = std::array::from_fn(|i| (i * 7 + 3) as u8);
    let b = a;
    let mut group = c.benchmark_group("tag_compare");
    // The crate's own function (exported hidden for the timing check):
    // `subtle` per word, with subtle's `core_hint_black_box` barrier.
    group.bench_function("tags_equal_subtle_per_word", |bench| {
        bench.iter(|| ricloud_webhook::__tags_equal(black_box(&a), black_box(&b)));
    });
    group.bench_function("xor_fold_then_subtle_not_taken", |bench| {
        bench.iter(|| bool::from(tags_equal_fold(black_box(&a), black_box(&b))));
    });
    group.bench_function("fold_barrier_per_word_replaced", |bench| {
        bench.iter(|| {
            bool::from(tags_equal_fold_barrier_per_word(
                black_box(&a),
                black_box(&b),
            ))
        });
    });
    group.bench_function("subtle_slice_ct_eq", |bench| {
        bench.iter(|| bool::from(black_box(&a[..]).ct_eq(black_box(&b[..]))));
    });
    group.bench_function("ctoutput_verify_slice_style", |bench| {
        bench.iter(|| {
            // `Mac::verify_slice` does this after its length check: wrap the
            // computed tag in a `CtOutput` and compare in constant time.
            let x = CtOutput::<Hmac<Sha256>>::new(*GenericArray::from_slice(black_box(&a)));
            let y = CtOutput::<Hmac<Sha256>>::new(*GenericArray::from_slice(black_box(&b)));
            x == y
        });
    });
    group.bench_function("naive_eq_not_constant_time", |bench| {
        bench.iter(|| black_box(&a) == black_box(&b));
    });
    group.finish();
}

fn store(c: &mut Criterion) {
    let mut group = c.benchmark_group("store");
    for capacity in [1_000, ricloud_webhook::MemoryStore::DEFAULT_CAPACITY] {
        let store =
            ricloud_webhook::MemoryStore::with_bounds(capacity, Duration::from_secs(86_400));
        let now = at(T);
        let id = |n: u64| format!("00000000-0000-4000-8000-{n:012x}");
        for n in 0..capacity as u64 {
            let _ = store_claim_finish(&store, &id(n), now);
        }
        let next = AtomicU64::new(capacity as u64);
        group.bench_function(format!("claim_finish_new_id/{capacity}"), |b| {
            b.iter_batched(
                || id(next.fetch_add(1, Ordering::Relaxed)),
                |id| store_claim_finish(&store, &id, now),
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

fn store_claim_finish(store: &ricloud_webhook::MemoryStore, id: &str, now: SystemTime) -> bool {
    use ricloud_webhook::{Claim, DeliveryStore};
    let claimed = matches!(store.claim(id, now), Claim::Claimed);
    store.finish(id, true, now);
    claimed
}
