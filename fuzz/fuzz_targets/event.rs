//! Fuzz target `event`: see `fuzz/checks/event.rs` for what it checks.
#![no_main]

#[path = "../checks/event.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
