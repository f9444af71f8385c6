//! The Redis cache: values under `<prefix>k:<key>` set with `SET PX`, tags as Redis sets under
//! `<prefix>t:<tag>`, prefix invalidation by `SCAN MATCH` + `UNLINK` in batches (never `KEYS`,
//! which blocks the server).
//!
//! Redis is treated as optional at run time: when a call fails the cache degrades to
//! pass-through (`get` misses, `set`/`delete` do nothing and return Ok), logs that once, and
//! reports degraded health. The redis `ConnectionManager` reconnects by itself; the first call
//! that succeeds again (or a health check's `PING`) ends the degraded state. Invalidations are
//! the exception: they return an error while Redis is away, because a silently skipped
//! invalidation would serve stale data once Redis returns.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use magmobo_core::board::{BoardBuilder, BoardContext};
use magmobo_core::prelude::*;
use magmobo_core::roles::cache::SetOptions;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::{CacheStats, Counters};

/// Default key prefix; instances sharing a cache must use the same one.
pub const DEFAULT_PREFIX: &str = "magmobo:cache:";

/// Keys per `SCAN` round and per `UNLINK`, small enough not to stall Redis.
const BATCH: usize = 500;

const NAME: &str = "RedisCache";

/// A Redis-backed cache shared by board instances (feature `redis`).
pub struct RedisCache {
    url: String,
    prefix: String,
    default_ttl: Option<Duration>,
    timeout: Duration,
    connection: tokio::sync::OnceCell<ConnectionManager>,
    degraded: AtomicBool,
    counters: Counters,
    /// Rate-limit buckets under `<prefix>rl:`, made on first use.
    buckets: std::sync::OnceLock<Option<std::sync::Arc<crate::RedisBuckets>>>,
}

impl std::fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCache")
            .field("prefix", &self.prefix)
            .field("default_ttl", &self.default_ttl)
            .finish_non_exhaustive()
    }
}

impl RedisCache {
    /// A cache on the Redis server at `url` (e.g. `redis://127.0.0.1:6379`). Nothing connects
    /// before the board's `init`.
    pub fn new(url: impl Into<String>) -> Self {
        RedisCache {
            url: url.into(),
            prefix: DEFAULT_PREFIX.to_owned(),
            default_ttl: None,
            timeout: Duration::from_millis(500),
            connection: tokio::sync::OnceCell::new(),
            degraded: AtomicBool::new(false),
            counters: Counters::default(),
            buckets: std::sync::OnceLock::new(),
        }
    }

    /// Uses another key prefix, to keep applications apart on one Redis.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Entries set without a TTL expire after `ttl` (otherwise they live until evicted).
    pub fn with_default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = Some(ttl);
        self
    }

    /// How long one Redis call may take before it counts as an outage (default 500 ms): the
    /// most a request waits on a Redis that went away.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Hit, miss and absorbed-error counters.
    pub fn stats(&self) -> CacheStats {
        self.counters.snapshot()
    }

    /// True while Redis is unreachable and the cache passes through.
    pub fn is_degraded(&self) -> bool {
        self.degraded.load(Ordering::Relaxed)
    }

    /// Connects now if `init` has not (for use without a board); idempotent.
    pub async fn connect(&self) -> Result<()> {
        self.connection
            .get_or_try_init(|| async {
                let client = redis::Client::open(self.url.as_str()).map_err(|e| {
                    Error::part_with(NAME, format!("invalid Redis URL '{}'", self.url), e)
                })?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.timeout))
                    .set_response_timeout(Some(self.timeout))
                    .set_number_of_retries(2)
                    .set_max_delay(Duration::from_secs(2));
                client
                    .get_connection_manager_with_config(config)
                    .await
                    .map_err(|e| {
                        Error::part_with(
                            NAME,
                            format!(
                                "cannot reach Redis at {}: start it or fix the URL",
                                self.url
                            ),
                            e,
                        )
                    })
            })
            .await
            .map(|_| ())
    }

    fn connection(&self) -> Result<ConnectionManager> {
        self.connection.get().cloned().ok_or_else(|| {
            Error::part(
                NAME,
                "not connected: boot the board (or call connect) first",
            )
        })
    }

    fn data_key(&self, key: &str) -> String {
        format!("{}k:{key}", self.prefix)
    }

    fn tag_key(&self, tag: &str) -> String {
        format!("{}t:{tag}", self.prefix)
    }

    /// Records the outcome of a Redis call, logging only the transitions.
    fn observe<T>(&self, outcome: redis::RedisResult<T>) -> Option<T> {
        match outcome {
            Ok(value) => {
                if self.degraded.swap(false, Ordering::Relaxed) {
                    tracing::info!(url = %self.url, "Redis is back; the cache is active again");
                }
                Some(value)
            }
            Err(error) => {
                self.counters.error();
                if !self.degraded.swap(true, Ordering::Relaxed) {
                    tracing::warn!(url = %self.url, %error, "Redis unreachable; the cache passes through until it returns");
                }
                None
            }
        }
    }

    fn unavailable(&self, what: &str) -> Error {
        Error::part(
            NAME,
            format!(
                "cannot {what} while Redis at {} is unreachable; retry once it is back",
                self.url
            ),
        )
    }
}

