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
//! - `RICLOUD_WEBHOOK_CONFIGS`: instead of `RICLOUD_WEBHOOK_SECRET`,
//!   several webhook configs by name (`default,billing`), each delivered
//!   to at `/webhooks/<name>/<event id>` with its secret in
//!   `RICLOUD_WEBHOOK_SECRET_<NAME>` (upper case, `-` as `_`) and an
//!   optional `RICLOUD_WEBHOOK_PREVIOUS_SECRET_<NAME>`.
//! - `RICLOUD_WEBHOOK_FORWARD`: forward every verified event to a broker
//!   instead of running handlers: `nats://HOST:PORT` (JetStream) or
//!   `redis://HOST:PORT` (Streams), with options as query parameters
//!   (`ricloud_webhook_forward::from_url`; the README lists them). Alone,
//!   a delivery is answered 200 once the broker acknowledged it; with
//!   `RICLOUD_WEBHOOK_DATABASE_URL` set too, inbox first: the inbox
//!   acknowledges and its workers publish.
//! - `RICLOUD_WEBHOOK_TLS_CERT`, `RICLOUD_WEBHOOK_TLS_KEY`: PEM files of a
//!   certificate chain and its key: the receiver terminates TLS itself
//!   (HTTP/2 by ALPN) and reads them again on SIGHUP, without dropping a
//!   connection (without TLS, SIGHUP stops it like SIGTERM).
//! - `RICLOUD_WEBHOOK_ADMIN_ADDR`: the admin listener (`/metrics`,
//!   `/healthz`, `/readyz`, and with a database the inbox console at
//!   `/console`), default `127.0.0.1:9464`, `off` for none.
//! - `RICLOUD_WEBHOOK_CONSOLE_TOKEN`: the console's token; when unset, a
//!   random one is generated and its login link printed once on stderr.
//! - `RUST_LOG`: the log filter for stderr in `EnvFilter` syntax (`info`,
//!   `info,ricloud_webhook=debug`), default `info`;
//!   `RICLOUD_WEBHOOK_LOG_FORMAT=json` for one JSON object per line.
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
//! that long before it reports, `RICLOUD_WEBHOOK_LEASE_MS` sets the
//! workers' lease, `RICLOUD_WEBHOOK_RETRY_MAX_MS` the longest retry delay
//! of forwarding's workers, and `RICLOUD_WEBHOOK_FAIL_WHILE=<file>` makes the
//! `task.failed` handler give up on its events while that file exists.
//!
//! Prints one line per handler run on stdout (`handled <slug> <event id>
//! ...`); logs go to stderr. Ctrl-C or SIGTERM shuts it down gracefully.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use ricloud_webhook::Verifier;
use ricloud_webhook::{Dispatcher, Receiver};
use ricloud_webhook_api::{Client, Registration};
use ricloud_webhook_examples::{dispatcher_failing_while, verifier, verifiers_from_env, Report};
use ricloud_webhook_hyper::{
    reload_or_shutdown_signal, serve, serve_tls, shutdown_signal, Config, TlsFiles, WebhookService,
};
use ricloud_webhook_inbox::console::Console;
use ricloud_webhook_inbox::{Inbox, WorkerConfig, Workers};
use ricloud_webhook_ops::Admin;

