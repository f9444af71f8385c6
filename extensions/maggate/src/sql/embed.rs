//! Resource embedding: the relationship between two tables found from their foreign keys
//! (many-to-one, one-to-many, one-to-one, many-to-many through a junction table) with
//! PostgREST's `!hint` disambiguation and its PGRST200/PGRST201 errors, and each embedded
//! resource written as a correlated subquery that builds its JSON inside the database.
//!
//! Aliases: the root table is referred to by its own name, embedded tables as `_mg1`,
//! `_mg2`... (their junction tables as `_mg1j`), so self-references stay unambiguous.
//! Columns of a level are written unqualified: SQL resolves them to the innermost `FROM`,
//! which is always the level's own table.
//!
//! Aggregates (`count()`, `col.sum()`...) belong to the level that selects them, as in
//! PostgREST: a level with one groups its rows by its other members, embedded resources
//! and spread columns included, inside its own (sub)query. So `comments(count)` is an array
//! of one object per parent, and `total.sum(),customers(name)` one row per customer.

use std::borrow::Cow;

use magmobo_core::roles::schema::{ColumnKind, ForeignKey, Table};
use magmobo_core::roles::storage::{Dialect, Value};

use super::Catalog;
use super::expr::{self, Projected};
use super::writer::Sql;
use crate::api_error::{ApiError, ApiResult};
use crate::request::{ApiQuery, Filter, IsValue, JoinType, Operation, Scoped, SelectItem};

/// How an embedded table relates to its parent.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Rel<'t> {
    /// The parent's foreign key points at the embedded table.
    ManyToOne(&'t ForeignKey),
    /// The embedded table's foreign key points at the parent.
    OneToMany(&'t ForeignKey),
    /// A junction table points at both.
    ManyToMany {
        junction: &'t Table,
        to_parent: &'t ForeignKey,
        to_target: &'t ForeignKey,
    },
}

/// A relationship from a parent to `target`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Relationship<'t> {
    pub parent: &'t Table,
    pub target: &'t Table,
    pub rel: Rel<'t>,
}

fn points_at(fk: &ForeignKey, t: &Table) -> bool {
    fk.foreign_table == t.name && fk.foreign_schema == t.schema
}

/// Whether `cols` are, as a set, the primary key or a unique constraint of `t`.
fn unique_in(t: &Table, cols: &[String]) -> bool {
    let same = |key: &[String]| {
        !key.is_empty() && key.len() == cols.len() && key.iter().all(|k| cols.contains(k))
    };
    same(&t.primary_key) || t.unique.iter().any(|u| same(u))
}

/// Whether every column of `cols` belongs to the primary key of `t` (or to one unique
/// constraint), which PostgREST requires of a junction table's foreign keys.
fn keyed_by(t: &Table, cols: &[&String]) -> bool {
    let within = |key: &[String]| !key.is_empty() && cols.iter().all(|c| key.contains(c));
    within(&t.primary_key) || t.unique.iter().any(|u| within(u))
}

impl<'t> Relationship<'t> {
    /// Whether the embedding is one object (or null) rather than an array.
    pub fn to_one(self) -> bool {
        match self.rel {
            Rel::ManyToOne(_) => true,
            Rel::OneToMany(fk) => unique_in(self.target, &fk.columns),
            Rel::ManyToMany { .. } => false,
        }
    }

    fn matches_hint(&self, hint: &str) -> bool {
        let fk_matches =
            |fk: &ForeignKey| fk.name == hint || (fk.columns.len() == 1 && fk.columns[0] == hint);
        match self.rel {
            Rel::ManyToOne(fk) | Rel::OneToMany(fk) => fk_matches(fk),
            Rel::ManyToMany {
                junction,
                to_parent,
                to_target,
            } => junction.name == hint || to_parent.name == hint || to_target.name == hint,
        }
    }

