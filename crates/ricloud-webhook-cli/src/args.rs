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
        .about("Send ricloud webhook test events, sign and verify Ricloud-Signature headers")
        .long_about(
            "Send ricloud webhook test events, sign and verify Ricloud-Signature headers.\n\n\
             The secret is the webhook config's shared secret. Prefer passing it in the \
             RICLOUD_WEBHOOK_SECRET environment variable: command-line arguments are \
             visible to other users of the machine. The secret is never printed.",
        )
        .after_help(EXIT_STATUS)
        .subcommand_required(true)
        .arg_required_else_help(true)
        .subcommand(send_test())
        .subcommand(send())
        .subcommand(sign())
        .subcommand(verify())
        .subcommand(inbox())
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
        .help("Give up after SECS seconds (fractions allowed) for connecting, sending and reading the answer")
}

/// A positive number of seconds, fractions allowed.
fn parse_timeout(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| "expected a number of seconds, e.g. 10 or 0.5".to_owned())?;
    if secs.is_nan() || secs <= 0.0 {
        return Err("the timeout must be more than 0 seconds".to_owned());
    }
    Duration::try_from_secs_f64(secs).map_err(|_| "the timeout is too large".to_owned())
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
        for bad in ["0", "-1", "NaN", "inf", "1e30", "ten", ""] {
            assert!(parse_timeout(bad).is_err(), "{bad}");
        }
    }
}
