//! The receiver pipeline: each rule of the status table, deduplication,
//! concurrency, cancellation and shutdown.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use http::{HeaderMap, HeaderValue, Method, StatusCode};
use ricloud_webhook::{
    sign, Claim, Delivery, DeliveryStore, Dispatcher, Event, HandlerError, HeaderError,
    MemoryStore, Outcome, Reason, Receiver, StoreError, StoreFuture, VerifiedEvent, Verifier,
    VerifyError,
};
use tokio::sync::Notify;

use crate::{at, block_on, event_body, secret, NOW};

const ID: &str = "d921bf95-cc9f-4851-b6ab-9f1ab79db4df";

struct Req {
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Req {
    /// A correctly signed delivery of `body` with the secret "k" at `t`.
    fn signed(id: &str, body: Vec<u8>, t: u64) -> Self {
        let mut headers = HeaderMap::new();
        let header = sign(&secret("k"), t, &body).to_string();
        headers.insert(
            "Ricloud-Signature",
            HeaderValue::from_str(&header).expect("ascii"),
        );
        Self {
            method: Method::POST,
            path: format!("/webhooks/{id}"),
            headers,
            body,
        }
    }

    fn event(kind: &str, action: &str) -> Self {
        Self::signed(ID, event_body(ID, kind, action), NOW)
    }

    fn delivery(&self) -> Delivery<'_> {
        Delivery {
            method: &self.method,
            path: &self.path,
            headers: &self.headers,
            body: self.body.clone().into(),
        }
    }
}

/// A receiver for secret "k" whose handlers count calls per event.
fn counting(dispatcher: Dispatcher) -> (Receiver, Arc<AtomicUsize>) {
    counting_in(dispatcher, MemoryStore::new())
}

fn counting_in(dispatcher: Dispatcher, store: impl DeliveryStore) -> (Receiver, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&calls);
    let dispatcher = dispatcher.on("task.*", move |_: Arc<Event>| {
        c.fetch_add(1, Ordering::SeqCst);
        async { Ok(()) }
    });
    (
        Receiver::inline(Verifier::new(secret("k")), dispatcher, store),
        calls,
    )
}

fn receive(receiver: &Receiver, req: &Req) -> Outcome {
    block_on(receiver.receive_at(req.delivery(), at(NOW)))
}

#[test]
fn valid_event_is_handled() {
    let (receiver, calls) = counting(Dispatcher::new());
    let out = receive(&receiver, &Req::event("task", "succeeded"));
    assert_eq!(out.status(), StatusCode::OK);
    assert_eq!(out.reason(), &Reason::Handled { handlers: 1 });
    assert_eq!(out.event_id(), Some(ID));
    assert_eq!(out.slug().as_deref(), Some("task.succeeded"));
    assert_eq!(out.matched_secret(), Some(0));
    assert_eq!(out.body(), "OK");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // The outcome shares the parsed event, raw body included.
    let event = out.event().expect("the event");
    assert_eq!(
        (event.kind.as_str(), event.action.as_str()),
        ("task", "succeeded")
    );
    assert_eq!(&event.raw()[..], &Req::event("task", "succeeded").body[..]);
    assert!(Outcome::new(Reason::NotFound).event().is_none());
}

