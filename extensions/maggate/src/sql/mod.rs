//! SQL building: a parsed [`Request`](crate::request::Request), the introspected
//! [`Schema`] and a [`Dialect`] in, [`Statement`]s out. Pure: no I/O, no async.
//!
//! Invariants:
//! - every value from the request is a bind parameter ([`Statement::binds`]);
//! - every identifier comes from the schema and is quoted for the dialect;
//! - the response body is built by the database where the dialect allows it
//!   (PostgreSQL `json_agg`, SQLite `json_group_array`; MySQL returns one `JSON_OBJECT`
//!   per row because `JSON_ARRAYAGG` ignores `ORDER BY`), so one round trip returns it.

mod embed;
pub(crate) mod expr;
pub mod rpc;
mod value;
pub mod views;
mod writer;
pub mod written;

use magmobo_core::roles::schema::{Schema, Table, TableKind};
use magmobo_core::roles::storage::{Dialect, Value};

use crate::api_error::{ApiError, ApiResult};
use crate::request::{ApiQuery, PreferMissing, PreferResolution, QueryRange, SelectItem};
pub use writer::Statement;

use expr::Projected;
use value::Target;
use writer::Sql;

/// Name of the result column holding the JSON body (`body`) or one JSON object per row (`j`).
pub const BODY: &str = "body";
/// Name of the result column holding one JSON object per row.
pub const ROW_JSON: &str = "j";
/// Name of the result column with the number of rows in the body.
pub const PAGE_TOTAL: &str = "page_total";
/// Name of the result column with the exact count of matching rows.
pub const TOTAL: &str = "total";

/// The introspected schema with the lookups requests need.
#[derive(Debug, Clone)]
pub struct Catalog {
    schema: Schema,
    dialect: Dialect,
    default_schema: Option<String>,
    /// Whether SQL in the database can observe a request's settings (see
    /// [`Catalog::session_observable`]); true unless the gate found otherwise.
    session_observable: bool,
}

impl Catalog {
    /// Serves `schema`; tables are looked up in `exposed[0]` when it holds any table, else
    /// by name alone (SQLite's `main`, MySQL's database name).
    pub fn new(schema: Schema, dialect: Dialect, exposed: &[String]) -> Catalog {
        let default_schema = exposed
            .iter()
            .find(|s| schema.tables.iter().any(|t| &t.schema == *s))
            .cloned();
        Catalog {
            schema,
            dialect,
            default_schema,
            session_observable: true,
        }
    }

    /// Records whether anything in the database can observe a request's identity settings
    /// (`request.jwt.claims`, read-only transactions): row-level security, user functions,
    /// or views, defaults and checks calling `current_setting`. When nothing can, PostgreSQL
    /// requests with an identity keep the one-statement fast path.
    pub fn with_session_observable(mut self, observable: bool) -> Catalog {
        self.session_observable = observable;
        self
    }

    /// Gives views the relationships of the tables they read ([`views`]): `cols` says
    /// which view columns read which table columns unchanged (on PostgreSQL, the rows of
    /// [`views::VIEW_COLUMNS_PG`]).
    pub fn with_view_columns(mut self, cols: &[views::ViewColumn]) -> Catalog {
        views::infer(&mut self.schema, cols);
        self
    }

    /// See [`Catalog::with_session_observable`].
    pub fn session_observable(&self) -> bool {
        self.session_observable
    }

