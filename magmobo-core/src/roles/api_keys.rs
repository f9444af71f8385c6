//! API keys: their format (`mf_<12 hex id>_<43 base64url characters>`), generation, hashing
//! and the `_magmobo_api_keys` table (create, get, list, revoke) on any storage dialect. Times
//! are Unix seconds in BIGINT columns so the same SQL works everywhere.
//!
//! In core, not in the PSU driver, because extensions that manage keys (the platform console)
//! must write exactly what the PSU reads, and extensions never depend on drivers.

use std::sync::Arc;

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::roles::storage::{Migration, Row, Storage, Value};
use crate::{Error, Result};

/// What every key starts with.
pub const PREFIX: &str = "mf_";

/// The SHA-256 of a key secret, hex-encoded, as stored and compared.
pub fn hash_secret(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A key as stored (never with its secret).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ApiKey {
    /// Visible id, e.g. `3f9c2a1b7d4e`.
    pub id: String,
    /// Human name.
    pub name: String,
    /// Role the key acts as (`anon`, `service_role`, ...).
    pub role: String,
    /// Hex SHA-256 of the secret.
    #[serde(skip)]
    pub secret_hash: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds, if the key expires.
    pub expires_at: Option<i64>,
    /// Unix seconds, if revoked.
    pub revoked_at: Option<i64>,
}

impl ApiKey {
    /// The visible part of the key, safe to print: `mf_<id>`.
    pub fn prefix(&self) -> String {
        format!("{PREFIX}{}", self.id)
    }
    /// Not revoked and not expired at `now` (Unix seconds).
    pub fn usable(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|at| at > now)
    }
}

/// A freshly created key: the only time the full key exists.
#[derive(Debug, Clone)]
pub struct CreatedKey {
    /// The stored record.
    pub key: ApiKey,
    /// The full key to hand to the user once: `mf_<id>_<secret>`.
    pub full: String,
}

/// A presented key split into its parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedKey<'a> {
    /// The id.
    pub id: &'a str,
    /// The secret.
    pub secret: &'a str,
}

/// Splits `mf_<id>_<secret>`; `None` when it does not have that shape.
pub fn parse_key(key: &str) -> Option<ParsedKey<'_>> {
    let rest = key.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let id_ok = id.len() == 12 && id.bytes().all(|b| b.is_ascii_hexdigit());
    let secret_ok = secret.len() == 43
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    (id_ok && secret_ok).then_some(ParsedKey { id, secret })
}

/// Reads and writes keys in the board's storage.
#[derive(Clone)]
pub struct KeyStore {
    storage: Arc<dyn Storage>,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyStore")
    }
}

const TABLE_SQL: &str = "CREATE TABLE IF NOT EXISTS _magmobo_api_keys (\
    id VARCHAR(32) PRIMARY KEY, name VARCHAR(200) NOT NULL, role VARCHAR(100) NOT NULL, \
    secret_hash VARCHAR(64) NOT NULL, created_at BIGINT NOT NULL, expires_at BIGINT, \
    revoked_at BIGINT)";

