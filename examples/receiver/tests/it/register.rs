//! Self-registration against the stand-in API: the receiver finds or
//! creates the config for its public URL, serves with the config's secret,
//! and has the API test it until it is valid; a restart reuses the config.

use std::time::Duration;

use ricloud_webhook_api_mock::MockApi;

use crate::{eventually, Process, TempDir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_receiver_registers_its_public_url_and_the_config_turns_valid() {
    let api = MockApi::start("register-token");
    let dir = TempDir::new("register");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let public = format!("http://{addr}/webhooks");
    let api_url = api.url();
    let env = [
        ("RICLOUD_WEBHOOK_SECRET", ""),
        ("RICLOUD_WEBHOOK_ADDR", addr.as_str()),
        ("RICLOUD_WEBHOOK_PUBLIC_URL", public.as_str()),
        ("RICLOUD_TOKEN", "register-token"),
        ("RICLOUD_URL", api_url.as_str()),
    ];

    let receiver = Process::start(dir.path(), &env);
    let valid = || {
        let configs = api.configs();
        async move { configs.len() == 1 && configs[0]["state"] == "valid" }
    };
    eventually("the config turns valid", Duration::from_secs(30), valid).await;
    let id = api.configs()[0]["id"].clone();
    let lines = receiver.terminate();
    // The API's own test went through the receiver's handlers.
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("handled webhook_config.test ")),
        "{lines:?}"
    );

    // A restart finds the same config and creates no other.
    let again = Process::start(dir.path(), &env);
    eventually("the config is valid", Duration::from_secs(30), valid).await;
    assert_eq!(api.configs()[0]["id"], id);
    drop(again);

    // Both ways of getting a secret at once is refused.
    let mut both = std::process::Command::new(env!("CARGO_BIN_EXE_receiver"));
    both.current_dir(dir.path())
        .envs(env)
        .env("RICLOUD_WEBHOOK_SECRET", "another");
    let out = both.output().expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not both"));
}