    /// The dialect SQL is built for.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The introspected schema.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    fn exposed(&self) -> impl Iterator<Item = &Table> {
        self.schema
            .tables
            .iter()
            .filter(|t| self.default_schema.as_deref().is_none_or(|s| t.schema == s))
    }

    /// The tables and views requests can reach.
    pub(crate) fn exposed_tables(&self) -> impl Iterator<Item = &Table> {
        self.exposed()
    }

    /// Whether objects of `schema` are served (functions are looked up there).
    pub(crate) fn exposes_schema(&self, schema: &str) -> bool {
        self.default_schema.as_deref().is_none_or(|d| d == schema)
    }

    /// The table or view `name`, or PostgREST's PGRST205 (404) with the closest name.
    pub fn table(&self, name: &str) -> ApiResult<&Table> {
        if let Some(t) = self.exposed().find(|t| t.name == name) {
            return Ok(t);
        }
        let schema = self.default_schema.as_deref().unwrap_or("public");
        let mut e = ApiError::new(
            404,
            "PGRST205",
            format!("Could not find the table '{schema}.{name}' in the schema cache"),
        );
        if let Some(close) = expr::closest(name, self.exposed().map(|t| t.name.as_str())) {
            e = e.hint(format!("Perhaps you meant the table '{schema}.{close}'"));
        }
        Err(e)
    }

    /// `(tables and views, endpoints)`: four methods per table, GET (plus POST when
    /// insertable) per view.
    pub fn counts(&self) -> (usize, usize) {
        self.exposed().fold((0, 0), |(t, e), table| {
            let endpoints = match table.kind {
                TableKind::Table => 4,
                TableKind::View if table.insertable => 4,
                TableKind::View => 1,
            };
            (t + 1, e + endpoints)
        })
    }
}

/// How to read what a statement returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// One row with [`BODY`] (a JSON array), [`PAGE_TOTAL`] and, when counted, [`TOTAL`].
    Aggregated,
    /// One row per record, each with [`ROW_JSON`] (a JSON object).
    Rows,
    /// Nothing: run it with `execute` and use the affected-row count.
    Affected,
}

/// A statement and how to read its result.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The statement.
    pub statement: Statement,
    /// What it returns.
    pub shape: Shape,
    /// With [`Shape::Rows`] and a count asked for: the separate `COUNT(*)` statement.
    pub count: Option<Statement>,
}

/// Options of a read.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadOptions {
    /// The server's row cap (PostgREST's `db-max-rows`).
    pub max_rows: Option<u64>,
    /// `Prefer: count=exact` (planned and estimated counts are exact here).
    pub count: bool,
    /// Whether `select` may use aggregates (PostgREST's `db-aggregates-enabled`).
    pub aggregates: bool,
}

fn where_clause(w: &mut Sql, table: &Table, q: &ApiQuery<'_>) -> ApiResult<bool> {
    let mut first = true;
    let mut sep = |w: &mut Sql| {
        w.push(if first { " WHERE " } else { " AND " });
        first = false;
    };
    // Scoped parameters belong to the embedded resources of a write's response (checked
    // there, see `written`); without any, they name nothing.
    let embeds = written::embeds(q);
    for f in &q.filters {
        if let Some(p) = f.path.first() {
            if embeds {
                continue;
            }
            return Err(expr::not_embedded(p));
        }
        sep(w);
        expr::filter(w, table, &f.item)?;
    }
    for l in &q.logic {
        if let Some(p) = l.path.first() {
            if embeds {
                continue;
            }
            return Err(expr::not_embedded(p));
        }
        sep(w);
        expr::logic(w, table, &l.item)?;
    }
    Ok(!first)
}

fn order_limit(
    w: &mut Sql,
    root: &embed::Level<'_, '_>,
    q: &ApiQuery<'_>,
    range: QueryRange,
    max_rows: Option<u64>,
) -> ApiResult<()> {
    // Embedded levels' order and ranges are written by `embed`; their paths were checked.
    embed::order_by(w, root, q)?;
    let limit = match (range.limit, max_rows) {
        (Some(l), Some(m)) => Some(l.min(m)),
        (l, m) => l.or(m),
    };
    match limit {
        Some(l) => {
            w.push(" LIMIT ").number(l);
        }
        None if range.offset > 0 => {
            w.push(match w.dialect {
                Dialect::Postgres => "",
                Dialect::MySql => " LIMIT 18446744073709551615",
                Dialect::Sqlite => " LIMIT -1",
            });
        }
        None => {}
    }
    if range.offset > 0 {
        w.push(" OFFSET ").number(range.offset);
    }
    Ok(())
}

fn from(w: &mut Sql, table: &Table) {
    w.push(" FROM ").table(&table.schema, &table.name);
}

