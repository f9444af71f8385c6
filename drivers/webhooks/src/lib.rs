//! The Webhooks peripheral: bus events POSTed as signed JSON to HTTP endpoints.
//!
//! `send` does no HTTP itself: it enqueues one job per matching endpoint on the board's GPU
//! queue, and a worker registered in `connect` makes the request. Deliveries so inherit the
//! queue's retries with backoff, dead-letter and, with `PgQueue`, durability across restarts,
//! instead of a second retry engine living here. Only the endpoint *name* goes into the job:
//! secrets stay in the process, never in the queue's table.
//!
//! Requests follow Standard Webhooks (see [`signature`]): headers `webhook-id` (the same on
//! every retry, so receivers can drop duplicates of this at-least-once delivery),
//! `webhook-timestamp` (Unix seconds of the attempt) and `webhook-signature`. Redirects are
//! not followed: a 3xx is a failed attempt, so a receiver cannot bounce signed payloads
//! elsewhere.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use magmobo_core::board::{BoardBuilder, BusHandle, PeripheralContext};
use magmobo_core::bus::{Event, Pattern};
use magmobo_core::part::{Label, Peripheral, PeripheralInfo, PeripheralMeta};
use magmobo_core::roles::queue::{EnqueueOptions, Job, JobHandler, JobQueue};
use magmobo_core::{Health, Plug, async_trait, caps};
use serde::{Deserialize, Serialize};

mod log;
pub mod signature;

pub use log::{DeliveryAttempt, DeliveryLog};
pub use signature::{sign, verify_signature};

/// The job queue deliveries go through.
pub const QUEUE: &str = "webhooks";

const NAME: &str = "webhooks";

/// Errors of signature handling. Delivery failures are not errors of this type: they fail the
/// queue job (and are retried) and show in the [`DeliveryLog`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The `webhook-timestamp` header is not Unix seconds.
    #[error("webhook-timestamp '{0}' is not a number of Unix seconds")]
    InvalidTimestamp(String),
    /// The timestamp is too far from now: a replay, or a clock out of sync.
    #[error(
        "webhook-timestamp is {skew:?} away from now, more than the {tolerance:?} tolerated: refuse it as a replay (or check the clocks)"
    )]
    TimestampOutOfTolerance {
        /// How far the timestamp is from now.
        skew: Duration,
        /// The tolerance given.
        tolerance: Duration,
    },
    /// No `v1` signature in the header matches the body: tampered, or another secret.
    #[error(
        "no webhook-signature matches: the body was altered or the secret differs from the sender's"
    )]
    SignatureMismatch,
    /// A `whsec_` secret whose remainder is not base64.
    #[error("the secret starts with 'whsec_' but the rest is not base64")]
    InvalidSecret,
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where to deliver, and which events.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Unique name, shown in the log, health and bus events.
    pub name: String,
    /// `https://` (or `http://`) URL the events are POSTed to; https through rustls with the
    /// system's CA store. Any other scheme is refused at connect.
    pub url: String,
    /// Bus patterns (`table.orders.changed`, `table.*`) whose events go to this endpoint.
    pub topics: Vec<String>,
    /// Signing secret shared with the receiver (`whsec_<base64>` or raw text).
    pub secret: String,
}

/// Delivery settings.
#[derive(Debug, Clone)]
pub struct WebhooksOptions {
    /// Whole-request timeout (default 10 s); a timeout is a failed attempt.
    pub timeout: Duration,
    /// Attempts kept in the [`DeliveryLog`] (default 256).
    pub log_capacity: usize,
    /// Health is degraded when this many attempts in a row to one endpoint failed (default 3).
    pub degraded_after: u32,
    /// Requests in flight at once (default 8).
    pub concurrency: usize,
    /// Attempts per delivery before dead-letter; `None` keeps the queue's default.
    pub max_attempts: Option<u32>,
}

impl Default for WebhooksOptions {
    fn default() -> Self {
        WebhooksOptions {
            timeout: Duration::from_secs(10),
            log_capacity: 256,
            degraded_after: 3,
            concurrency: 8,
            max_attempts: None,
        }
    }
}

