//! The service called directly, without a socket.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use ricloud_webhook_hyper::{Config, WebhookResponse, WebhookService};

use crate::{event_body, new_id, receiver, signature, unix_now, Probe, SECRET};

fn service(config: Config) -> (WebhookService, Arc<Probe>) {
    let probe = Arc::new(Probe::default());
    (WebhookService::with_config(receiver(&probe), config), probe)
}

fn signed(id: &str, slug: &str) -> Request<Full<Bytes>> {
    let body = event_body(id, slug);
    Request::post(format!("/webhooks/{id}"))
        .header("content-type", "application/json")
        .header("ricloud-signature", signature(&body, unix_now(), SECRET))
        .body(Full::new(Bytes::from(body)))
        .expect("request")
}

async fn text(response: WebhookResponse) -> String {
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    String::from_utf8(bytes.to_vec()).expect("utf-8")
}

#[tokio::test]
async fn delivery_and_redelivery() {
    let (svc, probe) = service(Config::default());
    let id = new_id();
    let first = svc.handle(signed(&id, "task.succeeded")).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(text(first).await, "OK");
    let again = svc.handle(signed(&id, "task.succeeded")).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(probe.handled.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn custom_prefix_and_trailing_slash() {
    let (svc, probe) = service(Config::default().prefix("/hooks/ricloud/"));
    let id = new_id();
    let mut req = signed(&id, "task.succeeded");
    *req.uri_mut() = format!("/hooks/ricloud/{id}/").parse().expect("uri");
    assert_eq!(svc.handle(req).await.status(), StatusCode::OK);
    // The default prefix is no longer routed.
    let res = svc.handle(signed(&new_id(), "task.succeeded")).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(probe.handled.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn routes() {
    let (svc, _) = service(Config::default());
    let get = |uri: &str| {
        Request::get(uri)
            .body(Full::new(Bytes::new()))
            .expect("request")
    };
    assert_eq!(svc.handle(get("/healthz")).await.status(), StatusCode::OK);
    for path in [
        "/",
        "/webhooks",
        "/webhooks/",
        "/webhooks/a/b",
        "/other/x",
        "/webhooksx/y",
    ] {
        let mut req = signed("x", "task.succeeded");
        *req.uri_mut() = path.parse().expect("uri");
        assert_eq!(
            svc.handle(req).await.status(),
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    for method in ["GET", "PUT", "DELETE", "PATCH"] {
        let mut req = signed("x", "task.succeeded");
        *req.method_mut() = method.parse().expect("method");
        let res = svc.handle(req).await;
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(res.headers()["allow"], "POST");
    }
}

#[tokio::test]
async fn content_type_must_be_json() {
    let (svc, probe) = service(Config::default());
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut req = signed(&new_id(), "task.succeeded");
        req.headers_mut().remove("content-type");
        if let Some(ct) = content_type {
            req.headers_mut()
                .insert("content-type", ct.parse().expect("header"));
        }
        let res = svc.handle(req).await;
        assert_eq!(
            res.status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type:?}"
        );
    }
    let mut req = signed(&new_id(), "task.succeeded");
    req.headers_mut().insert(
        "content-type",
        "application/json; charset=utf-8".parse().expect("header"),
    );
    assert_eq!(svc.handle(req).await.status(), StatusCode::OK);
    assert_eq!(probe.handled.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn body_limit() {
    let (svc, _) = service(Config::default().body_limit(64));
    let res = svc.handle(signed(&new_id(), "task.succeeded")).await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(text(res).await.contains("64 byte limit"));
}

#[tokio::test]
async fn shutting_down_answers_503_with_retry_after() {
    let (svc, probe) = service(Config::default().retry_after(Duration::from_secs(7)));
    svc.receiver().begin_shutdown();
    let res = svc.handle(signed(&new_id(), "task.succeeded")).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()["retry-after"], "7");
    assert_eq!(probe.handled.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn slow_handler_times_out_with_503_and_stays_redeliverable() {
    let (svc, probe) = service(Config::default().delivery_timeout(Duration::from_millis(50)));
    let id = new_id();
    let res = svc.handle(signed(&id, "session.expired")).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().contains_key("retry-after"));
    // The timed-out delivery released its claim: the retry runs the handler.
    let retry = {
        let svc = svc.clone();
        let id = id.clone();
        tokio::spawn(async move { svc.handle(signed(&id, "session.expired")).await })
    };
    probe.started.notified().await;
    probe.gate.notify_one();
    let res = retry.await.expect("join");
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn too_many_deliveries_at_once_is_503() {
    let (svc, probe) = service(Config::default().max_deliveries(1));
    let busy = {
        let svc = svc.clone();
        tokio::spawn(async move { svc.handle(signed(&new_id(), "session.expired")).await })
    };
    probe.started.notified().await;
    let res = svc.handle(signed(&new_id(), "task.succeeded")).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().contains_key("retry-after"));
    probe.gate.notify_one();
    assert_eq!(busy.await.expect("join").status(), StatusCode::OK);
    // The slot is free again.
    let res = svc.handle(signed(&new_id(), "task.succeeded")).await;
    assert_eq!(res.status(), StatusCode::OK);
}
