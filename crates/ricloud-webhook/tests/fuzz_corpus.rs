//! Replays every committed fuzz input (`fuzz/corpus/<target>/`) through the
//! same checks the cargo-fuzz targets run, so that each input stays a
//! regression test under a plain `cargo test`, without libFuzzer or a
//! nightly toolchain. The checks live in `fuzz/checks/` and are shared with
//! the fuzz targets; see FUZZING.md. The `http` corpus needs the adapter and
//! is not replayed here.

#[path = "../../../fuzz/replay.rs"]
mod replay;
use replay::replay;

#[path = "../../../fuzz/checks/event.rs"]
mod event;
#[path = "../../../fuzz/checks/receiver.rs"]
mod receiver;
#[path = "../../../fuzz/checks/signature_header.rs"]
mod signature_header;
#[path = "../../../fuzz/checks/verify.rs"]
mod verify;

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
