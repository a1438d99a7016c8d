//! The API's endpoints for webhook configs, tasks, events and the
//! organisation, and the paging of its lists.

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::time::Duration;

use reqwest::{Method, Url};
use ricloud_webhook::resources::{Id, TaskState, WebhookConfigState};
use ricloud_webhook::Task;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::client::{Client, Retry};
use crate::error::ApiError;
use crate::resources::{ApiEvent, ListPage, Organisation, WebhookConfigWithSecret};

/// The query parameter a `since` filter is sent as. The API documents
/// `date_created` as "a datetime filter" without its syntax, so this is
/// the one place to change; [`Client::events`] also drops older events
/// itself, so `since` holds whatever the server makes of it.
pub const SINCE_PARAM: &str = "date_created__gte";

/// The most a list page may hold (the API's maximum `limit`).
pub const MAX_PAGE: u32 = 1000;

/// How often a config test's progress is looked at.
const TEST_POLL: Duration = Duration::from_millis(500);

/// Filters of [`Client::webhook_configs`].
#[derive(Debug, Clone, Default)]
pub struct ConfigFilter {
    /// Only configs in this state. Without it the API leaves out
    /// `deactivated` ones.
    pub state: Option<String>,
}

impl ConfigFilter {
    /// Only configs in `state`.
    pub fn state(state: impl Into<String>) -> Self {
        Self {
            state: Some(state.into()),
        }
    }
}

/// Filters of [`Client::events`].
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Only events about this type of resource (`task`, `poll`, ...).
    pub kind: Option<String>,
    /// Only events of this action (`succeeded`, ...).
    pub action: Option<String>,
    /// Only events in this delivery state (`failed`, `pending`, ...).
    pub state: Option<String>,
    /// Only events created at or after this time.
    pub since: Option<jiff::Timestamp>,
}

/// What [`Client::update_webhook_config`] changes.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ConfigUpdate {
    /// A new URL (the API tests it).
    Url(String),
    /// Back to `new`, to be tested again.
    Renew,
    /// Retire the config (`deactivated`).
    Deactivate,
}

/// A resource that list pages are cursored by: `after_id` is the last id
/// of the page before.
pub trait Listed: DeserializeOwned {
    /// The resource's id.
    fn list_id(&self) -> &Id;
}

impl Listed for WebhookConfigWithSecret {
    fn list_id(&self) -> &Id {
        &self.id
    }
}

impl Listed for ApiEvent {
    fn list_id(&self) -> &Id {
        &self.id
    }
}

/// Which items of a page a [`Pages`] hands out.
type Keep<T> = Box<dyn Fn(&T) -> bool + Send + Sync>;

/// The items of a list, fetched page by page as they are asked for, until
/// the API says `has_more: false`.
///
/// A list ends with [`ApiError::Paging`] when the API pages wrongly: a
/// page whose last id (the next page's `after_id` cursor) was a cursor
/// before, or more pages than the client's cap
/// ([`ClientBuilder::max_pages`](crate::ClientBuilder::max_pages)).
///
/// ```no_run
/// # use ricloud_webhook_api::{Client, EventFilter};
/// # async fn run(client: Client) -> Result<(), ricloud_webhook_api::ApiError> {
/// let mut events = client.events(EventFilter { state: Some("failed".into()), ..Default::default() });
/// while let Some(event) = events.next().await? {
///     println!("{} {}", event.id, event.slug());
/// }
/// # Ok(())
/// # }
/// ```
pub struct Pages<T> {
    client: Client,
    path: &'static [&'static str],
    query: Vec<(&'static str, String)>,
    keep: Option<Keep<T>>,
    buffer: VecDeque<T>,
    after: Option<Id>,
    done: bool,
    remaining: Option<u64>,
    page_size: u32,
    total_count: Option<u64>,
    /// Every cursor used so far: one coming back means the list loops.
    cursors: HashSet<Id>,
    pages: u32,
    max_pages: u32,
    /// Why the list ends early, told once the items before it are out.
    broken: Option<ApiError>,
}

