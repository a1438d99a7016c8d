//! The admin listener: metrics, health and readiness.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{BuildError, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

/// The variable that sets the admin listener's address.
pub const ADMIN_ADDR_ENV: &str = "RICLOUD_WEBHOOK_ADMIN_ADDR";

/// The admin listener's default address: loopback only.
pub const DEFAULT_ADMIN_ADDR: &str = "127.0.0.1:9464";

/// How long one readiness check or scrape hook may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The histograms' buckets, in seconds: from half a millisecond (a
/// verified delivery, a group commit) to half a minute (a slow handler).
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

type Check =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// Why the admin listener could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The Prometheus recorder could not be installed (another recorder is
    /// installed already, for one).
    #[error("cannot install the Prometheus metrics recorder")]
    Recorder(#[source] BuildError),
    /// The address variable is neither an address nor `off`.
    #[error(
        "{ADMIN_ADDR_ENV} must be an address such as {DEFAULT_ADMIN_ADDR}, or `off`, not {0:?}"
    )]
    Addr(String),
}

/// The admin listener's routes: `/metrics`, `/healthz` and `/readyz`.
///
/// Build it once per process with [`Admin::install`], add readiness checks
/// and scrape hooks, then [`serve`](Admin::serve) it or mount its
/// [`router`](Admin::router).
#[derive(Clone)]
pub struct Admin {
    prometheus: PrometheusHandle,
    checks: Vec<(&'static str, Check)>,
    hooks: Vec<Check>,
    routes: Option<Router>,
}

impl Admin {
    /// Installs the Prometheus recorder as the process's `metrics`
    /// recorder, with histograms as buckets, and describes the metrics the
    /// ricloud-webhook crates record.
    ///
    /// # Errors
    /// [`AdminError::Recorder`] when a recorder is installed already.
    pub fn install() -> Result<Self, AdminError> {
        let prometheus = PrometheusBuilder::new()
            .set_buckets(BUCKETS)
            .map_err(AdminError::Recorder)?
            .install_recorder()
            .map_err(AdminError::Recorder)?;
        describe();
        Ok(Self {
            prometheus,
            checks: Vec::new(),
            hooks: Vec::new(),
            routes: None,
        })
    }

    /// Adds a readiness check: `/readyz` answers 503 while it fails (or
    /// takes longer than two seconds), naming it and its error.
    #[must_use]
    pub fn ready_when<F, Fut>(mut self, name: &'static str, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.checks
            .push((name, Arc::new(move || Box::pin(check()))));
        self
    }

    /// Adds a hook run before each scrape of `/metrics`, such as the
    /// inbox's `record_metrics`, which reads its gauges from the database.
    /// A failing hook is logged at DEBUG; the scrape answers what it has.
    #[must_use]
    pub fn before_scrape<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.hooks.push(Arc::new(move || Box::pin(hook())));
        self
    }

    /// Serves `routes` beside the admin listener's own, such as the inbox
    /// console (`ricloud_webhook_inbox::console`).
    #[must_use]
    pub fn routes(mut self, routes: Router) -> Self {
        self.routes = Some(match self.routes.take() {
            Some(before) => before.merge(routes),
            None => routes,
        });
        self
    }

    /// The routes, to serve or to mount in an application's own admin
    /// router.
    pub fn router(mut self) -> Router {
        let extra = self.routes.take();
        let own = Router::new()
            .route("/metrics", get(metrics))
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/readyz", get(ready))
            .with_state(Arc::new(self));
        match extra {
            Some(extra) => own.merge(extra),
            None => own,
        }
    }

    /// Serves the routes on `listener` until `shutdown` resolves.
    ///
    /// # Errors
    /// When the listener fails.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
    }

    /// The metrics in the Prometheus text format, as `/metrics` answers.
    pub async fn render(&self) -> String {
        for hook in &self.hooks {
            match tokio::time::timeout(CHECK_TIMEOUT, hook()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!(error = %e, "a metrics hook failed"),
                Err(_) => tracing::debug!("a metrics hook timed out"),
            }
        }
        self.prometheus.run_upkeep();
        self.prometheus.render()
    }

    /// The failing readiness checks, with their errors; empty when ready.
    pub async fn not_ready(&self) -> Vec<String> {
        let mut failing = Vec::new();
        for (name, check) in &self.checks {
            match tokio::time::timeout(CHECK_TIMEOUT, check()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failing.push(format!("{name}: {e}")),
                Err(_) => failing.push(format!("{name}: no answer within {CHECK_TIMEOUT:?}")),
            }
        }
        failing
    }
}

