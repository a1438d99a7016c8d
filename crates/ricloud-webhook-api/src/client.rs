//! The API client: the token, the base URL, retries with backoff
//! (backon), over the workspace's one [`Transport`].

use std::fmt;
use std::time::{Duration, SystemTime};

use backon::{ExponentialBuilder, Retryable as _};
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use zeroize::Zeroizing;

use crate::error::ApiError;
use crate::transport::{Overflow, Transport, TransportError};

/// Where the API lives.
pub const DEFAULT_BASE_URL: &str = "https://ricloud-api.reincubate.com";

/// How long one request may take, unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How many times a request is retried after a 429, a 5xx or a lost
/// connection, unless told otherwise.
pub const DEFAULT_RETRIES: u32 = 4;
/// The most pages one listing fetches, by default.
pub const DEFAULT_MAX_PAGES: u32 = 1000;

/// The largest answer read (a page of 1,000 events with their data).
const MAX_ANSWER: usize = 64 * 1024 * 1024;

/// A client of the ricloud API.
///
/// Every request carries `Authorization: Token <token>` and has a timeout.
/// A 429 (rate limited), a 5xx, a connection that could not be made, or a
/// timeout is retried with exponential backoff and jitter, honouring
/// `Retry-After`, except that creating a config is retried only when the
/// API cannot have acted on it (429, no connection): a second create would
/// make a second config. The token never appears in a log line, an error or
/// a `Debug`.
///
/// ```no_run
/// use ricloud_webhook_api::Client;
///
/// # async fn run() -> Result<(), ricloud_webhook_api::ApiError> {
/// let client = Client::builder(std::env::var("RICLOUD_TOKEN").unwrap_or_default()).build()?;
/// let config = client.create_webhook_config("https://example.com/webhooks").await?;
/// println!("{} is {}", config.id, config.state_str());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Client {
    transport: Transport,
    base: Url,
    token: HeaderValue,
    retries: u32,
    retry_delay: Duration,
    max_retry_wait: Duration,
    pub(crate) max_pages: u32,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base.as_str())
            .field("token", &"[redacted]")
            .field("timeout", &self.transport.timeout())
            .field("retries", &self.retries)
            .finish_non_exhaustive()
    }
}

/// Sets up a [`Client`].
pub struct ClientBuilder {
    token: Zeroizing<String>,
    base_url: String,
    timeout: Duration,
    retries: u32,
    retry_delay: Duration,
    max_retry_wait: Duration,
    ca_cert: Option<Vec<u8>>,
    max_pages: u32,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("token", &"[redacted]")
            .field("base_url", &self.base_url)
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// The API's base URL (default [`DEFAULT_BASE_URL`]).
    #[must_use]
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// The timeout of each request, connecting included (default 30 s).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How many times a failed request is retried (default 4; 0 turns
    /// retries off).
    #[must_use]
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// The first retry's delay, doubled for each further one, each with a
    /// random factor between 1 and 2 (backon's jitter; default 1 s).
    #[must_use]
    pub fn retry_delay(mut self, delay: Duration) -> Self {
        self.retry_delay = delay;
        self
    }

    /// The longest wait before a retry (default 60 s). A `Retry-After`
    /// (seconds or an HTTP date) asking for longer ends the retries with
    /// the API's error.
    #[must_use]
    pub fn max_retry_wait(mut self, wait: Duration) -> Self {
        self.max_retry_wait = wait;
        self
    }

    /// PEM certificates of a private CA to trust besides the system's.
    #[must_use]
    pub fn ca_cert(mut self, pem: Vec<u8>) -> Self {
        self.ca_cert = Some(pem);
        self
    }

    /// The most pages one listing fetches before it ends with
    /// [`ApiError::Paging`] (default 1,000: a million items at the
    /// largest page size). A bound against an API whose lists never end.
    #[must_use]
    pub fn max_pages(mut self, pages: u32) -> Self {
        self.max_pages = pages.max(1);
        self
    }

