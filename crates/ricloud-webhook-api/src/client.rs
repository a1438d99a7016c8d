//! The HTTP side: one reqwest client, the token, retries with backoff.

use std::fmt;

use std::time::Duration;
use zeroize::Zeroizing;

use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use zeroize::Zeroize;

use crate::error::ApiError;

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
    http: reqwest::Client,
    base: Url,
    token: HeaderValue,
    timeout: Duration,
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
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .finish_non_exhaustive()
    }
}

/// Sets up a [`Client`].
pub struct ClientBuilder {
    token: String,
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

impl Drop for ClientBuilder {
    fn drop(&mut self) {
        self.token.zeroize();
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
    /// random factor between 0.5 and 1.5 (default 1 s).
    #[must_use]
    pub fn retry_delay(mut self, delay: Duration) -> Self {
        self.retry_delay = delay;
        self
    }

    /// The longest wait before a retry (default 60 s). A `Retry-After`
    /// asking for longer ends the retries with the API's error.
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
    /// [`ApiError::Setup`] for an empty token, a base URL that is not an
    /// absolute `http(s)` URL, or a CA file without certificates.
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
        // ring as rustls's provider, as the CLI's sender installs it.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .timeout(self.timeout)
            .connect_timeout(self.timeout)
            .user_agent(concat!("ricloud-webhook-api/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = &self.ca_cert {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| setup(&format!("cannot use the CA certificate: {e}")))?;
            if certs.is_empty() {
                return Err(setup("no PEM certificate in the CA file"));
            }
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder.build().map_err(|e| ApiError::Setup {
            message: e.to_string(),
        })?;
        Ok(Client {
            http,
            base,
            token,
            timeout: self.timeout,
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
            token: token.into(),
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
        let mut attempt = 0;
        loop {
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .header(AUTHORIZATION, self.token.clone());
            if let Some(body) = &body {
                request = request
                    .header(CONTENT_TYPE, "application/json")
                    .body(body.clone());
            }
            let (error, retry_after, retryable) = match request.send().await {
                Ok(mut answer) => {
                    let status = answer.status();
                    let retry_after = answer
                        .headers()
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    let limit = if status.is_success() {
                        MAX_ANSWER
                    } else {
                        64 * 1024
                    };
                    let read = read_limited(&mut answer, limit).await;
                    match read {
                        Ok(bytes) if status.is_success() => return Ok(bytes),
                        Ok(bytes) => {
                            let retryable = status == StatusCode::TOO_MANY_REQUESTS
                                || (status.is_server_error() && retry == Retry::Idempotent);
                            (
                                ApiError::from_answer(status, &bytes, retry_after),
                                retry_after,
                                retryable,
                            )
                        }
                        Err(e) => {
                            let retryable = retry == Retry::Idempotent;
                            (self.read_error(&e), None, retryable)
                        }
                    }
                }
                Err(e) => {
                    let retryable = e.is_connect() || retry == Retry::Idempotent;
                    (self.transport_error(&e), None, retryable)
                }
            };
            if !retryable || attempt >= self.retries {
                return Err(error);
            }
            let wait = match retry_after {
                Some(asked) if asked > self.max_retry_wait => return Err(error),
                Some(asked) => asked,
                None => self.backoff(attempt),
            };
            tracing::debug!(%method, path = url.path(), attempt, ?wait, %error, "retrying an API request");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// The wait before retry number `attempt + 1`.
    fn backoff(&self, attempt: u32) -> Duration {
        let delay = self
            .retry_delay
            .saturating_mul(1 << attempt.min(16))
            .min(self.max_retry_wait);
        let mut byte = [0u8; 1];
        // Without randomness the retries are merely not spread out.
        let _ = getrandom::fill(&mut byte);
        delay.mul_f64(0.5 + f64::from(byte[0]) / 255.0)
    }

    fn transport_error(&self, e: &reqwest::Error) -> ApiError {
        if e.is_timeout() {
            ApiError::Timeout {
                after: self.timeout,
            }
        } else if e.is_connect() {
            ApiError::Connect {
                message: error_chain(e),
            }
        } else {
            ApiError::Http {
                message: error_chain(e),
            }
        }
    }
}

/// Reads at most `limit` bytes of an answer; more is an error. An answer
/// may hold a config's secret, so the buffer is wiped when dropped, and
/// wiped before it is given up each time it has to grow.
async fn read_limited(
    answer: &mut reqwest::Response,
    limit: usize,
) -> Result<Zeroizing<Vec<u8>>, ReadError> {
    let expected = answer
        .content_length()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(0);
    let mut body = Zeroizing::new(Vec::with_capacity(expected.min(limit)));
    while let Some(chunk) = answer.chunk().await.map_err(ReadError::Http)? {
        if body.len() + chunk.len() > limit {
            return Err(ReadError::TooLarge);
        }
        if body.capacity() - body.len() < chunk.len() {
            let mut bigger = Zeroizing::new(Vec::with_capacity(
                (body.len() + chunk.len())
                    .max(2 * body.capacity())
                    .min(limit),
            ));
            bigger.extend_from_slice(&body);
            // The old buffer is wiped as it drops.
            body = bigger;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[derive(Debug)]
enum ReadError {
    Http(reqwest::Error),
    TooLarge,
}

impl Client {
    fn read_error(&self, e: &ReadError) -> ApiError {
        match e {
            ReadError::Http(e) => self.transport_error(e),
            ReadError::TooLarge => ApiError::Http {
                message: format!("the answer is larger than {MAX_ANSWER} bytes"),
            },
        }
    }
}

/// An error with its causes, which is where reqwest says what went wrong.
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
