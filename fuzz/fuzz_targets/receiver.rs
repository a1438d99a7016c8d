//! Fuzz target `receiver`: see `fuzz/checks/receiver.rs` for what it checks.
#![no_main]

#[path = "../checks/receiver.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