    /// Builds the client.
    ///
    /// # Errors
    /// [`ApiError::Setup`] for an empty token, or a base URL that is not an
    /// absolute `http(s)` URL; [`ApiError::Transport`] when the transport
    /// cannot be set up (no TLS provider installed, a CA file without
    /// certificates).
    pub fn build(self) -> Result<Client, ApiError> {
        let setup = |message: &str| ApiError::Setup {
            message: message.to_owned(),
        };
        if self.token.trim().is_empty() {
            return Err(setup(
                "no API token: pass --token or set RICLOUD_TOKEN (a key token from the ricloud dashboard)",
            ));
        }
        let mut token = HeaderValue::from_str(&format!("Token {}", self.token.trim()))
            .map_err(|_| setup("the API token has characters a header cannot hold"))?;
        token.set_sensitive(true);
        let base = Url::parse(&self.base_url).map_err(|_| {
            setup("the API URL is not an absolute URL such as https://ricloud-api.reincubate.com")
        })?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(setup("the API URL must be http:// or https:// with a host"));
        }
        if !base.username().is_empty() || base.password().is_some() || base.query().is_some() {
            return Err(setup("the API URL cannot hold credentials or a query"));
        }
        let mut transport =
            Transport::builder(concat!("ricloud-webhook-api/", env!("CARGO_PKG_VERSION")))
                .timeout(self.timeout);
        if let Some(pem) = &self.ca_cert {
            transport = transport.ca_cert(pem.clone());
        }
        Ok(Client {
            transport: transport.build()?,
            base,
            token,
            retries: self.retries,
            retry_delay: self.retry_delay,
            max_retry_wait: self.max_retry_wait,
            max_pages: self.max_pages,
        })
    }
}

/// Which failures a request may be retried after.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Retry {
    /// Anything transient: asking again has the same effect.
    Idempotent,
    /// Only what the API cannot have acted on: 429 and no connection.
    NotActedOn,
}

impl Client {
    /// A client builder for the key token `token` (`RICLOUD_TOKEN`).
    pub fn builder(token: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            token: Zeroizing::new(token.into()),
            base_url: DEFAULT_BASE_URL.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            retries: DEFAULT_RETRIES,
            retry_delay: Duration::from_secs(1),
            max_retry_wait: Duration::from_secs(60),
            ca_cert: None,
            max_pages: DEFAULT_MAX_PAGES,
        }
    }

    /// The API's base URL.
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// `<base>/<segments...>?<query>`, each segment percent-encoded.
    pub(crate) fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// Sends one request, retrying as `retry` allows, and returns the
    /// answer's body when it is a success.
    pub(crate) async fn call(
        &self,
        method: Method,
        url: Url,
        body: Option<serde_json::Value>,
        retry: Retry,
    ) -> Result<Zeroizing<Vec<u8>>, ApiError> {
        let body = body.map(|b| b.to_string());
        let once = || async {
            let mut request = self
                .transport
                .request(method.clone(), url.clone())
                .header(AUTHORIZATION, self.token.clone());
            if let Some(body) = &body {
                request = request
                    .header(CONTENT_TYPE, "application/json")
                    .body(body.clone());
            }
            let answer = self
                .transport
                .exchange(request, MAX_ANSWER, Overflow::Refuse)
                .await?;
            if answer.status.is_success() {
                return Ok(answer.body);
            }
            Err(ApiError::from_answer(
                answer.status,
                &answer.body,
                retry_after(&answer.headers, SystemTime::now()),
            ))
        };
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.retry_delay)
            .with_max_delay(self.max_retry_wait)
            .with_max_times(self.retries as usize)
            .with_jitter();
        once.retry(backoff)
            .sleep(tokio::time::sleep)
            .when(|e| retryable(e, retry))
            // `Retry-After` replaces the backoff's wait; one asking for more
            // than the client waits ends the retries with the API's error.
            .adjust(|e, next| match e.retry_after() {
                Some(asked) if asked > self.max_retry_wait => None,
                Some(asked) => next.map(|_| asked),
                None => next,
            })
            .notify(|e, wait| {
                tracing::debug!(%method, path = url.path(), ?wait, error = %e, "retrying an API request");
            })
            .await
    }
}

/// Whether `error` may be retried under `retry`.
fn retryable(error: &ApiError, retry: Retry) -> bool {
    match error {
        // The API cannot have acted on a request that never reached it.
        ApiError::Transport(e) if e.is_connect() => true,
        ApiError::Transport(TransportError::Timeout { .. } | TransportError::Http(_)) => {
            retry == Retry::Idempotent
        }
        ApiError::Api { status, .. } => {
            *status == StatusCode::TOO_MANY_REQUESTS
                || (status.is_server_error() && retry == Retry::Idempotent)
        }
        _ => false,
    }
}

/// `Retry-After` as a wait from `now`: delay-seconds, or an HTTP date
/// (a date in the past is no wait).
fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(text).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_str(value).expect("a header"));
        headers
    }

    #[test]
    fn retry_after_is_seconds_or_an_http_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            retry_after(&header("120"), now),
            Some(Duration::from_secs(120))
        );
        let later = httpdate::fmt_http_date(now + Duration::from_secs(90));
        assert_eq!(
            retry_after(&header(&later), now),
            Some(Duration::from_secs(90))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(90));
        assert_eq!(retry_after(&header(&earlier), now), Some(Duration::ZERO));
        assert_eq!(retry_after(&header("soon"), now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }
}
