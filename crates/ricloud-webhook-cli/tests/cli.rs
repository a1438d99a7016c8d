//! Runs the built `ricloud-webhook` binary: known-answer signatures from
//! ricloud-py, verification verdicts, and deliveries to local receivers.

use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use ricloud_webhook::{sign, Event, Secret, SignatureHeader, Verifier};
use serde_json::Value;

const SECRET_ENV: &str = "RICLOUD_WEBHOOK_SECRET";
const SECRET: &str = "EZVNcphl95WzskoobnuXh_28qCZG_blz";

// ---- helpers ------------------------------------------------------------

/// The binary with a clean environment for the secret.
fn cli() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ricloud-webhook"));
    cmd.env_remove(SECRET_ENV)
        .env_remove("RICLOUD_WEBHOOK_PREVIOUS_SECRET");
    cmd
}

/// Runs `cmd` with `stdin` as its whole standard input.
fn run(mut cmd: Command, stdin: &[u8]) -> Output {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn ricloud-webhook");
    let mut pipe = child.stdin.take().expect("stdin");
    let input = stdin.to_vec();
    // Written from a thread so a child that answers before reading all of
    // its input cannot deadlock the test.
    let writer = std::thread::spawn(move || pipe.write_all(&input));
    let output = child.wait_with_output().expect("wait");
    writer.join().expect("writer").ok();
    output
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn code(output: &Output) -> i32 {
    output.status.code().expect("exited normally")
}

struct Vector {
    name: String,
    secret: String,
    timestamp: u64,
    body: String,
    header: String,
    valid: bool,
}

/// The known-answer vectors ricloud-py 3.2.0 produced.
fn vectors() -> Vec<Vector> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../ricloud-webhook/tests/data/ricloud-py-signatures.json"
    );
    let text = std::fs::read_to_string(path).expect("vectors file");
    let json: Value = serde_json::from_str(&text).expect("vectors JSON");
    json["vectors"]
        .as_array()
        .expect("vectors array")
        .iter()
        .map(|v| Vector {
            name: v["name"].as_str().expect("name").to_owned(),
            secret: v["secret"].as_str().expect("secret").to_owned(),
            timestamp: v["timestamp"].as_u64().expect("timestamp"),
            body: v["body"].as_str().expect("body").to_owned(),
            header: v["header"].as_str().expect("header").to_owned(),
            valid: v["valid"].as_bool().expect("valid"),
        })
        .collect()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

fn header_for(secret: &str, timestamp: u64, body: &[u8]) -> String {
    sign(&Secret::new(secret).expect("secret"), timestamp, body).to_string()
}

fn verify(args: &[&str], secret: &str, body: &[u8]) -> Output {
    let mut cmd = cli();
    cmd.arg("verify").args(args).env(SECRET_ENV, secret);
    run(cmd, body)
}

/// What a test receiver saw of one delivery.
#[derive(Debug)]
struct Seen {
    path: String,
    content_type: Option<String>,
    verdict: Result<(), String>,
    slug: Option<String>,
}

/// A receiver on 127.0.0.1:0 that checks the signature with the core's
/// `Verifier` and the path against the body's id, answers 200 when both hold
/// and 400 otherwise, or `forced` whatever happens. Every delivery it sees
/// is sent down the channel.
fn receiver(secret: &str, forced: Option<u16>) -> (SocketAddr, mpsc::Receiver<Seen>) {
    receiver_with(secret, forced, None)
}

/// A certificate authority made for the test, and a certificate it signed
/// for `localhost` and 127.0.0.1, as a TLS acceptor.
struct TestCa {
    pem: String,
    acceptor: tokio_rustls::TlsAcceptor,
}

fn test_ca() -> TestCa {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().expect("leaf key");
    let leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("leaf params")
        .signed_by(&leaf_key, &issuer)
        .expect("leaf certificate");
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .expect("server config");
    TestCa {
        pem: ca_cert.pem(),
        acceptor: tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config)),
    }
}

