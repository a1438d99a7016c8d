//! `ricloud-webhook inbox ...`: a receiver's durable inbox, for an operator.

use std::io::Write as _;
use std::time::SystemTime;

use anyhow::{anyhow, Context as _};
use clap::ArgMatches;
use ricloud_webhook_inbox::{Inbox, ListFilter, Replay, Row, RowState};
use serde_json::{json, Value};

use ricloud_webhook_cli::printable;

use ricloud_webhook_inbox::time::{iso, parse_time};

/// Runs `inbox <command>`; the exit status.
pub(crate) fn run(mut m: ArgMatches) -> anyhow::Result<u8> {
    let url = m.remove_one::<String>("database-url").ok_or_else(|| {
        anyhow!("no database: pass --database-url or set RICLOUD_WEBHOOK_DATABASE_URL")
    })?;
    let json = m.get_flag("json");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        // An inbox the receiver made: a missing SQLite file is an error,
        // not a new, empty inbox.
        let inbox = Inbox::connect_existing(&url)
            .await
            .context("cannot open the inbox")?;
        match m.remove_subcommand() {
            Some((name, m)) if name == "list" => list(&inbox, &m, json).await,
            Some((name, mut m)) if name == "show" => show(&inbox, &mut m, json).await,
            Some((name, mut m)) if name == "replay" => replay(&inbox, &mut m, json).await,
            Some((name, _)) if name == "stats" => stats(&inbox, json).await,
            Some((name, mut m)) if name == "purge" => purge(&inbox, &mut m, json).await,
            _ => Err(anyhow!(
                "no inbox command given: see `ricloud-webhook inbox --help`"
            )),
        }
    })
}

/// The filter that `--state`, `--slug`, `--config`, `--id`, `--since` and
/// `--until` give, those of them the command has.
fn filter_from(m: &ArgMatches) -> anyhow::Result<ListFilter> {
    let now = SystemTime::now();
    let text = |id: &str| m.try_get_one::<String>(id).ok().flatten().cloned();
    let mut filter = ListFilter::default();
    if let Some(state) = text("state") {
        filter = filter.state(state.parse()?);
    }
    if let Some(slug) = text("slug") {
        filter = filter.slug(slug);
    }
    if let Some(config) = text("config") {
        filter = filter.config(config);
    }
    if let Some(id) = text("id-filter") {
        filter = filter.event_id(id);
    }
    if let Some(since) = text("since") {
        filter = filter.since(parse_time(&since, now)?);
    }
    if let Some(until) = text("until") {
        filter = filter.until(parse_time(&until, now)?);
    }
    Ok(filter)
}

async fn list(inbox: &Inbox, m: &ArgMatches, json: bool) -> anyhow::Result<u8> {
    let filter = filter_from(m)?.limit(m.get_one::<u32>("limit").copied().unwrap_or(50));
    let rows = inbox.list(&filter).await?;
    let mut out = std::io::stdout().lock();
    if json {
        let rows: Vec<Value> = rows.iter().map(row_json).collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
        return Ok(0);
    }
    writeln!(
        out,
        "{:<36}  {:<20}  {:<7}  {:>8}  {:<24}  LAST ERROR",
        "EVENT ID", "SLUG", "STATE", "ATTEMPTS", "RECEIVED"
    )?;
    for row in &rows {
        writeln!(
            out,
            "{:<36}  {:<20}  {:<7}  {:>8}  {:<24}  {}",
            printable(&row.event_id),
            printable(&row.slug),
            row.state,
            row.attempts,
            iso(row.received_at),
            printable(row.last_error.as_deref().unwrap_or(""))
        )?;
    }
    Ok(0)
}

