//! The one HTTP layer of everything in this workspace that sends: one
//! reqwest set-up (rustls, a timeout, the system's certificate authorities
//! plus an optional private CA, no redirects), one mapping of reqwest's
//! errors, one bounded read. The API [`Client`](crate::Client) and the
//! CLI's sender both go through a [`Transport`].
//!
//! A library does not choose the process's TLS crypto provider: the
//! program installs one (`rustls::crypto::ring::default_provider()
//! .install_default()`, as the CLI does) before building a transport, and
//! [`TransportBuilder::build`] says so with [`TransportError::NoTlsProvider`]
//! instead of panicking inside reqwest.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use reqwest::header::HeaderMap;
use reqwest::{RequestBuilder, StatusCode, Url, Version};
use zeroize::Zeroizing;

mod pinned;

/// Why an exchange through a [`Transport`] failed, or one could not be set
/// up. reqwest's error, which says what went wrong (refused, certificate
/// unknown, ...), is the [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// No rustls crypto provider is installed in the process.
    #[error(
        "no TLS crypto provider is installed: the program must install one (rustls::crypto::ring::default_provider().install_default()) before sending"
    )]
    NoTlsProvider,
    /// The private CA file holds no usable PEM certificate.
    #[error("cannot use the CA certificate: {reason}")]
    CaCert {
        /// What is wrong with it.
        reason: String,
    },
    /// reqwest could not build its client.
    #[error("cannot set up the HTTP client")]
    Setup(#[source] reqwest::Error),
    /// No connection could be made (refused, unreachable, or the TLS
    /// handshake failed).
    #[error("cannot connect to {addr}")]
    Connect {
        /// The `host:port` connected to.
        addr: String,
        /// reqwest's error.
        #[source]
        source: reqwest::Error,
    },
    /// The whole exchange took longer than the transport's timeout.
    #[error("no complete answer within {after:?}")]
    Timeout {
        /// The timeout that expired.
        after: Duration,
    },
    /// The exchange broke off, or the answer was not valid HTTP.
    #[error("HTTP exchange failed")]
    Http(#[source] reqwest::Error),
    /// The answer's body is larger than the caller accepts.
    #[error("the answer is larger than {limit} bytes")]
    TooLarge {
        /// The largest body accepted.
        limit: usize,
    },
}

impl TransportError {
    /// Whether no connection was made, so the server cannot have acted on
    /// the request.
    pub fn is_connect(&self) -> bool {
        matches!(self, Self::Connect { .. })
    }
}

/// A rustls set-up that trusts the platform's roots, the certificates in
/// `pem` as roots, and each of them as a server's own certificate when the
/// server presents exactly it (see [`pinned`]).
fn private_ca(pem: &[u8], http: HttpVersion) -> Result<rustls::ClientConfig, TransportError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TransportError::CaCert {
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TransportError::CaCert {
            reason: "no PEM certificate in the file".to_owned(),
        });
    }
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .ok_or(TransportError::NoTlsProvider)?;
    let verifier = pinned::PinnedOrPlatform::new(certs, Arc::clone(&provider)).map_err(|e| {
        TransportError::CaCert {
            reason: e.to_string(),
        }
    })?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TransportError::CaCert {
            reason: e.to_string(),
        })?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = match http {
        HttpVersion::Negotiated => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        HttpVersion::Http1 => vec![b"http/1.1".to_vec()],
        HttpVersion::Http2 => vec![b"h2".to_vec()],
    };
    Ok(config)
}

/// Sets up a [`Transport`].
#[derive(Debug, Clone)]
pub struct TransportBuilder {
    timeout: Duration,
    ca_cert: Option<Vec<u8>>,
    user_agent: String,
    http: HttpVersion,
}

/// Which HTTP version a [`Transport`] speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum HttpVersion {
    /// HTTP/2 where the server offers it by ALPN (over TLS), else HTTP/1.1.
    #[default]
    Negotiated,
    /// HTTP/1.1 only, as the ricloud API delivers.
    Http1,
    /// HTTP/2 only, without negotiation over plain `http://`.
    Http2,
}

impl TransportBuilder {
    /// The timeout of each exchange, connecting included (default 30 s).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// PEM certificates of a private CA to trust besides the system's; a
    /// server presenting exactly one of them as its own certificate (a
    /// self-signed one, `openssl req -x509`) is trusted too.
    #[must_use]
    pub fn ca_cert(mut self, pem: Vec<u8>) -> Self {
        self.ca_cert = Some(pem);
        self
    }

