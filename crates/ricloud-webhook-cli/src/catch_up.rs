//! `catch-up`: the events the API gave up delivering (or any it lists),
//! handed again to a running receiver, re-signed, or written straight into
//! its inbox, a few at a time, with a progress bar on a terminal.

use std::io::IsTerminal as _;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::{anyhow, Context as _};
use clap::ArgMatches;
use futures_util::TryStreamExt as _;
use ricloud_webhook::{sign, Enqueued, Event, Secret};
use ricloud_webhook_api::{ApiEvent, Client, EventFilter, Pages};
use ricloud_webhook_cli::{unix_seconds, Sender};
use serde_json::json;

use crate::api::{event_filter, is_loopback, FAILED, OK};
use crate::args::{DATABASE_ENV, SECRET_ENV};

/// How many catch-up deliveries are in flight at once.
const CATCH_UP_CONCURRENCY: usize = 8;

/// Where `catch-up` hands events.
enum Target {
    /// Re-signed and POSTed to a running receiver.
    Receiver {
        url: String,
        secret: Arc<Secret>,
        sender: Sender,
    },
    /// Written straight into a receiver's inbox, signed with the secret
    /// when there is one (so that a forwarder passes on a signature its
    /// consumers can verify).
    Inbox {
        inbox: ricloud_webhook_inbox::Inbox,
        secret: Option<Secret>,
    },
}

/// What one event's hand-over came to.
enum Handed {
    Delivered,
    Skipped,
    Failed(String),
}

#[derive(Debug, Default)]
struct Counts {
    fetched: u64,
    delivered: u64,
    skipped: u64,
    failed: u64,
}

pub(crate) async fn run(
    client: &Client,
    mut m: ArgMatches,
    json: bool,
    ca_cert: Option<&[u8]>,
) -> anyhow::Result<u8> {
    let filter = event_filter(&mut m)?;
    let states: Vec<String> = m
        .remove_one::<String>("state")
        .unwrap_or_else(|| "failed,pending".to_owned())
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    // The token goes to the API and the events it answers are trusted
    // (re-signed, or written into the inbox): not over plain HTTP.
    let api = client.base_url();
    if api.scheme() == "http" && !is_loopback(api) {
        return Err(anyhow!(
            "catch-up would send the API token in clear and trust unauthenticated events from {api}: use an https:// API URL (http:// is allowed on loopback only)"
        ));
    }
    let explicit_database =
        m.value_source("database-url") == Some(clap::parser::ValueSource::CommandLine);
    let to = m.remove_one::<String>("to");
    let database = m.remove_one::<String>("database-url");
    if to.is_some() && explicit_database {
        return Err(anyhow!("pass one of --to and --database-url, not both"));
    }
    let target = if let (None, Some(url)) = (&to, database) {
        let secret = m
            .remove_one::<String>("secret")
            .map(|s| Secret::new(s).map_err(|e| anyhow!("{e}: pass a non-empty --secret")))
            .transpose()?;
        // An inbox the receiver made: a missing SQLite file is an error.
        Target::Inbox {
            inbox: ricloud_webhook_inbox::Inbox::connect_existing(&url)
                .await
                .context("cannot open the inbox")?,
            secret,
        }
    } else {
        let url = to.ok_or_else(|| {
            anyhow!(
                "nowhere to deliver: pass --to URL or --database-url URL (or set {DATABASE_ENV})"
            )
        })?;
        let secret = m.remove_one::<String>("secret").ok_or_else(|| {
            anyhow!("--to needs the receiver's secret: pass --secret or set {SECRET_ENV}")
        })?;
        let secret = Secret::new(secret).map_err(|e| anyhow!("{e}: pass a non-empty --secret"))?;
        // Checks the URL before anything is fetched.
        ricloud_webhook_cli::event_url(&url, "x")?;
        Target::Receiver {
            url,
            secret: Arc::new(secret),
            sender: Sender::new(ricloud_webhook_cli::DEFAULT_TIMEOUT, ca_cert)?,
        }
    };
    let target = Arc::new(target);
    let progress = progress_bar();
    let mut counts = Counts::default();
    let mut error = None;
    for state in &states {
        let mut pages: Pages<ApiEvent> = client.events(EventFilter {
            state: Some(state.clone()),
            ..filter.clone()
        });
        if let Err(e) = hand_over_all(&mut pages, &target, &mut counts, progress.as_ref()).await {
            error = Some(e);
            break;
        }
    }
    if let Some(bar) = &progress {
        bar.finish_and_clear();
    }
    let summary = format!(
        "fetched {}, delivered {}, skipped {} (already there), failed {}",
        counts.fetched, counts.delivered, counts.skipped, counts.failed
    );
    if json {
        println!(
            "{}",
            json!({
                "fetched": counts.fetched,
                "delivered": counts.delivered,
                "skipped": counts.skipped,
                "failed": counts.failed,
                "error": error.as_ref().map(ToString::to_string),
            })
        );
    } else {
        println!("{summary}");
    }
    if let Some(e) = error {
        eprintln!("error: stopped early: {e:#}");
        return Ok(FAILED);
    }
    Ok(if counts.failed == 0 { OK } else { FAILED })
}

