//! The process's log output on stderr.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// The variable that selects the log format: `text` (default) or `json`.
pub const LOG_FORMAT_ENV: &str = "RICLOUD_WEBHOOK_LOG_FORMAT";

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// `RUST_LOG` is not a valid filter.
    #[error("RUST_LOG is not a valid filter (`info`, `info,ricloud_webhook=debug`, ...)")]
    Filter(#[source] tracing_subscriber::filter::ParseError),
    /// The format variable names no format.
    #[error("{LOG_FORMAT_ENV} must be `text` or `json`, not {0:?}")]
    Format(String),
    /// A subscriber is installed already.
    #[error("a tracing subscriber is installed already")]
    Installed(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Installs the process's log subscriber, writing to stderr:
///
/// - the filter is `RUST_LOG` in `EnvFilter` syntax (`info`,
///   `warn,ricloud_webhook=debug`, ...), `info` when unset;
/// - [`LOG_FORMAT_ENV`]`=json` writes one JSON object per line, the
///   event's fields (`event_id`, `slug`, `config`, `reason`, ...) at its
///   top level beside `timestamp`, `level`, `target` and `message`;
/// - text is coloured only when stderr is a terminal and `NO_COLOR` is
///   unset or empty, so a redirected log has no escape codes.
///
/// # Errors
/// [`LogError`] for an invalid `RUST_LOG` or format, or a subscriber
/// installed already.
pub fn init_logging() -> Result<(), LogError> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => EnvFilter::builder()
            .parse(directives)
            .map_err(LogError::Filter)?,
        _ => EnvFilter::new("info"),
    };
    let json = match std::env::var(LOG_FORMAT_ENV).as_deref() {
        Ok("json") => true,
        Ok("text" | "") | Err(_) => false,
        Ok(other) => return Err(LogError::Format(other.to_owned())),
    };
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    let installed = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init()
    } else {
        builder.with_ansi(colour()).try_init()
    };
    installed.map_err(LogError::Installed)
}

/// Colour only on a terminal, and never with `NO_COLOR` set (no-color.org).
fn colour() -> bool {
    std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
}
