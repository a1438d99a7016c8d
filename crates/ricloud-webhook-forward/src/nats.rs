//! NATS JetStream (feature `nats`): one subject per event,
//! `<prefix>.<type>.<action>`, deduplicated by the stream with
//! `Nats-Msg-Id` set to the event id.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, context::PublishErrorKind, stream};
use tracing::instrument::WithSubscriber as _;

use crate::{Broker, ForwardError, Message, Published};

/// Publishes to NATS JetStream and waits for the stream's publish
/// acknowledgement.
///
/// The stream deduplicates by `Nats-Msg-Id` within its duplicate window
/// (JetStream's default is 2 minutes): a redelivery inside it is
/// acknowledged with `duplicate: true` ([`Published::Duplicate`]) and not
/// stored again. The API retries a failed delivery over a few hours, so
/// give the stream a window that covers that span
/// ([`StreamSpec::duplicate_window`], default 24 hours here), or put the
/// inbox in front (inbox first), whose own deduplication has no window.
/// After its first acknowledged publish, a `JetStream` reads the window of
/// the stream that took it and logs a warning when it is shorter than a
/// day (a stream made elsewhere, with the default window, say).
#[derive(Debug)]
pub struct JetStream {
    context: jetstream::Context,
    prefix: String,
    create: Option<StreamSpec>,
    created: AtomicBool,
    creating: tokio::sync::Mutex<()>,
    window_checked: AtomicBool,
}

/// The stream [`JetStream::create_stream`] creates when it is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSpec {
    name: String,
    duplicate_window: Duration,
}

impl StreamSpec {
    /// The default duplicate window: a day, longer than the API's retries.
    pub const DEFAULT_DUPLICATE_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);

    /// A file-backed stream named `name` over `<prefix>.>`.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            duplicate_window: Self::DEFAULT_DUPLICATE_WINDOW,
        }
    }

    /// The stream's duplicate window.
    #[must_use]
    pub fn duplicate_window(mut self, window: Duration) -> Self {
        self.duplicate_window = window;
        self
    }
}

impl JetStream {
    /// The default subject prefix.
    pub const DEFAULT_PREFIX: &'static str = "ricloud";

