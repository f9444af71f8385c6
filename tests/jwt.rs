//! JWTs end to end: a real board (hyper CPU, SQLite Storage, the API-key PSU with JWT
//! verification, MagGate) answering requests with good and bad tokens. Each bad token gets 401
//! with PostgREST's code and its own reason, and a bus event; `alg=none` and RS/HS confusion
//! are refused. On PostgreSQL, a function reads `request.jwt.claims` to show the query ran
//! with the token's identity. Keys from a JWKS URL are fetched from a real HTTP server in the
//! test: rotation, forged key ids and the identity provider going away.

// Test code: a failed setup step should abort the test loudly, helpers included.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use maggate::{GateConfig, MagGate};
use magmobo::auth::{ApiKeyAuth, AuthOptions, JwtConfig, KeyStore};
use magmobo::axum::body::{Body, to_bytes};
use magmobo::cpu::HyperCpu;
use magmobo::prelude::*;
use magmobo::storage::{SqlStorage, StorageOptions};
use magmobo_integration_tests::services::postgres_or_skip;
use serde_json::{Value, json};

const SECRET: &str = "integration-test-secret-long-enough-for-hs256";
const RS_PRIVATE: &str = include_str!("../drivers/auth/testdata/rs256_private.pem");
const RS_PUBLIC: &str = include_str!("../drivers/auth/testdata/rs256_public.pem");

static DB_COUNTER: AtomicUsize = AtomicUsize::new(0);

fn sqlite_url() -> String {
    let n = DB_COUNTER.fetch_add(1, Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("jwt-{}-{n}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    format!("sqlite://{}", path.display())
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A booted board over `url` with a `notes` table (and `setup` run first), the PSU
/// configured with `options`, and the full API key of a fresh `anon` key.
async fn board(url: &str, setup: &[&str], options: AuthOptions) -> (Motherboard, String) {
    let storage = SqlStorage::connect(url, StorageOptions::default()).unwrap();
    for stmt in setup {
        storage.execute(stmt, &[]).await.unwrap();
    }
    // The key is created through a second connection before boot, as `magflock keys create`
    // would do from another process; the PSU loads it in `init`.
    let keys = KeyStore::new(std::sync::Arc::new(
        SqlStorage::connect(url, StorageOptions::default()).unwrap(),
    ));
    keys.install().await.unwrap();
    let key = keys.create("web", "anon", None).await.unwrap().full;
    let board = Motherboard::builder()
        .with(HyperCpu::new("127.0.0.1:0".parse().unwrap()))
        .with(storage)
        .with(ApiKeyAuth::new(options))
        .extension(MagGate::new(GateConfig {
            schema_poll: None,
            ..GateConfig::default()
        }))
        .build()
        .unwrap();
    board.boot().await.unwrap();
    (board, key)
}

/// Sends one request through the board's route table (no socket): status and JSON body.
async fn send(board: &Motherboard, line: &str, headers: &[(&str, String)]) -> (u16, Value) {
    let (method, path) = line.split_once(' ').unwrap();
    let mut req = http::Request::builder()
        .method(method)
        .uri(format!("/rest/v1{path}"));
    for (k, v) in headers {
        req = req.header(*k, v.as_str());
    }
    let response = board
        .cpu()
        .unwrap()
        .routes()
        .dispatch(req.body(Body::empty()).unwrap())
        .await;
    let status = response.status().as_u16();
    let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, body)
}

fn hs(claims: Value) -> String {
    sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(SECRET.as_bytes()),
        claims,
    )
}

fn sign(alg: Algorithm, key: &EncodingKey, claims: Value) -> String {
    jsonwebtoken::encode(&Header::new(alg), &claims, key).unwrap()
}

fn alg_none(claims: &Value) -> String {
    use base64::Engine;
    let b64 = |v: &Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    };
    format!(
        "{}.{}.",
        b64(&json!({ "alg": "none", "typ": "JWT" })),
        b64(claims)
    )
}

const NOTES: &str = "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)";
const SEED: &str = "INSERT INTO notes (id, body) VALUES (1, 'hello')";

