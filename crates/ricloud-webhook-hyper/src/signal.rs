//! The signals that ask a server to stop, as one future for [`serve`]'s
//! shutdown argument.
//!
//! [`serve`]: crate::serve

use std::future::Future;
use std::io;

/// A future that resolves when the process is asked to stop: Ctrl-C
/// (SIGINT), SIGTERM, or SIGHUP (its terminal closed) on unix; Ctrl-C
/// elsewhere.
///
/// The signals are watched from this call on, so call it before serving:
/// a signal that arrives between the call and the first poll is not lost.
///
/// ```no_run
/// # async fn run(listener: tokio::net::TcpListener, service: ricloud_webhook_hyper::WebhookService) -> Result<(), Box<dyn std::error::Error>> {
/// ricloud_webhook_hyper::serve(listener, service, ricloud_webhook_hyper::shutdown_signal()?).await?;
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// When the signal handlers cannot be installed.
pub fn shutdown_signal() -> io::Result<impl Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        let mut hangup = signal(SignalKind::hangup())?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
                _ = hangup.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

/// A future that resolves when the process is asked to stop (Ctrl-C or
/// SIGTERM), calling `reload` on each SIGHUP meanwhile: for a server that
/// reloads its TLS certificate ([`TlsFiles::reload`](crate::TlsFiles::reload))
/// or other files on SIGHUP instead of stopping. Elsewhere than unix, as
/// [`shutdown_signal`].
///
/// # Errors
/// When the signal handlers cannot be installed.
pub fn reload_or_shutdown_signal(
    reload: impl Fn() + Send + 'static,
) -> io::Result<impl Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        let mut hangup = signal(SignalKind::hangup())?;
        Ok(async move {
            loop {
                tokio::select! {
                    _ = interrupt.recv() => return,
                    _ = terminate.recv() => return,
                    _ = hangup.recv() => reload(),
                }
            }
        })
    }
    #[cfg(not(unix))]
    {
        let _ = reload;
        shutdown_signal()
    }
}
