//! Test helpers shared by the workspace's test suites (a dev-dependency
//! only, never published): temporary directories, bounded waits, seeded
//! randomness, and events that went through real signing and verification.

use std::future::Future;
use std::path::Path;
use std::time::{Duration, SystemTime};

use ricloud_webhook::{sign, Secret, VerifiedEvent, Verifier};

pub mod brokers;

pub use fastrand;

/// A temporary directory named after the test, removed when dropped.
#[derive(Debug)]
pub struct TempDir(tempfile::TempDir);

impl TempDir {
    /// Creates one under the system's temporary directory.
    ///
    /// # Panics
    /// When the directory cannot be created.
    pub fn new(name: &str) -> Self {
        Self(
            tempfile::Builder::new()
                .prefix(&format!("ricloud-{name}-"))
                .tempdir()
                .expect("a temporary directory"),
        )
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        self.0.path()
    }

    /// The URL of a SQLite inbox file in it.
    pub fn sqlite_url(&self) -> String {
        format!("sqlite://{}", self.path().join("inbox.db").display())
    }
}

/// Waits until `check` holds, looking every 20 ms for at most `within`.
///
/// # Panics
/// When `within` passes first, naming `what`.
pub async fn eventually<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {within:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Installs ring as the test process's rustls crypto provider, unless one
/// is installed already. The workspace's libraries install none (a library
/// must not choose for the program); a test process is a program, and
/// calls this before it builds an HTTP client.
pub fn install_tls_provider() {
    // An error means a provider is installed already, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A random source seeded from the clock, its seed printed so a failing
/// run can be repeated with [`fastrand::Rng::with_seed`].
pub fn seeded_rng() -> fastrand::Rng {
    let seed = fastrand::u64(..);
    eprintln!("random seed {seed}");
    fastrand::Rng::with_seed(seed)
}

/// A realistic event body with the given id and slug (`<type>.<action>`).
///
/// # Panics
/// When `slug` has no `.`.
pub fn event_body(id: &str, slug: &str) -> Vec<u8> {
    let (kind, action) = slug.split_once('.').expect("a slug is <type>.<action>");
    serde_json::to_vec(&serde_json::json!({
        "id": id, "resource": "event", "type": kind, "action": action,
        "data": {"id": "f3e452f2-3cbb-4daa-a4c1-84fa48a7c825", "resource": kind, "state": "succeeded"},
        "state": "pending", "retries": 0, "date_created": "2026-11-27T10:43:00.123Z",
        "date_delivered": null
    }))
    .expect("json")
}

/// `body` as a receiver would hand it on: signed now with a test secret,
/// verified, and parsed. There is no other way to build a
/// [`VerifiedEvent`], so tests of stores and queues go through this one.
///
/// # Panics
/// When `body` is not an event.
pub fn verified_event(body: impl Into<Vec<u8>>) -> VerifiedEvent {
    let body = body.into();
    let secret = Secret::new("testkit-secret").expect("a secret");
    let now = SystemTime::now();
    let seconds = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let header = sign(&secret, seconds, &body).to_string();
    let verified = Verifier::new(secret)
        .verify_at(Some(header.as_bytes()), body, now)
        .expect("signed just now");
    VerifiedEvent::parse(verified).expect("an event")
}

/// A log writer for a test's tracing subscriber: everything written,
/// shared with the test. [`LogCapture`] installs one for a test.
#[derive(Clone, Default)]
pub struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

/// This thread's log lines, up to `max`, written without colour to a
/// [`Captured`] until the capture is dropped. Futures keep it where they
/// are spawned with `tracing::instrument::WithSubscriber`.
///
/// tracing decides once per process whether a log line is wanted, and
/// while exactly one subscriber is registered it asks the thread that
/// first reaches the line (tokio-rs/tracing#3611): a sibling test with no
/// subscriber would switch the line off for this test too. A capture keeps
/// a second subscriber registered while it lives, so that every registered
/// subscriber is asked.
///
/// ```
/// let logs = ricloud_webhook_testkit::LogCapture::start(tracing::Level::INFO);
/// tracing::warn!("said");
/// assert!(logs.text().contains("WARN"));
/// ```
#[must_use = "the capture ends when it is dropped"]
pub struct LogCapture {
    logged: Captured,
    // Dropped in this order: the thread's default first.
    _default: tracing::subscriber::DefaultGuard,
    _second: tracing::Dispatch,
}

impl std::fmt::Debug for LogCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogCapture").finish_non_exhaustive()
    }
}

impl LogCapture {
    /// Starts capturing this thread's log lines up to `max`.
    pub fn start(max: tracing::Level) -> Self {
        // Registered before the capture, whose registration then asks
        // again about every line already reached.
        let second = tracing::Dispatch::new(tracing_subscriber::registry());
        let logged = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(logged.clone())
            .with_max_level(max)
            .with_ansi(false)
            .finish();
        Self {
            logged,
            _default: tracing::subscriber::set_default(subscriber),
            _second: second,
        }
    }

    /// What was logged so far.
    pub fn text(&self) -> String {
        self.logged.text()
    }
}

impl Captured {
    /// What was written so far.
    pub fn text(&self) -> String {
        let bytes = self.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Self;

    fn make_writer(&'a self) -> Self {
        self.clone()
    }
}

impl std::fmt::Debug for Captured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Captured").finish_non_exhaustive()
    }
}
