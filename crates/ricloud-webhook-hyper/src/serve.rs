//! Serving the endpoint on a TCP listener, with limits and graceful shutdown.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::service::ResponseFuture;
use crate::WebhookService;

/// How long the accept loop pauses after an error of the listener itself
/// (out of file descriptors, out of memory) before accepting again.
const ACCEPT_PAUSE: Duration = Duration::from_secs(1);

/// hyper's HTTP/1 read buffer per connection, which also bounds a
/// request's head. hyper reads a body only as it is polled, so this is
/// what an unread body can hold of this process's memory per connection.
const MAX_BUF_SIZE: usize = 64 * 1024;

/// HTTP/2 flow-control windows: what a peer may send before the body is
/// read, per stream and per connection. 64 KiB, the protocol's default, for
/// the same reason as [`MAX_BUF_SIZE`] (hyper's default is 1 MiB).
const H2_WINDOW: u32 = 64 * 1024;

/// Serves `service` on `listener` until `shutdown` resolves, then shuts down
/// gracefully.
///
/// Speaks HTTP/1.1 (keep-alive) and HTTP/2 on the same listener, and holds
/// at most [`Config::max_connections`](crate::Config::max_connections)
/// connections (more wait in the listen backlog), at most
/// [`Config::max_connections_per_ip`](crate::Config::max_connections_per_ip)
/// of them from one address (more are closed at once). At most
/// [`Config::max_requests`](crate::Config::max_requests) requests are in
/// progress over all of them, and
/// [`Config::max_requests_per_ip`](crate::Config::max_requests_per_ip)
/// from one address; more are answered 503 before their body is read. A connection is closed
/// when its first request's headers have not arrived within
/// [`Config::header_read_timeout`](crate::Config::header_read_timeout) of
/// opening, over HTTP/1 when the next request's headers take longer than
/// that (hyper's own timeout), and when it has had no request in progress
/// for [`Config::idle_timeout`](crate::Config::idle_timeout) (seen at most
/// that long again later).
///
/// On shutdown it stops accepting, makes the receiver answer 503 to new
/// deliveries, and lets in-flight deliveries finish for up to
/// [`Config::shutdown_grace`](crate::Config::shutdown_grace) (hyper-util's
/// `GracefulShutdown`: `Connection: close` or HTTP/2 `GOAWAY`); then it
/// closes the connections still open, cancelling their deliveries (whose
/// claims are abandoned, so the API's redelivery runs them again).
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
    serve_with(listener, service, None, shutdown).await
}

/// [`serve`], terminating TLS with `tls` (see [`TlsFiles`](crate::TlsFiles)
/// for certificates from PEM files, reloaded on demand). HTTP/2 is
/// negotiated by ALPN when `tls` offers it, as
/// [`TlsFiles::server_config`](crate::TlsFiles::server_config) does. A
/// handshake not done within
/// [`Config::header_read_timeout`](crate::Config::header_read_timeout)
/// closes the connection; every limit of [`serve`] holds.
///
/// # Errors
/// As [`serve`].
#[cfg(feature = "tls")]
pub async fn serve_tls(
    listener: TcpListener,
    service: WebhookService,
    tls: Arc<rustls::ServerConfig>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    serve_with(listener, service, Some(acceptor), shutdown).await
}

#[cfg(feature = "tls")]
type Acceptor = tokio_rustls::TlsAcceptor;
/// Without the `tls` feature no connection is TLS: an acceptor cannot exist.
#[cfg(not(feature = "tls"))]
#[derive(Clone)]
enum Acceptor {}

