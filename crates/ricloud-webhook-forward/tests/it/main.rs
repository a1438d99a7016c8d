//! The forwarder against real brokers: `nats-server -js` and
//! `redis-server` from Debian's packages, started by each test.

use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use ricloud_webhook::{Enqueued, EventQueue, Secret, VerifiedEvent, Verifier};
use ricloud_webhook_forward::nats::{JetStream, StreamSpec};
use ricloud_webhook_forward::redis::RedisStreams;
use ricloud_webhook_forward::{header, Forwarder};
use ricloud_webhook_testkit::brokers::{self, BrokerServer, Forwarded};
use ricloud_webhook_testkit::{event_body, eventually, verified_event};

fn id(n: usize) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

fn events(count: usize) -> Vec<VerifiedEvent> {
    let slugs = ["task.succeeded", "poll.completed", "session.expired"];
    (0..count)
        .map(|n| verified_event(event_body(&id(n), slugs[n % slugs.len()])))
        .collect()
}

/// Every event twice, concurrently (the API's retry racing the first
/// delivery): each answer is New or AlreadyQueued, and New exactly once.
async fn forward_twice(forwarder: &Forwarder, events: &[VerifiedEvent]) {
    let now = SystemTime::now();
    let answers = futures_util::future::join_all(
        events
            .iter()
            .chain(events)
            .map(|event| forwarder.enqueue(event, now)),
    )
    .await;
    let answers: Vec<Enqueued> = answers
        .into_iter()
        .map(|a| a.expect("acknowledged"))
        .collect();
    let (first, second) = answers.split_at(events.len());
    for (a, b) in first.iter().zip(second) {
        let mut pair = [*a, *b];
        pair.sort_by_key(|e| *e == Enqueued::New);
        assert_eq!(pair, [Enqueued::AlreadyQueued, Enqueued::New]);
    }
}

