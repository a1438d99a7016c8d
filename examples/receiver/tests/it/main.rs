//! The example receiver's tests: its handlers over a real socket, and the
//! real process (`CARGO_BIN_EXE_receiver`) against strangers, crashes
//! (`kill -9`), replicas on one PostgreSQL, a database that goes away, and
//! both delivery modes, and forwarding to real NATS and Redis servers.

mod configs;
mod console;
mod crash;
mod forward;
mod inline;
mod ops;
mod register;
mod replay;
mod replicas;
mod strangers;
mod tls;
mod validation;

#[path = "../../../../crates/ricloud-webhook-inbox/tests/support/pg.rs"]
mod pg;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use ricloud_webhook::Secret;
use ricloud_webhook_cli::{sample_event, Sender};

pub(crate) const SECRET: &str = "receiver-test-secret";

pub(crate) use ricloud_webhook_testkit::{eventually, TempDir};

/// The receiver binary, running; killed (`kill -9`) when dropped.
pub(crate) struct Process {
    child: Child,
    /// Reads stdout until the process closes it.
    reader: Option<std::thread::JoinHandle<()>>,
    /// `127.0.0.1:<port>`.
    pub(crate) addr: String,
    /// The admin listener's `127.0.0.1:<port>`, unless turned off.
    pub(crate) admin: Option<String>,
    /// Every line it printed on stdout so far.
    pub(crate) lines: Arc<Mutex<Vec<String>>>,
    /// Every line it logged on stderr so far.
    pub(crate) log: Arc<Mutex<Vec<String>>>,
}

impl Process {
    /// Starts the receiver in `dir` with `env` on top of the test secret
    /// and a free port, and waits for it to listen.
    pub(crate) fn start(dir: &Path, env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_receiver"));
        command
            .current_dir(dir)
            .env("RICLOUD_WEBHOOK_SECRET", SECRET)
            .env("RICLOUD_WEBHOOK_ADDR", "127.0.0.1:0")
            .env("RICLOUD_WEBHOOK_ADMIN_ADDR", "127.0.0.1:0")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("start the receiver");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("stdout");
        let sink = Arc::clone(&lines);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().expect("lock").push(line);
            }
        });
        let stderr = child.stderr.take().expect("stderr");
        let mut stderr = BufReader::new(stderr).lines();
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut admin = None;
        let addr = loop {
            let Some(line) = stderr.next() else {
                let status = child.wait().expect("wait");
                panic!("the receiver exited ({status}) before listening");
            };
            let line = line.expect("stderr line");
            log.lock().expect("lock").push(line.clone());
            if let Some(rest) = line.split("admin listener on http://").nth(1) {
                admin = Some(rest.split(':').take(2).collect::<Vec<_>>().join(":"));
            }
            if let Some(rest) = line
                .split("listening on http://")
                .nth(1)
                .or_else(|| line.split("listening on https://").nth(1))
            {
                break rest.split('/').next().expect("address").to_owned();
            }
        };
        // Keep draining its log so it never blocks on a full pipe.
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in stderr.map_while(Result::ok) {
                sink.lock().expect("lock").push(line);
            }
        });
        Self {
            child,
            reader: Some(reader),
            addr,
            admin,
            lines,
            log,
        }
    }

    pub(crate) fn base(&self) -> String {
        format!("http://{}/webhooks", self.addr)
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `kill -9`; returns every line it printed.
    pub(crate) fn kill(mut self) -> Vec<String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.all_lines()
    }

    /// SIGTERM, and waits for a clean exit; returns every line it printed.
    pub(crate) fn terminate(mut self) -> Vec<String> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        let exit = self.child.wait().expect("wait");
        assert!(exit.success(), "the receiver exited with {exit} on SIGTERM");
        self.all_lines()
    }

    /// Every line, once the process has closed its stdout.
    fn all_lines(&mut self) -> Vec<String> {
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        self.lines.lock().expect("lock").clone()
    }

    /// Whether it has logged a line holding every one of `parts`.
    pub(crate) fn logged(&self, parts: &[&str]) -> bool {
        self.log
            .lock()
            .expect("lock")
            .iter()
            .any(|l| parts.iter().all(|p| l.contains(p)))
    }

    /// How many handler runs it printed for event `id`.
    pub(crate) fn handled(&self, id: &str) -> usize {
        count(&self.lines, id)
    }

    /// Waits (at most 20 s) until the process has printed a handler line
    /// for `id`: its stdout is read by a thread of its own, which may lag
    /// behind the answer. Lines arrive in order, so once it is there every
    /// earlier run's line is too.
    pub(crate) async fn until_handled(&self, id: &str) {
        eventually(
            &format!("a handler line for {id}"),
            Duration::from_secs(20),
            || async { self.handled(id) > 0 },
        )
        .await;
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How many `handled <slug> <id>` lines `lines` holds for `id`.
pub(crate) fn count(lines: &Mutex<Vec<String>>, id: &str) -> usize {
    lines
        .lock()
        .expect("lock")
        .iter()
        .filter(|l| l.starts_with("handled ") && l.split(' ').nth(2) == Some(id))
        .count()
}

/// Signs and sends an event the way the API does.
#[derive(Clone)]
pub(crate) struct Api {
    sender: Sender,
    secret: Arc<Secret>,
}

impl Api {
    pub(crate) fn new() -> Self {
        Self {
            sender: {
                ricloud_webhook_testkit::install_tls_provider();
                Sender::new(Duration::from_secs(5), None).expect("client")
            },
            secret: Arc::new(Secret::new(SECRET).expect("secret")),
        }
    }

    /// Delivers `body` to `base`; the status, or `None` when there was no
    /// answer (the receiver died, say).
    pub(crate) async fn deliver(&self, base: &str, body: &[u8]) -> Option<u16> {
        self.sender
            .post_event(base, &self.secret, body.to_vec())
            .await
            .ok()
            .map(|r| r.status().as_u16())
    }
}

/// A `task.succeeded` event with id `id`, as the API sends it.
pub(crate) fn event_body(id: &str) -> Vec<u8> {
    let mut event = sample_event(
        "task.succeeded",
        "http://receiver/webhooks",
        SystemTime::now(),
    )
    .expect("sample");
    event["id"] = id.into();
    serde_json::to_vec(&event).expect("json")
}

pub(crate) fn id(n: usize) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

pub(crate) use ricloud_webhook_testkit::seeded_rng;
