//! Makes sure the core crate leaves no copy of key material behind:
//! `cargo run --release --manifest-path checks/key-wipe/Cargo.toml`.
//!
//! Key material is anything that signs as well as the secret does: the
//! secret's bytes, SHA-256 of a secret longer than a block (HMAC's derived
//! key), the padded key blocks (`key ^ ipad`, `key ^ opad`), and the two
//! keyed SHA-256 states HMAC keeps after absorbing them. This program
//! computes all of these itself, then runs the crate's key handling
//! (verifiers built each way, rotation on a shared and an unshared
//! verifier, signing, verification that passes and fails, a receiver's
//! whole pipeline) and looks for them:
//!
//! - in every heap block freed while it runs, through a global allocator
//!   that scans each block before handing it back to the system (this
//!   catches a `Vec` that grows and frees its old buffer unwiped);
//! - on the stack below the frames that did the work, once they returned.
//!
//! It exits non-zero, naming what was found where, if any piece is seen.
//! The stack scan reads memory no Rust value owns any more, through raw
//! pointers: it relies on how the platform lays out the stack, not on the
//! language, which is why this lives in a program of its own.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue, Method};
use ricloud_webhook::{sign, Delivery, Dispatcher, Receiver, Secret, SignatureHeader, Verifier};

/// How many bytes of a piece are looked for: enough to be unique.
const PROBE: usize = 16;
/// The pieces of key material to look for, set before scanning starts.
static PATTERNS: OnceLock<Vec<(&'static str, [u8; PROBE])>> = OnceLock::new();
static SCANNING: AtomicBool = AtomicBool::new(false);
/// Hits in freed heap blocks, by pattern index.
static HEAP_HITS: [AtomicUsize; 16] = [const { AtomicUsize::new(0) }; 16];
static FREED_BLOCKS: AtomicUsize = AtomicUsize::new(0);

struct Scanning;

// SAFETY: every call is passed on to `System` with the same arguments; the
// scan only reads the block being freed, which is still allocated then.
unsafe impl GlobalAlloc for Scanning {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if SCANNING.load(Ordering::SeqCst) {
            // SAFETY: `ptr` is a live allocation of `layout.size()` bytes.
            let block = unsafe { std::slice::from_raw_parts(ptr, layout.size()) };
            FREED_BLOCKS.fetch_add(1, Ordering::Relaxed);
            if let Some(patterns) = PATTERNS.get() {
                for (i, (_, pattern)) in patterns.iter().enumerate() {
                    if contains(block, pattern) {
                        HEAP_HITS[i].fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        }
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Scanning = Scanning;

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// SHA-256's initial state.
const IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// The pieces of key material of `key`, as HMAC-SHA256 derives them.
fn key_material(name: &'static str, key: &[u8]) -> Vec<(&'static str, [u8; PROBE])> {
    let probe = |bytes: &[u8]| -> [u8; PROBE] {
        let mut out = [0u8; PROBE];
        out.copy_from_slice(&bytes[..PROBE]);
        out
    };
    let mut block = [0u8; 64];
    let mut pieces = vec![(name, probe(key))];
    if key.len() > 64 {
        let derived = sha2::Sha256::digest_of(key);
        block[..32].copy_from_slice(&derived);
        pieces.push(("SHA-256 of the long secret", probe(&derived)));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    for (pad, label_block, label_state) in [
        (0x36u8, "key ^ ipad", "inner keyed state"),
        (0x5c, "key ^ opad", "outer keyed state"),
    ] {
        let padded: [u8; 64] = std::array::from_fn(|i| block[i] ^ pad);
        pieces.push((label_block, probe(&padded)));
        let mut state = IV;
        sha2::block_api::compress256(&mut state, &[padded]);
        // As the state sits in memory: eight native-endian words.
        let bytes: Vec<u8> = state.iter().flat_map(|w| w.to_ne_bytes()).collect();
        pieces.push((label_state, probe(&bytes)));
    }
    pieces
}

/// SHA-256 without the `Digest` trait's imports at every use.
trait DigestOf {
    fn digest_of(data: &[u8]) -> [u8; 32];
}

impl DigestOf for sha2::Sha256 {
    fn digest_of(data: &[u8]) -> [u8; 32] {
        use sha2::Digest;
        let mut out = [0u8; 32];
        out.copy_from_slice(&sha2::Sha256::digest(data));
        out
    }
}

/// A secret's bytes in a buffer allocated once, at its final size, so no
/// growth leaves a partial copy behind.
fn secret_bytes(len: usize, seed: u8) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(len);
    bytes.extend((0..len).map(|i| b'!' + ((i as u8).wrapping_mul(37).wrapping_add(seed) % 90)));
    bytes
}

const NOW: u64 = 1_800_000_000;

const BODY: &[u8] = br#"{"id":"2abc5619-25ab-489b-967e-4d928a831817","type":"task","action":"succeeded","data":{}}"#;

fn now() -> std::time::SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW)
}

fn secret(key: &[u8]) -> Secret {
    Secret::new(key.to_vec()).expect("non-empty")
}

fn other() -> Secret {
    Secret::new(b"an unrelated previous secret".to_vec()).expect("non-empty")
}

/// Keying: verifiers built each way, then dropped.
#[inline(never)]
fn keying(key: &[u8]) -> usize {
    let single = Verifier::new(secret(key));
    let listed = Verifier::from_secrets([other(), secret(key)]).expect("secrets");
    single.secret_count() + listed.secret_count()
}

/// Rotation on an unshared and on a shared verifier.
#[inline(never)]
fn rotation(key: &[u8]) -> usize {
    let rotated = Verifier::new(other()).previous_secret(secret(key));
    let shared = rotated.clone();
    let again = shared.clone().previous_secret(other());
    rotated.secret_count() + again.secret_count()
}

/// Signing, and verifications that pass and fail.
#[inline(never)]
fn verification(key: &[u8]) -> usize {
    let verifier = Verifier::from_secrets([other(), secret(key)]).expect("secrets");
    let header = sign(&secret(key), NOW, BODY).to_string();
    let tampered = SignatureHeader::new(NOW, [7; 32]).to_string();
    let _ = verifier.sign(NOW, BODY);
    [header, tampered]
        .iter()
        .filter(|h| verifier.verify_at(Some(h.as_bytes()), BODY, now()).is_ok())
        .count()
}

/// The receiver's pipeline on a correctly signed delivery.
#[inline(never)]
fn pipeline(key: &[u8]) -> usize {
    let receiver = Receiver::new(Verifier::new(secret(key)), Dispatcher::new());
    let mut headers = HeaderMap::new();
    let header = sign(&secret(key), NOW, BODY).to_string();
    headers.insert(
        "ricloud-signature",
        HeaderValue::from_str(&header).expect("ascii"),
    );
    let delivery = Delivery {
        method: &Method::POST,
        path: "/webhooks/2abc5619-25ab-489b-967e-4d928a831817",
        headers: &headers,
        body: BODY.into(),
    };
    usize::from(receiver.verify_at(delivery, now()).is_ok())
}

/// The control: a copy of the key material left on the stack and in a
/// freed heap block on purpose, which the scans must find.
#[inline(never)]
fn leak(piece: &[u8; PROBE]) -> usize {
    let on_stack = *piece;
    std::hint::black_box(&on_stack);
    let on_heap = piece.to_vec();
    std::hint::black_box(&on_heap);
    on_heap.len()
}

/// Overwrites the stack below this frame with zeros, so that what the
/// check itself computed there (the pieces it looks for) is gone before
/// the crate runs.
#[inline(never)]
fn clear_stack() {
    let mut region = [0u8; 256 * 1024];
    for byte in &mut region {
        // SAFETY: a write to a byte of a local array.
        unsafe { std::ptr::write_volatile(byte, 0) };
    }
    std::hint::black_box(&region);
}

/// Looks for the patterns in the stack below this frame: the region the
/// frames of the phase just run used. Nothing is allocated while it looks
/// (an allocation would itself be scanned when freed).
#[inline(never)]
fn scan_stack(patterns: &[(&'static str, [u8; PROBE])]) -> Vec<(&'static str, usize)> {
    const SIZE: usize = 256 * 1024;
    let region = std::mem::MaybeUninit::<[u8; SIZE]>::uninit();
    let start = region.as_ptr().cast::<u8>();
    // SAFETY: every offset read lies within `region`, a local of this
    // frame; a volatile read keeps the compiler from assuming what an
    // uninitialised byte holds. See the module's docs.
    let byte = |i: usize| unsafe { std::ptr::read_volatile(start.add(i)) };
    let mut hits = [0usize; 16];
    for i in 0..=SIZE - PROBE {
        let first = byte(i);
        for (p, (_, pattern)) in patterns.iter().enumerate() {
            if first == pattern[0] && (1..PROBE).all(|j| byte(i + j) == pattern[j]) {
                hits[p] += 1;
            }
        }
    }
    std::hint::black_box(&region);
    patterns
        .iter()
        .zip(hits)
        .filter(|(_, n)| *n > 0)
        .map(|((name, _), n)| (*name, n))
        .collect()
}

/// A phase of the exercise: its name, what it runs with a secret's bytes,
/// and what that must return.
type Phase = (&'static str, fn(&[u8]) -> usize, usize);

/// The hits of each piece in freed heap blocks so far, and clears them.
fn take_heap_hits(patterns: &[(&'static str, [u8; PROBE])]) -> Vec<(&'static str, usize)> {
    patterns
        .iter()
        .enumerate()
        .filter_map(|(i, (name, _))| {
            let hits = HEAP_HITS[i].swap(0, Ordering::SeqCst);
            (hits > 0).then_some((*name, hits))
        })
        .collect()
}

fn main() {
    let short = secret_bytes(40, 3);
    let long = secret_bytes(100, 11);
    let mut patterns = key_material("the secret", &short);
    patterns.extend(key_material("the long secret", &long));
    assert!(patterns.len() <= HEAP_HITS.len());
    PATTERNS.set(patterns.clone()).expect("set once");

    let phases: [Phase; 4] = [
        ("keying", keying, 3),
        ("rotation", rotation, 5),
        ("verification", verification, 1),
        ("pipeline", pipeline, 1),
    ];
    let mut found = Vec::new();
    for key in [&short[..], &long[..]] {
        for (phase, run, expected) in phases {
            clear_stack();
            SCANNING.store(true, Ordering::SeqCst);
            let result = run(key);
            let on_stack = scan_stack(&patterns);
            SCANNING.store(false, Ordering::SeqCst);
            assert_eq!(result, expected, "{phase} did not do what it should");
            for (name, hits) in take_heap_hits(&patterns) {
                found.push(format!("{phase}: {name} in {hits} freed heap block(s)"));
            }
            for (name, hits) in on_stack {
                found.push(format!("{phase}: {name} {hits} time(s) on the stack"));
            }
        }
    }

    // The control: both scans find a piece left behind on purpose.
    clear_stack();
    SCANNING.store(true, Ordering::SeqCst);
    leak(&patterns[0].1);
    let control_stack = scan_stack(&patterns);
    SCANNING.store(false, Ordering::SeqCst);
    let control_heap = take_heap_hits(&patterns);
    assert!(
        !control_stack.is_empty() && !control_heap.is_empty(),
        "the control was not seen (stack {control_stack:?}, heap {control_heap:?}): the scans are blind"
    );

    let freed = FREED_BLOCKS.load(Ordering::SeqCst);
    println!(
        "key-wipe: {} phases for two secrets (40 and 100 bytes); {freed} freed heap blocks and 256 KiB of stack after each scanned for {} pieces of key material; the control was found",
        phases.len(),
        patterns.len()
    );
    if found.is_empty() {
        println!("key-wipe: no key material left behind");
    } else {
        for line in &found {
            eprintln!("key-wipe: FOUND {line}");
        }
        std::process::exit(1);
    }
}
