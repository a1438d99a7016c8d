//! Pre-signed deliveries, built before the clock starts so the load
//! generator spends its time on HTTP, not on signing.

use std::fmt::Write as _;

use anyhow::Context as _;
use bytes::Bytes;
use http::{HeaderValue, Uri};
use ricloud_webhook::{sign, Secret};

/// The reference vectors from ricloud-py; the `task.succeeded` body is the
/// template of every delivery.
const VECTORS: &str =
    include_str!("../../crates/ricloud-webhook/tests/data/ricloud-py-signatures.json");

/// The event id of the template body, replaced in each delivery.
pub const TEMPLATE_ID: &str = "d921bf95-cc9f-4851-b6ab-9f1ab79db4df";

/// One request ready to send: path, `Ricloud-Signature` value and body.
#[derive(Debug, Clone)]
pub struct Prepared {
    path: Uri,
    signature: HeaderValue,
    body: Bytes,
}

impl Prepared {
    /// The request target, `<prefix>/<event id>`.
    pub fn path(&self) -> &Uri {
        &self.path
    }

    /// The `Ricloud-Signature` header value.
    pub fn signature(&self) -> &HeaderValue {
        &self.signature
    }

    /// The JSON body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The same delivery under another path prefix (`/webhooks` by default).
    ///
    /// # Errors
    /// When the prefix makes an invalid request target.
    pub fn with_prefix(&self, prefix: &str) -> anyhow::Result<Self> {
        let id = self.path.path().rsplit('/').next().unwrap_or_default();
        Ok(Self {
            path: target(prefix, id)?,
            ..self.clone()
        })
    }
}

/// Deliveries with distinct event ids, in sending order.
#[derive(Debug, Clone)]
pub struct Deliveries {
    items: Vec<Prepared>,
}

impl Deliveries {
    /// `n` realistic `task.succeeded` deliveries (the ricloud-py vector's
    /// body, ~1.2 KiB pretty-printed), each with a fresh random UUID v4 as
    /// event id, signed with `secret` at `timestamp`, built on `threads`
    /// threads, under the path prefix `/webhooks`.
    ///
    /// # Errors
    /// When the system has no randomness or the template is missing.
    pub fn signed(
        secret: &Secret,
        timestamp: u64,
        n: usize,
        threads: usize,
    ) -> anyhow::Result<Self> {
        let template = template()?;
        let mut random = vec![0u8; n * 16];
        getrandom::fill(&mut random).map_err(|e| anyhow::anyhow!("no system randomness: {e}"))?;
        let threads = threads.clamp(1, 64);
        let chunk = n.div_ceil(threads).max(1);
        let parts: Vec<anyhow::Result<Vec<Prepared>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = random
                .chunks(chunk * 16)
                .map(|seeds| {
                    let template = &template;
                    scope.spawn(move || {
                        seeds
                            .chunks_exact(16)
                            .map(|seed| one(template, secret, timestamp, seed))
                            .collect()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("a signing thread panicked")))
                })
                .collect()
        });
        let mut items = Vec::with_capacity(n);
        for part in parts {
            items.extend(part?);
        }
        Ok(Self { items })
    }

    /// One delivery of exactly `len` bytes (a JSON object padded with
    /// spaces) whose signature is well-formed but made with another secret:
    /// the receiver must read the whole body, then refuse it.
    ///
    /// # Errors
    /// When the system has no randomness.
    pub fn badly_signed_upload(len: usize, timestamp: u64) -> anyhow::Result<Self> {
        let mut seed = [0u8; 16];
        getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no system randomness: {e}"))?;
        let id = uuid_v4(&seed);
        let mut body =
            format!(r#"{{"id": "{id}", "type": "task", "action": "succeeded"}}"#).into_bytes();
        body.resize(len.max(body.len()), b' ');
        let wrong = Secret::new("not the receiver's secret")?;
        let signature = HeaderValue::from_str(&sign(&wrong, timestamp, &body).to_string())?;
        Ok(Self {
            items: vec![Prepared {
                path: target("/webhooks", &id)?,
                signature,
                body: Bytes::from(body),
            }],
        })
    }

    /// The same deliveries under another path prefix.
    ///
    /// # Errors
    /// When the prefix makes an invalid request target.
    pub fn with_prefix(self, prefix: &str) -> anyhow::Result<Self> {
        if prefix == "/webhooks" {
            return Ok(self);
        }
        let items = self
            .items
            .iter()
            .map(|p| p.with_prefix(prefix))
            .collect::<anyhow::Result<_>>()?;
        Ok(Self { items })
    }

    /// How many deliveries there are.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The `i`-th delivery, wrapping around when `i` is past the end.
    pub fn get(&self, i: usize) -> &Prepared {
        &self.items[i % self.items.len()]
    }
}

