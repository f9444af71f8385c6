//! The durable queue: jobs are rows of `_magmobo_jobs` in the board's PostgreSQL Storage,
//! claimed with `FOR UPDATE SKIP LOCKED` so any number of workers in any number of processes
//! share a queue without blocking each other.
//!
//! It goes through the [`Storage`] role rather than its own pool so it shares the board's
//! connections, its migrations, and its place in the start order (`depends_on: [Storage]`).
//! A claim sets `locked_until = now() + visibility timeout`; a row still `running` after that
//! is claimable again, which is how a job survives a worker killed mid-job. Times come from
//! the database clock (`now()`), so workers on hosts with skewed clocks agree.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use magmobo_core::board::{BoardBuilder, BoardContext};
use magmobo_core::prelude::*;
use magmobo_core::roles::queue::{EnqueueOptions, Job, JobHandler};
use magmobo_core::roles::storage::{Dialect, Migration, Row, Value};

use crate::worker::{Backend, Claimed, Workers};
use crate::{DeadJob, QueueOptions};

const NAME: &str = "PgQueue";
const OWNER: &str = "magmobo-queue";

fn migrations() -> Vec<Migration> {
    vec![Migration {
        version: 1,
        name: "jobs table".to_owned(),
        sql: vec![(
            Dialect::Postgres,
            "CREATE TABLE _magmobo_jobs (
                id TEXT PRIMARY KEY,
                queue TEXT NOT NULL,
                payload JSONB NOT NULL,
                status TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'running', 'dead')),
                attempts INTEGER NOT NULL DEFAULT 0,
                max_attempts INTEGER NOT NULL,
                run_at TIMESTAMPTZ NOT NULL,
                locked_until TIMESTAMPTZ,
                idempotency_key TEXT,
                last_error TEXT,
                created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                failed_at TIMESTAMPTZ
            );
            CREATE INDEX _magmobo_jobs_runnable ON _magmobo_jobs (queue, run_at)
                WHERE status <> 'dead';
            CREATE UNIQUE INDEX _magmobo_jobs_idempotency ON _magmobo_jobs (queue, idempotency_key)
                WHERE idempotency_key IS NOT NULL AND status <> 'dead';"
                .to_owned(),
        )],
    }]
}

/// A PostgreSQL-durable job queue (feature `postgres`). Finished jobs are deleted; dead ones
/// stay with status `dead` for [`PgQueue::dead_letters`].
pub struct PgQueue {
    storage: OnceLock<Arc<dyn Storage>>,
    backend: OnceLock<Arc<dyn Backend>>,
    workers: Workers,
    options: QueueOptions,
}

impl std::fmt::Debug for PgQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgQueue")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Default for PgQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl PgQueue {
    /// A queue in the board's Storage slot (which must be PostgreSQL), with default options.
    pub fn new() -> Self {
        Self::with_options(QueueOptions::default())
    }

    /// A queue in the board's Storage with these retry, timeout and polling settings.
    pub fn with_options(options: QueueOptions) -> Self {
        PgQueue {
            storage: OnceLock::new(),
            backend: OnceLock::new(),
            workers: Workers::new(NAME, options.clone()),
            options,
        }
    }

    /// Uses `storage` instead of the board's (for use without a board); call
    /// [`PgQueue::install`] before enqueueing.
    pub fn on_storage(self, storage: Arc<dyn Storage>) -> Self {
        let _ = self.storage.set(storage);
        self
    }

    /// Checks the dialect and creates the jobs table if needed (what the board's `init` does).
    pub async fn install(&self) -> Result<()> {
        let storage = self.storage()?.clone();
        if storage.dialect() != Dialect::Postgres {
            return Err(Error::part(
                NAME,
                "the Storage slot is not PostgreSQL: use MemoryQueue or a PostgreSQL database",
            ));
        }
        storage.migrate(OWNER, &migrations()).await?;
        let _ = self.backend.set(Arc::new(PgBackend {
            storage,
            options: self.options.clone(),
        }));
        Ok(())
    }

    /// Starts the registered workers and schedules (what the board's `start` does).
    pub fn start_workers(&self) -> Result<()> {
        self.workers.start(self.backend()?);
        Ok(())
    }

    /// Stops workers, waiting for running jobs up to the mode's deadline; true when all
    /// finished (what the board's `stop` does).
    pub async fn stop_workers(&self, mode: StopMode) -> bool {
        self.workers.stop(mode).await
    }

    /// Jobs dead-lettered on `queue`, oldest first.
    pub async fn dead_letters(&self, queue: &str) -> Result<Vec<DeadJob>> {
        let rows = self
            .storage()?
            .query(
                "SELECT id, queue, payload, attempts, coalesce(last_error, '') AS last_error,
                        extract(epoch FROM failed_at)::float8 AS failed_at
                 FROM _magmobo_jobs WHERE queue = $1 AND status = 'dead' ORDER BY failed_at, id",
                &[Value::Text(queue.to_owned())],
            )
            .await?;
        rows.iter()
            .map(|row| {
                let failed_at = match row.get("failed_at") {
                    Some(Value::Float(secs)) => UNIX_EPOCH + Duration::from_secs_f64(secs.max(0.0)),
                    _ => UNIX_EPOCH,
                };
                Ok(DeadJob {
                    job: job_from(row)?,
                    error: row.get_text("last_error")?,
                    failed_at,
                })
            })
            .collect()
    }

    /// Jobs waiting or running on `queue`.
    pub async fn pending(&self, queue: &str) -> Result<u64> {
        let rows = self
            .storage()?
            .query(
                "SELECT count(*) AS n FROM _magmobo_jobs WHERE queue = $1 AND status <> 'dead'",
                &[Value::Text(queue.to_owned())],
            )
            .await?;
        match rows.first().and_then(|r| r.get("n")) {
            Some(Value::Int(n)) => Ok(u64::try_from(*n).unwrap_or(0)),
            _ => Ok(0),
        }
    }

    fn storage(&self) -> Result<&Arc<dyn Storage>> {
        self.storage.get().ok_or_else(|| {
            Error::part(
                NAME,
                "no storage yet: boot the board with PostgreSQL in the Storage slot, or use on_storage",
            )
        })
    }

    fn backend(&self) -> Result<&Arc<dyn Backend>> {
        self.backend.get().ok_or_else(|| {
            Error::part(
                NAME,
                "not installed: boot the board (or call install) first",
            )
        })
    }
}

