//! `ricloud-webhook listen`: a webhook config for a public (tunnel) URL,
//! a receiver on its secret, every event printed, and the config deleted
//! again however the command ends.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use clap::ArgMatches;
use ricloud_webhook::{Dispatcher, Event, Receiver, Secret, Verifier, WebhookConfigState};
use ricloud_webhook_api::{Client, WebhookConfig};
use ricloud_webhook_hyper::{serve, Config, WebhookService};

/// How often the config's state is looked at while its first test runs.
const POLL: Duration = Duration::from_millis(500);

pub(crate) async fn run(client: &Client, mut m: ArgMatches, json: bool) -> anyhow::Result<u8> {
    let public = m
        .remove_one::<String>("public-url")
        .ok_or_else(|| anyhow!("missing --public-url"))?;
    let port = m.get_one::<u16>("port").copied().unwrap_or(8080);
    let bind = m
        .remove_one::<String>("bind")
        .unwrap_or_else(|| "127.0.0.1".to_owned());
    let timeout = m
        .get_one::<Duration>("timeout")
        .copied()
        .unwrap_or(Duration::from_secs(60));
    let prefix = reqwest::Url::parse(&public)
        .context("--public-url is not an absolute URL")?
        .path()
        .trim_end_matches('/')
        .to_owned();
    // Watched from the start: a signal that came before the watch would
    // end the process with the config left behind.
    let mut signals = Signals::new()?;
    // Listening before the config exists: the API's first test, sent as
    // soon as the config is created, waits in the backlog until the
    // receiver runs.
    let listener = tokio::net::TcpListener::bind((bind.as_str(), port))
        .await
        .with_context(|| format!("cannot listen on {bind}:{port}"))?;

    let config = client
        .create_webhook_config(&public)
        .await
        .context("cannot create the webhook config")?;
    let id = config.id.to_string();
    eprintln!("created webhook config {id} for {public}");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let outcome = async {
        let secret = config
            .secret
            .as_ref()
            .ok_or_else(|| anyhow!("the API sent no secret for config {id}"))?
            .to_secret()?;
        let service = WebhookService::with_config(receiver(secret, json), Config::default().prefix(&prefix));
        let mut stopped = stopped.clone();
        let server = tokio::spawn(serve(listener, service, async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }));
        tokio::select! {
            () = signals.recv() => return Ok(0),
            valid = until_valid(client, &id, timeout) => valid?,
        }
        eprintln!(
            "webhook config {id} is valid; receiving on {bind}:{port}{prefix}/<event id>. Ctrl-C or SIGTERM stops, and deletes the config."
        );
        tokio::select! {
            () = signals.recv() => Ok(0),
            ended = server => match ended {
                Ok(Ok(())) => Err(anyhow!("the receiver stopped")),
                Ok(Err(e)) => Err(anyhow!("the receiver failed: {e}")),
                Err(e) => Err(anyhow!("the receiver failed: {e}")),
            },
        }
    }
    .await;
    let _ = stop.send(true);
    // However it ended, the config goes.
    let deleted = client.delete_webhook_config(&id, true).await;
    match &deleted {
        Ok(()) => eprintln!("deleted webhook config {id}"),
        Err(e) => eprintln!("error: could not delete webhook config {id}: {e}; delete it with `ricloud-webhook config delete {id}`"),
    }
    let code = outcome?;
    deleted.map_err(|e| anyhow!("{e}"))?;
    Ok(code)
}

/// Waits for the config's first test; tests it once more if that one ran
/// before the receiver could answer.
async fn until_valid(client: &Client, id: &str, timeout: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let config = client.webhook_config(id).await?;
        match config.state {
            Some(WebhookConfigState::Valid) => return Ok(()),
            Some(WebhookConfigState::Invalid) => {
                let config = client
                    .test_and_wait(
                        id,
                        deadline.saturating_duration_since(tokio::time::Instant::now()),
                    )
                    .await?;
                return if config.state == Some(WebhookConfigState::Valid) {
                    Ok(())
                } else {
                    Err(config_not_valid(&config))
                };
            }
            Some(WebhookConfigState::New) | None => {}
            Some(_) => return Err(config_not_valid(&config)),
        }
        if tokio::time::Instant::now() + POLL > deadline {
            return Err(anyhow!(
                "webhook config {id} was not tested within {timeout:?}"
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Ctrl-C (SIGINT) and SIGTERM, watched from when it is made.
#[cfg(unix)]
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    fn new() -> anyhow::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self {
            interrupt: signal(SignalKind::interrupt()).context("cannot watch for Ctrl-C")?,
            terminate: signal(SignalKind::terminate()).context("cannot watch for SIGTERM")?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

/// Ctrl-C, where there are no unix signals.
#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn new() -> anyhow::Result<Self> {
        Ok(Self)
    }

    async fn recv(&mut self) {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Why the config is not usable.
fn config_not_valid(config: &WebhookConfig) -> anyhow::Error {
    anyhow!(
        "webhook config {} is {}: the receiver did not answer the API's test",
        config.id,
        config.state_str()
    )
}

/// A receiver for the config's secret that prints every event: its slug
/// and id, or with `--json` the event as it arrived.
fn receiver(secret: Secret, json: bool) -> Receiver {
    let print = Dispatcher::new().on("*", move |event: Arc<Event>| async move {
        let mut out = std::io::stdout().lock();
        let _ = if json {
            writeln!(out, "{}", String::from_utf8_lossy(event.raw()))
        } else {
            writeln!(out, "received {} {}", event.slug(), event.id)
        };
        let _ = out.flush();
        Ok(())
    });
    Receiver::new(Verifier::new(secret), print)
}
