//! Delivering a signed event to a receiver over HTTP or HTTPS, through the
//! API crate's [`Transport`] (the workspace's one reqwest set-up).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use reqwest::{Method, StatusCode, Url, Version};
use ricloud_webhook::{sign, Secret, SignatureHeader};
use ricloud_webhook_api::transport::{HttpVersion, Overflow, Transport, TransportError};

/// How long a delivery may take, connecting included, unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The most of a receiver's answer that is kept; the rest is dropped.
pub const MAX_RESPONSE_BODY: usize = 64 * 1024;

/// Sends signed events the way the API delivers them.
///
/// The program must have installed a rustls crypto provider first (the
/// `ricloud-webhook` binary installs ring's).
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
    transport: Transport,
}

impl Sender {
    /// A sender whose deliveries give up after `timeout`, trusting the
    /// system's certificate authorities and, when given, the PEM
    /// certificates in `ca_cert` (a private CA).
    ///
    /// # Errors
    /// [`SendError::Transport`] when the transport cannot be set up (no
    /// TLS provider installed, `ca_cert` without a usable certificate).
    pub fn new(timeout: Duration, ca_cert: Option<&[u8]>) -> Result<Self, SendError> {
        Self::with_http(timeout, ca_cert, HttpVersion::Negotiated)
    }

    /// [`Sender::new`], speaking the HTTP version `http`.
    ///
    /// # Errors
    /// As [`Sender::new`].
    pub fn with_http(
        timeout: Duration,
        ca_cert: Option<&[u8]>,
        http: HttpVersion,
    ) -> Result<Self, SendError> {
        let mut transport =
            Transport::builder(concat!("ricloud-webhook-cli/", env!("CARGO_PKG_VERSION")))
                .timeout(timeout)
                .http(http);
        if let Some(pem) = ca_cert {
            transport = transport.ca_cert(pem.to_vec());
        }
        Ok(Self {
            transport: transport.build()?,
        })
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
    /// [`SendError::Transport`]: no connection (TLS included), a timeout,
    /// an exchange that broke off.
    pub async fn post_signed(
        &self,
        url: &Url,
        header: &SignatureHeader,
        body: Bytes,
    ) -> Result<Response, SendError> {
        let request = self
            .transport
            .request(Method::POST, url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SignatureHeader::NAME, header.to_string())
            .body(body);
        let mut answer = self
            .transport
            .exchange(request, MAX_RESPONSE_BODY, Overflow::Truncate)
            .await?;
        let outcome = answer
            .headers
            .get(ricloud_webhook::Reason::OUTCOME_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(Response {
            version: answer.version,
            status: answer.status,
            outcome,
            // A receiver's answer holds no secret: taken out of its wiping
            // buffer, not copied.
            body: Bytes::from(std::mem::take(&mut *answer.body)),
            truncated: answer.truncated,
        })
    }
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
    outcome: Option<String>,
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

    /// The receiver's short reason, from its
    /// [`Reason::OUTCOME_HEADER`](ricloud_webhook::Reason::OUTCOME_HEADER)
    /// answer header (`duplicate` for an event it had, `bad_signature`,
    /// ...); `ok` for a 2xx without it, a new event taken.
    pub fn outcome(&self) -> Option<&str> {
        match &self.outcome {
            Some(outcome) => Some(outcome),
            None if self.is_success() => Some("ok"),
            None => None,
        }
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
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The URL is not an absolute `http://` or `https://` URL with a host.
    #[error("invalid URL: {reason}")]
    InvalidUrl {
        /// What is wrong with it.
        reason: String,
    },
    /// The body to send is not JSON, so no event id can be read from it.
    #[error("body is not JSON (error at line {line}, column {column}): an event is a JSON object")]
    BodyNotJson {
        /// Line of the error, 1-based.
        line: usize,
        /// Column of the error, 1-based.
        column: usize,
    },
    /// The body has no non-empty string `id`, so the URL cannot be built.
    #[error("body has no string `id`: the event id is needed to build the URL <url>/<id>")]
    MissingEventId,
    /// The event id has characters that do not belong in a path segment.
    #[error(
        "event id cannot be a URL path segment: use only letters, digits, `-`, `.`, `_` and `~`"
    )]
    InvalidEventId,
    /// The exchange failed or could not be set up.
    #[error(transparent)]
    Transport(#[from] TransportError),
}

impl SendError {
    /// Whether the error is about the receiver's answer (connection, HTTP,
    /// timeout) rather than about what was asked (URL, body, certificate).
    pub fn is_delivery_failure(&self) -> bool {
        matches!(
            self,
            Self::Transport(
                TransportError::Connect { .. }
                    | TransportError::Http(_)
                    | TransportError::Timeout { .. }
            )
        )
    }
}

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
        let _ = rustls::crypto::ring::default_provider().install_default();
        assert!(matches!(
            Sender::new(DEFAULT_TIMEOUT, Some(b"not a certificate")),
            Err(SendError::Transport(TransportError::CaCert { .. }))
        ));
    }
}