struct PgBackend {
    storage: Arc<dyn Storage>,
    options: QueueOptions,
}

/// A count column (attempts) as `u32`; out-of-range values read as 0 rather than fail a job.
fn count(row: &Row, column: &str) -> Result<u32> {
    Ok(u32::try_from(row.get_int(column)?).unwrap_or(0))
}

fn job_from(row: &Row) -> Result<Job> {
    let payload = match row.get("payload") {
        Some(Value::Json(json)) => json.clone(),
        Some(Value::Text(text)) => serde_json::from_str(text)
            .map_err(|e| Error::part_with(NAME, "a job payload is not JSON", e))?,
        other => {
            return Err(Error::part(NAME, format!("unexpected payload: {other:?}")));
        }
    };
    Ok(Job {
        id: row.get_text("id")?,
        queue: row.get_text("queue")?,
        payload,
        attempt: count(row, "attempts")?,
    })
}

fn epoch(at: SystemTime) -> Value {
    Value::Float(
        at.duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0),
    )
}

#[async_trait]
impl Backend for PgBackend {
    async fn claim(&self, queue: &str, limit: usize) -> Result<Vec<Claimed>> {
        let rows = self
            .storage
            .query(
                "UPDATE _magmobo_jobs SET status = 'running', attempts = attempts + 1,
                        locked_until = now() + make_interval(secs => $3)
                 WHERE id IN (
                     SELECT id FROM _magmobo_jobs
                     WHERE queue = $1
                       AND ((status = 'pending' AND run_at <= now())
                            OR (status = 'running' AND locked_until <= now()))
                     ORDER BY run_at, created_at
                     LIMIT $2
                     FOR UPDATE SKIP LOCKED)
                 RETURNING id, queue, payload, attempts, max_attempts",
                &[
                    Value::Text(queue.to_owned()),
                    Value::Int(i64::try_from(limit).unwrap_or(i64::MAX)),
                    Value::Float(self.options.visibility_timeout.as_secs_f64()),
                ],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(Claimed {
                    job: job_from(row)?,
                    max_attempts: count(row, "max_attempts")?,
                })
            })
            .collect()
    }

    async fn complete(&self, job: &Job) -> Result<()> {
        // Guarded by the attempt: a worker whose lock expired must not finish a newer run.
        self.storage
            .execute(
                "DELETE FROM _magmobo_jobs WHERE id = $1 AND status = 'running' AND attempts = $2",
                &[Value::Text(job.id.clone()), Value::Int(job.attempt.into())],
            )
            .await?;
        Ok(())
    }

    async fn fail(&self, job: &Job, error: &str, retry_at: Option<SystemTime>) -> Result<()> {
        let (sql, at) = match retry_at {
            Some(at) => (
                "UPDATE _magmobo_jobs SET status = 'pending', locked_until = NULL,
                        run_at = to_timestamp($4), last_error = $3
                 WHERE id = $1 AND status = 'running' AND attempts = $2",
                epoch(at),
            ),
            None => (
                "UPDATE _magmobo_jobs SET status = 'dead', locked_until = NULL,
                        failed_at = now(), last_error = $3
                 WHERE id = $1 AND status = 'running' AND attempts = $2 AND $4::float8 IS NULL",
                Value::Null,
            ),
        };
        self.storage
            .execute(
                sql,
                &[
                    Value::Text(job.id.clone()),
                    Value::Int(job.attempt.into()),
                    Value::Text(error.to_owned()),
                    at,
                ],
            )
            .await?;
        Ok(())
    }

    async fn enqueue(
        &self,
        queue: &str,
        payload: serde_json::Value,
        options: EnqueueOptions,
    ) -> Result<String> {
        let id = uuid::Uuid::new_v4().to_string();
        let run_at = match (options.run_at, options.delay) {
            (Some(at), _) => epoch(at),
            (None, Some(delay)) => epoch(SystemTime::now() + delay),
            (None, None) => Value::Null,
        };
        let max_attempts = options
            .max_attempts
            .unwrap_or(self.options.max_attempts)
            .max(1);
        let key = options
            .idempotency_key
            .clone()
            .map_or(Value::Null, Value::Text);
        // Two tries: the job holding the key may finish between the insert and the select.
        for _ in 0..2 {
            let inserted = self
                .storage
                .query(
                    "INSERT INTO _magmobo_jobs (id, queue, payload, max_attempts, run_at, idempotency_key)
                     VALUES ($1, $2, $3, $4, coalesce(to_timestamp($5::float8), now()), $6)
                     ON CONFLICT (queue, idempotency_key)
                         WHERE idempotency_key IS NOT NULL AND status <> 'dead'
                         DO NOTHING
                     RETURNING id",
                    &[
                        Value::Text(id.clone()),
                        Value::Text(queue.to_owned()),
                        Value::Json(payload.clone()),
                        Value::Int(max_attempts.into()),
                        run_at.clone(),
                        key.clone(),
                    ],
                )
                .await?;
            if let Some(row) = inserted.first() {
                return row.get_text("id");
            }
            // The key is taken by a pending or running job: hand back its id.
            let existing = self
                .storage
                .query(
                    "SELECT id FROM _magmobo_jobs
                     WHERE queue = $1 AND idempotency_key = $2 AND status <> 'dead'",
                    &[Value::Text(queue.to_owned()), key.clone()],
                )
                .await?;
            if let Some(row) = existing.first() {
                return row.get_text("id");
            }
        }
        Err(Error::part(
            NAME,
            "the idempotency key kept changing hands while enqueueing; retry",
        ))
    }

    async fn idle(&self, _queue: &str, poll: Duration) {
        tokio::time::sleep(poll).await;
    }
}

