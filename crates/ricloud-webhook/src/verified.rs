//! The two ways an event reaches handlers, each a type of its own:
//! [`VerifiedEvent`], parsed from a body whose signature just matched, and
//! [`StoredEvent`], read back from a store that verified it before
//! committing it. Neither can be built from arbitrary bytes by accident.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;

use crate::{Event, EventError, SignatureHeader, VerifiedBody};

/// An event parsed from a [`VerifiedBody`]: what a receiver hands to its
/// [`Dispatcher`](crate::Dispatcher), its [`DeliveryStore`](crate::DeliveryStore)
/// and its [`EventQueue`](crate::EventQueue).
///
/// Its only constructor is [`VerifiedEvent::parse`], so holding one proves
/// that the signature matched.
#[derive(Debug, Clone)]
pub struct VerifiedEvent {
    event: Arc<Event>,
    matched_secret: usize,
}

impl VerifiedEvent {
    /// Parses the verified body as an event.
    ///
    /// # Errors
    /// [`EventError`] when the body is not an event.
    pub fn parse(verified: VerifiedBody) -> Result<Self, EventError> {
        Self::parse_for(verified, None)
    }

    /// [`parse`](Self::parse), for the named webhook config whose secret
    /// verified the body.
    pub(crate) fn parse_for(
        verified: VerifiedBody,
        config: Option<Arc<str>>,
    ) -> Result<Self, EventError> {
        let matched_secret = verified.matched_secret();
        let signature = *verified.signature_header();
        let received_at = verified.verified_at();
        let mut event = Event::from_json(verified.into_body())?;
        event.config = config;
        event.signature = Some(signature);
        event.received_at = Some(received_at);
        Ok(Self {
            event: Arc::new(event),
            matched_secret,
        })
    }

    /// The event.
    pub fn event(&self) -> &Arc<Event> {
        &self.event
    }

    /// Which secret verified it (0 = current).
    pub fn matched_secret(&self) -> usize {
        self.matched_secret
    }
}

/// An event a store's worker read back from the store, for
/// [`Dispatcher::dispatch_stored`](crate::Dispatcher::dispatch_stored).
///
/// A store must build it only from bytes that it committed after a
/// receiver verified them (as a [`VerifiedEvent`] handed to
/// [`EventQueue::enqueue`](crate::EventQueue::enqueue) or
/// [`DeliveryStore::claim`](crate::DeliveryStore::claim)), or that it
/// fetched from the ricloud API itself over the API's authenticated
/// channel. It is a type of its own so that a handler's caller says which
/// kind of event it runs, and a review of [`StoredEvent::from_store`]'s
/// callers finds every place that trusts stored bytes.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    event: Arc<Event>,
}

impl StoredEvent {
    /// Parses bytes this store committed after they were verified (see the
    /// type's documentation), with the name of the webhook config that
    /// delivered them ([`Event::config`]) as the store recorded it. The
    /// signature's time window is not checked again: a stored event may be
    /// run, or replayed, long after it arrived.
    ///
    /// # Errors
    /// [`EventError`] when the body is not an event.
    pub fn from_store(body: impl Into<Bytes>, config: Option<&str>) -> Result<Self, EventError> {
        let mut event = Event::from_json(body)?;
        event.config = config.map(Arc::from);
        Ok(Self {
            event: Arc::new(event),
        })
    }

    /// Gives the event the `Ricloud-Signature` header that verified it and
    /// the time it was received, as the store recorded them
    /// ([`Event::signature`], [`Event::received_at`]), so that it can be
    /// passed on as it arrived.
    #[must_use]
    pub fn with_delivery(
        mut self,
        signature: Option<SignatureHeader>,
        received_at: Option<SystemTime>,
    ) -> Self {
        // Not shared yet: `from_store` made it, so this clones nothing.
        let event = Arc::make_mut(&mut self.event);
        event.signature = signature;
        event.received_at = received_at;
        self
    }

    /// The event.
    pub fn event(&self) -> &Arc<Event> {
        &self.event
    }
}
