//! RAM: the cache role. Values are bytes; callers choose their encoding.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::Result;
use crate::part::Component;

/// Options for [`Cache::set`].
#[derive(Debug, Clone, Default)]
pub struct SetOptions {
    /// Expire after this long; `None` keeps the driver's default.
    pub ttl: Option<Duration>,
    /// Tags for [`Cache::invalidate_tag`].
    pub tags: Vec<String>,
}

/// The RAM slot's role.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is declared for the RAM slot but does not implement `Cache`",
    label = "the RAM slot takes a `Cache`",
    note = "implement `magmobo::roles::cache::Cache` (get, set, delete, invalidate_prefix, invalidate_tag) for `{Self}` with `#[magmobo::async_trait]`, or choose another slot"
)]
#[async_trait]
pub trait Cache: Component {
    /// The value under `key`, if present and not expired.
    async fn get(&self, key: &str) -> Result<Option<Bytes>>;
    /// Stores `value` under `key`.
    async fn set(&self, key: &str, value: Bytes, options: SetOptions) -> Result<()>;
    /// Removes `key`; true when it was present.
    async fn delete(&self, key: &str) -> Result<bool>;
    /// Removes every key starting with `prefix`; returns how many.
    async fn invalidate_prefix(&self, prefix: &str) -> Result<u64>;
    /// Removes every key set with `tag`; returns how many.
    async fn invalidate_tag(&self, tag: &str) -> Result<u64>;
    /// Global token buckets shared by every instance using this cache, when the driver can
    /// hold them (Redis can; an in-process cache cannot, so the default is `None`). Rate
    /// limiters share through it (see [`crate::ratelimit::RateLimiter::share`]).
    fn buckets(&self) -> Option<std::sync::Arc<dyn crate::ratelimit::BucketExchange>> {
        None
    }
}
