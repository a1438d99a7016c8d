//! Serving the endpoint on a TCP listener, with limits and graceful shutdown.

use std::future::Future;
use std::io;
use std::sync::Arc;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::WebhookService;

/// Serves `service` on `listener` until `shutdown` resolves, then shuts down
/// gracefully.
///
/// Speaks HTTP/1.1 (keep-alive) and HTTP/2 on the same listener. Closes a
/// connection that does not send its request headers within
/// [`Config::header_read_timeout`](crate::Config::header_read_timeout), and
/// holds at most [`Config::max_connections`](crate::Config::max_connections)
/// connections (more wait in the listen backlog).
///
/// On shutdown it stops accepting, makes the receiver answer 503 to new
/// deliveries, and lets in-flight deliveries finish for up to
/// [`Config::shutdown_grace`](crate::Config::shutdown_grace).
///
/// # Errors
/// Only an error of the listener itself (not of one connection) ends the
/// loop early; the shutdown still runs.
pub async fn serve(
    listener: TcpListener,
    service: WebhookService,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let config = service.config().clone();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .keep_alive(true)
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let connections = Arc::new(Semaphore::new(config.max_connections));
    let graceful = GracefulShutdown::new();

    tokio::pin!(shutdown);
    let result = loop {
        let permit = tokio::select! {
            () = &mut shutdown => break Ok(()),
            permit = Arc::clone(&connections).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break Ok(()),
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_per_connection(&e) => {
                    tracing::debug!(error = %e, "accept failed for one connection");
                    continue;
                }
                Err(e) => break Err(e),
            },
        };
        let _ = stream.set_nodelay(true);
        let connection = builder
            .serve_connection(TokioIo::new(stream), service.clone())
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    };

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
    result
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
    ) || e.raw_os_error() == Some(24) // EMFILE: too many open files, retry later
}
