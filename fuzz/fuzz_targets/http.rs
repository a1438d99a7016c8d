//! Fuzz target `http`: see `fuzz/checks/http.rs` for what it checks.
#![no_main]

#[path = "../checks/http.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
