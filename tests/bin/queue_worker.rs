//! A worker process for `tests/queue.rs`: the test kills one with SIGKILL mid-job and starts
//! another, to show a PgQueue job survives its worker's death.
//!
//! Usage: `queue-worker <database-url> <enqueue|work> <handler-sleep-ms>`. Each handler run
//! writes `started` and then `finished` rows (with this process id and the attempt) to the
//! `kill9_log` table that the test created.

use std::sync::Arc;
use std::time::Duration;

use magmobo::prelude::*;
use magmobo::queue::{PgQueue, QueueOptions};
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

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, mode, sleep_ms] = args.as_slice() else {
        return Err(Error::part(
            "queue-worker",
            "usage: queue-worker <database-url> <enqueue|work> <handler-sleep-ms>",
        ));
    };
    let sleep = Duration::from_millis(sleep_ms.parse().unwrap_or(0));
    let storage: Arc<dyn Storage> = Arc::new(SqlStorage::connect(url, StorageOptions::default())?);
    let queue = PgQueue::with_options(QueueOptions {
        visibility_timeout: VISIBILITY_TIMEOUT,
        poll_interval: Duration::from_millis(100),
        ..Default::default()
    })
    .on_storage(storage.clone());
    queue.install().await?;
    if mode == "enqueue" {
        let options = EnqueueOptions {
            idempotency_key: Some("kill9".to_owned()),
            ..Default::default()
        };
        queue
            .enqueue("kill9", serde_json::json!({ "n": 1 }), options)
            .await?;
    }
    queue
        .work("kill9", 1, Arc::new(Logged { storage, sleep }))
        .await?;
    queue.start_workers()?;
    // Runs until the test kills it.
    std::future::pending::<()>().await;
    Ok(())
}
