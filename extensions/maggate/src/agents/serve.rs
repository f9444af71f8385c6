//! The gate side of agents: recognising an agent's request, its rate limit, turning its
//! grants into [`Policies`], parking operations that need approval, the `_approvals`
//! endpoints, replaying approved tickets, and the `agent.action` bus events.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::ArcSwap;
use http::{Method, StatusCode, header};
use magmobo_core::axum::body::{Body, to_bytes};
use magmobo_core::axum::response::Response;
use magmobo_core::ratelimit::{BucketExchange, Limit, RateLimiter};
use magmobo_core::roles::auth::{Identity, IdentityKind};
use magmobo_core::roles::platform::{self, Permission, store::PlatformStore};

use super::model::{Agent, AgentError, AgentsConfig, Op, Ticket, TicketStatus, now_ms};
use super::store::AgentStore;
use crate::api_error::{ApiError, ApiResult};
use crate::gate::{Inner, Runtime};
use crate::policy::{Command, Policies, RowFilter, TablePolicy};
use crate::sql::Catalog;

/// The bus topic of every agent action.
pub(crate) const TOPIC: &str = "agent.action";
const JSON: &str = "application/json; charset=utf-8";
/// Largest replay response kept on a ticket.
const MAX_RESULT: usize = 4 << 20;

/// Agents as last read from storage, and each agent's token bucket (shared across
/// instances when the RAM slot offers global buckets: see [`AgentState::share_limits`]).
pub(crate) struct AgentState {
    loaded: ArcSwap<Loaded>,
    refreshing: tokio::sync::Mutex<()>,
    buckets: Arc<RateLimiter>,
    sharing: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Default for AgentState {
    fn default() -> Self {
        AgentState {
            loaded: ArcSwap::default(),
            refreshing: tokio::sync::Mutex::default(),
            // Every agent carries its own limit; this default is never used.
            buckets: Arc::new(RateLimiter::new(Limit::new(1.0, 1.0))),
            sharing: Mutex::new(None),
        }
    }
}

#[derive(Default)]
pub(crate) struct Loaded {
    at: Option<Instant>,
    agents: HashMap<String, Arc<Agent>>,
}

impl AgentState {
    /// The agents, re-read when older than `config.refresh`. A failed re-read keeps the
    /// previous list (and says so); with no list at all it is an error.
    async fn agents(&self, config: &AgentsConfig, store: &AgentStore) -> ApiResult<Arc<Loaded>> {
        let fresh = |l: &Loaded| l.at.is_some_and(|at| at.elapsed() < config.refresh);
        let current = self.loaded.load_full();
        if fresh(&current) {
            return Ok(current);
        }
        let _one = self.refreshing.lock().await;
        let current = self.loaded.load_full();
        if fresh(&current) {
            return Ok(current);
        }
        self.reload(store).await.or_else(|e| {
            if current.at.is_some() {
                tracing::warn!(target: "maggate", error = %e, "agents not refreshed; keeping the previous list");
                Ok(current)
            } else {
                Err(ApiError::new(503, "MG503", "Agents could not be loaded").details(e.to_string()))
            }
        })
    }

    /// Re-reads the agents now.
    pub(crate) async fn reload(&self, store: &AgentStore) -> Result<Arc<Loaded>, AgentError> {
        let agents = store.list().await?;
        let loaded = Arc::new(Loaded {
            at: Some(Instant::now()),
            agents: agents
                .into_iter()
                .map(|a| (a.name.clone(), Arc::new(a)))
                .collect(),
        });
        self.loaded.store(loaded.clone());
        Ok(loaded)
    }

    /// Takes one token from `agent`'s bucket; `Err(seconds)` to wait when it is empty.
    fn take(&self, agent: &Agent) -> Result<(), u64> {
        let rate = agent.policy.rate;
        let limit = Limit::new(rate.per_second, f64::from(rate.burst.max(1)));
        self.buckets
            .take_with(&agent.name, 1.0, limit)
            .map_err(magmobo_core::ratelimit::retry_after_secs)
    }

    /// Holds every agent's limit across the instances sharing `exchange` (the RAM slot's
    /// global buckets), until [`AgentState::stop_sharing`].
    pub(crate) fn share_limits(&self, exchange: Arc<dyn BucketExchange>) {
        let task = self.buckets.share(exchange, "agent:", "MagGate agents");
        let old = self
            .sharing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(task);
        if let Some(old) = old {
            old.abort();
        }
    }

