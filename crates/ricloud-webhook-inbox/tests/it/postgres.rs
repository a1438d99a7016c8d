//! The inbox on PostgreSQL, with several inboxes (as replicas would be) on
//! one database.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ricloud_webhook::{
    Claim, DeliveryStore, Dispatcher, Enqueued, Event, EventQueue, HandlerError,
};
use ricloud_webhook_inbox::{Inbox, RowState, TxFuture};

use http::StatusCode;
use tokio::sync::Notify;

use crate::faults::{deliver, deliver_at, receiver};
use crate::pg::Pg;
use crate::{body, dispatcher, enqueue, event, eventually, fast, id, until_state, Runs};

/// Delivers `count` events of `slug` numbered from `first` through
/// `receiver` at once, and returns their answers.
async fn deliver_many(
    receiver: &Arc<ricloud_webhook::Receiver>,
    slug: &'static str,
    first: usize,
    count: usize,
) -> Vec<StatusCode> {
    let sends: Vec<_> = (first..first + count)
        .map(|n| {
            let receiver = Arc::clone(receiver);
            tokio::spawn(async move {
                // A frozen writer fails the test rather than hanging it.
                tokio::time::timeout(
                    Duration::from_secs(30),
                    deliver(&receiver, &id(n), body(&id(n), slug)),
                )
                .await
                .unwrap_or(StatusCode::GATEWAY_TIMEOUT)
            })
        })
        .collect();
    let mut answers = Vec::new();
    for send in sends {
        answers.push(send.await.expect("task"));
    }
    answers
}

/// A transactional handler that writes, then holds its transaction for
/// its duration (a slow downstream call inside it).
struct SlowWriter(Duration);

impl ricloud_webhook_inbox::TransactionalHandler for SlowWriter {
    fn call<'c>(
        &'c self,
        event: Arc<Event>,
        connection: &'c mut sqlx::PgConnection,
    ) -> TxFuture<'c> {
        Box::pin(async move {
            sqlx::query("INSERT INTO effects (event_id) VALUES ($1)")
                .bind(event.id.as_str())
                .execute(&mut *connection)
                .await?;
            tokio::time::sleep(self.0).await;
            Ok(())
        })
    }
}

async fn effects_table(url: &str) -> sqlx::PgPool {
    let pool = sqlx::PgPool::connect(url).await.expect("pool");
    sqlx::query("CREATE TABLE effects (event_id TEXT NOT NULL)")
        .execute(&pool)
        .await
        .expect("table");
    pool
}

#[ignore = "needs PostgreSQL: scripts/test.sh installs it and runs these"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_held_across_several_renewals_finishes_while_deliveries_are_answered() {
    let pg = Pg::start();
    let url = pg.database("renewals");
    let inbox = Inbox::connect(&url).await.expect("inbox");
    let effects = effects_table(&url).await;
    // Marking a slow event done takes a second with its row locked: the
    // renewals due meanwhile must neither wait for that lock nor keep the
    // handler's transaction from going on to its commit.
    sqlx::raw_sql(
        "CREATE FUNCTION slow_done() RETURNS trigger AS $$ BEGIN PERFORM pg_sleep(1); RETURN NEW; END $$ LANGUAGE plpgsql; \
         CREATE TRIGGER slow_done BEFORE UPDATE ON ricloud_inbox FOR EACH ROW \
         WHEN (NEW.state = 'done' AND NEW.slug = 'task.created') EXECUTE FUNCTION slow_done();",
    )
    .execute(&effects)
    .await
    .expect("trigger");
    // A 1.5 s lease is renewed every 500 ms: the handler holds its
    // transaction across eight renewals, and one falls in the second its
    // done-update holds the row lock.
    let workers = inbox
        .workers(Dispatcher::new())
        .config(fast().lease(Duration::from_millis(1500)))
        .transactional("task.created", SlowWriter(Duration::from_secs(4)))
        .spawn();
    let receiver = receiver(&inbox);
    assert_eq!(
        deliver_many(&receiver, "task.created", 0, 4).await,
        [StatusCode::OK; 4]
    );
    // While those run: every delivery answered 200.
    for round in 0..10 {
        let answers = deliver_many(&receiver, "task.succeeded", 100 + 20 * round, 20).await;
        assert!(answers.iter().all(|s| *s == StatusCode::OK), "{answers:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eventually("every event done", crate::WAIT, || async {
        inbox.stats().await.is_ok_and(|s| s.done == 204)
    })
    .await;
    workers.shutdown().await;
    for n in 0..4 {
        let row = inbox.get(&id(n)).await.expect("stored").row;
        assert_eq!(
            row.attempts,
            1,
            "{}: the lease was lost and taken again",
            id(n)
        );
    }
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM effects")
        .fetch_one(&effects)
        .await
        .expect("count");
    assert_eq!(count, 4, "each transaction committed once");
}

