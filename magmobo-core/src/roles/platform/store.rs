//! `_magmobo_platform_members` (subject -> role) and `_magmobo_platform_roles` (custom roles)
//! in the board's Storage, on every dialect, with the guard rails every caller gets: the last
//! owner cannot be removed or demoted, only owners make or touch owners, and nobody grants
//! (or takes away) more than they hold.
//!
//! Nothing is cached: a management request costs one indexed lookup, and in exchange a revoked
//! role is gone on the very next request on every instance. Changes that involve owners run in
//! one transaction that first locks the owner rows (`FOR UPDATE` on PostgreSQL and MariaDB;
//! SQLite has a single writer), so two owners demoting each other at once cannot both win.

use std::sync::Arc;

use serde::Serialize;

use super::{
    Access, BuiltinRole, Permission, PermissionSet, PlatformError, PlatformRole, subject_of,
    validate_subject,
};
use crate::roles::auth::{Identity, IdentityKind};
use crate::roles::storage::{Dialect, Migration, Row, Storage, Transaction, Value};

const MEMBERS_SQL: &str = "CREATE TABLE IF NOT EXISTS _magmobo_platform_members (\
    subject VARCHAR(200) PRIMARY KEY, role VARCHAR(64) NOT NULL, granted_by VARCHAR(200), \
    granted_at BIGINT NOT NULL)";

const ROLES_SQL: &str = "CREATE TABLE IF NOT EXISTS _magmobo_platform_roles (\
    name VARCHAR(64) PRIMARY KEY, permissions TEXT NOT NULL, description VARCHAR(500), \
    created_by VARCHAR(200), created_at BIGINT NOT NULL)";

const OWNER: &str = "owner";

type Result<T, E = PlatformError> = std::result::Result<T, E>;

/// One member: a subject holding a role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    /// `key:<API key id>` or `user:<user id>`.
    pub subject: String,
    /// The role's name.
    pub role: String,
    /// Who granted it.
    pub granted_by: Option<String>,
    /// Unix seconds.
    pub granted_at: i64,
}

/// Members and custom roles in the board's Storage.
#[derive(Clone)]
pub struct PlatformStore {
    storage: Arc<dyn Storage>,
}

impl std::fmt::Debug for PlatformStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PlatformStore")
    }
}

