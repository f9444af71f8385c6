//! The Redis queue: each queue is a Redis stream read through a consumer group, so any
//! number of workers in any number of processes share it, and a job a dead worker held is
//! claimed again (`XAUTOCLAIM`) once it has been pending longer than the visibility timeout.
//!
//! Keys of queue `q` (the `{q}` hash tag keeps them in one cluster slot):
//! `{prefix}:{q}:ready` (stream of runnable jobs), `:delayed` (sorted set by run time: delayed
//! jobs and retries waiting for their backoff), `:attempts` (hash: deliveries per stream
//! entry, so a crash counts as an attempt), `:dead` (list of dead-lettered jobs, newest
//! first, capped) and `:idem:<key>` (idempotency keys, held while the job is pending).
//! Multi-key steps run as Lua scripts, so a retry or a dead-letter is atomic with its
//! acknowledgement, and only the consumer holding an entry may finish it.
//!
//! Durability is Redis's: with AOF or RDB persistence jobs survive a Redis restart; they
//! always survive the board being killed. Times are the workers' clocks (milliseconds).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use magmobo_core::board::{BoardBuilder, BoardContext};
use magmobo_core::prelude::*;
use magmobo_core::roles::queue::{EnqueueOptions, Job, JobHandler};
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamReadOptions, StreamReadReply,
};
use serde::{Deserialize, Serialize};

use crate::worker::{Backend, Claimed, Workers};
use crate::{DeadJob, QueueOptions};

const NAME: &str = "RedisQueue";
const GROUP: &str = "workers";
/// Dead-lettered jobs kept per queue.
const DEAD_CAP: isize = 10_000;
/// How long an idempotency key outlives a job that never finishes (a safety net).
const IDEMPOTENCY_TTL_SECS: u64 = 7 * 24 * 3600;

/// A Redis-streams job queue (feature `redis`).
pub struct RedisQueue {
    url: String,
    prefix: String,
    options: QueueOptions,
    workers: Workers,
    backend: OnceLock<Arc<RedisBackend>>,
}

impl std::fmt::Debug for RedisQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisQueue")
            .field("prefix", &self.prefix)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// What one stream entry carries.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    id: String,
    payload: serde_json::Value,
    max_attempts: u32,
    /// Attempts made before this entry was written (retries re-enter the stream).
    done: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct DeadEntry {
    job: Job,
    error: String,
    failed_at_ms: u64,
}

/// A claimed job: where its entry is, to finish it.
struct Held {
    queue: String,
    entry_id: String,
    entry: Entry,
}

struct RedisBackend {
    conn: ConnectionManager,
    prefix: String,
    consumer: String,
    visibility: Duration,
    /// Attempts before dead-letter when the enqueue does not say.
    max_attempts: u32,
    groups: Mutex<HashSet<String>>,
    held: Mutex<HashMap<String, Held>>,
    enqueue_script: redis::Script,
    promote_script: redis::Script,
    finish_script: redis::Script,
}

impl RedisQueue {
    /// A queue at `url` (`redis://host:port/db`) with default options.
    pub fn new(url: impl Into<String>) -> Self {
        Self::with_options(url, QueueOptions::default())
    }

    /// A queue at `url` with these retry, timeout and polling settings.
    pub fn with_options(url: impl Into<String>, options: QueueOptions) -> Self {
        RedisQueue {
            url: url.into(),
            prefix: "magmobo:jobs".into(),
            workers: Workers::new(NAME, options.clone()),
            options,
            backend: OnceLock::new(),
        }
    }

    /// Keys start with `prefix` (default `magmobo:jobs`), so boards can share a Redis.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Connects (what the board's `init` does).
    pub async fn install(&self) -> Result<()> {
        if self.backend.get().is_some() {
            return Ok(());
        }
        let client = redis::Client::open(self.url.as_str())
            .map_err(|e| Error::part_with(NAME, format!("'{}' is not a Redis URL", self.url), e))?;
        let conn = ConnectionManager::new(client).await.map_err(|e| {
            Error::part_with(
                NAME,
                format!(
                    "cannot reach Redis at {}: start it or fix the URL",
                    self.url
                ),
                e,
            )
        })?;
        let _ = self.backend.set(Arc::new(RedisBackend {
            conn,
            prefix: self.prefix.clone(),
            consumer: uuid::Uuid::new_v4().to_string(),
            visibility: self.options.visibility_timeout,
            max_attempts: self.options.max_attempts,
            groups: Mutex::new(HashSet::new()),
            held: Mutex::new(HashMap::new()),
            enqueue_script: redis::Script::new(ENQUEUE_LUA),
            promote_script: redis::Script::new(PROMOTE_LUA),
            finish_script: redis::Script::new(FINISH_LUA),
        }));
        Ok(())
    }