#[ignore = "needs PostgreSQL: scripts/test.sh installs it and runs these"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_held_outside_the_inbox_makes_the_writer_time_out_and_recover() {
    let pg = Pg::start();
    let url = pg.database("locked");
    let inbox = Inbox::connect(&url).await.expect("inbox");
    let (began, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let runs = Runs::default();
    let handlers = {
        let (began, release, runs) = (Arc::clone(&began), Arc::clone(&release), runs.clone());
        Dispatcher::new().on("task.created", move |event: Arc<Event>| {
            let first = runs.of(&event.id) == 0;
            runs.0.lock().expect("lock").push(event.id.clone());
            let (began, release) = (Arc::clone(&began), Arc::clone(&release));
            async move {
                if first {
                    began.notify_one();
                    release.notified().await;
                }
                Ok(())
            }
        })
    };
    let workers = inbox
        .workers(handlers)
        .config(fast().lease(Duration::from_millis(600)))
        .spawn();
    let locked = id(1);
    enqueue(&inbox, &locked, "task.created").await;
    began.notified().await;
    // Someone else locks the row (an operator's session, a migration).
    let pool = sqlx::PgPool::connect(&url).await.expect("pool");
    let mut outside = pool.begin().await.expect("tx");
    sqlx::query("SELECT 1 FROM ricloud_inbox WHERE event_id = $1 FOR UPDATE")
        .bind(locked.as_str())
        .execute(&mut *outside)
        .await
        .expect("lock");
    // The handler finishes: its "done" waits for the lock, times out, and
    // is answered with an error; the writer goes on.
    release.notify_one();
    let receiver = receiver(&inbox);
    for round in 0..3 {
        let answers = deliver_many(&receiver, "task.succeeded", 100 + 50 * round, 50).await;
        assert!(answers.iter().all(|s| *s == StatusCode::OK), "{answers:?}");
    }
    outside.commit().await.expect("unlock");
    // The row's lease ran out while its outcome could not be written: it
    // is taken again and done.
    until_state(&inbox, &locked, RowState::Done).await;
    assert_eq!(runs.of(&locked), 2);
    workers.shutdown().await;
}

#[ignore = "needs PostgreSQL: scripts/test.sh installs it and runs these"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_slow_transactional_handlers_leave_deliveries_answered() {
    let pg = Pg::start();
    let url = pg.database("pool");
    let inbox = Inbox::connect(&url).await.expect("inbox");
    let effects = effects_table(&url).await;
    // More slow transactional handlers than the pool has connections, each
    // holding its connection longer than a pool's acquire timeout (5 s).
    let workers = inbox
        .workers(Dispatcher::new())
        .config(
            fast()
                .lease(Duration::from_secs(10))
                .transactional_concurrency(6),
        )
        .transactional("task.created", SlowWriter(Duration::from_secs(6)))
        .spawn();
    let receiver = receiver(&inbox);
    assert_eq!(
        deliver_many(&receiver, "task.created", 0, 20).await,
        [StatusCode::OK; 20]
    );
    // While the first six hold their connections (6 s, past a pool's
    // acquire timeout): every delivery answered 200.
    for round in 0..8 {
        let answers = deliver_many(&receiver, "task.succeeded", 100 + 20 * round, 20).await;
        assert!(answers.iter().all(|s| *s == StatusCode::OK), "{answers:?}");
        // Reads and operators' writes find a connection too.
        inbox
            .stats()
            .await
            .expect("stats while the handlers hold connections");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // Four rounds of six slow handlers: about 24 s.
    eventually("every event done", Duration::from_secs(90), || async {
        inbox.stats().await.is_ok_and(|s| s.done == 180)
    })
    .await;
    workers.shutdown().await;
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM effects")
        .fetch_one(&effects)
        .await
        .expect("count");
    assert_eq!(count, 20);
}

