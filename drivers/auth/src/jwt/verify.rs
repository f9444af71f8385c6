//! Verifying one token: header checks against the key set (never trusting the header's
//! choice of algorithm), signature and claims through jsonwebtoken, the `role` claim's type,
//! the cache of verified tokens, and the rate-limited JWKS re-read on an unknown `kid` (files
//! and URLs; a source that fails then keeps its last good keys, so an IdP outage or a
//! half-written file does not lock everyone out).

use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use base64::Engine;
use jsonwebtoken::Algorithm;

use super::cache::TokenCache;
use super::fetch::JwksClient;
use super::keys::{self, KeySet, VerifyKey};
use super::{JwtConfig, JwtError, TokenRejection};

/// A token whose signature and claims were verified.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedToken {
    /// The full claim set (a JSON object), as PostgREST puts it in `request.jwt.claims`.
    pub claims: serde_json::Value,
    /// The `kid` of the header, if any.
    pub kid: Option<String>,
    exp: Option<u64>,
}

impl VerifiedToken {
    /// The `role` claim, if the token has one (always a non-empty string once verified).
    pub fn role(&self) -> Option<&str> {
        self.claims.get("role").and_then(|r| r.as_str())
    }

    /// The `sub` claim, if it is a string.
    pub fn subject(&self) -> Option<&str> {
        self.claims.get("sub").and_then(|s| s.as_str())
    }
}

/// A refused token, with non-secret hints for the bus event (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// Why.
    pub rejection: TokenRejection,
    /// The header's `alg`, when the header could be read (at most 16 characters).
    pub alg: Option<String>,
    /// The header's `kid`, when present (at most 64 characters).
    pub kid: Option<String>,
}

/// Verifies tokens against the configured keys. Create it at construction, `load` it at boot.
pub struct JwtVerifier {
    config: JwtConfig,
    keys: ArcSwap<KeySet>,
    refreshable: bool,
    reload: tokio::sync::Mutex<ReloadState>,
    client: JwksClient,
    cache: TokenCache,
}

/// What the (serialised) loads share.
#[derive(Default)]
struct ReloadState {
    /// When the sources were last read, for the refresh interval.
    at: Option<Instant>,
    /// Each source's keys as last read successfully, in configuration order (empty until the
    /// first successful `load`).
    per_source: Vec<Vec<VerifyKey>>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("config", &self.config)
            .field("keys", &self.keys.load().keys.len())
            .finish_non_exhaustive()
    }
}

#[derive(serde::Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

