//! The commands that talk to the ricloud API: `config`, `events`,
//! `catch-up` and `listen`, with the flags they share.

use std::path::PathBuf;

use clap::{value_parser, Arg, ArgAction, ArgGroup, Command};

use super::{ca_cert, secret, timeout, url, DATABASE_ENV};

/// The environment variable of the API's key token (ricloud-py's `token` setting).
pub(crate) const TOKEN_ENV: &str = "RICLOUD_TOKEN";

/// The environment variable of the API's base URL (ricloud-py's `url` setting).
pub(crate) const API_URL_ENV: &str = "RICLOUD_URL";

/// `--token`, `--api-url`, `--ca-cert` and `--json`, for the commands that
/// talk to the API.
fn api_args(command: Command) -> Command {
    command
        .arg(
            Arg::new("token")
                .long("token")
                .value_name("TOKEN")
                .env(TOKEN_ENV)
                .hide_env_values(true)
                .global(true)
                .help("The API key token (prefer the environment variable)"),
        )
        .arg(
            Arg::new("api-url")
                .long("api-url")
                .value_name("URL")
                .env(API_URL_ENV)
                .default_value(ricloud_webhook_api::DEFAULT_BASE_URL)
                .global(true)
                .help("The API's base URL"),
        )
        .arg(ca_cert().global(true))
        .arg(
            Arg::new("max-pages")
                .long("max-pages")
                .value_name("N")
                .value_parser(value_parser!(u32).range(1..))
                .global(true)
                .help(
                    "Stop a listing with an error after N pages (default 1000 pages of up to 1000)",
                ),
        )
        .arg(
            Arg::new("json")
                .long("json")
                .action(ArgAction::SetTrue)
                .global(true)
                .help("Print the API's resources as JSON instead of a table"),
        )
}

fn secret_output(command: Command) -> Command {
    command
        .arg(
            Arg::new("show-secret")
                .long("show-secret")
                .action(ArgAction::SetTrue)
                .help("Print the config's secret on stdout"),
        )
        .arg(
            Arg::new("secret-file")
                .long("secret-file")
                .value_name("FILE")
                .value_parser(value_parser!(PathBuf))
                .help("Write the config's secret to FILE, readable by you only (mode 0600)"),
        )
}

pub(super) fn config() -> Command {
    let id = || {
        Arg::new("id")
            .value_name("ID")
            .required(true)
            .help("The config's id")
    };
    api_args(
        Command::new("config")
            .about("Create, list, update, delete and test the API's webhook configs")
            .subcommand_required(true)
            .subcommand(secret_output(
                Command::new("create")
                    .about("Create a webhook config for a receiver's URL; the API tests it at once")
                    .arg(url().required(true))
                    .arg(
                        Arg::new("default")
                            .long("default")
                            .action(ArgAction::SetTrue)
                            .help("Make it the organisation's default config"),
                    ),
            ))
            .subcommand(
                Command::new("list")
                    .about("List webhook configs (deactivated ones only with --state deactivated)")
                    .arg(
                        Arg::new("state")
                            .long("state")
                            .value_name("STATE")
                            .value_parser(["new", "valid", "invalid", "deactivated"])
                            .help("Only configs in this state"),
                    ),
            )
            .subcommand(secret_output(
                Command::new("get")
                    .about("Show one webhook config")
                    .arg(id()),
            ))
            .subcommand(
                Command::new("update")
                    .about("Change a config's URL, or deactivate it")
                    .arg(id())
                    .arg(url())
                    .arg(
                        Arg::new("deactivate")
                            .long("deactivate")
                            .action(ArgAction::SetTrue)
                            .help("Retire the config"),
                    )
                    .group(
                        ArgGroup::new("change")
                            .args(["url", "deactivate"])
                            .required(true),
                    ),
            )
            .subcommand(
                Command::new("delete")
                    .about("Delete a webhook config")
                    .arg(id()),
            )
            .subcommand(
                Command::new("test")
                    .about("Have the API send its test event to the config's URL")
                    .long_about(
                        "Have the API send a `webhook_config.test` event to the config's URL. \
                         With --wait, wait for the test and print the config's state: exit \
                         status 0 only when it is valid.",
                    )
                    .arg(id())
                    .arg(
                        Arg::new("wait")
                            .long("wait")
                            .action(ArgAction::SetTrue)
                            .help("Wait until the config is valid or invalid"),
                    )
                    .arg(
                        timeout()
                            .default_value("60")
                            .requires("wait")
                            .help("With --wait, give up after SECS seconds"),
                    ),
            ),
    )
}

