//! # MagConsole
//!
//! The platform's management API under `/platform/v1`: API keys, agents, members and custom
//! roles, the schema and the audit trail, each endpoint guarded by a platform [permission].
//! Agents and the audit trail belong to MagGate and MagAudit: the console asks them over the
//! bus (see `delegated.rs`), so it depends on neither crate. Who holds what is
//! read from Storage on every request ([`PlatformStore`]), never from a claim inside a token,
//! so revoking a member's role takes effect on their next request.
//!
//! Every change, and every refusal of one, is published on the bus as `platform.action`
//! (`{"action", "by", "role", "target", "outcome", ...}`) so Sentinel's audit log can record it.
//!
//! Why an extension of its own: MagGate serves data, MagAuth serves end users; managing the
//! project is a third audience with its own rules, and an application that does not want a
//! management API over HTTP simply does not plug this in (the `magflock` CLI acts on the
//! database directly, as the operator at the console).
//!
//! [permission]: magmobo_core::roles::platform::Permission
//! [`PlatformStore`]: magmobo_core::roles::platform::store::PlatformStore

mod delegated;
mod error;
mod extension;
mod keys;
mod routes;

pub use error::ApiError;
pub use extension::{Console, ConsoleConfig, SchemaReload};
pub use keys::KeyRecord;
pub use magmobo_core::roles::platform;

/// The bus topic of every platform action.
pub const TOPIC: &str = magmobo_core::roles::platform::ACTION_TOPIC;
