//! A worker process for `tests/queue.rs`: the test kills one with SIGKILL mid-job and starts
//! another, to show a durable job survives its worker's death.
//!
//! Usage: `queue-worker <database-url> <enqueue|work> <handler-sleep-ms> [<redis-url> <prefix>]`.
//! Jobs live in PgQueue on the database, or in RedisQueue when a Redis URL is given. Each
//! handler run writes `started` and then `finished` rows (with this process id and the
//! attempt) to the `kill9_log` table that the test created in the database.

use std::sync::Arc;
use std::time::Duration;

use magmobo::prelude::*;
use magmobo::queue::{PgQueue, QueueOptions, RedisQueue};
use magmobo::roles::queue::JobQueue;
use magmobo::roles::queue::{EnqueueOptions, Job, JobHandler};
use magmobo::roles::storage::Value;
use magmobo::storage::{SqlStorage, StorageOptions};

/// Visibility timeout the test relies on.
const VISIBILITY_TIMEOUT: Duration = Duration::from_secs(2);

struct Logged {
    storage: Arc<dyn Storage>,
    sleep: Duration,
}

impl Logged {
    async fn log(&self, job: &Job, event: &str) -> Result<()> {
        self.storage
            .execute(
                "INSERT INTO kill9_log (job_id, pid, attempt, event) VALUES ($1, $2, $3, $4)",
                &[
                    Value::Text(job.id.clone()),
                    Value::Int(std::process::id().into()),
                    Value::Int(job.attempt.into()),
                    Value::Text(event.to_owned()),
                ],
            )
            .await
            .map(|_| ())
    }
}

#[async_trait]
impl JobHandler for Logged {
    async fn handle(&self, job: Job) -> Result<()> {
        self.log(&job, "started").await?;
        tokio::time::sleep(self.sleep).await;
        self.log(&job, "finished").await
    }
}

/// Enqueues the job (in `enqueue` mode) and registers the worker.
async fn register(queue: &dyn JobQueue, mode: &str, handler: Arc<Logged>) -> Result<()> {
    if mode == "enqueue" {
        let options = EnqueueOptions {
            idempotency_key: Some("kill9".to_owned()),
            ..Default::default()
        };
        queue
            .enqueue("kill9", serde_json::json!({ "n": 1 }), options)
            .await?;
    }
    queue.work("kill9", 1, handler).await
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (url, mode, sleep_ms, redis) = match args.as_slice() {
        [_, url, mode, sleep] => (url, mode, sleep, None),
        [_, url, mode, sleep, redis, prefix] => (url, mode, sleep, Some((redis, prefix))),
        _ => {
            return Err(Error::part(
                "queue-worker",
                "usage: queue-worker <database-url> <enqueue|work> <handler-sleep-ms> [<redis-url> <prefix>]",
            ));
        }
    };
    let sleep = Duration::from_millis(sleep_ms.parse().unwrap_or(0));
    let storage: Arc<dyn Storage> = Arc::new(SqlStorage::connect(url, StorageOptions::default())?);
    let options = QueueOptions {
        visibility_timeout: VISIBILITY_TIMEOUT,
        poll_interval: Duration::from_millis(100),
        ..Default::default()
    };
    let logged = Arc::new(Logged {
        storage: storage.clone(),
        sleep,
    });
    match redis {
        Some((redis_url, prefix)) => {
            let queue =
                RedisQueue::with_options(redis_url.as_str(), options).with_prefix(prefix.as_str());
            queue.install().await?;
            register(&queue, mode, logged).await?;
            queue.start_workers()?;
            // Runs until the test kills it.
            std::future::pending::<()>().await;
        }
        None => {
            let queue = PgQueue::with_options(options).on_storage(storage);
            queue.install().await?;
            register(&queue, mode, logged).await?;
            queue.start_workers()?;
            // Runs until the test kills it.
            std::future::pending::<()>().await;
        }
    }
    Ok(())
}
