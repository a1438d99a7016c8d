//! Fuzz target `forwarded`: see `fuzz/checks/forwarded.rs` for what it checks.
#![no_main]

#[path = "../checks/forwarded.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