    fn backend(&self) -> Result<&Arc<RedisBackend>> {
        self.backend.get().ok_or_else(|| {
            Error::part(
                NAME,
                "not connected: boot the board (or call install) first",
            )
        })
    }

    fn dyn_backend(&self) -> Option<Arc<dyn Backend>> {
        self.backend.get().map(|b| b.clone() as Arc<dyn Backend>)
    }

    /// Starts the registered workers and schedules (what the board's `start` does).
    pub fn start_workers(&self) -> Result<()> {
        let backend = self.dyn_backend().ok_or_else(|| {
            Error::part(
                NAME,
                "not connected: boot the board (or call install) first",
            )
        })?;
        self.workers.start(&backend);
        Ok(())
    }

    /// Stops workers, waiting for running jobs up to the mode's deadline.
    pub async fn stop_workers(&self, mode: StopMode) -> bool {
        self.workers.stop(mode).await
    }

    /// Jobs dead-lettered on `queue`, oldest first.
    pub async fn dead_letters(&self, queue: &str) -> Result<Vec<DeadJob>> {
        let b = self.backend()?;
        let mut conn = b.conn.clone();
        let raw: Vec<String> = conn
            .lrange(b.key(queue, "dead"), 0, -1)
            .await
            .map_err(redis_error)?;
        let mut out: Vec<DeadJob> = raw
            .iter()
            .filter_map(|s| serde_json::from_str::<DeadEntry>(s).ok())
            .map(|d| DeadJob {
                job: d.job,
                error: d.error,
                failed_at: UNIX_EPOCH + Duration::from_millis(d.failed_at_ms),
            })
            .collect();
        out.reverse();
        Ok(out)
    }

    /// Jobs waiting (runnable, delayed or being retried) or running on `queue`.
    pub async fn pending(&self, queue: &str) -> Result<u64> {
        let b = self.backend()?;
        let mut conn = b.conn.clone();
        let (ready, delayed): (u64, u64) = redis::pipe()
            .xlen(b.key(queue, "ready"))
            .zcard(b.key(queue, "delayed"))
            .query_async(&mut conn)
            .await
            .map_err(redis_error)?;
        Ok(ready + delayed)
    }
}

fn redis_error(e: redis::RedisError) -> Error {
    Error::part_with(NAME, "Redis command failed", e)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// KEYS: ready, delayed, idempotency key. ARGV: entry, run_at_ms (0 = now), ttl, id,
/// has_key. Returns the id of the job (an existing one for a repeated key).
const ENQUEUE_LUA: &str = r"
if ARGV[5] == '1' then
  local existing = redis.call('GET', KEYS[3])
  if existing then return existing end
  redis.call('SET', KEYS[3], ARGV[4], 'EX', ARGV[3])
end
if tonumber(ARGV[2]) > 0 then
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
else
  redis.call('XADD', KEYS[1], '*', 'job', ARGV[1])
end
return ARGV[4]
";

/// KEYS: delayed, ready. ARGV: now_ms, limit. Moves due jobs into the stream.
const PROMOTE_LUA: &str = r"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, m in ipairs(due) do
  redis.call('ZREM', KEYS[1], m)
  redis.call('XADD', KEYS[2], '*', 'job', m)
end
return #due
";

/// KEYS: ready, attempts, delayed, dead, idempotency key. ARGV: group, entry id, consumer,
/// mode (done | retry | dead), retry_at_ms, member. Finishes an entry only while this
/// consumer holds it (a worker whose hold expired must not finish a newer delivery).
const FINISH_LUA: &str = r"
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if #p == 0 or p[1][2] ~= ARGV[3] then return 0 end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('HDEL', KEYS[2], ARGV[2])
if ARGV[4] == 'retry' then
  redis.call('ZADD', KEYS[3], ARGV[5], ARGV[6])
else
  redis.call('DEL', KEYS[5])
  if ARGV[4] == 'dead' then
    redis.call('LPUSH', KEYS[4], ARGV[6])
    redis.call('LTRIM', KEYS[4], 0, tonumber(ARGV[7]) - 1)
  end
end
return 1
";

impl RedisBackend {
    /// `prefix:{queue}:part`: the braces are a cluster hash tag.
    fn key(&self, queue: &str, part: &str) -> String {
        format!("{}:{{{queue}}}:{part}", self.prefix)
    }

    fn idempotency_key(&self, queue: &str, key: Option<&str>) -> String {
        match key {
            Some(k) => format!("{}:{{{queue}}}:idem:{k}", self.prefix),
            None => format!("{}:{{{queue}}}:idem:", self.prefix),
        }
    }

    async fn ensure_group(&self, queue: &str) -> Result<()> {
        if self
            .groups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(queue)
        {
            return Ok(());
        }
        let mut conn = self.conn.clone();
        let created: redis::RedisResult<()> = conn
            .xgroup_create_mkstream(self.key(queue, "ready"), GROUP, "0")
            .await;
        match created {
            Ok(()) => {}
            Err(e) if e.code() == Some("BUSYGROUP") => {}
            Err(e) => return Err(redis_error(e)),
        }
        self.groups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(queue.to_owned());
        Ok(())
    }

    fn take_held(&self, job: &Job) -> Option<Held> {
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&job.id)
    }

    async fn finish(&self, held: &Held, mode: &str, retry_at: u64, member: String) -> Result<()> {
        let q = &held.queue;
        let mut conn = self.conn.clone();
        let _: i64 = self
            .finish_script
            .key(self.key(q, "ready"))
            .key(self.key(q, "attempts"))
            .key(self.key(q, "delayed"))
            .key(self.key(q, "dead"))
            .key(self.idempotency_key(q, held.entry.key.as_deref()))
            .arg(GROUP)
            .arg(&held.entry_id)
            .arg(&self.consumer)
            .arg(mode)
            .arg(retry_at)
            .arg(member)
            .arg(DEAD_CAP)
            .invoke_async(&mut conn)
            .await
            .map_err(redis_error)?;
        Ok(())
    }
}

