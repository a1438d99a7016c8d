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
//! It is an axum [`Router`] served by `axum::serve`. Its state is JSON
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

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, Request, State as Shared};
use axum::http::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use base64::Engine as _;
use ricloud_webhook::{sign, Secret, SignatureHeader};
use ricloud_webhook_api::transport::{Overflow, Transport};
use serde_json::{json, Map, Value};

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

#[derive(Clone)]
struct Api {
    state: Arc<Mutex<State>>,
    transport: Transport,
}

/// The API's routes, behind the token check, the refusals asked for, and
/// the request log.
fn router(api: Api) -> Router {
    Router::new()
        .route("/configs/webhook", get(list_configs).post(create_config))
        .route(
            "/configs/webhook/{id}",
            get(get_config).post(update_config).delete(delete_config),
        )
        .route("/configs/webhook/{id}/test", post(test_config))
        .route("/tasks/{id}", get(get_task))
        .route("/events", get(list_events))
        .route("/events/{id}", get(get_event))
        .route(
            "/organisation",
            get(get_organisation).post(set_default_config),
        )
        .fallback(|| async { not_found("route") })
        .layer(middleware::from_fn_with_state(api.clone(), gate))
        .with_state(api)
}

/// Checks the token, refuses as told, and logs what was answered.
async fn gate(Shared(api): Shared<Api>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or("").to_owned();
    let refused = refusal(&mut lock(&api.state), request.headers().get(AUTHORIZATION));
    let answer = match refused {
        Some(answer) => answer,
        None => next.run(request).await,
    };
    lock(&api.state).log.push(Logged {
        method,
        path,
        query,
        status: answer.status(),
    });
    answer
}

/// The answer to a request that is not let through: a wrong token, or a
/// refusal asked for with [`MockApi::rate_limit`] or [`MockApi::fail`].
fn refusal(state: &mut State, token: Option<&HeaderValue>) -> Option<Response> {
    let expected = format!("Token {}", state.token);
    if token.map(HeaderValue::as_bytes) != Some(expected.as_bytes()) {
        return Some(error(
            StatusCode::UNAUTHORIZED,
            "authentication-failed",
            "Invalid token.",
            json!({}),
        ));
    }
    match &mut state.refuse_after {
        Some(0) if state.refusals > 0 => {
            state.refusals -= 1;
            Some(match state.refusal {
                Some(Refusal::RateLimited { retry_after }) => {
                    let mut answer = error(
                        StatusCode::TOO_MANY_REQUESTS,
                        "limit-exceeded",
                        "Request limit exceeded.",
                        json!({}),
                    );
                    answer
                        .headers_mut()
                        .insert(RETRY_AFTER, HeaderValue::from(retry_after));
                    answer
                }
                Some(Refusal::Status(status)) => {
                    error(status, "server-error", "Try again later.", json!({}))
                }
                None => error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server-error",
                    "",
                    json!({}),
                ),
            })
        }
        Some(0) => {
            state.refuse_after = None;
            None
        }
        Some(n) => {
            *n -= 1;
            None
        }
        None => None,
    }
}

/// A request body as JSON: `Null` when empty, `None` when not JSON.
fn json_body(body: &[u8]) -> Option<Value> {
    if body.is_empty() {
        return Some(Value::Null);
    }
    serde_json::from_slice(body).ok()
}

async fn list_configs(Shared(api): Shared<Api>, RawQuery(query): RawQuery) -> Response {
    let query = parse_query(query.as_deref().unwrap_or(""));
    let state = lock(&api.state);
    let wanted = query.get("state").cloned();
    let items: Vec<Value> = state
        .configs
        .iter()
        .filter(|c| match &wanted {
            Some(s) => c["state"] == s.as_str(),
            None => c["state"] != "deactivated",
        })
        .cloned()
        .collect();
    list("/configs/webhook", items, &query, state.paging)
}

async fn create_config(Shared(api): Shared<Api>, body: Bytes) -> Response {
    let Some(body) = json_body(&body) else {
        return bad_body();
    };
    match body.get("url").and_then(Value::as_str) {
        Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
            let config = json!({
                "id": uuid::Uuid::new_v4().to_string(),
                "resource": "webhook_config",
                "organisation": 1,
                "url": url,
                "secret": new_secret(),
                "state": "new",
                "date_created": now(),
            });
            lock(&api.state).configs.insert(0, config.clone());
            api.start_test(&config);
            with_status(StatusCode::CREATED, &config)
        }
        _ => invalid("url", "A valid URL is required."),
    }
}

/// The config `id`'s index; `None` is answered [`no_config`].
fn config_index(state: &State, id: &str) -> Option<usize> {
    state.configs.iter().position(|c| c["id"] == id)
}

fn no_config() -> Response {
    not_found("webhook_config")
}

