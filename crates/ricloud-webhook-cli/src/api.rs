//! The commands that talk to the ricloud API: `config` and `events` here,
//! `catch-up` and `listen` in modules of their own; the API client they
//! share.

use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, Context as _};
use clap::ArgMatches;
use futures_util::TryStreamExt as _;
use ricloud_webhook::resources::WebhookConfigState;
use ricloud_webhook_api::{
    ApiEvent, Client, ConfigFilter, ConfigUpdate, EventFilter, WebhookConfigWithSecret,
};
use serde_json::{json, Value};

use crate::args::{API_URL_ENV, SECRET_ENV, TOKEN_ENV};
use ricloud_webhook_inbox::time::parse_time;

/// Exit status of a command that ran to a good end.
pub(crate) const OK: u8 = 0;
/// Exit status of a command whose outcome is a failure (a config not
/// valid, an event not delivered).
pub(crate) const FAILED: u8 = 1;

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
            "catch-up" => crate::catch_up::run(&client, m, json, ca_cert.as_deref()).await,
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
pub(crate) fn is_loopback(url: &reqwest::Url) -> bool {
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
pub(crate) fn event_filter(m: &mut ArgMatches) -> anyhow::Result<EventFilter> {
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
