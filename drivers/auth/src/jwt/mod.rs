//! JWT verification for the PSU: which keys are trusted, how claims are checked, and a helper
//! that issues HS256 tokens.
//!
//! [`JwtConfig`] only records configuration (no I/O before boot); [`JwtVerifier`] reads the keys
//! in `load` (the PSU's `init`, so a bad key shows on the POST screen) and verifies tokens on
//! every request. The algorithms a token may use come from the configured keys, never from the
//! token's header: an HS256 secret accepts HS256 only, an RSA key RS256, a P-256 key ES256, a
//! JWK its own `alg`. That refuses `alg=none` and the RS/HS confusion attack (an RS256 public
//! key used as an HMAC secret) by construction.
//!
//! JWKS files and URLs are the sources that change at run time (an identity provider rotating
//! its keys). They are read at boot and again when a token names an unknown `kid`, at most once
//! per refresh interval so forged kids cannot turn into a flood of reads of the IdP; a URL is
//! fetched with a bounded timeout (`fetch.rs`), and a source that fails on such a refresh keeps
//! its last good keys.

mod cache;
mod fetch;
mod keys;
mod rejection;
mod verify;

use std::path::PathBuf;
use std::time::Duration;

pub use rejection::TokenRejection;
pub use verify::{JwtVerifier, Refused, VerifiedToken};

/// The shortest HS256 secret accepted, as PostgREST requires: shorter secrets can be brute
/// forced from one captured token.
pub const MIN_SECRET_LEN: usize = 32;

/// Errors in JWT configuration (reported at boot) or when issuing a token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JwtError {
    /// No key source was configured.
    #[error("JWT verification has no keys: set a secret, a PEM public key or a JWKS file or URL")]
    NoKeys,
    /// The HS256 secret is too short.
    #[error("the JWT secret must be at least {MIN_SECRET_LEN} characters long")]
    SecretTooShort,
    /// A PEM public key could not be parsed (the key itself is never printed).
    #[error("the {kind} public key is not valid PEM: {source}")]
    Pem {
        /// `RSA` or `EC`.
        kind: &'static str,
        /// The parser's error.
        #[source]
        source: jsonwebtoken::errors::Error,
    },
    /// A key file could not be read.
    #[error("could not read the JWKS file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A JWKS URL could not be fetched: not http(s), unreachable, timed out, an answer other
    /// than 2xx, or a body over the size limit.
    #[error(
        "could not fetch the JWKS from {url}: {source}; check the URL and that the identity provider is reachable"
    )]
    Fetch {
        /// The URL.
        url: String,
        /// What went wrong.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A JWKS document is not a JSON object with a `keys` array, or holds no usable key.
    #[error("the JWKS document {origin} is not usable: {reason}")]
    Jwks {
        /// Where it came from (a path, a URL, or `inline`).
        origin: String,
        /// What is wrong.
        reason: String,
    },
    /// `sign` needs an HS256 secret in the configuration.
    #[error("issuing tokens needs an HS256 secret in the JWT configuration")]
    NoSigningSecret,
    /// The claims to sign are not a JSON object.
    #[error("token claims must be a JSON object")]
    ClaimsNotObject,
    /// Signing failed (claims that do not serialise to a JSON object...).
    #[error("could not sign the token: {0}")]
    Sign(#[source] jsonwebtoken::errors::Error),
}

/// Where trusted keys come from. Several may be combined (e.g. a legacy HS256 secret and the
/// JWKS of a newer asymmetric issuer).
#[derive(Clone)]
pub(crate) enum KeySource {
    /// An HS256 shared secret (UTF-8 bytes, as PostgREST's `jwt-secret`).
    Secret(String),
    /// An RSA public key in PEM (RS256).
    RsaPem(Vec<u8>),
    /// A P-256 public key in PEM (ES256).
    EcPem(Vec<u8>),
    /// A JWKS document on disk, re-read on an unknown `kid`.
    JwksFile(PathBuf),
    /// A JWKS document at an http(s) URL, fetched again on an unknown `kid`.
    JwksUrl(String),
    /// A JWKS document given inline.
    JwksJson(String),
}

/// How tokens are verified: trusted keys and claim rules. Built from values; no I/O.
#[derive(Clone)]
pub struct JwtConfig {
    pub(crate) sources: Vec<KeySource>,
    pub(crate) audience: Vec<String>,
    pub(crate) issuer: Vec<String>,
    pub(crate) leeway: Duration,
    pub(crate) jwks_refresh: Duration,
    pub(crate) jwks_timeout: Duration,
    pub(crate) cache_capacity: usize,
}

impl std::fmt::Debug for JwtConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sources: Vec<String> = self
            .sources
            .iter()
            .map(|s| match s {
                KeySource::Secret(_) => "secret(***)".to_owned(),
                KeySource::RsaPem(_) => "rsa-pem".to_owned(),
                KeySource::EcPem(_) => "ec-pem".to_owned(),
                KeySource::JwksFile(p) => format!("jwks-file({})", p.display()),
                KeySource::JwksUrl(url) => format!("jwks-url({url})"),
                KeySource::JwksJson(_) => "jwks-inline".to_owned(),
            })
            .collect();
        f.debug_struct("JwtConfig")
            .field("sources", &sources)
            .field("audience", &self.audience)
            .field("issuer", &self.issuer)
            .field("leeway", &self.leeway)
            .finish_non_exhaustive()
    }
}

