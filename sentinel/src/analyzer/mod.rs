//! The threat analyzer (tier 2): correlates what agents publish (`threat.detected`) over a
//! sliding window per source into incidents, and decides: allow, alert, block the source for
//! a period, or escalate to the [`IncidentCommander`] (tier 3).
//!
//! A source climbing the stages of an attack (recon, then injection, then credential attacks)
//! is blocked even when no single request was blocked: that is what correlation adds over
//! per-request verdicts. The logic is synchronous and clock-free ([`ThreatAnalyzer::observe`]
//! takes the time), so it is tested with plain data; [`crate::Sentinel`] runs it on the bus.

mod commander;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

pub use commander::{CommanderDecision, IncidentCommander, RulesCommander};

use crate::agent::ThreatKind;

/// A stage of an attack, for correlation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    /// Scanning, probing, traversal.
    Recon,
    /// Injection attempts.
    Injection,
    /// Brute force, credential stuffing, takeover.
    Credentials,
    /// Rate abuse.
    Abuse,
    /// Data leaving in bulk.
    Exfiltration,
}

impl Stage {
    /// The stage a kind belongs to.
    pub fn of(kind: ThreatKind) -> Stage {
        match kind {
            ThreatKind::PathTraversal
            | ThreatKind::ScannerSignature
            | ThreatKind::AdminProbe
            | ThreatKind::NotFoundBurst => Stage::Recon,
            ThreatKind::SqlInjection => Stage::Injection,
            ThreatKind::CredentialStuffing
            | ThreatKind::BruteForce
            | ThreatKind::AccountTakeover => Stage::Credentials,
            ThreatKind::RateLimit => Stage::Abuse,
            ThreatKind::Exfiltration => Stage::Exfiltration,
        }
    }

    /// The lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Recon => "recon",
            Stage::Injection => "injection",
            Stage::Credentials => "credentials",
            Stage::Abuse => "abuse",
            Stage::Exfiltration => "exfiltration",
        }
    }
}

/// One agent finding as the analyzer sees it (decoded from a `threat.detected` event).
#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    /// The source address.
    pub source: IpAddr,
    /// The agent that reported it.
    pub agent: String,
    /// What it is.
    pub kind: ThreatKind,
    /// The agent's confidence.
    pub confidence: f32,
    /// Whether the policy escalated it (confidence above the escalation band).
    pub escalated: bool,
    /// Whether the policy blocked that request.
    pub blocked: bool,
    /// When, in ms since the epoch.
    pub at_ms: u64,
}

impl Signal {
    /// Decodes a `threat.detected` payload; `None` when it names no source or kind.
    pub fn from_event(payload: &serde_json::Value, at_ms: u64) -> Option<Signal> {
        let field = |name: &str| payload.get(name).and_then(|v| v.as_str());
        let source = field("source")?.parse().ok()?;
        let kind = ThreatKind::from_name(field("kind")?)?;
        let action = field("action").unwrap_or("logged");
        Some(Signal {
            source,
            agent: field("agent").unwrap_or("unknown").to_owned(),
            kind,
            confidence: payload
                .get("confidence")
                .and_then(|c| c.as_f64())
                .unwrap_or(0.0) as f32,
            escalated: action == "escalated",
            blocked: action == "blocked" || action == "escalated",
            at_ms,
        })
    }
}

/// What the analyzer decided about a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Decision {
    /// Nothing to do.
    Allow,
    /// Worth a human's look.
    Alert,
    /// Refuse the source for the analyzer's block period.
    Block,
    /// Block, and ask the incident commander.
    Escalate,
}

impl Decision {
    /// The lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Alert => "alert",
            Decision::Block => "block",
            Decision::Escalate => "escalate",
        }
    }
}

/// A correlated incident about one source.
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    /// The source.
    pub source: IpAddr,
    /// Stages seen in the window, in order of first appearance.
    pub stages: Vec<Stage>,
    /// Kinds seen in the window.
    pub kinds: BTreeSet<&'static str>,
    /// Agents that reported.
    pub agents: BTreeSet<String>,
    /// Signals in the window.
    pub signals: usize,
    /// The decision.
    pub decision: Decision,
    /// One line for people.
    pub summary: String,
}

/// The analyzer's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalyzerConfig {
    /// How far back signals are correlated.
    pub window: Duration,
    /// How long a block lasts (the commander may choose otherwise on escalation).
    pub block_for: Duration,
    /// Distinct stages from one source that make a block.
    pub block_at_stages: usize,
    /// Requests blocked by agents from one source that make a block of the source.
    pub block_at_blocked: usize,
    /// Signals from one source (any confidence) that make an alert.
    pub alert_at_signals: usize,
}

impl Default for AnalyzerConfig {
    fn default() -> Self {
        AnalyzerConfig {
            window: Duration::from_secs(600),
            block_for: Duration::from_secs(900),
            block_at_stages: 2,
            block_at_blocked: 3,
            alert_at_signals: 3,
        }
    }
}