impl PlatformStore {
    /// A store on `storage`.
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        PlatformStore { storage }
    }

    /// Creates the tables if needed (recorded migrations, owner `magmobo-platform`).
    pub async fn install(&self) -> Result<()> {
        let migrations = [
            Migration::portable(1, "platform members", MEMBERS_SQL),
            Migration::portable(2, "platform custom roles", ROLES_SQL),
        ];
        self.storage
            .migrate("magmobo-platform", &migrations)
            .await?;
        Ok(())
    }

    fn ph(&self, n: usize) -> String {
        self.storage.dialect().placeholder(n)
    }

    /// What `identity` may do: `service_role` is an owner, agents and anonymous callers hold
    /// nothing, everyone else holds the role assigned to their subject (if any).
    pub async fn access(&self, identity: &Identity) -> Result<Access> {
        if identity.kind == IdentityKind::Service {
            return Ok(Access::service());
        }
        match subject_of(identity) {
            Some(subject) => self.access_of(&subject).await,
            None => Ok(Access::none(
                identity
                    .subject
                    .clone()
                    .unwrap_or_else(|| identity.role.clone()),
            )),
        }
    }

    /// What the member `subject` may do, looked up now.
    pub async fn access_of(&self, subject: &str) -> Result<Access> {
        let sql = format!(
            "SELECT m.role, r.permissions, r.description FROM _magmobo_platform_members m \
             LEFT JOIN _magmobo_platform_roles r ON r.name = m.role WHERE m.subject = {}",
            self.ph(1)
        );
        let rows = self
            .storage
            .query(&sql, &[Value::Text(subject.to_owned())])
            .await?;
        let Some(row) = rows.first() else {
            return Ok(Access::none(subject));
        };
        let role = role_from_row(row, "role")?;
        Ok(match role {
            Some(role) => Access::holding(subject, &role),
            // The custom role was deleted under the member: it grants nothing.
            None => Access {
                role: Some(row.get_text("role")?),
                ..Access::none(subject)
            },
        })
    }

    /// The role named `name`: built-in or custom.
    pub async fn role(&self, name: &str) -> Result<Option<PlatformRole>> {
        if let Some(builtin) = BuiltinRole::named(name) {
            return Ok(Some(PlatformRole::builtin(builtin)));
        }
        let sql = format!(
            "SELECT name AS role, permissions, description FROM _magmobo_platform_roles \
             WHERE name = {}",
            self.ph(1)
        );
        let rows = self
            .storage
            .query(&sql, &[Value::Text(name.to_owned())])
            .await?;
        match rows.first() {
            Some(row) => role_from_row(row, "role"),
            None => Ok(None),
        }
    }

    /// The built-in roles, then the custom ones by name.
    pub async fn roles(&self) -> Result<Vec<PlatformRole>> {
        let rows = self
            .storage
            .query(
                "SELECT name AS role, permissions, description FROM _magmobo_platform_roles \
                 ORDER BY name",
                &[],
            )
            .await?;
        let mut roles: Vec<_> = BuiltinRole::ALL
            .into_iter()
            .map(PlatformRole::builtin)
            .collect();
        for row in &rows {
            roles.extend(role_from_row(row, "role")?);
        }
        Ok(roles)
    }

    /// Every member, owners first, then by subject.
    pub async fn members(&self) -> Result<Vec<Member>> {
        let rows = self
            .storage
            .query(
                "SELECT subject, role, granted_by, granted_at FROM _magmobo_platform_members \
                 ORDER BY subject",
                &[],
            )
            .await?;
        let mut members = rows
            .iter()
            .map(member_from_row)
            .collect::<Result<Vec<_>>>()?;
        members.sort_by_key(|m| m.role != OWNER);
        Ok(members)
    }

    /// Gives `subject` the role `role` (replacing the one it held), as `by`.
    pub async fn grant(&self, by: &Access, subject: &str, role: &str) -> Result<Member> {
        // Two grants to a new subject at the same moment both see no row and both insert;
        // the loser finds the winner's row and goes again, as an update under the same rules.
        match self.try_grant(by, subject, role).await? {
            Some(member) => Ok(member),
            None => self.try_grant(by, subject, role).await?.ok_or_else(|| {
                PlatformError::Conflict(format!(
                    "'{subject}' was changed by other requests while this one ran: try again"
                ))
            }),
        }
    }

    /// One attempt at [`PlatformStore::grant`]; `None` when a concurrent grant inserted the
    /// subject between our read and our insert.
    async fn try_grant(&self, by: &Access, subject: &str, role: &str) -> Result<Option<Member>> {
        by.require(Permission::MembersWrite)?;
        validate_subject(subject)?;
        let granted = self
            .role(role)
            .await?
            .ok_or_else(|| PlatformError::NotFound(format!("role '{role}'")))?;
        if granted.is_owner() && !by.owner {
            return Err(PlatformError::OwnerOnly("make owners".into()));
        }
        by.may_grant(granted.permissions)?;
        let mut tx = self.storage.begin().await?;
        let owners = self.lock_owners(tx.as_mut()).await?;
        let current = self.current_role(tx.as_mut(), subject).await?;
        if let Some(current) = &current {
            self.may_change(by, subject, current, &owners, !granted.is_owner())
                .await?;
        }
        let member = Member {
            subject: subject.to_owned(),
            role: granted.name.clone(),
            granted_by: Some(by.subject.clone()),
            granted_at: now(),
        };
        let params = [
            Value::Text(member.role.clone()),
            Value::Text(by.subject.clone()),
            Value::Int(member.granted_at),
            Value::Text(member.subject.clone()),
        ];
        let sql = if current.is_some() {
            format!(
                "UPDATE _magmobo_platform_members SET role = {}, granted_by = {}, \
                 granted_at = {} WHERE subject = {}",
                self.ph(1),
                self.ph(2),
                self.ph(3),
                self.ph(4)
            )
        } else {
            format!(
                "INSERT INTO _magmobo_platform_members (role, granted_by, granted_at, subject) \
                 VALUES ({})",
                self.storage.dialect().placeholders(4)
            )
        };
        if let Err(err) = tx.execute(&sql, &params).await {
            let _ = tx.rollback().await;
            if current.is_none() && self.member_role(subject).await?.is_some() {
                return Ok(None);
            }
            return Err(err.into());
        }
        tx.commit().await?;
        Ok(Some(member))
    }

    /// The role `subject` holds now, outside any transaction.
    async fn member_role(&self, subject: &str) -> Result<Option<String>> {
        let rows = self
            .storage
            .query(&self.role_of_sql(), &[Value::Text(subject.to_owned())])
            .await?;
        first_role(&rows)
    }

    /// Takes `subject`'s role away, as `by`; returns what it held.
    pub async fn revoke(&self, by: &Access, subject: &str) -> Result<Member> {
        by.require(Permission::MembersWrite)?;
        let mut tx = self.storage.begin().await?;
        let owners = self.lock_owners(tx.as_mut()).await?;
        let sql = format!(
            "SELECT subject, role, granted_by, granted_at FROM _magmobo_platform_members \
             WHERE subject = {}",
            self.ph(1)
        );
        let rows = tx.query(&sql, &[Value::Text(subject.to_owned())]).await?;
        let member = match rows.first() {
            Some(row) => member_from_row(row)?,
            None => return Err(PlatformError::NotFound(format!("member '{subject}'"))),
        };
        self.may_change(by, subject, &member.role, &owners, true)
            .await?;
        let sql = format!(
            "DELETE FROM _magmobo_platform_members WHERE subject = {}",
            self.ph(1)
        );
        tx.execute(&sql, &[Value::Text(subject.to_owned())]).await?;
        tx.commit().await?;
        Ok(member)
    }

    /// Creates or replaces the custom role `role`, as `by`.
    pub async fn define_role(&self, by: &Access, role: &PlatformRole) -> Result<PlatformRole> {
        // As in `grant`: a concurrent definition of the same new name makes our insert fail;
        // the second attempt sees that role and updates it under the same rules.
        match self.try_define_role(by, role).await? {
            Some(defined) => Ok(defined),
            None => self.try_define_role(by, role).await?.ok_or_else(|| {
                PlatformError::Conflict(format!(
                    "role '{}' was changed by other requests while this one ran: try again",
                    role.name
                ))
            }),
        }
    }

    async fn try_define_role(
        &self,
        by: &Access,
        role: &PlatformRole,
    ) -> Result<Option<PlatformRole>> {
        by.require(Permission::MembersWrite)?;
        super::validate_custom_role_name(&role.name)?;
        by.may_grant(role.permissions)?;
        let existing = self.role(&role.name).await?;
        if let Some(existing) = &existing {
            // Narrowing a role takes permissions away from its holders: only someone who
            // holds them may do that.
            by.may_grant(existing.permissions)?;
        }
        let permissions = role.permissions.to_string();
        let description = role
            .description
            .clone()
            .map_or(Value::Null, |d| Value::Text(d.chars().take(500).collect()));
        if existing.is_some() {
            let sql = format!(
                "UPDATE _magmobo_platform_roles SET permissions = {}, description = {} \
                 WHERE name = {}",
                self.ph(1),
                self.ph(2),
                self.ph(3)
            );
            self.storage
                .execute(
                    &sql,
                    &[
                        Value::Text(permissions),
                        description,
                        Value::Text(role.name.clone()),
                    ],
                )
                .await?;
        } else {
            let sql = format!(
                "INSERT INTO _magmobo_platform_roles \
                 (name, permissions, description, created_by, created_at) VALUES ({})",
                self.storage.dialect().placeholders(5)
            );
            let inserted = self
                .storage
                .execute(
                    &sql,
                    &[
                        Value::Text(role.name.clone()),
                        Value::Text(permissions),
                        description,
                        Value::Text(by.subject.clone()),
                        Value::Int(now()),
                    ],
                )
                .await;
            if let Err(err) = inserted {
                if self.role(&role.name).await?.is_some() {
                    return Ok(None);
                }
                return Err(err.into());
            }
        }
        self.role(&role.name)
            .await?
            .map(Some)
            .ok_or_else(|| PlatformError::NotFound(format!("role '{}'", role.name)))
    }

    /// Deletes the custom role `name`, as `by`; refused while members hold it.
    pub async fn delete_role(&self, by: &Access, name: &str) -> Result<PlatformRole> {
        by.require(Permission::MembersWrite)?;
        if BuiltinRole::named(name).is_some() {
            return Err(PlatformError::Invalid(format!(
                "'{name}' is a built-in role and cannot be deleted"
            )));
        }
        let role = self
            .role(name)
            .await?
            .ok_or_else(|| PlatformError::NotFound(format!("role '{name}'")))?;
        by.may_grant(role.permissions)?;
        let sql = format!(
            "SELECT COUNT(*) AS n FROM _magmobo_platform_members WHERE role = {}",
            self.ph(1)
        );
        let rows = self
            .storage
            .query(&sql, &[Value::Text(name.to_owned())])
            .await?;
        let holders = rows
            .first()
            .map(|r| r.get_int("n"))
            .transpose()?
            .unwrap_or(0);
        if holders > 0 {
            return Err(PlatformError::Conflict(format!(
                "role '{name}' is held by {holders} member(s): give them another role first"
            )));
        }
        let sql = format!(
            "DELETE FROM _magmobo_platform_roles WHERE name = {}",
            self.ph(1)
        );
        self.storage
            .execute(&sql, &[Value::Text(name.to_owned())])
            .await?;
        Ok(role)
    }

    /// The owners' subjects, locked until the transaction ends where the dialect can.
    async fn lock_owners(&self, tx: &mut dyn Transaction) -> Result<Vec<String>> {
        let lock = match self.storage.dialect() {
            Dialect::Postgres | Dialect::MySql => " FOR UPDATE",
            Dialect::Sqlite => "",
        };
        let sql = format!(
            "SELECT subject FROM _magmobo_platform_members WHERE role = {}{lock}",
            self.ph(1)
        );
        let rows = tx.query(&sql, &[Value::Text(OWNER.to_owned())]).await?;
        rows.iter()
            .map(|r| r.get_text("subject").map_err(PlatformError::from))
            .collect()
    }

    async fn current_role(
        &self,
        tx: &mut dyn Transaction,
        subject: &str,
    ) -> Result<Option<String>> {
        let rows = tx
            .query(&self.role_of_sql(), &[Value::Text(subject.to_owned())])
            .await?;
        first_role(&rows)
    }

    /// The statement reading one subject's role.
    fn role_of_sql(&self) -> String {
        format!(
            "SELECT role FROM _magmobo_platform_members WHERE subject = {}",
            self.ph(1)
        )
    }

    /// Whether `by` may change or remove the member `subject` holding `current`; `loses_owner`
    /// when the change leaves it without the owner role.
    async fn may_change(
        &self,
        by: &Access,
        subject: &str,
        current: &str,
        owners: &[String],
        loses_owner: bool,
    ) -> Result<()> {
        if current == OWNER {
            if !by.owner {
                return Err(PlatformError::OwnerOnly("demote or remove an owner".into()));
            }
            if loses_owner && owners.len() <= 1 {
                return Err(PlatformError::LastOwner(subject.to_owned()));
            }
            return Ok(());
        }
        // Whoever holds less than a member cannot change that member.
        if let Some(role) = self.role(current).await? {
            by.may_grant(role.permissions)?;
        }
        Ok(())
    }
}