/// `--type`, `--action`, `--since`.
fn event_filters(command: Command) -> Command {
    command
        .arg(
            Arg::new("type").long("type").value_name("TYPE").help(
                "Only events about this kind of resource (task, poll, session, webhook_config)",
            ),
        )
        .arg(
            Arg::new("action")
                .long("action")
                .value_name("ACTION")
                .help("Only events of this action (succeeded, completed, ...)"),
        )
}

fn since() -> Arg {
    Arg::new("since").long("since").value_name("T").help(
        "Only events created since T: ISO 8601 (2026-12-04T10:00:00Z) or an age (30m, 2h, 7d)",
    )
}

pub(super) fn events() -> Command {
    api_args(
        Command::new("events")
            .about("List and show the events the API sent, or tried to")
            .subcommand_required(true)
            .subcommand(event_filters(
                Command::new("list")
                    .about("List events, newest first, every page unless --limit")
                    .arg(
                        Arg::new("state").long("state").value_name("STATE").help(
                            "Only events in this delivery state (pending, succeeded, failed)",
                        ),
                    )
                    .arg(since())
                    .arg(
                        Arg::new("limit")
                            .long("limit")
                            .value_name("N")
                            .value_parser(value_parser!(u64))
                            .help("At most N events"),
                    ),
            ))
            .subcommand(
                Command::new("get")
                    .about("Show one event")
                    .arg(Arg::new("id").value_name("ID").required(true)),
            ),
    )
}

pub(super) fn catch_up() -> Command {
    api_args(event_filters(
        Command::new("catch-up")
            .about("Fetch the events missed while the receiver was down, and hand them to it")
            .long_about(
                "Fetch from the API the events created since T in the given delivery states \
                 and hand each to the receiver: re-signed with the secret and POSTed to \
                 <URL>/<event id> (--to), or written straight into its inbox \
                 (--database-url, for a receiver in queued mode), signed with the secret \
                 when one is given so that a receiver that forwards to a broker passes on \
                 a signature its consumers can verify. Events the receiver has \
                 already are skipped by its own deduplication. Prints how many events were \
                 fetched, delivered, skipped and failed; exit status 1 when any failed or \
                 the API stopped answering.",
            )
            .arg(since().required(true))
            .arg(
                Arg::new("state")
                    .long("state")
                    .value_name("STATES")
                    .default_value("failed,pending")
                    .help("Delivery states to fetch, comma-separated"),
            )
            .arg(url().id("to").long("to"))
            .arg(
                Arg::new("database-url")
                    .long("database-url")
                    .value_name("URL")
                    .env(DATABASE_ENV)
                    .hide_env_values(true)
                    .help("Write into this inbox instead: sqlite://FILE or postgres://... (prefer the environment variable, which keeps a password out of `ps`)"),
            )
            .arg(secret()),
    ))
}

pub(super) fn listen() -> Command {
    api_args(
        Command::new("listen")
            .about("Receive events on a public (tunnel) URL until stopped, with a throwaway config")
            .long_about(
                "Create a webhook config for a public URL (a tunnel to this machine), run a \
                 receiver with its secret on --bind:--port, wait until the config is valid, \
                 and print each event as it arrives. On Ctrl-C, SIGTERM or SIGHUP, or when anything \
                 fails, the config is deleted again.",
            )
            .arg(
                Arg::new("public-url")
                    .long("public-url")
                    .value_name("URL")
                    .required(true)
                    .help("The URL the API delivers to, e.g. https://abc.tunnel.example/webhooks; its path is the receiver's"),
            )
            .arg(
                Arg::new("port")
                    .long("port")
                    .value_name("PORT")
                    .value_parser(value_parser!(u16))
                    .default_value("8080")
                    .help("The local port the tunnel forwards to"),
            )
            .arg(
                Arg::new("bind")
                    .long("bind")
                    .value_name("ADDR")
                    .default_value("127.0.0.1")
                    .help("The local address to listen on"),
            )
            .arg(
                timeout()
                    .default_value("60")
                    .help("Give up when the config is not valid after SECS seconds"),
            ),
    )
}