/// `SELECT count(*) FROM source WHERE ...`, as a sub-select or a statement of its own.
fn count_query(
    w: &mut Sql,
    source: &Sql,
    root: &embed::Level<'_, '_>,
    q: &ApiQuery<'_>,
) -> ApiResult<()> {
    w.push("SELECT count(*)");
    if w.dialect == Dialect::MySql {
        w.push(" AS ").ident(TOTAL);
    }
    w.splice(source);
    embed::where_clause(w, root, q)
}

/// A GET: the rows matching the filters, in order, in the requested window, as JSON.
pub fn read(
    cat: &Catalog,
    table: &Table,
    q: &ApiQuery<'_>,
    range: QueryRange,
    opts: ReadOptions,
) -> ApiResult<Plan> {
    let mut source = Sql::new(cat.dialect);
    from(&mut source, table);
    read_from(cat, table, &source, q, range, opts)
}

/// A read of `table`'s rows from `source` (` FROM "schema"."table"`, or a function call
/// aliased with the table's name).
fn read_from(
    cat: &Catalog,
    table: &Table,
    source: &Sql,
    q: &ApiQuery<'_>,
    range: QueryRange,
    opts: ReadOptions,
) -> ApiResult<Plan> {
    let d = cat.dialect;
    let root = embed::build(cat, table, &q.select)?;
    embed::check_paths(&root, q)?;
    if embed::aggregates(&root)?.gated && !opts.aggregates {
        return Err(aggregates_disabled());
    }
    let mut w = Sql::new(d);
    let inner = |w: &mut Sql| -> ApiResult<()> {
        w.push("SELECT ");
        match d {
            Dialect::Postgres => embed::select_list_pg(w, &root, q)?,
            Dialect::MySql | Dialect::Sqlite => {
                embed::json_object(w, &root, q)?;
                w.push(" AS ").ident(ROW_JSON);
            }
        }
        w.splice(source);
        embed::where_clause(w, &root, q)?;
        embed::group_by(w, &root, q)?;
        order_limit(w, &root, q, range, opts.max_rows)
    };
    if d == Dialect::MySql {
        inner(&mut w)?;
        let count = if opts.count {
            let mut c = Sql::new(d);
            count_query(&mut c, source, &root, q)?;
            Some(c.finish())
        } else {
            None
        };
        return Ok(Plan {
            statement: w.finish(),
            shape: Shape::Rows,
            count,
        });
    }
    w.push("SELECT ");
    if opts.count {
        w.push("(");
        count_query(&mut w, source, &root, q)?;
        w.push(") AS ").ident(TOTAL).push(", ");
    }
    w.push("count(*) AS ").ident(PAGE_TOTAL).push(", ");
    match d {
        Dialect::Postgres => w.push("coalesce(json_agg(_mg), '[]')::text AS "),
        _ => w.push("coalesce(json_group_array(json(_mg.j)), '[]') AS "),
    };
    w.ident(BODY).push(" FROM (");
    inner(&mut w)?;
    w.push(") _mg");
    Ok(Plan {
        statement: w.finish(),
        shape: Shape::Aggregated,
        count: None,
    })
}

/// PostgREST's answer to an aggregate when `db-aggregates-enabled` is off.
fn aggregates_disabled() -> ApiError {
    ApiError::new(400, "PGRST123", "Use of aggregate functions is not allowed")
        .hint("Aggregates are off by default: enable them in the server's configuration (db-aggregates-enabled)")
}

/// The planner's estimate of the rows a read matches (`Prefer: count=planned`, and
/// `count=estimated` above the row cap): on PostgreSQL `EXPLAIN (FORMAT JSON) SELECT 1 FROM
/// table WHERE ...`, whose top plan's `Plan Rows` it is; on MySQL/MariaDB plain `EXPLAIN`,
/// whose first row's `rows` is the estimate for the table read. SQLite keeps no row
/// estimates: `None`, and the count is exact. Read the answer with [`planned_rows`].
pub fn estimate(cat: &Catalog, table: &Table, q: &ApiQuery<'_>) -> ApiResult<Option<Statement>> {
    let explain = match cat.dialect {
        Dialect::Postgres => "EXPLAIN (FORMAT JSON) SELECT 1",
        Dialect::MySql => "EXPLAIN SELECT 1",
        Dialect::Sqlite => return Ok(None),
    };
    let root = embed::build(cat, table, &q.select)?;
    let mut w = Sql::new(cat.dialect);
    w.push(explain);
    from(&mut w, table);
    embed::where_clause(&mut w, &root, q)?;
    Ok(Some(w.finish()))
}

