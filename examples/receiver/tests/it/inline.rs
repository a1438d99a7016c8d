//! The inline mode: the handlers run before the answer, and the inbox is
//! the durable record of what was handled.

use std::sync::Arc;

use crate::pg::Pg;
use crate::{event_body, id, Api, Process, TempDir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_dedup_survives_a_restart_on_sqlite() {
    let dir = TempDir::new("inline-sqlite");
    let url = dir.sqlite_url();
    let env = [
        ("RICLOUD_WEBHOOK_DATABASE_URL", url.as_str()),
        ("RICLOUD_WEBHOOK_MODE", "inline"),
    ];
    let api = Api::new();
    let first = Process::start(dir.path(), &env);
    assert_eq!(
        api.deliver(&first.base(), &event_body(&id(1))).await,
        Some(200)
    );
    // Inline: the handler ran before the answer.
    first.until_handled(&id(1)).await;
    assert_eq!(first.handled(&id(1)), 1);
    first.kill();
    let second = Process::start(dir.path(), &env);
    // The API's redelivery, signed anew: acknowledged, not run again.
    assert_eq!(
        api.deliver(&second.base(), &event_body(&id(1))).await,
        Some(200)
    );
    assert_eq!(
        api.deliver(&second.base(), &event_body(&id(2))).await,
        Some(200)
    );
    second.until_handled(&id(2)).await;
    assert_eq!(second.handled(&id(1)), 0);
    assert_eq!(second.handled(&id(2)), 1);
}

#[ignore = "needs PostgreSQL: scripts/test.sh installs it and runs these"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_dedup_is_shared_by_replicas_on_postgres() {
    let pg = Pg::start();
    let url = pg.database("inline");
    let dir = TempDir::new("inline-pg");
    let env = [
        ("RICLOUD_WEBHOOK_DATABASE_URL", url.as_str()),
        ("RICLOUD_WEBHOOK_MODE", "inline"),
    ];
    let (a, b) = (
        Process::start(dir.path(), &env),
        Process::start(dir.path(), &env),
    );
    let api = Api::new();
    for n in 0..20 {
        let body = Arc::new(event_body(&id(n)));
        assert_eq!(api.deliver(&a.base(), &body).await, Some(200));
        assert_eq!(api.deliver(&b.base(), &body).await, Some(200));
    }
    a.until_handled(&id(19)).await;
    for n in 0..20 {
        assert_eq!(a.handled(&id(n)) + b.handled(&id(n)), 1, "{}", id(n));
        assert_eq!(a.handled(&id(n)), 1);
    }
}
