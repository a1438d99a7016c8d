//! The inbox console: see, search and replay stored events in a browser,
//! on an admin listener (feature `console`).
//!
//! Server-rendered HTML (maud: templates checked at compile time, every
//! interpolation escaped) with one small script for the live tail; nothing
//! is loaded from another origin and everything but the live tail works
//! with JavaScript off. Each action is an [`Inbox`] method the CLI also
//! has ([`Inbox::list`], [`Inbox::count`], [`Inbox::replay`],
//! [`Inbox::purge_done_before`]): the console only presents them.
//!
//! **Access.** The console can replay and delete events, so it wants a
//! token: `GET /console/login?token=<token>` (the link a receiver prints at
//! start-up) starts a session in an `HttpOnly`, `SameSite=Strict` cookie
//! (`Secure` when [`Console::secure_cookie`] says it is served over TLS).
//! Every other page and action without a session answers 401 with no
//! data; every form that changes something carries the session's CSRF
//! token, checked on the server. Pages are sent with a
//! `Content-Security-Policy` that allows scripts, styles and requests from
//! the console's own origin only, no framing, and no referrer.
//!
//! ```no_run
//! # async fn run(inbox: ricloud_webhook_inbox::Inbox) -> std::io::Result<()> {
//! use ricloud_webhook_inbox::console::Console;
//!
//! let console = Console::new(inbox, Console::random_token());
//! println!("open {}", console.login_path());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9464").await?;
//! axum::serve(listener, console.router()).await
//! # }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::time::{iso, parse_time};

use axum::extract::{Form, Path, Query, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup, DOCTYPE};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::{Cursor, Inbox, ListFilter, Replay, Row, RowState};

/// The session cookie's name.
const COOKIE: &str = "ricloud_console";
/// Rows per page.
const PAGE: u32 = 50;
/// Sessions kept at most; the oldest goes first.
const MAX_SESSIONS: usize = 64;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
    connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The console's routes over one [`Inbox`], under `/console`.
#[derive(Clone)]
pub struct Console {
    inbox: Inbox,
    token: String,
    secure_cookie: bool,
}

struct Shared {
    inbox: Inbox,
    token: String,
    secure_cookie: bool,
    /// Session id to its CSRF token, oldest first.
    sessions: Mutex<Vec<(String, String)>>,
}

impl Console {
    /// A console over `inbox` that admits holders of `token`.
    pub fn new(inbox: Inbox, token: impl Into<String>) -> Self {
        Self {
            inbox,
            token: token.into(),
            secure_cookie: false,
        }
    }

    /// Marks the session cookie `Secure`: for a console served over TLS.
    #[must_use]
    pub fn secure_cookie(mut self, secure: bool) -> Self {
        self.secure_cookie = secure;
        self
    }

    /// A random token of 32 hex digits, for a console without a configured
    /// one.
    pub fn random_token() -> String {
        random_hex(16)
    }

    /// The path of the login link, token included: print it once, to the
    /// operator only.
    pub fn login_path(&self) -> String {
        format!("/console/login?token={}", encode(&self.token))
    }

    /// The routes, to serve or to merge into an admin router.
    pub fn router(self) -> Router {
        let shared = Arc::new(Shared {
            inbox: self.inbox,
            token: self.token,
            secure_cookie: self.secure_cookie,
            sessions: Mutex::new(Vec::new()),
        });
        Router::new()
            .route("/console", get(list))
            .route("/console/", get(list))
            .route("/console/login", get(login))
            .route("/console/tail", get(tail))
            .route("/console/events/{id}", get(detail))
            .route("/console/events/{id}/replay", post(replay_one))
            .route("/console/replay", get(replay_preview).post(replay_matching))
            .route("/console/purge", post(purge))
            .route("/console/console.js", get(script))
            .route("/console/console.css", get(style))
            .with_state(shared)
    }
}

impl fmt::Debug for Console {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The token is left out.
        f.debug_struct("Console")
            .field("secure_cookie", &self.secure_cookie)
            .finish_non_exhaustive()
    }
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    // Without randomness there is no safe session: fail loudly.
    getrandom::fill(&mut buf).expect("the system's randomness");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

