//! The event that travels on the bus, and the trait that gives a Rust type its topic.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// One message on the bus. Shared as `Arc<Event>` between subscribers: it is never copied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Dotted topic, e.g. `auth.login.failed`.
    pub topic: String,
    /// The part that published it.
    pub source: String,
    /// The board instance it was first published on (bus transports use it to skip echoes).
    pub origin: String,
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The body.
    pub payload: serde_json::Value,
}

impl Event {
    /// Builds an event stamped with the current time.
    pub fn new(
        topic: impl Into<String>,
        source: impl Into<String>,
        origin: impl Into<String>,
        payload: serde_json::Value,
    ) -> Self {
        let at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default();
        Event {
            topic: topic.into(),
            source: source.into(),
            origin: origin.into(),
            at_ms,
            payload,
        }
    }

    /// Decodes the payload as a typed event.
    pub fn decode<E: DeserializeOwned>(&self) -> Result<E> {
        serde_json::from_value(self.payload.clone()).map_err(|source| Error::Payload {
            topic: self.topic.clone(),
            source,
        })
    }
}

/// A Rust type that travels on the bus under a fixed topic.
///
/// ```
/// use magmobo_core::bus::BusEvent;
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct LoginFailed { user: String }
/// impl BusEvent for LoginFailed { const TOPIC: &'static str = "auth.login.failed"; }
/// ```
pub trait BusEvent: Serialize + DeserializeOwned + Send + 'static {
    /// The topic events of this type are published on.
    const TOPIC: &'static str;
}
