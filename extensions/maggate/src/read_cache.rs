//! MagGate's read cache: GET answers kept in the board's RAM slot (moka or Redis), so a
//! repeated read costs a cache lookup instead of a database round trip.
//!
//! Correctness first:
//! - **Keyed by who asks**: the key holds the role and the caller's claims (minus the ones
//!   that change with every token: `exp`, `iat`, `nbf`, `jti`), so row-level security and
//!   policies can never leak one caller's rows to another; then the path, the query pairs
//!   in a normalised order and the headers that change the answer (`Accept`, `Prefer`,
//!   `Range`).
//! - **Invalidated by writes**: every entry is tagged with the tables it read (the table
//!   and its embedded resources); MagGate's own writes drop those tags before they answer
//!   (read-your-writes), `table.<name>.changed` events from other instances drop them too,
//!   and a schema reload drops everything. Reads of views are tagged `any` and dropped on
//!   every write, since a view's base tables are not known. Writes made outside MagGate
//!   (plain SQL) are seen only when the entry expires: keep the TTL short.
//! - **No stale fill**: a read that started before a write on its tables does not store its
//!   answer (a per-table write counter is compared before and after the load).
//! - **One load per key**: concurrent misses on the same key wait for the first load
//!   (stampede protection) instead of all querying the database.
//! - Requests with a `db-pre-request` function are never cached (the function may refuse).
//!
//! When the RAM slot is Redis and Redis goes away, the cache driver passes through: reads go
//! to the database and nobody sees an error.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use magmobo_core::roles::cache::{Cache, SetOptions};
use serde::{Deserialize, Serialize};

/// How MagGate caches reads.
#[derive(Debug, Clone)]
pub struct ReadCacheConfig {
    /// How long an answer is served from the cache at most.
    pub ttl: Duration,
    /// Answers larger than this are not cached.
    pub max_body_bytes: usize,
}

impl Default for ReadCacheConfig {
    fn default() -> Self {
        ReadCacheConfig {
            ttl: Duration::from_secs(5),
            max_body_bytes: 256 * 1024,
        }
    }
}

/// Hit and miss counters, for health and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadCacheStats {
    /// Answers served from the cache.
    pub hits: u64,
    /// Answers loaded from the database (and stored when cacheable).
    pub misses: u64,
    /// Misses that waited for another request's load of the same key and then hit.
    pub coalesced: u64,
}

/// A cached answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CachedReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    pub content_type: String,
}

const TAG_ANY: &str = "maggate:any";
const KEY_PREFIX: &str = "maggate:";

fn tag(table: &str) -> String {
    format!("maggate:table:{table}")
}

/// The cache as MagGate uses it.
pub(crate) struct ReadCache {
    cache: Arc<dyn Cache>,
    pub config: ReadCacheConfig,
    hits: AtomicU64,
    misses: AtomicU64,
    coalesced: AtomicU64,
    /// Loads in flight, by key.
    loading: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Writes seen per table (and under "" for every write), to refuse stale fills.
    writes: Mutex<HashMap<String, u64>>,
}

/// What a miss holds while it loads: the key's lock and the write counters it started at.
pub(crate) struct Loading {
    _guard: tokio::sync::OwnedMutexGuard<()>,
    key: String,
    tags: Vec<String>,
    writes_before: Vec<u64>,
}

impl ReadCache {
    pub fn new(cache: Arc<dyn Cache>, config: ReadCacheConfig) -> Self {
        ReadCache {
            cache,
            config,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            coalesced: AtomicU64::new(0),
            loading: Mutex::new(HashMap::new()),
            writes: Mutex::new(HashMap::new()),
        }
    }