    /// Stops sharing limits (the board is stopping).
    pub(crate) fn stop_sharing(&self) {
        if let Some(task) = self
            .sharing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            task.abort();
        }
    }
}

/// The agent name an identity acts as: the subject of an `Agent` identity, or `<name>` of
/// role `agent:<name>` (API keys created for agents).
pub(crate) fn agent_name(identity: &Identity) -> Option<&str> {
    if identity.kind == IdentityKind::Agent
        && let Some(subject) = identity.subject.as_deref()
    {
        return Some(subject);
    }
    identity.role.strip_prefix("agent:")
}

/// One request made by an agent (or replayed for it).
pub(crate) struct AgentCall {
    pub agent: Arc<Agent>,
    /// The ticket being replayed: no rate limit, no approval, no `allowed` event.
    pub replay: Option<String>,
    /// The values of the grants' row matches, read by the row filters as claims `r<i>`.
    claims: serde_json::Value,
    noted: Mutex<(Option<String>, Option<Op>)>,
    parked: AtomicBool,
}

impl AgentCall {
    fn new(agent: Arc<Agent>, replay: Option<String>) -> AgentCall {
        let mut claims = serde_json::Map::new();
        for (i, m) in agent
            .policy
            .grants
            .iter()
            .flat_map(|g| g.rows.iter())
            .enumerate()
        {
            claims.insert(format!("r{i}"), serde_json::json!(m.values));
        }
        AgentCall {
            agent,
            replay,
            claims: serde_json::Value::Object(claims),
            noted: Mutex::new((None, None)),
            parked: AtomicBool::new(false),
        }
    }

    /// The claims the agent's row filters read.
    pub(crate) fn claims(&self) -> &serde_json::Value {
        &self.claims
    }

    /// Records what the request touches, for its event.
    pub(crate) fn note(&self, table: &str, op: Option<Op>) {
        *self.noted.lock().unwrap_or_else(|e| e.into_inner()) = (Some(table.to_owned()), op);
    }

    fn denied(&self, message: String) -> ApiError {
        ApiError::new(403, "MG403", message).hint(format!(
            "Ask an operator to grant it: `magflock agents grant {} ...`",
            self.agent.name
        ))
    }

    /// Agents call no functions: a function's effects are not covered by table grants.
    pub(crate) fn refuse_rpc(&self, path: &str) -> ApiError {
        self.denied(format!(
            "agent '{}' may not call functions ({path})",
            self.agent.name
        ))
    }

    /// Refuses a table the agent has no grant on, or an operation not granted there.
    pub(crate) fn check(&self, table: &str, command: Command) -> ApiResult<()> {
        let op = Op::of(command);
        let grants: Vec<_> = self
            .agent
            .policy
            .grants
            .iter()
            .filter(|g| g.table == table)
            .collect();
        if grants.is_empty() {
            return Err(self.denied(format!(
                "agent '{}' has no grant on table {table}",
                self.agent.name
            )));
        }
        if !grants.iter().any(|g| g.operations.contains(&op)) {
            return Err(self.denied(format!(
                "agent '{}' may not {} on table {table}",
                self.agent.name,
                op.as_str()
            )));
        }
        Ok(())
    }

