//! [`RedisBuckets`]: the global token buckets of [`magmobo_core::ratelimit`] in Redis, so one
//! limit holds across every instance sharing the server. Each exchange is one pipeline with
//! one Lua script per bucket, refilled from Redis' own clock (instances' clocks may differ)
//! and run atomically.

use magmobo_core::ratelimit::{BucketExchange, Spent};
use magmobo_core::{Error, Result, async_trait};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

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

const NAME: &str = "RedisBuckets";

/// Global token buckets in Redis (feature `redis`).
pub struct RedisBuckets {
    client: redis::Client,
    prefix: String,
    connection: tokio::sync::OnceCell<ConnectionManager>,
}

impl std::fmt::Debug for RedisBuckets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct(NAME)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisBuckets {
    /// Buckets on the Redis server at `url`, their keys starting with `prefix`. Nothing
    /// connects before the first exchange; a URL Redis cannot parse is refused here.
    pub fn new(url: &str, prefix: impl Into<String>) -> Result<RedisBuckets> {
        let client = redis::Client::open(url).map_err(|e| {
            Error::part_with(
                NAME,
                format!("invalid Redis URL '{}'", magmobo_core::redact_url(url)),
                e,
            )
        })?;
        Ok(RedisBuckets {
            client,
            prefix: prefix.into(),
            connection: tokio::sync::OnceCell::new(),
        })
    }

    async fn connection(&self) -> Result<ConnectionManager> {
        self.connection
            .get_or_try_init(|| async {
                let timeout = std::time::Duration::from_millis(500);
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout))
                    .set_number_of_retries(2);
                self.client
                    .get_connection_manager_with_config(config)
                    .await
                    .map_err(|e| Error::part_with(NAME, "cannot reach Redis", e))
            })
            .await
            .cloned()
    }
}

#[async_trait]
impl BucketExchange for RedisBuckets {
    async fn exchange(&self, spent: &[Spent]) -> Result<Vec<f64>> {
        let mut conn = self.connection().await?;
        let mut pipe = redis::pipe();
        for s in spent {
            pipe.cmd("EVAL")
                .arg(SCRIPT)
                .arg(1)
                .arg(format!("{}{}", self.prefix, s.key))
                .arg(s.limit.rate)
                .arg(s.limit.burst)
                .arg(s.used);
        }
        let left: Vec<String> = pipe
            .query_async(&mut conn)
            .await
            .map_err(|e| Error::part_with(NAME, "the bucket exchange failed", e))?;
        Ok(left
            .iter()
            .map(|l| l.parse::<f64>().unwrap_or(f64::INFINITY))
            .collect())
    }
}
