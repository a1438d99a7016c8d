//! Replays every committed input of the `forwarded` fuzz target
//! (`fuzz/corpus/forwarded/`) through the check it runs, so that each one
//! stays a regression test under a plain `cargo test`; see FUZZING.md.

use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

#[path = "../../../fuzz/checks/forwarded.rs"]
mod forwarded;

#[test]
fn forwarded_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/forwarded");
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
            panic::catch_unwind(AssertUnwindSafe(|| forwarded::check(&data))).is_err()
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "`forwarded` inputs failed (messages above):\n{}",
        failed.join("\n")
    );
}
