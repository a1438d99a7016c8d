//! Timing-leak check of signature verification with dudect:
//! `cd timing && cargo run --release -- [--continuous <bench>]`.
//!
//! Each benchmark times two classes of inputs that must take the same path:
//! two wrong signatures of the same length, one wrong in its first byte
//! (Left), the other in its last byte (Right). An early-exit comparison is
//! fast for Left and slow for Right; a constant-time one is not. (Comparing a
//! right signature against a wrong one would time the success path, not a
//! leak.) dudect reports Welch's t-statistic: |t| above ~5 means the classes
//! are distinguishable.
//!
//! `naive_*` benchmarks run the same inputs through an early-exit byte loop
//! to show the check can see a leak at all.

use dudect_bencher::rand::Rng;
use dudect_bencher::{ctbench_main, BenchRng, Class, CtRunner};
use hmac::{Hmac, Mac};
use ricloud_webhook::{sign, Secret, SignatureHeader, TimeWindow, Verifier};
use sha2::Sha256;
use std::hint::black_box;
use std::time::{Duration, UNIX_EPOCH};

const SAMPLES: usize = 1_000_000;
const T: u64 = 1_700_000_000;

/// Early-exit comparison: what a constant-time check must never be.
/// (`black_box` on each byte keeps LLVM from turning the loop into one
/// vectorised `bcmp`, which would hide the early exit at this length.)
#[inline(never)]
fn naive_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    for i in 0..32 {
        if black_box(a[i]) != b[i] {
            return false;
        }
    }
    true
}

/// A random tag and two corruptions of it: first byte, last byte.
fn corrupted(tag: [u8; 32]) -> ([u8; 32], [u8; 32]) {
    let mut first = tag;
    first[0] ^= 0x01;
    let mut last = tag;
    last[31] ^= 0x01;
    (first, last)
}

/// A random class per sample: `true` for Left (wrong first byte).
fn classes(rng: &mut BenchRng) -> Vec<bool> {
    (0..SAMPLES).map(|_| rng.next_u32() & 1 == 0).collect()
}

fn class(left: bool) -> Class {
    if left {
        Class::Left
    } else {
        Class::Right
    }
}

fn random_tag(rng: &mut BenchRng) -> [u8; 32] {
    let mut tag = [0u8; 32];
    rng.fill_bytes(&mut tag);
    tag
}

/// The crate's own comparison, on its own.
fn compare_ours(runner: &mut CtRunner, rng: &mut BenchRng) {
    let expected = random_tag(rng);
    let (first, last) = corrupted(expected);
    let mut got = first;
    for left in classes(rng) {
        got.copy_from_slice(if left { &first } else { &last });
        runner.run_one(class(left), || {
            ricloud_webhook::__tags_equal(black_box(&expected), black_box(&got))
        });
    }
}

/// An early-exit comparison on its own: must show a leak.
fn compare_naive(runner: &mut CtRunner, rng: &mut BenchRng) {
    let expected = random_tag(rng);
    let (first, last) = corrupted(expected);
    let mut got = first;
    for left in classes(rng) {
        got.copy_from_slice(if left { &first } else { &last });
        runner.run_one(class(left), || {
            naive_eq(black_box(&expected), black_box(&got))
        });
    }
}

fn body() -> Vec<u8> {
    br#"{"id": "d921bf95-cc9f-4851-b6ab-9f1ab79db4df", "resource": "event", "type": "task", "action": "succeeded", "data": {"id": "f3e4"}}"#.to_vec()
}

/// The secret the deliveries are signed with.
const SECRET: &[u8] = b"EZVNcphl95WzskoobnuXh_28qCZG_blz";

/// The two classes' headers for `tag`: wrong in its first byte (Left),
/// wrong in its last (Right).
fn headers(tag: [u8; 32]) -> (String, String) {
    let (first, last) = corrupted(tag);
    (
        SignatureHeader::new(T, first).to_string(),
        SignatureHeader::new(T, last).to_string(),
    )
}

/// Times `f` on each sample's header. Both classes are read from the same
/// buffer, refilled outside the timed closure, so the two never differ by
/// address or cache placement.
fn each_class<T>(
    runner: &mut CtRunner,
    rng: &mut BenchRng,
    (first, last): &(String, String),
    f: impl Fn(&[u8]) -> T,
) {
    let mut header = first.clone().into_bytes();
    for left in classes(rng) {
        header.copy_from_slice(if left {
            first.as_bytes()
        } else {
            last.as_bytes()
        });
        runner.run_one(class(left), || f(black_box(&header[..])));
    }
}

/// `Verifier::verify_at` keyed with `key` on the two classes' headers,
/// whose tags are one byte off the tag under [`SECRET`].
fn verify_with(runner: &mut CtRunner, rng: &mut BenchRng, key: &[u8]) {
    let secret = Secret::new(SECRET.to_vec()).expect("secret");
    let body = body();
    let headers = headers(*sign(&secret, T, &body).signature());
    let verifier = Verifier::new(Secret::new(key.to_vec()).expect("secret"))
        .with_window(TimeWindow::unchecked());
    let now = UNIX_EPOCH + Duration::from_secs(T);
    let body = ricloud_webhook::Bytes::from(body);
    each_class(runner, rng, &headers, |header| {
        verifier.verify_at(Some(header), body.clone(), now).is_ok()
    });
}

/// The whole public verification path: parse, HMAC, compare.
fn verify_ours(runner: &mut CtRunner, rng: &mut BenchRng) {
    verify_with(runner, rng, SECRET);
}

/// `verify_ours` with a verifier keyed with another secret: the same two
/// headers, the same work, but an expected tag unrelated to either, so
/// neither class is one byte from it. A difference here comes from the
/// headers' own bytes (public: the sender chose them), not from how close
/// they are to the expected tag; compare its |t| with `verify_ours`.
fn verify_control(runner: &mut CtRunner, rng: &mut BenchRng) {
    verify_with(runner, rng, b"another-secret-altogether-0123456");
}

/// Parsing the two classes' headers alone. The classes differ in the
/// received signature, which the sender chose and knows: a difference here
/// is timing that depends on public input, and shows in `verify_ours` too
/// without telling anything about the expected tag.
fn parse_ours(runner: &mut CtRunner, rng: &mut BenchRng) {
    let headers = headers(random_tag(rng));
    each_class(runner, rng, &headers, |header| {
        SignatureHeader::parse(header).is_ok()
    });
}

/// The same HMAC path with an early-exit comparison: the leak is a few
/// nanoseconds under ~1 µs of HMAC, the hardest case for dudect.
fn verify_naive(runner: &mut CtRunner, rng: &mut BenchRng) {
    let keyed = Hmac::<Sha256>::new_from_slice(SECRET).expect("any key length");
    let body = body();
    let mut mac = keyed.clone();
    mac.update(format!("{T}.").as_bytes());
    mac.update(&body);
    let headers = headers(mac.finalize().into_bytes().into());
    each_class(runner, rng, &headers, |header| {
        let parsed = SignatureHeader::parse(header).expect("valid");
        let mut mac = keyed.clone();
        mac.update(format!("{}.", parsed.timestamp()).as_bytes());
        mac.update(&body);
        let expected: [u8; 32] = mac.finalize().into_bytes().into();
        naive_eq(&expected, parsed.signature())
    });
}

ctbench_main!(
    compare_ours,
    compare_naive,
    verify_ours,
    verify_control,
    parse_ours,
    verify_naive
);
