//! Sentinel on a running board over HTTP: the vision's check through query, body and headers
//! (and the audit log showing it), rate limits with recovery, an attack sequence the analyzer
//! turns into a block of the source, and rate-limit buckets and blocks shared through Redis
//! by two boards.

// Tests unwrap freely: a panic with the value is the clearest failure.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use magmobo::axum::Router;
use magmobo::axum::routing::get;
use magmobo::cpu::HyperCpu;
use magmobo::prelude::*;
use magmobo::storage::{SqlStorage, StorageOptions};
use magmobo_integration_tests::parts::{Journal, TestExtension};
use magmobo_integration_tests::services::redis_or_skip;
use sentinel::agents::Shared;
use sentinel::analyzer::AnalyzerConfig;
use sentinel::audit::{AuditFilter, AuditLog, AuditStore};
use sentinel::{ApiWatch, ApiWatchConfig, Bands, Limit, Policy, Sentinel, SentinelConfig};

const ATTACK: &str = "1' OR '1'='1";

fn api() -> TestExtension {
    let users = get(|| async { magmobo::axum::Json(serde_json::json!([{ "id": 1 }])) })
        .post(|body: String| async move { body });
    TestExtension::new("api", &Journal::default())
        .capability(caps::CPU_MOUNT)
        .route("/rest/v1", Router::new().route("/users", users))
}

async fn boot(builder: magmobo::board::BoardBuilder) -> (Motherboard, String) {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let board = builder
        .with(HyperCpu::new(any))
        .extension(api())
        .build()
        .unwrap();
    let report = board.boot().await.unwrap();
    let base = report.listening.clone().unwrap();
    (board, base)
}

