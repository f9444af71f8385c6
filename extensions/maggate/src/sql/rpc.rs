//! RPC on PostgreSQL: `/rpc/{fn}` calls an introspected function with named arguments, each
//! a bind cast to the parameter's type. Functions returning rows of a table type are read
//! like that table (`select`, filters, `order`, `limit`, embedding), and so are functions
//! declaring their own result columns (`RETURNS TABLE (...)`, OUT parameters) as a table of
//! those columns; other set-returning functions return a JSON array of their values, scalar
//! functions the bare JSON value. A function whose only parameter is an unnamed `json` or
//! `jsonb` receives the whole POST body, as in PostgREST.

use magmobo_core::roles::schema::{ColumnKind, Function, FunctionParam, Table, TableKind};
use magmobo_core::roles::storage::Dialect;

use super::value::{self, Target};
use super::writer::Sql;
use super::{BODY, Catalog, PAGE_TOTAL, Plan, ReadOptions, Shape};
use crate::api_error::{ApiError, ApiResult};
use crate::request::{ApiQuery, QueryRange, SelectItem};

/// An argument as the request carries it.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// A JSON body member (POST).
    Json(serde_json::Value),
    /// A query-string value (GET).
    Text(String),
}

/// What a call returns, for the handler.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The statement (one row: [`BODY`] and [`PAGE_TOTAL`]).
    pub plan: Plan,
    /// Whether [`BODY`] is a single JSON value rather than an array of rows.
    pub scalar: bool,
}

/// 400: RPC is refused on MySQL/MariaDB and SQLite.
pub fn postgres_only(d: Dialect) -> ApiError {
    let name = match d {
        Dialect::Postgres => "PostgreSQL",
        Dialect::MySql => "MySQL/MariaDB",
        Dialect::Sqlite => "SQLite",
    };
    ApiError::new(400, "PGRST127", "Feature not implemented").details(format!(
        "RPC (calling functions under /rpc) is available on PostgreSQL only, not on {name}"
    ))
}

/// The function `name` in the exposed schema whose parameters accept `args` (every name
/// a parameter, every parameter without a default given); 404 PGRST202 otherwise.
pub fn find<'c>(cat: &'c Catalog, name: &str, args: &[&str]) -> ApiResult<&'c Function> {
    let schema = cat
        .default_schema
        .clone()
        .unwrap_or_else(|| "public".to_owned());
    let fits = |f: &Function| {
        args.iter().all(|a| f.params.iter().any(|p| p.name == *a))
            && f.params
                .iter()
                .all(|p| p.has_default || args.contains(&p.name.as_str()))
    };
    cat.schema()
        .functions
        .iter()
        .filter(|f| f.name == name && f.schema == schema)
        .filter(|f| fits(f))
        .min_by_key(|f| f.params.len())
        .ok_or_else(|| {
            let listed = args.join(", ");
            ApiError::new(
                404,
                "PGRST202",
                format!(
                    "Could not find the function {schema}.{name}({listed}) in the schema cache"
                ),
            )
            .details(format!(
                "Searched for the function {schema}.{name} with parameters {listed}, but no \
                 matches were found in the schema cache."
            ))
        })
}

/// The function `name` in the exposed schema that takes one unnamed `json` or `jsonb`
/// parameter: PostgREST passes it the whole request body (any JSON value, not only an
/// object of named arguments).
pub fn single_unnamed_json<'c>(cat: &'c Catalog, name: &str) -> Option<&'c Function> {
    let schema = cat.default_schema.as_deref().unwrap_or("public");
    cat.schema().functions.iter().find(|f| {
        f.name == name
            && f.schema == schema
            && matches!(f.params.as_slice(), [p] if p.name.is_empty()
                && matches!(p.data_type.as_str(), "json" | "jsonb"))
    })
}

/// The type family of a parameter type as PostgreSQL names it.
fn kind_of(data_type: &str) -> ColumnKind {
    let t = data_type.to_ascii_lowercase();
    if t.ends_with("[]") {
        return ColumnKind::Array;
    }
    match t.as_str() {
        "smallint" | "integer" | "bigint" => ColumnKind::Integer,
        "numeric" | "real" | "double precision" => ColumnKind::Number,
        "boolean" => ColumnKind::Boolean,
        "json" | "jsonb" => ColumnKind::Json,
        "uuid" => ColumnKind::Uuid,
        "bytea" => ColumnKind::Binary,
        "date" => ColumnKind::Temporal,
        _ if t.starts_with("timestamp") || t.starts_with("time") => ColumnKind::Temporal,
        _ if t.starts_with("character") || t == "text" => ColumnKind::Text,
        _ => ColumnKind::Other,
    }
}

