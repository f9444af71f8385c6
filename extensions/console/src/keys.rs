//! API keys in `_magmobo_api_keys`, written in the PSU's format: `mf_<12 hex id>_<43
//! base64url characters>`, only the hex SHA-256 of the secret stored. The console writes the
//! table through Storage rather than calling the PSU's key store because extensions never
//! depend on drivers; the integration tests check that a key created here authenticates
//! through the PSU, so the two cannot drift apart unnoticed.
//!
//! The PSU keeps keys in memory and re-reads the table every `AuthOptions::refresh` (5 s by
//! default): a key created or revoked here takes effect within that interval.

use base64::Engine;
use magmobo_core::roles::storage::{Row, Storage, Value};
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// A key as listed: never its secret or its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyRecord {
    /// Visible id, e.g. `3f9c2a1b7d4e`.
    pub id: String,
    /// `mf_<id>`, safe to print.
    pub prefix: String,
    /// Human name.
    pub name: String,
    /// Database role the key acts as.
    pub role: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds, if the key expires.
    pub expires_at: Option<i64>,
    /// Unix seconds, if revoked.
    pub revoked_at: Option<i64>,
    /// Neither revoked nor expired.
    pub active: bool,
}

/// The SHA-256 of a key secret, hex-encoded, as the PSU stores and compares it.
pub fn hash_secret(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

const COLUMNS: &str = "id, name, role, created_at, expires_at, revoked_at";

fn record(row: &Row) -> magmobo_core::Result<KeyRecord> {
    let id = row.get_text("id")?;
    let expires_at = row.get_opt_int("expires_at")?;
    let revoked_at = row.get_opt_int("revoked_at")?;
    Ok(KeyRecord {
        prefix: format!("mf_{id}"),
        id,
        name: row.get_text("name")?,
        role: row.get_text("role")?,
        created_at: row.get_int("created_at")?,
        active: revoked_at.is_none() && expires_at.is_none_or(|at| at > now()),
        expires_at,
        revoked_at,
    })
}

/// Every key, newest first.
pub(crate) async fn list(storage: &dyn Storage) -> magmobo_core::Result<Vec<KeyRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM _magmobo_api_keys ORDER BY created_at DESC, id");
    storage.query(&sql, &[]).await?.iter().map(record).collect()
}

/// The key with `id`, if any.
pub(crate) async fn find(
    storage: &dyn Storage,
    id: &str,
) -> magmobo_core::Result<Option<KeyRecord>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM _magmobo_api_keys WHERE id = {}",
        storage.dialect().placeholder(1)
    );
    let rows = storage.query(&sql, &[Value::Text(id.to_owned())]).await?;
    rows.first().map(record).transpose()
}

/// Creates a key; returns it and the full key, which exists only in this answer.
pub(crate) async fn create(
    storage: &dyn Storage,
    name: &str,
    role: &str,
    expires_at: Option<i64>,
) -> magmobo_core::Result<(KeyRecord, String)> {
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
    let sql = format!(
        "INSERT INTO _magmobo_api_keys (id, name, role, secret_hash, created_at, expires_at) \
         VALUES ({})",
        storage.dialect().placeholders(6)
    );
    storage
        .execute(
            &sql,
            &[
                Value::Text(id.clone()),
                Value::Text(name.to_owned()),
                Value::Text(role.to_owned()),
                Value::Text(hash_secret(&secret)),
                Value::Int(created_at),
                expires_at.map_or(Value::Null, Value::Int),
            ],
        )
        .await?;
    let full = format!("mf_{id}_{secret}");
    let record = KeyRecord {
        prefix: format!("mf_{id}"),
        id,
        name: name.to_owned(),
        role: role.to_owned(),
        created_at,
        expires_at,
        revoked_at: None,
        active: expires_at.is_none_or(|at| at > created_at),
    };
    Ok((record, full))
}

/// Revokes the key `id`; false when it was already revoked (or does not exist).
pub(crate) async fn revoke(storage: &dyn Storage, id: &str) -> magmobo_core::Result<bool> {
    let d = storage.dialect();
    let sql = format!(
        "UPDATE _magmobo_api_keys SET revoked_at = {} WHERE id = {} AND revoked_at IS NULL",
        d.placeholder(1),
        d.placeholder(2)
    );
    let changed = storage
        .execute(&sql, &[Value::Int(now()), Value::Text(id.to_owned())])
        .await?;
    Ok(changed > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_hashed_as_the_psu_hashes_them() {
        // SHA-256("abc"), the FIPS 180-2 test vector.
        assert_eq!(
            hash_secret("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
