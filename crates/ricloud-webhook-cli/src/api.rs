//! The commands that talk to the ricloud API: `config`, `events`,
//! `catch-up` and `listen`.

use std::io::{IsTerminal as _, Write as _};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, Context as _};
use clap::ArgMatches;
use futures_util::TryStreamExt as _;
use ricloud_webhook::resources::WebhookConfigState;
use ricloud_webhook::{Enqueued, Event, Secret};
use ricloud_webhook_api::{
    ApiEvent, Client, ConfigFilter, ConfigUpdate, EventFilter, Pages, WebhookConfigWithSecret,
};
use ricloud_webhook_cli::Sender;
use serde_json::{json, Value};

use crate::args::{API_URL_ENV, DATABASE_ENV, SECRET_ENV, TOKEN_ENV};
use crate::time::parse_time;

/// Exit status of a command that ran to a good end.
const OK: u8 = 0;
/// Exit status of a command whose outcome is a failure (a config not
/// valid, an event not delivered).
const FAILED: u8 = 1;

/// How many catch-up deliveries are in flight at once.
const CATCH_UP_CONCURRENCY: usize = 8;

/// Runs `config`, `events`, `catch-up` or `listen`; the exit status.
pub(crate) fn run(name: &str, mut m: ArgMatches) -> anyhow::Result<u8> {
    // One private CA for the API and, in a catch-up, the receiver.
    let ca_cert = match m.remove_one::<std::path::PathBuf>("ca-cert") {
        Some(path) => {
            Some(std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?)
        }
        None => None,
    };
    let client = client(&mut m, ca_cert.clone())?;
    let json = m.get_flag("json");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        match name {
            "config" => config(&client, m, json).await,
            "events" => events(&client, m, json).await,
            "catch-up" => catch_up(&client, m, json, ca_cert.as_deref()).await,
            "listen" => crate::listen::run(&client, m, json).await,
            _ => Err(anyhow!("unknown command {name}")),
        }
    })
}

/// The API client from `--token` / `RICLOUD_TOKEN` and `--api-url` / `RICLOUD_URL`.
fn client(m: &mut ArgMatches, ca_cert: Option<Vec<u8>>) -> anyhow::Result<Client> {
    let token = m
        .remove_one::<String>("token")
        .ok_or_else(|| anyhow!("no API token: pass --token or set {TOKEN_ENV}"))?;
    let mut builder = Client::builder(token);
    if let Some(url) = m.remove_one::<String>("api-url") {
        builder = builder.base_url(url);
    }
    if let Some(pem) = ca_cert {
        builder = builder.ca_cert(pem);
    }
    if let Some(pages) = m.remove_one::<u32>("max-pages") {
        builder = builder.max_pages(pages);
    }
    builder
        .build()
        .map_err(|e| anyhow!("{e} (the API URL comes from --api-url or {API_URL_ENV})"))
}

