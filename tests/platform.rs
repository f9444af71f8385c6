//! Platform roles through MagConsole (`/platform/v1`) on SQLite, PostgreSQL and MariaDB: what
//! viewers, developers, admins, owners and a custom role may do, the 401/403 answers naming
//! the missing permission, the last-owner guard rail, revocation on the next request, keys
//! created over HTTP working through the PSU, schema reloads reaching MagGate, approvals
//! decided through `approvals.decide`, and the `platform.action` events.

// Test code: a failed setup step should abort the test loudly, helpers included.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use magconsole::{Console, ConsoleConfig};
use maggate::agents::{
    AgentPolicy, AgentStore, AgentsConfig, ApprovalRule, Op, TableGrant, agent_role,
};
use maggate::{GateConfig, MagGate};
use magmobo::auth::{ApiKeyAuth, AuthOptions, KeyStore};
use magmobo::axum::body::{Body, to_bytes};
use magmobo::cpu::HyperCpu;
use magmobo::prelude::*;
use magmobo::roles::platform::store::PlatformStore;
use magmobo::roles::platform::{Access, Permission, PlatformRole};
use magmobo::storage::{SqlStorage, StorageOptions};
use sentinel::audit::{AuditFilter, AuditLog, AuditStore};
use serde_json::{Value as Json, json};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn sqlite_url() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("platform-{}-{n}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    format!("sqlite://{}", path.display())
}

/// One API key per platform role, plus one with no role and the service_role key.
struct Keys {
    owner: (String, String),
    admin: (String, String),
    developer: (String, String),
    viewer: (String, String),
    custom: (String, String),
    nobody: (String, String),
    service: String,
}

fn subject(key: &(String, String)) -> String {
    format!("key:{}", key.0)
}

struct Setup {
    storage: SqlStorage,
    keys: Keys,
}

async fn setup(url: &str) -> Setup {
    let storage = SqlStorage::connect(url, StorageOptions::default()).unwrap();
    storage
        .execute(
            "CREATE TABLE widgets (id INTEGER PRIMARY KEY, name VARCHAR(50))",
            &[],
        )
        .await
        .unwrap();
    let store = KeyStore::new(Arc::new(storage.clone()));
    store.install().await.unwrap();
    let make = async |name: &str| {
        let k = store.create(name, "authenticated", None).await.unwrap();
        (k.key.id, k.full)
    };
    let keys = Keys {
        owner: make("owner").await,
        admin: make("admin").await,
        developer: make("developer").await,
        viewer: make("viewer").await,
        custom: make("custom").await,
        nobody: make("nobody").await,
        service: store
            .create("ops", "service_role", None)
            .await
            .unwrap()
            .full,
    };
    // What `magflock members grant` does: the operator at the console acts as the service.
    let platform = PlatformStore::new(Arc::new(storage.clone()));
    platform.install().await.unwrap();
    let by = Access::service();
    for (key, role) in [
        (&keys.owner, "owner"),
        (&keys.admin, "admin"),
        (&keys.developer, "developer"),
        (&keys.viewer, "viewer"),
    ] {
        platform.grant(&by, &subject(key), role).await.unwrap();
    }
    Setup { storage, keys }
}

async fn boot(storage: &SqlStorage, agents: bool) -> Motherboard {
    let auth = ApiKeyAuth::new(AuthOptions {
        // Longer than any test: keys changed through the API must reload on the bus event.
        refresh: Duration::from_secs(3600),
        ..AuthOptions::default()
    });
    let gate = MagGate::new(GateConfig {
        schema_poll: None,
        watch_ddl: false,
        agents: agents.then(|| AgentsConfig {
            refresh: Duration::ZERO,
            ..AgentsConfig::default()
        }),
        ..GateConfig::default()
    });
    let handle = gate.handle();
    let console = Console::new(ConsoleConfig::default()).on_schema_reload("maggate", move || {
        let gate = handle.clone();
        async move { gate.reload().await }
    });
    let board = Motherboard::builder()
        .with(HyperCpu::new("127.0.0.1:0".parse().unwrap()))
        .with((storage.clone(), auth))
        .extension(gate)
        .extension(console)
        .extension(AuditLog::default())
        .build()
        .unwrap();
    board.boot().await.unwrap();
    board
}

