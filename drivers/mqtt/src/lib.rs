//! The MQTT peripheral: devices publish JSON telemetry to a broker, and the rows land in
//! tables; table changes go back out as MQTT messages.
//!
//! Ingest does not write SQL itself. Each message becomes a `POST {prefix}/{table}` sent
//! through the board's own route table with the device's API key, so it takes MagGate's
//! write path exactly as an HTTP client would: the PSU authenticates the device, policies
//! and row-level security apply, Sentinel inspects it, and MagGate publishes
//! `table.<name>.changed`. A message that is not JSON, or that MagGate refuses, is counted,
//! logged, and republished with the reason on a dead-letter topic; the peripheral never
//! stops over one bad payload.
//!
//! Delivery is at least once: subscriptions use QoS 1 with manual acknowledgement, and a
//! message is acknowledged only after it was written or dead-lettered. The client reconnects
//! by itself (with a capped backoff) and subscribes again after each reconnect; health is
//! degraded while the broker is away.

mod topic;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use magmobo_core::axum::body::{Body, to_bytes};
use magmobo_core::board::{BoardBuilder, CpuHandle, PeripheralContext};
use magmobo_core::bus::{Event, Pattern};
use magmobo_core::part::{Label, Peripheral, PeripheralInfo, PeripheralMeta};
use magmobo_core::{Health, Plug, async_trait, caps};
use rumqttc::{AsyncClient, EventLoop, Packet, QoS};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use topic::topic_for_event;

const NAME: &str = "mqtt";

/// Errors in the peripheral's configuration, reported on the POST screen.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The broker URL is not `mqtt://host[:port]`.
    #[error("'{0}' is not a broker URL: write mqtt://host:port (tcp:// works too)")]
    InvalidUrl(String),
    /// A bus pattern of a publish rule does not parse.
    #[error("publish rule '{pattern}': {why}")]
    InvalidPattern {
        /// The pattern as given.
        pattern: String,
        /// Why it was refused.
        why: String,
    },
    /// An ingest rule names no table, or a table name MagGate could not route.
    #[error("ingest rule for '{0}': the table name must be a plain identifier")]
    InvalidTable(String),
}

/// Telemetry to ingest: messages on `topic` (an MQTT filter, `+` and `#` allowed) become
/// rows of `table`, written with `api_key`'s identity.
#[derive(Debug, Clone)]
pub struct Ingest {
    /// MQTT topic filter, e.g. `sensors/+/telemetry`.
    pub topic: String,
    /// Table the JSON object (or array of objects) is inserted into.
    pub table: String,
    /// The device's API key (`apikey` header of the write); its role decides what it may
    /// write.
    pub api_key: String,
}

/// Bus events to publish: events matching `events` (a bus pattern such as
/// `table.*.changed`) go to `{topic_prefix}/{event topic with '.' as '/'}`.
#[derive(Debug, Clone)]
pub struct Publish {
    /// Bus pattern.
    pub events: String,
    /// MQTT topic prefix, e.g. `magmobo`.
    pub topic_prefix: String,
}

/// Where the broker is and what flows each way.
#[derive(Debug, Clone)]
pub struct MqttOptions {
    /// `mqtt://host:port` (default port 1883).
    pub url: String,
    /// Client id at the broker; two boards need two ids.
    pub client_id: String,
    /// Telemetry to ingest.
    pub ingest: Vec<Ingest>,
    /// Events to publish.
    pub publish: Vec<Publish>,
    /// Where refused messages go, with the reason.
    pub dead_letter_topic: String,
    /// Where MagGate serves (`/rest/v1`).
    pub rest_prefix: String,
    /// MQTT keep-alive.
    pub keep_alive: Duration,
}

impl Default for MqttOptions {
    fn default() -> Self {
        MqttOptions {
            url: "mqtt://127.0.0.1:1883".into(),
            client_id: "magmobo".into(),
            ingest: Vec::new(),
            publish: Vec::new(),
            dead_letter_topic: "magmobo/dead-letter".into(),
            rest_prefix: "/rest/v1".into(),
            keep_alive: Duration::from_secs(30),
        }
    }
}

