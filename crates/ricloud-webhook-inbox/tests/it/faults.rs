//! The inbox's promises under faults, on both engines: one bad row does not
//! sink its batch, a stale run cannot settle, a handler's error of any size
//! or content is stored.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue, Method, StatusCode};
use ricloud_webhook::{
    sign, Delivery, Dispatcher, Event, EventQueue, HandlerError, Receiver, Secret, Verifier,
};
use ricloud_webhook_inbox::{Inbox, RowState};
use tokio::sync::Notify;

use crate::{body, dispatcher, event, eventually, fast, id, until_state, Runs};

/// A database for one test: a SQLite file or a PostgreSQL cluster's
/// database, kept alive as long as the value.
pub(crate) enum Engine {
    #[cfg(feature = "sqlite")]
    Sqlite(crate::TempDir),
    #[cfg(feature = "postgres")]
    Postgres(crate::pg::Pg),
}

impl Engine {
    #[cfg(feature = "sqlite")]
    pub(crate) fn sqlite(name: &str) -> Self {
        Self::Sqlite(crate::TempDir::new(name))
    }

    #[cfg(feature = "postgres")]
    pub(crate) fn postgres() -> Self {
        Self::Postgres(crate::pg::Pg::start())
    }

    /// `sqlite` or `postgres`.
    fn name(&self) -> &'static str {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite(_) => "sqlite",
            #[cfg(feature = "postgres")]
            Self::Postgres(_) => "postgres",
        }
    }

    pub(crate) fn url(&self) -> String {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite(dir) => dir.sqlite_url(),
            #[cfg(feature = "postgres")]
            Self::Postgres(pg) => pg.url(),
        }
    }

    /// A trigger that makes the database refuse any row whose slug is
    /// `poison.pill`: a failing operation the receiver cannot foresee.
    async fn refuse_poison(&self) {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite(dir) => {
                let pool = sqlx::SqlitePool::connect(&dir.sqlite_url())
                    .await
                    .expect("sqlite");
                sqlx::query(
                    "CREATE TRIGGER refuse_poison BEFORE INSERT ON ricloud_inbox \
                     WHEN NEW.slug = 'poison.pill' BEGIN SELECT RAISE(ABORT, 'poison'); END",
                )
                .execute(&pool)
                .await
                .expect("trigger");
            }
            #[cfg(feature = "postgres")]
            Self::Postgres(pg) => {
                let pool = sqlx::PgPool::connect(&pg.url()).await.expect("postgres");
                sqlx::raw_sql(
                    "CREATE FUNCTION refuse_poison() RETURNS trigger AS $$ BEGIN \
                     IF NEW.slug = 'poison.pill' THEN RAISE EXCEPTION 'poison'; END IF; RETURN NEW; \
                     END $$ LANGUAGE plpgsql; \
                     CREATE TRIGGER refuse_poison BEFORE INSERT ON ricloud_inbox \
                     FOR EACH ROW EXECUTE FUNCTION refuse_poison();",
                )
                .execute(&pool)
                .await
                .expect("trigger");
            }
        }
    }
}

const SECRET: &str = "EZVNcphl95WzskoobnuXh_28qCZG_blz";

/// A queued receiver on `inbox` for [`SECRET`].
pub(crate) fn receiver(inbox: &Inbox) -> Arc<Receiver> {
    Arc::new(Receiver::queued(
        Verifier::new(Secret::new(SECRET).expect("secret")),
        inbox.clone(),
    ))
}

/// Answers `body` signed with [`SECRET`] from `receiver`, as a delivery to
/// `/webhooks/<id>`.
pub(crate) async fn deliver(receiver: &Receiver, id: &str, body: Vec<u8>) -> StatusCode {
    deliver_at(receiver, id, body, SystemTime::now()).await
}

/// As [`deliver`], on a receiver whose clock says `now`.
pub(crate) async fn deliver_at(
    receiver: &Receiver,
    id: &str,
    body: Vec<u8>,
    now: SystemTime,
) -> StatusCode {
    let t = now
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let secret = Secret::new(SECRET).expect("secret");
    let mut headers = HeaderMap::new();
    let header = sign(&secret, t, &body).to_string();
    headers.insert(
        "ricloud-signature",
        HeaderValue::from_str(&header).expect("header"),
    );
    let path = format!("/webhooks/{id}");
    let delivery = Delivery {
        method: &Method::POST,
        path: &path,
        headers: &headers,
        body: body.into(),
    };
    receiver.receive_at(delivery, now).await.status()
}

