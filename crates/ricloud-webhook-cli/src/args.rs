//! The command line: subcommands, flags and their help.

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::PossibleValuesParser;
use clap::{value_parser, Arg, ArgAction, ArgGroup, Command};
use ricloud_webhook_cli::EVENT_SLUGS;

mod api;
mod inbox;

use api::{catch_up, config, events, listen};
pub(crate) use api::{API_URL_ENV, TOKEN_ENV};
use inbox::inbox;
pub(crate) use inbox::DATABASE_ENV;

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
            "A tool for ricloud webhooks.\n\n\
             Against the API (the key token in RICLOUD_TOKEN): config, events, catch-up, \
             listen.\n\
             Against a receiver: send-test, send.\n\
             Signatures: sign, verify.\n\
             A receiver's inbox: inbox.\n\n\
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
        .arg(http())
}

fn send() -> Command {
    Command::new("send")
        .about("Sign and POST a sample event or your own body to a receiver")
        .override_usage(
            "ricloud-webhook send --url URL (--event SLUG [--id ID] | --body FILE) [OPTIONS]\n       \
             ricloud-webhook send --list-events",
        )
        .long_about(
            "Sign and POST an event to a receiver, as the API delivers it: either a \
             realistic sample of a documented event (--event) or a JSON body of your own \
             (--body), to <URL>/<event id> where the id is the body's `id`. Prints the \
             receiver's status line, its answer body, and how it took the event: \
             `outcome: ok (new)` the first time, `outcome: duplicate` when it had it \
             (the receiver's Ricloud-Webhook-Outcome answer header). To send one event \
             twice: --repeat 2, or --event SLUG --id ID twice, or --save-body FILE then \
             --body FILE.",
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
            Arg::new("id")
                .long("id")
                .value_name("ID")
                .requires("event")
                .help("The sample event's id (default: a new UUID)"),
        )
        .arg(
            Arg::new("repeat")
                .long("repeat")
                .value_name("N")
                .value_parser(value_parser!(u32).range(1..=1000))
                .default_value("1")
                .help("Send the same body N times, each signed anew"),
        )
        .arg(
            Arg::new("save-body")
                .long("save-body")
                .value_name("FILE")
                .value_parser(value_parser!(PathBuf))
                .help("Also write the body sent to FILE, to send it again with --body FILE"),
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
        .arg(http())
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
        .help(
            "Also trust the PEM certificate(s) in FILE for https://: a private CA, or the \
             receiver's own self-signed certificate (as `openssl req -x509` makes it)",
        )
}

fn http() -> Arg {
    Arg::new("http")
        .long("http")
        .value_name("VERSION")
        .value_parser(["1.1", "2"])
        .help("Speak only this HTTP version (default: HTTP/2 when an https:// receiver offers it, else HTTP/1.1)")
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
        Err(_) => ricloud_webhook_inbox::time::parse_duration(text)
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
