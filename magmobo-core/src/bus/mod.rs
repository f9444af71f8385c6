//! The system bus: typed events on dotted topics, publish/subscribe with wildcards, and
//! request/response between parts with a timeout.
//!
//! Overflow policy: every subscriber has a bounded queue (capacity set on the board). A
//! publisher never waits: when a subscriber's queue is full the event is dropped *for that
//! subscriber only* and counted in its lag and in [`BusStats::dropped`]. Memory therefore never
//! grows without bound, and a slow subscriber cannot slow the request path that publishes.
//!
//! In-process by default. A [`BusTransport`] (e.g. the Redis driver) extends the bus across
//! board instances: local events are forwarded to it through one more bounded queue, and
//! events it receives from other instances are delivered locally but not forwarded again.

mod event;
mod topic;
mod transport;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use futures::future::BoxFuture;
use serde::Serialize;
use tokio::sync::mpsc;

pub use event::{BusEvent, Event};
pub use topic::{Pattern, validate_topic};
pub use transport::{BusTransport, RemoteSink};

use crate::health::Health;
use crate::{Error, Result};

/// Default capacity of each subscriber's queue.
pub const DEFAULT_CAPACITY: usize = 1024;

/// Counters describing the bus since it was created.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BusStats {
    /// Events published locally.
    pub published: u64,
    /// Events received from other instances through the transport.
    pub received_remote: u64,
    /// Deliveries into subscriber queues.
    pub delivered: u64,
    /// Deliveries dropped because a subscriber's queue was full (lag).
    pub dropped: u64,
    /// Events handed to the transport.
    pub forwarded: u64,
    /// Events not forwarded because the transport queue was full or the transport failed.
    pub forward_dropped: u64,
    /// Live subscriptions.
    pub subscribers: u64,
    /// Largest lag of any live subscriber.
    pub max_subscriber_lag: u64,
}

#[derive(Default)]
struct Counters {
    published: AtomicU64,
    received_remote: AtomicU64,
    delivered: AtomicU64,
    dropped: AtomicU64,
    forwarded: AtomicU64,
    forward_dropped: AtomicU64,
}

struct Subscriber {
    id: u64,
    pattern: Pattern,
    tx: mpsc::Sender<Arc<Event>>,
    lagged: Arc<AtomicU64>,
}

type Handler =
    Arc<dyn Fn(Arc<Event>) -> BoxFuture<'static, Result<serde_json::Value>> + Send + Sync>;

struct ResponderEntry {
    id: u64,
    pattern: Pattern,
    handler: Handler,
}

struct Inner {
    instance: String,
    capacity: usize,
    next_id: AtomicU64,
    subscribers: RwLock<Vec<Subscriber>>,
    responders: RwLock<Vec<ResponderEntry>>,
    counters: Counters,
    transport: Mutex<Option<TransportLink>>,
}

struct TransportLink {
    transport: Arc<dyn BusTransport>,
    queue: mpsc::Sender<Arc<Event>>,
    pump: Option<tokio::task::JoinHandle<()>>,
}

/// A handle to the bus. Cheap to clone; all clones share one bus.
#[derive(Clone)]
pub struct Bus {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus")
            .field("instance", &self.inner.instance)
            .finish_non_exhaustive()
    }
}

impl Bus {
    /// A bus whose subscriber queues hold `capacity` events each. `instance` identifies this
    /// board among others sharing a transport.
    pub fn new(instance: impl Into<String>, capacity: usize) -> Bus {
        Bus {
            inner: Arc::new(Inner {
                instance: instance.into(),
                capacity: capacity.max(1),
                next_id: AtomicU64::new(1),
                subscribers: RwLock::new(Vec::new()),
                responders: RwLock::new(Vec::new()),
                counters: Counters::default(),
                transport: Mutex::new(None),
            }),
        }
    }

    /// The instance id stamped on events published here.
    pub fn instance(&self) -> &str {
        &self.inner.instance
    }

    /// Publishes a JSON payload on `topic` from `source`.
    pub fn publish(&self, topic: &str, source: &str, payload: serde_json::Value) -> Result<()> {
        validate_topic(topic)?;
        let event = Arc::new(Event::new(
            topic,
            source,
            self.inner.instance.as_str(),
            payload,
        ));
        self.inner
            .counters
            .published
            .fetch_add(1, Ordering::Relaxed);
        self.deliver_local(&event);
        self.forward(event);
        Ok(())
    }

