//! Replays every committed input of the `forwarded` fuzz target
//! (`fuzz/corpus/forwarded/`) through the check it runs, so that each one
//! stays a regression test under a plain `cargo test`; see FUZZING.md.

#[path = "../../../fuzz/checks/forwarded.rs"]
mod forwarded;
#[path = "../../../fuzz/replay.rs"]
mod replay;

#[test]
fn forwarded_corpus() {
    replay::replay("forwarded", forwarded::check);
}
