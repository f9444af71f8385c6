//! Sources the threat analyzer blocked and sources the policy throttles, checked at the start
//! of every request. Reads are a relaxed atomic load while nothing is blocked, so the common
//! case costs nothing.
//!
//! With Redis configured, blocks are shared across instances: a block is written to a sorted
//! set (score: expiry in ms) and every instance reads the set back on a short interval, so a
//! source blocked on one instance is refused by all within that interval. The request path
//! never waits on Redis; while Redis is away each instance keeps its own blocks.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::mpsc;

/// How often blocks are exchanged with Redis.
pub const SHARE_EVERY: Duration = Duration::from_millis(200);

/// One blocked source.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    /// Milliseconds since the Unix epoch when the block ends.
    pub until_ms: u64,
    /// Why (the incident's summary).
    pub reason: String,
}

enum Change {
    Block(IpAddr, Block),
    Unblock(IpAddr),
}

/// The blocked and throttled sources of one board.
#[derive(Default)]
pub struct Blocklist {
    blocks: RwLock<HashMap<IpAddr, Block>>,
    blocked_count: AtomicUsize,
    throttles: RwLock<HashMap<IpAddr, u64>>,
    throttled_count: AtomicUsize,
    share: Mutex<Option<mpsc::UnboundedSender<Change>>>,
}

impl std::fmt::Debug for Blocklist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blocklist")
            .field("blocked", &self.blocked_count.load(Ordering::Relaxed))
            .field("throttled", &self.throttled_count.load(Ordering::Relaxed))
            .finish()
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Blocklist {
    /// An empty list, local to this instance.
    pub fn new() -> Self {
        Self::default()
    }

    /// Blocks `source` for `period` (extending a shorter block), here and, when shared, on
    /// every instance.
    pub fn block(&self, source: IpAddr, period: Duration, reason: impl Into<String>) {
        let block = Block {
            until_ms: now_ms() + period.as_millis() as u64,
            reason: reason.into(),
        };
        if self.insert(source, block.clone())
            && let Some(share) = self
                .share
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
        {
            let _ = share.send(Change::Block(source, block));
        }
    }

    /// Inserts a block unless a longer one is there; true when it changed anything.
    fn insert(&self, source: IpAddr, block: Block) -> bool {
        let mut blocks = self.blocks.write().unwrap_or_else(|e| e.into_inner());
        if blocks
            .get(&source)
            .is_some_and(|b| b.until_ms >= block.until_ms)
        {
            return false;
        }
        blocks.insert(source, block);
        self.blocked_count.store(blocks.len(), Ordering::Relaxed);
        true
    }

    /// Lifts the block on `source` (everywhere, when shared).
    pub fn unblock(&self, source: IpAddr) {
        let mut blocks = self.blocks.write().unwrap_or_else(|e| e.into_inner());
        blocks.remove(&source);
        self.blocked_count.store(blocks.len(), Ordering::Relaxed);
        drop(blocks);
        if let Some(share) = self
            .share
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            let _ = share.send(Change::Unblock(source));
        }
    }

    /// The block on `source`, if one is in force.
    pub fn blocked(&self, source: IpAddr) -> Option<Block> {
        if self.blocked_count.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let block = self
            .blocks
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&source)
            .cloned()?;
        if block.until_ms > now_ms() {
            return Some(block);
        }
        let mut blocks = self.blocks.write().unwrap_or_else(|e| e.into_inner());
        blocks.retain(|_, b| b.until_ms > now_ms());
        self.blocked_count.store(blocks.len(), Ordering::Relaxed);
        None
    }

    /// Every block in force.
    pub fn blocks(&self) -> Vec<(IpAddr, Block)> {
        let now = now_ms();
        let blocks = self.blocks.read().unwrap_or_else(|e| e.into_inner());
        blocks
            .iter()
            .filter(|(_, b)| b.until_ms > now)
            .map(|(s, b)| (*s, b.clone()))
            .collect()
    }

    /// Throttles `source` for `period` (local to this instance).
    pub fn throttle(&self, source: IpAddr, period: Duration) {
        let until = now_ms() + period.as_millis() as u64;
        let mut throttles = self.throttles.write().unwrap_or_else(|e| e.into_inner());
        let now = now_ms();
        throttles.retain(|_, u| *u > now);
        let entry = throttles.entry(source).or_insert(until);
        *entry = (*entry).max(until);
        self.throttled_count
            .store(throttles.len(), Ordering::Relaxed);
    }

    /// Whether `source` is throttled now.
    pub fn is_throttled(&self, source: IpAddr) -> bool {
        if self.throttled_count.load(Ordering::Relaxed) == 0 {
            return false;
        }
        self.throttles
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&source)
            .is_some_and(|u| *u > now_ms())
    }

    /// Shares blocks through Redis under `namespace` (`{namespace}:blocks`), in a task that
    /// runs until the returned handle is aborted. Redis being away is logged once per outage;
    /// local blocks keep working meanwhile.
    pub fn share_through_redis(
        self: &Arc<Self>,
        url: &str,
        namespace: &str,
    ) -> Result<tokio::task::JoinHandle<()>, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let (tx, rx) = mpsc::unbounded_channel();
        *self.share.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
        let key = format!("{namespace}:blocks");
        let list = Arc::downgrade(self);
        Ok(tokio::spawn(share_loop(client, key, list, rx)))
    }
}