/// What one queue job carries: the endpoint's name and the event as it will be POSTed.
#[derive(Debug, Serialize, Deserialize)]
struct Delivery {
    endpoint: String,
    body: Body,
}

/// The JSON body receivers get.
#[derive(Debug, Serialize, Deserialize)]
struct Body {
    id: String,
    topic: String,
    source: String,
    at_ms: u64,
    payload: serde_json::Value,
}

struct Compiled {
    endpoint: Endpoint,
    patterns: Vec<Pattern>,
}

/// The peripheral. Plug it into a board that has a GPU queue.
pub struct Webhooks {
    endpoints: Arc<[Compiled]>,
    /// Union of the endpoints' patterns: what the board subscribes for us.
    subscribes: Vec<Pattern>,
    /// A pattern that did not parse, reported by `connect` (constructors do no validation
    /// that could fail, so the POST screen shows it).
    invalid: Option<String>,
    options: WebhooksOptions,
    log: DeliveryLog,
    jobs: Mutex<Option<Arc<dyn JobQueue>>>,
    worker_registered: AtomicBool,
    /// Events seen by more than one of our subscriptions, so they are delivered once.
    recent: Mutex<VecDeque<(Arc<Event>, usize)>>,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self
            .endpoints
            .iter()
            .map(|c| c.endpoint.name.as_str())
            .collect();
        f.debug_struct("Webhooks")
            .field("endpoints", &names)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// How many shared events `recent` remembers before forgetting the oldest.
const RECENT_CAPACITY: usize = 1024;

impl Webhooks {
    /// A peripheral delivering to `endpoints` with the default options.
    pub fn new(endpoints: Vec<Endpoint>) -> Self {
        Self::with_options(endpoints, WebhooksOptions::default())
    }

    /// A peripheral delivering to `endpoints` with these options.
    pub fn with_options(endpoints: Vec<Endpoint>, options: WebhooksOptions) -> Self {
        let mut invalid = None;
        let mut subscribes: Vec<Pattern> = Vec::new();
        let compiled: Vec<Compiled> = endpoints
            .into_iter()
            .map(|endpoint| {
                let patterns = endpoint
                    .topics
                    .iter()
                    .filter_map(|topic| match Pattern::parse(topic) {
                        Ok(pattern) => Some(pattern),
                        Err(e) => {
                            invalid.get_or_insert_with(|| {
                                format!("endpoint '{}': {e}", endpoint.name)
                            });
                            None
                        }
                    })
                    .collect::<Vec<_>>();
                for pattern in &patterns {
                    if !subscribes.contains(pattern) {
                        subscribes.push(pattern.clone());
                    }
                }
                Compiled { endpoint, patterns }
            })
            .collect();
        Webhooks {
            endpoints: compiled.into(),
            subscribes,
            invalid,
            log: DeliveryLog::new(options.log_capacity),
            options,
            jobs: Mutex::new(None),
            worker_registered: AtomicBool::new(false),
            recent: Mutex::new(VecDeque::new()),
        }
    }

    /// The delivery log; keep the handle before plugging the peripheral into a board.
    pub fn log(&self) -> DeliveryLog {
        self.log.clone()
    }