async fn nul_typed_event_among_300_good_ones(engine: Engine) {
    let inbox = Inbox::connect(&engine.url()).await.expect("inbox");
    let receiver = receiver(&inbox);
    let runs = Runs::default();
    let workers = inbox.workers(dispatcher(&runs)).config(fast()).spawn();
    let poisoned = id(1_000);
    let nul =
        br#"{"id":"ID","resource":"event","type":"po\u0000ll","action":"completed","data":{}}"#;
    let bad = String::from_utf8_lossy(nul)
        .replace("ID", &poisoned)
        .into_bytes();
    let mut sends = Vec::new();
    for n in 0..=300 {
        let receiver = Arc::clone(&receiver);
        let (event_id, event_body) = if n == 150 {
            (poisoned.clone(), bad.clone())
        } else {
            (id(n), body(&id(n), "task.succeeded"))
        };
        sends.push(tokio::spawn(async move {
            (
                event_id.clone(),
                deliver(&receiver, &event_id, event_body).await,
            )
        }));
    }
    for send in sends {
        let (event_id, status) = send.await.expect("task");
        if event_id == poisoned {
            assert_eq!(status, StatusCode::BAD_REQUEST, "the NUL-typed event");
        } else {
            assert_eq!(status, StatusCode::OK, "{event_id}");
        }
    }
    eventually("the 300 good events done", crate::WAIT, || async {
        inbox.stats().await.is_ok_and(|s| s.done == 300)
    })
    .await;
    for n in (0..=300).filter(|n| *n != 150) {
        assert_eq!(runs.of(&id(n)), 1, "{}", id(n));
    }
    assert!(
        inbox.get(&poisoned).await.is_err(),
        "the bad one is not stored"
    );
    workers.shutdown().await;
}

async fn a_row_the_database_refuses_fails_alone(engine: Engine) {
    let inbox = Inbox::connect(&engine.url()).await.expect("inbox");
    engine.refuse_poison().await;
    let mut sends = Vec::new();
    for n in 0..=300 {
        let inbox = inbox.clone();
        let slug = if n == 150 {
            "poison.pill"
        } else {
            "task.succeeded"
        };
        sends.push(tokio::spawn(async move {
            let e = event(&id(n), slug);
            (n, inbox.enqueue(&e, SystemTime::now()).await)
        }));
    }
    for send in sends {
        let (n, result) = send.await.expect("task");
        if n == 150 {
            assert!(result.is_err(), "the refused row was acknowledged");
        } else {
            assert!(result.is_ok(), "{}: {:?}", id(n), result.err());
        }
    }
    let stats = inbox.stats().await.expect("stats");
    assert_eq!(stats.pending, 300);
}

/// A message with a NUL and 100 KiB of text.
fn poison_message() -> String {
    format!("bad\0byte {}", "é".repeat(50 * 1024))
}

async fn a_handler_error_with_a_nul_and_100_kib_is_stored(engine: Engine) {
    let inbox = Inbox::connect(&engine.url()).await.expect("inbox");
    let runs = Runs::default();
    let r = runs.clone();
    let handlers = Dispatcher::new().on("*", move |event: Arc<Event>| {
        r.0.lock().expect("lock").push(event.id.clone());
        let failing = event.action == "failed";
        async move {
            if failing {
                Err(HandlerError::retry(poison_message()))
            } else {
                Ok(())
            }
        }
    });
    for n in 0..100 {
        crate::enqueue(&inbox, &id(n), "task.succeeded").await;
    }
    crate::enqueue(&inbox, &id(100), "task.failed").await;
    let workers = inbox.workers(handlers).config(fast()).spawn();
    until_state(&inbox, &id(100), RowState::Dead).await;
    eventually("the other 100 events done", crate::WAIT, || async {
        inbox.stats().await.is_ok_and(|s| s.done == 100)
    })
    .await;
    workers.shutdown().await;
    for n in 0..100 {
        assert_eq!(runs.of(&id(n)), 1, "{}", id(n));
    }
    // Retried, then dead at max_attempts (3), not re-taken forever.
    assert_eq!(runs.of(&id(100)), 3);
    let row = inbox.get(&id(100)).await.expect("stored").row;
    assert_eq!(row.attempts, 3);
    let error = row.last_error.expect("the handler's error");
    assert!(error.len() <= 4096, "{} bytes", error.len());
    assert!(!error.contains('\0'));
    assert!(error.contains("badbyte éé"), "{}", &error[..60]);
}

