//! AI agents as governed identities: service accounts whose MagGate requests are checked
//! against per-table grants, rate-limited, and parked for a human's approval when a rule
//! says so.
//!
//! Why here and not in the PSU: the PSU only says *who* calls (an API key whose role is
//! `agent:<name>`, or an identity of kind `Agent` whose subject is the name); what an agent
//! may do depends on tables, columns and row counts, which only MagGate knows. Grants are
//! turned into the same code-declared [`crate::policy`] machinery that enforces row-level
//! security on MariaDB and SQLite, with every table the agent was not granted denied.
//!
//! Everything lives in Storage (`_magmobo_agents`, `_magmobo_agent_tickets`, portable
//! migrations), so a CLI in another process manages agents through [`AgentStore`] and the
//! gate picks changes up within [`AgentsConfig::refresh`]. Every action is published on the
//! bus as `agent.action` (see docs/agents.md).

pub(crate) mod manage;
mod model;
pub(crate) mod serve;
mod store;

pub use model::{
    Agent, AgentError, AgentPolicy, AgentResult, AgentsConfig, ApprovalRule, Op, RateLimit,
    RowMatch, TableGrant, Ticket, TicketStatus,
};
pub use store::AgentStore;

/// The API-key role that makes a key act as agent `name`: `agent:<name>`.
pub fn agent_role(name: &str) -> String {
    format!("agent:{name}")
}
