//! A ricloud webhook receiver: `cargo run --release --bin receiver`.
//!
//! Environment:
//! - `RICLOUD_WEBHOOK_SECRET`: the webhook config's secret. When unset, a
//!   random one is generated and printed once, for local testing only.
//! - `RICLOUD_WEBHOOK_PREVIOUS_SECRET`: optional, also accepted (rotation).
//! - `RICLOUD_WEBHOOK_ADDR`: listening address, default `127.0.0.1:8080`.
//! - `RICLOUD_WEBHOOK_DATABASE_URL`: where events are kept:
//!   `sqlite://ricloud-webhook.db` when unset (a file created in the
//!   working directory), `postgres://user:password@host/database` for
//!   several replicas, or `memory` (nothing survives a restart).
//! - `RICLOUD_WEBHOOK_MODE`: `queued` (the default with a database: an
//!   event is committed, then answered 200, and workers run the handlers)
//!   or `inline` (the handlers run before the answer; the default, and the
//!   only mode, with `memory`).
//! - `RUST_LOG`: log level for stderr (`error` .. `trace`), default `info`.
//!
//! Self-registration, instead of `RICLOUD_WEBHOOK_SECRET`:
//! - `RICLOUD_WEBHOOK_PUBLIC_URL`: the URL the API should deliver to
//!   (`https://hooks.example.com/webhooks`). At start-up the receiver finds
//!   the webhook config for it, or creates one, and takes its secret; once
//!   listening, it tests the config unless it is `valid` already and logs
//!   the outcome. Needs `RICLOUD_TOKEN` (a key token) and, for another API
//!   than the public one, `RICLOUD_URL`. In code, that is:
//!
//! ```ignore
//! let client = ricloud_webhook_api::Client::builder(token).build()?;
//! let registration = client.register(&public_url).await?;
//! let verifier = Verifier::new(registration.secret()?);
//! // ... bind, serve, and meanwhile:
//! registration.validate(&client, Duration::from_secs(60)).await?;
//! ```
//!
//! For tests: `RICLOUD_WEBHOOK_HANDLER_DELAY_MS` makes every handler wait
//! that long before it reports, and `RICLOUD_WEBHOOK_LEASE_MS` sets the
//! workers' lease.
//!
//! Prints one line per handler run on stdout (`handled <slug> <event id>
//! ...`); logs go to stderr. Ctrl-C or SIGTERM shuts it down gracefully.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use ricloud_webhook::Receiver;
use ricloud_webhook_api::{Client, Registration};
use ricloud_webhook_examples::{dispatcher, verifier, Report};
use ricloud_webhook_hyper::{serve, shutdown_signal, Config, WebhookService};
use ricloud_webhook_inbox::{Inbox, WorkerConfig, Workers};

