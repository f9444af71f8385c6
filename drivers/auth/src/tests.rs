//! Unit tests of identity resolution: every token rejection, algorithm confusion, JWKS key
//! selection and rotation, and how API keys and JWTs compose.

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use super::*;

const SECRET: &str = "a-test-secret-that-is-long-enough-for-hs256";
const RS_PRIVATE: &str = include_str!("../testdata/rs256_private.pem");
const RS_PUBLIC: &str = include_str!("../testdata/rs256_public.pem");
const RS_OTHER_PRIVATE: &str = include_str!("../testdata/rs256_other_private.pem");
const ES_PRIVATE: &str = include_str!("../testdata/es256_private.pem");
const ES_PUBLIC: &str = include_str!("../testdata/es256_public.pem");
const KEY_ID: &str = "3f9c2a1b7d4e";

fn key_secret() -> String {
    "s".repeat(43)
}

fn full_key() -> String {
    format!("mf_{KEY_ID}_{}", key_secret())
}

fn unix_now() -> i64 {
    now()
}

fn hs(claims: Value) -> String {
    sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(SECRET.as_bytes()),
        None,
        claims,
    )
}

fn rs(claims: Value) -> String {
    let key = EncodingKey::from_rsa_pem(RS_PRIVATE.as_bytes()).unwrap();
    sign(Algorithm::RS256, &key, None, claims)
}

fn es(claims: Value) -> String {
    let key = EncodingKey::from_ec_pem(ES_PRIVATE.as_bytes()).unwrap();
    sign(Algorithm::ES256, &key, None, claims)
}

fn sign(alg: Algorithm, key: &EncodingKey, kid: Option<&str>, claims: Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, &claims, key).unwrap()
}

/// A token with a hand-written header and signature (for `alg: none` and broken shapes).
fn raw(header: &Value, claims: &Value, signature: &str) -> String {
    use base64::Engine;
    let b64 = |v: &Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    };
    format!("{}.{}.{signature}", b64(header), b64(claims))
}

/// A PSU with one API key (`full_key()`, role `anon`) and the given JWT configuration,
/// loaded and connected to a bus, as `init` would leave it.
async fn psu(require_key: bool, jwt: Option<JwtConfig>) -> (ApiKeyAuth, Bus) {
    let auth = ApiKeyAuth::new(AuthOptions {
        require_key,
        jwt,
        ..AuthOptions::default()
    });
    let key = ApiKey {
        id: KEY_ID.into(),
        name: "test".into(),
        role: "anon".into(),
        secret_hash: hash_secret(&key_secret()),
        created_at: 0,
        expires_at: None,
        revoked_at: None,
    };
    auth.keys
        .store(Arc::new(HashMap::from([(KEY_ID.to_owned(), key)])));
    if let Some(verifier) = auth.jwt() {
        verifier.load().await.unwrap();
    }
    let bus = Bus::new("test", 64);
    auth.bus.set(bus.clone()).unwrap();
    (auth, bus)
}

