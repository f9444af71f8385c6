//! SQLGuard on a board: a patrol agent that puts a request guard on the CPU, so every query
//! value of every request (native and axum routes alike) is inspected before routing.
//!
//! Response policy by confidence, as the vision sets it: from `log_at` (0.50) an event is
//! published on the bus (`threat.detected`); from `block_at` (0.85) the request is answered
//! 403 with a JSON error naming SQLGuard, unless the agent runs in dry-run mode. Headers and
//! bodies are not inspected yet (the guard hook sees the request before its body is read).

use std::sync::{Arc, Mutex};

use magmobo_core::axum::http::{self, StatusCode};
use magmobo_core::axum::response::{IntoResponse, Response};
use magmobo_core::board::BoardContext;
use magmobo_core::bus::Bus;
use magmobo_core::prelude::*;
use magmobo_core::roles::cpu::{RequestContext, RequestGuard};

use crate::sqlguard::SqlGuard;

/// Name on the POST screen, in events and in 403 answers.
pub const AGENT: &str = "SQLGuard";

/// When to log and when to block.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// Publish `threat.detected` from this confidence.
    pub log_at: f32,
    /// Answer 403 from this confidence.
    pub block_at: f32,
    /// Only log, never block.
    pub dry_run: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            log_at: 0.5,
            block_at: 0.85,
            dry_run: false,
        }
    }
}

/// The SQLGuard patrol agent.
#[derive(Default)]
pub struct SqlGuardPatrol {
    policy: Policy,
    cpu: Mutex<Option<Arc<dyn Cpu>>>,
}

impl std::fmt::Debug for SqlGuardPatrol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlGuardPatrol")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl SqlGuardPatrol {
    /// An agent with the given policy.
    pub fn new(policy: Policy) -> Self {
        SqlGuardPatrol {
            policy,
            cpu: Mutex::new(None),
        }
    }
}

struct QueryGuard {
    guard: SqlGuard,
    policy: Policy,
    bus: Bus,
}

const OPERATORS: [&str; 26] = [
    "eq",
    "neq",
    "gt",
    "gte",
    "lt",
    "lte",
    "like",
    "ilike",
    "match",
    "imatch",
    "in",
    "is",
    "isdistinct",
    "cs",
    "cd",
    "ov",
    "sl",
    "sr",
    "nxl",
    "nxr",
    "adj",
    "fts",
    "plfts",
    "phfts",
    "wfts",
    "not",
];

/// The operand of a PostgREST filter value (`eq.5` → `5`, `not.like(any).{a,b}` → `{a,b}`),
/// which is what reaches the database; `None` when the value has no operator prefix. Attack
/// shapes are judged on the operand too, since `eq.1 union select ...` only breaks out after
/// the operator.
pub fn postgrest_operand(value: &str) -> Option<&str> {
    let mut rest = value;
    let mut found = false;
    while let Some((head, tail)) = rest.split_once('.') {
        let name = head.split_once('(').map_or(head, |(n, _)| n);
        if !OPERATORS.contains(&name) {
            break;
        }
        found = true;
        rest = tail;
        if name != "not" {
            break;
        }
    }
    found.then_some(rest)
}

/// A query key as the application sees it (`+` is a space, then percent-decoding).
fn decode(text: &str) -> String {
    let spaced = text.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

impl RequestGuard for QueryGuard {
    fn check(&self, request: &http::request::Parts, context: &RequestContext) -> Option<Response> {
        let query = request.uri.query()?;
        let mut worst: Option<(f32, &str, String)> = None;
        for pair in query.split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let mut verdict = self.guard.inspect(value);
            if let Some(operand) = postgrest_operand(value) {
                let inner = self.guard.inspect(operand);
                if inner.confidence > verdict.confidence {
                    verdict = inner;
                }
            }
            if verdict.confidence >= self.policy.log_at
                && worst
                    .as_ref()
                    .is_none_or(|(c, _, _)| verdict.confidence > *c)
            {
                worst = Some((verdict.confidence, key, verdict.evidence));
            }
        }
        let (confidence, key, evidence) = worst?;
        let parameter = decode(key);
        let block = confidence >= self.policy.block_at && !self.policy.dry_run;
        let action = match (block, confidence >= self.policy.block_at) {
            (true, _) => "blocked",
            (false, true) => "logged (dry run)",
            (false, false) => "logged",
        };
        let event = serde_json::json!({
            "agent": AGENT,
            "kind": "sql_injection",
            "confidence": confidence,
            "evidence": evidence,
            "parameter": parameter,
            "method": request.method.as_str(),
            "path": request.uri.path(),
            "source": context.peer.ip().to_string(),
            "action": action,
        });
        let _ = self.bus.publish("threat.detected", AGENT, event);
        if !block {
            return None;
        }
        let body = serde_json::json!({
            "code": "MM-SENTINEL-SQLGUARD",
            "message": format!("Blocked by SQLGuard: SQL injection detected in query parameter '{parameter}'"),
            "details": evidence,
            "hint": "If this value is legitimate, send it in a JSON body or ask the operator to review the SQLGuard policy",
        });
        Some((StatusCode::FORBIDDEN, magmobo_core::axum::Json(body)).into_response())
    }
}

#[async_trait]
impl Patrol for SqlGuardPatrol {
    fn name(&self) -> &str {
        AGENT
    }

    async fn start(&self, board: &BoardContext) -> Result<()> {
        let cpu = board.cpu().ok_or_else(|| {
            Error::part(
                AGENT,
                "SQLGuard inspects HTTP requests, but the CPU slot is empty",
            )
        })?;
        let guard = QueryGuard {
            guard: SqlGuard::new(),
            policy: self.policy,
            bus: board.bus().clone(),
        };
        cpu.routes().guard(AGENT, guard)?;
        *self.cpu.lock().unwrap_or_else(|e| e.into_inner()) = Some(cpu);
        Ok(())
    }

    async fn stop(&self) -> Result<()> {
        if let Some(cpu) = self.cpu.lock().unwrap_or_else(|e| e.into_inner()).take() {
            cpu.routes().unmount(AGENT);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operands_are_found_behind_postgrest_operators() {
        assert_eq!(postgrest_operand("eq.5"), Some("5"));
        assert_eq!(postgrest_operand("not.like(any).{a*,b*}"), Some("{a*,b*}"));
        assert_eq!(postgrest_operand("fts(english).cat"), Some("cat"));
        assert_eq!(
            postgrest_operand("eq.1 union select 1"),
            Some("1 union select 1")
        );
        assert_eq!(postgrest_operand("hello.world"), None);
        assert_eq!(postgrest_operand("5"), None);
        let guard = SqlGuard::new();
        let operand = postgrest_operand("eq.1 union select password from users").unwrap_or("");
        assert!(guard.inspect(operand).attack);
        assert!(
            !guard
                .inspect(postgrest_operand("eq.O'Brien").unwrap_or(""))
                .attack
        );
    }
}