/// [`receiver`], speaking TLS when given an acceptor.
fn receiver_with(
    secret: &str,
    forced: Option<u16>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> (SocketAddr, mpsc::Receiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    listener.set_nonblocking(true).expect("nonblocking");
    let verifier = Verifier::new(Secret::new(secret).expect("secret"));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (verifier, tx) = (verifier.clone(), tx.clone());
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let (verifier, tx) = (verifier.clone(), tx.clone());
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let header = parts
                            .headers
                            .get(SignatureHeader::NAME)
                            .map(|v| v.as_bytes());
                        let event = Event::from_json(body.clone()).ok();
                        let verdict = verifier
                            .verify(header, body)
                            .map(drop)
                            .map_err(|e| e.to_string())
                            .and_then(|()| match &event {
                                Some(e) if parts.uri.path() == format!("/webhooks/{}", e.id) => {
                                    Ok(())
                                }
                                _ => Err("path is not /webhooks/<event id>".to_owned()),
                            });
                        let status = forced.unwrap_or(if verdict.is_ok() { 200 } else { 400 });
                        tx.send(Seen {
                            path: parts.uri.path().to_owned(),
                            content_type: parts
                                .headers
                                .get(http::header::CONTENT_TYPE)
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_owned),
                            verdict,
                            slug: event.map(|e| e.slug()),
                        })
                        .ok();
                        let answer = if status == 200 { "OK" } else { "Bad Request" };
                        Ok::<_, Infallible>(
                            hyper::Response::builder()
                                .status(status)
                                .body(Full::new(Bytes::from_static(answer.as_bytes())))
                                .expect("response"),
                        )
                    }
                });
                let tls = tls.clone();
                tokio::spawn(async move {
                    let http = hyper::server::conn::http1::Builder::new();
                    match tls {
                        Some(tls) => {
                            if let Ok(stream) = tls.accept(stream).await {
                                let _ = http.serve_connection(TokioIo::new(stream), service).await;
                            }
                        }
                        None => {
                            let _ = http.serve_connection(TokioIo::new(stream), service).await;
                        }
                    }
                });
            }
        });
    });
    (addr, rx)
}

fn seen(rx: &mpsc::Receiver<Seen>) -> Seen {
    rx.recv_timeout(Duration::from_secs(10))
        .expect("the receiver saw a delivery")
}

fn send_test(url: &str, secret: &str, extra: &[&str]) -> Output {
    let mut cmd = cli();
    cmd.args(["send-test", "--url", url])
        .args(extra)
        .env(SECRET_ENV, secret);
    run(cmd, b"")
}

// ---- sign -----------------------------------------------------------------

#[test]
fn sign_matches_ricloud_py_vectors() {
    let vectors: Vec<Vector> = vectors().into_iter().filter(|v| v.valid).collect();
    assert!(vectors.len() >= 5, "expected the valid vectors");
    for v in vectors {
        let mut cmd = cli();
        cmd.args(["sign", "--timestamp", &v.timestamp.to_string()])
            .env(SECRET_ENV, &v.secret);
        let out = run(cmd, v.body.as_bytes());
        assert_eq!(code(&out), 0, "{}: {}", v.name, stderr(&out));
        assert_eq!(stdout(&out), format!("{}\n", v.header), "{}", v.name);
    }
}

#[test]
fn sign_takes_the_body_byte_for_byte_and_secret_from_the_flag() {
    let mut cmd = cli();
    cmd.args(["sign", "--timestamp", "1700000000", "--secret", SECRET]);
    let out = run(cmd, b"{}\n");
    assert_eq!(
        stdout(&out).trim_end(),
        header_for(SECRET, 1_700_000_000, b"{}\n")
    );
    assert_ne!(
        stdout(&out).trim_end(),
        header_for(SECRET, 1_700_000_000, b"{}")
    );
}

