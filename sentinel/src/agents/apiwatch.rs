//! APIWatch: abuse of the API as an API. Per-IP and per-identity token-bucket rate limits
//! (429 with `Retry-After`, shared through Redis when configured), scanners (known tools'
//! user agents, bursts of 404s, path traversal, probing for admin and secret files) and
//! credential stuffing (many identities failing from one source).
//!
//! Findings made after the fact (a burst of 404s is only known from responses, stuffing from
//! auth events) cannot change the answer already sent; APIWatch remembers the source as
//! flagged and reports it again on its next requests, where the policy can block it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use magmobo_core::bus::Event;
use magmobo_core::prelude::*;

use super::window::{Counter, Distinct};
use crate::agent::{Agent, AgentContext, Finding, RequestView, ResponseView, ThreatKind};
use magmobo_core::ratelimit::{Limit, RateLimiter};

/// The agent's name.
pub const NAME: &str = "APIWatch";

/// User-agent fragments of well-known attack tools (lowercase).
const SCANNERS: [&str; 18] = [
    "sqlmap",
    "nikto",
    "nuclei",
    "nmap",
    "masscan",
    "acunetix",
    "wpscan",
    "dirbuster",
    "gobuster",
    "ffuf",
    "feroxbuster",
    "zgrab",
    "openvas",
    "nessus",
    "w3af",
    "havij",
    "jaeles",
    "whatweb",
];

/// Paths nobody asks a database API for but scanners do (lowercase, matched as prefixes of a
/// path segment sequence).
const PROBES: [&str; 20] = [
    "/.env",
    "/.git",
    "/.svn",
    "/.hg",
    "/.aws",
    "/.ssh",
    "/.ds_store",
    "/.htaccess",
    "/.htpasswd",
    "/wp-admin",
    "/wp-login.php",
    "/wp-config",
    "/xmlrpc.php",
    "/phpmyadmin",
    "/pma",
    "/server-status",
    "/actuator",
    "/config.php",
    "/admin.php",
    "/cgi-bin",
];

/// Auth failures the bus carries.
const AUTH_FAILURES: [&str; 3] = [
    "auth.key.rejected",
    "auth.token.rejected",
    "auth.login.failed",
];

/// Where shared state lives.
#[derive(Debug, Clone, PartialEq)]
pub struct Shared {
    /// `redis://...`
    pub url: String,
    /// Key prefix, so boards of different projects on one Redis do not share buckets.
    pub namespace: String,
}

/// APIWatch's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiWatchConfig {
    /// Requests per client address; `None`: no limit.
    pub per_ip: Option<Limit>,
    /// Requests per identity (see [`RequestView::identity`]); `None`: no limit.
    pub per_identity: Option<Limit>,
    /// Share rate-limit buckets through Redis.
    pub shared: Option<Shared>,
    /// Window for counting 404s per source.
    pub not_found_window: Duration,
    /// 404s within the window that make a burst (twice as many: a block).
    pub not_found_burst: u32,
    /// Window for counting failing identities per source.
    pub stuffing_window: Duration,
    /// Distinct failing identities from one source that make credential stuffing.
    pub stuffing_identities: usize,
    /// How long a source found after the fact stays flagged.
    pub flag_for: Duration,
    /// Tokens a request costs while the policy throttles its source.
    pub throttle_cost: f64,
}

impl Default for ApiWatchConfig {
    fn default() -> Self {
        ApiWatchConfig {
            per_ip: Some(Limit::new(100.0, 200.0)),
            per_identity: Some(Limit::new(200.0, 400.0)),
            shared: None,
            not_found_window: Duration::from_secs(10),
            not_found_burst: 20,
            stuffing_window: Duration::from_secs(300),
            stuffing_identities: 5,
            flag_for: Duration::from_secs(300),
            throttle_cost: 4.0,
        }
    }
}

struct State {
    not_found: Counter<IpAddr>,
    probes: Counter<IpAddr>,
    failing: Distinct<IpAddr>,
    flagged: HashMap<IpAddr, (Instant, Finding)>,
    limited: Counter<String>,
}

struct Inner {
    config: ApiWatchConfig,
    per_ip: Option<Arc<RateLimiter>>,
    per_identity: Option<Arc<RateLimiter>>,
    state: Mutex<State>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// The APIWatch agent. Cheap to clone: clones share their buckets and counters (keep one to
/// look at [`ApiWatch::per_ip_limiter`] in tests).
#[derive(Clone)]
pub struct ApiWatch(Arc<Inner>);

impl std::fmt::Debug for ApiWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiWatch")
            .field("config", &self.0.config)
            .finish_non_exhaustive()
    }
}

impl Default for ApiWatch {
    fn default() -> Self {
        ApiWatch::new(ApiWatchConfig::default())
    }
}