#[tokio::test]
async fn supabase_mode_good_and_bad_tokens_over_http() {
    let options = AuthOptions {
        jwt: Some(JwtConfig::hs256(SECRET).with_audience("authenticated")),
        ..AuthOptions::default()
    };
    let (board, key) = board(&sqlite_url(), &[NOTES, SEED], options).await;
    let mut rejected = board.bus().subscribe("auth.token.rejected").unwrap();
    let user = json!({ "sub": "u-1", "role": "authenticated", "aud": "authenticated",
                       "exp": now() + 600 });
    let with = |token: &str| {
        vec![
            ("apikey", key.clone()),
            ("authorization", format!("Bearer {token}")),
        ]
    };

    let good = hs(user.clone());
    let (status, body) = send(&board, "GET /notes?select=id,body", &with(&good)).await;
    assert_eq!((status, body), (200, json!([{ "id": 1, "body": "hello" }])));
    // The project key alone is enough; a JWT alone is not (Supabase requires the key).
    assert_eq!(
        send(&board, "GET /notes", &[("apikey", key.clone())])
            .await
            .0,
        200
    );
    let (status, body) = send(
        &board,
        "GET /notes",
        &[("authorization", format!("Bearer {good}"))],
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (401, Some("no_api_key")));

    let mut other_aud = user.clone();
    other_aud["aud"] = json!("someone-else");
    let forged = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(b"not-the-server-secret-but-long-enough"),
        user.clone(),
    );
    let cases = [
        (
            hs(json!({ "role": "authenticated", "aud": "authenticated", "exp": now() - 3600 })),
            "PGRST303",
            "token_expired",
        ),
        (
            hs(json!({ "role": "authenticated", "aud": "authenticated", "nbf": now() + 3600 })),
            "PGRST303",
            "token_not_yet_valid",
        ),
        (forged, "PGRST301", "token_bad_signature"),
        (hs(other_aud), "PGRST303", "token_wrong_audience"),
        (alg_none(&user), "PGRST301", "token_wrong_algorithm"),
        ("not-a-token".to_owned(), "PGRST301", "token_malformed"),
    ];
    for (token, code, reason) in &cases {
        let (status, body) = send(&board, "GET /notes", &with(token)).await;
        assert_eq!(status, 401, "{reason}: {body}");
        assert_eq!(body["code"], *code, "{reason}: {body}");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains(reason), "{reason}: {message}");
        assert!(
            !message.contains(SECRET) && !message.contains("someone-else"),
            "{message}"
        );
        let event = rejected.recv().await.unwrap();
        assert_eq!(event.payload["reason"], *reason);
        assert!(!event.payload.to_string().contains(token.as_str()));
    }
    board.shutdown(StopMode::Fast).await.unwrap();
}

#[tokio::test]
async fn postgrest_mode_runs_anonymous_and_refuses_rs_hs_confusion() {
    let options = AuthOptions {
        require_key: false,
        jwt: Some(JwtConfig::new().with_rsa_pem(RS_PUBLIC)),
        ..AuthOptions::default()
    };
    let (board, _key) = board(&sqlite_url(), &[NOTES, SEED], options).await;
    assert_eq!(
        send(&board, "GET /notes", &[]).await.0,
        200,
        "no credentials: anon"
    );

    let claims = json!({ "sub": "u-2", "role": "authenticated", "exp": now() + 600 });
    let rs = sign(
        Algorithm::RS256,
        &EncodingKey::from_rsa_pem(RS_PRIVATE.as_bytes()).unwrap(),
        claims.clone(),
    );
    let auth = |t: &str| vec![("authorization", format!("Bearer {t}"))];
    assert_eq!(send(&board, "GET /notes", &auth(&rs)).await.0, 200);

    // The attack: HS256 keyed with the server's public key, hoping the header picks the
    // algorithm. The key type decides: an RSA key accepts RS256 only.
    let confused = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(RS_PUBLIC.as_bytes()),
        claims,
    );
    let (status, body) = send(&board, "GET /notes", &auth(&confused)).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("PGRST301")));
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("token_wrong_algorithm")
    );
    board.shutdown(StopMode::Fast).await.unwrap();
}