    pub fn stats(&self) -> ReadCacheStats {
        ReadCacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            coalesced: self.coalesced.load(Ordering::Relaxed),
        }
    }

    /// The key of a read: caller, path, normalised query and the headers that matter.
    pub fn key(
        role: &str,
        claims: &serde_json::Value,
        path: &str,
        query: Option<&str>,
        headers: &http::HeaderMap,
    ) -> String {
        let scope = match claims {
            serde_json::Value::Object(map) => {
                let mut kept = map.clone();
                for volatile in ["exp", "iat", "nbf", "jti"] {
                    kept.remove(volatile);
                }
                serde_json::Value::Object(kept).to_string()
            }
            other => other.to_string(),
        };
        let mut pairs: Vec<&str> = query
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .collect();
        // Stable: repeated keys keep their relative order, which can matter.
        pairs.sort_by_key(|p| p.split('=').next().unwrap_or(""));
        let header = |name: &str| {
            headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect::<Vec<_>>()
                .join(",")
        };
        format!(
            "{KEY_PREFIX}{role}\u{1f}{scope}\u{1f}{path}?{}\u{1f}{}\u{1f}{}\u{1f}{}",
            pairs.join("&"),
            header("accept"),
            header("prefer"),
            header("range"),
        )
    }

    /// The cached answer, if any. A cache that fails reads as a miss.
    pub async fn get(&self, key: &str) -> Option<CachedReply> {
        let bytes = self.cache.get(key).await.ok().flatten()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// On a miss: waits for any load of the same key in flight, then either returns what it
    /// stored (a hit) or the right to load (holding the key until [`ReadCache::store`]).
    pub async fn miss(
        &self,
        key: &str,
        tables: &[String],
        any: bool,
    ) -> Result<CachedReply, Loading> {
        let lock = {
            let mut loading = self.loading.lock().unwrap_or_else(|e| e.into_inner());
            loading.retain(|_, l| Arc::strong_count(l) > 1);
            loading.entry(key.to_owned()).or_default().clone()
        };
        let guard = lock.lock_owned().await;
        // Look again under the key's lock: a load that finished between our first look and
        // now (whether we waited for it or not) has stored the answer.
        if let Some(hit) = self.get(key).await {
            self.coalesced.fetch_add(1, Ordering::Relaxed);
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(hit);
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let mut tags: Vec<String> = tables.iter().map(|t| tag(t)).collect();
        if any {
            tags.push(TAG_ANY.to_owned());
        }
        let writes_before = self.write_counts(tables);
        Err(Loading {
            _guard: guard,
            key: key.to_owned(),
            tags,
            writes_before,
        })
    }

    pub fn hit(&self) {
        self.hits.fetch_add(1, Ordering::Relaxed);
    }

    /// Stores a loaded answer unless a write touched its tables meanwhile.
    pub async fn store(&self, loading: Loading, tables: &[String], reply: &CachedReply) {
        let cacheable = matches!(reply.status, 200 | 206)
            && reply
                .body
                .as_ref()
                .is_none_or(|b| b.len() <= self.config.max_body_bytes);
        if !cacheable || self.write_counts(tables) != loading.writes_before {
            return;
        }
        let Ok(bytes) = serde_json::to_vec(reply) else {
            return;
        };
        let options = SetOptions {
            ttl: Some(self.config.ttl),
            tags: loading.tags.clone(),
        };
        if let Err(e) = self
            .cache
            .set(&loading.key, Bytes::from(bytes), options)
            .await
        {
            tracing::debug!(target: "maggate", error = %e, "read cache store failed");
        }
    }

    fn write_counts(&self, tables: &[String]) -> Vec<u64> {
        let writes = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        std::iter::once("")
            .chain(tables.iter().map(String::as_str))
            .map(|t| writes.get(t).copied().unwrap_or(0))
            .collect()
    }

    /// A write changed `table`: its entries (and those of views) are dropped.
    pub async fn invalidate_table(&self, table: &str) {
        {
            let mut writes = self.writes.lock().unwrap_or_else(|e| e.into_inner());
            *writes.entry(table.to_owned()).or_default() += 1;
            *writes.entry(String::new()).or_default() += 1;
        }
        for t in [tag(table), TAG_ANY.to_owned()] {
            if let Err(e) = self.cache.invalidate_tag(&t).await {
                tracing::debug!(target: "maggate", error = %e, tag = t, "read cache invalidation failed");
            }
        }
    }

    /// The schema changed: everything goes.
    pub async fn invalidate_all(&self) {
        {
            let mut writes = self.writes.lock().unwrap_or_else(|e| e.into_inner());
            for v in writes.values_mut() {
                *v += 1;
            }
            *writes.entry(String::new()).or_default() += 1;
        }
        if let Err(e) = self.cache.invalidate_prefix(KEY_PREFIX).await {
            tracing::debug!(target: "maggate", error = %e, "read cache flush failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_separate_callers_and_ignore_token_churn() {
        let h = http::HeaderMap::new();
        let a1 = serde_json::json!({"sub": "a", "role": "authenticated", "exp": 1, "iat": 1});
        let a2 = serde_json::json!({"sub": "a", "role": "authenticated", "exp": 2, "iat": 2});
        let b = serde_json::json!({"sub": "b", "role": "authenticated", "exp": 1});
        let k = |c: &serde_json::Value, q: &str| {
            ReadCache::key("authenticated", c, "/rest/v1/t", Some(q), &h)
        };
        assert_eq!(k(&a1, "id=eq.1&select=id"), k(&a2, "select=id&id=eq.1"));
        assert_ne!(k(&a1, "id=eq.1"), k(&b, "id=eq.1"));
        assert_ne!(
            ReadCache::key("anon", &a1, "/rest/v1/t", None, &h),
            ReadCache::key("service_role", &a1, "/rest/v1/t", None, &h)
        );
        // Repeated filters keep their order; different values differ.
        assert_ne!(k(&a1, "id=gt.1&id=lt.5"), k(&a1, "id=gt.5&id=lt.1"));
        let mut csv = http::HeaderMap::new();
        csv.insert("accept", http::HeaderValue::from_static("text/csv"));
        assert_ne!(
            ReadCache::key("anon", &a1, "/rest/v1/t", None, &h),
            ReadCache::key("anon", &a1, "/rest/v1/t", None, &csv)
        );
    }
}