/// The row estimate in the answer to [`estimate`]'s statement.
pub fn planned_rows(dialect: Dialect, rows: &[magmobo_core::roles::storage::Row]) -> Option<u64> {
    let first = rows.first()?;
    if dialect == Dialect::MySql {
        // MariaDB names the column `rows`; its value is an integer (or its text).
        return match first.get("rows")? {
            Value::Int(n) => u64::try_from(*n).ok(),
            Value::Text(t) => t.parse().ok(),
            _ => None,
        };
    }
    let explain = match first.values.first()? {
        Value::Json(j) => j.clone(),
        Value::Text(t) => serde_json::from_str(t).ok()?,
        _ => return None,
    };
    let rows = explain.get(0)?.get("Plan")?.get("Plan Rows")?.clone();
    rows.as_u64()
        .or_else(|| rows.as_f64().map(|f| f.max(0.0) as u64))
}

/// What a write sends back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returning {
    /// Only the affected-row count.
    Nothing,
    /// The `select=` projection of each affected row.
    Selected,
    /// The primary key of each affected row (for `Location`).
    PrimaryKey,
    /// The primary-key columns of each affected row as plain columns, one row each (MySQL
    /// and SQLite; see [`written`]).
    Keys,
}

fn returning_items<'a, 't>(
    table: &'t Table,
    q: &ApiQuery<'a>,
    ret: Returning,
) -> ApiResult<Vec<Projected<'a, 't>>> {
    match ret {
        Returning::Selected => {
            let items = expr::projection(table, &q.select)?;
            if items.iter().any(|p| p.aggregate.is_some()) {
                return Err(ApiError::not_supported(
                    "aggregate functions in the response of a write",
                ));
            }
            Ok(items)
        }
        Returning::PrimaryKey | Returning::Keys | Returning::Nothing => {
            let items: Vec<SelectItem<'a>> = table
                .primary_key
                .iter()
                .map(|k| {
                    SelectItem::Field(crate::request::SelectField {
                        field: crate::request::Field {
                            name: std::borrow::Cow::Owned(k.clone()),
                            json_path: Vec::new(),
                        },
                        alias: None,
                        cast: None,
                        aggregate: None,
                        aggregate_cast: None,
                    })
                })
                .collect();
            expr::projection(table, &items)
        }
    }
}

/// Wraps a data-modifying statement so it returns what `ret` asks for.
fn finish_write(
    cat: &Catalog,
    table: &Table,
    q: &ApiQuery<'_>,
    ret: Returning,
    body: impl FnOnce(&mut Sql) -> ApiResult<()>,
) -> ApiResult<Plan> {
    let d = cat.dialect;
    let mut w = Sql::new(d);
    if ret == Returning::Nothing {
        body(&mut w)?;
        return Ok(Plan {
            statement: w.finish(),
            shape: Shape::Affected,
            count: None,
        });
    }
    if ret == Returning::Selected
        && d == Dialect::Postgres
        && (written::embeds(q) || written::ordered(q))
    {
        return written::pg(cat, table, q, body);
    }
    if ret == Returning::Keys {
        body(&mut w)?;
        w.push(" RETURNING ");
        for (i, k) in table.primary_key.iter().enumerate() {
            if i > 0 {
                w.push(", ");
            }
            w.ident(k);
        }
        return Ok(Plan {
            statement: w.finish(),
            shape: Shape::Rows,
            count: None,
        });
    }
    let items = returning_items(table, q, ret)?;
    match d {
        Dialect::Postgres => {
            w.push("WITH _mg_w AS (");
            body(&mut w)?;
            w.push(" RETURNING *) SELECT count(*) AS ")
                .ident(PAGE_TOTAL);
            w.push(", coalesce(json_agg(_mg), '[]')::text AS ")
                .ident(BODY);
            w.push(" FROM (SELECT ");
            expr::select_list_pg(&mut w, &items)?;
            w.push(" FROM _mg_w) _mg");
            Ok(Plan {
                statement: w.finish(),
                shape: Shape::Aggregated,
                count: None,
            })
        }
        Dialect::MySql | Dialect::Sqlite => {
            body(&mut w)?;
            w.push(" RETURNING ");
            expr::json_object(&mut w, &items)?;
            w.push(" AS ").ident(ROW_JSON);
            Ok(Plan {
                statement: w.finish(),
                shape: Shape::Rows,
                count: None,
            })
        }
    }
}

