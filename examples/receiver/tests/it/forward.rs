//! Forwarding (`RICLOUD_WEBHOOK_FORWARD`) against real brokers:
//! `nats-server -js` and `redis-server` from Debian's packages, started by
//! each test on a loopback port. Every test runs once per broker.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ricloud_webhook::{Secret, Verifier};
use ricloud_webhook_forward::header;
use ricloud_webhook_inbox::Inbox;
use ricloud_webhook_testkit::brokers::{self, BrokerServer, Forwarded, Kind};

use crate::{event_body, eventually, id, seeded_rng, Api, Process, TempDir, SECRET};

const KINDS: [Kind; 2] = [Kind::Nats, Kind::Redis];
/// Deliveries in flight at once.
const SENDERS: usize = 12;

fn start(kind: Kind) -> BrokerServer {
    match kind {
        Kind::Nats => BrokerServer::nats(),
        Kind::Redis => BrokerServer::redis(),
    }
}

/// `RICLOUD_WEBHOOK_FORWARD` for `server`, publishes bounded to 1 s.
fn forward_url(server: &BrokerServer) -> String {
    format!("{}?timeout=1", server.url())
}

/// Everything forwarded so far.
async fn forwarded(kind: Kind, server: &BrokerServer) -> Vec<Forwarded> {
    match kind {
        Kind::Nats => brokers::read_jetstream(&server.url(), "RICLOUD").await,
        Kind::Redis => brokers::read_redis_streams(&server.url(), &["ricloud:events"]).await,
    }
}

/// How many times each event id is in the stream.
fn counts(messages: &[Forwarded]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for message in messages {
        *counts
            .entry(message.header(header::EVENT_ID).to_owned())
            .or_default() += 1;
    }
    counts
}

/// Each of `events` exactly once, nothing else, the bytes as sent, and a
/// signature that verifies them again with the secret.
fn assert_each_once(messages: &[Forwarded], bodies: &[Vec<u8>]) {
    let counts = counts(messages);
    let twice: Vec<_> = counts.iter().filter(|(_, &n)| n > 1).collect();
    assert!(twice.is_empty(), "in the stream more than once: {twice:?}");
    assert_eq!(messages.len(), bodies.len(), "each event once");
    let verifier = Verifier::new(Secret::new(SECRET).expect("a secret"));
    let by_id: HashMap<&str, &Forwarded> = messages
        .iter()
        .map(|m| (m.header(header::EVENT_ID), m))
        .collect();
    for (n, body) in bodies.iter().enumerate() {
        let message = by_id
            .get(id(n).as_str())
            .unwrap_or_else(|| panic!("{} is not in the stream", id(n)));
        assert_eq!(&message.body, body, "the verified bytes, unchanged");
        assert_eq!(message.header(header::SLUG), "task.succeeded");
        verifier
            .verify(
                Some(message.header(header::SIGNATURE).as_bytes()),
                message.body.clone(),
            )
            .expect("the forwarded signature verifies the forwarded bytes");
    }
}

/// The value of the forwarder's publish counter for `result`.
async fn publishes(receiver: &Process, result: &str) -> u64 {
    let admin = receiver.admin.as_deref().expect("an admin listener");
    let (status, text) = crate::ops::get(admin, "/metrics").await;
    assert_eq!(status, 200);
    text.lines()
        .find(|l| {
            l.starts_with("ricloud_webhook_forward_publishes_total{")
                && l.contains(&format!("result=\"{result}\""))
        })
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0, |v| v.parse().expect("a count"))
}

