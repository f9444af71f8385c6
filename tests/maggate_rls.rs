//! MagGate per-request identity: the same row-level security scenario on PostgreSQL (real
//! `CREATE POLICY` rules, enforced by the database after MagGate switches role and sets
//! `request.jwt.claims`) and on SQLite and MariaDB (the same rules declared in code and
//! enforced by MagGate), with the same answers. Plus what only PostgreSQL has: read-only
//! GET transactions, the pre-request function, unknown roles.
//!
//! Role-based callers use real API keys (`ApiKeyAuth` + `KeyStore`); per-user claims
//! (`sub`) come from real HS256 JWTs verified by the same PSU (`ApiKeyAuth` with a
//! `JwtConfig`, in PostgREST mode).

// Test code: a failed setup step should abort the test loudly, helpers included.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use maggate::policy::{Command, Policies, RowFilter, TablePolicy};
use maggate::{GateConfig, MagGate, TxEnd};
use magmobo::auth::{ApiKeyAuth, AuthOptions, JwtConfig, KeyStore};
use magmobo::axum::body::{Body, to_bytes};
use magmobo::cpu::HyperCpu;
use magmobo::prelude::*;
use magmobo::roles::storage::Dialect;
use magmobo::storage::{SqlStorage, StorageOptions};
use magmobo_integration_tests::services::{DropRoles, mysql_or_skip, postgres_or_skip};
use serde_json::{Value as Json, json};

/// The HS256 secret the tests' PSU verifies and their tokens are signed with.
const SECRET: &str = "maggate-rls-test-secret-at-least-32-chars";

/// The real PSU in PostgREST mode: no credentials is the anonymous role, a JWT's `role` and
/// `sub` claims are the caller.
fn jwt_psu(anon_role: &str) -> ApiKeyAuth {
    ApiKeyAuth::new(AuthOptions {
        require_key: false,
        anon_role: anon_role.to_owned(),
        jwt: Some(JwtConfig::hs256(SECRET)),
        ..AuthOptions::default()
    })
}

/// `Bearer <JWT>` for `sub` acting as database role `role`, valid for an hour.
fn bearer(role: &str, sub: &str) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let token = JwtConfig::hs256(SECRET)
        .sign(&json!({ "sub": sub, "role": role, "exp": exp }))
        .unwrap();
    format!("Bearer {token}")
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Role names unique to one test run (PostgreSQL roles are cluster-wide).
struct Roles {
    user: String,
    anon: String,
    service: String,
}

impl Roles {
    fn new() -> Roles {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let base = format!("mg_rls_{}_{n}", std::process::id());
        Roles {
            user: format!("{base}_user"),
            anon: format!("{base}_anon"),
            service: format!("{base}_service"),
        }
    }
}

const SEED: &str = "INSERT INTO todos (id, title, owner_id, secret) VALUES \
    (1, 'alice one', 'alice', 's1'), (2, 'alice two', 'alice', 's2'), (3, 'bob one', 'bob', 's3')";