fn request(headers: &[(&str, &str)]) -> http::request::Parts {
    let mut request = http::Request::builder();
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(()).unwrap().into_parts().0
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Authenticates a request carrying the project key and `token` as the bearer value.
async fn with_token(auth: &ApiKeyAuth, token: &str) -> Result<Identity, AuthRejection> {
    let key = full_key();
    let value = bearer(token);
    auth.authenticate(&request(&[("apikey", &key), ("authorization", &value)]))
        .await
}

/// Checks that `token` is refused for `expected`, with its code, a message that opens with
/// the reason's text, and no secret or expected claim value anywhere in it.
async fn check_refused(auth: &ApiKeyAuth, token: &str, expected: TokenRejection) {
    let rejection = with_token(auth, token).await.unwrap_err();
    assert_eq!(rejection.status, 401, "{token}");
    assert_eq!(rejection.code, expected.code(), "{token}: {rejection:?}");
    assert!(
        rejection.message.contains(expected.reason()),
        "{token}: expected {}, got {}",
        expected.reason(),
        rejection.message
    );
    for leak in [SECRET, "magmobo-api", "https://issuer.example", token] {
        let echoable = leak.len() > 8;
        assert!(
            !echoable || !rejection.message.contains(leak),
            "message leaks {leak}"
        );
    }
}

fn hs_config() -> JwtConfig {
    JwtConfig::hs256(SECRET)
}

#[tokio::test]
async fn a_valid_token_decides_role_and_carries_every_claim() {
    let (auth, _) = psu(true, Some(hs_config())).await;
    let claims = json!({
        "sub": "user-1", "role": "authenticated", "exp": unix_now() + 600,
        "app_metadata": { "team": 7 }
    });
    let identity = with_token(&auth, &hs(claims.clone())).await.unwrap();
    assert_eq!(identity.role, "authenticated");
    assert_eq!(identity.kind, IdentityKind::User);
    assert_eq!(identity.subject.as_deref(), Some("user-1"));
    assert_eq!(identity.claims, claims);

    // A token seen again (served from the verified-token cache) gives the same identity.
    assert_eq!(with_token(&auth, &hs(claims)).await.unwrap(), identity);
}

#[tokio::test]
async fn extreme_exp_values_neither_panic_nor_pass_when_invalid() {
    let (auth, _) = psu(true, Some(hs_config())).await;
    let far = hs(json!({ "role": "authenticated", "exp": u64::MAX }));
    // Twice: the second answer comes from the cache, which re-checks `exp`.
    assert!(with_token(&auth, &far).await.is_ok());
    assert!(with_token(&auth, &far).await.is_ok());
    for exp in [json!(-1), json!(1e300), json!(null), json!("soon")] {
        let token = hs(json!({ "role": "authenticated", "exp": exp }));
        let refused = with_token(&auth, &token).await.unwrap_err();
        assert_eq!(refused.code, "PGRST303", "{exp}: {refused:?}");
    }
}

#[tokio::test]
async fn a_token_without_role_runs_as_the_anonymous_role_as_in_postgrest() {
    let (auth, _) = psu(true, Some(hs_config())).await;
    let identity = with_token(&auth, &hs(json!({ "exp": unix_now() + 60 })))
        .await
        .unwrap();
    assert_eq!(identity.role, "anon");
    assert_eq!(identity.kind, IdentityKind::Anonymous);
    let service = with_token(&auth, &hs(json!({ "role": "service_role" })))
        .await
        .unwrap();
    assert_eq!(service.kind, IdentityKind::Service);
}

#[tokio::test]
async fn every_bad_token_gets_its_own_reason() {
    let config = hs_config()
        .with_audience("magmobo-api")
        .with_issuer("https://issuer.example")
        .with_leeway(Duration::from_secs(30));
    let (auth, _) = psu(true, Some(config)).await;
    let now = unix_now();
    let good = |extra: Value| {
        let mut claims = json!({
            "role": "authenticated", "aud": "magmobo-api", "iss": "https://issuer.example"
        });
        for (k, v) in extra.as_object().unwrap() {
            claims[k] = v.clone();
        }
        claims
    };
    assert!(
        with_token(&auth, &hs(good(json!({ "exp": now - 10 }))))
            .await
            .is_ok(),
        "leeway"
    );
    assert!(
        with_token(&auth, &hs(good(json!({ "nbf": now + 10 }))))
            .await
            .is_ok(),
        "leeway"
    );

    let forged = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(b"another-secret-that-is-long-enough-too"),
        None,
        good(json!({})),
    );
    let mut no_aud = good(json!({}));
    no_aud.as_object_mut().unwrap().remove("aud");
    let header_not_json = format!("{}.e30.sig", "bm90IGpzb24");
    let cases: Vec<(&str, String, TokenRejection)> = vec![
        (
            "expired",
            hs(good(json!({ "exp": now - 3600 }))),
            TokenRejection::Expired,
        ),
        (
            "not yet valid",
            hs(good(json!({ "nbf": now + 3600 }))),
            TokenRejection::NotYetValid,
        ),
        ("forged", forged, TokenRejection::BadSignature),
        (
            "wrong audience",
            hs(good(json!({ "aud": "other" }))),
            TokenRejection::WrongAudience,
        ),
        ("no audience", hs(no_aud), TokenRejection::WrongAudience),
        (
            "wrong issuer",
            hs(good(json!({ "iss": "https://evil.example" }))),
            TokenRejection::WrongIssuer,
        ),
        (
            "exp not a number",
            hs(good(json!({ "exp": "tomorrow" }))),
            TokenRejection::InvalidClaims,
        ),
        (
            "role not a string",
            hs(good(json!({ "role": 1 }))),
            TokenRejection::InvalidClaims,
        ),
        (
            "empty role",
            hs(good(json!({ "role": "" }))),
            TokenRejection::InvalidClaims,
        ),
        ("one part", "abc".into(), TokenRejection::Malformed),
        ("two parts", "abc.def".into(), TokenRejection::Malformed),
        ("four parts", "a.b.c.d".into(), TokenRejection::Malformed),
        ("empty", String::new(), TokenRejection::Malformed),
        (
            "header not base64",
            "!!!.e30.sig".into(),
            TokenRejection::Malformed,
        ),
        (
            "header not json",
            header_not_json,
            TokenRejection::Malformed,
        ),
        (
            "claims not an object",
            raw(&json!({"alg": "HS256"}), &json!([1]), "sig"),
            TokenRejection::BadSignature,
        ),
        (
            "alg none",
            raw(&json!({"alg": "none"}), &good(json!({})), ""),
            TokenRejection::WrongAlgorithm,
        ),
        (
            "alg None",
            raw(&json!({"alg": "None"}), &good(json!({})), ""),
            TokenRejection::WrongAlgorithm,
        ),
        (
            "RS256 for an HS secret",
            rs(good(json!({}))),
            TokenRejection::WrongAlgorithm,
        ),
        (
            "ES256 for an HS secret",
            es(good(json!({}))),
            TokenRejection::WrongAlgorithm,
        ),
    ];
    for (name, token, expected) in cases {
        println!("case: {name}");
        check_refused(&auth, &token, expected).await;
    }
}

