//! A replay made from another process (the CLI's `inbox replay`) reaches
//! a running receiver within seconds, on SQLite too (its workers poll).

use std::time::Duration;

use ricloud_webhook_inbox::{Inbox, Replay, RowState};

use crate::{event_body, eventually, id, Api, Process, TempDir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_from_another_process_runs_within_seconds() {
    let dir = TempDir::new("replay");
    let url = dir.sqlite_url();
    let receiver = Process::start(
        dir.path(),
        &[("RICLOUD_WEBHOOK_DATABASE_URL", url.as_str())],
    );
    let api = Api::new();
    assert_eq!(
        api.deliver(&receiver.base(), &event_body(&id(1))).await,
        Some(200)
    );
    eventually("the event handled", Duration::from_secs(10), || async {
        receiver.handled(&id(1)) == 1
    })
    .await;
    // Another process: this test's own connection to the file.
    let inbox = Inbox::connect(&url).await.expect("inbox");
    eventually("the event done", Duration::from_secs(10), || async {
        inbox
            .get(&id(1))
            .await
            .is_ok_and(|e| e.row.state == RowState::Done)
    })
    .await;
    assert_eq!(
        inbox
            .replay(&Replay::Ids(vec![id(1)]))
            .await
            .expect("replay"),
        1
    );
    eventually(
        "the replayed event handled again",
        Duration::from_secs(5),
        || async { receiver.handled(&id(1)) == 2 },
    )
    .await;
}