    /// Whether this is the first of the deliveries the board makes of `event` (one per
    /// subscribed pattern matching its topic).
    fn first_sighting(&self, event: &Arc<Event>) -> bool {
        let copies = self
            .subscribes
            .iter()
            .filter(|p| p.matches(&event.topic))
            .count();
        if copies <= 1 {
            return true;
        }
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        // Holding the Arc keeps its address from being reused while we compare by it.
        if let Some(index) = recent.iter().position(|(e, _)| Arc::ptr_eq(e, event)) {
            if let Some(entry) = recent.get_mut(index) {
                entry.1 -= 1;
                if entry.1 == 0 {
                    recent.remove(index);
                }
            }
            return false;
        }
        if recent.len() == RECENT_CAPACITY {
            recent.pop_front();
        }
        recent.push_back((event.clone(), copies - 1));
        true
    }
}

impl PeripheralMeta for Webhooks {
    fn peripheral_info(&self) -> PeripheralInfo {
        let mut info = PeripheralInfo::new(NAME, env!("CARGO_PKG_VERSION"));
        info.title = "Webhooks".into();
        info.subscribes = self
            .subscribes
            .iter()
            .map(|p| Label::from(p.as_str().to_owned()))
            .collect();
        info.capabilities = vec![
            caps::JOBS_ENQUEUE.into(),
            caps::JOBS_WORK.into(),
            caps::BUS_PUBLISH.into(),
        ];
        info
    }
}

impl Plug for Webhooks {
    fn plug(self, board: &mut BoardBuilder) {
        board.put_peripheral(self, false);
    }
}

#[async_trait]
impl Peripheral for Webhooks {
    async fn connect(&self, ctx: &PeripheralContext) -> magmobo_core::Result<()> {
        if let Some(why) = &self.invalid {
            return Err(magmobo_core::Error::part(
                ctx.name(),
                format!("{why}: fix the endpoint's topic pattern"),
            ));
        }
        // A URL that can never be delivered to would fail every attempt and fill the
        // dead-letter list; refusing it here puts the reason on the POST screen.
        if let Some(bad) = self.endpoints.iter().find(|c| {
            reqwest::Url::parse(&c.endpoint.url)
                .map_or(true, |url| !matches!(url.scheme(), "https" | "http"))
        }) {
            return Err(magmobo_core::Error::part(
                ctx.name(),
                format!(
                    "endpoint '{}': '{}' is not an https:// or http:// URL",
                    bad.endpoint.name, bad.endpoint.url
                ),
            ));
        }
        let jobs = ctx.jobs()?;
        *self.jobs.lock().unwrap_or_else(|e| e.into_inner()) = Some(jobs.clone());
        // The queue has no way to unregister a worker, and the one registered holds
        // everything it needs, so a reconnect (hot plug) keeps the first.
        if !self.worker_registered.swap(true, Ordering::SeqCst) {
            let client = reqwest::Client::builder()
                .timeout(self.options.timeout)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| {
                    magmobo_core::Error::part_with(ctx.name(), "building the HTTP client", e)
                })?;
            let worker = Worker {
                client,
                endpoints: self
                    .endpoints
                    .iter()
                    .map(|c| (c.endpoint.name.clone(), c.endpoint.clone()))
                    .collect(),
                log: self.log.clone(),
                bus: ctx.bus()?,
            };
            if let Err(e) = jobs
                .work(QUEUE, self.options.concurrency.max(1), Arc::new(worker))
                .await
            {
                self.worker_registered.store(false, Ordering::SeqCst);
                return Err(e);
            }
        }
        Ok(())
    }

    async fn disconnect(&self) -> magmobo_core::Result<()> {
        // Jobs already queued are still delivered by the worker while the queue runs.
        *self.jobs.lock().unwrap_or_else(|e| e.into_inner()) = None;
        Ok(())
    }

    async fn send(&self, event: Arc<Event>) -> magmobo_core::Result<()> {
        // Our own reports would loop through a `*` or `webhook.*` endpoint forever.
        if event.source == NAME || !self.first_sighting(&event) {
            return Ok(());
        }
        let Some(jobs) = self.jobs.lock().unwrap_or_else(|e| e.into_inner()).clone() else {
            return Err(magmobo_core::Error::part(
                NAME,
                format!("event '{}' arrived while disconnected", event.topic),
            ));
        };
        let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
        for compiled in self
            .endpoints
            .iter()
            .filter(|c| c.patterns.iter().any(|p| p.matches(&event.topic)))
        {
            let delivery = Delivery {
                endpoint: compiled.endpoint.name.clone(),
                body: Body {
                    id: id.clone(),
                    topic: event.topic.clone(),
                    source: event.source.clone(),
                    at_ms: event.at_ms,
                    payload: event.payload.clone(),
                },
            };
            let payload = serde_json::to_value(&delivery)
                .map_err(|e| magmobo_core::Error::part_with(NAME, "encoding a delivery job", e))?;
            let options = EnqueueOptions {
                max_attempts: self.options.max_attempts,
                ..Default::default()
            };
            jobs.enqueue(QUEUE, payload, options).await?;
        }
        Ok(())
    }

