//! Trust for a private CA file: its certificates as extra roots beside the
//! platform's, and each of them also accepted as the server's own
//! certificate when the server presents exactly it.
//!
//! A self-signed certificate made the usual way (`openssl req -x509`) is
//! marked a CA, and WebPKI refuses a CA certificate as a server's own
//! (`CaUsedAsEndEntity`). No maintained crate pins a certificate for
//! reqwest, so this verifier does: a byte-for-byte match of the leaf the
//! server presents with a certificate the user gave is the trust decision
//! (as SSH's known hosts are), and anything else goes to the platform's
//! verifier. The handshake's signatures are checked by the crypto
//! provider in both cases, so the server must hold the certificate's key.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

#[derive(Debug)]
pub(super) struct PinnedOrPlatform {
    pinned: Vec<CertificateDer<'static>>,
    platform: rustls_platform_verifier::Verifier,
    provider: Arc<CryptoProvider>,
}

impl PinnedOrPlatform {
    /// The platform's roots plus `certs`, each also pinned.
    pub(super) fn new(
        certs: Vec<CertificateDer<'static>>,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, rustls::Error> {
        let platform = rustls_platform_verifier::Verifier::new_with_extra_roots(
            certs.iter().cloned(),
            Arc::clone(&provider),
        )?;
        Ok(Self {
            pinned: certs,
            platform,
            provider,
        })
    }
}

impl ServerCertVerifier for PinnedOrPlatform {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.pinned.iter().any(|pinned| pinned == end_entity) {
            return Ok(ServerCertVerified::assertion());
        }
        self.platform
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
