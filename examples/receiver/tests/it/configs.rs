//! Several webhook configs on one receiver: each secret on its own path,
//! both at once, both in one inbox, named in the handlers' lines and the
//! metrics.

use std::time::Duration;

use ricloud_webhook::Secret;
use ricloud_webhook_cli::Sender;
use ricloud_webhook_inbox::Inbox;

use crate::ops::get;
use crate::{event_body, id, Process, TempDir};

const ALPHA: &str = "alpha-secret-1f0e";
const BETA: &str = "beta-secret-77ad";

#[tokio::test(flavor = "multi_thread")]
async fn each_config_takes_its_own_secret_on_its_own_path_into_one_inbox() {
    let dir = TempDir::new("configs");
    let receiver = Process::start(
        dir.path(),
        &[
            ("RICLOUD_WEBHOOK_SECRET", ""),
            ("RICLOUD_WEBHOOK_CONFIGS", "alpha,beta"),
            ("RICLOUD_WEBHOOK_SECRET_ALPHA", ALPHA),
            ("RICLOUD_WEBHOOK_SECRET_BETA", BETA),
        ],
    );
    ricloud_webhook_testkit::install_tls_provider();
    let sender = Sender::new(Duration::from_secs(5), None).expect("sender");
    let alpha = Secret::new(ALPHA).expect("secret");
    let beta = Secret::new(BETA).expect("secret");
    let base = receiver.base();
    let status = |to: &str, secret: &Secret, n: usize| {
        let (sender, secret) = (sender.clone(), secret.clone());
        let url = format!("{base}/{to}");
        async move {
            sender
                .post_event(&url, &secret, event_body(&id(n)))
                .await
                .expect("an answer")
                .status()
                .as_u16()
        }
    };
    let (alpha, beta) = (&alpha, &beta);

    // One config's secret is refused on the other's path, and on a path
    // that names no config.
    assert_eq!(status("beta", alpha, 1).await, 401);
    assert_eq!(status("alpha", beta, 2).await, 401);
    assert_eq!(status("gamma", alpha, 3).await, 404);
    let unnamed = sender
        .post_event(&base, alpha, event_body(&id(4)))
        .await
        .expect("an answer");
    assert_eq!(unnamed.status().as_u16(), 404);

    // Both at once.
    let (a, b) = tokio::join!(status("alpha", alpha, 5), status("beta", beta, 6));
    assert_eq!((a, b), (200, 200));
    receiver.until_handled(&id(5)).await;
    receiver.until_handled(&id(6)).await;
    let lines = receiver.lines.lock().expect("lock").clone();
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&id(5)) && l.contains("config=alpha")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&id(6)) && l.contains("config=beta")),
        "{lines:?}"
    );

    // One inbox records which config delivered each event.
    let url = format!(
        "sqlite://{}",
        dir.path().join("ricloud-webhook.db").display()
    );
    let inbox = Inbox::connect_existing(&url).await.expect("the inbox");
    let row = |n| {
        let inbox = inbox.clone();
        async move { inbox.get(&id(n)).await.expect("a row").row.config }
    };
    assert_eq!(row(5).await.as_deref(), Some("alpha"));
    assert_eq!(row(6).await.as_deref(), Some("beta"));
    assert!(
        inbox.get(&id(1)).await.is_err(),
        "a refused event was stored"
    );

    // The metrics name the config.
    let admin = receiver.admin.clone().expect("an admin listener");
    let (_, metrics) = get(&admin, "/metrics").await;
    for config in ["alpha", "beta"] {
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("ricloud_webhook_deliveries_total{")
                    && l.contains(&format!("config=\"{config}\""))
                    && l.contains("reason=\"ok\"")
                    && l.ends_with(" 1")),
            "{metrics}"
        );
    }
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("ricloud_webhook_deliveries_total{")
                && l.contains("config=\"beta\"")
                && l.contains("reason=\"bad_signature\"")),
        "{metrics}"
    );
}
