//! API keys as the console shows them, read and written through core's [`KeyStore`] (the
//! same table, format and hashing the PSU uses). The PSU re-reads its keys when the console
//! publishes a `keys.*` platform action, so a key created or revoked here takes effect at once.

use std::sync::Arc;

use magmobo_core::roles::api_keys::{ApiKey, KeyStore};
use magmobo_core::roles::storage::Storage;
use serde::Serialize;

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

impl From<ApiKey> for KeyRecord {
    fn from(key: ApiKey) -> Self {
        KeyRecord {
            prefix: key.prefix(),
            active: key.usable(now()),
            id: key.id,
            name: key.name,
            role: key.role,
            created_at: key.created_at,
            expires_at: key.expires_at,
            revoked_at: key.revoked_at,
        }
    }
}

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn store(storage: &Arc<dyn Storage>) -> KeyStore {
    KeyStore::new(storage.clone())
}

/// Every key, newest first.
pub(crate) async fn list(storage: &Arc<dyn Storage>) -> magmobo_core::Result<Vec<KeyRecord>> {
    let keys = store(storage).list().await?;
    Ok(keys.into_iter().map(KeyRecord::from).collect())
}

/// The key with `id`, if any.
pub(crate) async fn find(
    storage: &Arc<dyn Storage>,
    id: &str,
) -> magmobo_core::Result<Option<KeyRecord>> {
    Ok(store(storage).get(id).await?.map(KeyRecord::from))
}

/// Creates a key; returns it and the full key, which exists only in this answer.
pub(crate) async fn create(
    storage: &Arc<dyn Storage>,
    name: &str,
    role: &str,
    expires_at: Option<i64>,
) -> magmobo_core::Result<(KeyRecord, String)> {
    let created = store(storage).create(name, role, expires_at).await?;
    Ok((created.key.into(), created.full))
}

/// Revokes the key `id`; false when it was already revoked (or does not exist).
pub(crate) async fn revoke(storage: &Arc<dyn Storage>, id: &str) -> magmobo_core::Result<bool> {
    store(storage).revoke(id).await
}
