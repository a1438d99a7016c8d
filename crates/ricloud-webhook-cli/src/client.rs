//! Delivering a signed event to a receiver over HTTP or HTTPS (reqwest on
//! rustls).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use reqwest::{StatusCode, Url, Version};
use ricloud_webhook::{sign, Secret, SignatureHeader};

/// How long a delivery may take, connecting included, unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The most of a receiver's answer that is kept; the rest is dropped.
pub const MAX_RESPONSE_BODY: usize = 64 * 1024;

/// Installs rustls's ring provider as the process's default, unless one
/// is installed already. reqwest is built without a provider of its own so
/// that no C toolchain beyond ring's is needed.
pub fn install_tls_provider() {
    // An error means a provider is installed already, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Sends signed events the way the API delivers them.
///
/// ```no_run
/// # use std::time::SystemTime;
/// # use ricloud_webhook::Secret;
/// # use ricloud_webhook_cli::{sample_event, Sender, DEFAULT_TIMEOUT};
/// # async fn run(secret: Secret) -> Result<(), Box<dyn std::error::Error>> {
/// let url = "https://receiver.example.com/webhooks";
/// let event = sample_event("webhook_config.test", url, SystemTime::now())?;
/// let sender = Sender::new(DEFAULT_TIMEOUT, None)?;
/// let response = sender.post_event(url, &secret, serde_json::to_vec(&event)?).await?;
/// println!("{}", if response.is_success() { "valid" } else { "invalid" });
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Sender {
    client: reqwest::Client,
    timeout: Duration,
}

impl Sender {
    /// A sender whose deliveries give up after `timeout`, trusting the
    /// system's certificate authorities and, when given, the PEM
    /// certificates in `ca_cert` (a private CA).
    ///
    /// # Errors
    /// [`SendError::CaCert`] when `ca_cert` holds no usable certificate,
    /// [`SendError::Client`] when the TLS set-up fails.
    pub fn new(timeout: Duration, ca_cert: Option<&[u8]>) -> Result<Self, SendError> {
        install_tls_provider();
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // A webhook is delivered where it is sent; a redirect is a
            // misconfigured URL, reported as its status.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("ricloud-webhook-cli/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = ca_cert {
            let certs =
                reqwest::Certificate::from_pem_bundle(pem).map_err(|e| SendError::CaCert {
                    reason: e.to_string(),
                })?;
            if certs.is_empty() {
                return Err(SendError::CaCert {
                    reason: "no PEM certificate in the file".to_owned(),
                });
            }
            builder = builder.tls_certs_merge(certs);
        }
        let client = builder.build().map_err(|e| SendError::Client {
            message: e.to_string(),
        })?;
        Ok(Self { client, timeout })
    }

    /// Signs `body` with `secret` at the current time and posts it to
    /// `<base_url>/<event id>`, the event id being read from the body, as
    /// the API does.
    ///
    /// # Errors
    /// Those of [`event_id`], [`event_url`] and [`Sender::post_signed`].
    pub async fn post_event(
        &self,
        base_url: &str,
        secret: &Secret,
        body: impl Into<Bytes>,
    ) -> Result<Response, SendError> {
        let body = body.into();
        let url = event_url(base_url, &event_id(&body)?)?;
        let header = sign(secret, unix_seconds(SystemTime::now()), &body);
        self.post_signed(&url, &header, body).await
    }

    /// Posts `body` to `url` with `Content-Type: application/json` and the
    /// `Ricloud-Signature` header, and reads the answer (at most
    /// [`MAX_RESPONSE_BODY`] of it).
    ///
    /// # Errors
    /// [`SendError::Connect`] when no connection could be made (TLS
    /// included), [`SendError::Timeout`] when the exchange took longer than
    /// the sender's timeout, [`SendError::Http`] when it broke off.
    pub async fn post_signed(
        &self,
        url: &Url,
        header: &SignatureHeader,
        body: Bytes,
    ) -> Result<Response, SendError> {
        let mut response = self
            .client
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SignatureHeader::NAME, header.to_string())
            .body(body)
            .send()
            .await
            .map_err(|e| self.error(url, &e))?;
        let (version, status) = (response.version(), response.status());
        let mut kept = Vec::new();
        let mut truncated = false;
        while let Some(chunk) = response.chunk().await.map_err(|e| self.error(url, &e))? {
            let room = MAX_RESPONSE_BODY - kept.len();
            if chunk.len() > room {
                kept.extend_from_slice(&chunk[..room]);
                truncated = true;
                break;
            }
            kept.extend_from_slice(&chunk);
        }
        Ok(Response {
            version,
            status,
            body: Bytes::from(kept),
            truncated,
        })
    }

    fn error(&self, url: &Url, e: &reqwest::Error) -> SendError {
        let addr = url.host_str().map_or_else(String::new, |host| {
            format!("{host}:{}", url.port_or_known_default().unwrap_or(0))
        });
        if e.is_timeout() {
            SendError::Timeout {
                after: self.timeout,
            }
        } else if e.is_connect() {
            SendError::Connect {
                addr,
                message: error_chain(e),
            }
        } else {
            SendError::Http {
                message: error_chain(e),
            }
        }
    }
}