impl ComponentMeta for PgQueue {
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
        info.depends_on = vec![Slot::Storage];
        info
    }
}

impl Plug for PgQueue {
    fn plug(self, board: &mut BoardBuilder) {
        board.put_gpu(self);
    }
}

#[async_trait]
impl Component for PgQueue {
    async fn self_test(&self) -> Result<String> {
        Ok(format!(
            "PostgreSQL (SKIP LOCKED), {} attempts max, visibility timeout {:?}",
            self.workers.options().max_attempts,
            self.workers.options().visibility_timeout
        ))
    }

    async fn init(&self, board: &BoardContext) -> Result<()> {
        if self.storage.get().is_none() {
            let storage = board.storage().ok_or_else(|| {
                Error::part(
                    NAME,
                    "jobs live in the Storage slot, which is empty: add a PostgreSQL database",
                )
            })?;
            let _ = self.storage.set(storage);
        }
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
        let Ok(storage) = self.storage() else {
            return Health::failed("not initialised: the board has not booted");
        };
        match storage
            .query(
                "SELECT count(*) FILTER (WHERE status <> 'dead') AS pending,
                        count(*) FILTER (WHERE status = 'dead') AS dead
                 FROM _magmobo_jobs",
                &[],
            )
            .await
        {
            Ok(rows) => {
                let count = |c: &str| match rows.first().and_then(|r| r.get(c)) {
                    Some(Value::Int(n)) => *n,
                    _ => 0,
                };
                let workers = if self.workers.is_running() {
                    "workers running"
                } else {
                    "workers stopped"
                };
                Health::ok().with_detail(format!(
                    "{} pending, {} dead-lettered, {workers}",
                    count("pending"),
                    count("dead")
                ))
            }
            Err(error) => Health::degraded(format!("cannot read the jobs table: {error}")),
        }
    }
}

#[async_trait]
impl JobQueue for PgQueue {
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
            .schedule(self.backend.get(), queue, cron, payload)
    }

    async fn work(
        &self,
        queue: &str,
        concurrency: usize,
        handler: Arc<dyn JobHandler>,
    ) -> Result<()> {
        self.workers
            .work(self.backend.get(), queue, concurrency, handler)
    }
}
