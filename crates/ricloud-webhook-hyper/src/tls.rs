//! TLS without a proxy: a certificate chain and key from PEM files, served
//! by rustls and reloaded on demand (on SIGHUP, say) without dropping a
//! connection.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

/// Why a certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// No rustls crypto provider is installed for the process.
    #[error(
        "no rustls crypto provider is installed: call rustls::crypto::ring::default_provider().install_default() at start-up"
    )]
    NoProvider,
    /// A PEM file could not be read or holds nothing usable.
    #[error("cannot read {what} from {path}")]
    Pem {
        /// `certificate chain` or `private key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// The certificate file holds no certificate.
    #[error("{0} holds no certificate")]
    NoCertificate(PathBuf),
    /// The key does not fit the certificate, or the provider cannot use it.
    #[error("the private key cannot be used with the certificate")]
    Key(#[source] rustls::Error),
    /// rustls refused the configuration.
    #[error("TLS configuration refused")]
    Config(#[source] rustls::Error),
}

/// A certificate chain and private key read from PEM files, for
/// [`serve_tls`](crate::serve_tls). [`reload`](Self::reload) reads them
/// again: new handshakes use the new certificate, connections already open
/// keep theirs.
///
/// ```no_run
/// # async fn run(listener: tokio::net::TcpListener, service: ricloud_webhook_hyper::WebhookService) -> Result<(), Box<dyn std::error::Error>> {
/// use ricloud_webhook_hyper::{serve_tls, shutdown_signal, TlsFiles};
///
/// let _ = rustls::crypto::ring::default_provider().install_default();
/// let tls = TlsFiles::load("cert.pem", "key.pem")?;
/// let config = tls.server_config()?;
/// // On SIGHUP: `tls.reload()`, logging an error and keeping the old pair.
/// serve_tls(listener, service, config, shutdown_signal()?).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TlsFiles {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: Arc<Current>,
}

/// The pair in force; rustls asks it on each handshake. rustls has no
/// resolver that can be swapped at run time, hence this one.
struct Current(RwLock<Arc<CertifiedKey>>);

impl TlsFiles {
    /// Reads the certificate chain (leaf first) and the private key (PKCS#8,
    /// PKCS#1 or SEC1), and checks that they fit, with the process's
    /// default rustls crypto provider.
    ///
    /// # Errors
    /// [`TlsError`] when a file cannot be read, the key does not fit the
    /// certificate, or no provider is installed.
    pub fn load(cert: impl AsRef<Path>, key: impl AsRef<Path>) -> Result<Self, TlsError> {
        let provider = CryptoProvider::get_default()
            .cloned()
            .ok_or(TlsError::NoProvider)?;
        let (cert, key) = (cert.as_ref().to_owned(), key.as_ref().to_owned());
        let pair = read_pair(&cert, &key, &provider)?;
        Ok(Self {
            cert,
            key,
            provider,
            current: Arc::new(Current(RwLock::new(Arc::new(pair)))),
        })
    }

    /// Reads the files again and, when they are usable, serves the new pair
    /// from the next handshake on. On an error the old pair stays.
    ///
    /// # Errors
    /// As [`load`](Self::load).
    pub fn reload(&self) -> Result<(), TlsError> {
        let pair = read_pair(&self.cert, &self.key, &self.provider)?;
        *self
            .current
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(pair);
        Ok(())
    }

    /// A rustls server configuration that serves the current pair and
    /// offers HTTP/2 and HTTP/1.1 by ALPN.
    ///
    /// # Errors
    /// [`TlsError::Config`] when the provider supports no protocol version.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let mut config = ServerConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&self.current) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

fn read_pair(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|source| TlsError::Pem {
            what: "certificate chain",
            path: cert.to_owned(),
            source,
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(cert.to_owned()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|source| TlsError::Pem {
        what: "private key",
        path: key.to_owned(),
        source,
    })?;
    CertifiedKey::from_der(chain, key, provider).map_err(TlsError::Key)
}

impl ResolvesServerCert for Current {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self
                .0
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        ))
    }
}

impl fmt::Debug for Current {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Current")
    }
}

impl fmt::Debug for TlsFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsFiles")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}
