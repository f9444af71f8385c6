//! The tamper-evident audit log: security decisions and privileged actions appended to a table
//! in the board's Storage, each entry carrying the hash of the one before, so any edit,
//! deletion or reordering is found by [`AuditStore::verify`].
//!
//! [`AuditLog`] is the extension that feeds it: it subscribes to the bus (`threat.*`, `auth.*`,
//! `audit.*`, `extension.*` by default) and writes in batches from one task, so the request
//! path only ever publishes an event. Bus queues are bounded; when events are dropped before
//! reaching the writer, the writer records an `audit.overflow` entry with the count, so nothing
//! is lost silently. Several instances may write one table: appends take turns on a row lock
//! and chain onto the head they read under it.

mod store;
mod writer;

pub use store::{AuditEntry, AuditFilter, AuditStore, NewEntry, VerifyReport};
pub use writer::AuditLog;