/// Fetches every page and hands each event over, a few at a time.
async fn hand_over_all(
    pages: &mut Pages<ApiEvent>,
    target: &Arc<Target>,
    counts: &mut Counts,
    progress: Option<&indicatif::ProgressBar>,
) -> anyhow::Result<()> {
    let mut running = tokio::task::JoinSet::new();
    let mut fetch_error = None;
    // The bar counts every state's events: this state's total comes on top
    // of what the states before it fetched.
    let before = counts.fetched;
    loop {
        while running.len() >= CATCH_UP_CONCURRENCY {
            settle(running.join_next().await, counts, progress);
        }
        let event = match pages.try_next().await {
            Ok(Some(event)) => event,
            Ok(None) => break,
            Err(e) => {
                fetch_error = Some(e);
                break;
            }
        };
        counts.fetched += 1;
        if let (Some(bar), Some(total)) = (progress, pages.total_count()) {
            bar.set_length((before + total).max(counts.fetched));
        }
        let target = Arc::clone(target);
        running.spawn(async move {
            let id = event.id.to_string();
            (id, hand_over(&target, event).await)
        });
    }
    // Whatever was fetched is handed over before an error is reported.
    while let Some(done) = running.join_next().await {
        settle(Some(done), counts, progress);
    }
    match fetch_error {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

fn settle(
    done: Option<Result<(String, Handed), tokio::task::JoinError>>,
    counts: &mut Counts,
    progress: Option<&indicatif::ProgressBar>,
) {
    match done {
        Some(Ok((_, Handed::Delivered))) => counts.delivered += 1,
        Some(Ok((_, Handed::Skipped))) => counts.skipped += 1,
        Some(Ok((id, Handed::Failed(reason)))) => {
            counts.failed += 1;
            let line = format!("failed {id}: {reason}");
            match progress {
                Some(bar) => bar.println(line),
                None => eprintln!("{line}"),
            }
        }
        Some(Err(e)) => {
            counts.failed += 1;
            eprintln!("a delivery task failed: {e}");
        }
        None => {}
    }
    if let Some(bar) = progress {
        bar.inc(1);
    }
}

async fn hand_over(target: &Target, event: ApiEvent) -> Handed {
    let body = event.json().as_bytes().to_vec();
    match target {
        Target::Receiver {
            url,
            secret,
            sender,
        } => match sender.post_event(url, secret, body).await {
            Ok(answer) if answer.is_success() => Handed::Delivered,
            Ok(answer) => Handed::Failed(format!("the receiver answered {}", answer.status())),
            Err(e) => Handed::Failed(e.to_string()),
        },
        Target::Inbox { inbox, secret } => {
            // Fetched from the API itself, over its authenticated channel:
            // as trustworthy as a verified delivery.
            let event = match Event::from_json(body) {
                Ok(event) => event,
                Err(e) => return Handed::Failed(format!("not an event: {e}")),
            };
            let now = SystemTime::now();
            let stored = match secret {
                Some(secret) => {
                    let signature = sign(secret, unix_seconds(now), event.raw());
                    inbox.enqueue_fetched_signed(&event, &signature, now).await
                }
                None => inbox.enqueue_fetched(&event, now).await,
            };
            match stored {
                Ok(Enqueued::New) => Handed::Delivered,
                Ok(_) => Handed::Skipped,
                Err(e) => Handed::Failed(e.to_string()),
            }
        }
    }
}

/// A progress bar on a terminal; plain counts otherwise.
fn progress_bar() -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(0);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{bar:40} {pos}/{len} events handed over ({per_sec}, {eta} left)",
    ) {
        bar.set_style(style);
    }
    Some(bar)
}
