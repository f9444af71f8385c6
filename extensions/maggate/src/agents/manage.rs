//! Agents managed through the platform API: MagGate answers the bus requests
//! `agents.list`, `agents.create`, `agents.update` and `agents.revoke` (see
//! `magmobo_core::roles::platform::requests`), because grants name tables and columns that
//! only MagGate's schema cache knows. A grant naming a table or column that does not exist is
//! refused with the closest existing name, instead of silently granting nothing.
//!
//! Who may ask is the platform API's business (`agents.read`, `agents.write`); this module
//! trusts the request and only checks the policy against the schema.

use std::sync::Arc;

use magmobo_core::bus::{Event, ResponderGuard};
use magmobo_core::roles::api_keys::KeyStore;
use magmobo_core::roles::platform::requests::{self, Refusal, reply_ok, reply_refused};
use serde::Deserialize;
use serde_json::json;

use super::{AgentError, AgentPolicy, AgentStore};
use crate::gate::{Inner, Runtime};
use crate::sql::{Catalog, expr};

/// Registers the three responders on `bus`; they answer until the guards drop.
pub(crate) fn respond(
    inner: &Arc<Inner>,
    bus: &magmobo_core::board::BusHandle,
) -> magmobo_core::Result<Vec<ResponderGuard>> {
    let list = {
        let inner = inner.clone();
        bus.respond(requests::AGENTS_LIST, move |_| list(inner.clone()))?
    };
    let create = {
        let inner = inner.clone();
        bus.respond(requests::AGENTS_CREATE, move |event| {
            create(inner.clone(), event)
        })?
    };
    let update = {
        let inner = inner.clone();
        bus.respond(requests::AGENTS_UPDATE, move |event| {
            update(inner.clone(), event)
        })?
    };
    let revoke = {
        let inner = inner.clone();
        bus.respond(requests::AGENTS_REVOKE, move |event| {
            revoke(inner.clone(), event)
        })?
    };
    Ok(vec![list, create, update, revoke])
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAgent {
    name: String,
    #[serde(default)]
    policy: AgentPolicy,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Named {
    name: String,
}

type Reply = magmobo_core::Result<serde_json::Value>;

fn runtime(inner: &Inner) -> Result<Arc<Runtime>, Refusal> {
    inner
        .runtime
        .load_full()
        .ok_or_else(|| Refusal::new(503, "MagGate is not running yet"))
}

async fn list(inner: Arc<Inner>) -> Reply {
    let rt = match runtime(&inner) {
        Ok(rt) => rt,
        Err(refusal) => return Ok(reply_refused(refusal)),
    };
    Ok(match AgentStore::new(rt.storage.clone()).list().await {
        Ok(agents) => reply_ok(agents),
        Err(e) => reply_refused(refusal(e)),
    })
}

async fn create(inner: Arc<Inner>, event: Arc<Event>) -> Reply {
    let new: NewAgent = match serde_json::from_value(event.payload.clone()) {
        Ok(new) => new,
        Err(e) => {
            return Ok(reply_refused(
                Refusal::new(400, format!("not an agent: {e}"))
                    .hint("send {\"name\": ..., \"policy\": {\"grants\": [...], \"approvals\": [...], \"rate\": {...}}}"),
            ));
        }
    };
    let rt = match runtime(&inner) {
        Ok(rt) => rt,
        Err(refusal) => return Ok(reply_refused(refusal)),
    };
    if let Err(refusal) = check_against_schema(&rt.catalog.load(), &new.policy) {
        return Ok(reply_refused(refusal));
    }
    let keys = KeyStore::new(rt.storage.clone());
    let created = AgentStore::new(rt.storage.clone())
        .create_with_key(&keys, &new.name, new.policy)
        .await;
    let (agent, key) = match created {
        Ok(created) => created,
        Err(e) => return Ok(reply_refused(refusal(e))),
    };
    reload(&inner, &rt).await;
    Ok(reply_ok(
        json!({ "agent": agent, "key": key.full, "key_id": key.key.id }),
    ))
}

async fn update(inner: Arc<Inner>, event: Arc<Event>) -> Reply {
    let changed: NewAgent = match serde_json::from_value(event.payload.clone()) {
        Ok(changed) => changed,
        Err(e) => {
            return Ok(reply_refused(
                Refusal::new(400, format!("not an agent policy: {e}")).hint(
                    "send {\"policy\": {\"grants\": [...], \"approvals\": [...], \"rate\": {...}}}",
                ),
            ));
        }
    };
    let rt = match runtime(&inner) {
        Ok(rt) => rt,
        Err(refusal) => return Ok(reply_refused(refusal)),
    };
    if let Err(refusal) = check_against_schema(&rt.catalog.load(), &changed.policy) {
        return Ok(reply_refused(refusal));
    }
    let store = AgentStore::new(rt.storage.clone());
    let updated = match store.set_policy(&changed.name, changed.policy).await {
        Ok(()) => store.get(&changed.name).await,
        Err(e) => Err(e),
    };
    let agent = match updated {
        Ok(agent) => agent,
        Err(e) => return Ok(reply_refused(refusal(e))),
    };
    reload(&inner, &rt).await;
    Ok(reply_ok(agent))
}

async fn revoke(inner: Arc<Inner>, event: Arc<Event>) -> Reply {
    let named: Named = match serde_json::from_value(event.payload.clone()) {
        Ok(named) => named,
        Err(e) => {
            return Ok(reply_refused(Refusal::new(
                400,
                format!("not an agent name: {e}"),
            )));
        }
    };
    let rt = match runtime(&inner) {
        Ok(rt) => rt,
        Err(refusal) => return Ok(reply_refused(refusal)),
    };
    let keys = KeyStore::new(rt.storage.clone());
    let revoked = AgentStore::new(rt.storage.clone())
        .revoke_with_key(&keys, &named.name)
        .await;
    let (agent, already) = match revoked {
        Ok(revoked) => revoked,
        Err(e) => return Ok(reply_refused(refusal(e))),
    };
    reload(&inner, &rt).await;
    Ok(reply_ok(json!({
        "name": agent.name,
        "key_id": agent.key_id,
        "already_revoked": already,
    })))
}

/// The gate sees the change at once rather than at its next refresh.
async fn reload(inner: &Inner, rt: &Runtime) {
    if let Err(error) = inner
        .agents
        .reload(&AgentStore::new(rt.storage.clone()))
        .await
    {
        tracing::warn!(target: "maggate", %error, "agents changed but could not be re-read; the next refresh will");
    }
}

fn refusal(e: AgentError) -> Refusal {
    match e {
        AgentError::Invalid(m) => Refusal::new(400, m),
        AgentError::NotFound(what) => Refusal::new(404, format!("{what} not found"))
            .hint("list the agents with GET /platform/v1/agents"),
        AgentError::Conflict(m) => Refusal::new(409, m),
        AgentError::Storage(e) => {
            tracing::warn!(target: "maggate", error = %e, "agents storage failed");
            Refusal::new(503, "the agents table could not be read or written")
                .hint("the database may be unreachable; try again")
        }
        AgentError::Json(e) => Refusal::new(500, format!("a stored agent is unreadable: {e}")),
    }
}

/// Every table, column and row condition of `policy` exists in the schema cache.
pub(crate) fn check_against_schema(catalog: &Catalog, policy: &AgentPolicy) -> Result<(), Refusal> {
    let schema_refusal = |e: crate::api_error::ApiError| {
        let refusal = Refusal::new(
            400,
            format!("the grant names {}", lowercase_first(&e.message)),
        );
        match e.hint {
            Some(hint) => refusal.hint(hint),
            None => refusal,
        }
    };
    for grant in &policy.grants {
        let table = catalog.table(&grant.table).map_err(schema_refusal)?;
        let columns = grant.columns.iter().flatten();
        let row_columns = grant.rows.iter().map(|r| &r.column);
        for column in columns.chain(row_columns) {
            expr::column(table, column).map_err(schema_refusal)?;
        }
    }
    for rule in &policy.approvals {
        if let Some(table) = &rule.table {
            catalog.table(table).map_err(schema_refusal)?;
        }
    }
    Ok(())
}

fn lowercase_first(message: &str) -> String {
    let mut chars = message.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}
