//! SHA-256 throughput of this build: `cargo run --release -p
//! ricloud-webhook-bench --bin sha-rate`, then again with `--features
//! soft-sha` (sha2's portable code) to see what the CPU's SHA extensions
//! bring. Prints whether the CPU reports them and the best rate over 64 KiB.

use std::hint::black_box;
use std::time::Instant;

use sha2::{Digest, Sha256};

fn main() {
    let data = vec![0x5a_u8; 64 * 1024];
    let mut best = f64::MAX;
    for _ in 0..30 {
        let start = Instant::now();
        for _ in 0..20 {
            black_box(Sha256::digest(black_box(&data)));
        }
        best = best.min(start.elapsed().as_secs_f64() / 20.0);
    }
    #[cfg(target_arch = "x86_64")]
    let extensions = std::is_x86_feature_detected!("sha");
    #[cfg(not(target_arch = "x86_64"))]
    let extensions = false;
    let build = if cfg!(feature = "soft-sha") {
        "portable (force-soft)"
    } else {
        "default (SHA extensions when the CPU has them)"
    };
    println!(
        "sha2 {build}; CPU reports SHA extensions: {extensions}; 64 KiB in {:.1} us, {:.2} GB/s",
        best * 1e6,
        data.len() as f64 / best / 1e9
    );
}
