//! `_magmobo_agents` and `_magmobo_agent_tickets` on any dialect: the public API a CLI
//! calls (create, list, revoke agents; list, approve, reject tickets) and the state
//! changes MagGate makes. Status changes are conditional `UPDATE ... WHERE status = ...`,
//! so a gate and a CLI deciding at the same time cannot both win.

use std::sync::Arc;

use magmobo_core::roles::api_keys::{CreatedKey, KeyStore};
use magmobo_core::roles::storage::{Migration, Row, Storage, Value};

use super::model::{Agent, AgentError, AgentPolicy, AgentResult, Ticket, TicketStatus, now_ms};

const AGENTS_SQL: &str = "CREATE TABLE IF NOT EXISTS _magmobo_agents (\
    name VARCHAR(100) PRIMARY KEY, key_id VARCHAR(64), policy TEXT NOT NULL, \
    created_at BIGINT NOT NULL, revoked_at BIGINT)";

const TICKETS_SQL: &str = "CREATE TABLE IF NOT EXISTS _magmobo_agent_tickets (\
    id VARCHAR(40) PRIMARY KEY, agent VARCHAR(100) NOT NULL, table_name VARCHAR(200) NOT NULL, \
    operation VARCHAR(10) NOT NULL, method VARCHAR(10) NOT NULL, path TEXT NOT NULL, \
    query TEXT NOT NULL, headers TEXT NOT NULL, body TEXT, status VARCHAR(12) NOT NULL, \
    created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL, decided_by VARCHAR(200), \
    decided_at BIGINT, result_status INTEGER, result_body TEXT)";

const TICKET_COLUMNS: &str = "id, agent, table_name, operation, method, path, query, headers, \
    body, status, created_at, expires_at, decided_by, result_status, result_body";

/// Agents and tickets in the board's Storage.
#[derive(Clone)]
pub struct AgentStore {
    storage: Arc<dyn Storage>,
}

impl std::fmt::Debug for AgentStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AgentStore")
    }
}

impl AgentStore {
    /// A store on `storage`.
    pub fn new(storage: Arc<dyn Storage>) -> AgentStore {
        AgentStore { storage }
    }

    /// Creates the tables if needed (recorded migrations, owner `maggate-agents`).
    pub async fn install(&self) -> AgentResult<()> {
        let migrations = [
            Migration::portable(1, "agents", AGENTS_SQL),
            Migration::portable(2, "agent tickets", TICKETS_SQL),
        ];
        self.storage.migrate("maggate-agents", &migrations).await?;
        Ok(())
    }

    fn ph(&self, n: usize) -> String {
        self.storage.dialect().placeholder(n)
    }

    /// Registers agent `name` acting through the API key `key_id` (create the key with
    /// role [`super::agent_role`]`(name)` first).
    pub async fn create(
        &self,
        name: &str,
        key_id: Option<&str>,
        policy: AgentPolicy,
    ) -> AgentResult<Agent> {
        let name = checked_name(name)?;
        policy.validate()?;
        if self.find(name).await?.is_some() {
            return Err(AgentError::Conflict(format!(
                "agent '{name}' already exists"
            )));
        }
        let agent = Agent {
            name: name.to_owned(),
            key_id: key_id.map(str::to_owned),
            policy,
            created_at: now_ms(),
            revoked_at: None,
        };
        let sql = format!(
            "INSERT INTO _magmobo_agents (name, key_id, policy, created_at) VALUES ({})",
            self.storage.dialect().placeholders(4)
        );
        self.storage
            .execute(
                &sql,
                &[
                    Value::Text(agent.name.clone()),
                    agent.key_id.clone().map_or(Value::Null, Value::Text),
                    Value::Text(serde_json::to_string(&agent.policy)?),
                    Value::Int(agent.created_at),
                ],
            )
            .await?;
        Ok(agent)
    }