/// A role from a row with `permissions` and `description` columns and its name in `name_col`
/// (built-in names win; a custom role whose row is missing gives `None`).
fn role_from_row(row: &Row, name_col: &str) -> Result<Option<PlatformRole>> {
    let name = row.get_text(name_col)?;
    if let Some(builtin) = BuiltinRole::named(&name) {
        return Ok(Some(PlatformRole::builtin(builtin)));
    }
    let Some(list) = row.get_opt_text("permissions")? else {
        return Ok(None);
    };
    // Stored lists are read leniently: a name this build does not know grants nothing.
    let permissions: PermissionSet = list
        .split(',')
        .filter_map(|p| p.trim().parse::<Permission>().ok())
        .collect();
    Ok(Some(PlatformRole {
        name,
        permissions,
        builtin: false,
        description: row.get_opt_text("description")?,
    }))
}

fn first_role(rows: &[Row]) -> Result<Option<String>> {
    rows.first()
        .map(|r| r.get_text("role"))
        .transpose()
        .map_err(PlatformError::from)
}

fn member_from_row(row: &Row) -> Result<Member> {
    Ok(Member {
        subject: row.get_text("subject")?,
        role: row.get_text("role")?,
        granted_by: row.get_opt_text("granted_by")?,
        granted_at: row.get_int("granted_at")?,
    })
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