#[test]
fn redelivery_is_acknowledged_without_running_handlers() {
    let (receiver, calls) = counting(Dispatcher::new());
    let req = Req::event("task", "succeeded");
    assert_eq!(receive(&receiver, &req).status(), StatusCode::OK);
    // The API's retry carries a new signature time; same event id.
    let again = Req::signed(ID, req.body.clone(), NOW + 60);
    let out = receive(&receiver, &again);
    assert_eq!(out.status(), StatusCode::OK);
    assert_eq!(out.reason(), &Reason::AlreadyHandled);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn failed_event_stays_redeliverable() {
    let attempts = Arc::new(AtomicUsize::new(0));
    let a = Arc::clone(&attempts);
    let dispatcher = Dispatcher::new().on("task.succeeded", move |_: Arc<Event>| {
        let n = a.fetch_add(1, Ordering::SeqCst);
        async move {
            if n == 0 {
                Err(HandlerError::retry("first attempt fails"))
            } else {
                Ok(())
            }
        }
    });
    let receiver = Receiver::new(Verifier::new(secret("k")), dispatcher);
    let req = Req::event("task", "succeeded");
    let first = receive(&receiver, &req);
    assert_eq!(first.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(!first.body().contains("first attempt fails"));
    assert_eq!(receive(&receiver, &req).status(), StatusCode::OK);
    assert_eq!(receive(&receiver, &req).reason(), &Reason::AlreadyHandled);
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
}

#[test]
fn panicking_handler_is_500_and_redeliverable() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&calls);
    let dispatcher = Dispatcher::new().on("task.succeeded", move |_: Arc<Event>| {
        let n = c.fetch_add(1, Ordering::SeqCst);
        async move {
            assert!(n > 0, "handler bug on first try");
            Ok(())
        }
    });
    let receiver = Receiver::new(Verifier::new(secret("k")), dispatcher);
    let req = Req::event("task", "succeeded");
    let out = receive(&receiver, &req);
    assert_eq!(out.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(matches!(out.reason(), Reason::HandlerPanicked { .. }));
    assert_eq!(receive(&receiver, &req).status(), StatusCode::OK);
}

#[test]
fn acknowledged_failure_is_200_and_not_redelivered() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&calls);
    let dispatcher = Dispatcher::new().on("task.succeeded", move |_: Arc<Event>| {
        c.fetch_add(1, Ordering::SeqCst);
        async { Err(HandlerError::give_up("cannot ever handle this")) }
    });
    let receiver = Receiver::new(Verifier::new(secret("k")), dispatcher);
    let req = Req::event("task", "succeeded");
    assert_eq!(receive(&receiver, &req).status(), StatusCode::OK);
    assert_eq!(receive(&receiver, &req).reason(), &Reason::AlreadyHandled);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn unknown_slug_is_acknowledged() {
    let (receiver, calls) = counting(Dispatcher::new());
    let out = receive(&receiver, &Req::event("invoice", "paid"));
    assert_eq!(out.status(), StatusCode::OK);
    assert_eq!(out.reason(), &Reason::NoHandler);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[test]
fn webhook_config_test_passes_without_any_handler() {
    let receiver = Receiver::new(Verifier::new(secret("k")), Dispatcher::new());
    let out = receive(&receiver, &Req::event("webhook_config", "test"));
    assert_eq!(out.status(), StatusCode::OK);
    assert_eq!(out.slug().as_deref(), Some("webhook_config.test"));
}

#[test]
fn path_id_must_equal_body_id() {
    let (receiver, calls) = counting(Dispatcher::new());
    let body = event_body(ID, "task", "succeeded");
    let req = Req::signed("2abc5619-25ab-489b-967e-4d928a831817", body, NOW);
    let out = receive(&receiver, &req);
    assert_eq!(out.status(), StatusCode::BAD_REQUEST);
    assert_eq!(out.reason(), &Reason::PathMismatch);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    // A trailing slash after the right id is fine.
    let mut req = Req::event("task", "succeeded");
    req.path.push('/');
    assert_eq!(receive(&receiver, &req).status(), StatusCode::OK);
}

#[test]
fn verification_failures() {
    let (receiver, calls) = counting(Dispatcher::new());
    let body = event_body(ID, "task", "succeeded");

    let mut missing = Req::event("task", "succeeded");
    missing.headers.clear();
    let out = receive(&receiver, &missing);
    assert_eq!(out.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        out.reason(),
        &Reason::Unverified(VerifyError::MissingHeader)
    );

    let mut malformed = Req::event("task", "succeeded");
    malformed
        .headers
        .insert("ricloud-signature", HeaderValue::from_static("t=1,s=abc"));
    let out = receive(&receiver, &malformed);
    assert_eq!(out.status(), StatusCode::BAD_REQUEST);
    assert!(matches!(
        out.reason(),
        Reason::Unverified(VerifyError::MalformedHeader(_))
    ));

    let mut repeated = Req::event("task", "succeeded");
    let valid = repeated.headers["ricloud-signature"].clone();
    repeated.headers.append("ricloud-signature", valid);
    let out = receive(&receiver, &repeated);
    assert_eq!(out.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        out.reason(),
        &Reason::Unverified(VerifyError::MalformedHeader(HeaderError::Repeated))
    );

    let mut tampered = Req::event("task", "succeeded");
    tampered.body[10] ^= 1;
    assert_eq!(
        receive(&receiver, &tampered).status(),
        StatusCode::UNAUTHORIZED
    );

    let mut wrong_secret = Req::event("task", "succeeded");
    let forged = sign(&secret("guess"), NOW, &body).to_string();
    wrong_secret.headers.insert(
        "ricloud-signature",
        HeaderValue::from_str(&forged).expect("ascii"),
    );
    assert_eq!(
        receive(&receiver, &wrong_secret).reason(),
        &Reason::Unverified(VerifyError::SignatureMismatch)
    );

    let expired = Req::signed(ID, body.clone(), NOW - 601);
    assert!(matches!(
        receive(&receiver, &expired).reason(),
        Reason::Unverified(VerifyError::TimestampTooOld { .. })
    ));
    let future = Req::signed(ID, body, NOW + 301);
    let out = receive(&receiver, &future);
    assert_eq!(out.status(), StatusCode::UNAUTHORIZED);
    assert!(matches!(
        out.reason(),
        Reason::Unverified(VerifyError::TimestampTooFarAhead { .. })
    ));
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[test]
fn signed_body_that_is_not_an_event_is_400() {
    let (receiver, _) = counting(Dispatcher::new());
    for body in [&b"not json"[..], b"{}", b"[]", b""] {
        let out = receive(&receiver, &Req::signed(ID, body.to_vec(), NOW));
        assert_eq!(out.status(), StatusCode::BAD_REQUEST, "{body:?}");
        assert!(matches!(out.reason(), Reason::NotAnEvent(_)));
    }
}

#[test]
fn method_and_path_checks() {
    let (receiver, _) = counting(Dispatcher::new());
    let mut get = Req::event("task", "succeeded");
    get.method = Method::GET;
    assert_eq!(
        receive(&receiver, &get).status(),
        StatusCode::METHOD_NOT_ALLOWED
    );
    let mut no_id = Req::event("task", "succeeded");
    no_id.path = "/".into();
    assert_eq!(receive(&receiver, &no_id).status(), StatusCode::NOT_FOUND);
}

#[test]
fn rotation_is_reported() {
    let verifier = Verifier::new(secret("new")).previous_secret(secret("k"));
    let receiver = Receiver::new(verifier, Dispatcher::new());
    let out = receive(&receiver, &Req::event("task", "succeeded"));
    assert_eq!(out.status(), StatusCode::OK);
    assert_eq!(out.matched_secret(), Some(1));
}

#[test]
fn shutting_down_is_503() {
    let (receiver, calls) = counting(Dispatcher::new());
    receiver.begin_shutdown();
    let out = receive(&receiver, &Req::event("task", "succeeded"));
    assert_eq!(out.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(out.reason(), &Reason::ShuttingDown);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

/// A receiver whose task handler counts and then waits for `gate`.
fn gated(fail_first: bool) -> (Receiver, Arc<AtomicUsize>, Arc<Notify>) {
    gated_in(fail_first, MemoryStore::new())
}

fn gated_in(
    fail_first: bool,
    store: impl DeliveryStore,
) -> (Receiver, Arc<AtomicUsize>, Arc<Notify>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Notify::new());
    let (c, g) = (Arc::clone(&calls), Arc::clone(&gate));
    let dispatcher = Dispatcher::new().on("task.succeeded", move |_: Arc<Event>| {
        let n = c.fetch_add(1, Ordering::SeqCst);
        let g = Arc::clone(&g);
        async move {
            if n == 0 {
                g.notified().await;
                if fail_first {
                    return Err(HandlerError::retry("first delivery fails"));
                }
            }
            Ok(())
        }
    });
    (
        Receiver::inline(Verifier::new(secret("k")), dispatcher, store),
        calls,
        gate,
    )
}

#[test]
fn concurrent_duplicates_run_handlers_once() {
    let (receiver, calls, gate) = gated(false);
    let req = Req::event("task", "succeeded");
    let (a, b) = block_on(async {
        let first = receiver.receive_at(req.delivery(), at(NOW));
        let second = async {
            // Let the first delivery claim the event and block in its handler.
            tokio::task::yield_now().await;
            assert_eq!(calls.load(Ordering::SeqCst), 1);
            let out = receiver.receive_at(req.delivery(), at(NOW)).await;
            out
        };
        let release = async {
            tokio::task::yield_now().await;
            tokio::task::yield_now().await;
            gate.notify_one();
        };
        let (a, b, ()) = tokio::join!(first, second, release);
        (a, b)
    });
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(a.status(), StatusCode::OK);
    assert_eq!(b.status(), StatusCode::OK);
    assert_eq!(b.reason(), &Reason::AlreadyHandled);
}

#[test]
fn concurrent_duplicate_takes_over_when_the_first_fails() {
    let (receiver, calls, gate) = gated(true);
    let req = Req::event("task", "succeeded");
    let (a, b) = block_on(async {
        let first = receiver.receive_at(req.delivery(), at(NOW));
        let second = async {
            tokio::task::yield_now().await;
            receiver.receive_at(req.delivery(), at(NOW)).await
        };
        let release = async {
            tokio::task::yield_now().await;
            tokio::task::yield_now().await;
            gate.notify_one();
        };
        let (a, b, ()) = tokio::join!(first, second, release);
        (a, b)
    });
    assert_eq!(a.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(b.status(), StatusCode::OK);
    assert_eq!(b.reason(), &Reason::Handled { handlers: 1 });
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[test]
fn cancelled_delivery_releases_its_claim() {
    let (receiver, calls, _gate) = gated(false);
    let req = Req::event("task", "succeeded");
    block_on(async {
        // The handler never finishes: a timeout drops the delivery.
        let timed_out = tokio::time::timeout(
            std::time::Duration::from_millis(10),
            receiver.receive_at(req.delivery(), at(NOW)),
        )
        .await;
        assert!(timed_out.is_err());
    });
    let out = receive(&receiver, &req);
    assert_eq!(out.status(), StatusCode::OK);
    assert_eq!(out.reason(), &Reason::Handled { handlers: 1 });
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

/// A store that records the calls it gets, in front of a memory store, and
/// fails the calls it is told to.
#[derive(Default)]
struct Recording {
    inner: MemoryStore,
    log: std::sync::Mutex<Vec<String>>,
    fail_claims: std::sync::atomic::AtomicBool,
    fail_finishes: std::sync::atomic::AtomicBool,
}

impl Recording {
    fn note(&self, line: String) {
        self.log.lock().expect("lock").push(line);
    }
}

/// The recording store as the receiver owns it, shared with the test.
struct Rec(Arc<Recording>);

impl DeliveryStore for Rec {
    fn claim<'a>(&'a self, event: &'a VerifiedEvent, now: SystemTime) -> StoreFuture<'a, Claim> {
        self.0.note(format!("claim {}", event.event().id));
        if self.0.fail_claims.load(Ordering::SeqCst) {
            return Box::pin(async { Err(StoreError::unavailable("database is down")) });
        }
        self.0.inner.claim(event, now)
    }

    fn finish<'a>(
        &'a self,
        event_id: &'a str,
        handled: bool,
        now: SystemTime,
    ) -> StoreFuture<'a, ()> {
        self.0.note(format!("finish {event_id} {handled}"));
        if self.0.fail_finishes.load(Ordering::SeqCst) {
            self.0.inner.abandon(event_id);
            return Box::pin(async { Err(StoreError::unavailable("database is down")) });
        }
        self.0.inner.finish(event_id, handled, now)
    }

    fn abandon(&self, event_id: &str) {
        self.0.note(format!("abandon {event_id}"));
        self.0.inner.abandon(event_id);
    }
}

#[test]
fn custom_store_sees_claims_and_finishes() {
    let store = Arc::new(Recording::default());
    let (receiver, _) = counting_in(Dispatcher::new(), Rec(Arc::clone(&store)));
    let req = Req::event("task", "succeeded");
    receive(&receiver, &req);
    receive(&receiver, &req);
    // Unverified deliveries never reach the store.
    let mut forged = Req::event("task", "succeeded");
    forged.body[3] ^= 1;
    receive(&receiver, &forged);
    assert_eq!(
        *store.log.lock().expect("lock"),
        [
            format!("claim {ID}"),
            format!("finish {ID} true"),
            format!("claim {ID}")
        ]
    );
}

#[test]
fn a_store_that_fails_is_never_an_acknowledgement() {
    let store = Arc::new(Recording::default());
    let (receiver, calls) = counting_in(Dispatcher::new(), Rec(Arc::clone(&store)));
    let req = Req::event("task", "succeeded");

    // The claim fails: 503, no handler runs.
    store.fail_claims.store(true, Ordering::SeqCst);
    let out = receive(&receiver, &req);
    assert_eq!(out.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(out.reason(), &Reason::StoreUnavailable);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    store.fail_claims.store(false, Ordering::SeqCst);

    // The handlers ran but their outcome could not be recorded: 503, so
    // the API redelivers and the handlers run again.
    store.fail_finishes.store(true, Ordering::SeqCst);
    let out = receive(&receiver, &req);
    assert_eq!(out.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(!out.body().contains("database"), "{}", out.body());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    store.fail_finishes.store(false, Ordering::SeqCst);

    assert_eq!(receive(&receiver, &req).status(), StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(receive(&receiver, &req).reason(), &Reason::AlreadyHandled);
}

#[test]
fn a_full_store_answers_503_and_forgets_nothing_in_the_window() {
    let (receiver, calls) = counting_in(
        Dispatcher::new(),
        MemoryStore::with_bounds(1, std::time::Duration::from_secs(3600)),
    );
    let first = Req::event("task", "succeeded");
    assert_eq!(receive(&receiver, &first).status(), StatusCode::OK);
    let other_id = "2abc5619-25ab-489b-967e-4d928a831817";
    let second = Req::signed(other_id, event_body(other_id, "task", "created"), NOW);
    let out = receive(&receiver, &second);
    assert_eq!(out.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(out.reason(), &Reason::StoreFull);
    // The first event is still remembered: a replay is not handled again.
    assert_eq!(receive(&receiver, &first).reason(), &Reason::AlreadyHandled);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn a_cancelled_delivery_abandons_its_claim() {
    let store = Arc::new(Recording::default());
    let (receiver, _, _gate) = gated_in(false, Rec(Arc::clone(&store)));
    let req = Req::event("task", "succeeded");
    block_on(async {
        let timed_out = tokio::time::timeout(
            std::time::Duration::from_millis(10),
            receiver.receive_at(req.delivery(), at(NOW)),
        )
        .await;
        assert!(timed_out.is_err());
    });
    assert_eq!(
        *store.log.lock().expect("lock"),
        [format!("claim {ID}"), format!("abandon {ID}")]
    );
}

/// A queue in memory for the queued mode's tests: the ids committed, and a
/// switch that makes it fail.
#[derive(Default)]
struct TestQueue {
    committed: std::sync::Mutex<Vec<String>>,
    down: std::sync::atomic::AtomicBool,
}

struct Queue(Arc<TestQueue>);

impl ricloud_webhook::EventQueue for Queue {
    fn enqueue<'a>(
        &'a self,
        event: &'a ricloud_webhook::VerifiedEvent,
        _now: SystemTime,
    ) -> StoreFuture<'a, ricloud_webhook::Enqueued> {
        let result = if self.0.down.load(Ordering::SeqCst) {
            Err(StoreError::unavailable("database is down"))
        } else {
            let mut committed = self.0.committed.lock().expect("lock");
            let id = &event.event().id;
            if committed.contains(id) {
                Ok(ricloud_webhook::Enqueued::AlreadyQueued)
            } else {
                committed.push(id.clone());
                Ok(ricloud_webhook::Enqueued::New)
            }
        };
        Box::pin(std::future::ready(result))
    }
}

#[test]
fn queued_mode_answers_200_once_committed_and_never_runs_handlers_itself() {
    let queue = Arc::new(TestQueue::default());
    let receiver = Receiver::queued(Verifier::new(secret("k")), Queue(Arc::clone(&queue)));
    assert!(receiver.dispatcher().is_none());
    let req = Req::event("task", "succeeded");
    let out = receive(&receiver, &req);
    assert_eq!(out.status(), StatusCode::OK);
    assert_eq!(out.reason(), &Reason::Queued);
    // A redelivery finds it there: 200, no second copy.
    let again = Req::signed(ID, req.body.clone(), NOW + 60);
    assert_eq!(receive(&receiver, &again).reason(), &Reason::AlreadyQueued);
    assert_eq!(*queue.committed.lock().expect("lock"), [ID]);

    // Unverified deliveries never reach the queue.
    let mut forged = Req::event("task", "created");
    forged.body[5] ^= 1;
    assert_eq!(
        receive(&receiver, &forged).status(),
        StatusCode::UNAUTHORIZED
    );

    // A queue that cannot commit is never an acknowledgement.
    queue.down.store(true, Ordering::SeqCst);
    let other = "2abc5619-25ab-489b-967e-4d928a831817";
    let req = Req::signed(other, event_body(other, "task", "created"), NOW);
    let out = receive(&receiver, &req);
    assert_eq!(out.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(out.reason(), &Reason::StoreUnavailable);
    assert_eq!(queue.committed.lock().expect("lock").len(), 1);

    receiver.begin_shutdown();
    queue.down.store(false, Ordering::SeqCst);
    assert_eq!(receive(&receiver, &req).reason(), &Reason::ShuttingDown);
}

#[test]
fn a_stored_event_is_read_back_for_dispatch() {
    let body = event_body(ID, "task", "succeeded");
    let event = ricloud_webhook::StoredEvent::from_store(body.clone(), None).expect("an event");
    assert_eq!(event.event().id, ID);
    assert_eq!(&event.event().raw()[..], &body[..]);
    assert!(ricloud_webhook::StoredEvent::from_store(&b"{}"[..], None).is_err());
    // Without what the store recorded, it has no signature or received time.
    assert!(event.event().signature().is_none());
    assert!(event.event().received_at().is_none());
    let header = sign(&secret("k"), NOW, &body);
    let with = event.with_delivery(Some(header), Some(at(NOW + 1)));
    assert_eq!(with.event().signature(), Some(&header));
    assert_eq!(with.event().received_at(), Some(at(NOW + 1)));
}

#[test]
fn a_handler_sees_the_signature_header_it_was_verified_with_and_when() {
    let seen = Arc::new(std::sync::Mutex::new(None));
    let s = Arc::clone(&seen);
    let dispatcher = Dispatcher::new().on("*", move |event: Arc<Event>| {
        *s.lock().expect("lock") = Some((
            event.signature().map(ToString::to_string),
            event.received_at(),
        ));
        async { Ok(()) }
    });
    let receiver = Receiver::new(Verifier::new(secret("k")), dispatcher);
    let req = Req::event("task", "succeeded");
    let sent = req.headers["Ricloud-Signature"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let now = at(NOW + 3);
    let out = block_on(receiver.receive_at(req.delivery(), now));
    assert_eq!(out.status(), StatusCode::OK);
    assert_eq!(*seen.lock().expect("lock"), Some((Some(sent), Some(now))));
}

#[test]
fn several_configs_each_accept_their_own_secret_on_their_own_path_only() {
    use ricloud_webhook::Verifiers;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    let dispatcher = Dispatcher::new().on("*", move |event: Arc<Event>| {
        s.lock()
            .expect("lock")
            .push(event.config().map(str::to_owned));
        async { Ok(()) }
    });
    let verifiers = Verifiers::named()
        .config("a", Verifier::new(secret("secret-a")))
        .and_then(|v| v.config("b", Verifier::new(secret("secret-b"))))
        .expect("valid names");
    let receiver = Receiver::new(verifiers, dispatcher);
    let deliver = |path: &str, key: &str, id: &str| {
        let body = event_body(id, "task", "succeeded");
        let mut req = Req::signed(id, body.clone(), NOW);
        let header = sign(&secret(key), NOW, &body).to_string();
        req.headers.insert(
            "Ricloud-Signature",
            HeaderValue::from_str(&header).expect("ascii"),
        );
        req.path = format!("/webhooks/{path}/{id}");
        receive(&receiver, &req)
    };
    let id = |n: u32| format!("00000000-0000-4000-8000-{n:012}");

    let crossed = deliver("b", "secret-a", &id(1));
    assert_eq!(crossed.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(crossed.config(), Some("b"));
    assert_eq!(crossed.reason().label(), "bad_signature");
    let unknown = deliver("c", "secret-a", &id(2));
    assert_eq!(unknown.reason(), &Reason::UnknownConfig);
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);

    let a = deliver("a", "secret-a", &id(3));
    let b = deliver("b", "secret-b", &id(4));
    assert_eq!((a.status(), b.status()), (StatusCode::OK, StatusCode::OK));
    assert_eq!(a.event().and_then(|e| e.config()), Some("a"));
    assert_eq!(
        *seen.lock().expect("lock"),
        [Some("a".to_owned()), Some("b".to_owned())]
    );
}
