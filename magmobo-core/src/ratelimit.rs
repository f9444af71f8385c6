//! Token buckets, one per key, decided in memory on the request path; shared between
//! instances through a [`BucketExchange`] when the board has one (the RAM slot's Redis driver
//! offers it, see [`crate::roles::cache::Cache::buckets`]).
//!
//! Why in core: Sentinel's APIWatch (per address and identity), MagGate's AI agents (per
//! agent) and anything else that limits a rate need the same buckets, and the same way to
//! hold one limit across instances. Sharing works by exchange: a task sends what each bucket
//! spent since the last exchange to the global bucket and sets the local one to what the
//! global one has left. The request path never waits on the network, so an instance may
//! serve up to what it spends between two exchanges ([`SHARE_EVERY`]) beyond the global
//! limit; while the exchange fails, every instance keeps its own buckets and says so once in
//! the log.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

/// How often spent tokens are exchanged with the global buckets.
pub const SHARE_EVERY: Duration = Duration::from_millis(100);

/// Buckets untouched this long are forgotten.
const IDLE: Duration = Duration::from_secs(300);

/// Keys kept per shard before idle ones are swept.
const SHARD_CAPACITY: usize = 4096;

const SHARDS: usize = 16;

/// A rate: `rate` requests per second on average, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    /// Tokens added per second.
    pub rate: f64,
    /// Bucket size.
    pub burst: f64,
}

impl Limit {
    /// `rate` per second with bursts of `burst` (at least one).
    pub fn new(rate: f64, burst: f64) -> Self {
        Limit {
            rate: rate.max(f64::MIN_POSITIVE),
            burst: burst.max(1.0),
        }
    }
}

/// A wait as the whole seconds of a `Retry-After` header: rounded up, at least one.
pub fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// What one bucket spent since the last exchange.
#[derive(Debug, Clone, PartialEq)]
pub struct Spent {
    /// The global bucket's key (namespace included).
    pub key: String,
    /// Tokens spent here.
    pub used: f64,
    /// The bucket's limit (the global bucket refills at this rate, up to this burst).
    pub limit: Limit,
}

/// Where the buckets of several instances meet.
#[async_trait]
pub trait BucketExchange: Send + Sync + 'static {
    /// Spends each entry's `used` tokens from its global bucket and returns, in order, the
    /// tokens each global bucket has left (negative when overspent).
    async fn exchange(&self, spent: &[Spent]) -> crate::Result<Vec<f64>>;
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
    unsynced: f64,
    limit: Limit,
}

/// Token buckets, with a default limit and optionally one per key.
#[derive(Debug)]
pub struct RateLimiter {
    limit: Limit,
    shards: Vec<Mutex<HashMap<String, Bucket>>>,
    hasher: std::collections::hash_map::RandomState,
    syncs: AtomicU64,
}

impl RateLimiter {
    /// Buckets for `limit`.
    pub fn new(limit: Limit) -> Self {
        RateLimiter {
            limit,
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
            syncs: AtomicU64::new(0),
        }
    }

    /// The default limit.
    pub fn limit(&self) -> Limit {
        self.limit
    }

