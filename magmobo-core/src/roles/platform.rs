//! Platform roles: who may manage the project itself (API keys, agents, approvals, schema,
//! members, the audit trail), as opposed to database roles, which decide what a request may
//! read and write.
//!
//! Why a separate model: a database role travels inside a key or a token and is chosen by
//! whoever minted it, so it cannot say who may mint keys. A platform role is assigned
//! server-side to an identity's subject (an API key id, a MagAuth user id) in Storage
//! ([`store::PlatformStore`]) and looked up on every management request, so revoking it takes
//! effect on the next request on every instance. A `role` claim inside a token is never read
//! for this.
//!
//! The built-in roles nest, each one holding everything of the one below:
//!
//! | role | holds |
//! |---|---|
//! | `viewer` | every `*.read` permission |
//! | `developer` | viewer + `schema.write` + `agents.write` |
//! | `admin` | every permission |
//! | `owner` | every permission, and alone may make, demote or remove owners |
//!
//! Developers do not get `approvals.decide`: approvals are the human sign-off on what an agent
//! wants to do, and the people who build an agent should not be the ones approving it. Grant
//! it through a custom role (a named permission set, e.g. `approver`) where that suits.
//!
//! The `service_role` identity (kind [`IdentityKind::Service`]) counts as an owner: it already
//! bypasses every policy in the database, so nothing is gained by refusing it here.

pub mod requests;
pub mod store;

/// The bus topic of every privileged action taken through the platform API. The payload has
/// `action` (e.g. `keys.create`, `keys.revoke`, `members.grant`), `by` (the caller's subject),
/// `role`, `target`, `outcome` (`ok`, `denied`, `refused`) and `detail`. The PSU reloads its
/// API keys on a successful `keys.*` or `agents.*` action (an agent comes with its own key),
/// so a key created or revoked on one instance works (or stops working) on every instance
/// sharing the bus at once.
pub const ACTION_TOPIC: &str = "platform.action";

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::roles::auth::{Identity, IdentityKind};

/// One thing a platform member may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Permission {
    /// List API keys (never their secrets).
    KeysRead,
    /// Create and revoke API keys.
    KeysWrite,
    /// List agents and their grants.
    AgentsRead,
    /// Create, change and revoke agents.
    AgentsWrite,
    /// Approve or reject an agent's parked operations.
    ApprovalsDecide,
    /// Read the introspected schema.
    SchemaRead,
    /// Reload the schema, run migrations.
    SchemaWrite,
    /// List members and custom roles.
    MembersRead,
    /// Grant and revoke roles, define custom roles.
    MembersWrite,
    /// Read the audit trail.
    AuditRead,
}

impl Permission {
    /// Every permission, in a stable order.
    pub const ALL: [Permission; 10] = [
        Permission::KeysRead,
        Permission::KeysWrite,
        Permission::AgentsRead,
        Permission::AgentsWrite,
        Permission::ApprovalsDecide,
        Permission::SchemaRead,
        Permission::SchemaWrite,
        Permission::MembersRead,
        Permission::MembersWrite,
        Permission::AuditRead,
    ];

    /// The permission's name, e.g. `keys.write`.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::KeysRead => "keys.read",
            Permission::KeysWrite => "keys.write",
            Permission::AgentsRead => "agents.read",
            Permission::AgentsWrite => "agents.write",
            Permission::ApprovalsDecide => "approvals.decide",
            Permission::SchemaRead => "schema.read",
            Permission::SchemaWrite => "schema.write",
            Permission::MembersRead => "members.read",
            Permission::MembersWrite => "members.write",
            Permission::AuditRead => "audit.read",
        }
    }

    /// True for the `*.read` permissions.
    pub fn is_read(self) -> bool {
        self.as_str().ends_with(".read")
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Permission {
    type Err = PlatformError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Permission::ALL
            .into_iter()
            .find(|p| p.as_str() == s.trim())
            .ok_or_else(|| {
                PlatformError::Invalid(format!(
                    "unknown permission '{s}': use one of {}",
                    PermissionSet::all()
                ))
            })
    }
}

