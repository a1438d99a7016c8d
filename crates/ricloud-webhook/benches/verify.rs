//! Verification against its floor: `Verifier::verify_at` (header parse,
//! HMAC, constant-time compare, stack wipe, window check) next to a bare
//! pre-keyed `hmac` verifying the same tag over the same message
//! (`verify_slice`), for bodies of 64 B to 1 MiB.
//!
//! `cargo bench -p ricloud-webhook --bench verify`; BENCHMARKS.md has the
//! figures and the ratio each size must hold.

use std::hint::black_box;
use std::time::{Duration, UNIX_EPOCH};

use criterion::{criterion_main, BenchmarkId, Criterion, Throughput};
use hmac::{Hmac, KeyInit, Mac};
use ricloud_webhook::{sign, Bytes, Secret, Verifier};
use sha2::Sha256;

const SECRET: &str = "EZVNcphl95WzskoobnuXh_28qCZG_blz";
const T: u64 = 1_700_000_000;

fn bench(c: &mut Criterion) {
    let secret = Secret::new(SECRET).expect("non-empty");
    let verifier = Verifier::new(secret.clone());
    let keyed = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("any length");
    let now = UNIX_EPOCH + Duration::from_secs(T);
    let mut group = c.benchmark_group("verify");
    for size in [64usize, 1024, 64 * 1024, 1024 * 1024] {
        let body = Bytes::from(vec![b'x'; size]);
        let signed = sign(&secret, T, &body);
        let (header, tag) = (signed.to_string(), *signed.signature());
        let prefix = format!("{T}.");
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("hmac", size), &body, |b, body| {
            b.iter(|| {
                let mut mac = keyed.clone();
                mac.update(prefix.as_bytes());
                mac.update(body);
                black_box(mac.verify_slice(&tag).is_ok())
            });
        });
        group.bench_with_input(BenchmarkId::new("verifier", size), &body, |b, body| {
            b.iter(|| {
                let verified = verifier.verify_at(Some(header.as_bytes()), body.clone(), now);
                black_box(verified.is_ok())
            });
        });
    }
    group.finish();
}

mod group {
    #![allow(
        missing_docs,
        reason = "criterion's macro generates an undocumented function"
    )]
    criterion::criterion_group!(benches, super::bench);
}
use group::benches;
criterion_main!(benches);