async fn json(response: reqwest::Response) -> (u16, serde_json::Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

fn temp_sqlite() -> (String, std::path::PathBuf) {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let path = std::env::temp_dir().join(format!(
        "magmobo-sentinel-{}-{nanos}.db",
        std::process::id()
    ));
    (format!("sqlite://{}", path.display()), path)
}

/// Polls `probe` until it is true, for what happens on the bus after the answer was sent.
async fn eventually(what: &str, mut probe: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !probe().await {
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_vision_check_is_blocked_in_query_body_and_headers_and_audited() {
    let (url, path) = temp_sqlite();
    let storage = SqlStorage::connect(&url, StorageOptions::default()).unwrap();
    // Per-request verdicts only: no escalation, and an analyzer that never blocks the source,
    // so every attempt below meets SQLGuard itself.
    let config = SentinelConfig {
        policy: Policy::new().with_default(Bands {
            escalate: f32::INFINITY,
            ..Bands::default()
        }),
        analyzer: AnalyzerConfig {
            block_at_stages: 100,
            block_at_blocked: 100,
            ..AnalyzerConfig::default()
        },
        ..SentinelConfig::default()
    };
    let builder = Motherboard::builder()
        .with(storage)
        .extension(AuditLog::default())
        .patrol(Sentinel::standard(config));
    let (board, base) = boot(builder).await;
    let client = reqwest::Client::new();
    let users = format!("{base}/rest/v1/users");

    let blocked = |(status, body): (u16, serde_json::Value)| {
        assert_eq!(status, 403, "{body}");
        assert_eq!(body["agent"], "SQLGuard", "{body}");
        assert_eq!(body["code"], "MM-SENTINEL-SQLGUARD", "{body}");
        body["message"].as_str().unwrap().to_owned()
    };
    let raw = format!("{users}?id=eq.1'%20OR%20'1'='1");
    let message = blocked(json(client.get(&raw).send().await.unwrap()).await);
    assert!(message.contains("query parameter 'id'"), "{message}");
    let encoded = format!("{users}?id=eq.1%2527%2520OR%2520%25271%2527%253D%25271");
    blocked(json(client.get(&encoded).send().await.unwrap()).await);
    let body = serde_json::json!({ "name": ATTACK });
    let message = blocked(json(client.post(&users).json(&body).send().await.unwrap()).await);
    assert!(message.contains("body field 'name'"), "{message}");
    for header in ["x-forwarded-for", "x-customer-ref"] {
        let answer = client
            .get(&users)
            .header(header, ATTACK)
            .send()
            .await
            .unwrap();
        let message = blocked(json(answer).await);
        assert!(message.contains(header), "{message}");
    }

    // Ordinary traffic passes, bodies intact; requests without a body are not held up.
    let (status, _) = json(
        client
            .get(format!("{users}?name=eq.O'Brien"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let note = serde_json::json!({ "review": "I'd select this union again" });
    let (status, echoed) = json(client.post(&users).json(&note).send().await.unwrap()).await;
    assert_eq!((status, echoed), (200, note));
    let big = serde_json::json!({ "text": "x".repeat(100_000) });
    let (status, echoed) = json(client.post(&users).json(&big).send().await.unwrap()).await;
    assert_eq!(
        (status, echoed),
        (200, big),
        "bodies over the limit pass unread"
    );

    let store = AuditStore::new(board.storage().unwrap());
    let mut threats = Vec::new();
    eventually("the attacks reach the audit log", async || {
        let filter = AuditFilter {
            kind: Some("threat.detected".into()),
            ..AuditFilter::default()
        };
        threats = store.query(&filter).await.unwrap();
        threats.len() >= 5
    })
    .await;
    let first = &threats[0];
    assert!(
        first.summary.starts_with("SQLGuard blocked sql_injection"),
        "{}",
        first.summary
    );
    assert_eq!(first.source.as_deref(), Some("127.0.0.1"));
    let detail: serde_json::Value = serde_json::from_str(&first.detail).unwrap();
    let evidence = detail["payload"]["evidence"].as_str().unwrap();
    assert!(evidence.contains("fingerprint"), "{evidence}");
    assert!(store.verify().await.unwrap().broken.is_none());
    board.shutdown(StopMode::Fast).await.unwrap();
    let _ = std::fs::remove_file(path);
}

fn limited(rate: f64, burst: f64, shared: Option<Shared>) -> ApiWatch {
    ApiWatch::new(ApiWatchConfig {
        per_ip: Some(Limit::new(rate, burst)),
        per_identity: None,
        shared,
        ..ApiWatchConfig::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_answer_429_with_retry_after_and_recover() {
    let sentinel = Sentinel::new(SentinelConfig::default()).agent(limited(20.0, 3.0, None));
    let (board, base) = boot(Motherboard::builder().patrol(sentinel)).await;
    let client = reqwest::Client::new();
    let users = format!("{base}/rest/v1/users");
    for _ in 0..3 {
        assert_eq!(client.get(&users).send().await.unwrap().status(), 200);
    }
    let refused = client.get(&users).send().await.unwrap();
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["retry-after"], "1");
    let (_, body) = json(refused).await;
    assert_eq!(body["code"], "MM-SENTINEL-RATE-LIMIT");
    eventually("the bucket refills", async || {
        client.get(&users).send().await.unwrap().status() == 200
    })
    .await;
    board.shutdown(StopMode::Fast).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scanning_then_injection_gets_the_source_blocked_by_the_analyzer() {
    let sentinel = Sentinel::default();
    let blocklist = sentinel.blocklist().clone();
    let (url, path) = temp_sqlite();
    let storage = SqlStorage::connect(&url, StorageOptions::default()).unwrap();
    let builder = Motherboard::builder()
        .with(storage)
        .extension(AuditLog::default())
        .patrol(sentinel);
    let (board, base) = boot(builder).await;
    let mut events = board.bus().subscribe("threat.*").unwrap();
    let client = reqwest::Client::new();
    // Recon: probing for secrets answers 404 (alerts, not blocks)...
    for probe in ["/.env", "/wp-admin/"] {
        let status = client
            .get(format!("{base}{probe}"))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 404, "{probe}");
    }
    // ...and the source may still use the API.
    let users = format!("{base}/rest/v1/users");
    assert_eq!(client.get(&users).send().await.unwrap().status(), 200);
    // Then an injection attempt.
    let attack = format!("{users}?id=eq.1'%20OR%20'1'='1");
    assert_eq!(client.get(&attack).send().await.unwrap().status(), 403);
    // The analyzer correlates the two stages and blocks the source: even ordinary requests
    // are refused now, naming the analyzer.
    eventually("the source is blocked", async || {
        client.get(&users).send().await.unwrap().status() == 403
    })
    .await;
    let (status, body) = json(client.get(&users).send().await.unwrap()).await;
    assert_eq!(
        (status, body["agent"].as_str()),
        (403, Some("ThreatAnalyzer")),
        "{body}"
    );
    assert_eq!(blocklist.blocks().len(), 1);
    let mut topics = Vec::new();
    let mut incident = None;
    while !topics.contains(&"threat.blocked".to_owned()) {
        let event = tokio::time::timeout(Duration::from_secs(5), events.recv())
            .await
            .unwrap()
            .unwrap();
        if event.topic == "threat.incident" && event.payload["decision"] != "alert" {
            incident = Some(event.payload.clone());
        }
        topics.push(event.topic.clone());
    }
    let incident = incident.unwrap();
    assert_eq!(
        incident["stages"],
        serde_json::json!(["recon", "injection"]),
        "{incident}"
    );
    assert!(
        topics.contains(&"threat.escalated".to_owned()),
        "{topics:?}"
    );
    // The incident, the escalation and the block are in the audit log, under the source.
    let store = AuditStore::new(board.storage().unwrap());
    eventually("the block reaches the audit log", async || {
        let filter = AuditFilter {
            source: Some("127.0.0.1".into()),
            ..AuditFilter::default()
        };
        let kinds: Vec<String> = store
            .query(&filter)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        ["threat.incident", "threat.escalated", "threat.blocked"]
            .iter()
            .all(|k| kinds.iter().any(|have| have == k))
    })
    .await;
    board.shutdown(StopMode::Fast).await.unwrap();
    let _ = std::fs::remove_file(path);
}

fn namespace() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("magmobo-test-{}-{nanos}", std::process::id())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_boards_share_rate_limits_and_blocks_through_redis() {
    let Some(url) = redis_or_skip("two_boards_share_rate_limits_and_blocks_through_redis").await
    else {
        return;
    };
    let shared = Shared {
        url,
        namespace: namespace(),
    };
    let config = SentinelConfig {
        shared: Some(shared.clone()),
        ..SentinelConfig::default()
    };
    let (watch_a, watch_b) = (
        limited(0.01, 5.0, Some(shared.clone())),
        limited(0.01, 5.0, Some(shared.clone())),
    );
    let limiter_a = watch_a.per_ip_limiter().unwrap().clone();
    let limiter_b = watch_b.per_ip_limiter().unwrap().clone();
    let sentinel_a = Sentinel::new(config.clone()).agent(watch_a);
    let sentinel_b = Sentinel::new(config).agent(watch_b);
    let blocks_a = sentinel_a.blocklist().clone();
    let (board_a, base_a) = boot(Motherboard::builder().patrol(sentinel_a)).await;
    let (board_b, base_b) = boot(Motherboard::builder().patrol(sentinel_b)).await;
    let client = reqwest::Client::new();
    let (a, b) = (
        format!("{base_a}/rest/v1/users"),
        format!("{base_b}/rest/v1/users"),
    );

    // Board A serves the whole burst of this address and flushes it to Redis.
    let synced = limiter_a.shared_syncs();
    for _ in 0..5 {
        assert_eq!(client.get(&a).send().await.unwrap().status(), 200);
    }
    eventually("A flushes its spending", async || {
        limiter_a.shared_syncs() > synced + 1
    })
    .await;
    // Board B has served nothing yet; it lets its first request through (it decides in
    // memory), learns at its next flush that the address' bucket is empty, and refuses.
    let synced = limiter_b.shared_syncs();
    assert_eq!(client.get(&b).send().await.unwrap().status(), 200);
    eventually("B learns the global bucket", async || {
        limiter_b.shared_syncs() > synced + 1
    })
    .await;
    assert_eq!(client.get(&b).send().await.unwrap().status(), 429);

    // A block on one board is refused by the other.
    blocks_a.block(
        "127.0.0.1".parse().unwrap(),
        Duration::from_secs(60),
        "test block",
    );
    eventually("B refuses the source blocked on A", async || {
        let (status, body) = json(client.get(&b).send().await.unwrap()).await;
        status == 403 && body["agent"] == "ThreatAnalyzer"
    })
    .await;
    board_a.shutdown(StopMode::Fast).await.unwrap();
    board_b.shutdown(StopMode::Fast).await.unwrap();
}
