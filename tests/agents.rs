//! AI agents as governed identities through MagGate: grants per table, operation and column,
//! row filters, the approval queue (park, poll, approve over HTTP and through the Rust API
//! a CLI calls, reject, expiry), the per-agent rate limit, and the `agent.action` events
//! the audit log records with the agent's identity. On SQLite, and the core scenario on
//! PostgreSQL.

// Test code: a failed setup step should abort the test loudly, helpers included.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use maggate::agents::{
    AgentPolicy, AgentStore, AgentsConfig, ApprovalRule, Op, TableGrant, TicketStatus, agent_role,
};
use maggate::{GateConfig, MagGate};
use magmobo::auth::{ApiKeyAuth, AuthOptions, KeyStore};
use magmobo::axum::body::{Body, to_bytes};
use magmobo::bus::Subscription;
use magmobo::cpu::HyperCpu;
use magmobo::prelude::*;
use magmobo::storage::{SqlStorage, StorageOptions};
use magmobo_integration_tests::services::{mysql_or_skip, postgres_or_skip};
use sentinel::audit::{AuditFilter, AuditLog, AuditStore};
use serde_json::{Value as Json, json};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn sqlite_url() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("maggate-agents-{}-{n}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    format!("sqlite://{}", path.display())
}

const TABLES: [&str; 2] = [
    "CREATE TABLE todos (id INTEGER PRIMARY KEY, title VARCHAR(100) NOT NULL, \
     owner VARCHAR(50), secret VARCHAR(50))",
    "CREATE TABLE payroll (id INTEGER PRIMARY KEY, salary INTEGER)",
];
const SEED: [&str; 2] = [
    "INSERT INTO todos (id, title, owner, secret) VALUES (1, 'one', 'bot', 's1'), \
     (2, 'two', 'bot', 's2'), (3, 'three', 'human', 's3'), (4, 'four', 'bot', 's4')",
    "INSERT INTO payroll (id, salary) VALUES (1, 100)",
];

/// What the main agent may do: read and change its own todos (never `secret`), deletes
/// always parked, updates parked above one row.
fn reporter_policy() -> AgentPolicy {
    AgentPolicy::default()
        .grant(
            TableGrant::new("todos", &[Op::Select, Op::Update, Op::Delete])
                .columns(["id", "title", "owner"])
                .rows("owner", ["bot"]),
        )
        .approval(ApprovalRule::always(Op::Delete))
        .approval(ApprovalRule::more_than(Op::Update, 1).on("todos"))
        .rate(1000.0, 1000)
}

struct Setup {
    storage: SqlStorage,
    agents: AgentStore,
    service: String,
    reporter: String,
}

async fn setup(url: &str) -> Setup {
    let storage = SqlStorage::connect(url, StorageOptions::default()).unwrap();
    for sql in TABLES.iter().chain(SEED.iter()) {
        storage.execute(sql, &[]).await.unwrap();
    }
    let keys = KeyStore::new(Arc::new(storage.clone()));
    keys.install().await.unwrap();
    let service = keys.create("ops", "service_role", None).await.unwrap().full;
    // What `magflock agents create` does: a key with the agent's role, then the agent.
    let key = keys
        .create("reporter", &agent_role("reporter"), None)
        .await
        .unwrap();
    let agents = AgentStore::new(Arc::new(storage.clone()));
    agents.install().await.unwrap();
    agents
        .create("reporter", Some(&key.key.id), reporter_policy())
        .await
        .unwrap();
    Setup {
        storage,
        agents,
        service,
        reporter: key.full,
    }
}

async fn boot(storage: &SqlStorage, ticket_ttl: Duration, audit: bool) -> Motherboard {
    let auth = ApiKeyAuth::new(AuthOptions {
        refresh: Duration::ZERO,
        ..AuthOptions::default()
    });
    let gate = MagGate::new(GateConfig {
        schema_poll: None,
        agents: Some(AgentsConfig {
            refresh: Duration::ZERO,
            ticket_ttl,
            ..AgentsConfig::default()
        }),
        ..GateConfig::default()
    });
    let mut builder = Motherboard::builder()
        .with(HyperCpu::new("127.0.0.1:0".parse().unwrap()))
        .with((storage.clone(), auth))
        .extension(gate);
    if audit {
        builder = builder.extension(AuditLog::new(vec!["agent.*".into()]));
    }
    let board = builder.build().unwrap();
    board.boot().await.unwrap();
    board
}