/// An error with its causes, which is where reqwest says what went wrong
/// (refused, certificate unknown, ...).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Seconds since the Unix epoch (0 for a clock before 1970).
pub fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A receiver's answer.
#[derive(Debug, Clone)]
pub struct Response {
    version: Version,
    status: StatusCode,
    body: Bytes,
    truncated: bool,
}

impl Response {
    /// The HTTP version of the answer.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// Whether the status is 2xx: what the API counts as delivered.
    pub fn is_success(&self) -> bool {
        self.status.is_success()
    }

    /// The body as received, at most [`MAX_RESPONSE_BODY`] bytes.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// Whether the body was longer than [`MAX_RESPONSE_BODY`] and cut.
    pub fn is_truncated(&self) -> bool {
        self.truncated
    }
}

/// Reads the event id, the string `id` at the top of an event body.
///
/// ```
/// let id = ricloud_webhook_cli::event_id(br#"{"id": "2abc5619", "type": "task"}"#)?;
/// assert_eq!(id, "2abc5619");
/// # Ok::<(), ricloud_webhook_cli::SendError>(())
/// ```
///
/// # Errors
/// [`SendError::BodyNotJson`] when the body is not JSON,
/// [`SendError::MissingEventId`] when it has no non-empty string `id`.
pub fn event_id(body: &[u8]) -> Result<String, SendError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| SendError::BodyNotJson {
            line: e.line(),
            column: e.column(),
        })?;
    match value.get("id") {
        Some(serde_json::Value::String(id)) if !id.is_empty() => Ok(id.clone()),
        _ => Err(SendError::MissingEventId),
    }
}