    /// The `User-Agent` sent.
    #[must_use]
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = user_agent.into();
        self
    }

    /// The HTTP version to speak (default [`HttpVersion::Negotiated`]).
    #[must_use]
    pub fn http(mut self, version: HttpVersion) -> Self {
        self.http = version;
        self
    }

    /// Builds the transport.
    ///
    /// # Errors
    /// [`TransportError::NoTlsProvider`] when the program installed no
    /// rustls crypto provider, [`TransportError::CaCert`] for a CA file
    /// without certificates, [`TransportError::Setup`] when reqwest fails.
    pub fn build(self) -> Result<Transport, TransportError> {
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            return Err(TransportError::NoTlsProvider);
        }
        let mut builder = reqwest::Client::builder()
            .timeout(self.timeout)
            .connect_timeout(self.timeout)
            // An answer comes from where the request was sent; a redirect
            // is a misconfigured URL, reported as its status.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(self.user_agent);
        builder = match self.http {
            HttpVersion::Negotiated => builder,
            HttpVersion::Http1 => builder.http1_only(),
            HttpVersion::Http2 => builder.http2_prior_knowledge(),
        };
        if let Some(pem) = &self.ca_cert {
            builder = builder.tls_backend_preconfigured(private_ca(pem, self.http)?);
        }
        Ok(Transport {
            client: builder.build().map_err(TransportError::Setup)?,
            timeout: self.timeout,
        })
    }
}

/// What to do with an answer's body past the caller's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Fail the exchange with [`TransportError::TooLarge`].
    Refuse,
    /// Keep the first bytes, drop the rest, and mark the answer truncated.
    Truncate,
}

/// An answer read through a [`Transport`].
pub struct Answer {
    /// The HTTP version.
    pub version: Version,
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body, at most the limit asked for. It may hold a secret (a
    /// config's), so it is wiped when dropped.
    pub body: Zeroizing<Vec<u8>>,
    /// Whether the body was cut at the limit ([`Overflow::Truncate`]).
    pub truncated: bool,
}

impl fmt::Debug for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The body is left out: it may hold a secret.
        f.debug_struct("Answer")
            .field("version", &self.version)
            .field("status", &self.status)
            .field("body_len", &self.body.len())
            .field("truncated", &self.truncated)
            .finish_non_exhaustive()
    }
}

/// A reqwest client set up once, with its timeout and trust; cheap to clone.
#[derive(Debug, Clone)]
pub struct Transport {
    client: reqwest::Client,
    timeout: Duration,
}

impl Transport {
    /// A builder with a 30 s timeout, the system's CAs and `user_agent`.
    pub fn builder(user_agent: impl Into<String>) -> TransportBuilder {
        TransportBuilder {
            timeout: Duration::from_secs(30),
            ca_cert: None,
            user_agent: user_agent.into(),
            http: HttpVersion::Negotiated,
        }
    }

    /// A request to `url`, to be given to [`Transport::exchange`].
    pub fn request(&self, method: reqwest::Method, url: Url) -> RequestBuilder {
        self.client.request(method, url)
    }

    /// The timeout of each exchange.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sends `request` and reads its answer's body, at most `limit` bytes.
    ///
    /// # Errors
    /// [`TransportError::Connect`], [`TransportError::Timeout`],
    /// [`TransportError::Http`], and [`TransportError::TooLarge`] past
    /// `limit` with [`Overflow::Refuse`].
    pub async fn exchange(
        &self,
        request: RequestBuilder,
        limit: usize,
        overflow: Overflow,
    ) -> Result<Answer, TransportError> {
        let mut answer = request.send().await.map_err(|e| self.error(e))?;
        let (version, status) = (answer.version(), answer.status());
        let headers = std::mem::take(answer.headers_mut());
        let expected = answer
            .content_length()
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(0);
        let mut body = Zeroizing::new(Vec::with_capacity(expected.min(limit)));
        let mut truncated = false;
        while let Some(chunk) = answer.chunk().await.map_err(|e| self.error(e))? {
            let room = limit - body.len();
            if chunk.len() > room {
                if overflow == Overflow::Refuse {
                    return Err(TransportError::TooLarge { limit });
                }
                extend_wiping(&mut body, &chunk[..room], limit);
                truncated = true;
                break;
            }
            extend_wiping(&mut body, &chunk, limit);
        }
        Ok(Answer {
            version,
            status,
            headers,
            body,
            truncated,
        })
    }

    fn error(&self, e: reqwest::Error) -> TransportError {
        if e.is_timeout() {
            TransportError::Timeout {
                after: self.timeout,
            }
        } else if e.is_connect() {
            let addr = e.url().map_or_else(String::new, |url| {
                format!(
                    "{}:{}",
                    url.host_str().unwrap_or_default(),
                    url.port_or_known_default().unwrap_or(0)
                )
            });
            TransportError::Connect { addr, source: e }
        } else {
            TransportError::Http(e)
        }
    }
}

/// Appends `bytes`, growing the buffer into a new one so the old one is
/// wiped as it drops rather than left behind by a reallocation.
fn extend_wiping(body: &mut Zeroizing<Vec<u8>>, bytes: &[u8], limit: usize) {
    if body.capacity() - body.len() < bytes.len() {
        let mut bigger = Zeroizing::new(Vec::with_capacity(
            (body.len() + bytes.len())
                .max(2 * body.capacity())
                .min(limit),
        ));
        bigger.extend_from_slice(body);
        *body = bigger;
    }
    body.extend_from_slice(bytes);
}
