//! The API's endpoints for webhook configs, tasks, events and the
//! organisation, and the paging of its lists.

use std::time::Duration;

use reqwest::{Method, Url};
use ricloud_webhook::resources::{TaskState, WebhookConfigState};
use ricloud_webhook::Task;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::client::{Client, Retry};
use crate::error::ApiError;
use crate::pages::Pages;
use crate::resources::{ApiEvent, Organisation, WebhookConfigWithSecret};

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
            pages.query(SINCE_PARAM, since.to_string());
            // An event without a readable time is kept: delivering it once
            // more costs a dedup, dropping it could lose it.
            pages.keep(Box::new(move |event: &ApiEvent| {
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
