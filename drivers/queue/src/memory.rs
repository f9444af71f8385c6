//! The in-process queue: jobs in a mutex-guarded map, workers woken by a `Notify` on enqueue.
//! Jobs live as long as the process; use [`crate::PgQueue`] for work that must survive it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use magmobo_core::board::{BoardBuilder, BoardContext};
use magmobo_core::prelude::*;
use magmobo_core::roles::queue::{EnqueueOptions, Job, JobHandler};
use tokio::sync::Notify;

use crate::worker::{Backend, Claimed, Workers};
use crate::{DeadJob, QueueOptions};

const NAME: &str = "MemoryQueue";

#[derive(Clone)]
struct Record {
    job: Job,
    max_attempts: u32,
    run_at: SystemTime,
    /// `Some` while a worker holds it.
    locked_until: Option<SystemTime>,
    idempotency_key: Option<String>,
    seq: u64,
}

#[derive(Default)]
struct Store {
    jobs: HashMap<String, Record>,
    /// (queue, key) → id of the pending or running job.
    keys: HashMap<(String, String), String>,
    dead: Vec<DeadJob>,
    seq: u64,
}

struct Inner {
    store: Mutex<Store>,
    wake: Notify,
    options: QueueOptions,
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn forget(store: &mut Store, id: &str) -> Option<Record> {
        let record = store.jobs.remove(id)?;
        if let Some(key) = &record.idempotency_key {
            store.keys.remove(&(record.job.queue.clone(), key.clone()));
        }
        Some(record)
    }
}

/// An in-process job queue (feature `memory`).
pub struct MemoryQueue {
    inner: Arc<Inner>,
    backend: Arc<dyn Backend>,
    workers: Workers,
}

impl std::fmt::Debug for MemoryQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryQueue").finish_non_exhaustive()
    }
}

impl Default for MemoryQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryQueue {
    /// A queue with the default options.
    pub fn new() -> Self {
        Self::with_options(QueueOptions::default())
    }

    /// A queue with these retry, timeout and polling settings.
    pub fn with_options(options: QueueOptions) -> Self {
        let inner = Arc::new(Inner {
            store: Mutex::default(),
            wake: Notify::new(),
            options: options.clone(),
        });
        MemoryQueue {
            backend: Arc::new(MemoryBackend(inner.clone())),
            inner,
            workers: Workers::new(NAME, options),
        }
    }

    /// Jobs dead-lettered on `queue`, oldest first.
    pub fn dead_letters(&self, queue: &str) -> Vec<DeadJob> {
        self.inner
            .lock()
            .dead
            .iter()
            .filter(|dead| dead.job.queue == queue)
            .cloned()
            .collect()
    }

    /// Jobs waiting or running on `queue`.
    pub fn pending(&self, queue: &str) -> usize {
        self.inner
            .lock()
            .jobs
            .values()
            .filter(|r| r.job.queue == queue)
            .count()
    }

    /// Starts the registered workers and schedules (what the board's `start` does).
    pub fn start_workers(&self) {
        self.workers.start(&self.backend);
    }

    /// Stops workers, waiting for running jobs up to the mode's deadline; true when all
    /// finished (what the board's `stop` does).
    pub async fn stop_workers(&self, mode: StopMode) -> bool {
        self.workers.stop(mode).await
    }
}

struct MemoryBackend(Arc<Inner>);

#[async_trait]
impl Backend for MemoryBackend {
    async fn claim(&self, queue: &str, limit: usize) -> Result<Vec<Claimed>> {
        let now = SystemTime::now();
        let lock_until = now + self.0.options.visibility_timeout;
        let mut store = self.0.lock();
        let mut runnable: Vec<&mut Record> = store
            .jobs
            .values_mut()
            .filter(|r| {
                r.job.queue == queue
                    && match r.locked_until {
                        None => r.run_at <= now,
                        Some(until) => until <= now,
                    }
            })
            .collect();
        runnable.sort_by_key(|r| (r.run_at, r.seq));
        Ok(runnable
            .into_iter()
            .take(limit)
            .map(|record| {
                record.job.attempt += 1;
                record.locked_until = Some(lock_until);
                Claimed {
                    job: record.job.clone(),
                    max_attempts: record.max_attempts,
                }
            })
            .collect())
    }

    async fn complete(&self, job: &Job) -> Result<()> {
        let mut store = self.0.lock();
        // Only the holder of the latest attempt finishes it: a worker whose lock expired
        // and whose job was claimed again must not remove the newer run.
        if store
            .jobs
            .get(&job.id)
            .is_some_and(|r| r.job.attempt == job.attempt)
        {
            Inner::forget(&mut store, &job.id);
        }
        Ok(())
    }