/// A POST payload, already parsed: one object or an array of objects.
#[derive(Debug, Clone, Copy)]
pub struct InsertOptions<'p> {
    /// The payload rows.
    pub rows: &'p [serde_json::Map<String, serde_json::Value>],
    /// `Prefer: missing=`.
    pub missing: Option<PreferMissing>,
    /// `Prefer: resolution=`: an upsert on the `on_conflict=` columns (default: the
    /// primary key).
    pub resolution: Option<PreferResolution>,
}

/// The columns an upsert conflicts on: `on_conflict=`, else the primary key.
fn conflict_columns<'t>(
    table: &'t Table,
    q: &ApiQuery<'_>,
) -> ApiResult<Vec<&'t magmobo_core::roles::schema::Column>> {
    let names: Vec<&str> = match &q.on_conflict {
        Some(cols) => cols.iter().map(|c| c.as_ref()).collect(),
        None => table.primary_key.iter().map(String::as_str).collect(),
    };
    if names.is_empty() {
        return Err(ApiError::not_supported(format!(
            "an upsert on '{}', which has no primary key, without on_conflict=",
            table.name
        )));
    }
    names.iter().map(|n| expr::column(table, n)).collect()
}

/// For an upsert: `SELECT count(*)` of the payload rows whose conflict columns already
/// exist, run before the upsert in the same transaction so the handler can tell inserted
/// rows (201) from merged ones (200). `None` when no payload row carries every key.
pub fn conflict_count(
    cat: &Catalog,
    table: &Table,
    q: &ApiQuery<'_>,
    rows: &[serde_json::Map<String, serde_json::Value>],
) -> ApiResult<Option<Statement>> {
    let d = cat.dialect;
    let keys = conflict_columns(table, q)?;
    let mut w = Sql::new(d);
    w.push("SELECT count(*) AS ").ident(TOTAL);
    from(&mut w, table);
    let mut any = false;
    for row in rows {
        let values: Option<Vec<&serde_json::Value>> = keys
            .iter()
            .map(|k| row.get(&k.name).filter(|v| !v.is_null()))
            .collect();
        let Some(values) = values else {
            continue;
        };
        w.push(if any { " OR (" } else { " WHERE (" });
        any = true;
        for (i, (k, v)) in keys.iter().zip(values).enumerate() {
            if i > 0 {
                w.push(" AND ");
            }
            let b = value::from_json(d, Target::of(k), v)?;
            w.ident(&k.name)
                .push(" = ")
                .bind_cast(b.value, b.cast.as_deref());
        }
        w.push(")");
    }
    Ok(any.then(|| w.finish()))
}

/// ` ON CONFLICT (...) DO UPDATE SET ...` / `DO NOTHING`, or MySQL's
/// ` ON DUPLICATE KEY UPDATE ...` (a no-op assignment for ignore-duplicates: `INSERT
/// IGNORE` would also swallow foreign-key and type errors).
fn conflict_clause(
    w: &mut Sql,
    table: &Table,
    q: &ApiQuery<'_>,
    cols: &[&magmobo_core::roles::schema::Column],
    resolution: PreferResolution,
) -> ApiResult<()> {
    let keys = conflict_columns(table, q)?;
    let merge = resolution == PreferResolution::MergeDuplicates && !cols.is_empty();
    if w.dialect == Dialect::MySql {
        w.push(" ON DUPLICATE KEY UPDATE ");
        if merge {
            for (i, c) in cols.iter().enumerate() {
                if i > 0 {
                    w.push(", ");
                }
                w.ident(&c.name).push(" = VALUES(").ident(&c.name).push(")");
            }
        } else {
            w.ident(&keys[0].name).push(" = ").ident(&keys[0].name);
        }
        return Ok(());
    }
    w.push(" ON CONFLICT (");
    for (i, k) in keys.iter().enumerate() {
        if i > 0 {
            w.push(", ");
        }
        w.ident(&k.name);
    }
    w.push(")");
    if !merge {
        w.push(" DO NOTHING");
        return Ok(());
    }
    w.push(" DO UPDATE SET ");
    for (i, c) in cols.iter().enumerate() {
        if i > 0 {
            w.push(", ");
        }
        w.ident(&c.name).push(" = excluded.").ident(&c.name);
    }
    Ok(())
}