    fn shard(&self, key: &str) -> &Mutex<HashMap<String, Bucket>> {
        &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS]
    }

    /// Spends `cost` tokens of `key`'s bucket under the default limit; `Err(wait)` when it
    /// has too few.
    pub fn take(&self, key: &str, cost: f64) -> Result<(), Duration> {
        self.take_with(key, cost, self.limit)
    }

    /// Spends `cost` tokens of `key`'s bucket under `limit` (a key whose limit changed keeps
    /// its tokens, capped at the new burst); `Err(wait)` when it has too few.
    pub fn take_with(&self, key: &str, cost: f64, limit: Limit) -> Result<(), Duration> {
        let now = Instant::now();
        let mut shard = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        if shard.len() >= SHARD_CAPACITY && !shard.contains_key(key) {
            shard.retain(|_, b| now.duration_since(b.last) < IDLE);
        }
        let bucket = shard.entry(key.to_owned()).or_insert(Bucket {
            tokens: limit.burst,
            last: now,
            unsynced: 0.0,
            limit,
        });
        bucket.limit = limit;
        let elapsed = now.duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * limit.rate).min(limit.burst);
        bucket.last = now;
        if bucket.tokens >= cost {
            bucket.tokens -= cost;
            bucket.unsynced += cost;
            Ok(())
        } else {
            let wait = (cost - bucket.tokens) / limit.rate;
            Err(Duration::from_secs_f64(wait.clamp(0.0, 86_400.0)))
        }
    }

    /// Gives `cost` tokens back to `key`'s bucket (up to its burst): what was taken for
    /// work that then did not happen (a mail that could not be sent).
    pub fn give_back(&self, key: &str, cost: f64) {
        let mut shard = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        if let Some(bucket) = shard.get_mut(key) {
            bucket.tokens = (bucket.tokens + cost).min(bucket.limit.burst);
            bucket.unsynced -= cost;
        }
    }

    /// Exchanges completed so far (tests wait on it instead of sleeping blindly).
    pub fn shared_syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    /// Buckets used recently, with what they spent since the last exchange (reset to 0).
    fn drain_spent(&self, namespace: &str) -> Vec<Spent> {
        let now = Instant::now();
        let mut out = Vec::new();
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            for (key, bucket) in shard.iter_mut() {
                if now.duration_since(bucket.last) < IDLE {
                    out.push(Spent {
                        key: format!("{namespace}{key}"),
                        used: bucket.unsynced,
                        limit: bucket.limit,
                    });
                    bucket.unsynced = 0.0;
                }
            }
        }
        out
    }

    /// Sets a bucket to what the global one has left, less what was spent here meanwhile.
    fn apply_global(&self, key: &str, global: f64) {
        let mut shard = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        if let Some(bucket) = shard.get_mut(key) {
            let limit = bucket.limit;
            let elapsed = Instant::now().duration_since(bucket.last).as_secs_f64();
            let local = (bucket.tokens + elapsed * limit.rate).min(limit.burst);
            bucket.tokens = local.min(global - bucket.unsynced);
            bucket.last = Instant::now();
        }
    }

    /// Shares these buckets through `exchange`, under `namespace` + key, every
    /// [`SHARE_EVERY`], until the handle is aborted or the limiter dropped; `who` names the
    /// limiter in the log when sharing stops and resumes.
    pub fn share(
        self: &Arc<Self>,
        exchange: Arc<dyn BucketExchange>,
        namespace: &str,
        who: &'static str,
    ) -> tokio::task::JoinHandle<()> {
        let limiter = Arc::downgrade(self);
        let namespace = namespace.to_owned();
        tokio::spawn(async move {
            let mut down = false;
            let mut tick = tokio::time::interval(SHARE_EVERY);
            loop {
                tick.tick().await;
                let Some(limiter) = limiter.upgrade() else {
                    return;
                };
                let spent = limiter.drain_spent(&namespace);
                if spent.is_empty() {
                    continue;
                }
                match exchange.exchange(&spent).await {
                    Ok(left) => {
                        if down {
                            tracing::info!(limiter = who, "rate limits are shared again");
                            down = false;
                        }
                        for (spent, global) in spent.iter().zip(left) {
                            let key = spent.key.strip_prefix(namespace.as_str()).unwrap_or("");
                            limiter.apply_global(key, global);
                        }
                        limiter.syncs.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(error) => {
                        // What was spent is lost to the global bucket: the limit errs lenient.
                        if !down {
                            tracing::warn!(limiter = who, %error, "rate limits cannot be shared now; each instance keeps its own");
                            down = true;
                        }
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_says_how_long_to_wait() {
        let limiter = RateLimiter::new(Limit::new(1.0, 3.0));
        for _ in 0..3 {
            assert!(limiter.take("ip:a", 1.0).is_ok());
        }
        let wait = limiter.take("ip:a", 1.0).expect_err("over the burst");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert!(
            limiter.take("ip:b", 1.0).is_ok(),
            "other keys have their own bucket"
        );
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_secs(Duration::from_millis(2001)), 3);
    }

    #[test]
    fn keys_may_carry_their_own_limit() {
        let limiter = RateLimiter::new(Limit::new(1.0, 1.0));
        let wide = Limit::new(1.0, 5.0);
        for _ in 0..5 {
            assert!(limiter.take_with("agent:a", 1.0, wide).is_ok());
        }
        assert!(limiter.take_with("agent:a", 1.0, wide).is_err());
        let spent = limiter.drain_spent("ns:");
        assert_eq!(spent.len(), 1);
        assert_eq!(
            (spent[0].key.as_str(), spent[0].used, spent[0].limit),
            ("ns:agent:a", 5.0, wide)
        );
    }

    #[test]
    fn tokens_given_back_can_be_taken_again() {
        let limiter = RateLimiter::new(Limit::new(0.001, 1.0));
        assert!(limiter.take("k", 1.0).is_ok());
        assert!(limiter.take("k", 1.0).is_err());
        limiter.give_back("k", 1.0);
        assert!(limiter.take("k", 1.0).is_ok());
        limiter.give_back("k", 5.0);
        assert!(limiter.take("k", 1.0).is_ok());
        assert!(limiter.take("k", 1.0).is_err(), "never above the burst");
    }

    #[test]
    fn the_global_bucket_caps_the_local_one() {
        let limiter = RateLimiter::new(Limit::new(0.001, 10.0));
        assert!(limiter.take("k", 2.0).is_ok());
        // Another instance spent the rest: the global bucket has nothing left.
        limiter.apply_global("k", 0.0);
        assert!(limiter.take("k", 1.0).is_err());
    }
}
