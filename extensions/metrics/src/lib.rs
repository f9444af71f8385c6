//! MagMetrics: a Prometheus `/metrics` endpoint for a board.
//!
//! What it measures, and where from, so nothing in the request path does extra work for it:
//! - **requests and latencies by route and status**: a response hook on the CPU's route table
//!   (a [`RequestGuard`] that watches responses) counts every answer and observes the time
//!   from the request reaching the CPU to its response head. Routes are labelled by their
//!   first three path segments (`/rest/v1/orders`), 404s as `unmatched`, and at most
//!   [`MAX_ROUTES`] distinct labels are kept (then `other`), so scanners cannot blow up the
//!   label set;
//! - **pool usage** of the Storage slot, **bus** deliveries, drops and lag, read when scraped;
//! - **Sentinel verdicts**: `threat.*` events on the bus, by topic and agent;
//! - **custom gauges** the application registers with [`MagMetrics::gauge`] (for example
//!   MagGate's read-cache hits), read when scraped.
//!
//! The text is the OpenMetrics format of the `prometheus-client` crate, which Prometheus
//! scrapes as is.

use std::collections::HashSet;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use magmobo_core::axum::body::Body;
use magmobo_core::axum::response::Response;
use magmobo_core::board::BusHandle;
use magmobo_core::board::ExtensionContext;
use magmobo_core::roles::cpu::{RequestContext, RequestGuard};
use magmobo_core::roles::routes::RequestHead;
use magmobo_core::roles::storage::Storage;
use magmobo_core::{Extension, ExtensionInfo, ExtensionMeta, async_trait, caps};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

/// Distinct route labels kept before new ones are counted as `other`.
pub const MAX_ROUTES: usize = 256;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ThreatLabels {
    topic: String,
    agent: String,
}

type GaugeFn = Arc<dyn Fn() -> f64 + Send + Sync>;

struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    threats: Family<ThreatLabels, Counter>,
    routes: Mutex<HashSet<String>>,
    pool: [Gauge<i64, std::sync::atomic::AtomicI64>; 3],
    bus: [Gauge<i64, std::sync::atomic::AtomicI64>; 4],
    custom: Vec<(Gauge<f64, AtomicU64>, GaugeFn)>,
}

/// The extension. Register custom gauges before plugging it in.
pub struct MagMetrics {
    path: String,
    metrics: Arc<Metrics>,
    stop: Mutex<Option<CancellationToken>>,
}

impl std::fmt::Debug for MagMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MagMetrics")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Default for MagMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl MagMetrics {
    /// Metrics served at `/metrics`.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("magmobo");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP answers by method, route and status",
            requests.clone(),
        );
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
        });
        registry.register(
            "http_request_duration_seconds",
            "Time from the request reaching the CPU to its response head",
            latency.clone(),
        );
        let threats = Family::<ThreatLabels, Counter>::default();
        registry.register(
            "sentinel_events",
            "Sentinel events on the bus (threat.detected, threat.blocked, ...) by agent",
            threats.clone(),
        );
        let pool: [Gauge<i64, std::sync::atomic::AtomicI64>; 3] = Default::default();
        for (gauge, (name, help)) in pool.iter().zip([
            ("storage_pool_open", "Open database connections"),
            ("storage_pool_idle", "Idle database connections"),
            ("storage_pool_max", "Largest database pool size"),
        ]) {
            registry.register(name, help, gauge.clone());
        }
        let bus: [Gauge<i64, std::sync::atomic::AtomicI64>; 4] = Default::default();
        for (gauge, (name, help)) in bus.iter().zip([
            ("bus_published", "Events published on the bus"),
            ("bus_delivered", "Event deliveries into subscriber queues"),
            (
                "bus_dropped",
                "Deliveries dropped because a subscriber lagged",
            ),
            ("bus_max_lag", "Largest lag of any live subscriber"),
        ]) {
            registry.register(name, help, gauge.clone());
        }
        MagMetrics {
            path: "/metrics".into(),
            metrics: Arc::new(Metrics {
                registry,
                requests,
                latency,
                threats,
                routes: Mutex::new(HashSet::new()),
                pool,
                bus,
                custom: Vec::new(),
            }),
            stop: Mutex::new(None),
        }
    }

    /// A gauge read from `read` at every scrape (`magmobo_<name>`).
    pub fn gauge(
        mut self,
        name: &str,
        help: &str,
        read: impl Fn() -> f64 + Send + Sync + 'static,
    ) -> Self {
        let gauge = Gauge::<f64, AtomicU64>::default();
        if let Some(m) = Arc::get_mut(&mut self.metrics) {
            m.registry.register(name, help, gauge.clone());
            m.custom.push((gauge, Arc::new(read)));
        }
        self
    }

    /// Serve at `path` instead of `/metrics`.
    pub fn at(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }
}

impl Metrics {
    /// The route label of a request path: its first three segments; `unmatched` for 404s.
    fn route(&self, path: &str, status: u16) -> String {
        if status == 404 {
            return "unmatched".into();
        }
        let label: String = path
            .split('/')
            .filter(|s| !s.is_empty())
            .take(3)
            .fold(String::new(), |acc, s| acc + "/" + s);
        let label = if label.is_empty() {
            "/".to_owned()
        } else {
            label
        };
        let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        if routes.contains(&label) || routes.len() < MAX_ROUTES {
            routes.insert(label.clone());
            label
        } else {
            "other".into()
        }
    }

