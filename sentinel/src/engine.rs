//! Sentinel on a board: one patrol that runs every agent inline on every request, applies the
//! response policy, feeds the threat analyzer and refuses blocked sources first thing.
//!
//! The request path: [`Blocklist::blocked`] (403 at once) → agents' `inspect` on a
//! [`RequestView`] (with JSON or form body values when an agent wants them and the body is
//! within the limit) → the [`Policy`] turns each finding into an action → events on the bus →
//! 403 naming the agent, or 429 with `Retry-After`, or through. After the handler, agents
//! that watch responses see status, rows and bytes. Bus events go to agents that subscribed,
//! and `threat.detected` goes to the [`ThreatAnalyzer`], whose incidents and blocks are
//! published (`threat.incident`, `threat.blocked`, `threat.escalated`) and so reach the audit
//! log through [`crate::AuditLog`].

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use magmobo_core::axum::body::Bytes;
use magmobo_core::axum::http::{self, StatusCode};
use magmobo_core::axum::response::{IntoResponse, Response};
use magmobo_core::board::BoardContext;
use magmobo_core::bus::Bus;
use magmobo_core::prelude::*;
use magmobo_core::roles::cpu::{RequestContext, RequestGuard, RequestHead, may_have_body};

use crate::agent::{
    Agent, AgentContext, Finding, RequestView, ResponseView, ThreatKind, readable_body,
};
use crate::agents::apiwatch::Shared;
use crate::agents::{ApiWatch, AuthSentry, DataFlow, SqlGuardAgent};
use crate::analyzer::{
    AnalyzerConfig, Decision, Incident, IncidentCommander, RulesCommander, Signal, ThreatAnalyzer,
};
use crate::blocklist::{Blocklist, now_ms};
use crate::policy::{Action, Policy};

/// The owner of Sentinel's guard on the CPU, and the POST line of a Sentinel without agents.
pub const NAME: &str = "Sentinel";

/// The analyzer's name in 403 answers to blocked sources.
pub const ANALYZER: &str = "ThreatAnalyzer";

/// Sentinel's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SentinelConfig {
    /// Bands and dry-run.
    pub policy: Policy,
    /// Largest body read for agents; longer bodies pass unread.
    pub body_limit: usize,
    /// The analyzer's windows and thresholds.
    pub analyzer: AnalyzerConfig,
    /// Share the analyzer's blocks through Redis.
    pub shared: Option<Shared>,
}

impl Default for SentinelConfig {
    fn default() -> Self {
        SentinelConfig {
            policy: Policy::default(),
            body_limit: 64 * 1024,
            analyzer: AnalyzerConfig::default(),
            shared: None,
        }
    }
}

/// One finding and what the policy does with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Judged {
    /// The finding.
    pub finding: Finding,
    /// The action.
    pub action: Action,
}

/// What Sentinel decided about one request.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Judgement {
    /// Every finding, with its action.
    pub findings: Vec<Judged>,
}

impl Judgement {
    /// The finding that blocks the request (the most confident at block level or above).
    pub fn blocking(&self) -> Option<&Judged> {
        self.findings
            .iter()
            .filter(|j| j.action >= Action::Block)
            .max_by(|a, b| a.finding.confidence.total_cmp(&b.finding.confidence))
    }

    /// The longest delay asked for, when any finding asks for a 429.
    pub fn retry_after(&self) -> Option<Duration> {
        self.findings
            .iter()
            .filter_map(|j| j.finding.retry_after)
            .max()
    }

    /// The most confident finding.
    pub fn worst(&self) -> Option<&Judged> {
        self.findings
            .iter()
            .max_by(|a, b| a.finding.confidence.total_cmp(&b.finding.confidence))
    }
}

