//! The `inbox` command: a receiver's stored events, listed, shown,
//! replayed, counted and purged.

use clap::{value_parser, Arg, ArgAction, ArgGroup, Command};

/// The environment variable the receiver and `inbox` read the database from.
pub(crate) const DATABASE_ENV: &str = "RICLOUD_WEBHOOK_DATABASE_URL";

pub(super) fn inbox() -> Command {
    let database = Arg::new("database-url")
        .long("database-url")
        .value_name("URL")
        .env(DATABASE_ENV)
        .hide_env_values(true)
        .default_value("sqlite://ricloud-webhook.db")
        .global(true)
        .help("The receiver's inbox: sqlite://FILE or postgres://user:password@host/database");
    let json = Arg::new("json")
        .long("json")
        .action(ArgAction::SetTrue)
        .global(true)
        .help("Print the answer as JSON (an array for list) instead of text");
    Command::new("inbox")
        .about("Look into and act on a receiver's durable inbox")
        .long_about(
            "Look into and act on the durable inbox of a receiver (the example receiver's \
             RICLOUD_WEBHOOK_DATABASE_URL): list, show, replay, count and purge events. \
             Times (T) are ISO 8601 (2026-12-04T10:00:00Z) or an age: 30s, 15m, 2h, 7d.",
        )
        .subcommand_required(true)
        .arg(database)
        .arg(json)
        .subcommand(
            Command::new("list")
                .about("List events, newest first")
                .args(filters())
                .arg(
                    Arg::new("limit")
                        .long("limit")
                        .value_name("N")
                        .value_parser(value_parser!(u32))
                        .default_value("50")
                        .help("At most N events"),
                ),
        )
        .subcommand(
            Command::new("show")
                .about("Show one stored event: its state, attempts, last error and body")
                .arg(Arg::new("id").value_name("ID").required(true)),
        )
        .subcommand(
            Command::new("replay")
                .about("Put events back to pending, so the receiver's workers run them again")
                .long_about(
                    "Put events back to pending, due now, with their attempts reset: the \
                     receiver's workers run them again (within seconds, on SQLite too). They \
                     were verified when they arrived; the signature's time window is not \
                     checked again.",
                )
                .arg(
                    Arg::new("ids")
                        .value_name("ID")
                        .num_args(1..)
                        .help("These events"),
                )
                .arg(
                    Arg::new("dead")
                        .long("dead")
                        .action(ArgAction::SetTrue)
                        .help("Every dead event"),
                )
                .arg(
                    Arg::new("since")
                        .long("since")
                        .value_name("T")
                        .help("Every event received since T"),
                )
                .arg(state())
                .arg(slug())
                .arg(config_filter())
                .arg(until())
                .arg(
                    Arg::new("dry-run")
                        .long("dry-run")
                        .action(ArgAction::SetTrue)
                        .help("Only count the events a filter selects"),
                )
                .group(
                    ArgGroup::new("which")
                        .args(["ids", "dead", "since", "state", "slug", "config", "until"])
                        .multiple(true)
                        .required(true),
                )
                .group(
                    ArgGroup::new("selection")
                        .args(["ids"])
                        .conflicts_with_all([
                            "dead", "since", "state", "slug", "config", "until", "dry-run",
                        ]),
                ),
        )
        .subcommand(
            Command::new("stats").about("Count events by state; the oldest pending one's age"),
        )
        .subcommand(
            Command::new("purge")
                .about("Delete the done events finished before T (dead ones are kept)")
                .arg(
                    Arg::new("done-before")
                        .long("done-before")
                        .value_name("T")
                        .required(true),
                ),
        )
}

fn state() -> Arg {
    Arg::new("state")
        .long("state")
        .value_name("STATE")
        .value_parser(["pending", "running", "done", "dead"])
        .help("Only events in this state")
}

fn slug() -> Arg {
    Arg::new("slug")
        .long("slug")
        .value_name("SLUG")
        .help("Only events with this slug (type.action)")
}

fn config_filter() -> Arg {
    Arg::new("config")
        .long("config")
        .value_name("NAME")
        .help("Only events delivered by this webhook config (several served)")
}

fn until() -> Arg {
    Arg::new("until")
        .long("until")
        .value_name("T")
        .help("Only events received before T")
}

/// The listing's filters.
fn filters() -> Vec<Arg> {
    vec![
        state(),
        slug(),
        config_filter(),
        Arg::new("id-filter")
            .long("id")
            .value_name("ID")
            .help("Only this event"),
        Arg::new("since")
            .long("since")
            .value_name("T")
            .help("Only events received since T"),
        until(),
    ]
}
