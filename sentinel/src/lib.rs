//! Sentinel: the security patrol of MagMoBo.
//!
//! # What exists
//!
//! * [`sqlguard`]: **SQLGuard layer 1**, a deterministic SQL-injection check for one untrusted
//!   value: [`sqlguard::normalize`] (decoding and folding), [`sqlguard::lexer`] (a SQL lexer
//!   that reads the value as if pasted bare, inside `'...'` and inside `"..."`), and
//!   [`sqlguard::fingerprint`] (breakout gate, token-shape fingerprints, high-signal rules).
//!   Entry point: [`SqlGuard::inspect`] returning a [`Verdict`].
//! * [`corpus`]: a seeded generator of labelled attack payloads (techniques × dialects ×
//!   obfuscations) and realistic benign values, with a duplicate-free train/held-out split,
//!   used to measure layer 1 and to train the later layer. The `sentinel-corpus` binary
//!   writes it as JSONL.
//! * [`patrol`]: [`SqlGuardPatrol`], SQLGuard as a MagMoBo patrol agent: a request guard on the
//!   CPU inspects every query value before routing, publishes `threat.detected` from
//!   confidence 0.5 and answers 403 from 0.85 (configurable, with a dry-run mode).
//! * [`audit`]: the tamper-evident audit log: [`AuditLog`] (an extension writing bus events
//!   about threats, auth and extensions to a hash-chained table in batches) and
//!   [`AuditStore`] (append, query, verify).
//!
//! # Not built yet
//!
//! * The general patrol-agent API of issue 5 (request view with headers and JSON body values,
//!   verdict hooks with default no-op bodies); today the guard sees query values only.
//! * Other patrol agents (XSS, path traversal, rate abuse...).
//! * SQLGuard layer 2: the candle-based classifier meant to raise detection on what layer 1
//!   lets through.
//! * The threat analyzer that correlates verdicts across requests.

pub mod audit;
pub mod corpus;
pub mod patrol;
pub mod sqlguard;

pub use audit::{AuditLog, AuditStore};
pub use patrol::{Policy, SqlGuardPatrol, postgrest_operand};
pub use sqlguard::{SqlGuard, Verdict};
