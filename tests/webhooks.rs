//! The Webhooks peripheral end to end: a board with the in-process queue delivers bus events
//! to a local HTTP receiver, signed so the receiver can verify them, retried through the
//! queue and dead-lettered when the receiver never accepts.

// Tests unwrap freely: a panic with the value is the clearest failure.
#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use magmobo::axum::Router;
use magmobo::axum::extract::State;
use magmobo::axum::routing::post;
use magmobo::board::BoardContext;
use magmobo::prelude::*;
use magmobo::queue::{MemoryQueue, QueueOptions};
use magmobo::roles::queue::{EnqueueOptions, JobHandler};
use magmobo::webhooks::{
    DeliveryLog, Endpoint, Error as SignatureError, QUEUE, Webhooks, WebhooksOptions, sign,
    verify_signature,
};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const TOLERANCE: Duration = Duration::from_secs(300);

/// One request the receiver got.
#[derive(Clone)]
struct Received {
    headers: HeaderMap,
    body: Bytes,
}

impl Received {
    fn header(&self, name: &str) -> String {
        self.headers[name].to_str().unwrap().to_owned()
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

#[derive(Clone, Default)]
struct Receiver {
    requests: Arc<Mutex<Vec<Received>>>,
    /// Statuses to answer in order; then `otherwise`.
    script: Arc<Mutex<VecDeque<u16>>>,
    otherwise: u16,
}

impl Receiver {
    /// Serves on 127.0.0.1:0; returns the receiver and its URL.
    async fn start(script: &[u16], otherwise: u16) -> (Receiver, String) {
        let receiver = Receiver {
            script: Arc::new(Mutex::new(script.iter().copied().collect())),
            otherwise,
            ..Default::default()
        };
        let app = Router::new()
            .route("/hook", post(record))
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { magmobo::axum::serve(listener, app).await });
        (receiver, url)
    }

    fn requests(&self) -> Vec<Received> {
        self.requests.lock().unwrap().clone()
    }
}

async fn record(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    receiver
        .requests
        .lock()
        .unwrap()
        .push(Received { headers, body });
    let status = receiver
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(receiver.otherwise);
    StatusCode::from_u16(status).unwrap()
}

/// The memory queue in the GPU slot while the test keeps a handle for its dead-letter list.
struct SharedQueue(Arc<MemoryQueue>);

impl ComponentMeta for SharedQueue {
    fn component_info(&self) -> ComponentInfo {
        self.0.component_info()
    }
}

impl Plug for SharedQueue {
    fn plug(self, board: &mut magmobo::board::BoardBuilder) {
        board.put_gpu(self);
    }
}

#[async_trait]
impl Component for SharedQueue {
    async fn start(&self, board: &BoardContext) -> Result<()> {
        self.0.start(board).await
    }
    async fn stop(&self, mode: StopMode) -> Result<()> {
        self.0.stop(mode).await
    }
}

#[async_trait]
impl JobQueue for SharedQueue {
    async fn enqueue(
        &self,
        queue: &str,
        payload: serde_json::Value,
        options: EnqueueOptions,
    ) -> Result<String> {
        self.0.enqueue(queue, payload, options).await
    }
    async fn schedule(
        &self,
        queue: &str,
        cron: &str,
        payload: serde_json::Value,
    ) -> Result<String> {
        self.0.schedule(queue, cron, payload).await
    }
    async fn work(
        &self,
        queue: &str,
        concurrency: usize,
        handler: Arc<dyn JobHandler>,
    ) -> Result<()> {
        self.0.work(queue, concurrency, handler).await
    }
}

struct Rig {
    board: Motherboard,
    log: DeliveryLog,
    queue: Arc<MemoryQueue>,
}

/// A booted board: memory queue with short backoff, and Webhooks to `url` for `topics`.
async fn rig(url: &str, topics: &[&str], max_attempts: u32) -> Rig {
    let queue = Arc::new(MemoryQueue::with_options(QueueOptions {
        max_attempts,
        backoff_base: Duration::from_millis(30),
        backoff_max: Duration::from_millis(100),
        poll_interval: Duration::from_millis(20),
        ..Default::default()
    }));
    let webhooks = Webhooks::with_options(
        vec![Endpoint {
            name: "orders-app".into(),
            url: url.into(),
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
            secret: SECRET.into(),
        }],
        WebhooksOptions {
            timeout: Duration::from_secs(5),
            ..Default::default()
        },
    );
    let log = webhooks.log();
    let board = Motherboard::builder()
        .name("webhooks-test")
        .with(SharedQueue(queue.clone()))
        .with(webhooks)
        .build()
        .unwrap();
    let report = board.boot().await.unwrap();
    assert!(
        report.is_up() && report.peripherals.iter().all(|line| line.detail.is_none()),
        "{report:?}"
    );
    Rig { board, log, queue }
}

async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn publish(board: &Motherboard, topic: &str, payload: serde_json::Value) {
    board.bus().publish(topic, "test", payload).unwrap();
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_is_delivered_once_signed_with_its_payload() {
    let (receiver, url) = Receiver::start(&[], 200).await;
    // Overlapping patterns: the board hands the event over once per pattern.
    let rig = rig(&url, &["table.orders.changed", "table.*"], 5).await;
    publish(
        &rig.board,
        "table.orders.changed",
        serde_json::json!({"op": "insert", "id": 7}),
    );
    eventually("a delivery", || !receiver.requests().is_empty()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let requests = receiver.requests();
    assert_eq!(requests.len(), 1, "overlapping patterns deliver once");

    let request = &requests[0];
    let (id, timestamp) = (
        request.header("webhook-id"),
        request.header("webhook-timestamp"),
    );
    let signature = request.header("webhook-signature");
    verify_signature(
        SECRET,
        &id,
        &timestamp,
        &request.body,
        &signature,
        TOLERANCE,
    )
    .unwrap();
    assert!(timestamp.parse::<u64>().unwrap().abs_diff(now_secs()) < 60);
    let body = request.json();
    assert_eq!(body["id"], id.as_str());
    assert_eq!(body["topic"], "table.orders.changed");
    assert_eq!(body["source"], "test");
    assert!(body["at_ms"].as_u64().unwrap() > 0);
    assert_eq!(
        body["payload"],
        serde_json::json!({"op": "insert", "id": 7})
    );

    // What receivers must refuse.
    let tampered = String::from_utf8(request.body.to_vec())
        .unwrap()
        .replace("insert", "delete");
    assert!(matches!(
        verify_signature(
            SECRET,
            &id,
            &timestamp,
            tampered.as_bytes(),
            &signature,
            TOLERANCE
        ),
        Err(SignatureError::SignatureMismatch)
    ));
    let old = now_secs() - 3600;
    let replayed = sign(SECRET, &id, old, &request.body).unwrap();
    assert!(matches!(
        verify_signature(
            SECRET,
            &id,
            &old.to_string(),
            &request.body,
            &replayed,
            TOLERANCE
        ),
        Err(SignatureError::TimestampOutOfTolerance { .. })
    ));
    assert!(matches!(
        verify_signature(
            "whsec_b3RoZXI=",
            &id,
            &timestamp,
            &request.body,
            &signature,
            TOLERANCE
        ),
        Err(SignatureError::SignatureMismatch)
    ));

    let attempts = rig.log.attempts();
    assert_eq!(attempts.len(), 1);
    assert_eq!(
        (
            attempts[0].status,
            attempts[0].attempt,
            attempts[0].succeeded()
        ),
        (Some(200), 1, true)
    );
    rig.board.shutdown(StopMode::Fast).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_on_an_unsubscribed_topic_is_not_delivered() {
    let (receiver, url) = Receiver::start(&[], 200).await;
    let rig = rig(&url, &["table.orders.changed"], 5).await;
    publish(&rig.board, "table.users.changed", serde_json::json!({}));
    publish(&rig.board, "auth.login.failed", serde_json::json!({}));
    // Published last, delivered: by then the others would have been too.
    publish(&rig.board, "table.orders.changed", serde_json::json!({}));
    eventually("the subscribed event", || !receiver.requests().is_empty()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let topics: Vec<String> = receiver
        .requests()
        .iter()
        .map(|r| r.json()["topic"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(topics, ["table.orders.changed"]);
    rig.board.shutdown(StopMode::Fast).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_receiver_gets_the_event_on_a_retry() {
    let (receiver, url) = Receiver::start(&[500, 500], 200).await;
    let rig = rig(&url, &["table.orders.changed"], 5).await;
    let mut reports = rig.board.bus().subscribe("webhook.*").unwrap();
    publish(
        &rig.board,
        "table.orders.changed",
        serde_json::json!({"n": 1}),
    );
    eventually("a successful attempt", || {
        rig.log.attempts().iter().any(|a| a.succeeded())
    })
    .await;

    let requests = receiver.requests();
    assert_eq!(requests.len(), 3);
    let id = requests[0].header("webhook-id");
    assert!(
        requests.iter().all(|r| r.header("webhook-id") == id),
        "retries keep the id so receivers can drop duplicates"
    );
    let attempts = rig.log.attempts_for(&id);
    let seen: Vec<(u32, Option<u16>)> = attempts.iter().map(|a| (a.attempt, a.status)).collect();
    assert_eq!(seen, [(1, Some(500)), (2, Some(500)), (3, Some(200))]);
    assert!(attempts.iter().all(|a| a.endpoint == "orders-app"));

    let mut topics = Vec::new();
    for _ in 0..3 {
        let event = tokio::time::timeout(Duration::from_secs(5), reports.recv())
            .await
            .unwrap()
            .unwrap();
        topics.push(event.topic.clone());
    }
    assert_eq!(
        topics,
        ["webhook.failed", "webhook.failed", "webhook.delivered"]
    );
    assert!(rig.queue.dead_letters(QUEUE).is_empty());
    rig.board.shutdown(StopMode::Fast).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_always_fails_ends_in_the_dead_letter_list() {
    let (receiver, url) = Receiver::start(&[], 503).await;
    let rig = rig(&url, &["table.orders.changed"], 3).await;
    publish(
        &rig.board,
        "table.orders.changed",
        serde_json::json!({"n": 1}),
    );
    eventually("a dead letter", || rig.queue.dead_letters(QUEUE).len() == 1).await;

    let dead = &rig.queue.dead_letters(QUEUE)[0];
    assert_eq!(dead.job.attempt, 3);
    assert!(dead.error.contains("503"), "{}", dead.error);
    assert_eq!(receiver.requests().len(), 3);
    let attempts = rig.log.attempts();
    assert_eq!(attempts.len(), 3);
    assert!(
        attempts
            .iter()
            .all(|a| a.status == Some(503) && !a.succeeded())
    );

    let health = rig.board.health().await;
    let webhooks = health
        .peripherals
        .iter()
        .find(|p| p.name == "webhooks")
        .unwrap();
    assert_eq!(webhooks.health.status, HealthStatus::Degraded);
    assert!(
        webhooks
            .health
            .detail
            .as_deref()
            .unwrap()
            .contains("orders-app"),
        "{:?}",
        webhooks.health
    );
    rig.board.shutdown(StopMode::Fast).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_that_is_not_http_or_https_is_refused_at_connect() {
    let webhooks = Webhooks::new(vec![Endpoint {
        name: "tls-app".into(),
        url: "ftp://hooks.example.invalid/in".into(),
        topics: vec!["table.orders.changed".into()],
        secret: SECRET.into(),
    }]);
    let board = Motherboard::builder()
        .with(MemoryQueue::new())
        .with(webhooks)
        .build()
        .unwrap();
    let report = board.boot().await.unwrap();
    let detail = report.peripherals[0].detail.clone().unwrap();
    assert!(
        detail.contains("tls-app") && detail.contains("https://"),
        "{detail}"
    );
    board.shutdown(StopMode::Fast).await.unwrap();
}