/// Sends one request through the board's route table (no socket).
async fn send(
    board: &Motherboard,
    line: &str,
    key: &str,
    body: Option<Json>,
) -> (u16, http::HeaderMap, Json) {
    let (method, target) = line.split_once(' ').unwrap();
    let req = http::Request::builder()
        .method(method)
        .uri(format!("/rest/v1{target}"))
        .header("apikey", key)
        .header("content-type", "application/json")
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .unwrap();
    let response = board.cpu().unwrap().routes().dispatch(req).await;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    let json = serde_json::from_slice(&bytes).unwrap_or(Json::Null);
    (status, headers, json)
}

fn ids(rows: &Json) -> Vec<i64> {
    rows.as_array()
        .map(|a| a.iter().filter_map(|r| r["id"].as_i64()).collect())
        .unwrap_or_default()
}

/// The `agent.action` events published so far: (agent, outcome, table, ticket).
fn drain(events: &mut Subscription) -> Vec<(String, String, String, Option<String>)> {
    let mut out = Vec::new();
    while let Some(e) = events.try_recv() {
        let p = &e.payload;
        let s = |k: &str| p[k].as_str().unwrap_or_default().to_owned();
        out.push((
            s("agent"),
            s("outcome"),
            s("table"),
            p["ticket"].as_str().map(str::to_owned),
        ));
    }
    out
}

fn outcomes(events: &[(String, String, String, Option<String>)]) -> Vec<&str> {
    events.iter().map(|e| e.1.as_str()).collect()
}