#[ignore = "needs PostgreSQL: scripts/test.sh installs it and runs these"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_whose_clocks_differ_by_a_minute_neither_steal_nor_delay() {
    let pg = Pg::start();
    let url = pg.database("clocks");
    let (a, b) = (
        Inbox::connect(&url).await.expect("inbox a"),
        Inbox::connect(&url).await.expect("inbox b"),
    );
    // A holds one event (its handler waits), with a 30 s lease.
    let (began, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let held = {
        let (began, release) = (Arc::clone(&began), Arc::clone(&release));
        Dispatcher::new().on("task.created", move |_: Arc<Event>| {
            let (began, release) = (Arc::clone(&began), Arc::clone(&release));
            async move {
                began.notify_one();
                release.notified().await;
                Ok(())
            }
        })
    };
    let workers_a = a.workers(held).config(fast().concurrency(1)).spawn();
    let live = id(1);
    enqueue(&a, &live, "task.created").await;
    began.notified().await;
    // B's clock is a minute ahead: its deliveries carry that time.
    let runs = Runs::default();
    let workers_b = b.workers(dispatcher(&runs)).config(fast()).spawn();
    let skewed = SystemTime::now() + Duration::from_secs(60);
    let receiver_b = receiver(&b);
    for n in 100..120 {
        let status = deliver_at(&receiver_b, &id(n), body(&id(n), "task.succeeded"), skewed).await;
        assert_eq!(status, StatusCode::OK);
    }
    // Due at once by the database's clock, not a minute later.
    eventually("B's events done", crate::WAIT, || async {
        b.stats().await.is_ok_and(|s| s.done == 20)
    })
    .await;
    // B's workers ran meanwhile and did not take A's live row.
    let row = a.get(&live).await.expect("stored").row;
    assert_eq!((row.state, row.attempts), (RowState::Running, 1));
    assert_eq!(runs.of(&live), 0);
    release.notify_one();
    until_state(&a, &live, RowState::Done).await;
    workers_a.shutdown().await;
    workers_b.shutdown().await;
}

#[ignore = "needs PostgreSQL: scripts/test.sh installs it and runs these"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_inboxes_on_one_database_run_each_event_once() {
    let pg = Pg::start();
    let url = pg.database("replicas");
    let (a, b) = (
        Inbox::connect(&url).await.expect("inbox a"),
        Inbox::connect(&url).await.expect("inbox b"),
    );
    let runs = Runs::default();
    let workers = [
        a.workers(dispatcher(&runs)).config(fast()).spawn(),
        b.workers(dispatcher(&runs)).config(fast()).spawn(),
    ];
    // Every event sent to both at once, twice: one row, one run.
    let mut sends = Vec::new();
    for n in 0..200 {
        for inbox in [&a, &b, &a, &b] {
            let inbox = inbox.clone();
            sends.push(tokio::spawn(async move {
                inbox
                    .enqueue(&event(&id(n), "task.succeeded"), SystemTime::now())
                    .await
                    .expect("committed")
            }));
        }
    }
    let mut new = 0;
    for send in sends {
        if send.await.expect("task") == Enqueued::New {
            new += 1;
        }
    }
    assert_eq!(new, 200, "exactly one delivery of each event inserted it");
    eventually("all 200 events done", crate::WAIT, || async {
        a.stats().await.is_ok_and(|s| s.done == 200)
    })
    .await;
    for n in 0..200 {
        assert_eq!(runs.of(&id(n)), 1, "{}", id(n));
    }
    for w in workers {
        w.shutdown().await;
    }
}

#[ignore = "needs PostgreSQL: scripts/test.sh installs it and runs these"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_workers_lease_runs_out_and_another_takes_the_event_over() {
    let pg = Pg::start();
    let url = pg.database("leases");
    let a = Inbox::connect(&url).await.expect("inbox a");
    let b = Inbox::connect(&url).await.expect("inbox b");
    // A's handler never finishes: A is stuck (as a replica that died would be).
    let started = Arc::new(tokio::sync::Notify::new());
    let s = Arc::clone(&started);
    let stuck = Dispatcher::new().on("*", move |_: Arc<Event>| {
        s.notify_one();
        std::future::pending()
    });
    let config = fast()
        .lease(Duration::from_millis(600))
        .shutdown_grace(Duration::ZERO);
    let workers_a = a.workers(stuck).config(config.clone()).spawn();
    enqueue(&a, &id(1), "task.succeeded").await;
    started.notified().await;
    // A stops without settling: its lease is not renewed any more.
    workers_a.shutdown().await;
    let held = a.get(&id(1)).await.expect("stored").row;
    assert_eq!(held.state, RowState::Running);
    let runs = Runs::default();
    let workers_b = b.workers(dispatcher(&runs)).config(config).spawn();
    until_state(&b, &id(1), RowState::Done).await;
    assert_eq!(runs.of(&id(1)), 1);
    let done = b.get(&id(1)).await.expect("stored").row;
    assert_eq!(done.attempts, 2);
    workers_b.shutdown().await;
}

