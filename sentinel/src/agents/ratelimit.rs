//! Token buckets, one per key (`ip:…`, `id:…`), decided in memory on the request path.
//!
//! Shared across instances through Redis when configured: a task flushes what each bucket
//! spent since the last flush into a global bucket in Redis (one Lua script per key, run
//! atomically, all keys in one pipeline) and sets the local bucket to what the global one has
//! left. The request path never waits on Redis, so an instance may serve up to what it spends
//! between two flushes ([`SHARE_EVERY`]) beyond the global limit; while Redis is away every
//! instance keeps its own buckets and says so once in the log.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often spent tokens are exchanged with Redis.
pub const SHARE_EVERY: Duration = Duration::from_millis(100);

/// Buckets untouched this long are forgotten.
const IDLE: Duration = Duration::from_secs(300);

/// Keys kept per shard before idle ones are swept.
const SHARD_CAPACITY: usize = 4096;

const SHARDS: usize = 16;

/// The global bucket: refill from Redis' clock, spend, clamp, return what is left.
const SCRIPT: &str = r#"
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local used = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local b = redis.call('HMGET', KEYS[1], 't', 'at')
local tokens = tonumber(b[1]) or burst
local at = tonumber(b[2]) or now
if now > at then
  tokens = math.min(burst, tokens + (now - at) / 1000 * rate)
  at = now
end
tokens = math.max(-burst, tokens - used)
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'at', tostring(at))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return tostring(tokens)
"#;

/// A rate: `rate` requests per second on average, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    /// Tokens added per second.
    pub rate: f64,
    /// Bucket size.
    pub burst: f64,
}

impl Limit {
    /// `rate` per second with bursts of `burst`.
    pub fn new(rate: f64, burst: f64) -> Self {
        Limit {
            rate: rate.max(f64::MIN_POSITIVE),
            burst: burst.max(1.0),
        }
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
    unsynced: f64,
}

/// Token buckets for one limit.
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

    /// The limit.
    pub fn limit(&self) -> Limit {
        self.limit
    }

    fn shard(&self, key: &str) -> &Mutex<HashMap<String, Bucket>> {
        &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS]
    }

    /// Spends `cost` tokens of `key`'s bucket; `Err(wait)` when it has too few.
    pub fn take(&self, key: &str, cost: f64) -> Result<(), Duration> {
        let now = Instant::now();
        let mut shard = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        if shard.len() >= SHARD_CAPACITY && !shard.contains_key(key) {
            shard.retain(|_, b| now.duration_since(b.last) < IDLE);
        }
        let limit = self.limit;
        let bucket = shard.entry(key.to_owned()).or_insert(Bucket {
            tokens: limit.burst,
            last: now,
            unsynced: 0.0,
        });
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

    /// Flushes completed with Redis so far (tests wait on it instead of sleeping blindly).
    pub fn shared_syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    /// Buckets used recently, with what they spent since the last flush (reset to 0).
    fn drain_spent(&self) -> Vec<(String, f64)> {
        let now = Instant::now();
        let mut out = Vec::new();
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            for (key, bucket) in shard.iter_mut() {
                if now.duration_since(bucket.last) < IDLE {
                    out.push((key.clone(), bucket.unsynced));
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
            let elapsed = Instant::now().duration_since(bucket.last).as_secs_f64();
            let local = (bucket.tokens + elapsed * self.limit.rate).min(self.limit.burst);
            bucket.tokens = local.min(global - bucket.unsynced);
            bucket.last = Instant::now();
        }
    }

    /// Shares these buckets through Redis under `{namespace}:rl:{key}` until the handle is
    /// aborted.
    pub fn share_through_redis(
        self: &Arc<Self>,
        url: &str,
        namespace: &str,
    ) -> Result<tokio::task::JoinHandle<()>, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let limiter = Arc::downgrade(self);
        let prefix = format!("{namespace}:rl:");
        Ok(tokio::spawn(async move {
            let mut connection = None;
            let mut down = false;
            let mut tick = tokio::time::interval(SHARE_EVERY);
            loop {
                tick.tick().await;
                let Some(limiter) = limiter.upgrade() else {
                    return;
                };
                if connection.is_none() {
                    match client.get_multiplexed_async_connection().await {
                        Ok(c) => connection = Some(c),
                        Err(error) => {
                            if !down {
                                tracing::warn!(%error, "APIWatch: Redis unreachable; rate limits are per instance");
                                down = true;
                            }
                            continue;
                        }
                    }
                }
                let Some(conn) = connection.as_mut() else {
                    continue;
                };
                let spent = limiter.drain_spent();
                if spent.is_empty() {
                    continue;
                }
                let mut pipe = redis::pipe();
                for (key, used) in &spent {
                    pipe.cmd("EVAL")
                        .arg(SCRIPT)
                        .arg(1)
                        .arg(format!("{prefix}{key}"))
                        .arg(limiter.limit.rate)
                        .arg(limiter.limit.burst)
                        .arg(*used);
                }
                match pipe.query_async::<Vec<String>>(conn).await {
                    Ok(left) => {
                        if down {
                            tracing::info!("APIWatch: Redis is back; rate limits are shared again");
                            down = false;
                        }
                        for ((key, _), global) in spent.iter().zip(left) {
                            if let Ok(global) = global.parse::<f64>() {
                                limiter.apply_global(key, global);
                            }
                        }
                        limiter.syncs.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(error) => {
                        if !down {
                            tracing::warn!(%error, "APIWatch: Redis failed; rate limits are per instance");
                            down = true;
                        }
                        // What was spent is lost to the global bucket: the limit errs lenient.
                        connection = None;
                    }
                }
            }
        }))
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
}
