//! Code-declared access policies: row-level security for storages that have none
//! (MariaDB, SQLite), usable on PostgreSQL too.
//!
//! PostgreSQL applies its own `CREATE POLICY` rules once MagGate has switched to the caller's
//! role; MariaDB and SQLite cannot, so the same application would leak rows there. A
//! [`Policies`] value declares, per table, what each operation may touch, and MagGate
//! enforces it on the parsed request before any SQL is built:
//!
//! - a [`Command`] may be denied outright (like a missing `GRANT`: 401/403 `42501`);
//! - a [`RowFilter`] (column = claim) is AND-ed into the `WHERE` of reads, updates and
//!   deletes as an ordinary filter, so its value is a bind parameter like any other; rows
//!   written by an insert or an update must satisfy it, else `42501` "new row violates
//!   row-level security policy", as PostgreSQL answers;
//! - read and write column lists (like column `GRANT`s): a column outside them in
//!   `select`, a filter, `order`, `columns=` or the body is refused naming the column, and
//!   `select=*` means the readable columns.
//!
//! Roles named with [`Policies::bypass`] skip every policy (PostgreSQL's `BYPASSRLS`);
//! a [`TablePolicy::to_roles`] policy applies to the listed roles only and denies the
//! table to every other role. Tables without a policy are open.
//!
//! ```
//! use maggate::policy::{Command, Policies, RowFilter, TablePolicy};
//!
//! let policies = Policies::new().bypass("service_role").table(
//!     "todos",
//!     TablePolicy::new()
//!         .rows(Command::ALL, RowFilter::claim("owner_id", "sub"))
//!         .deny(&[Command::Delete])
//!         .read_columns(["id", "title", "done", "owner_id"])
//!         .write_columns(["title", "done", "owner_id"]),
//! );
//! assert!(!policies.is_empty());
//! ```
//!
//! Limits: RPC is not covered (functions are PostgreSQL-only, where the database's own
//! policies apply); an embedded resource must be named by its table (not by a foreign key)
//! when the caller is subject to any policy; upserts that merge duplicates are refused on
//! tables whose updates are filtered or denied, since the row met may belong to someone
//! else.

use std::borrow::Cow;
use std::collections::BTreeMap;

use magmobo_core::roles::schema::Table;

use crate::api_error::{ApiError, ApiResult};
use crate::request::{
    ApiQuery, Field, Filter, LogicTree, Operation, QuantOperator, Scoped, SelectField, SelectItem,
};
use crate::sql::Catalog;

/// The operations a policy distinguishes, as in `CREATE POLICY ... FOR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Command {
    /// GET and HEAD, and the rows a write returns.
    Select,
    /// POST and PUT.
    Insert,
    /// PATCH (and the update half of an upsert).
    Update,
    /// DELETE.
    Delete,
}

impl Command {
    /// Every command.
    pub const ALL: &'static [Command] = &[
        Command::Select,
        Command::Insert,
        Command::Update,
        Command::Delete,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Command::Select => "SELECT",
            Command::Insert => "INSERT",
            Command::Update => "UPDATE",
            Command::Delete => "DELETE",
        }
    }
}

/// A row condition over the caller's claims: `column` equals the claim at `claim` (a dotted
/// path into the claims object, e.g. `sub` or `app_metadata.tenant`). When the claim is an
/// array, the column may equal any of its elements; when it is missing or null, no row
/// matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowFilter {
    column: String,
    claim: String,
}

impl RowFilter {
    /// `column = claims.<claim>`.
    pub fn claim(column: impl Into<String>, claim: impl Into<String>) -> RowFilter {
        RowFilter {
            column: column.into(),
            claim: claim.into(),
        }
    }

    /// The values the column may take for `claims`: empty when the claim is absent.
    fn allowed(&self, claims: &serde_json::Value) -> Vec<String> {
        let mut at = claims;
        for key in self.claim.split('.') {
            match at.get(key) {
                Some(v) => at = v,
                None => return Vec::new(),
            }
        }
        match at {
            serde_json::Value::Array(items) => items.iter().filter_map(scalar_text).collect(),
            other => scalar_text(other).into_iter().collect(),
        }
    }
}