/// Sends one request through the board's route table (no socket); `key` may be empty.
async fn send(board: &Motherboard, line: &str, key: &str, body: Option<Json>) -> (u16, Json) {
    let (method, target) = line.split_once(' ').unwrap();
    let mut req = http::Request::builder()
        .method(method)
        .uri(target)
        .header("content-type", "application/json");
    if !key.is_empty() {
        req = req.header("apikey", key);
    }
    let req = req
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .unwrap();
    let response = board.cpu().unwrap().routes().dispatch(req).await;
    let status = response.status().as_u16();
    let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    let json = serde_json::from_slice(&bytes).unwrap_or(Json::Null);
    (status, json)
}

/// Asserts a 403 whose hint names `needs`.
fn assert_refused(answer: &(u16, Json), needs: &str) {
    let (status, body) = answer;
    assert_eq!(*status, 403, "{body}");
    assert_eq!(body["code"], "MM403", "{body}");
    assert!(
        body["hint"].as_str().unwrap_or("").contains(needs),
        "hint should name {needs}: {body}"
    );
}

async fn scenario(url: &str) {
    let s = setup(url).await;
    let board = boot(&s.storage, false).await;
    let mut events = board.bus().subscribe("platform.action").unwrap();
    let k = &s.keys;

    // No identity: 401. An identity without a role: 403 naming the permission.
    let (status, body) = send(&board, "GET /platform/v1/keys", "", None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("MM401")),
        "{body}"
    );
    assert_refused(
        &send(&board, "GET /platform/v1/keys", &k.nobody.1, None).await,
        "keys.read",
    );

    // A viewer lists keys (never a secret or hash) but cannot create one.
    let (status, list) = send(&board, "GET /platform/v1/keys", &k.viewer.1, None).await;
    assert_eq!(status, 200, "{list}");
    let list = list.as_array().unwrap();
    assert!(list.iter().any(|key| key["id"] == k.admin.0.as_str()));
    assert!(
        list.iter()
            .all(|key| key.get("secret_hash").is_none() && key.get("key").is_none())
    );
    let new_key = json!({ "name": "ci", "role": "anon" });
    let refused = send(
        &board,
        "POST /platform/v1/keys",
        &k.viewer.1,
        Some(new_key.clone()),
    )
    .await;
    assert_refused(&refused, "keys.write");
    assert!(
        refused.1["message"].as_str().unwrap().contains("viewer"),
        "{}",
        refused.1
    );
    let (status, me) = send(&board, "GET /platform/v1/me", &k.viewer.1, None).await;
    assert_eq!((status, me["role"].as_str()), (200, Some("viewer")), "{me}");

    // An admin creates a key; it is shown once and works through the PSU.
    let (status, created) = send(&board, "POST /platform/v1/keys", &k.admin.1, Some(new_key)).await;
    assert_eq!(status, 201, "{created}");
    let full = created["key"].as_str().unwrap().to_owned();
    assert!(full.starts_with(&format!("mf_{}_", created["id"].as_str().unwrap())));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, _) = send(&board, "GET /rest/v1/widgets", &full, None).await;
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new key never authenticated: {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // ... but no service_role key: that is an owner's credential.
    let owner_only = json!({ "name": "root", "role": "service_role" });
    let refused = send(
        &board,
        "POST /platform/v1/keys",
        &k.admin.1,
        Some(owner_only.clone()),
    )
    .await;
    assert_refused(&refused, "owner");
    let (status, _) = send(
        &board,
        "POST /platform/v1/keys",
        &k.owner.1,
        Some(owner_only),
    )
    .await;
    assert_eq!(status, 201);
    // Bad input is a 400, not a 500.
    let (status, body) = send(
        &board,
        "POST /platform/v1/keys",
        &k.admin.1,
        Some(json!({ "name": "x" })),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("MM400")),
        "{body}"
    );

    // A developer reloads the schema, and MagGate serves the new table at once.
    s.storage
        .execute("CREATE TABLE gadgets (id INTEGER PRIMARY KEY)", &[])
        .await
        .unwrap();
    let (status, _) = send(&board, "GET /rest/v1/gadgets", &k.developer.1, None).await;
    assert_eq!(
        status, 404,
        "MagGate should not know gadgets before the reload"
    );
    let (status, body) = send(
        &board,
        "POST /platform/v1/schema/reload",
        &k.developer.1,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["reloaded"][0],
        json!({ "name": "maggate", "changed": true })
    );
    let (status, _) = send(&board, "GET /rest/v1/gadgets", &k.developer.1, None).await;
    assert_eq!(status, 200);
    let (status, schema) = send(&board, "GET /platform/v1/schema", &k.viewer.1, None).await;
    assert_eq!(status, 200);
    let names: Vec<_> = schema["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"gadgets") && !names.iter().any(|n| n.starts_with("_magmobo")),
        "{names:?}"
    );
    assert_refused(
        &send(&board, "POST /platform/v1/schema/reload", &k.viewer.1, None).await,
        "schema.write",
    );
    assert_refused(
        &send(
            &board,
            "POST /platform/v1/keys",
            &k.developer.1,
            Some(json!({"name": "d", "role": "anon"})),
        )
        .await,
        "keys.write",
    );

    // The last owner cannot be removed or demoted; admins cannot touch owners at all.
    let owner_path = format!("/platform/v1/members/{}", subject(&k.owner));
    let (status, body) = send(&board, &format!("DELETE {owner_path}"), &k.owner.1, None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("MM409")),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("last owner"),
        "{body}"
    );
    let demote = json!({ "role": "viewer" });
    let (status, _) = send(
        &board,
        &format!("PUT {owner_path}"),
        &k.owner.1,
        Some(demote.clone()),
    )
    .await;
    assert_eq!(status, 409);
    assert_refused(
        &send(&board, &format!("DELETE {owner_path}"), &k.admin.1, None).await,
        "owner",
    );
    let make_owner = json!({ "role": "owner" });
    let admin_path = format!("/platform/v1/members/{}", subject(&k.admin));
    assert_refused(
        &send(
            &board,
            &format!("PUT {admin_path}"),
            &k.admin.1,
            Some(make_owner.clone()),
        )
        .await,
        "owner",
    );
    // With a second owner, the first may step down.
    let (status, _) = send(
        &board,
        &format!("PUT {admin_path}"),
        &k.owner.1,
        Some(make_owner),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = send(
        &board,
        &format!("PUT {owner_path}"),
        &k.owner.1,
        Some(demote),
    )
    .await;
    assert_eq!(status, 200);
    let (_, me) = send(&board, "GET /platform/v1/me", &k.owner.1, None).await;
    assert_eq!(me["role"], "viewer");

    // Revocation takes effect on the next request.
    let dev_path = format!("/platform/v1/members/{}", subject(&k.developer));
    let (status, _) = send(&board, &format!("DELETE {dev_path}"), &k.admin.1, None).await;
    assert_eq!(status, 200);
    assert_refused(
        &send(
            &board,
            "POST /platform/v1/schema/reload",
            &k.developer.1,
            None,
        )
        .await,
        "schema.write",
    );

    // A custom role: exactly its permissions, and nobody grants beyond what they hold.
    let (status, role) = send(
        &board,
        "PUT /platform/v1/roles/key-manager",
        &k.admin.1,
        Some(json!({ "permissions": ["keys.read", "members.write"], "description": "hands out keys" })),
    )
    .await;
    assert_eq!(
        (status, role["permissions"].clone()),
        (200, json!(["keys.read", "members.write"])),
        "{role}"
    );
    let custom_path = format!("/platform/v1/members/{}", subject(&k.custom));
    let (status, _) = send(
        &board,
        &format!("PUT {custom_path}"),
        &k.admin.1,
        Some(json!({ "role": "key-manager" })),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = send(&board, "GET /platform/v1/keys", &k.custom.1, None).await;
    assert_eq!(status, 200);
    assert_refused(
        &send(&board, "GET /platform/v1/schema", &k.custom.1, None).await,
        "schema.read",
    );
    let anon = KeyStore::new(Arc::new(s.storage.clone()))
        .create("public", "anon", None)
        .await
        .unwrap();
    let anon_path = format!("/platform/v1/members/key:{}", anon.key.id);
    let (status, body) = send(
        &board,
        &format!("PUT {anon_path}"),
        &k.admin.1,
        Some(json!({ "role": "viewer" })),
    )
    .await;
    assert_eq!(
        status, 400,
        "a role on the anon key is a role for everyone: {body}"
    );
    let (status, _) = send(
        &board,
        "PUT /platform/v1/members/key:000000000000",
        &k.admin.1,
        Some(json!({ "role": "viewer" })),
    )
    .await;
    assert_eq!(status, 404);
    let nobody_path = format!("/platform/v1/members/{}", subject(&k.nobody));
    let escalate = send(
        &board,
        &format!("PUT {nobody_path}"),
        &k.custom.1,
        Some(json!({ "role": "developer" })),
    )
    .await;
    assert_refused(&escalate, "agents.read");
    let (status, body) = send(
        &board,
        "DELETE /platform/v1/roles/key-manager",
        &k.admin.1,
        None,
    )
    .await;
    assert_eq!(status, 409, "a role in use is not deleted: {body}");
    let (status, roles) = send(&board, "GET /platform/v1/roles", &k.viewer.1, None).await;
    assert_eq!(status, 200);
    let names: Vec<_> = roles
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["owner", "admin", "developer", "viewer", "key-manager"]
    );

    // The service_role key is an owner.
    let (_, me) = send(&board, "GET /platform/v1/me", &k.service, None).await;
    assert_eq!(
        (me["role"].as_str(), me["owner"].as_bool()),
        (Some("owner"), Some(true)),
        "{me}"
    );

    // Changes and refusals are on the bus for the audit log.
    let mut seen = Vec::new();
    while let Some(event) = events.try_recv() {
        let p = &event.payload;
        seen.push(format!(
            "{} {}",
            p["action"].as_str().unwrap(),
            p["outcome"].as_str().unwrap()
        ));
    }
    for expected in [
        "keys.create ok",
        "keys.create denied",
        "schema.reload ok",
        "members.revoke refused",
        "members.revoke ok",
        "roles.define ok",
        "members.grant denied",
    ] {
        assert!(
            seen.iter().any(|s| s == expected),
            "no '{expected}' event in {seen:?}"
        );
    }
    // MagAudit's defaults record them, with who did it, in the hash-chained log.
    let audit = AuditStore::new(Arc::new(s.storage.clone()));
    let filter = AuditFilter {
        kind: Some("platform".into()),
        ..AuditFilter::default()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let entries = loop {
        let entries = audit.query(&filter).await.unwrap();
        if entries
            .iter()
            .any(|e| e.summary == "platform members.grant denied")
            || Instant::now() > deadline
        {
            break entries;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let created = entries
        .iter()
        .find(|e| e.summary == "platform keys.create ok")
        .unwrap_or_else(|| panic!("no key creation in the audit log: {entries:?}"));
    assert!(
        created
            .identity
            .as_deref()
            .is_some_and(|i| i.starts_with("key:")),
        "the audit entry names who created the key: {created:?}"
    );
    assert!(
        entries
            .iter()
            .any(|e| e.summary == "platform members.grant denied"),
        "refusals are audited too: {entries:?}"
    );
    assert_eq!(
        audit.verify().await.unwrap().broken,
        None,
        "the chain verifies"
    );
    board.shutdown(StopMode::Fast).await.unwrap();
}

magmobo_integration_tests::on_every_storage!(scenario, sqlite_url() => roles_on_sqlite, roles_on_postgres, roles_on_mariadb);

/// MagGate's `_approvals` accept a member holding `approvals.decide`; a developer (who does
/// not hold it) is refused, and so is the agent itself.
#[tokio::test(flavor = "multi_thread")]
async fn approvals_decide_through_a_platform_role() {
    let s = setup(&sqlite_url()).await;
    let agents = AgentStore::new(Arc::new(s.storage.clone()));
    agents.install().await.unwrap();
    let store = KeyStore::new(Arc::new(s.storage.clone()));
    let bot = store.create("bot", &agent_role("bot"), None).await.unwrap();
    let policy = AgentPolicy::default()
        .grant(TableGrant::new("widgets", &[Op::Select, Op::Insert]))
        .approval(ApprovalRule::always(Op::Insert))
        .rate(1000.0, 1000);
    agents
        .create("bot", Some(&bot.key.id), policy)
        .await
        .unwrap();
    let board = boot(&s.storage, true).await;
    let k = &s.keys;

    let park = async || {
        let (status, ticket) = send(
            &board,
            "POST /rest/v1/widgets",
            &bot.full,
            Some(json!({"id": 1, "name": "w"})),
        )
        .await;
        assert_eq!(status, 202, "{ticket}");
        format!(
            "/rest/v1/_approvals/{}/approve",
            ticket["ticket"].as_str().unwrap()
        )
    };
    let approve = park().await;
    for refused in [&k.developer.1, &bot.full] {
        let (status, body) = send(&board, &format!("POST {approve}"), refused, None).await;
        assert_eq!(status, 403, "{body}");
    }
    // A custom "approver" role, granted by the owner.
    let (status, _) = send(
        &board,
        "PUT /platform/v1/roles/approver",
        &k.owner.1,
        Some(json!({ "permissions": ["approvals.decide"] })),
    )
    .await;
    assert_eq!(status, 200);
    let path = format!("/platform/v1/members/{}", subject(&k.custom));
    let (status, _) = send(
        &board,
        &format!("PUT {path}"),
        &k.owner.1,
        Some(json!({ "role": "approver" })),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = send(&board, &format!("POST {approve}"), &k.custom.1, None).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("executed")),
        "{body}"
    );
    assert_eq!(body["decided_by"], subject(&k.custom));
    let (_, rows) = send(&board, "GET /rest/v1/widgets", &k.viewer.1, None).await;
    assert_eq!(rows, json!([{ "id": 1, "name": "w" }]));
    // Revoked: the next ticket is refused to the same key.
    let (status, _) = send(&board, &format!("DELETE {path}"), &k.owner.1, None).await;
    assert_eq!(status, 200);
    let approve = park().await;
    let (status, _) = send(&board, &format!("POST {approve}"), &k.custom.1, None).await;
    assert_eq!(status, 403);
    board.shutdown(StopMode::Fast).await.unwrap();
}

/// Many grants to one new subject at the same moment (and many definitions of one new custom
/// role): each either wins or updates the winner's row, none fails with a storage error, and
/// the member ends up holding one of the granted roles.
async fn concurrent_grants(url: &str) {
    let Setup { storage, .. } = setup(url).await;
    let platform = PlatformStore::new(Arc::new(storage.clone()));
    let roles = [
        "viewer",
        "developer",
        "admin",
        "viewer",
        "developer",
        "admin",
    ];
    let grants = roles.iter().map(|role| {
        let platform = platform.clone();
        async move { platform.grant(&Access::service(), "user:racer", role).await }
    });
    for granted in futures::future::join_all(grants).await {
        let member = granted.expect("a concurrent grant succeeds");
        assert_eq!(member.subject, "user:racer");
    }
    let members = platform.members().await.unwrap();
    let racer = members.iter().find(|m| m.subject == "user:racer").unwrap();
    assert!(roles.contains(&racer.role.as_str()), "{racer:?}");

    let role = PlatformRole {
        name: "auditor".into(),
        permissions: [Permission::AuditRead, Permission::KeysRead]
            .into_iter()
            .collect(),
        builtin: false,
        description: None,
    };
    let defines = (0..6).map(|_| {
        let platform = platform.clone();
        let role = role.clone();
        async move { platform.define_role(&Access::service(), &role).await }
    });
    for defined in futures::future::join_all(defines).await {
        assert_eq!(
            defined.expect("a concurrent definition succeeds").name,
            "auditor"
        );
    }
}

magmobo_integration_tests::on_every_storage!(concurrent_grants, sqlite_url() => concurrent_grants_on_sqlite, concurrent_grants_on_postgres, concurrent_grants_on_mariadb);

/// Agents created, listed and revoked over `/platform/v1/agents` (answered by MagGate over the
/// bus): grants are checked against the schema, the new key works at once with only its
/// grants, revocation stops it at once; the audit trail is read and verified over
/// `/platform/v1/audit` (answered by MagAudit).
async fn agents_and_audit(url: &str) {
    let s = setup(url).await;
    s.storage
        .execute(
            "CREATE TABLE secrets (id INTEGER PRIMARY KEY, v VARCHAR(50))",
            &[],
        )
        .await
        .unwrap();
    let board = boot(&s.storage, true).await;
    let k = &s.keys;
    let reporter = json!({
        "name": "reporter",
        "policy": {
            "grants": [{ "table": "widgets", "operations": ["select"], "columns": ["id", "name"] }],
            "rate": { "per_second": 1000.0, "burst": 1000 }
        }
    });

    // Who may: agents.write (developer and up), not a viewer.
    let refused = send(
        &board,
        "POST /platform/v1/agents",
        &k.viewer.1,
        Some(reporter.clone()),
    )
    .await;
    assert_refused(&refused, "agents.write");
    // Grants naming what does not exist are refused with the closest name.
    let mut typo = reporter.clone();
    typo["policy"]["grants"][0]["table"] = json!("widget");
    let (status, body) = send(
        &board,
        "POST /platform/v1/agents",
        &k.developer.1,
        Some(typo),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["hint"].as_str().unwrap_or("").contains("widgets"),
        "{body}"
    );
    let mut typo = reporter.clone();
    typo["policy"]["grants"][0]["columns"] = json!(["id", "nmae"]);
    let (status, body) = send(
        &board,
        "POST /platform/v1/agents",
        &k.developer.1,
        Some(typo),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["hint"].as_str().unwrap_or("").contains("name"),
        "{body}"
    );
    let (status, body) = send(
        &board,
        "POST /platform/v1/agents",
        &k.developer.1,
        Some(json!({ "name": "x", "policy": { "grants": "all" } })),
    )
    .await;
    assert_eq!(status, 400, "{body}");

    let (status, created) = send(
        &board,
        "POST /platform/v1/agents",
        &k.developer.1,
        Some(reporter.clone()),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().unwrap().to_owned();
    assert_eq!(created["agent"]["name"], "reporter");
    let (status, body) = send(
        &board,
        "POST /platform/v1/agents",
        &k.developer.1,
        Some(reporter),
    )
    .await;
    assert_eq!(status, 409, "a second agent of the same name: {body}");

    // The key works at once, with only its grants.
    let (status, rows) = send(&board, "GET /rest/v1/widgets", &key, None).await;
    assert_eq!((status, rows.clone()), (200, json!([])), "{rows}");
    let (status, body) = send(&board, "GET /rest/v1/secrets", &key, None).await;
    assert_eq!(status, 403, "an ungranted table: {body}");

    let (status, list) = send(&board, "GET /platform/v1/agents", &k.viewer.1, None).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list[0]["name"], "reporter", "{list}");
    assert_eq!(list[0]["policy"]["grants"][0]["table"], "widgets", "{list}");

    // The policy changes over PATCH and takes effect at once; the name and key stay.
    let wider = json!({ "policy": {
        "grants": [
            { "table": "widgets", "operations": ["select"] },
            { "table": "secrets", "operations": ["select"] }
        ],
        "rate": { "per_second": 1000.0, "burst": 1000 }
    }});
    let refused = send(
        &board,
        "PATCH /platform/v1/agents/reporter",
        &k.viewer.1,
        Some(wider.clone()),
    )
    .await;
    assert_refused(&refused, "agents.write");
    let (status, body) = send(
        &board,
        "PATCH /platform/v1/agents/reporter",
        &k.developer.1,
        Some(json!({ "name": "other", "policy": {} })),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let mut typo = wider.clone();
    typo["policy"]["grants"][1]["table"] = json!("secret");
    let (status, body) = send(
        &board,
        "PATCH /platform/v1/agents/reporter",
        &k.developer.1,
        Some(typo),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = send(
        &board,
        "PATCH /platform/v1/agents/nobody",
        &k.developer.1,
        Some(wider.clone()),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let (status, agent) = send(
        &board,
        "PATCH /platform/v1/agents/reporter",
        &k.developer.1,
        Some(wider),
    )
    .await;
    assert_eq!(status, 200, "{agent}");
    assert_eq!(agent["policy"]["grants"][1]["table"], "secrets", "{agent}");
    let (status, body) = send(&board, "GET /rest/v1/secrets", &key, None).await;
    assert_eq!(status, 200, "the widened grant works at once: {body}");

    let (status, body) = send(
        &board,
        "DELETE /platform/v1/agents/nobody",
        &k.developer.1,
        None,
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = send(
        &board,
        "DELETE /platform/v1/agents/reporter",
        &k.developer.1,
        None,
    )
    .await;
    assert_eq!(
        (status, body["already_revoked"].as_bool()),
        (200, Some(false)),
        "{body}"
    );
    let (status, body) = send(&board, "GET /rest/v1/widgets", &key, None).await;
    // MagGate drops the agent (403) before the PSU has re-read the keys (401): either way,
    // refused at once.
    assert!(
        matches!(status, 401 | 403),
        "a revoked agent's key stops at once: {status} {body}"
    );

    // The audit trail, as a viewer reads it: the agent's creation and revocation are there.
    let refused = send(&board, "GET /platform/v1/audit", &k.nobody.1, None).await;
    assert_refused(&refused, "audit.read");
    let deadline = Instant::now() + Duration::from_secs(10);
    let entries = loop {
        let (status, entries) = send(
            &board,
            "GET /platform/v1/audit?kind=platform&limit=50",
            &k.viewer.1,
            None,
        )
        .await;
        assert_eq!(status, 200, "{entries}");
        let actions: Vec<String> = entries
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["summary"].as_str().unwrap_or("").to_owned())
            .collect();
        if actions.iter().any(|a| a.contains("agents.revoke ok")) || Instant::now() > deadline {
            break actions;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        entries.iter().any(|a| a.contains("agents.create ok")),
        "{entries:?}"
    );
    assert!(
        entries.iter().any(|a| a.contains("agents.revoke ok")),
        "{entries:?}"
    );
    assert!(
        entries.iter().any(|a| a.contains("agents.create refused")),
        "{entries:?}"
    );
    let (status, body) = send(
        &board,
        "GET /platform/v1/audit?limit=5000",
        &k.viewer.1,
        None,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = send(&board, "GET /platform/v1/audit?kinds=x", &k.viewer.1, None).await;
    assert_eq!(
        status, 400,
        "an unknown filter is named, not ignored: {body}"
    );
    let (status, report) = send(&board, "GET /platform/v1/audit/verify", &k.viewer.1, None).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["broken"], Json::Null, "{report}");
    assert!(report["checked"].as_u64().unwrap() > 0, "{report}");
    board.shutdown(StopMode::Fast).await.unwrap();
}

magmobo_integration_tests::on_every_storage!(agents_and_audit, sqlite_url() => agents_and_audit_on_sqlite, agents_and_audit_on_postgres, agents_and_audit_on_mariadb);

/// Without MagGate's agents or MagAudit on the board, the endpoints say what to plug in.
#[tokio::test(flavor = "multi_thread")]
async fn agents_and_audit_endpoints_say_when_not_running() {
    let s = setup(&sqlite_url()).await;
    let auth = ApiKeyAuth::new(AuthOptions::default());
    let board = Motherboard::builder()
        .with(HyperCpu::new("127.0.0.1:0".parse().unwrap()))
        .with((s.storage.clone(), auth))
        .extension(MagGate::new(GateConfig {
            schema_poll: None,
            watch_ddl: false,
            ..GateConfig::default()
        }))
        .extension(Console::new(ConsoleConfig::default()))
        .build()
        .unwrap();
    board.boot().await.unwrap();
    for line in ["GET /platform/v1/agents", "GET /platform/v1/audit"] {
        let (status, body) = send(&board, line, &s.keys.owner.1, None).await;
        assert_eq!(status, 503, "{line}: {body}");
        assert!(
            body["hint"].as_str().is_some_and(|h| !h.is_empty()),
            "{body}"
        );
    }
    board.shutdown(StopMode::Fast).await.unwrap();
}
