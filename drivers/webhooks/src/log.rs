//! The bounded in-memory record of delivery attempts and per-endpoint failure streaks.
//!
//! Operators ask "did endpoint X get event Y, and what did it answer?" far more often than
//! they need history, so the log keeps only the last N attempts (memory stays flat under any
//! load) and health reads the failure streaks instead of scanning it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use serde::Serialize;

/// One HTTP attempt to deliver one event to one endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryAttempt {
    /// The endpoint's name.
    pub endpoint: String,
    /// The event's delivery id (the `webhook-id` header), the same on every retry.
    pub event_id: String,
    /// The event's topic.
    pub topic: String,
    /// 1 on the first try, 2 on the first retry, ...
    pub attempt: u32,
    /// The HTTP status, when the receiver answered.
    pub status: Option<u16>,
    /// Why the attempt failed: a network error, a timeout or a non-2xx status.
    pub error: Option<String>,
    /// From sending the request to the end of the response headers (or the failure).
    pub duration: Duration,
    /// When the attempt finished.
    pub at: SystemTime,
}

impl DeliveryAttempt {
    /// Whether the receiver accepted the event (answered 2xx).
    pub fn succeeded(&self) -> bool {
        self.error.is_none()
    }
}

#[derive(Debug, Default)]
struct State {
    attempts: VecDeque<DeliveryAttempt>,
    /// Consecutive failed attempts per endpoint; reset by a success.
    streaks: HashMap<String, u32>,
}

/// A shared handle on the delivery log; clones see the same log.
#[derive(Debug, Clone)]
pub struct DeliveryLog {
    capacity: usize,
    state: Arc<Mutex<State>>,
}

impl DeliveryLog {
    pub(crate) fn new(capacity: usize) -> Self {
        DeliveryLog {
            capacity: capacity.max(1),
            state: Arc::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn record(&self, attempt: DeliveryAttempt) {
        let mut state = self.lock();
        let streak = state.streaks.entry(attempt.endpoint.clone()).or_default();
        *streak = if attempt.succeeded() {
            0
        } else {
            streak.saturating_add(1)
        };
        if state.attempts.len() == self.capacity {
            state.attempts.pop_front();
        }
        state.attempts.push_back(attempt);
    }

    /// The last attempts kept, oldest first.
    pub fn attempts(&self) -> Vec<DeliveryAttempt> {
        self.lock().attempts.iter().cloned().collect()
    }

    /// The kept attempts for one event id, oldest first.
    pub fn attempts_for(&self, event_id: &str) -> Vec<DeliveryAttempt> {
        self.lock()
            .attempts
            .iter()
            .filter(|a| a.event_id == event_id)
            .cloned()
            .collect()
    }

    /// Endpoints whose last `threshold` or more attempts all failed, with the streak length.
    pub fn failing(&self, threshold: u32) -> Vec<(String, u32)> {
        let mut failing: Vec<(String, u32)> = self
            .lock()
            .streaks
            .iter()
            .filter(|(_, streak)| **streak >= threshold.max(1))
            .map(|(name, streak)| (name.clone(), *streak))
            .collect();
        failing.sort();
        failing
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::{DeliveryAttempt, DeliveryLog};

    fn attempt(endpoint: &str, n: u32, ok: bool) -> DeliveryAttempt {
        DeliveryAttempt {
            endpoint: endpoint.into(),
            event_id: format!("e{n}"),
            topic: "t".into(),
            attempt: 1,
            status: Some(if ok { 200 } else { 500 }),
            error: (!ok).then(|| "HTTP 500".into()),
            duration: Duration::ZERO,
            at: SystemTime::now(),
        }
    }

    #[test]
    fn keeps_the_last_n_and_tracks_streaks_per_endpoint() {
        let log = DeliveryLog::new(3);
        for (n, (endpoint, ok)) in [("a", false), ("a", false), ("b", false), ("a", false)]
            .into_iter()
            .enumerate()
        {
            log.record(attempt(endpoint, n as u32, ok));
        }
        let ids: Vec<String> = log.attempts().into_iter().map(|a| a.event_id).collect();
        assert_eq!(ids, ["e1", "e2", "e3"]);
        assert_eq!(log.failing(3), [("a".to_owned(), 3)]);
        assert_eq!(log.failing(1).len(), 2);
        log.record(attempt("a", 9, true));
        assert_eq!(log.failing(1), [("b".to_owned(), 1)]);
    }
}
