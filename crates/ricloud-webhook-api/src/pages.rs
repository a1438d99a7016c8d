//! The paging of the API's lists: a [`Pages`] stream over a cursor that
//! follows `after_id` and refuses a list that does not advance.

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use ricloud_webhook::resources::Id;
use serde::de::DeserializeOwned;

use crate::client::Client;
use crate::endpoints::MAX_PAGE;
use crate::error::ApiError;
use crate::resources::{ApiEvent, ListPage, WebhookConfigWithSecret};

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
pub(crate) type Keep<T> = Box<dyn Fn(&T) -> bool + Send + Sync>;

/// Where a listing is: the state behind a [`Pages`] stream.
struct Cursor<T> {
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

impl<T> fmt::Debug for Cursor<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cursor")
            .field("path", &self.path)
            .field("query", &self.query)
            .field("after", &self.after)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<T: Listed> Cursor<T> {
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

    /// The next item, fetching the next page when needed; `None` at the end.
    ///
    /// # Errors
    /// Those of the request for the next page. The items returned before
    /// stay valid; calling again retries the same page.
    async fn next(&mut self) -> Result<Option<T>, ApiError> {
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

/// A fetch in flight: the cursor comes back with its item.
type Fetching<T> =
    Pin<Box<dyn Future<Output = (Box<Cursor<T>>, Result<Option<T>, ApiError>)> + Send>>;

/// The items of a list as a [`Stream`], fetched page by page as they are
/// asked for, until the API says `has_more: false`.
///
/// An error is an item of the stream; polling again after one retries the
/// same page.
///
/// A list ends with [`ApiError::Paging`] when the API pages wrongly: a
/// page whose last id (the next page's `after_id` cursor) was a cursor
/// before, or more pages than the client's cap
/// ([`ClientBuilder::max_pages`](crate::ClientBuilder::max_pages)).
///
/// ```no_run
/// # use ricloud_webhook_api::{Client, EventFilter};
/// # async fn run(client: Client) -> Result<(), ricloud_webhook_api::ApiError> {
/// use futures_util::TryStreamExt as _;
///
/// let mut events = client.events(EventFilter { state: Some("failed".into()), ..Default::default() });
/// while let Some(event) = events.try_next().await? {
///     println!("{} {}", event.id, event.slug());
/// }
/// # Ok(())
/// # }
/// ```
pub struct Pages<T> {
    cursor: Option<Box<Cursor<T>>>,
    fetching: Option<Fetching<T>>,
    total_count: Option<u64>,
    /// Settings made since the last fetch began, applied to the cursor
    /// before the next one (a fetch in flight owns the cursor).
    settings: Settings,
}

/// What [`Pages::max_pages`], [`Pages::limit`] and [`Pages::page_size`]
/// asked for.
#[derive(Debug, Default, Clone, Copy)]
struct Settings {
    max_pages: Option<u32>,
    remaining: Option<u64>,
    page_size: Option<u32>,
}

impl Settings {
    fn apply<T>(&mut self, cursor: &mut Cursor<T>) {
        let Self {
            max_pages,
            remaining,
            page_size,
        } = std::mem::take(self);
        if let Some(n) = max_pages {
            cursor.max_pages = n;
        }
        if let Some(n) = remaining {
            cursor.remaining = Some(n);
        }
        if let Some(n) = page_size {
            cursor.page_size = n;
        }
    }
}

impl<T> fmt::Debug for Pages<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pages")
            .field("cursor", &self.cursor)
            .field("fetching", &self.fetching.is_some())
            .finish_non_exhaustive()
    }
}

impl<T: Listed> Pages<T> {
    pub(crate) fn new(
        client: &Client,
        path: &'static [&'static str],
        query: Vec<(&'static str, String)>,
    ) -> Self {
        Self {
            cursor: Some(Box::new(Cursor::new(client, path, query))),
            fetching: None,
            total_count: None,
            settings: Settings::default(),
        }
    }

    /// Adds `key=value` to every page's query (as the listing is built,
    /// before anything polls it).
    pub(crate) fn query(&mut self, key: &'static str, value: String) {
        if let Some(cursor) = self.cursor.as_deref_mut() {
            cursor.query.push((key, value));
        }
    }

    /// Hands out only the items `keep` accepts (as the listing is built,
    /// before anything polls it).
    pub(crate) fn keep(&mut self, keep: Keep<T>) {
        if let Some(cursor) = self.cursor.as_deref_mut() {
            cursor.keep = Some(keep);
        }
    }

    /// Fetches at most `n` pages, then ends with [`ApiError::Paging`]
    /// (default: the client's cap).
    #[must_use]
    pub fn max_pages(mut self, n: u32) -> Self {
        self.settings.max_pages = Some(n.max(1));
        self
    }

    /// Stops after `n` more items.
    #[must_use]
    pub fn limit(mut self, n: u64) -> Self {
        self.settings.remaining = Some(n);
        self
    }

    /// Asks for pages of `n` items (at most [`MAX_PAGE`], the default).
    #[must_use]
    pub fn page_size(mut self, n: u32) -> Self {
        self.settings.page_size = Some(n.clamp(1, MAX_PAGE));
        self
    }

    /// The list's `total_count` as the last page fetched gave it.
    pub fn total_count(&self) -> Option<u64> {
        self.total_count
    }
}

impl<T: Listed + Send + 'static> Stream for Pages<T> {
    type Item = Result<T, ApiError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.fetching.is_none() {
            let Some(mut cursor) = this.cursor.take() else {
                return Poll::Ready(None);
            };
            this.settings.apply(&mut cursor);
            this.fetching = Some(Box::pin(async move {
                let next = cursor.next().await;
                (cursor, next)
            }));
        }
        let Some(fetching) = this.fetching.as_mut() else {
            return Poll::Ready(None);
        };
        let (cursor, next) = std::task::ready!(fetching.as_mut().poll(cx));
        this.fetching = None;
        this.total_count = cursor.total_count.or(this.total_count);
        this.cursor = Some(cursor);
        Poll::Ready(next.transpose())
    }
}