    /// Publishes a typed event on its topic.
    pub fn emit<E: BusEvent>(&self, source: &str, event: &E) -> Result<()> {
        let payload = serde_json::to_value(event).map_err(|source| Error::Payload {
            topic: E::TOPIC.to_owned(),
            source,
        })?;
        self.publish(E::TOPIC, source, payload)
    }

    /// Subscribes to every topic matching `pattern`.
    pub fn subscribe(&self, pattern: &str) -> Result<Subscription> {
        let pattern = Pattern::parse(pattern)?;
        let (tx, rx) = mpsc::channel(self.inner.capacity);
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let lagged = Arc::new(AtomicU64::new(0));
        let entry = Subscriber {
            id,
            pattern,
            tx,
            lagged: lagged.clone(),
        };
        write(&self.inner.subscribers).push(entry);
        Ok(Subscription {
            id,
            rx,
            lagged,
            bus: Arc::downgrade(&self.inner),
        })
    }

    /// Subscribes to a typed event's topic.
    pub fn subscribe_to<E: BusEvent>(&self) -> Result<TypedSubscription<E>> {
        Ok(TypedSubscription {
            inner: self.subscribe(E::TOPIC)?,
            _type: std::marker::PhantomData,
        })
    }

    /// Answers requests on topics matching `pattern` until the returned guard is dropped.
    pub fn respond<F, Fut>(&self, pattern: &str, handler: F) -> Result<ResponderGuard>
    where
        F: Fn(Arc<Event>) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<serde_json::Value>> + Send + 'static,
    {
        let pattern = Pattern::parse(pattern)?;
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let handler: Handler = Arc::new(move |event| Box::pin(handler(event)));
        write(&self.inner.responders).push(ResponderEntry {
            id,
            pattern,
            handler,
        });
        Ok(ResponderGuard {
            id,
            bus: Arc::downgrade(&self.inner),
        })
    }

    /// Sends a request to the first responder on `topic` and waits up to `timeout` for its
    /// reply. Fails with [`Error::NoResponder`] or [`Error::BusTimeout`].
    pub async fn request(
        &self,
        topic: &str,
        source: &str,
        payload: serde_json::Value,
        timeout: Duration,
    ) -> Result<serde_json::Value> {
        validate_topic(topic)?;
        let handler = read(&self.inner.responders)
            .iter()
            .find(|r| r.pattern.matches(topic))
            .map(|r| r.handler.clone())
            .ok_or_else(|| Error::NoResponder {
                topic: topic.to_owned(),
            })?;
        let event = Arc::new(Event::new(
            topic,
            source,
            self.inner.instance.as_str(),
            payload,
        ));
        match tokio::time::timeout(timeout, handler(event)).await {
            Ok(reply) => reply,
            Err(_) => Err(Error::BusTimeout {
                topic: topic.to_owned(),
                timeout,
            }),
        }
    }

    /// Current counters.
    pub fn stats(&self) -> BusStats {
        let c = &self.inner.counters;
        let subs = read(&self.inner.subscribers);
        BusStats {
            published: c.published.load(Ordering::Relaxed),
            received_remote: c.received_remote.load(Ordering::Relaxed),
            delivered: c.delivered.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            forwarded: c.forwarded.load(Ordering::Relaxed),
            forward_dropped: c.forward_dropped.load(Ordering::Relaxed),
            subscribers: subs.len() as u64,
            max_subscriber_lag: subs
                .iter()
                .map(|s| s.lagged.load(Ordering::Relaxed))
                .max()
                .unwrap_or(0),
        }
    }