    /// The agent's grants as code-declared policies over every table of `catalog`:
    /// ungranted tables and operations denied, column lists, row filters.
    pub(crate) fn policies(&self, catalog: &Catalog) -> Policies {
        let mut policies = Policies::new();
        let grants = &self.agent.policy.grants;
        let mut claim = 0usize;
        let mut per_table: HashMap<&str, TablePolicy> = HashMap::new();
        for g in grants {
            let policy = per_table.remove(g.table.as_str()).unwrap_or_default();
            let commands: Vec<Command> = g.operations.iter().map(|o| o.command()).collect();
            let mut policy = policy;
            for m in &g.rows {
                policy = policy.rows(&commands, RowFilter::claim(&m.column, format!("r{claim}")));
                claim += 1;
            }
            per_table.insert(g.table.as_str(), policy);
        }
        for (table, mut policy) in per_table {
            let of = |ops: &'static [Op]| {
                grants.iter().filter(move |g| {
                    g.table == table && g.operations.iter().any(|o| ops.contains(o))
                })
            };
            let denied: Vec<Command> = Op::ALL
                .into_iter()
                .filter(|op| {
                    !grants
                        .iter()
                        .any(|g| g.table == table && g.operations.contains(op))
                })
                .map(Op::command)
                .collect();
            policy = policy.deny(&denied);
            if let Some(cols) = columns(of(&[Op::Select]).map(|g| &g.columns)) {
                policy = policy.read_columns(cols);
            }
            if let Some(cols) = columns(of(&[Op::Insert, Op::Update]).map(|g| &g.columns)) {
                policy = policy.write_columns(cols);
            }
            policies = policies.table(table, policy);
        }
        for t in &catalog.schema().tables {
            if !grants.iter().any(|g| g.table == t.name) {
                policies = policies.table(t.name.clone(), TablePolicy::new().deny(Command::ALL));
            }
        }
        policies
    }

    /// The approval rules for `command` on `table`: `Some(None)` always, `Some(Some(n))`
    /// above `n` rows, `None` never.
    pub(crate) fn approval(&self, table: &str, command: Command) -> Option<Option<u64>> {
        let op = Op::of(command);
        let rules = self
            .agent
            .policy
            .approvals
            .iter()
            .filter(|r| r.operation == op && r.table.as_deref().is_none_or(|t| t == table));
        let mut threshold: Option<Option<u64>> = None;
        for r in rules {
            threshold = Some(match (threshold, r.more_than) {
                (Some(None), _) | (_, None) => None,
                (Some(Some(a)), Some(b)) => Some(a.min(b)),
                (None, Some(b)) => Some(b),
            });
        }
        threshold
    }

    /// Publishes the request's outcome once it was answered (parked and replayed requests
    /// publish their own events).
    pub(crate) fn report(&self, rt: &Runtime, result: &ApiResult<Response>) {
        if self.parked.load(Ordering::Relaxed) || self.replay.is_some() {
            return;
        }
        let (table, op) = self.noted.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let Some(table) = table else { return };
        let (outcome, status, message) = match result {
            Ok(r) => ("allowed", r.status().as_u16(), None),
            Err(e) if e.status == 403 || e.status == 401 => {
                ("refused", e.status, Some(e.message.clone()))
            }
            Err(e) => ("failed", e.status, Some(e.message.clone())),
        };
        publish(
            rt,
            &self.agent.name,
            Event {
                table: &table,
                op,
                outcome,
                ticket: None,
                status: Some(status),
                detail: message,
            },
        );
    }
}

/// The union of column lists, `None` when any grant allows every column (or none apply).
fn columns<'g>(lists: impl Iterator<Item = &'g Option<Vec<String>>>) -> Option<Vec<String>> {
    let mut all: Option<Vec<String>> = None;
    for list in lists {
        match list {
            None => return None,
            Some(cols) => all
                .get_or_insert_with(Vec::new)
                .extend(cols.iter().cloned()),
        }
    }
    all
}

struct Event<'a> {
    table: &'a str,
    op: Option<Op>,
    outcome: &'a str,
    ticket: Option<&'a str>,
    status: Option<u16>,
    detail: Option<String>,
}

fn publish(rt: &Runtime, agent: &str, e: Event<'_>) {
    let Some(bus) = &rt.bus else { return };
    let op = e.op.map(Op::as_str);
    let mut message = format!(
        "agent {agent} {} {} on {}",
        e.outcome,
        op.unwrap_or("request"),
        e.table
    );
    if let Some(t) = e.ticket {
        message.push_str(&format!(" (ticket {t})"));
    }
    let payload = serde_json::json!({
        "agent": agent,
        "identity": super::agent_role(agent),
        "table": e.table,
        "operation": op,
        "outcome": e.outcome,
        "ticket": e.ticket,
        "status": e.status,
        "detail": e.detail,
        "message": message,
    });
    if let Err(err) = bus.publish(TOPIC, payload) {
        tracing::debug!(target: "maggate", error = %err, "agent.action not published");
    }
}

fn store(rt: &Runtime) -> AgentStore {
    AgentStore::new(rt.storage.clone())
}