/// PGRST204: a payload member names no column.
fn unknown_payload_column(table: &Table, name: &str) -> ApiError {
    ApiError::new(
        400,
        "PGRST204",
        format!(
            "Could not find the '{name}' column of '{}' in the schema cache",
            table.name
        ),
    )
}

/// An INSERT of every payload row. Columns come from `columns=` when given, else from the
/// first row's keys (every row must then have the same keys, as in PostgREST).
pub fn insert(
    cat: &Catalog,
    table: &Table,
    q: &ApiQuery<'_>,
    opts: InsertOptions<'_>,
    ret: Returning,
) -> ApiResult<Plan> {
    let d = cat.dialect;
    if table.kind == TableKind::View && !table.insertable {
        return Err(ApiError::new(
            405,
            "PGRST120",
            format!("Cannot insert into the view '{}'", table.name),
        ));
    }
    let names: Vec<String> = match &q.columns {
        Some(cols) => cols.iter().map(|c| c.to_string()).collect(),
        None => {
            let first: Vec<String> = opts
                .rows
                .first()
                .map(|r| r.keys().cloned().collect())
                .unwrap_or_default();
            for row in opts.rows.iter().skip(1) {
                if row.len() != first.len() || first.iter().any(|k| !row.contains_key(k)) {
                    return Err(ApiError::invalid_body("All object keys must match"));
                }
            }
            first
        }
    };
    let mut cols = Vec::with_capacity(names.len());
    for n in &names {
        cols.push(
            table
                .column(n)
                .ok_or_else(|| unknown_payload_column(table, n))?,
        );
    }
    let explicit = q.columns.is_some();
    finish_write(cat, table, q, ret, |w| {
        w.push("INSERT INTO ").table(&table.schema, &table.name);
        if cols.is_empty() {
            if opts.rows.len() > 1 && d != Dialect::MySql {
                return Err(ApiError::not_supported(
                    "inserting several rows that all use column defaults",
                ));
            }
            if d == Dialect::MySql {
                w.push(" () VALUES ");
                for i in 0..opts.rows.len().max(1) {
                    w.push(if i == 0 { "()" } else { ", ()" });
                }
            } else {
                w.push(" DEFAULT VALUES");
            }
            return Ok(());
        }
        w.push(" (");
        for (i, c) in cols.iter().enumerate() {
            if i > 0 {
                w.push(", ");
            }
            w.ident(&c.name);
        }
        w.push(") VALUES ");
        for (r, row) in opts.rows.iter().enumerate() {
            w.push(if r == 0 { "(" } else { ", (" });
            for (i, c) in cols.iter().enumerate() {
                if i > 0 {
                    w.push(", ");
                }
                match row.get(&c.name) {
                    Some(v) => {
                        let b = value::from_json(d, Target::of(c), v)?;
                        w.bind_cast(b.value, b.cast.as_deref());
                    }
                    None if explicit && opts.missing == Some(PreferMissing::Default) => {
                        default_value(w, c);
                    }
                    None => {
                        w.bind(Value::Null);
                    }
                }
            }
            w.push(")");
        }
        if let Some(r) = opts.resolution {
            conflict_clause(w, table, q, &cols, r)?;
        }
        Ok(())
    })
}