/// Delivers every event of `bodies` twice, from `SENDERS` tasks at once;
/// every answer must be 200.
async fn deliver_each_twice(api: &Api, base: &str, bodies: &Arc<Vec<Vec<u8>>>) {
    let next = Arc::new(AtomicUsize::new(0));
    let mut senders = Vec::new();
    for _ in 0..SENDERS {
        let (api, base, bodies, next) = (
            api.clone(),
            base.to_owned(),
            Arc::clone(bodies),
            Arc::clone(&next),
        );
        senders.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= 2 * bodies.len() {
                    break;
                }
                // Each event's second delivery right after its first,
                // often from another sender while the first is in flight.
                let n = i / 2;
                assert_eq!(
                    api.deliver(&base, &bodies[n]).await,
                    Some(200),
                    "{} acknowledged",
                    id(n)
                );
            }
        }));
    }
    for sender in senders {
        sender.await.expect("sender");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server and redis-server: scripts/test.sh installs them"]
async fn each_event_delivered_twice_under_load_is_in_the_stream_once_as_verified() {
    const EVENTS: usize = 300;
    let api = Api::new();
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new((0..EVENTS).map(|n| event_body(&id(n))).collect());
    for kind in KINDS {
        let server = start(kind);
        let dir = TempDir::new("forward");
        let url = forward_url(&server);
        let receiver = Process::start(dir.path(), &[("RICLOUD_WEBHOOK_FORWARD", &url)]);
        assert!(receiver
            .logged(&["forwarding: an event is answered 200 once the broker acknowledged it"]));
        deliver_each_twice(&api, &receiver.base(), &bodies).await;
        assert_each_once(&forwarded(kind, &server).await, &bodies);
        assert_eq!(publishes(&receiver, "new").await, EVENTS as u64, "{kind:?}");
        assert_eq!(
            publishes(&receiver, "duplicate").await,
            EVENTS as u64,
            "{kind:?}"
        );
        assert_eq!(publishes(&receiver, "failed").await, 0, "{kind:?}");
        receiver.terminate();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server and redis-server: scripts/test.sh installs them"]
async fn kill_9_under_load_loses_no_acknowledged_event_and_duplicates_none() {
    const EVENTS: usize = 400;
    const ROUNDS: usize = 10;
    let api = Api::new();
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new((0..EVENTS).map(|n| event_body(&id(n))).collect());
    let mut rng = seeded_rng();
    for kind in KINDS {
        let server = start(kind);
        let dir = TempDir::new("forward-crash");
        let url = forward_url(&server);
        let env = [("RICLOUD_WEBHOOK_FORWARD", url.as_str())];
        let acked: Arc<Mutex<HashSet<usize>>> = Arc::default();
        for round in 0..ROUNDS {
            let receiver = Process::start(dir.path(), &env);
            let stop = Arc::new(AtomicBool::new(false));
            let mut senders = Vec::new();
            for s in 0..SENDERS {
                let (api, bodies, acked, base, stop) = (
                    api.clone(),
                    Arc::clone(&bodies),
                    Arc::clone(&acked),
                    receiver.base(),
                    Arc::clone(&stop),
                );
                let mut n = (round * 7919 + s * 104_729) % EVENTS;
                senders.push(tokio::spawn(async move {
                    while !stop.load(Ordering::SeqCst) {
                        // Walks the events: redelivers some that earlier
                        // rounds sent, acknowledged or not.
                        n = (n + 37) % EVENTS;
                        if api.deliver(&base, &bodies[n]).await == Some(200) {
                            acked.lock().expect("lock").insert(n);
                        }
                    }
                }));
            }
            tokio::time::sleep(Duration::from_millis(100 + rng.u64(..400))).await;
            receiver.kill();
            stop.store(true, Ordering::SeqCst);
            for sender in senders {
                sender.await.expect("sender");
            }
            // Every acknowledged event is in the stream, none twice.
            let counts = counts(&forwarded(kind, &server).await);
            for n in acked.lock().expect("lock").iter() {
                assert!(
                    counts.contains_key(&id(*n)),
                    "{kind:?}: acknowledged {} lost",
                    id(*n)
                );
            }
            assert!(counts.values().all(|&c| c == 1), "{kind:?}: an event twice");
        }
        // Then everything is delivered until acknowledged: each once.
        let receiver = Process::start(dir.path(), &env);
        for (n, body) in bodies.iter().enumerate() {
            if !acked.lock().expect("lock").contains(&n) {
                assert_eq!(api.deliver(&receiver.base(), body).await, Some(200));
            }
        }
        assert_each_once(&forwarded(kind, &server).await, &bodies);
        let acked_in_rounds = acked.lock().expect("lock").len();
        eprintln!("{kind:?}: {ROUNDS} kill -9 under load, {acked_in_rounds} of {EVENTS} acknowledged before the last run; each in the stream once");
        receiver.terminate();
    }
}

/// Sends distinct events, each until acknowledged, from `SENDERS` tasks
/// until `stop`; records each 200's event and counts every other answer.
struct Load {
    acked: Arc<Mutex<HashSet<usize>>>,
    refused: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    senders: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(api: &Api, base: &str, bodies: &Arc<Vec<Vec<u8>>>) -> Self {
        let acked: Arc<Mutex<HashSet<usize>>> = Arc::default();
        let refused = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let next = Arc::new(AtomicUsize::new(0));
        let senders = (0..SENDERS)
            .map(|_| {
                let (api, base, bodies) = (api.clone(), base.to_owned(), Arc::clone(bodies));
                let (acked, refused, stop, next) = (
                    Arc::clone(&acked),
                    Arc::clone(&refused),
                    Arc::clone(&stop),
                    Arc::clone(&next),
                );
                tokio::spawn(async move {
                    'events: loop {
                        let n = next.fetch_add(1, Ordering::SeqCst);
                        if n >= bodies.len() {
                            break;
                        }
                        loop {
                            if stop.load(Ordering::SeqCst) {
                                break 'events;
                            }
                            if api.deliver(&base, &bodies[n]).await == Some(200) {
                                acked.lock().expect("lock").insert(n);
                                break;
                            }
                            refused.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                })
            })
            .collect();
        Self {
            acked,
            refused,
            stop,
            senders,
        }
    }

    fn acked(&self) -> usize {
        self.acked.lock().expect("lock").len()
    }

    async fn until_acked(&self, count: usize) {
        eventually(
            &format!("{count} acknowledged"),
            Duration::from_secs(60),
            || async { self.acked() >= count },
        )
        .await;
    }

    /// Stops, and gives back what was acknowledged and how many answers
    /// were not 200.
    async fn finish(self) -> (HashSet<usize>, usize) {
        self.stop.store(true, Ordering::SeqCst);
        for sender in self.senders {
            sender.await.expect("sender");
        }
        let acked = self.acked.lock().expect("lock").clone();
        (acked, self.refused.load(Ordering::SeqCst))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server and redis-server: scripts/test.sh installs them"]
async fn a_broker_stopped_mid_load_gets_503s_not_200s_and_the_receiver_recovers_by_itself() {
    const EVENTS: usize = 2_000;
    let api = Api::new();
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new((0..EVENTS).map(|n| event_body(&id(n))).collect());
    for kind in KINDS {
        let mut server = start(kind);
        let dir = TempDir::new("forward-outage");
        let url = forward_url(&server);
        let receiver = Process::start(dir.path(), &[("RICLOUD_WEBHOOK_FORWARD", &url)]);
        let admin = receiver.admin.clone().expect("an admin listener");
        assert_eq!(
            crate::ops::get(&admin, "/readyz").await,
            (200, "ready\n".to_owned())
        );
        let load = Load::start(&api, &receiver.base(), &bodies);
        load.until_acked(100).await;
        server.kill();
        let before = load.acked();
        // While it is down: answered 503 (with the adapter's Retry-After)
        // as a store that could not commit.
        let probe = api
            .sender
            .post_event(
                &receiver.base(),
                &api.secret,
                event_body("probe-while-down"),
            )
            .await
            .expect("an answer");
        assert_eq!(probe.status().as_u16(), 503, "{kind:?}");
        assert_eq!(probe.outcome(), Some("store_error"), "{kind:?}");
        // Down under load until the senders' deliveries are refused.
        eventually("deliveries refused", Duration::from_secs(20), || async {
            load.refused.load(Ordering::SeqCst) >= SENDERS
        })
        .await;
        let during = load.acked();
        assert!(
            during <= before + SENDERS,
            "{kind:?}: {} acknowledged after the broker was killed",
            during - before
        );
        // Not ready while the broker does not answer.
        eventually("/readyz answers 503", Duration::from_secs(20), || async {
            let (status, body) = crate::ops::get(&admin, "/readyz").await;
            status == 503 && body.contains("broker: ")
        })
        .await;
        server.start_again();
        // No restart of the receiver: it reconnects by itself.
        load.until_acked(before + 200).await;
        eventually(
            "/readyz answers 200 again",
            Duration::from_secs(30),
            || async { crate::ops::get(&admin, "/readyz").await.0 == 200 },
        )
        .await;
        let (acked, refused) = load.finish().await;
        assert!(
            refused > 0,
            "{kind:?}: some deliveries refused during the outage"
        );
        let counts = counts(&forwarded(kind, &server).await);
        for n in &acked {
            assert!(
                counts.contains_key(&id(*n)),
                "{kind:?}: {} answered 200 but not in the stream",
                id(*n)
            );
        }
        assert!(counts.values().all(|&c| c == 1), "{kind:?}: an event twice");
        // The probe may still reach the stream (a client that sends what
        // it buffered once it reconnects): it was answered 503, so the API
        // delivers it again and the stream's deduplication keeps one.
        assert!(receiver.logged(&["forward failed", "reason="]), "{kind:?}");
        eprintln!(
            "{kind:?}: broker killed mid-load: {} acknowledged, {refused} refused (503) and retried, each in the stream once",
            acked.len()
        );
        receiver.terminate();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server and redis-server: scripts/test.sh installs them"]
async fn inbox_first_acknowledges_through_a_broker_outage_and_drains_after_it() {
    const EVENTS: usize = 300;
    let api = Api::new();
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new((0..EVENTS).map(|n| event_body(&id(n))).collect());
    for kind in KINDS {
        let mut server = start(kind);
        let dir = TempDir::new("forward-inbox");
        let url = forward_url(&server);
        let database = dir.sqlite_url();
        let receiver = Process::start(
            dir.path(),
            &[
                ("RICLOUD_WEBHOOK_FORWARD", &url),
                ("RICLOUD_WEBHOOK_DATABASE_URL", &database),
                ("RICLOUD_WEBHOOK_RETRY_MAX_MS", "500"),
                ("RICLOUD_WEBHOOK_MODE", "queued"),
            ],
        );
        assert!(receiver.logged(&["forwarding, inbox first"]));
        // Half with the broker up, half with it down: every one 200.
        let (first, second) = bodies.split_at(EVENTS / 2);
        deliver_each_twice(&api, &receiver.base(), &Arc::new(first.to_vec())).await;
        server.kill();
        for body in second {
            assert_eq!(
                api.deliver(&receiver.base(), body).await,
                Some(200),
                "{kind:?}"
            );
        }
        let inbox = Inbox::connect(&database)
            .await
            .expect("the inbox, from outside");
        let stats = inbox.stats().await.expect("stats");
        assert!(
            stats.pending + stats.running > 0,
            "{kind:?}: a backlog while the broker is down"
        );
        assert_eq!(stats.dead, 0);
        // A publish fails and is retried, logged once, by the inbox's worker.
        eventually(
            "a failed publish to be retried",
            Duration::from_secs(30),
            || async {
                receiver.logged(&["handlers failed; the event will be retried", "reason="])
            },
        )
        .await;
        assert!(!receiver.logged(&["forward failed"]));
        server.start_again();
        eventually("the backlog to drain", Duration::from_secs(60), || async {
            inbox
                .stats()
                .await
                .is_ok_and(|s| s.done as usize == EVENTS && s.pending == 0 && s.running == 0)
        })
        .await;
        assert_each_once(&forwarded(kind, &server).await, &bodies);
        assert!(!receiver.logged(&["forward failed"]));
        eprintln!("{kind:?}: inbox first: {EVENTS} acknowledged through the outage, drained once each after it");
        receiver.terminate();
    }
}

/// Runs the receiver with `env` and expects it to refuse to start; what it
/// said on stderr.
fn refused(dir: &TempDir, env: &[(&str, &str)]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_receiver"))
        .current_dir(dir.path())
        .env("RICLOUD_WEBHOOK_SECRET", SECRET)
        .env("RICLOUD_WEBHOOK_ADMIN_ADDR", "off")
        .env("RICLOUD_WEBHOOK_ADDR", "127.0.0.1:0")
        .envs(env.iter().copied())
        .output()
        .expect("run the receiver");
    assert!(!out.status.success(), "started with {env:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn forwarding_settings_that_cannot_work_are_refused_at_start() {
    let dir = TempDir::new("forward-settings");
    let inline = refused(
        &dir,
        &[
            ("RICLOUD_WEBHOOK_FORWARD", "redis://127.0.0.1:1"),
            ("RICLOUD_WEBHOOK_MODE", "inline"),
        ],
    );
    assert!(inline.contains("events are queued"), "{inline}");
    let option = refused(
        &dir,
        &[("RICLOUD_WEBHOOK_FORWARD", "redis://127.0.0.1:1?streem=x")],
    );
    assert!(option.contains("unknown option \"streem\""), "{option}");
    let scheme = refused(&dir, &[("RICLOUD_WEBHOOK_FORWARD", "amqp://127.0.0.1")]);
    assert!(scheme.contains("expected nats:// or redis://"), "{scheme}");
}
