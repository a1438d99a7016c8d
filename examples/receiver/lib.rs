//! The handlers and set-up shared by the `receiver` example and its tests.
//!
//! Run the example with `cargo run --release --bin receiver`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ricloud_webhook::{
    ConfigNameError, Dispatcher, Event, HandlerError, HandlerResult, Poll, Secret, SecretError,
    Session, Task, Verifier, Verifiers, WebhookConfig,
};

/// Where handled events are reported (the example prints them on stdout).
pub type Report = Arc<dyn Fn(String) + Send + Sync>;

/// A typed handler for every documented slug and a catch-all for the rest;
/// each reports one line with the slug and the event id, after `delay`
/// (zero but for tests that need a handler to be running when they act).
pub fn dispatcher(report: Report, delay: Duration) -> Dispatcher {
    dispatcher_failing_while(report, delay, None)
}

/// [`dispatcher`], whose `task.failed` handler gives up on its event while
/// the file `fail_while` exists (for tests: an event that goes dead, then
/// succeeds once replayed).
pub fn dispatcher_failing_while(
    report: Report,
    delay: Duration,
    fail_while: Option<PathBuf>,
) -> Dispatcher {
    /// Reports `detail` for `event` once `delay` has passed.
    async fn line(
        report: Report,
        delay: Duration,
        event: Arc<Event>,
        detail: String,
    ) -> HandlerResult {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        match event.config() {
            Some(config) => report(format!(
                "handled {} {} config={config} {detail}",
                event.slug(),
                event.id
            )),
            None => report(format!("handled {} {} {detail}", event.slug(), event.id)),
        }
        Ok(())
    }
    let r = Arc::clone(&report);
    let mut dispatcher = Dispatcher::new().on(
        "webhook_config.test",
        move |(config, event): (WebhookConfig, Arc<Event>)| {
            line(
                Arc::clone(&r),
                delay,
                event,
                format!("config={}", config.id),
            )
        },
    );
    for slug in ["task.created", "task.succeeded", "task.failed"] {
        let r = Arc::clone(&report);
        let fail_while = fail_while.clone().filter(|_| slug == "task.failed");
        dispatcher = dispatcher.on(slug, move |(task, event): (Task, Arc<Event>)| {
            let results = task.results.data.len();
            let failing = fail_while.as_ref().filter(|f| f.exists()).cloned();
            let r = Arc::clone(&r);
            async move {
                if let Some(file) = failing {
                    return Err(HandlerError::give_up(format!(
                        "downstream refused task {} (the test's {} exists)",
                        task.id,
                        file.display()
                    )));
                }
                line(
                    r,
                    delay,
                    event,
                    format!("task={} results={results}", task.id),
                )
                .await
            }
        });
    }
    for slug in ["poll.created", "poll.completed"] {
        let r = Arc::clone(&report);
        dispatcher = dispatcher.on(slug, move |(poll, event): (Poll, Arc<Event>)| {
            line(Arc::clone(&r), delay, event, format!("poll={}", poll.id))
        });
    }
    let r = Arc::clone(&report);
    dispatcher = dispatcher.on(
        "session.expired",
        move |(session, event): (Session, Arc<Event>)| {
            line(
                Arc::clone(&r),
                delay,
                event,
                format!("session={}", session.id),
            )
        },
    );
    dispatcher.on("*", move |event: Arc<Event>| {
        let r = Arc::clone(&report);
        async move {
            if event.slug_label() != "other" {
                return Ok(());
            }
            line(r, delay, event, "(no typed view)".to_owned()).await
        }
    })
}

/// A verifier for the current secret and an optional previous one.
///
/// # Errors
/// When a secret is empty.
pub fn verifier(current: String, previous: Option<String>) -> Result<Verifier, SecretError> {
    let mut verifier = Verifier::new(Secret::new(current)?);
    if let Some(previous) = previous {
        verifier = verifier.previous_secret(Secret::new(previous)?);
    }
    Ok(verifier)
}

/// Why the webhook configs in the environment cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum ConfigsError {
    /// A config's name is refused.
    #[error(transparent)]
    Name(#[from] ConfigNameError),
    /// A config has no secret.
    #[error("the webhook config {name:?} needs its secret in {variable}")]
    NoSecret {
        /// The config.
        name: String,
        /// The variable to set.
        variable: String,
    },
    /// A secret is refused.
    #[error("the secret of the webhook config {name:?}")]
    Secret {
        /// The config.
        name: String,
        /// Why.
        #[source]
        source: SecretError,
    },
}

/// The configs named in `RICLOUD_WEBHOOK_CONFIGS` (`default,billing`), each
/// with its secret in `RICLOUD_WEBHOOK_SECRET_<NAME>` and an optional
/// previous one in `RICLOUD_WEBHOOK_PREVIOUS_SECRET_<NAME>` (the name in
/// upper case, `-` as `_`); `None` when the list is unset. `env` reads a
/// non-empty variable.
///
/// # Errors
/// [`ConfigsError`] for a bad name, a name given twice, or a missing or
/// empty secret.
pub fn verifiers_from_env(
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<Verifiers>, ConfigsError> {
    let Some(list) = env("RICLOUD_WEBHOOK_CONFIGS") else {
        return Ok(None);
    };
    let mut verifiers = Verifiers::named();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let suffix = name.to_ascii_uppercase().replace('-', "_");
        let variable = format!("RICLOUD_WEBHOOK_SECRET_{suffix}");
        let secret = env(&variable).ok_or_else(|| ConfigsError::NoSecret {
            name: name.to_owned(),
            variable,
        })?;
        let previous = env(&format!("RICLOUD_WEBHOOK_PREVIOUS_SECRET_{suffix}"));
        let verifier = verifier(secret, previous).map_err(|source| ConfigsError::Secret {
            name: name.to_owned(),
            source,
        })?;
        verifiers = verifiers.config(name, verifier)?;
    }
    Ok(Some(verifiers))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(vars: &[(&str, &str)]) -> Result<Option<Verifiers>, ConfigsError> {
        verifiers_from_env(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn configs_come_with_their_own_secrets() {
        assert!(from(&[]).expect("no list").is_none());
        let both = from(&[
            ("RICLOUD_WEBHOOK_CONFIGS", "default, billing-eu"),
            ("RICLOUD_WEBHOOK_SECRET_DEFAULT", "a"),
            ("RICLOUD_WEBHOOK_SECRET_BILLING_EU", "b"),
        ])
        .expect("valid")
        .expect("named");
        assert_eq!(both.names().collect::<Vec<_>>(), ["default", "billing-eu"]);
        let missing = from(&[
            ("RICLOUD_WEBHOOK_CONFIGS", "default,billing"),
            ("RICLOUD_WEBHOOK_SECRET_DEFAULT", "a"),
        ]);
        assert!(
            matches!(&missing, Err(ConfigsError::NoSecret { variable, .. }) if variable == "RICLOUD_WEBHOOK_SECRET_BILLING"),
            "{missing:?}"
        );
        let bad = from(&[
            ("RICLOUD_WEBHOOK_CONFIGS", "a/b"),
            ("RICLOUD_WEBHOOK_SECRET_A/B", "a"),
        ]);
        assert!(matches!(bad, Err(ConfigsError::Name(_))), "{bad:?}");
    }
}