/// Creates `todos` and, on PostgreSQL, the roles, grants and policies the scenario needs.
async fn setup(storage: &SqlStorage, roles: &Roles) {
    let Roles {
        user,
        anon,
        service,
    } = roles;
    let stmts: Vec<String> = match storage.dialect() {
        Dialect::Postgres => vec![
            "CREATE TABLE todos (id integer PRIMARY KEY, title text NOT NULL, owner_id text, \
             secret text)"
                .into(),
            format!("CREATE ROLE {user} NOLOGIN"),
            format!("CREATE ROLE {anon} NOLOGIN"),
            format!("CREATE ROLE {service} NOLOGIN BYPASSRLS"),
            format!("GRANT SELECT, INSERT, UPDATE, DELETE ON todos TO {user}, {service}"),
            format!("GRANT SELECT ON todos TO {anon}"),
            "ALTER TABLE todos ENABLE ROW LEVEL SECURITY".into(),
            format!(
                "CREATE POLICY own_rows ON todos FOR ALL TO {user} \
                 USING (owner_id = current_setting('request.jwt.claims', true)::json->>'sub') \
                 WITH CHECK (owner_id = current_setting('request.jwt.claims', true)::json->>'sub')"
            ),
            // For the read-only check: a STABLE function that calls a writing one.
            "CREATE TABLE touches (at timestamptz DEFAULT now())".into(),
            format!("GRANT INSERT, SELECT ON touches TO {user}"),
            "CREATE FUNCTION record_touch() RETURNS integer LANGUAGE sql VOLATILE AS \
             $$ INSERT INTO touches DEFAULT VALUES RETURNING 1 $$"
                .into(),
            "CREATE FUNCTION touch() RETURNS integer LANGUAGE plpgsql STABLE AS \
             $$ BEGIN RETURN record_touch(); END $$"
                .into(),
            "CREATE FUNCTION whoami() RETURNS json LANGUAGE sql STABLE AS \
             $$ SELECT json_build_object('user', current_user, \
             'sub', current_setting('request.jwt.claims', true)::json->>'sub', \
             'method', current_setting('request.method', true), \
             'path', current_setting('request.path', true), \
             'agent', current_setting('request.headers', true)::json->>'x-agent') $$"
                .into(),
            "CREATE FUNCTION check_request() RETURNS void LANGUAGE plpgsql AS \
             $$ BEGIN IF current_setting('request.headers', true)::json->>'x-blocked' IS NOT NULL \
             THEN RAISE EXCEPTION 'blocked by the pre-request check' USING ERRCODE = '42501'; \
             END IF; END $$"
                .into(),
        ],
        Dialect::MySql => vec![
            "CREATE TABLE todos (id INTEGER PRIMARY KEY, title VARCHAR(100) NOT NULL, \
             owner_id VARCHAR(50), secret VARCHAR(50)) ENGINE=InnoDB"
                .into(),
        ],
        Dialect::Sqlite => vec![
            "CREATE TABLE todos (id INTEGER PRIMARY KEY, title TEXT NOT NULL, owner_id TEXT, \
             secret TEXT)"
                .into(),
        ],
    };
    for stmt in stmts {
        storage.execute(&stmt, &[]).await.unwrap();
    }
    storage.execute(SEED, &[]).await.unwrap();
}

/// Drops the scenario's roles at the end of the test.
fn drop_roles(url: &str, roles: &Roles) -> DropRoles {
    DropRoles::new(url, &[&roles.user, &roles.anon, &roles.service])
}

/// The code-declared twin of the PostgreSQL policy: rows owned by the caller's `sub`, the
/// service role bypassing, and `secret` neither readable nor writable.
fn policies(roles: &Roles) -> Policies {
    Policies::new().bypass(roles.service.clone()).table(
        "todos",
        TablePolicy::new()
            .rows(Command::ALL, RowFilter::claim("owner_id", "sub"))
            .read_columns(["id", "title", "owner_id"])
            .write_columns(["id", "title", "owner_id"]),
    )
}

fn gate_config(d: Dialect, roles: &Roles, tx_end: TxEnd) -> GateConfig {
    GateConfig {
        max_body_bytes: 4096,
        schema_poll: None,
        anon_role: Some(roles.anon.clone()),
        switch_role: d == Dialect::Postgres,
        tx_end,
        policies: if d == Dialect::Postgres {
            Policies::new()
        } else {
            policies(roles)
        },
        ..GateConfig::default()
    }
}

async fn boot(storage: SqlStorage, psu: impl Plug, config: GateConfig) -> Motherboard {
    let board = Motherboard::builder()
        .with(HyperCpu::new("127.0.0.1:0".parse().unwrap()))
        .with((storage, psu))
        .extension(MagGate::new(config))
        .build()
        .unwrap();
    board.boot().await.unwrap();
    board
}

