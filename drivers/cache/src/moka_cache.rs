//! The in-process cache on moka: bounded by entry count, expiring by a default TTL or a
//! per-entry one (moka's [`Expiry`]), with tag and prefix invalidation.
//!
//! Tags and prefixes are invalidated by iterating the entries rather than keeping a tag
//! index: an index would have to follow moka's own evictions and expirations (through an
//! eviction listener, racing with inserts) to stay correct, while a scan is trivially correct,
//! bounded by the cache's capacity, and invalidation is rare next to `get`/`set`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use magmobo_core::board::{BoardBuilder, BoardContext};
use magmobo_core::prelude::*;
use magmobo_core::roles::cache::SetOptions;
use moka::Expiry;

use crate::{CacheStats, Counters};

#[derive(Clone)]
struct Entry {
    value: Bytes,
    ttl: Option<Duration>,
    tags: Arc<[String]>,
}

/// Each entry carries its own TTL; `None` there means the cache's default.
struct PerEntryTtl {
    default_ttl: Option<Duration>,
}

impl Expiry<String, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _key: &String, entry: &Entry, _now: Instant) -> Option<Duration> {
        entry.ttl.or(self.default_ttl)
    }

    fn expire_after_update(
        &self,
        _key: &String,
        entry: &Entry,
        _now: Instant,
        _current: Option<Duration>,
    ) -> Option<Duration> {
        // An overwrite starts a fresh lifetime, like Redis `SET PX`.
        entry.ttl.or(self.default_ttl)
    }
}

/// An in-process cache for one instance (feature `moka`).
pub struct MokaCache {
    inner: moka::future::Cache<String, Entry>,
    capacity: u64,
    default_ttl: Option<Duration>,
    counters: Counters,
}

impl std::fmt::Debug for MokaCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MokaCache")
            .field("capacity", &self.capacity)
            .field("default_ttl", &self.default_ttl)
            .finish_non_exhaustive()
    }
}

impl MokaCache {
    /// A cache holding at most `capacity` entries, which never expire unless given a TTL.
    pub fn new(capacity: u64) -> Self {
        Self::build(capacity, None)
    }

    /// Entries set without a TTL expire after `ttl`.
    pub fn with_default_ttl(self, ttl: Duration) -> Self {
        Self::build(self.capacity, Some(ttl))
    }

    fn build(capacity: u64, default_ttl: Option<Duration>) -> Self {
        let inner = moka::future::Cache::builder()
            .max_capacity(capacity)
            .expire_after(PerEntryTtl { default_ttl })
            .build();
        MokaCache {
            inner,
            capacity,
            default_ttl,
            counters: Counters::default(),
        }
    }

    /// Hit and miss counters.
    pub fn stats(&self) -> CacheStats {
        self.counters.snapshot()
    }

    async fn remove_where(&self, matches: impl Fn(&str, &Entry) -> bool) -> u64 {
        let keys: Vec<Arc<String>> = self
            .inner
            .iter()
            .filter(|(key, entry)| matches(key, entry))
            .map(|(key, _)| key)
            .collect();
        let mut removed = 0;
        for key in keys {
            if self.inner.remove(key.as_str()).await.is_some() {
                removed += 1;
            }
        }
        removed
    }
}

impl ComponentMeta for MokaCache {
    fn component_info(&self) -> ComponentInfo {
        let mut info = ComponentInfo::new("MokaCache", env!("CARGO_PKG_VERSION"), Slot::Ram);
        info.capabilities = vec!["ttl".into(), "tags".into(), "prefix".into()];
        info
    }
}

impl Plug for MokaCache {
    fn plug(self, board: &mut BoardBuilder) {
        board.put_ram(self);
    }
}

#[async_trait]
impl Component for MokaCache {
    async fn self_test(&self) -> Result<String> {
        let ttl = match self.default_ttl {
            Some(ttl) => format!("default TTL {ttl:?}"),
            None => "no default TTL".to_owned(),
        };
        Ok(format!("in-process, {} entries max, {ttl}", self.capacity))
    }

    async fn init(&self, _board: &BoardContext) -> Result<()> {
        Ok(())
    }

    async fn health(&self) -> Health {
        Health::ok().with_detail(format!(
            "{} entries; {}",
            self.inner.entry_count(),
            self.stats().summary()
        ))
    }
}

#[async_trait]
impl Cache for MokaCache {
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let found = self.inner.get(key).await.map(|entry| entry.value);
        self.counters.record(found.is_some());
        Ok(found)
    }

    async fn set(&self, key: &str, value: Bytes, options: SetOptions) -> Result<()> {
        let entry = Entry {
            value,
            ttl: options.ttl,
            tags: options.tags.into(),
        };
        self.inner.insert(key.to_owned(), entry).await;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        Ok(self.inner.remove(key).await.is_some())
    }

    async fn invalidate_prefix(&self, prefix: &str) -> Result<u64> {
        Ok(self.remove_where(|key, _| key.starts_with(prefix)).await)
    }

    async fn invalidate_tag(&self, tag: &str) -> Result<u64> {
        Ok(self
            .remove_where(|_, entry| entry.tags.iter().any(|t| t == tag))
            .await)
    }
}