async fn serve_with(
    listener: TcpListener,
    service: WebhookService,
    tls: Option<Acceptor>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let config = service.config().clone();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(config.header_read_timeout)
        .max_buf_size(MAX_BUF_SIZE)
        .max_headers(config.max_headers);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(config.max_streams)
        .initial_stream_window_size(H2_WINDOW)
        .initial_connection_window_size(H2_WINDOW)
        .max_header_list_size(config.max_header_list_size);
    let connections = Arc::new(Semaphore::new(config.max_connections));
    // Requests in progress over every connection: a counter, not a
    // semaphore, since a request past the cap is refused, never queued.
    let requests = Arc::new(AtomicUsize::new(0));
    let peers = Peers::default();
    let over_cap = over_cap_answer(config.retry_after);
    let graceful = GracefulShutdown::new();
    let mut tasks = JoinSet::new();

    tokio::pin!(shutdown);
    loop {
        // Finished connections leave the set as they go.
        while tasks.try_join_next().is_some() {}
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
        let Some(peer_slot) = peers.enter(peer.ip(), config.max_connections_per_ip) else {
            tracing::debug!(%peer, "closing a connection: its address holds as many as it may");
            // Said at once, without waiting for a request (a silent
            // connection would hold a slot meanwhile): an HTTP/1 client
            // reads it as "retry later". Best effort: never blocks.
            let _ = stream.try_write(&over_cap);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::default());
        let tracked = Tracked {
            service: service.clone(),
            activity: Arc::clone(&activity),
            requests: Arc::clone(&requests),
            max_requests: config.max_requests,
            peer: Arc::clone(&peer_slot.slot),
            max_requests_per_ip: config.max_requests_per_ip,
        };
        let watcher = graceful.watcher();
        let builder = builder.clone();
        let idle = config.idle_timeout;
        let first = config.header_read_timeout.min(idle);
        let tls = tls.clone();
        tasks.spawn(async move {
            let served = async {
                match tls {
                    None => {
                        let connection = builder.serve_connection(TokioIo::new(stream), tracked);
                        watcher.watch(connection.into_owned()).await
                    }
                    #[cfg(feature = "tls")]
                    Some(acceptor) => {
                        let stream =
                            match tokio::time::timeout(first, acceptor.accept(stream)).await {
                                Ok(Ok(stream)) => stream,
                                Ok(Err(e)) => return Err(e.into()),
                                Err(_) => return Err("TLS handshake not done in time".into()),
                            };
                        let connection = builder.serve_connection(TokioIo::new(stream), tracked);
                        watcher.watch(connection.into_owned()).await
                    }
                    #[cfg(not(feature = "tls"))]
                    Some(never) => match never {},
                }
            };
            tokio::select! {
                ended = served => {
                    if let Err(e) = ended {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                }
                () = activity.idle(first, idle) => {
                    tracing::debug!(%peer, "closing a connection with no request in progress");
                }
            }
            drop(permit);
            drop(peer_slot);
        });
    }

    drop(listener);
    service.receiver().begin_shutdown();
    tracing::info!(
        grace_secs = config.shutdown_grace.as_secs(),
        "shutting down: letting in-flight deliveries finish"
    );
    if tokio::time::timeout(config.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown grace period over; closing remaining connections");
    }
    // Closes whatever is still open: dropping a connection drops its
    // deliveries, which abandons their claims.
    tasks.shutdown().await;
    Ok(())
}

/// The answer written to a connection over its address's cap.
fn over_cap_answer(retry_after: Duration) -> Vec<u8> {
    const BODY: &str = "too many connections from this address; retry later\n";
    format!(
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{BODY}",
        retry_after.as_secs().max(1),
        BODY.len()
    )
    .into_bytes()
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

/// How many requests of a connection are in progress, for closing it when
/// it has none for too long.
///
/// hyper covers HTTP/1 once a request has been read (its header read
/// timeout also runs while a kept-alive connection waits for the next
/// one), but neither hyper-util's protocol detection, which waits for a
/// connection's first bytes, nor hyper's HTTP/2 server has a timeout for a
/// connection that sends nothing. Counters rather than a timer per request:
/// a request costs two atomic additions, and a connection one timer per
/// idle period.
#[derive(Default)]
struct Activity {
    /// Requests whose response is not ready yet.
    in_flight: AtomicUsize,
    /// Requests started on this connection so far.
    started: AtomicUsize,
}

impl Activity {
    fn started(&self) {
        self.started.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    fn ended(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// Resolves once a whole period has passed with no request in progress
    /// and none started: `first` from the connection's opening, then
    /// `idle` at a time. A connection idle since just after a look is seen
    /// at the next one, so it closes between `idle` and twice that after
    /// its last request.
    async fn idle(&self, first: Duration, idle: Duration) {
        let mut seen = 0;
        let mut period = first;
        loop {
            tokio::time::sleep(period).await;
            let started = self.started.load(Ordering::Relaxed);
            if started == seen && self.in_flight.load(Ordering::Relaxed) == 0 {
                return;
            }
            seen = started;
            period = idle;
        }
    }
}

/// Where a connection comes from: an IPv4 address, or an IPv6 address's
/// /64 network (one host commonly has a whole /64 to pick addresses from).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum PeerKey {
    V4(std::net::Ipv4Addr),
    V6(u64),
}

impl PeerKey {
    fn of(ip: std::net::IpAddr) -> Self {
        match ip {
            std::net::IpAddr::V4(v4) => Self::V4(v4),
            std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::V4(v4),
                None => Self::V6((v6.to_bits() >> 64) as u64),
            },
        }
    }
}

/// What one address holds: connections (counted under the table's lock)
/// and requests in progress (counted per request, without a lock).
#[derive(Default)]
struct PeerSlot {
    connections: AtomicUsize,
    requests: AtomicUsize,
}

/// The addresses with a connection open.
#[derive(Default, Clone)]
struct Peers(Arc<std::sync::Mutex<std::collections::HashMap<PeerKey, Arc<PeerSlot>>>>);

impl Peers {
    /// A connection from `ip`, unless its address holds `max` already.
    fn enter(&self, ip: std::net::IpAddr, max: usize) -> Option<PeerConnection> {
        let key = PeerKey::of(ip);
        let mut table = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let slot = table.entry(key).or_default();
        if slot.connections.load(Ordering::Relaxed) >= max {
            return None;
        }
        slot.connections.fetch_add(1, Ordering::Relaxed);
        Some(PeerConnection {
            peers: self.clone(),
            key,
            slot: Arc::clone(slot),
        })
    }
}

/// One open connection of an address; leaves the table when dropped.
struct PeerConnection {
    peers: Peers,
    key: PeerKey,
    slot: Arc<PeerSlot>,
}

impl Drop for PeerConnection {
    fn drop(&mut self) {
        let mut table = self
            .peers
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.slot.connections.fetch_sub(1, Ordering::Relaxed) == 1 {
            table.remove(&self.key);
        }
    }
}

/// The service with the connection's request count around it, and the
/// caps on requests in progress (in all, and from one address).
#[derive(Clone)]
struct Tracked {
    service: WebhookService,
    activity: Arc<Activity>,
    requests: Arc<AtomicUsize>,
    max_requests: usize,
    peer: Arc<PeerSlot>,
    max_requests_per_ip: usize,
}

impl hyper::service::Service<Request<Incoming>> for Tracked {
    type Response = <WebhookService as hyper::service::Service<Request<Incoming>>>::Response;
    type Error = <WebhookService as hyper::service::Service<Request<Incoming>>>::Error;
    type Future = InProgress;

    fn call(&self, request: Request<Incoming>) -> InProgress {
        self.activity.started();
        // Counted whether admitted or not; given back when dropped.
        let from_peer = self.peer.requests.fetch_add(1, Ordering::Relaxed);
        let in_all = self.requests.fetch_add(1, Ordering::Relaxed);
        let response = if in_all < self.max_requests && from_peer < self.max_requests_per_ip {
            hyper::service::Service::call(&self.service, request)
        } else {
            tracing::debug!("refusing a request: too many in progress");
            let refused: ResponseFuture =
                Box::pin(std::future::ready(Ok(self.service.overloaded())));
            refused
        };
        InProgress {
            response,
            activity: Arc::clone(&self.activity),
            requests: Arc::clone(&self.requests),
            peer: Arc::clone(&self.peer),
        }
    }
}

/// A request in progress: counted until its response is ready or it is
/// dropped.
struct InProgress {
    response: ResponseFuture,
    activity: Arc<Activity>,
    requests: Arc<AtomicUsize>,
    peer: Arc<PeerSlot>,
}

impl Future for InProgress {
    type Output = <ResponseFuture as Future>::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.response.as_mut().poll(cx)
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        self.activity.ended();
        self.requests.fetch_sub(1, Ordering::Relaxed);
        self.peer.requests.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_never_sends_a_request_is_idle_after_the_first_period() {
        let activity = Activity::default();
        let start = tokio::time::Instant::now();
        activity
            .idle(Duration::from_secs(10), Duration::from_secs(30))
            .await;
        assert_eq!(start.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn requests_hold_off_idleness_until_a_whole_period_passes_without_one() {
        let activity = Arc::new(Activity::default());
        let start = tokio::time::Instant::now();
        let watcher = {
            let activity = Arc::clone(&activity);
            tokio::spawn(async move {
                activity
                    .idle(Duration::from_secs(10), Duration::from_secs(30))
                    .await;
            })
        };
        // A request at 5 s that takes 100 s: in progress at the looks at
        // 10, 40, 70 and 100 s.
        tokio::time::sleep(Duration::from_secs(5)).await;
        activity.started();
        tokio::time::sleep(Duration::from_secs(100)).await;
        assert!(
            !watcher.is_finished(),
            "idle while a request was in progress"
        );
        activity.ended();
        // The look at 130 s finds nothing started since 100 s and nothing
        // in flight.
        watcher.await.expect("watcher");
        assert_eq!(start.elapsed(), Duration::from_secs(130));
    }
}