/// Sends one request through the board's route table (no socket).
async fn send(
    board: &Motherboard,
    line: &str,
    headers: &[(&str, &str)],
    body: Option<Json>,
) -> (u16, http::HeaderMap, Json) {
    let (method, target) = line.split_once(' ').unwrap();
    let mut req = http::Request::builder()
        .method(method)
        .uri(format!("/rest/v1{target}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .unwrap();
    let response = board.cpu().unwrap().routes().dispatch(req).await;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    let json = serde_json::from_slice(&bytes).unwrap_or(Json::Null);
    (status, headers, json)
}

const REPR: (&str, &str) = ("prefer", "return=representation");
const COLS: &str = "select=id,title,owner_id&order=id";

fn ids(rows: &Json) -> Vec<i64> {
    rows.as_array()
        .map(|a| a.iter().filter_map(|r| r["id"].as_i64()).collect())
        .unwrap_or_default()
}

/// The scenario every dialect must answer alike.
async fn same_everywhere(url: &str) {
    let roles = Roles::new();
    let storage = SqlStorage::connect(url, StorageOptions::default()).unwrap();
    let d = storage.dialect();
    let _cleanup = (d == Dialect::Postgres).then(|| drop_roles(url, &roles));
    setup(&storage, &roles).await;

    // Real API keys for the role-based callers.
    let keys = KeyStore::new(Arc::new(storage.clone()));
    keys.install().await.unwrap();
    let service_key = keys
        .create("service", &roles.service, None)
        .await
        .unwrap()
        .full;
    let anon_key = keys.create("anon", &roles.anon, None).await.unwrap().full;
    let key_auth = ApiKeyAuth::new(AuthOptions {
        require_key: false,
        anon_role: roles.anon.clone(),
        refresh: Duration::ZERO,
        ..AuthOptions::default()
    });
    let by_key = boot(
        storage.clone(),
        key_auth,
        gate_config(d, &roles, TxEnd::Commit),
    )
    .await;
    let tokens = || jwt_psu(&roles.anon);
    let (alice_jwt, bob_jwt) = (bearer(&roles.user, "alice"), bearer(&roles.user, "bob"));
    let (alice, bob) = (
        ("authorization", alice_jwt.as_str()),
        ("authorization", bob_jwt.as_str()),
    );
    let by_user = boot(
        storage.clone(),
        tokens(),
        gate_config(d, &roles, TxEnd::CommitAllowOverride),
    )
    .await;
    let no_override = boot(
        storage.clone(),
        tokens(),
        gate_config(d, &roles, TxEnd::Commit),
    )
    .await;
    let ctx = |what: &str| format!("{what} on {d:?}");

    // Each user sees only their rows; the service role sees all; anonymous sees none.
    let (status, _, rows) = send(&by_user, &format!("GET /todos?{COLS}"), &[alice], None).await;
    assert_eq!((status, ids(&rows)), (200, vec![1, 2]), "{}", ctx("alice"));
    let (_, _, rows) = send(&by_user, &format!("GET /todos?{COLS}"), &[bob], None).await;
    assert_eq!(ids(&rows), vec![3], "{}", ctx("bob"));
    let service = [("apikey", service_key.as_str())];
    let (status, _, rows) = send(&by_key, &format!("GET /todos?{COLS}"), &service, None).await;
    assert_eq!(
        (status, ids(&rows)),
        (200, vec![1, 2, 3]),
        "{}",
        ctx("service")
    );
    for headers in [&[][..], &[("apikey", anon_key.as_str())][..]] {
        let (status, _, rows) = send(&by_key, &format!("GET /todos?{COLS}"), headers, None).await;
        assert_eq!((status, rows), (200, json!([])), "{}", ctx("anonymous"));
    }
    // A filter cannot widen the policy.
    let (_, _, rows) = send(
        &by_user,
        &format!("GET /todos?{COLS}&owner_id=eq.bob"),
        &[alice],
        None,
    )
    .await;
    assert_eq!(rows, json!([]), "{}", ctx("alice filtering on bob"));

    // Alice cannot update or delete Bob's row: nothing matches. (PATCH answers without a
    // representation: MariaDB's UPDATE has no RETURNING.)
    let (status, headers, _) = send(
        &by_user,
        "PATCH /todos?id=eq.3",
        &[alice],
        Some(json!({ "title": "taken" })),
    )
    .await;
    assert_eq!(
        (status, &headers["content-range"]),
        (204, &"*/*".parse::<http::HeaderValue>().unwrap()),
        "{}",
        ctx("alice patching bob")
    );
    let (status, _, rows) = send(
        &by_user,
        "DELETE /todos?id=eq.3&select=id",
        &[alice, REPR],
        None,
    )
    .await;
    assert_eq!(
        (status, rows),
        (200, json!([])),
        "{}",
        ctx("alice deleting bob")
    );
    let (_, _, rows) = send(&by_user, "GET /todos?select=id,title&id=eq.3", &[bob], None).await;
    assert_eq!(
        rows,
        json!([{ "id": 3, "title": "bob one" }]),
        "{}",
        ctx("bob's row")
    );
    // Her own row she can update.
    let (status, headers, _) = send(
        &by_user,
        "PATCH /todos?id=eq.1",
        &[alice],
        Some(json!({ "title": "alice 1" })),
    )
    .await;
    assert_eq!(
        (status, &headers["content-range"]),
        (204, &"0-0/*".parse::<http::HeaderValue>().unwrap()),
        "{}",
        ctx("alice patching her row")
    );
    let (_, _, rows) = send(&by_user, "GET /todos?select=title&id=eq.1", &[alice], None).await;
    assert_eq!(
        rows,
        json!([{ "title": "alice 1" }]),
        "{}",
        ctx("alice's row")
    );
    // Nor may she hand her row to Bob.
    let (status, _, err) = send(
        &by_user,
        "PATCH /todos?id=eq.1",
        &[alice],
        Some(json!({ "owner_id": "bob" })),
    )
    .await;
    assert_eq!(
        (status, &err["code"]),
        (403, &json!("42501")),
        "{}: {err}",
        ctx("give away")
    );

    // Inserting a row for someone else violates the policy: 403 for a user, 401 for the
    // anonymous role (PostgREST's rule for 42501).
    let (status, _, err) = send(
        &by_user,
        "POST /todos",
        &[alice],
        Some(json!({ "id": 10, "title": "forged", "owner_id": "bob" })),
    )
    .await;
    assert_eq!(
        (status, &err["code"]),
        (403, &json!("42501")),
        "{}: {err}",
        ctx("forged insert")
    );
    assert!(
        err["message"]
            .as_str()
            .unwrap_or_default()
            .contains("row-level security"),
        "{}: {err}",
        ctx("forged insert message")
    );
    let (status, headers, err) = send(
        &by_user,
        "POST /todos",
        &[],
        Some(json!({ "id": 11, "title": "anon", "owner_id": "alice" })),
    )
    .await;
    assert_eq!(
        (status, &err["code"]),
        (401, &json!("42501")),
        "{}: {err}",
        ctx("anon insert")
    );
    assert_eq!(
        headers["www-authenticate"],
        "Bearer",
        "{}",
        ctx("anon insert")
    );
    let (status, _, rows) = send(
        &by_user,
        "POST /todos?select=id,owner_id",
        &[alice, REPR],
        Some(json!({ "id": 12, "title": "mine", "owner_id": "alice" })),
    )
    .await;
    assert_eq!(
        (status, rows),
        (201, json!([{ "id": 12, "owner_id": "alice" }])),
        "{}",
        ctx("alice inserting her row")
    );

    // Prefer: tx=rollback, where the server allows it: the representation comes back, the
    // row does not stay.
    let (status, headers, rows) = send(
        &by_user,
        "POST /todos?select=id",
        &[alice, ("prefer", "return=representation, tx=rollback")],
        Some(json!({ "id": 20, "title": "draft", "owner_id": "alice" })),
    )
    .await;
    assert_eq!(
        (status, rows),
        (201, json!([{ "id": 20 }])),
        "{}",
        ctx("rolled back")
    );
    assert_eq!(
        headers["preference-applied"],
        "return=representation, tx=rollback",
        "{}",
        ctx("rolled back")
    );
    let (_, _, rows) = send(&by_user, "GET /todos?select=id&id=eq.20", &[alice], None).await;
    assert_eq!(rows, json!([]), "{}", ctx("nothing left after rollback"));
    // Where the server does not allow it, the preference is ignored.
    let (status, headers, _) = send(
        &no_override,
        "POST /todos",
        &[alice, ("prefer", "return=minimal, tx=rollback")],
        Some(json!({ "id": 21, "title": "kept", "owner_id": "alice" })),
    )
    .await;
    assert_eq!(status, 201, "{}", ctx("ignored tx=rollback"));
    assert_eq!(
        headers["preference-applied"],
        "return=minimal",
        "{}",
        ctx("ignored")
    );
    let (_, _, rows) = send(&by_user, "GET /todos?select=id&id=eq.21", &[alice], None).await;
    assert_eq!(rows, json!([{ "id": 21 }]), "{}", ctx("kept"));

    for b in [by_key, by_user, no_override] {
        b.shutdown(StopMode::Fast).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rls_on_postgres_with_database_policies() {
    let Some(db) = postgres_or_skip("rls_on_postgres_with_database_policies").await else {
        return;
    };
    same_everywhere(&db.url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rls_on_mariadb_with_code_policies() {
    let Some(db) = mysql_or_skip("rls_on_mariadb_with_code_policies").await else {
        return;
    };
    same_everywhere(&db.url).await;
}

fn sqlite_url() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("maggate-rls-{}-{n}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    format!("sqlite://{}", path.display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rls_on_sqlite_with_code_policies() {
    same_everywhere(&sqlite_url()).await;
}

/// Column lists of a code-declared policy: `*` is what the caller may read; a forbidden
/// column anywhere in the request is 403 naming it. Embedded resources follow their own
/// table's policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_policies_guard_columns_and_embedded_rows() {
    let roles = Roles::new();
    let storage = SqlStorage::connect(&sqlite_url(), StorageOptions::default()).unwrap();
    setup(&storage, &roles).await;
    for sql in [
        "CREATE TABLE comments (id INTEGER PRIMARY KEY, todo_id INTEGER NOT NULL \
         REFERENCES todos(id), body TEXT)",
        "INSERT INTO comments (id, todo_id, body) VALUES (1, 1, 'on alice'), (2, 3, 'on bob')",
    ] {
        storage.execute(sql, &[]).await.unwrap();
    }
    let auth = jwt_psu(&roles.anon);
    let alice_jwt = bearer(&roles.user, "alice");
    let alice = ("authorization", alice_jwt.as_str());
    let board = boot(
        storage,
        auth,
        gate_config(Dialect::Sqlite, &roles, TxEnd::Commit),
    )
    .await;
    let (status, _, rows) = send(&board, "GET /todos?order=id", &[alice], None).await;
    assert_eq!(status, 200);
    assert_eq!(
        rows,
        json!([
            { "id": 1, "title": "alice one", "owner_id": "alice" },
            { "id": 2, "title": "alice two", "owner_id": "alice" },
        ])
    );
    for line in [
        "GET /todos?select=id,secret",
        "GET /todos?secret=eq.s1",
        "GET /todos?or=(id.eq.1,secret.eq.s3)",
        "GET /todos?order=secret",
    ] {
        let (status, _, err) = send(&board, line, &[alice], None).await;
        assert_eq!(
            (status, &err["code"]),
            (403, &json!("42501")),
            "{line}: {err}"
        );
        assert!(
            err["message"]
                .as_str()
                .unwrap_or_default()
                .contains("secret"),
            "{line}: {err}"
        );
    }
    // `comments` has no policy; the `todos` embedded in it keep theirs.
    let (status, _, rows) = send(
        &board,
        "GET /comments?select=id,todos(id)&order=id",
        &[alice],
        None,
    )
    .await;
    assert_eq!(status, 200, "{rows}");
    assert_eq!(
        rows,
        json!([{ "id": 1, "todos": { "id": 1 } }, { "id": 2, "todos": null }])
    );
    let (status, _, rows) = send(
        &board,
        "GET /comments?select=id,todos!inner(id)",
        &[alice],
        None,
    )
    .await;
    assert_eq!(
        (status, rows),
        (200, json!([{ "id": 1, "todos": { "id": 1 } }]))
    );
    let (status, _, err) = send(
        &board,
        "GET /comments?select=id,todos(secret)",
        &[alice],
        None,
    )
    .await;
    assert_eq!((status, &err["code"]), (403, &json!("42501")), "{err}");
    let (status, _, err) = send(
        &board,
        "PATCH /todos?id=eq.1",
        &[alice],
        Some(json!({ "secret": "x" })),
    )
    .await;
    assert_eq!((status, &err["code"]), (403, &json!("42501")), "{err}");
    // Merging duplicates could overwrite someone else's row: refused under a row filter.
    let (status, _, err) = send(
        &board,
        "POST /todos",
        &[alice, ("prefer", "resolution=merge-duplicates")],
        Some(json!({ "id": 3, "title": "mine now", "owner_id": "alice" })),
    )
    .await;
    assert_eq!((status, &err["code"]), (403, &json!("42501")), "{err}");
    board.shutdown(StopMode::Fast).await.unwrap();
}

/// What only PostgreSQL does: GET runs read-only, the request GUCs and the role are visible
/// to SQL, the pre-request function runs first, and an unknown role is 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sessions_are_read_only_for_get_and_carry_the_request() {
    let Some(db) = postgres_or_skip("postgres_sessions_are_read_only_for_get").await else {
        return;
    };
    let roles = Roles::new();
    let storage = SqlStorage::connect(&db.url, StorageOptions::default()).unwrap();
    let _cleanup = drop_roles(&db.url, &roles);
    setup(&storage, &roles).await;
    let config = GateConfig {
        pre_request: Some("check_request".into()),
        ..gate_config(Dialect::Postgres, &roles, TxEnd::Commit)
    };
    let auth = jwt_psu(&roles.anon);
    let alice_jwt = bearer(&roles.user, "alice");
    let alice = ("authorization", alice_jwt.as_str());
    let board = boot(storage.clone(), auth, config).await;

    let (status, _, who) = send(
        &board,
        "GET /rpc/whoami",
        &[alice, ("x-agent", "t/1")],
        None,
    )
    .await;
    assert_eq!(status, 200, "{who}");
    assert_eq!(
        who,
        json!({ "user": roles.user, "sub": "alice", "method": "GET",
                "path": "/rest/v1/rpc/whoami", "agent": "t/1" })
    );

    // A STABLE function that writes through a VOLATILE one: refused under GET by the
    // read-only transaction, allowed under POST.
    let (status, _, err) = send(&board, "GET /rpc/touch", &[alice], None).await;
    assert_eq!((status, &err["code"]), (405, &json!("25006")), "{err}");
    let count = || async {
        storage
            .query("SELECT count(*) AS n FROM touches", &[])
            .await
            .unwrap()[0]
            .get_int("n")
            .unwrap()
    };
    assert_eq!(count().await, 0);
    let (status, _, body) = send(&board, "POST /rpc/touch", &[alice], Some(json!({}))).await;
    assert_eq!((status, body), (200, json!(1)));
    assert_eq!(count().await, 1);

    // The pre-request function sees the request and can refuse it.
    let (status, _, err) = send(
        &board,
        "GET /todos?select=id",
        &[alice, ("x-blocked", "1")],
        None,
    )
    .await;
    assert_eq!((status, &err["code"]), (403, &json!("42501")), "{err}");
    let (status, _, err) = send(&board, "GET /todos?select=id", &[("x-blocked", "1")], None).await;
    assert_eq!((status, &err["code"]), (401, &json!("42501")), "{err}");

    // A role that does not exist: 401, as PostgREST answers.
    let ghost_jwt = bearer("mg_rls_no_such_role", "ghost");
    let ghost = ("authorization", ghost_jwt.as_str());
    let (status, _, err) = send(&board, "GET /todos?select=id", &[ghost], None).await;
    assert_eq!((status, &err["code"]), (401, &json!("22023")), "{err}");
    board.shutdown(StopMode::Fast).await.unwrap();

    // A pre-request function that does not exist stops the gate at boot.
    let bad = GateConfig {
        pre_request: Some("no_such_function".into()),
        ..gate_config(Dialect::Postgres, &roles, TxEnd::Commit)
    };
    let fresh = SqlStorage::connect(&db.url, StorageOptions::default()).unwrap();
    let board = Motherboard::builder()
        .with(HyperCpu::new("127.0.0.1:0".parse().unwrap()))
        .with(fresh)
        .required_extension(MagGate::new(bad))
        .build()
        .unwrap();
    let booted = board.boot().await;
    let error = booted.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(error.contains("no_such_function"), "{error}");
    let _ = board.shutdown(StopMode::Fast).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_reach_postgres_once_something_reads_them() {
    let Some(db) = postgres_or_skip("claims_reach_postgres_once_something_reads_them").await else {
        return;
    };
    let storage = SqlStorage::connect(&db.url, StorageOptions::default()).unwrap();
    storage
        .execute("CREATE TABLE plain (id integer PRIMARY KEY)", &[])
        .await
        .unwrap();
    let keys = KeyStore::new(Arc::new(storage.clone()));
    keys.install().await.unwrap();
    let key = keys.create("app", "anon", None).await.unwrap();
    let gate = MagGate::new(GateConfig {
        schema_poll: None,
        ..GateConfig::default()
    });
    let handle = gate.handle();
    let board = Motherboard::builder()
        .with(HyperCpu::new("127.0.0.1:0".parse().unwrap()))
        .with((storage.clone(), ApiKeyAuth::new(AuthOptions::default())))
        .extension(gate)
        .build()
        .unwrap();
    board.boot().await.unwrap();
    let apikey = ("apikey", key.full.as_str());

    // Plain tables, no function, no RLS: nothing could read the claims, so requests keep
    // the one-statement path.
    assert_eq!(handle.claims_reach_database(), Some(false));
    let (status, _, body) = send(&board, "GET /plain", &[apikey], None).await;
    assert_eq!((status, body), (200, json!([])));

    // A view that reads them: after the reload, every request carries them.
    storage
        .execute(
            "CREATE VIEW me AS SELECT current_setting('request.jwt.claims', true)::json AS claims",
            &[],
        )
        .await
        .unwrap();
    handle.reload().await.unwrap();
    assert_eq!(handle.claims_reach_database(), Some(true));
    let (status, _, body) = send(&board, "GET /me", &[apikey], None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body[0]["claims"]["key_id"], json!(key.key.id), "{body}");
    board.shutdown(StopMode::Fast).await.unwrap();
}
