//! The API commands of the built `ricloud-webhook` binary against the
//! stand-in API (`ricloud-webhook-api-mock`, whose config tests really
//! deliver) and the example receiver's binary: the whole set-up flow,
//! catch-up into a running receiver and into an inbox, an API that stops
//! answering half-way, an API whose paging never ends, and `listen`
//! stopped by SIGTERM or SIGHUP.

use ricloud_webhook_testkit::TempDir;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use ricloud_webhook::{sign, Secret, SignatureHeader};
use ricloud_webhook_api_mock::{BrokenPaging, MockApi};
use serde_json::Value;

const TOKEN: &str = "cli-test-token";

/// The CLI, pointed at `api`, with nothing from the environment.
fn cli(api: &MockApi) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ricloud-webhook"));
    cmd.env_clear()
        .env("RICLOUD_TOKEN", TOKEN)
        .env("RICLOUD_URL", api.url())
        .env("RICLOUD_WEBHOOK_ADMIN_ADDR", "127.0.0.1:0")
        .stdin(Stdio::null());
    cmd
}

fn output(cmd: &mut Command) -> Output {
    cmd.output().expect("run ricloud-webhook")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// The example receiver's binary, next to this one: `cargo test
/// --workspace` builds it (the example's own tests need it); a run of this
/// crate's tests alone needs `cargo build -p ricloud-webhook-examples` first.
fn receiver_binary() -> PathBuf {
    let cli = Path::new(env!("CARGO_BIN_EXE_ricloud-webhook"));
    let path = cli.with_file_name(format!("receiver{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: run `cargo build -p ricloud-webhook-examples` (or `cargo test --workspace`)",
        path.display()
    );
    path
}

/// A running process whose stdout lines are collected; killed when dropped.
struct Running {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    errors: Arc<Mutex<Vec<String>>>,
}

impl Running {
    fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let errors = Arc::new(Mutex::new(Vec::new()));
        for (pipe, sink) in [
            (
                Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
                Arc::clone(&lines),
            ),
            (
                Box::new(child.stderr.take().expect("stderr")),
                Arc::clone(&errors),
            ),
        ] {
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    sink.lock().expect("lock").push(line);
                }
            });
        }
        Self {
            child,
            lines,
            errors,
        }
    }

    /// The example receiver on `port` with `secret`, in `dir`.
    fn receiver(dir: &Path, port: u16, secret: &str, database: &str) -> Self {
        let mut cmd = Command::new(receiver_binary());
        cmd.current_dir(dir)
            .env_clear()
            .env("RICLOUD_WEBHOOK_SECRET", secret)
            .env("RICLOUD_WEBHOOK_ADDR", format!("127.0.0.1:{port}"))
            .env("RICLOUD_WEBHOOK_DATABASE_URL", database)
            .env("RICLOUD_WEBHOOK_ADMIN_ADDR", "off")
            .env("RUST_LOG", "info");
        let running = Self::spawn(cmd);
        running.wait_for_error_line("listening on", Duration::from_secs(30));
        running
    }

    fn wait_for_error_line(&self, needle: &str, within: Duration) {
        wait_for(&self.errors, needle, within);
    }

    fn stdout(&self) -> Vec<String> {
        self.lines.lock().expect("lock").clone()
    }

    /// How many handler runs the receiver printed for event `id`.
    fn handled(&self, id: &str) -> usize {
        self.stdout()
            .iter()
            .filter(|l| l.starts_with("handled ") && l.split(' ').nth(2) == Some(id))
            .count()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for(lines: &Mutex<Vec<String>>, needle: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while !lines
        .lock()
        .expect("lock")
        .iter()
        .any(|l| l.contains(needle))
    {
        assert!(
            Instant::now() < deadline,
            "no line with {needle:?} in {:?}",
            lines.lock().expect("lock")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn create_run_the_receiver_test_valid_and_with_the_wrong_secret_invalid() {
    let api = MockApi::start(TOKEN);
    let dir = TempDir::new("flow");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/webhooks");
    let secret_file = dir.path().join("secret");

    // 1. Create the config; the secret goes to a file only we can read.
    let created = output(
        cli(&api)
            .args(["config", "create", "--url", &url, "--secret-file"])
            .arg(&secret_file),
    );
    assert!(created.status.success(), "{}", text(&created.stderr));
    let line = text(&created.stdout);
    let id = line.split_whitespace().next().expect("id").to_owned();
    let secret = std::fs::read_to_string(&secret_file).expect("secret file");
    assert!(
        !line.contains(&secret),
        "the secret is not printed without --show-secret"
    );
    assert!(
        text(&created.stderr).contains("config test"),
        "a hint to test comes next"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&secret_file)
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // 2. Run the receiver with it. 3. Test: valid.
    let receiver = Running::receiver(dir.path(), port, &secret, "memory");
    let tested = output(cli(&api).args(["config", "test", &id, "--wait", "--timeout", "30"]));
    assert!(
        tested.status.success(),
        "{}{}",
        text(&tested.stdout),
        text(&tested.stderr)
    );
    assert_eq!(text(&tested.stdout).trim(), format!("{id} valid {url}"));
    assert!(
        receiver
            .stdout()
            .iter()
            .any(|l| l.starts_with("handled webhook_config.test ")),
        "{:?}",
        receiver.stdout()
    );

    // 4. `config list` and `config get` show it, without the secret
    // unless asked for.
    let listed = output(cli(&api).args(["config", "list", "--json"]));
    let configs: Value = serde_json::from_slice(&listed.stdout).expect("json");
    assert_eq!(configs[0]["id"], id.as_str());
    assert_eq!(configs[0]["state"], "valid");
    assert!(configs[0].get("secret").is_none());
    let shown = output(cli(&api).args(["config", "get", &id, "--json", "--show-secret"]));
    let config: Value = serde_json::from_slice(&shown.stdout).expect("json");
    assert_eq!(config["secret"], secret.as_str());

    // 5. A receiver with another secret: the test ends invalid, exit 1.
    let other_port = free_port();
    let other_url = format!("http://127.0.0.1:{other_port}/webhooks");
    let _wrong = Running::receiver(dir.path(), other_port, "not-the-config-secret", "memory");
    let updated = output(cli(&api).args(["config", "update", &id, "--url", &other_url]));
    assert!(updated.status.success(), "{}", text(&updated.stderr));
    let tested = output(cli(&api).args(["config", "test", &id, "--wait"]));
    assert_eq!(tested.status.code(), Some(1));
    assert_eq!(
        text(&tested.stdout).trim(),
        format!("{id} invalid {other_url}")
    );

    // 6. Delete: gone.
    let deleted = output(cli(&api).args(["config", "delete", &id]));
    assert!(deleted.status.success());
    assert!(api.configs().is_empty());
    let missing = output(cli(&api).args(["config", "get", &id]));
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        text(&missing.stderr).contains("404"),
        "{}",
        text(&missing.stderr)
    );
}

#[test]
fn a_wrong_token_is_reported_without_the_token() {
    let api = MockApi::start(TOKEN);
    let out = output(
        cli(&api)
            .args(["config", "list"])
            .env("RICLOUD_TOKEN", "wrong-token-value-123"),
    );
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("401") && err.contains("authentication-failed"),
        "{err}"
    );
    assert!(!err.contains("wrong-token-value-123"), "{err}");
    let none = output(
        cli(&api)
            .args(["config", "list"])
            .env_remove("RICLOUD_TOKEN"),
    );
    assert_eq!(none.status.code(), Some(2));
    assert!(text(&none.stderr).contains("RICLOUD_TOKEN"));
}

#[test]
fn events_list_pages_through_everything_and_filters() {
    let api = MockApi::start(TOKEN);
    api.add_events(1_500, "failed", Duration::from_secs(60));
    api.add_events(7, "pending", Duration::ZERO);
    let all = output(cli(&api).args(["events", "list", "--json"]));
    assert!(all.status.success(), "{}", text(&all.stderr));
    assert_eq!(text(&all.stdout).lines().count(), 1_507);
    let pending = output(cli(&api).args(["events", "list", "--state", "pending"]));
    // A header, then one line per event.
    assert_eq!(text(&pending.stdout).lines().count(), 8);
    let few = output(cli(&api).args(["events", "list", "--limit", "3", "--json"]));
    assert_eq!(text(&few.stdout).lines().count(), 3);
    let first: Value =
        serde_json::from_str(text(&few.stdout).lines().next().expect("line")).expect("json");
    let id = first["id"].as_str().expect("id");
    let one = output(cli(&api).args(["events", "get", id, "--json"]));
    let event: Value = serde_json::from_slice(&one.stdout).expect("json");
    assert_eq!(event, first);
}

/// The ids in the summary line `fetched F, delivered D, skipped S ..., failed X`.
fn counts(stdout: &str) -> (u64, u64, u64, u64) {
    let numbers: Vec<u64> = stdout
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    assert_eq!(numbers.len(), 4, "{stdout}");
    (numbers[0], numbers[1], numbers[2], numbers[3])
}

#[test]
fn catch_up_delivers_every_missed_event_once_to_a_running_receiver() {
    let api = MockApi::start(TOKEN);
    let old = api.add_events(40, "failed", Duration::from_secs(3 * 3_600));
    let missed = api.add_events(1_100, "failed", Duration::from_secs(120));
    let pending = api.add_events(25, "pending", Duration::from_secs(60));
    let delivered = api.add_events(30, "succeeded", Duration::from_secs(60));
    let dir = TempDir::new("catch-up-to");
    let port = free_port();
    let secret = "catch-up-receiver-secret";
    let database = format!("sqlite://{}", dir.path().join("inbox.db").display());
    let receiver = Running::receiver(dir.path(), port, secret, &database);
    let to = format!("http://127.0.0.1:{port}/webhooks");

    let run = || {
        output(
            cli(&api)
                .args(["catch-up", "--since", "1h", "--to", &to])
                .env("RICLOUD_WEBHOOK_SECRET", secret),
        )
    };
    let first = run();
    assert!(
        first.status.success(),
        "{}{}",
        text(&first.stdout),
        text(&first.stderr)
    );
    assert_eq!(counts(&text(&first.stdout)), (1_125, 1_125, 0, 0));
    let everyone: Vec<&String> = missed.iter().chain(&pending).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while everyone.iter().any(|id| receiver.handled(id) == 0) {
        assert!(Instant::now() < deadline, "not every event was handled");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(old
        .iter()
        .chain(&delivered)
        .all(|id| receiver.handled(id) == 0));

    // Again: the receiver has them all; its dedup makes no second row, so
    // nothing can run twice.
    let second = run();
    assert!(second.status.success());
    // Every row settles done, and there are no more rows than events.
    let settled = || {
        let stats = output(Command::new(env!("CARGO_BIN_EXE_ricloud-webhook")).args([
            "inbox",
            "stats",
            "--json",
            "--database-url",
            &database,
        ]));
        let stats: Value = serde_json::from_slice(&stats.stdout).expect("json");
        (
            stats["done"].as_u64(),
            stats["pending"].as_u64(),
            stats["running"].as_u64(),
        )
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while settled() != (Some(1_125), Some(0), Some(0)) {
        assert!(Instant::now() < deadline, "the inbox holds {:?}", settled());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(everyone.iter().all(|id| receiver.handled(id) == 1));

    // The wrong secret: every delivery is refused, exit 1.
    let refused = output(
        cli(&api)
            .args([
                "catch-up", "--since", "1h", "--state", "pending", "--to", &to,
            ])
            .env("RICLOUD_WEBHOOK_SECRET", "wrong-secret"),
    );
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(counts(&text(&refused.stdout)), (25, 0, 0, 25));
    assert!(
        text(&refused.stderr).contains("401"),
        "{}",
        text(&refused.stderr)
    );
}

#[test]
fn catch_up_into_the_inbox_skips_what_is_there_and_reports_an_api_that_stops() {
    let api = MockApi::start(TOKEN);
    api.add_events(2_300, "failed", Duration::from_secs(60));
    let dir = TempDir::new("catch-up-inbox");
    let database = format!("sqlite://{}", dir.path().join("inbox.db").display());
    let run = || {
        output(cli(&api).args([
            "catch-up",
            "--since",
            "2h",
            "--state",
            "failed",
            "--database-url",
            &database,
        ]))
    };

    // The receiver made the inbox (catch-up refuses a SQLite file that is
    // not there).
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(ricloud_webhook_inbox::Inbox::connect(&database))
        .expect("create the inbox");

    // The hourly limit runs out after the first page: what was fetched is
    // handed over, the rest reported, exit 1.
    api.rate_limit(1, 1_000, 3_600);
    let cut = run();
    assert_eq!(cut.status.code(), Some(1), "{}", text(&cut.stderr));
    assert_eq!(counts(&text(&cut.stdout)), (1_000, 1_000, 0, 0));
    assert!(
        text(&cut.stderr).contains("limit-exceeded"),
        "{}",
        text(&cut.stderr)
    );

    api.rate_limit(0, 0, 0);
    let rest = run();
    assert!(rest.status.success(), "{}", text(&rest.stderr));
    assert_eq!(counts(&text(&rest.stdout)), (2_300, 1_300, 1_000, 0));
    let again = run();
    assert_eq!(counts(&text(&again.stdout)), (2_300, 0, 2_300, 0));

    // Every event is in the inbox, once, pending for the workers.
    let stats = output(Command::new(env!("CARGO_BIN_EXE_ricloud-webhook")).args([
        "inbox",
        "stats",
        "--json",
        "--database-url",
        &database,
    ]));
    let stats: Value = serde_json::from_slice(&stats.stdout).expect("json");
    assert_eq!(stats["pending"], 2_300, "{stats}");
}

#[test]
fn catch_up_into_the_inbox_signs_with_the_secret_for_consumers_to_verify() {
    let api = MockApi::start(TOKEN);
    let mut fetched = api.add_events(12, "failed", Duration::from_secs(60));
    let dir = TempDir::new("catch-up-signed");
    let database = format!("sqlite://{}", dir.path().join("inbox.db").display());
    let secret = "catch-up-inbox-secret";
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let inbox = runtime
        .block_on(ricloud_webhook_inbox::Inbox::connect(&database))
        .expect("create the inbox");

    let run = output(
        cli(&api)
            .args([
                "catch-up",
                "--since",
                "1h",
                "--state",
                "failed",
                "--database-url",
                &database,
            ])
            .env("RICLOUD_WEBHOOK_SECRET", secret),
    );
    assert!(run.status.success(), "{}", text(&run.stderr));
    assert_eq!(counts(&text(&run.stdout)), (12, 12, 0, 0));

    // What the workers hand a handler (a forwarder, say) verifies with the
    // secret, at the time the row was received.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    let dispatcher =
        ricloud_webhook::Dispatcher::new().on("*", move |event: Arc<ricloud_webhook::Event>| {
            s.lock().expect("lock").push(event);
            async { Ok(()) }
        });
    let verifier = ricloud_webhook::Verifier::new(Secret::new(secret).expect("a secret"));
    let seen = runtime.block_on(async {
        let workers = inbox.workers(dispatcher).spawn();
        ricloud_webhook_testkit::eventually("every event handled", Duration::from_secs(30), || {
            let n = seen.lock().expect("lock").len();
            async move { n == 12 }
        })
        .await;
        workers.shutdown().await;
        seen.lock().expect("lock").clone()
    });
    let mut ids = Vec::new();
    for event in &seen {
        let header = event.signature().expect("signed by catch-up").to_string();
        let at = event.received_at().expect("received");
        let verified = verifier
            .verify_at(Some(header.as_bytes()), event.raw().clone(), at)
            .expect("the catch-up's signature verifies");
        assert_eq!(verified.body(), event.raw());
        ids.push(event.id.clone());
    }
    ids.sort();
    fetched.sort();
    assert_eq!(ids, fetched);
}

#[test]
fn listen_receives_until_sigterm_and_leaves_no_config_behind() {
    listen_receives_until("TERM");
}

#[test]
fn listen_receives_until_sighup_and_leaves_no_config_behind() {
    listen_receives_until("HUP");
}

fn listen_receives_until(signal: &str) {
    let api = MockApi::start(TOKEN);
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}/hooks");
    let listen = Running::spawn({
        let mut cmd = cli(&api);
        cmd.args([
            "listen",
            "--public-url",
            &public,
            "--port",
            &port.to_string(),
        ]);
        cmd
    });
    listen.wait_for_error_line("is valid", Duration::from_secs(30));
    let configs = api.configs();
    assert_eq!(configs.len(), 1);
    assert_eq!(configs[0]["state"], "valid");

    // An event signed with the config's secret is printed.
    let secret =
        Secret::new(configs[0]["secret"].as_str().expect("secret").to_owned()).expect("secret");
    let id = "2b8f5d7e-6f0a-4c55-9d1e-0c8a1f3b9e21";
    let body = format!(
        r#"{{"id": "{id}", "resource": "event", "type": "session", "action": "expired", "data": {{"id": "s1"}}, "state": "pending", "retries": 0}}"#
    );
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let header = sign(&secret, now, body.as_bytes());
    let status = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            reqwest::Client::new()
                .post(format!("{public}/{id}"))
                .header("content-type", "application/json")
                .header(SignatureHeader::NAME, header.to_string())
                .body(body.clone())
                .send()
                .await
                .map(|r| r.status().as_u16())
        })
        .expect("deliver");
    assert_eq!(status, 200);
    let config = configs[0]["id"].as_str().expect("an id").to_owned();
    wait_for(
        &listen.lines,
        &format!("received session.expired {id} config={config}"),
        Duration::from_secs(10),
    );
    // Its admin listener counts the deliveries: the API's test and this one.
    let admin = listen
        .errors
        .lock()
        .expect("lock")
        .iter()
        .find_map(|l| l.split("admin listener on ").nth(1).map(str::to_owned))
        .expect("an admin listener line");
    let admin = admin.split(": ").next().expect("a URL").to_owned();
    let metrics = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            reqwest::get(format!("{admin}/metrics"))
                .await
                .expect("scrape")
                .text()
                .await
                .expect("text")
        });
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("ricloud_webhook_deliveries_total{")
                && l.contains("reason=\"ok\"")
                && l.ends_with(" 2")),
        "{metrics}"
    );

    // The signal: the config is deleted, the exit clean.
    let mut listen = listen;
    let killed = Command::new("kill")
        .args([&format!("-{signal}"), &listen.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let exit = listen.child.wait().expect("wait");
    assert!(
        exit.success(),
        "{exit}: {:?}",
        listen.errors.lock().expect("lock")
    );
    assert!(api.configs().is_empty(), "{:?}", api.configs());
}

#[test]
fn listen_deletes_its_config_when_the_receiver_cannot_be_validated() {
    let api = MockApi::start(TOKEN);
    let port = free_port();
    // The API is told a URL that does not reach this receiver.
    let elsewhere = format!("http://127.0.0.1:{}/webhooks", free_port());
    let out = output(cli(&api).args([
        "listen",
        "--public-url",
        &elsewhere,
        "--port",
        &port.to_string(),
        "--timeout",
        "20",
    ]));
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("invalid") && err.contains("deleted webhook config"),
        "{err}"
    );
    assert!(api.configs().is_empty(), "{:?}", api.configs());
}