/// Where the receiver keeps events when `RICLOUD_WEBHOOK_DATABASE_URL` is unset.
const DEFAULT_DATABASE_URL: &str = "sqlite://ricloud-webhook.db";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The process's TLS crypto provider, for registering with the API: ring.
    // The libraries install none; an error means one is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    ricloud_webhook_ops::init_logging()?;
    let admin_addr = ricloud_webhook_ops::admin_addr_from_env()?;
    let admin = Admin::install()?;

    let registration = match env("RICLOUD_WEBHOOK_PUBLIC_URL") {
        Some(url) => Some(register(&url).await?),
        None => None,
    };
    let named = verifiers_from_env(env).context("RICLOUD_WEBHOOK_CONFIGS")?;
    if named.is_some() && (registration.is_some() || env("RICLOUD_WEBHOOK_SECRET").is_some()) {
        bail!("set RICLOUD_WEBHOOK_CONFIGS or RICLOUD_WEBHOOK_SECRET (or RICLOUD_WEBHOOK_PUBLIC_URL), not both");
    }
    let verifiers = match named {
        Some(named) => named,
        None => single_verifier(registration.as_ref())?.into(),
    };
    let addr = env("RICLOUD_WEBHOOK_ADDR").unwrap_or_else(|| "127.0.0.1:8080".into());
    let database_set = env("RICLOUD_WEBHOOK_DATABASE_URL").is_some();
    let database =
        env("RICLOUD_WEBHOOK_DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.into());
    let mode = env("RICLOUD_WEBHOOK_MODE");
    let delay = Duration::from_millis(number("RICLOUD_WEBHOOK_HANDLER_DELAY_MS")?.unwrap_or(0));

    let report: Report = Arc::new(|line: String| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    });
    let handlers = dispatcher_failing_while(
        report,
        delay,
        env("RICLOUD_WEBHOOK_FAIL_WHILE").map(std::path::PathBuf::from),
    );
    let mut workers: Option<Workers> = None;
    let mut inbox: Option<Inbox> = None;
    let forward = match env("RICLOUD_WEBHOOK_FORWARD") {
        Some(url) => Some(
            ricloud_webhook_forward::from_url(&url)
                .await
                .context("RICLOUD_WEBHOOK_FORWARD")?,
        ),
        None => None,
    };
    // Direct forwarding: the broker takes the deliveries, so readiness asks it.
    let mut direct_broker = None;
    let receiver = match (forward, database.as_str(), mode.as_deref()) {
        // Forwarding is queued either way: into the broker, or into the
        // inbox and then the broker.
        (Some(_), _, Some(mode)) if mode != "queued" => {
            bail!(
                "RICLOUD_WEBHOOK_MODE={mode:?} does not apply to RICLOUD_WEBHOOK_FORWARD: events are queued (unset it, or set queued)"
            )
        }
        (Some(forwarder), url, _) if !database_set || url == "memory" => {
            tracing::info!(
                broker = forwarder.broker_name(),
                "forwarding: an event is answered 200 once the broker acknowledged it"
            );
            direct_broker = Some(forwarder.clone());
            Receiver::queued(verifiers, forwarder)
        }
        (Some(forwarder), url, _) => {
            // Inbox first: the inbox acknowledges, its workers publish, and
            // a broker outage is pending rows rather than failed deliveries.
            let opened = open_inbox(url).await?;
            tracing::info!(
                broker = forwarder.broker_name(),
                "forwarding, inbox first: an event is committed, answered, then published by the workers"
            );
            // A broker outage must never make an event dead: retried until
            // the broker is back, at least once a minute.
            let config = worker_config()?
                .max_attempts(u32::MAX)
                .backoff_max(Duration::from_secs(60));
            let config = match number("RICLOUD_WEBHOOK_RETRY_MAX_MS")? {
                Some(ms) => config
                    .backoff_base(Duration::from_millis(ms.min(200)))
                    .backoff_max(Duration::from_millis(ms)),
                None => config,
            };
            let forwarding = Dispatcher::new().on("*", forwarder);
            workers = Some(opened.workers(forwarding).config(config).spawn());
            inbox = Some(opened.clone());
            Receiver::queued(verifiers, opened)
        }
        (None, "memory", None | Some("inline")) => {
            tracing::info!("mode inline, events kept in memory only");
            Receiver::new(verifiers, handlers)
        }
        (None, "memory", Some(_)) => {
            bail!("RICLOUD_WEBHOOK_MODE=queued needs a database: set RICLOUD_WEBHOOK_DATABASE_URL")
        }
        (None, url, mode) => {
            let opened = open_inbox(url).await?;
            inbox = Some(opened.clone());
            match mode {
                None | Some("queued") => {
                    tracing::info!(
                        "mode queued: events are committed, then answered, then handled"
                    );
                    workers = Some(opened.workers(handlers).config(worker_config()?).spawn());
                    Receiver::queued(verifiers, opened)
                }
                Some("inline") => {
                    tracing::info!("mode inline: handlers run before the answer");
                    Receiver::inline(verifiers, handlers, opened)
                }
                Some(other) => {
                    bail!("RICLOUD_WEBHOOK_MODE must be queued or inline, not {other:?}")
                }
            }
        }
    };
    let service = WebhookService::with_config(receiver, Config::default());
    let prefix = service.prefix().to_owned();
    let tls = match (
        env("RICLOUD_WEBHOOK_TLS_CERT"),
        env("RICLOUD_WEBHOOK_TLS_KEY"),
    ) {
        (Some(cert), Some(key)) => Some(
            TlsFiles::load(&cert, &key)
                .context("loading RICLOUD_WEBHOOK_TLS_CERT and RICLOUD_WEBHOOK_TLS_KEY")?,
        ),
        (None, None) => None,
        _ => bail!("set both RICLOUD_WEBHOOK_TLS_CERT and RICLOUD_WEBHOOK_TLS_KEY, or neither"),
    };

    let admin = admin.ready_when("receiver", {
        let service = service.clone();
        move || {
            let shutting_down = service.receiver().is_shutting_down();
            async move {
                if shutting_down {
                    Err("shutting down".to_owned())
                } else {
                    Ok(())
                }
            }
        }
    });
    let admin = match direct_broker {
        Some(forwarder) => admin.ready_when("broker", move || {
            let forwarder = forwarder.clone();
            async move { forwarder.ping().await.map_err(|e| e.to_string()) }
        }),
        None => admin,
    };
    let mut console_login = None;
    let admin = match inbox {
        Some(inbox) => {
            let scraped = inbox.clone();
            let (token, generated) = match env("RICLOUD_WEBHOOK_CONSOLE_TOKEN") {
                Some(token) => (token, false),
                None => (Console::random_token(), true),
            };
            let console = Console::new(inbox.clone(), token);
            if generated {
                console_login = Some(console.login_path());
            }
            admin
                .routes(console.router())
                .ready_when("inbox", move || {
                    let inbox = inbox.clone();
                    async move { inbox.ping().await.map_err(|e| e.to_string()) }
                })
                .before_scrape(move || {
                    let inbox = scraped.clone();
                    async move { inbox.record_metrics().await.map_err(|e| e.to_string()) }
                })
        }
        None => admin,
    };
    let (admin_stop, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    let admin_task = match admin_addr {
        Some(admin_addr) => {
            let listener = tokio::net::TcpListener::bind(admin_addr).await.with_context(|| {
                format!("binding the admin listener on {admin_addr} (RICLOUD_WEBHOOK_ADMIN_ADDR; `off` for none)")
            })?;
            let local = listener.local_addr()?;
            tracing::info!(
                "admin listener on http://{local}: /metrics, /healthz, /readyz, /console"
            );
            if let Some(path) = &console_login {
                // The generated token, once, to the operator's terminal
                // (never to the log): as Jupyter does.
                eprintln!(
                    "Inbox console (RICLOUD_WEBHOOK_CONSOLE_TOKEN is not set; this token lasts until the process stops):\n\n    http://{local}{path}\n"
                );
            }
            Some(tokio::spawn(admin.serve(listener, async {
                let _ = admin_stopped.await;
            })))
        }
        None => None,
    };

    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("binding {addr} (set RICLOUD_WEBHOOK_ADDR to change it)"))?;
    let local = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let path = if service.receiver().verifiers().is_named() {
        "<config name>/<event id>"
    } else {
        "<event id>"
    };
    tracing::info!("listening on {scheme}://{local}{prefix}/{path}");
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
    match tls {
        None => {
            let stop = shutdown_signal().context("watching for shutdown signals")?;
            serve(listener, service, async {
                stop.await;
                tracing::info!("shutdown signal received");
            })
            .await?;
        }
        Some(tls) => {
            let config = tls.server_config()?;
            let stop = reload_or_shutdown_signal(move || match tls.reload() {
                Ok(()) => tracing::info!("SIGHUP: TLS certificate reloaded"),
                Err(e) => tracing::error!(
                    "SIGHUP: TLS certificate not reloaded, the old one stays: {:#}",
                    anyhow::Error::from(e)
                ),
            })
            .context("watching for signals")?;
            serve_tls(listener, service, config, async {
                stop.await;
                tracing::info!("shutdown signal received");
            })
            .await?;
        }
    }
    if let Some(workers) = workers {
        workers.shutdown().await;
    }
    let _ = admin_stop.send(());
    if let Some(task) = admin_task {
        let _ = task.await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// The one config's verifier: `RICLOUD_WEBHOOK_SECRET` (and the previous
/// one), the registered config's secret, or a random secret for local
/// testing.
fn single_verifier(registration: Option<&(Client, Registration)>) -> anyhow::Result<Verifier> {
    let secret = match (std::env::var("RICLOUD_WEBHOOK_SECRET"), registration) {
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
    verifier(secret, previous).context("building the verifier")
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

/// Opens the inbox at `url`; SQLite's serves this process only, so what a
/// previous run left running is taken back.
async fn open_inbox(url: &str) -> anyhow::Result<Inbox> {
    let inbox = Inbox::connect(url)
        .await
        .context("opening the inbox (RICLOUD_WEBHOOK_DATABASE_URL)")?;
    if !inbox.is_postgres() {
        inbox
            .take_back_abandoned()
            .await
            .context("recovering the inbox")?;
    }
    Ok(inbox)
}

/// The workers' settings (`RICLOUD_WEBHOOK_LEASE_MS` for tests).
fn worker_config() -> anyhow::Result<WorkerConfig> {
    let mut config = WorkerConfig::default();
    if let Some(lease) = number("RICLOUD_WEBHOOK_LEASE_MS")? {
        config = config.lease(Duration::from_millis(lease));
    }
    Ok(config)
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