fn respond(status: u16, headers: &[(header::HeaderName, String)], body: String) -> Response {
    let mut b = http::Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::OK))
        .header(header::CONTENT_TYPE, JSON);
    for (k, v) in headers {
        b = b.header(k, v);
    }
    b.body(Body::from(body))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

/// Recognises an agent's request: `Ok(None)` when the caller is no agent (or agents are
/// off); an answer to send instead (403 unknown or revoked agent, 429) as `Err`.
pub(crate) async fn admit(
    inner: &Inner,
    rt: &Runtime,
    identity: &Identity,
    replay: Option<String>,
) -> Result<Option<AgentCall>, Response> {
    let Some(config) = &inner.config.agents else {
        return Ok(None);
    };
    let Some(name) = agent_name(identity) else {
        return Ok(None);
    };
    let loaded = inner
        .agents
        .agents(config, &store(rt))
        .await
        .map_err(|e| respond(e.status, &[], e.to_json()))?;
    let Some(agent) = loaded.agents.get(name).filter(|a| a.revoked_at.is_none()) else {
        let e = ApiError::new(
            403,
            "MG403",
            format!("agent '{name}' is not registered or was revoked"),
        )
        .hint("Register it with `magflock agents create`.");
        publish(
            rt,
            name,
            Event {
                table: "",
                op: None,
                outcome: "refused",
                ticket: None,
                status: Some(403),
                detail: Some(e.message.clone()),
            },
        );
        return Err(respond(403, &[], e.to_json()));
    };
    if replay.is_none()
        && let Err(wait) = inner.agents.take(agent)
    {
        let e = ApiError::new(
            429,
            "MG429",
            format!("agent '{name}' is over its rate limit"),
        )
        .details(format!(
            "{} requests per second, bursts of {}",
            agent.policy.rate.per_second, agent.policy.rate.burst
        ))
        .hint(format!("Retry after {wait} seconds."));
        publish(
            rt,
            name,
            Event {
                table: "",
                op: None,
                outcome: "rate_limited",
                ticket: None,
                status: Some(429),
                detail: None,
            },
        );
        return Err(respond(
            429,
            &[(header::RETRY_AFTER, wait.to_string())],
            e.to_json(),
        ));
    }
    Ok(Some(AgentCall::new(agent.clone(), replay)))
}

/// Parks the request as a ticket and answers 202 with where to poll.
pub(crate) async fn park(
    inner: &Inner,
    rt: &Runtime,
    call: &AgentCall,
    table: &str,
    command: Command,
    parts: &http::request::Parts,
    body: Option<String>,
) -> ApiResult<Response> {
    let Some(config) = &inner.config.agents else {
        return Err(ApiError::new(500, "MG500", "agents are not enabled"));
    };
    let mut headers = serde_json::Map::new();
    for name in [
        header::CONTENT_TYPE,
        header::ACCEPT,
        header::HeaderName::from_static("prefer"),
    ] {
        if let Some(v) = parts.headers.get(&name).and_then(|v| v.to_str().ok()) {
            headers.insert(name.as_str().to_owned(), serde_json::json!(v));
        }
    }
    let created_at = now_ms();
    let ttl = i64::try_from(config.ticket_ttl.as_millis()).unwrap_or(i64::MAX);
    let ticket = Ticket {
        id: uuid::Uuid::new_v4().to_string(),
        agent: call.agent.name.clone(),
        table: table.to_owned(),
        operation: Op::of(command),
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or("").to_owned(),
        headers: serde_json::Value::Object(headers),
        body,
        status: TicketStatus::Pending,
        created_at,
        expires_at: created_at.saturating_add(ttl),
        decided_by: None,
        result_status: None,
        result_body: None,
    };
    store(rt).park(&ticket).await.map_err(storage_error)?;
    call.parked.store(true, Ordering::Relaxed);
    publish(
        rt,
        &ticket.agent,
        Event {
            table,
            op: Some(ticket.operation),
            outcome: "parked",
            ticket: Some(&ticket.id),
            status: Some(202),
            detail: None,
        },
    );
    let poll = poll_url(inner, &ticket.id);
    let body = serde_json::json!({
        "ticket": ticket.id,
        "status": "pending",
        "poll": poll,
        "expires_at": ticket.expires_at,
    });
    Ok(respond(202, &[(header::LOCATION, poll)], body.to_string()))
}