    /// Creates an API key with role [`super::agent_role`]`(name)` in `keys` and registers
    /// agent `name` acting through it; the key is revoked again when the agent cannot be
    /// registered. The returned key's `full` text is the only time the secret is seen.
    pub async fn create_with_key(
        &self,
        keys: &KeyStore,
        name: &str,
        policy: AgentPolicy,
    ) -> AgentResult<(Agent, CreatedKey)> {
        let name = checked_name(name)?;
        policy.validate()?;
        if self.find(name).await?.is_some() {
            return Err(AgentError::Conflict(format!(
                "agent '{name}' already exists"
            )));
        }
        let key = keys.create(name, &super::agent_role(name), None).await?;
        match self.create(name, Some(&key.key.id), policy).await {
            Ok(agent) => Ok((agent, key)),
            Err(e) => {
                if let Err(revoke) = keys.revoke(&key.key.id).await {
                    tracing::warn!(target: "maggate", error = %revoke, key = %key.key.id, "could not revoke the key of an agent that was not created");
                }
                Err(e)
            }
        }
    }

    /// Revokes agent `name` and its API key; returns the agent as it was and whether it was
    /// already revoked.
    pub async fn revoke_with_key(&self, keys: &KeyStore, name: &str) -> AgentResult<(Agent, bool)> {
        let agent = self.get(name).await?;
        let changed = self.revoke(name).await?;
        if let Some(key_id) = &agent.key_id {
            keys.revoke(key_id).await?;
        }
        Ok((agent, !changed))
    }

    /// Every agent, revoked ones included, by name.
    pub async fn list(&self) -> AgentResult<Vec<Agent>> {
        let rows = self
            .storage
            .query(
                "SELECT name, key_id, policy, created_at, revoked_at FROM _magmobo_agents \
                 ORDER BY name",
                &[],
            )
            .await?;
        rows.iter().map(row_to_agent).collect()
    }

    async fn find(&self, name: &str) -> AgentResult<Option<Agent>> {
        let sql = format!(
            "SELECT name, key_id, policy, created_at, revoked_at FROM _magmobo_agents \
             WHERE name = {}",
            self.ph(1)
        );
        let rows = self
            .storage
            .query(&sql, &[Value::Text(name.to_owned())])
            .await?;
        rows.first().map(row_to_agent).transpose()
    }

    /// One agent.
    pub async fn get(&self, name: &str) -> AgentResult<Agent> {
        self.find(name)
            .await?
            .ok_or_else(|| AgentError::NotFound(format!("agent '{name}'")))
    }

    /// Replaces an agent's grants, approval rules and rate limit.
    pub async fn set_policy(&self, name: &str, policy: AgentPolicy) -> AgentResult<()> {
        policy.validate()?;
        let sql = format!(
            "UPDATE _magmobo_agents SET policy = {} WHERE name = {}",
            self.ph(1),
            self.ph(2)
        );
        let changed = self
            .storage
            .execute(
                &sql,
                &[
                    Value::Text(serde_json::to_string(&policy)?),
                    Value::Text(name.to_owned()),
                ],
            )
            .await?;
        if changed == 0 {
            return Err(AgentError::NotFound(format!("agent '{name}'")));
        }
        Ok(())
    }

    /// Revokes an agent (its requests get 403 from the next refresh on); false when it was
    /// already revoked. Revoke its API key too, with the PSU's key store.
    pub async fn revoke(&self, name: &str) -> AgentResult<bool> {
        self.get(name).await?;
        let sql = format!(
            "UPDATE _magmobo_agents SET revoked_at = {} WHERE name = {} AND revoked_at IS NULL",
            self.ph(1),
            self.ph(2)
        );
        let changed = self
            .storage
            .execute(&sql, &[Value::Int(now_ms()), Value::Text(name.to_owned())])
            .await?;
        Ok(changed > 0)
    }

