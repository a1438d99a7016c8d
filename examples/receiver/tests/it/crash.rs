//! Crashes: the receiver in queued mode on SQLite, under load, killed with
//! `kill -9` at random moments, 20 times over. What it acknowledged is
//! never lost, every event ends handled, and no event is ever settled by a
//! stale lease.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ricloud_webhook_inbox::{Inbox, RowState};

use crate::{event_body, eventually, id, seeded_rng, Api, Process, TempDir};

/// Distinct events the load draws from.
const EVENTS: usize = 600;
/// Deliveries in flight at once.
const SENDERS: usize = 16;
const ROUNDS: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_event_survives_kill_9_and_ends_done() {
    let dir = TempDir::new("crash");
    let url = dir.sqlite_url();
    let env = [("RICLOUD_WEBHOOK_DATABASE_URL", url.as_str())];
    let api = Api::new();
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new((0..EVENTS).map(|n| event_body(&id(n))).collect());
    let acked: Arc<Mutex<HashSet<usize>>> = Arc::default();
    let mut rng = seeded_rng();
    // Every line every run printed: a killed process's lines are the ones
    // it wrote before it died.
    let mut all_lines: Vec<String> = Vec::new();
    let mut kills = 0;
    // An audit of every settle: the token the settling take wrote, and the
    // row's latest take's token. A settle by a stale lease shows as two
    // different tokens.
    let audit = {
        drop(Inbox::connect(&url).await.expect("create the inbox"));
        let pool = sqlx::SqlitePool::connect(&url).await.expect("sqlite");
        sqlx::raw_sql(
            "CREATE TABLE settle_audit (event_id TEXT NOT NULL, settled_with INTEGER NOT NULL, latest_take INTEGER NOT NULL); \
             CREATE TRIGGER settle_audit AFTER UPDATE ON ricloud_inbox \
             WHEN OLD.state = 'running' AND NEW.state <> 'running' \
             BEGIN INSERT INTO settle_audit VALUES (NEW.event_id, NEW.lease_token, OLD.lease_token); END;",
        )
        .execute(&pool)
        .await
        .expect("audit trigger");
        pool
    };

    for round in 0..ROUNDS {
        let receiver = Process::start(dir.path(), &env);
        let base = receiver.base();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut senders = Vec::new();
        for s in 0..SENDERS {
            let (api, bodies, acked, base, stop) = (
                api.clone(),
                Arc::clone(&bodies),
                Arc::clone(&acked),
                base.clone(),
                Arc::clone(&stop),
            );
            let start = (round * 7919 + s * 104_729) % EVENTS;
            senders.push(tokio::spawn(async move {
                let mut n = start;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    // Walks the events, so each round redelivers some the
                    // previous rounds sent (acknowledged or not).
                    n = (n + 37) % EVENTS;
                    if let Some(200) = api.deliver(&base, &bodies[n]).await {
                        acked.lock().expect("lock").insert(n);
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(100 + rng.u64(..500))).await;
        all_lines.extend(receiver.kill());
        kills += 1;
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        for sender in senders {
            sender.await.expect("sender");
        }
    }

    // The last run: everything not acknowledged is redelivered until it is,
    // and the workers finish what is pending.
    let receiver = Process::start(dir.path(), &env);
    for n in 0..EVENTS {
        let mut tries = 0;
        loop {
            if acked.lock().expect("lock").contains(&n) {
                break;
            }
            if api.deliver(&receiver.base(), &bodies[n]).await == Some(200) {
                acked.lock().expect("lock").insert(n);
            }
            tries += 1;
            assert!(tries < 50, "event {n} never acknowledged");
        }
    }
    let inbox = Inbox::connect(&url).await.expect("the inbox, from outside");
    eventually("every event done", Duration::from_secs(60), || async {
        inbox
            .stats()
            .await
            .is_ok_and(|s| s.done as usize == EVENTS && s.pending == 0 && s.running == 0)
    })
    .await;
    all_lines.extend(receiver.terminate());

    // Every acknowledged event is in the inbox and done; every event was
    // handled at least once.
    let acked = acked.lock().expect("lock").clone();
    assert_eq!(acked.len(), EVENTS);
    let mut runs: HashMap<String, usize> = HashMap::new();
    for line in &all_lines {
        if let Some(event_id) = line
            .strip_prefix("handled task.succeeded ")
            .and_then(|l| l.split(' ').next())
        {
            *runs.entry(event_id.to_owned()).or_default() += 1;
        }
    }
    for n in acked {
        let row = inbox
            .get(&id(n))
            .await
            .expect("an acknowledged event is stored")
            .row;
        assert_eq!(row.state, RowState::Done, "{}", id(n));
        assert!(
            runs.get(&id(n)).copied().unwrap_or(0) >= 1,
            "{} never handled",
            id(n)
        );
    }
    let (settles, stale): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), COALESCE(SUM(settled_with <> latest_take), 0) FROM settle_audit",
    )
    .fetch_one(&audit)
    .await
    .expect("audit");
    assert!(settles >= EVENTS as i64, "{settles} settles audited");
    assert_eq!(stale, 0, "events settled by a stale lease");
    let twice = runs.values().filter(|&&n| n > 1).count();
    eprintln!(
        "crash test: {kills} kill -9, {EVENTS} events all done; {twice} ran more than once \
         (a crash between a handler's success and its `done`)"
    );
    // A second run needs a crash while its event ran: at most what the
    // workers ran at once, per kill.
    assert!(
        twice <= kills * 64,
        "{twice} events ran twice after {kills} kills"
    );
}
