//! A forwarder from one URL: the broker's address with the options as
//! query parameters.

use std::time::Duration;

use crate::{ForwardError, Forwarder};

/// Why a forwarding URL was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    /// The scheme is not `nats://` or `redis://`, or its feature is off.
    #[error("unsupported forwarding URL scheme in {0:?}: expected nats:// or redis:// (with the crate's feature of that name)")]
    Scheme(String),
    /// A query parameter this broker does not take.
    #[error("unknown option {name:?} for {broker}: expected one of {expected}")]
    UnknownOption {
        /// The broker.
        broker: &'static str,
        /// The parameter.
        name: String,
        /// The parameters it takes.
        expected: &'static str,
    },
    /// A parameter's value could not be read.
    #[error("option {name}={value:?}: {why}")]
    BadValue {
        /// The parameter.
        name: String,
        /// Its value.
        value: String,
        /// What it must be.
        why: &'static str,
    },
    /// The broker's client refused the address.
    #[error(transparent)]
    Broker(#[from] ForwardError),
}

/// Builds a forwarder from `url`:
///
/// - `nats://HOST:PORT?prefix=ricloud&stream=RICLOUD&create_stream=true&dedup_window=86400&timeout=5`
///   publishes to JetStream on `<prefix>.<type>.<action>`; `stream` is
///   created over `<prefix>.>` when missing unless `create_stream=false`,
///   with `dedup_window` (seconds) as its duplicate window.
/// - `redis://HOST:PORT[/DB]?stream=ricloud:events&per_slug=false&dedup_window=86400&timeout=5`
///   appends to the stream (or `<stream>:<slug>` with `per_slug=true`),
///   remembering each event id for `dedup_window` seconds.
///
/// `timeout` (seconds) bounds each publish. Every parameter is optional;
/// the values shown are the defaults. Values are plain (no
/// percent-encoding).
///
/// # Errors
/// [`UrlError`] naming the scheme, option or value refused.
pub async fn from_url(url: &str) -> Result<Forwarder, UrlError> {
    let (address, query) = url.split_once('?').unwrap_or((url, ""));
    let options = Options::parse(query)?;
    let scheme = address.split_once("://").map_or("", |(s, _)| s);
    match scheme {
        #[cfg(feature = "nats")]
        "nats" => nats(address, options).await,
        #[cfg(feature = "redis")]
        "redis" => redis(address, options),
        _ => {
            drop(options);
            Err(UrlError::Scheme(address.to_owned()))
        }
    }
}

#[cfg(feature = "nats")]
async fn nats(address: &str, mut options: Options) -> Result<Forwarder, UrlError> {
    use crate::nats::{JetStream, StreamSpec};
    const EXPECTED: &str = "prefix, stream, create_stream, dedup_window, timeout";
    let prefix = options
        .take("prefix")
        .unwrap_or_else(|| JetStream::DEFAULT_PREFIX.to_owned());
    let stream = options
        .take("stream")
        .unwrap_or_else(|| "RICLOUD".to_owned());
    let create = options.flag("create_stream", true)?;
    let window = options.seconds("dedup_window", StreamSpec::DEFAULT_DUPLICATE_WINDOW)?;
    let timeout = options.seconds("timeout", Forwarder::DEFAULT_TIMEOUT)?;
    options.done("nats", EXPECTED)?;
    let mut jetstream = JetStream::connect(address).await?.prefix(prefix);
    if create {
        jetstream = jetstream.create_stream(StreamSpec::new(stream).duplicate_window(window));
    }
    Ok(Forwarder::new(jetstream).timeout(timeout))
}

