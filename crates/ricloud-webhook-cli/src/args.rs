//! The command line: subcommands, flags and their help.

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::PossibleValuesParser;
use clap::{value_parser, Arg, ArgAction, ArgGroup, Command};
use ricloud_webhook_cli::EVENT_SLUGS;

/// The environment variable that holds the secret.
pub(crate) const SECRET_ENV: &str = "RICLOUD_WEBHOOK_SECRET";

/// The environment variable that holds a previous secret, as for the
/// example receiver.
const PREVIOUS_SECRET_ENV: &str = "RICLOUD_WEBHOOK_PREVIOUS_SECRET";

const EXIT_STATUS: &str = "\
Exit status: 0 valid (or success), 1 invalid (or delivery failed), 2 usage or setup error.";

/// The whole command line.
pub(crate) fn command() -> Command {
    Command::new("ricloud-webhook")
        .version(env!("CARGO_PKG_VERSION"))
        .about(
            "Manage ricloud webhook configs and events; send, sign and verify webhook deliveries",
        )
        .long_about(
            "Manage the ricloud API's webhook configs, catch up on missed events and listen \
             on a tunnel (config, events, catch-up, listen; the API key token in \
             RICLOUD_TOKEN); send test events to a receiver, sign and verify \
             Ricloud-Signature headers (send-test, send, sign, verify); look into a \
             receiver's inbox (inbox).\n\n\
             The secret is the webhook config's shared secret. Prefer passing it in the \
             RICLOUD_WEBHOOK_SECRET environment variable: command-line arguments are \
             visible to other users of the machine. A secret is printed only when asked \
             for (config create|get --show-secret); a token never is.",
        )
        .after_help(EXIT_STATUS)
        .subcommand_required(true)
        .arg_required_else_help(true)
        .subcommand(send_test())
        .subcommand(send())
        .subcommand(sign())
        .subcommand(verify())
        .subcommand(inbox())
        .subcommand(config())
        .subcommand(events())
        .subcommand(catch_up())
        .subcommand(listen())
}

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

