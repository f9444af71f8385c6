//! The PSU slot's driver: API keys and JWTs.
//!
//! A key looks like `mf_3f9c2a1b7d4e_<43 characters>`: a visible id (safe to log and list) and
//! a 256-bit secret shown once at creation. Only the SHA-256 of the secret is stored, in the
//! `_magmobo_api_keys` table of the board's Storage; keys are kept in memory for lookups so a
//! request costs a hash map lookup and one SHA-256, and the table is re-read after changes.
//!
//! JWTs (HS256, RS256, ES256; see [`jwt`]) are verified when [`AuthOptions::jwt`] is set. The
//! rules follow Supabase and PostgREST:
//!
//! - the `apikey` header carries the project's API key; `Authorization: Bearer` carries either
//!   an API key (`mf_...`) or a JWT;
//! - with `require_key` (the default, Supabase) a valid API key must be present, in `apikey` or
//!   as the bearer value; a JWT in `Authorization` then decides the identity;
//! - without `require_key` (PostgREST mode) a request with no credentials runs as `anon_role`,
//!   and a JWT decides the role;
//! - a JWT's identity carries its full claim set and its `role` claim as the role; a token
//!   without `role` runs as `anon_role`, as PostgREST does;
//! - a presented credential that fails is refused (401), never downgraded to anonymous.
//!
//! `ApiKeyAuth` keeps its name and constructor: JWT support is one more option, so
//! `ApiKeyAuth::new(AuthOptions { .. })` written before JWTs still compiles and behaves the
//! same. Refusals publish `auth.key.rejected` (keys) or `auth.token.rejected` (JWTs) on the bus
//! with a reason and a non-secret hint (key id, or the token header's `alg` and `kid`).

mod credentials;
pub mod jwt;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use magmobo_core::board::{BoardBuilder, BoardContext};
use magmobo_core::bus::Bus;
use magmobo_core::prelude::*;
use magmobo_core::roles::auth::IdentityKind;
use magmobo_core::roles::platform;
use subtle::ConstantTimeEq;

use credentials::{Bearer, Credentials};
pub use jwt::{JwtConfig, JwtError, JwtVerifier, TokenRejection};
pub use magmobo_core::roles::api_keys::{
    ApiKey, CreatedKey, KeyStore, ParsedKey, hash_secret, parse_key,
};

/// How requests are authenticated.
#[derive(Debug, Clone)]
pub struct AuthOptions {
    /// When true (the default, as Supabase), a request without a key gets 401. When false
    /// (PostgREST mode), it runs as `anon_role`.
    pub require_key: bool,
    /// Role of keyless requests when `require_key` is false.
    pub anon_role: String,
    /// How often keys are re-read from storage, so a key created or revoked by another
    /// process (e.g. `magflock keys revoke`) takes effect without a restart.
    pub refresh: Duration,
    /// JWT verification; `None` (the default) accepts API keys only.
    pub jwt: Option<JwtConfig>,
}

impl Default for AuthOptions {
    fn default() -> Self {
        AuthOptions {
            require_key: true,
            anon_role: "anon".into(),
            refresh: Duration::from_secs(5),
            jwt: None,
        }
    }
}

/// The API-key PSU. Depends on the Storage slot, where keys live.
pub struct ApiKeyAuth {
    options: AuthOptions,
    store: OnceLock<KeyStore>,
    bus: OnceLock<Bus>,
    keys: Arc<ArcSwap<HashMap<String, ApiKey>>>,
    jwt: Option<JwtVerifier>,
    refresher: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Answers the platform API's `keys.reload` while started.
    reload_responder: Mutex<Option<magmobo_core::bus::ResponderGuard>>,
}

impl std::fmt::Debug for ApiKeyAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyAuth")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl ApiKeyAuth {
    /// An API-key PSU with the given options.
    pub fn new(options: AuthOptions) -> Self {
        ApiKeyAuth {
            jwt: options.jwt.clone().map(JwtVerifier::new),
            options,
            store: OnceLock::new(),
            bus: OnceLock::new(),
            keys: Arc::default(),
            refresher: Mutex::new(None),
            reload_responder: Mutex::new(None),
        }
    }

    /// Re-reads the keys from storage (after a key was created or revoked elsewhere).
    pub async fn reload(&self) -> Result<usize> {
        let store = self
            .store
            .get()
            .ok_or_else(|| Error::part("APIKeyAuth", "not initialised"))?;
        load_keys(store, &self.keys).await
    }

    /// The key store, once initialised (for creating and revoking keys at run time).
    pub fn store(&self) -> Option<&KeyStore> {
        self.store.get()
    }

    /// The JWT verifier, when JWTs are configured (e.g. to re-read keys).
    pub fn jwt(&self) -> Option<&JwtVerifier> {
        self.jwt.as_ref()
    }

    fn reject_token(&self, refused: jwt::Refused) -> AuthRejection {
        let rejection = refused.rejection;
        tracing::debug!(reason = rejection.reason(), "JWT refused");
        if let Some(bus) = self.bus.get() {
            let payload = serde_json::json!({
                "code": rejection.code(),
                "reason": rejection.reason(),
                "alg": refused.alg,
                "kid": refused.kid,
            });
            let _ = bus.publish("auth.token.rejected", "psu", payload);
        }
        rejection.to_auth_rejection()
    }

    fn reject(&self, code: &str, message: &str, source_hint: Option<&str>) -> AuthRejection {
        if let Some(bus) = self.bus.get() {
            let payload = serde_json::json!({ "code": code, "key_id": source_hint });
            let _ = bus.publish("auth.key.rejected", "psu", payload);
        }
        AuthRejection {
            status: 401,
            code: code.to_owned(),
            message: message.to_owned(),
        }
    }
}