impl ApiWatch {
    /// APIWatch with these settings.
    pub fn new(config: ApiWatchConfig) -> Self {
        let state = State {
            not_found: Counter::new(config.not_found_window),
            probes: Counter::new(Duration::from_secs(600)),
            failing: Distinct::new(config.stuffing_window, 64),
            flagged: HashMap::new(),
            limited: Counter::new(Duration::from_secs(10)),
        };
        ApiWatch(Arc::new(Inner {
            per_ip: config.per_ip.map(|l| Arc::new(RateLimiter::new(l))),
            per_identity: config.per_identity.map(|l| Arc::new(RateLimiter::new(l))),
            config,
            state: Mutex::new(state),
            tasks: Mutex::new(Vec::new()),
        }))
    }

    /// The per-IP buckets, if limited.
    pub fn per_ip_limiter(&self) -> Option<&Arc<RateLimiter>> {
        self.0.per_ip.as_ref()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Remembers `source` as flagged; returns the finding only the first time in a period.
    fn flag(
        &self,
        state: &mut State,
        source: IpAddr,
        finding: Finding,
        now: Instant,
    ) -> Option<Finding> {
        let until = now + self.0.config.flag_for;
        match state.flagged.get_mut(&source) {
            Some((old_until, old)) if *old_until > now && old.confidence >= finding.confidence => {
                *old_until = until;
                None
            }
            _ => {
                if state.flagged.len() >= 8192 {
                    state.flagged.retain(|_, (u, _)| *u > now);
                }
                state.flagged.insert(source, (until, finding.clone()));
                Some(finding)
            }
        }
    }

    fn rate_limit(&self, request: &RequestView<'_>, findings: &mut Vec<Finding>) {
        let cost = if request.throttled {
            self.0.config.throttle_cost
        } else {
            1.0
        };
        let mut refused: Option<(String, Duration)> = None;
        if let Some(limiter) = &self.0.per_ip {
            let key = format!("ip:{}", request.peer);
            if let Err(wait) = limiter.take(&key, cost) {
                refused = Some((key, wait));
            }
        }
        if refused.is_none()
            && let (Some(limiter), Some(identity)) = (&self.0.per_identity, &request.identity)
        {
            let key = format!("id:{identity}");
            if let Err(wait) = limiter.take(&key, cost) {
                refused = Some((key, wait));
            }
        }
        let Some((key, wait)) = refused else { return };
        // Every refused request gets its 429; only the first of a streak is worth an event.
        let streak = self.state().limited.add(&key, Instant::now());
        let confidence = if streak <= 1.0 { 0.6 } else { 0.0 };
        let limit = if key.starts_with("ip:") {
            self.0.config.per_ip
        } else {
            self.0.config.per_identity
        };
        let evidence = match limit {
            Some(l) => format!("{key} over {}/s (burst {})", l.rate, l.burst),
            None => key,
        };
        findings.push(
            Finding::new(NAME, ThreatKind::RateLimit, confidence, evidence).retry_after(wait),
        );
    }
}

/// Repeatedly percent-decodes (at most 3 times), for matching encoded traversal and probes.
fn decode_deep(text: &str) -> String {
    let mut current = text.to_owned();
    for _ in 0..3 {
        let next = percent_encoding::percent_decode_str(&current)
            .decode_utf8_lossy()
            .into_owned();
        if next == current {
            break;
        }
        current = next;
    }
    current
}

/// Whether a (decoded) value climbs directories: `../`, `..\`, `..;/`, overlong UTF-8 dots.
fn traverses(text: &str) -> bool {
    let quick = text.contains("..") || text.contains('%');
    if !quick {
        return false;
    }
    let decoded = decode_deep(text).replace('\\', "/").to_ascii_lowercase();
    decoded.contains("../")
        || decoded.contains("..;/")
        || decoded.ends_with("/..")
        || decoded == ".."
        || text.to_ascii_lowercase().contains("%c0%ae")
}

/// The probe a path matches, if any.
fn probe(path: &str) -> Option<&'static str> {
    let lowered = path.to_ascii_lowercase();
    let decoded;
    let path = if lowered.contains('%') {
        decoded = decode_deep(&lowered);
        decoded.as_str()
    } else {
        lowered.as_str()
    };
    PROBES.into_iter().find(|p| {
        path.starts_with(p)
            && path[p.len()..]
                .chars()
                .next()
                .is_none_or(|c| matches!(c, '/' | '.' | '?' | '-' | '_'))
    })
}

