//! The consumer's side: verifying a forwarded message again with the
//! secret, as a receiver verifies a delivery.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use ricloud_webhook::{EventError, VerifiedEvent, Verifier, VerifyError};

use crate::header;

/// Why a forwarded message was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConsumeError {
    /// A header the check needs is missing (an event a catch-up fetched
    /// from the API without the secret has no signature to check).
    #[error("the message has no {0} header")]
    Missing(&'static str),
    /// `Ricloud-Received-At` is not Unix milliseconds.
    #[error(
        "the message's {} header is not Unix milliseconds",
        header::RECEIVED_AT
    )]
    ReceivedAt,
    /// The signature does not verify the body with the secret, or was not
    /// fresh when the receiver received it.
    #[error("the forwarded signature does not verify the message: {0}")]
    Signature(#[from] VerifyError),
    /// The signed body is not an event.
    #[error("the signed body is not an event: {0}")]
    Event(#[from] EventError),
}

/// Verifies a forwarded message as the receiver verified the delivery:
/// the `Ricloud-Signature` header's HMAC over the body with the secret
/// (any of `verifier`'s), and its timestamp within the window at the time
/// the receiver received it (`Ricloud-Received-At`). `header` looks a
/// header (NATS) or stream field (Redis) up by name.
///
/// This proves that the API signed these bytes with the secret, whoever
/// wrote them to the broker. It does not prove that the message is new:
/// anyone who can write to the stream can copy a genuine message, so a
/// consumer deduplicates by [`header::EVENT_ID`] as a receiver does.
///
/// # Errors
/// [`ConsumeError`] naming what failed.
pub fn verify_forwarded<'a>(
    verifier: &Verifier,
    header: impl Fn(&str) -> Option<&'a str>,
    body: impl Into<Bytes>,
) -> Result<VerifiedEvent, ConsumeError> {
    let signature = header(header::SIGNATURE).ok_or(ConsumeError::Missing(header::SIGNATURE))?;
    let received = header(header::RECEIVED_AT).ok_or(ConsumeError::Missing(header::RECEIVED_AT))?;
    let millis: u64 = received.parse().map_err(|_| ConsumeError::ReceivedAt)?;
    let received_at = UNIX_EPOCH
        .checked_add(Duration::from_millis(millis))
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let verified = verifier.verify_at(Some(signature.as_bytes()), body, received_at)?;
    Ok(VerifiedEvent::parse(verified)?)
}
