//! The GPU slot drivers against the same behaviours (retry then success, dead-letter after N,
//! delay, idempotency, concurrency limit, cron), on the in-process queue, on PostgreSQL and
//! on Redis streams; then a PgQueue job and a RedisQueue job surviving their worker's
//! `kill -9`.

// Tests unwrap freely: a panic with the value is the clearest failure.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use futures::future::BoxFuture;
use magmobo::prelude::*;
use magmobo::queue::{DeadJob, MemoryQueue, PgQueue, QueueOptions, RedisQueue};
use magmobo::roles::queue::{EnqueueOptions, Job, JobHandler};
use magmobo::roles::storage::Value;
use magmobo::storage::{SqlStorage, StorageOptions};
use magmobo_integration_tests::services::{TempDatabase, postgres_or_skip, redis_or_skip};

/// A handler from a closure.
struct FnHandler<F>(F);

#[async_trait]
impl<F> JobHandler for FnHandler<F>
where
    F: Fn(Job) -> BoxFuture<'static, Result<()>> + Send + Sync + 'static,
{
    async fn handle(&self, job: Job) -> Result<()> {
        (self.0)(job).await
    }
}

fn handler<F>(f: F) -> Arc<dyn JobHandler>
where
    F: Fn(Job) -> BoxFuture<'static, Result<()>> + Send + Sync + 'static,
{
    Arc::new(FnHandler(f))
}

fn fast_options() -> QueueOptions {
    QueueOptions {
        backoff_base: Duration::from_millis(50),
        backoff_max: Duration::from_millis(200),
        poll_interval: Duration::from_millis(20),
        visibility_timeout: Duration::from_secs(10),
        ..Default::default()
    }
}

/// One driver under test, with what the `JobQueue` trait does not cover.
enum Driver {
    Memory(MemoryQueue),
    // The database is declared after the queue so it is dropped last.
    Pg {
        queue: PgQueue,
        _db: TempDatabase,
    },
    Redis {
        queue: RedisQueue,
        url: String,
        prefix: String,
    },
}

/// A key prefix no other test run uses.
fn unique_prefix() -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("magmobo-test:{}:{nanos}", std::process::id())
}

/// Deletes every key under `prefix`.
async fn drop_redis_keys(url: &str, prefix: &str) {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL")
            .arg(keys)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
}

impl Driver {
    async fn all(test: &str) -> Vec<Driver> {
        let mut drivers = vec![Driver::Memory(MemoryQueue::with_options(fast_options()))];
        if let Some(db) = postgres_or_skip(test).await {
            let shared: Arc<dyn Storage> =
                Arc::new(SqlStorage::connect(&db.url, StorageOptions::default()).unwrap());
            let queue = PgQueue::with_options(fast_options()).on_storage(shared);
            queue.install().await.unwrap();
            drivers.push(Driver::Pg { queue, _db: db });
        }
        if let Some(url) = redis_or_skip(test).await {
            let prefix = unique_prefix();
            let queue = RedisQueue::with_options(&url, fast_options()).with_prefix(&prefix);
            queue.install().await.unwrap();
            drivers.push(Driver::Redis { queue, url, prefix });
        }
        drivers
    }

    fn name(&self) -> &'static str {
        match self {
            Driver::Memory(_) => "memory",
            Driver::Pg { .. } => "postgres",
            Driver::Redis { .. } => "redis",
        }
    }

    fn queue(&self) -> &dyn JobQueue {
        match self {
            Driver::Memory(q) => q,
            Driver::Pg { queue: q, .. } => q,
            Driver::Redis { queue: q, .. } => q,
        }
    }

    fn start(&self) {
        match self {
            Driver::Memory(q) => q.start_workers(),
            Driver::Pg { queue: q, .. } => q.start_workers().unwrap(),
            Driver::Redis { queue: q, .. } => q.start_workers().unwrap(),
        }
    }

    async fn stop(&self) {
        let mode = StopMode::Graceful {
            deadline: Duration::from_secs(5),
        };
        let drained = match self {
            Driver::Memory(q) => q.stop_workers(mode).await,
            Driver::Pg { queue: q, .. } => q.stop_workers(mode).await,
            Driver::Redis { queue: q, .. } => q.stop_workers(mode).await,
        };
        assert!(drained, "{}: workers did not drain", self.name());
        if let Driver::Redis { url, prefix, .. } = self {
            drop_redis_keys(url, prefix).await;
        }
    }

    async fn dead_letters(&self, queue: &str) -> Vec<DeadJob> {
        match self {
            Driver::Memory(q) => q.dead_letters(queue),
            Driver::Pg { queue: q, .. } => q.dead_letters(queue).await.unwrap(),
            Driver::Redis { queue: q, .. } => q.dead_letters(queue).await.unwrap(),
        }
    }

    async fn pending(&self, queue: &str) -> u64 {
        match self {
            Driver::Memory(q) => q.pending(queue) as u64,
            Driver::Pg { queue: q, .. } => q.pending(queue).await.unwrap(),
            Driver::Redis { queue: q, .. } => q.pending(queue).await.unwrap(),
        }
    }
}