async fn config(client: &Client, mut m: ArgMatches, json: bool) -> anyhow::Result<u8> {
    let (name, mut m) = m
        .remove_subcommand()
        .ok_or_else(|| anyhow!("no config command given: see `ricloud-webhook config --help`"))?;
    match name.as_str() {
        "create" => {
            let url = m.remove_one::<String>("url").unwrap_or_default();
            let config = client.create_webhook_config(&url).await?;
            if m.get_flag("default") {
                client
                    .set_default_webhook_config(config.id.as_str())
                    .await?;
            }
            show_config(&config, &mut m, json)?;
            if !json {
                eprintln!(
                    "The API is testing the config now. Start your receiver with the secret, then run\n    ricloud-webhook config test {} --wait",
                    config.id
                );
            }
            Ok(OK)
        }
        "get" => {
            let id = m.remove_one::<String>("id").unwrap_or_default();
            let config = client.webhook_config(&id).await?;
            show_config(&config, &mut m, json)?;
            Ok(OK)
        }
        "list" => {
            let filter = m
                .remove_one::<String>("state")
                .map(ConfigFilter::state)
                .unwrap_or_default();
            let configs = client
                .webhook_configs(filter)
                .try_collect::<Vec<_>>()
                .await?;
            if json {
                let configs: Vec<Value> = configs.iter().map(|c| config_json(c, false)).collect();
                println!("{}", serde_json::to_string_pretty(&configs)?);
            } else {
                println!("{:<36}  {:<11}  {:<27}  URL", "ID", "STATE", "CREATED");
                for c in &configs {
                    println!(
                        "{:<36}  {:<11}  {:<27}  {}",
                        c.id,
                        c.state_str(),
                        c.date_created.as_deref().unwrap_or(""),
                        c.url.as_deref().unwrap_or("")
                    );
                }
            }
            Ok(OK)
        }
        "update" => {
            let id = m.remove_one::<String>("id").unwrap_or_default();
            let update = match m.remove_one::<String>("url") {
                Some(url) => ConfigUpdate::Url(url),
                None => ConfigUpdate::Deactivate,
            };
            let config = client.update_webhook_config(&id, update).await?;
            print_config_line(&config, json)?;
            Ok(OK)
        }
        "delete" => {
            let id = m.remove_one::<String>("id").unwrap_or_default();
            client.delete_webhook_config(&id, false).await?;
            if json {
                println!("{}", json!({ "id": id, "deleted": true }));
            } else {
                println!("deleted {id}");
            }
            Ok(OK)
        }
        "test" => {
            let id = m.remove_one::<String>("id").unwrap_or_default();
            let task = client.test_webhook_config(&id).await?;
            if !m.get_flag("wait") {
                if json {
                    println!("{}", serde_json::to_string_pretty(&task)?);
                } else {
                    let state = task.state.as_ref().map_or("?", |s| s.as_str());
                    println!("test task {} {state}", task.id);
                }
                return Ok(OK);
            }
            let timeout = m
                .get_one::<Duration>("timeout")
                .copied()
                .unwrap_or(Duration::from_secs(60));
            let config = client.wait_for_test(&id, task.id.as_str(), timeout).await?;
            print_config_line(&config, json)?;
            Ok(if config.state == Some(WebhookConfigState::Valid) {
                OK
            } else {
                FAILED
            })
        }
        other => Err(anyhow!("unknown config command {other}")),
    }
}

/// A config's id, state and URL; its secret only where asked for.
fn show_config(
    config: &WebhookConfigWithSecret,
    m: &mut ArgMatches,
    json: bool,
) -> anyhow::Result<()> {
    let show_secret = m.get_flag("show-secret");
    let file = m.remove_one::<std::path::PathBuf>("secret-file");
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&config_json(config, show_secret))?
        );
    } else {
        print_config_line(config, false)?;
    }
    let Some(secret) = &config.secret else {
        eprintln!("note: the API sent no secret for this config");
        return Ok(());
    };
    if let Some(path) = &file {
        write_secret_file(path, secret.reveal())?;
        eprintln!(
            "The secret is in {} (mode 0600). Run the receiver with RICLOUD_WEBHOOK_SECRET=\"$(cat {})\".",
            path.display(),
            path.display()
        );
    }
    if show_secret {
        if !json {
            println!("secret {}", secret.reveal());
        }
        eprintln!("Keep the secret out of shell history and logs: pass it to the receiver in {SECRET_ENV}.");
    } else if file.is_none() {
        eprintln!(
            "The secret was not shown: add --secret-file FILE to store it in a file only you can read, or --show-secret to print it."
        );
    }
    Ok(())
}

fn print_config_line(config: &WebhookConfigWithSecret, json: bool) -> anyhow::Result<()> {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&config_json(config, false))?
        );
    } else {
        println!(
            "{} {} {}",
            config.id,
            config.state_str(),
            config.url.as_deref().unwrap_or("")
        );
    }
    Ok(())
}

/// A config as JSON, its secret only when asked for.
fn config_json(config: &WebhookConfigWithSecret, with_secret: bool) -> Value {
    let mut value = json!({
        "id": config.id,
        "resource": "webhook_config",
        "organisation": config.organisation,
        "url": config.url,
        "state": config.state,
        "date_created": config.date_created,
    });
    if let (true, Some(secret)) = (with_secret, &config.secret) {
        value["secret"] = json!(secret.reveal());
    }
    value
}