/// The agents and the policy: what judges requests. Available before boot, for the command
/// line scanner and benchmarks.
pub struct Engine {
    agents: Vec<Arc<dyn Agent>>,
    watchers: Vec<Arc<dyn Agent>>,
    wants_body: bool,
    policy: Policy,
    body_limit: usize,
    blocklist: Arc<Blocklist>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("agents", &self.agent_names())
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// The agents' names, in order.
    pub fn agent_names(&self) -> Vec<&'static str> {
        self.agents.iter().map(|a| a.name()).collect()
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Runs every agent on a request and applies the policy. No events, no answers: agents
    /// keep their own state (rate-limit buckets count this request).
    pub fn judge(
        &self,
        request: &http::request::Parts,
        body: Option<&[u8]>,
        peer: IpAddr,
    ) -> Judgement {
        let mut view = RequestView::new(request, peer, body);
        view.throttled = self.blocklist.is_throttled(peer);
        let mut findings = Vec::new();
        for agent in &self.agents {
            agent.inspect(&view, &mut findings);
        }
        self.apply_policy(findings, view.path)
    }

    fn apply_policy(&self, findings: Vec<Finding>, path: &str) -> Judgement {
        Judgement {
            findings: findings
                .into_iter()
                .map(|finding| Judged {
                    action: self.policy.action(finding.agent, path, finding.confidence),
                    finding,
                })
                .collect(),
        }
    }

    fn wants_body_of(&self, request: &http::request::Parts) -> bool {
        self.wants_body && self.body_limit > 0 && readable_body(&request.headers)
    }
}

/// The Sentinel patrol.
pub struct Sentinel {
    config: SentinelConfig,
    /// The POST screen's line: the agents' names (`SQLGuard, APIWatch, AuthSentry`).
    title: String,
    engine: Arc<Engine>,
    analyzer: Arc<ThreatAnalyzer>,
    commander: Arc<dyn IncidentCommander>,
    running: Mutex<Option<Running>>,
}

struct Running {
    cpu: Arc<dyn Cpu>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Sentinel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sentinel")
            .field("engine", &self.engine)
            .finish_non_exhaustive()
    }
}

impl Default for Sentinel {
    fn default() -> Self {
        Sentinel::standard(SentinelConfig::default())
    }
}

impl Sentinel {
    /// Sentinel with no agents yet (add them with [`Sentinel::agent`]).
    pub fn new(config: SentinelConfig) -> Self {
        let engine = Engine {
            agents: Vec::new(),
            watchers: Vec::new(),
            wants_body: false,
            policy: config.policy.clone(),
            body_limit: config.body_limit,
            blocklist: Arc::new(Blocklist::new()),
        };
        Sentinel {
            analyzer: Arc::new(ThreatAnalyzer::new(config.analyzer.clone())),
            config,
            title: NAME.to_owned(),
            engine: Arc::new(engine),
            commander: Arc::new(RulesCommander),
            running: Mutex::new(None),
        }
    }

    /// Sentinel with the standard agents: SQLGuard, APIWatch (default limits, sharing through
    /// `config.shared` when set), AuthSentry and DataFlow.
    pub fn standard(config: SentinelConfig) -> Self {
        let watch = crate::agents::ApiWatchConfig {
            shared: config.shared.clone(),
            ..Default::default()
        };
        Sentinel::new(config)
            .agent(SqlGuardAgent::new())
            .agent(ApiWatch::new(watch))
            .agent(AuthSentry::default())
            .agent(DataFlow::default())
    }

    /// Adds an agent; agents run in the order added.
    pub fn agent(mut self, agent: impl Agent) -> Self {
        let agent: Arc<dyn Agent> = Arc::new(agent);
        self.with_engine(|engine| {
            engine.wants_body |= agent.wants_body();
            if agent.watches_responses() {
                engine.watchers.push(agent.clone());
            }
            engine.agents.push(agent);
        });
        self.title = self.engine.agent_names().join(", ");
        self
    }

    /// Replaces the [rules commander](RulesCommander) that escalations go to.
    pub fn commander(mut self, commander: impl IncidentCommander) -> Self {
        self.commander = Arc::new(commander);
        self
    }

    fn with_engine(&mut self, change: impl FnOnce(&mut Engine)) {
        // Agents are only added while building, before the engine is shared.
        if let Some(engine) = Arc::get_mut(&mut self.engine) {
            change(engine);
        } else {
            tracing::warn!("Sentinel: agents can only be added before boot; ignored");
        }
    }

    /// The agents and policy, for judging requests off the board (scanner, benchmarks).
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The blocked and throttled sources.
    pub fn blocklist(&self) -> &Arc<Blocklist> {
        &self.engine.blocklist
    }

