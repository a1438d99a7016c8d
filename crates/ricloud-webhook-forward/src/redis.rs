//! Redis Streams (feature `redis`): `XADD` to one stream, or one per slug,
//! deduplicated by the event id in the same atomic script.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::message::header;
use crate::{Broker, ForwardError, Message, Published};

/// Appends only what was not seen: one script, so atomic on the server.
/// The stream entry is added before the seen-key, so a script that fails
/// part-way (a key of the wrong type) leaves no seen-key for an event
/// that is not in the stream. Debian's Redis 7 has no `XADD IDMP`.
const ADD_ONCE: &str = r"
-- KEYS[1]: the seen-key, KEYS[2]: the stream.
-- ARGV[1]: how long the seen-key lives (ms); ARGV[2..]: field, value, ...
if redis.call('EXISTS', KEYS[1]) == 1 then
  return false
end
local id = redis.call('XADD', KEYS[2], '*', unpack(ARGV, 2))
redis.call('SET', KEYS[1], id, 'PX', ARGV[1])
return id
";

/// Appends to Redis Streams and waits for Redis's reply.
///
/// Each message is one entry whose fields are the [`header`] names and
/// `body` (the verified bytes). The event id is remembered in a seen-key,
/// `<stream>:seen:<event id>`, for the dedup window (default 24 hours,
/// longer than the API's retries); a redelivery inside it is not appended
/// again ([`Published::Duplicate`]).
///
/// Redis replies once the entry is in memory. Only with
/// `appendonly yes` and `appendfsync always` is the entry on disk before
/// the reply, and so before the delivery is answered 200; with the default
/// `appendfsync everysec`, a crash of Redis can lose up to a second of
/// acknowledged events.
///
/// The seen-key and the stream must live on one server: for Redis Cluster,
/// name the stream with a hash tag (`{ricloud}:events`).
#[derive(Clone)]
pub struct RedisStreams {
    connection: ConnectionManager,
    stream: String,
    per_slug: bool,
    dedup_window: Duration,
    script: redis::Script,
}

impl std::fmt::Debug for RedisStreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStreams")
            .field("stream", &self.stream)
            .field("per_slug", &self.per_slug)
            .field("dedup_window", &self.dedup_window)
            .finish_non_exhaustive()
    }
}

impl RedisStreams {
    /// The default stream.
    pub const DEFAULT_STREAM: &'static str = "ricloud:events";
    /// The default dedup window: a day, longer than the API's retries.
    pub const DEFAULT_DEDUP_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);

    /// A client of the Redis server at `url` (`redis://host:port[/db]`).
    /// It connects on the first publish and reconnects by itself whenever
    /// the connection drops, so a server that is down now only makes
    /// publishes fail (503s) until it is back.
    ///
    /// # Errors
    /// [`ForwardError`] when `url` is not a Redis address.
    pub fn open(url: &str) -> Result<Self, ForwardError> {
        let client = redis::Client::open(url).map_err(|e| ForwardError::broker("redis", e))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(5)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let connection = client
            .get_connection_manager_lazy(config)
            .map_err(|e| ForwardError::broker("redis", e))?;
        Ok(Self {
            connection,
            stream: Self::DEFAULT_STREAM.to_owned(),
            per_slug: false,
            dedup_window: Self::DEFAULT_DEDUP_WINDOW,
            script: redis::Script::new(ADD_ONCE),
        })
    }

    /// The stream (default `ricloud:events`); with
    /// [`per_slug`](Self::per_slug), the prefix of each slug's stream.
    #[must_use]
    pub fn stream(mut self, stream: impl Into<String>) -> Self {
        self.stream = stream.into();
        self
    }

    /// One stream per slug, `<stream>:<type>.<action>`, instead of one.
    #[must_use]
    pub fn per_slug(mut self, per_slug: bool) -> Self {
        self.per_slug = per_slug;
        self
    }

    /// How long an event id is remembered (default a day).
    #[must_use]
    pub fn dedup_window(mut self, window: Duration) -> Self {
        self.dedup_window = window;
        self
    }

    /// The stream a message goes to.
    pub fn stream_for(&self, message: &Message<'_>) -> String {
        if self.per_slug {
            format!("{}:{}.{}", self.stream, message.kind(), message.action())
        } else {
            self.stream.clone()
        }
    }

    /// The key that remembers an event id.
    pub fn seen_key(&self, event_id: &str) -> String {
        format!("{}:seen:{event_id}", self.stream)
    }

    async fn publish_one(&self, message: &Message<'_>) -> Result<Published, ForwardError> {
        let window_ms = u64::try_from(self.dedup_window.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut invocation = self.script.prepare_invoke();
        invocation
            .key(self.seen_key(message.event_id()))
            .key(self.stream_for(message))
            .arg(window_ms);
        for (name, value) in message.headers() {
            invocation.arg(*name).arg(value.as_ref());
        }
        invocation.arg(header::BODY).arg(message.body().as_ref());
        let mut connection = self.connection.clone();
        let id: Option<String> = invocation
            .invoke_async(&mut connection)
            .await
            .map_err(|e| ForwardError::broker("redis", e))?;
        Ok(if id.is_some() {
            Published::New
        } else {
            Published::Duplicate
        })
    }
}

impl Broker for RedisStreams {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn publish<'a>(
        &'a self,
        message: &'a Message<'_>,
    ) -> Pin<Box<dyn Future<Output = Result<Published, ForwardError>> + Send + 'a>> {
        Box::pin(self.publish_one(message))
    }

    /// `PING`.
    fn ping(&self) -> Pin<Box<dyn Future<Output = Result<(), ForwardError>> + Send + '_>> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            redis::cmd("PING")
                .query_async::<()>(&mut connection)
                .await
                .map_err(|e| ForwardError::broker("redis", e))
        })
    }
}
