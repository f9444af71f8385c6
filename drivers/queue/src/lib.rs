//! GPU slot drivers: [`MemoryQueue`] (in-process, feature `memory`), [`PgQueue`] (durable
//! in the board's PostgreSQL Storage, feature `postgres`) and `RedisQueue` (Redis streams
//! with a consumer group, feature `redis`), all implementing
//! [`magmobo_core::roles::queue::JobQueue`].
//!
//! All share one worker runtime (this module's `worker`), so retries, backoff, dead-letter,
//! concurrency and graceful stop behave identically and only the storage of jobs differs:
//! delivery is at least once (a job whose worker died is claimed again after the visibility
//! timeout), so handlers must be idempotent.

use std::time::{Duration, SystemTime};

use magmobo_core::roles::queue::Job;
use serde::Serialize;

#[cfg(any(feature = "memory", feature = "postgres", feature = "redis"))]
mod worker;

#[cfg(feature = "memory")]
mod memory;
#[cfg(feature = "postgres")]
mod pg;
#[cfg(feature = "redis")]
mod redis_queue;

#[cfg(feature = "memory")]
pub use memory::MemoryQueue;
#[cfg(feature = "postgres")]
pub use pg::PgQueue;
#[cfg(feature = "redis")]
pub use redis_queue::RedisQueue;

/// Attempts before a job is dead-lettered when its enqueue did not say.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;

/// Settings shared by both drivers.
#[derive(Debug, Clone)]
pub struct QueueOptions {
    /// Attempts before dead-letter, unless the job says otherwise (default 5).
    pub max_attempts: u32,
    /// Delay before the first retry; doubles each attempt (default 1 s).
    pub backoff_base: Duration,
    /// Longest delay between retries (default 5 min).
    pub backoff_max: Duration,
    /// A job claimed longer than this without finishing is claimed again: the worker is
    /// presumed dead (default 5 min). Keep it above the longest job.
    pub visibility_timeout: Duration,
    /// How often idle workers look for runnable jobs (default 500 ms; the memory queue is
    /// also woken on enqueue).
    pub poll_interval: Duration,
}

impl Default for QueueOptions {
    fn default() -> Self {
        QueueOptions {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            visibility_timeout: Duration::from_secs(300),
            poll_interval: Duration::from_millis(500),
        }
    }
}

impl QueueOptions {
    /// The wait before retry number `attempt` (1 after the first failure): exponential, capped,
    /// with "equal jitter" (uniform in the upper half) so failed jobs do not retry in lockstep.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(30);
        let full = self
            .backoff_base
            .saturating_mul(1u32 << exponent)
            .min(self.backoff_max);
        let half = full / 2;
        half + half.mul_f64(rand::random::<f64>())
    }
}

/// A job that failed `max_attempts` times.
#[derive(Debug, Clone, Serialize)]
pub struct DeadJob {
    /// The job as last attempted.
    pub job: Job,
    /// The last error.
    pub error: String,
    /// When it was dead-lettered.
    pub failed_at: SystemTime,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn backoff_doubles_caps_and_jitters_within_the_upper_half() {
        let options = super::QueueOptions {
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_millis(1000),
            ..Default::default()
        };
        let cases = [
            (1, 100),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1000),
            (40, 1000),
        ];
        for (attempt, full_ms) in cases {
            for _ in 0..50 {
                let wait = options.backoff(attempt).as_millis();
                assert!(wait >= full_ms / 2 && wait <= full_ms, "{attempt}: {wait}");
            }
        }
    }
}
