//! TLS without a proxy: the receiver serves its certificate files, and
//! reads them again on SIGHUP while a connection stays open.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::{eventually, Process, TempDir};

/// A new self-signed certificate for 127.0.0.1 written over `cert.pem` and
/// `key.pem` in `dir`; its DER.
fn write_certificate(dir: &Path) -> CertificateDer<'static> {
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("certificate");
    std::fs::write(dir.join("cert.pem"), cert.pem()).expect("write the certificate");
    std::fs::write(dir.join("key.pem"), signing_key.serialize_pem()).expect("write the key");
    cert.der().clone()
}

/// A TLS connection to `addr` that trusts `cert` only.
async fn connect(
    addr: &str,
    cert: &CertificateDer<'static>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.clone()).expect("a root");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("127.0.0.1").expect("a name");
    TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
}

/// `GET /healthz` on a kept-alive connection; the answer's status line.
async fn health(stream: &mut TlsStream<TcpStream>) -> String {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .expect("write");
    let mut answer = Vec::new();
    let mut chunk = [0u8; 1024];
    // The answer ends with its two-byte body, `ok`.
    while !answer.ends_with(b"\r\n\r\nok") {
        let n = stream.read(&mut chunk).await.expect("read");
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_serves_a_new_certificate_without_dropping_a_connection() {
    let dir = TempDir::new("tls-reload");
    let first = write_certificate(dir.path());
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    let receiver = Process::start(
        dir.path(),
        &[
            ("RICLOUD_WEBHOOK_DATABASE_URL", "memory"),
            ("RICLOUD_WEBHOOK_TLS_CERT", cert.to_str().expect("a path")),
            ("RICLOUD_WEBHOOK_TLS_KEY", key.to_str().expect("a path")),
        ],
    );
    let mut held = connect(&receiver.addr, &first)
        .await
        .expect("a TLS connection");
    assert_eq!(health(&mut held).await, "HTTP/1.1 200 OK");

    let second = write_certificate(dir.path());
    let hup = Command::new("kill")
        .args(["-HUP", &receiver.pid().to_string()])
        .status()
        .expect("kill -HUP");
    assert!(hup.success());
    eventually("the new certificate", Duration::from_secs(10), || async {
        connect(&receiver.addr, &second).await.is_ok()
    })
    .await;
    assert!(
        connect(&receiver.addr, &first).await.is_err(),
        "the old certificate is still served"
    );
    // The connection made before the reload is still open and answering.
    assert_eq!(health(&mut held).await, "HTTP/1.1 200 OK");
    assert!(receiver.logged(&["TLS certificate reloaded"]));

    // A reload that fails keeps the pair in force.
    std::fs::write(&key, "not a key").expect("write");
    let hup = Command::new("kill")
        .args(["-HUP", &receiver.pid().to_string()])
        .status()
        .expect("kill -HUP");
    assert!(hup.success());
    eventually(
        "the failed reload's line",
        Duration::from_secs(10),
        || async { receiver.logged(&["not reloaded"]) },
    )
    .await;
    assert!(connect(&receiver.addr, &second).await.is_ok());
}
