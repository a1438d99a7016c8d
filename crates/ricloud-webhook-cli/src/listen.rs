//! `ricloud-webhook listen`: a webhook config for a public (tunnel) URL,
//! a receiver on its secret, every event printed, and the config deleted
//! again however the command ends: a signal (SIGINT, SIGTERM, SIGHUP), a
//! failure, a panic, or a create that timed out after the API acted.

use std::collections::HashSet;
use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use clap::ArgMatches;
use futures_util::TryStreamExt as _;
use ricloud_webhook::resources::WebhookConfigState;
use ricloud_webhook::{Dispatcher, Event, Receiver, Secret, Verifier};
use ricloud_webhook_api::transport::TransportError;
use ricloud_webhook_api::{ApiError, Client, ConfigFilter, WebhookConfigWithSecret};
use ricloud_webhook_hyper::{serve, shutdown_signal, Config, WebhookService};

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
    let signals = shutdown_signal().context("cannot watch for Ctrl-C, SIGTERM and SIGHUP")?;
    tokio::pin!(signals);
    // Listening before the config exists: the API's first test, sent as
    // soon as the config is created, waits in the backlog until the
    // receiver runs.
    let listener = tokio::net::TcpListener::bind((bind.as_str(), port))
        .await
        .with_context(|| format!("cannot listen on {bind}:{port}"))?;
    // Logs on stderr, and the admin listener's metrics, as the example
    // receiver has them.
    ricloud_webhook_ops::init_logging()?;
    let admin = match ricloud_webhook_ops::admin_addr_from_env()? {
        Some(addr) => {
            let admin = ricloud_webhook_ops::Admin::install()?;
            let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
                format!("cannot listen on {addr} for the admin listener (RICLOUD_WEBHOOK_ADMIN_ADDR; `off` for none)")
            })?;
            eprintln!(
                "admin listener on http://{}: /metrics, /healthz, /readyz",
                listener.local_addr()?
            );
            Some(tokio::spawn(admin.serve(listener, std::future::pending())))
        }
        None => None,
    };

    // The configs already at this URL: a create that fails after the API
    // acted on it leaves one more, found by comparing.
    let before = configs_at(client, &public).await?;
    let config = match client.create_webhook_config(&public).await {
        Ok(config) => config,
        Err(e) => {
            if may_have_acted(&e) {
                delete_created(client, &public, &before).await;
            }
            return Err(anyhow!(e).context("cannot create the webhook config"));
        }
    };
    let id = config.id.to_string();
    eprintln!("created webhook config {id} for {public}");
    // A panic unwinding through here still deletes the config.
    let mut guard = DeleteOnDrop {
        client: client.clone(),
        id: Some(id.clone()),
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let outcome = async {
        let secret = config
            .secret
            .as_ref()
            .ok_or_else(|| anyhow!("the API sent no secret for config {id}"))?
            .to_secret()?;
        let service = WebhookService::with_config(
            receiver(secret, json, &id),
            Config::default().prefix(&prefix),
        );
        let mut stopped = stopped.clone();
        let server = tokio::spawn(serve(listener, service, async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }));
        tokio::select! {
            () = &mut signals => return Ok(0),
            valid = until_valid(client, &id, timeout) => valid?,
        }
        eprintln!(
            "webhook config {id} is valid; receiving on {bind}:{port}{prefix}/<event id>. Ctrl-C, SIGTERM or SIGHUP stops, and deletes the config."
        );
        tokio::select! {
            () = &mut signals => Ok(0),
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
    guard.id = None;
    let deleted = client.delete_webhook_config(&id, true).await;
    match &deleted {
        Ok(()) => eprintln!("deleted webhook config {id}"),
        Err(e) => eprintln!("error: could not delete webhook config {id}: {e}; delete it with `ricloud-webhook config delete {id}`"),
    }
    if let Some(admin) = admin {
        admin.abort();
    }
    let code = outcome?;
    deleted.map_err(|e| anyhow!("{e}"))?;
    Ok(code)
}

/// The ids of the configs whose URL is `url`.
async fn configs_at(client: &Client, url: &str) -> anyhow::Result<HashSet<String>> {
    let wanted = url.trim_end_matches('/');
    let mut ids = HashSet::new();
    let mut configs = client.webhook_configs(ConfigFilter::default());
    while let Some(config) = configs
        .try_next()
        .await
        .context("cannot list the webhook configs")?
    {
        if config.url.as_deref().map(|u| u.trim_end_matches('/')) == Some(wanted) {
            ids.insert(config.id.to_string());
        }
    }
    Ok(ids)
}

/// Whether a failed request may still have been carried out by the API:
/// no answer in time, a broken exchange, a server error.
fn may_have_acted(e: &ApiError) -> bool {
    matches!(
        e,
        ApiError::Transport(TransportError::Timeout { .. } | TransportError::Http(_))
    ) || e.status().is_some_and(|s| s.is_server_error())
}

/// Deletes the configs at `url` that are not in `before`: the ones a
/// create that seemed to fail made after all.
async fn delete_created(client: &Client, url: &str, before: &HashSet<String>) {
    match configs_at(client, url).await {
        Ok(now) => {
            for id in now.difference(before) {
                match client.delete_webhook_config(id, true).await {
                    Ok(()) => eprintln!("deleted webhook config {id}, made by the create that failed"),
                    Err(e) => eprintln!("error: could not delete webhook config {id}: {e}; delete it with `ricloud-webhook config delete {id}`"),
                }
            }
        }
        Err(e) => eprintln!(
            "error: cannot tell whether the failed create made a config for {url} ({e:#}); look with `ricloud-webhook config list`"
        ),
    }
}

/// Deletes its config when dropped while still armed: on a panic.
struct DeleteOnDrop {
    client: Client,
    id: Option<String>,
}

impl Drop for DeleteOnDrop {
    fn drop(&mut self) {
        let Some(id) = self.id.take() else { return };
        let client = self.client.clone();
        // A runtime of its own on a thread of its own: this may run while
        // the command's runtime unwinds.
        let deleted = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime
                .block_on(client.delete_webhook_config(&id, true))
                .map_err(|e| format!("{e}; delete it with `ricloud-webhook config delete {id}`"))
                .map(|()| id)
        })
        .join();
        match deleted {
            Ok(Ok(id)) => eprintln!("deleted webhook config {id}"),
            Ok(Err(e)) => eprintln!("error: could not delete the webhook config: {e}"),
            Err(_) => eprintln!("error: could not delete the webhook config"),
        }
    }
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

/// Why the config is not usable.
fn config_not_valid(config: &WebhookConfigWithSecret) -> anyhow::Error {
    anyhow!(
        "webhook config {} is {}: the receiver did not answer the API's test",
        config.id,
        config.state_str()
    )
}

/// A receiver for the config's secret that prints every event: its slug,
/// its id and the config's, or with `--json` the event as it arrived.
fn receiver(secret: Secret, json: bool, config: &str) -> Receiver {
    let config: Arc<str> = Arc::from(config);
    let print = Dispatcher::new().on("*", move |event: Arc<Event>| {
        let config = Arc::clone(&config);
        async move {
            let mut out = std::io::stdout().lock();
            let _ = if json {
                writeln!(out, "{}", String::from_utf8_lossy(event.raw()))
            } else {
                writeln!(
                    out,
                    "received {} {} config={config}",
                    event.slug(),
                    event.id
                )
            };
            let _ = out.flush();
            Ok(())
        }
    });
    Receiver::new(Verifier::new(secret), print)
}