#[tokio::test]
async fn rs256_and_es256_verify_with_their_public_keys() {
    let config = JwtConfig::new()
        .with_rsa_pem(RS_PUBLIC)
        .with_ec_pem(ES_PUBLIC);
    let (auth, _) = psu(true, Some(config)).await;
    let claims = json!({ "role": "authenticated", "sub": "u", "exp": unix_now() + 60 });
    assert_eq!(
        with_token(&auth, &rs(claims.clone())).await.unwrap().claims,
        claims
    );
    assert_eq!(
        with_token(&auth, &es(claims.clone())).await.unwrap().claims,
        claims
    );
    let other = EncodingKey::from_rsa_pem(RS_OTHER_PRIVATE.as_bytes()).unwrap();
    let forged = sign(Algorithm::RS256, &other, None, claims.clone());
    check_refused(&auth, &forged, TokenRejection::BadSignature).await;
}

#[tokio::test]
async fn rs_hs_confusion_is_refused() {
    // The classic attack: sign HS256 with the server's *public* RSA key as the HMAC secret,
    // hoping the server lets the header choose the algorithm.
    let (auth, _) = psu(true, Some(JwtConfig::new().with_rsa_pem(RS_PUBLIC))).await;
    let claims = json!({ "role": "service_role" });
    let confused = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(RS_PUBLIC.as_bytes()),
        None,
        claims,
    );
    check_refused(&auth, &confused, TokenRejection::WrongAlgorithm).await;
}