/// Where the receiver keeps events when `RICLOUD_WEBHOOK_DATABASE_URL` is unset.
const DEFAULT_DATABASE_URL: &str = "sqlite://ricloud-webhook.db";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The process's TLS crypto provider, for registering with the API: ring.
    // The libraries install none; an error means one is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let level = std::env::var("RUST_LOG")
        .ok()
        .and_then(|l| l.parse::<tracing::Level>().ok())
        .unwrap_or(tracing::Level::INFO);
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .init();

    let registration = match env("RICLOUD_WEBHOOK_PUBLIC_URL") {
        Some(url) => Some(register(&url).await?),
        None => None,
    };
    let secret = match (std::env::var("RICLOUD_WEBHOOK_SECRET"), &registration) {
        (Ok(secret), Some(_)) if !secret.is_empty() => bail!(
            "set RICLOUD_WEBHOOK_SECRET or RICLOUD_WEBHOOK_PUBLIC_URL, not both: a registered config brings its own secret"
        ),
        (_, Some((_, registration))) => registration
            .config()
            .secret
            .as_ref()
            .map(|s| s.reveal().to_owned())
            .unwrap_or_default(),
        (Ok(secret), None) if !secret.is_empty() => secret,
        _ => {
            let secret = random_secret()?;
            eprintln!(
                "WARNING: RICLOUD_WEBHOOK_SECRET is not set. Using a random secret for LOCAL TESTING ONLY:\n\n    RICLOUD_WEBHOOK_SECRET={secret}\n\nSet RICLOUD_WEBHOOK_SECRET to your webhook config's secret for real deliveries."
            );
            secret
        }
    };
    let previous = env("RICLOUD_WEBHOOK_PREVIOUS_SECRET");
    let verifier = verifier(secret, previous).context("building the verifier")?;
    let addr = env("RICLOUD_WEBHOOK_ADDR").unwrap_or_else(|| "127.0.0.1:8080".into());
    let database =
        env("RICLOUD_WEBHOOK_DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.into());
    let mode = env("RICLOUD_WEBHOOK_MODE");
    let delay = Duration::from_millis(number("RICLOUD_WEBHOOK_HANDLER_DELAY_MS")?.unwrap_or(0));

    let report: Report = Arc::new(|line: String| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    });
    let handlers = dispatcher(report, delay);
    let mut workers: Option<Workers> = None;
    let receiver = match (database.as_str(), mode.as_deref()) {
        ("memory", None | Some("inline")) => {
            tracing::info!("mode inline, events kept in memory only");
            Receiver::new(verifier, handlers)
        }
        ("memory", Some(_)) => {
            bail!("RICLOUD_WEBHOOK_MODE=queued needs a database: set RICLOUD_WEBHOOK_DATABASE_URL")
        }
        (url, mode) => {
            let inbox = Inbox::connect(url)
                .await
                .context("opening the inbox (RICLOUD_WEBHOOK_DATABASE_URL)")?;
            if !inbox.is_postgres() {
                // SQLite serves one process: what a previous run left
                // running is this process's to take back.
                inbox
                    .take_back_abandoned()
                    .await
                    .context("recovering the inbox")?;
            }
            match mode {
                None | Some("queued") => {
                    tracing::info!(
                        "mode queued: events are committed, then answered, then handled"
                    );
                    let mut config = WorkerConfig::default();
                    if let Some(lease) = number("RICLOUD_WEBHOOK_LEASE_MS")? {
                        config = config.lease(Duration::from_millis(lease));
                    }
                    workers = Some(inbox.workers(handlers).config(config).spawn());
                    Receiver::queued(verifier, inbox)
                }
                Some("inline") => {
                    tracing::info!("mode inline: handlers run before the answer");
                    Receiver::inline(verifier, handlers, inbox)
                }
                Some(other) => {
                    bail!("RICLOUD_WEBHOOK_MODE must be queued or inline, not {other:?}")
                }
            }
        }
    };
    let service = WebhookService::with_config(receiver, Config::default());
    let prefix = service.prefix().to_owned();

    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("binding {addr} (set RICLOUD_WEBHOOK_ADDR to change it)"))?;
    let local = listener.local_addr()?;
    tracing::info!("listening on http://{local}{prefix}/<event id>");
    if let Some((client, registration)) = registration {
        // The API's test needs the receiver answering: it is, now.
        tokio::spawn(async move {
            let id = registration.config().id.clone();
            match registration
                .validate(&client, Duration::from_secs(60))
                .await
            {
                Ok(_) => tracing::info!(config = %id, "the webhook config is valid"),
                Err(e) => tracing::error!(config = %id, "the webhook config is not valid: {e}"),
            }
        });
    }
    let stop = shutdown_signal().context("watching for shutdown signals")?;
    serve(listener, service, async {
        stop.await;
        tracing::info!("shutdown signal received");
    })
    .await?;
    if let Some(workers) = workers {
        workers.shutdown().await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Finds or creates the webhook config for `url` (`RICLOUD_TOKEN`,
/// `RICLOUD_URL`).
async fn register(url: &str) -> anyhow::Result<(Client, Registration)> {
    let token = env("RICLOUD_TOKEN")
        .context("RICLOUD_WEBHOOK_PUBLIC_URL needs RICLOUD_TOKEN, the API key token")?;
    let mut builder = Client::builder(token);
    if let Some(api) = env("RICLOUD_URL") {
        builder = builder.base_url(api);
    }
    let client = builder.build()?;
    let registration = client
        .register(url)
        .await
        .with_context(|| format!("registering {url} with the API"))?;
    tracing::info!(
        config = %registration.config().id,
        state = registration.config().state_str(),
        "webhook config for {url}"
    );
    Ok((client, registration))
}

/// A non-empty environment variable.
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// An environment variable holding a whole number.
fn number(name: &str) -> anyhow::Result<Option<u64>> {
    env(name)
        .map(|v| {
            v.parse()
                .with_context(|| format!("{name} must be a whole number"))
        })
        .transpose()
}

fn random_secret() -> anyhow::Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no system randomness: {e}"))?;
    Ok(bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(b & 63)]))
        .collect())
}