/// `"schema"."fn"("a" := CAST($1 AS integer), ...)`.
fn call_expr(w: &mut Sql, f: &Function, args: &[(&FunctionParam, &Arg)]) -> ApiResult<()> {
    w.table(&f.schema, &f.name).push("(");
    for (i, (p, a)) in args.iter().enumerate() {
        if i > 0 {
            w.push(", ");
        }
        let target = Target {
            kind: kind_of(&p.data_type),
            data_type: &p.data_type,
        };
        let b = match a {
            Arg::Json(v) => value::from_json(w.dialect, target, v)?,
            Arg::Text(s) => value::from_text(w.dialect, target, s)?,
        };
        // An unnamed parameter (only ever the single JSON one) is passed by position.
        if !p.name.is_empty() {
            w.ident(&p.name).push(" := ");
        }
        w.bind_cast(b.value, b.cast.as_deref());
    }
    w.push(")");
    Ok(())
}

/// The table whose rows the function returns (`RETURNS SETOF items` or `RETURNS items`).
fn row_table<'c>(cat: &'c Catalog, f: &Function) -> Option<&'c Table> {
    let name = f.returns.rsplit('.').next().unwrap_or(&f.returns);
    cat.exposed().find(|t| t.name == name.trim_matches('"'))
}

/// The rows `f` declares itself (`RETURNS TABLE (a int, b text)`, OUT parameters) as a
/// table named after the function, so `select`, filters, `order` and limits apply to them.
/// A function with a single OUT parameter returns that value, not rows: none then.
fn declared_rows(f: &Function) -> Option<Table> {
    let named = f.returns_columns.iter().all(|c| !c.name.is_empty());
    let rows = f.returns_set || f.returns_columns.len() > 1;
    (named && rows && !f.returns_columns.is_empty()).then(|| Table {
        schema: f.schema.clone(),
        name: f.name.clone(),
        kind: TableKind::View,
        columns: f.returns_columns.clone(),
        primary_key: Vec::new(),
        unique: Vec::new(),
        foreign_keys: Vec::new(),
        insertable: false,
        comment: None,
    })
}

/// Builds the call of `f` with `args` (names already checked by [`find`]).
pub fn call(
    cat: &Catalog,
    f: &Function,
    args: &[(String, Arg)],
    q: &ApiQuery<'_>,
    range: QueryRange,
    opts: ReadOptions,
) -> ApiResult<Call> {
    if cat.dialect != Dialect::Postgres {
        return Err(postgres_only(cat.dialect));
    }
    let mut bound = Vec::with_capacity(args.len());
    for (name, a) in args {
        if let Some(p) = f.params.iter().find(|p| &p.name == name) {
            bound.push((p, a));
        }
    }
    let mut source = Sql::new(cat.dialect);
    if let Some(table) = row_table(cat, f) {
        // Read the rows like the table itself, aliased with its name so columns and
        // embeddings resolve against it.
        source.push(" FROM ");
        call_expr(&mut source, f, &bound)?;
        source.push(" AS ").ident(&table.name);
        let mut plan = super::read_from(cat, table, &source, q, range, opts)?;
        if !f.returns_set {
            plan.shape = Shape::Aggregated;
        }
        return Ok(Call {
            plan,
            scalar: !f.returns_set,
        });
    }
    if let Some(table) = declared_rows(f) {
        // `RETURNS TABLE (...)` / OUT parameters: read like a table of those columns.
        source.push(" FROM ");
        call_expr(&mut source, f, &bound)?;
        source.push(" AS ").ident(&table.name);
        let mut plan = super::read_from(cat, &table, &source, q, range, opts)?;
        if !f.returns_set {
            plan.shape = Shape::Aggregated;
        }
        return Ok(Call {
            plan,
            scalar: !f.returns_set,
        });
    }
    let refinements = !q.filters.is_empty()
        || !q.logic.is_empty()
        || !q.order.is_empty()
        || range != QueryRange::default()
        || q.select.iter().any(|s| *s != SelectItem::Star);
    if refinements {
        return Err(ApiError::not_supported(format!(
            "select, filters, order and limits on '{}', which returns {} rather than rows of a table",
            f.name, f.returns
        )));
    }
    let mut w = Sql::new(cat.dialect);
    if f.returns_set {
        w.push("SELECT count(*) AS ").ident(PAGE_TOTAL);
        w.push(", coalesce(json_agg(_mg), '[]')::text AS ")
            .ident(BODY)
            .push(" FROM ");
        call_expr(&mut w, f, &bound)?;
        w.push(" AS _mg");
    } else {
        w.push("SELECT 1 AS ")
            .ident(PAGE_TOTAL)
            .push(", coalesce(to_json(");
        call_expr(&mut w, f, &bound)?;
        w.push(")::text, 'null') AS ").ident(BODY);
    }
    Ok(Call {
        plan: Plan {
            statement: w.finish(),
            shape: Shape::Aggregated,
            count: None,
        },
        scalar: !f.returns_set,
    })
}