fn poll_url(inner: &Inner, id: &str) -> String {
    let prefix = inner.config.prefix.trim_end_matches('/');
    format!("{prefix}/_approvals/{id}")
}

fn storage_error(e: AgentError) -> ApiError {
    match e {
        AgentError::NotFound(what) => ApiError::new(404, "MG404", format!("{what} not found")),
        AgentError::Conflict(what) => ApiError::new(409, "MG409", what),
        AgentError::Invalid(what) => ApiError::new(400, "MG400", what),
        other => ApiError::new(500, "MG500", "agents storage failed").details(other.to_string()),
    }
}

/// Who decides: an admin role (or a `Service` identity), or a platform member holding
/// `approvals.decide` (looked up in Storage now, so a revoked role stops counting at once),
/// named for the ticket. Agents never decide, whatever their key's role.
async fn admin(config: &AgentsConfig, rt: &Runtime, identity: Option<&Identity>) -> Option<String> {
    let id = identity?;
    let name = || match &id.subject {
        Some(s) => format!("{}:{s}", id.role),
        None => id.role.clone(),
    };
    if id.kind == IdentityKind::Service || config.admin_roles.contains(&id.role) {
        return Some(name());
    }
    if agent_name(id).is_some() {
        return None;
    }
    let subject = platform::subject_of(id)?;
    // Without the platform tables (no console installed) nobody holds a platform role.
    match PlatformStore::new(rt.storage.clone())
        .access_of(&subject)
        .await
    {
        Ok(access) if access.permissions.contains(Permission::ApprovalsDecide) => Some(subject),
        Ok(_) => None,
        Err(e) => {
            tracing::debug!(target: "maggate", error = %e, "platform roles unreadable");
            None
        }
    }
}

fn view(inner: &Inner, t: &Ticket) -> serde_json::Value {
    let result = t.result_status.map(|status| {
        let body = t.result_body.as_deref().unwrap_or("");
        let body = serde_json::from_str::<serde_json::Value>(body)
            .unwrap_or_else(|_| serde_json::json!(body));
        serde_json::json!({ "status": status, "body": body })
    });
    serde_json::json!({
        "ticket": t.id,
        "status": t.status.as_str(),
        "agent": t.agent,
        "table": t.table,
        "operation": t.operation.as_str(),
        "method": t.method,
        "path": t.path,
        "query": t.query,
        "created_at": t.created_at,
        "expires_at": t.expires_at,
        "decided_by": t.decided_by,
        "result": result,
        "poll": poll_url(inner, &t.id),
    })
}

