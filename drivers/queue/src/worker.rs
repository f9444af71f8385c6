//! The worker runtime both drivers share: claim up to the free concurrency, run handlers,
//! retry with backoff or dead-letter, and drain on stop. A driver supplies only [`Backend`].

use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use magmobo_core::part::StopMode;
use magmobo_core::roles::queue::{EnqueueOptions, Job, JobHandler};
use magmobo_core::{Error, Result, async_trait};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::QueueOptions;

/// A job claimed by a worker, with what the runtime needs to decide its fate.
pub(crate) struct Claimed {
    pub job: Job,
    pub max_attempts: u32,
}

/// Job storage: what differs between drivers.
#[async_trait]
pub(crate) trait Backend: Send + Sync + 'static {
    /// Locks up to `limit` runnable jobs of `queue` for the visibility timeout and counts an
    /// attempt on each.
    async fn claim(&self, queue: &str, limit: usize) -> Result<Vec<Claimed>>;
    /// The job succeeded.
    async fn complete(&self, job: &Job) -> Result<()>;
    /// The job failed: run it again at `retry_at`, or dead-letter it when `None`.
    async fn fail(&self, job: &Job, error: &str, retry_at: Option<SystemTime>) -> Result<()>;
    /// Enqueues (used by cron schedules).
    async fn enqueue(
        &self,
        queue: &str,
        payload: serde_json::Value,
        options: EnqueueOptions,
    ) -> Result<String>;
    /// Resolves when `queue` may have new work, or after the poll interval.
    async fn idle(&self, queue: &str, poll: Duration);
}

enum Pending {
    Worker {
        queue: String,
        concurrency: usize,
        handler: Arc<dyn JobHandler>,
    },
    Schedule {
        queue: String,
        schedule: Box<cron::Schedule>,
        payload: serde_json::Value,
        id: String,
    },
}

/// Workers and schedules of one queue component.
pub(crate) struct Workers {
    name: &'static str,
    options: QueueOptions,
    state: Mutex<State>,
}

struct State {
    /// Set between start and stop.
    running: Option<(CancellationToken, TaskTracker)>,
    /// Everything registered, to (re)spawn on start.
    registered: Vec<Arc<Pending>>,
}

impl Workers {
    pub(crate) fn new(name: &'static str, options: QueueOptions) -> Self {
        Workers {
            name,
            options,
            state: Mutex::new(State {
                running: None,
                registered: Vec::new(),
            }),
        }
    }

