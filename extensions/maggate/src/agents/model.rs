//! The values agents are made of: policies (grants, approval rules, rate limits), agents,
//! tickets, and the error type of the agents API. All serialisable, so the policy is one
//! JSON column and a CLI can print any of them with `--json`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::policy::Command;

/// Errors of the agents API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// A value the caller gave is not acceptable.
    #[error("invalid agent input: {0}")]
    Invalid(String),
    /// No agent or ticket by that name or id.
    #[error("{0} not found: check the name with `magflock agents list`")]
    NotFound(String),
    /// The ticket is no longer pending (or the agent already exists).
    #[error("{0}")]
    Conflict(String),
    /// The storage failed.
    #[error("agents storage failed: {0}")]
    Storage(#[source] magmobo_core::Error),
    /// A stored policy is not valid JSON.
    #[error("stored agent policy is unreadable: {0}")]
    Json(#[from] serde_json::Error),
}

impl From<magmobo_core::Error> for AgentError {
    fn from(e: magmobo_core::Error) -> Self {
        AgentError::Storage(e)
    }
}

/// Result alias of the agents API.
pub type AgentResult<T, E = AgentError> = std::result::Result<T, E>;

/// One operation of a grant or rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// GET and HEAD.
    Select,
    /// POST and PUT.
    Insert,
    /// PATCH.
    Update,
    /// DELETE.
    Delete,
}

impl Op {
    /// Every operation.
    pub const ALL: [Op; 4] = [Op::Select, Op::Insert, Op::Update, Op::Delete];

    /// `select`, `insert`, `update` or `delete`.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Select => "select",
            Op::Insert => "insert",
            Op::Update => "update",
            Op::Delete => "delete",
        }
    }

    pub(crate) fn command(self) -> Command {
        match self {
            Op::Select => Command::Select,
            Op::Insert => Command::Insert,
            Op::Update => Command::Update,
            Op::Delete => Command::Delete,
        }
    }

    pub(crate) fn of(command: Command) -> Op {
        match command {
            Command::Select => Op::Select,
            Command::Insert => Op::Insert,
            Command::Update => Op::Update,
            Command::Delete => Op::Delete,
        }
    }
}

impl std::str::FromStr for Op {
    type Err = AgentError;

    fn from_str(s: &str) -> AgentResult<Op> {
        Op::ALL
            .into_iter()
            .find(|op| op.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                AgentError::Invalid(format!(
                    "'{s}' is not an operation: use select, insert, update or delete"
                ))
            })
    }
}

/// Rows a grant is limited to: `column` must equal one of `values`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowMatch {
    /// The column compared.
    pub column: String,
    /// The values it may take.
    pub values: Vec<String>,
}

/// What an agent may do on one table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableGrant {
    /// The table (or view) as named in the URL.
    pub table: String,
    /// The operations granted.
    pub operations: Vec<Op>,
    /// The only columns these operations may read (select) or write (insert, update);
    /// `None`: all.
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// Row conditions AND-ed into every granted operation.
    #[serde(default)]
    pub rows: Vec<RowMatch>,
}

impl TableGrant {
    /// A grant of `operations` on every row and column of `table`.
    pub fn new(table: impl Into<String>, operations: &[Op]) -> TableGrant {
        TableGrant {
            table: table.into(),
            operations: operations.to_vec(),
            columns: None,
            rows: Vec::new(),
        }
    }

    /// Limits the grant to `columns`.
    pub fn columns<I, S>(mut self, columns: I) -> TableGrant
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.columns = Some(columns.into_iter().map(Into::into).collect());
        self
    }

    /// Limits the grant to rows whose `column` equals one of `values`.
    pub fn rows<I, S>(mut self, column: impl Into<String>, values: I) -> TableGrant
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.rows.push(RowMatch {
            column: column.into(),
            values: values.into_iter().map(Into::into).collect(),
        });
        self
    }
}

/// When an operation waits for a human: `operation` on `table` (any table when `None`),
/// always, or only when it would touch more than `more_than` rows (UPDATE and DELETE:
/// counted with the request's filters, `limit` and `offset` first; INSERT: the rows in the
/// body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRule {
    /// The table, or every table.
    #[serde(default)]
    pub table: Option<String>,
    /// The operation.
    pub operation: Op,
    /// Row threshold; `None`: always.
    #[serde(default)]
    pub more_than: Option<u64>,
}

impl ApprovalRule {
    /// Every `operation`, on any table.
    pub fn always(operation: Op) -> ApprovalRule {
        ApprovalRule {
            table: None,
            operation,
            more_than: None,
        }
    }

    /// `operation` when it touches more than `rows` rows.
    pub fn more_than(operation: Op, rows: u64) -> ApprovalRule {
        ApprovalRule {
            table: None,
            operation,
            more_than: Some(rows),
        }
    }

    /// Limits the rule to `table`.
    pub fn on(mut self, table: impl Into<String>) -> ApprovalRule {
        self.table = Some(table.into());
        self
    }
}

/// A token bucket: `burst` requests at once, refilled at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RateLimit {
    /// Sustained requests per second.
    pub per_second: f64,
    /// Bucket size.
    pub burst: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            per_second: 5.0,
            burst: 20,
        }
    }
}

/// Everything an agent may do.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AgentPolicy {
    /// Table grants; a table without one is refused.
    #[serde(default)]
    pub grants: Vec<TableGrant>,
    /// Operations parked for approval.
    #[serde(default)]
    pub approvals: Vec<ApprovalRule>,
    /// The agent's own rate limit.
    #[serde(default)]
    pub rate: RateLimit,
}

