//! Fuzz target `verify`: see `fuzz/checks/verify.rs` for what it checks.
#![no_main]

#[path = "../checks/verify.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