    pub(crate) fn options(&self) -> &QueueOptions {
        &self.options
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn work(
        &self,
        backend: Option<&Arc<dyn Backend>>,
        queue: &str,
        concurrency: usize,
        handler: Arc<dyn JobHandler>,
    ) -> Result<()> {
        if concurrency == 0 {
            return Err(Error::part(
                self.name,
                format!(
                    "work('{queue}', 0, ..) would never run a job: give a concurrency of 1 or more"
                ),
            ));
        }
        self.register(
            backend,
            Pending::Worker {
                queue: queue.to_owned(),
                concurrency,
                handler,
            },
        );
        Ok(())
    }

    pub(crate) fn schedule(
        &self,
        backend: Option<&Arc<dyn Backend>>,
        queue: &str,
        expression: &str,
        payload: serde_json::Value,
    ) -> Result<String> {
        let schedule = cron::Schedule::from_str(expression).map_err(|e| {
            Error::part_with(
                self.name,
                format!(
                    "invalid cron expression '{expression}': use 6 or 7 fields, seconds first (e.g. '0 */5 * * * *')"
                ),
                e,
            )
        })?;
        // Deterministic, so instances registering the same schedule share tick keys.
        let id = {
            use std::hash::{Hash, Hasher};
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            (queue, expression, payload.to_string()).hash(&mut hasher);
            format!("{:016x}", hasher.finish())
        };
        self.register(
            backend,
            Pending::Schedule {
                queue: queue.to_owned(),
                schedule: Box::new(schedule),
                payload,
                id: id.clone(),
            },
        );
        Ok(id)
    }

    /// Registers work; spawns it at once when running (a running queue always has a backend).
    fn register(&self, backend: Option<&Arc<dyn Backend>>, pending: Pending) {
        let pending = Arc::new(pending);
        let mut state = self.lock();
        if let (Some((cancel, tracker)), Some(backend)) = (&state.running, backend) {
            self.spawn(backend, &pending, cancel, tracker);
        }
        state.registered.push(pending);
    }

    fn spawn(
        &self,
        backend: &Arc<dyn Backend>,
        pending: &Arc<Pending>,
        cancel: &CancellationToken,
        tracker: &TaskTracker,
    ) {
        let backend = backend.clone();
        let pending = pending.clone();
        let cancel = cancel.clone();
        let options = self.options.clone();
        let name = self.name;
        let inner = tracker.clone();
        tracker.spawn(async move {
            match &*pending {
                Pending::Worker {
                    queue,
                    concurrency,
                    handler,
                } => {
                    let context = RunContext {
                        name,
                        backend,
                        options,
                        handler: handler.clone(),
                        tracker: inner,
                    };
                    context.run(queue, *concurrency, cancel).await;
                }
                Pending::Schedule {
                    queue,
                    schedule,
                    payload,
                    id,
                } => cron_loop(name, backend, queue, schedule, payload, id, cancel).await,
            }
        });
    }

    /// Spawns every registered worker and schedule.
    pub(crate) fn start(&self, backend: &Arc<dyn Backend>) {
        let mut state = self.lock();
        if state.running.is_some() {
            return;
        }
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        for pending in &state.registered {
            self.spawn(backend, pending, &cancel, &tracker);
        }
        state.running = Some((cancel, tracker));
    }

    /// Stops claiming and waits for running jobs up to the deadline; returns whether all
    /// finished. Jobs cut off are retried later (after the visibility timeout if durable).
    pub(crate) async fn stop(&self, mode: StopMode) -> bool {
        let Some((cancel, tracker)) = self.lock().running.take() else {
            return true;
        };
        cancel.cancel();
        tracker.close();
        let drained = tokio::time::timeout(mode.deadline(), tracker.wait())
            .await
            .is_ok();
        // Fast mode does not wait: in-flight jobs are abandoned (a durable queue hands them
        // out again after the visibility timeout), so only a graceful stop that ran out of
        // time is worth a warning.
        if !drained && mode != StopMode::Fast {
            tracing::warn!(
                queue = self.name,
                "stop deadline passed with jobs still running; they will be retried"
            );
        }
        drained
    }

    pub(crate) fn is_running(&self) -> bool {
        self.lock().running.is_some()
    }
}

struct RunContext {
    name: &'static str,
    backend: Arc<dyn Backend>,
    options: QueueOptions,
    handler: Arc<dyn JobHandler>,
    tracker: TaskTracker,
}

impl RunContext {
    async fn run(self, queue: &str, concurrency: usize, cancel: CancellationToken) {
        let permits = Arc::new(Semaphore::new(concurrency));
        let this = Arc::new(self);
        loop {
            // Wait for one free slot before claiming, so no job is locked without a worker.
            let first = tokio::select! {
                () = cancel.cancelled() => return,
                permit = permits.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => return,
                },
            };
            let free = permits.available_permits() + 1;
            let claimed = match this.backend.claim(queue, free).await {
                Ok(claimed) => claimed,
                Err(error) => {
                    tracing::warn!(queue, %error, "claiming jobs failed; retrying");
                    Vec::new()
                }
            };
            if claimed.is_empty() {
                drop(first);
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = this.backend.idle(queue, this.options.poll_interval) => {}
                }
                continue;
            }
            let mut first = Some(first);
            for claim in claimed {
                let permit = match first.take() {
                    Some(permit) => permit,
                    // Claimed no more than the free permits, so this does not wait long.
                    None => match permits.clone().acquire_owned().await {
                        Ok(permit) => permit,
                        Err(_) => return,
                    },
                };
                let this = this.clone();
                this.tracker.clone().spawn(async move {
                    this.execute(claim).await;
                    drop(permit);
                });
            }
        }
    }

    async fn execute(&self, claim: Claimed) {
        let Claimed { job, max_attempts } = claim;
        // Run the handler in its own task so a panic is a failed attempt, not a dead worker.
        let handler = self.handler.clone();
        let running = job.clone();
        let outcome = tokio::spawn(async move { handler.handle(running).await }).await;
        let result = match outcome {
            Ok(Ok(())) => self.backend.complete(&job).await,
            Ok(Err(error)) => self.failed(&job, max_attempts, error.to_string()).await,
            Err(panic) => {
                self.failed(&job, max_attempts, format!("handler panicked: {panic}"))
                    .await
            }
        };
        if let Err(error) = result {
            // The job stays locked; the visibility timeout brings it back.
            tracing::warn!(queue = self.name, job = %job.id, %error, "recording a job's outcome failed");
        }
    }

    async fn failed(&self, job: &Job, max_attempts: u32, error: String) -> Result<()> {
        let retry_at = (job.attempt < max_attempts)
            .then(|| SystemTime::now() + self.options.backoff(job.attempt));
        if retry_at.is_none() {
            tracing::warn!(queue = %job.queue, job = %job.id, attempts = job.attempt, %error, "job dead-lettered");
        }
        self.backend.fail(job, &error, retry_at).await
    }
}

async fn cron_loop(
    name: &'static str,
    backend: Arc<dyn Backend>,
    queue: &str,
    schedule: &cron::Schedule,
    payload: &serde_json::Value,
    id: &str,
    cancel: CancellationToken,
) {
    loop {
        let Some(next) = schedule.upcoming(chrono::Utc).next() else {
            return;
        };
        let wait = (next - chrono::Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO);
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        // The key makes instances sharing a durable queue enqueue each tick once.
        let options = EnqueueOptions {
            idempotency_key: Some(format!("cron:{id}:{}", next.timestamp())),
            ..Default::default()
        };
        if let Err(error) = backend.enqueue(queue, payload.clone(), options).await {
            tracing::warn!(queue = name, schedule = id, %error, "enqueueing a scheduled job failed");
        }
    }
}