fn scalar_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// What one command may do on a table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum Access {
    /// Every row.
    #[default]
    All,
    /// Nothing: refused with `42501`.
    Denied,
    /// Rows satisfying every filter.
    Rows(Vec<RowFilter>),
}

/// The policy of one table. [`TablePolicy::new`] allows everything; each builder call
/// narrows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TablePolicy {
    roles: Option<Vec<String>>,
    access: BTreeMap<Command, Access>,
    read_columns: Option<Vec<String>>,
    write_columns: Option<Vec<String>>,
}

impl TablePolicy {
    /// A policy that allows every command on every row and column.
    pub fn new() -> TablePolicy {
        TablePolicy::default()
    }

    /// Applies this policy to `roles` only; every other role (bypassing ones aside) is
    /// denied the table, as PostgreSQL denies rows no policy grants.
    pub fn to_roles<I, S>(mut self, roles: I) -> TablePolicy
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.roles = Some(roles.into_iter().map(Into::into).collect());
        self
    }

    /// Restricts `commands` to rows satisfying `filter` (AND-ed with earlier filters).
    pub fn rows(mut self, commands: &[Command], filter: RowFilter) -> TablePolicy {
        for c in commands {
            let access = self.access.entry(*c).or_default();
            match access {
                Access::All => *access = Access::Rows(vec![filter.clone()]),
                Access::Rows(filters) => filters.push(filter.clone()),
                Access::Denied => {}
            }
        }
        self
    }

    /// Refuses `commands` on this table.
    pub fn deny(mut self, commands: &[Command]) -> TablePolicy {
        for c in commands {
            self.access.insert(*c, Access::Denied);
        }
        self
    }

    /// The only columns that may be selected, filtered or ordered on.
    pub fn read_columns<I, S>(mut self, columns: I) -> TablePolicy
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.read_columns = Some(columns.into_iter().map(Into::into).collect());
        self
    }

    /// The only columns an insert or update may set.
    pub fn write_columns<I, S>(mut self, columns: I) -> TablePolicy
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.write_columns = Some(columns.into_iter().map(Into::into).collect());
        self
    }

    fn access(&self, command: Command) -> &Access {
        static ALL: Access = Access::All;
        self.access.get(&command).unwrap_or(&ALL)
    }
}

/// Every table's policy, and the roles that bypass them. Empty by default: MagGate then
/// enforces nothing itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policies {
    tables: BTreeMap<String, TablePolicy>,
    bypass: Vec<String>,
}

impl Policies {
    /// No policies.
    pub fn new() -> Policies {
        Policies::default()
    }

    /// Sets `table`'s policy (by table or view name, as in the URL).
    pub fn table(mut self, table: impl Into<String>, policy: TablePolicy) -> Policies {
        self.tables.insert(table.into(), policy);
        self
    }

    /// Lets `role` skip every policy, like PostgreSQL's `BYPASSRLS` (e.g. `service_role`).
    pub fn bypass(mut self, role: impl Into<String>) -> Policies {
        self.bypass.push(role.into());
        self
    }

    /// Whether no table has a policy.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }

    /// The guard for one request by `role` with `claims`; `None` when nothing applies.
    pub(crate) fn guard<'p>(
        &'p self,
        role: &str,
        claims: &'p serde_json::Value,
        anonymous: bool,
    ) -> Option<Guard<'p>> {
        if self.tables.is_empty() || self.bypass.iter().any(|r| r == role) {
            return None;
        }
        Some(Guard {
            policies: self,
            role: role.to_owned(),
            claims,
            anonymous,
        })
    }
}

/// The policies as they apply to one caller.
pub(crate) struct Guard<'p> {
    policies: &'p Policies,
    role: String,
    claims: &'p serde_json::Value,
    anonymous: bool,
}

/// An embedding level reached while walking `select`: the names a scoped parameter may use
/// for it, and its table.
struct Level<'t> {
    path: Vec<(String, Option<String>)>,
    table: &'t Table,
}