impl<T> fmt::Debug for Pages<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pages")
            .field("path", &self.path)
            .field("query", &self.query)
            .field("after", &self.after)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<T: Listed> Pages<T> {
    fn new(
        client: &Client,
        path: &'static [&'static str],
        query: Vec<(&'static str, String)>,
    ) -> Self {
        Self {
            client: client.clone(),
            path,
            query,
            keep: None,
            buffer: VecDeque::new(),
            after: None,
            done: false,
            remaining: None,
            page_size: MAX_PAGE,
            total_count: None,
            cursors: HashSet::new(),
            pages: 0,
            max_pages: client.max_pages,
            broken: None,
        }
    }

    /// Fetches at most `n` pages, then ends with [`ApiError::Paging`]
    /// (default: the client's cap).
    #[must_use]
    pub fn max_pages(mut self, n: u32) -> Self {
        self.max_pages = n.max(1);
        self
    }

    /// Stops after `n` items.
    #[must_use]
    pub fn limit(mut self, n: u64) -> Self {
        self.remaining = Some(n);
        self
    }

    /// Asks for pages of `n` items (at most [`MAX_PAGE`], the default).
    #[must_use]
    pub fn page_size(mut self, n: u32) -> Self {
        self.page_size = n.clamp(1, MAX_PAGE);
        self
    }

    /// The list's `total_count` as the last page fetched gave it.
    pub fn total_count(&self) -> Option<u64> {
        self.total_count
    }

    /// The next item, fetching the next page when needed; `None` at the end.
    ///
    /// # Errors
    /// Those of the request for the next page. The items returned before
    /// stay valid; calling again retries the same page.
    pub async fn next(&mut self) -> Result<Option<T>, ApiError> {
        loop {
            if self.remaining == Some(0) {
                return Ok(None);
            }
            if let Some(item) = self.buffer.pop_front() {
                if let Some(n) = &mut self.remaining {
                    *n -= 1;
                }
                return Ok(Some(item));
            }
            if self.done {
                return self.broken.take().map_or(Ok(None), Err);
            }
            self.fetch().await?;
        }
    }

    /// Every (remaining) item.
    ///
    /// # Errors
    /// Those of [`Pages::next`].
    pub async fn collect(mut self) -> Result<Vec<T>, ApiError> {
        let mut items = Vec::new();
        while let Some(item) = self.next().await? {
            items.push(item);
        }
        Ok(items)
    }

    async fn fetch(&mut self) -> Result<(), ApiError> {
        let size = match self.remaining {
            // Items the filter drops still count against a page, so only
            // an unfiltered list asks for no more than it needs.
            Some(n) if self.keep.is_none() => n.min(u64::from(self.page_size)),
            _ => u64::from(self.page_size),
        }
        .to_string();
        let mut query: Vec<(&str, &str)> =
            self.query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        query.push(("limit", &size));
        if let Some(after) = &self.after {
            query.push(("after_id", after.as_str()));
        }
        let url = self.client.url(self.path, &query);
        let page: ListPage<T> = self.client.get(url, "a list object").await?;
        self.pages += 1;
        self.total_count = page.total_count.or(self.total_count);
        match page.data.last() {
            Some(_) if !page.has_more => self.done = true,
            Some(last) => {
                let cursor = last.list_id().clone();
                if !self.cursors.insert(cursor.clone()) {
                    // The page's items were handed out before: not again.
                    self.done = true;
                    self.broken = Some(ApiError::Paging {
                        message: format!(
                            "page {} of /{} ends with {}, a cursor it gave before: the list does not advance",
                            self.pages,
                            self.path.join("/"),
                            cursor.as_str()
                        ),
                    });
                    return Ok(());
                }
                if self.pages >= self.max_pages {
                    self.done = true;
                    self.broken = Some(ApiError::Paging {
                        message: format!(
                            "/{} has more than {} pages (the client's cap; raise it with max_pages)",
                            self.path.join("/"),
                            self.max_pages
                        ),
                    });
                }
                self.after = Some(cursor);
            }
            None => self.done = true,
        }
        let keep = self.keep.as_deref();
        self.buffer.extend(
            page.data
                .into_iter()
                .filter(|item| keep.is_none_or(|keep| keep(item))),
        );
        Ok(())
    }
}