    /// Stores a new ticket.
    pub(crate) async fn park(&self, t: &Ticket) -> AgentResult<()> {
        let sql = format!(
            "INSERT INTO _magmobo_agent_tickets (id, agent, table_name, operation, method, path, \
             query, headers, body, status, created_at, expires_at) VALUES ({})",
            self.storage.dialect().placeholders(12)
        );
        let params = [
            Value::Text(t.id.clone()),
            Value::Text(t.agent.clone()),
            Value::Text(t.table.clone()),
            Value::Text(t.operation.as_str().to_owned()),
            Value::Text(t.method.clone()),
            Value::Text(t.path.clone()),
            Value::Text(t.query.clone()),
            Value::Text(t.headers.to_string()),
            t.body.clone().map_or(Value::Null, Value::Text),
            Value::Text(t.status.as_str().to_owned()),
            Value::Int(t.created_at),
            Value::Int(t.expires_at),
        ];
        self.storage.execute(&sql, &params).await?;
        Ok(())
    }

    /// Tickets, newest first; only those in `status` when given. Pending tickets past
    /// their time are marked expired first.
    pub async fn tickets(&self, status: Option<TicketStatus>) -> AgentResult<Vec<Ticket>> {
        self.expire_due().await?;
        let (sql, params) = match status {
            Some(s) => (
                format!(
                    "SELECT {TICKET_COLUMNS} FROM _magmobo_agent_tickets WHERE status = {} \
                     ORDER BY created_at DESC, id",
                    self.ph(1)
                ),
                vec![Value::Text(s.as_str().to_owned())],
            ),
            None => (
                format!(
                    "SELECT {TICKET_COLUMNS} FROM _magmobo_agent_tickets \
                     ORDER BY created_at DESC, id"
                ),
                Vec::new(),
            ),
        };
        let rows = self.storage.query(&sql, &params).await?;
        rows.iter().map(row_to_ticket).collect()
    }

    /// One ticket, as stored (see [`AgentStore::tickets`] for expiry).
    pub async fn ticket(&self, id: &str) -> AgentResult<Ticket> {
        let sql = format!(
            "SELECT {TICKET_COLUMNS} FROM _magmobo_agent_tickets WHERE id = {}",
            self.ph(1)
        );
        let rows = self
            .storage
            .query(&sql, &[Value::Text(id.to_owned())])
            .await?;
        rows.first()
            .map(row_to_ticket)
            .transpose()?
            .ok_or_else(|| AgentError::NotFound(format!("ticket '{id}'")))
    }

    /// Marks every pending ticket past its time expired; returns their ids.
    pub async fn expire_due(&self) -> AgentResult<Vec<String>> {
        let now = now_ms();
        let sql = format!(
            "SELECT id FROM _magmobo_agent_tickets WHERE status = 'pending' AND expires_at <= {}",
            self.ph(1)
        );
        let rows = self.storage.query(&sql, &[Value::Int(now)]).await?;
        let mut expired = Vec::new();
        for row in rows {
            let id = row.get_text("id")?;
            if self
                .transition(&id, TicketStatus::Pending, TicketStatus::Expired, None)
                .await?
            {
                expired.push(id);
            }
        }
        Ok(expired)
    }

    /// Moves ticket `id` from `from` to `to`; false when it was not in `from`.
    pub(crate) async fn transition(
        &self,
        id: &str,
        from: TicketStatus,
        to: TicketStatus,
        by: Option<&str>,
    ) -> AgentResult<bool> {
        let sql = format!(
            "UPDATE _magmobo_agent_tickets SET status = {}, \
             decided_by = COALESCE({}, decided_by), decided_at = COALESCE({}, decided_at) \
             WHERE id = {} AND status = {}",
            self.ph(1),
            self.ph(2),
            self.ph(3),
            self.ph(4),
            self.ph(5)
        );
        let by_value = by.map_or(Value::Null, |b| Value::Text(b.to_owned()));
        let at_value = if by.is_some() {
            Value::Int(now_ms())
        } else {
            Value::Null
        };
        let changed = self
            .storage
            .execute(
                &sql,
                &[
                    Value::Text(to.as_str().to_owned()),
                    by_value,
                    at_value,
                    Value::Text(id.to_owned()),
                    Value::Text(from.as_str().to_owned()),
                ],
            )
            .await?;
        Ok(changed > 0)
    }