    /// PostgREST's description of a candidate, for PGRST201.
    fn describe(&self) -> serde_json::Value {
        let cols = |c: &[String]| format!("({})", c.join(", "));
        let (cardinality, relationship) = match self.rel {
            Rel::ManyToOne(fk) => (
                if unique_in(self.parent, &fk.columns) {
                    "one-to-one"
                } else {
                    "many-to-one"
                },
                format!(
                    "{} using {}{} and {}{}",
                    fk.name,
                    self.parent.name,
                    cols(&fk.columns),
                    self.target.name,
                    cols(&fk.foreign_columns)
                ),
            ),
            Rel::OneToMany(fk) => (
                if self.to_one() {
                    "one-to-one"
                } else {
                    "one-to-many"
                },
                format!(
                    "{} using {}{} and {}{}",
                    fk.name,
                    self.parent.name,
                    cols(&fk.foreign_columns),
                    self.target.name,
                    cols(&fk.columns)
                ),
            ),
            Rel::ManyToMany {
                junction,
                to_parent,
                to_target,
            } => (
                "many-to-many",
                format!(
                    "{} using {}{} and {}{}",
                    junction.name,
                    to_parent.name,
                    cols(&to_parent.columns),
                    to_target.name,
                    cols(&to_target.columns)
                ),
            ),
        };
        serde_json::json!({
            "cardinality": cardinality,
            "embedding": format!("{} with {}", self.parent.name, self.target.name),
            "relationship": relationship,
        })
    }

    fn rank(&self) -> u8 {
        match self.rel {
            Rel::ManyToOne(_) => 0,
            Rel::OneToMany(_) => 1,
            Rel::ManyToMany { .. } => 2,
        }
    }

    /// The `!hint` that selects this candidate.
    fn hint_name(&self) -> &'t str {
        match self.rel {
            Rel::ManyToOne(fk) | Rel::OneToMany(fk) => &fk.name,
            Rel::ManyToMany { junction, .. } => &junction.name,
        }
    }
}

/// The one relationship `parent` → `name` (a table, or a foreign key of the parent named by
/// constraint or column), narrowed by `hint`; PGRST200 when there is none, 300 PGRST201
/// listing the candidates when there are several.
pub(crate) fn resolve<'t>(
    cat: &'t Catalog,
    parent: &'t Table,
    name: &str,
    hint: Option<&str>,
) -> ApiResult<Relationship<'t>> {
    let mut found = Vec::new();
    for target in cat.exposed().filter(|t| t.name == name) {
        for fk in parent
            .foreign_keys
            .iter()
            .filter(|fk| points_at(fk, target))
        {
            found.push(Relationship {
                parent,
                target,
                rel: Rel::ManyToOne(fk),
            });
        }
        for fk in target
            .foreign_keys
            .iter()
            .filter(|fk| points_at(fk, parent))
        {
            found.push(Relationship {
                parent,
                target,
                rel: Rel::OneToMany(fk),
            });
        }
        for junction in cat.exposed() {
            for to_parent in junction
                .foreign_keys
                .iter()
                .filter(|f| points_at(f, parent))
            {
                for to_target in junction
                    .foreign_keys
                    .iter()
                    .filter(|f| points_at(f, target))
                {
                    let cols: Vec<&String> =
                        to_parent.columns.iter().chain(&to_target.columns).collect();
                    if std::ptr::eq(to_parent, to_target) || !keyed_by(junction, &cols) {
                        continue;
                    }
                    found.push(Relationship {
                        parent,
                        target,
                        rel: Rel::ManyToMany {
                            junction,
                            to_parent,
                            to_target,
                        },
                    });
                }
            }
        }
    }
    if found.is_empty() {
        // `select=customer_id(*)` or `select=orders_customer_id_fkey(*)`: embed through
        // the parent's foreign key named by column or constraint.
        for fk in &parent.foreign_keys {
            if fk.name != name && !(fk.columns.len() == 1 && fk.columns[0] == name) {
                continue;
            }
            if let Some(target) = cat.exposed().find(|t| points_at(fk, t)) {
                found.push(Relationship {
                    parent,
                    target,
                    rel: Rel::ManyToOne(fk),
                });
            }
        }
    }
    if let Some(h) = hint {
        found.retain(|r| r.matches_hint(h));
    }
    match found.len() {
        1 => Ok(found[0]),
        0 => {
            let hinted = hint.map_or_else(String::new, |h| format!(" using the hint '{h}'"));
            Err(ApiError::new(
                400,
                "PGRST200",
                format!(
                    "Could not find a relationship between '{}' and '{name}' in the schema cache",
                    parent.name
                ),
            )
            .details(format!(
                "Searched for a foreign key relationship between '{}' and '{name}'{hinted} in the \
                 schema '{}', but no matches were found.",
                parent.name, parent.schema
            ))
            .hint("Verify that the tables have a foreign key between them and reload the schema."))
        }
        _ => {
            // Drivers list foreign keys in different orders; answer the same everywhere.
            found.sort_by_key(|r| (r.rank(), r.hint_name()));
            let options: Vec<String> = found
                .iter()
                .map(|r| format!("'{name}!{}'", r.hint_name()))
                .collect();
            let mut e = ApiError::new(
                300,
                "PGRST201",
                format!(
                    "Could not embed because more than one relationship was found for '{}' and \
                     '{name}'",
                    parent.name
                ),
            )
            .hint(format!(
                "Try changing '{name}' to one of the following: {}. Find the desired relationship \
                 in the 'details' key.",
                options.join(", ")
            ));
            e.details_json = Some(Box::new(serde_json::Value::Array(
                found.iter().map(Relationship::describe).collect(),
            )));
            Err(e)
        }
    }
}

