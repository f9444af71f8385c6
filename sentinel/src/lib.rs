//! Sentinel: the security patrol of MagMoBo.
//!
//! # What exists
//!
//! * [`agent`]: the **patrol-agent API**. An [`Agent`] sees a [`RequestView`] (method, path,
//!   query pairs, headers, JSON or form body values, identity, peer address), a
//!   [`ResponseView`] and bus events, and answers with [`Finding`]s (agent, threat kind,
//!   confidence 0..1, evidence). Hooks default to no-ops.
//! * [`policy`]: the response policy by confidence band (log, alert and throttle, block,
//!   block and escalate), per agent and per route prefix, with a dry-run mode.
//! * [`Sentinel`] ([`engine`]): the patrol that runs every agent inline on every request,
//!   refuses blocked sources first, answers 403 naming the agent or 429 with `Retry-After`,
//!   and feeds the [`analyzer`].
//! * [`agents`]: the standard agents: [`SqlGuardAgent`] (query, header and body values),
//!   [`ApiWatch`] (rate limits shared through Redis, scanners, traversal, admin probes,
//!   credential stuffing), [`AuthSentry`] (progressive delay, block, account takeover) and
//!   [`DataFlow`] (rows and bytes per identity against its own baseline).
//! * [`analyzer`]: the threat analyzer (tier 2) correlating findings per source into
//!   incidents and blocks ([`blocklist`], shared through Redis), and the [`IncidentCommander`]
//!   trait (tier 3) with a rules implementation.
//! * [`sqlguard`]: **SQLGuard**, the SQL-injection check for one untrusted value:
//!   [`sqlguard::normalize`] (decoding and folding), [`sqlguard::lexer`] (a SQL lexer that reads
//!   the value as if pasted bare, inside `'...'` and inside `"..."`), and
//!   [`sqlguard::fingerprint`] (breakout gate, token-shape fingerprints, high-signal rules)
//!   make layer 1; [`sqlguard::ml`] is layer 2, a tiny hashed-n-gram classifier trained with
//!   candle (`sentinel-train`), its weights compiled in, and the rule combining both.
//!   Entry point: [`SqlGuard::inspect`] returning a [`Verdict`].
//! * [`corpus`]: a seeded generator of labelled attack payloads (techniques × dialects ×
//!   obfuscations) and realistic benign values, with a duplicate-free train/held-out split.
//! * [`audit`]: the tamper-evident audit log: [`AuditLog`] (an extension writing bus events
//!   about threats, auth and extensions to a hash-chained table in batches) and
//!   [`AuditStore`] (append, query, verify).

pub mod agent;
pub mod agents;
pub mod analyzer;
pub mod audit;
pub mod blocklist;
pub mod corpus;
pub mod engine;
pub mod policy;
pub mod sqlguard;

pub use agent::{Agent, AgentContext, Finding, RequestView, ResponseView, ThreatKind};
pub use agents::sqlguard::postgrest_operand;
pub use agents::{
    ApiWatch, ApiWatchConfig, AuthSentry, AuthSentryConfig, DataFlow, DataFlowConfig, Limit,
    SqlGuardAgent,
};
pub use analyzer::{IncidentCommander, RulesCommander, ThreatAnalyzer};
pub use audit::{AuditLog, AuditStore};
pub use engine::{Engine, Judgement, Sentinel, SentinelConfig};
pub use policy::{Action, Bands, Policy};
pub use sqlguard::{SqlGuard, Verdict};