    /// Attaches a transport and starts forwarding to it. Called by the board at boot.
    pub async fn attach_transport(&self, transport: Arc<dyn BusTransport>) -> Result<()> {
        self.detach_transport().await;
        let sink = RemoteSink {
            bus: Arc::downgrade(&self.inner),
        };
        transport.start(sink).await?;
        let (queue, mut rx) = mpsc::channel::<Arc<Event>>(self.inner.capacity);
        let weak = Arc::downgrade(&self.inner);
        let forwarder = transport.clone();
        let pump = tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                let failed = forwarder.send(event).await.is_err();
                if let Some(inner) = weak.upgrade() {
                    let counter = if failed {
                        &inner.counters.forward_dropped
                    } else {
                        &inner.counters.forwarded
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        *lock(&self.inner.transport) = Some(TransportLink {
            transport,
            queue,
            pump: Some(pump),
        });
        Ok(())
    }

    /// Stops forwarding and stops the transport, if one is attached.
    pub async fn detach_transport(&self) {
        let link = lock(&self.inner.transport).take();
        if let Some(mut link) = link {
            drop(link.queue);
            if let Some(pump) = link.pump.take() {
                // The queue is closed, so the pump ends once it has flushed what is queued.
                let _ = tokio::time::timeout(Duration::from_secs(2), pump).await;
            }
            link.transport.stop().await;
        }
    }

    /// Health of the transport, or ok when the bus is in-process only.
    pub async fn transport_health(&self) -> Option<(String, Health)> {
        let transport = lock(&self.inner.transport)
            .as_ref()
            .map(|l| l.transport.clone())?;
        Some((transport.name().to_owned(), transport.health().await))
    }

    fn forward(&self, event: Arc<Event>) {
        let guard = lock(&self.inner.transport);
        if let Some(link) = guard.as_ref()
            && link.queue.try_send(event).is_err()
        {
            self.inner
                .counters
                .forward_dropped
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    fn deliver_local(&self, event: &Arc<Event>) {
        deliver(&self.inner, event);
    }
}

fn deliver(inner: &Inner, event: &Arc<Event>) {
    let mut closed = false;
    {
        let subs = read(&inner.subscribers);
        for sub in subs.iter().filter(|s| s.pattern.matches(&event.topic)) {
            match sub.tx.try_send(event.clone()) {
                Ok(()) => {
                    inner.counters.delivered.fetch_add(1, Ordering::Relaxed);
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    sub.lagged.fetch_add(1, Ordering::Relaxed);
                    inner.counters.dropped.fetch_add(1, Ordering::Relaxed);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => closed = true,
            }
        }
    }
    if closed {
        write(&inner.subscribers).retain(|s| !s.tx.is_closed());
    }
}

/// A live subscription; dropping it unsubscribes.
#[derive(Debug)]
pub struct Subscription {
    id: u64,
    rx: mpsc::Receiver<Arc<Event>>,
    lagged: Arc<AtomicU64>,
    bus: Weak<Inner>,
}

impl Subscription {
    /// The next event, or `None` once the bus is gone.
    pub async fn recv(&mut self) -> Option<Arc<Event>> {
        self.rx.recv().await
    }

    /// The next event if one is queued, without waiting.
    pub fn try_recv(&mut self) -> Option<Arc<Event>> {
        self.rx.try_recv().ok()
    }

    /// Events dropped for this subscriber because its queue was full.
    pub fn lagged(&self) -> u64 {
        self.lagged.load(Ordering::Relaxed)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(inner) = self.bus.upgrade() {
            write(&inner.subscribers).retain(|s| s.id != self.id);
        }
    }
}

/// A subscription that decodes events into `E`.
#[derive(Debug)]
pub struct TypedSubscription<E> {
    inner: Subscription,
    _type: std::marker::PhantomData<fn() -> E>,
}

impl<E: BusEvent> TypedSubscription<E> {
    /// The next event decoded, `None` once the bus is gone. A payload that does not decode is
    /// an error for that event only.
    pub async fn recv(&mut self) -> Option<Result<E>> {
        let event = self.inner.recv().await?;
        Some(event.decode())
    }

    /// Events dropped for this subscriber because its queue was full.
    pub fn lagged(&self) -> u64 {
        self.inner.lagged()
    }
}

/// Keeps a responder registered; dropping it unregisters.
#[derive(Debug)]
pub struct ResponderGuard {
    id: u64,
    bus: Weak<Inner>,
}

impl Drop for ResponderGuard {
    fn drop(&mut self) {
        if let Some(inner) = self.bus.upgrade() {
            write(&inner.responders).retain(|r| r.id != self.id);
        }
    }
}

// Poisoning only happens if a panic hit while a lock was held; the data (lists of channel
// senders) stays consistent in that case, so we keep going rather than spread the panic.
fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}
fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}
fn lock<T>(lock: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    lock.lock().unwrap_or_else(|e| e.into_inner())
}