fn jwks_rsa(kid: &str) -> Value {
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(RS_PUBLIC.as_bytes()).unwrap();
    let mut jwk = jsonwebtoken::jwk::Jwk::from_decoding_key(&key, Some(Algorithm::RS256)).unwrap();
    jwk.common.key_id = Some(kid.to_owned());
    json!({ "keys": [jwk] })
}

#[tokio::test]
async fn jwks_file_selects_by_kid_and_is_reread_for_an_unknown_kid() {
    let dir = std::env::temp_dir().join(format!("magmobo-jwks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("jwks.json");
    std::fs::write(&path, jwks_rsa("k1").to_string()).unwrap();
    let config = JwtConfig::new()
        .with_jwks_file(&path)
        .with_jwks_refresh_interval(Duration::ZERO);
    let (auth, _) = psu(true, Some(config)).await;
    let key = EncodingKey::from_rsa_pem(RS_PRIVATE.as_bytes()).unwrap();
    let claims = json!({ "role": "authenticated" });
    let k1 = sign(Algorithm::RS256, &key, Some("k1"), claims.clone());
    let k2 = sign(Algorithm::RS256, &key, Some("k2"), claims.clone());
    assert!(with_token(&auth, &k1).await.is_ok());
    check_refused(&auth, &k2, TokenRejection::UnknownKey).await;

    // Rotation: the issuer publishes k2 and drops k1; the first k2 token triggers a re-read.
    std::fs::write(&path, jwks_rsa("k2").to_string()).unwrap();
    assert!(with_token(&auth, &k2).await.is_ok());
    check_refused(&auth, &k1, TokenRejection::UnknownKey).await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn unknown_kids_do_not_reread_the_jwks_more_than_once_per_interval() {
    let dir = std::env::temp_dir().join(format!("magmobo-jwks-rate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("jwks.json");
    std::fs::write(&path, jwks_rsa("k1").to_string()).unwrap();
    let config = JwtConfig::new()
        .with_jwks_file(&path)
        .with_jwks_refresh_interval(Duration::from_secs(3600));
    let (auth, _) = psu(true, Some(config)).await;
    std::fs::write(&path, jwks_rsa("k2").to_string()).unwrap();
    let key = EncodingKey::from_rsa_pem(RS_PRIVATE.as_bytes()).unwrap();
    let k2 = sign(Algorithm::RS256, &key, Some("k2"), json!({}));
    // The file has k2 now, but it was read less than an interval ago: no re-read.
    check_refused(&auth, &k2, TokenRejection::UnknownKey).await;
    // An explicit reload (what an operator or a key-rotation hook calls) picks it up.
    auth.jwt().unwrap().load().await.unwrap();
    assert!(with_token(&auth, &k2).await.is_ok());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_reload_forgets_tokens_of_removed_keys() {
    let dir = std::env::temp_dir().join(format!("magmobo-jwks-cache-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("jwks.json");
    std::fs::write(&path, jwks_rsa("k1").to_string()).unwrap();
    let (auth, _) = psu(true, Some(JwtConfig::new().with_jwks_file(&path))).await;
    let key = EncodingKey::from_rsa_pem(RS_PRIVATE.as_bytes()).unwrap();
    let k1 = sign(
        Algorithm::RS256,
        &key,
        Some("k1"),
        json!({ "role": "authenticated" }),
    );
    assert!(with_token(&auth, &k1).await.is_ok());
    std::fs::write(&path, jwks_rsa("k2").to_string()).unwrap();
    auth.jwt().unwrap().load().await.unwrap();
    check_refused(&auth, &k1, TokenRejection::UnknownKey).await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn bad_configuration_fails_at_load_with_a_reason() {
    let load = |config: JwtConfig| async move { JwtVerifier::new(config).load().await };
    assert!(matches!(
        load(JwtConfig::new()).await,
        Err(JwtError::NoKeys)
    ));
    assert!(matches!(
        load(JwtConfig::hs256("short")).await,
        Err(JwtError::SecretTooShort)
    ));
    assert!(matches!(
        load(JwtConfig::new().with_rsa_pem("not a pem")).await,
        Err(JwtError::Pem { kind: "RSA", .. })
    ));
    assert!(matches!(
        load(JwtConfig::new().with_jwks_file("/nonexistent/jwks.json")).await,
        Err(JwtError::Io { .. })
    ));
    assert!(matches!(
        load(JwtConfig::new().with_jwks_json(r#"{"keys": [{"kty": "weird"}]}"#)).await,
        Err(JwtError::Jwks { .. })
    ));
    let secret_free = format!("{:?}", hs_config());
    assert!(!secret_free.contains(SECRET), "{secret_free}");
}

#[tokio::test]
async fn issued_tokens_verify_and_signing_needs_a_secret() {
    let config = hs_config();
    let token = config
        .sign(&json!({ "role": "authenticated", "sub": "u" }))
        .unwrap();
    let (auth, _) = psu(true, Some(config)).await;
    assert_eq!(
        with_token(&auth, &token).await.unwrap().role,
        "authenticated"
    );
    assert!(matches!(
        JwtConfig::new().with_rsa_pem(RS_PUBLIC).sign(&json!({})),
        Err(JwtError::NoSigningSecret)
    ));
    assert!(matches!(
        JwtConfig::hs256("short").sign(&json!({})),
        Err(JwtError::SecretTooShort)
    ));
    assert!(matches!(
        hs_config().sign(&json!([1])),
        Err(JwtError::ClaimsNotObject)
    ));
}

#[tokio::test]
async fn with_require_key_a_jwt_needs_the_project_key() {
    let (auth, _) = psu(true, Some(hs_config())).await;
    let token = hs(json!({ "role": "authenticated" }));
    let key = full_key();
    let jwt_only = auth
        .authenticate(&request(&[("authorization", &bearer(&token))]))
        .await
        .unwrap_err();
    assert_eq!(jwt_only.code, "no_api_key");
    let bad_key = format!("mf_{KEY_ID}_{}", "x".repeat(43));
    let wrong_key = auth
        .authenticate(&request(&[
            ("apikey", &bad_key),
            ("authorization", &bearer(&token)),
        ]))
        .await
        .unwrap_err();
    assert_eq!(wrong_key.code, "invalid_api_key");

    // The key alone, in either header or both (as supabase-js sends it): the key's identity.
    for headers in [
        vec![("apikey", key.as_str())],
        vec![("authorization", &*bearer(&key))],
        vec![("apikey", key.as_str()), ("authorization", &*bearer(&key))],
    ] {
        let identity = auth.authenticate(&request(&headers)).await.unwrap();
        assert_eq!(
            (identity.kind, identity.role.as_str()),
            (IdentityKind::ApiKey, "anon")
        );
    }
    let nothing = auth.authenticate(&request(&[])).await.unwrap_err();
    assert_eq!(nothing.code, "no_api_key");
}

#[tokio::test]
async fn without_require_key_no_credentials_is_anonymous_and_a_jwt_decides() {
    let (auth, _) = psu(false, Some(hs_config())).await;
    let anonymous = auth.authenticate(&request(&[])).await.unwrap();
    assert_eq!(anonymous, Identity::anonymous("anon"));
    let token = hs(json!({ "role": "authenticated", "sub": "u" }));
    let identity = auth
        .authenticate(&request(&[("authorization", &bearer(&token))]))
        .await
        .unwrap();
    assert_eq!(identity.role, "authenticated");
    // A bad token is refused, never downgraded to anonymous.
    let expired = hs(json!({ "role": "authenticated", "exp": unix_now() - 3600 }));
    let refused = auth
        .authenticate(&request(&[("authorization", &bearer(&expired))]))
        .await
        .unwrap_err();
    assert_eq!(refused.code, "PGRST303");
    let bad_key = auth
        .authenticate(&request(&[("apikey", "mf_nope")]))
        .await
        .unwrap_err();
    assert_eq!(bad_key.code, "invalid_api_key");
}

#[tokio::test]
async fn without_jwt_configuration_a_bearer_token_is_an_invalid_key_as_before() {
    let (auth, _) = psu(true, None).await;
    let token = hs(json!({ "role": "authenticated" }));
    let refused = with_token(&auth, &token).await.unwrap_err();
    assert_eq!(refused.code, "invalid_api_key");
}

#[tokio::test]
async fn rejections_publish_reason_and_hints_but_never_the_token() {
    let (auth, bus) = psu(true, Some(hs_config())).await;
    let mut tokens = bus.subscribe("auth.token.rejected").unwrap();
    let mut keys = bus.subscribe("auth.key.rejected").unwrap();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("kid-7".into());
    let expired = jsonwebtoken::encode(
        &header,
        &json!({ "exp": unix_now() - 3600 }),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    with_token(&auth, &expired).await.unwrap_err();
    let event = tokens.try_recv().unwrap();
    assert_eq!(
        event.payload,
        json!({ "code": "PGRST303", "reason": "token_expired", "alg": "HS256", "kid": "kid-7" })
    );
    assert!(!event.payload.to_string().contains(&expired));

    auth.authenticate(&request(&[("apikey", "mf_nope")]))
        .await
        .unwrap_err();
    assert_eq!(keys.try_recv().unwrap().payload["code"], "invalid_api_key");
}

#[test]
fn reasons_are_distinct_and_codes_are_postgrest_codes() {
    let reasons: std::collections::HashSet<_> =
        TokenRejection::ALL.iter().map(|r| r.reason()).collect();
    assert_eq!(reasons.len(), TokenRejection::ALL.len());
    for rejection in TokenRejection::ALL {
        assert!(["PGRST301", "PGRST303"].contains(&rejection.code()));
        assert!(
            rejection
                .www_authenticate()
                .starts_with("Bearer error=\"invalid_token\"")
        );
        assert_eq!(rejection.to_auth_rejection().status, 401);
    }
}

proptest::proptest! {
    /// Whatever a client sends as a bearer value, the answer is an identity or a 401, never a
    /// panic: random text, and random text shaped like a token (three base64url parts).
    #[test]
    fn any_bearer_value_gets_an_answer(
        text in "\\PC{0,200}",
        parts in proptest::collection::vec("[A-Za-z0-9_-]{0,80}", 3),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async {
            let (auth, _) = psu(false, Some(hs_config())).await;
            for token in [text.clone(), parts.join(".")] {
                let value = bearer(&token);
                if http::HeaderValue::from_str(&value).is_err() {
                    continue;
                }
                if let Err(rejection) =
                    auth.authenticate(&request(&[("authorization", &value)])).await
                {
                    assert_eq!(rejection.status, 401);
                }
            }
        });
    }
}

#[tokio::test]
async fn a_jwks_url_must_be_http_and_answer_within_the_timeout() {
    let load = |config: JwtConfig| async move { JwtVerifier::new(config).load().await };
    let error = load(JwtConfig::new().with_jwks_url("ftp://idp.example/jwks.json"))
        .await
        .unwrap_err();
    assert!(matches!(error, JwtError::Fetch { .. }), "{error}");
    assert!(error.to_string().contains("only https:// and http://"));

    // An IdP that accepts the connection and never answers: the fetch gives up in time.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let started = std::time::Instant::now();
    let error = load(
        JwtConfig::new()
            .with_jwks_url(&url)
            .with_jwks_timeout(Duration::from_millis(300)),
    )
    .await
    .unwrap_err();
    assert!(matches!(error, JwtError::Fetch { .. }), "{error}");
    assert!(started.elapsed() < Duration::from_secs(3), "{error}");
    silent.abort();
}