    /// The analyzer.
    pub fn analyzer(&self) -> &Arc<ThreatAnalyzer> {
        &self.analyzer
    }
}

/// What Sentinel puts on the CPU.
struct SentinelGuard {
    engine: Arc<Engine>,
    bus: Bus,
}

impl SentinelGuard {
    fn evaluate(
        &self,
        request: &http::request::Parts,
        body: Option<&[u8]>,
        context: &RequestContext,
    ) -> Option<Response> {
        let peer = context.peer.ip();
        let judgement = self.engine.judge(request, body, peer);
        if judgement.findings.is_empty() {
            return None;
        }
        let identity = crate::agent::identity_of(&request.headers);
        for judged in &judgement.findings {
            publish(
                &self.bus,
                &self.engine,
                judged,
                peer,
                identity.as_deref(),
                Some((request.method.as_str(), request.uri.path())),
            );
        }
        if let Some(blocking) = judgement.blocking() {
            return Some(forbidden(&blocking.finding));
        }
        if self.engine.policy.dry_run {
            return None;
        }
        judgement.retry_after().map(too_many)
    }
}

impl RequestGuard for SentinelGuard {
    fn check(&self, request: &http::request::Parts, context: &RequestContext) -> Option<Response> {
        if let Some(block) = self.engine.blocklist.blocked(context.peer.ip())
            && !self.engine.policy.dry_run
        {
            return Some(blocked_source(&block));
        }
        if may_have_body(request) && self.engine.wants_body_of(request) {
            return None; // judged in check_body, once the body is read
        }
        self.evaluate(request, None, context)
    }

    fn body_limit(&self, request: &http::request::Parts) -> usize {
        if self.engine.wants_body_of(request) {
            self.engine.body_limit
        } else {
            0
        }
    }

    fn check_body(
        &self,
        request: &http::request::Parts,
        body: Option<&Bytes>,
        context: &RequestContext,
    ) -> Option<Response> {
        self.evaluate(request, body.map(|b| &b[..]), context)
    }

    fn watches_responses(&self) -> bool {
        !self.engine.watchers.is_empty()
    }

    fn on_response(
        &self,
        request: &RequestHead,
        response: &http::response::Parts,
        context: &RequestContext,
    ) {
        let peer = context.peer.ip();
        let view = ResponseView::new(
            request.method.as_str(),
            request.uri.path(),
            &request.headers,
            response,
            peer,
        );
        let mut findings = Vec::new();
        for agent in &self.engine.watchers {
            agent.on_response(&view, &mut findings);
        }
        let path = request.uri.path();
        for finding in findings {
            let judged = after_the_fact(&self.engine, finding, path);
            let identity = judged.finding.identity.clone().or(view.identity.clone());
            publish(
                &self.bus,
                &self.engine,
                &judged,
                peer,
                identity.as_deref(),
                Some((view.method, path)),
            );
        }
    }
}

/// A finding about a request already answered can not block it: at most it alerts (and
/// throttles), unless it is confident enough to escalate.
fn after_the_fact(engine: &Engine, finding: Finding, path: &str) -> Judged {
    let action = engine
        .policy
        .action(finding.agent, path, finding.confidence);
    let action = if action == Action::Block {
        Action::Alert
    } else {
        action
    };
    Judged { finding, action }
}

/// Publishes a finding as `threat.detected` (from the log band) and throttles on alerts.
fn publish(
    bus: &Bus,
    engine: &Engine,
    judged: &Judged,
    peer: IpAddr,
    identity: Option<&str>,
    request: Option<(&str, &str)>,
) {
    if judged.action < Action::Log {
        return;
    }
    let finding = &judged.finding;
    let source = finding
        .source
        .as_deref()
        .and_then(|s| s.parse::<IpAddr>().ok())
        .unwrap_or(peer);
    if judged.action >= Action::Alert {
        engine
            .blocklist
            .throttle(source, engine.policy.throttle_for);
    }
    let (method, path) = request.unwrap_or(("", ""));
    let event = serde_json::json!({
        "agent": finding.agent,
        "kind": finding.kind.name(),
        "confidence": finding.confidence,
        "evidence": finding.evidence,
        "parameter": finding.location.clone().unwrap_or_default(),
        "method": method,
        "path": path,
        "source": source.to_string(),
        "identity": finding.identity.as_deref().or(identity),
        "action": judged.action.past_tense(),
        "dry_run": engine.policy.dry_run,
    });
    let _ = bus.publish("threat.detected", finding.agent, event);
}

