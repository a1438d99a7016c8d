//! What each subcommand does, on top of the library part of the crate.

use std::io::{self, IsTerminal, Read, Write};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, Context as _};
use clap::ArgMatches;
use ricloud_webhook::{sign, Secret, TimeWindow, Verifier};
use ricloud_webhook_cli::{
    event_id, event_url, sample_event, unix_seconds, Response, Sender, EVENT_SLUGS,
};

use crate::args::SECRET_ENV;

/// Exit status of a valid signature or a successful delivery.
const VALID: u8 = 0;
/// Exit status of an invalid signature or a failed delivery.
const INVALID: u8 = 1;

/// Runs the chosen subcommand.
///
/// `Ok` carries the exit status of a command that ran to a verdict; `Err` is
/// a usage or setup problem, reported by the caller.
pub(crate) fn run(mut matches: ArgMatches) -> anyhow::Result<ExitCode> {
    let code = match matches.remove_subcommand() {
        Some((name, m)) if name == "send-test" => send_test(m)?,
        Some((name, m)) if name == "send" => send(m)?,
        Some((name, m)) if name == "sign" => sign_body(m)?,
        Some((name, m)) if name == "verify" => verify(m)?,
        Some((name, m)) if name == "inbox" => crate::inbox::run(m)?,
        Some((name, m)) if matches!(name.as_str(), "config" | "events" | "catch-up" | "listen") => {
            crate::api::run(&name, m)?
        }
        // clap refuses unknown subcommands and requires one.
        _ => return Err(anyhow!("no command given: see `ricloud-webhook --help`")),
    };
    Ok(ExitCode::from(code))
}

fn send_test(mut m: ArgMatches) -> anyhow::Result<u8> {
    let url = required(&mut m, "url")?;
    let secret = secret(&mut m, "secret")?;
    let sender = sender(&mut m)?;
    let event = sample_event("webhook_config.test", &url, SystemTime::now())?;
    let body = serde_json::to_vec(&event)?;
    let target = event_url(&url, &event_id(&body)?)?;
    let header = sign(&secret, unix_seconds(SystemTime::now()), &body);
    Ok(
        match runtime()?.block_on(sender.post_signed(&target, &header, body.into())) {
            Ok(response) if response.is_success() => {
                println!("valid");
                VALID
            }
            Ok(response) => {
                println!("invalid: {}", response.status());
                INVALID
            }
            Err(e) => {
                // With its causes: reqwest says there why (refused, an
                // unknown certificate, ...).
                println!("invalid: {:#}", anyhow::Error::new(e));
                INVALID
            }
        },
    )
}

fn send(mut m: ArgMatches) -> anyhow::Result<u8> {
    if m.get_flag("list-events") {
        for slug in EVENT_SLUGS {
            println!("{slug}");
        }
        return Ok(VALID);
    }
    let url = required(&mut m, "url")?;
    let body = if let Some(slug) = m.remove_one::<String>("event") {
        serde_json::to_vec(&sample_event(&slug, &url, SystemTime::now())?)?
    } else {
        let path = m
            .remove_one::<std::path::PathBuf>("body")
            .ok_or_else(|| anyhow!("nothing to send: pass --event SLUG or --body FILE"))?;
        if path.as_os_str() == "-" {
            read_stdin()?
        } else {
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?
        }
    };
    let id = event_id(&body).context("cannot build the URL from --body")?;
    let target = event_url(&url, &id)?;
    let secret = secret(&mut m, "secret")?;
    let sender = sender(&mut m)?;
    let header = sign(&secret, unix_seconds(SystemTime::now()), &body);
    eprintln!("POST {target}");
    match runtime()?.block_on(sender.post_signed(&target, &header, body.into())) {
        Ok(response) => {
            print_response(&response)?;
            Ok(if response.is_success() {
                VALID
            } else {
                INVALID
            })
        }
        Err(e) if e.is_delivery_failure() => {
            eprintln!("error: {:#}", anyhow::Error::new(e));
            Ok(INVALID)
        }
        Err(e) => Err(e.into()),
    }
}

/// Prints the status line, then the body as sent (it is the receiver's).
fn print_response(response: &Response) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "{:?} {}", response.version(), response.status())?;
    out.write_all(response.body())?;
    if !response.body().is_empty() && !response.body().ends_with(b"\n") {
        writeln!(out)?;
    }
    if response.is_truncated() {
        eprintln!(
            "note: response body cut at {} bytes",
            ricloud_webhook_cli::MAX_RESPONSE_BODY
        );
    }
    out.flush()
}

fn sign_body(mut m: ArgMatches) -> anyhow::Result<u8> {
    let secret = secret(&mut m, "secret")?;
    let timestamp = m
        .get_one::<u64>("timestamp")
        .copied()
        .unwrap_or_else(|| unix_seconds(SystemTime::now()));
    let body = read_stdin()?;
    println!("{}", sign(&secret, timestamp, &body));
    Ok(VALID)
}

fn verify(mut m: ArgMatches) -> anyhow::Result<u8> {
    let header = required(&mut m, "header")?;
    let mut secrets = vec![secret(&mut m, "secret")?];
    for previous in m
        .remove_many::<String>("previous-secret")
        .into_iter()
        .flatten()
    {
        secrets.push(Secret::new(previous).map_err(|e| anyhow!("--previous-secret: {e}"))?);
    }
    let window = if m.get_flag("no-time-check") {
        TimeWindow::unchecked()
    } else if let Some(&secs) = m.get_one::<u64>("tolerance") {
        TimeWindow::new(secs, secs)
    } else {
        TimeWindow::default()
    };
    let verifier = Verifier::from_secrets(secrets)?.window(window);
    let body = read_stdin()?;
    Ok(match verifier.verify(Some(header.as_bytes()), body) {
        Ok(_) => {
            println!("valid");
            VALID
        }
        Err(e) => {
            println!("invalid: {e}");
            INVALID
        }
    })
}

/// The secret from `--secret` or the environment; the string is moved into
/// the [`Secret`], which wipes it when dropped.
fn secret(m: &mut ArgMatches, id: &str) -> anyhow::Result<Secret> {
    let text = m
        .remove_one::<String>(id)
        .ok_or_else(|| anyhow!("no secret: pass --secret or set {SECRET_ENV}"))?;
    Secret::new(text).map_err(|e| anyhow!("{e}: pass a non-empty --secret or {SECRET_ENV}"))
}

fn required(m: &mut ArgMatches, id: &str) -> anyhow::Result<String> {
    m.remove_one::<String>(id)
        .ok_or_else(|| anyhow!("missing --{id}: see --help"))
}

/// The HTTP client, with `--timeout` and `--ca-cert`.
fn sender(m: &mut ArgMatches) -> anyhow::Result<Sender> {
    let timeout = m
        .get_one::<Duration>("timeout")
        .copied()
        .unwrap_or(ricloud_webhook_cli::DEFAULT_TIMEOUT);
    let ca_cert = match m.remove_one::<std::path::PathBuf>("ca-cert") {
        Some(path) => {
            Some(std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?)
        }
        None => None,
    };
    Ok(Sender::new(timeout, ca_cert.as_deref())?)
}

/// The body, byte for byte: nothing is trimmed or decoded.
fn read_stdin() -> anyhow::Result<Vec<u8>> {
    let stdin = io::stdin();
    if stdin.is_terminal() {
        eprintln!("reading the body from stdin; end it with Ctrl-D");
    }
    let mut body = Vec::new();
    stdin
        .lock()
        .read_to_end(&mut body)
        .context("cannot read the body from stdin")?;
    Ok(body)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}