/// Two runs of one event: the first is stuck, its lease is expired in the
/// database and the event taken again; the first run's late "dead" is
/// refused and logged, the second run's "done" stands.
async fn a_stale_run_cannot_settle(engine: Engine) {
    let logs = crate::logs();
    let inbox = Inbox::connect(&engine.url()).await.expect("inbox");
    let started = Arc::new(AtomicUsize::new(0));
    let gates: [(Arc<Notify>, Arc<Notify>); 2] = Default::default();
    let handlers = {
        let started = Arc::clone(&started);
        let gates = gates.clone();
        Dispatcher::new().on("*", move |_: Arc<Event>| {
            let run = started.fetch_add(1, Ordering::SeqCst);
            let (began, release) = gates[run.min(1)].clone();
            async move {
                began.notify_one();
                release.notified().await;
                if run == 0 {
                    Err(HandlerError::give_up("the stale run gives up"))
                } else {
                    Ok(())
                }
            }
        })
    };
    let workers = inbox.workers(handlers).config(fast()).spawn();
    // An id of this test's own: the log is shared by the test binary.
    let stale = format!("stale-{}", engine.name());
    crate::enqueue(&inbox, &stale, "task.succeeded").await;
    gates[0].0.notified().await;
    // The first run's lease runs out (a late renewal, a blocked thread):
    // the same process takes the event again.
    assert_eq!(inbox.take_back_abandoned().await.expect("expire"), 1);
    gates[1].0.notified().await;
    // The stale run ends with "dead": refused, and said so.
    gates[0].1.notify_one();
    eventually(
        "the stale outcome's refusal to be logged",
        crate::WAIT,
        || async { logs.contains(&["outcome refused", &stale]) },
    )
    .await;
    let row = inbox.get(&stale).await.expect("stored").row;
    assert_eq!(row.state, RowState::Running, "a stale run settled the row");
    assert_eq!((row.attempts, row.last_error), (2, None));
    gates[1].1.notify_one();
    until_state(&inbox, &stale, RowState::Done).await;
    let row = inbox.get(&stale).await.expect("stored").row;
    assert_eq!(row.last_error, None, "the stale run's error");
    workers.shutdown().await;
}

/// A failure's error is cleared when the event later succeeds.
async fn a_stale_error_is_cleared_on_success(engine: Engine) {
    let inbox = Inbox::connect(&engine.url()).await.expect("inbox");
    let failures = Arc::new(AtomicUsize::new(0));
    let f = Arc::clone(&failures);
    let handlers = Dispatcher::new().on("*", move |_: Arc<Event>| {
        let first = f.fetch_add(1, Ordering::SeqCst) == 0;
        async move {
            if first {
                Err(HandlerError::retry("not yet"))
            } else {
                Ok(())
            }
        }
    });
    let workers = inbox.workers(handlers).config(fast()).spawn();
    crate::enqueue(&inbox, &id(1), "task.succeeded").await;
    until_state(&inbox, &id(1), RowState::Done).await;
    workers.shutdown().await;
    let row = inbox.get(&id(1)).await.expect("stored").row;
    assert_eq!(row.attempts, 2);
    assert_eq!(row.last_error, None);
}

macro_rules! on_both_engines {
    ($($test:ident),* $(,)?) => {
        #[cfg(feature = "sqlite")]
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::Engine::sqlite(stringify!($test))).await;
                }
            )*
        }
        #[cfg(feature = "postgres")]
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[ignore = "needs PostgreSQL: scripts/test.sh installs it and runs these"]
                async fn $test() {
                    super::$test(super::Engine::postgres()).await;
                }
            )*
        }
    };
}

on_both_engines!(
    nul_typed_event_among_300_good_ones,
    a_row_the_database_refuses_fails_alone,
    a_handler_error_with_a_nul_and_100_kib_is_stored,
    a_stale_run_cannot_settle,
    a_stale_error_is_cleared_on_success,
);