impl KeyStore {
    /// A store on `storage`.
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        KeyStore { storage }
    }

    /// Creates the keys table if needed (a recorded migration).
    pub async fn install(&self) -> Result<()> {
        let migration = Migration::portable(1, "api keys", TABLE_SQL);
        self.storage
            .migrate("magmobo-auth", &[migration])
            .await
            .map(|_| ())
    }

    /// Creates a key for `role`; the returned full key is shown once and never stored.
    pub async fn create(
        &self,
        name: &str,
        role: &str,
        expires_at: Option<i64>,
    ) -> Result<CreatedKey> {
        if name.trim().is_empty() || role.trim().is_empty() {
            return Err(Error::part(
                "APIKeyAuth",
                "a key needs a non-empty name and role",
            ));
        }
        let mut id_bytes = [0u8; 6];
        let mut secret_bytes = [0u8; 32];
        {
            // The thread-local generator is not `Send`: it must not live across an await.
            let mut rng = rand::rng();
            rng.fill_bytes(&mut id_bytes);
            rng.fill_bytes(&mut secret_bytes);
        }
        let id: String = id_bytes.iter().map(|b| format!("{b:02x}")).collect();
        let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret_bytes);
        let created_at = now();
        let key = ApiKey {
            id: id.clone(),
            name: name.to_owned(),
            role: role.to_owned(),
            secret_hash: hash_secret(&secret),
            created_at,
            expires_at,
            revoked_at: None,
        };
        let d = self.storage.dialect();
        let sql = format!(
            "INSERT INTO _magmobo_api_keys (id, name, role, secret_hash, created_at, expires_at) \
             VALUES ({})",
            d.placeholders(6)
        );
        let params = [
            Value::Text(key.id.clone()),
            Value::Text(key.name.clone()),
            Value::Text(key.role.clone()),
            Value::Text(key.secret_hash.clone()),
            Value::Int(created_at),
            expires_at.map_or(Value::Null, Value::Int),
        ];
        self.storage.execute(&sql, &params).await?;
        Ok(CreatedKey {
            full: format!("{PREFIX}{id}_{secret}"),
            key,
        })
    }

    /// The key with `id`, if any.
    pub async fn get(&self, id: &str) -> Result<Option<ApiKey>> {
        let sql = format!(
            "SELECT id, name, role, secret_hash, created_at, expires_at, revoked_at \
             FROM _magmobo_api_keys WHERE id = {}",
            self.storage.dialect().placeholder(1)
        );
        let rows = self
            .storage
            .query(&sql, &[Value::Text(id.to_owned())])
            .await?;
        rows.first().map(row_to_key).transpose()
    }

    /// Every key, newest first.
    pub async fn list(&self) -> Result<Vec<ApiKey>> {
        let rows = self
            .storage
            .query(
                "SELECT id, name, role, secret_hash, created_at, expires_at, revoked_at \
                 FROM _magmobo_api_keys ORDER BY created_at DESC, id",
                &[],
            )
            .await?;
        rows.iter().map(row_to_key).collect()
    }

    /// Revokes the key whose id (or `mf_<id>` prefix) is given; false when none matched.
    pub async fn revoke(&self, id_or_prefix: &str) -> Result<bool> {
        let id = id_or_prefix.strip_prefix(PREFIX).unwrap_or(id_or_prefix);
        let d = self.storage.dialect();
        let sql = format!(
            "UPDATE _magmobo_api_keys SET revoked_at = {} WHERE id = {} AND revoked_at IS NULL",
            d.placeholder(1),
            d.placeholder(2)
        );
        let changed = self
            .storage
            .execute(&sql, &[Value::Int(now()), Value::Text(id.to_owned())])
            .await?;
        Ok(changed > 0)
    }
}

fn row_to_key(row: &Row) -> Result<ApiKey> {
    Ok(ApiKey {
        id: row.get_text("id")?,
        name: row.get_text("name")?,
        role: row.get_text("role")?,
        secret_hash: row.get_text("secret_hash")?,
        created_at: row.get_int("created_at")?,
        expires_at: row.get_opt_int("expires_at")?,
        revoked_at: row.get_opt_int("revoked_at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_hashed_with_sha256() {
        // SHA-256("abc"), the FIPS 180-2 test vector.
        assert_eq!(
            hash_secret("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn key_shape_is_checked_before_any_lookup() {
        let good = format!("mf_3f9c2a1b7d4e_{}", "a".repeat(43));
        assert_eq!(parse_key(&good).map(|k| k.id), Some("3f9c2a1b7d4e"));
        for bad in [
            "",
            "mf_",
            "mf_3f9c2a1b7d4e",
            "xx_3f9c2a1b7d4e_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "mf_3f9c2a1b7d4g_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "mf_3f9c2a1b7d4e_short",
            "mf_3f9c2a1b7d4e_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!",
            "eyJhbGciOiJIUzI1NiJ9.e30.sig",
        ] {
            assert!(parse_key(bad).is_none(), "{bad:?} should not parse");
        }
    }
}