    fn render(&self, storage: Option<&dyn Storage>, bus: Option<&BusHandle>) -> String {
        if let Some((open, idle, max)) = storage.and_then(|s| s.pool_usage()) {
            for (g, v) in self.pool.iter().zip([open, idle, max]) {
                g.set(i64::from(v));
            }
        }
        if let Some(bus) = bus {
            let s = bus.stats();
            let values = [s.published, s.delivered, s.dropped, s.max_subscriber_lag];
            for (g, v) in self.bus.iter().zip(values) {
                g.set(i64::try_from(v).unwrap_or(i64::MAX));
            }
        }
        for (gauge, read) in &self.custom {
            gauge.set(read());
        }
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "metrics encoding failed");
        }
        out
    }
}

/// The response hook that counts answers.
struct Recorder(Arc<Metrics>);

impl RequestGuard for Recorder {
    fn check(&self, _request: &http::request::Parts, _ctx: &RequestContext) -> Option<Response> {
        None
    }

    fn watches_responses(&self) -> bool {
        true
    }

    fn on_response(
        &self,
        request: &RequestHead,
        response: &http::response::Parts,
        context: &RequestContext,
    ) {
        let status = response.status.as_u16();
        let route = self.0.route(request.uri.path(), status);
        let method = request.method.as_str().to_owned();
        self.0
            .requests
            .get_or_create(&RequestLabels {
                method: method.clone(),
                route: route.clone(),
                status: status.to_string(),
            })
            .inc();
        self.0
            .latency
            .get_or_create(&RouteLabels { method, route })
            .observe(context.received.elapsed().as_secs_f64());
    }
}

impl ExtensionMeta for MagMetrics {
    fn extension_info(&self) -> ExtensionInfo {
        let mut info = ExtensionInfo::new("magmetrics", env!("CARGO_PKG_VERSION"));
        info.title = "MagMetrics (Prometheus)".into();
        info.capabilities = vec![caps::CPU_MOUNT.into(), caps::BUS_SUBSCRIBE.into()];
        info.optional_capabilities = vec![caps::STORAGE_READ.into()];
        info
    }
}

#[async_trait]
impl Extension for MagMetrics {
    async fn init(&self, ctx: &ExtensionContext) -> magmobo_core::Result<()> {
        let cpu = ctx.cpu()?;
        cpu.routes()
            .guard(ctx.name(), Recorder(self.metrics.clone()))?;
        let storage = ctx.storage().ok();
        let bus = ctx.bus()?;
        let metrics = self.metrics.clone();
        let scrape_bus = bus.clone();
        cpu.mount_native(&self.path, move |_req: http::Request<Body>, _ctx| {
            let metrics = metrics.clone();
            let storage = storage.clone();
            let bus = scrape_bus.clone();
            async move {
                let text = metrics.render(storage.as_deref(), Some(&bus));
                http::Response::builder()
                    .header(
                        http::header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )
                    .body(Body::from(text))
                    .unwrap_or_else(|_| Response::new(Body::empty()))
            }
        })?;
        let token = CancellationToken::new();
        let mut events = bus.subscribe("threat.*")?;
        let metrics = self.metrics.clone();
        let stop = token.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    event = events.recv() => {
                        let Some(event) = event else { break };
                        let agent = event
                            .payload
                            .get("agent")
                            .and_then(|a| a.as_str())
                            .unwrap_or("-")
                            .to_owned();
                        metrics
                            .threats
                            .get_or_create(&ThreatLabels { topic: event.topic.to_string(), agent })
                            .inc();
                    }
                }
            }
        });
        if let Some(old) = self
            .stop
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(token)
        {
            old.cancel();
        }
        Ok(())
    }

    async fn stop(&self, _ctx: &ExtensionContext) -> magmobo_core::Result<()> {
        if let Some(token) = self.stop.lock().unwrap_or_else(|e| e.into_inner()).take() {
            token.cancel();
        }
        Ok(())
    }

    fn summary(&self) -> Option<String> {
        Some(format!("serving {}", self.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_labelled_by_three_segments_and_capped() {
        let m = MagMetrics::new();
        let metrics = &m.metrics;
        assert_eq!(metrics.route("/rest/v1/orders", 200), "/rest/v1/orders");
        assert_eq!(
            metrics.route("/rest/v1/orders/extra/deep", 200),
            "/rest/v1/orders"
        );
        assert_eq!(metrics.route("/", 200), "/");
        assert_eq!(metrics.route("/wp-admin/x.php", 404), "unmatched");
        for i in 0..MAX_ROUTES {
            metrics.route(&format!("/r{i}"), 200);
        }
        assert_eq!(metrics.route("/one-too-many", 200), "other");
        assert_eq!(metrics.route("/rest/v1/orders", 200), "/rest/v1/orders");
    }

    #[test]
    fn the_text_names_every_family_and_custom_gauges() {
        let m = MagMetrics::new().gauge("answer", "A custom gauge", || 42.0);
        let text = m.metrics.render(None, None);
        for name in [
            "magmobo_storage_pool_max",
            "magmobo_bus_dropped",
            "magmobo_answer 42",
        ] {
            assert!(text.contains(name), "{name} in {text}");
        }
    }
}