#[test]
fn sign_defaults_to_now() {
    let before = now();
    let mut cmd = cli();
    cmd.arg("sign").env(SECRET_ENV, SECRET);
    let out = run(cmd, b"{}");
    let text = stdout(&out);
    let t: u64 = text
        .trim_end()
        .strip_prefix("t=")
        .and_then(|rest| rest.split(',').next())
        .and_then(|t| t.parse().ok())
        .expect("t= field");
    assert!(t >= before && t <= now(), "{text}");
    assert_eq!(text.trim_end(), header_for(SECRET, t, b"{}"));
}

#[test]
fn no_secret_says_what_to_do() {
    let mut cmd = cli();
    cmd.args(["sign", "--timestamp", "1"]);
    let out = run(cmd, b"{}");
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("no secret: pass --secret or set RICLOUD_WEBHOOK_SECRET"),
        "{}",
        stderr(&out)
    );
}

// ---- verify ---------------------------------------------------------------

#[test]
fn verify_agrees_with_ricloud_py_on_every_vector() {
    for v in vectors() {
        let out = verify(
            &["--no-time-check", "--header", &v.header],
            &v.secret,
            v.body.as_bytes(),
        );
        if v.valid {
            assert_eq!(stdout(&out), "valid\n", "{}", v.name);
            assert_eq!(code(&out), 0, "{}", v.name);
        } else {
            assert!(
                stdout(&out).starts_with("invalid: "),
                "{}: {}",
                v.name,
                stdout(&out)
            );
            assert_eq!(code(&out), 1, "{}", v.name);
        }
        // Whatever the verdict, neither the secret nor the body is echoed.
        let all = format!("{}{}", stdout(&out), stderr(&out));
        assert!(!all.contains(&v.secret), "{}", v.name);
    }
}