#[ignore = "needs PostgreSQL: scripts/test.sh installs it and runs these"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_dedup_is_shared_by_every_inbox_on_the_database() {
    let pg = Pg::start();
    let url = pg.database("inline");
    let a = Inbox::connect(&url).await.expect("inbox a");
    let b = Inbox::connect(&url).await.expect("inbox b");
    let now = SystemTime::now();
    let e = event(&id(1), "task.succeeded");
    assert!(matches!(a.claim(&e, now).await, Ok(Claim::Claimed)));
    assert!(matches!(b.claim(&e, now).await, Ok(Claim::Busy)));
    a.finish(&id(1), true, now).await.expect("finish");
    assert!(matches!(b.claim(&e, now).await, Ok(Claim::AlreadyHandled)));

    // B's clock is a minute ahead of A's: leases run by the database's
    // clock, so B does not take A's live claim.
    let e = event(&id(2), "task.succeeded");
    assert!(matches!(a.claim(&e, now).await, Ok(Claim::Claimed)));
    let skewed = now + Duration::from_secs(61);
    assert!(matches!(b.claim(&e, skewed).await, Ok(Claim::Busy)));
    // Fencing: A's claim runs out (expired in the database), B takes the
    // event over; A's late release changes nothing, B's outcome stands.
    assert_eq!(a.take_back_abandoned().await.expect("expire"), 1);
    assert!(matches!(b.claim(&e, skewed).await, Ok(Claim::Claimed)));
    let later = now;
    a.finish(&id(2), false, later).await.expect("a late finish");
    let row = b.get(&id(2)).await.expect("still there").row;
    assert_eq!(row.state, RowState::Running);
    b.finish(&id(2), true, later).await.expect("finish");
    assert_eq!(
        b.get(&id(2)).await.expect("stored").row.state,
        RowState::Done
    );
}

#[ignore = "needs PostgreSQL: scripts/test.sh installs it and runs these"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactional_handlers_commit_with_done_or_not_at_all() {
    let pg = Pg::start();
    let url = pg.database("transactional");
    let inbox = Inbox::connect(&url).await.expect("inbox");
    let pool = sqlx::PgPool::connect(&url).await.expect("pool");
    sqlx::query("CREATE TABLE effects (event_id TEXT NOT NULL)")
        .execute(&pool)
        .await
        .expect("table");
    fn record<'c>(event: Arc<Event>, connection: &'c mut sqlx::PgConnection) -> TxFuture<'c> {
        Box::pin(async move {
            sqlx::query("INSERT INTO effects (event_id) VALUES ($1)")
                .bind(event.id.as_str())
                .execute(&mut *connection)
                .await?;
            if event.action == "failed" {
                return Err(HandlerError::retry("the write must not stay"));
            }
            Ok(())
        })
    }
    let runs = Runs::default();
    let workers = inbox
        .workers(Dispatcher::new())
        .config(fast())
        .transactional("task.*", record)
        .spawn();
    let _ = runs;
    enqueue(&inbox, &id(1), "task.succeeded").await;
    enqueue(&inbox, &id(2), "task.created").await;
    // Its transactional handler fails: the insert is rolled back each time.
    enqueue(&inbox, &id(3), "task.failed").await;
    until_state(&inbox, &id(1), RowState::Done).await;
    until_state(&inbox, &id(2), RowState::Done).await;
    until_state(&inbox, &id(3), RowState::Dead).await;
    workers.shutdown().await;
    let effects: Vec<String> = sqlx::query_scalar("SELECT event_id FROM effects ORDER BY event_id")
        .fetch_all(&pool)
        .await
        .expect("effects");
    assert_eq!(effects, [id(1), id(2)]);
}

#[ignore = "needs PostgreSQL: scripts/test.sh installs it and runs these"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_goes_away_is_an_error_and_comes_back_without_a_restart() {
    let pg = Pg::start();
    let url = pg.url();
    let inbox = Inbox::connect(&url).await.expect("inbox");
    assert_eq!(
        enqueue(&inbox, &id(1), "task.succeeded").await,
        Enqueued::New
    );
    pg.stop();
    let down = inbox
        .enqueue(&event(&id(2), "task.succeeded"), SystemTime::now())
        .await;
    assert!(
        down.is_err(),
        "an event acknowledged with the database down"
    );
    pg.start_server();
    eventually("the inbox to commit again", crate::WAIT, || async {
        inbox
            .enqueue(&event(&id(2), "task.succeeded"), SystemTime::now())
            .await
            .is_ok()
    })
    .await;
    assert_eq!(inbox.stats().await.expect("stats").pending, 2);
}