async fn show(inbox: &Inbox, m: &mut ArgMatches, json: bool) -> anyhow::Result<u8> {
    let id = m.remove_one::<String>("id").unwrap_or_default();
    let stored = match inbox.get(&id).await {
        Ok(stored) => stored,
        Err(e) if e.is_not_found() => {
            eprintln!("{}", printable(&e.to_string()));
            return Ok(1);
        }
        Err(e) => return Err(e.into()),
    };
    // The body as received: pretty when it is JSON (it always is), as is otherwise.
    let body = serde_json::from_slice::<Value>(&stored.body).ok();
    let mut out = std::io::stdout().lock();
    if json {
        let mut value = row_json(&stored.row);
        value["body"] =
            body.unwrap_or_else(|| Value::String(String::from_utf8_lossy(&stored.body).into()));
        writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
        return Ok(0);
    }
    let row = &stored.row;
    writeln!(out, "event id:      {}", printable(&row.event_id))?;
    writeln!(out, "slug:          {}", printable(&row.slug))?;
    writeln!(out, "state:         {}", row.state)?;
    writeln!(out, "attempts:      {}", row.attempts)?;
    writeln!(out, "received:      {}", iso(row.received_at))?;
    writeln!(out, "updated:       {}", iso(row.updated_at))?;
    if row.state == RowState::Pending {
        writeln!(out, "due:           {}", iso(row.run_at))?;
    }
    if let Some(done) = row.done_at {
        writeln!(out, "done:          {}", iso(done))?;
    }
    if let (Some(owner), Some(expires)) = (&row.lease_owner, row.lease_expires) {
        writeln!(
            out,
            "leased to:     {} until {}",
            printable(owner),
            iso(expires)
        )?;
    }
    if let Some(error) = &row.last_error {
        writeln!(out, "last error:    {}", printable(error))?;
    }
    writeln!(out, "body:")?;
    match body {
        Some(body) => writeln!(out, "{}", serde_json::to_string_pretty(&body)?)?,
        None => writeln!(out, "{}", printable(&String::from_utf8_lossy(&stored.body)))?,
    }
    Ok(0)
}

async fn replay(inbox: &Inbox, m: &mut ArgMatches, json: bool) -> anyhow::Result<u8> {
    let ids: Vec<String> = m
        .remove_many::<String>("ids")
        .into_iter()
        .flatten()
        .collect();
    let which = if ids.is_empty() {
        // `--dead`, `--since` and the filters select together.
        let mut filter = filter_from(m)?;
        if m.get_flag("dead") {
            filter = filter.state(RowState::Dead);
        }
        Replay::Matching(filter)
    } else {
        Replay::Ids(ids)
    };
    if m.get_flag("dry-run") {
        let Replay::Matching(filter) = &which else {
            return Err(anyhow!("--dry-run counts a selection by filter, not ids"));
        };
        let count = inbox.count(filter).await?;
        if json {
            println!("{}", json!({ "would_replay": count }));
        } else {
            println!("{count} event(s) match; nothing was changed (without --dry-run they are put back to pending, running ones aside)");
        }
        return Ok(0);
    }
    let changed = inbox.replay(&which).await?;
    if json {
        println!("{}", json!({ "replayed": changed }));
    } else {
        println!("{changed} event(s) put back to pending");
    }
    Ok(0)
}

async fn stats(inbox: &Inbox, json: bool) -> anyhow::Result<u8> {
    let stats = inbox.stats().await?;
    let age = stats
        .oldest_pending
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .map(|d| d.as_secs());
    if json {
        println!(
            "{}",
            json!({
                "pending": stats.pending, "running": stats.running,
                "done": stats.done, "dead": stats.dead,
                "oldest_pending_age_secs": age,
            })
        );
        return Ok(0);
    }
    println!("pending  {}", stats.pending);
    println!("running  {}", stats.running);
    println!("done     {}", stats.done);
    println!("dead     {}", stats.dead);
    match age {
        Some(secs) => println!("oldest pending: {secs} s old"),
        None => println!("oldest pending: none"),
    }
    Ok(0)
}

async fn purge(inbox: &Inbox, m: &mut ArgMatches, json: bool) -> anyhow::Result<u8> {
    let before = m.remove_one::<String>("done-before").unwrap_or_default();
    let before = parse_time(&before, SystemTime::now())?;
    let deleted = inbox.purge_done_before(before).await?;
    if json {
        println!("{}", json!({ "deleted": deleted }));
    } else {
        println!("{deleted} done event(s) deleted");
    }
    Ok(0)
}

fn row_json(row: &Row) -> Value {
    json!({
        "event_id": row.event_id,
        "slug": row.slug,
        "state": row.state.as_str(),
        "attempts": row.attempts,
        "run_at": iso(row.run_at),
        "received_at": iso(row.received_at),
        "updated_at": iso(row.updated_at),
        "done_at": row.done_at.map(iso),
        "lease_owner": row.lease_owner,
        "lease_expires": row.lease_expires.map(iso),
        "last_error": row.last_error,
    })
}
