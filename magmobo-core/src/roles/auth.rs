//! PSU: the auth role. It turns a request into an identity or a rejection.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::part::Component;

/// What kind of caller an identity is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityKind {
    /// No credentials.
    Anonymous,
    /// An API key.
    ApiKey,
    /// A signed-in end user.
    User,
    /// A service account for an AI agent.
    Agent,
    /// A trusted service (e.g. `service_role`).
    Service,
}

/// Who is calling, as the PSU established it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    /// Kind of caller.
    pub kind: IdentityKind,
    /// Stable subject id (user id, key id...), if any.
    pub subject: Option<String>,
    /// Database role to run as.
    pub role: String,
    /// The claims (JWT claims, or synthesised for keys).
    pub claims: serde_json::Value,
}

impl Identity {
    /// The anonymous identity running as `role`.
    pub fn anonymous(role: impl Into<String>) -> Self {
        Identity {
            kind: IdentityKind::Anonymous,
            subject: None,
            role: role.into(),
            claims: serde_json::Value::Object(Default::default()),
        }
    }
}

/// Why a request was refused. Messages leak nothing about keys or tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct AuthRejection {
    /// HTTP status (401 or 403).
    pub status: u16,
    /// Stable machine-readable code.
    pub code: String,
    /// What is wrong and what to do.
    pub message: String,
}

/// The PSU slot's role.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is declared for the PSU slot but does not implement `Auth`",
    label = "the PSU slot takes a `Auth`",
    note = "implement `magmobo::roles::auth::Auth` (authenticate) for `{Self}` with `#[magmobo::async_trait]`, or choose another slot"
)]
#[async_trait]
pub trait Auth: Component {
    /// Establishes who sent the request.
    async fn authenticate(&self, request: &http::request::Parts)
    -> Result<Identity, AuthRejection>;
}
