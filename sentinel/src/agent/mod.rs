//! The patrol-agent API: what an agent sees (a [`RequestView`], a [`ResponseView`], bus
//! events) and what it says back (a [`Finding`]). Every hook has an empty default, the way
//! tracing's `Layer` does, so an agent implements only what it watches.
//!
//! Agents run inline on the request path, so hooks are synchronous and must stay in
//! microseconds: keep state in memory, and move anything slow (Redis, the database) to a task
//! started in [`Agent::start`].

mod view;

use std::sync::Arc;
use std::time::Duration;

use magmobo_core::bus::{Bus, Event};
use magmobo_core::prelude::*;

pub use view::{
    MAX_BODY_VALUES, RequestView, ResponseView, identity_of, readable_body, rows_in_range,
};

use crate::blocklist::Blocklist;

/// What kind of threat a finding is about. Names (`sql_injection`...) appear in events, in
/// the audit log and in policy configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ThreatKind {
    /// A value that breaks out of a SQL literal.
    SqlInjection,
    /// `../` and its encodings in a path or value.
    PathTraversal,
    /// A known scanner's user agent.
    ScannerSignature,
    /// Requests for admin or secret files (`/.env`, `/wp-admin`, `/.git`...).
    AdminProbe,
    /// Many 404s from one source: someone enumerating paths.
    NotFoundBurst,
    /// More requests than the rate limit allows.
    RateLimit,
    /// Many identities failing from one source.
    CredentialStuffing,
    /// Many failures for one identity or from one source.
    BruteForce,
    /// A success after many failures.
    AccountTakeover,
    /// Far more rows or bytes than the identity's own baseline.
    Exfiltration,
}

impl ThreatKind {
    /// The stable snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            ThreatKind::SqlInjection => "sql_injection",
            ThreatKind::PathTraversal => "path_traversal",
            ThreatKind::ScannerSignature => "scanner_signature",
            ThreatKind::AdminProbe => "admin_probe",
            ThreatKind::NotFoundBurst => "not_found_burst",
            ThreatKind::RateLimit => "rate_limit",
            ThreatKind::CredentialStuffing => "credential_stuffing",
            ThreatKind::BruteForce => "brute_force",
            ThreatKind::AccountTakeover => "account_takeover",
            ThreatKind::Exfiltration => "exfiltration",
        }
    }

    /// The kind with this name.
    pub fn from_name(name: &str) -> Option<ThreatKind> {
        ThreatKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Every kind.
    pub const ALL: [ThreatKind; 10] = [
        ThreatKind::SqlInjection,
        ThreatKind::PathTraversal,
        ThreatKind::ScannerSignature,
        ThreatKind::AdminProbe,
        ThreatKind::NotFoundBurst,
        ThreatKind::RateLimit,
        ThreatKind::CredentialStuffing,
        ThreatKind::BruteForce,
        ThreatKind::AccountTakeover,
        ThreatKind::Exfiltration,
    ];
}

impl std::fmt::Display for ThreatKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An agent's verdict on one request, response or event.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// The agent that found it (`SQLGuard`, `APIWatch`...).
    pub agent: &'static str,
    /// What it is.
    pub kind: ThreatKind,
    /// How sure the agent is, 0..1; the [policy](crate::policy::Policy) maps it to an action.
    pub confidence: f32,
    /// Why, without secrets: fingerprints, counts, the signature matched.
    pub evidence: String,
    /// Where in the request (`query parameter 'id'`, `header 'x-note'`, `body field 'name'`).
    pub location: Option<String>,
    /// For rate limits and delays: answer 429 with this `Retry-After` instead of 403.
    pub retry_after: Option<Duration>,
    /// The source the finding is about when it is not the request's peer (bus events).
    pub source: Option<String>,
    /// The identity the finding is about, when known.
    pub identity: Option<String>,
}

impl Finding {
    /// A finding with no location, delay, source or identity.
    pub fn new(
        agent: &'static str,
        kind: ThreatKind,
        confidence: f32,
        evidence: impl Into<String>,
    ) -> Self {
        Finding {
            agent,
            kind,
            confidence: confidence.clamp(0.0, 1.0),
            evidence: evidence.into(),
            location: None,
            retry_after: None,
            source: None,
            identity: None,
        }
    }

    /// Says where in the request.
    pub fn at(mut self, location: impl Into<String>) -> Self {
        self.location = Some(location.into());
        self
    }

    /// Asks for a 429 with `Retry-After` instead of a 403.
    pub fn retry_after(mut self, delay: Duration) -> Self {
        self.retry_after = Some(delay);
        self
    }

    /// Names the source (an IP address) the finding is about.
    pub fn from_source(mut self, source: impl Into<String>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Names the identity the finding is about.
    pub fn for_identity(mut self, identity: impl Into<String>) -> Self {
        self.identity = Some(identity.into());
        self
    }
}

/// What agents get when Sentinel starts: the bus and the shared blocklist.
#[derive(Clone)]
pub struct AgentContext {
    /// The board's bus.
    pub bus: Bus,
    /// Sources blocked by the analyzer (and throttled by the policy).
    pub blocklist: Arc<Blocklist>,
}

impl std::fmt::Debug for AgentContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AgentContext")
    }
}

/// A patrol agent. Implement the hooks you need; the others do nothing.
#[async_trait]
pub trait Agent: Send + Sync + 'static {
    /// The name in events, 403 answers and policy rules.
    fn name(&self) -> &'static str;

    /// Whether [`inspect`](Agent::inspect) wants JSON and form body values; when no agent
    /// does, bodies are never read by Sentinel.
    fn wants_body(&self) -> bool {
        false
    }

    /// Looks at a request before it is routed; push findings into `findings`.
    fn inspect(&self, _request: &RequestView<'_>, _findings: &mut Vec<Finding>) {}

    /// Whether [`on_response`](Agent::on_response) should be called.
    fn watches_responses(&self) -> bool {
        false
    }

    /// Looks at how a request ended. Findings here cannot change that answer; they are
    /// published, and agents usually remember the source to act on its next request.
    fn on_response(&self, _response: &ResponseView<'_>, _findings: &mut Vec<Finding>) {}

    /// Bus topic patterns delivered to [`on_event`](Agent::on_event).
    fn topics(&self) -> &'static [&'static str] {
        &[]
    }

    /// Looks at one bus event of a subscribed topic.
    fn on_event(&self, _event: &Event, _findings: &mut Vec<Finding>) {}

    /// Starts background work (e.g. sharing counters through Redis). Called once at boot.
    async fn start(&self, _context: &AgentContext) -> Result<()> {
        Ok(())
    }

    /// Stops background work.
    async fn stop(&self) {}
}

#[async_trait]
impl Agent for Box<dyn Agent> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn wants_body(&self) -> bool {
        (**self).wants_body()
    }
    fn inspect(&self, request: &RequestView<'_>, findings: &mut Vec<Finding>) {
        (**self).inspect(request, findings)
    }
    fn watches_responses(&self) -> bool {
        (**self).watches_responses()
    }
    fn on_response(&self, response: &ResponseView<'_>, findings: &mut Vec<Finding>) {
        (**self).on_response(response, findings)
    }
    fn topics(&self) -> &'static [&'static str] {
        (**self).topics()
    }
    fn on_event(&self, event: &Event, findings: &mut Vec<Finding>) {
        (**self).on_event(event, findings)
    }
    async fn start(&self, context: &AgentContext) -> Result<()> {
        (**self).start(context).await
    }
    async fn stop(&self) {
        (**self).stop().await
    }
}
