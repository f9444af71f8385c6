//! MagAuth end to end on a real board (hyper CPU, SQL Storage, the API-key PSU verifying
//! HS256 JWTs, MagGate with a row policy on `todos.owner_id = sub`, MagAuth): sign-up,
//! sign-in, wrong passwords (400 and a bus event without the e-mail), rotating refresh
//! tokens with reuse detection, sessions, password change, sign-out, the confirmation and
//! recovery mails (captured by `MemoryMailer`, and sent over SMTP to a real server in the
//! test process), the same core flow on PostgreSQL with a real
//! RLS policy, and the real supabase-js client (tests/js/auth.mjs).

// Tests unwrap freely: a panic with the value is the clearest failure.
#![allow(clippy::unwrap_used)]

use std::process::Command as Process;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine;
use magauth::{AuthConfig, MagAuth, MemoryMailer, SmtpMailer, sha256_hex};
use maggate::policy::{Command, Policies, RowFilter, TablePolicy};
use maggate::{GateConfig, MagGate};
use magmobo::auth::{ApiKeyAuth, AuthOptions, JwtConfig, KeyStore};
use magmobo::axum::body::{Body, to_bytes};
use magmobo::cpu::HyperCpu;
use magmobo::prelude::*;
use magmobo::storage::{SqlStorage, StorageOptions};
use magmobo_integration_tests::node::{js_dir, npm_ready};
use magmobo_integration_tests::services::{DropRoles, mysql_or_skip, postgres_or_skip};
use serde_json::{Value as Json, json};

const SECRET: &str = "magauth-integration-secret-long-enough-for-hs256";
static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn sqlite_url() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("magauth-{}-{n}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    format!("sqlite://{}", path.display())
}

struct Env {
    board: Motherboard,
    /// `http://addr` of the CPU.
    url: String,
    key: String,
    mailer: MemoryMailer,
}

/// Boots the board over `url` after running `setup`; `gate` configures MagGate and
/// `config` MagAuth. Access tokens are signed by the PSU's own `JwtConfig`.
async fn boot(url: &str, setup: &[String], gate: GateConfig, config: AuthConfig) -> Env {
    boot_with_mailer(url, setup, gate, config, None).await
}

/// [`boot`], with mail going to `smtp` instead of the in-memory outbox when given.
async fn boot_with_mailer(
    url: &str,
    setup: &[String],
    gate: GateConfig,
    config: AuthConfig,
    smtp: Option<SmtpMailer>,
) -> Env {
    boot_with(url, setup, gate, config, smtp, None).await
}

/// [`boot_with_mailer`], with `ram` in the RAM slot when given.
async fn boot_with(
    url: &str,
    setup: &[String],
    gate: GateConfig,
    config: AuthConfig,
    smtp: Option<SmtpMailer>,
    ram: Option<magmobo::cache::RedisCache>,
) -> Env {
    let storage = SqlStorage::connect(url, StorageOptions::default()).unwrap();
    for stmt in setup {
        storage.execute(stmt, &[]).await.unwrap();
    }
    let keys = KeyStore::new(std::sync::Arc::new(
        SqlStorage::connect(url, StorageOptions::default()).unwrap(),
    ));
    keys.install().await.unwrap();
    let key = keys.create("web", "anon", None).await.unwrap().full;
    let jwt = JwtConfig::hs256(SECRET).with_audience("authenticated");
    let signer_config = jwt.clone();
    let mailer = MemoryMailer::new();
    let auth = MagAuth::new(config, move |claims: &Json| {
        signer_config.sign(claims).map_err(Into::into)
    });
    let auth = match smtp {
        Some(smtp) => auth.with_mailer(smtp),
        None => auth.with_mailer(mailer.clone()),
    };
    let mut board = Motherboard::builder()
        .with(HyperCpu::new("127.0.0.1:0".parse().unwrap()))
        .with(storage)
        .with(ApiKeyAuth::new(AuthOptions {
            jwt: Some(jwt),
            ..AuthOptions::default()
        }));
    if let Some(ram) = ram {
        board = board.with(ram);
    }
    let board = board
        .extension(MagGate::new(gate))
        .extension(auth)
        .build()
        .unwrap();
    let report = board.boot().await.unwrap();
    let url = report.listening.clone().unwrap();
    Env {
        board,
        url,
        key,
        mailer,
    }
}

fn code_policy() -> Policies {
    Policies::new().table(
        "todos",
        TablePolicy::new().rows(Command::ALL, RowFilter::claim("owner_id", "sub")),
    )
}

fn sqlite_gate() -> GateConfig {
    GateConfig {
        schema_poll: None,
        policies: code_policy(),
        ..GateConfig::default()
    }
}

const SQLITE_TODOS: &str =
    "CREATE TABLE todos (id INTEGER PRIMARY KEY, title TEXT NOT NULL, owner_id TEXT NOT NULL)";
const SEED: &str =
    "INSERT INTO todos (id, title, owner_id) VALUES (100, 'not yours', 'someone-else')";