impl AgentPolicy {
    /// Adds a grant.
    pub fn grant(mut self, grant: TableGrant) -> AgentPolicy {
        self.grants.push(grant);
        self
    }

    /// Adds an approval rule.
    pub fn approval(mut self, rule: ApprovalRule) -> AgentPolicy {
        self.approvals.push(rule);
        self
    }

    /// Sets the rate limit.
    pub fn rate(mut self, per_second: f64, burst: u32) -> AgentPolicy {
        self.rate = RateLimit { per_second, burst };
        self
    }

    /// Refuses nonsense before it is stored.
    pub fn validate(&self) -> AgentResult<()> {
        if !(self.rate.per_second.is_finite() && self.rate.per_second > 0.0) || self.rate.burst == 0
        {
            return Err(AgentError::Invalid(
                "the rate limit needs per_second > 0 and burst >= 1".into(),
            ));
        }
        for g in &self.grants {
            if g.table.trim().is_empty() || g.operations.is_empty() {
                return Err(AgentError::Invalid(
                    "a grant needs a table and at least one operation".into(),
                ));
            }
        }
        Ok(())
    }
}

/// A registered agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agent {
    /// Its name (the `<name>` of role `agent:<name>`).
    pub name: String,
    /// The id of its API key, for reference and revocation.
    pub key_id: Option<String>,
    /// What it may do.
    pub policy: AgentPolicy,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds, once revoked.
    pub revoked_at: Option<i64>,
}

/// Where a parked operation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TicketStatus {
    /// Waiting for a human.
    Pending,
    /// Approved, not yet run (approved from another process: runs on the next poll).
    Approved,
    /// Being run.
    Executing,
    /// Run; the result is on the ticket.
    Executed,
    /// Refused by a human; never run.
    Rejected,
    /// Nobody decided in time; never run.
    Expired,
}

impl TicketStatus {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            TicketStatus::Pending => "pending",
            TicketStatus::Approved => "approved",
            TicketStatus::Executing => "executing",
            TicketStatus::Executed => "executed",
            TicketStatus::Rejected => "rejected",
            TicketStatus::Expired => "expired",
        }
    }
}

impl std::str::FromStr for TicketStatus {
    type Err = AgentError;

    fn from_str(s: &str) -> AgentResult<TicketStatus> {
        [
            TicketStatus::Pending,
            TicketStatus::Approved,
            TicketStatus::Executing,
            TicketStatus::Executed,
            TicketStatus::Rejected,
            TicketStatus::Expired,
        ]
        .into_iter()
        .find(|t| t.as_str().eq_ignore_ascii_case(s.trim()))
        .ok_or_else(|| AgentError::Invalid(format!("'{s}' is not a ticket status")))
    }
}

/// A parked operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ticket {
    /// Its id (a UUID).
    pub id: String,
    /// The agent that asked.
    pub agent: String,
    /// The table.
    pub table: String,
    /// The operation.
    pub operation: Op,
    /// HTTP method.
    pub method: String,
    /// Path, prefix included.
    pub path: String,
    /// Query string, without `?`.
    pub query: String,
    /// The headers replayed (`prefer`, `accept`, `content-type`), as a JSON object.
    pub headers: serde_json::Value,
    /// The body, if any.
    pub body: Option<String>,
    /// Where it stands.
    pub status: TicketStatus,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds after which a pending ticket expires.
    pub expires_at: i64,
    /// Who approved or rejected it.
    pub decided_by: Option<String>,
    /// The replay's HTTP status, once executed.
    pub result_status: Option<u16>,
    /// The replay's body, once executed.
    pub result_body: Option<String>,
}

/// How MagGate governs agents ([`crate::GateConfig::agents`]).
#[derive(Debug, Clone)]
pub struct AgentsConfig {
    /// How often agents are re-read from storage (changes by a CLI take effect after this).
    pub refresh: Duration,
    /// How long a ticket waits for a decision.
    pub ticket_ttl: Duration,
    /// Roles that may list, approve and reject tickets over HTTP (identities of kind
    /// `Service` may too).
    pub admin_roles: Vec<String>,
}

impl Default for AgentsConfig {
    fn default() -> Self {
        AgentsConfig {
            refresh: Duration::from_secs(2),
            ticket_ttl: Duration::from_secs(24 * 3600),
            admin_roles: vec!["service_role".to_owned()],
        }
    }
}

/// Unix milliseconds now.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_bad_ones_say_what_is_allowed() {
        for op in Op::ALL {
            assert_eq!(op.as_str().parse::<Op>().ok(), Some(op));
        }
        let e = "drop"
            .parse::<Op>()
            .map(|_| ())
            .err()
            .map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("select, insert, update or delete")));
        assert_eq!(
            "Expired".parse::<TicketStatus>().ok(),
            Some(TicketStatus::Expired)
        );
    }

    #[test]
    fn a_hand_written_policy_gets_defaults_and_is_validated() {
        let p: AgentPolicy =
            serde_json::from_str(r#"{"grants":[{"table":"t","operations":["select"]}]}"#)
                .map_err(|e| e.to_string())
                .unwrap_or_default();
        assert_eq!(p.grants, vec![TableGrant::new("t", &[Op::Select])]);
        assert_eq!(p.rate, RateLimit::default());
        assert!(p.validate().is_ok());
        assert!(AgentPolicy::default().rate(0.0, 1).validate().is_err());
        let empty = AgentPolicy::default().grant(TableGrant::new("t", &[]));
        assert!(empty.validate().is_err());
    }
}