impl ComponentMeta for RedisCache {
    fn component_info(&self) -> ComponentInfo {
        let mut info = ComponentInfo::new(NAME, env!("CARGO_PKG_VERSION"), Slot::Ram);
        info.capabilities = vec![
            "ttl".into(),
            "tags".into(),
            "prefix".into(),
            "shared".into(),
        ];
        info
    }
}

impl Plug for RedisCache {
    fn plug(self, board: &mut BoardBuilder) {
        board.put_ram(self);
    }
}

#[async_trait]
impl Component for RedisCache {
    async fn self_test(&self) -> Result<String> {
        self.connect().await?;
        let mut conn = self.connection()?;
        let started = std::time::Instant::now();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map_err(|e| {
                Error::part_with(
                    NAME,
                    format!("Redis at {} did not answer PING", self.url),
                    e,
                )
            })?;
        Ok(format!(
            "Redis, prefix '{}', {:.1} ms round trip",
            self.prefix,
            started.elapsed().as_secs_f64() * 1000.0
        ))
    }

    async fn init(&self, _board: &BoardContext) -> Result<()> {
        self.connect().await
    }

    async fn health(&self) -> Health {
        let stats = self.stats().summary();
        let Ok(mut conn) = self.connection() else {
            return Health::failed("not connected: the board has not booted");
        };
        // A probe, so that health notices recovery even when no traffic arrives.
        let probe = redis::cmd("PING").query_async::<String>(&mut conn).await;
        if self.observe(probe).is_some() {
            Health::ok().with_detail(format!("{}; {stats}", self.url))
        } else {
            Health::degraded(format!(
                "Redis at {} unreachable: passing through (every get misses); {stats}",
                self.url
            ))
        }
    }
}

#[async_trait]
impl Cache for RedisCache {
    fn buckets(&self) -> Option<std::sync::Arc<dyn magmobo_core::ratelimit::BucketExchange>> {
        let buckets = self.buckets.get_or_init(|| {
            crate::RedisBuckets::new(&self.url, format!("{}rl:", self.prefix))
                .ok()
                .map(std::sync::Arc::new)
        });
        buckets
            .clone()
            .map(|b| b as std::sync::Arc<dyn magmobo_core::ratelimit::BucketExchange>)
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let mut conn = self.connection()?;
        let outcome = redis::cmd("GET")
            .arg(self.data_key(key))
            .query_async::<Option<Vec<u8>>>(&mut conn)
            .await;
        let found = self.observe(outcome).flatten().map(Bytes::from);
        self.counters.record(found.is_some());
        Ok(found)
    }

