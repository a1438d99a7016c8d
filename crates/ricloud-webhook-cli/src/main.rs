//! `ricloud-webhook`: manage the API's webhook configs, catch up on missed
//! events, listen on a tunnel, send test events to a receiver, sign bodies
//! and verify `Ricloud-Signature` headers, look into a receiver's inbox.
//! Run with `--help`.

mod api;
mod args;
mod catch_up;
mod commands;
mod inbox;
mod listen;

use std::process::ExitCode;

/// Exit status of a usage or setup error (clap uses the same for bad flags).
const SETUP_ERROR: u8 = 2;

fn main() -> ExitCode {
    // The process's TLS crypto provider: ring (no C toolchain beyond ring's).
    // The libraries install none; an error means one is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let matches = args::command().get_matches();
    match commands::run(matches) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(SETUP_ERROR)
        }
    }
}