impl Default for JwtConfig {
    fn default() -> Self {
        JwtConfig {
            sources: Vec::new(),
            audience: Vec::new(),
            issuer: Vec::new(),
            leeway: Duration::from_secs(30),
            jwks_refresh: Duration::from_secs(30),
            jwks_timeout: Duration::from_secs(3),
            cache_capacity: 10_000,
        }
    }
}

impl JwtConfig {
    /// A configuration with no keys yet (add them with the `with_*` methods).
    pub fn new() -> Self {
        JwtConfig::default()
    }

    /// Verifies (and issues) HS256 tokens with a shared secret of at least
    /// [`MIN_SECRET_LEN`] characters, as PostgREST's `jwt-secret` and Supabase's JWT secret.
    pub fn hs256(secret: impl Into<String>) -> Self {
        JwtConfig::new().with_secret(secret)
    }

    /// Adds an HS256 shared secret.
    pub fn with_secret(mut self, secret: impl Into<String>) -> Self {
        self.sources.push(KeySource::Secret(secret.into()));
        self
    }

    /// Adds an RSA public key in PEM (PKCS#1 or SPKI); tokens must use RS256.
    pub fn with_rsa_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.sources.push(KeySource::RsaPem(pem.into()));
        self
    }

    /// Adds a P-256 public key in PEM (SPKI); tokens must use ES256.
    pub fn with_ec_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.sources.push(KeySource::EcPem(pem.into()));
        self
    }

    /// Adds a JWKS document on disk. It is read at boot and re-read when a token names an
    /// unknown `kid` (at most once per [`JwtConfig::with_jwks_refresh_interval`]), so keys can
    /// be rotated by rewriting the file.
    pub fn with_jwks_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.sources.push(KeySource::JwksFile(path.into()));
        self
    }

    /// Adds a JWKS document served at an `https://` (or, for a local identity provider,
    /// `http://`) URL, such as an OpenID provider's `jwks_uri`. It is fetched at boot (a
    /// failure fails the boot, on the POST screen) and fetched again when a token names an
    /// unknown `kid`, at most once per [`JwtConfig::with_jwks_refresh_interval`]; a failed
    /// refetch is logged and the last good keys stay in use. Each fetch gives up after
    /// [`JwtConfig::with_jwks_timeout`], the longest a request can wait for it.
    pub fn with_jwks_url(mut self, url: impl Into<String>) -> Self {
        self.sources.push(KeySource::JwksUrl(url.into()));
        self
    }

    /// Adds a JWKS document given as JSON text.
    pub fn with_jwks_json(mut self, json: impl Into<String>) -> Self {
        self.sources.push(KeySource::JwksJson(json.into()));
        self
    }

    /// Requires `aud` to be present and to name one of these audiences (call again to add).
    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.audience.push(audience.into());
        self
    }

    /// Requires `iss` to be present and to be one of these issuers (call again to add).
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer.push(issuer.into());
        self
    }

    /// Clock skew tolerated on `exp` and `nbf` (default 30 s; whole seconds).
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// The shortest time between two JWKS re-reads caused by unknown `kid`s (default 30 s), so
    /// a flood of made-up key ids cannot turn into a flood of reads.
    pub fn with_jwks_refresh_interval(mut self, every: Duration) -> Self {
        self.jwks_refresh = every;
        self
    }

    /// The longest a JWKS URL fetch may take, connection included (default 3 s). A request
    /// whose token names an unknown `kid` waits for the refetch, so keep it short.
    pub fn with_jwks_timeout(mut self, timeout: Duration) -> Self {
        self.jwks_timeout = timeout;
        self
    }

    /// How many verified tokens are remembered (default 10 000; 0 turns the cache off).
    /// A token seen again costs one SHA-256 and a map lookup instead of a signature check;
    /// `exp` is still checked on every use.
    pub fn with_cache_capacity(mut self, capacity: usize) -> Self {
        self.cache_capacity = capacity;
        self
    }

    /// Whether any key source is configured.
    pub fn has_keys(&self) -> bool {
        !self.sources.is_empty()
    }

    /// Issues an HS256 token carrying `claims` (a JSON object), signed with the first
    /// configured secret. For tests, the CLI and the accounts service; it adds nothing to the
    /// claims, so set `exp`, `role`, `aud`... yourself.
    pub fn sign(&self, claims: &serde_json::Value) -> Result<String, JwtError> {
        let secret = self
            .sources
            .iter()
            .find_map(|s| match s {
                KeySource::Secret(secret) => Some(secret),
                _ => None,
            })
            .ok_or(JwtError::NoSigningSecret)?;
        if secret.len() < MIN_SECRET_LEN {
            return Err(JwtError::SecretTooShort);
        }
        if !claims.is_object() {
            return Err(JwtError::ClaimsNotObject);
        }
        keys::ensure_provider();
        let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
        jsonwebtoken::encode(&header, claims, &key).map_err(JwtError::Sign)
    }
}