/// Human words for a kind, in 403 messages.
fn describe(kind: ThreatKind) -> &'static str {
    match kind {
        ThreatKind::SqlInjection => "SQL injection",
        ThreatKind::PathTraversal => "path traversal",
        ThreatKind::ScannerSignature => "a vulnerability scanner",
        ThreatKind::AdminProbe => "probing for admin files",
        ThreatKind::NotFoundBurst => "path enumeration",
        ThreatKind::RateLimit => "too many requests",
        ThreatKind::CredentialStuffing => "credential stuffing",
        ThreatKind::BruteForce => "repeated failed sign-ins",
        ThreatKind::AccountTakeover => "a possible account takeover",
        ThreatKind::Exfiltration => "bulk data extraction",
    }
}

fn forbidden(finding: &Finding) -> Response {
    let code = format!("MM-SENTINEL-{}", finding.agent.to_ascii_uppercase());
    let message = match &finding.location {
        Some(location) => format!(
            "Blocked by {}: {} detected in {location}",
            finding.agent,
            describe(finding.kind)
        ),
        None => format!(
            "Blocked by {}: {} detected",
            finding.agent,
            describe(finding.kind)
        ),
    };
    let body = serde_json::json!({
        "code": code,
        "agent": finding.agent,
        "kind": finding.kind.name(),
        "message": message,
        "details": finding.evidence,
        "hint": "If this request is legitimate, ask the operator to review the Sentinel policy for this agent and route",
    });
    (StatusCode::FORBIDDEN, magmobo_core::axum::Json(body)).into_response()
}

fn too_many(wait: Duration) -> Response {
    let seconds = magmobo_core::ratelimit::retry_after_secs(wait);
    let body = serde_json::json!({
        "code": "MM-SENTINEL-RATE-LIMIT",
        "message": format!("Too many requests: retry after {seconds} s"),
        "details": null,
        "hint": "Slow down, or ask the operator for a higher limit",
    });
    let mut response = (
        StatusCode::TOO_MANY_REQUESTS,
        magmobo_core::axum::Json(body),
    )
        .into_response();
    if let Ok(value) = http::HeaderValue::from_str(&seconds.to_string()) {
        response
            .headers_mut()
            .insert(http::header::RETRY_AFTER, value);
    }
    response
}

fn blocked_source(block: &crate::blocklist::Block) -> Response {
    let seconds = block.until_ms.saturating_sub(now_ms()).div_ceil(1000);
    let body = serde_json::json!({
        "code": "MM-SENTINEL-BLOCKED",
        "agent": ANALYZER,
        "message": format!("Blocked by {ANALYZER}: this source is blocked for another {seconds} s"),
        "details": block.reason,
        "hint": "The source was blocked after an incident; the block lifts by itself",
    });
    (StatusCode::FORBIDDEN, magmobo_core::axum::Json(body)).into_response()
}

async fn handle_incident(
    incident: Incident,
    bus: &Bus,
    blocklist: &Blocklist,
    analyzer: &ThreatAnalyzer,
    commander: &dyn IncidentCommander,
    dry_run: bool,
) {
    let stages: Vec<&str> = incident.stages.iter().map(|s| s.name()).collect();
    let payload = serde_json::json!({
        "source": incident.source.to_string(),
        "decision": incident.decision.name(),
        "stages": stages,
        "kinds": incident.kinds,
        "agents": incident.agents,
        "signals": incident.signals,
        "summary": incident.summary,
        "message": incident.summary,
        "dry_run": dry_run,
    });
    let _ = bus.publish("threat.incident", ANALYZER, payload);
    if incident.decision < Decision::Block || dry_run {
        return;
    }
    let mut period = analyzer.config().block_for;
    let mut note = None;
    if incident.decision == Decision::Escalate {
        let decision = commander.escalate(&incident).await;
        if let Some(longer) = decision.block_for {
            period = longer;
        }
        let _ = bus.publish(
            "threat.escalated",
            ANALYZER,
            serde_json::json!({
                "source": incident.source.to_string(),
                "note": decision.note,
                "message": decision.note,
                "block_for_s": period.as_secs(),
            }),
        );
        note = Some(decision.note);
    }
    blocklist.block(incident.source, period, incident.summary.clone());
    let _ = bus.publish(
        "threat.blocked",
        ANALYZER,
        serde_json::json!({
            "source": incident.source.to_string(),
            "until_ms": now_ms() + period.as_millis() as u64,
            "reason": incident.summary,
            "note": note,
            "message": format!("{} blocked for {} s", incident.source, period.as_secs()),
        }),
    );
}