    async fn health(&self) -> Health {
        let failing = self.log.failing(self.options.degraded_after);
        if failing.is_empty() {
            return Health::ok().with_detail(format!("{} endpoints", self.endpoints.len()));
        }
        let names: Vec<String> = failing
            .iter()
            .map(|(name, streak)| format!("{name} ({streak} failed in a row)"))
            .collect();
        Health::degraded(format!("failing endpoints: {}", names.join(", ")))
    }
}

/// The queue worker: one HTTP attempt per job.
struct Worker {
    client: reqwest::Client,
    endpoints: HashMap<String, Endpoint>,
    log: DeliveryLog,
    bus: BusHandle,
}

impl Worker {
    /// POSTs the body; `Ok(status)` only for 2xx.
    async fn post(
        &self,
        endpoint: &Endpoint,
        id: &str,
        body: Vec<u8>,
    ) -> std::result::Result<u16, (Option<u16>, String)> {
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let signature =
            sign(&endpoint.secret, id, timestamp, &body).map_err(|e| (None, e.to_string()))?;
        let response = self
            .client
            .post(&endpoint.url)
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await
            .map_err(|e| (None, describe(&e)))?;
        let status = response.status();
        if status.is_success() {
            Ok(status.as_u16())
        } else {
            Err((Some(status.as_u16()), format!("HTTP {status}")))
        }
    }
}

/// A reqwest error with its causes, which carry the useful part ("connection refused").
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[async_trait]
impl JobHandler for Worker {
    async fn handle(&self, job: Job) -> magmobo_core::Result<()> {
        let delivery: Delivery = serde_json::from_value(job.payload)
            .map_err(|e| magmobo_core::Error::part_with(NAME, "malformed delivery job", e))?;
        let Some(endpoint) = self.endpoints.get(&delivery.endpoint) else {
            return Err(magmobo_core::Error::part(
                NAME,
                format!(
                    "endpoint '{}' is no longer configured: its delivery is dropped after the retries",
                    delivery.endpoint
                ),
            ));
        };
        let body = serde_json::to_vec(&delivery.body)
            .map_err(|e| magmobo_core::Error::part_with(NAME, "encoding the body", e))?;
        let begun = Instant::now();
        let outcome = self.post(endpoint, &delivery.body.id, body).await;
        let duration = begun.elapsed();
        let (status, error) = match &outcome {
            Ok(status) => (Some(*status), None),
            Err((status, error)) => (*status, Some(error.clone())),
        };
        self.log.record(DeliveryAttempt {
            endpoint: endpoint.name.clone(),
            event_id: delivery.body.id.clone(),
            topic: delivery.body.topic.clone(),
            attempt: job.attempt,
            status,
            error: error.clone(),
            duration,
            at: SystemTime::now(),
        });
        let report = serde_json::json!({
            "endpoint": endpoint.name,
            "event_id": delivery.body.id,
            "topic": delivery.body.topic,
            "attempt": job.attempt,
            "status": status,
            "error": error,
            "duration_ms": u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
        });
        let topic = if error.is_none() {
            "webhook.delivered"
        } else {
            "webhook.failed"
        };
        if let Err(e) = self.bus.publish(topic, report) {
            tracing::warn!(error = %e, "could not publish {topic}");
        }
        match error {
            None => Ok(()),
            Some(error) => Err(magmobo_core::Error::part(
                NAME,
                format!(
                    "delivery of {} to '{}' failed: {error}",
                    delivery.body.id, endpoint.name
                ),
            )),
        }
    }
}
