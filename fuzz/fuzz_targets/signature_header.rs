//! Fuzz target `signature_header`: see `fuzz/checks/signature_header.rs` for what it checks.
#![no_main]

#[path = "../checks/signature_header.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
