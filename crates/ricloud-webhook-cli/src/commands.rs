//! What each subcommand does, on top of the library part of the crate.

use std::io::{self, IsTerminal, Read, Write};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, Context as _};
use clap::ArgMatches;
use ricloud_webhook::{sign, Secret, TimeWindow, Verifier};
use ricloud_webhook_cli::{
    event_id, event_url, sample_event, unix_seconds, HttpVersion, Response, Sender, EVENT_SLUGS,
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
                match hint_for_outcome(response.outcome()) {
                    Some(hint) => println!("invalid: {} ({hint})", response.status()),
                    None => println!("invalid: {}", response.status()),
                }
                INVALID
            }
            Err(e) => {
                // With its causes: reqwest says there why (refused, an
                // unknown certificate, ...).
                let error = format!("{:#}", anyhow::Error::new(e));
                match hint_for_error(&error) {
                    Some(hint) => println!("invalid: {error} ({hint})"),
                    None => println!("invalid: {error}"),
                }
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
        let mut event = sample_event(&slug, &url, SystemTime::now())?;
        if let Some(id) = m.remove_one::<String>("id") {
            event["id"] = id.into();
        }
        serde_json::to_vec(&event)?
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
    if let Some(path) = m.remove_one::<std::path::PathBuf>("save-body") {
        std::fs::write(&path, &body).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let repeat = m.get_one::<u32>("repeat").copied().unwrap_or(1);
    let secret = secret(&mut m, "secret")?;
    let sender = sender(&mut m)?;
    let body = bytes::Bytes::from(body);
    let runtime = runtime()?;
    let mut code = VALID;
    for _ in 0..repeat {
        let header = sign(&secret, unix_seconds(SystemTime::now()), &body);
        eprintln!("POST {target}");
        match runtime.block_on(sender.post_signed(&target, &header, body.clone())) {
            Ok(response) => {
                print_response(&response)?;
                if !response.is_success() {
                    code = INVALID;
                }
            }
            Err(e) if e.is_delivery_failure() => {
                eprintln!("error: {:#}", anyhow::Error::new(e));
                code = INVALID;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(code)
}

/// What to check when a receiver refused a test event for `outcome`.
fn hint_for_outcome(outcome: Option<&str>) -> Option<&'static str> {
    Some(match outcome? {
        "bad_signature" => {
            "the receiver refused the signature: is --secret (or RICLOUD_WEBHOOK_SECRET) this webhook config's secret?"
        }
        "stale" => "the receiver refused the signature's time: are both clocks right?",
        "not_found" | "unknown_config" => {
            "no webhook route at this URL: check the path the receiver expects"
        }
        "shutting_down" | "overloaded" | "store_error" | "store_full" | "busy" => {
            "the receiver cannot take events now; the API would retry"
        }
        _ => return None,
    })
}

/// What to do about a failed exchange, from its error text.
fn hint_for_error(error: &str) -> Option<&'static str> {
    if error.contains("UnknownIssuer") || error.contains("CaUsedAsEndEntity") {
        Some("pass the receiver's certificate, or the CA that issued it, with --ca-cert FILE")
    } else {
        None
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
    match response.outcome() {
        Some("ok") => writeln!(out, "outcome: ok (new)")?,
        Some(other) => writeln!(out, "outcome: {other}")?,
        None => {}
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
    let http = match m.remove_one::<String>("http").as_deref() {
        Some("1.1") => HttpVersion::Http1,
        Some("2") => HttpVersion::Http2,
        _ => HttpVersion::Negotiated,
    };
    Ok(Sender::with_http(timeout, ca_cert.as_deref(), http)?)
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
