//! Job-queue throughput per GPU driver: how fast jobs are enqueued, and how many per second
//! go from enqueue to completion with a no-op handler, with the latency of each job from its
//! enqueue to the end of its run. A plain program (not criterion): one run is thousands of
//! jobs, and what matters is the drivers side by side in the same run.
//!
//! ```sh
//! cargo bench -p magmobo-benches --bench queue -- 5000 8    # jobs, worker concurrency
//! ```
//! PostgreSQL (`DATABASE_URL`, a throw-away database is created and dropped) and Redis
//! (`REDIS_URL`, a unique key prefix, deleted after) are measured when reachable.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use magmobo::prelude::*;
use magmobo::queue::{MemoryQueue, PgQueue, QueueOptions, RedisQueue};
use magmobo::roles::queue::{EnqueueOptions, Job, JobHandler};
use magmobo::storage::{SqlStorage, StorageOptions};
use tokio::sync::Mutex;

/// Records when each job finished, relative to the run's start.
struct Recorder {
    start: Instant,
    done: AtomicUsize,
    latencies: Mutex<Vec<Duration>>,
}

#[async_trait]
impl JobHandler for Recorder {
    async fn handle(&self, job: Job) -> Result<()> {
        let enqueued = Duration::from_micros(job.payload["t"].as_u64().unwrap_or(0));
        let latency = self.start.elapsed().saturating_sub(enqueued);
        self.latencies.lock().await.push(latency);
        self.done.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

struct Outcome {
    enqueue_per_s: f64,
    jobs_per_s: f64,
    p50: Duration,
    p99: Duration,
}

async fn measure(
    queue: &dyn JobQueue,
    start_workers: &dyn Fn(),
    jobs: usize,
    concurrency: usize,
) -> Outcome {
    let recorder = Arc::new(Recorder {
        start: Instant::now(),
        done: AtomicUsize::new(0),
        latencies: Mutex::new(Vec::with_capacity(jobs)),
    });
    queue
        .work("bench", concurrency, recorder.clone())
        .await
        .expect("register the worker");
    start_workers();
    let began = Instant::now();
    for _ in 0..jobs {
        let t = recorder.start.elapsed().as_micros() as u64;
        queue
            .enqueue(
                "bench",
                serde_json::json!({ "t": t }),
                EnqueueOptions::default(),
            )
            .await
            .expect("enqueue");
    }
    let enqueued_in = began.elapsed();
    while recorder.done.load(Ordering::Relaxed) < jobs {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let total = began.elapsed();
    let mut latencies = recorder.latencies.lock().await.clone();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    Outcome {
        enqueue_per_s: jobs as f64 / enqueued_in.as_secs_f64(),
        jobs_per_s: jobs as f64 / total.as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
    }
}

fn options() -> QueueOptions {
    QueueOptions {
        poll_interval: Duration::from_millis(10),
        ..QueueOptions::default()
    }
}

fn print(name: &str, o: &Outcome) {
    println!(
        "| {name} | {:.0} | {:.0} | {:.1} ms | {:.1} ms |",
        o.enqueue_per_s,
        o.jobs_per_s,
        o.p50.as_secs_f64() * 1e3,
        o.p99.as_secs_f64() * 1e3
    );
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let jobs = args.first().copied().unwrap_or(5000);
    let concurrency = args.get(1).copied().unwrap_or(8);
    println!("{jobs} no-op jobs, concurrency {concurrency}, poll interval 10 ms\n");
    println!("| driver | enqueue/s | jobs/s (enqueue to done) | p50 latency | p99 latency |");
    println!("|---|---|---|---|---|");

    let memory = MemoryQueue::with_options(options());
    let o = measure(&memory, &|| memory.start_workers(), jobs, concurrency).await;
    print("memory", &o);
    memory.stop_workers(StopMode::Fast).await;

    let admin_url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    match SqlStorage::connect(&admin_url, StorageOptions::default()) {
        Ok(admin) if admin.execute("SELECT 1", &[]).await.is_ok() => {
            let name = format!("magmobo_queue_bench_{}", std::process::id());
            admin
                .execute(&format!("CREATE DATABASE {name}"), &[])
                .await?;
            let url = match admin_url.rsplit_once('/') {
                Some((base, _)) => format!("{base}/{name}"),
                None => admin_url.clone(),
            };
            {
                let storage: Arc<dyn Storage> =
                    Arc::new(SqlStorage::connect(&url, StorageOptions::default())?);
                let pg = PgQueue::with_options(options()).on_storage(storage.clone());
                pg.install().await?;
                let o = measure(
                    &pg,
                    &|| pg.start_workers().expect("start"),
                    jobs,
                    concurrency,
                )
                .await;
                print("postgres (SKIP LOCKED)", &o);
                pg.stop_workers(StopMode::Fast).await;
                storage.stop(StopMode::Fast).await?;
            }
            admin
                .execute(&format!("DROP DATABASE {name} WITH (FORCE)"), &[])
                .await?;
        }
        _ => println!("| postgres | not reachable at DATABASE_URL | | | |"),
    }

    let redis_url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let prefix = format!("magmobo-queue-bench:{}", std::process::id());
    let redis = RedisQueue::with_options(&redis_url, options()).with_prefix(&prefix);
    match redis.install().await {
        Ok(()) => {
            let o = measure(
                &redis,
                &|| redis.start_workers().expect("start"),
                jobs,
                concurrency,
            )
            .await;
            print("redis (streams)", &o);
            redis.stop_workers(StopMode::Fast).await;
            if let Ok(client) = redis::Client::open(redis_url.as_str())
                && let Ok(mut conn) = client.get_multiplexed_async_connection().await
            {
                let keys: Vec<String> = redis::cmd("KEYS")
                    .arg(format!("{prefix}:*"))
                    .query_async(&mut conn)
                    .await
                    .unwrap_or_default();
                if !keys.is_empty() {
                    let _: redis::RedisResult<()> =
                        redis::cmd("DEL").arg(keys).query_async(&mut conn).await;
                }
            }
        }
        Err(_) => println!("| redis | not reachable at REDIS_URL | | | |"),
    }
    Ok(())
}