/// Counters, readable at any time through [`Mqtt::stats`].
#[derive(Debug, Default)]
struct Counters {
    received: AtomicU64,
    ingested: AtomicU64,
    malformed: AtomicU64,
    rejected: AtomicU64,
    published: AtomicU64,
    connected: AtomicBool,
}

/// A snapshot of the peripheral's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MqttStats {
    /// Messages received on ingest topics.
    pub received: u64,
    /// Messages written to their table.
    pub ingested: u64,
    /// Messages that were not a JSON object or array of objects.
    pub malformed: u64,
    /// Messages MagGate refused (unknown column, wrong type, bad key...).
    pub rejected: u64,
    /// Bus events published to the broker.
    pub published: u64,
    /// Whether the broker connection is up.
    pub connected: bool,
}

/// A handle on the counters that stays valid after the peripheral is plugged in.
#[derive(Debug, Clone, Default)]
pub struct MqttStatsHandle(Arc<Counters>);

impl MqttStatsHandle {
    /// The counters now.
    pub fn snapshot(&self) -> MqttStats {
        let c = &self.0;
        MqttStats {
            received: c.received.load(Ordering::Relaxed),
            ingested: c.ingested.load(Ordering::Relaxed),
            malformed: c.malformed.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
            published: c.published.load(Ordering::Relaxed),
            connected: c.connected.load(Ordering::Relaxed),
        }
    }
}

struct Running {
    client: AsyncClient,
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

/// The MQTT peripheral.
pub struct Mqtt {
    options: MqttOptions,
    patterns: Vec<(Pattern, String)>,
    invalid: Option<Error>,
    counters: MqttStatsHandle,
    running: std::sync::Mutex<Option<Running>>,
}

impl std::fmt::Debug for Mqtt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mqtt")
            .field("url", &self.options.url)
            .field("client_id", &self.options.client_id)
            .finish_non_exhaustive()
    }
}

impl Mqtt {
    /// A peripheral with these options. Problems in them are reported when the board
    /// connects the peripheral, on the POST screen.
    pub fn new(options: MqttOptions) -> Self {
        let mut invalid = None;
        let mut patterns = Vec::new();
        for rule in &options.publish {
            match Pattern::parse(&rule.events) {
                Ok(p) => patterns.push((p, rule.topic_prefix.clone())),
                Err(e) => {
                    invalid.get_or_insert(Error::InvalidPattern {
                        pattern: rule.events.clone(),
                        why: e.to_string(),
                    });
                }
            }
        }
        if let Some(bad) = options
            .ingest
            .iter()
            .find(|r| !topic::is_identifier(&r.table))
        {
            invalid.get_or_insert(Error::InvalidTable(bad.topic.clone()));
        }
        if let Err(e) = topic::broker_address(&options.url) {
            invalid.get_or_insert(e);
        }
        Mqtt {
            options,
            patterns,
            invalid,
            counters: MqttStatsHandle::default(),
            running: std::sync::Mutex::new(None),
        }
    }

    /// The counters; keep the handle before plugging the peripheral in.
    pub fn stats(&self) -> MqttStatsHandle {
        self.counters.clone()
    }

    fn client(&self) -> Option<AsyncClient> {
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|r| r.client.clone())
    }
}

impl PeripheralMeta for Mqtt {
    fn peripheral_info(&self) -> PeripheralInfo {
        let mut info = PeripheralInfo::new(NAME, env!("CARGO_PKG_VERSION"));
        info.title = "MQTT".into();
        info.subscribes = self
            .patterns
            .iter()
            .map(|(p, _)| Label::from(p.as_str().to_owned()))
            .collect();
        info.capabilities = vec![caps::CPU_MOUNT.into(), caps::BUS_PUBLISH.into()];
        info
    }
}

impl Plug for Mqtt {
    fn plug(self, board: &mut BoardBuilder) {
        board.put_peripheral(self, false);
    }
}

/// What the ingest worker needs.
struct Ingestor {
    client: AsyncClient,
    cpu: CpuHandle,
    rules: Vec<Ingest>,
    prefix: String,
    dead_letter: String,
    counters: Arc<Counters>,
}

