//! The stand-in's routes: the token check and the refusals asked for, the
//! handlers of each endpoint, the config test's delivery, and the list
//! objects' paging.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

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
use serde_json::{json, Value};

use crate::{lock, now, BrokenPaging, Logged, Refusal, State};

#[derive(Clone)]
pub(crate) struct Api {
    pub(crate) state: Arc<Mutex<State>>,
    pub(crate) transport: Transport,
}

/// The API's routes, behind the token check, the refusals asked for, and
/// the request log.
pub(crate) fn router(api: Api) -> Router {
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
/// refusal asked for with [`MockApi::rate_limit`](crate::MockApi::rate_limit) or [`MockApi::fail`](crate::MockApi::fail).
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
