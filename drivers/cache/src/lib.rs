//! RAM slot drivers: [`MokaCache`] (in-process, feature `moka`) and [`RedisCache`] (shared by
//! instances, feature `redis`), both implementing [`magmobo_core::roles::cache::Cache`].
//!
//! The two differ in what they promise when things go wrong: the moka cache cannot go away,
//! while the Redis cache treats Redis as optional at run time and passes through (every `get`
//! a miss, writes dropped) until Redis returns, because a cache outage must not become an API
//! outage. Both count hits and misses the same way, so dashboards compare them directly.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

#[cfg(feature = "moka")]
mod moka_cache;
#[cfg(feature = "redis")]
mod redis_buckets;
#[cfg(feature = "redis")]
mod redis_cache;

#[cfg(feature = "moka")]
pub use moka_cache::MokaCache;
#[cfg(feature = "redis")]
pub use redis_buckets::RedisBuckets;
#[cfg(feature = "redis")]
pub use redis_cache::{DEFAULT_PREFIX, RedisCache};

/// Hit and miss counters of a cache since it was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CacheStats {
    /// `get` calls that found a value.
    pub hits: u64,
    /// `get` calls that found nothing (including pass-through gets while degraded).
    pub misses: u64,
    /// Backend errors absorbed by pass-through (always 0 for the moka cache).
    pub errors: u64,
}

impl CacheStats {
    /// Hits over all gets, 0 when there were none.
    pub fn hit_ratio(&self) -> f64 {
        let total = self.hits + self.misses;
        if total == 0 {
            0.0
        } else {
            self.hits as f64 / total as f64
        }
    }

    /// The line shown in health details.
    pub fn summary(&self) -> String {
        format!(
            "{} hits, {} misses, {} errors",
            self.hits, self.misses, self.errors
        )
    }
}

/// Lock-free counters behind [`CacheStats`]; relaxed ordering suffices for statistics.
#[derive(Debug, Default)]
#[cfg_attr(not(any(feature = "moka", feature = "redis")), allow(dead_code))]
pub(crate) struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    errors: AtomicU64,
}

#[cfg_attr(not(any(feature = "moka", feature = "redis")), allow(dead_code))]
impl Counters {
    pub(crate) fn record(&self, hit: bool) {
        let counter = if hit { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }
}
