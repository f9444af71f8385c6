//! Requests the platform API sends over the bus to the part that owns the data, and the
//! envelope of their replies.
//!
//! Why the bus and not a crate dependency: the audit trail belongs to MagAudit (in
//! `sentinel`) and agents belong to MagGate; the platform API (MagConsole) should neither
//! pull those crates in nor read their tables behind their backs. Each owner answers its
//! topics with [`crate::bus::Bus::respond`]; when no part on the board answers, the platform
//! API says the feature is not running here (503).
//!
//! A reply is `{"ok": <value>}`, or `{"refused": {"status", "message", "hint"}}` for a request
//! the owner will not carry out (a bad grant, an unknown agent), which the platform API turns
//! into that HTTP status.

use serde::{Deserialize, Serialize};

/// Reads audit entries. Payload: the filter (`kind` prefix, `identity`, `source`,
/// `since_ms`, `after_seq`, `limit`); reply: the entries, oldest first.
pub const AUDIT_QUERY: &str = "audit.query";
/// Re-computes the audit hash chain. Payload: `{}`; reply: `{"checked", "broken"}`.
pub const AUDIT_VERIFY: &str = "audit.verify";
/// Lists agents. Payload: `{}`; reply: the agents, revoked ones included, by name.
pub const AGENTS_LIST: &str = "agents.list";
/// Creates an agent and its API key. Payload: `{"name", "policy"}`; reply: `{"agent",
/// "key", "key_id"}` with the key shown this once.
pub const AGENTS_CREATE: &str = "agents.create";
/// Replaces an agent's policy (grants, approval rules, rate limit). Payload: `{"name",
/// "policy"}`; reply: the agent.
pub const AGENTS_UPDATE: &str = "agents.update";
/// Revokes an agent and its API key. Payload: `{"name"}`; reply: `{"name", "key_id",
/// "already_revoked"}`.
pub const AGENTS_REVOKE: &str = "agents.revoke";

/// Re-reads the API keys now (the PSU answers). Payload: `{}`; reply: the number of usable
/// keys. The platform API sends it after creating or revoking a key, so the key works (or
/// stops) on this instance before the answer; other instances follow the `platform.action`
/// event.
pub const KEYS_RELOAD: &str = "keys.reload";

/// Why the owner of the data would not carry a request out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// The HTTP status the platform API answers with (400, 404, 409...).
    pub status: u16,
    /// What was wrong.
    pub message: String,
    /// What to do about it.
    #[serde(default)]
    pub hint: Option<String>,
}

impl Refusal {
    /// A refusal with `status` and `message`.
    pub fn new(status: u16, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            message: message.into(),
            hint: None,
        }
    }

    /// Adds what to do about it.
    pub fn hint(mut self, hint: impl Into<String>) -> Refusal {
        self.hint = Some(hint.into());
        self
    }
}

/// The reply carrying `value`.
pub fn reply_ok(value: impl Serialize) -> serde_json::Value {
    match serde_json::to_value(value) {
        Ok(value) => serde_json::json!({ "ok": value }),
        Err(e) => reply_refused(Refusal::new(
            500,
            format!("the reply did not serialize: {e}"),
        )),
    }
}

/// The reply refusing the request.
pub fn reply_refused(refusal: Refusal) -> serde_json::Value {
    serde_json::json!({ "refused": refusal })
}

/// Opens a reply: the value, or the refusal (a reply of another shape is refused with 502).
pub fn open_reply(mut reply: serde_json::Value) -> Result<serde_json::Value, Refusal> {
    if let Some(value) = reply.get_mut("ok") {
        return Ok(value.take());
    }
    match reply.get("refused").cloned().map(serde_json::from_value) {
        Some(Ok(refusal)) => Err(refusal),
        _ => Err(Refusal::new(
            502,
            "the part answering this request sent a reply of an unknown shape",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_open_to_what_was_sent() {
        let reply = reply_ok(vec![1, 2]);
        assert_eq!(open_reply(reply), Ok(serde_json::json!([1, 2])));
        let refusal = Refusal::new(404, "agent 'x' not found").hint("list agents first");
        assert_eq!(open_reply(reply_refused(refusal.clone())), Err(refusal));
        assert_eq!(
            open_reply(serde_json::json!({"what": 1}))
                .unwrap_err()
                .status,
            502
        );
    }
}