    /// Connects to the NATS server at `url` (`nats://host:port`). The
    /// connection is made in the background and remade whenever it drops,
    /// so a server that is down now only makes publishes fail (503s) until
    /// it is back.
    ///
    /// # Errors
    /// [`ForwardError`] when `url` is not a NATS address.
    pub async fn connect(url: &str) -> Result<Self, ForwardError> {
        let client = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(2))
            .max_reconnects(None)
            .connect(url)
            .await
            .map_err(|e| ForwardError::broker("nats", e))?;
        Ok(Self::new(client))
    }

    /// Publishes through an existing client.
    pub fn new(client: async_nats::Client) -> Self {
        Self {
            context: jetstream::new(client),
            prefix: Self::DEFAULT_PREFIX.to_owned(),
            create: None,
            created: AtomicBool::new(false),
            creating: tokio::sync::Mutex::new(()),
            window_checked: AtomicBool::new(false),
        }
    }

    /// The subject prefix (default `ricloud`): events go to
    /// `<prefix>.<type>.<action>`.
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Creates the stream (subjects `<prefix>.>`, file storage) before the
    /// first publish when it does not exist, and again should it be
    /// deleted. An existing stream is used as it is.
    #[must_use]
    pub fn create_stream(mut self, spec: StreamSpec) -> Self {
        self.create = Some(spec);
        self
    }

    /// The subject an event goes to. Characters that NATS gives a meaning
    /// in subjects (`.`, `*`, `>`, white space) become `_`, so an event
    /// type cannot add tokens or wildcards.
    pub fn subject(&self, message: &Message<'_>) -> String {
        format!(
            "{}.{}.{}",
            self.prefix,
            subject_token(message.kind()),
            subject_token(message.action())
        )
    }

    async fn ensure_stream(&self) -> Result<(), ForwardError> {
        let Some(spec) = &self.create else {
            return Ok(());
        };
        if self.created.load(Ordering::Acquire) {
            return Ok(());
        }
        let _one = self.creating.lock().await;
        if self.created.load(Ordering::Acquire) {
            return Ok(());
        }
        self.context
            .get_or_create_stream(stream::Config {
                name: spec.name.clone(),
                subjects: vec![format!("{}.>", self.prefix)],
                duplicate_window: spec.duplicate_window,
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await
            .map_err(|e| ForwardError::broker("nats", e))?;
        self.created.store(true, Ordering::Release);
        Ok(())
    }

    async fn publish_one(&self, message: &Message<'_>) -> Result<Published, ForwardError> {
        self.ensure_stream().await?;
        let mut headers = async_nats::HeaderMap::new();
        for (name, value) in message.headers() {
            // The names are constants: no copy of each per message.
            headers.insert(async_nats::HeaderName::from_static(name), value.as_ref());
        }
        let publish = jetstream::message::PublishMessage::build()
            .payload(message.body().clone())
            .headers(headers)
            .message_id(message.event_id());
        let subject = self.subject(message);
        let ack = self
            .context
            .send_publish(subject.clone(), publish)
            .await
            .map_err(|e| self.failed(e.kind(), e))?
            .await
            .map_err(|e| self.failed(e.kind(), e))?;
        if !self.window_checked.swap(true, Ordering::AcqRel) {
            // Once, beside the first acknowledged publish, not in its way.
            tokio::spawn(
                check_duplicate_window(self.context.clone(), ack.stream, subject)
                    .with_current_subscriber(),
            );
        }
        Ok(if ack.duplicate {
            Published::Duplicate
        } else {
            Published::New
        })
    }

    fn failed(
        &self,
        kind: PublishErrorKind,
        error: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> ForwardError {
        if kind == PublishErrorKind::StreamNotFound {
            // Deleted since it was created: create it again next time.
            self.created.store(false, Ordering::Release);
        }
        ForwardError::broker("nats", error)
    }
}

impl Broker for JetStream {
    fn name(&self) -> &'static str {
        "nats"
    }

    fn publish<'a>(
        &'a self,
        message: &'a Message<'_>,
    ) -> Pin<Box<dyn Future<Output = Result<Published, ForwardError>> + Send + 'a>> {
        Box::pin(self.publish_one(message))
    }

    /// A JetStream API request (`$JS.API.INFO`, its answer not read: its
    /// shape varies between server versions): the server is connected and
    /// JetStream answers.
    fn ping(&self) -> Pin<Box<dyn Future<Output = Result<(), ForwardError>> + Send + '_>> {
        Box::pin(async move {
            self.context
                .client()
                .request("$JS.API.INFO", bytes::Bytes::new())
                .await
                .map(|_| ())
                .map_err(|e| ForwardError::broker("nats", e))
        })
    }
}

/// Warns when the stream that took the first message deduplicates for a
/// shorter time than the API's retries can span: a redelivery after its
/// window would be stored twice (unless the inbox is in front, which
/// deduplicates for good). A lookup that fails is not the publish's
/// business; it is logged at DEBUG.
async fn check_duplicate_window(context: jetstream::Context, stream: String, subject: String) {
    match context.get_stream(&stream).await {
        Ok(handle) => {
            let window = handle.cached_info().config.duplicate_window;
            if window >= StreamSpec::DEFAULT_DUPLICATE_WINDOW {
                tracing::debug!(
                    stream = %stream,
                    duplicate_window_secs = window.as_secs(),
                    "the stream's duplicate window covers the API's retries"
                );
            } else {
                tracing::warn!(
                    stream = %stream,
                    subject = %subject,
                    duplicate_window_secs = window.as_secs(),
                    "the stream's duplicate window is shorter than a day: an event the \
                     API delivers again after the window is stored twice; give the stream \
                     a longer duplicate_window, or put the inbox first"
                );
            }
        }
        Err(e) => {
            tracing::debug!(stream = %stream, "cannot read the stream's duplicate window: {e}")
        }
    }
}

fn subject_token(part: &str) -> String {
    if part.is_empty() {
        return "_".to_owned();
    }
    part.chars()
        .map(|c| {
            if matches!(c, '.' | '*' | '>') || c.is_whitespace() || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::subject_token;

    #[test]
    fn subject_tokens_cannot_add_tokens_or_wildcards() {
        assert_eq!(subject_token("task"), "task");
        assert_eq!(subject_token("a.b"), "a_b");
        assert_eq!(subject_token("*"), "_");
        assert_eq!(subject_token(">"), "_");
        assert_eq!(subject_token("x y"), "x_y");
        assert_eq!(subject_token(""), "_");
    }
}