    /// A human decision on a pending ticket.
    async fn decide(&self, id: &str, by: &str, to: TicketStatus) -> AgentResult<Ticket> {
        self.expire_due().await?;
        let current = self.ticket(id).await?;
        if current.status != TicketStatus::Pending
            || !self
                .transition(id, TicketStatus::Pending, to, Some(by))
                .await?
        {
            let now = self.ticket(id).await?;
            return Err(AgentError::Conflict(format!(
                "ticket {id} is {}, not pending",
                now.status.as_str()
            )));
        }
        self.ticket(id).await
    }

    /// Approves a pending ticket. A running MagGate executes it when it approves it itself
    /// (`POST .../approve`) or, for an approval made here from another process, when the
    /// agent next polls the ticket.
    pub async fn approve(&self, id: &str, by: &str) -> AgentResult<Ticket> {
        self.decide(id, by, TicketStatus::Approved).await
    }

    /// Rejects a pending ticket: it will never run.
    pub async fn reject(&self, id: &str, by: &str) -> AgentResult<Ticket> {
        self.decide(id, by, TicketStatus::Rejected).await
    }

    /// Records the replay's outcome on an executing ticket.
    pub(crate) async fn finish(&self, id: &str, status: u16, body: &str) -> AgentResult<()> {
        let sql = format!(
            "UPDATE _magmobo_agent_tickets SET status = 'executed', result_status = {}, \
             result_body = {} WHERE id = {} AND status = 'executing'",
            self.ph(1),
            self.ph(2),
            self.ph(3)
        );
        self.storage
            .execute(
                &sql,
                &[
                    Value::Int(i64::from(status)),
                    Value::Text(body.to_owned()),
                    Value::Text(id.to_owned()),
                ],
            )
            .await?;
        Ok(())
    }
}

fn row_to_agent(row: &Row) -> AgentResult<Agent> {
    Ok(Agent {
        name: row.get_text("name")?,
        key_id: row.get_opt_text("key_id")?,
        policy: serde_json::from_str(&row.get_text("policy")?)?,
        created_at: row.get_int("created_at")?,
        revoked_at: row.get_opt_int("revoked_at")?,
    })
}

fn row_to_ticket(row: &Row) -> AgentResult<Ticket> {
    Ok(Ticket {
        id: row.get_text("id")?,
        agent: row.get_text("agent")?,
        table: row.get_text("table_name")?,
        operation: row.get_text("operation")?.parse()?,
        method: row.get_text("method")?,
        path: row.get_text("path")?,
        query: row.get_text("query")?,
        headers: serde_json::from_str(&row.get_text("headers")?)?,
        body: row.get_opt_text("body")?,
        status: row.get_text("status")?.parse()?,
        created_at: row.get_int("created_at")?,
        expires_at: row.get_int("expires_at")?,
        decided_by: row.get_opt_text("decided_by")?,
        result_status: row
            .get_opt_int("result_status")?
            .and_then(|s| u16::try_from(s).ok()),
        result_body: row.get_opt_text("result_body")?,
    })
}

/// `name` trimmed, when it is 1-100 letters, digits, '-' or '_'.
fn checked_name(name: &str) -> AgentResult<&str> {
    let name = name.trim();
    if name.is_empty()
        || name.len() > 100
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(AgentError::Invalid(format!(
            "agent name '{name}' must be 1-100 letters, digits, '-' or '_'"
        )));
    }
    Ok(name)
}