#[async_trait]
impl Agent for ApiWatch {
    fn name(&self) -> &'static str {
        NAME
    }

    fn inspect(&self, request: &RequestView<'_>, findings: &mut Vec<Finding>) {
        let now = Instant::now();
        {
            let mut state = self.state();
            if let Some((until, flagged)) = state.flagged.get(&request.peer) {
                if *until > now {
                    findings.push(flagged.clone());
                } else {
                    state.flagged.remove(&request.peer);
                }
            }
        }
        if let Some(agent) = request.header("user-agent") {
            let lowered = agent.to_ascii_lowercase();
            if let Some(tool) = SCANNERS.iter().find(|s| lowered.contains(*s)) {
                findings.push(
                    Finding::new(
                        NAME,
                        ThreatKind::ScannerSignature,
                        0.9,
                        format!("user agent of {tool}"),
                    )
                    .at("header 'user-agent'"),
                );
            }
        }
        if traverses(request.path) {
            findings.push(
                Finding::new(NAME, ThreatKind::PathTraversal, 0.9, "'../' in the path").at("path"),
            );
        } else if let Some((key, _)) = request.query.iter().find(|(_, v)| traverses(v)) {
            findings.push(
                Finding::new(
                    NAME,
                    ThreatKind::PathTraversal,
                    0.9,
                    "'../' in a query value",
                )
                .at(format!("query parameter '{key}'")),
            );
        }
        if let Some(probe) = probe(request.path) {
            let seen = self.state().probes.add(&request.peer, now);
            let confidence = if seen >= 3.0 { 0.9 } else { 0.75 };
            findings.push(
                Finding::new(
                    NAME,
                    ThreatKind::AdminProbe,
                    confidence,
                    format!("probe for {probe} ({seen:.0} from this source)"),
                )
                .at("path"),
            );
        }
        self.rate_limit(request, findings);
    }

    fn watches_responses(&self) -> bool {
        true
    }

    fn on_response(&self, response: &ResponseView<'_>, findings: &mut Vec<Finding>) {
        let now = Instant::now();
        match response.status {
            404 => {
                let mut state = self.state();
                let count = state.not_found.add(&response.peer, now);
                let burst = f64::from(self.0.config.not_found_burst);
                if count >= burst {
                    let confidence = if count >= 2.0 * burst { 0.9 } else { 0.8 };
                    let finding = Finding::new(
                        NAME,
                        ThreatKind::NotFoundBurst,
                        confidence,
                        format!(
                            "{count:.0} not-found answers within {:?}",
                            self.0.config.not_found_window
                        ),
                    );
                    if let Some(f) = self.flag(&mut state, response.peer, finding, now) {
                        findings.push(f);
                    }
                }
            }
            401 => {
                if let Some(identity) = &response.identity {
                    self.failure(response.peer, identity, now, findings);
                }
            }
            _ => {}
        }
    }

    fn topics(&self) -> &'static [&'static str] {
        &AUTH_FAILURES
    }

    fn on_event(&self, event: &Event, findings: &mut Vec<Finding>) {
        let field = |name: &str| event.payload.get(name).and_then(|v| v.as_str());
        let Some(source) = field("source")
            .or_else(|| field("ip"))
            .and_then(|s| s.parse::<IpAddr>().ok())
        else {
            return;
        };
        let identity = field("identity")
            .or_else(|| field("key_id"))
            .or_else(|| field("user"))
            .or_else(|| field("email_hash"))
            .or_else(|| field("kid"))
            .unwrap_or("(unnamed)");
        self.failure(source, identity, Instant::now(), findings);
    }

    async fn start(&self, _context: &AgentContext) -> Result<()> {
        let Some(shared) = &self.0.config.shared else {
            return Ok(());
        };
        let mut tasks = Vec::new();
        for (which, limiter) in [("ip", &self.0.per_ip), ("id", &self.0.per_identity)] {
            if let Some(limiter) = limiter {
                let buckets = magmobo_cache::RedisBuckets::new(&shared.url, "")?;
                let namespace = format!("{}:{which}:rl:", shared.namespace);
                tasks.push(limiter.share(Arc::new(buckets), &namespace, "APIWatch"));
            }
        }
        *self.0.tasks.lock().unwrap_or_else(|e| e.into_inner()) = tasks;
        Ok(())
    }

    async fn stop(&self) {
        for task in self
            .0
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            task.abort();
        }
    }
}

impl ApiWatch {
    fn failure(&self, source: IpAddr, identity: &str, now: Instant, findings: &mut Vec<Finding>) {
        let mut state = self.state();
        let distinct = state.failing.add(&source, identity, now);
        let needed = self.0.config.stuffing_identities;
        if distinct >= needed {
            let confidence = if distinct >= needed * 2 { 0.95 } else { 0.9 };
            let finding = Finding::new(
                NAME,
                ThreatKind::CredentialStuffing,
                confidence,
                format!("{distinct} identities failed from this source"),
            )
            .from_source(source.to_string());
            if let Some(f) = self.flag(&mut state, source, finding, now) {
                findings.push(f);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_and_probes_are_seen_through_encodings() {
        for yes in [
            "/files/../../etc/passwd",
            "..%2f..%2fetc",
            "%252e%252e%252f",
            "a\\..\\b",
            "/x/..;/y",
        ] {
            assert!(traverses(yes), "{yes}");
        }
        for no in ["/rest/v1/users", "1.2..3", "a...b", "%20"] {
            assert!(!traverses(no), "{no}");
        }
        assert_eq!(probe("/.env"), Some("/.env"));
        assert_eq!(probe("/.git/config"), Some("/.git"));
        assert_eq!(probe("/%2eenv"), Some("/.env"));
        assert_eq!(probe("/WP-ADMIN/"), Some("/wp-admin"));
        assert_eq!(probe("/.environment-docs"), None);
        assert_eq!(probe("/rest/v1/envs"), None);
    }
}