impl Client {
    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        url: Url,
        what: &'static str,
    ) -> Result<T, ApiError> {
        let body = self.call(Method::GET, url, None, Retry::Idempotent).await?;
        decode(&body, what)
    }

    async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: serde_json::Value,
        retry: Retry,
        what: &'static str,
    ) -> Result<T, ApiError> {
        let answer = self.call(method, url, Some(body), retry).await?;
        decode(&answer, what)
    }

    /// `POST /configs/webhook {"url"}`: a new config, with its secret. The
    /// API starts a `webhook_config.test` task for it at once.
    ///
    /// # Errors
    /// The API's (400 for a URL it refuses), or the transport's.
    pub async fn create_webhook_config(
        &self,
        url: &str,
    ) -> Result<WebhookConfigWithSecret, ApiError> {
        let endpoint = self.url(&["configs", "webhook"], &[]);
        self.send(
            Method::POST,
            endpoint,
            json!({ "url": url }),
            Retry::NotActedOn,
            "a webhook config",
        )
        .await
    }

    /// `GET /configs/webhook/{id}`.
    ///
    /// # Errors
    /// The API's (404 for an unknown id), or the transport's.
    pub async fn webhook_config(&self, id: &str) -> Result<WebhookConfigWithSecret, ApiError> {
        self.get(
            self.url(&["configs", "webhook", id], &[]),
            "a webhook config",
        )
        .await
    }

    /// `GET /configs/webhook`, every page.
    pub fn webhook_configs(&self, filter: ConfigFilter) -> Pages<WebhookConfigWithSecret> {
        let mut query = Vec::new();
        if let Some(state) = filter.state {
            query.push(("state", state));
        }
        Pages::new(self, &["configs", "webhook"], query)
    }

    /// `POST /configs/webhook/{id}`: a new URL, or a new state. The API
    /// tests the config again.
    ///
    /// # Errors
    /// The API's, or the transport's.
    pub async fn update_webhook_config(
        &self,
        id: &str,
        update: ConfigUpdate,
    ) -> Result<WebhookConfigWithSecret, ApiError> {
        let body = match update {
            ConfigUpdate::Url(url) => json!({ "url": url }),
            ConfigUpdate::Renew => json!({ "state": "new" }),
            ConfigUpdate::Deactivate => json!({ "state": "deactivated" }),
        };
        let endpoint = self.url(&["configs", "webhook", id], &[]);
        self.send(
            Method::POST,
            endpoint,
            body,
            Retry::Idempotent,
            "a webhook config",
        )
        .await
    }

    /// `DELETE /configs/webhook/{id}`. A config that is already gone (404)
    /// counts as deleted when `missing_ok`.
    ///
    /// # Errors
    /// The API's, or the transport's.
    pub async fn delete_webhook_config(&self, id: &str, missing_ok: bool) -> Result<(), ApiError> {
        let endpoint = self.url(&["configs", "webhook", id], &[]);
        match self
            .call(Method::DELETE, endpoint, None, Retry::Idempotent)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if missing_ok && e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `POST /configs/webhook/{id}/test`: starts a `webhook_config.test`
    /// task, which delivers a `webhook_config.test` event to the config's
    /// URL and sets the config `valid` or `invalid` from the answer.
    ///
    /// # Errors
    /// The API's, or the transport's.
    pub async fn test_webhook_config(&self, id: &str) -> Result<Task, ApiError> {
        let endpoint = self.url(&["configs", "webhook", id, "test"], &[]);
        self.send(
            Method::POST,
            endpoint,
            serde_json::Value::Null,
            Retry::Idempotent,
            "a task",
        )
        .await
    }

    /// `GET /tasks/{id}`.
    ///
    /// # Errors
    /// The API's, or the transport's.
    pub async fn task(&self, id: &str) -> Result<Task, ApiError> {
        self.get(self.url(&["tasks", id], &[]), "a task").await
    }

    /// `GET /events/{id}`.
    ///
    /// # Errors
    /// The API's, or the transport's.
    pub async fn event(&self, id: &str) -> Result<ApiEvent, ApiError> {
        self.get(self.url(&["events", id], &[]), "an event").await
    }

    /// `GET /events`, every page, newest first as the API lists them.
    /// Events created before `filter.since` are dropped here too.
    pub fn events(&self, filter: EventFilter) -> Pages<ApiEvent> {
        let mut query = Vec::new();
        if let Some(t) = filter.kind {
            query.push(("type", t));
        }
        if let Some(action) = filter.action {
            query.push(("action", action));
        }
        if let Some(state) = filter.state {
            query.push(("state", state));
        }
        let mut pages = Pages::new(self, &["events"], query);
        if let Some(since) = filter.since {
            pages.query.push((SINCE_PARAM, since.to_string()));
            // An event without a readable time is kept: delivering it once
            // more costs a dedup, dropping it could lose it.
            pages.keep = Some(Box::new(move |event: &ApiEvent| {
                event.created().is_none_or(|created| created >= since)
            }));
        }
        pages
    }

    /// `GET /organisation`.
    ///
    /// # Errors
    /// The API's, or the transport's.
    pub async fn organisation(&self) -> Result<Organisation, ApiError> {
        self.get(self.url(&["organisation"], &[]), "an organisation")
            .await
    }

    /// `POST /organisation {"webhook_config_default": id}`: the config used
    /// by keys that name none of their own.
    ///
    /// # Errors
    /// The API's, or the transport's.
    pub async fn set_default_webhook_config(&self, id: &str) -> Result<Organisation, ApiError> {
        let endpoint = self.url(&["organisation"], &[]);
        self.send(
            Method::POST,
            endpoint,
            json!({ "webhook_config_default": id }),
            Retry::Idempotent,
            "an organisation",
        )
        .await
    }

    /// Waits for the test task `task` of config `id` to finish, then for
    /// the config to leave `new`, and returns the config as it then is
    /// (`valid` or `invalid`).
    ///
    /// # Errors
    /// [`ApiError::TestTimedOut`] when that takes longer than `timeout`,
    /// or those of the requests.
    pub async fn wait_for_test(
        &self,
        id: &str,
        task: &str,
        timeout: Duration,
    ) -> Result<WebhookConfigWithSecret, ApiError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut task_done = false;
        loop {
            if !task_done {
                let state = self.task(task).await?.state;
                task_done = matches!(state, Some(TaskState::Succeeded | TaskState::Failed));
            }
            if task_done {
                let config = self.webhook_config(id).await?;
                if matches!(
                    config.state,
                    Some(
                        WebhookConfigState::Valid
                            | WebhookConfigState::Invalid
                            | WebhookConfigState::Deactivated
                    )
                ) {
                    return Ok(config);
                }
            }
            if tokio::time::Instant::now() + TEST_POLL > deadline {
                return Err(ApiError::TestTimedOut { after: timeout });
            }
            tokio::time::sleep(TEST_POLL).await;
        }
    }

    /// Tests config `id` and waits for the outcome, as
    /// [`Client::wait_for_test`] does.
    ///
    /// # Errors
    /// Those of [`Client::test_webhook_config`] and [`Client::wait_for_test`].
    pub async fn test_and_wait(
        &self,
        id: &str,
        timeout: Duration,
    ) -> Result<WebhookConfigWithSecret, ApiError> {
        let task = self.test_webhook_config(id).await?;
        self.wait_for_test(id, task.id.as_str(), timeout).await
    }
}

/// Reads a successful answer as `T`.
fn decode<T: DeserializeOwned>(body: &[u8], what: &'static str) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|source| ApiError::Decode { what, source })
}
