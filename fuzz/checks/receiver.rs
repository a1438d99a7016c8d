//! The `receiver` check: scenarios of deliveries through
//! [`Receiver::receive_at`], against a model of the documented pipeline.
//!
//! Shared by `fuzz/fuzz_targets/receiver.rs` and the corpus replay test of
//! the core crate; it uses only the core crate's public API, `http`,
//! `serde_json` and `arbitrary` (the input is decoded exactly as
//! libfuzzer-sys decodes a typed target, with `arbitrary_take_rest`).
//!
//! A scenario registers a few handlers (patterns, typed views, and how they
//! behave: succeed, ask for redelivery, acknowledge a failure, panic, before
//! or after yielding once) and then runs steps. Each step builds a correctly
//! signed delivery of a realistic event (ids from a small set, so duplicates
//! and redeliveries happen) and applies mutations: other path ids, trailing
//! slashes, missing, garbled or doubled headers, other secrets, body bit
//! flips and truncations, re-signing, timestamps in and out of the window,
//! other methods. A step may run two deliveries interleaved on one thread
//! (a redelivery racing the first), advance the clock past the
//! deduplication memory, or begin shutdown.
//!
//! For every delivery the check asserts: no panic escapes, the status is in
//! the documented table, a handler ran only if the delivery was correctly
//! signed (header equal to `sign(secret, t, body)` for the exact bytes, `t`
//! in `[now - 600, now + 300]`, path id equal to the body's `id`, `POST`),
//! the response body holds no secret and no expected signature, and the
//! status and the handlers run are the model's.

use std::collections::HashMap;
use std::future::Future;
use std::panic;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Once, PoisonError};
use std::task::{Context, Poll as TaskPoll, Waker};
use std::time::{Duration, UNIX_EPOCH};

use arbitrary::{Arbitrary, Unstructured};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use ricloud_webhook::{
    sign, Dispatcher, Event, HandlerError, HandlerResult, Outcome, Poll, Receiver, Secret, Session,
    SignatureHeader, Task, Verifier, WebhookConfig,
};

const SECRET: &str = "s3cr3t with spaces & ünïcode";
const PREVIOUS: &str = "EZVNcphl95WzskoobnuXh_28qCZG_blz";
const WRONG: &str = "nImrOk-vkjdfLCJQ4GFblOo-8Lw2DGmm";
const START: u64 = 1_709_815_072;
const MAX_AGE: u64 = 600;
const MAX_AHEAD: u64 = 300;
/// How long the default store remembers a handled event.
const DEDUP_SECS: u64 = 24 * 60 * 60;
const STATUSES: [u16; 7] = [200, 400, 401, 404, 405, 500, 503];

const IDS: [&str; 4] = [
    "2abc5619-25ab-489b-967e-4d928a831817",
    "d921bf95-cc9f-4851-b6ab-9f1ab79db4df",
    "6f1c2e0a-9b7d-4c3e-8f5a-1d2e3f4a5b6c",
    // The adapter never routes it, but the core reads `/webhooks/` as id
    // `webhooks` (last segment, one trailing slash tolerated).
    "webhooks",
];

const SLUGS: [(&str, &str); 9] = [
    ("task", "succeeded"),
    ("task", "failed"),
    ("task", "created"),
    ("poll", "completed"),
    ("poll", "created"),
    ("session", "expired"),
    ("webhook_config", "test"),
    ("invoice", "paid"),
    ("task", "test"),
];

const PATTERNS: [&str; 8] = [
    "*",
    "task.*",
    "task.succeeded",
    "poll.*",
    "poll.completed",
    "session.expired",
    "webhook_config.test",
    "invoice.*",
];

