//! `magflock agents`: AI agents as service accounts (grants, approval rules, rate limit) and
//! the approval queue of their parked operations. It writes the same tables the running
//! server reads (MagGate re-reads agents every two seconds), so it works with or without the
//! server running.

use std::sync::Arc;

use maggate::agents::{AgentPolicy, AgentStore, ApprovalRule, Op, TableGrant, TicketStatus};
use magmobo::auth::KeyStore;
use magmobo::prelude::*;

use crate::AgentsCommand;
use crate::commands::{Failure, load, storage};

/// `TABLE:OPS[:COLUMNS]`, e.g. `todos:select,update:id,title`.
fn parse_grant(text: &str) -> Result<TableGrant, Failure> {
    let mut parts = text.splitn(3, ':');
    let table = parts.next().unwrap_or("").trim();
    let ops = parts.next().unwrap_or("");
    if table.is_empty() || ops.trim().is_empty() {
        return Err(Failure::Message(format!(
            "--grant {text:?}: write TABLE:OPERATIONS[:COLUMNS], e.g. todos:select,update:id,title"
        )));
    }
    let ops: Vec<Op> = ops
        .split(',')
        .map(|o| o.parse::<Op>())
        .collect::<Result<_, _>>()?;
    let mut grant = TableGrant::new(table, &ops);
    if let Some(columns) = parts.next() {
        grant = grant.columns(columns.split(',').map(str::trim).filter(|c| !c.is_empty()));
    }
    Ok(grant)
}

/// `TABLE:COLUMN=V1|V2`: the rows a table's grant is limited to.
fn apply_rows(grants: &mut [TableGrant], text: &str) -> Result<(), Failure> {
    let bad = || {
        Failure::Message(format!(
            "--rows {text:?}: write TABLE:COLUMN=VALUE[|VALUE...], e.g. todos:owner=bot"
        ))
    };
    let (table, filter) = text.split_once(':').ok_or_else(bad)?;
    let (column, values) = filter.split_once('=').ok_or_else(bad)?;
    let grant = grants
        .iter_mut()
        .find(|g| g.table == table.trim())
        .ok_or_else(|| {
            Failure::Message(format!(
                "--rows {text:?}: there is no --grant on table {table}; grant it first"
            ))
        })?;
    let taken = std::mem::replace(grant, TableGrant::new("", &[]));
    *grant = taken.rows(column.trim(), values.split('|').map(str::to_owned));
    Ok(())
}

/// `OP`, `OP>N`, with an optional `@TABLE`: `delete`, `update>10@todos`.
fn parse_approval(text: &str) -> Result<ApprovalRule, Failure> {
    let (rule, table) = match text.split_once('@') {
        Some((r, t)) => (r, Some(t.trim())),
        None => (text, None),
    };
    let mut approval = match rule.split_once('>') {
        Some((op, n)) => {
            let rows: u64 = n.trim().parse().map_err(|_| {
                Failure::Message(format!(
                    "--approve {text:?}: after '>' comes a number of rows, e.g. update>10"
                ))
            })?;
            ApprovalRule::more_than(op.parse()?, rows)
        }
        None => ApprovalRule::always(rule.parse()?),
    };
    if let Some(t) = table {
        approval = approval.on(t);
    }
    Ok(approval)
}

/// `PER_SECOND/BURST`, e.g. `5/20`.
fn parse_rate(text: &str) -> Result<(f64, u32), Failure> {
    let bad = || {
        Failure::Message(format!(
            "--rate {text:?}: write PER_SECOND/BURST, e.g. 5/20"
        ))
    };
    let (rate, burst) = text.split_once('/').ok_or_else(bad)?;
    Ok((
        rate.trim().parse().map_err(|_| bad())?,
        burst.trim().parse().map_err(|_| bad())?,
    ))
}

fn when(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%SZ").to_string())
        .unwrap_or_else(|| ms.to_string())
}

