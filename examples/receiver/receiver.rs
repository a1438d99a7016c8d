//! A ricloud webhook receiver: `cargo run --release --bin receiver`.
//!
//! Environment:
//! - `RICLOUD_WEBHOOK_SECRET`: the webhook config's secret. When unset, a
//!   random one is generated and printed once, for local testing only.
//! - `RICLOUD_WEBHOOK_PREVIOUS_SECRET`: optional, also accepted (rotation).
//! - `RICLOUD_WEBHOOK_ADDR`: listening address, default `127.0.0.1:8080`.
//! - `RUST_LOG`: log level for stderr (`error` .. `trace`), default `info`.
//!
//! Prints one line per handled event on stdout; logs go to stderr. Ctrl-C or
//! SIGTERM shuts it down gracefully.

use std::io::Write;
use std::sync::Arc;

use anyhow::Context;
use ricloud_webhook::Receiver;
use ricloud_webhook_examples::{dispatcher, verifier};
use ricloud_webhook_hyper::{serve, Config, WebhookService};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let level = std::env::var("RUST_LOG")
        .ok()
        .and_then(|l| l.parse::<tracing::Level>().ok())
        .unwrap_or(tracing::Level::INFO);
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .init();

    let secret = match std::env::var("RICLOUD_WEBHOOK_SECRET") {
        Ok(secret) if !secret.is_empty() => secret,
        _ => {
            let secret = random_secret()?;
            eprintln!(
                "WARNING: RICLOUD_WEBHOOK_SECRET is not set. Using a random secret for LOCAL TESTING ONLY:\n\n    RICLOUD_WEBHOOK_SECRET={secret}\n\nSet RICLOUD_WEBHOOK_SECRET to your webhook config's secret for real deliveries."
            );
            secret
        }
    };
    let previous = std::env::var("RICLOUD_WEBHOOK_PREVIOUS_SECRET")
        .ok()
        .filter(|s| !s.is_empty());
    let verifier = verifier(secret, previous).context("building the verifier")?;
    let addr = std::env::var("RICLOUD_WEBHOOK_ADDR").unwrap_or_else(|_| "127.0.0.1:8080".into());

    let report = Arc::new(|line: String| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    });
    let receiver = Receiver::new(verifier, dispatcher(report));
    let config = Config::default();
    let prefix = config.webhook_prefix().to_owned();
    let service = WebhookService::with_config(receiver, config);

    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("binding {addr} (set RICLOUD_WEBHOOK_ADDR to change it)"))?;
    let local = listener.local_addr()?;
    tracing::info!("listening on http://{local}{prefix}/<event id>");
    serve(listener, service, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
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

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received");
}