/// Runs `cmd` and fails the test when it is still running after 60 s.
fn output_within_a_minute(cmd: &mut Command) -> Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ricloud-webhook");
    let pid = child.id();
    let (done, finished) = std::sync::mpsc::channel();
    // Its output is read as it comes, so a full pipe never stalls it.
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output().expect("output"));
    });
    finished
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("still running after 60 s: {cmd:?}")
        })
}

#[test]
fn every_listing_command_ends_with_an_error_against_paging_that_never_ends() {
    let api = MockApi::start(TOKEN);
    api.add_events(20, "failed", Duration::ZERO);
    for url in ["https://a.example/hooks", "https://b.example/hooks"] {
        assert!(output(cli(&api).args(["config", "create", "--url", url]))
            .status
            .success());
    }
    let catch_up_to = [
        "catch-up",
        "--since",
        "1h",
        "--to",
        "http://127.0.0.1:9/webhooks",
        "--secret",
        "s3cret",
    ];
    let commands: [&[&str]; 3] = [&["config", "list"], &["events", "list"], &catch_up_to];
    // The same page again and again: the cursor does not advance.
    api.break_paging(BrokenPaging::RepeatPage);
    for args in commands {
        let out = output_within_a_minute(cli(&api).args(args));
        let err = text(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(
            err.contains("paging is broken") && err.contains("does not advance"),
            "{args:?}: {err}"
        );
    }
    // New items on every page, without end: the page cap ends it.
    api.break_paging(BrokenPaging::NeverEnds);
    for args in commands {
        let out = output_within_a_minute(cli(&api).args(args).args(["--max-pages", "3"]));
        let err = text(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(err.contains("more than 3 pages"), "{args:?}: {err}");
    }
}

#[test]
fn catch_up_refuses_a_plain_http_api_off_loopback() {
    let api = MockApi::start(TOKEN);
    let out = output(cli(&api).args([
        "catch-up",
        "--since",
        "1h",
        "--api-url",
        "http://api.example.com",
        "--to",
        "http://127.0.0.1:9/webhooks",
        "--secret",
        "s3cret",
    ]));
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("https://") && err.contains("token in clear"),
        "{err}"
    );
    assert!(api.log().is_empty(), "nothing was asked of any API");
}

#[test]
fn catch_up_takes_the_database_from_the_environment_and_refuses_a_missing_file() {
    let api = MockApi::start(TOKEN);
    api.add_events(3, "failed", Duration::ZERO);
    let dir = TempDir::new("catch-up-env");
    let missing = dir.path().join("missing.db");
    let out = output(
        cli(&api)
            .env(
                "RICLOUD_WEBHOOK_DATABASE_URL",
                format!("sqlite://{}", missing.display()),
            )
            .args(["catch-up", "--since", "1h"]),
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("no SQLite inbox at"), "{err}");
    assert!(!missing.exists(), "an empty inbox was created");
}

#[test]
fn the_secret_file_replaces_a_symlink_instead_of_writing_through_it() {
    let api = MockApi::start(TOKEN);
    let dir = TempDir::new("secret-file");
    let target = dir.path().join("elsewhere");
    std::fs::write(&target, "keep me").expect("target");
    let link = dir.path().join("secret");
    std::os::unix::fs::symlink(&target, &link).expect("symlink");
    let out = output(
        cli(&api)
            .args([
                "config",
                "create",
                "--url",
                "https://a.example/hooks",
                "--secret-file",
            ])
            .arg(&link),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(std::fs::read_to_string(&target).expect("target"), "keep me");
    let meta = std::fs::symlink_metadata(&link).expect("secret file");
    assert!(meta.file_type().is_file(), "still a symlink");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let secret = std::fs::read_to_string(&link).expect("secret");
    assert_eq!(api.configs()[0]["secret"], secret.as_str());
    // No temporary file left beside it.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

/// The receivers' secret in the tests below.
const RECEIVER_SECRET: &str = "api-test-receiver-secret";

/// A self-signed certificate for `localhost` and 127.0.0.1 marked a CA, as
/// `openssl req -x509` makes one, and its key, written as PEM files in
/// `dir`: (certificate file, key file).
fn self_signed_ca_marked(dir: &Path) -> (PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).expect("certificate");
    let (cert_file, key_file) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_file, cert.pem()).expect("write the certificate");
    std::fs::write(&key_file, key.serialize_pem()).expect("write the key");
    (cert_file, key_file)
}

#[test]
fn send_test_trusts_the_receivers_own_self_signed_certificate_over_http1_and_http2() {
    let dir = TempDir::new("tls");
    let (cert, key) = self_signed_ca_marked(dir.path());
    let port = free_port();
    let mut cmd = Command::new(receiver_binary());
    cmd.current_dir(dir.path())
        .env_clear()
        .env("RICLOUD_WEBHOOK_SECRET", RECEIVER_SECRET)
        .env("RICLOUD_WEBHOOK_ADDR", format!("127.0.0.1:{port}"))
        .env("RICLOUD_WEBHOOK_DATABASE_URL", "memory")
        .env("RICLOUD_WEBHOOK_ADMIN_ADDR", "off")
        .env("RICLOUD_WEBHOOK_TLS_CERT", &cert)
        .env("RICLOUD_WEBHOOK_TLS_KEY", &key);
    let receiver = Running::spawn(cmd);
    receiver.wait_for_error_line("listening on https://", Duration::from_secs(30));
    let url = format!("https://127.0.0.1:{port}/webhooks");

    let send_test = |extra: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ricloud-webhook"));
        cmd.env_clear()
            .env("RICLOUD_WEBHOOK_SECRET", RECEIVER_SECRET)
            .args(["send-test", "--url", &url])
            .args(extra);
        output(&mut cmd)
    };
    let ca = cert.to_str().expect("a path");
    for http in ["1.1", "2"] {
        let out = send_test(&["--ca-cert", ca, "--http", http]);
        assert_eq!(
            text(&out.stdout),
            "valid\n",
            "HTTP/{http}: {}",
            text(&out.stderr)
        );
        assert!(out.status.success());
    }
    // Which version was spoken, as `send` shows it.
    for (http, line) in [("1.1", "HTTP/1.1 200 OK"), ("2", "HTTP/2.0 200 OK")] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ricloud-webhook"));
        cmd.env_clear()
            .env("RICLOUD_WEBHOOK_SECRET", RECEIVER_SECRET)
            .args([
                "send",
                "--url",
                &url,
                "--event",
                "task.succeeded",
                "--ca-cert",
                ca,
                "--http",
                http,
            ]);
        let out = output(&mut cmd);
        assert!(text(&out.stdout).starts_with(line), "{}", text(&out.stdout));
    }
    // Without the certificate: invalid, saying what to do.
    let out = send_test(&[]);
    let said = text(&out.stdout);
    assert!(said.starts_with("invalid: "), "{said}");
    assert!(said.contains("--ca-cert"), "{said}");
    // Another self-signed certificate is no substitute for the server's.
    let other = TempDir::new("tls-other");
    let (other_cert, _) = self_signed_ca_marked(other.path());
    let out = send_test(&["--ca-cert", other_cert.to_str().expect("a path")]);
    assert!(
        text(&out.stdout).starts_with("invalid: "),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn send_says_new_then_duplicate_and_send_test_names_a_wrong_secret() {
    let dir = TempDir::new("outcome");
    let port = free_port();
    let _receiver = Running::receiver(dir.path(), port, RECEIVER_SECRET, "memory");
    let url = format!("http://127.0.0.1:{port}/webhooks");
    let body = dir.path().join("body.json");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ricloud-webhook"));
    cmd.env_clear()
        .env("RICLOUD_WEBHOOK_SECRET", RECEIVER_SECRET)
        .args([
            "send",
            "--url",
            &url,
            "--event",
            "poll.completed",
            "--id",
            "7e1e4d6a-1c9b-4f61-8d2e-3f5a9b0c1d2e",
            "--repeat",
            "2",
            "--save-body",
            body.to_str().expect("a path"),
        ]);
    let out = output(&mut cmd);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    let outcomes: Vec<&str> = said
        .lines()
        .filter(|l| l.starts_with("outcome: "))
        .collect();
    assert_eq!(
        outcomes,
        ["outcome: ok (new)", "outcome: duplicate"],
        "{said}"
    );
    // The saved body is the event sent, with its id: sent again, a duplicate.
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&body).expect("the saved body")).expect("json");
    assert_eq!(saved["id"], "7e1e4d6a-1c9b-4f61-8d2e-3f5a9b0c1d2e");
    let mut again = Command::new(env!("CARGO_BIN_EXE_ricloud-webhook"));
    again
        .env_clear()
        .env("RICLOUD_WEBHOOK_SECRET", RECEIVER_SECRET)
        .args([
            "send",
            "--url",
            &url,
            "--body",
            body.to_str().expect("a path"),
        ]);
    assert!(text(&output(&mut again).stdout).contains("outcome: duplicate"));

    let mut wrong = Command::new(env!("CARGO_BIN_EXE_ricloud-webhook"));
    wrong
        .env_clear()
        .env("RICLOUD_WEBHOOK_SECRET", "not-the-secret")
        .args(["send-test", "--url", &url]);
    let said = text(&output(&mut wrong).stdout);
    assert!(said.starts_with("invalid: 401 Unauthorized"), "{said}");
    assert!(said.contains("secret"), "{said}");
}
