//! SQLGuard as a patrol agent: every client-controlled value of a request (query values and
//! the operands behind PostgREST operators, header values, JSON and form body values) goes
//! through [`SqlGuard::inspect`]; the most confident one becomes the finding.
//!
//! Protocol headers and credentials are not inspected: their values are not user input that
//! reaches SQL, and credentials must never appear as evidence.

use crate::agent::{Agent, Finding, RequestView, ThreatKind};
use crate::sqlguard::SqlGuard;

/// The agent's name.
pub const NAME: &str = "SQLGuard";

/// Values scoring below this are not reported at all (the policy's log band starts at 0.5).
pub const REPORT_FROM: f32 = 0.3;

/// PostgREST's filter operators, which come before the operand that reaches SQL.
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

/// Headers SQLGuard never reads: protocol data, and credentials (never evidence).
const SKIPPED_HEADERS: [&str; 22] = [
    "accept",
    "accept-encoding",
    "accept-language",
    "accept-profile",
    "apikey",
    "authorization",
    "cache-control",
    "connection",
    "content-length",
    "content-profile",
    "content-type",
    "cookie",
    "host",
    "if-match",
    "if-none-match",
    "origin",
    "pragma",
    "prefer",
    "proxy-authorization",
    "range",
    "upgrade",
    "user-agent",
];

/// The SQL-injection agent.
#[derive(Debug, Clone, Copy, Default)]
pub struct SqlGuardAgent {
    guard: SqlGuard,
}

impl SqlGuardAgent {
    /// The agent with SQLGuard's default layers.
    pub fn new() -> Self {
        Self::default()
    }

    /// The agent around a given guard (e.g. [`SqlGuard::layer1_only`]).
    pub fn with_guard(guard: SqlGuard) -> Self {
        SqlGuardAgent { guard }
    }

    fn judge(&self, value: &str, operand: bool) -> (f32, String) {
        let mut verdict = self.guard.inspect(value);
        if operand && let Some(inner) = postgrest_operand(value) {
            let inner = self.guard.inspect(inner);
            if inner.confidence > verdict.confidence {
                verdict = inner;
            }
        }
        (verdict.confidence, verdict.evidence)
    }
}

/// A query key or form field as the application sees it (`+` is a space, then
/// percent-decoding), for naming it in evidence.
fn decoded(text: &str) -> String {
    let spaced = text.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

fn skipped(name: &str) -> bool {
    SKIPPED_HEADERS.contains(&name) || name.starts_with("sec-") || name.starts_with("x-client-")
}

impl Agent for SqlGuardAgent {
    fn name(&self) -> &'static str {
        NAME
    }

    fn wants_body(&self) -> bool {
        true
    }

    fn inspect(&self, request: &RequestView<'_>, findings: &mut Vec<Finding>) {
        let mut worst: Option<(f32, String, String)> = None;
        let mut consider = |confidence: f32, evidence: String, location: &dyn Fn() -> String| {
            if confidence >= REPORT_FROM && worst.as_ref().is_none_or(|(c, _, _)| confidence > *c) {
                worst = Some((confidence, evidence, location()));
            }
        };
        for (key, value) in &request.query {
            let (confidence, evidence) = self.judge(value, true);
            consider(confidence, evidence, &|| {
                format!("query parameter '{}'", decoded(key))
            });
        }
        for (name, value) in request.headers {
            let name = name.as_str();
            if skipped(name) {
                continue;
            }
            let value = String::from_utf8_lossy(value.as_bytes());
            let (confidence, evidence) = self.judge(&value, false);
            consider(confidence, evidence, &|| format!("header '{name}'"));
        }
        for (field, value) in &request.body {
            let (confidence, evidence) = self.judge(value, false);
            consider(confidence, evidence, &|| {
                format!("body field '{}'", decoded(field))
            });
        }
        if let Some((confidence, evidence, location)) = worst {
            findings.push(
                Finding::new(NAME, ThreatKind::SqlInjection, confidence, evidence).at(location),
            );
        }
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
