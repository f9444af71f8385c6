//! GPU: the job-queue role. Drivers (in-process, PostgreSQL, Redis) come with their own issue;
//! this is the contract they implement.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::Result;
use crate::part::Component;

/// A job handed to a worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    /// Unique id assigned at enqueue.
    pub id: String,
    /// Queue name.
    pub queue: String,
    /// The job's data.
    pub payload: serde_json::Value,
    /// 1 on the first run, 2 on the first retry, ...
    pub attempt: u32,
}

/// Options for [`JobQueue::enqueue`].
#[derive(Debug, Clone, Default)]
pub struct EnqueueOptions {
    /// Run no earlier than this long from now.
    pub delay: Option<Duration>,
    /// Run no earlier than this instant (wins over `delay`).
    pub run_at: Option<SystemTime>,
    /// A second enqueue with the same key while the first is pending returns the first id.
    pub idempotency_key: Option<String>,
    /// Attempts before the job goes to the dead-letter queue; `None` keeps the driver default.
    pub max_attempts: Option<u32>,
}

/// What a worker runs for each job.
#[async_trait]
pub trait JobHandler: Send + Sync + 'static {
    /// Handles one job; an error schedules a retry with backoff.
    async fn handle(&self, job: Job) -> Result<()>;
}

/// The GPU slot's role.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is declared for the GPU slot but does not implement `JobQueue`",
    label = "the GPU slot takes a `JobQueue`",
    note = "implement `magmobo::roles::queue::JobQueue` (enqueue, schedule, work) for `{Self}` with `#[magmobo::async_trait]`, or choose another slot"
)]
#[async_trait]
pub trait JobQueue: Component {
    /// Adds a job; returns its id.
    async fn enqueue(
        &self,
        queue: &str,
        payload: serde_json::Value,
        options: EnqueueOptions,
    ) -> Result<String>;
    /// Enqueues `payload` on `queue` on a cron schedule; returns the schedule's id.
    async fn schedule(&self, queue: &str, cron: &str, payload: serde_json::Value)
    -> Result<String>;
    /// Runs `handler` for jobs on `queue`, at most `concurrency` at a time.
    async fn work(
        &self,
        queue: &str,
        concurrency: usize,
        handler: Arc<dyn JobHandler>,
    ) -> Result<()>;
}
