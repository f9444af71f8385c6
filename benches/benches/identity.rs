//! Per-request identity resolution through the PSU's `authenticate`, in Supabase mode (the
//! project API key in `apikey` on every request): the key alone, and the key plus an HS256,
//! RS256 or ES256 JWT. `cached` sends the same token again and again, as a signed-in client
//! does; `uncached` turns the verified-token cache off, so every request checks the signature
//! (the cost of a token's first request). Signatures are checked by jsonwebtoken's aws-lc-rs
//! backend (2048-bit RSA, P-256).

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use magmobo::auth::{ApiKeyAuth, AuthOptions, JwtConfig, KeyStore};
use magmobo::prelude::*;
use magmobo::roles::auth::Auth;
use magmobo::storage::{SqlStorage, StorageOptions};

const SECRET: &str = "bench-secret-that-is-long-enough-for-hs256";
const RS_PRIVATE: &str = include_str!("../../drivers/auth/testdata/rs256_private.pem");
const RS_PUBLIC: &str = include_str!("../../drivers/auth/testdata/rs256_public.pem");
const ES_PRIVATE: &str = include_str!("../../drivers/auth/testdata/es256_private.pem");
const ES_PUBLIC: &str = include_str!("../../drivers/auth/testdata/es256_public.pem");

/// A booted board (SQLite Storage, the PSU) and the full key of an `anon` API key.
async fn board(name: &str, jwt: JwtConfig) -> (Motherboard, Arc<dyn Auth>, String) {
    let path =
        std::env::temp_dir().join(format!("identity-bench-{name}-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let url = format!("sqlite://{}", path.display());
    let keys = KeyStore::new(Arc::new(
        SqlStorage::connect(&url, StorageOptions::default()).expect("storage"),
    ));
    keys.install().await.expect("install");
    let key = keys.create("bench", "anon", None).await.expect("key").full;
    let board = Motherboard::builder()
        .with(SqlStorage::connect(&url, StorageOptions::default()).expect("storage"))
        .with(ApiKeyAuth::new(AuthOptions {
            jwt: Some(jwt),
            ..AuthOptions::default()
        }))
        .build()
        .expect("board");
    board.boot().await.expect("boot");
    let auth = board.auth().expect("psu");
    (board, auth, key)
}

fn token(alg: Algorithm, key: &EncodingKey) -> String {
    let claims = serde_json::json!({
        "sub": "8f14e45f-ceea-467f-a0e6-0a3a2b8d7c11", "role": "authenticated",
        "aud": "authenticated", "exp": 4_102_444_800u64, "email": "user@example.com",
        "app_metadata": { "provider": "email" }, "session_id": "0b6f2c1e"
    });
    jsonwebtoken::encode(&Header::new(alg), &claims, key).expect("sign")
}

fn parts(key: &str, bearer: Option<&str>) -> http::request::Parts {
    let mut request = http::Request::builder().header("apikey", key);
    if let Some(token) = bearer {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    request.body(()).expect("request").into_parts().0
}

fn identity(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let config = JwtConfig::hs256(SECRET)
        .with_rsa_pem(RS_PUBLIC)
        .with_ec_pem(ES_PUBLIC)
        .with_audience("authenticated");
    let (_cached_board, cached, key) = runtime.block_on(board("cached", config.clone()));
    let (_uncached_board, uncached, key2) =
        runtime.block_on(board("uncached", config.with_cache_capacity(0)));
    let tokens = [
        (
            "hs256",
            token(
                Algorithm::HS256,
                &EncodingKey::from_secret(SECRET.as_bytes()),
            ),
        ),
        (
            "rs256",
            token(
                Algorithm::RS256,
                &EncodingKey::from_rsa_pem(RS_PRIVATE.as_bytes()).expect("rsa"),
            ),
        ),
        (
            "es256",
            token(
                Algorithm::ES256,
                &EncodingKey::from_ec_pem(ES_PRIVATE.as_bytes()).expect("ec"),
            ),
        ),
    ];

    let request = parts(&key, None);
    c.bench_function("identity/api_key", |b| {
        b.iter(|| runtime.block_on(cached.authenticate(&request)).expect("ok"))
    });
    for (name, token) in &tokens {
        let request = parts(&key, Some(token));
        c.bench_function(&format!("identity/{name}/cached"), |b| {
            b.iter(|| runtime.block_on(cached.authenticate(&request)).expect("ok"))
        });
        let request = parts(&key2, Some(token));
        c.bench_function(&format!("identity/{name}/uncached"), |b| {
            b.iter(|| {
                runtime
                    .block_on(uncached.authenticate(&request))
                    .expect("ok")
            })
        });
    }
}

criterion_group!(benches, identity);
criterion_main!(benches);
