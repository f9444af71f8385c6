//! The response of a write read through the ordinary read builder, so that embedded
//! resources, spreads and `order` in a write's `select=` behave as in a GET
//! (`supabase.from('posts').insert(row).select('*, author:users(name)')`).
//!
//! PostgreSQL does it in one statement, as PostgREST does: the write in a CTE
//! (`WITH _mg_w AS (INSERT ... RETURNING *)`) and the response built from it with the same
//! correlated subqueries as a read. SQLite has no data-modifying CTE and MariaDB has neither
//! that nor `UPDATE ... RETURNING`, so there the handler runs several statements in the
//! request's transaction: the write, collecting the primary keys of the written rows
//! (`RETURNING pk` where the dialect has it, else [`locate`] them `FOR UPDATE` first), then
//! [`read_keys`]: the read builder over exactly those rows. A DELETE reads before it
//! deletes. This needs a primary key (400 PGRST127 without one).
//!
//! The request's root filters were applied by the write; the read back drops them (a PATCH
//! may have changed the filtered columns) and keeps the embedded levels' filters, orders
//! and limits, and the root's `order`.

use magmobo_core::roles::schema::Table;
use magmobo_core::roles::storage::{Dialect, Value};

use super::value::{self, Target};
use super::writer::Sql;
use super::{BODY, Catalog, PAGE_TOTAL, Plan, ReadOptions, Shape, Statement, embed};
use crate::api_error::{ApiError, ApiResult};
use crate::request::{ApiQuery, QueryRange, SelectItem};

/// The kind of write whose response is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    /// POST, PUT and upserts.
    Insert,
    /// PATCH.
    Update,
    /// DELETE.
    Delete,
}

/// Whether `select=` embeds any resource (plainly or as a spread).
pub(crate) fn embeds(q: &ApiQuery<'_>) -> bool {
    q.select
        .iter()
        .any(|i| matches!(i, SelectItem::Relation(_) | SelectItem::Spread(_)))
}

/// Whether the root has an `order=` (a write's `RETURNING` alone cannot order its rows).
pub(crate) fn ordered(q: &ApiQuery<'_>) -> bool {
    q.order.iter().any(|o| o.path.is_empty())
}

/// Whether a write asking for its representation must be read back by primary key in
/// several statements ([`locate`], [`read_keys`]) rather than answered by one statement:
/// on SQLite and MariaDB when `select=` embeds or `order=` is given (a table without a
/// primary key then keeps its unordered `RETURNING`), and MariaDB's PATCH always (no
/// `UPDATE ... RETURNING`).
pub fn reads_back(cat: &Catalog, table: &Table, q: &ApiQuery<'_>, kind: WriteKind) -> bool {
    match cat.dialect() {
        Dialect::Postgres => false,
        Dialect::MySql if kind == WriteKind::Update => true,
        Dialect::MySql | Dialect::Sqlite => {
            embeds(q) || (ordered(q) && !table.primary_key.is_empty())
        }
    }
}

/// Checks, before anything is written, that the response can be read back: the
/// `select=` resolves (the same PGRST200/PGRST201 errors as a read), scoped parameters
/// name embedded resources, no aggregate is asked for, and the table has a primary key.
pub fn check(cat: &Catalog, table: &Table, q: &ApiQuery<'_>) -> ApiResult<()> {
    check_select(cat, table, q)?;
    if table.primary_key.is_empty() {
        return Err(ApiError::not_supported(format!(
            "returning rows of '{}', which has no primary key, from this write on {} \
             (the rows are read back by key); use Prefer: return=minimal",
            table.name,
            dialect_name(cat.dialect())
        )));
    }
    Ok(())
}

/// The checks of [`check`] that PostgreSQL's one statement needs too (it needs no key).
fn check_select(cat: &Catalog, table: &Table, q: &ApiQuery<'_>) -> ApiResult<()> {
    let root = embed::build(cat, table, &q.select)?;
    embed::check_paths(&root, q)?;
    if embed::aggregates(&root)?.any {
        return Err(ApiError::not_supported(
            "aggregate functions in the response of a write",
        ));
    }
    Ok(())
}

fn dialect_name(d: Dialect) -> &'static str {
    match d {
        Dialect::Postgres => "PostgreSQL",
        Dialect::MySql => "MySQL/MariaDB",
        Dialect::Sqlite => "SQLite",
    }
}

/// The request without its root filters and logic trees (the write applied them).
fn without_root_filters<'a>(q: &ApiQuery<'a>) -> ApiQuery<'a> {
    let mut q = q.clone();
    q.filters.retain(|f| !f.path.is_empty());
    q.logic.retain(|l| !l.path.is_empty());
    q
}

/// PostgreSQL: `WITH _mg_w AS (<write> RETURNING *) SELECT (SELECT count(*) FROM _mg_w),
/// json_agg(...) FROM (SELECT <read's select list> FROM _mg_w AS "table" ...) _mg`. The
/// embedded subqueries see the database as it was before the statement, as in PostgREST.
pub(crate) fn pg(
    cat: &Catalog,
    table: &Table,
    q: &ApiQuery<'_>,
    write: impl FnOnce(&mut Sql) -> ApiResult<()>,
) -> ApiResult<Plan> {
    check_select(cat, table, q)?;
    let q = without_root_filters(q);
    let root = embed::build(cat, table, &q.select)?;
    let mut w = Sql::new(Dialect::Postgres);
    w.push("WITH _mg_w AS (");
    write(&mut w)?;
    w.push(" RETURNING *) SELECT (SELECT count(*) FROM _mg_w) AS ")
        .ident(PAGE_TOTAL)
        .push(", coalesce(json_agg(_mg), '[]')::text AS ")
        .ident(BODY)
        .push(" FROM (SELECT ");
    embed::select_list_pg(&mut w, &root, &q)?;
    w.push(" FROM _mg_w AS ").ident(&table.name);
    embed::where_clause(&mut w, &root, &q)?;
    embed::order_by(&mut w, &root, &q)?;
    w.push(") _mg");
    Ok(Plan {
        statement: w.finish(),
        shape: Shape::Aggregated,
        count: None,
    })
}

