//! The webhook endpoint mounted in an axum application:
//! `RICLOUD_WEBHOOK_SECRET=... cargo run -p ricloud-webhook-hyper --example axum`.
//!
//! What [`serve`](ricloud_webhook_hyper::serve) does that an application of
//! its own must then do itself:
//!
//! - **the prefix**: the service sees the whole path and matches it against
//!   `Config::prefix`, so the route and the prefix must agree (a request
//!   outside it is answered 404, said once at WARN);
//! - **shutdown**: call `begin_shutdown` on the receiver when the server
//!   starts draining, so new deliveries get 503 and the API retries them;
//! - **`/healthz`** for a load balancer: `serve` answers it, axum does only
//!   if routed (the service answers it too when asked that path);
//! - **connection limits** (connections per address, idle and header
//!   timeouts): those of `serve` do not apply; set them in axum's server or
//!   the proxy in front.

use ricloud_webhook::{Dispatcher, Receiver, Secret, Task, Verifier};
use ricloud_webhook_hyper::{Config, WebhookService};

/// The application: its own routes, and deliveries at `/hooks/ricloud/<event id>`.
pub fn app(service: WebhookService) -> axum::Router {
    axum::Router::new()
        .route("/", axum::routing::get(|| async { "the rest of the app" }))
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route_service("/hooks/ricloud/{id}", service)
}

/// The webhook service, its prefix the route's.
pub fn service(secret: Secret) -> WebhookService {
    let dispatcher = Dispatcher::new().on("task.succeeded", |task: Task| async move {
        println!("task {} succeeded", task.id);
        Ok(())
    });
    WebhookService::with_config(
        Receiver::new(Verifier::new(secret), dispatcher),
        Config::default().prefix("/hooks/ricloud"),
    )
}

/// Serves `service` in the application until `shutdown`, turning away new
/// deliveries (503) as soon as it begins.
///
/// # Errors
/// When the listener fails.
pub async fn run(
    listener: tokio::net::TcpListener,
    service: WebhookService,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let draining = service.clone();
    axum::serve(listener, app(service))
        .with_graceful_shutdown(async move {
            shutdown.await;
            draining.receiver().begin_shutdown();
        })
        .await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secret = Secret::new(std::env::var("RICLOUD_WEBHOOK_SECRET")?)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
    println!("deliveries at http://127.0.0.1:8080/hooks/ricloud/<event id>");
    run(
        listener,
        service(secret),
        ricloud_webhook_hyper::shutdown_signal()?,
    )
    .await?;
    Ok(())
}