/// One level of the response: the root table or an embedded resource.
pub(crate) struct Level<'a, 't> {
    pub table: &'t Table,
    /// How this level's table is referred to from nested subqueries.
    pub qual: String,
    /// How the parent level's table is referred to (empty for the root).
    pub parent_qual: String,
    /// The relationship to the parent (`None` for the root).
    pub rel: Option<Relationship<'t>>,
    /// `!inner`: parents without a match are left out.
    pub inner: bool,
    /// The output key (embeddings; spreads and the root have none).
    pub key: Option<Cow<'a, str>>,
    /// Names a scoped parameter may use for each embedding level down to this one: the
    /// relation's name and its alias.
    pub path: Vec<(Cow<'a, str>, Option<Cow<'a, str>>)>,
    pub members: Vec<Member<'a, 't>>,
}

/// One output member of a level.
pub(crate) enum Member<'a, 't> {
    /// A column (or JSON path into one).
    Column(Projected<'a, 't>),
    /// An embedded resource under its own key.
    Embed(Level<'a, 't>),
    /// A to-one embedded resource whose members are merged into the parent.
    Spread(Level<'a, 't>),
}

/// Resolves `select=` against the schema, embedded resources included.
pub(crate) fn build<'a, 't>(
    cat: &'t Catalog,
    table: &'t Table,
    items: &[SelectItem<'a>],
) -> ApiResult<Level<'a, 't>> {
    let mut counter = 0;
    let mut root = Level {
        table,
        qual: table.name.clone(),
        parent_qual: String::new(),
        rel: None,
        inner: false,
        key: None,
        path: Vec::new(),
        members: Vec::new(),
    };
    fill(cat, &mut root, items, &mut counter)?;
    Ok(root)
}

fn fill<'a, 't>(
    cat: &'t Catalog,
    level: &mut Level<'a, 't>,
    items: &[SelectItem<'a>],
    counter: &mut usize,
) -> ApiResult<()> {
    for item in items {
        let (name, alias, hint, join, children, spread) = match item {
            SelectItem::Star | SelectItem::Field(_) => {
                let cols = expr::projection(level.table, std::slice::from_ref(item))?;
                level.members.extend(cols.into_iter().map(Member::Column));
                continue;
            }
            SelectItem::Relation(r) => (&r.name, &r.alias, &r.hint, r.join, &r.children, false),
            SelectItem::Spread(s) => (&s.name, &None, &s.hint, s.join, &s.children, true),
        };
        let rel = resolve(cat, level.table, name, hint.as_deref())?;
        if spread && !rel.to_one() {
            return Err(ApiError::new(
                400,
                "PGRST119",
                format!("A spread operation on '{name}' is not possible"),
            )
            .details(format!(
                "'{}' and '{name}' do not form a many-to-one or one-to-one relationship",
                level.table.name
            )));
        }
        *counter += 1;
        let mut path = level.path.clone();
        path.push((name.clone(), alias.clone()));
        let mut child = Level {
            table: rel.target,
            qual: format!("_mg{counter}"),
            parent_qual: level.qual.clone(),
            rel: Some(rel),
            inner: join == Some(JoinType::Inner),
            key: if spread {
                None
            } else {
                Some(alias.clone().unwrap_or_else(|| name.clone()))
            },
            path,
            members: Vec::new(),
        };
        fill(cat, &mut child, children, counter)?;
        level.members.push(if spread {
            Member::Spread(child)
        } else {
            Member::Embed(child)
        });
    }
    Ok(())
}

impl Level<'_, '_> {
    /// Whether a scoped parameter's path names this level.
    fn is_at(&self, path: &[Cow<'_, str>]) -> bool {
        path.len() == self.path.len()
            && path
                .iter()
                .zip(&self.path)
                .all(|(p, (name, alias))| p == name || alias.as_deref() == Some(p.as_ref()))
    }

    fn any_at(&self, path: &[Cow<'_, str>]) -> bool {
        self.is_at(path)
            || self.members.iter().any(|m| match m {
                Member::Embed(l) | Member::Spread(l) => l.any_at(path),
                Member::Column(_) => false,
            })
    }

    fn children(&self) -> impl Iterator<Item = &Self> {
        self.members.iter().filter_map(|m| match m {
            Member::Embed(l) | Member::Spread(l) => Some(l),
            Member::Column(_) => None,
        })
    }
}

/// PGRST108 for any filter, order or limit naming a resource the request does not embed.
pub(crate) fn check_paths(root: &Level<'_, '_>, q: &ApiQuery<'_>) -> ApiResult<()> {
    fn check<T>(root: &Level<'_, '_>, items: &[Scoped<'_, T>]) -> ApiResult<()> {
        for s in items {
            if !s.path.is_empty() && !root.any_at(&s.path) {
                return Err(expr::not_embedded(&s.path.join(".")));
            }
        }
        Ok(())
    }
    check(root, &q.filters)?;
    check(root, &q.logic)?;
    check(root, &q.order)?;
    check(root, &q.ranges)
}

/// ` ORDER BY ...` of a level; `order=rel(col)` sorts on a column of a to-one embedded
/// resource (400 PGRST118 for a to-many one, PGRST108 for one not embedded).
pub(crate) fn order_by(w: &mut Sql, level: &Level<'_, '_>, q: &ApiQuery<'_>) -> ApiResult<()> {
    let mut first = true;
    for o in q.order.iter().filter(|o| level.is_at(&o.path)) {
        for term in &o.item {
            w.push(if first { " ORDER BY " } else { ", " });
            first = false;
            let Some(rel) = &term.relation else {
                expr::order_term(w, level.table, term)?;
                continue;
            };
            let child = level
                .children()
                .find(|c| {
                    c.path.last().is_some_and(|(name, alias)| {
                        alias.as_deref().unwrap_or(name.as_ref()) == rel.as_ref()
                    })
                })
                .ok_or_else(|| expr::not_embedded(rel))?;
            if !child.rel.is_some_and(Relationship::to_one) {
                return Err(ApiError::new(
                    400,
                    "PGRST118",
                    format!("A related order on '{rel}' is not possible"),
                )
                .details(format!(
                    "'{}' and '{rel}' do not form a many-to-one or one-to-one relationship",
                    level.table.name
                )));
            }
            let mut lhs = Sql::new(w.dialect);
            lhs.push("(SELECT ");
            expr::field(&mut lhs, child.table, &term.field)?;
            from(&mut lhs, child);
            lhs.push(" WHERE ");
            if let Some(r) = &child.rel {
                join(&mut lhs, child, r);
            }
            lhs.push(")");
            expr::order_by_value(w, &lhs, term);
        }
    }
    Ok(())
}

/// ` WHERE ...` of a level: the join to its parent, its filters, and an `EXISTS` for each
/// `!inner` child. Writes nothing when there is no condition.
pub(crate) fn where_clause(w: &mut Sql, level: &Level<'_, '_>, q: &ApiQuery<'_>) -> ApiResult<()> {
    let mut first = true;
    let mut sep = |w: &mut Sql| {
        w.push(if first { " WHERE " } else { " AND " });
        first = false;
    };
    if let Some(rel) = &level.rel {
        sep(w);
        join(w, level, rel);
    }
    for f in q.filters.iter().filter(|f| level.is_at(&f.path)) {
        sep(w);
        if let Some((child, exists)) = null_filter(level, &f.item) {
            if !exists {
                w.push("NOT ");
            }
            w.push("EXISTS (SELECT 1");
            from(w, child);
            where_clause(w, child, q)?;
            w.push(")");
            continue;
        }
        expr::filter(w, level.table, &f.item)?;
    }
    for l in q.logic.iter().filter(|l| level.is_at(&l.path)) {
        sep(w);
        expr::logic(w, level.table, &l.item)?;
    }
    for child in level.children().filter(|c| c.inner) {
        sep(w);
        w.push("EXISTS (SELECT 1");
        from(w, child);
        where_clause(w, child, q)?;
        w.push(")");
    }
    Ok(())
}

/// `rel=is.null` / `rel=not.is.null` on an embedded resource (not a column): whether the
/// parent must have no matching row (`false`) or at least one (`true`).
fn null_filter<'l, 'a, 't>(
    level: &'l Level<'a, 't>,
    f: &Filter<'_>,
) -> Option<(&'l Level<'a, 't>, bool)> {
    let Operation::Is(v @ (IsValue::Null | IsValue::NotNull)) = f.operation else {
        return None;
    };
    if !f.field.json_path.is_empty() || level.table.column(&f.field.name).is_some() {
        return None;
    }
    let child = level.children().find(|c| {
        c.path.last().is_some_and(|(name, alias)| {
            alias.as_deref().unwrap_or(name.as_ref()) == f.field.name.as_ref()
        })
    })?;
    Some((child, (v == IsValue::NotNull) != f.negated))
}

fn from(w: &mut Sql, level: &Level<'_, '_>) {
    w.push(" FROM ")
        .table(&level.table.schema, &level.table.name)
        .push(" AS ")
        .ident(&level.qual);
}

fn col(w: &mut Sql, qual: &str, name: &str) {
    w.ident(qual).push(".").ident(name);
}

/// The join condition of an embedded level with its parent.
fn join(w: &mut Sql, level: &Level<'_, '_>, rel: &Relationship<'_>) {
    let pairs = |w: &mut Sql, lq: &str, lcols: &[String], rq: &str, rcols: &[String]| {
        for (i, (l, r)) in lcols.iter().zip(rcols).enumerate() {
            if i > 0 {
                w.push(" AND ");
            }
            col(w, lq, l);
            w.push(" = ");
            col(w, rq, r);
        }
    };
    let (q, pq) = (level.qual.as_str(), level.parent_qual.as_str());
    match rel.rel {
        Rel::ManyToOne(fk) => pairs(w, q, &fk.foreign_columns, pq, &fk.columns),
        Rel::OneToMany(fk) => pairs(w, q, &fk.columns, pq, &fk.foreign_columns),
        Rel::ManyToMany {
            junction,
            to_parent,
            to_target,
        } => {
            let jq = format!("{q}j");
            w.push("EXISTS (SELECT 1 FROM ")
                .table(&junction.schema, &junction.name)
                .push(" AS ")
                .ident(&jq)
                .push(" WHERE ");
            pairs(w, &jq, &to_target.columns, q, &to_target.foreign_columns);
            w.push(" AND ");
            pairs(w, &jq, &to_parent.columns, pq, &to_parent.foreign_columns);
            w.push(")");
        }
    }
}

fn order_range(w: &mut Sql, level: &Level<'_, '_>, q: &ApiQuery<'_>) -> ApiResult<()> {
    order_by(w, level, q)?;
    if let Some(r) = q.ranges.iter().find(|r| level.is_at(&r.path)) {
        let range = r.item.to_range()?;
        match (range.limit, w.dialect) {
            (Some(l), _) => {
                w.push(" LIMIT ").number(l);
            }
            (None, Dialect::Postgres) => {}
            (None, Dialect::MySql) if range.offset > 0 => {
                w.push(" LIMIT 18446744073709551615");
            }
            (None, Dialect::Sqlite) if range.offset > 0 => {
                w.push(" LIMIT -1");
            }
            (None, _) => {}
        }
        if range.offset > 0 {
            w.push(" OFFSET ").number(range.offset);
        }
    }
    Ok(())
}

/// The correlated subquery of an embedded level: PostgreSQL `json`, elsewhere JSON text
/// (the caller marks it as JSON).
fn subquery(w: &mut Sql, level: &Level<'_, '_>, q: &ApiQuery<'_>) -> ApiResult<()> {
    let to_one = level.rel.is_some_and(Relationship::to_one);
    let derived = format!("{}r", level.qual);
    match (w.dialect, to_one) {
        (Dialect::Postgres, _) => {
            w.push(if to_one {
                "(SELECT row_to_json("
            } else {
                "(SELECT coalesce(json_agg("
            });
            w.ident(&derived);
            w.push(if to_one { ")" } else { "), '[]')" });
            w.push(" FROM (SELECT ");
            select_list_pg(w, level, q)?;
            from(w, level);
            where_clause(w, level, q)?;
            group_by(w, level, q)?;
            if !to_one {
                order_range(w, level, q)?;
            }
            w.push(") ").ident(&derived).push(")");
        }
        (Dialect::Sqlite, false) => {
            w.push("(SELECT coalesce(json_group_array(json(")
                .ident(&derived)
                .push(".")
                .ident(super::ROW_JSON)
                .push(")), '[]') FROM (SELECT ");
            json_object(w, level, q)?;
            w.push(" AS ").ident(super::ROW_JSON);
            from(w, level);
            where_clause(w, level, q)?;
            group_by(w, level, q)?;
            order_range(w, level, q)?;
            w.push(") ").ident(&derived).push(")");
        }
        (Dialect::MySql, false) if level.grouped() => mysql_grouped(w, level, q)?,
        (Dialect::MySql, false) => {
            // MariaDB takes ORDER BY and LIMIT inside JSON_ARRAYAGG; a derived table could
            // not see the parent's columns.
            w.push("(SELECT COALESCE(JSON_ARRAYAGG(");
            json_object(w, level, q)?;
            let mut tail = Sql::new(w.dialect);
            order_range(&mut tail, level, q)?;
            w.splice(&tail);
            w.push("), JSON_ARRAY())");
            from(w, level);
            where_clause(w, level, q)?;
            w.push(")");
        }
        (Dialect::Sqlite | Dialect::MySql, true) => {
            w.push("(SELECT ");
            json_object(w, level, q)?;
            from(w, level);
            where_clause(w, level, q)?;
            group_by(w, level, q)?;
            w.push(")");
        }
    }
    Ok(())
}

/// MariaDB, a to-many level with aggregates: only aggregates, so one row per parent,
/// written as an array of that one object. Grouping by other columns would need a
/// derived table, and MariaDB's derived tables cannot see the parent row (nor can an
/// aggregate nest inside `JSON_ARRAYAGG`), so that is a clear 400.
fn mysql_grouped(w: &mut Sql, level: &Level<'_, '_>, q: &ApiQuery<'_>) -> ApiResult<()> {
    if level.has_group_terms() {
        return Err(ApiError::not_supported(format!(
            "aggregate functions grouped by other columns inside the embedded resource '{}' \
             on MySQL/MariaDB (select only aggregates there, or use PostgreSQL or SQLite)",
            level.key.as_deref().unwrap_or(&level.table.name)
        )));
    }
    w.push("(SELECT JSON_ARRAY(");
    json_object(w, level, q)?;
    w.push(")");
    from(w, level);
    where_clause(w, level, q)?;
    w.push(")");
    Ok(())
}

/// A member's value, flattened through spreads.
enum Core<'l, 'a, 't> {
    Column(&'l Projected<'a, 't>),
    Embed(&'l Level<'a, 't>),
}

struct Flat<'l, 'a, 't> {
    key: &'l str,
    core: Core<'l, 'a, 't>,
    /// The spread levels the value is read through, outermost first.
    spreads: Vec<&'l Level<'a, 't>>,
}

fn flatten<'l, 'a, 't>(
    level: &'l Level<'a, 't>,
    spreads: &[&'l Level<'a, 't>],
    out: &mut Vec<Flat<'l, 'a, 't>>,
) {
    for m in &level.members {
        match m {
            Member::Column(p) => out.push(Flat {
                key: &p.key,
                core: Core::Column(p),
                spreads: spreads.to_vec(),
            }),
            Member::Embed(l) => out.push(Flat {
                key: l.key.as_deref().unwrap_or(""),
                core: Core::Embed(l),
                spreads: spreads.to_vec(),
            }),
            Member::Spread(l) => {
                let mut inner = spreads.to_vec();
                inner.push(l);
                flatten(l, &inner, out);
            }
        }
    }
}

/// `(SELECT ` for each spread the value is read through, then the value, then each
/// spread's `FROM ... WHERE ...)`.
fn through_spreads(
    w: &mut Sql,
    flat: &Flat<'_, '_, '_>,
    q: &ApiQuery<'_>,
    value: &Sql,
) -> ApiResult<()> {
    for _ in &flat.spreads {
        w.push("(SELECT ");
    }
    w.splice(value);
    for s in flat.spreads.iter().rev() {
        from(w, s);
        where_clause(w, s, q)?;
        w.push(")");
    }
    Ok(())
}

/// PostgreSQL: `expr AS "key", ...` for a level, embedded resources as subqueries.
pub(crate) fn select_list_pg(
    w: &mut Sql,
    level: &Level<'_, '_>,
    q: &ApiQuery<'_>,
) -> ApiResult<()> {
    let mut flats = Vec::new();
    flatten(level, &[], &mut flats);
    let grouped = level.grouped();
    for (i, f) in flats.iter().enumerate() {
        if i > 0 {
            w.push(", ");
        }
        let mut v = Sql::new(w.dialect);
        match f.core {
            Core::Column(p) => {
                expr::projected_value(&mut v, p)?;
            }
            // `json` has no equality operator; a grouping term must be `jsonb`, as
            // PostgREST writes every embedding.
            Core::Embed(l) if grouped => {
                subquery(&mut v, l, q)?;
                v.push("::jsonb");
            }
            Core::Embed(l) => subquery(&mut v, l, q)?,
        }
        through_spreads(w, f, q, &v)?;
        w.push(" AS ").ident(f.key);
    }
    Ok(())
}

/// MySQL and SQLite: `JSON_OBJECT(?, expr, ...)` for a level; embedded resources (and
/// JSON or boolean values read through a spread) are marked as JSON so they nest rather
/// than being quoted as strings.
pub(crate) fn json_object(w: &mut Sql, level: &Level<'_, '_>, q: &ApiQuery<'_>) -> ApiResult<()> {
    let d = w.dialect;
    let (mark_open, mark_close) = if d == Dialect::MySql {
        ("JSON_EXTRACT(", ", '$')")
    } else {
        ("json(", ")")
    };
    let mut flats = Vec::new();
    flatten(level, &[], &mut flats);
    w.push(if d == Dialect::MySql {
        "JSON_OBJECT("
    } else {
        "json_object("
    });
    for (i, f) in flats.iter().enumerate() {
        if i > 0 {
            w.push(", ");
        }
        w.bind(Value::Text(f.key.to_owned())).push(", ");
        let mut v = Sql::new(d);
        let mark = match f.core {
            Core::Column(p) => {
                let t = expr::json_value(&mut v, p)?;
                !f.spreads.is_empty() && matches!(t.kind, ColumnKind::Json | ColumnKind::Boolean)
            }
            Core::Embed(l) => {
                subquery(&mut v, l, q)?;
                true
            }
        };
        if mark {
            w.push(mark_open);
        }
        through_spreads(w, f, q, &v)?;
        if mark {
            w.push(mark_close);
        }
    }
    w.push(")");
    Ok(())
}

/// Where a request uses aggregates.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct AggregateUse {
    /// `count()`, `col.sum()`...: only with `aggregates_enabled` (else PGRST123).
    pub gated: bool,
    /// Any aggregate, the legacy bare `count` included (PostgREST serves that one even
    /// with aggregates off).
    pub any: bool,
}

/// The aggregates of a request, at any level. An aggregate inside a spread (`...rel(
/// col.sum())`) would aggregate over the parent's rows, which the spread's correlated
/// subquery cannot do: a clear 400.
pub(crate) fn aggregates(root: &Level<'_, '_>) -> ApiResult<AggregateUse> {
    fn walk(level: &Level<'_, '_>, in_spread: bool, found: &mut AggregateUse) -> ApiResult<()> {
        for m in &level.members {
            match m {
                Member::Column(p) if p.aggregate.is_some() => {
                    if in_spread {
                        return Err(ApiError::not_supported(format!(
                            "aggregate functions inside the spread '...{}()'",
                            level.table.name
                        )));
                    }
                    found.any = true;
                    found.gated |= !p.legacy_count;
                }
                Member::Column(_) => {}
                Member::Embed(l) => walk(l, false, found)?,
                Member::Spread(l) => walk(l, true, found)?,
            }
        }
        Ok(())
    }
    let mut found = AggregateUse::default();
    walk(root, false, &mut found)?;
    Ok(found)
}

impl Level<'_, '_> {
    /// Whether this level aggregates its rows: one of its own columns is an aggregate.
    pub(crate) fn grouped(&self) -> bool {
        self.members
            .iter()
            .any(|m| matches!(m, Member::Column(p) if p.aggregate.is_some()))
    }

    /// Whether a grouped level has members to group by (else it is one row).
    fn has_group_terms(&self) -> bool {
        let mut flats = Vec::new();
        flatten(self, &[], &mut flats);
        flats.iter().any(Flat::is_group_term)
    }
}

impl Flat<'_, '_, '_> {
    fn is_group_term(&self) -> bool {
        !matches!(self.core, Core::Column(p) if p.aggregate.is_some())
    }
}

/// ` GROUP BY` the members of a grouped level that are not aggregates (PostgREST's
/// implicit grouping): its columns, spread columns and embedded resources. PostgreSQL
/// groups by output position, since a JSON path written twice would bind its keys twice
/// and no longer match; the others repeat the expressions. Writes nothing for a level
/// without aggregates.
pub(crate) fn group_by(w: &mut Sql, level: &Level<'_, '_>, q: &ApiQuery<'_>) -> ApiResult<()> {
    if !level.grouped() {
        return Ok(());
    }
    let mut flats = Vec::new();
    flatten(level, &[], &mut flats);
    let mut first = true;
    for (i, f) in flats.iter().enumerate() {
        if !f.is_group_term() {
            continue;
        }
        w.push(if first { " GROUP BY " } else { ", " });
        first = false;
        if w.dialect == Dialect::Postgres {
            w.number((i + 1) as u64);
            continue;
        }
        let mut v = Sql::new(w.dialect);
        match f.core {
            Core::Column(p) => {
                expr::projected_value(&mut v, p)?;
            }
            Core::Embed(l) => subquery(&mut v, l, q)?,
        }
        through_spreads(w, f, q, &v)?;
    }
    Ok(())
}