/// Writes the secret to a file only its owner can read: a new file made
/// beside `path` (never one that exists, never through a symlink), synced,
/// then renamed into place, so `path` is never a file someone else
/// prepared nor a link to one.
fn write_secret_file(path: &Path, secret: &str) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| anyhow!("{} is not a file name", path.display()))?;
    let temporary = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        uuid::Uuid::new_v4().simple()
    ));
    let mut options = std::fs::OpenOptions::new();
    // create_new: O_CREAT | O_EXCL, which also refuses a symlink.
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let written = (|| -> std::io::Result<()> {
        let mut file = options.open(&temporary)?;
        file.write_all(secret.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
    }
    Ok(())
}

/// Whether `url`'s host is this machine (`localhost`, 127.0.0.0/8, `::1`).
fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The event filter from `--type`, `--action`, `--since`.
fn event_filter(m: &mut ArgMatches) -> anyhow::Result<EventFilter> {
    let mut filter = EventFilter {
        kind: m.remove_one::<String>("type"),
        action: m.remove_one::<String>("action"),
        ..EventFilter::default()
    };
    if let Some(since) = m.remove_one::<String>("since") {
        filter.since = Some(jiff::Timestamp::try_from(parse_time(
            &since,
            SystemTime::now(),
        )?)?);
    }
    Ok(filter)
}

async fn events(client: &Client, mut m: ArgMatches, json: bool) -> anyhow::Result<u8> {
    let (name, mut m) = m
        .remove_subcommand()
        .ok_or_else(|| anyhow!("no events command given: see `ricloud-webhook events --help`"))?;
    match name.as_str() {
        "get" => {
            let id = m.remove_one::<String>("id").unwrap_or_default();
            let event = client.event(&id).await?;
            if json {
                println!("{}", event.json());
            } else {
                print_event_header();
                print_event_line(&event);
            }
            Ok(OK)
        }
        "list" => {
            let mut filter = event_filter(&mut m)?;
            filter.state = m.remove_one::<String>("state");
            let mut pages = client.events(filter);
            if let Some(&limit) = m.get_one::<u64>("limit") {
                pages = pages.limit(limit);
            }
            if json {
                // One event per line, as the API sent it: a long list
                // streams instead of waiting for its last page.
                while let Some(event) = pages.try_next().await? {
                    println!("{}", event.json());
                }
            } else {
                print_event_header();
                while let Some(event) = pages.try_next().await? {
                    print_event_line(&event);
                }
            }
            Ok(OK)
        }
        other => Err(anyhow!("unknown events command {other}")),
    }
}

fn print_event_header() {
    println!("{:<36}  {:<24}  {:<10}  CREATED", "ID", "SLUG", "STATE");
}

fn print_event_line(event: &ApiEvent) {
    println!(
        "{:<36}  {:<24}  {:<10}  {}",
        event.id,
        event.slug(),
        event.state.as_deref().unwrap_or(""),
        event.date_created.as_deref().unwrap_or("")
    );
}

/// Where `catch-up` hands events.
enum Target {
    /// Re-signed and POSTed to a running receiver.
    Receiver {
        url: String,
        secret: Arc<Secret>,
        sender: Sender,
    },
    /// Written straight into a receiver's inbox.
    Inbox(ricloud_webhook_inbox::Inbox),
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

async fn catch_up(
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
        // An inbox the receiver made: a missing SQLite file is an error.
        Target::Inbox(
            ricloud_webhook_inbox::Inbox::connect_existing(&url)
                .await
                .context("cannot open the inbox")?,
        )
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
        Target::Inbox(inbox) => {
            // Fetched from the API itself, over its authenticated channel:
            // as trustworthy as a verified delivery.
            let event = match Event::from_json(body) {
                Ok(event) => event,
                Err(e) => return Handed::Failed(format!("not an event: {e}")),
            };
            match inbox.enqueue_fetched(&event, SystemTime::now()).await {
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
