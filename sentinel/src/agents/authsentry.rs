//! AuthSentry: failed sign-ins and rejected credentials, per identity and per source.
//! After a few failures each further attempt must wait longer (progressive delay: 429 with
//! `Retry-After`, doubling), after many the identity or source is blocked for a period (403),
//! and a success after many failures is flagged as a possible account takeover.
//!
//! Failures come from 401 answers to requests that carried a credential, and from the PSU's
//! bus events (`auth.key.rejected`, `auth.token.rejected`, `auth.login.failed`) when they name
//! a source (`source` or `ip`), so one refusal is not counted twice from an event without one.
//! MagAuth's `auth.login.failed` (email hash, ip) and `auth.login.succeeded` (user id, ip)
//! are read the same way.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use magmobo_core::bus::Event;

use crate::agent::{Agent, Finding, RequestView, ResponseView, ThreatKind};

/// The agent's name.
pub const NAME: &str = "AuthSentry";

const TOPICS: [&str; 4] = [
    "auth.key.rejected",
    "auth.token.rejected",
    "auth.login.failed",
    "auth.login.succeeded",
];

/// AuthSentry's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthSentryConfig {
    /// Failures are forgotten after this long without another.
    pub window: Duration,
    /// Failures before attempts are delayed.
    pub delay_after: u32,
    /// The first delay; each further failure doubles it.
    pub base_delay: Duration,
    /// The longest delay.
    pub max_delay: Duration,
    /// Failures before the identity or source is blocked.
    pub block_after: u32,
    /// How long a block lasts.
    pub block_for: Duration,
    /// Failures after which a success is flagged as a possible account takeover.
    pub takeover_after: u32,
}