impl Guard<'_> {
    /// PostgreSQL's `insufficient_privilege`, with PostgREST's status: 401 for the anonymous
    /// role, 403 otherwise.
    pub(crate) fn denied(&self, message: String) -> ApiError {
        ApiError::new(if self.anonymous { 401 } else { 403 }, "42501", message)
    }

    /// The policy that applies to `table`, or `Denied` when the table has a policy for other
    /// roles only.
    fn policy(&self, table: &str) -> Option<Result<&TablePolicy, ()>> {
        let p = self.policies.tables.get(table)?;
        match &p.roles {
            Some(roles) if !roles.contains(&self.role) => Some(Err(())),
            _ => Some(Ok(p)),
        }
    }

    fn table_denied(&self, table: &str) -> ApiError {
        self.denied(format!("permission denied for table {table}"))
    }

    /// The row filters `command` adds on `table`; an error when it is denied.
    fn filters(&self, table: &str, command: Command) -> ApiResult<Vec<&RowFilter>> {
        match self.policy(table) {
            None => Ok(Vec::new()),
            Some(Err(())) => Err(self.table_denied(table)),
            Some(Ok(p)) => match p.access(command) {
                Access::All => Ok(Vec::new()),
                Access::Denied => Err(self.table_denied(table)),
                Access::Rows(f) => Ok(f.iter().collect()),
            },
        }
    }

    fn check_column(&self, table: &str, column: &str, write: bool) -> ApiResult<()> {
        let Some(Ok(p)) = self.policy(table) else {
            return Ok(());
        };
        let allowed = if write {
            &p.write_columns
        } else {
            &p.read_columns
        };
        match allowed {
            Some(cols) if !cols.iter().any(|c| c == column) => Err(self
                .denied(format!(
                    "permission denied for column {column} of table {table}"
                ))
                .hint(if write {
                    "The column is not in this table's writable columns."
                } else {
                    "The column is not in this table's readable columns."
                })),
            _ => Ok(()),
        }
    }

    /// Checks and rewrites a query for `command` on `table`: columns in `select` (and `*`
    /// narrowed to the readable ones), filters, logic trees and `order`; row filters added
    /// at every level they apply to (`select`'s embedded resources included for reads).
    pub(crate) fn apply(
        &self,
        catalog: &Catalog,
        table: &Table,
        command: Command,
        query: &mut ApiQuery<'_>,
    ) -> ApiResult<()> {
        let mut levels = vec![Level {
            path: Vec::new(),
            table,
        }];
        self.walk_select(catalog, table, &mut query.select, &[], &mut levels)?;
        for f in &query.filters {
            if let Some(level) = find(&levels, &f.path) {
                self.check_column(&level.table.name, &f.item.field.name, false)?;
            }
        }
        for l in &query.logic {
            if let Some(level) = find(&levels, &l.path) {
                self.check_tree(&level.table.name, &l.item)?;
            }
        }
        for o in &query.order {
            let Some(level) = find(&levels, &o.path) else {
                continue;
            };
            for term in &o.item {
                match &term.relation {
                    Some(rel) => match catalog.table(rel) {
                        Ok(t) => self.check_column(&t.name, &term.field.name, false)?,
                        Err(_) => self.unresolved(rel)?,
                    },
                    None => self.check_column(&level.table.name, &term.field.name, false)?,
                }
            }
        }
        if let Some(cols) = &query.columns {
            for c in cols {
                self.check_column(&table.name, c, true)?;
            }
        }
        // The root's rows follow the command; embedded ones are always read.
        for level in &levels {
            let command = if level.path.is_empty() {
                command
            } else {
                Command::Select
            };
            if command == Command::Insert {
                // An insert has no WHERE: its rows are checked in `check_rows`.
                continue;
            }
            let path: Vec<Cow<'_, str>> = level
                .path
                .iter()
                .map(|(name, _)| Cow::Owned(name.clone()))
                .collect();
            for filter in self.filters(&level.table.name, command)? {
                push_filter(query, &path, filter, self.claims);
            }
        }
        Ok(())
    }

    fn unresolved(&self, name: &str) -> ApiResult<()> {
        Err(self
            .denied(format!(
                "permission denied: '{name}' does not name a table, so its policy cannot be applied"
            ))
            .hint("Embed the resource by its table name, with !hint for the foreign key."))
    }

    fn check_tree(&self, table: &str, tree: &LogicTree<'_>) -> ApiResult<()> {
        match tree {
            LogicTree::Stmnt(f) => self.check_column(table, &f.field.name, false),
            LogicTree::Expr { children, .. } => {
                children.iter().try_for_each(|c| self.check_tree(table, c))
            }
        }
    }

    fn walk_select<'t>(
        &self,
        catalog: &'t Catalog,
        table: &'t Table,
        items: &mut Vec<SelectItem<'_>>,
        path: &[(String, Option<String>)],
        levels: &mut Vec<Level<'t>>,
    ) -> ApiResult<()> {
        let readable = match self.policy(&table.name) {
            Some(Ok(p)) => p.read_columns.clone(),
            _ => None,
        };
        if let Some(readable) = &readable
            && items.iter().any(|i| matches!(i, SelectItem::Star))
        {
            // `*` means what this caller may read, as Hasura does with column permissions.
            let mut expanded = Vec::with_capacity(items.len() + readable.len());
            for item in items.drain(..) {
                if matches!(item, SelectItem::Star) {
                    expanded.extend(
                        table
                            .columns
                            .iter()
                            .filter(|c| readable.contains(&c.name))
                            .map(|c| column_item(&c.name)),
                    );
                } else {
                    expanded.push(item);
                }
            }
            *items = expanded;
        }
        for item in items.iter_mut() {
            let (name, alias, children) = match item {
                SelectItem::Star => continue,
                SelectItem::Field(f) => {
                    // A bare `count()` (or legacy `count`, with no such column) selects no
                    // column.
                    let counts_rows = (f.field.name == "*" && f.aggregate.is_some())
                        || crate::sql::expr::is_legacy_count(table, f);
                    if !counts_rows {
                        self.check_column(&table.name, &f.field.name, false)?;
                    }
                    continue;
                }
                SelectItem::Relation(r) => (
                    r.name.to_string(),
                    r.alias.as_ref().map(|a| a.to_string()),
                    &mut r.children,
                ),
                SelectItem::Spread(s) => (s.name.to_string(), None, &mut s.children),
            };
            let Ok(target) = catalog.table(&name) else {
                self.unresolved(&name)?;
                continue;
            };
            self.filters(&target.name, Command::Select)?;
            let mut child_path = path.to_vec();
            child_path.push((name, alias));
            levels.push(Level {
                path: child_path.clone(),
                table: target,
            });
            self.walk_select(catalog, target, children, &child_path, levels)?;
        }
        Ok(())
    }

    /// Checks the rows an insert writes (`command` Insert) or the values an update sets
    /// (`command` Update): writable columns, and every row filter of `command` satisfied.
    pub(crate) fn check_rows(
        &self,
        table: &Table,
        command: Command,
        rows: &[serde_json::Map<String, serde_json::Value>],
    ) -> ApiResult<()> {
        let filters = self.filters(&table.name, command)?;
        for row in rows {
            for column in row.keys() {
                self.check_column(&table.name, column, true)?;
            }
            for f in &filters {
                let ok = match row.get(&f.column) {
                    // An update that leaves the column alone keeps rows that matched.
                    None => command == Command::Update,
                    Some(v) => scalar_text(v).is_some_and(|v| f.allowed(self.claims).contains(&v)),
                };
                if !ok {
                    return Err(self
                        .denied(format!(
                            "new row violates row-level security policy for table \"{}\"",
                            table.name
                        ))
                        .details(format!(
                            "{} requires {} to equal the caller's '{}' claim",
                            command.as_str(),
                            f.column,
                            f.claim
                        )));
                }
            }
        }
        Ok(())
    }

    /// Refuses `return=representation` on a write when this caller may not read `table`
    /// (PostgreSQL requires SELECT for `RETURNING` too).
    pub(crate) fn check_returning(&self, table: &Table) -> ApiResult<()> {
        self.filters(&table.name, Command::Select).map(|_| ())
    }

    /// Refuses an upsert that merges duplicates when updates on `table` are restricted: the
    /// conflicting row may be one this caller could not update.
    pub(crate) fn check_merge(&self, table: &Table) -> ApiResult<()> {
        if self.filters(&table.name, Command::Update)?.is_empty() {
            return Ok(());
        }
        Err(self
            .denied(format!(
                "permission denied: merging duplicates into table {} is not allowed under its update policy",
                table.name
            ))
            .hint("Insert without resolution=merge-duplicates, or update with PATCH."))
    }
}