#[async_trait]
impl Backend for RedisBackend {
    async fn claim(&self, queue: &str, limit: usize) -> Result<Vec<Claimed>> {
        self.ensure_group(queue).await?;
        let ready = self.key(queue, "ready");
        let mut conn = self.conn.clone();
        let _: i64 = self
            .promote_script
            .key(self.key(queue, "delayed"))
            .key(&ready)
            .arg(now_ms())
            .arg(limit.max(1) * 4)
            .invoke_async(&mut conn)
            .await
            .map_err(redis_error)?;
        // Entries a dead (or too slow) worker held past the visibility timeout come first.
        let reclaimed: StreamAutoClaimReply = conn
            .xautoclaim_options(
                &ready,
                GROUP,
                &self.consumer,
                self.visibility.as_millis() as u64,
                "0-0",
                StreamAutoClaimOptions::default().count(limit),
            )
            .await
            .map_err(redis_error)?;
        let mut entries: Vec<(String, Option<String>)> = reclaimed
            .claimed
            .into_iter()
            .map(|s| {
                let job = s.get::<String>("job");
                (s.id, job)
            })
            .collect();
        if entries.len() < limit {
            let fresh: Option<StreamReadReply> = conn
                .xread_options(
                    &[&ready],
                    &[">"],
                    &StreamReadOptions::default()
                        .group(GROUP, &self.consumer)
                        .count(limit - entries.len()),
                )
                .await
                .map_err(redis_error)?;
            for key in fresh.map(|r| r.keys).unwrap_or_default() {
                for s in key.ids {
                    let job = s.get::<String>("job");
                    entries.push((s.id, job));
                }
            }
        }
        let mut claimed = Vec::with_capacity(entries.len());
        for (entry_id, raw) in entries {
            let parsed = raw
                .as_deref()
                .and_then(|r| serde_json::from_str::<Entry>(r).ok());
            let Some(entry) = parsed else {
                // Not ours (written by hand?): acknowledge it away rather than loop on it.
                tracing::warn!(queue, entry = %entry_id, "unreadable stream entry dropped");
                let _: redis::RedisResult<()> = redis::pipe()
                    .xack(&ready, GROUP, &[&entry_id])
                    .xdel(&ready, &[&entry_id])
                    .query_async(&mut conn)
                    .await;
                continue;
            };
            let deliveries: u32 = conn
                .hincr(self.key(queue, "attempts"), &entry_id, 1)
                .await
                .map_err(redis_error)?;
            let job = Job {
                id: entry.id.clone(),
                queue: queue.to_owned(),
                payload: entry.payload.clone(),
                attempt: entry.done + deliveries,
            };
            let max_attempts = entry.max_attempts;
            self.held.lock().unwrap_or_else(|e| e.into_inner()).insert(
                job.id.clone(),
                Held {
                    queue: queue.to_owned(),
                    entry_id,
                    entry,
                },
            );
            claimed.push(Claimed { job, max_attempts });
        }
        Ok(claimed)
    }

    async fn complete(&self, job: &Job) -> Result<()> {
        let Some(held) = self.take_held(job) else {
            return Ok(());
        };
        self.finish(&held, "done", 0, String::new()).await
    }

