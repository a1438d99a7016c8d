//! One delivery through the endpoint without a socket: `WebhookService::handle`
//! on a signed 1 KiB `task.succeeded` request (limits, body read,
//! verification, parsing, the outcome and its answer) into a queue that
//! takes every event, and, beside it, a request refused at its head (404).
//! With no `metrics` recorder installed, as in an application that has
//! none: comparing this bench at a commit before the metrics calls and
//! after shows what they cost (BENCHMARKS.md).
//!
//! `cargo bench -p ricloud-webhook-hyper --bench delivery`.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use criterion::{criterion_main, BatchSize, Criterion};
use http::Request;
use http_body_util::Full;
use ricloud_webhook::{
    sign, Enqueued, EventQueue, Receiver, Secret, StoreFuture, VerifiedEvent, Verifier,
};
use ricloud_webhook_hyper::WebhookService;

const SECRET: &str = "EZVNcphl95WzskoobnuXh_28qCZG_blz";

/// A queue that takes every event at once: the bench measures the endpoint.
struct Takes;

impl EventQueue for Takes {
    fn enqueue<'a>(&'a self, _: &'a VerifiedEvent, _: SystemTime) -> StoreFuture<'a, Enqueued> {
        Box::pin(std::future::ready(Ok(Enqueued::New)))
    }
}

fn request(n: u64, secret: &Secret, now: u64) -> Request<Full<Bytes>> {
    let id = format!("00000000-0000-4000-8000-{n:012}");
    let mut body = format!(
        r#"{{"id":"{id}","resource":"event","type":"task","action":"succeeded","state":"pending","retries":0,"data":{{"id":"t1","resource":"task","state":"succeeded","note":""#
    );
    while body.len() < 1000 {
        body.push('x');
    }
    body.push_str(r#""}}"#);
    let signature = sign(secret, now, body.as_bytes()).to_string();
    Request::post(format!("/webhooks/{id}"))
        .header("content-type", "application/json")
        .header("ricloud-signature", signature)
        .body(Full::new(Bytes::from(body)))
        .expect("a request")
}

/// What each run needs: a runtime, the secret, the endpoint, the signing time.
struct Setup {
    runtime: tokio::runtime::Runtime,
    secret: Secret,
    service: WebhookService,
    now: u64,
}

impl Setup {
    fn new() -> Self {
        let secret = Secret::new(SECRET).expect("a secret");
        Self {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime"),
            service: WebhookService::new(Receiver::queued(Verifier::new(secret.clone()), Takes)),
            secret,
            now: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .expect("clock")
                .as_secs(),
        }
    }
}

fn bench(c: &mut Criterion) {
    let Setup {
        runtime,
        secret,
        service,
        now,
    } = Setup::new();
    let next = AtomicU64::new(1);
    let mut group = c.benchmark_group("delivery");
    group.bench_function("queued_1KiB", |b| {
        b.iter_batched(
            || request(next.fetch_add(1, Ordering::Relaxed), &secret, now),
            |request| {
                let response = runtime.block_on(service.handle(request));
                assert_eq!(response.status(), 200);
                black_box(response)
            },
            BatchSize::SmallInput,
        );
    });
    group.bench_function("refused_at_the_head", |b| {
        b.iter_batched(
            || {
                Request::post("/elsewhere/x")
                    .body(Full::new(Bytes::new()))
                    .expect("a request")
            },
            |request| black_box(runtime.block_on(service.handle(request))),
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

/// `DELIVERY_COUNT=N` runs N deliveries without criterion (and
/// `DELIVERY_SETUP_ONLY=1` only builds their requests), for counting
/// instructions with `perf stat`: a figure this shared machine's noise
/// does not move.
fn counted(n: u64) {
    let Setup {
        runtime,
        secret,
        service,
        now,
    } = Setup::new();
    let setup_only = std::env::var_os("DELIVERY_SETUP_ONLY").is_some();
    for i in 1..=n {
        let request = request(i, &secret, now);
        if !setup_only {
            let response = runtime.block_on(service.handle(request));
            assert_eq!(response.status(), 200);
        } else {
            black_box(request);
        }
    }
}

fn benches() {
    if let Some(n) = std::env::var("DELIVERY_COUNT")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        counted(n);
        return;
    }
    let mut criterion = Criterion::default().configure_from_args();
    bench(&mut criterion);
}

criterion_main!(benches);
