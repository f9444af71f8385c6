//! Bus transports carry events between board instances (the Redis driver is one).

use std::sync::{Arc, Weak};

use async_trait::async_trait;

use super::{Event, Inner, deliver};
use crate::Result;
use crate::health::Health;

/// Carries events to and from other board instances.
///
/// The bus calls [`BusTransport::send`] from one forwarding task, in publish order; the
/// transport delivers what it receives through the [`RemoteSink`] handed to `start`, which
/// drops events that originated on this instance so nothing is delivered twice.
#[async_trait]
pub trait BusTransport: Send + Sync + 'static {
    /// Name for `/health` and the POST screen.
    fn name(&self) -> &str;
    /// Connects and starts receiving. Must return once subscribed, so that events published
    /// by other instances after boot are not missed.
    async fn start(&self, sink: RemoteSink) -> Result<()>;
    /// Sends one locally published event to the other instances.
    async fn send(&self, event: Arc<Event>) -> Result<()>;
    /// Stops receiving and closes connections.
    async fn stop(&self);
    /// Connection health.
    async fn health(&self) -> Health {
        Health::ok()
    }
}

/// Where a transport delivers events received from other instances.
#[derive(Clone)]
pub struct RemoteSink {
    pub(super) bus: Weak<Inner>,
}

impl std::fmt::Debug for RemoteSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RemoteSink")
    }
}

impl RemoteSink {
    /// Delivers an event from another instance to local subscribers. Returns false once the
    /// bus is gone, so the transport's receive loop can end.
    pub fn deliver(&self, event: Event) -> bool {
        let Some(inner) = self.bus.upgrade() else {
            return false;
        };
        if event.origin == inner.instance {
            return true;
        }
        inner
            .counters
            .received_remote
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        deliver(&inner, &Arc::new(event));
        true
    }

    /// The instance id of the local bus (transports may use it to filter).
    pub fn instance(&self) -> Option<String> {
        self.bus.upgrade().map(|i| i.instance.clone())
    }
}