async fn get_config(Shared(api): Shared<Api>, Path(id): Path<String>) -> Response {
    let state = lock(&api.state);
    match config_index(&state, &id) {
        Some(index) => ok(&state.configs[index]),
        None => no_config(),
    }
}

async fn delete_config(Shared(api): Shared<Api>, Path(id): Path<String>) -> Response {
    let mut state = lock(&api.state);
    match config_index(&state, &id) {
        Some(index) => {
            state.configs.remove(index);
            Response::builder()
                .status(StatusCode::NO_CONTENT)
                .body(Body::empty())
                .unwrap_or_default()
        }
        None => no_config(),
    }
}

async fn update_config(Shared(api): Shared<Api>, Path(id): Path<String>, body: Bytes) -> Response {
    let Some(body) = json_body(&body) else {
        return bad_body();
    };
    let url = body.get("url").and_then(Value::as_str);
    let new_state = body.get("state").and_then(Value::as_str);
    let config = {
        let mut state = lock(&api.state);
        let Some(index) = config_index(&state, &id) else {
            return no_config();
        };
        if url.is_none() && new_state.is_none() {
            return invalid("url", "Give a url or a state.");
        }
        if let Some(url) = url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return invalid("url", "A valid URL is required.");
            }
            state.configs[index]["url"] = json!(url);
        }
        match new_state {
            Some("deactivated") => {
                state.configs[index]["state"] = json!("deactivated");
                return ok(&state.configs[index]);
            }
            Some("new") | None => state.configs[index]["state"] = json!("new"),
            Some(_) => return invalid("state", "The state can only be set to new or deactivated."),
        }
        state.configs[index].clone()
    };
    api.start_test(&config);
    ok(&config)
}

async fn test_config(Shared(api): Shared<Api>, Path(id): Path<String>) -> Response {
    let config = {
        let state = lock(&api.state);
        match config_index(&state, &id) {
            Some(index) => state.configs[index].clone(),
            None => return no_config(),
        }
    };
    if config["state"] == "deactivated" {
        return invalid("state", "A deactivated config cannot be tested.");
    }
    ok(&api.start_test(&config))
}

async fn get_task(Shared(api): Shared<Api>, Path(id): Path<String>) -> Response {
    match lock(&api.state).tasks.get(&id) {
        Some(task) => ok(task),
        None => not_found("task"),
    }
}

async fn list_events(Shared(api): Shared<Api>, RawQuery(query): RawQuery) -> Response {
    let query = parse_query(query.as_deref().unwrap_or(""));
    let state = lock(&api.state);
    let items: Vec<Value> = state
        .events
        .iter()
        .filter(|e| {
            ["type", "action", "state"]
                .iter()
                .all(|field| query.get(*field).is_none_or(|v| e[*field] == v.as_str()))
        })
        .cloned()
        .collect();
    list("/events", items, &query, state.paging)
}

async fn get_event(Shared(api): Shared<Api>, Path(id): Path<String>) -> Response {
    match lock(&api.state)
        .events
        .iter()
        .find(|e| e["id"] == id.as_str())
    {
        Some(event) => ok(event),
        None => not_found("event"),
    }
}

async fn get_organisation(Shared(api): Shared<Api>) -> Response {
    ok(&Value::Object(lock(&api.state).organisation.clone()))
}

async fn set_default_config(Shared(api): Shared<Api>, body: Bytes) -> Response {
    let Some(body) = json_body(&body) else {
        return bad_body();
    };
    let mut state = lock(&api.state);
    match body.get("webhook_config_default") {
        Some(id) if state.configs.iter().any(|c| c["id"] == *id) => {
            state
                .organisation
                .insert("webhook_config_default".into(), id.clone());
            ok(&Value::Object(state.organisation.clone()))
        }
        _ => invalid("webhook_config_default", "No such webhook config."),
    }
}

impl Api {
    /// Creates a `webhook_config.test` task and runs it: the test event is
    /// delivered to the config's URL, and the answer decides.
    fn start_test(&self, config: &Value) -> Value {
        let task_id = uuid::Uuid::new_v4().to_string();
        let task = json!({
            "id": task_id,
            "resource": "task",
            "organisation": 1,
            "type": "webhook_config.test",
            "state": "pending",
            "results": {"resource": "list", "data": [], "has_more": false, "total_count": 0, "url": format!("/results?task={task_id}")},
            "date_created": now(),
        });
        lock(&self.state)
            .tasks
            .insert(task_id.clone(), task.clone());
        let api = self.clone();
        let config = config.clone();
        tokio::spawn(async move {
            let delivered = api.deliver_test(&config).await;
            let mut state = lock(&api.state);
            if let Some(task) = state.tasks.get_mut(&task_id) {
                task["state"] = json!(if delivered.is_ok() {
                    "succeeded"
                } else {
                    "failed"
                });
                task["date_completed"] = json!(now());
                if let Err(reason) = &delivered {
                    task["error"] = json!(reason);
                }
            }
            if let Some(config) = state.configs.iter_mut().find(|c| c["id"] == config["id"]) {
                if config["state"] != "deactivated" {
                    config["state"] = json!(if delivered.is_ok() {
                        "valid"
                    } else {
                        "invalid"
                    });
                }
            }
        });
        task
    }

