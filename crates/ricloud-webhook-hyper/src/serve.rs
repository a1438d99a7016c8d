//! Serving the endpoint on a TCP listener, with limits and graceful shutdown.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Version};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::{AbortHandle, JoinSet};

use crate::service::ResponseFuture;
use crate::WebhookService;

/// A connection as `serve` runs it.
type Connection =
    hyper_util::server::conn::auto::Connection<'static, TokioIo<TcpStream>, Tracked, TokioExecutor>;

/// How long the accept loop pauses after an error of the listener itself
/// (out of file descriptors, out of memory) before accepting again.
const ACCEPT_PAUSE: Duration = Duration::from_secs(1);

/// Serves `service` on `listener` until `shutdown` resolves, then shuts down
/// gracefully.
///
/// Speaks HTTP/1.1 (keep-alive) and HTTP/2 on the same listener, and holds
/// at most [`Config::max_connections`](crate::Config::max_connections)
/// connections (more wait in the listen backlog). A connection is closed
/// when it does not send a request's headers within
/// [`Config::header_read_timeout`](crate::Config::header_read_timeout)
/// of opening (before its protocol is known) or, over HTTP/1, of its
/// previous request finishing; and when it has had no request in progress
/// for [`Config::idle_timeout`](crate::Config::idle_timeout) (an idle
/// HTTP/2 connection, a client that stops reading its responses). Both are
/// checked every quarter of the shorter one, so a connection closes up to
/// a quarter late.
///
/// On shutdown it stops accepting, makes the receiver answer 503 to new
/// deliveries, and lets in-flight deliveries finish for up to
/// [`Config::shutdown_grace`](crate::Config::shutdown_grace); then it
/// closes the connections still open, cancelling their deliveries (whose
/// claims are released, so the API's redelivery runs them again).
///
/// An accept error of one connection is skipped; an error of the listener
/// (out of file descriptors, for one) is logged and accepting resumes after
/// a pause of one second, so a burst of connections cannot stop the server
/// or make it spin.
///
/// # Errors
/// None today: the loop ends only with `shutdown`. The `Result` is kept so
/// a listener failure that cannot be waited out can be reported later
/// without an API change.
pub async fn serve(
    listener: TcpListener,
    service: WebhookService,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let config = service.config().clone();
    let mut builder = Builder::new(TokioExecutor::new());
    // hyper's own header read timeout is off: it arms a boxed timer for
    // every request (two operations on the timer wheel, about 1.6k
    // instructions a delivery), where the connection's watcher below holds
    // the same limit with two counters a request (BENCHMARKS.md).
    builder
        .http1()
        .keep_alive(true)
        .timer(TokioTimer::new())
        .header_read_timeout(None);
    builder.http2().timer(TokioTimer::new());
    let connections = Arc::new(Semaphore::new(config.max_connections));
    let draining = Arc::new(Draining::default());
    // One task per connection, and one watching it for idleness.
    let mut tasks = JoinSet::new();
    let mut watchers = JoinSet::new();

    tokio::pin!(shutdown);
    loop {
        // Finished connections leave the sets as they go, so they hold
        // only the open ones.
        while tasks.try_join_next().is_some() {}
        while watchers.try_join_next().is_some() {}
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = Arc::clone(&connections).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_per_connection(&e) => {
                    tracing::debug!(error = %e, "accept failed for one connection");
                    continue;
                }
                Err(e) => {
                    tracing::error!(error = %e, "accept failed; pausing before accepting again");
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(ACCEPT_PAUSE) => continue,
                    }
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::default());
        let tracked = Tracked {
            service: service.clone(),
            activity: Arc::clone(&activity),
        };
        let connection = builder
            .serve_connection(TokioIo::new(stream), tracked)
            .into_owned();
        let task = tasks.spawn(serve_connection(
            connection,
            Arc::clone(&draining),
            peer,
            permit,
        ));
        let (first, idle) = (config.header_read_timeout, config.idle_timeout);
        watchers.spawn(async move {
            if activity.idle(first, idle, &task).await {
                tracing::debug!(%peer, "closing a connection with no request in progress");
                task.abort();
            }
        });
    }

    drop(listener);
    service.receiver().begin_shutdown();
    tracing::info!(
        grace_secs = config.shutdown_grace.as_secs(),
        "shutting down: letting in-flight deliveries finish"
    );
    draining.begin();
    let drained = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(config.shutdown_grace, drained)
        .await
        .is_err()
    {
        tracing::warn!("shutdown grace period over; closing remaining connections");
    }
    // Closes whatever is still open: dropping a connection drops its
    // deliveries, which releases their claims.
    tasks.shutdown().await;
    watchers.shutdown().await;
    Ok(())
}

/// The notice to the connections that the server is shutting down.
#[derive(Default)]
struct Draining {
    begun: AtomicBool,
    notify: Arc<Notify>,
}

impl Draining {
    fn begin(&self) {
        self.begun.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }
}