const TASK: &str = r#"{"id": "f3e4a8b2-5c6d-4e7f-8a9b-0c1d2e3f4a5b", "resource": "task", "organisation": 4954, "key": 7, "user": "u1", "type": "fetch.data", "target": "messages.sms", "state": "succeeded", "results": {"data": [{"id": "r1", "resource": "result", "task": "f3e4", "identifier": "messages.sms", "url": "https://files.example/r1", "checksum": "d41d8cd98f00b204e9800998ecf8427e", "size": 1234, "state": "available", "date_created": "2026-11-27T10:42:59Z"}], "has_more": false}, "error": null, "date_created": "2026-11-27T10:40:00Z"}"#;
const POLL: &str = r#"{"id": "p1", "resource": "poll", "organisation": 4954, "key": 7, "user": "u1", "source": "s1", "session": "x1", "tasks_pending": [], "tasks_processing": [], "tasks_succeeded": ["t1", "t2"], "tasks_failed": [], "tasks_suspended": [], "results": [], "errors": [], "state": "completed"}"#;
const SESSION: &str = r#"{"id": "x1", "resource": "session", "organisation": 4954, "user": "u1", "source": {"id": "s1", "type": "icloud.account"}, "state": "expired", "error": null, "date_created": "2026-11-27T10:00:00Z", "date_expired": "2026-11-27T11:00:00Z"}"#;
const CONFIG: &str = r#"{"id": "d13c513a-42f8-4da1-97b1-165f0971b7c4", "resource": "webhook_config", "organisation": 4954, "url": "https://receiver.example.com/webhooks", "state": "new", "date_created": "2026-11-27T10:42:59Z"}"#;
const OTHER: &str = r#"{"id": "inv1", "amount": 3, "currency": "GBP"}"#;

/// The panic payload of handlers that panic on purpose.
struct IntendedPanic;

fn quiet_intended_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        // libfuzzer-sys installs a hook that aborts on every panic, even one
        // that is caught later; let the handlers' own panics unwind quietly
        // to the dispatcher's `catch_unwind`, and keep it for the others.
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<IntendedPanic>().is_none() {
                previous(info);
            }
        }));
    });
}

#[derive(Arbitrary, Debug)]
struct Scenario {
    /// Also accept the previous secret (a rotation in progress).
    rotation: bool,
    routes: Vec<RouteSpec>,
    behaviours: Vec<Behaviour>,
    steps: Vec<Step>,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
struct RouteSpec {
    pattern: u8,
    view: View,
}

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq)]
enum View {
    Event,
    Task,
    Poll,
    Session,
    WebhookConfig,
}

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq)]
enum Behaviour {
    Succeed,
    Retry,
    Acknowledge,
    Panic,
    PanicBeforeFuture,
    YieldThenSucceed,
    YieldThenRetry,
    YieldThenPanic,
}

#[derive(Arbitrary, Debug)]
struct Step {
    /// 0..=231 one delivery, 232..=254 two interleaved, 255 begin shutdown.
    kind: u8,
    /// Seconds to advance the clock by first; 255 goes past the
    /// deduplication memory, 254 to exactly its end.
    advance: u8,
    first: DeliverySpec,
    second: DeliverySpec,
}