/// `{prefix}/_approvals[/{ticket}[/approve|/reject]]`.
pub(crate) async fn approvals(
    inner: &Inner,
    rt: &Runtime,
    identity: Option<Identity>,
    parts: &http::request::Parts,
    rest: &str,
) -> ApiResult<Response> {
    let Some(config) = &inner.config.agents else {
        return Err(ApiError::new(
            404,
            "PGRST125",
            "Invalid path specified in request URL",
        ));
    };
    // Agents poll under their own rate limit.
    let call = match &identity {
        Some(id) => match admit(inner, rt, id, None).await {
            Ok(call) => call,
            Err(answer) => return Ok(answer),
        },
        None => None,
    };
    let call = call.as_ref();
    let identity = identity.as_ref();
    let by = admin(config, rt, identity).await;
    let forbidden = || {
        ApiError::new(
            403,
            "MG403",
            "only an admin or the ticket's agent may see it",
        )
        .hint(format!(
            "Use a key whose role is one of: {}, or a platform member with approvals.decide",
            config.admin_roles.join(", ")
        ))
    };
    let store = store(rt);
    expire_due(rt, &store).await;
    let segments: Vec<&str> = rest.split('/').skip(1).collect();
    match (&parts.method, segments.as_slice()) {
        (&Method::GET, []) => {
            let status = crate::request::QueryParams::decode(parts.uri.query().unwrap_or(""))
                .pairs
                .iter()
                .find(|(k, _)| k == "status")
                .and_then(|(_, v)| v.as_ref().map(|v| v.to_string()));
            let status = status
                .map(|s| s.parse::<TicketStatus>())
                .transpose()
                .map_err(storage_error)?;
            let agent = match (&by, call) {
                (Some(_), _) => None,
                (None, Some(c)) => Some(c.agent.name.as_str()),
                (None, None) => return Err(forbidden()),
            };
            let tickets = store.tickets(status).await.map_err(storage_error)?;
            let list: Vec<_> = tickets
                .iter()
                .filter(|t| agent.is_none_or(|a| a == t.agent))
                .map(|t| view(inner, t))
                .collect();
            Ok(respond(200, &[], serde_json::Value::Array(list).to_string()))
        }
        (&Method::GET, [id]) => {
            let ticket = store.ticket(id).await.map_err(storage_error)?;
            let owner = call.is_some_and(|c| c.agent.name == ticket.agent);
            if by.is_none() && !owner {
                return Err(forbidden());
            }
            let ticket = if ticket.status == TicketStatus::Approved {
                execute(inner, rt, &store, ticket).await?
            } else {
                ticket
            };
            Ok(respond(200, &[], view(inner, &ticket).to_string()))
        }
        (&Method::POST, [id, action @ ("approve" | "reject")]) => {
            let Some(by) = by else {
                return Err(ApiError::new(403, "MG403", "only an admin may approve or reject tickets")
                    .hint(format!("Use a key whose role is one of: {}, or a platform member with approvals.decide", config.admin_roles.join(", "))));
            };
            let approve = *action == "approve";
            let ticket = if approve {
                store.approve(id, &by).await
            } else {
                store.reject(id, &by).await
            }
            .map_err(storage_error)?;
            publish(
                rt,
                &ticket.agent,
                Event {
                    table: &ticket.table,
                    op: Some(ticket.operation),
                    outcome: if approve { "approved" } else { "rejected" },
                    ticket: Some(&ticket.id),
                    status: None,
                    detail: Some(format!("by {by}")),
                },
            );
            let ticket = if approve {
                execute(inner, rt, &store, ticket).await?
            } else {
                ticket
            };
            Ok(respond(200, &[], view(inner, &ticket).to_string()))
        }
        _ => Err(ApiError::new(404, "PGRST125", "Invalid path specified in request URL")
            .hint("GET _approvals, GET _approvals/{ticket}, POST _approvals/{ticket}/approve or /reject")),
    }
}

/// Marks overdue tickets expired and publishes each.
async fn expire_due(rt: &Runtime, store: &AgentStore) {
    match store.expire_due().await {
        Ok(ids) => {
            for id in ids {
                if let Ok(t) = store.ticket(&id).await {
                    publish(
                        rt,
                        &t.agent,
                        Event {
                            table: &t.table,
                            op: Some(t.operation),
                            outcome: "expired",
                            ticket: Some(&t.id),
                            status: None,
                            detail: None,
                        },
                    );
                }
            }
        }
        Err(e) => tracing::warn!(target: "maggate", error = %e, "expiring tickets failed"),
    }
}

