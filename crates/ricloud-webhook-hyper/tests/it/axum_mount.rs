//! The service mounted in an axum router, as users embed it.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use http::{Request, StatusCode};
use ricloud_webhook_hyper::WebhookService;
use tower::ServiceExt;

use crate::{event_body, new_id, receiver, signature, unix_now, Probe, SECRET};

fn app(probe: &Arc<Probe>) -> Router {
    Router::new()
        .route("/", get(|| async { "the rest of the app" }))
        .route_service("/webhooks/{id}", WebhookService::new(receiver(probe)))
}

#[tokio::test]
async fn mounted_in_axum() {
    let probe = Arc::new(Probe::default());
    let id = new_id();
    let body = event_body(&id, "task.succeeded");
    let request = Request::post(format!("/webhooks/{id}"))
        .header("content-type", "application/json")
        .header("ricloud-signature", signature(&body, unix_now(), SECRET))
        .body(Body::from(body))
        .expect("request");
    let response = app(&probe).oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(probe.handled.load(Ordering::SeqCst), 1);

    let forged = Request::post(format!("/webhooks/{}", new_id()))
        .header("content-type", "application/json")
        .body(Body::from("{}"))
        .expect("request");
    let response = app(&probe).oneshot(forged).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let other = Request::get("/").body(Body::empty()).expect("request");
    let response = app(&probe).oneshot(other).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
}

/// The repository's axum example, compiled into this test.
#[allow(dead_code, unreachable_pub)]
#[path = "../../examples/axum.rs"]
mod example;

fn delivery(path: &str, id: &str) -> Request<Body> {
    let body = event_body(id, "task.succeeded");
    Request::post(format!("{path}/{id}"))
        .header("content-type", "application/json")
        .header("ricloud-signature", signature(&body, unix_now(), SECRET))
        .body(Body::from(body))
        .expect("request")
}

#[tokio::test]
async fn the_axum_example_takes_deliveries_at_its_route() {
    let secret = ricloud_webhook::Secret::new(SECRET).expect("secret");
    let app = example::app(example::service(secret));
    let response = app
        .oneshot(delivery("/hooks/ricloud", &new_id()))
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_route_outside_the_prefix_is_404_and_said_once_at_warn() {
    // Mounted at a route the service's prefix (the default `/webhooks`)
    // does not match.
    let probe = Arc::new(Probe::default());
    let app = Router::new().route_service("/hooks/{id}", WebhookService::new(receiver(&probe)));
    let logged = ricloud_webhook_testkit::LogCapture::start(tracing::Level::INFO);
    for _ in 0..3 {
        let response = app
            .clone()
            .oneshot(delivery("/hooks", &new_id()))
            .await
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }
    let text = logged.text();
    assert_eq!(text.matches(" WARN ").count(), 1, "{text}");
    assert!(text.contains("/webhooks/<event id>"), "{text}");
    assert!(text.contains("Config::prefix"), "{text}");
    assert_eq!(probe.handled.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_axum_example_turns_deliveries_away_once_shutdown_begins() {
    let secret = ricloud_webhook::Secret::new(SECRET).expect("secret");
    let service = example::service(secret);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(example::run(listener, service.clone(), async {
        let _ = stopped.await;
    }));
    assert!(!service.receiver().is_shutting_down());
    let _ = stop.send(());
    server.await.expect("joined").expect("served");
    assert!(service.receiver().is_shutting_down());
    let response = example::app(service)
        .oneshot(delivery("/hooks/ricloud", &new_id()))
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
}