fn find<'l, 't>(levels: &'l [Level<'t>], path: &[Cow<'_, str>]) -> Option<&'l Level<'t>> {
    levels.iter().find(|l| {
        l.path.len() == path.len()
            && l.path
                .iter()
                .zip(path)
                .all(|((name, alias), p)| name == p || alias.as_deref() == Some(p.as_ref()))
    })
}

fn column_item(name: &str) -> SelectItem<'static> {
    SelectItem::Field(SelectField {
        field: Field {
            name: Cow::Owned(name.to_owned()),
            json_path: Vec::new(),
        },
        alias: None,
        cast: None,
        aggregate: None,
        aggregate_cast: None,
    })
}

/// AND-s `filter` into the query at `path`: `col = value` (bound), `col IN (...)` for an
/// array claim, and a contradiction (`col IS NULL AND col IS NOT NULL`) when the claim is
/// absent, so no row matches.
fn push_filter(
    query: &mut ApiQuery<'_>,
    path: &[Cow<'_, str>],
    f: &RowFilter,
    claims: &serde_json::Value,
) {
    let field = || Field {
        name: Cow::Owned(f.column.clone()),
        json_path: Vec::new(),
    };
    let path: Vec<Cow<'static, str>> = path.iter().map(|p| Cow::Owned(p.to_string())).collect();
    let allowed = f.allowed(claims);
    let operations: Vec<(bool, Operation<'static>)> = match allowed.as_slice() {
        [] => vec![
            (false, Operation::Is(crate::request::IsValue::Null)),
            (true, Operation::Is(crate::request::IsValue::Null)),
        ],
        [one] => vec![(
            false,
            Operation::Quant {
                op: QuantOperator::Equal,
                quantifier: None,
                value: Cow::Owned(one.clone()),
            },
        )],
        many => vec![(
            false,
            Operation::In(many.iter().map(|v| Cow::Owned(v.clone())).collect()),
        )],
    };
    for (negated, operation) in operations {
        query.filters.push(Scoped {
            path: path.clone(),
            item: Filter {
                field: field(),
                negated,
                operation,
            },
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_resolve_by_dotted_path_and_arrays_allow_any_element() {
        let claims = serde_json::json!({"sub": "u1", "app": {"orgs": [1, 2]}, "n": null});
        assert_eq!(RowFilter::claim("owner", "sub").allowed(&claims), ["u1"]);
        assert_eq!(
            RowFilter::claim("org", "app.orgs").allowed(&claims),
            ["1", "2"]
        );
        assert!(RowFilter::claim("x", "missing").allowed(&claims).is_empty());
        assert!(RowFilter::claim("x", "n").allowed(&claims).is_empty());
    }

    #[test]
    fn bypassing_roles_and_empty_policies_get_no_guard() {
        let claims = serde_json::json!({});
        let none = Policies::new().bypass("service_role");
        assert!(none.guard("anon", &claims, true).is_none());
        let some = none.table("t", TablePolicy::new().deny(&[Command::Delete]));
        assert!(some.guard("service_role", &claims, false).is_none());
        assert!(some.guard("anon", &claims, true).is_some());
    }

    #[test]
    fn later_row_filters_are_anded_and_deny_wins() {
        let p = TablePolicy::new()
            .rows(&[Command::Select], RowFilter::claim("a", "sub"))
            .rows(&[Command::Select], RowFilter::claim("b", "org"))
            .deny(&[Command::Delete])
            .rows(&[Command::Delete], RowFilter::claim("a", "sub"));
        assert!(matches!(p.access(Command::Select), Access::Rows(f) if f.len() == 2));
        assert_eq!(p.access(Command::Delete), &Access::Denied);
        assert_eq!(p.access(Command::Insert), &Access::All);
    }
}
