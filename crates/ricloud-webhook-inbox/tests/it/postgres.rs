//! The inbox on PostgreSQL, with several inboxes (as replicas would be) on
//! one database.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ricloud_webhook::{
    Claim, DeliveryStore, Dispatcher, Enqueued, Event, EventQueue, HandlerError,
};
use ricloud_webhook_inbox::{Inbox, RowState, TxFuture};

use crate::pg::Pg;
use crate::{dispatcher, enqueue, event, eventually, fast, id, until_state, Runs};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_inboxes_on_one_database_run_each_event_once() {
    let Some(pg) = Pg::start() else { return };
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
    eventually("all 200 events done", || async {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_workers_lease_runs_out_and_another_takes_the_event_over() {
    let Some(pg) = Pg::start() else { return };
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_dedup_is_shared_by_every_inbox_on_the_database() {
    let Some(pg) = Pg::start() else { return };
    let url = pg.database("inline");
    let a = Inbox::connect(&url).await.expect("inbox a");
    let b = Inbox::connect(&url).await.expect("inbox b");
    let now = SystemTime::now();
    let e = event(&id(1), "task.succeeded");
    assert!(matches!(a.claim(e.event(), now).await, Ok(Claim::Claimed)));
    assert!(matches!(b.claim(e.event(), now).await, Ok(Claim::Busy)));
    a.finish(&id(1), true, now).await.expect("finish");
    assert!(matches!(
        b.claim(e.event(), now).await,
        Ok(Claim::AlreadyHandled)
    ));

    // B's clock is a minute ahead of A's: leases run by the database's
    // clock, so B does not take A's live claim.
    let e = event(&id(2), "task.succeeded");
    assert!(matches!(a.claim(e.event(), now).await, Ok(Claim::Claimed)));
    let skewed = now + Duration::from_secs(61);
    assert!(matches!(b.claim(e.event(), skewed).await, Ok(Claim::Busy)));
    // Fencing: A's claim runs out (expired in the database), B takes the
    // event over; A's late release changes nothing, B's outcome stands.
    assert_eq!(a.take_back_abandoned().await.expect("expire"), 1);
    assert!(matches!(
        b.claim(e.event(), skewed).await,
        Ok(Claim::Claimed)
    ));
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactional_handlers_commit_with_done_or_not_at_all() {
    let Some(pg) = Pg::start() else { return };
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_goes_away_is_an_error_and_comes_back_without_a_restart() {
    let Some(pg) = Pg::start() else { return };
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
    eventually("the inbox to commit again", || async {
        inbox
            .enqueue(&event(&id(2), "task.succeeded"), SystemTime::now())
            .await
            .is_ok()
    })
    .await;
    assert_eq!(inbox.stats().await.expect("stats").pending, 2);
}