    async fn fail(&self, job: &Job, error: &str, retry_at: Option<SystemTime>) -> Result<()> {
        let mut store = self.0.lock();
        let current = store
            .jobs
            .get(&job.id)
            .is_some_and(|r| r.job.attempt == job.attempt);
        if !current {
            return Ok(());
        }
        match retry_at {
            Some(at) => {
                if let Some(record) = store.jobs.get_mut(&job.id) {
                    record.run_at = at;
                    record.locked_until = None;
                }
            }
            None => {
                if let Some(record) = Inner::forget(&mut store, &job.id) {
                    store.dead.push(DeadJob {
                        job: record.job,
                        error: error.to_owned(),
                        failed_at: SystemTime::now(),
                    });
                }
            }
        }
        Ok(())
    }

    async fn enqueue(
        &self,
        queue: &str,
        payload: serde_json::Value,
        options: EnqueueOptions,
    ) -> Result<String> {
        let now = SystemTime::now();
        let run_at = options
            .run_at
            .or_else(|| options.delay.map(|d| now + d))
            .unwrap_or(now);
        let id = {
            let mut store = self.0.lock();
            if let Some(key) = &options.idempotency_key
                && let Some(existing) = store.keys.get(&(queue.to_owned(), key.clone()))
            {
                return Ok(existing.clone());
            }
            let id = uuid::Uuid::new_v4().to_string();
            store.seq += 1;
            let seq = store.seq;
            if let Some(key) = &options.idempotency_key {
                store
                    .keys
                    .insert((queue.to_owned(), key.clone()), id.clone());
            }
            store.jobs.insert(
                id.clone(),
                Record {
                    job: Job {
                        id: id.clone(),
                        queue: queue.to_owned(),
                        payload,
                        attempt: 0,
                    },
                    max_attempts: options
                        .max_attempts
                        .unwrap_or(self.0.options.max_attempts)
                        .max(1),
                    run_at,
                    locked_until: None,
                    idempotency_key: options.idempotency_key,
                    seq,
                },
            );
            id
        };
        self.0.wake.notify_waiters();
        Ok(id)
    }

    async fn idle(&self, _queue: &str, poll: Duration) {
        // Polling still matters: delayed jobs and retries become due without an enqueue.
        let _ = tokio::time::timeout(poll, self.0.wake.notified()).await;
    }
}

impl ComponentMeta for MemoryQueue {
    fn component_info(&self) -> ComponentInfo {
        let mut info = ComponentInfo::new(NAME, env!("CARGO_PKG_VERSION"), Slot::Gpu);
        info.capabilities = vec![
            "retries".into(),
            "dead-letter".into(),
            "delay".into(),
            "idempotency".into(),
            "cron".into(),
        ];
        info
    }
}

impl Plug for MemoryQueue {
    fn plug(self, board: &mut BoardBuilder) {
        board.put_gpu(self);
    }
}

#[async_trait]
impl Component for MemoryQueue {
    async fn self_test(&self) -> Result<String> {
        Ok(format!(
            "in-process, {} attempts max, jobs do not survive a restart",
            self.workers.options().max_attempts
        ))
    }

    async fn init(&self, _board: &BoardContext) -> Result<()> {
        Ok(())
    }

    async fn start(&self, _board: &BoardContext) -> Result<()> {
        self.start_workers();
        Ok(())
    }

    async fn stop(&self, mode: StopMode) -> Result<()> {
        self.stop_workers(mode).await;
        Ok(())
    }

    async fn health(&self) -> Health {
        let (jobs, dead) = {
            let store = self.inner.lock();
            (store.jobs.len(), store.dead.len())
        };
        let detail = format!("{jobs} pending, {dead} dead-lettered");
        if self.workers.is_running() || jobs == 0 {
            Health::ok().with_detail(detail)
        } else {
            Health::degraded(format!("workers stopped; {detail}"))
        }
    }
}

#[async_trait]
impl JobQueue for MemoryQueue {
    async fn enqueue(
        &self,
        queue: &str,
        payload: serde_json::Value,
        options: EnqueueOptions,
    ) -> Result<String> {
        self.backend.enqueue(queue, payload, options).await
    }

    async fn schedule(
        &self,
        queue: &str,
        cron: &str,
        payload: serde_json::Value,
    ) -> Result<String> {
        self.workers
            .schedule(Some(&self.backend), queue, cron, payload)
    }

    async fn work(
        &self,
        queue: &str,
        concurrency: usize,
        handler: Arc<dyn JobHandler>,
    ) -> Result<()> {
        self.workers
            .work(Some(&self.backend), queue, concurrency, handler)
    }
}