#[async_trait]
impl Peripheral for Mqtt {
    async fn connect(&self, ctx: &PeripheralContext) -> magmobo_core::Result<()> {
        if let Some(e) = &self.invalid {
            return Err(magmobo_core::Error::part(ctx.name(), e.to_string()));
        }
        let (host, port) = topic::broker_address(&self.options.url)
            .map_err(|e| magmobo_core::Error::part(ctx.name(), e.to_string()))?;
        let mut mqtt = rumqttc::MqttOptions::new(&self.options.client_id, host, port);
        mqtt.set_keep_alive(self.options.keep_alive)
            .set_manual_acks(true)
            .set_clean_session(true);
        let (client, eventloop) = AsyncClient::new(mqtt, 256);
        let stop = CancellationToken::new();
        let (tx, rx) = mpsc::channel(256);
        let counters = self.counters.0.clone();
        let filters: Vec<String> = self
            .options
            .ingest
            .iter()
            .map(|r| r.topic.clone())
            .collect();
        let mut tasks = vec![tokio::spawn(poll(
            eventloop,
            client.clone(),
            filters,
            tx,
            counters.clone(),
            stop.clone(),
        ))];
        let ingestor = Ingestor {
            client: client.clone(),
            cpu: ctx.cpu()?,
            rules: self.options.ingest.clone(),
            prefix: self.options.rest_prefix.trim_end_matches('/').to_owned(),
            dead_letter: self.options.dead_letter_topic.clone(),
            counters,
        };
        tasks.push(tokio::spawn(ingest_loop(ingestor, rx, stop.clone())));
        let old = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(Running {
                client,
                stop,
                tasks,
            });
        if let Some(old) = old {
            old.stop.cancel();
        }
        Ok(())
    }

    async fn disconnect(&self) -> magmobo_core::Result<()> {
        let running = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(r) = running {
            let _ = r.client.try_disconnect();
            r.stop.cancel();
            for task in r.tasks {
                let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
            }
        }
        self.counters.0.connected.store(false, Ordering::Relaxed);
        Ok(())
    }