async fn load_keys(store: &KeyStore, into: &ArcSwap<HashMap<String, ApiKey>>) -> Result<usize> {
    let keys = store.list().await?;
    let count = keys.iter().filter(|k| k.usable(now())).count();
    into.store(Arc::new(
        keys.into_iter().map(|k| (k.id.clone(), k)).collect(),
    ));
    Ok(count)
}

/// A successful `keys.*` or `agents.*` action of the platform API (agents come with keys).
fn is_key_change(payload: &serde_json::Value) -> bool {
    let action = payload.get("action").and_then(|a| a.as_str());
    let outcome = payload.get("outcome").and_then(|o| o.as_str());
    action.is_some_and(|a| a.starts_with("keys.") || a.starts_with("agents."))
        && outcome == Some("ok")
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl ComponentMeta for ApiKeyAuth {
    fn component_info(&self) -> ComponentInfo {
        let mut info = ComponentInfo::new("APIKeyAuth", env!("CARGO_PKG_VERSION"), Slot::Psu);
        info.capabilities = vec!["api-keys".into()];
        if self.jwt.is_some() {
            info.capabilities.push("jwt".into());
        }
        info.depends_on = vec![Slot::Storage];
        info
    }
}

impl Plug for ApiKeyAuth {
    fn plug(self, board: &mut BoardBuilder) {
        board.put_psu(self);
    }
}

#[async_trait]
impl Component for ApiKeyAuth {
    async fn self_test(&self) -> Result<String> {
        let mode = if self.options.require_key {
            "key required"
        } else {
            "anonymous allowed"
        };
        let jwt = if self.jwt.is_some() { ", JWT" } else { "" };
        Ok(format!("API keys, SHA-256 at rest{jwt}, {mode}"))
    }

    async fn init(&self, board: &BoardContext) -> Result<()> {
        let storage = board.storage().ok_or_else(|| {
            Error::part(
                "APIKeyAuth",
                "API keys live in the Storage slot, which is empty: add a database",
            )
        })?;
        let store = KeyStore::new(storage);
        store.install().await?;
        let _ = self.store.set(store);
        let _ = self.bus.set(board.bus().clone());
        let active = self.reload().await?;
        tracing::info!(active, "API keys loaded");
        if let Some(verifier) = &self.jwt {
            let keys = verifier
                .load()
                .await
                .map_err(|e| Error::part_with("APIKeyAuth", format!("JWT keys: {e}"), e))?;
            tracing::info!(keys, algorithms = ?verifier.algorithms(), "JWT keys loaded");
        }
        Ok(())
    }

    async fn start(&self, board: &BoardContext) -> Result<()> {
        let Some(store) = self.store.get().cloned() else {
            return Ok(());
        };
        // Keys are re-read when the platform API says it created or revoked one (on this
        // instance or another sharing the bus: at once), and on a timer for changes made
        // elsewhere (`magflock keys`, another tool writing the table).
        let mut changes = board.bus().subscribe(platform::ACTION_TOPIC)?;
        // The platform API of this instance asks before it answers, so a key it just made
        // works on the very next request.
        let responder = {
            let (store, keys) = (store.clone(), self.keys.clone());
            board
                .bus()
                .respond(platform::requests::KEYS_RELOAD, move |_| {
                    let (store, keys) = (store.clone(), keys.clone());
                    async move {
                        let usable = load_keys(&store, &keys).await?;
                        Ok(platform::requests::reply_ok(usable))
                    }
                })?
        };
        *self
            .reload_responder
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(responder);
        let keys = self.keys.clone();
        let mut tick =
            (!self.options.refresh.is_zero()).then(|| tokio::time::interval(self.options.refresh));
        let task = tokio::spawn(async move {
            if let Some(tick) = &mut tick {
                tick.tick().await;
            }
            loop {
                let next_tick = async {
                    match &mut tick {
                        Some(tick) => {
                            tick.tick().await;
                        }
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    () = next_tick => {}
                    event = changes.recv() => match event {
                        Some(event) if is_key_change(&event.payload) => {}
                        Some(_) => continue,
                        None => return,
                    },
                }
                // A failed refresh keeps the last known keys; the database may be back soon.
                if let Err(error) = load_keys(&store, &keys).await {
                    tracing::warn!(%error, "could not refresh API keys");
                }
            }
        });
        if let Some(old) = self
            .refresher
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(task)
        {
            old.abort();
        }
        Ok(())
    }

    async fn stop(&self, _mode: StopMode) -> Result<()> {
        self.reload_responder
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(task) = self
            .refresher
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            task.abort();
        }
        Ok(())
    }

    async fn health(&self) -> Health {
        let active = self
            .keys
            .load()
            .values()
            .filter(|k| k.usable(now()))
            .count();
        Health::ok().with_detail(format!("{active} active keys"))
    }
}

#[async_trait]
impl Auth for ApiKeyAuth {
    async fn authenticate(&self, parts: &http::request::Parts) -> Result<Identity, AuthRejection> {
        let credentials = Credentials::from_parts(parts, self.jwt.is_some());
        let key_identity = match credentials.apikey {
            Some(key) => Some(self.check_key(key)?),
            None => None,
        };
        match credentials.bearer {
            Some(Bearer::Jwt(token)) => {
                if self.options.require_key && key_identity.is_none() {
                    return Err(self.reject("no_api_key", NO_KEY_WITH_JWT, None));
                }
                self.check_jwt(token).await
            }
            // supabase-js sends the project key in both headers: check it once.
            Some(Bearer::Key(key)) if credentials.apikey == Some(key) => {
                key_identity.ok_or_else(|| self.reject("invalid_api_key", INVALID_KEY, None))
            }
            Some(Bearer::Key(key)) => self.check_key(key),
            None => match key_identity {
                Some(identity) => Ok(identity),
                None if self.options.require_key => Err(self.reject("no_api_key", NO_KEY, None)),
                None => Ok(Identity::anonymous(self.options.anon_role.clone())),
            },
        }
    }
}

const NO_KEY: &str = "No API key found in request: send it in the `apikey` header or as \
    `Authorization: Bearer <key>`";
const NO_KEY_WITH_JWT: &str = "No API key found in request: a JWT in `Authorization` needs \
    the project's API key in the `apikey` header too";
const INVALID_KEY: &str =
    "Invalid API key: check the key, or create a new one with `magflock keys create`";

impl ApiKeyAuth {
    fn check_key(&self, presented: &str) -> Result<Identity, AuthRejection> {
        let Some(parsed) = parse_key(presented) else {
            return Err(self.reject("invalid_api_key", INVALID_KEY, None));
        };
        let keys = self.keys.load();
        let Some(key) = keys.get(parsed.id) else {
            return Err(self.reject("invalid_api_key", INVALID_KEY, Some(parsed.id)));
        };
        let hash = hash_secret(parsed.secret);
        if !bool::from(hash.as_bytes().ct_eq(key.secret_hash.as_bytes())) {
            return Err(self.reject("invalid_api_key", INVALID_KEY, Some(parsed.id)));
        }
        if !key.usable(now()) {
            let why = if key.revoked_at.is_some() {
                "revoked"
            } else {
                "expired"
            };
            let message =
                format!("This API key is {why}: create a new one with `magflock keys create`");
            return Err(self.reject(&format!("{why}_api_key"), &message, Some(parsed.id)));
        }
        Ok(Identity {
            kind: if key.role == "service_role" {
                IdentityKind::Service
            } else {
                IdentityKind::ApiKey
            },
            subject: Some(key.id.clone()),
            role: key.role.clone(),
            claims: serde_json::json!({ "role": key.role, "key_id": key.id, "key_name": key.name }),
        })
    }

    async fn check_jwt(&self, token: &str) -> Result<Identity, AuthRejection> {
        let Some(verifier) = &self.jwt else {
            return Err(self.reject("invalid_api_key", INVALID_KEY, None));
        };
        let verified = verifier
            .verify(token)
            .await
            .map_err(|refused| self.reject_token(refused))?;
        let role = verified
            .role()
            .unwrap_or(self.options.anon_role.as_str())
            .to_owned();
        let kind = if role == "service_role" {
            IdentityKind::Service
        } else if verified.role().is_none() && verified.subject().is_none() {
            IdentityKind::Anonymous
        } else {
            IdentityKind::User
        };
        Ok(Identity {
            kind,
            subject: verified.subject().map(str::to_owned),
            role,
            claims: verified.claims.clone(),
        })
    }
}

#[cfg(test)]
mod tests;
