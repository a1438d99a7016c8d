//! Replays every committed fuzz input (`fuzz/corpus/<target>/`) through the
//! same checks the cargo-fuzz targets run, so that each input stays a
//! regression test under a plain `cargo test`, without libFuzzer or a
//! nightly toolchain. The checks live in `fuzz/checks/` and are shared with
//! the fuzz targets; see FUZZING.md. The `http` corpus needs the adapter and
//! is not replayed here.

use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

#[path = "../../../fuzz/checks/event.rs"]
mod event;
#[path = "../../../fuzz/checks/receiver.rs"]
mod receiver;
#[path = "../../../fuzz/checks/signature_header.rs"]
mod signature_header;
#[path = "../../../fuzz/checks/verify.rs"]
mod verify;

/// Runs `check` on every file of `fuzz/corpus/<target>/` and reports every
/// failing file by name.
fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut inputs: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "{} holds no inputs", dir.display());
    let failed: Vec<String> = inputs
        .iter()
        .filter(|path| {
            let data = fs::read(path).expect("a readable corpus file");
            panic::catch_unwind(AssertUnwindSafe(|| check(&data))).is_err()
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} `{target}` inputs failed (messages above):\n{}",
        failed.len(),
        inputs.len(),
        failed.join("\n")
    );
}

#[test]
fn signature_header_corpus() {
    replay("signature_header", signature_header::check);
}

#[test]
fn verify_corpus() {
    replay("verify", verify::check);
}

#[test]
fn event_corpus() {
    replay("event", event::check);
}

#[test]
fn receiver_corpus() {
    replay("receiver", receiver::check);
}