    async fn send(&self, event: Arc<Event>) -> magmobo_core::Result<()> {
        let Some((_, prefix)) = self.patterns.iter().find(|(p, _)| p.matches(&event.topic)) else {
            return Ok(());
        };
        let Some(client) = self.client() else {
            return Ok(());
        };
        let body = serde_json::json!({
            "topic": event.topic,
            "source": event.source,
            "payload": event.payload,
        });
        // QoS 1: the client keeps the message while the broker is away and sends it on
        // reconnect, up to its request buffer; beyond that the event is dropped and logged.
        match client.try_publish(
            topic_for_event(prefix, &event.topic),
            QoS::AtLeastOnce,
            false,
            body.to_string(),
        ) {
            Ok(()) => {
                self.counters.0.published.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => tracing::warn!(topic = %event.topic, error = %e, "MQTT publish dropped"),
        }
        Ok(())
    }

    async fn health(&self) -> Health {
        let s = self.counters.snapshot();
        let detail = format!(
            "{} ingested, {} malformed, {} rejected, {} published",
            s.ingested, s.malformed, s.rejected, s.published
        );
        if s.connected {
            Health::ok().with_detail(detail)
        } else {
            Health::degraded(format!(
                "broker {} unreachable; reconnecting ({detail})",
                self.options.url
            ))
        }
    }
}

/// Drives the connection: reconnects with a capped backoff, subscribes after every
/// (re)connect, and hands incoming messages to the ingest worker.
async fn poll(
    mut eventloop: EventLoop,
    client: AsyncClient,
    filters: Vec<String>,
    tx: mpsc::Sender<rumqttc::Publish>,
    counters: Arc<Counters>,
    stop: CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    let mut warned = false;
    loop {
        let event = tokio::select! {
            _ = stop.cancelled() => return,
            e = eventloop.poll() => e,
        };
        match event {
            Ok(rumqttc::Event::Incoming(Packet::ConnAck(_))) => {
                counters.connected.store(true, Ordering::Relaxed);
                backoff = Duration::from_millis(100);
                if warned {
                    tracing::info!("MQTT broker reachable again");
                    warned = false;
                }
                for filter in &filters {
                    if let Err(e) = client.try_subscribe(filter.clone(), QoS::AtLeastOnce) {
                        tracing::warn!(%filter, error = %e, "MQTT subscribe failed");
                    }
                }
            }
            Ok(rumqttc::Event::Incoming(Packet::Publish(message))) => {
                counters.received.fetch_add(1, Ordering::Relaxed);
                if tx.send(message).await.is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(e) => {
                counters.connected.store(false, Ordering::Relaxed);
                if !warned {
                    tracing::warn!(error = %e, "MQTT broker unreachable; retrying");
                    warned = true;
                }
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn ingest_loop(
    ingestor: Ingestor,
    mut rx: mpsc::Receiver<rumqttc::Publish>,
    stop: CancellationToken,
) {
    loop {
        let message = tokio::select! {
            _ = stop.cancelled() => return,
            m = rx.recv() => match m {
                Some(m) => m,
                None => return,
            },
        };
        ingestor.ingest(&message).await;
        if let Err(e) = ingestor.client.ack(&message).await {
            tracing::warn!(error = %e, "MQTT ack failed; the broker will redeliver");
        }
    }
}

impl Ingestor {
    async fn ingest(&self, message: &rumqttc::Publish) {
        let topic = message.topic.as_str();
        let Some(rule) = self
            .rules
            .iter()
            .find(|r| rumqttc::mqttbytes::matches(topic, &r.topic))
        else {
            return;
        };
        let rows: Option<serde_json::Value> = serde_json::from_slice(&message.payload)
            .ok()
            .filter(is_rows);
        let Some(rows) = rows else {
            self.counters.malformed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%topic, bytes = message.payload.len(), "malformed MQTT telemetry dead-lettered");
            self.dead_letter(
                message,
                serde_json::json!({ "reason": "malformed", "message": "the payload is not a JSON object or array of objects" }),
            );
            return;
        };
        let request = http::Request::builder()
            .method(http::Method::POST)
            .uri(format!("{}/{}", self.prefix, rule.table))
            .header("apikey", &rule.api_key)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header("prefer", "return=minimal")
            .header("x-magmobo-source", format!("mqtt:{topic}"))
            .body(Body::from(rows.to_string()));
        let request = match request {
            Ok(r) => r,
            Err(e) => {
                self.reject(
                    message,
                    400,
                    serde_json::json!({ "message": e.to_string() }),
                );
                return;
            }
        };
        let response = self.cpu.routes().dispatch(request).await;
        let status = response.status();
        if status.is_success() {
            self.counters.ingested.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let body = to_bytes(response.into_body(), 64 * 1024)
            .await
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .unwrap_or(serde_json::Value::Null);
        tracing::warn!(%topic, status = status.as_u16(), "MQTT telemetry refused; dead-lettered");
        self.reject(message, status.as_u16(), body);
    }

    fn reject(&self, message: &rumqttc::Publish, status: u16, error: serde_json::Value) {
        self.counters.rejected.fetch_add(1, Ordering::Relaxed);
        self.dead_letter(
            message,
            serde_json::json!({ "reason": "rejected", "status": status, "error": error }),
        );
    }

    fn dead_letter(&self, message: &rumqttc::Publish, mut why: serde_json::Value) {
        why["topic"] = serde_json::json!(message.topic);
        why["payload"] = serde_json::json!(String::from_utf8_lossy(&message.payload));
        if let Err(e) =
            self.client
                .try_publish(&self.dead_letter, QoS::AtLeastOnce, false, why.to_string())
        {
            tracing::warn!(error = %e, "could not publish to the dead-letter topic");
        }
    }
}

fn is_rows(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Object(_) => true,
        serde_json::Value::Array(rows) => !rows.is_empty() && rows.iter().all(|r| r.is_object()),
        _ => false,
    }
}