/// Each event once, with its verified bytes unchanged and headers that
/// verify again with the secret.
fn assert_each_once(forwarded: &[Forwarded], events: &[VerifiedEvent]) {
    assert_eq!(forwarded.len(), events.len(), "each event once");
    let verifier = Verifier::new(Secret::new("testkit-secret").expect("a secret"));
    for event in events {
        let event = event.event();
        let found: Vec<_> = forwarded
            .iter()
            .filter(|f| f.header(header::EVENT_ID) == event.id)
            .collect();
        assert_eq!(found.len(), 1, "{} once", event.id);
        let message = found[0];
        assert_eq!(message.body, event.raw().as_ref(), "the verified bytes");
        assert_eq!(message.header(header::SLUG), event.slug());
        let signature = event.signature().expect("verified");
        assert_eq!(message.header(header::SIGNATURE), signature.to_string());
        assert_eq!(
            message.header(header::SIGNATURE_TIMESTAMP),
            signature.timestamp().to_string()
        );
        let received = event.received_at().expect("received");
        let millis = received
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("after 1970")
            .as_millis();
        assert_eq!(message.header(header::RECEIVED_AT), millis.to_string());
        // A consumer verifies again with the secret, as a receiver does.
        verifier
            .verify_at(
                Some(message.header(header::SIGNATURE).as_bytes()),
                message.body.clone(),
                received,
            )
            .expect("the forwarded signature verifies the forwarded bytes");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server and redis-server: scripts/test.sh installs them"]
async fn jetstream_stores_each_event_once_with_its_bytes_and_signature() {
    let nats = BrokerServer::nats();
    let jetstream = JetStream::connect(&nats.url())
        .await
        .expect("a client")
        .create_stream(StreamSpec::new("RICLOUD"));
    let forwarder = Forwarder::new(jetstream);
    let events = events(60);
    forward_twice(&forwarder, &events).await;
    let forwarded = brokers::read_jetstream(&nats.url(), "RICLOUD").await;
    assert_each_once(&forwarded, &events);
    for message in &forwarded {
        let slug = message.header(header::SLUG);
        assert_eq!(message.place, format!("ricloud.{slug}"), "subject per slug");
        assert_eq!(
            message.header("Nats-Msg-Id"),
            message.header(header::EVENT_ID)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server and redis-server: scripts/test.sh installs them"]
async fn redis_streams_store_each_event_once_with_its_bytes_and_signature() {
    let redis = BrokerServer::redis();
    let forwarder = Forwarder::new(RedisStreams::open(&redis.url()).expect("a client"));
    let events = events(60);
    forward_twice(&forwarder, &events).await;
    let forwarded = brokers::read_redis_streams(&redis.url(), &["ricloud:events"]).await;
    assert_each_once(&forwarded, &events);
    assert_eq!(
        brokers::redis_keys(&redis.url(), "ricloud:events:seen:*")
            .await
            .len(),
        60
    );

    // One stream per slug.
    let per_slug = Forwarder::new(
        RedisStreams::open(&redis.url())
            .expect("a client")
            .stream("bySlug")
            .per_slug(true),
    );
    forward_twice(&per_slug, &events[..6]).await;
    let slugs = brokers::read_redis_streams(
        &redis.url(),
        &[
            "bySlug:task.succeeded",
            "bySlug:poll.completed",
            "bySlug:session.expired",
        ],
    )
    .await;
    assert_each_once(&slugs, &events[..6]);
    for entry in &slugs {
        assert_eq!(
            entry.place,
            format!("bySlug:{}", entry.header(header::SLUG))
        );
    }
}

/// A broker that is down is never an acknowledgement; the client
/// reconnects by itself once it is back.
async fn down_then_back(mut server: BrokerServer, forwarder: Forwarder) {
    let events = events(3);
    let now = SystemTime::now();
    assert_eq!(
        forwarder.enqueue(&events[0], now).await.expect("up"),
        Enqueued::New
    );
    server.kill();
    let err = forwarder
        .enqueue(&events[1], now)
        .await
        .expect_err("not acknowledged while the broker is down");
    assert!(err.to_string().contains("unavailable"), "{err}");
    server.start_again();
    eventually(
        "the forwarder to publish again",
        Duration::from_secs(30),
        || async { forwarder.enqueue(&events[1], now).await.is_ok() },
    )
    .await;
    assert_eq!(
        forwarder.enqueue(&events[2], now).await.expect("up"),
        Enqueued::New
    );
    // Kept across the restart: the first is still a duplicate.
    assert_eq!(
        forwarder.enqueue(&events[0], now).await.expect("up"),
        Enqueued::AlreadyQueued
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server and redis-server: scripts/test.sh installs them"]
async fn jetstream_down_is_refused_and_recovers_by_itself() {
    let nats = BrokerServer::nats();
    let jetstream = JetStream::connect(&nats.url())
        .await
        .expect("a client")
        .create_stream(StreamSpec::new("RICLOUD"));
    let forwarder = Forwarder::new(jetstream).timeout(Duration::from_secs(2));
    down_then_back(nats, forwarder).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server and redis-server: scripts/test.sh installs them"]
async fn redis_down_is_refused_and_recovers_by_itself() {
    let redis = BrokerServer::redis();
    let forwarder = Forwarder::new(RedisStreams::open(&redis.url()).expect("a client"))
        .timeout(Duration::from_secs(2));
    down_then_back(redis, forwarder).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server and redis-server: scripts/test.sh installs them"]
async fn a_missing_stream_is_refused_unless_the_forwarder_creates_it() {
    let nats = BrokerServer::nats();
    let plain = Forwarder::new(JetStream::connect(&nats.url()).await.expect("a client"))
        .timeout(Duration::from_secs(2));
    let event = &events(1)[0];
    assert!(plain.enqueue(event, SystemTime::now()).await.is_err());
    let creating = Forwarder::new(
        JetStream::connect(&nats.url())
            .await
            .expect("a client")
            .prefix("other")
            .create_stream(StreamSpec::new("OTHER").duplicate_window(Duration::from_secs(600))),
    );
    assert_eq!(
        creating
            .enqueue(event, SystemTime::now())
            .await
            .expect("created and published"),
        Enqueued::New
    );
    let forwarded = brokers::read_jetstream(&nats.url(), "OTHER").await;
    assert_eq!(forwarded.len(), 1);
    assert_eq!(forwarded[0].place, "other.task.succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server and redis-server: scripts/test.sh installs them"]
async fn a_stream_made_elsewhere_with_a_short_duplicate_window_is_warned_about() {
    let nats = BrokerServer::nats();
    let client = async_nats::connect(nats.url()).await.expect("a client");
    let context = async_nats::jetstream::new(client.clone());
    for (name, window) in [
        ("LONG", Duration::from_secs(2 * 86_400)),
        ("SHORT", Duration::ZERO),
    ] {
        context
            .create_stream(async_nats::jetstream::stream::Config {
                name: name.to_owned(),
                subjects: vec![format!("{}.>", name.to_lowercase())],
                // Zero is the server's default: 2 minutes.
                duplicate_window: window,
                ..Default::default()
            })
            .await
            .expect("a stream made elsewhere");
    }
    let logged = ricloud_webhook_testkit::LogCapture::start(tracing::Level::DEBUG);
    let event = &events(1)[0];

    let long = Forwarder::new(JetStream::new(client.clone()).prefix("long"));
    long.enqueue(event, SystemTime::now())
        .await
        .expect("published");
    eventually("the long window read", Duration::from_secs(10), || async {
        logged.text().contains("covers the API's retries")
    })
    .await;
    assert!(!logged.text().contains("WARN"), "{}", logged.text());

    let short = Forwarder::new(JetStream::new(client).prefix("short"));
    short
        .enqueue(event, SystemTime::now())
        .await
        .expect("published: the warning does not refuse");
    let warned = || {
        logged.text().lines().any(|line| {
            line.contains("WARN")
                && line.contains("stream=SHORT")
                && line.contains("duplicate_window_secs=120")
        })
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !warned() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no warning about the short window; the log:\n{}",
            logged.text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[path = "../../examples/consume_nats.rs"]
#[allow(dead_code, reason = "its main is the example's, not the test's")]
mod consume_nats;
#[path = "../../examples/consume_redis.rs"]
#[allow(dead_code, reason = "its main is the example's, not the test's")]
mod consume_redis;

/// The ids of the events the consumer examples handed over.
type Seen = Arc<Mutex<Vec<String>>>;

/// A handler for the consumer examples that records each event's id and
/// stops at the `count`th.
fn collect(count: usize) -> (Seen, impl FnMut(&ricloud_webhook::Event) -> ControlFlow<()>) {
    let seen = Seen::default();
    let sink = Arc::clone(&seen);
    let handle = move |event: &ricloud_webhook::Event| {
        let mut seen = sink.lock().expect("lock");
        seen.push(event.id.clone());
        if seen.len() == count {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    };
    (seen, handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server and redis-server: scripts/test.sh installs them"]
async fn the_consumer_examples_verify_what_was_forwarded_and_refuse_a_forgery() {
    let verifier = Verifier::new(Secret::new("testkit-secret").expect("a secret"));
    let events = events(3);
    let ids: Vec<String> = events.iter().map(|e| e.event().id.clone()).collect();
    let now = SystemTime::now();

    // NATS: a forged message between genuine ones, with a genuine
    // message's headers and another body.
    let nats = BrokerServer::nats();
    let forwarder = Forwarder::new(
        JetStream::connect(&nats.url())
            .await
            .expect("a client")
            .create_stream(StreamSpec::new("RICLOUD")),
    );
    forwarder.enqueue(&events[0], now).await.expect("forwarded");
    let genuine = &brokers::read_jetstream(&nats.url(), "RICLOUD").await[0];
    let client = async_nats::connect(nats.url()).await.expect("a client");
    let mut headers = async_nats::HeaderMap::new();
    for (name, value) in &genuine.headers {
        headers.insert(name.as_str(), value.as_str());
    }
    headers.insert("Nats-Msg-Id", "forged");
    let forged = String::from_utf8(genuine.body.clone())
        .expect("UTF-8")
        .replace("task", "poll");
    async_nats::jetstream::new(client)
        .publish_with_headers("ricloud.poll.succeeded", headers, forged.into())
        .await
        .expect("published")
        .await
        .expect("stored");
    for event in &events[1..] {
        forwarder.enqueue(event, now).await.expect("forwarded");
    }
    let (seen, handle) = collect(3);
    tokio::time::timeout(
        Duration::from_secs(30),
        consume_nats::consume(&nats.url(), &verifier, handle),
    )
    .await
    .expect("three events within 30 s")
    .expect("consumed");
    assert_eq!(*seen.lock().expect("lock"), ids);

    // Redis: the same, with an entry added by hand.
    let redis = BrokerServer::redis();
    let forwarder = Forwarder::new(RedisStreams::open(&redis.url()).expect("a client"));
    forwarder.enqueue(&events[0], now).await.expect("forwarded");
    let genuine = &brokers::read_redis_streams(&redis.url(), &["ricloud:events"]).await[0];
    let mut connection = ::redis::Client::open(redis.url())
        .expect("a URL")
        .get_multiplexed_async_connection()
        .await
        .expect("a connection");
    let mut add = ::redis::cmd("XADD");
    add.arg("ricloud:events").arg("*");
    for (name, value) in &genuine.headers {
        add.arg(name).arg(value);
    }
    let forged = String::from_utf8(genuine.body.clone())
        .expect("UTF-8")
        .replace("task", "poll");
    add.arg("body").arg(forged);
    let _: String = add.query_async(&mut connection).await.expect("XADD");
    for event in &events[1..] {
        forwarder.enqueue(event, now).await.expect("forwarded");
    }
    let (seen, handle) = collect(3);
    tokio::time::timeout(
        Duration::from_secs(30),
        consume_redis::consume(&redis.url(), &verifier, handle),
    )
    .await
    .expect("three events within 30 s")
    .expect("consumed");
    assert_eq!(*seen.lock().expect("lock"), ids);
}
