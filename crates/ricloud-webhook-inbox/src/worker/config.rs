//! How workers run stored events: [`WorkerConfig`], and the retry
//! schedule it gives (backon's exponential backoff with jitter).

use std::time::Duration;

use backon::{BackoffBuilder as _, ExponentialBuilder};

/// How workers run stored events.
///
/// ```
/// use std::time::Duration;
/// use ricloud_webhook_inbox::WorkerConfig;
///
/// let config = WorkerConfig::default()
///     .concurrency(16)
///     .max_attempts(5)
///     .lease(Duration::from_secs(60));
/// # let _ = config;
/// ```
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub(crate) concurrency: usize,
    pub(crate) lease: Duration,
    pub(crate) poll: Duration,
    pub(crate) max_attempts: u32,
    pub(crate) backoff_base: Duration,
    pub(crate) backoff_max: Duration,
    pub(crate) retention: Duration,
    pub(crate) shutdown_grace: Duration,
    pub(crate) transactional_concurrency: usize,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            concurrency: 128,
            lease: Duration::from_secs(30),
            poll: Duration::from_secs(2),
            max_attempts: 8,
            backoff_base: Duration::from_secs(2),
            backoff_max: Duration::from_secs(15 * 60),
            retention: Duration::from_secs(7 * 24 * 60 * 60),
            shutdown_grace: Duration::from_secs(30),
            transactional_concurrency: 4,
        }
    }
}

impl WorkerConfig {
    /// Events run at once in this process (default 128). Lower it when
    /// the handlers hold a scarce resource (a small connection pool): each
    /// running event holds a handler. A take waits for a commit, so too few
    /// slots make the workers fall behind a busy receiver.
    #[must_use]
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// How long a worker holds a row it runs (default 30 s). It renews the
    /// lease every third of that while the handlers run; a worker that
    /// dies lets it run out, and another worker (of any replica) takes the
    /// row over.
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(300));
        self
    }

    /// How often workers look for due rows without being woken (default
    /// 2 s): rows made due by another process (a replay from the CLI,
    /// another replica) or by time (a retry's backoff).
    #[must_use]
    pub fn poll(mut self, every: Duration) -> Self {
        self.poll = every.max(Duration::from_millis(10));
        self
    }

    /// Runs of an event before it is given up on as `dead` (default 8).
    #[must_use]
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// The first retry's delay (default 2 s), doubled for each attempt up
    /// to [`WorkerConfig::backoff_max`]; backon's jitter adds up to as much
    /// again, so that retries of many events spread out.
    #[must_use]
    pub fn backoff_base(mut self, base: Duration) -> Self {
        self.backoff_base = base;
        self
    }

    /// The longest retry delay before jitter (default 15 minutes).
    #[must_use]
    pub fn backoff_max(mut self, max: Duration) -> Self {
        self.backoff_max = max;
        self
    }

    /// How long `done` rows are kept before the workers delete them
    /// (default 7 days; checked hourly). `dead` rows are kept.
    #[must_use]
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// How long [`Workers::shutdown`](crate::Workers::shutdown) lets running handlers finish
    /// (default 30 s).
    #[must_use]
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// Transactional handlers run at once (PostgreSQL; default 4, at most
    /// 6). Each holds a connection of the inbox's shared pool of 8 for its
    /// transaction; the cap leaves connections for reads and operators'
    /// writes, and the writer and the `LISTEN` connection have their own,
    /// so slow transactional handlers never hold up deliveries. Events
    /// waiting for a slot keep their leases.
    #[must_use]
    pub fn transactional_concurrency(mut self, n: usize) -> Self {
        let most = usize::try_from(crate::db::POOL_SIZE).unwrap_or(8) - 2;
        self.transactional_concurrency = n.clamp(1, most);
        self
    }

    /// The delay before a retry after `attempts` runs: the `attempts`th
    /// step of backon's exponential backoff, with its jitter.
    pub(super) fn backoff(&self, attempts: u32) -> Duration {
        let steps = usize::try_from(attempts.saturating_sub(1)).unwrap_or(usize::MAX);
        ExponentialBuilder::default()
            .with_min_delay(self.backoff_base)
            .with_max_delay(self.backoff_max)
            .with_jitter()
            .without_max_times()
            .build()
            // Past the cap every step is the cap: no need to walk there.
            .nth(steps.min(64))
            .unwrap_or(self.backoff_max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap_with_jitter() {
        let config = WorkerConfig::default()
            .backoff_base(Duration::from_secs(2))
            .backoff_max(Duration::from_secs(60));
        let secs = Duration::from_secs;
        for (attempts, step) in [
            (1, secs(2)),
            (2, secs(4)),
            (4, secs(16)),
            (10, secs(60)),
            (u32::MAX, secs(60)),
        ] {
            for _ in 0..50 {
                let delay = config.backoff(attempts);
                assert!(
                    (step..step * 2).contains(&delay),
                    "attempt {attempts}: {delay:?} outside [{step:?}, {:?})",
                    step * 2
                );
            }
        }
    }
}
