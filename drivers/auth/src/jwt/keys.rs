//! The trusted key set: each key with the one algorithm it accepts and its prebuilt claim
//! rules, loaded from secrets, PEM files and JWKS documents (inline, on disk or at a URL).

use std::collections::HashSet;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use super::fetch::JwksClient;
use super::{JwtConfig, JwtError, KeySource, MIN_SECRET_LEN};

/// Makes aws-lc-rs jsonwebtoken's process-wide provider (RS256/ES256 about ten times faster
/// than the pure-Rust backend). With one backend compiled in the crate would pick it itself;
/// installing it explicitly keeps working if another crate in the graph ever turns on the
/// second backend (then jsonwebtoken could not choose and would panic).
pub(crate) fn ensure_provider() {
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
}

/// One trusted key.
#[derive(Clone)]
pub(crate) struct VerifyKey {
    /// The `kid` it answers to; configured keys have none and match tokens without a known kid.
    pub(crate) kid: Option<String>,
    /// The only algorithm accepted with this key.
    pub(crate) alg: Algorithm,
    pub(crate) key: DecodingKey,
    /// Claim rules for this key's algorithm, built once.
    pub(crate) validation: Validation,
}

/// Every trusted key, swapped as a whole on reload.
#[derive(Default)]
pub(crate) struct KeySet {
    pub(crate) keys: Vec<VerifyKey>,
}

impl KeySet {
    /// Whether any key accepts `alg`.
    pub(crate) fn accepts(&self, alg: Algorithm) -> bool {
        self.keys.iter().any(|k| k.alg == alg)
    }

    /// Whether some key has exactly this `kid`.
    pub(crate) fn knows_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }
}

impl KeySource {
    /// Whether this source can change at run time (and is read again on an unknown `kid`).
    pub(crate) fn refreshable(&self) -> bool {
        matches!(self, KeySource::JwksFile(_) | KeySource::JwksUrl(_))
    }
}

/// Reads one source's keys.
pub(crate) async fn load_source(
    config: &JwtConfig,
    source: &KeySource,
    client: &JwksClient,
) -> Result<Vec<VerifyKey>, JwtError> {
    ensure_provider();
    match source {
        KeySource::Secret(secret) => {
            if secret.len() < MIN_SECRET_LEN {
                return Err(JwtError::SecretTooShort);
            }
            let key = DecodingKey::from_secret(secret.as_bytes());
            Ok(vec![verify_key(config, None, Algorithm::HS256, key)])
        }
        KeySource::RsaPem(pem) => {
            let key = DecodingKey::from_rsa_pem(pem).map_err(|source| JwtError::Pem {
                kind: "RSA",
                source,
            })?;
            Ok(vec![verify_key(config, None, Algorithm::RS256, key)])
        }
        KeySource::EcPem(pem) => {
            let key = DecodingKey::from_ec_pem(pem)
                .map_err(|source| JwtError::Pem { kind: "EC", source })?;
            Ok(vec![verify_key(config, None, Algorithm::ES256, key)])
        }
        KeySource::JwksFile(path) => {
            let text = tokio::fs::read_to_string(path)
                .await
                .map_err(|source| JwtError::Io {
                    path: path.clone(),
                    source,
                })?;
            parse_jwks(config, &text, &path.display().to_string())
        }
        KeySource::JwksUrl(url) => {
            let text = client.fetch(url, config.jwks_timeout).await?;
            parse_jwks(config, &text, url)
        }
        KeySource::JwksJson(text) => parse_jwks(config, text, "inline"),
    }
}

fn verify_key(
    config: &JwtConfig,
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
) -> VerifyKey {
    VerifyKey {
        kid,
        alg,
        key,
        validation: validation(config, alg),
    }
}

/// The claim rules: `exp` and `nbf` checked when present (as PostgREST, neither is required),
/// `aud` and `iss` required only when configured.
fn validation(config: &JwtConfig, alg: Algorithm) -> Validation {
    let mut v = Validation::new(alg);
    v.leeway = config.leeway.as_secs();
    v.validate_exp = true;
    v.validate_nbf = true;
    v.required_spec_claims = HashSet::new();
    if config.audience.is_empty() {
        v.validate_aud = false;
    } else {
        v.set_audience(&config.audience);
        v.required_spec_claims.insert("aud".to_owned());
    }
    if !config.issuer.is_empty() {
        v.set_issuer(&config.issuer);
        v.required_spec_claims.insert("iss".to_owned());
    }
    v
}

/// Parses a JWKS document. Keys this crate cannot use (encryption keys, unknown types or
/// algorithms) are skipped with a log line, so one exotic key does not block the others; a
/// document with no usable key is an error.
pub(crate) fn parse_jwks(
    config: &JwtConfig,
    text: &str,
    origin: &str,
) -> Result<Vec<VerifyKey>, JwtError> {
    let bad = |reason: &str| JwtError::Jwks {
        origin: origin.to_owned(),
        reason: reason.to_owned(),
    };
    let doc: serde_json::Value =
        serde_json::from_str(text).map_err(|e| bad(&format!("not JSON ({e})")))?;
    let entries = doc
        .get("keys")
        .and_then(|k| k.as_array())
        .ok_or_else(|| bad("no `keys` array"))?;
    let mut keys = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        match jwk_key(config, entry) {
            Ok(key) => keys.push(key),
            Err(why) => tracing::warn!(origin, index, why, "JWKS key skipped"),
        }
    }
    if keys.is_empty() {
        return Err(bad("it holds no usable signing key"));
    }
    Ok(keys)
}

fn jwk_key(config: &JwtConfig, entry: &serde_json::Value) -> Result<VerifyKey, &'static str> {
    let jwk: Jwk = serde_json::from_value(entry.clone()).map_err(|_| "unsupported key")?;
    if jwk.common.public_key_use == Some(PublicKeyUse::Encryption) {
        return Err("encryption key");
    }
    let alg = match jwk.common.key_algorithm {
        Some(alg) => alg
            .to_string()
            .parse::<Algorithm>()
            .map_err(|_| "unsupported algorithm")?,
        None => match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Algorithm::RS256,
            AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
                EllipticCurve::P256 => Algorithm::ES256,
                EllipticCurve::P384 => Algorithm::ES384,
                _ => return Err("unsupported curve"),
            },
            AlgorithmParameters::OctetKey(_) => Algorithm::HS256,
            AlgorithmParameters::OctetKeyPair(_) => Algorithm::EdDSA,
            _ => return Err("unsupported key type"),
        },
    };
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| "invalid key material")?;
    if key.family() != alg.family() {
        return Err("`alg` does not match the key type");
    }
    Ok(verify_key(config, jwk.common.key_id.clone(), alg, key))
}
