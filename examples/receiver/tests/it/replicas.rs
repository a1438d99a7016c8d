//! Replicas: receiver processes in queued mode on one PostgreSQL database.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ricloud_webhook_inbox::{Inbox, RowState};

use crate::pg::Pg;
use crate::{count, event_body, eventually, id, Api, Process, TempDir};

const EVENTS: usize = 150;

#[ignore = "needs PostgreSQL: scripts/test.sh installs it and runs these"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_event_runs_once_though_sent_to_both_replicas_at_once() {
    let pg = Pg::start();
    let url = pg.database("replicas");
    let dir = TempDir::new("replicas");
    let env = [("RICLOUD_WEBHOOK_DATABASE_URL", url.as_str())];
    let (a, b) = (
        Process::start(dir.path(), &env),
        Process::start(dir.path(), &env),
    );
    let api = Api::new();
    // Each event's four copies go out together; at most 200 deliveries are
    // in flight, under each receiver's cap of connections per address.
    let in_flight = Arc::new(tokio::sync::Semaphore::new(200));
    let mut sends = Vec::new();
    for n in 0..EVENTS {
        let body = Arc::new(event_body(&id(n)));
        let copies = Arc::clone(&in_flight)
            .acquire_many_owned(4)
            .await
            .expect("semaphore");
        let copies = Arc::new(copies);
        for base in [a.base(), b.base(), a.base(), b.base()] {
            let (api, body, copies) = (api.clone(), Arc::clone(&body), Arc::clone(&copies));
            sends.push(tokio::spawn(async move {
                let status = api.deliver(&base, &body).await;
                drop(copies);
                status
            }));
        }
    }
    for send in sends {
        assert_eq!(send.await.expect("send"), Some(200));
    }
    let inbox = Inbox::connect(&url).await.expect("inbox");
    eventually("every event done", Duration::from_secs(30), || async {
        inbox.stats().await.is_ok_and(|s| s.done as usize == EVENTS)
    })
    .await;
    let (lines_a, lines_b) = (a.terminate(), b.terminate());
    let lines = Mutex::new(lines_a.into_iter().chain(lines_b).collect::<Vec<_>>());
    for n in 0..EVENTS {
        assert_eq!(count(&lines, &id(n)), 1, "{} ran other than once", id(n));
    }
}

#[ignore = "needs PostgreSQL: scripts/test.sh installs it and runs these"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_handler_lets_its_lease_run_out_and_the_other_finishes() {
    let pg = Pg::start();
    let url = pg.database("takeover");
    let dir = TempDir::new("takeover");
    // A's handlers take 30 s: A is killed while one runs.
    let slow = Process::start(
        dir.path(),
        &[
            ("RICLOUD_WEBHOOK_DATABASE_URL", url.as_str()),
            ("RICLOUD_WEBHOOK_HANDLER_DELAY_MS", "30000"),
            ("RICLOUD_WEBHOOK_LEASE_MS", "1500"),
        ],
    );
    let api = Api::new();
    assert_eq!(
        api.deliver(&slow.base(), &event_body(&id(1))).await,
        Some(200)
    );
    let inbox = Inbox::connect(&url).await.expect("inbox");
    eventually(
        "the event to be running on A",
        Duration::from_secs(10),
        || async {
            inbox
                .get(&id(1))
                .await
                .is_ok_and(|e| e.row.state == RowState::Running)
        },
    )
    .await;
    let lines_a = slow.kill();
    assert!(
        lines_a.iter().all(|l| !l.starts_with("handled ")),
        "{lines_a:?}"
    );
    let other = Process::start(
        dir.path(),
        &[("RICLOUD_WEBHOOK_DATABASE_URL", url.as_str())],
    );
    eventually(
        "the other replica to finish the event",
        Duration::from_secs(20),
        || async {
            inbox
                .get(&id(1))
                .await
                .is_ok_and(|e| e.row.state == RowState::Done)
        },
    )
    .await;
    assert_eq!(other.handled(&id(1)), 1);
    assert_eq!(inbox.get(&id(1)).await.expect("stored").row.attempts, 2);
}

#[ignore = "needs PostgreSQL: scripts/test.sh installs it and runs these"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_database_down_nothing_uncommitted_is_acknowledged_and_it_recovers() {
    let pg = Pg::start();
    let url = pg.url();
    let dir = TempDir::new("dbdown");
    let receiver = Process::start(
        dir.path(),
        &[("RICLOUD_WEBHOOK_DATABASE_URL", url.as_str())],
    );
    let api = Api::new();
    let acked: Arc<Mutex<Vec<usize>>> = Arc::default();
    let unavailable = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicUsize::new(0));
    let mut senders = Vec::new();
    for _ in 0..8 {
        let (api, acked, unavailable, stop, next, base) = (
            api.clone(),
            Arc::clone(&acked),
            Arc::clone(&unavailable),
            Arc::clone(&stop),
            Arc::clone(&next),
            receiver.base(),
        );
        senders.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let n = next.fetch_add(1, Ordering::SeqCst);
                match api.deliver(&base, &event_body(&id(n))).await {
                    Some(200) => acked.lock().expect("lock").push(n),
                    Some(503) => {
                        unavailable.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    other => panic!("event {n}: {other:?}"),
                }
            }
        }));
    }
    eventually(
        "acknowledgements with the database up",
        Duration::from_secs(30),
        || async { acked.lock().expect("lock").len() >= 50 },
    )
    .await;
    pg.stop();
    // Deliveries in flight as the server stopped may still have been
    // committed: the database is down once the receiver says so.
    eventually(
        "a 503 with the database down",
        Duration::from_secs(30),
        || async { unavailable.load(Ordering::SeqCst) > 0 },
    )
    .await;
    let before = acked.lock().expect("lock").len();
    pg.start_server();
    eventually(
        "acknowledgements again, without a restart",
        Duration::from_secs(30),
        || async { acked.lock().expect("lock").len() > before + 100 },
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    for sender in senders {
        sender.await.expect("sender");
    }
    assert!(
        unavailable.load(Ordering::SeqCst) > 0,
        "no 503 while the database was down"
    );
    // Every acknowledged event was committed.
    let inbox = Inbox::connect(&url).await.expect("inbox");
    let acked = acked.lock().expect("lock").clone();
    for n in &acked {
        assert!(
            inbox.get(&id(*n)).await.is_ok(),
            "{} acknowledged but not stored",
            id(*n)
        );
    }
    eprintln!(
        "database down: {} acknowledged, {} answered 503",
        acked.len(),
        unavailable.load(Ordering::SeqCst)
    );
}