/// Replays an approved ticket through MagGate as its agent, once (whoever moves it to
/// `executing` runs it), and records the result.
async fn execute(
    inner: &Inner,
    rt: &Runtime,
    store: &AgentStore,
    ticket: Ticket,
) -> ApiResult<Ticket> {
    let claimed = store
        .transition(
            &ticket.id,
            TicketStatus::Approved,
            TicketStatus::Executing,
            None,
        )
        .await
        .map_err(storage_error)?;
    if !claimed {
        return store.ticket(&ticket.id).await.map_err(storage_error);
    }
    let identity = Identity {
        kind: IdentityKind::Agent,
        subject: Some(ticket.agent.clone()),
        role: super::agent_role(&ticket.agent),
        claims: serde_json::json!({ "role": super::agent_role(&ticket.agent), "agent": ticket.agent }),
    };
    let uri = if ticket.query.is_empty() {
        ticket.path.clone()
    } else {
        format!("{}?{}", ticket.path, ticket.query)
    };
    let mut builder = http::Request::builder()
        .method(ticket.method.as_str())
        .uri(uri);
    if let Some(headers) = ticket.headers.as_object() {
        for (k, v) in headers {
            if let Some(v) = v.as_str() {
                builder = builder.header(k.as_str(), v);
            }
        }
    }
    let (status, body) = match builder.body(Body::from(ticket.body.clone().unwrap_or_default())) {
        Ok(req) => {
            let (parts, body) = req.into_parts();
            let served = crate::handler::serve_as(
                inner,
                rt,
                Some(identity),
                parts,
                body,
                Some(ticket.id.clone()),
            );
            let response = match served.await {
                Ok(r) => r,
                Err(e) => crate::handler::error_response(&e, None),
            };
            let status = response.status().as_u16();
            let body = match to_bytes(response.into_body(), MAX_RESULT).await {
                Ok(b) => String::from_utf8_lossy(&b).into_owned(),
                Err(_) => String::new(),
            };
            (status, body)
        }
        Err(e) => (
            500,
            ApiError::new(500, "MG500", "the parked request could not be rebuilt")
                .details(e.to_string())
                .to_json(),
        ),
    };
    store
        .finish(&ticket.id, status, &body)
        .await
        .map_err(storage_error)?;
    publish(
        rt,
        &ticket.agent,
        Event {
            table: &ticket.table,
            op: Some(ticket.operation),
            outcome: "executed",
            ticket: Some(&ticket.id),
            status: Some(status),
            detail: None,
        },
    );
    store.ticket(&ticket.id).await.map_err(storage_error)
}

/// Re-reads agents now ([`crate::GateHandle::reload_agents`]).
pub(crate) async fn reload(inner: &Inner) -> Result<usize, AgentError> {
    let Some(rt) = inner.runtime.load_full() else {
        return Ok(0);
    };
    let loaded = inner.agents.reload(&store(&rt)).await?;
    Ok(loaded.agents.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agents::{AgentPolicy, ApprovalRule, TableGrant};

    fn agent(policy: AgentPolicy) -> Arc<Agent> {
        Arc::new(Agent {
            name: "bot".into(),
            key_id: None,
            policy,
            created_at: 0,
            revoked_at: None,
        })
    }

    #[test]
    fn agents_are_named_by_role_or_by_an_agent_identity() {
        let mut id = Identity::anonymous("agent:reporter");
        assert_eq!(agent_name(&id), Some("reporter"));
        id.kind = IdentityKind::Agent;
        id.subject = Some("other".into());
        assert_eq!(agent_name(&id), Some("other"));
        assert_eq!(agent_name(&Identity::anonymous("anon")), None);
    }

    #[test]
    fn the_strictest_matching_approval_rule_wins() {
        let call = AgentCall::new(
            agent(
                AgentPolicy::default()
                    .approval(ApprovalRule::more_than(Op::Update, 10))
                    .approval(ApprovalRule::more_than(Op::Update, 3).on("t"))
                    .approval(ApprovalRule::always(Op::Delete).on("u")),
            ),
            None,
        );
        assert_eq!(call.approval("t", Command::Update), Some(Some(3)));
        assert_eq!(call.approval("x", Command::Update), Some(Some(10)));
        assert_eq!(call.approval("u", Command::Delete), Some(None));
        assert_eq!(call.approval("t", Command::Delete), None);
        assert_eq!(call.approval("t", Command::Select), None);
    }

    #[test]
    fn ungranted_tables_and_operations_are_refused_by_name() {
        let call = AgentCall::new(
            agent(AgentPolicy::default().grant(TableGrant::new("t", &[Op::Select]))),
            None,
        );
        assert!(call.check("t", Command::Select).is_ok());
        let e = call
            .check("t", Command::Delete)
            .err()
            .map(|e| (e.code, e.message));
        assert_eq!(
            e,
            Some((
                "MG403".into(),
                "agent 'bot' may not delete on table t".into()
            ))
        );
        let e = call
            .check("payroll", Command::Select)
            .err()
            .map(|e| e.message);
        assert!(e.is_some_and(|m| m.contains("payroll")));
    }

    #[test]
    fn the_bucket_empties_and_says_how_long_to_wait() {
        let state = AgentState::default();
        let a = agent(AgentPolicy::default().rate(0.5, 2));
        assert!(state.take(&a).is_ok());
        assert!(state.take(&a).is_ok());
        assert_eq!(state.take(&a), Err(2));
    }
}