/// PUT: checks that the filters are exactly `pk=eq.value` for every primary-key column
/// (405 PGRST105 otherwise) and that the payload agrees with them (400 PGRST115), as
/// PostgREST does; the write itself is an upsert on the primary key.
pub fn check_put(
    table: &Table,
    q: &ApiQuery<'_>,
    payload: &serde_json::Map<String, serde_json::Value>,
) -> ApiResult<()> {
    use crate::request::{Operation, QuantOperator};
    let bad_filters = || {
        ApiError::new(
            405,
            "PGRST105",
            "Filters must include all and only primary key columns with 'eq' operators",
        )
    };
    if table.primary_key.is_empty()
        || !q.logic.is_empty()
        || q.filters.len() != table.primary_key.len()
    {
        return Err(bad_filters());
    }
    for k in &table.primary_key {
        let value = q.filters.iter().find_map(|f| match &f.item.operation {
            Operation::Quant {
                op: QuantOperator::Equal,
                quantifier: None,
                value,
            } if f.path.is_empty()
                && !f.item.negated
                && f.item.field.json_path.is_empty()
                && f.item.field.name == k.as_str() =>
            {
                Some(value)
            }
            _ => None,
        });
        let Some(value) = value else {
            return Err(bad_filters());
        };
        let given = match payload.get(k) {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Null) | None => None,
            Some(other) => Some(other.to_string()),
        };
        if given.as_deref() != Some(value.as_ref()) {
            return Err(ApiError::new(
                400,
                "PGRST115",
                "Payload values do not match URL in primary key column(s)",
            ));
        }
    }
    Ok(())
}

/// `DEFAULT`, or on SQLite (which has no `DEFAULT` in `VALUES`) the column's introspected
/// default expression, which comes from the database itself.
fn default_value(w: &mut Sql, c: &magmobo_core::roles::schema::Column) {
    match (w.dialect, &c.default) {
        (Dialect::Sqlite, Some(expr)) => {
            w.push("(").push(expr).push(")");
        }
        (Dialect::Sqlite, None) => {
            w.push("NULL");
        }
        _ => {
            w.push("DEFAULT");
        }
    }
}

/// The payload members a PATCH assigns (within `columns=` when given), with their columns.
type Assignments<'t, 'p> = Vec<(
    &'t magmobo_core::roles::schema::Column,
    &'p serde_json::Value,
)>;

fn assignments<'t, 'p>(
    table: &'t Table,
    q: &ApiQuery<'_>,
    payload: &'p serde_json::Map<String, serde_json::Value>,
) -> ApiResult<Assignments<'t, 'p>> {
    let mut sets = Vec::with_capacity(payload.len());
    for (k, v) in payload {
        if q.columns
            .as_ref()
            .is_some_and(|cols| !cols.iter().any(|c| c == k))
        {
            continue;
        }
        let c = table
            .column(k)
            .ok_or_else(|| unknown_payload_column(table, k))?;
        sets.push((c, v));
    }
    Ok(sets)
}

/// ` SET "a" = ?, "b" = ?`.
fn set_clause(w: &mut Sql, sets: &Assignments<'_, '_>) -> ApiResult<()> {
    w.push(" SET ");
    for (i, (c, v)) in sets.iter().enumerate() {
        if i > 0 {
            w.push(", ");
        }
        let b = value::from_json(w.dialect, Target::of(c), v)?;
        w.ident(&c.name)
            .push(" = ")
            .bind_cast(b.value, b.cast.as_deref());
    }
    Ok(())
}

/// The root `limit` and `offset` of a PATCH or DELETE, when it has either: a limited
/// update or delete touches at most `limit` rows after skipping `offset`.
pub(crate) fn write_range(q: &ApiQuery<'_>) -> Option<(Option<i64>, i64)> {
    let (limit, offset) = q
        .ranges
        .iter()
        .filter(|r| r.path.is_empty())
        .fold((None, None), |(l, o), r| {
            (r.item.limit.or(l), r.item.offset.or(o))
        });
    (limit.is_some() || offset.is_some()).then(|| (limit, offset.unwrap_or(0).max(0)))
}