async fn share_loop(
    client: redis::Client,
    key: String,
    list: std::sync::Weak<Blocklist>,
    mut changes: mpsc::UnboundedReceiver<Change>,
) {
    let reasons = format!("{key}:why");
    let mut connection = None;
    let mut down = false;
    let mut tick = tokio::time::interval(SHARE_EVERY);
    let mut pending: Vec<Change> = Vec::new();
    loop {
        tick.tick().await;
        let Some(list) = list.upgrade() else { return };
        while let Ok(change) = changes.try_recv() {
            pending.push(change);
        }
        if connection.is_none() {
            match client.get_multiplexed_async_connection().await {
                Ok(c) => connection = Some(c),
                Err(error) => {
                    if !down {
                        tracing::warn!(%error, "Sentinel: Redis unreachable; blocks stay local");
                        down = true;
                    }
                    continue;
                }
            }
        }
        let Some(conn) = connection.as_mut() else {
            continue;
        };
        let mut pipe = redis::pipe();
        for change in &pending {
            match change {
                Change::Block(source, block) => {
                    pipe.cmd("ZADD")
                        .arg(&key)
                        .arg("GT")
                        .arg(block.until_ms)
                        .arg(source.to_string())
                        .ignore();
                    pipe.cmd("HSET")
                        .arg(&reasons)
                        .arg(source.to_string())
                        .arg(&block.reason)
                        .ignore();
                }
                Change::Unblock(source) => {
                    pipe.cmd("ZREM").arg(&key).arg(source.to_string()).ignore();
                    pipe.cmd("HDEL")
                        .arg(&reasons)
                        .arg(source.to_string())
                        .ignore();
                }
            }
        }
        pipe.cmd("ZREMRANGEBYSCORE")
            .arg(&key)
            .arg("-inf")
            .arg(now_ms())
            .ignore();
        pipe.cmd("ZRANGE")
            .arg(&key)
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES");
        match pipe.query_async::<(Vec<(String, f64)>,)>(conn).await {
            Ok((shared,)) => {
                if down {
                    tracing::info!("Sentinel: Redis is back; sharing blocks again");
                    down = false;
                }
                pending.clear();
                for (source, until) in shared {
                    if let Ok(source) = source.parse::<IpAddr>() {
                        let block = Block {
                            until_ms: until as u64,
                            reason: "blocked on another instance".into(),
                        };
                        list.insert(source, block);
                    }
                }
            }
            Err(error) => {
                if !down {
                    tracing::warn!(%error, "Sentinel: Redis failed; blocks stay local");
                    down = true;
                }
                connection = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_and_throttles_expire_and_lift() {
        let list = Blocklist::new();
        let a = IpAddr::from([10, 0, 0, 1]);
        let b = IpAddr::from([10, 0, 0, 2]);
        assert!(list.blocked(a).is_none());
        list.block(a, Duration::from_secs(60), "scan then injection");
        assert_eq!(
            list.blocked(a).map(|b| b.reason),
            Some("scan then injection".into())
        );
        assert!(list.blocked(b).is_none());
        list.unblock(a);
        assert!(list.blocked(a).is_none());
        list.block(b, Duration::ZERO, "expired at once");
        assert!(list.blocked(b).is_none());
        list.throttle(a, Duration::from_secs(60));
        assert!(list.is_throttled(a) && !list.is_throttled(b));
    }
}