#[test]
fn verify_reasons() {
    let body = br#"{"id": "e1", "type": "task", "action": "succeeded"}"#;
    let header = header_for(SECRET, now(), body);

    let out = verify(&["--header", &header], "not-the-secret", body);
    assert_eq!(code(&out), 1);
    assert_eq!(
        stdout(&out),
        "invalid: signature does not match the body with any accepted secret\n"
    );

    let out = verify(&["--header", "t=1700000000"], SECRET, body);
    assert_eq!(code(&out), 1);
    assert_eq!(
        stdout(&out),
        "invalid: malformed signature header has no `s=` field\n"
    );

    // The default window refuses ricloud-py's vector, signed long ago.
    let v = vectors()
        .into_iter()
        .find(|v| v.valid)
        .expect("a valid vector");
    let out = verify(&["--header", &v.header], &v.secret, v.body.as_bytes());
    assert_eq!(code(&out), 1);
    assert!(
        stdout(&out).starts_with("invalid: signature timestamp is ")
            && stdout(&out).ends_with(" s old, more than the 600 s allowed\n"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn verify_tolerance_bounds_both_directions() {
    let body = b"{}";
    // 100 s either way: far from both the tolerances tried and any test lag.
    let old = header_for(SECRET, now() - 100, body);
    let ahead = header_for(SECRET, now() + 100, body);

    let out = verify(&["--tolerance", "50", "--header", &old], SECRET, body);
    assert_eq!(code(&out), 1);
    assert!(
        stdout(&out).contains("s old, more than the 50 s allowed"),
        "{}",
        stdout(&out)
    );
    let out = verify(&["--tolerance", "50", "--header", &ahead], SECRET, body);
    assert_eq!(code(&out), 1);
    assert!(
        stdout(&out).contains("s in the future, more than the 50 s allowed"),
        "{}",
        stdout(&out)
    );
    for header in [&old, &ahead] {
        let out = verify(&["--tolerance", "1000", "--header", header], SECRET, body);
        assert_eq!((code(&out), stdout(&out)), (0, "valid\n".to_owned()));
    }

    // The default window: 600 s old and 300 s ahead.
    let out = verify(&["--header", &old], SECRET, body);
    assert_eq!(code(&out), 0);
    let far_ahead = header_for(SECRET, now() + 400, body);
    let out = verify(&["--header", &far_ahead], SECRET, body);
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    let out = verify(&["--no-time-check", "--header", &far_ahead], SECRET, body);
    assert_eq!(code(&out), 0);

    let out = verify(
        &["--no-time-check", "--tolerance", "5", "--header", &old],
        SECRET,
        body,
    );
    assert_eq!(code(&out), 2, "the two flags conflict");
}

#[test]
fn verify_accepts_previous_secrets() {
    let body = b"{\"id\": \"e\"}";
    let header = header_for("old-secret", now(), body);
    let out = verify(&["--header", &header], SECRET, body);
    assert_eq!(code(&out), 1);
    let out = verify(
        &[
            "--previous-secret",
            "older-secret",
            "--previous-secret",
            "old-secret",
            "--header",
            &header,
        ],
        SECRET,
        body,
    );
    assert_eq!((code(&out), stdout(&out)), (0, "valid\n".to_owned()));

    let mut cmd = cli();
    cmd.args(["verify", "--header", &header])
        .env(SECRET_ENV, SECRET)
        .env("RICLOUD_WEBHOOK_PREVIOUS_SECRET", "old-secret");
    let out = run(cmd, body);
    assert_eq!((code(&out), stdout(&out)), (0, "valid\n".to_owned()));
}

#[test]
fn help_names_the_variable_but_never_its_value() {
    for sub in ["send-test", "send", "sign", "verify"] {
        let mut cmd = cli();
        cmd.args([sub, "--help"])
            .env(SECRET_ENV, SECRET)
            .env("RICLOUD_WEBHOOK_PREVIOUS_SECRET", "previous-secret-value");
        let out = run(cmd, b"");
        assert_eq!(code(&out), 0, "{sub}");
        let help = stdout(&out);
        assert!(help.contains("RICLOUD_WEBHOOK_SECRET"), "{sub}: {help}");
        assert!(!help.contains(SECRET), "{sub} help leaks the secret");
        assert!(
            !help.contains("previous-secret-value"),
            "{sub} help leaks the previous secret"
        );
    }
}

// ---- send-test ------------------------------------------------------------

#[test]
fn send_test_to_a_verifying_receiver_is_valid() {
    let (addr, rx) = receiver(SECRET, None);
    // With and without a trailing slash: one slash either way.
    for url in [
        format!("http://{addr}/webhooks"),
        format!("http://{addr}/webhooks/"),
    ] {
        let out = send_test(&url, SECRET, &[]);
        assert_eq!(
            (code(&out), stdout(&out)),
            (0, "valid\n".to_owned()),
            "{}",
            stderr(&out)
        );
        let seen = seen(&rx);
        assert_eq!(seen.verdict, Ok(()), "{seen:?}");
        assert_eq!(seen.slug.as_deref(), Some("webhook_config.test"));
        assert_eq!(seen.content_type.as_deref(), Some("application/json"));
        assert!(seen.path.starts_with("/webhooks/") && !seen.path.contains("//"));
    }
}

#[test]
fn send_test_with_the_wrong_secret_is_invalid() {
    let (addr, rx) = receiver(SECRET, None);
    let out = send_test(&format!("http://{addr}/webhooks"), "wrong-secret", &[]);
    assert_eq!(code(&out), 1);
    assert_eq!(stdout(&out), "invalid: 400 Bad Request\n");
    assert!(seen(&rx).verdict.is_err());
}

#[test]
fn send_test_reports_the_status_of_a_refusing_receiver() {
    let (addr, _rx) = receiver(SECRET, Some(503));
    let out = send_test(&format!("http://{addr}/webhooks"), SECRET, &[]);
    assert_eq!(
        (code(&out), stdout(&out)),
        (1, "invalid: 503 Service Unavailable\n".to_owned())
    );
}

#[test]
fn send_test_gives_up_on_a_silent_receiver() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    // Accepts and reads, never answers; the read ends when the client
    // hangs up after its timeout.
    std::thread::spawn(move || {
        if let Ok((mut stream, _)) = listener.accept() {
            let mut sink = Vec::new();
            stream.read_to_end(&mut sink).ok();
        }
    });
    let out = send_test(
        &format!("http://{addr}/webhooks"),
        SECRET,
        &["--timeout", "1"],
    );
    assert_eq!(code(&out), 1);
    assert_eq!(stdout(&out), "invalid: no complete answer within 1s\n");
}

#[test]
fn send_test_to_a_closed_port_is_a_connection_error() {
    let addr = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    // The listener is dropped: nothing listens on `addr` any more.
    let out = send_test(&format!("http://{addr}/webhooks"), SECRET, &[]);
    assert_eq!(code(&out), 1);
    assert!(
        stdout(&out).starts_with(&format!("invalid: cannot connect to {addr}: ")),
        "{}",
        stdout(&out)
    );
}

#[test]
fn send_test_reaches_an_https_receiver_signed_by_a_private_ca() {
    let ca = test_ca();
    let dir = std::env::temp_dir().join(format!("ricloud-webhook-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).expect("CA file");
    let (addr, rx) = receiver_with(SECRET, None, Some(ca.acceptor));
    let url = format!("https://localhost:{}/webhooks", addr.port());

    let out = send_test(
        &url,
        SECRET,
        &["--ca-cert", ca_file.to_str().expect("utf-8")],
    );
    assert_eq!(
        (code(&out), stdout(&out)),
        (0, "valid\n".to_owned()),
        "{}",
        stderr(&out)
    );
    let first = seen(&rx);
    assert_eq!(first.verdict, Ok(()), "{first:?}");
    assert_eq!(first.slug.as_deref(), Some("webhook_config.test"));

    // `send` takes the same flag.
    let mut cmd = cli();
    cmd.args([
        "send",
        "--url",
        &url,
        "--event",
        "task.succeeded",
        "--ca-cert",
    ])
    .arg(&ca_file)
    .env(SECRET_ENV, SECRET);
    let out = run(cmd, b"");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(seen(&rx).slug.as_deref(), Some("task.succeeded"));

    // Without the CA the certificate is not trusted: no delivery.
    let out = send_test(&url, SECRET, &[]);
    assert_eq!(code(&out), 1);
    assert!(
        stdout(&out).starts_with(&format!(
            "invalid: cannot connect to localhost:{}",
            addr.port()
        )),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("certificate"), "{}", stdout(&out));
    assert!(rx.try_recv().is_err());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_ca_file_without_a_certificate_is_a_setup_error() {
    let dir = std::env::temp_dir().join(format!("ricloud-webhook-bad-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("ca.pem");
    std::fs::write(&file, "not a certificate").expect("file");
    let out = send_test(
        "https://localhost:1/webhooks",
        SECRET,
        &["--ca-cert", file.to_str().expect("utf-8")],
    );
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("CA certificate"), "{}", stderr(&out));
    std::fs::remove_dir_all(&dir).ok();
}

// ---- send -----------------------------------------------------------------

#[test]
fn send_every_documented_event() {
    let (addr, rx) = receiver(SECRET, None);
    let mut list = cli();
    list.args(["send", "--list-events"]);
    let slugs = stdout(&run(list, b""));
    assert_eq!(slugs.lines().count(), 7, "{slugs}");
    for slug in slugs.lines() {
        let mut cmd = cli();
        cmd.args([
            "send",
            "--url",
            &format!("http://{addr}/webhooks"),
            "--event",
            slug,
        ])
        .env(SECRET_ENV, SECRET);
        let out = run(cmd, b"");
        assert_eq!(code(&out), 0, "{slug}: {}", stderr(&out));
        assert_eq!(
            stdout(&out),
            "HTTP/1.1 200 OK\nOK\noutcome: ok (new)\n",
            "{slug}"
        );
        let seen = seen(&rx);
        assert_eq!(seen.verdict, Ok(()), "{slug}");
        assert_eq!(seen.slug.as_deref(), Some(slug));
    }
}

#[test]
fn send_a_body_of_your_own() {
    let (addr, rx) = receiver(SECRET, None);
    let dir = std::env::temp_dir().join(format!("ricloud-webhook-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("event.json");
    let body = b"{\"id\": \"0b7c1f4e-2d7a-4e55-9a43-8d2f1e6c9b10\", \"type\": \"task\",\n  \"action\": \"exploded\", \"data\": {}}\n";
    std::fs::write(&file, body).expect("write body");

    let url = format!("http://{addr}/webhooks");
    let mut cmd = cli();
    cmd.args(["send", "--url", &url, "--body"])
        .arg(&file)
        .env(SECRET_ENV, SECRET);
    let out = run(cmd, b"");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let seen = seen(&rx);
    assert_eq!(seen.path, "/webhooks/0b7c1f4e-2d7a-4e55-9a43-8d2f1e6c9b10");
    assert_eq!(seen.verdict, Ok(()));
    assert_eq!(seen.slug.as_deref(), Some("task.exploded"));

    // From stdin, and refused by the receiver: exit 1 with its answer.
    let mut cmd = cli();
    cmd.args(["send", "--url", &url, "--body", "-"])
        .env(SECRET_ENV, "wrong-secret");
    let out = run(cmd, body);
    assert_eq!(
        (code(&out), stdout(&out)),
        (1, "HTTP/1.1 400 Bad Request\nBad Request\n".to_owned())
    );

    // No id, no URL.
    std::fs::write(&file, b"{\"type\": \"task\"}").expect("write body");
    let mut cmd = cli();
    cmd.args(["send", "--url", &url, "--body"])
        .arg(&file)
        .env(SECRET_ENV, SECRET);
    let out = run(cmd, b"");
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("no string `id`"), "{}", stderr(&out));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn send_takes_one_of_event_and_body() {
    let mut cmd = cli();
    cmd.args([
        "send",
        "--url",
        "http://127.0.0.1:9/webhooks",
        "--event",
        "task.created",
        "--body",
        "x.json",
    ])
    .env(SECRET_ENV, SECRET);
    assert_eq!(code(&run(cmd, b"")), 2);
    let mut cmd = cli();
    cmd.args([
        "send",
        "--url",
        "http://127.0.0.1:9/webhooks",
        "--event",
        "task.exploded",
    ])
    .env(SECRET_ENV, SECRET);
    let out = run(cmd, b"");
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("task.succeeded"), "{}", stderr(&out));
}

// ---- inbox ----------------------------------------------------------------

/// An inbox file with three events: one done, one dead, one pending.
fn prepared_inbox(dir: &std::path::Path) -> String {
    use ricloud_webhook::{Dispatcher, EventQueue, HandlerError};
    use ricloud_webhook_testkit::{eventually, verified_event};
    let url = format!("sqlite://{}", dir.join("inbox.db").display());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let inbox = ricloud_webhook_inbox::Inbox::connect(&url).await.expect("inbox");
        for (id, action) in [("e-done", "succeeded"), ("e-dead", "created")] {
            let body = serde_json::json!({"id": id, "type": "task", "action": action, "data": {"id": "t"}});
            let event = verified_event(serde_json::to_vec(&body).expect("json"));
            inbox.enqueue(&event, SystemTime::now()).await.expect("enqueue");
        }
        let dispatcher = Dispatcher::new().on("task.created", |_: std::sync::Arc<ricloud_webhook::Event>| async {
            Err(HandlerError::give_up("no such task"))
        });
        let workers = inbox
            .workers(dispatcher)
            .config(ricloud_webhook_inbox::WorkerConfig::default().poll(Duration::from_millis(20)))
            .spawn();
        eventually("one event done and one dead", Duration::from_secs(20), || async {
            let stats = inbox.stats().await.expect("stats");
            stats.done == 1 && stats.dead == 1
        })
        .await;
        workers.shutdown().await;
        let body = serde_json::json!({"id": "e-pending", "type": "poll", "action": "completed", "data": null});
        let event = verified_event(serde_json::to_vec(&body).expect("json"));
        inbox.enqueue(&event, SystemTime::now()).await.expect("enqueue");
    });
    url
}

fn inbox_cmd(url: &str, args: &[&str]) -> Output {
    let mut cmd = cli();
    cmd.env("RICLOUD_WEBHOOK_DATABASE_URL", url)
        .arg("inbox")
        .args(args);
    run(cmd, b"")
}

#[test]
fn inbox_commands_list_show_count_replay_and_purge() {
    let dir = std::env::temp_dir().join(format!("ricloud-cli-inbox-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let url = prepared_inbox(&dir);

    let out = inbox_cmd(&url, &["stats"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("pending  1") && text.contains("done     1") && text.contains("dead     1"),
        "{text}"
    );

    let out = inbox_cmd(&url, &["list", "--state", "dead"]);
    let text = stdout(&out);
    assert!(text.starts_with("EVENT ID"), "{text}");
    assert!(
        text.contains("e-dead") && text.contains("no such task") && !text.contains("e-done"),
        "{text}"
    );

    let out = inbox_cmd(&url, &["list", "--json", "--slug", "poll.completed"]);
    let rows: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(rows.as_array().map(Vec::len), Some(1));
    assert_eq!(rows[0]["event_id"], "e-pending");
    assert_eq!(rows[0]["state"], "pending");

    let out = inbox_cmd(&url, &["show", "e-dead"]);
    let text = stdout(&out);
    assert!(
        text.contains("state:         dead") && text.contains("\"action\": \"created\""),
        "{text}"
    );
    let out = inbox_cmd(&url, &["show", "nope"]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("no event nope"), "{}", stderr(&out));

    let out = inbox_cmd(&url, &["replay", "--dead"]);
    assert_eq!(stdout(&out), "1 event(s) put back to pending\n");
    let out = inbox_cmd(&url, &["replay", "e-done", "e-missing"]);
    assert_eq!(stdout(&out), "1 event(s) put back to pending\n");
    let out = inbox_cmd(&url, &["stats", "--json"]);
    let stats: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        (
            stats["pending"].as_u64(),
            stats["done"].as_u64(),
            stats["dead"].as_u64()
        ),
        (Some(3), Some(0), Some(0))
    );

    let out = inbox_cmd(&url, &["purge", "--done-before", "1h"]);
    assert_eq!(stdout(&out), "0 done event(s) deleted\n");
    let out = inbox_cmd(&url, &["purge", "--done-before", "yesterday"]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("neither an ISO 8601 time nor an age"),
        "{}",
        stderr(&out)
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn inbox_commands_refuse_a_sqlite_file_that_does_not_exist() {
    let dir = std::env::temp_dir().join(format!("ricloud-cli-missing-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let missing = dir.join("missing.db");
    let url = format!("sqlite://{}", missing.display());
    for args in [&["list"][..], &["stats"], &["show", "x"]] {
        let out = inbox_cmd(&url, args);
        assert_ne!(code(&out), 0, "{args:?}");
        assert!(
            stderr(&out).contains("no SQLite inbox at"),
            "{}",
            stderr(&out)
        );
    }
    // Nothing was created: no file, no WAL.
    let left: Vec<_> = std::fs::read_dir(&dir).expect("dir").collect();
    assert!(left.is_empty(), "{left:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