#[tokio::test]
async fn on_postgres_the_query_sees_the_tokens_claims() {
    let Some(db) = postgres_or_skip("on_postgres_the_query_sees_the_tokens_claims").await else {
        return;
    };
    let whoami = "CREATE FUNCTION whoami() RETURNS text LANGUAGE sql STABLE AS \
        $$ SELECT current_setting('request.jwt.claims', true)::json ->> 'sub' $$";
    let options = AuthOptions {
        jwt: Some(JwtConfig::hs256(SECRET)),
        ..AuthOptions::default()
    };
    let (board, key) = board(&db.url, &[NOTES, whoami], options).await;
    let token = hs(json!({ "sub": "user-42", "role": "authenticated", "exp": now() + 600 }));
    let headers = [
        ("apikey", key),
        ("authorization", format!("Bearer {token}")),
    ];
    let (status, body) = send(&board, "GET /rpc/whoami", &headers).await;
    assert_eq!((status, body), (200, json!("user-42")));
    board.shutdown(StopMode::Fast).await.unwrap();
}

const ES_PRIVATE: &str = include_str!("../drivers/auth/testdata/es256_private.pem");
const ES_PUBLIC: &str = include_str!("../drivers/auth/testdata/es256_public.pem");

/// An identity provider's JWKS endpoint on 127.0.0.1: serves the current document and counts
/// the fetches.
struct Idp {
    url: String,
    doc: std::sync::Arc<std::sync::Mutex<Value>>,
    hits: std::sync::Arc<AtomicUsize>,
    server: tokio::task::JoinHandle<()>,
}

type IdpState = (
    std::sync::Arc<std::sync::Mutex<Value>>,
    std::sync::Arc<AtomicUsize>,
);