/// `"a" IN (?, ?)`, or `(("a" = ? AND "b" = ?) OR (...))` for a composite key; `1 = 0`
/// for no key.
fn key_condition(w: &mut Sql, table: &Table, keys: &[Vec<Value>]) {
    if keys.is_empty() {
        w.push("1 = 0");
        return;
    }
    if let [pk] = table.primary_key.as_slice() {
        w.ident(pk).push(" IN (");
        for (i, key) in keys.iter().enumerate() {
            if i > 0 {
                w.push(", ");
            }
            w.bind(key.first().cloned().unwrap_or(Value::Null));
        }
        w.push(")");
        return;
    }
    w.push("(");
    for (i, key) in keys.iter().enumerate() {
        w.push(if i == 0 { "(" } else { " OR (" });
        for (j, (pk, v)) in table.primary_key.iter().zip(key).enumerate() {
            if j > 0 {
                w.push(" AND ");
            }
            w.ident(pk).push(" = ").bind(v.clone());
        }
        w.push(")");
    }
    w.push(")");
}

/// `SELECT pk... FROM table WHERE <root filters>` (`FOR UPDATE` on MySQL/MariaDB): the keys
/// of the rows a PATCH or DELETE is about to write, locked until the transaction ends.
pub fn locate(cat: &Catalog, table: &Table, q: &ApiQuery<'_>) -> ApiResult<Statement> {
    let d = cat.dialect();
    let mut w = Sql::new(d);
    w.push("SELECT ");
    for (i, pk) in table.primary_key.iter().enumerate() {
        if i > 0 {
            w.push(", ");
        }
        w.ident(pk);
    }
    w.push(" FROM ").table(&table.schema, &table.name);
    super::write_where(&mut w, table, q)?;
    if d == Dialect::MySql {
        w.push(" FOR UPDATE");
    }
    Ok(w.finish())
}

/// The primary key of each row returned by [`locate`] or a write `RETURNING` the key.
pub fn keys_of(table: &Table, rows: &[magmobo_core::roles::storage::Row]) -> Vec<Vec<Value>> {
    let n = table.primary_key.len();
    rows.iter()
        .map(|r| r.values.iter().take(n).cloned().collect())
        .collect()
}

/// `DELETE FROM table WHERE <key condition>`.
pub fn delete_keys(cat: &Catalog, table: &Table, keys: &[Vec<Value>]) -> Statement {
    let mut w = Sql::new(cat.dialect());
    w.push("DELETE FROM ")
        .table(&table.schema, &table.name)
        .push(" WHERE ");
    key_condition(&mut w, table, keys);
    w.finish()
}

/// `UPDATE table SET <payload> WHERE <key condition>`; `None` when the payload sets
/// nothing.
pub fn update_keys(
    cat: &Catalog,
    table: &Table,
    q: &ApiQuery<'_>,
    payload: &serde_json::Map<String, serde_json::Value>,
    keys: &[Vec<Value>],
) -> ApiResult<Option<Statement>> {
    let sets = super::assignments(table, q, payload)?;
    if sets.is_empty() {
        return Ok(None);
    }
    let mut w = Sql::new(cat.dialect());
    w.push("UPDATE ").table(&table.schema, &table.name);
    super::set_clause(&mut w, &sets)?;
    w.push(" WHERE ");
    key_condition(&mut w, table, keys);
    Ok(Some(w.finish()))
}

/// The keys the rows have after a PATCH whose payload sets primary-key columns: those
/// columns take the payload's value.
pub fn rekey(
    cat: &Catalog,
    table: &Table,
    q: &ApiQuery<'_>,
    payload: &serde_json::Map<String, serde_json::Value>,
    mut keys: Vec<Vec<Value>>,
) -> ApiResult<Vec<Vec<Value>>> {
    for (c, v) in super::assignments(table, q, payload)? {
        let Some(i) = table.primary_key.iter().position(|k| *k == c.name) else {
            continue;
        };
        let b = value::from_json(cat.dialect(), Target::of(c), v)?;
        for key in &mut keys {
            if let Some(slot) = key.get_mut(i) {
                *slot = b.value.clone();
            }
        }
    }
    Ok(keys)
}

/// The read of the rows with `keys`, as a GET with the request's `select=`, embedded
/// parameters and root `order` would read them (no root filters, no limit).
pub fn read_keys(
    cat: &Catalog,
    table: &Table,
    q: &ApiQuery<'_>,
    keys: &[Vec<Value>],
) -> ApiResult<Plan> {
    let q = without_root_filters(q);
    let mut source = Sql::new(cat.dialect());
    source.push(" FROM (SELECT * FROM ");
    source.table(&table.schema, &table.name).push(" WHERE ");
    key_condition(&mut source, table, keys);
    source.push(") AS ").ident(&table.name);
    let opts = ReadOptions {
        max_rows: None,
        count: false,
        aggregates: false,
    };
    super::read_from(cat, table, &source, &q, QueryRange::default(), opts)
}