/// The WHERE of a PATCH or DELETE (and of locating its rows): the root filters, and with a
/// root `limit`/`offset` PostgREST's limited update/delete: only the first rows in the
/// request's `order`, which must be given (PGRST109), identified by the primary key
/// (PostgreSQL, SQLite) or by the statement's own `ORDER BY ... LIMIT` (MariaDB).
fn write_where(w: &mut Sql, table: &Table, q: &ApiQuery<'_>) -> ApiResult<()> {
    let Some((limit, offset)) = write_range(q) else {
        return where_clause(w, table, q).map(|_| ());
    };
    let order: Vec<_> = q
        .order
        .iter()
        .filter(|o| o.path.is_empty())
        .flat_map(|o| o.item.iter())
        .collect();
    if order.is_empty() {
        return Err(ApiError::new(
            400,
            "PGRST109",
            "A 'limit' was applied without an explicit 'order'",
        )
        .hint("Apply an 'order' using unique column(s)"));
    }
    let order_by = |w: &mut Sql| -> ApiResult<()> {
        for (i, term) in order.iter().enumerate() {
            w.push(if i == 0 { " ORDER BY " } else { ", " });
            expr::order_term(w, table, term)?;
        }
        if let Some(limit) = limit {
            w.push(" LIMIT ").number(limit.max(0) as u64);
        }
        Ok(())
    };
    if w.dialect == Dialect::MySql {
        if offset > 0 {
            return Err(ApiError::not_supported(
                "'offset' on PATCH and DELETE on MySQL/MariaDB (its UPDATE and DELETE take a LIMIT only)",
            ));
        }
        where_clause(w, table, q)?;
        return order_by(w);
    }
    if table.primary_key.is_empty() {
        return Err(ApiError::not_supported(format!(
            "'limit' and 'offset' on PATCH and DELETE of '{}', which has no primary key to pick the rows by",
            table.name
        )));
    }
    let keys = |w: &mut Sql| {
        w.push("(");
        for (i, k) in table.primary_key.iter().enumerate() {
            if i > 0 {
                w.push(", ");
            }
            w.ident(k);
        }
        w.push(")");
    };
    w.push(" WHERE ");
    keys(w);
    w.push(" IN (SELECT ");
    keys(w);
    w.push(" FROM ").table(&table.schema, &table.name);
    where_clause(w, table, q)?;
    order_by(w)?;
    if limit.is_none() {
        w.push(match w.dialect {
            Dialect::Sqlite => " LIMIT -1",
            _ => "",
        });
    }
    if offset > 0 {
        w.push(" OFFSET ").number(offset as u64);
    }
    w.push(")");
    Ok(())
}

/// An UPDATE of the rows matching the filters with the payload's members; `None` when the
/// payload sets nothing (PostgREST then changes nothing). On MySQL/MariaDB, which has no
/// `UPDATE ... RETURNING`, rows are returned through [`written`] instead.
pub fn update(
    cat: &Catalog,
    table: &Table,
    q: &ApiQuery<'_>,
    payload: &serde_json::Map<String, serde_json::Value>,
    ret: Returning,
) -> ApiResult<Option<Plan>> {
    let d = cat.dialect;
    let sets = assignments(table, q, payload)?;
    if sets.is_empty() {
        return Ok(None);
    }
    if d == Dialect::MySql && ret != Returning::Nothing {
        return Err(ApiError::not_supported(
            "returning rows from one UPDATE statement on MySQL/MariaDB (read them back with              sql::written)",
        ));
    }
    finish_write(cat, table, q, ret, |w| {
        w.push("UPDATE ").table(&table.schema, &table.name);
        set_clause(w, &sets)?;
        write_where(w, table, q)
    })
    .map(Some)
}

/// A DELETE of the rows matching the filters.
pub fn delete(cat: &Catalog, table: &Table, q: &ApiQuery<'_>, ret: Returning) -> ApiResult<Plan> {
    finish_write(cat, table, q, ret, |w| {
        w.push("DELETE FROM ").table(&table.schema, &table.name);
        write_where(w, table, q)
    })
}

/// Whether the request has any root filter (PATCH and DELETE without one are refused
/// unless the gate allows unfiltered writes).
pub fn has_filters(q: &ApiQuery<'_>) -> bool {
    q.filters.iter().any(|f| f.path.is_empty()) || q.logic.iter().any(|l| l.path.is_empty())
}

#[cfg(test)]
mod tests;
