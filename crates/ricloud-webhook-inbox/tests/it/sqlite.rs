//! The inbox on a SQLite file.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ricloud_webhook::{
    sign, Claim, DeliveryStore, Dispatcher, Enqueued, Event, EventQueue, Secret, Verifier,
};
use ricloud_webhook_inbox::{Inbox, ListFilter, Replay, RowState};

use crate::{
    body, dispatcher, enqueue, event, eventually, fast, id, misfit, until_state, Runs, TempDir,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_event_is_committed_once_and_run_by_the_workers() {
    let dir = TempDir::new("queued");
    let inbox = Inbox::connect(&dir.sqlite_url()).await.expect("inbox");
    assert_eq!(
        enqueue(&inbox, &id(1), "task.succeeded").await,
        Enqueued::New
    );
    // A redelivery: no second row, the first body kept.
    assert_eq!(
        enqueue(&inbox, &id(1), "task.succeeded").await,
        Enqueued::AlreadyQueued
    );
    let stored = inbox.get(&id(1)).await.expect("stored");
    assert_eq!(stored.row.state, RowState::Pending);
    assert_eq!(stored.row.slug, "task.succeeded");
    assert_eq!(&stored.body[..], &crate::body(&id(1), "task.succeeded")[..]);
    assert_eq!(inbox.stats().await.expect("stats").pending, 1);

    let runs = Runs::default();
    let workers = inbox.workers(dispatcher(&runs)).config(fast()).spawn();
    until_state(&inbox, &id(1), RowState::Done).await;
    assert_eq!(runs.of(&id(1)), 1);
    let done = inbox.get(&id(1)).await.expect("stored").row;
    assert_eq!(done.attempts, 1);
    assert!(done.done_at.is_some() && done.lease_owner.is_none());

    // Enqueued while the workers run: picked up without waiting for a poll.
    assert_eq!(
        enqueue(&inbox, &id(2), "task.succeeded").await,
        Enqueued::New
    );
    until_state(&inbox, &id(2), RowState::Done).await;
    // A redelivery of a done event changes nothing.
    assert_eq!(
        enqueue(&inbox, &id(2), "task.succeeded").await,
        Enqueued::AlreadyQueued
    );
    workers.shutdown().await;
    assert_eq!(runs.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_retried_then_given_up_on() {
    let dir = TempDir::new("retries");
    let inbox = Inbox::connect(&dir.sqlite_url()).await.expect("inbox");
    let runs = Runs::default();
    let workers = inbox.workers(dispatcher(&runs)).config(fast()).spawn();
    // Asks for a retry every time: three attempts, then dead.
    enqueue(&inbox, &id(1), "task.failed").await;
    // Acknowledged as permanent: dead at once.
    enqueue(&inbox, &id(2), "task.created").await;
    // Data that does not fit a handler's view: dead at once.
    inbox
        .enqueue(&misfit(&id(3)), SystemTime::now())
        .await
        .expect("committed");
    for n in 1..=3 {
        until_state(&inbox, &id(n), RowState::Dead).await;
    }
    let failed = inbox.get(&id(1)).await.expect("stored").row;
    assert_eq!(failed.attempts, 3);
    assert_eq!(runs.of(&id(1)), 3);
    let error = failed.last_error.expect("an error");
    assert!(
        error.contains("gave up after 3 attempts") && error.contains("downstream unavailable"),
        "{error}"
    );
    assert_eq!(inbox.get(&id(2)).await.expect("stored").row.attempts, 1);
    assert_eq!(runs.of(&id(2)), 1);
    let misfit = inbox.get(&id(3)).await.expect("stored").row;
    assert_eq!(misfit.attempts, 1);
    assert!(misfit.last_error.expect("an error").contains("`Poll` view"));

    // Replay puts the dead ones back, with their attempts reset.
    assert_eq!(inbox.replay(&Replay::Dead).await.expect("replay"), 3);
    eventually("replayed events to run again", crate::WAIT, || async {
        runs.of(&id(2)) == 2 && runs.of(&id(1)) == 6
    })
    .await;
    until_state(&inbox, &id(1), RowState::Dead).await;
    workers.shutdown().await;
    let stats = inbox.stats().await.expect("stats");
    assert_eq!(
        (stats.pending, stats.running, stats.done, stats.dead),
        (0, 0, 0, 3)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_claims_are_durable_across_a_restart() {
    let dir = TempDir::new("inline");
    let url = dir.sqlite_url();
    let now = SystemTime::now();
    {
        let inbox = Inbox::connect(&url).await.expect("inbox");
        let handled = event(&id(1), "task.succeeded");
        assert!(matches!(
            inbox.claim(&handled, now).await,
            Ok(Claim::Claimed)
        ));
        // Another delivery meanwhile: busy, answered 503.
        assert!(matches!(inbox.claim(&handled, now).await, Ok(Claim::Busy)));
        inbox.finish(&id(1), true, now).await.expect("finish");
        let released = event(&id(2), "task.failed");
        assert!(matches!(
            inbox.claim(&released, now).await,
            Ok(Claim::Claimed)
        ));
        inbox.finish(&id(2), false, now).await.expect("finish");
    }
    let inbox = Inbox::connect(&url).await.expect("the same file again");
    assert!(matches!(
        inbox.claim(&event(&id(1), "task.succeeded"), now).await,
        Ok(Claim::AlreadyHandled)
    ));
    // A released claim left no row: the redelivery runs the handlers.
    assert!(matches!(
        inbox.claim(&event(&id(2), "task.failed"), now).await,
        Ok(Claim::Claimed)
    ));
    let row = inbox.get(&id(1)).await.expect("stored").row;
    assert_eq!(row.state, RowState::Done);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inline_claim_whose_lease_ran_out_is_taken_over() {
    let dir = TempDir::new("lease");
    let inbox = Inbox::connect(&dir.sqlite_url()).await.expect("inbox");
    let first = event(&id(1), "task.succeeded");
    let now = SystemTime::now();
    assert!(matches!(inbox.claim(&first, now).await, Ok(Claim::Claimed)));
    // A delivery whose clock is a minute ahead does not take a live claim:
    // leases run by the database's clock.
    assert!(matches!(
        inbox.claim(&first, now + Duration::from_secs(61)).await,
        Ok(Claim::Busy)
    ));
    // The lease runs out (expired in the database): the next delivery takes it.
    assert_eq!(inbox.take_back_abandoned().await.expect("expire"), 1);
    assert!(matches!(inbox.claim(&first, now).await, Ok(Claim::Claimed)));
    assert_eq!(inbox.get(&id(1)).await.expect("stored").row.attempts, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_list_show_count_replay_and_purge() {
    let dir = TempDir::new("admin");
    let inbox = Inbox::connect(&dir.sqlite_url()).await.expect("inbox");
    for n in 0..5 {
        enqueue(
            &inbox,
            &id(n),
            if n % 2 == 0 {
                "task.succeeded"
            } else {
                "poll.created"
            },
        )
        .await;
    }
    let all = inbox.list(&ListFilter::default()).await.expect("list");
    assert_eq!(all.len(), 5);
    let polls = inbox
        .list(&ListFilter::default().slug("poll.created"))
        .await
        .expect("list");
    assert_eq!(
        polls
            .iter()
            .map(|r| r.event_id.as_str())
            .collect::<Vec<_>>()
            .len(),
        2
    );
    assert!(polls.iter().all(|r| r.slug == "poll.created"));
    let two = inbox
        .list(&ListFilter::default().limit(2))
        .await
        .expect("list");
    assert_eq!(two.len(), 2);
    let stats = inbox.stats().await.expect("stats");
    assert_eq!(stats.pending, 5);
    assert!(stats.oldest_pending.is_some());
    assert!(inbox
        .get("no-such-event")
        .await
        .expect_err("missing")
        .is_not_found());

    let runs = Runs::default();
    let workers = inbox.workers(dispatcher(&runs)).config(fast()).spawn();
    for n in 0..5 {
        until_state(&inbox, &id(n), RowState::Done).await;
    }
    workers.shutdown().await;
    let done = inbox
        .list(&ListFilter::default().state(RowState::Done))
        .await
        .expect("list");
    assert_eq!(done.len(), 5);
    // Replay by id, then purge everything done before now.
    assert_eq!(
        inbox
            .replay(&Replay::Ids(vec![id(0)]))
            .await
            .expect("replay"),
        1
    );
    assert_eq!(
        inbox.get(&id(0)).await.expect("stored").row.state,
        RowState::Pending
    );
    let purged = inbox
        .purge_done_before(SystemTime::now() + Duration::from_secs(1))
        .await
        .expect("purge");
    assert_eq!(purged, 4);
    assert_eq!(inbox.stats().await.expect("stats").pending, 1);
}

/// A database set up by the migrator of earlier versions (sqlx's Migrator
/// filled by hand, same SQL, same versions) opens with the embedded one,
/// its migrations recognised as applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_migrated_by_an_earlier_version_opens() {
    use sqlx::migrate::{Migration, MigrationType, Migrator};
    use sqlx::SqlSafeStr as _;

    let dir = TempDir::new("old-migrator");
    let url = dir.sqlite_url();
    let options: sqlx::sqlite::SqliteConnectOptions = url.parse().expect("url");
    let pool = sqlx::SqlitePool::connect_with(options.create_if_missing(true))
        .await
        .expect("pool");
    let sqls = [
        include_str!("../../migrations/sqlite/0001_inbox.sql"),
        include_str!("../../migrations/sqlite/0002_leases.sql"),
    ];
    let names = [
        "inbox (sqlite)",
        "lease tokens and the database clock (sqlite)",
    ];
    let migrations = (1..)
        .zip(names.into_iter().zip(sqls))
        .map(|(version, (name, sql))| {
            Migration::new(
                version,
                name.into(),
                MigrationType::Simple,
                sqlx::AssertSqlSafe(sql).into_sql_str(),
                false,
            )
        })
        .collect();
    let mut old = Migrator::with_migrations(migrations);
    old.dangerous_set_table_name("ricloud_inbox_migrations");
    old.run(&pool).await.expect("the earlier migrations");
    pool.close().await;

    let inbox = Inbox::connect(&url)
        .await
        .expect("opens with the embedded migrations");
    assert_eq!(
        enqueue(&inbox, &id(1), "task.succeeded").await,
        Enqueued::New
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_pages_by_cursor_counts_and_replays_what_a_filter_selects() {
    let dir = TempDir::new("filters");
    let inbox = Inbox::connect(&dir.sqlite_url()).await.expect("inbox");
    for n in 1..=5 {
        enqueue(&inbox, &id(n), "task.succeeded").await;
    }
    enqueue(&inbox, &id(6), "poll.completed").await;
    let stored = inbox.get(&id(1)).await.expect("stored").row;
    assert_eq!(
        stored.matched_secret,
        Some(0),
        "verified with the current secret"
    );

    // Pages of two, newest first, until none is left: every row once.
    let mut seen = Vec::new();
    let mut filter = ListFilter::default().limit(2);
    loop {
        let page = inbox.list(&filter).await.expect("a page");
        let Some(last) = page.last() else { break };
        filter = filter.after(ricloud_webhook_inbox::Cursor::after(last));
        seen.extend(page.iter().map(|r| r.event_id.clone()));
    }
    seen.sort();
    assert_eq!(seen, (1..=6).map(id).collect::<Vec<_>>());
    let cursor: ricloud_webhook_inbox::Cursor = "12.abc".parse().expect("a cursor");
    assert_eq!(cursor.to_string(), "12.abc");

    // Count and replay by filter; an id search finds one.
    let tasks = ListFilter::default().slug("task.succeeded");
    assert_eq!(inbox.count(&tasks).await.expect("count"), 5);
    let one = ListFilter::default().event_id(id(6));
    assert_eq!(
        inbox.list(&one).await.expect("list")[0].slug,
        "poll.completed"
    );
    let future = ListFilter::default().since(SystemTime::now() + Duration::from_secs(3600));
    assert_eq!(inbox.count(&future).await.expect("count"), 0);
    let runs = Runs::default();
    let workers = inbox.workers(dispatcher(&runs)).config(fast()).spawn();
    for n in 1..=6 {
        until_state(&inbox, &id(n), RowState::Done).await;
    }
    let replayed = inbox
        .replay(&Replay::Matching(tasks.clone().state(RowState::Done)))
        .await
        .expect("replay");
    assert_eq!(replayed, 5);
    for n in 1..=5 {
        eventually("run again", Duration::from_secs(20), || async {
            runs.of(&id(n)) == 2
        })
        .await;
    }
    assert_eq!(runs.of(&id(6)), 1, "the filter left the poll alone");
    workers.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetched_event_keeps_the_signature_it_was_given_and_one_without_has_none() {
    let dir = TempDir::new("fetched-signature");
    let inbox = Inbox::connect(&dir.sqlite_url()).await.expect("inbox");
    let secret = Secret::new("the config's secret").expect("a secret");
    let signed = Event::from_json(body(&id(1), "task.succeeded")).expect("an event");
    let signature = sign(&secret, 1_700_000_000, signed.raw());
    let received = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    assert_eq!(
        inbox
            .enqueue_fetched_signed(&signed, &signature, received)
            .await
            .expect("committed"),
        Enqueued::New
    );
    let unsigned = Event::from_json(body(&id(2), "task.succeeded")).expect("an event");
    inbox
        .enqueue_fetched(&unsigned, received)
        .await
        .expect("committed");

    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    let dispatcher = Dispatcher::new().on("*", move |event: Arc<Event>| {
        s.lock()
            .expect("lock")
            .push((event.id.clone(), event.signature().map(ToString::to_string)));
        async { Ok(()) }
    });
    let workers = inbox.workers(dispatcher).config(fast()).spawn();
    until_state(&inbox, &id(1), RowState::Done).await;
    until_state(&inbox, &id(2), RowState::Done).await;
    workers.shutdown().await;
    let mut seen = seen.lock().expect("lock").clone();
    seen.sort();
    assert_eq!(
        seen,
        vec![(id(1), Some(signature.to_string())), (id(2), None)]
    );
    // What the handler got verifies with the secret, at the time received.
    let verifier = Verifier::new(secret);
    verifier
        .verify_at(
            Some(signature.to_string().as_bytes()),
            signed.raw().clone(),
            received,
        )
        .expect("the stored signature verifies");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_hands_over_the_signature_and_the_received_time_it_stored() {
    let dir = TempDir::new("signature");
    let inbox = Inbox::connect(&dir.sqlite_url()).await.expect("inbox");
    let verified = event(&id(1), "task.succeeded");
    let received = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
    inbox.enqueue(&verified, received).await.expect("committed");
    let sent = verified.event().signature().expect("verified").to_string();

    let seen = Arc::new(std::sync::Mutex::new(None));
    let s = Arc::clone(&seen);
    let dispatcher = Dispatcher::new().on("*", move |event: Arc<Event>| {
        *s.lock().expect("lock") = Some((
            event.signature().map(ToString::to_string),
            event.received_at(),
        ));
        async { Ok(()) }
    });
    let workers = inbox.workers(dispatcher).config(fast()).spawn();
    until_state(&inbox, &id(1), RowState::Done).await;
    workers.shutdown().await;
    assert_eq!(
        *seen.lock().expect("lock"),
        Some((Some(sent), Some(received)))
    );
}