impl Shared {
    /// The session's CSRF token, when the request carries a live session.
    fn session(&self, headers: &HeaderMap) -> Option<String> {
        let id = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('='))?;
        let sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions
            .iter()
            .find(|(s, _)| bool::from(s.as_bytes().ct_eq(id.as_bytes())))
            .map(|(_, csrf)| csrf.clone())
    }

    fn new_session(&self) -> String {
        let (id, csrf) = (random_hex(32), random_hex(32));
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if sessions.len() >= MAX_SESSIONS {
            sessions.remove(0);
        }
        sessions.push((id.clone(), csrf));
        id
    }
}

/// A page, with the console's security headers.
fn page(status: StatusCode, title: &str, body: Markup) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (title) " · ricloud-webhook inbox" }
                link rel="stylesheet" href="/console/console.css";
            }
            body {
                header {
                    h1 { a href="/console" { "ricloud-webhook inbox" } }
                    span { (title) }
                }
                (body)
            }
        }
    };
    secured(status, "text/html; charset=utf-8", markup.into_string())
}

fn secured(status: StatusCode, kind: &'static str, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn unauthorized() -> Response {
    page(
        StatusCode::UNAUTHORIZED,
        "Log in",
        html! {
            p { "The console needs its token: open the login link the receiver printed at start-up (" code { "/console/login?token=…" } "), or set " code { "RICLOUD_WEBHOOK_CONSOLE_TOKEN" } "." }
        },
    )
}

fn failed(error: &crate::InboxError) -> Response {
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Inbox unavailable",
        html! { p.notice { "The inbox could not be read: " (error.to_string()) } },
    )
}

fn bad_request(what: &str) -> Response {
    page(
        StatusCode::BAD_REQUEST,
        "Bad request",
        html! { p.notice { (what) } },
    )
}

#[derive(Deserialize)]
struct LoginQuery {
    token: Option<String>,
}