async fn eventually(what: &str, mut condition: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_job_is_retried_until_it_succeeds() {
    for driver in Driver::all("a_failing_job_is_retried_until_it_succeeds").await {
        let runs = Arc::new(AtomicU32::new(0));
        let counted = runs.clone();
        let q = driver.queue();
        q.work(
            "retry",
            1,
            handler(move |job| {
                counted.fetch_add(1, Ordering::SeqCst);
                Box::pin(async move {
                    if job.attempt < 3 {
                        Err(Error::part("test", "not yet"))
                    } else {
                        Ok(())
                    }
                })
            }),
        )
        .await
        .unwrap();
        driver.start();
        q.enqueue("retry", serde_json::json!({}), EnqueueOptions::default())
            .await
            .unwrap();
        eventually("the job succeeds", async || {
            driver.pending("retry").await == 0
        })
        .await;
        assert_eq!(runs.load(Ordering::SeqCst), 3, "{}", driver.name());
        assert!(
            driver.dead_letters("retry").await.is_empty(),
            "{}",
            driver.name()
        );
        driver.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_failing_max_attempts_times_is_dead_lettered() {
    for driver in Driver::all("a_job_failing_max_attempts_times_is_dead_lettered").await {
        let runs = Arc::new(AtomicU32::new(0));
        let counted = runs.clone();
        let q = driver.queue();
        q.work(
            "doomed",
            2,
            handler(move |_| {
                counted.fetch_add(1, Ordering::SeqCst);
                Box::pin(async { Err(Error::part("test", "always fails")) })
            }),
        )
        .await
        .unwrap();
        driver.start();
        let options = EnqueueOptions {
            max_attempts: Some(3),
            ..Default::default()
        };
        let id = q
            .enqueue("doomed", serde_json::json!({ "x": 1 }), options)
            .await
            .unwrap();
        eventually("the job is dead-lettered", async || {
            !driver.dead_letters("doomed").await.is_empty()
        })
        .await;
        let dead = driver.dead_letters("doomed").await;
        assert_eq!(dead.len(), 1, "{}", driver.name());
        assert_eq!(dead[0].job.id, id);
        assert_eq!(dead[0].job.attempt, 3);
        assert_eq!(dead[0].job.payload["x"], 1);
        assert!(dead[0].error.contains("always fails"), "{}", dead[0].error);
        // No fourth run after dead-lettering.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 3, "{}", driver.name());
        assert_eq!(driver.pending("doomed").await, 0);
        driver.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_jobs_wait_for_their_time() {
    for driver in Driver::all("delayed_jobs_wait_for_their_time").await {
        let ran_at = Arc::new(std::sync::Mutex::new(Vec::<(String, Instant)>::new()));
        let record = ran_at.clone();
        let q = driver.queue();
        q.work(
            "later",
            2,
            handler(move |job| {
                let label = job.payload["label"].as_str().unwrap_or("").to_owned();
                record.lock().unwrap().push((label, Instant::now()));
                Box::pin(async { Ok(()) })
            }),
        )
        .await
        .unwrap();
        driver.start();
        let enqueued = Instant::now();
        let delay = EnqueueOptions {
            delay: Some(Duration::from_millis(700)),
            ..Default::default()
        };
        let run_at = EnqueueOptions {
            run_at: Some(SystemTime::now() + Duration::from_millis(700)),
            // run_at wins over delay.
            delay: Some(Duration::from_secs(60)),
            ..Default::default()
        };
        q.enqueue("later", serde_json::json!({ "label": "delay" }), delay)
            .await
            .unwrap();
        q.enqueue("later", serde_json::json!({ "label": "run_at" }), run_at)
            .await
            .unwrap();
        q.enqueue(
            "later",
            serde_json::json!({ "label": "now" }),
            EnqueueOptions::default(),
        )
        .await
        .unwrap();
        eventually("all three ran", async || ran_at.lock().unwrap().len() == 3).await;
        for (label, at) in ran_at.lock().unwrap().iter() {
            let waited = at.duration_since(enqueued);
            if label == "now" {
                assert!(
                    waited < Duration::from_millis(600),
                    "{}: {waited:?}",
                    driver.name()
                );
            } else {
                // Allow for the database clock's rounding.
                assert!(
                    waited >= Duration::from_millis(650),
                    "{} {label}: ran after {waited:?}",
                    driver.name()
                );
            }
        }
        driver.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_returns_the_pending_job() {
    for driver in Driver::all("an_idempotency_key_returns_the_pending_job").await {
        let q = driver.queue();
        let keyed = |key: &str| EnqueueOptions {
            idempotency_key: Some(key.to_owned()),
            ..Default::default()
        };
        let first = q
            .enqueue("idem", serde_json::json!(1), keyed("k"))
            .await
            .unwrap();
        let second = q
            .enqueue("idem", serde_json::json!(2), keyed("k"))
            .await
            .unwrap();
        let other = q
            .enqueue("idem", serde_json::json!(3), keyed("other"))
            .await
            .unwrap();
        let elsewhere = q
            .enqueue("idem2", serde_json::json!(4), keyed("k"))
            .await
            .unwrap();
        assert_eq!(first, second, "{}", driver.name());
        assert_ne!(first, other);
        assert_ne!(first, elsewhere, "keys are per queue");
        assert_eq!(driver.pending("idem").await, 2, "{}", driver.name());

        // Once the job ran, the key is free again.
        q.work("idem", 1, handler(|_| Box::pin(async { Ok(()) })))
            .await
            .unwrap();
        driver.start();
        eventually("both ran", async || driver.pending("idem").await == 0).await;
        let third = q
            .enqueue("idem", serde_json::json!(5), keyed("k"))
            .await
            .unwrap();
        assert_ne!(first, third, "{}", driver.name());
        driver.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_runs_at_most_concurrency_jobs_at_once() {
    for driver in Driver::all("work_runs_at_most_concurrency_jobs_at_once").await {
        let current = Arc::new(AtomicUsize::new(0));
        let max = Arc::new(AtomicUsize::new(0));
        let (c, m) = (current.clone(), max.clone());
        let q = driver.queue();
        q.work(
            "limited",
            3,
            handler(move |_| {
                let (c, m) = (c.clone(), m.clone());
                Box::pin(async move {
                    let now = c.fetch_add(1, Ordering::SeqCst) + 1;
                    m.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(120)).await;
                    c.fetch_sub(1, Ordering::SeqCst);
                    Ok(())
                })
            }),
        )
        .await
        .unwrap();
        for n in 0..12 {
            q.enqueue("limited", serde_json::json!(n), EnqueueOptions::default())
                .await
                .unwrap();
        }
        driver.start();
        eventually("all ran", async || driver.pending("limited").await == 0).await;
        assert_eq!(max.load(Ordering::SeqCst), 3, "{}", driver.name());
        driver.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cron_schedules_enqueue_on_time_and_bad_expressions_are_refused() {
    for driver in Driver::all("cron_schedules_enqueue_on_time").await {
        let runs = Arc::new(AtomicU32::new(0));
        let counted = runs.clone();
        let q = driver.queue();
        let error = q
            .schedule("tick", "every minute", serde_json::json!({}))
            .await
            .unwrap_err();
        assert!(error.to_string().contains("cron"), "{error}");
        q.schedule("tick", "* * * * * *", serde_json::json!({ "tick": true }))
            .await
            .unwrap();
        q.work(
            "tick",
            1,
            handler(move |job| {
                assert_eq!(job.payload["tick"], true);
                counted.fetch_add(1, Ordering::SeqCst);
                Box::pin(async { Ok(()) })
            }),
        )
        .await
        .unwrap();
        driver.start();
        eventually("two ticks ran", async || runs.load(Ordering::SeqCst) >= 2).await;
        driver.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pg_job_survives_its_worker_being_killed() {
    let Some(db) = postgres_or_skip("a_pg_job_survives_its_worker_being_killed").await else {
        return;
    };
    job_survives_kill_9(&db, &[], "SELECT count(*) AS n FROM _magmobo_jobs").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_job_survives_its_worker_being_killed() {
    let test = "a_redis_job_survives_its_worker_being_killed";
    let Some(db) = postgres_or_skip(test).await else {
        return;
    };
    let Some(url) = redis_or_skip(test).await else {
        return;
    };
    let prefix = unique_prefix();
    job_survives_kill_9(&db, &[url.as_str(), prefix.as_str()], "").await;
    let left = RedisQueue::new(&url).with_prefix(&prefix);
    left.install().await.unwrap();
    assert_eq!(
        left.pending("kill9").await.unwrap(),
        0,
        "the finished job is gone"
    );
    drop_redis_keys(&url, &prefix).await;
}

/// One worker process starts a job and is killed with SIGKILL mid-job; a second process
/// finishes it, exactly once, after the visibility timeout. `queue_args` pick the driver
/// (empty: PgQueue in `db`; a Redis URL and prefix: RedisQueue); `left_sql` counts jobs left
/// in the database, when the queue lives there.
async fn job_survives_kill_9(db: &TempDatabase, queue_args: &[&str], left_sql: &str) {
    let storage = SqlStorage::connect(&db.url, StorageOptions::default()).unwrap();
    storage
        .execute(
            "CREATE TABLE kill9_log (job_id TEXT, pid BIGINT, attempt BIGINT, event TEXT,
                                     at TIMESTAMPTZ DEFAULT clock_timestamp())",
            &[],
        )
        .await
        .unwrap();
    let worker = env!("CARGO_BIN_EXE_queue-worker");
    let log = async |event: &str| {
        storage
            .query(
                "SELECT pid, attempt, extract(epoch FROM at)::float8 AS t
                 FROM kill9_log WHERE event = $1 ORDER BY at",
                &[Value::Text(event.to_owned())],
            )
            .await
            .unwrap()
    };

    // The first worker starts the job (whose handler would sleep a minute) and dies mid-job.
    let mut first = std::process::Command::new(worker)
        .args([db.url.as_str(), "enqueue", "60000"])
        .args(queue_args)
        .spawn()
        .unwrap();
    eventually("the first worker starts the job", async || {
        !log("started").await.is_empty()
    })
    .await;
    first.kill().unwrap(); // SIGKILL on Unix: no chance to clean up.
    first.wait().unwrap();

    let mut second = std::process::Command::new(worker)
        .args([db.url.as_str(), "work", "100"])
        .args(queue_args)
        .spawn()
        .unwrap();
    eventually("the second worker finishes the job", async || {
        !log("finished").await.is_empty()
    })
    .await;
    // Nothing runs it again afterwards: wait past another visibility timeout.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let _ = second.kill();
    let _ = second.wait();

    let started = log("started").await;
    let finished = log("finished").await;
    assert_eq!(started.len(), 2, "{started:?}");
    // Reclaimed only once the 2 s visibility timeout had passed (database clock on both rows;
    // the claim precedes the first `started` row by milliseconds).
    let at = |row: &magmobo::roles::storage::Row| match row.get("t") {
        Some(Value::Float(t)) => *t,
        other => panic!("{other:?}"),
    };
    let gap = at(&started[1]) - at(&started[0]);
    assert!(gap >= 1.9, "reclaimed after {gap} s");
    assert_eq!(
        finished.len(),
        1,
        "exactly once to completion: {finished:?}"
    );
    assert_eq!(finished[0].get("attempt"), Some(&Value::Int(2)));
    assert_eq!(
        finished[0].get("pid"),
        Some(&Value::Int(i64::from(second.id()))),
        "the second process finished it"
    );
    if !left_sql.is_empty() {
        let left = storage.query(left_sql, &[]).await.unwrap();
        assert_eq!(left[0].get("n"), Some(&Value::Int(0)));
    }
    let _ = storage.stop(StopMode::Fast).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_board_starts_pg_queue_workers_and_drains_them_on_graceful_shutdown() {
    let Some(db) = postgres_or_skip("a_board_starts_pg_queue_workers").await else {
        return;
    };
    let board = Motherboard::builder()
        // Registered before its Storage: depends_on orders the boot anyway.
        .with(PgQueue::with_options(fast_options()))
        .with(SqlStorage::connect(&db.url, StorageOptions::default()).unwrap())
        .build()
        .unwrap();
    board.boot().await.unwrap();
    let started = Arc::new(AtomicU32::new(0));
    let finished = Arc::new(AtomicU32::new(0));
    let (s, f) = (started.clone(), finished.clone());
    let jobs = board.jobs().unwrap();
    jobs.work(
        "board",
        1,
        handler(move |_| {
            let (s, f) = (s.clone(), f.clone());
            Box::pin(async move {
                s.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(400)).await;
                f.fetch_add(1, Ordering::SeqCst);
                Ok(())
            })
        }),
    )
    .await
    .unwrap();
    jobs.enqueue("board", serde_json::json!({}), EnqueueOptions::default())
        .await
        .unwrap();
    eventually("the job starts", async || {
        started.load(Ordering::SeqCst) == 1
    })
    .await;
    board
        .shutdown(StopMode::Graceful {
            deadline: Duration::from_secs(5),
        })
        .await
        .unwrap();
    assert_eq!(
        finished.load(Ordering::SeqCst),
        1,
        "shutdown waited for the running job"
    );
}