fn template() -> anyhow::Result<String> {
    let vectors: serde_json::Value = serde_json::from_str(VECTORS)?;
    let body = vectors["vectors"]
        .as_array()
        .and_then(|v| v.iter().find(|v| v["name"] == "task.succeeded"))
        .and_then(|v| v["body"].as_str())
        .context("the reference vectors have no task.succeeded body")?;
    anyhow::ensure!(body.contains(TEMPLATE_ID), "template id not in the body");
    Ok(body.to_owned())
}

fn one(template: &str, secret: &Secret, timestamp: u64, seed: &[u8]) -> anyhow::Result<Prepared> {
    let id = uuid_v4(seed);
    let body = Bytes::from(template.replacen(TEMPLATE_ID, &id, 1));
    let signature = HeaderValue::from_str(&sign(secret, timestamp, &body).to_string())?;
    Ok(Prepared {
        path: target("/webhooks", &id)?,
        signature,
        body,
    })
}

fn target(prefix: &str, id: &str) -> anyhow::Result<Uri> {
    let prefix = prefix.trim_end_matches('/');
    Ok(Uri::try_from(format!("{prefix}/{id}"))?)
}

/// Formats 16 random bytes as a version 4 UUID.
fn uuid_v4(seed: &[u8]) -> String {
    let mut b = [0u8; 16];
    for (dst, src) in b.iter_mut().zip(seed) {
        *dst = *src;
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let mut out = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        let _ = write!(out, "{byte:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ricloud_webhook::Verifier;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn deliveries_verify_and_differ() {
        let secret = Secret::new("k").expect("test value");
        let d = Deliveries::signed(&secret, 1_700_000_000, 10, 3).expect("test value");
        assert_eq!(d.len(), 10);
        let verifier = Verifier::new(secret);
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut ids = std::collections::HashSet::new();
        for i in 0..10 {
            let p = d.get(i);
            assert!(verifier
                .verify_at(Some(p.signature().as_bytes()), p.body().clone(), now)
                .is_ok());
            let id = p
                .path()
                .path()
                .rsplit('/')
                .next()
                .expect("test value")
                .to_owned();
            assert!(std::str::from_utf8(p.body())
                .expect("test value")
                .contains(&id));
            assert_eq!(id.len(), 36);
            assert_eq!(&id[14..15], "4");
            ids.insert(id);
        }
        assert_eq!(ids.len(), 10);
        assert_eq!(d.get(10).path(), d.get(0).path());
    }

    #[test]
    fn upload_is_exact_and_refused() {
        let d =
            Deliveries::badly_signed_upload(5 * 1024 * 1024, 1_700_000_000).expect("test value");
        let p = d.get(0);
        assert_eq!(p.body().len(), 5 * 1024 * 1024);
        let verifier = Verifier::new(Secret::new("k").expect("test value"));
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert!(verifier
            .verify_at(Some(p.signature().as_bytes()), p.body().clone(), now)
            .is_err());
    }

    #[test]
    fn prefixes() {
        let d = Deliveries::signed(&Secret::new("k").expect("test value"), 1, 1, 1)
            .expect("test value");
        let p = d.with_prefix("/hooks/").expect("test value");
        assert!(p.get(0).path().path().starts_with("/hooks/"));
    }
}