    async fn fail(&self, job: &Job, error: &str, retry_at: Option<SystemTime>) -> Result<()> {
        let Some(held) = self.take_held(job) else {
            return Ok(());
        };
        match retry_at {
            Some(at) => {
                let retry = Entry {
                    done: job.attempt,
                    ..held.entry.clone()
                };
                let member = serde_json::to_string(&retry)
                    .map_err(|e| Error::part_with(NAME, "encoding a retry", e))?;
                self.finish(&held, "retry", ms(at), member).await
            }
            None => {
                let dead = DeadEntry {
                    job: job.clone(),
                    error: error.to_owned(),
                    failed_at_ms: now_ms(),
                };
                let member = serde_json::to_string(&dead)
                    .map_err(|e| Error::part_with(NAME, "encoding a dead letter", e))?;
                self.finish(&held, "dead", 0, member).await
            }
        }
    }

    async fn enqueue(
        &self,
        queue: &str,
        payload: serde_json::Value,
        options: EnqueueOptions,
    ) -> Result<String> {
        let id = uuid::Uuid::new_v4().to_string();
        let run_at = match (options.run_at, options.delay) {
            (Some(at), _) => ms(at).max(1),
            (None, Some(delay)) => ms(SystemTime::now() + delay).max(1),
            (None, None) => 0,
        };
        let entry = Entry {
            id: id.clone(),
            payload,
            max_attempts: options.max_attempts.unwrap_or(self.max_attempts).max(1),
            done: 0,
            key: options.idempotency_key.clone(),
        };
        let member = serde_json::to_string(&entry)
            .map_err(|e| Error::part_with(NAME, "encoding a job", e))?;
        let mut conn = self.conn.clone();
        self.enqueue_script
            .key(self.key(queue, "ready"))
            .key(self.key(queue, "delayed"))
            .key(self.idempotency_key(queue, options.idempotency_key.as_deref()))
            .arg(member)
            .arg(run_at)
            .arg(IDEMPOTENCY_TTL_SECS)
            .arg(&id)
            .arg(if options.idempotency_key.is_some() {
                "1"
            } else {
                "0"
            })
            .invoke_async(&mut conn)
            .await
            .map_err(redis_error)
    }

    async fn idle(&self, _queue: &str, poll: Duration) {
        tokio::time::sleep(poll).await;
    }
}

impl ComponentMeta for RedisQueue {
    fn component_info(&self) -> ComponentInfo {
        let mut info = ComponentInfo::new(NAME, env!("CARGO_PKG_VERSION"), Slot::Gpu);
        info.capabilities = vec![
            "durable".into(),
            "retries".into(),
            "dead-letter".into(),
            "delay".into(),
            "idempotency".into(),
            "cron".into(),
        ];
        info
    }
}

impl Plug for RedisQueue {
    fn plug(self, board: &mut BoardBuilder) {
        board.put_gpu(self);
    }
}

#[async_trait]
impl Component for RedisQueue {
    async fn self_test(&self) -> Result<String> {
        self.install().await?;
        let mut conn = self.backend()?.conn.clone();
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut conn)
            .await
            .map_err(redis_error)?;
        let version = info
            .lines()
            .find_map(|l| l.strip_prefix("redis_version:"))
            .unwrap_or("?")
            .trim()
            .to_owned();
        Ok(format!(
            "Redis {version} streams, {} attempts max, visibility timeout {:?}",
            self.options.max_attempts, self.options.visibility_timeout
        ))
    }

    async fn init(&self, _board: &BoardContext) -> Result<()> {
        self.install().await
    }

    async fn start(&self, _board: &BoardContext) -> Result<()> {
        self.start_workers()
    }

    async fn stop(&self, mode: StopMode) -> Result<()> {
        self.stop_workers(mode).await;
        Ok(())
    }

    async fn health(&self) -> Health {
        let Ok(backend) = self.backend() else {
            return Health::failed("not connected: the board has not booted");
        };
        let mut conn = backend.conn.clone();
        let ping: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut conn).await;
        match ping {
            Ok(_) => {
                let workers = if self.workers.is_running() {
                    "workers running"
                } else {
                    "workers stopped"
                };
                Health::ok().with_detail(format!("Redis reachable, {workers}"))
            }
            Err(e) => Health::degraded(format!(
                "Redis unreachable ({e}); jobs wait until it is back"
            )),
        }
    }
}

#[async_trait]
impl JobQueue for RedisQueue {
    async fn enqueue(
        &self,
        queue: &str,
        payload: serde_json::Value,
        options: EnqueueOptions,
    ) -> Result<String> {
        self.backend()?.enqueue(queue, payload, options).await
    }

    async fn schedule(
        &self,
        queue: &str,
        cron: &str,
        payload: serde_json::Value,
    ) -> Result<String> {
        self.workers
            .schedule(self.dyn_backend().as_ref(), queue, cron, payload)
    }

    async fn work(
        &self,
        queue: &str,
        concurrency: usize,
        handler: Arc<dyn JobHandler>,
    ) -> Result<()> {
        self.workers
            .work(self.dyn_backend().as_ref(), queue, concurrency, handler)
    }
}