#[cfg(feature = "redis")]
fn redis(address: &str, mut options: Options) -> Result<Forwarder, UrlError> {
    use crate::redis::RedisStreams;
    const EXPECTED: &str = "stream, per_slug, dedup_window, timeout";
    let stream = options
        .take("stream")
        .unwrap_or_else(|| RedisStreams::DEFAULT_STREAM.to_owned());
    let per_slug = options.flag("per_slug", false)?;
    let window = options.seconds("dedup_window", RedisStreams::DEFAULT_DEDUP_WINDOW)?;
    let timeout = options.seconds("timeout", Forwarder::DEFAULT_TIMEOUT)?;
    options.done("redis", EXPECTED)?;
    let streams = RedisStreams::open(address)?
        .stream(stream)
        .per_slug(per_slug)
        .dedup_window(window);
    Ok(Forwarder::new(streams).timeout(timeout))
}

/// The query's `name=value` pairs, taken one by one; what is left over is
/// an unknown option. Hand-written: a handful of plain tokens, where a URL
/// crate would add percent-decoding no value here needs.
struct Options(Vec<(String, String)>);

#[cfg_attr(
    not(any(feature = "nats", feature = "redis")),
    allow(dead_code, reason = "used by the brokers' features")
)]
impl Options {
    fn parse(query: &str) -> Result<Self, UrlError> {
        let mut pairs = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            if value.contains('%') || value.contains('+') {
                return Err(UrlError::BadValue {
                    name: name.to_owned(),
                    value: value.to_owned(),
                    why: "values are taken as written: no percent-encoding",
                });
            }
            pairs.push((name.to_owned(), value.to_owned()));
        }
        Ok(Self(pairs))
    }

    fn take(&mut self, name: &str) -> Option<String> {
        let at = self.0.iter().position(|(n, _)| n == name)?;
        Some(self.0.remove(at).1)
    }

    fn flag(&mut self, name: &str, default: bool) -> Result<bool, UrlError> {
        match self.take(name).as_deref() {
            None => Ok(default),
            Some("true" | "1" | "yes") => Ok(true),
            Some("false" | "0" | "no") => Ok(false),
            Some(value) => Err(UrlError::BadValue {
                name: name.to_owned(),
                value: value.to_owned(),
                why: "expected true or false",
            }),
        }
    }

    fn seconds(&mut self, name: &str, default: Duration) -> Result<Duration, UrlError> {
        match self.take(name) {
            None => Ok(default),
            Some(value) => match value.parse::<u64>() {
                Ok(secs) if secs > 0 => Ok(Duration::from_secs(secs)),
                _ => Err(UrlError::BadValue {
                    name: name.to_owned(),
                    value,
                    why: "expected a whole number of seconds above 0",
                }),
            },
        }
    }

    fn done(self, broker: &'static str, expected: &'static str) -> Result<(), UrlError> {
        match self.0.into_iter().next() {
            None => Ok(()),
            Some((name, _)) => Err(UrlError::UnknownOption {
                broker,
                name,
                expected,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unknown_schemes_options_and_values_are_refused_by_name() {
        let err = from_url("amqp://127.0.0.1").await.expect_err("refused");
        assert!(matches!(err, UrlError::Scheme(_)), "{err}");
        #[cfg(feature = "redis")]
        {
            let err = from_url("redis://127.0.0.1:1?streem=x")
                .await
                .expect_err("refused");
            assert!(err.to_string().contains("\"streem\""), "{err}");
            let err = from_url("redis://127.0.0.1:1?dedup_window=0")
                .await
                .expect_err("refused");
            assert!(err.to_string().contains("dedup_window"), "{err}");
            let err = from_url("redis://127.0.0.1:1?per_slug=maybe")
                .await
                .expect_err("refused");
            assert!(err.to_string().contains("true or false"), "{err}");
            let err = from_url("redis://127.0.0.1:1?stream=a%3Ab")
                .await
                .expect_err("refused");
            assert!(err.to_string().contains("percent"), "{err}");
            let ok = from_url("redis://127.0.0.1:1?stream=a:b&per_slug=true&timeout=2")
                .await
                .expect("accepted");
            assert_eq!(ok.broker_name(), "redis");
        }
    }
}