impl Serialize for Permission {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Permission {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A set of permissions (a bit set: copying and comparing cost nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PermissionSet(u16);

impl PermissionSet {
    /// No permission.
    pub const fn empty() -> Self {
        PermissionSet(0)
    }

    /// Every permission.
    pub fn all() -> Self {
        Permission::ALL.into_iter().collect()
    }

    /// Every `*.read` permission.
    pub fn reads() -> Self {
        Permission::ALL
            .into_iter()
            .filter(|p| p.is_read())
            .collect()
    }

    /// Whether `permission` is in the set.
    pub fn contains(self, permission: Permission) -> bool {
        self.0 & permission.bit() != 0
    }

    /// The set with `permission` added.
    pub fn with(self, permission: Permission) -> Self {
        PermissionSet(self.0 | permission.bit())
    }

    /// Whether every permission of `self` is also in `other`.
    pub fn is_subset(self, other: PermissionSet) -> bool {
        self.0 & !other.0 == 0
    }

    /// The permissions of `self` missing from `other`.
    pub fn missing_from(self, other: PermissionSet) -> PermissionSet {
        PermissionSet(self.0 & !other.0)
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The permissions, in [`Permission::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Permission> {
        Permission::ALL
            .into_iter()
            .filter(move |p| self.contains(*p))
    }

    /// Parses a comma-separated list (`keys.read, schema.read`); unknown names are an error.
    pub fn parse_list(list: &str) -> Result<Self, PlatformError> {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::parse::<Permission>)
            .collect()
    }
}

impl FromIterator<Permission> for PermissionSet {
    fn from_iter<I: IntoIterator<Item = Permission>>(iter: I) -> Self {
        iter.into_iter().fold(PermissionSet::empty(), Self::with)
    }
}

impl fmt::Display for PermissionSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = self.iter().map(Permission::as_str).collect();
        f.write_str(&names.join(", "))
    }
}

impl Serialize for PermissionSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for PermissionSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Vec::<Permission>::deserialize(d)?.into_iter().collect())
    }
}

/// The four roles every project has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BuiltinRole {
    /// Everything, including making and removing owners.
    Owner,
    /// Everything but making, demoting or removing owners.
    Admin,
    /// Schema and agents, and reading everything.
    Developer,
    /// Reading everything.
    Viewer,
}

impl BuiltinRole {
    /// The built-in roles, strongest first.
    pub const ALL: [BuiltinRole; 4] = [
        BuiltinRole::Owner,
        BuiltinRole::Admin,
        BuiltinRole::Developer,
        BuiltinRole::Viewer,
    ];

    /// The role's name.
    pub fn as_str(self) -> &'static str {
        match self {
            BuiltinRole::Owner => "owner",
            BuiltinRole::Admin => "admin",
            BuiltinRole::Developer => "developer",
            BuiltinRole::Viewer => "viewer",
        }
    }

    /// What the role may do.
    pub fn permissions(self) -> PermissionSet {
        match self {
            BuiltinRole::Owner | BuiltinRole::Admin => PermissionSet::all(),
            BuiltinRole::Developer => PermissionSet::reads()
                .with(Permission::SchemaWrite)
                .with(Permission::AgentsWrite),
            BuiltinRole::Viewer => PermissionSet::reads(),
        }
    }

    /// The built-in role named `name`, if any.
    pub fn named(name: &str) -> Option<BuiltinRole> {
        BuiltinRole::ALL.into_iter().find(|r| r.as_str() == name)
    }
}

/// A role as a member holds it: built-in or custom (a named permission set).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlatformRole {
    /// The role's name.
    pub name: String,
    /// What it may do.
    pub permissions: PermissionSet,
    /// True for owner, admin, developer and viewer.
    pub builtin: bool,
    /// What the role is for (custom roles).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl PlatformRole {
    /// A built-in role.
    pub fn builtin(role: BuiltinRole) -> Self {
        PlatformRole {
            name: role.as_str().to_owned(),
            permissions: role.permissions(),
            builtin: true,
            description: None,
        }
    }

    /// A custom role; its name is checked by [`validate_custom_role_name`].
    pub fn custom(
        name: &str,
        permissions: PermissionSet,
        description: Option<String>,
    ) -> Result<Self, PlatformError> {
        validate_custom_role_name(name)?;
        Ok(PlatformRole {
            name: name.to_owned(),
            permissions,
            builtin: false,
            description,
        })
    }

    /// Whether this is the owner role.
    pub fn is_owner(&self) -> bool {
        self.builtin && self.name == BuiltinRole::Owner.as_str()
    }
}

/// A custom role name: 1 to 64 lowercase letters, digits, `-` or `_`, and not a built-in name.
pub fn validate_custom_role_name(name: &str) -> Result<(), PlatformError> {
    if BuiltinRole::named(name).is_some() {
        return Err(PlatformError::Invalid(format!(
            "'{name}' is a built-in role and cannot be redefined"
        )));
    }
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(PlatformError::Invalid(format!(
            "role name '{name}' must be 1-64 lowercase letters, digits, '-' or '_'"
        )))
    }
}

/// The member subject an identity is looked up under: `key:<key id>` for an API key,
/// `user:<sub>` for a signed-in user. Anonymous callers and agents have none: an agent is
/// governed by its grants and can never hold a platform role, whatever its key says.
pub fn subject_of(identity: &Identity) -> Option<String> {
    if identity.role.starts_with("agent:") {
        return None;
    }
    let subject = identity.subject.as_deref().filter(|s| !s.is_empty())?;
    match identity.kind {
        IdentityKind::ApiKey => Some(format!("key:{subject}")),
        IdentityKind::User => Some(format!("user:{subject}")),
        IdentityKind::Anonymous | IdentityKind::Agent | IdentityKind::Service => None,
    }
}

/// Checks a member subject typed by a person: `key:<id>` or `user:<id>`, at most 200 bytes.
pub fn validate_subject(subject: &str) -> Result<(), PlatformError> {
    let rest = subject
        .strip_prefix("key:")
        .or_else(|| subject.strip_prefix("user:"));
    match rest {
        Some(id)
            if !id.is_empty()
                && subject.len() <= 200
                && id.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            Ok(())
        }
        _ => Err(PlatformError::Invalid(format!(
            "member subject '{subject}' must be 'key:<API key id>' or 'user:<user id>'"
        ))),
    }
}

/// What a caller may do on the platform, as resolved for one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Access {
    /// The member subject (`key:...`, `user:...`), or `service_role`.
    pub subject: String,
    /// The role held, if any.
    pub role: Option<String>,
    /// What the role allows.
    pub permissions: PermissionSet,
    /// Whether the caller is an owner.
    pub owner: bool,
}

impl Access {
    /// The access of the `service_role` identity: an owner.
    pub fn service() -> Self {
        Access {
            subject: "service_role".to_owned(),
            role: Some(BuiltinRole::Owner.as_str().to_owned()),
            permissions: PermissionSet::all(),
            owner: true,
        }
    }

    /// A subject holding no role.
    pub fn none(subject: impl Into<String>) -> Self {
        Access {
            subject: subject.into(),
            role: None,
            permissions: PermissionSet::empty(),
            owner: false,
        }
    }

    /// The access of a subject holding `role`.
    pub fn holding(subject: impl Into<String>, role: &PlatformRole) -> Self {
        Access {
            subject: subject.into(),
            role: Some(role.name.clone()),
            permissions: role.permissions,
            owner: role.is_owner(),
        }
    }

    /// `Ok` when the caller holds `permission`, else [`PlatformError::Forbidden`] naming it.
    pub fn require(&self, permission: Permission) -> Result<(), PlatformError> {
        if self.permissions.contains(permission) {
            Ok(())
        } else {
            Err(PlatformError::Forbidden {
                permission,
                message: format!(
                    "{} may not do this: it needs permission {permission}",
                    self.describe()
                ),
            })
        }
    }

    /// Checks that the caller may hand out `permissions` (to a member or a custom role): an
    /// admin cannot grant what it does not hold.
    pub fn may_grant(&self, permissions: PermissionSet) -> Result<(), PlatformError> {
        let missing = permissions.missing_from(self.permissions);
        match missing.iter().next() {
            None => Ok(()),
            Some(first) => Err(PlatformError::Forbidden {
                permission: first,
                message: format!(
                    "{} cannot grant permissions it does not hold: {missing}",
                    self.describe()
                ),
            }),
        }
    }

    fn describe(&self) -> String {
        match &self.role {
            Some(role) => format!("{} (role {role})", self.subject),
            None => format!("{} (no platform role)", self.subject),
        }
    }
}

/// Why a platform action was refused. Each maps to one HTTP status.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlatformError {
    /// The caller lacks a permission (403).
    #[error("{message}")]
    Forbidden {
        /// The first permission missing.
        permission: Permission,
        /// What was refused.
        message: String,
    },
    /// Only an owner may do this (403).
    #[error("only an owner may {0}")]
    OwnerOnly(String),
    /// The change would leave the project without an owner (409).
    #[error("{0} is the last owner: make another member owner first, so the project keeps one")]
    LastOwner(String),
    /// A value the caller sent is not acceptable (400).
    #[error("{0}")]
    Invalid(String),
    /// No such member or role (404).
    #[error("{0} not found")]
    NotFound(String),
    /// The change conflicts with the current state (409).
    #[error("{0}")]
    Conflict(String),
    /// The storage failed (500).
    #[error("platform storage failed: {0}")]
    Storage(#[from] crate::Error),
}

impl PlatformError {
    /// The HTTP status this refusal maps to.
    pub fn status(&self) -> u16 {
        match self {
            PlatformError::Forbidden { .. } | PlatformError::OwnerOnly(_) => 403,
            PlatformError::LastOwner(_) | PlatformError::Conflict(_) => 409,
            PlatformError::Invalid(_) => 400,
            PlatformError::NotFound(_) => 404,
            PlatformError::Storage(_) => 500,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(kind: IdentityKind, subject: Option<&str>, role: &str) -> Identity {
        Identity {
            kind,
            subject: subject.map(str::to_owned),
            role: role.to_owned(),
            claims: serde_json::json!({ "role": "owner" }),
        }
    }

    #[test]
    fn permission_names_round_trip_and_unknown_ones_list_the_valid_names() {
        for p in Permission::ALL {
            assert_eq!(p.as_str().parse::<Permission>().ok(), Some(p));
        }
        let err = "keys.delete"
            .parse::<Permission>()
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("keys.write") && e.contains("audit.read")));
        let set = PermissionSet::parse_list(" keys.read,schema.write ,").ok();
        assert_eq!(
            set,
            Some(
                PermissionSet::empty()
                    .with(Permission::KeysRead)
                    .with(Permission::SchemaWrite)
            )
        );
        let json = serde_json::to_value(set.unwrap_or_default()).ok();
        assert_eq!(json, Some(serde_json::json!(["keys.read", "schema.write"])));
        let back: Option<PermissionSet> =
            serde_json::from_value(serde_json::json!(["schema.write", "keys.read"])).ok();
        assert_eq!(back, set);
        assert!(serde_json::from_value::<PermissionSet>(serde_json::json!(["root"])).is_err());
    }

    #[test]
    fn built_in_roles_nest_from_viewer_to_owner() {
        let [owner, admin, developer, viewer] = BuiltinRole::ALL.map(BuiltinRole::permissions);
        assert!(viewer.is_subset(developer) && developer.is_subset(admin));
        assert_eq!(admin, owner);
        assert_eq!(owner, PermissionSet::all());
        assert!(viewer.iter().all(Permission::is_read));
        assert!(viewer.contains(Permission::AuditRead) && viewer.contains(Permission::KeysRead));
        for p in [
            Permission::SchemaRead,
            Permission::SchemaWrite,
            Permission::KeysRead,
            Permission::AgentsRead,
            Permission::AgentsWrite,
        ] {
            assert!(developer.contains(p), "developer should hold {p}");
        }
        for p in [
            Permission::KeysWrite,
            Permission::MembersWrite,
            Permission::ApprovalsDecide,
        ] {
            assert!(!developer.contains(p), "developer should not hold {p}");
        }
        assert!(PlatformRole::builtin(BuiltinRole::Owner).is_owner());
        assert!(!PlatformRole::builtin(BuiltinRole::Admin).is_owner());
    }

    #[test]
    fn custom_role_names_cannot_shadow_built_ins() {
        for bad in ["owner", "viewer", "", "Has Space", "UPPER", &"x".repeat(65)] {
            assert!(validate_custom_role_name(bad).is_err(), "{bad:?}");
        }
        for good in ["approver", "key-reader", "ops_2"] {
            assert!(validate_custom_role_name(good).is_ok(), "{good:?}");
        }
        let role = PlatformRole::custom("approver", PermissionSet::empty(), None);
        assert!(role.is_ok_and(|r| !r.is_owner() && !r.builtin));
    }

    #[test]
    fn subjects_come_from_the_psu_never_from_a_role_claim() {
        let key = identity(IdentityKind::ApiKey, Some("3f9c2a1b7d4e"), "anon");
        assert_eq!(subject_of(&key).as_deref(), Some("key:3f9c2a1b7d4e"));
        let user = identity(IdentityKind::User, Some("u-1"), "authenticated");
        assert_eq!(subject_of(&user).as_deref(), Some("user:u-1"));
        // Agents, anonymous callers and subjectless tokens hold no platform role.
        let agent_key = identity(IdentityKind::ApiKey, Some("abc"), "agent:bot");
        assert_eq!(subject_of(&agent_key), None);
        assert_eq!(
            subject_of(&identity(IdentityKind::Agent, Some("bot"), "x")),
            None
        );
        assert_eq!(subject_of(&Identity::anonymous("anon")), None);
        assert_eq!(
            subject_of(&identity(IdentityKind::User, None, "authenticated")),
            None
        );
        assert!(validate_subject("key:3f9c2a1b7d4e").is_ok());
        assert!(validate_subject("user:5b0c").is_ok());
        for bad in ["3f9c2a1b7d4e", "key:", "user:a b", "service_role"] {
            assert!(validate_subject(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn refusals_name_the_missing_permission() {
        let viewer = Access::holding("key:v", &PlatformRole::builtin(BuiltinRole::Viewer));
        assert!(viewer.require(Permission::KeysRead).is_ok());
        let err = viewer.require(Permission::KeysWrite).err();
        assert!(matches!(
            err,
            Some(PlatformError::Forbidden { permission: Permission::KeysWrite, ref message })
                if message.contains("keys.write") && message.contains("viewer")
        ));
        assert_eq!(err.map(|e| e.status()), Some(403));
        let developer = Access::holding("key:d", &PlatformRole::builtin(BuiltinRole::Developer));
        assert!(developer.may_grant(PermissionSet::reads()).is_ok());
        let err = developer
            .may_grant(PermissionSet::reads().with(Permission::ApprovalsDecide))
            .err();
        assert!(matches!(
            err,
            Some(PlatformError::Forbidden {
                permission: Permission::ApprovalsDecide,
                ..
            })
        ));
        assert!(Access::service().owner);
        assert!(
            Access::none("key:x")
                .require(Permission::SchemaRead)
                .is_err()
        );
    }
}
