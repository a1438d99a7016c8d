//! The client against the stand-in API (`ricloud-webhook-api-mock`), over
//! real sockets; config tests deliver to real receivers.

use std::collections::HashSet;
use std::time::Duration;

use futures_util::TryStreamExt as _;
use reqwest::StatusCode;
use ricloud_webhook::resources::WebhookConfigState;
use ricloud_webhook::{Dispatcher, Receiver, Secret, Verifier};
use ricloud_webhook_api::{ApiError, Client, ConfigFilter, ConfigUpdate, EventFilter};
use ricloud_webhook_api_mock::{BrokenPaging, MockApi};
use ricloud_webhook_hyper::{serve, WebhookService};

const TOKEN: &str = "test-token-0123456789";

fn client(api: &MockApi) -> Client {
    Client::builder(TOKEN)
        .base_url(api.url())
        .retry_delay(Duration::from_millis(10))
        .build()
        .expect("client")
}

/// A receiver for `secret` on a free port, until the test ends; its base URL.
async fn receiver(secret: &str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let verifier = Verifier::new(Secret::new(secret.to_owned()).expect("secret"));
    let service = WebhookService::new(Receiver::new(verifier, Dispatcher::new()));
    tokio::spawn(serve(listener, service, std::future::pending::<()>()));
    format!("http://{addr}/webhooks")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_is_a_401_that_names_no_token() {
    let api = MockApi::start(TOKEN);
    let wrong = Client::builder("not-the-token-secret-42")
        .base_url(api.url())
        .build()
        .expect("client");
    let e = wrong.webhook_config("x").await.expect_err("401");
    assert_eq!(e.status(), Some(StatusCode::UNAUTHORIZED));
    assert_eq!(e.code(), Some("authentication-failed"));
    for text in [e.to_string(), format!("{e:?}"), format!("{wrong:?}")] {
        assert!(!text.contains("not-the-token-secret-42"), "{text}");
    }
    // Not retried: a wrong token stays wrong.
    assert_eq!(api.log().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_page_by_after_id_until_has_more_is_false() {
    let api = MockApi::start(TOKEN);
    let failed = api.add_events(2_345, "failed", Duration::ZERO);
    api.add_events(30, "succeeded", Duration::ZERO);
    let client = client(&api);

    let mut pages = client.events(EventFilter {
        state: Some("failed".into()),
        ..EventFilter::default()
    });
    let mut got = Vec::new();
    while let Some(event) = pages.try_next().await.expect("page") {
        got.push(event);
    }
    assert_eq!(pages.total_count(), Some(2_345));
    // Every failed event once, newest first.
    let ids: Vec<String> = got.iter().map(|e| e.id.to_string()).collect();
    let expected: Vec<String> = failed.iter().rev().cloned().collect();
    assert_eq!(ids, expected);
    let requests: Vec<String> = api.log().iter().map(|r| r.query.clone()).collect();
    assert_eq!(requests.len(), 3, "{requests:?}");
    assert!(requests
        .iter()
        .all(|q| q.contains("limit=1000") && q.contains("state=failed")));
    assert!(!requests[0].contains("after_id"));
    assert!(requests[1].contains(&format!("after_id={}", ids[999])));
    assert!(requests[2].contains(&format!("after_id={}", ids[1999])));

    // A limit stops early and asks for no more than it needs.
    let five = client
        .events(EventFilter::default())
        .limit(5)
        .try_collect::<Vec<_>>()
        .await
        .expect("five");
    assert_eq!(five.len(), 5);
    assert!(api.log().last().expect("request").query.contains("limit=5"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_and_since() {
    let api = MockApi::start(TOKEN);
    let old = api.add_events(20, "failed", Duration::from_secs(7_200));
    let recent = api.add_events(15, "failed", Duration::from_secs(60));
    let pending = api.add_events(5, "pending", Duration::ZERO);
    let client = client(&api);

    let since = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(3_600);
    let got = client
        .events(EventFilter {
            state: Some("failed".into()),
            since: Some(since),
            ..EventFilter::default()
        })
        .try_collect::<Vec<_>>()
        .await
        .expect("events");
    let got: HashSet<String> = got.iter().map(|e| e.id.to_string()).collect();
    // The stand-in ignores the date filter's syntax, so the client's own
    // check is what leaves the old events out.
    assert_eq!(got, recent.iter().cloned().collect::<HashSet<_>>());
    assert!(old.iter().all(|id| !got.contains(id)));
    assert!(api
        .log()
        .iter()
        .any(|r| r.query.contains("date_created__gte=")));

    let by_type = client
        .events(EventFilter {
            kind: Some("task".into()),
            action: Some("succeeded".into()),
            state: Some("pending".into()),
            ..EventFilter::default()
        })
        .try_collect::<Vec<_>>()
        .await
        .expect("events");
    assert_eq!(by_type.len(), pending.len());
    let none = client
        .events(EventFilter {
            kind: Some("poll".into()),
            ..EventFilter::default()
        })
        .try_collect::<Vec<_>>()
        .await
        .expect("events");
    assert!(none.is_empty());

    let one = client.event(&pending[0]).await.expect("event");
    assert_eq!(one.slug(), "task.succeeded");
    assert!(client
        .event("missing")
        .await
        .expect_err("404")
        .is_not_found());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_is_retried_after_retry_after_and_a_long_one_ends_the_retries() {
    let api = MockApi::start(TOKEN);
    let client = client(&api);
    api.rate_limit(0, 2, 1);
    let configs = client
        .webhook_configs(ConfigFilter::default())
        .try_collect::<Vec<_>>()
        .await
        .expect("after two 429s");
    assert!(configs.is_empty());
    let statuses: Vec<u16> = api.log().iter().map(|r| r.status.as_u16()).collect();
    assert_eq!(statuses, [429, 429, 200]);

    // An hour's wait is longer than the client waits: the API's error.
    api.rate_limit(0, 1, 3_600);
    let e = client.webhook_config("x").await.expect_err("429");
    assert_eq!(e.code(), Some("limit-exceeded"));
    assert!(
        matches!(e, ApiError::Api { retry_after: Some(d), .. } if d == Duration::from_secs(3_600))
    );
    assert_eq!(api.log().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_is_retried_except_for_a_create() {
    let api = MockApi::start(TOKEN);
    let client = client(&api);
    api.fail(0, 2, StatusCode::SERVICE_UNAVAILABLE);
    client.organisation().await.expect("after two 503s");
    assert_eq!(api.log().len(), 3);

    // A create that failed may have been acted on: not sent twice.
    api.fail(0, 1, StatusCode::BAD_GATEWAY);
    let e = client
        .create_webhook_config("http://127.0.0.1:9/webhooks")
        .await
        .expect_err("502");
    assert_eq!(e.status(), Some(StatusCode::BAD_GATEWAY));
    assert_eq!(api.log().len(), 4);

    // Out of retries: the last error.
    api.fail(0, 10, StatusCode::INTERNAL_SERVER_ERROR);
    let e = client.organisation().await.expect_err("500");
    assert_eq!(e.status(), Some(StatusCode::INTERNAL_SERVER_ERROR));
    assert_eq!(
        api.log().len(),
        4 + 1 + ricloud_webhook_api::DEFAULT_RETRIES as usize
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_lives_through_create_test_update_deactivate_delete() {
    let api = MockApi::start(TOKEN);
    let client = client(&api);

    // Nothing listens at the URL: the API's first test fails.
    let config = client
        .create_webhook_config("http://127.0.0.1:9/webhooks")
        .await
        .expect("create");
    assert_eq!(config.state, Some(WebhookConfigState::New));
    let secret = config.secret.clone().expect("secret");
    let id = config.id.to_string();
    let config = client
        .test_and_wait(&id, Duration::from_secs(30))
        .await
        .expect("test");
    assert_eq!(config.state, Some(WebhookConfigState::Invalid));

    // A receiver with the config's secret: valid.
    let good = receiver(secret.reveal()).await;
    client
        .update_webhook_config(&id, ConfigUpdate::Url(good.clone()))
        .await
        .expect("update");
    let config = client
        .test_and_wait(&id, Duration::from_secs(30))
        .await
        .expect("test");
    assert_eq!(config.state, Some(WebhookConfigState::Valid));
    assert_eq!(config.url.as_deref(), Some(good.as_str()));

    // A receiver with another secret: invalid.
    let wrong = receiver("some-other-secret").await;
    client
        .update_webhook_config(&id, ConfigUpdate::Url(wrong))
        .await
        .expect("update");
    let config = client
        .test_and_wait(&id, Duration::from_secs(30))
        .await
        .expect("test");
    assert_eq!(config.state, Some(WebhookConfigState::Invalid));

    client
        .set_default_webhook_config(&id)
        .await
        .expect("default");
    assert_eq!(
        client
            .organisation()
            .await
            .expect("organisation")
            .webhook_config_default
            .map(|i| i.0),
        Some(id.clone())
    );

    // Deactivated: listed only when asked for.
    client
        .update_webhook_config(&id, ConfigUpdate::Deactivate)
        .await
        .expect("deactivate");
    assert!(client
        .webhook_configs(ConfigFilter::default())
        .try_collect::<Vec<_>>()
        .await
        .expect("list")
        .is_empty());
    let deactivated = client
        .webhook_configs(ConfigFilter::state("deactivated"))
        .try_collect::<Vec<_>>()
        .await
        .expect("list");
    assert_eq!(deactivated.len(), 1);

    client
        .delete_webhook_config(&id, false)
        .await
        .expect("delete");
    assert!(client
        .webhook_config(&id)
        .await
        .expect_err("gone")
        .is_not_found());
    assert!(client
        .delete_webhook_config(&id, false)
        .await
        .expect_err("gone")
        .is_not_found());
    client
        .delete_webhook_config(&id, true)
        .await
        .expect("already gone is fine");

    // The API's refusals come back with their code and params.
    let e = client
        .create_webhook_config("not a url")
        .await
        .expect_err("400");
    assert_eq!(e.code(), Some("invalid-parameter"));
    assert!(e.to_string().contains("url"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_finds_or_creates_and_validate_makes_it_valid() {
    let api = MockApi::start(TOKEN);
    let client = client(&api);
    // The service's port is known before its receiver runs.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/webhooks", listener.local_addr().expect("addr"));

    let registration = client.register(&url).await.expect("register");
    let verifier = Verifier::new(registration.secret().expect("secret"));
    let service = WebhookService::new(Receiver::new(verifier, Dispatcher::new()));
    tokio::spawn(serve(listener, service, std::future::pending::<()>()));
    let config = registration
        .validate(&client, Duration::from_secs(30))
        .await
        .expect("valid");
    assert_eq!(config.state, Some(WebhookConfigState::Valid));

    // A restart finds the same config, already valid: nothing new.
    let again = client.register(&format!("{url}/")).await.expect("register");
    assert_eq!(again.config().id, registration.config().id);
    again
        .validate(&client, Duration::from_secs(30))
        .await
        .expect("valid");
    assert_eq!(api.configs().len(), 1);

    // A config whose receiver does not answer is reported, not accepted.
    let nobody = client
        .register("http://127.0.0.1:9/webhooks")
        .await
        .expect("register");
    let e = nobody
        .validate(&client, Duration::from_secs(30))
        .await
        .expect_err("invalid");
    assert!(
        matches!(e, ApiError::NotValid { ref state, .. } if state == "invalid"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_whose_paging_does_not_advance_ends_with_an_error() {
    let api = MockApi::start(TOKEN);
    api.add_events(30, "failed", Duration::ZERO);
    let client = client(&api);
    for url in ["https://a.example/hooks", "https://b.example/hooks"] {
        client.create_webhook_config(url).await.expect("config");
    }
    // The API answers the first page again and again, `has_more: true`.
    api.break_paging(BrokenPaging::RepeatPage);
    let mut events = client.events(EventFilter::default()).page_size(10);
    let mut seen = 0;
    let error = loop {
        match events.try_next().await {
            Ok(Some(_)) => seen += 1,
            Ok(None) => panic!("a list that never ends ended"),
            Err(e) => break e,
        }
    };
    assert_eq!(seen, 10, "the first page's items, once each");
    assert!(matches!(error, ApiError::Paging { .. }), "{error:?}");
    assert!(error.to_string().contains("does not advance"), "{error}");
    let configs = client
        .webhook_configs(ConfigFilter::default())
        .try_collect::<Vec<_>>()
        .await;
    assert!(
        matches!(configs, Err(ApiError::Paging { .. })),
        "{configs:?}"
    );
    // Registration looks its URL up in the list: it ends too.
    let registered = client.register("https://c.example/hooks").await;
    assert!(
        matches!(registered, Err(ApiError::Paging { .. })),
        "{registered:?}"
    );
    // Each ended after its second request.
    assert!(
        api.log().len() <= 2 + 2 * 3 + 1,
        "{} requests",
        api.log().len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_that_never_ends_stops_at_the_page_cap() {
    let api = MockApi::start(TOKEN);
    api.add_events(3, "failed", Duration::ZERO);
    // Every page is new items, `has_more: true`.
    api.break_paging(BrokenPaging::NeverEnds);
    let client = Client::builder(TOKEN)
        .base_url(api.url())
        .max_pages(5)
        .build()
        .expect("client");
    let mut events = client.events(EventFilter::default()).page_size(10);
    let mut ids = HashSet::new();
    let error = loop {
        match events.try_next().await {
            Ok(Some(event)) => {
                ids.insert(event.id);
            }
            Ok(None) => panic!("a list that never ends ended"),
            Err(e) => break e,
        }
    };
    // The five pages' items, then the error naming the cap.
    assert_eq!(ids.len(), 50);
    assert!(error.to_string().contains("more than 5 pages"), "{error}");
    assert_eq!(api.log().len(), 5);
    // A listing's own cap.
    let capped = client
        .events(EventFilter::default())
        .page_size(10)
        .max_pages(2)
        .try_collect::<Vec<_>>()
        .await;
    assert!(matches!(capped, Err(ApiError::Paging { .. })), "{capped:?}");
}
