//! Posting a signed event to a receiver: plain HTTP/1.1 over a Tokio TCP
//! stream, the way the API delivers one.

use std::fmt;
use std::io;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_TYPE, HOST, USER_AGENT};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Method, Request, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use ricloud_webhook::{sign, Secret, SignatureHeader, SIGNATURE_HEADER};
use tokio::net::TcpStream;

use crate::clock::unix_seconds;

/// How long [`post_event`] waits for a whole exchange unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How much of a response body is kept; the rest is not read.
pub const MAX_RESPONSE_BODY: usize = 64 * 1024;

/// What the receiver answered.
#[derive(Debug, Clone)]
pub struct Response {
    version: Version,
    status: StatusCode,
    body: Bytes,
    truncated: bool,
}

impl Response {
    /// The HTTP version the receiver answered with.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// Whether the API would count the delivery as successful (any 2xx).
    pub fn is_success(&self) -> bool {
        self.status.is_success()
    }

    /// The response body, at most [`MAX_RESPONSE_BODY`] bytes of it.
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
/// let a = event_url("http://127.0.0.1:8080/webhooks", "e1")?;
/// let b = event_url("http://127.0.0.1:8080/webhooks/", "e1")?;
/// assert_eq!(a, b);
/// assert_eq!(a.to_string(), "http://127.0.0.1:8080/webhooks/e1");
/// # Ok::<(), ricloud_webhook_cli::SendError>(())
/// ```
///
/// # Errors
/// [`SendError::TlsUnsupported`] for an `https` URL,
/// [`SendError::InvalidUrl`] for anything but an absolute `http` URL with a
/// host and no credentials, [`SendError::InvalidEventId`] for an id that is
/// not a plain path segment.
pub fn event_url(base: &str, event_id: &str) -> Result<Uri, SendError> {
    let invalid = |reason: &str| SendError::InvalidUrl {
        reason: reason.to_owned(),
    };
    const EXPECTED: &str = "expected an absolute URL such as http://127.0.0.1:8080/webhooks";
    let uri: Uri = base.parse().map_err(|_| invalid(EXPECTED))?;
    match uri.scheme() {
        Some(s) if *s == Scheme::HTTP => {}
        Some(s) if *s == Scheme::HTTPS => return Err(SendError::TlsUnsupported),
        Some(_) => return Err(invalid("only http:// URLs are supported")),
        None => return Err(invalid(EXPECTED)),
    }
    let authority = uri
        .authority()
        .ok_or_else(|| invalid("the URL has no host"))?;
    if authority.as_str().contains('@') {
        return Err(invalid("credentials in the URL are not supported"));
    }
    if authority.host().is_empty() {
        return Err(invalid("the URL has no host"));
    }
    // `.` and `..` are dot-segments a server would resolve, not ids.
    if matches!(event_id, "" | "." | "..")
        || !event_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
    {
        return Err(SendError::InvalidEventId);
    }
    let path = uri.path();
    let path = path.strip_suffix('/').unwrap_or(path);
    let joined = match uri.query() {
        Some(query) => format!("{path}/{event_id}?{query}"),
        None => format!("{path}/{event_id}"),
    };
    let path_and_query: PathAndQuery = joined.parse().map_err(|_| invalid(EXPECTED))?;
    Uri::builder()
        .scheme(Scheme::HTTP)
        .authority(authority.clone())
        .path_and_query(path_and_query)
        .build()
        .map_err(|e| SendError::InvalidUrl {
            reason: e.to_string(),
        })
}

/// Signs `body` with `secret` at the current time and posts it to
/// `<base_url>/<event id>`, the event id being read from the body, as the
/// API does.
///
/// Must run inside a Tokio runtime with I/O and timers enabled.
///
/// # Errors
/// Those of [`event_id`], [`event_url`] and [`post_signed`].
pub async fn post_event(
    base_url: &str,
    secret: &Secret,
    body: impl Into<Bytes>,
    timeout: Duration,
) -> Result<Response, SendError> {
    let body = body.into();
    let url = event_url(base_url, &event_id(&body)?)?;
    let header = sign(secret, unix_seconds(SystemTime::now()), &body);
    post_signed(&url, &header, body, timeout).await
}

/// Posts `body` to `url` with `Content-Type: application/json` and the
/// `Ricloud-Signature` header, and reads the answer.
///
/// Connecting, sending and reading the answer must all finish within
/// `timeout`. Plain HTTP/1.1 only; `url` must come from [`event_url`] (or
/// satisfy the same rules). Must run inside a Tokio runtime with I/O and
/// timers enabled.
///
/// # Errors
/// [`SendError::InvalidUrl`] or [`SendError::TlsUnsupported`] for a URL
/// [`event_url`] would refuse, [`SendError::Connect`] when the TCP
/// connection fails, [`SendError::Http`] when the exchange breaks off,
/// [`SendError::Timeout`] when it takes longer than `timeout`.
pub async fn post_signed(
    url: &Uri,
    header: &SignatureHeader,
    body: Bytes,
    timeout: Duration,
) -> Result<Response, SendError> {
    if url.scheme() == Some(&Scheme::HTTPS) {
        return Err(SendError::TlsUnsupported);
    }
    if url.scheme() != Some(&Scheme::HTTP) {
        return Err(SendError::InvalidUrl {
            reason: "only http:// URLs are supported".to_owned(),
        });
    }
    let authority = url.authority().ok_or_else(|| SendError::InvalidUrl {
        reason: "the URL has no host".to_owned(),
    })?;
    let request = Request::builder()
        .method(Method::POST)
        .uri(url.path_and_query().map_or("/", PathAndQuery::as_str))
        .header(HOST, authority.as_str())
        .header(CONTENT_TYPE, "application/json")
        .header(
            USER_AGENT,
            concat!("ricloud-webhook-cli/", env!("CARGO_PKG_VERSION")),
        )
        .header(SIGNATURE_HEADER, header_value(header)?)
        .body(Full::new(body))
        .map_err(|e| SendError::Http {
            message: e.to_string(),
        })?;
    tokio::time::timeout(timeout, exchange(authority, request))
        .await
        .unwrap_or(Err(SendError::Timeout { after: timeout }))
}

fn header_value(header: &SignatureHeader) -> Result<HeaderValue, SendError> {
    HeaderValue::try_from(header.to_string()).map_err(|e| SendError::Http {
        message: e.to_string(),
    })
}

/// Connects, sends `request` and reads the answer, without a time limit.
async fn exchange(
    authority: &Authority,
    request: Request<Full<Bytes>>,
) -> Result<Response, SendError> {
    // `Authority::host` keeps the brackets of an IPv6 literal; sockets do not.
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = authority.port_u16().unwrap_or(80);
    let stream = TcpStream::connect((host, port))
        .await
        .map_err(|source| SendError::Connect {
            addr: authority.to_string(),
            source,
        })?;
    // A webhook is one small request: send it without Nagle's delay.
    stream.set_nodelay(true).ok();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(http_error)?;
    let answer = async move {
        let response = sender.send_request(request).await.map_err(http_error)?;
        let (parts, mut incoming) = response.into_parts();
        let mut body = BytesMut::new();
        let mut truncated = false;
        while let Some(frame) = incoming.frame().await {
            let Ok(data) = frame.map_err(http_error)?.into_data() else {
                continue; // trailers
            };
            let room = MAX_RESPONSE_BODY - body.len();
            if data.len() > room {
                body.extend_from_slice(&data[..room]);
                truncated = true;
                break;
            }
            body.extend_from_slice(&data);
        }
        Ok(Response {
            version: parts.version,
            status: parts.status,
            body: body.freeze(),
            truncated,
        })
    };
    tokio::pin!(answer);
    tokio::pin!(conn);
    // The connection future does the I/O; driving it here instead of
    // spawning it keeps this function runtime-agnostic. When it ends first
    // (the peer closed, or an error), whatever it received has been handed
    // to `answer`, which then resolves with the response or the error.
    tokio::select! {
        result = &mut answer => result,
        _ = &mut conn => answer.await,
    }
}

fn http_error(e: hyper::Error) -> SendError {
    SendError::Http {
        message: e.to_string(),
    }
}

/// Why an event could not be delivered, or no answer was received.
#[derive(Debug)]
#[non_exhaustive]
pub enum SendError {
    /// The URL is not an absolute `http://` URL with a host.
    InvalidUrl {
        /// What is wrong with it.
        reason: String,
    },
    /// The URL is `https://`, and this tool has no TLS.
    TlsUnsupported,
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
    /// The TCP connection could not be opened.
    Connect {
        /// The `host:port` connected to.
        addr: String,
        /// What the operating system said.
        source: io::Error,
    },
    /// The connection broke off or the answer was not valid HTTP/1.1.
    Http {
        /// hyper's description.
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
    /// timeout) rather than about what was asked (URL, body).
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
            Self::TlsUnsupported => f.write_str(
                "https URLs are not supported (this tool has no TLS): send to http:// on \
                 localhost, or to a TLS-terminating proxy's plain-HTTP side",
            ),
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
            Self::Connect { addr, source } => write!(f, "cannot connect to {addr}: {source}"),
            Self::Http { message } => write!(f, "HTTP exchange failed: {message}"),
            Self::Timeout { after } => write!(f, "no complete answer within {after:?}"),
        }
    }
}

impl std::error::Error for SendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Connect { source, .. } => Some(source),
            _ => None,
        }
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
                "http://127.0.0.1:8080/webhooks/",
                "http://127.0.0.1:8080/webhooks/e-1",
            ),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080/e-1"),
            ("http://127.0.0.1:8080/", "http://127.0.0.1:8080/e-1"),
            ("http://localhost/a/b?x=1", "http://localhost/a/b/e-1?x=1"),
            ("http://[::1]:9/hooks", "http://[::1]:9/hooks/e-1"),
        ] {
            assert_eq!(event_url(base, "e-1").expect(base).to_string(), expected);
        }
    }

    #[test]
    fn refuses_what_it_cannot_send() {
        assert!(matches!(
            event_url("https://example.com/webhooks", "e"),
            Err(SendError::TlsUnsupported)
        ));
        for base in [
            "example.com/webhooks",
            "/webhooks",
            "ftp://h/x",
            "http://u:p@h/x",
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
    fn tls_error_says_what_to_do() {
        let message = SendError::TlsUnsupported.to_string();
        assert!(
            message.contains("TLS") && message.contains("proxy") && message.contains("http://")
        );
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
}
