//! Endpoints whose data another part owns: agents (MagGate) and the audit trail (MagAudit).
//! The console checks the caller's platform permission, then asks the owner over the bus
//! (`magmobo_core::roles::platform::requests`); when no part on this board answers, the
//! feature is not running here and the answer is 503 saying how to turn it on.

use std::time::Duration;

use magmobo_core::axum::body::Body;
use magmobo_core::axum::extract::{Path, Query};
use magmobo_core::axum::response::Response;
use magmobo_core::roles::platform::Permission;
use magmobo_core::roles::platform::requests::{self, open_reply};
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use crate::error::{ApiError, ApiResult};
use crate::routes::{Caller, body, ok};

/// How long the owner of the data has to answer (an audit verify reads the whole chain).
const ANSWER_WITHIN: Duration = Duration::from_secs(30);

const NO_AGENTS: &str = "agents are not available on this server";
const NO_AGENTS_HINT: &str = "agents are managed by MagGate with `GateConfig::agents` set";
const NO_AUDIT: &str = "the audit log is not running on this server";
const NO_AUDIT_HINT: &str = "plug in MagAudit (`sentinel::audit::AuditLog`) to record and read it";

/// Asks the owner of `topic` and opens its reply; refusals keep their status.
async fn ask(
    c: &Caller,
    topic: &str,
    payload: Json,
    (unavailable, hint): (&str, &str),
) -> ApiResult<Json> {
    let Some(bus) = &c.svc.bus else {
        return Err(ApiError::new(503, unavailable).hint(hint));
    };
    match bus.request(topic, payload, ANSWER_WITHIN).await {
        Ok(reply) => open_reply(reply).map_err(|refusal| {
            let e = ApiError::new(refusal.status, refusal.message);
            match refusal.hint {
                Some(h) => e.hint(h),
                None => e,
            }
        }),
        Err(magmobo_core::Error::NoResponder { .. }) => {
            Err(ApiError::new(503, unavailable).hint(hint))
        }
        Err(magmobo_core::Error::BusTimeout { .. }) => Err(ApiError::new(
            504,
            format!(
                "'{topic}' was not answered within {} s",
                ANSWER_WITHIN.as_secs()
            ),
        )
        .hint("the database may be slow or unreachable; try again")),
        Err(other) => Err(ApiError::storage(other)),
    }
}

/// Has this instance's PSU re-read its keys before the answer goes out, so a key just made
/// works (and one just revoked stops) on the next request. Best effort: a PSU that keeps no
/// key table does not answer, and other instances follow the `platform.action` event.
pub(crate) async fn reload_keys(c: &Caller) {
    let Some(bus) = &c.svc.bus else { return };
    if let Err(error) = bus
        .request(requests::KEYS_RELOAD, json!({}), Duration::from_secs(5))
        .await
    {
        tracing::debug!(target: "magconsole", %error, "the PSU did not re-read its keys");
    }
}

// --- agents ---

pub(crate) async fn list_agents(c: Caller) -> ApiResult<Response> {
    c.need(Permission::AgentsRead, "agents.list", json!(null))?;
    let list = ask(
        &c,
        requests::AGENTS_LIST,
        json!({}),
        (NO_AGENTS, NO_AGENTS_HINT),
    )
    .await?;
    Ok(ok(200, list))
}

pub(crate) async fn create_agent(c: Caller, raw: Body) -> ApiResult<Response> {
    c.need(Permission::AgentsWrite, "agents.create", json!(null))?;
    let new: Json = body(raw).await?;
    let target = json!({ "name": new.get("name") });
    match ask(
        &c,
        requests::AGENTS_CREATE,
        new,
        (NO_AGENTS, NO_AGENTS_HINT),
    )
    .await
    {
        Ok(created) => {
            reload_keys(&c).await;
            let target = json!({ "name": target["name"], "key_id": created.get("key_id") });
            c.publish("agents.create", target, "ok", None);
            Ok(ok(201, created))
        }
        Err(e) => Err(published_refusal(&c, "agents.create", target, e)),
    }
}

pub(crate) async fn update_agent(
    Path(name): Path<String>,
    c: Caller,
    raw: Body,
) -> ApiResult<Response> {
    let target = json!({ "name": name });
    c.need(Permission::AgentsWrite, "agents.update", target.clone())?;
    let mut changed: Json = body(raw).await?;
    let Some(fields) = changed.as_object_mut() else {
        return Err(ApiError::new(400, "send {\"policy\": {...}}"));
    };
    if fields.keys().any(|k| k != "policy") {
        return Err(ApiError::new(400, "only the policy of an agent can change")
            .hint("send {\"policy\": {...}}; the name and key stay; revoke and create to rename"));
    }
    fields.insert("name".into(), json!(name));
    match ask(
        &c,
        requests::AGENTS_UPDATE,
        changed,
        (NO_AGENTS, NO_AGENTS_HINT),
    )
    .await
    {
        Ok(agent) => {
            c.publish("agents.update", target, "ok", None);
            Ok(ok(200, agent))
        }
        Err(e) => Err(published_refusal(&c, "agents.update", target, e)),
    }
}

pub(crate) async fn revoke_agent(Path(name): Path<String>, c: Caller) -> ApiResult<Response> {
    let target = json!({ "name": name });
    c.need(Permission::AgentsWrite, "agents.revoke", target.clone())?;
    let payload = json!({ "name": name });
    match ask(
        &c,
        requests::AGENTS_REVOKE,
        payload,
        (NO_AGENTS, NO_AGENTS_HINT),
    )
    .await
    {
        Ok(mut revoked) => {
            reload_keys(&c).await;
            c.publish(
                "agents.revoke",
                json!({ "name": name, "key_id": revoked.get("key_id") }),
                "ok",
                None,
            );
            revoked["revoked"] = json!(true);
            Ok(ok(200, revoked))
        }
        Err(e) => Err(published_refusal(&c, "agents.revoke", target, e)),
    }
}

/// A change the owner refused (4xx) is published as refused; failures are not the caller's.
fn published_refusal(c: &Caller, action: &str, target: Json, e: ApiError) -> ApiError {
    if (400..500).contains(&e.status) {
        c.publish(action, target, "refused", Some(&e.message));
    }
    e
}

// --- audit ---

/// The audit query's URL parameters, as MagAudit's filter takes them.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct AuditParams {
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    identity: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    since_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    after_seq: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<u32>,
}

pub(crate) async fn read_audit(c: Caller, uri: http::Uri) -> ApiResult<Response> {
    c.need(Permission::AuditRead, "audit.read", json!(null))?;
    let Query(params) = Query::<AuditParams>::try_from_uri(&uri).map_err(|e| {
        ApiError::new(400, format!("bad audit query: {}", e.body_text())).hint(
            "filter with kind (a prefix), identity, source, since_ms, after_seq and limit (1-1000)",
        )
    })?;
    let entries = ask(
        &c,
        requests::AUDIT_QUERY,
        json!(params),
        (NO_AUDIT, NO_AUDIT_HINT),
    )
    .await?;
    Ok(ok(200, entries))
}

pub(crate) async fn verify_audit(c: Caller) -> ApiResult<Response> {
    c.need(Permission::AuditRead, "audit.verify", json!(null))?;
    let report = ask(
        &c,
        requests::AUDIT_VERIFY,
        json!({}),
        (NO_AUDIT, NO_AUDIT_HINT),
    )
    .await?;
    Ok(ok(200, report))
}
