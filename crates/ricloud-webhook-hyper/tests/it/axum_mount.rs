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