impl Env {
    /// One request through the route table (no socket): status and JSON body.
    async fn call(&self, line: &str, token: Option<&str>, body: Option<Json>) -> (u16, Json) {
        let (status, _, json) = self.call_full(line, token, body, true).await;
        (status, json)
    }

    async fn call_full(
        &self,
        line: &str,
        token: Option<&str>,
        body: Option<Json>,
        with_key: bool,
    ) -> (u16, http::HeaderMap, Json) {
        let (method, target) = line.split_once(' ').unwrap();
        let mut req = http::Request::builder().method(method).uri(target);
        if with_key {
            req = req.header("apikey", &self.key);
        }
        if let Some(token) = token {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .unwrap();
        let response = self.board.cpu().unwrap().routes().dispatch(req).await;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
        (
            status,
            headers,
            serde_json::from_slice(&bytes).unwrap_or(Json::Null),
        )
    }

    async fn signup(&self, email: &str, password: &str) -> (u16, Json) {
        self.call(
            "POST /auth/v1/signup",
            None,
            Some(json!({ "email": email, "password": password })),
        )
        .await
    }

    async fn sign_in(&self, email: &str, password: &str) -> (u16, Json) {
        self.call(
            "POST /auth/v1/token?grant_type=password",
            None,
            Some(json!({ "email": email, "password": password })),
        )
        .await
    }

    async fn refresh(&self, token: &str) -> (u16, Json) {
        self.call(
            "POST /auth/v1/token?grant_type=refresh_token",
            None,
            Some(json!({ "refresh_token": token })),
        )
        .await
    }
}

fn access(session: &Json) -> &str {
    session["access_token"].as_str().unwrap()
}

fn refresh_token(session: &Json) -> &str {
    session["refresh_token"].as_str().unwrap()
}

fn claims(token: &str) -> Json {
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn ids(rows: &Json) -> Vec<i64> {
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect()
}

/// The core flow, identical on every storage.
async fn core_flow(env: &Env, role: &str) {
    let mut failed = env.board.bus().subscribe("auth.login.failed").unwrap();
    let mut succeeded = env.board.bus().subscribe("auth.login.succeeded").unwrap();
    let mut reused = env.board.bus().subscribe("auth.refresh.reused").unwrap();

    let (status, settings) = env.call("GET /auth/v1/settings", None, None).await;
    assert_eq!(status, 200, "{settings}");
    assert_eq!(settings["mailer_autoconfirm"], true);
    assert_eq!(settings["external"]["email"], true);

    // Without the project's API key nothing is answered.
    let (status, _, _) = env
        .call_full("GET /auth/v1/settings", None, None, false)
        .await;
    assert_eq!(status, 401);

    // Sign-up returns a session whose access token the PSU accepts.
    let (status, alice) = env.signup("Alice@Example.com", "alice-secret-1").await;
    assert_eq!(status, 200, "{alice}");
    assert_eq!(alice["token_type"], "bearer");
    assert_eq!(alice["expires_in"], 3600);
    assert!(alice["expires_at"].as_i64().unwrap() > 0);
    assert_eq!(alice["user"]["email"], "alice@example.com");
    let alice_id = alice["user"]["id"].as_str().unwrap().to_owned();
    let c = claims(access(&alice));
    assert_eq!(c["sub"], alice_id.as_str());
    assert_eq!(c["role"], role);
    assert_eq!(c["aud"], "authenticated");
    assert_eq!(c["aal"], "aal1");
    assert!(c["session_id"].is_string());
    assert!(c["exp"].as_i64().unwrap() > c["iat"].as_i64().unwrap());
    assert_eq!(
        succeeded.recv().await.unwrap().payload["user_id"],
        alice_id.as_str()
    );

    // Duplicates and weak passwords get GoTrue's 422s.
    let (status, body) = env.signup("alice@example.com", "another-pass").await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (422, Some("user_already_exists"))
    );
    let (status, body) = env.signup("weak@example.com", "123").await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (422, Some("weak_password"))
    );
    assert_eq!(body["weak_password"]["reasons"], json!(["length"]));
    assert_eq!(body["code"], 422);
    let (status, body) = env.signup("not-an-email", "long-enough").await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (400, Some("email_address_invalid"))
    );

    // MagGate sees the user: rows are written and read under her `sub`.
    let (status, bob) = env.signup("bob@example.com", "bob-secret-1").await;
    assert_eq!(status, 200);
    let bob_id = bob["user"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        succeeded.recv().await.unwrap().payload["user_id"],
        bob_id.as_str()
    );
    let (status, body) = env
        .call(
            "POST /rest/v1/todos",
            Some(access(&alice)),
            Some(json!({ "id": 1, "title": "alice's", "owner_id": alice_id })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = env
        .call(
            "POST /rest/v1/todos",
            Some(access(&bob)),
            Some(json!({ "id": 2, "title": "bob's", "owner_id": bob_id })),
        )
        .await;
    assert_eq!(status, 201);
    let (status, rows) = env
        .call(
            "GET /rest/v1/todos?select=id&order=id",
            Some(access(&alice)),
            None,
        )
        .await;
    assert_eq!((status, ids(&rows)), (200, vec![1]));

    // Wrong password and unknown user: the same 400, and an event without the e-mail.
    let (status, body) = env.sign_in("alice@example.com", "wrong-password").await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({ "code": 400, "error_code": "invalid_credentials", "msg": "Invalid login credentials" })
    );
    let event = failed.recv().await.unwrap();
    assert_eq!(event.payload["email_hash"], sha256_hex("alice@example.com"));
    assert_eq!(event.payload["ip"], "127.0.0.1");
    let text = event.payload.to_string();
    assert!(
        !text.contains("alice@") && !text.contains("wrong-password"),
        "{text}"
    );
    let (status, body) = env.sign_in("nobody@example.com", "whatever-1").await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (400, Some("invalid_credentials"))
    );
    assert_eq!(
        failed.recv().await.unwrap().payload["email_hash"],
        sha256_hex("nobody@example.com")
    );

    // Sign-in; `GET /user`.
    let (status, s1) = env.sign_in("alice@example.com", "alice-secret-1").await;
    assert_eq!(status, 200, "{s1}");
    assert_eq!(
        succeeded.recv().await.unwrap().payload["method"],
        "password"
    );
    let (status, user) = env.call("GET /auth/v1/user", Some(access(&s1)), None).await;
    assert_eq!(
        (status, user["id"].as_str()),
        (200, Some(alice_id.as_str()))
    );
    assert!(user["last_sign_in_at"].is_string());
    // An API key alone is not a user.
    let (status, body) = env.call("GET /auth/v1/user", None, None).await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (401, Some("no_authorization"))
    );

    // Refresh rotates: a new token each time, the session and user kept.
    let (status, s1b) = env.refresh(refresh_token(&s1)).await;
    assert_eq!(status, 200, "{s1b}");
    assert_ne!(refresh_token(&s1b), refresh_token(&s1));
    assert_eq!(
        claims(access(&s1b))["session_id"],
        claims(access(&s1))["session_id"]
    );
    assert_eq!(
        env.call("GET /auth/v1/user", Some(access(&s1b)), None)
            .await
            .0,
        200
    );
    // Reusing the rotated token ends the whole session.
    let (status, body) = env.refresh(refresh_token(&s1)).await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (400, Some("refresh_token_already_used"))
    );
    let event = reused.recv().await.unwrap();
    assert_eq!(
        event.payload["session_id"],
        claims(access(&s1))["session_id"]
    );
    let (status, body) = env.refresh(refresh_token(&s1b)).await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (400, Some("refresh_token_not_found"))
    );
    let (status, body) = env
        .call("GET /auth/v1/user", Some(access(&s1b)), None)
        .await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (403, Some("session_not_found"))
    );
    let (status, _) = env.refresh("made-up-token").await;
    assert_eq!(status, 400);

    // Sessions: list, revoke another one.
    let (_, s2) = env.sign_in("alice@example.com", "alice-secret-1").await;
    let (_, s3) = env.sign_in("alice@example.com", "alice-secret-1").await;
    let (status, list) = env
        .call("GET /auth/v1/sessions", Some(access(&s2)), None)
        .await;
    assert_eq!(status, 200, "{list}");
    let list = list.as_array().unwrap().clone();
    // The sign-up session is still open, next to the two new ones.
    assert_eq!(list.len(), 3);
    let s2_id = claims(access(&s2))["session_id"].clone();
    let s3_id = claims(access(&s3))["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        list.iter()
            .any(|s| s["id"] == s2_id && s["current"] == true)
    );
    let (status, _) = env
        .call(
            &format!("DELETE /auth/v1/sessions/{s3_id}"),
            Some(access(&s2)),
            None,
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(env.refresh(refresh_token(&s3)).await.0, 400);
    // Bob cannot revoke Alice's session.
    let (status, _) = env
        .call(
            &format!("DELETE /auth/v1/sessions/{}", s2_id.as_str().unwrap()),
            Some(access(&bob)),
            None,
        )
        .await;
    assert_eq!(status, 404);

    // Password change: same password refused; the new one works, the old one not, and
    // other sessions end.
    let (_, s4) = env.sign_in("alice@example.com", "alice-secret-1").await;
    let (status, body) = env
        .call(
            "PUT /auth/v1/user",
            Some(access(&s2)),
            Some(json!({ "password": "alice-secret-1" })),
        )
        .await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (422, Some("same_password"))
    );
    let (status, body) = env
        .call(
            "PUT /auth/v1/user",
            Some(access(&s2)),
            Some(json!({ "password": "alice-secret-2", "data": { "name": "Alice" } })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user_metadata"]["name"], "Alice");
    assert_eq!(
        env.sign_in("alice@example.com", "alice-secret-1").await.0,
        400
    );
    assert_eq!(
        env.sign_in("alice@example.com", "alice-secret-2").await.0,
        200
    );
    assert_eq!(env.refresh(refresh_token(&s4)).await.0, 400);
    assert_eq!(
        env.call("GET /auth/v1/user", Some(access(&s2)), None)
            .await
            .0,
        200
    );

    // Sign-out (local scope) ends this session only.
    let (_, s5) = env.sign_in("alice@example.com", "alice-secret-2").await;
    let (status, _) = env
        .call("POST /auth/v1/logout?scope=local", Some(access(&s2)), None)
        .await;
    assert_eq!(status, 204);
    assert_eq!(
        env.call("GET /auth/v1/user", Some(access(&s2)), None)
            .await
            .0,
        403
    );
    assert_eq!(env.refresh(refresh_token(&s2)).await.0, 400);
    assert_eq!(env.refresh(refresh_token(&s5)).await.0, 200);
    // Global sign-out ends them all.
    let (status, _) = env
        .call("POST /auth/v1/logout", Some(access(&s5)), None)
        .await;
    assert_eq!(status, 204);
    let (status, list) = env
        .call("GET /auth/v1/sessions", Some(access(&bob)), None)
        .await;
    assert_eq!((status, list.as_array().unwrap().len()), (200, 1));

    // Bad input: malformed JSON, unknown grant.
    let (status, _, body) = env
        .call_full("POST /auth/v1/token?grant_type=magic", None, None, true)
        .await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (400, Some("validation_failed"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_on_sqlite() {
    let env = boot(
        &sqlite_url(),
        &[SQLITE_TODOS.into(), SEED.into()],
        sqlite_gate(),
        AuthConfig::default(),
    )
    .await;
    core_flow(&env, "authenticated").await;
    let req = http::Request::builder()
        .method("POST")
        .uri("/auth/v1/signup")
        .header("apikey", &env.key)
        .body(Body::from("{not json"))
        .unwrap();
    let response = env.board.cpu().unwrap().routes().dispatch(req).await;
    assert_eq!(response.status(), 400);
    env.board.shutdown(StopMode::Fast).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_confirmation_and_recovery_with_memory_mailer() {
    let env = boot(
        &sqlite_url(),
        &[SQLITE_TODOS.into()],
        sqlite_gate(),
        AuthConfig {
            confirm_email: true,
            site_url: "https://app.example".into(),
            ..AuthConfig::default()
        },
    )
    .await;
    let (status, settings) = env.call("GET /auth/v1/settings", None, None).await;
    assert_eq!(
        (status, &settings["mailer_autoconfirm"]),
        (200, &json!(false))
    );

    // Sign-up answers the user without a session and mails a code.
    let (status, user) = env.signup("carol@example.com", "carol-secret").await;
    assert_eq!(status, 200, "{user}");
    assert!(user.get("access_token").is_none(), "{user}");
    assert_eq!(user["email"], "carol@example.com");
    assert!(user["email_confirmed_at"].is_null());
    assert!(user["confirmation_sent_at"].is_string());
    let mail = env.mailer.last_to("carol@example.com").unwrap();
    assert_eq!(mail.kind, magauth::MailKind::Confirmation);
    assert!(
        mail.body.contains(&mail.otp)
            && mail.link.starts_with("https://app.example/auth/v1/verify?")
    );

    let (status, body) = env.sign_in("carol@example.com", "carol-secret").await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (400, Some("email_not_confirmed"))
    );
    let wrong = if mail.otp == "000000" {
        "111111"
    } else {
        "000000"
    };
    let (status, body) = env
        .call(
            "POST /auth/v1/verify",
            None,
            Some(json!({ "type": "signup", "email": "carol@example.com", "token": wrong })),
        )
        .await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (403, Some("otp_expired"))
    );
    let (status, session) = env
        .call(
            "POST /auth/v1/verify",
            None,
            Some(json!({ "type": "signup", "email": "carol@example.com", "token": mail.otp })),
        )
        .await;
    assert_eq!(status, 200, "{session}");
    assert!(session["user"]["email_confirmed_at"].is_string());
    assert_eq!(
        env.call("GET /auth/v1/user", Some(access(&session)), None)
            .await
            .0,
        200
    );
    // Codes are single use.
    let (status, _) = env
        .call(
            "POST /auth/v1/verify",
            None,
            Some(json!({ "type": "signup", "token_hash": mail.token_hash })),
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(
        env.sign_in("carol@example.com", "carol-secret").await.0,
        200
    );

    // Recovery: `{}` whether or not the address exists; the mailed hash signs in, and the
    // password can then be changed.
    let (status, body) = env
        .call(
            "POST /auth/v1/recover",
            None,
            Some(json!({ "email": "nobody@example.com" })),
        )
        .await;
    assert_eq!((status, body), (200, json!({})));
    let before = env.mailer.sent().len();
    let (status, _) = env
        .call(
            "POST /auth/v1/recover",
            None,
            Some(json!({ "email": "carol@example.com" })),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(env.mailer.sent().len(), before + 1);
    let mail = env.mailer.last_to("carol@example.com").unwrap();
    assert_eq!(mail.kind, magauth::MailKind::Recovery);
    let (status, session) = env
        .call(
            "POST /auth/v1/verify",
            None,
            Some(json!({ "type": "recovery", "token_hash": mail.token_hash })),
        )
        .await;
    assert_eq!(status, 200, "{session}");
    let (status, _) = env
        .call(
            "PUT /auth/v1/user",
            Some(access(&session)),
            Some(json!({ "password": "carol-new-secret" })),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        env.sign_in("carol@example.com", "carol-new-secret").await.0,
        200
    );

    // The e-mail link (no API key, as a browser opens it) redirects with the session in the
    // fragment, and only to the site.
    env.signup("dave@example.com", "dave-secret").await;
    let mail = env.mailer.last_to("dave@example.com").unwrap();
    let path = mail.link.trim_start_matches("https://app.example");
    let (status, headers, _) = env
        .call_full(
            &format!("GET {path}&redirect_to=https://evil.example/"),
            None,
            None,
            false,
        )
        .await;
    assert_eq!(status, 303);
    let location = headers["location"].to_str().unwrap();
    assert!(
        location.starts_with("https://app.example#access_token="),
        "{location}"
    );
    assert!(location.contains("&refresh_token=") && location.contains("type=signup"));
    assert_eq!(env.sign_in("dave@example.com", "dave-secret").await.0, 200);
    env.board.shutdown(StopMode::Fast).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_on_mariadb_with_code_policies() {
    let Some(db) = mysql_or_skip("accounts_on_mariadb_with_code_policies").await else {
        return;
    };
    let setup = vec![
        "CREATE TABLE todos (id INTEGER PRIMARY KEY, title VARCHAR(100) NOT NULL, \
         owner_id VARCHAR(64) NOT NULL) ENGINE=InnoDB"
            .to_owned(),
        SEED.to_owned(),
    ];
    let env = boot(&db.url, &setup, sqlite_gate(), AuthConfig::default()).await;
    core_flow(&env, "authenticated").await;
    env.board.shutdown(StopMode::Fast).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totp_mfa_raises_the_session_to_aal2() {
    let env = boot(
        &sqlite_url(),
        &[SQLITE_TODOS.into()],
        sqlite_gate(),
        AuthConfig::default(),
    )
    .await;
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    };
    let (_, s) = env.signup("erin@example.com", "erin-secret").await;
    assert_eq!(claims(access(&s))["aal"], "aal1");
    let (status, body) = env
        .call(
            "POST /auth/v1/factors",
            Some(access(&s)),
            Some(json!({ "factor_type": "phone" })),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, factor) = env
        .call(
            "POST /auth/v1/factors",
            Some(access(&s)),
            Some(json!({ "factor_type": "totp", "friendly_name": "phone", "issuer": "Acme" })),
        )
        .await;
    assert_eq!(status, 200, "{factor}");
    let id = factor["id"].as_str().unwrap().to_owned();
    let secret = factor["totp"]["secret"].as_str().unwrap().to_owned();
    assert!(
        factor["totp"]["uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/Acme:erin%40example.com?secret=")
    );
    let (_, user) = env.call("GET /auth/v1/user", Some(access(&s)), None).await;
    assert_eq!(user["factors"][0]["status"], "unverified");

    let (status, challenge) = env
        .call(
            &format!("POST /auth/v1/factors/{id}/challenge"),
            Some(access(&s)),
            None,
        )
        .await;
    assert_eq!(status, 200, "{challenge}");
    let challenge_id = challenge["id"].as_str().unwrap().to_owned();
    let good = magauth::totp::code(&secret, now()).unwrap();
    let wrong = if good == "000000" { "111111" } else { "000000" };
    let verify = |code: String| {
        let challenge_id = challenge_id.clone();
        let id = id.clone();
        let token = access(&s).to_owned();
        let env = &env;
        async move {
            env.call(
                &format!("POST /auth/v1/factors/{id}/verify"),
                Some(&token),
                Some(json!({ "challenge_id": challenge_id, "code": code })),
            )
            .await
        }
    };
    let (status, body) = verify(wrong.to_owned()).await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (422, Some("mfa_verification_failed"))
    );
    let (status, raised) = verify(magauth::totp::code(&secret, now()).unwrap()).await;
    assert_eq!(status, 200, "{raised}");
    let c = claims(access(&raised));
    assert_eq!(c["aal"], "aal2");
    assert_eq!(c["amr"][0]["method"], "totp");
    assert_eq!(c["session_id"], claims(access(&s))["session_id"]);
    assert_eq!(raised["user"]["factors"][0]["status"], "verified");
    // A challenge is answered once; the raised level survives a refresh.
    let (status, _) = verify(magauth::totp::code(&secret, now()).unwrap()).await;
    assert_eq!(status, 404);
    let (status, refreshed) = env.refresh(refresh_token(&raised)).await;
    assert_eq!(status, 200);
    assert_eq!(claims(access(&refreshed))["aal"], "aal2");

    // A new sign-in starts at aal1, which may not remove a verified factor.
    let (_, fresh) = env.sign_in("erin@example.com", "erin-secret").await;
    assert_eq!(claims(access(&fresh))["aal"], "aal1");
    let (status, body) = env
        .call(
            &format!("DELETE /auth/v1/factors/{id}"),
            Some(access(&fresh)),
            None,
        )
        .await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (403, Some("insufficient_aal"))
    );
    let (status, body) = env
        .call(
            &format!("DELETE /auth/v1/factors/{id}"),
            Some(access(&refreshed)),
            None,
        )
        .await;
    assert_eq!((status, body["id"].as_str()), (200, Some(id.as_str())));
    let (_, user) = env
        .call("GET /auth/v1/user", Some(access(&fresh)), None)
        .await;
    assert!(user.get("factors").is_none(), "{user}");
    env.board.shutdown(StopMode::Fast).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_on_postgres_with_rls() {
    let Some(db) = postgres_or_skip("accounts_on_postgres_with_rls").await else {
        return;
    };
    let role = format!(
        "magauth_user_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let _drop = DropRoles::new(&db.url, &[&role]);
    let setup = vec![
        "CREATE TABLE todos (id integer PRIMARY KEY, title text NOT NULL, owner_id text NOT NULL)"
            .to_owned(),
        SEED.to_owned(),
        format!("CREATE ROLE {role} NOLOGIN"),
        format!("GRANT SELECT, INSERT, UPDATE, DELETE ON todos TO {role}"),
        "ALTER TABLE todos ENABLE ROW LEVEL SECURITY".to_owned(),
        format!(
            "CREATE POLICY own_rows ON todos FOR ALL TO {role} \
             USING (owner_id = current_setting('request.jwt.claims', true)::json->>'sub') \
             WITH CHECK (owner_id = current_setting('request.jwt.claims', true)::json->>'sub')"
        ),
    ];
    // No code policy: the database's RLS decides, with requests running as the user role.
    let gate = GateConfig {
        schema_poll: None,
        switch_role: true,
        ..GateConfig::default()
    };
    let env = boot(
        &db.url,
        &setup,
        gate,
        AuthConfig {
            role: role.clone(),
            ..AuthConfig::default()
        },
    )
    .await;
    core_flow(&env, &role).await;
    env.board.shutdown(StopMode::Fast).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supabase_js_auth_against_sqlite() {
    if npm_ready("supabase_js_auth_against_sqlite").is_none() {
        return;
    }
    let env = boot(
        &sqlite_url(),
        &[SQLITE_TODOS.into(), SEED.into()],
        sqlite_gate(),
        AuthConfig::default(),
    )
    .await;
    let url = env.url.clone();
    let key = env.key.clone();
    let output = tokio::task::spawn_blocking(move || {
        Process::new("node")
            .arg("auth.mjs")
            .arg(url)
            .arg(key)
            .current_dir(js_dir())
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "supabase-js checks failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("13 passed, 0 failed"), "{stdout}\n{stderr}");
    env.board.shutdown(StopMode::Fast).await.unwrap();
}

/// Sign-in (and verify, recover, factor verify) is limited per e-mail and per client IP:
/// GoTrue's 429 `over_request_rate_limit` with `Retry-After` once over, even with the right
/// password, while another e-mail still gets through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_attempts_are_rate_limited_per_email_and_per_ip() {
    use magauth::{RateLimit, RateLimits};
    use std::time::Duration;
    let limits = |email: u32, ip: u32| RateLimits {
        enabled: true,
        per_email: RateLimit::new(email, Duration::from_secs(60)),
        per_ip: RateLimit::new(ip, Duration::from_secs(60)),
        ..RateLimits::default()
    };
    let config = |rate_limits| AuthConfig {
        rate_limits,
        ..AuthConfig::default()
    };
    let env = boot(
        &sqlite_url(),
        &[SQLITE_TODOS.into()],
        sqlite_gate(),
        config(limits(3, 1000)),
    )
    .await;
    assert_eq!(env.signup("dave@example.com", "dave-secret").await.0, 200);
    assert_eq!(env.signup("erin@example.com", "erin-secret").await.0, 200);
    for _ in 0..3 {
        let (status, body) = env.sign_in("dave@example.com", "guess").await;
        assert_eq!(
            (status, body["error_code"].as_str()),
            (400, Some("invalid_credentials"))
        );
    }
    // Over the limit: refused before the password is even checked (the right one too, and
    // however the address is spelled).
    let (status, headers, body) = env
        .call_full(
            "POST /auth/v1/token?grant_type=password",
            None,
            Some(json!({ "email": " Dave@Example.com", "password": "dave-secret" })),
            true,
        )
        .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(
        body,
        json!({ "code": 429, "error_code": "over_request_rate_limit",
                "msg": "Request rate limit reached" })
    );
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    // Another e-mail still gets through, and recovery has its own bucket.
    let (status, session) = env.sign_in("erin@example.com", "erin-secret").await;
    assert_eq!(status, 200, "{session}");
    let (status, body) = env
        .call(
            "POST /auth/v1/recover",
            None,
            Some(json!({ "email": "dave@example.com" })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    env.board.shutdown(StopMode::Fast).await.unwrap();

    // Per client IP: one client trying many accounts.
    let env = boot(
        &sqlite_url(),
        &[SQLITE_TODOS.into()],
        sqlite_gate(),
        config(limits(1000, 5)),
    )
    .await;
    for i in 0..5 {
        let (status, _) = env
            .sign_in(&format!("nobody{i}@example.com"), "guess")
            .await;
        assert_eq!(status, 400);
    }
    let (status, body) = env.sign_in("nobody5@example.com", "guess").await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (429, Some("over_request_rate_limit"))
    );
    // Codes sent to /verify from that client are limited separately from sign-in.
    let (status, body) = env
        .call(
            "POST /auth/v1/verify",
            None,
            Some(json!({ "type": "signup", "email": "nobody@example.com", "token": "123456" })),
        )
        .await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (403, Some("otp_expired"))
    );
    env.board.shutdown(StopMode::Fast).await.unwrap();
}

/// One message as the SMTP server received it.
#[derive(Debug, Clone, Default)]
struct Received {
    from: String,
    to: Vec<String>,
    data: Vec<u8>,
}

/// A mailin-embedded handler keeping every message (each connection works on a clone).
#[derive(Clone, Default)]
struct Inbox {
    messages: Arc<Mutex<Vec<Received>>>,
    current: Option<Received>,
}

impl mailin_embedded::Handler for Inbox {
    fn data_start(
        &mut self,
        _domain: &str,
        from: &str,
        _is8bit: bool,
        to: &[String],
    ) -> mailin_embedded::Response {
        self.current = Some(Received {
            from: from.to_owned(),
            to: to.to_vec(),
            data: Vec::new(),
        });
        mailin_embedded::response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if let Some(current) = &mut self.current {
            current.data.extend_from_slice(buf);
        }
        Ok(())
    }

    fn data_end(&mut self) -> mailin_embedded::Response {
        if let Some(done) = self.current.take() {
            self.messages.lock().unwrap().push(done);
        }
        mailin_embedded::response::OK
    }
}

/// Starts an SMTP server on a free local port; its thread lives until the test process ends.
fn smtp_server() -> (String, Arc<Mutex<Vec<Received>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let inbox = Inbox::default();
    let messages = inbox.messages.clone();
    let mut server = mailin_embedded::Server::new(inbox);
    server
        .with_name("smtp.test")
        .with_ssl(mailin_embedded::SslConfig::None)
        .unwrap()
        .with_tcp_listener(listener);
    std::thread::spawn(move || {
        if let Err(e) = server.serve() {
            eprintln!("the test SMTP server stopped: {e}");
        }
    });
    (format!("smtp://{addr}"), messages)
}

/// The six-digit code in a mail's text.
fn code_in(text: &str) -> String {
    let at = text.find("the code ").unwrap() + "the code ".len();
    text[at..at + 6].to_owned()
}

/// Confirmation and recovery mail go out over SMTP (lettre) to a real server: envelope,
/// headers and the code in the body, which then confirms the account and resets the password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirmation_and_recovery_over_smtp() {
    let (url, messages) = smtp_server();
    let smtp = SmtpMailer::new(&url, "Project <noreply@project.test>").unwrap();
    let env = boot_with_mailer(
        &sqlite_url(),
        &[SQLITE_TODOS.into()],
        sqlite_gate(),
        AuthConfig {
            confirm_email: true,
            site_url: "https://api.project.test".into(),
            ..AuthConfig::default()
        },
        Some(smtp),
    )
    .await;
    let (status, user) = env.signup("dave@example.com", "dave-secret").await;
    assert_eq!(status, 200, "{user}");
    let mail = messages.lock().unwrap().last().cloned().unwrap();
    assert_eq!(mail.from, "noreply@project.test");
    assert_eq!(mail.to, ["dave@example.com"]);
    let text = String::from_utf8(mail.data).unwrap();
    assert!(text.contains("Subject: Confirm your signup"), "{text}");
    assert!(
        text.contains("From: Project <noreply@project.test>"),
        "{text}"
    );
    assert!(
        text.contains("https://api.project.test/auth/v1/verify?token="),
        "{text}"
    );
    let (status, session) = env
        .call(
            "POST /auth/v1/verify",
            None,
            Some(json!({ "type": "signup", "email": "dave@example.com", "token": code_in(&text) })),
        )
        .await;
    assert_eq!(
        status, 200,
        "the mailed code confirms the account: {session}"
    );
    assert!(session["access_token"].is_string(), "{session}");

    let (status, _) = env
        .call(
            "POST /auth/v1/recover",
            None,
            Some(json!({ "email": "dave@example.com" })),
        )
        .await;
    assert_eq!(status, 200);
    let mail = messages.lock().unwrap().last().cloned().unwrap();
    let text = String::from_utf8(mail.data).unwrap();
    assert!(text.contains("Subject: Reset your password"), "{text}");
    let (status, session) = env
        .call(
            "POST /auth/v1/verify",
            None,
            Some(
                json!({ "type": "recovery", "email": "dave@example.com", "token": code_in(&text) }),
            ),
        )
        .await;
    assert_eq!(status, 200, "the recovery code signs in: {session}");
    env.board.shutdown(StopMode::Fast).await.unwrap();
}

/// An SMTP server that is not there fails the mail with a clear error, fast, not a hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_smtp_server_is_a_clear_error() {
    // A port nothing listens on: bind, note it, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let smtp =
        SmtpMailer::new(&format!("smtp://127.0.0.1:{port}"), "noreply@project.test").unwrap();
    let env = boot_with_mailer(
        &sqlite_url(),
        &[SQLITE_TODOS.into()],
        sqlite_gate(),
        AuthConfig {
            confirm_email: true,
            ..AuthConfig::default()
        },
        Some(smtp),
    )
    .await;
    let (status, body) = env.signup("erin@example.com", "erin-secret").await;
    assert_eq!(
        (status, body["msg"].as_str()),
        (500, Some("Error sending confirmation email")),
        "GoTrue's answer: {body}"
    );
    // No half-made account: the address signs up again (and fails the same way, not with
    // user_already_exists).
    let (status, body) = env.signup("erin@example.com", "erin-secret").await;
    assert_eq!(status, 500, "{body}");
    env.board.shutdown(StopMode::Fast).await.unwrap();
}

/// With Redis in the RAM slot, sign-in attempt limits hold across instances: guesses spread
/// over two instances run out one account's budget together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempt_limits_hold_across_instances_sharing_redis() {
    use magauth::{RateLimit, RateLimits};
    use std::time::Duration;
    let Some(redis) = magmobo_integration_tests::services::redis_or_skip(
        "attempt_limits_hold_across_instances_sharing_redis",
    )
    .await
    else {
        return;
    };
    let prefix = format!(
        "magmobo:test:auth:{}:{}:",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let config = || AuthConfig {
        rate_limits: RateLimits {
            enabled: true,
            per_email: RateLimit::new(4, Duration::from_secs(600)),
            per_ip: RateLimit::new(1000, Duration::from_secs(1)),
            ..RateLimits::default()
        },
        ..AuthConfig::default()
    };
    let ram = || Some(magmobo::cache::RedisCache::new(redis.clone()).with_prefix(prefix.clone()));
    let url = sqlite_url();
    let a = boot_with(
        &url,
        &[SQLITE_TODOS.into()],
        sqlite_gate(),
        config(),
        None,
        ram(),
    )
    .await;
    let b = boot_with(&url, &[], sqlite_gate(), config(), None, ram()).await;
    assert_eq!(a.signup("fay@example.com", "fay-secret").await.0, 200);
    for _ in 0..4 {
        let (status, body) = a.sign_in("fay@example.com", "guess").await;
        assert_eq!(status, 400, "within the budget on instance A: {body}");
    }
    // A's spending reaches Redis at its next exchange (every 100 ms).
    assert!(
        magmobo_integration_tests::services::redis_bucket_below(
            &redis,
            &format!("{prefix}rl:auth:account:signin:fay@example.com"),
            1.0
        )
        .await,
        "instance A's spending never reached Redis"
    );
    let mut refused = false;
    for _ in 0..4 {
        let (status, _) = b.sign_in("fay@example.com", "guess").await;
        if status == 429 {
            refused = true;
            break;
        }
        assert_eq!(status, 400);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        refused,
        "instance B must refuse once it learns what A spent, before its own budget is gone"
    );
    a.board.shutdown(StopMode::Fast).await.unwrap();
    b.board.shutdown(StopMode::Fast).await.unwrap();
}

/// Mails are limited per address and kind (GoTrue's SMTP_MAX_FREQUENCY) and in all (its
/// RATE_LIMIT_EMAIL_SENT); `/recover` counts an address without an account the same way, so
/// the limit says nothing about which addresses have one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_is_limited_per_address_and_in_all() {
    use magauth::{RateLimit, RateLimits};
    use std::time::Duration;
    let env = boot(
        &sqlite_url(),
        &[SQLITE_TODOS.into()],
        sqlite_gate(),
        AuthConfig {
            rate_limits: RateLimits {
                mail_total: RateLimit::new(4, Duration::from_secs(3600)),
                ..RateLimits::default()
            },
            ..AuthConfig::default()
        },
    )
    .await;
    assert_eq!(env.signup("gus@example.com", "gus-secret").await.0, 200);
    let recover = async |email: &str| {
        env.call_full(
            "POST /auth/v1/recover",
            None,
            Some(json!({ "email": email })),
            true,
        )
        .await
    };
    for email in ["gus@example.com", "nobody@example.com"] {
        let (status, _, body) = recover(email).await;
        assert_eq!(status, 200, "{body}");
        let (status, headers, body) = recover(email).await;
        assert_eq!(
            (status, body["error_code"].as_str()),
            (429, Some("over_email_send_rate_limit")),
            "the second mail to {email} within a minute: {body}"
        );
        assert!(body["msg"].as_str().unwrap().contains("after"), "{body}");
        assert!(headers.contains_key("retry-after"));
    }
    assert_eq!(env.mailer.sent().len(), 1, "one recovery mail to gus only");
    // Two more distinct addresses use up the project's 4 mails; the next one is refused.
    for email in ["a1@example.com", "a2@example.com"] {
        assert_eq!(recover(email).await.0, 200);
    }
    let (status, _, body) = recover("a3@example.com").await;
    assert_eq!(
        (status, body["msg"].as_str()),
        (429, Some("email rate limit exceeded")),
        "{body}"
    );
    env.board.shutdown(StopMode::Fast).await.unwrap();
}