impl JwtVerifier {
    /// A verifier for `config`; it trusts no key until [`JwtVerifier::load`].
    pub fn new(config: JwtConfig) -> Self {
        JwtVerifier {
            refreshable: config.sources.iter().any(|s| s.refreshable()),
            cache: TokenCache::new(config.cache_capacity),
            keys: ArcSwap::default(),
            reload: tokio::sync::Mutex::new(ReloadState::default()),
            client: JwksClient::default(),
            config,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &JwtConfig {
        &self.config
    }

    /// Reads the keys (files and URLs included) and returns how many are trusted. Any source
    /// failing fails the whole load and keeps the keys in use. Forgets every cached token, so a
    /// key removed from the set stops working at once.
    pub async fn load(&self) -> Result<usize, JwtError> {
        let mut state = self.reload.lock().await;
        if self.config.sources.is_empty() {
            return Err(JwtError::NoKeys);
        }
        let mut per_source = Vec::with_capacity(self.config.sources.len());
        for source in &self.config.sources {
            per_source.push(keys::load_source(&self.config, source, &self.client).await?);
        }
        let count = self.install(&per_source);
        state.per_source = per_source;
        state.at = Some(Instant::now());
        Ok(count)
    }

    /// Makes `per_source` the trusted key set and forgets every verified token.
    fn install(&self, per_source: &[Vec<VerifyKey>]) -> usize {
        let keys: Vec<VerifyKey> = per_source.iter().flatten().cloned().collect();
        let count = keys.len();
        self.keys.store(Arc::new(KeySet { keys }));
        self.cache.clear();
        count
    }

    /// The algorithms the loaded keys accept, e.g. `["HS256", "RS256"]`.
    pub fn algorithms(&self) -> Vec<String> {
        let mut algs: Vec<String> = self
            .keys
            .load()
            .keys
            .iter()
            .map(|k| format!("{:?}", k.alg))
            .collect();
        algs.sort();
        algs.dedup();
        algs
    }

    /// Verifies `token` (the part after `Bearer `): shape, algorithm, key, signature, `exp`,
    /// `nbf`, `aud`, `iss` and the `role` claim's type.
    pub async fn verify(&self, token: &str) -> Result<Arc<VerifiedToken>, Refused> {
        let digest = self.cache.enabled().then(|| TokenCache::digest(token));
        if let Some(hit) = digest.as_ref().and_then(|d| self.cache.get(d)) {
            let leeway = self.config.leeway.as_secs();
            if hit
                .exp
                .is_some_and(|exp| exp.saturating_add(leeway) < now())
            {
                if let Some(d) = &digest {
                    self.cache.remove(d);
                }
                return Err(Refused {
                    rejection: TokenRejection::Expired,
                    alg: None,
                    kid: hit.kid.clone(),
                });
            }
            return Ok(hit);
        }

        let header = parse_header(token).ok_or(Refused {
            rejection: TokenRejection::Malformed,
            alg: None,
            kid: None,
        })?;
        let refuse = |rejection| Refused {
            rejection,
            alg: Some(truncate(&header.alg, 16)),
            kid: header.kid.as_deref().map(|k| truncate(k, 64)),
        };
        // `none` (any spelling) does not parse as an algorithm; neither does anything unknown.
        let alg: Algorithm = header
            .alg
            .parse()
            .map_err(|_| refuse(TokenRejection::WrongAlgorithm))?;
        let mut set = self.keys.load_full();
        // Re-read before the algorithm check: a rotation may bring a key of another type.
        if let Some(kid) = header.kid.as_deref()
            && !set.knows_kid(kid)
            && self.refreshable
        {
            self.reload_for_unknown_kid().await;
            set = self.keys.load_full();
        }
        if !set.accepts(alg) {
            return Err(refuse(TokenRejection::WrongAlgorithm));
        }

        let candidates = candidates(&set, alg, header.kid.as_deref());
        if candidates.is_empty() {
            return Err(refuse(TokenRejection::UnknownKey));
        }
        let mut outcome = Err(TokenRejection::BadSignature);
        for key in candidates {
            match jsonwebtoken::decode::<serde_json::Value>(token, &key.key, &key.validation) {
                Ok(data) => {
                    outcome = Ok(data.claims);
                    break;
                }
                Err(error) => {
                    let rejection = TokenRejection::from(&error);
                    outcome = Err(rejection);
                    // Only a signature mismatch means "try the next key"; anything else was
                    // found after this key verified the signature, or concerns the token itself.
                    if rejection != TokenRejection::BadSignature {
                        break;
                    }
                }
            }
        }
        let claims = outcome.map_err(refuse)?;
        if !claims.is_object() {
            return Err(refuse(TokenRejection::Malformed));
        }
        if let Some(role) = claims.get("role")
            && role.as_str().is_none_or(str::is_empty)
        {
            return Err(refuse(TokenRejection::InvalidClaims));
        }
        let verified = Arc::new(VerifiedToken {
            exp: claims
                .get("exp")
                .and_then(|e| e.as_f64())
                .map(|e| e.max(0.0) as u64),
            kid: header.kid.clone(),
            claims,
        });
        if let Some(d) = digest {
            self.cache.insert(d, verified.clone());
        }
        Ok(verified)
    }

    /// Re-reads the JWKS files and URLs after a token named an unknown `kid`, at most once per
    /// refresh interval (failed reads count too, so a dead IdP is not retried on every
    /// request); concurrent callers wait for one read instead of each starting their own. A
    /// source that fails keeps its last good keys.
    async fn reload_for_unknown_kid(&self) {
        let mut state = self.reload.lock().await;
        if state
            .at
            .is_some_and(|at| at.elapsed() < self.config.jwks_refresh)
        {
            return;
        }
        // Never loaded successfully: there is nothing to refresh (boot reported the error).
        if state.per_source.len() != self.config.sources.len() {
            return;
        }
        state.at = Some(Instant::now());
        for (index, source) in self.config.sources.iter().enumerate() {
            if !source.refreshable() {
                continue;
            }
            match keys::load_source(&self.config, source, &self.client).await {
                Ok(keys) => state.per_source[index] = keys,
                Err(error) => tracing::warn!(
                    %error,
                    "could not re-read a JWKS after an unknown kid; its last good keys stay in use"
                ),
            }
        }
        let count = self.install(&state.per_source);
        tracing::info!(keys = count, "JWKS re-read after an unknown kid");
    }
}

/// The keys to try: those with the token's `kid` when the set knows it; otherwise keys
/// configured without a kid; a token without a kid may try every key of its algorithm.
fn candidates<'a>(set: &'a KeySet, alg: Algorithm, kid: Option<&str>) -> Vec<&'a VerifyKey> {
    let of_alg = || set.keys.iter().filter(move |k| k.alg == alg);
    if let Some(kid) = kid
        && set.knows_kid(kid)
    {
        return of_alg().filter(|k| k.kid.as_deref() == Some(kid)).collect();
    }
    let unnamed: Vec<&VerifyKey> = of_alg().filter(|k| k.kid.is_none()).collect();
    if unnamed.is_empty() && kid.is_none() {
        return of_alg().collect();
    }
    unnamed
}

fn parse_header(token: &str) -> Option<RawHeader> {
    let mut parts = token.split('.');
    let (header, _payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || header.is_empty() {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
