//! A [`BusTransport`] over Redis pub/sub: every board instance publishes its local events on
//! `<prefix><topic>` and pattern-subscribes to `<prefix>*`, so all instances see all events.
//!
//! Delivery is at-most-once, like Redis pub/sub itself: events published while an instance is
//! disconnected are not replayed to it (durable work belongs on the job queue, not the bus).
//! A lost connection is retried with capped exponential backoff; health reports degraded
//! meanwhile, and the local bus keeps working throughout.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use magmobo_core::bus::{BusTransport, Event, RemoteSink};
use magmobo_core::{Error, Health, Result, async_trait};
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, PubSub};

/// Default channel prefix; boards sharing events must use the same one.
pub const DEFAULT_PREFIX: &str = "magmobo:bus:";

/// The Redis bus transport.
pub struct RedisBus {
    url: String,
    prefix: String,
    connected: Arc<AtomicBool>,
    publisher: tokio::sync::Mutex<Option<ConnectionManager>>,
    receiver: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for RedisBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBus")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisBus {
    /// A transport for the Redis server at `url` (e.g. `redis://127.0.0.1:6379`).
    pub fn new(url: impl Into<String>) -> Self {
        RedisBus {
            url: url.into(),
            prefix: DEFAULT_PREFIX.to_owned(),
            connected: Arc::new(AtomicBool::new(false)),
            publisher: tokio::sync::Mutex::new(None),
            receiver: Mutex::new(None),
        }
    }

    /// Uses another channel prefix, to keep separate groups of boards apart on one Redis.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    fn client(&self) -> Result<redis::Client> {
        redis::Client::open(self.url.as_str()).map_err(|e| {
            Error::part_with("redis-bus", format!("invalid Redis URL '{}'", self.url), e)
        })
    }
}

async fn subscribe(client: &redis::Client, pattern: &str) -> redis::RedisResult<PubSub> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.psubscribe(pattern).await?;
    Ok(pubsub)
}

async fn receive_loop(
    client: redis::Client,
    pattern: String,
    mut pubsub: PubSub,
    sink: RemoteSink,
    connected: Arc<AtomicBool>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        {
            let mut messages = pubsub.on_message();
            while let Some(message) = messages.next().await {
                let Ok(payload) = message.get_payload::<String>() else {
                    continue;
                };
                match serde_json::from_str::<Event>(&payload) {
                    Ok(event) => {
                        if !sink.deliver(event) {
                            return;
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "ignoring a malformed bus message from Redis")
                    }
                }
            }
        }
        connected.store(false, Ordering::Relaxed);
        tracing::warn!("Redis bus connection lost; reconnecting");
        loop {
            tokio::time::sleep(backoff).await;
            match subscribe(&client, &pattern).await {
                Ok(fresh) => {
                    pubsub = fresh;
                    connected.store(true, Ordering::Relaxed);
                    backoff = Duration::from_millis(100);
                    tracing::info!("Redis bus reconnected");
                    break;
                }
                Err(error) => {
                    tracing::debug!(%error, "Redis bus reconnect failed");
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

#[async_trait]
impl BusTransport for RedisBus {
    fn name(&self) -> &str {
        "Redis"
    }

    async fn start(&self, sink: RemoteSink) -> Result<()> {
        let client = self.client()?;
        let unreachable = |e: redis::RedisError| {
            Error::part_with(
                "redis-bus",
                format!("cannot reach Redis at {}", self.url),
                e,
            )
        };
        let pattern = format!("{}*", self.prefix);
        let pubsub = subscribe(&client, &pattern).await.map_err(unreachable)?;
        let manager = client.get_connection_manager().await.map_err(unreachable)?;
        *self.publisher.lock().await = Some(manager);
        self.connected.store(true, Ordering::Relaxed);
        let task = tokio::spawn(receive_loop(
            client,
            pattern,
            pubsub,
            sink,
            self.connected.clone(),
        ));
        if let Some(old) = self
            .receiver
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(task)
        {
            old.abort();
        }
        Ok(())
    }

    async fn send(&self, event: Arc<Event>) -> Result<()> {
        let payload = serde_json::to_string(&*event).map_err(|source| Error::Payload {
            topic: event.topic.clone(),
            source,
        })?;
        let channel = format!("{}{}", self.prefix, event.topic);
        let mut guard = self.publisher.lock().await;
        let Some(conn) = guard.as_mut() else {
            return Err(Error::part("redis-bus", "not started"));
        };
        conn.publish::<_, _, i64>(channel, payload)
            .await
            .map(|_| ())
            .map_err(|e| Error::part_with("redis-bus", "publishing to Redis failed", e))
    }

    async fn stop(&self) {
        if let Some(task) = self
            .receiver
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            task.abort();
        }
        *self.publisher.lock().await = None;
        self.connected.store(false, Ordering::Relaxed);
    }

    async fn health(&self) -> Health {
        if self.connected.load(Ordering::Relaxed) {
            Health::ok().with_detail(self.url.clone())
        } else {
            Health::degraded("not connected to Redis; events stay local until it returns")
        }
    }
}