impl Idp {
    async fn start(doc: Value) -> Idp {
        use magmobo::axum::extract::State;
        let doc = std::sync::Arc::new(std::sync::Mutex::new(doc));
        let hits = std::sync::Arc::new(AtomicUsize::new(0));
        let app = magmobo::axum::Router::new()
            .route(
                "/.well-known/jwks.json",
                magmobo::axum::routing::get(|State((doc, hits)): State<IdpState>| async move {
                    hits.fetch_add(1, Ordering::SeqCst);
                    let body = doc.lock().unwrap().to_string();
                    ([(http::header::CONTENT_TYPE, "application/json")], body)
                }),
            )
            .with_state((doc.clone(), hits.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/.well-known/jwks.json",
            listener.local_addr().unwrap()
        );
        let server = tokio::spawn(async move {
            let _ = magmobo::axum::serve(listener, app).await;
        });
        Idp {
            url,
            doc,
            hits,
            server,
        }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

fn jwk(public: &DecodingKeyPem, kid: &str) -> Value {
    let (alg, key) = match public {
        DecodingKeyPem::Rsa(pem) => (
            Algorithm::RS256,
            jsonwebtoken::DecodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
        ),
        DecodingKeyPem::Ec(pem) => (
            Algorithm::ES256,
            jsonwebtoken::DecodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
        ),
    };
    let mut jwk = jsonwebtoken::jwk::Jwk::from_decoding_key(&key, Some(alg)).unwrap();
    jwk.common.key_id = Some(kid.to_owned());
    serde_json::to_value(jwk).unwrap()
}

enum DecodingKeyPem {
    Rsa(&'static str),
    Ec(&'static str),
}

/// A fresh token (distinct claims, so the verified-token cache never answers for it).
fn signed_with_kid(alg: Algorithm, private: &str, kid: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let key = match alg {
        Algorithm::ES256 => EncodingKey::from_ec_pem(private.as_bytes()).unwrap(),
        _ => EncodingKey::from_rsa_pem(private.as_bytes()).unwrap(),
    };
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    let claims = json!({ "sub": "u-jwks", "role": "authenticated", "exp": now() + 600,
                         "n": N.fetch_add(1, Ordering::Relaxed) });
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

#[tokio::test]
async fn jwks_url_rotation_forged_kids_and_the_idp_going_away() {
    let refresh = std::time::Duration::from_millis(1500);
    let idp = Idp::start(json!({ "keys": [jwk(&DecodingKeyPem::Rsa(RS_PUBLIC), "k1")] })).await;
    let options = AuthOptions {
        jwt: Some(
            JwtConfig::new()
                .with_jwks_url(&idp.url)
                .with_jwks_refresh_interval(refresh)
                .with_jwks_timeout(std::time::Duration::from_secs(2)),
        ),
        ..AuthOptions::default()
    };
    let (board, key) = board(&sqlite_url(), &[NOTES, SEED], options).await;
    assert_eq!(idp.hits(), 1, "the JWKS is fetched once at boot");
    let get = |token: String| {
        let headers = vec![
            ("apikey", key.clone()),
            ("authorization", format!("Bearer {token}")),
        ];
        let board = &board;
        async move {
            let (status, body) = send(board, "GET /notes", &headers).await;
            (status, body["message"].as_str().unwrap_or("").to_owned())
        }
    };
    let k1 = || signed_with_kid(Algorithm::RS256, RS_PRIVATE, "k1");
    let k2 = || signed_with_kid(Algorithm::ES256, ES_PRIVATE, "k2");
    let forged = |i: usize| signed_with_kid(Algorithm::RS256, RS_PRIVATE, &format!("forged-{i}"));

    assert_eq!(get(k1()).await.0, 200);
    // Before the IdP publishes k2, its tokens are refused (no ES256 key is trusted yet), and
    // within the interval after the boot fetch they do not trigger a fetch.
    let (status, message) = get(k2()).await;
    assert_eq!(status, 401);
    assert!(message.contains("token_wrong_algorithm"), "{message}");
    assert_eq!(idp.hits(), 1);

    // Rotation: the IdP adds an ES256 key k2; its first token triggers one refetch.
    idp.doc.lock().unwrap()["keys"]
        .as_array_mut()
        .unwrap()
        .push(jwk(&DecodingKeyPem::Ec(ES_PUBLIC), "k2"));
    tokio::time::sleep(refresh).await;
    assert_eq!(get(k2()).await.0, 200);
    assert_eq!(idp.hits(), 2);
    assert_eq!(get(k1()).await.0, 200);

    // A flood of made-up key ids: refused, and at most one fetch per interval.
    for i in 0..50 {
        let (status, message) = get(forged(i)).await;
        assert_eq!(status, 401);
        assert!(message.contains("token_unknown_key"), "{message}");
    }
    assert_eq!(idp.hits(), 2, "no fetch within the interval");
    tokio::time::sleep(refresh).await;
    for i in 50..100 {
        assert_eq!(get(forged(i)).await.0, 401);
    }
    assert_eq!(
        idp.hits(),
        3,
        "one fetch for the whole flood after the interval"
    );

    // The IdP goes away: a refetch fails (quickly: connection refused), is logged, and the
    // last good keys keep working.
    let server = idp.server;
    server.abort();
    let _ = server.await;
    tokio::time::sleep(refresh).await;
    let started = std::time::Instant::now();
    let (status, message) = get(forged(100)).await;
    assert_eq!(status, 401);
    assert!(message.contains("token_unknown_key"), "{message}");
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    assert_eq!(get(k1()).await.0, 200);
    assert_eq!(get(k2()).await.0, 200);
    board.shutdown(StopMode::Fast).await.unwrap();
}

#[tokio::test]
async fn a_jwks_url_that_cannot_be_fetched_fails_the_boot_with_the_reason() {
    // A port nothing listens on (bound, then closed).
    let url = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/jwks.json", listener.local_addr().unwrap())
    };
    let options = AuthOptions {
        jwt: Some(JwtConfig::new().with_jwks_url(&url)),
        ..AuthOptions::default()
    };
    let board = Motherboard::builder()
        .with(SqlStorage::connect(&sqlite_url(), StorageOptions::default()).unwrap())
        .with(ApiKeyAuth::new(options))
        .build()
        .unwrap();
    let Err(Error::Boot(report)) = board.boot().await else {
        panic!("boot should fail")
    };
    let message = &report.failure().unwrap().message;
    assert!(message.contains("could not fetch the JWKS"), "{message}");
    assert!(message.contains(&url), "{message}");
}