impl Default for AuthSentryConfig {
    fn default() -> Self {
        AuthSentryConfig {
            window: Duration::from_secs(900),
            delay_after: 5,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            block_after: 20,
            block_for: Duration::from_secs(900),
            takeover_after: 5,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Source(IpAddr),
    Identity(String),
}

impl Key {
    fn describe(&self) -> String {
        match self {
            Key::Source(ip) => format!("source {ip}"),
            Key::Identity(id) => format!("identity {id}"),
        }
    }
}

#[derive(Debug)]
struct Record {
    failures: u32,
    last: Instant,
    locked_until: Option<Instant>,
}

/// The AuthSentry agent.
#[derive(Debug, Default)]
pub struct AuthSentry {
    config: AuthSentryConfig,
    records: Mutex<HashMap<Key, Record>>,
}

impl AuthSentry {
    /// AuthSentry with these settings.
    pub fn new(config: AuthSentryConfig) -> Self {
        AuthSentry {
            config,
            records: Mutex::default(),
        }
    }

    fn records(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Record>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn delay(&self, failures: u32) -> Duration {
        let steps = failures.saturating_sub(self.config.delay_after).min(16);
        (self.config.base_delay * 2u32.pow(steps)).min(self.config.max_delay)
    }

    /// Records one failure; reports when delays start and when a block starts.
    fn failure(&self, keys: &[Key], now: Instant, findings: &mut Vec<Finding>) {
        let mut records = self.records();
        if records.len() >= 16_384 {
            let window = self.config.window;
            records.retain(|_, r| now.duration_since(r.last) < window);
        }
        for key in keys {
            let record = records.entry(key.clone()).or_insert(Record {
                failures: 0,
                last: now,
                locked_until: None,
            });
            if now.duration_since(record.last) >= self.config.window {
                record.failures = 0;
            }
            record.failures += 1;
            record.last = now;
            let mut finding = None;
            if record.failures == self.config.block_after {
                record.locked_until = Some(now + self.config.block_for);
                finding = Some(Finding::new(
                    NAME,
                    ThreatKind::BruteForce,
                    0.9,
                    format!(
                        "{} failures for {}: blocked for {:?}",
                        record.failures,
                        key.describe(),
                        self.config.block_for
                    ),
                ));
            } else if record.failures == self.config.delay_after {
                finding = Some(Finding::new(
                    NAME,
                    ThreatKind::BruteForce,
                    0.6,
                    format!(
                        "{} failures for {}: attempts delayed",
                        record.failures,
                        key.describe()
                    ),
                ));
            }
            if let Some(mut f) = finding {
                match key {
                    Key::Source(ip) => f = f.from_source(ip.to_string()),
                    Key::Identity(id) => f = f.for_identity(id.clone()),
                }
                findings.push(f);
            }
        }
    }

    fn success(&self, keys: &[Key], findings: &mut Vec<Finding>) {
        let mut records = self.records();
        let mut flagged: Option<(Key, u32)> = None;
        for key in keys {
            let Some(record) = records.remove(key) else {
                continue;
            };
            // Either the identity that kept failing, or the source that kept failing (sign-in
            // failures name an email hash, successes a user id, so only the source links them).
            // One finding per success; the identity is the better name when both qualify.
            let better = flagged.as_ref().is_none_or(|(k, _)| {
                matches!(k, Key::Source(_)) && matches!(key, Key::Identity(_))
            });
            if record.failures >= self.config.takeover_after && better {
                flagged = Some((key.clone(), record.failures));
            }
        }
        let Some((key, failures)) = flagged else {
            return;
        };
        let mut finding = Finding::new(
            NAME,
            ThreatKind::AccountTakeover,
            0.75,
            format!("success for {} after {failures} failures", key.describe()),
        );
        for other in keys {
            match other {
                Key::Source(ip) => finding = finding.from_source(ip.to_string()),
                Key::Identity(id) => finding = finding.for_identity(id.clone()),
            }
        }
        findings.push(finding);
    }
}

fn keys(source: Option<IpAddr>, identity: Option<&str>) -> Vec<Key> {
    let mut keys = Vec::with_capacity(2);
    if let Some(ip) = source {
        keys.push(Key::Source(ip));
    }
    if let Some(id) = identity {
        keys.push(Key::Identity(id.to_owned()));
    }
    keys
}

impl Agent for AuthSentry {
    fn name(&self) -> &'static str {
        NAME
    }

    fn inspect(&self, request: &RequestView<'_>, findings: &mut Vec<Finding>) {
        // Only attempts that present a credential are held back.
        let Some(identity) = &request.identity else {
            return;
        };
        let now = Instant::now();
        let mut records = self.records();
        if records.is_empty() {
            return;
        }
        let identity = Key::Identity(identity.clone());
        for key in [Key::Source(request.peer), identity] {
            let Some(record) = records.get_mut(&key) else {
                continue;
            };
            if let Some(until) = record.locked_until {
                if until > now {
                    findings.push(Finding::new(
                        NAME,
                        ThreatKind::BruteForce,
                        0.9,
                        format!(
                            "{} is blocked after {} failures",
                            key.describe(),
                            record.failures
                        ),
                    ));
                    return;
                }
                record.locked_until = None;
                record.failures = 0;
            }
            if record.failures >= self.config.delay_after {
                let ready = record.last + self.delay(record.failures);
                if ready > now {
                    findings.push(
                        Finding::new(
                            NAME,
                            ThreatKind::BruteForce,
                            0.0,
                            format!(
                                "{} must wait after {} failures",
                                key.describe(),
                                record.failures
                            ),
                        )
                        .retry_after(ready - now),
                    );
                    return;
                }
            }
        }
    }

    fn watches_responses(&self) -> bool {
        true
    }

    fn on_response(&self, response: &ResponseView<'_>, findings: &mut Vec<Finding>) {
        let Some(identity) = response.identity.as_deref() else {
            return;
        };
        let keys = keys(Some(response.peer), Some(identity));
        match response.status {
            401 => self.failure(&keys, Instant::now(), findings),
            200..=299 => self.success(&keys, findings),
            _ => {}
        }
    }

    fn topics(&self) -> &'static [&'static str] {
        &TOPICS
    }

    fn on_event(&self, event: &Event, findings: &mut Vec<Finding>) {
        let field = |name: &str| event.payload.get(name).and_then(|v| v.as_str());
        let source = field("source")
            .or_else(|| field("ip"))
            .and_then(|s| s.parse::<IpAddr>().ok());
        let identity = field("identity")
            .or_else(|| field("user"))
            .or_else(|| field("user_id"))
            .or_else(|| field("email_hash"))
            .or_else(|| field("key_id"));
        if event.topic == "auth.login.succeeded" {
            self.success(&keys(source, identity), findings);
        } else if source.is_some() {
            self.failure(&keys(source, identity), Instant::now(), findings);
        }
    }
}