/// Grants, refusals, row filters and the approval queue, as one agent and one operator
/// see them.
async fn core_scenario(url: &str, audit: bool) {
    let s = setup(url).await;
    let board = boot(&s.storage, Duration::from_secs(3600), audit).await;
    let mut events = board.bus().subscribe("agent.action").unwrap();
    let (agent, ops) = (s.reporter.as_str(), s.service.as_str());

    // Granted table: 200, and only the agent's rows.
    let (status, _, rows) = send(&board, "GET /todos?select=id,title&order=id", agent, None).await;
    assert_eq!((status, ids(&rows)), (200, vec![1, 2, 4]));
    let (_, _, rows) = send(&board, "GET /todos?order=id", agent, None).await;
    assert_eq!(
        rows[0],
        json!({"id": 1, "title": "one", "owner": "bot"}),
        "* is the granted columns"
    );
    // Supabase's bare `count` counts the rows the agent sees; it reads no column.
    let (status, _, rows) = send(&board, "GET /todos?select=count", agent, None).await;
    assert_eq!(
        (status, rows.clone()),
        (200, json!([{"count": 3}])),
        "{rows}"
    );
    // Another table, a column, an operation: 403 naming each.
    let (status, _, err) = send(&board, "GET /payroll", agent, None).await;
    assert_eq!(
        (status, err["code"].as_str()),
        (403, Some("MG403")),
        "{err}"
    );
    assert!(
        err["message"].as_str().unwrap().contains("payroll"),
        "{err}"
    );
    let (status, _, err) = send(&board, "GET /todos?select=id,secret", agent, None).await;
    assert_eq!(
        (status, err["code"].as_str()),
        (403, Some("MG403")),
        "{err}"
    );
    assert!(err["message"].as_str().unwrap().contains("secret"), "{err}");
    let (status, _, err) = send(
        &board,
        "POST /todos",
        agent,
        Some(json!({"id": 9, "title": "x"})),
    )
    .await;
    assert_eq!(status, 403, "{err}");
    assert!(err["message"].as_str().unwrap().contains("insert"), "{err}");
    // An embedded ungranted table is refused too.
    let (status, _, err) = send(&board, "GET /todos?select=id,payroll(salary)", agent, None).await;
    assert_eq!(status, 403, "{err}");
    assert!(
        err["message"].as_str().unwrap().contains("payroll"),
        "{err}"
    );
    let seen = drain(&mut events);
    assert_eq!(
        outcomes(&seen)[..6],
        [
            "allowed", "allowed", "allowed", "refused", "refused", "refused"
        ]
    );
    assert!(seen.iter().all(|e| e.0 == "reporter"));

    // An update of one row runs; of three rows it is parked.
    let (status, _, _) = send(
        &board,
        "PATCH /todos?id=eq.1",
        agent,
        Some(json!({"title": "uno"})),
    )
    .await;
    assert_eq!(status, 204);
    let (status, headers, parked) = send(
        &board,
        "PATCH /todos?owner=eq.bot",
        agent,
        Some(json!({"title": "all"})),
    )
    .await;
    assert_eq!(
        (status, parked["status"].as_str()),
        (202, Some("pending")),
        "{parked}"
    );
    let update_ticket = parked["ticket"].as_str().unwrap().to_owned();
    assert_eq!(headers["location"], parked["poll"].as_str().unwrap());
    // The same update limited to one row (`order` + `limit`) touches one row: it runs.
    let (status, _, body) = send(
        &board,
        "PATCH /todos?owner=eq.bot&order=id&limit=1",
        agent,
        Some(json!({"title": "uno"})),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    // The row filter counts: the agent's filter on someone else's row matches nothing, so
    // it runs (and changes nothing).
    let (status, _, _) = send(
        &board,
        "PATCH /todos?owner=eq.human",
        agent,
        Some(json!({"title": "x"})),
    )
    .await;
    assert_eq!(status, 204);

    // A delete is always parked: 202 with a ticket to poll; the row is still there.
    let (status, _, parked) = send(&board, "DELETE /todos?id=eq.2", agent, None).await;
    assert_eq!(status, 202, "{parked}");
    let ticket = parked["ticket"].as_str().unwrap().to_owned();
    let poll = format!("/_approvals/{ticket}");
    assert_eq!(parked["poll"], format!("/rest/v1{poll}"));
    let (_, _, rows) = send(&board, "GET /todos?select=id&order=id", ops, None).await;
    assert_eq!(ids(&rows), vec![1, 2, 3, 4]);
    let (status, _, polled) = send(&board, &format!("GET {poll}"), agent, None).await;
    assert_eq!(
        (status, polled["status"].as_str()),
        (200, Some("pending")),
        "{polled}"
    );
    assert_eq!(polled["result"], Json::Null);
    let seen = drain(&mut events);
    assert_eq!(
        outcomes(&seen),
        ["allowed", "parked", "allowed", "allowed", "parked"]
    );
    assert_eq!(seen[4].3.as_deref(), Some(ticket.as_str()));

    // The agent cannot approve its own ticket; an operator can, and it runs as the agent.
    let (status, _, _) = send(&board, &format!("POST {poll}/approve"), agent, None).await;
    assert_eq!(status, 403);
    let (status, _, pending) = send(&board, "GET /_approvals?status=pending", ops, None).await;
    assert_eq!(status, 200);
    assert_eq!(pending.as_array().unwrap().len(), 2, "{pending}");
    let (status, _, done) = send(&board, &format!("POST {poll}/approve"), ops, None).await;
    assert_eq!(
        (status, done["status"].as_str()),
        (200, Some("executed")),
        "{done}"
    );
    assert_eq!(done["result"]["status"], 204);
    let (_, _, rows) = send(&board, "GET /todos?select=id&order=id", ops, None).await;
    assert_eq!(ids(&rows), vec![1, 3, 4], "row 2 is gone");
    let (_, _, polled) = send(&board, &format!("GET {poll}"), agent, None).await;
    assert_eq!(
        (polled["status"].as_str(), &polled["result"]["status"]),
        (Some("executed"), &json!(204))
    );
    let (status, _, _) = send(&board, &format!("POST {poll}/approve"), ops, None).await;
    assert_eq!(status, 409, "a ticket runs once");

    // Rejected: nothing happens.
    let reject = format!("/_approvals/{update_ticket}/reject");
    let (status, _, done) = send(&board, &format!("POST {reject}"), ops, None).await;
    assert_eq!(
        (status, done["status"].as_str()),
        (200, Some("rejected")),
        "{done}"
    );
    let (_, _, rows) = send(&board, "GET /todos?select=title&order=id", ops, None).await;
    assert_eq!(
        rows,
        json!([{"title": "uno"}, {"title": "three"}, {"title": "four"}])
    );
    let seen = drain(&mut events);
    let outcomes_now = outcomes(&seen);
    for expected in ["approved", "executed", "rejected"] {
        assert!(
            outcomes_now.contains(&expected),
            "{expected} in {outcomes_now:?}"
        );
    }

    // Approved through the Rust API (the CLI, another process): runs on the agent's poll.
    let (_, _, parked) = send(&board, "DELETE /todos?id=eq.4", agent, None).await;
    let cli_ticket = parked["ticket"].as_str().unwrap().to_owned();
    let listed = s.agents.tickets(Some(TicketStatus::Pending)).await.unwrap();
    assert_eq!(
        listed.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        [cli_ticket.as_str()]
    );
    s.agents.approve(&cli_ticket, "cli:alice").await.unwrap();
    let (_, _, polled) = send(
        &board,
        &format!("GET /_approvals/{cli_ticket}"),
        agent,
        None,
    )
    .await;
    assert_eq!(polled["status"].as_str(), Some("executed"), "{polled}");
    assert_eq!(polled["decided_by"].as_str(), Some("cli:alice"));
    let (_, _, rows) = send(&board, "GET /todos?select=id&order=id", ops, None).await;
    assert_eq!(ids(&rows), vec![1, 3]);

    if audit {
        let store = AuditStore::new(board.storage().unwrap());
        let filter = AuditFilter {
            kind: Some("agent.action".into()),
            identity: Some(agent_role("reporter")),
            ..AuditFilter::default()
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut entries = Vec::new();
        while Instant::now() < deadline {
            entries = store.query(&filter).await.unwrap();
            if entries.iter().any(|e| e.summary.contains("executed")) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            entries.iter().any(|e| e.summary.contains("parked")),
            "{entries:?}"
        );
        assert!(
            entries.iter().any(|e| e.summary.contains("executed")),
            "{entries:?}"
        );
        assert!(store.verify().await.unwrap().broken.is_none());
    }
    board.shutdown(StopMode::Fast).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_on_sqlite() {
    core_scenario(&sqlite_url(), true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_on_postgres() {
    let Some(db) = postgres_or_skip("agents_on_postgres").await else {
        return;
    };
    core_scenario(&db.url, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_on_mariadb() {
    let Some(db) = mysql_or_skip("agents_on_mariadb").await else {
        return;
    };
    core_scenario(&db.url, false).await;
}

/// An undecided ticket expires and never runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unapproved_tickets_expire() {
    let s = setup(&sqlite_url()).await;
    let board = boot(&s.storage, Duration::from_millis(1), false).await;
    let mut events = board.bus().subscribe("agent.action").unwrap();
    let (status, _, parked) = send(&board, "DELETE /todos?id=eq.1", &s.reporter, None).await;
    assert_eq!(status, 202);
    let ticket = parked["ticket"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (_, _, polled) = send(
        &board,
        &format!("GET /_approvals/{ticket}"),
        &s.reporter,
        None,
    )
    .await;
    assert_eq!(polled["status"].as_str(), Some("expired"), "{polled}");
    let (status, _, _) = send(
        &board,
        &format!("POST /_approvals/{ticket}/approve"),
        &s.service,
        None,
    )
    .await;
    assert_eq!(status, 409);
    let (_, _, rows) = send(&board, "GET /todos?select=id&id=eq.1", &s.service, None).await;
    assert_eq!(ids(&rows), vec![1], "the row is still there");
    let seen = drain(&mut events);
    assert!(
        seen.iter()
            .any(|e| e.1 == "expired" && e.3.as_deref() == Some(ticket.as_str())),
        "{seen:?}"
    );
    board.shutdown(StopMode::Fast).await.unwrap();
}

/// Each agent has its own token bucket: 429 with Retry-After, then service again; a
/// revoked agent is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_then_recovery_and_revocation() {
    let s = setup(&sqlite_url()).await;
    let keys = KeyStore::new(Arc::new(s.storage.clone()));
    let hasty = keys
        .create("hasty", &agent_role("hasty"), None)
        .await
        .unwrap();
    let policy = AgentPolicy::default()
        .grant(TableGrant::new("todos", &[Op::Select]))
        .rate(2.0, 2);
    s.agents
        .create("hasty", Some(&hasty.key.id), policy)
        .await
        .unwrap();
    let board = boot(&s.storage, Duration::from_secs(60), false).await;
    let mut events = board.bus().subscribe("agent.action").unwrap();
    let key = hasty.full.as_str();
    for _ in 0..2 {
        let (status, _, _) = send(&board, "GET /todos?select=id", key, None).await;
        assert_eq!(status, 200);
    }
    let (status, headers, err) = send(&board, "GET /todos?select=id", key, None).await;
    assert_eq!(
        (status, err["code"].as_str()),
        (429, Some("MG429")),
        "{err}"
    );
    let wait: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    // The reporter has its own bucket.
    let (status, _, _) = send(&board, "GET /todos?select=id", &s.reporter, None).await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let (status, _, _) = send(&board, "GET /todos?select=id", key, None).await;
    assert_eq!(status, 200, "recovered after Retry-After");
    assert!(
        drain(&mut events)
            .iter()
            .any(|e| e.0 == "hasty" && e.1 == "rate_limited")
    );

    assert!(s.agents.revoke("hasty").await.unwrap());
    let (status, _, err) = send(&board, "GET /todos?select=id", key, None).await;
    assert_eq!(
        (status, err["code"].as_str()),
        (403, Some("MG403")),
        "{err}"
    );
    assert_eq!(s.agents.list().await.unwrap().len(), 2);
    board.shutdown(StopMode::Fast).await.unwrap();
}

/// Two instances whose RAM slot is the same Redis hold one agent's rate limit together: what
/// the agent spent on one instance is refused on the other (alone, each would allow the whole
/// burst).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agents_rate_limit_holds_across_instances_sharing_redis() {
    let Some(redis) = magmobo_integration_tests::services::redis_or_skip(
        "an_agents_rate_limit_holds_across_instances_sharing_redis",
    )
    .await
    else {
        return;
    };
    let url = sqlite_url();
    let s = setup(&url).await;
    let keys = KeyStore::new(Arc::new(s.storage.clone()));
    let key = keys
        .create("slow", &agent_role("slow"), None)
        .await
        .unwrap();
    let policy = AgentPolicy::default()
        .grant(TableGrant::new("todos", &[Op::Select]))
        .rate(0.01, 4);
    s.agents
        .create("slow", Some(&key.key.id), policy)
        .await
        .unwrap();
    // A prefix of its own, so runs never share buckets.
    let prefix = format!(
        "magmobo:test:{}:{}:",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let instance = async || {
        let board = Motherboard::builder()
            .with(HyperCpu::new("127.0.0.1:0".parse().unwrap()))
            .with((
                SqlStorage::connect(&url, StorageOptions::default()).unwrap(),
                ApiKeyAuth::new(AuthOptions::default()),
            ))
            .with(magmobo::cache::RedisCache::new(redis.clone()).with_prefix(prefix.clone()))
            .extension(MagGate::new(GateConfig {
                schema_poll: None,
                watch_ddl: false,
                agents: Some(AgentsConfig::default()),
                ..GateConfig::default()
            }))
            .build()
            .unwrap();
        board.boot().await.unwrap();
        board
    };
    let (a, b) = (instance().await, instance().await);
    for _ in 0..4 {
        let (status, _, body) = send(&a, "GET /todos", &key.full, None).await;
        assert_eq!(status, 200, "within the burst on instance A: {body}");
    }
    // A's spending reaches Redis at its next exchange (every 100 ms).
    assert!(
        magmobo_integration_tests::services::redis_bucket_below(
            &redis,
            &format!("{prefix}rl:agent:slow"),
            1.0
        )
        .await,
        "instance A's spending never reached Redis"
    );
    let mut refused = false;
    for _ in 0..4 {
        let (status, headers, _) = send(&b, "GET /todos", &key.full, None).await;
        if status == 429 {
            assert!(headers.contains_key("retry-after"));
            refused = true;
            break;
        }
        assert_eq!(status, 200);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        refused,
        "instance B must refuse once it learns what A spent, before its own burst is gone"
    );
    a.shutdown(StopMode::Fast).await.unwrap();
    b.shutdown(StopMode::Fast).await.unwrap();
}
