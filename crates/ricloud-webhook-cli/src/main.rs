//! `ricloud-webhook`: send ricloud webhook test events to a receiver, sign
//! bodies and verify `Ricloud-Signature` headers. Run with `--help`.

mod args;
mod commands;
mod inbox;
mod time;

use std::process::ExitCode;

/// Exit status of a usage or setup error (clap uses the same for bad flags).
const SETUP_ERROR: u8 = 2;

fn main() -> ExitCode {
    let matches = args::command().get_matches();
    match commands::run(matches) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(SETUP_ERROR)
        }
    }
}