fn config() -> Command {
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

fn events() -> Command {
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

fn catch_up() -> Command {
    api_args(event_filters(
        Command::new("catch-up")
            .about("Fetch the events missed while the receiver was down, and hand them to it")
            .long_about(
                "Fetch from the API the events created since T in the given delivery states \
                 and hand each to the receiver: re-signed with the secret and POSTed to \
                 <URL>/<event id> (--to), or written straight into its inbox \
                 (--database-url, for a receiver in queued mode). Events the receiver has \
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

fn listen() -> Command {
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

/// The environment variable the receiver and `inbox` read the database from.
pub(crate) const DATABASE_ENV: &str = "RICLOUD_WEBHOOK_DATABASE_URL";

fn inbox() -> Command {
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
        .help("Print JSON instead of a table");
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
                .arg(
                    Arg::new("state")
                        .long("state")
                        .value_name("STATE")
                        .value_parser(["pending", "running", "done", "dead"])
                        .help("Only events in this state"),
                )
                .arg(
                    Arg::new("slug")
                        .long("slug")
                        .value_name("SLUG")
                        .help("Only events with this slug (type.action)"),
                )
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
                .group(
                    ArgGroup::new("which")
                        .args(["ids", "dead", "since"])
                        .required(true),
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

fn send_test() -> Command {
    Command::new("send-test")
        .about("Check a receiver the way the API validates a webhook config")
        .long_about(
            "Check a receiver the way the API validates a webhook config: build a \
             `webhook_config.test` event, sign it with the secret and the current time, \
             POST it to <URL>/<event id>, and print `valid` when the receiver answers \
             2xx, `invalid: <status or error>` otherwise.",
        )
        .after_help(EXIT_STATUS)
        .arg(url().required(true))
        .arg(secret())
        .arg(timeout())
        .arg(ca_cert())
}

fn send() -> Command {
    Command::new("send")
        .about("Sign and POST a sample event or your own body to a receiver")
        .long_about(
            "Sign and POST an event to a receiver, as the API delivers it: either a \
             realistic sample of a documented event (--event) or a JSON body of your own \
             (--body), to <URL>/<event id> where the id is the body's `id`. Prints the \
             receiver's status line and response body.",
        )
        .after_help(format!(
            "Event slugs: {}\n\n{EXIT_STATUS}",
            EVENT_SLUGS.join(", ")
        ))
        .arg(url().required_unless_present("list-events"))
        .arg(
            Arg::new("event")
                .long("event")
                .value_name("SLUG")
                .value_parser(PossibleValuesParser::new(EVENT_SLUGS))
                .help("Send a realistic sample of this documented event"),
        )
        .arg(
            Arg::new("body")
                .long("body")
                .value_name("FILE")
                .value_parser(value_parser!(PathBuf))
                .help("Send this file's bytes unchanged (`-` reads stdin); its JSON `id` names the URL"),
        )
        .arg(
            Arg::new("list-events")
                .long("list-events")
                .action(ArgAction::SetTrue)
                .help("Print the documented event slugs and exit"),
        )
        .group(
            ArgGroup::new("what")
                .args(["event", "body", "list-events"])
                .required(true),
        )
        .arg(secret())
        .arg(timeout())
        .arg(ca_cert())
}

fn sign() -> Command {
    Command::new("sign")
        .about("Print the Ricloud-Signature header value for a body read from stdin")
        .long_about(
            "Print the Ricloud-Signature header value `t=<timestamp>,s=<signature>` for \
             the body read from stdin. The body is used byte for byte: nothing is trimmed, \
             so mind the trailing newline `echo` adds (use `printf` or a file).",
        )
        .after_help(EXIT_STATUS)
        .arg(secret())
        .arg(
            Arg::new("timestamp")
                .long("timestamp")
                .value_name("T")
                .value_parser(value_parser!(u64))
                .help("Unix time in seconds to sign with [default: now]"),
        )
}

fn verify() -> Command {
    Command::new("verify")
        .about("Check a Ricloud-Signature header against a body read from stdin")
        .long_about(
            "Check a Ricloud-Signature header against the body read from stdin (byte for \
             byte) and the secret, then the timestamp against the clock. Prints `valid`, \
             or `invalid: <reason>`.",
        )
        .after_help(EXIT_STATUS)
        .arg(
            Arg::new("header")
                .long("header")
                .value_name("H")
                .required(true)
                .help("The Ricloud-Signature header value, `t=<timestamp>,s=<signature>`"),
        )
        .arg(secret())
        .arg(
            Arg::new("previous-secret")
                .long("previous-secret")
                .value_name("SECRET")
                .action(ArgAction::Append)
                .env(PREVIOUS_SECRET_ENV)
                .hide_env_values(true)
                .help("Also accept this previous secret, during a rotation (repeatable)"),
        )
        .arg(
            Arg::new("tolerance")
                .long("tolerance")
                .value_name("SECS")
                .value_parser(value_parser!(u64))
                .help(
                    "Accept timestamps up to SECS seconds old or ahead \
                     [default: 600 s old, 300 s ahead]",
                ),
        )
        .arg(
            Arg::new("no-time-check")
                .long("no-time-check")
                .action(ArgAction::SetTrue)
                .conflicts_with("tolerance")
                .help("Check the signature only, not the timestamp (no replay protection)"),
        )
}

fn url() -> Arg {
    Arg::new("url").long("url").value_name("URL").help(
        "The receiver's base URL as registered in the webhook config, e.g. \
             https://receiver.example.com/webhooks or http://127.0.0.1:8080/webhooks; \
             the event goes to <URL>/<event id>",
    )
}

fn ca_cert() -> Arg {
    Arg::new("ca-cert")
        .long("ca-cert")
        .value_name("FILE")
        .value_parser(value_parser!(PathBuf))
        .help("Also trust the PEM certificate(s) in FILE for https:// (a private CA)")
}

fn secret() -> Arg {
    Arg::new("secret")
        .long("secret")
        .value_name("SECRET")
        .env(SECRET_ENV)
        // clap would otherwise print the variable's value in the help.
        .hide_env_values(true)
        .help("The webhook config's shared secret (prefer the environment variable)")
}

fn timeout() -> Arg {
    Arg::new("timeout")
        .long("timeout")
        .value_name("SECS")
        .value_parser(parse_timeout)
        .default_value("10")
        .help("Give up after SECS seconds (fractions allowed, or a duration such as 500ms) for connecting, sending and reading the answer")
}

/// A positive number of seconds, fractions allowed.
fn parse_timeout(text: &str) -> Result<Duration, String> {
    // A bare number is seconds (fractions allowed); else a jiff duration.
    let timeout = match text.parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs > 0.0 => {
            Duration::try_from_secs_f64(secs).map_err(|_| "the timeout is too large".to_owned())?
        }
        Ok(_) => return Err("the timeout must be more than 0 seconds".to_owned()),
        Err(_) => crate::time::parse_duration(text)
            .map_err(|_| "expected seconds (10, 0.5) or a duration (10s, 500ms)".to_owned())?,
    };
    if timeout.is_zero() {
        return Err("the timeout must be more than 0 seconds".to_owned());
    }
    Ok(timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_is_well_formed() {
        command().debug_assert();
    }

    #[test]
    fn timeouts() {
        assert_eq!(parse_timeout("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_timeout("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_timeout("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_timeout("2m"), Ok(Duration::from_secs(120)));
        for bad in ["0", "-1", "NaN", "inf", "1e30", "ten", "", "0s", "-5s"] {
            assert!(parse_timeout(bad).is_err(), "{bad}");
        }
    }
}