#[async_trait]
impl Patrol for Sentinel {
    /// The agents' names, so the POST screen lists them (`✓ SQLGuard, APIWatch, AuthSentry`).
    fn name(&self) -> &str {
        &self.title
    }

    async fn start(&self, board: &BoardContext) -> Result<()> {
        let cpu = board.cpu().ok_or_else(|| {
            Error::part(
                NAME,
                "Sentinel inspects HTTP requests, but the CPU slot is empty",
            )
        })?;
        let bus = board.bus().clone();
        let context = AgentContext {
            bus: bus.clone(),
            blocklist: self.engine.blocklist.clone(),
        };
        for agent in &self.engine.agents {
            agent.start(&context).await?;
        }
        let mut tasks = Vec::new();
        if let Some(shared) = &self.config.shared {
            let task = self
                .engine
                .blocklist
                .share_through_redis(&shared.url, &shared.namespace)
                .map_err(|e| Error::part(NAME, format!("bad Redis URL for shared blocks: {e}")))?;
            tasks.push(task);
        }
        // Agents' bus events.
        for agent in &self.engine.agents {
            for pattern in agent.topics() {
                let mut events = bus.subscribe(pattern)?;
                let agent = agent.clone();
                let engine = self.engine.clone();
                let bus = bus.clone();
                tasks.push(tokio::spawn(async move {
                    while let Some(event) = events.recv().await {
                        let mut findings = Vec::new();
                        agent.on_event(&event, &mut findings);
                        for finding in findings {
                            let Some(source) = finding
                                .source
                                .as_deref()
                                .and_then(|s| s.parse::<IpAddr>().ok())
                            else {
                                continue;
                            };
                            let judged = after_the_fact(&engine, finding, "");
                            publish(&bus, &engine, &judged, source, None, None);
                        }
                    }
                }));
            }
        }
        // The analyzer.
        let mut detected = bus.subscribe("threat.detected")?;
        let analyzer = self.analyzer.clone();
        let commander = self.commander.clone();
        let blocklist = self.engine.blocklist.clone();
        let dry_run = self.config.policy.dry_run;
        let analyzer_bus = bus.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(event) = detected.recv().await {
                let Some(signal) = Signal::from_event(&event.payload, event.at_ms) else {
                    continue;
                };
                if let Some(incident) = analyzer.observe(signal) {
                    tracing::warn!(summary = %incident.summary, "Sentinel incident");
                    handle_incident(
                        incident,
                        &analyzer_bus,
                        &blocklist,
                        &analyzer,
                        commander.as_ref(),
                        dry_run,
                    )
                    .await;
                }
            }
        }));
        let guard = SentinelGuard {
            engine: self.engine.clone(),
            bus,
        };
        cpu.routes().guard(NAME, guard)?;
        *self.running.lock().unwrap_or_else(|e| e.into_inner()) = Some(Running { cpu, tasks });
        Ok(())
    }

    async fn stop(&self) -> Result<()> {
        let running = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(running) = running {
            running.cpu.routes().unmount(NAME);
            for task in running.tasks {
                task.abort();
            }
        }
        for agent in &self.engine.agents {
            agent.stop().await;
        }
        Ok(())
    }

    async fn health(&self) -> Health {
        let mode = if self.config.policy.dry_run {
            ", dry run"
        } else {
            ""
        };
        Health::ok().with_detail(format!(
            "{}{mode}; {} sources blocked",
            self.engine.agent_names().join(", "),
            self.engine.blocklist.blocks().len()
        ))
    }
}