    async fn deliver_test(&self, config: &Value) -> Result<(), String> {
        let url = config["url"].as_str().unwrap_or_default();
        let secret = config["secret"].as_str().unwrap_or_default();
        let secret = Secret::new(secret.to_owned()).map_err(|e| e.to_string())?;
        let id = uuid::Uuid::new_v4().to_string();
        let mut data = config.clone();
        if let Some(data) = data.as_object_mut() {
            data.remove("secret");
        }
        let body = json!({
            "id": id,
            "resource": "event",
            "type": "webhook_config",
            "action": "test",
            "data": data,
            "state": "pending",
            "retries": 0,
            "date_created": now(),
        })
        .to_string();
        let unix = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let header = sign(&secret, unix, body.as_bytes());
        let target = reqwest::Url::parse(&format!("{}/{id}", url.trim_end_matches('/')))
            .map_err(|e| e.to_string())?;
        let request = self
            .transport
            .request(Method::POST, target)
            .header(CONTENT_TYPE, "application/json")
            .header(SignatureHeader::NAME, header.to_string())
            .body(body);
        let answer = self
            .transport
            .exchange(request, 64 * 1024, Overflow::Truncate)
            .await
            .map_err(|e| e.to_string())?;
        if answer.status.is_success() {
            Ok(())
        } else {
            Err(format!("the receiver answered {}", answer.status))
        }
    }
}

fn parse_query(query: &str) -> HashMap<String, String> {
    url_pairs(query).collect()
}

/// `a=1&b=x%20y` as decoded pairs.
fn url_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    reqwest::Url::parse(&format!("http://h/?{query}"))
        .map(|u| u.query_pairs().into_owned().collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
}

/// One page of `items` (newest first) as a list object, or a 400.
fn list(
    path: &str,
    items: Vec<Value>,
    query: &HashMap<String, String>,
    paging: Option<BrokenPaging>,
) -> Response {
    let limit = match query.get("limit").map(|l| l.parse::<usize>()) {
        None => 10,
        Some(Ok(n)) if (1..=1000).contains(&n) => n,
        Some(_) => return invalid("limit", "limit must be between 1 and 1000."),
    };
    let broken = |data: Vec<Value>| {
        ok(&json!({
            "resource": "list", "data": data, "has_more": true,
            "total_count": items.len(), "url": path,
        }))
    };
    match paging {
        Some(BrokenPaging::RepeatPage) => {
            return broken(items.iter().take(limit).cloned().collect());
        }
        Some(BrokenPaging::NeverEnds) => {
            let fresh = items.iter().take(1).cycle().take(limit).map(|item| {
                let mut item = item.clone();
                item["id"] = json!(uuid::Uuid::new_v4().to_string());
                item
            });
            return broken(fresh.collect());
        }
        None => {}
    }
    let position = |id: &String| items.iter().position(|item| item["id"] == id.as_str());
    let (start, end) = match (query.get("after_id"), query.get("before_id")) {
        (Some(after), _) => match position(after) {
            Some(i) => (i + 1, (i + 1 + limit).min(items.len())),
            None => return invalid("after_id", "No such resource."),
        },
        (None, Some(before)) => match position(before) {
            Some(i) => (i.saturating_sub(limit), i),
            None => return invalid("before_id", "No such resource."),
        },
        (None, None) => (0, limit.min(items.len())),
    };
    let has_more = end < items.len();
    ok(&json!({
        "resource": "list",
        "data": items[start..end],
        "has_more": has_more,
        "total_count": items.len(),
        "url": path,
    }))
}

fn new_secret() -> String {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).expect("randomness");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn ok(value: &Value) -> Response {
    with_status(StatusCode::OK, value)
}

fn with_status(status: StatusCode, value: &Value) -> Response {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
        .body(Body::from(value.to_string()))
        .unwrap_or_default()
}

fn error(status: StatusCode, code: &str, message: &str, params: Value) -> Response {
    with_status(
        status,
        &json!({"error": code, "message": message, "params": params}),
    )
}

fn invalid(param: &str, message: &str) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "invalid-parameter",
        message,
        json!({ param: message }),
    )
}

fn bad_body() -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "invalid-body",
        "The body is not valid JSON.",
        json!({}),
    )
}

fn not_found(what: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "not-found",
        &format!("No such {what}."),
        json!({}),
    )
}