/// The URL an event is delivered to: `<base>/<event id>`, joined with exactly
/// one slash whether or not `base` ends with one (a query string stays last).
///
/// ```
/// use ricloud_webhook_cli::event_url;
///
/// let a = event_url("https://receiver.example.com/webhooks", "e1")?;
/// let b = event_url("https://receiver.example.com/webhooks/", "e1")?;
/// assert_eq!(a, b);
/// assert_eq!(a.as_str(), "https://receiver.example.com/webhooks/e1");
/// # Ok::<(), ricloud_webhook_cli::SendError>(())
/// ```
///
/// # Errors
/// [`SendError::InvalidUrl`] for anything but an absolute `http` or
/// `https` URL with a host and no credentials, [`SendError::InvalidEventId`]
/// for an id that is not a plain path segment.
pub fn event_url(base: &str, event_id: &str) -> Result<Url, SendError> {
    let invalid = |reason: &str| SendError::InvalidUrl {
        reason: reason.to_owned(),
    };
    let mut url = Url::parse(base).map_err(|_| {
        invalid("expected an absolute URL such as https://receiver.example.com/webhooks")
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("only http:// and https:// URLs are supported"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("the URL has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("credentials in the URL are not supported"));
    }
    // `.` and `..` are dot-segments a server would resolve, not ids.
    if matches!(event_id, "" | "." | "..")
        || !event_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
    {
        return Err(SendError::InvalidEventId);
    }
    let path = url.path().trim_end_matches('/').to_owned();
    url.set_path(&format!("{path}/{event_id}"));
    Ok(url)
}

/// Why an event could not be delivered, or no answer was received.
#[derive(Debug)]
#[non_exhaustive]
pub enum SendError {
    /// The URL is not an absolute `http://` or `https://` URL with a host.
    InvalidUrl {
        /// What is wrong with it.
        reason: String,
    },
    /// The `--ca-cert` file holds no usable PEM certificate.
    CaCert {
        /// What is wrong with it.
        reason: String,
    },
    /// The HTTP client could not be set up.
    Client {
        /// reqwest's description.
        message: String,
    },
    /// The body to send is not JSON, so no event id can be read from it.
    BodyNotJson {
        /// Line of the error, 1-based.
        line: usize,
        /// Column of the error, 1-based.
        column: usize,
    },
    /// The body has no non-empty string `id`, so the URL cannot be built.
    MissingEventId,
    /// The event id has characters that do not belong in a path segment.
    InvalidEventId,
    /// No connection could be made (refused, unreachable, or the TLS
    /// handshake failed).
    Connect {
        /// The `host:port` connected to.
        addr: String,
        /// What went wrong, with its causes.
        message: String,
    },
    /// The exchange broke off or the answer was not valid HTTP.
    Http {
        /// What went wrong, with its causes.
        message: String,
    },
    /// The whole exchange took longer than the timeout.
    Timeout {
        /// The timeout that expired.
        after: Duration,
    },
}

impl SendError {
    /// Whether the error is about the receiver's answer (connection, HTTP,
    /// timeout) rather than about what was asked (URL, body, certificate).
    pub fn is_delivery_failure(&self) -> bool {
        matches!(
            self,
            Self::Connect { .. } | Self::Http { .. } | Self::Timeout { .. }
        )
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidUrl { reason } => write!(f, "invalid URL: {reason}"),
            Self::CaCert { reason } => write!(f, "cannot use the CA certificate: {reason}"),
            Self::Client { message } => write!(f, "cannot set up the HTTP client: {message}"),
            Self::BodyNotJson { line, column } => write!(
                f,
                "body is not JSON (error at line {line}, column {column}): an event is a JSON object"
            ),
            Self::MissingEventId => f.write_str(
                "body has no string `id`: the event id is needed to build the URL <url>/<id>",
            ),
            Self::InvalidEventId => f.write_str(
                "event id cannot be a URL path segment: use only letters, digits, `-`, `.`, `_` and `~`",
            ),
            Self::Connect { addr, message } => write!(f, "cannot connect to {addr}: {message}"),
            Self::Http { message } => write!(f, "HTTP exchange failed: {message}"),
            Self::Timeout { after } => write!(f, "no complete answer within {after:?}"),
        }
    }
}

impl std::error::Error for SendError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_with_exactly_one_slash() {
        for (base, expected) in [
            (
                "http://127.0.0.1:8080/webhooks",
                "http://127.0.0.1:8080/webhooks/e-1",
            ),
            (
                "https://127.0.0.1:8080/webhooks/",
                "https://127.0.0.1:8080/webhooks/e-1",
            ),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080/e-1"),
            ("http://127.0.0.1:8080/", "http://127.0.0.1:8080/e-1"),
            ("http://localhost/a/b?x=1", "http://localhost/a/b/e-1?x=1"),
            ("http://[::1]:9/hooks", "http://[::1]:9/hooks/e-1"),
        ] {
            assert_eq!(event_url(base, "e-1").expect(base).as_str(), expected);
        }
    }

    #[test]
    fn refuses_what_it_cannot_send() {
        for base in [
            "example.com/webhooks",
            "/webhooks",
            "ftp://h/x",
            "http://u:p@h/x",
            "https://u@h/x",
            "",
        ] {
            assert!(
                matches!(event_url(base, "e"), Err(SendError::InvalidUrl { .. })),
                "{base}"
            );
        }
        for id in ["", ".", "..", "a/b", "a b", "..%2f", "é"] {
            assert!(
                matches!(event_url("http://h/x", id), Err(SendError::InvalidEventId)),
                "{id}"
            );
        }
    }

    #[test]
    fn reads_the_event_id() {
        assert_eq!(event_id(br#"{"id": "abc"}"#).expect("id"), "abc");
        assert!(matches!(
            event_id(br#"{"id": 5}"#),
            Err(SendError::MissingEventId)
        ));
        assert!(matches!(
            event_id(br#"{"id": ""}"#),
            Err(SendError::MissingEventId)
        ));
        assert!(matches!(event_id(b"[1]"), Err(SendError::MissingEventId)));
        assert!(matches!(
            event_id(b"{\n oops"),
            Err(SendError::BodyNotJson { line: 2, .. })
        ));
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        assert!(matches!(
            Sender::new(DEFAULT_TIMEOUT, Some(b"not a certificate")),
            Err(SendError::CaCert { .. })
        ));
    }
}