/// Runs `magflock agents ...`.
pub async fn run(project: &std::path::Path, command: AgentsCommand) -> Result<(), Failure> {
    let server = match &command {
        AgentsCommand::Create { server, .. }
        | AgentsCommand::List { server }
        | AgentsCommand::Revoke { server, .. }
        | AgentsCommand::Tickets { server, .. }
        | AgentsCommand::Approve { server, .. }
        | AgentsCommand::Reject { server, .. } => server.clone(),
    };
    let loaded = load(project, &server)?;
    let db: Arc<dyn Storage> = Arc::new(storage(&loaded)?);
    let agents = AgentStore::new(db.clone());
    agents.install().await?;
    let keys = KeyStore::new(db.clone());
    keys.install().await?;
    match command {
        AgentsCommand::Create {
            name,
            grant,
            rows,
            approve,
            rate,
            ..
        } => {
            let mut grants: Vec<TableGrant> = grant
                .iter()
                .map(|g| parse_grant(g))
                .collect::<Result<_, _>>()?;
            for r in &rows {
                apply_rows(&mut grants, r)?;
            }
            let mut policy = AgentPolicy::default();
            for g in grants {
                policy = policy.grant(g);
            }
            for a in &approve {
                policy = policy.approval(parse_approval(a)?);
            }
            if let Some(r) = &rate {
                let (per_second, burst) = parse_rate(r)?;
                policy = policy.rate(per_second, burst);
            }
            // What the platform API checks too: a typo in a table or column is refused with
            // the closest name, instead of an agent that silently may do nothing.
            maggate::MagGate::new(maggate::GateConfig::default())
                .check_agent_policy(db.as_ref(), &policy)
                .await?;
            let (_, key) = agents.create_with_key(&keys, &name, policy).await?;
            if server.json {
                say!(
                    "{}",
                    serde_json::json!({ "agent": name, "key": key.full, "key_id": key.key.id })
                );
            } else {
                say!("Agent {name} created. Its API key (shown once):");
                say!("  {}", key.full);
                say!(
                    "Requests with it get only the grants above; parked operations wait in `magflock agents tickets`."
                );
            }
        }
        AgentsCommand::List { .. } => {
            for agent in agents.list().await? {
                if server.json {
                    say!("{}", serde_json::to_string(&agent).unwrap_or_default());
                    continue;
                }
                let state = if agent.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                let grants: Vec<String> = agent
                    .policy
                    .grants
                    .iter()
                    .map(|g| {
                        let ops: Vec<&str> = g.operations.iter().map(|o| o.as_str()).collect();
                        format!("{}:{}", g.table, ops.join(","))
                    })
                    .collect();
                say!(
                    "{:<20} {:<8} {} approvals: {}",
                    agent.name,
                    state,
                    grants.join(" "),
                    agent.policy.approvals.len()
                );
            }
        }
        AgentsCommand::Revoke { name, .. } => {
            agents.revoke_with_key(&keys, &name).await?;
            say!("Agent {name} revoked; its key no longer works.");
        }
        AgentsCommand::Tickets { status, .. } => {
            let status = status.map(|s| s.parse::<TicketStatus>()).transpose()?;
            for t in agents.tickets(status).await? {
                if server.json {
                    say!("{}", serde_json::to_string(&t).unwrap_or_default());
                } else {
                    say!(
                        "{}  {:<9} {:<16} {:<6} {}  {}?{}  expires {}",
                        t.id,
                        t.status.as_str(),
                        t.agent,
                        t.operation.as_str(),
                        t.method,
                        t.path,
                        t.query,
                        when(t.expires_at)
                    );
                }
            }
        }
        AgentsCommand::Approve { ticket, by, .. } => {
            let t = agents.approve(&ticket, &by).await?;
            say!(
                "Ticket {} approved by {by}; it runs when agent {} next polls it.",
                t.id,
                t.agent
            );
        }
        AgentsCommand::Reject { ticket, by, .. } => {
            let t = agents.reject(&ticket, &by).await?;
            say!("Ticket {} rejected by {by}; nothing was run.", t.id);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_approvals_and_rates_parse_or_say_how() {
        let g = parse_grant("todos:select,update:id,title").unwrap_or_else(|_| panic!());
        assert_eq!(g.table, "todos");
        assert_eq!(g.operations, vec![Op::Select, Op::Update]);
        assert!(parse_grant("todos").is_err());
        assert!(parse_grant("todos:fly").is_err());
        let a = parse_approval("update>10@todos").unwrap_or_else(|_| panic!());
        assert_eq!(
            (a.operation, a.more_than, a.table.as_deref()),
            (Op::Update, Some(10), Some("todos"))
        );
        assert!(parse_approval("update>x").is_err());
        assert_eq!(parse_rate("5/20").ok(), Some((5.0, 20)));
        assert!(parse_rate("5").is_err());
        let mut grants = vec![TableGrant::new("todos", &[Op::Select])];
        assert!(apply_rows(&mut grants, "todos:owner=bot|ops").is_ok());
        assert!(apply_rows(&mut grants, "other:owner=bot").is_err());
    }
}