#[derive(Arbitrary, Debug)]
struct DeliverySpec {
    event: u8,
    slug: u8,
    data: DataShape,
    retries: u8,
    compact: bool,
    /// Writes the first character of the body's `id` as a `\u` escape.
    escape_id: bool,
    shift: Shift,
    signer: Signer,
    mutations: Vec<Mutation>,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum DataShape {
    /// The resource the slug is about.
    Fitting,
    /// Only an id.
    Minimal,
    /// A string: no typed view fits.
    Misfit,
    /// No `data` key.
    Missing,
    /// Another kind's resource.
    Swapped(u8),
    /// A typed view's id of the wrong JSON type.
    BadId,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Shift {
    Now,
    Inside(u16),
    TooOld(u32),
    TooFarAhead(u32),
    Edge(u8),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Signer {
    Current,
    Previous,
    Wrong,
}

#[derive(Arbitrary, Debug)]
enum Mutation {
    PathId(u8),
    TrailingSlash,
    Prefix(u8),
    MissingHeader,
    GarbleHeader { at: u8, byte: u8 },
    RawHeader(Vec<u8>),
    ExtraHeader { before: bool, value: u8 },
    FlipBody { at: u16, bit: u8 },
    TruncateBody(u16),
    AppendBody(Vec<u8>),
    ReplaceBody(Vec<u8>),
    Resign,
    Method(u8),
}

/// One delivery, built: what is sent.
struct Built {
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// What the handlers record and how they decide to behave.
#[derive(Default)]
struct Log {
    calls: Vec<(usize, String)>,
    attempts: HashMap<(usize, String), usize>,
}

struct Shared {
    behaviours: Vec<Behaviour>,
    log: Mutex<Log>,
}

impl Shared {
    /// Records a call of route `route` for event `id` and picks its behaviour.
    fn begin(&self, route: usize, id: &str) -> Behaviour {
        let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        log.calls.push((route, id.to_owned()));
        let attempt = log.attempts.entry((route, id.to_owned())).or_insert(0);
        let behaviour = pick(&self.behaviours, route, *attempt);
        *attempt += 1;
        drop(log);
        if behaviour == Behaviour::PanicBeforeFuture {
            panic::panic_any(IntendedPanic);
        }
        behaviour
    }

    fn take_calls(&self) -> Vec<(usize, String)> {
        let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        std::mem::take(&mut log.calls)
    }
}

fn pick(behaviours: &[Behaviour], route: usize, attempt: usize) -> Behaviour {
    if behaviours.is_empty() {
        return Behaviour::Succeed;
    }
    behaviours[(route + attempt) % behaviours.len()]
}

/// Pending once (waking itself), then ready.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> TaskPoll<()> {
        if self.0 {
            return TaskPoll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        TaskPoll::Pending
    }
}

async fn act(behaviour: Behaviour) -> HandlerResult {
    if matches!(
        behaviour,
        Behaviour::YieldThenSucceed | Behaviour::YieldThenRetry | Behaviour::YieldThenPanic
    ) {
        YieldOnce(false).await;
    }
    match behaviour {
        Behaviour::Succeed | Behaviour::YieldThenSucceed => Ok(()),
        Behaviour::Retry | Behaviour::YieldThenRetry => Err(HandlerError::retry("fuzz: retry")),
        Behaviour::Acknowledge => Err(HandlerError::give_up("fuzz: give up")),
        Behaviour::Panic | Behaviour::PanicBeforeFuture | Behaviour::YieldThenPanic => {
            panic::panic_any(IntendedPanic)
        }
    }
}

fn dispatcher(routes: &[RouteSpec], shared: &Arc<Shared>) -> Dispatcher {
    let mut dispatcher = Dispatcher::new();
    for (i, route) in routes.iter().enumerate() {
        let pattern = PATTERNS[usize::from(route.pattern) % PATTERNS.len()];
        let s = Arc::clone(shared);
        // Typed handlers take the event too, to record its id.
        dispatcher = match route.view {
            View::Event => dispatcher.on(pattern, move |e: Arc<Event>| act(s.begin(i, &e.id))),
            View::Task => dispatcher.on(pattern, move |(_, e): (Task, Arc<Event>)| {
                act(s.begin(i, &e.id))
            }),
            View::Poll => dispatcher.on(pattern, move |(_, e): (Poll, Arc<Event>)| {
                act(s.begin(i, &e.id))
            }),
            View::Session => dispatcher.on(pattern, move |(_, e): (Session, Arc<Event>)| {
                act(s.begin(i, &e.id))
            }),
            View::WebhookConfig => dispatcher
                .on(pattern, move |(_, e): (WebhookConfig, Arc<Event>)| {
                    act(s.begin(i, &e.id))
                }),
        };
    }
    dispatcher
}

/// Polls the futures in turn on this thread until all are ready.
///
/// The handlers yield at most once and nothing else waits on anything
/// outside the futures, so a few rounds suffice; more means a delivery
/// waits forever, which is a bug.
fn run_all<'a>(futures: Vec<Pin<Box<dyn Future<Output = Outcome> + 'a>>>) -> Vec<Outcome> {
    let mut cx = Context::from_waker(Waker::noop());
    let mut futures: Vec<_> = futures.into_iter().map(Some).collect();
    let mut outcomes: Vec<Option<Outcome>> = futures.iter().map(|_| None).collect();
    for _ in 0..64 {
        for (future, outcome) in futures.iter_mut().zip(outcomes.iter_mut()) {
            if let Some(f) = future {
                if let TaskPoll::Ready(o) = f.as_mut().poll(&mut cx) {
                    *outcome = Some(o);
                    *future = None;
                }
            }
        }
        if futures.iter().all(Option::is_none) {
            return outcomes.into_iter().flatten().collect();
        }
    }
    panic!("a delivery is still pending after 64 polls");
}

/// Runs one scenario; inputs that do not decode are skipped.
pub(crate) fn check(data: &[u8]) {
    quiet_intended_panics();
    let Ok(mut scenario) = Scenario::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    scenario.routes.truncate(4);
    scenario.behaviours.truncate(8);
    scenario.steps.truncate(16);
    let secrets = Secrets::new();
    let shared = Arc::new(Shared {
        behaviours: scenario.behaviours.clone(),
        log: Mutex::default(),
    });
    let mut verifier = Verifier::new(secrets.current.clone());
    if scenario.rotation {
        verifier = verifier.previous_secret(secrets.previous.clone());
    }
    let receiver = Receiver::new(verifier, dispatcher(&scenario.routes, &shared));
    let mut model = Model {
        rotation: scenario.rotation,
        routes: scenario.routes.clone(),
        behaviours: scenario.behaviours.clone(),
        handled: HashMap::new(),
        attempts: HashMap::new(),
        shutting_down: false,
    };
    let mut now = START;
    for step in &scenario.steps {
        now += match step.advance {
            255 => DEDUP_SECS + 1,
            254 => DEDUP_SECS,
            n => u64::from(n),
        };
        if step.kind == 255 {
            receiver.begin_shutdown();
            model.shutting_down = true;
            continue;
        }
        let specs: &[&DeliverySpec] = if step.kind >= 232 {
            &[&step.first, &step.second]
        } else {
            &[&step.first]
        };
        let built: Vec<Built> = specs.iter().map(|s| build(s, &secrets, now)).collect();
        // The model sees the deliveries one after the other: the first is
        // polled first and claims its event before the second can.
        let expected: Vec<Expected> = built
            .iter()
            .map(|b| model.expect(b, now, &secrets))
            .collect();
        let at = UNIX_EPOCH + Duration::from_secs(now);
        let futures = built
            .iter()
            .map(|b| {
                let delivery = ricloud_webhook::Delivery {
                    method: &b.method,
                    path: &b.path,
                    headers: &b.headers,
                    body: b.body.clone().into(),
                };
                Box::pin(receiver.receive_at(delivery, at))
                    as Pin<Box<dyn Future<Output = Outcome> + '_>>
            })
            .collect();
        let outcomes = run_all(futures);
        let mut calls = shared.take_calls();
        for (call_route, call_id) in &calls {
            assert!(
                expected
                    .iter()
                    .any(|e| e.correctly_signed_id.as_deref() == Some(call_id.as_str())),
                "route {call_route} ran for event {call_id} with no correctly signed delivery of it"
            );
        }
        for ((outcome, expected), b) in outcomes.iter().zip(&expected).zip(&built) {
            check_outcome(outcome, expected, b, &secrets);
        }
        let mut expected_calls: Vec<_> = expected.into_iter().flat_map(|e| e.calls).collect();
        calls.sort();
        expected_calls.sort();
        assert_eq!(calls, expected_calls, "handlers run differ from the model");
    }
}

fn check_outcome(outcome: &Outcome, expected: &Expected, built: &Built, s: &Secrets) {
    let status = outcome.status();
    assert!(
        STATUSES.contains(&status.as_u16()),
        "status {status} is not in the documented table"
    );
    assert_eq!(
        status,
        expected.status,
        "status differs from the model ({:?}; {} {})",
        outcome.reason(),
        built.method,
        built.path
    );
    let text = outcome.body();
    assert_eq!(status.is_success(), text == "OK");
    for secret in [SECRET, PREVIOUS, WRONG] {
        assert!(!text.contains(secret), "response body holds a secret");
    }
    if let Some(header) = built.headers.get(SignatureHeader::NAME) {
        if let Ok(parsed) = SignatureHeader::parse(header.as_bytes()) {
            let expected_sig = sign(&s.current, parsed.timestamp(), &built.body).to_string();
            let tag = &expected_sig[expected_sig.len() - 44..];
            assert!(
                !text.contains(tag),
                "response body holds the expected signature"
            );
        }
    }
    let _ = format!("{outcome:?}");
}

struct Secrets {
    current: Secret,
    previous: Secret,
    wrong: Secret,
}

impl Secrets {
    fn new() -> Self {
        let secret = |s: &str| Secret::new(s).expect("non-empty");
        Self {
            current: secret(SECRET),
            previous: secret(PREVIOUS),
            wrong: secret(WRONG),
        }
    }

    fn get(&self, signer: Signer) -> &Secret {
        match signer {
            Signer::Current => &self.current,
            Signer::Previous => &self.previous,
            Signer::Wrong => &self.wrong,
        }
    }
}

fn body(spec: &DeliverySpec) -> Vec<u8> {
    let id = IDS[usize::from(spec.event) % IDS.len()];
    let (kind, action) = SLUGS[usize::from(spec.slug) % SLUGS.len()];
    let resource = |kind: &str| match kind {
        "task" => TASK,
        "poll" => POLL,
        "session" => SESSION,
        "webhook_config" => CONFIG,
        _ => OTHER,
    };
    let data = match spec.data {
        DataShape::Fitting => Some(resource(kind).to_owned()),
        DataShape::Minimal => Some(r#"{"id": "m1"}"#.to_owned()),
        DataShape::Misfit => Some(r#""oops""#.to_owned()),
        DataShape::Missing => None,
        DataShape::Swapped(n) => Some(resource(SLUGS[usize::from(n) % SLUGS.len()].0).to_owned()),
        DataShape::BadId => Some(r#"{"id": 1.5, "state": "succeeded"}"#.to_owned()),
    };
    let id = if spec.escape_id {
        let mut chars = id.chars();
        let first = chars.next().map_or(0, u32::from);
        format!("\\u{first:04x}{}", chars.as_str())
    } else {
        id.to_owned()
    };
    let (sep, colon) = if spec.compact {
        (",", ":")
    } else {
        (", ", ": ")
    };
    let mut fields = vec![
        format!(r#""id"{colon}"{id}""#),
        format!(r#""resource"{colon}"event""#),
        format!(r#""type"{colon}"{kind}""#),
        format!(r#""action"{colon}"{action}""#),
    ];
    if let Some(data) = data {
        fields.push(format!(r#""data"{colon}{data}"#));
    }
    fields.extend([
        format!(r#""state"{colon}"pending""#),
        format!(r#""retries"{colon}{}"#, spec.retries % 6),
        format!(r#""date_created"{colon}"2026-11-27T10:43:00.123Z""#),
        format!(r#""date_delivered"{colon}null"#),
    ]);
    format!("{{{}}}", fields.join(sep)).into_bytes()
}

fn build(spec: &DeliverySpec, secrets: &Secrets, now: u64) -> Built {
    let mut body = body(spec);
    let t = match spec.shift {
        Shift::Now => now,
        Shift::Inside(n) => now - MAX_AGE + u64::from(n) % (MAX_AGE + MAX_AHEAD + 1),
        Shift::TooOld(n) => now.saturating_sub(MAX_AGE + 1 + u64::from(n)),
        Shift::TooFarAhead(n) => now + MAX_AHEAD + 1 + u64::from(n),
        Shift::Edge(n) => match n % 4 {
            0 => now - MAX_AGE,
            1 => now - MAX_AGE - 1,
            2 => now + MAX_AHEAD,
            _ => now + MAX_AHEAD + 1,
        },
    };
    let signer = secrets.get(spec.signer);
    let mut header: Option<Vec<u8>> = Some(sign(signer, t, &body).to_string().into_bytes());
    let mut extra: Option<(bool, Vec<u8>)> = None;
    let mut prefix = "/webhooks/";
    let mut path_id = IDS[usize::from(spec.event) % IDS.len()].to_owned();
    let mut trailing = false;
    let mut method = Method::POST;
    for mutation in spec.mutations.iter().take(4) {
        match mutation {
            Mutation::PathId(n) => {
                path_id = match n % 6 {
                    0..=3 => IDS[usize::from(n % 4)].to_owned(),
                    4 => String::new(),
                    _ => format!("{path_id}x"),
                }
            }
            Mutation::TrailingSlash => trailing = !trailing,
            Mutation::Prefix(n) => {
                prefix = ["/webhooks/", "/", "", "/a/b/", "/webhooks//"][usize::from(*n) % 5]
            }
            Mutation::MissingHeader => header = None,
            Mutation::GarbleHeader { at, byte } => {
                if let Some(h) = header.as_mut().filter(|h| !h.is_empty()) {
                    let i = usize::from(*at) % h.len();
                    h[i] = *byte;
                }
            }
            Mutation::RawHeader(bytes) => header = Some(bytes.clone()),
            Mutation::ExtraHeader { before, value } => {
                let value = match value % 3 {
                    0 => sign(&secrets.wrong, t, &body).to_string().into_bytes(),
                    1 => b"t=1,s=".to_vec(),
                    _ => sign(&secrets.current, t, &body).to_string().into_bytes(),
                };
                extra = Some((*before, value));
            }
            Mutation::FlipBody { at, bit } => {
                if !body.is_empty() {
                    let i = usize::from(*at) % body.len();
                    body[i] ^= 1 << (bit % 8);
                }
            }
            Mutation::TruncateBody(n) => body.truncate(usize::from(*n) % (body.len() + 1)),
            Mutation::AppendBody(bytes) => body.extend_from_slice(bytes),
            Mutation::ReplaceBody(bytes) => body.clone_from(bytes),
            Mutation::Resign => header = Some(sign(signer, t, &body).to_string().into_bytes()),
            Mutation::Method(n) => {
                method = match n % 8 {
                    0 => Method::GET,
                    1 => Method::PUT,
                    2 => Method::DELETE,
                    3 => Method::HEAD,
                    4 => Method::PATCH,
                    5 => Method::OPTIONS,
                    6 => Method::from_bytes(b"post").expect("a valid extension method"),
                    _ => Method::POST,
                }
            }
        }
    }
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    let value = |bytes: &[u8]| HeaderValue::from_bytes(bytes).ok();
    let extra = extra.and_then(|(before, v)| value(&v).map(|v| (before, v)));
    if let Some((true, v)) = &extra {
        headers.append(SignatureHeader::NAME, v.clone());
    }
    // A value `http` refuses (control bytes) cannot be sent: no header then.
    if let Some(v) = header.as_deref().and_then(value) {
        headers.append(SignatureHeader::NAME, v);
    }
    if let Some((false, v)) = extra {
        headers.append(SignatureHeader::NAME, v);
    }
    let path = format!("{prefix}{path_id}{}", if trailing { "/" } else { "" });
    Built {
        method,
        path,
        headers,
        body,
    }
}

/// What the model expects of one delivery.
struct Expected {
    status: StatusCode,
    /// The body's event id, when the delivery is correctly signed, in the
    /// window, on a path with that id, and a POST.
    correctly_signed_id: Option<String>,
    calls: Vec<(usize, String)>,
}

/// The documented pipeline, written from the crate docs' status table.
struct Model {
    rotation: bool,
    routes: Vec<RouteSpec>,
    behaviours: Vec<Behaviour>,
    /// Handled event ids and when.
    handled: HashMap<String, u64>,
    attempts: HashMap<(usize, String), usize>,
    shutting_down: bool,
}

/// The last non-empty path segment, one trailing slash tolerated.
fn path_id(path: &str) -> Option<&str> {
    let path = path.strip_suffix('/').unwrap_or(path);
    let (_, id) = path.rsplit_once('/')?;
    (!id.is_empty()).then_some(id)
}

impl Model {
    fn expect(&mut self, b: &Built, now: u64, s: &Secrets) -> Expected {
        let status = |status| Expected {
            status,
            correctly_signed_id: None,
            calls: Vec::new(),
        };
        if self.shutting_down {
            return status(StatusCode::SERVICE_UNAVAILABLE);
        }
        if b.method != Method::POST {
            return status(StatusCode::METHOD_NOT_ALLOWED);
        }
        let Some(path_id) = path_id(&b.path) else {
            return status(StatusCode::NOT_FOUND);
        };
        let mut values = b.headers.get_all(SignatureHeader::NAME).iter();
        let Some(header) = values.next() else {
            return status(StatusCode::UNAUTHORIZED);
        };
        if values.next().is_some() {
            // More than one signature header is malformed.
            return status(StatusCode::BAD_REQUEST);
        }
        let Ok(header) = SignatureHeader::parse(header.as_bytes()) else {
            return status(StatusCode::BAD_REQUEST);
        };
        let t = header.timestamp();
        let signed = header == sign(&s.current, t, &b.body)
            || (self.rotation && header == sign(&s.previous, t, &b.body));
        let in_window = now.saturating_sub(t) <= MAX_AGE && t.saturating_sub(now) <= MAX_AHEAD;
        if !signed || !in_window {
            return status(StatusCode::UNAUTHORIZED);
        }
        let Ok(event) = Event::from_json(b.body.clone()) else {
            return status(StatusCode::BAD_REQUEST);
        };
        if event.id != path_id {
            return status(StatusCode::BAD_REQUEST);
        }
        let mut expected = status(StatusCode::OK);
        expected.correctly_signed_id = Some(event.id.clone());
        if let Some(&at) = self.handled.get(&event.id) {
            if now - at <= DEDUP_SECS {
                return expected;
            }
            self.handled.remove(&event.id);
        }
        // Worst failure so far: 1 no handler, 2 acknowledged or view
        // mismatch (acknowledged by default), 3 retry, 4 panic; redelivery
        // is asked for from 3 up.
        let mut worst = 1;
        let slug = event.slug();
        for (i, route) in self.routes.iter().enumerate() {
            let pattern = PATTERNS[usize::from(route.pattern) % PATTERNS.len()];
            let matches = pattern == "*"
                || pattern == slug
                || pattern
                    .strip_suffix(".*")
                    .is_some_and(|kind| kind == event.kind);
            if !matches {
                continue;
            }
            let data = event.data_json();
            let fits = match route.view {
                View::Event => true,
                View::Task => serde_json::from_str::<Task>(data).is_ok(),
                View::Poll => serde_json::from_str::<Poll>(data).is_ok(),
                View::Session => serde_json::from_str::<Session>(data).is_ok(),
                View::WebhookConfig => serde_json::from_str::<WebhookConfig>(data).is_ok(),
            };
            if !fits {
                worst = worst.max(2);
                continue;
            }
            let attempt = self.attempts.entry((i, event.id.clone())).or_insert(0);
            let behaviour = pick(&self.behaviours, i, *attempt);
            *attempt += 1;
            expected.calls.push((i, event.id.clone()));
            worst = worst.max(match behaviour {
                Behaviour::Succeed | Behaviour::YieldThenSucceed => 0,
                Behaviour::Acknowledge => 2,
                Behaviour::Retry | Behaviour::YieldThenRetry => 3,
                Behaviour::Panic | Behaviour::PanicBeforeFuture | Behaviour::YieldThenPanic => 4,
            });
        }
        if worst <= 2 {
            self.handled.insert(event.id.clone(), now);
        } else {
            expected.status = StatusCode::INTERNAL_SERVER_ERROR;
        }
        expected
    }
}
