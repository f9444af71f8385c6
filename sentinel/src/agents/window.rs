//! Small per-source counters over sliding windows, bounded in memory: the shared bookkeeping
//! of APIWatch and AuthSentry.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Entries kept before old ones are swept.
const CAPACITY: usize = 8192;

/// Events per key within a sliding window (the previous window's count weighted by how much
/// of it still overlaps, as Cloudflare's limiter does): O(1) memory per key.
#[derive(Debug)]
pub struct Counter<K> {
    window: Duration,
    counts: HashMap<K, (Instant, f64, f64)>,
}

impl<K: Hash + Eq + Clone> Counter<K> {
    /// Counts over `window`.
    pub fn new(window: Duration) -> Self {
        Counter {
            window,
            counts: HashMap::new(),
        }
    }

    /// Adds one event for `key`; returns the estimated count in the last window.
    pub fn add(&mut self, key: &K, now: Instant) -> f64 {
        self.sweep(now);
        let window = self.window;
        let entry = self.counts.entry(key.clone()).or_insert((now, 0.0, 0.0));
        roll(entry, now, window);
        entry.1 += 1.0;
        estimate(entry, now, window)
    }

    /// The estimated count for `key` in the last window.
    #[cfg(test)]
    pub fn get(&mut self, key: &K, now: Instant) -> f64 {
        let window = self.window;
        match self.counts.get_mut(key) {
            Some(entry) => {
                roll(entry, now, window);
                estimate(entry, now, window)
            }
            None => 0.0,
        }
    }

    fn sweep(&mut self, now: Instant) {
        if self.counts.len() >= CAPACITY {
            let window = self.window;
            self.counts
                .retain(|_, (start, _, _)| now.duration_since(*start) < window * 2);
        }
    }
}

fn roll(entry: &mut (Instant, f64, f64), now: Instant, window: Duration) {
    let elapsed = now.duration_since(entry.0);
    if elapsed >= window * 2 {
        *entry = (now, 0.0, 0.0);
    } else if elapsed >= window {
        *entry = (entry.0 + window, 0.0, entry.1);
    }
}

fn estimate(entry: &(Instant, f64, f64), now: Instant, window: Duration) -> f64 {
    let into = now.duration_since(entry.0).as_secs_f64() / window.as_secs_f64();
    entry.1 + entry.2 * (1.0 - into.clamp(0.0, 1.0))
}

/// Distinct values per key within a window that starts at the key's first value (e.g.
/// identities failing from one source), at most `cap` values remembered per key.
#[derive(Debug)]
pub struct Distinct<K> {
    window: Duration,
    cap: usize,
    sets: HashMap<K, (Instant, HashSet<String>)>,
}

impl<K: Hash + Eq + Clone> Distinct<K> {
    /// Distinct values over `window`, remembering at most `cap` per key.
    pub fn new(window: Duration, cap: usize) -> Self {
        Distinct {
            window,
            cap,
            sets: HashMap::new(),
        }
    }

    /// Records `value` for `key`; returns how many distinct values it has in its window.
    pub fn add(&mut self, key: &K, value: &str, now: Instant) -> usize {
        if self.sets.len() >= CAPACITY {
            let window = self.window;
            self.sets
                .retain(|_, (start, _)| now.duration_since(*start) < window);
        }
        let entry = self
            .sets
            .entry(key.clone())
            .or_insert_with(|| (now, HashSet::new()));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, HashSet::new());
        }
        if entry.1.len() < self.cap {
            entry.1.insert(value.to_owned());
        }
        entry.1.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_slide_and_distinct_sets_count_once() {
        let t0 = Instant::now();
        let mut c = Counter::new(Duration::from_secs(10));
        for _ in 0..5 {
            c.add(&"a", t0);
        }
        assert_eq!(c.get(&"a", t0), 5.0);
        let later = c.get(&"a", t0 + Duration::from_secs(15));
        assert!(later > 0.0 && later < 5.0, "{later}");
        assert_eq!(c.get(&"a", t0 + Duration::from_secs(30)), 0.0);
        let mut d = Distinct::new(Duration::from_secs(10), 3);
        assert_eq!(d.add(&"s", "u1", t0), 1);
        assert_eq!(d.add(&"s", "u1", t0), 1);
        assert_eq!(d.add(&"s", "u2", t0), 2);
        assert_eq!(d.add(&"s", "u3", t0), 3);
        assert_eq!(d.add(&"s", "u4", t0), 3, "capped");
        assert_eq!(d.add(&"s", "u5", t0 + Duration::from_secs(11)), 1);
    }
}