/// Serves one connection; once the server shuts down, finishes its
/// requests in progress and closes it (HTTP/1: `Connection: close` on the
/// response in progress, or closing at once when idle; HTTP/2: `GOAWAY`).
///
/// The shutdown notice is waited for without being polled on every wake
/// of the connection (twice a request): its waker is registered once, at
/// the first poll, and the notice's flag is read at each wake, a load
/// instead of a poll of the notice. The task's waker never changes, since
/// `serve` spawns the task itself.
async fn serve_connection(
    connection: Connection,
    draining: Arc<Draining>,
    peer: SocketAddr,
    permit: OwnedSemaphorePermit,
) {
    let mut connection = std::pin::pin!(connection);
    let mut notice = std::pin::pin!(Arc::clone(&draining.notify).notified_owned());
    let (mut waiting, mut closing) = (false, false);
    let ended = std::future::poll_fn(|cx| {
        if !waiting {
            // Registered before the flag is read: a shutdown between the
            // two wakes this task.
            waiting = true;
            let _ = notice.as_mut().poll(cx);
        }
        if !closing && draining.begun.load(Ordering::SeqCst) {
            closing = true;
            connection.as_mut().graceful_shutdown();
        }
        connection.as_mut().poll(cx)
    })
    .await;
    if let Err(e) = ended {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
    drop(permit);
}

/// Accept errors that concern one connection, not the listener.
fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
            | io::ErrorKind::NetworkDown
            | io::ErrorKind::PermissionDenied
    )
}

/// What a connection is doing, for closing it when it does nothing.
#[derive(Default)]
struct Activity {
    /// Requests whose response is not ready yet.
    in_flight: AtomicUsize,
    /// Requests started on this connection so far.
    started: AtomicU64,
    /// Whether the connection speaks HTTP/2 (known from its first request).
    multiplexed: AtomicBool,
}

impl Activity {
    /// Resolves once the connection has had no request in progress for
    /// `headers` since it opened (no request has started: its first
    /// request's headers are late), for `headers` since its last request
    /// over HTTP/1 (the next request's headers are late: a client sending
    /// them a byte at a time looks the same as one sending nothing), or for
    /// `idle` since its last request (an idle connection, of either
    /// protocol). It looks every quarter of the shorter of the two, so it
    /// resolves up to a quarter late.
    ///
    /// Counters instead of a clock or a timer per request: a request costs
    /// two atomic additions, and the connection one timer per tick, in a
    /// task of its own (so the connection's task, woken twice a request,
    /// does not poll the timer). Resolves to false instead once the
    /// connection's `task` has ended.
    async fn idle(&self, headers: Duration, idle: Duration, task: &AbortHandle) -> bool {
        let tick = (headers.min(idle) / 4).max(Duration::from_millis(10));
        let mut quiet = Duration::ZERO;
        let mut seen = 0;
        loop {
            tokio::time::sleep(tick).await;
            if task.is_finished() {
                return false;
            }
            let started = self.started.load(Ordering::Relaxed);
            if started != seen || self.in_flight.load(Ordering::Relaxed) > 0 {
                seen = started;
                quiet = Duration::ZERO;
                continue;
            }
            quiet += tick;
            let limit = if started == 0 {
                headers
            } else if self.multiplexed.load(Ordering::Relaxed) {
                idle
            } else {
                headers.min(idle)
            };
            if quiet >= limit {
                return true;
            }
        }
    }
}

/// The service with the connection's request count around it.
#[derive(Clone)]
struct Tracked {
    service: WebhookService,
    activity: Arc<Activity>,
}

impl hyper::service::Service<Request<Incoming>> for Tracked {
    type Response = <WebhookService as hyper::service::Service<Request<Incoming>>>::Response;
    type Error = <WebhookService as hyper::service::Service<Request<Incoming>>>::Error;
    type Future = InProgress;

    fn call(&self, request: Request<Incoming>) -> InProgress {
        if request.version() == Version::HTTP_2 {
            self.activity.multiplexed.store(true, Ordering::Relaxed);
        }
        self.activity.started.fetch_add(1, Ordering::Relaxed);
        self.activity.in_flight.fetch_add(1, Ordering::Relaxed);
        InProgress {
            response: hyper::service::Service::call(&self.service, request),
            activity: Arc::clone(&self.activity),
        }
    }
}

/// A request in progress: counted until its response is ready or it is
/// dropped.
struct InProgress {
    response: ResponseFuture,
    activity: Arc<Activity>,
}

impl Future for InProgress {
    type Output = <ResponseFuture as Future>::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.response.as_mut().poll(cx)
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        self.activity.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The idle watcher of a connection that never sends a request fires
    /// after the header timeout; the watcher of a connection whose task has
    /// ended stops at its next look without firing, so watchers do not
    /// outlive their connections.
    #[tokio::test]
    async fn the_idle_watcher_fires_or_stops_with_its_connection() {
        let timeout = Duration::from_millis(40);
        let mut tasks = JoinSet::new();
        let silent = tasks.spawn(std::future::pending::<()>());
        let activity = Activity::default();
        let fired = tokio::time::timeout(
            Duration::from_secs(5),
            activity.idle(timeout, timeout, &silent),
        )
        .await;
        assert_eq!(fired, Ok(true));

        let ended = tasks.spawn(async {});
        while !ended.is_finished() {
            tokio::task::yield_now().await;
        }
        let stopped = tokio::time::timeout(
            Duration::from_secs(5),
            Activity::default().idle(timeout, timeout, &ended),
        )
        .await;
        assert_eq!(stopped, Ok(false));
    }
}