async fn metrics(State(admin): State<Arc<Admin>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        admin.render().await,
    )
}

async fn ready(State(admin): State<Arc<Admin>>) -> impl IntoResponse {
    let failing = admin.not_ready().await;
    if failing.is_empty() {
        (StatusCode::OK, "ready\n".to_owned())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready\n{}\n", failing.join("\n")),
        )
    }
}

/// The admin listener's address from [`ADMIN_ADDR_ENV`]:
/// [`DEFAULT_ADMIN_ADDR`] when unset or empty, `None` for `off`.
///
/// # Errors
/// [`AdminError::Addr`] for anything else that is not a socket address.
pub fn admin_addr_from_env() -> Result<Option<SocketAddr>, AdminError> {
    admin_addr(&std::env::var(ADMIN_ADDR_ENV).unwrap_or_default())
}

fn admin_addr(value: &str) -> Result<Option<SocketAddr>, AdminError> {
    let value = match value.trim() {
        "" => DEFAULT_ADMIN_ADDR,
        "off" => return Ok(None),
        other => other,
    };
    value
        .parse()
        .map(Some)
        .map_err(|_| AdminError::Addr(value.to_owned()))
}

/// The help texts of the metrics the ricloud-webhook crates record.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "ricloud_webhook_deliveries_total",
        "Answers to deliveries, by status and reason (and config)"
    );
    describe_histogram!(
        "ricloud_webhook_delivery_seconds",
        Unit::Seconds,
        "From a delivery's head to its answer"
    );
    describe_counter!(
        "ricloud_webhook_handler_runs_total",
        "Runs of an event's handlers, by slug and outcome"
    );
    describe_histogram!(
        "ricloud_webhook_handler_seconds",
        Unit::Seconds,
        "How long an event's handlers took, by slug"
    );
    describe_counter!(
        "ricloud_webhook_secret_matched_total",
        "Verified signatures by secret (current, previous): retire a previous secret once it stops counting"
    );
    describe_gauge!(
        "ricloud_webhook_inbox_events",
        "Inbox rows by state, as of the scrape"
    );
    describe_gauge!(
        "ricloud_webhook_inbox_oldest_pending_seconds",
        Unit::Seconds,
        "Age of the oldest pending event, as of the scrape"
    );
    describe_histogram!(
        "ricloud_webhook_inbox_commit_seconds",
        Unit::Seconds,
        "How long one group commit took"
    );
    describe_counter!(
        "ricloud_webhook_inbox_dead_total",
        "Events the inbox's workers gave up on"
    );
}

impl fmt::Debug for Admin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admin")
            .field(
                "checks",
                &self.checks.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            )
            .field("hooks", &self.hooks.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_admin_address_is_loopback_unless_set_and_off_turns_it_off() {
        let default: SocketAddr = DEFAULT_ADMIN_ADDR.parse().expect("an address");
        assert!(default.ip().is_loopback());
        assert_eq!(admin_addr("").expect("valid"), Some(default));
        assert_eq!(admin_addr("off").expect("valid"), None);
        assert_eq!(
            admin_addr("0.0.0.0:9000").expect("valid"),
            Some("0.0.0.0:9000".parse().expect("an address"))
        );
        assert!(matches!(admin_addr("localhost"), Err(AdminError::Addr(_))));
    }

    #[tokio::test]
    async fn readiness_names_each_failing_check() {
        let admin = Admin {
            prometheus: PrometheusBuilder::new().build_recorder().handle(),
            checks: Vec::new(),
            hooks: Vec::new(),
            routes: None,
        }
        .ready_when("fine", || async { Ok(()) })
        .ready_when("database", || async {
            Err("connection refused".to_owned())
        });
        assert_eq!(admin.not_ready().await, ["database: connection refused"]);
    }
}