#[derive(Debug, Default)]
struct SourceWindow {
    signals: VecDeque<Signal>,
    reported: Option<Decision>,
}

/// Correlates signals per source.
#[derive(Debug, Default)]
pub struct ThreatAnalyzer {
    config: AnalyzerConfig,
    sources: Mutex<HashMap<IpAddr, SourceWindow>>,
}

impl ThreatAnalyzer {
    /// An analyzer with these settings.
    pub fn new(config: AnalyzerConfig) -> Self {
        ThreatAnalyzer {
            config,
            sources: Mutex::default(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &AnalyzerConfig {
        &self.config
    }

    /// Adds a signal; returns an incident when the decision about its source rises (each
    /// level is reported once per window).
    pub fn observe(&self, signal: Signal) -> Option<Incident> {
        let window_ms = self.config.window.as_millis() as u64;
        let mut sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        if sources.len() >= 16_384 {
            sources.retain(|_, w| {
                w.signals
                    .back()
                    .is_some_and(|s| s.at_ms + window_ms > signal.at_ms)
            });
        }
        let entry = sources.entry(signal.source).or_default();
        while entry
            .signals
            .front()
            .is_some_and(|s| s.at_ms + window_ms <= signal.at_ms)
        {
            entry.signals.pop_front();
        }
        if entry.signals.is_empty() {
            entry.reported = None;
        }
        if entry.signals.len() >= 1024 {
            entry.signals.pop_front();
        }
        let source = signal.source;
        entry.signals.push_back(signal);
        let mut stages: Vec<Stage> = Vec::new();
        for s in &entry.signals {
            let stage = Stage::of(s.kind);
            // Rate limits alone are abuse, not a stage of an intrusion; they add weight only.
            if stage != Stage::Abuse && !stages.contains(&stage) {
                stages.push(stage);
            }
        }
        let blocked = entry.signals.iter().filter(|s| s.blocked).count();
        let escalated = entry.signals.iter().any(|s| s.escalated);
        let decision = if escalated {
            Decision::Escalate
        } else if stages.len() >= self.config.block_at_stages
            || blocked >= self.config.block_at_blocked
        {
            Decision::Block
        } else if entry.signals.len() >= self.config.alert_at_signals {
            Decision::Alert
        } else {
            Decision::Allow
        };
        if decision == Decision::Allow || entry.reported.is_some_and(|r| r >= decision) {
            return None;
        }
        entry.reported = Some(decision);
        let kinds: BTreeSet<&'static str> = entry.signals.iter().map(|s| s.kind.name()).collect();
        let agents: BTreeSet<String> = entry.signals.iter().map(|s| s.agent.clone()).collect();
        let path: Vec<&str> = stages.iter().map(|s| s.name()).collect();
        let summary = format!(
            "{source}: {} signals ({}), stages {}; {blocked} requests blocked: {}",
            entry.signals.len(),
            kinds.iter().copied().collect::<Vec<_>>().join(", "),
            if path.is_empty() {
                "none".to_owned()
            } else {
                path.join(" → ")
            },
            decision.name()
        );
        Some(Incident {
            source,
            stages,
            kinds,
            agents,
            signals: entry.signals.len(),
            decision,
            summary,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signal(kind: ThreatKind, action: &str, at_ms: u64) -> Signal {
        let payload = serde_json::json!({
            "source": "10.1.1.1", "agent": "X", "kind": kind.name(),
            "confidence": 0.8, "action": action,
        });
        Signal::from_event(&payload, at_ms).unwrap()
    }

    #[test]
    fn stages_from_one_source_escalate_to_a_block_once() {
        let a = ThreatAnalyzer::default();
        assert!(
            a.observe(signal(ThreatKind::AdminProbe, "alerted", 0))
                .is_none()
        );
        assert!(
            a.observe(signal(ThreatKind::AdminProbe, "alerted", 1))
                .is_none()
        );
        let alert = a
            .observe(signal(ThreatKind::AdminProbe, "alerted", 2))
            .unwrap();
        assert_eq!(alert.decision, Decision::Alert);
        let block = a
            .observe(signal(ThreatKind::SqlInjection, "blocked", 3))
            .unwrap();
        assert_eq!(block.decision, Decision::Block);
        assert_eq!(block.stages, [Stage::Recon, Stage::Injection]);
        assert!(
            block.summary.contains("recon → injection"),
            "{}",
            block.summary
        );
        assert!(
            a.observe(signal(ThreatKind::BruteForce, "logged", 4))
                .is_none(),
            "reported once"
        );
        let late = 3 + 600_000;
        assert!(
            a.observe(signal(ThreatKind::SqlInjection, "blocked", late))
                .is_none(),
            "window slid"
        );
        let esc = a
            .observe(signal(ThreatKind::SqlInjection, "escalated", late + 1))
            .unwrap();
        assert_eq!(esc.decision, Decision::Escalate);
    }
}
