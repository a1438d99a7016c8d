//! A local stand-in of the ricloud API, for tests: the only mock the
//! project uses, because the real API cannot be reached from its machines.
//!
//! It follows the API's documented shapes (`../shared/WIRE.md`, the
//! webhook config documentation): `Authorization: Token <token>` or 401;
//! list objects (`resource`, `data`, `has_more`, `total_count`, `url`)
//! paged by `limit` (default 10, at most 1,000) and the `after_id` /
//! `before_id` cursors, newest first; error bodies `{"error", "message",
//! "params"}`; webhook configs (create, get, list hiding `deactivated`
//! unless asked for, update of `url` or `state` to `new` or
//! `deactivated`, delete, test); tasks; events with the `type`, `action`
//! and `state` filters; the organisation's default config; 429 with
//! `Retry-After` when told to ([`MockApi::rate_limit`]).
//!
//! A config test really delivers: a `webhook_config.test` event signed
//! with the config's secret is POSTed to `<url>/<event id>` (through the
//! API crate's transport, which needs a rustls crypto provider:
//! [`MockApi::start`] installs ring's when the test has none),
//! and the config turns `valid` on a 2xx answer,
//! `invalid` otherwise, its task `succeeded` or `failed`.
//!
//! It is an axum [`Router`](axum::Router) served by `axum::serve`. Its state is JSON
//! values rather than the client's types, so a test can make it answer
//! what the client's types would refuse (broken paging, say).
//!
//! The API documents `date_created` as "a datetime filter" without its
//! syntax; the stand-in ignores date filters, as a server that reads
//! another syntax would, so clients must drop older events themselves.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use axum::http::{Method, StatusCode};
use ricloud_webhook_api::transport::Transport;
use serde_json::{json, Map, Value};

mod routes;

use routes::{router, Api};

/// A running stand-in. It stops when dropped.
#[derive(Debug)]
pub struct MockApi {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// One request the stand-in answered.
#[derive(Debug, Clone)]
pub struct Logged {
    /// The method.
    pub method: Method,
    /// The path.
    pub path: String,
    /// The query string, empty when there was none.
    pub query: String,
    /// The status answered.
    pub status: StatusCode,
}

#[derive(Debug, Clone, Copy)]
enum Refusal {
    RateLimited { retry_after: u64 },
    Status(StatusCode),
}

/// A paging fault of an API gone wrong, for [`MockApi::break_paging`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BrokenPaging {
    /// Every list request answers the first page again, `has_more: true`.
    RepeatPage,
    /// Every list request answers a page of new items (copies of the
    /// first, with fresh ids), `has_more: true`: a list that never ends.
    NeverEnds,
}

#[derive(Debug, Default)]
struct State {
    /// How lists page, when broken.
    paging: Option<BrokenPaging>,
    token: String,
    configs: Vec<Value>,
    tasks: HashMap<String, Value>,
    /// Newest first.
    events: Vec<Value>,
    organisation: Map<String, Value>,
    /// Requests to let through before refusals start.
    refuse_after: Option<usize>,
    /// Requests still to refuse.
    refusals: usize,
    /// How they are refused.
    refusal: Option<Refusal>,
    log: Vec<Logged>,
}

impl MockApi {
    /// Starts the stand-in on a loopback port, accepting `token`. It runs
    /// in a test process only, which it gives ring as its rustls crypto
    /// provider when the test has not installed one.
    ///
    /// # Panics
    /// When no port or thread can be had: a test cannot go on then.
    pub fn start(token: &str) -> Self {
        ricloud_webhook_testkit::install_tls_provider();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the stand-in API");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local address");
        let mut organisation = Map::new();
        organisation.insert("id".into(), json!(1));
        organisation.insert("resource".into(), json!("organisation"));
        organisation.insert("name".into(), json!("Test organisation"));
        organisation.insert("webhook_config_default".into(), Value::Null);
        let state = Arc::new(Mutex::new(State {
            token: token.to_owned(),
            organisation,
            ..State::default()
        }));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let shared = Arc::clone(&state);
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let api = Api {
                    state: shared,
                    transport: Transport::builder("ricloud-api-mock")
                        .timeout(Duration::from_secs(10))
                        .build()
                        .expect("the test process installs a TLS crypto provider"),
                };
                let _ = axum::serve(listener, router(api))
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await;
            });
        });
        Self {
            addr,
            state,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The base URL to give a client: `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Adds `count` `task.succeeded` events in delivery state `state`,
    /// created one second apart ending `age` ago (the last added is the
    /// newest), and returns their ids, oldest first.
    pub fn add_events(&self, count: usize, state: &str, age: Duration) -> Vec<String> {
        let newest = SystemTime::now() - age;
        let mut ids = Vec::with_capacity(count);
        let mut guard = self.state();
        for i in (0..count).rev() {
            let created = newest - Duration::from_secs(i as u64);
            let id = uuid::Uuid::new_v4().to_string();
            let task = uuid::Uuid::new_v4().to_string();
            let event = json!({
                "id": id,
                "resource": "event",
                "type": "task",
                "action": "succeeded",
                "data": {
                    "id": task,
                    "resource": "task",
                    "organisation": 1,
                    "type": "fetch_data",
                    "state": "succeeded",
                    "results": {"resource": "list", "data": [], "has_more": false, "total_count": 0, "url": format!("/results?task={task}")},
                    "date_created": iso(created),
                    "date_completed": iso(created),
                },
                "state": state,
                "retries": if state == "failed" { 5 } else { 0 },
                "date_created": iso(created),
            });
            guard.events.insert(0, event);
            ids.push(id);
        }
        ids
    }

    /// After `allowed` more requests, the next `times` are answered 429
    /// (`limit-exceeded`) with `Retry-After: <retry_after>`, as the API
    /// does past 10,000 requests an hour.
    pub fn rate_limit(&self, allowed: usize, times: usize, retry_after: u64) {
        self.refuse(allowed, times, Refusal::RateLimited { retry_after });
    }

    /// After `allowed` more requests, the next `times` are answered
    /// `status` (a 5xx, say) with an error body, without acting on them.
    pub fn fail(&self, allowed: usize, times: usize, status: StatusCode) {
        self.refuse(allowed, times, Refusal::Status(status));
    }

    fn refuse(&self, allowed: usize, times: usize, refusal: Refusal) {
        let mut state = self.state();
        state.refuse_after = Some(allowed);
        state.refusals = times;
        state.refusal = Some(refusal);
    }

    /// Lists page the broken way `how` from now on.
    pub fn break_paging(&self, how: BrokenPaging) {
        self.state().paging = Some(how);
    }

    /// Every config, deleted ones excluded, deactivated ones included.
    pub fn configs(&self) -> Vec<Value> {
        self.state().configs.clone()
    }

    /// The requests answered so far.
    pub fn log(&self) -> Vec<Logged> {
        self.state().log.clone()
    }
}

impl Drop for MockApi {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn iso(time: SystemTime) -> String {
    jiff::Timestamp::try_from(time).map_or_else(|_| String::new(), |t| format!("{t:.6}"))
}

fn now() -> String {
    iso(SystemTime::now())
}