    async fn set(&self, key: &str, value: Bytes, options: SetOptions) -> Result<()> {
        let mut conn = self.connection()?;
        let data_key = self.data_key(key);
        let mut pipe = redis::pipe();
        pipe.atomic();
        let set = pipe.cmd("SET").arg(&data_key).arg(value.as_ref());
        // At least 1 ms: PX 0 is an error.
        let millis = options
            .ttl
            .or(self.default_ttl)
            .map(|ttl| u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1));
        if let Some(millis) = millis {
            set.arg("PX").arg(millis);
        }
        set.ignore();
        for tag in &options.tags {
            let tag_key = self.tag_key(tag);
            pipe.cmd("SADD").arg(&tag_key).arg(&data_key).ignore();
            // A tag set lives as long as its longest-lived member (NX sets a first expiry, GT
            // only extends it; both need Redis 7), so sets of expired entries do not pile up.
            match millis {
                Some(millis) => {
                    pipe.cmd("PEXPIRE")
                        .arg(&tag_key)
                        .arg(millis)
                        .arg("NX")
                        .ignore();
                    pipe.cmd("PEXPIRE")
                        .arg(&tag_key)
                        .arg(millis)
                        .arg("GT")
                        .ignore();
                }
                None => {
                    pipe.cmd("PERSIST").arg(&tag_key).ignore();
                }
            }
        }
        let outcome = pipe.query_async::<()>(&mut conn).await;
        self.observe(outcome);
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let mut conn = self.connection()?;
        let outcome = redis::cmd("UNLINK")
            .arg(self.data_key(key))
            .query_async::<u64>(&mut conn)
            .await;
        Ok(self.observe(outcome).is_some_and(|n| n > 0))
    }

    async fn invalidate_prefix(&self, prefix: &str) -> Result<u64> {
        let mut conn = self.connection()?;
        let pattern = format!("{}*", glob_escape(&self.data_key(prefix)));
        let mut cursor: u64 = 0;
        let mut removed = 0;
        loop {
            let outcome = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(BATCH)
                .query_async::<(u64, Vec<String>)>(&mut conn)
                .await;
            let (next, keys) = self
                .observe(outcome)
                .ok_or_else(|| self.unavailable("invalidate a prefix"))?;
            for batch in keys.chunks(BATCH) {
                let outcome = redis::cmd("UNLINK")
                    .arg(batch)
                    .query_async::<u64>(&mut conn)
                    .await;
                removed += self
                    .observe(outcome)
                    .ok_or_else(|| self.unavailable("invalidate a prefix"))?;
            }
            if next == 0 {
                return Ok(removed);
            }
            cursor = next;
        }
    }

    async fn invalidate_tag(&self, tag: &str) -> Result<u64> {
        let mut conn = self.connection()?;
        let tag_key = self.tag_key(tag);
        let mut removed = 0;
        loop {
            // SPOP in batches: members leave the set as they are handled, so a concurrent
            // `set` with this tag is either removed now or stays tagged for the next time.
            let outcome = redis::cmd("SPOP")
                .arg(&tag_key)
                .arg(BATCH)
                .query_async::<Vec<String>>(&mut conn)
                .await;
            let keys = self
                .observe(outcome)
                .ok_or_else(|| self.unavailable("invalidate a tag"))?;
            if keys.is_empty() {
                return Ok(removed);
            }
            let outcome = redis::cmd("UNLINK")
                .arg(&keys)
                .query_async::<u64>(&mut conn)
                .await;
            removed += self
                .observe(outcome)
                .ok_or_else(|| self.unavailable("invalidate a tag"))?;
        }
    }
}

/// Escapes Redis glob metacharacters so a prefix matches literally.
fn glob_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    #[test]
    fn glob_metacharacters_are_escaped() {
        let cases = [
            ("a:b", "a:b"),
            ("a*", "a\\*"),
            ("[x]?", "\\[x\\]\\?"),
            ("\\", "\\\\"),
        ];
        for (input, expected) in cases {
            assert_eq!(super::glob_escape(input), expected, "{input}");
        }
    }
}