async fn login(State(shared): State<Arc<Shared>>, Query(q): Query<LoginQuery>) -> Response {
    let given = q.token.unwrap_or_default();
    if given.is_empty() || !bool::from(given.as_bytes().ct_eq(shared.token.as_bytes())) {
        return unauthorized();
    }
    let id = shared.new_session();
    let secure = if shared.secure_cookie { "; Secure" } else { "" };
    let cookie = format!("{COOKIE}={id}; Path=/console; HttpOnly; SameSite=Strict{secure}");
    let mut response = Redirect::to("/console").into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// The listing's filters as they come in a query string.
#[derive(Deserialize, Default, Clone)]
struct Filters {
    #[serde(default)]
    state: String,
    #[serde(default)]
    slug: String,
    #[serde(default)]
    config: String,
    #[serde(default)]
    id: String,
    /// ISO 8601, or an age (`15m`, `2h`, `7d`).
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    after: String,
    #[serde(default)]
    newer: String,
}

impl Filters {
    fn to_filter(&self) -> Result<ListFilter, String> {
        let now = SystemTime::now();
        let mut filter = ListFilter::default().limit(PAGE);
        if !self.state.is_empty() {
            filter = filter.state(self.state.parse().map_err(|e| format!("{e}"))?);
        }
        if !self.slug.is_empty() {
            filter = filter.slug(self.slug.clone());
        }
        if !self.config.is_empty() {
            filter = filter.config(self.config.clone());
        }
        if !self.id.trim().is_empty() {
            filter = filter.event_id(self.id.trim().to_owned());
        }
        if !self.since.is_empty() {
            filter = filter.since(parse_time(&self.since, now).map_err(|e| e.to_string())?);
        }
        if !self.until.is_empty() {
            filter = filter.until(parse_time(&self.until, now).map_err(|e| e.to_string())?);
        }
        if !self.after.is_empty() {
            filter = filter.after(self.after.parse::<Cursor>().map_err(|e| e.to_string())?);
        }
        Ok(filter)
    }

    /// The query string of the filters (no cursor), for links and the tail.
    fn query(&self) -> String {
        let pairs = [
            ("state", &self.state),
            ("slug", &self.slug),
            ("config", &self.config),
            ("id", &self.id),
            ("since", &self.since),
            ("until", &self.until),
        ];
        pairs
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// What a query value or a path segment keeps as it is: RFC 3986's
/// unreserved characters.
const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes a query value or a path segment.
fn encode(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, UNRESERVED).to_string()
}

fn state_badge(state: RowState) -> Markup {
    html! { span class={"state state-" (state.as_str())} { (state.as_str()) } }
}

async fn list(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(filters): Query<Filters>,
) -> Response {
    let Some(csrf) = shared.session(&headers) else {
        return unauthorized();
    };
    let filter = match filters.to_filter() {
        Ok(filter) => filter,
        Err(e) => return bad_request(&e),
    };
    let (rows, stats, seen) = match tokio::try_join!(
        shared.inbox.list(&filter),
        shared.inbox.stats(),
        shared.inbox.seen()
    ) {
        Ok(found) => found,
        Err(e) => return failed(&e),
    };
    let (slugs, configs) = seen;
    let mut slugs: Vec<String> = slugs;
    for documented in ricloud_webhook::Event::DOCUMENTED_SLUGS {
        if !slugs.iter().any(|s| s == documented) {
            slugs.push(documented.to_owned());
        }
    }
    slugs.sort();
    let oldest = stats
        .oldest_pending
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .map(|d| format!("{} s", d.as_secs()));
    let query = filters.query();
    let next = (rows.len() == PAGE as usize)
        .then(|| rows.last().map(Cursor::after))
        .flatten();
    let newest = rows
        .first()
        .map(|r| Cursor::after(r).to_string())
        .unwrap_or_default();
    page(
        StatusCode::OK,
        "Events",
        html! {
            p.counts {
                span { "pending " b { (stats.pending) } }
                span { "running " b { (stats.running) } }
                span { "done " b { (stats.done) } }
                span { "dead " b { (stats.dead) } }
                span { "oldest pending: " b { (oldest.unwrap_or_else(|| "none".to_owned())) } }
            }
            form.filters method="get" action="/console" {
                label { "state"
                    select name="state" {
                        option value="" { "any" }
                        @for state in ["pending", "running", "done", "dead"] {
                            option value=(state) selected[filters.state == state] { (state) }
                        }
                    }
                }
                label { "slug"
                    select name="slug" {
                        option value="" { "any" }
                        @for slug in &slugs {
                            option value=(slug) selected[&filters.slug == slug] { (slug) }
                        }
                    }
                }
                @if !configs.is_empty() {
                    label { "config"
                        select name="config" {
                            option value="" { "any" }
                            @for config in &configs {
                                option value=(config) selected[&filters.config == config] { (config) }
                            }
                        }
                    }
                }
                label { "received since" input name="since" value=(filters.since) placeholder="2h or 2026-12-01T00:00:00Z"; }
                label { "until" input name="until" value=(filters.until) placeholder="ISO 8601 or age"; }
                label { "event id" input name="id" value=(filters.id) size="38"; }
                button type="submit" { "Filter" }
                a href="/console" { "Clear" }
            }
            div.actions {
                a href={"/console/replay?" (if query.is_empty() { "state=dead".to_owned() } else { query.clone() })} { "Replay these…" }
                button id="tail" type="button" { "Pause live tail" }
                span id="tail-status" { "live tail needs JavaScript" }
            }
            table id="events" data-query=(query) data-newest=(newest) {
                thead { tr { th { "received" } th { "event id" } th { "slug" } th { "state" } th { "attempts" } th { "last error" } } }
                tbody {
                    @for row in &rows { (row_line(row)) }
                }
            }
            @if rows.is_empty() { p { "No event matches." } }
            @if let Some(next) = next {
                p { a href={"/console?" (query) "&after=" (encode(&next.to_string()))} { "Older →" } }
            }
            form.filters method="post" action="/console/purge" {
                input type="hidden" name="csrf" value=(csrf);
                label { "delete done events finished before" input name="done_before" value="7d"; }
                button type="submit" { "Purge" }
            }
            script src="/console/console.js" {}
        },
    )
}

fn row_line(row: &Row) -> Markup {
    html! {
        tr data-id=(row.event_id) {
            td { (iso(row.received_at)) }
            td { a href={"/console/events/" (encode(&row.event_id))} { (row.event_id) } }
            td { (row.slug) }
            td { (state_badge(row.state)) }
            td { (row.attempts) }
            td.error { (row.last_error.as_deref().unwrap_or("")) }
        }
    }
}

/// The live tail: rows newer than `newer` (a cursor), as JSON.
async fn tail(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(filters): Query<Filters>,
) -> Response {
    let Some(_) = shared.session(&headers) else {
        return unauthorized();
    };
    let mut filter = match filters.to_filter() {
        Ok(filter) => filter,
        Err(e) => return bad_request(&e),
    };
    filter.after = None;
    let rows = match shared.inbox.list(&filter).await {
        Ok(rows) => rows,
        Err(e) => return failed(&e),
    };
    let newer: Option<Cursor> = filters.newer.parse().ok();
    let fresh: Vec<&Row> = rows
        .iter()
        .take_while(|r| newer.as_ref() != Some(&Cursor::after(r)))
        .filter(|r| {
            newer
                .as_ref()
                .is_none_or(|n| Cursor::after(r).received_ms >= n.received_ms)
        })
        .collect();
    let body = serde_json::json!({
        "newest": rows.first().map(|r| Cursor::after(r).to_string()),
        "events": fresh.iter().map(|r| serde_json::json!({
            "event_id": r.event_id,
            "slug": r.slug,
            "state": r.state.as_str(),
            "attempts": r.attempts,
            "received": iso(r.received_at),
            "last_error": r.last_error,
        })).collect::<Vec<_>>(),
    });
    secured(StatusCode::OK, "application/json", body.to_string())
}

async fn detail(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(notice): Query<HashMap<String, String>>,
) -> Response {
    let Some(csrf) = shared.session(&headers) else {
        return unauthorized();
    };
    let stored = match shared.inbox.get(&id).await {
        Ok(stored) => stored,
        Err(e) if e.is_not_found() => {
            return page(
                StatusCode::NOT_FOUND,
                "Not found",
                html! { p { "No event " code { (id) } " in the inbox." } },
            )
        }
        Err(e) => return failed(&e),
    };
    let row = &stored.row;
    let body = serde_json::from_slice::<serde_json::Value>(&stored.body)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| String::from_utf8_lossy(&stored.body).into_owned());
    let secret = match row.matched_secret {
        Some(0) => "current".to_owned(),
        Some(n) => format!("previous ({n})"),
        None => "none (fetched from the API)".to_owned(),
    };
    page(
        StatusCode::OK,
        &format!("Event {}", row.event_id),
        html! {
            @if let Some(done) = notice.get("done") { p.notice { (done) } }
            dl {
                dt { "event id" } dd { code { (row.event_id) } }
                dt { "slug" } dd { (row.slug) }
                dt { "state" } dd { (state_badge(row.state)) }
                dt { "attempts" } dd { (row.attempts) }
                @if let Some(config) = &row.config { dt { "config" } dd { (config) } }
                dt { "secret matched" } dd { (secret) }
                dt { "received" } dd { (iso(row.received_at)) }
                @if row.state == RowState::Pending { dt { "next run" } dd { (iso(row.run_at)) } }
                @if let Some(done) = row.done_at { dt { "done" } dd { (iso(done)) } }
                @if let (RowState::Running, Some(owner)) = (row.state, &row.lease_owner) {
                    dt { "leased to" } dd { (owner) @if let Some(until) = row.lease_expires { " until " (iso(until)) } }
                }
                dt { "last error" } dd.error id="last-error" { (row.last_error.as_deref().unwrap_or("none")) }
            }
            form method="post" action={"/console/events/" (encode(&row.event_id)) "/replay"} {
                input type="hidden" name="csrf" value=(csrf);
                button type="submit" id="replay" { "Replay this event" }
            }
            h2 { "Body" }
            pre id="body" { (body) }
        },
    )
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// The refusal of a state-changing request, unless it carries a session
/// and that session's CSRF token.
fn refusal(shared: &Shared, headers: &HeaderMap, given: &str) -> Option<Response> {
    let Some(csrf) = shared.session(headers) else {
        return Some(unauthorized());
    };
    if given.is_empty() || !bool::from(given.as_bytes().ct_eq(csrf.as_bytes())) {
        return Some(page(
            StatusCode::FORBIDDEN,
            "Refused",
            html! { p.notice { "The form's CSRF token is missing or wrong: reload the page and try again." } },
        ));
    }
    None
}

async fn replay_one(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some(refused) = refusal(&shared, &headers, &form.csrf) {
        return refused;
    }
    match shared.inbox.replay(&Replay::Ids(vec![id.clone()])).await {
        Ok(n) => {
            let said = if n == 1 {
                "Put back to pending: the workers run it again shortly.".to_owned()
            } else {
                "Not replayed: it is running right now, or gone.".to_owned()
            };
            Redirect::to(&format!(
                "/console/events/{}?done={}",
                encode(&id),
                encode(&said)
            ))
            .into_response()
        }
        Err(e) => failed(&e),
    }
}

/// Bulk replay, first step: how many events the filter selects (dead ones
/// when it selects nothing else), and a form to confirm.
async fn replay_preview(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(filters): Query<Filters>,
) -> Response {
    let Some(csrf) = shared.session(&headers) else {
        return unauthorized();
    };
    let mut filters = filters;
    if filters.query().is_empty() {
        filters.state = "dead".to_owned();
    }
    let filter = match filters.to_filter() {
        Ok(filter) => filter,
        Err(e) => return bad_request(&e),
    };
    let count = match shared.inbox.count(&filter).await {
        Ok(count) => count,
        Err(e) => return failed(&e),
    };
    page(
        StatusCode::OK,
        "Replay",
        html! {
            p id="replay-count" { (count) " event(s) match " code { (filters.query()) } "." }
            @if count > 0 {
                form method="post" action="/console/replay" {
                    input type="hidden" name="csrf" value=(csrf);
                    input type="hidden" name="filters" value=(filters.query());
                    button type="submit" id="confirm" { "Put these " (count) " back to pending" }
                }
            }
            p { a href={"/console?" (filters.query())} { "Back to the list" } }
        },
    )
}

#[derive(Deserialize)]
struct ReplayForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    filters: String,
}

async fn replay_matching(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Form(form): Form<ReplayForm>,
) -> Response {
    if let Some(refused) = refusal(&shared, &headers, &form.csrf) {
        return refused;
    }
    let uri = format!("/?{}", form.filters)
        .parse::<axum::http::Uri>()
        .unwrap_or_default();
    let Ok(Query(filters)) = Query::<Filters>::try_from_uri(&uri) else {
        return bad_request("the filters are not a query string");
    };
    if filters.query().is_empty() {
        return bad_request("a bulk replay needs a filter");
    }
    let filter = match filters.to_filter() {
        Ok(filter) => filter,
        Err(e) => return bad_request(&e),
    };
    match shared.inbox.replay(&Replay::Matching(filter)).await {
        Ok(n) => page(
            StatusCode::OK,
            "Replayed",
            html! {
                p.notice id="replayed" { "Put " (n) " event(s) back to pending (running ones are left alone)." }
                p { a href={"/console?" (filters.query())} { "Back to the list" } }
            },
        ),
        Err(e) => failed(&e),
    }
}

#[derive(Deserialize)]
struct PurgeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    done_before: String,
}

async fn purge(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Form(form): Form<PurgeForm>,
) -> Response {
    if let Some(refused) = refusal(&shared, &headers, &form.csrf) {
        return refused;
    }
    let before = match parse_time(&form.done_before, SystemTime::now()) {
        Ok(before) => before,
        Err(e) => return bad_request(&e.to_string()),
    };
    match shared.inbox.purge_done_before(before).await {
        Ok(n) => page(
            StatusCode::OK,
            "Purged",
            html! { p.notice { "Deleted " (n) " done event(s) finished before " (iso(before)) "." } },
        ),
        Err(e) => failed(&e),
    }
}

async fn script() -> Response {
    secured(
        StatusCode::OK,
        "text/javascript; charset=utf-8",
        include_str!("console/console.js").to_owned(),
    )
}

async fn style() -> Response {
    secured(
        StatusCode::OK,
        "text/css; charset=utf-8",
        include_str!("console/console.css").to_owned(),
    )
}
