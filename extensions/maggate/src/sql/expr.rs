//! Expressions over one table: columns (with JSON paths), filters, logic trees, `ORDER BY`
//! terms and `select=` projections, each written for the dialect with every user value bound.

use std::borrow::Cow;

use magmobo_core::roles::schema::{Column, ColumnKind, Table};
use magmobo_core::roles::storage::{Dialect, Value};

use super::value::{self, Target};
use super::writer::Sql;
use crate::api_error::{ApiError, ApiResult};
use crate::request::{
    Aggregate, Field, Filter, FtsOperator, IsValue, JsonArrow, JsonOperand, LogicOperator,
    LogicTree, Operation, OrderDirection, OrderNulls, OrderTerm, QuantOperator, Quantifier,
    SelectItem, SimpleOperator,
};

/// The column `name` of `table`, or PostgreSQL's 42703 with the closest name as the hint.
pub(crate) fn column<'t>(table: &'t Table, name: &str) -> ApiResult<&'t Column> {
    table.column(name).ok_or_else(|| {
        let mut e = ApiError::new(
            400,
            "42703",
            format!("column {}.{} does not exist", table.name, name),
        );
        if let Some(close) = closest(name, table.columns.iter().map(|c| c.name.as_str())) {
            e = e.hint(format!(
                "Perhaps you meant to reference the column \"{}.{}\".",
                table.name, close
            ));
        }
        e
    })
}

/// The candidate nearest to `name` by edit distance, if it is near enough to be a typo.
pub(crate) fn closest<'c>(
    name: &str,
    candidates: impl Iterator<Item = &'c str>,
) -> Option<&'c str> {
    let limit = (name.chars().count() / 2).max(2);
    candidates
        .map(|c| (strsim::levenshtein(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Writes a column with its JSON path; returns the type of the result.
pub(crate) fn field<'t>(w: &mut Sql, table: &'t Table, f: &Field<'_>) -> ApiResult<Target<'t>> {
    let col = column(table, &f.name)?;
    if f.json_path.is_empty() {
        w.ident(&col.name);
        return Ok(Target::of(col));
    }
    let json_ok = match col.kind {
        ColumnKind::Json => true,
        ColumnKind::Text | ColumnKind::Other => w.dialect != Dialect::Postgres,
        _ => false,
    };
    if !json_ok {
        return Err(ApiError::new(
            400,
            "42883",
            format!("operator does not exist: {} -> unknown", col.data_type),
        )
        .hint("JSON paths (-> and ->>) apply to json columns only."));
    }
    let last = f.json_path.last().map_or(JsonArrow::Arrow, |op| op.arrow);
    match w.dialect {
        Dialect::Postgres => {
            w.ident(&col.name);
            for op in &f.json_path {
                w.push(match op.arrow {
                    JsonArrow::Arrow => "->",
                    JsonArrow::DoubleArrow => "->>",
                });
                match &op.operand {
                    JsonOperand::Key(k) => {
                        w.bind(Value::Text(k.to_string()));
                    }
                    JsonOperand::Index(i) => {
                        let n = parse_index(i)?;
                        w.push("(").push(&n.to_string()).push(")");
                    }
                }
            }
        }
        Dialect::MySql => {
            let path = json_path_string(w.dialect, f)?;
            if last == JsonArrow::DoubleArrow {
                w.push("JSON_UNQUOTE(");
            }
            w.push("JSON_EXTRACT(").ident(&col.name).push(", ");
            w.bind(Value::Text(path)).push(")");
            if last == JsonArrow::DoubleArrow {
                w.push(")");
            }
        }
        Dialect::Sqlite => {
            let path = json_path_string(w.dialect, f)?;
            w.push("(").ident(&col.name);
            w.push(if last == JsonArrow::DoubleArrow {
                " ->> "
            } else {
                " -> "
            });
            w.bind(Value::Text(path)).push(")");
        }
    }
    Ok(match last {
        JsonArrow::Arrow => Target::JSON,
        JsonArrow::DoubleArrow => Target::TEXT,
    })
}

fn parse_index(i: &str) -> ApiResult<i64> {
    i.parse::<i64>()
        .map_err(|_| ApiError::invalid_text("integer", i))
}

/// `$."key"[0]` for MySQL and SQLite (`[last]`/`[#-1]` for negative indexes).
fn json_path_string(dialect: Dialect, f: &Field<'_>) -> ApiResult<String> {
    let mut p = String::from("$");
    for op in &f.json_path {
        match &op.operand {
            JsonOperand::Key(k) => {
                p.push_str(".\"");
                for c in k.chars() {
                    if c == '"' || c == '\\' {
                        p.push('\\');
                    }
                    p.push(c);
                }
                p.push('"');
            }
            JsonOperand::Index(i) => {
                let n = parse_index(i)?;
                let s = match (n < 0, dialect) {
                    (false, _) => format!("[{n}]"),
                    (true, Dialect::Sqlite) => format!("[#{n}]"),
                    (true, _) if n == -1 => "[last]".to_owned(),
                    (true, _) => format!("[last-{}]", n.unsigned_abs() - 1),
                };
                p.push_str(&s);
            }
        }
    }
    Ok(p)
}

fn op_symbol(op: QuantOperator) -> &'static str {
    match op {
        QuantOperator::Equal => " = ",
        QuantOperator::GreaterThanEqual => " >= ",
        QuantOperator::GreaterThan => " > ",
        QuantOperator::LessThanEqual => " <= ",
        QuantOperator::LessThan => " < ",
        QuantOperator::Like => " LIKE ",
        QuantOperator::ILike => " ILIKE ",
        QuantOperator::Match => " ~ ",
        QuantOperator::IMatch => " ~* ",
    }
}

fn dialect_name(d: Dialect) -> &'static str {
    match d {
        Dialect::Postgres => "PostgreSQL",
        Dialect::MySql => "MySQL/MariaDB",
        Dialect::Sqlite => "SQLite",
    }
}

fn unsupported_op(d: Dialect, op: &str) -> ApiError {
    ApiError::not_supported(format!(
        "the '{op}' operator is not available on {}",
        dialect_name(d)
    ))
}

/// Writes one filter as a boolean expression.
pub(crate) fn filter(w: &mut Sql, table: &Table, f: &Filter<'_>) -> ApiResult<()> {
    if f.negated {
        w.push("NOT (");
    }
    // Each operand may need the left-hand side again (quantifiers), so it is rendered once
    // into its own buffer whose binds are replayed in order.
    let mut lhs = Sql::new(w.dialect);
    let target = field(&mut lhs, table, &f.field)?;
    operation(w, &lhs, target, &f.operation)?;
    if f.negated {
        w.push(")");
    }
    Ok(())
}

fn splice(w: &mut Sql, lhs: &Sql) {
    w.splice(lhs);
}

fn operation(w: &mut Sql, lhs: &Sql, target: Target<'_>, op: &Operation<'_>) -> ApiResult<()> {
    let d = w.dialect;
    match op {
        Operation::Quant {
            op,
            quantifier: None,
            value,
        } => compare(w, lhs, target, *op, value)?,
        Operation::Quant {
            op,
            quantifier: Some(q),
            value,
        } => {
            let items = value::split_array_literal(value);
            if items.is_empty() {
                w.push(match q {
                    Quantifier::Any => "1 = 0",
                    Quantifier::All => "1 = 1",
                });
                return Ok(());
            }
            w.push("(");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    w.push(match q {
                        Quantifier::Any => " OR ",
                        Quantifier::All => " AND ",
                    });
                }
                compare(w, lhs, target, *op, item)?;
            }
            w.push(")");
        }
        Operation::Simple {
            op: SimpleOperator::NotEqual,
            value,
        } => {
            let b = value::from_text(d, target, value)?;
            splice(w, lhs);
            w.push(" <> ").bind_cast(b.value, b.cast.as_deref());
        }
        Operation::Simple { op, value } => simple(w, lhs, target, *op, value)?,
        Operation::In(items) => {
            // `in.()` parses as one empty item; PostgREST reads it as the empty list.
            if items.is_empty() || (items.len() == 1 && items[0].is_empty()) {
                w.push("1 = 0");
                return Ok(());
            }
            splice(w, lhs);
            w.push(" IN (");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    w.push(", ");
                }
                let b = value::from_text(d, target, item)?;
                w.bind_cast(b.value, b.cast.as_deref());
            }
            w.push(")");
        }
        Operation::Is(v) => {
            splice(w, lhs);
            w.push(match (v, d) {
                (IsValue::Null, _) => " IS NULL",
                (IsValue::NotNull, _) => " IS NOT NULL",
                (IsValue::True, _) => " IS TRUE",
                (IsValue::False, _) => " IS FALSE",
                (IsValue::Unknown, Dialect::Sqlite) => " IS NULL",
                (IsValue::Unknown, _) => " IS UNKNOWN",
            });
        }
        Operation::IsDistinctFrom(value) => {
            let b = value::from_text(d, target, value)?;
            match d {
                Dialect::Postgres => {
                    splice(w, lhs);
                    w.push(" IS DISTINCT FROM ");
                }
                Dialect::Sqlite => {
                    splice(w, lhs);
                    w.push(" IS NOT ");
                }
                Dialect::MySql => {
                    w.push("NOT (");
                    splice(w, lhs);
                    w.push(" <=> ");
                }
            }
            w.bind_cast(b.value, b.cast.as_deref());
            if d == Dialect::MySql {
                w.push(")");
            }
        }
        Operation::Fts {
            op,
            language,
            value,
        } => {
            if d != Dialect::Postgres {
                return Err(unsupported_op(d, op.as_str()));
            }
            if target.data_type == "tsvector" {
                splice(w, lhs);
            } else {
                w.push("to_tsvector(");
                if let Some(l) = language {
                    w.bind(Value::Text((*l).to_owned())).push("::regconfig, ");
                }
                splice(w, lhs);
                w.push(")");
            }
            w.push(" @@ ").push(match op {
                FtsOperator::Fts => "to_tsquery(",
                FtsOperator::Plain => "plainto_tsquery(",
                FtsOperator::Phrase => "phraseto_tsquery(",
                FtsOperator::Websearch => "websearch_to_tsquery(",
            });
            if let Some(l) = language {
                w.bind(Value::Text((*l).to_owned())).push("::regconfig, ");
            }
            w.bind(Value::Text(value.to_string())).push(")");
        }
    }
    Ok(())
}

/// `lhs op value` for the quantifiable operators.
fn compare(
    w: &mut Sql,
    lhs: &Sql,
    target: Target<'_>,
    op: QuantOperator,
    value: &str,
) -> ApiResult<()> {
    let d = w.dialect;
    match op {
        QuantOperator::Like | QuantOperator::ILike => {
            // PostgREST lets `*` stand for `%` so patterns survive URLs unencoded.
            let pattern = value.replace('*', "%");
            let text_lhs = |w: &mut Sql| {
                if d == Dialect::Postgres && target.kind != ColumnKind::Text {
                    w.push("CAST(");
                    splice(w, lhs);
                    w.push(" AS text)");
                } else {
                    splice(w, lhs);
                }
            };
            match (d, op) {
                (Dialect::Postgres, _) => {
                    text_lhs(w);
                    w.push(op_symbol(op)).bind(Value::Text(pattern));
                }
                // SQLite's LIKE ignores ASCII case; GLOB is its case-sensitive twin.
                (Dialect::Sqlite, QuantOperator::Like) => {
                    splice(w, lhs);
                    w.push(" GLOB ").bind(Value::Text(like_to_glob(&pattern)));
                }
                (Dialect::Sqlite, _) => {
                    splice(w, lhs);
                    w.push(" LIKE ").bind(Value::Text(pattern));
                }
                (Dialect::MySql, QuantOperator::Like) => {
                    w.push("CAST(");
                    splice(w, lhs);
                    w.push(" AS BINARY) LIKE ").bind(Value::Text(pattern));
                }
                (Dialect::MySql, _) => {
                    w.push("LOWER(");
                    splice(w, lhs);
                    w.push(") LIKE LOWER(").bind(Value::Text(pattern)).push(")");
                }
            }
        }
        QuantOperator::Match | QuantOperator::IMatch => match d {
            Dialect::Postgres => {
                if target.kind == ColumnKind::Text {
                    splice(w, lhs);
                } else {
                    w.push("CAST(");
                    splice(w, lhs);
                    w.push(" AS text)");
                }
                w.push(op_symbol(op)).bind(Value::Text(value.to_owned()));
            }
            Dialect::MySql => {
                splice(w, lhs);
                let flag = if op == QuantOperator::Match {
                    "(?-i)"
                } else {
                    "(?i)"
                };
                w.push(" REGEXP CONCAT('").push(flag).push("', ");
                w.bind(Value::Text(value.to_owned())).push(")");
            }
            Dialect::Sqlite => return Err(unsupported_op(d, op.as_str())),
        },
        _ => {
            let b = value::from_text(d, target, value)?;
            splice(w, lhs);
            w.push(op_symbol(op)).bind_cast(b.value, b.cast.as_deref());
        }
    }
    Ok(())
}

/// Translates a LIKE pattern to GLOB: `%` → `*`, `_` → `?`, GLOB's own metacharacters
/// escaped with brackets.
fn like_to_glob(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 4);
    for c in pattern.chars() {
        match c {
            '%' => out.push('*'),
            '_' => out.push('?'),
            '*' => out.push_str("[*]"),
            '?' => out.push_str("[?]"),
            '[' => out.push_str("[[]"),
            c => out.push(c),
        }
    }
    out
}

fn simple(
    w: &mut Sql,
    lhs: &Sql,
    target: Target<'_>,
    op: SimpleOperator,
    value: &str,
) -> ApiResult<()> {
    let d = w.dialect;
    match d {
        Dialect::Postgres => {
            let sym = match op {
                SimpleOperator::NotEqual => " <> ",
                SimpleOperator::Contains => " @> ",
                SimpleOperator::Contained => " <@ ",
                SimpleOperator::Overlap => " && ",
                SimpleOperator::StrictlyLeft => " << ",
                SimpleOperator::StrictlyRight => " >> ",
                SimpleOperator::NotExtendsRight => " &< ",
                SimpleOperator::NotExtendsLeft => " &> ",
                SimpleOperator::Adjacent => " -|- ",
            };
            let b = value::from_text(d, target, value)?;
            splice(w, lhs);
            w.push(sym).bind_cast(b.value, b.cast.as_deref());
        }
        Dialect::MySql
            if target.kind == ColumnKind::Json
                && matches!(op, SimpleOperator::Contains | SimpleOperator::Contained) =>
        {
            w.push("JSON_CONTAINS(");
            if op == SimpleOperator::Contains {
                splice(w, lhs);
                w.push(", ").bind(Value::Text(value.to_owned()));
            } else {
                w.bind(Value::Text(value.to_owned())).push(", ");
                splice(w, lhs);
            }
            w.push(")");
        }
        _ => return Err(unsupported_op(d, op.as_str())),
    }
    Ok(())
}

/// Writes a logic tree.
pub(crate) fn logic(w: &mut Sql, table: &Table, tree: &LogicTree<'_>) -> ApiResult<()> {
    match tree {
        LogicTree::Stmnt(f) => filter(w, table, f),
        LogicTree::Expr {
            negated,
            op,
            children,
        } => {
            if *negated {
                w.push("NOT ");
            }
            w.push("(");
            for (i, child) in children.iter().enumerate() {
                if i > 0 {
                    w.push(match op {
                        LogicOperator::And => " AND ",
                        LogicOperator::Or => " OR ",
                    });
                }
                logic(w, table, child)?;
            }
            w.push(")");
            Ok(())
        }
    }
}

/// Writes one `ORDER BY` term over a column of `table`.
pub(crate) fn order_term(w: &mut Sql, table: &Table, t: &OrderTerm<'_>) -> ApiResult<()> {
    if let Some(rel) = &t.relation {
        return Err(not_embedded(rel));
    }
    let mut lhs = Sql::new(w.dialect);
    field(&mut lhs, table, &t.field)?;
    order_by_value(w, &lhs, t);
    Ok(())
}

/// Writes one `ORDER BY` term over an already written value (a column, or a scalar
/// subquery reading a to-one embedded resource's column).
pub(crate) fn order_by_value(w: &mut Sql, lhs: &Sql, t: &OrderTerm<'_>) {
    let dir = match t.direction {
        Some(OrderDirection::Desc) => " DESC",
        _ => " ASC",
    };
    if w.dialect == Dialect::MySql {
        // MySQL has no NULLS FIRST/LAST: sort on "is null" first.
        if let Some(nulls) = t.nulls {
            w.push("(");
            splice(w, lhs);
            w.push(" IS NULL)").push(match nulls {
                OrderNulls::First => " DESC, ",
                OrderNulls::Last => " ASC, ",
            });
        }
        splice(w, lhs);
        w.push(dir);
        return;
    }
    splice(w, lhs);
    w.push(dir);
    match t.nulls {
        Some(OrderNulls::First) => {
            w.push(" NULLS FIRST");
        }
        Some(OrderNulls::Last) => {
            w.push(" NULLS LAST");
        }
        None => {}
    }
}

/// PGRST108: a parameter names an embedded resource the request does not embed.
pub(crate) fn not_embedded(name: &str) -> ApiError {
    ApiError::new(
        400,
        "PGRST108",
        format!("'{name}' is not an embedded resource in this request"),
    )
    .hint(format!(
        "Verify that '{name}' is included in the 'select' query parameter."
    ))
}

/// One output member: its JSON key and how to compute it.
pub(crate) struct Projected<'a, 't> {
    pub key: Cow<'a, str>,
    pub field: Field<'a>,
    pub cast: Option<CastTo>,
    /// `.sum()` and friends, or a bare `count()` (whose field is `*`).
    pub aggregate: Option<Aggregate>,
    /// `::type` applied to the aggregate's result.
    pub aggregate_cast: Option<CastTo>,
    /// A bare `count` (no parentheses) on a table without such a column: PostgREST's
    /// legacy `count(*)`, served even when aggregates are off.
    pub legacy_count: bool,
    pub table: &'t Table,
}

impl Projected<'_, '_> {
    /// A bare `count()`, which reads no column.
    fn is_bare_count(&self) -> bool {
        self.field.name == "*" && self.aggregate == Some(Aggregate::Count)
    }
}

/// A `::type` cast from the allow-list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CastTo {
    Text,
    Integer,
    BigInt,
    Numeric,
    Double,
    Boolean,
    Json,
    Date,
    Timestamp,
    TimestampTz,
    Uuid,
}

const CASTS: &[(&str, CastTo)] = &[
    ("text", CastTo::Text),
    ("varchar", CastTo::Text),
    ("int", CastTo::Integer),
    ("int4", CastTo::Integer),
    ("integer", CastTo::Integer),
    ("smallint", CastTo::Integer),
    ("int8", CastTo::BigInt),
    ("bigint", CastTo::BigInt),
    ("numeric", CastTo::Numeric),
    ("decimal", CastTo::Numeric),
    ("real", CastTo::Double),
    ("float4", CastTo::Double),
    ("float8", CastTo::Double),
    ("double", CastTo::Double),
    ("bool", CastTo::Boolean),
    ("boolean", CastTo::Boolean),
    ("json", CastTo::Json),
    ("jsonb", CastTo::Json),
    ("date", CastTo::Date),
    ("timestamp", CastTo::Timestamp),
    ("timestamptz", CastTo::TimestampTz),
    ("uuid", CastTo::Uuid),
];

impl CastTo {
    /// Looks a `::type` up in the allow-list; anything else is refused.
    pub fn parse(t: &str) -> ApiResult<CastTo> {
        let lower = t.to_ascii_lowercase();
        CASTS
            .iter()
            .find(|(n, _)| *n == lower)
            .map(|(_, c)| *c)
            .ok_or_else(|| {
                let allowed: Vec<&str> = CASTS.iter().map(|(n, _)| *n).collect();
                ApiError::new(
                    400,
                    "42704",
                    format!("type \"{t}\" cannot be used in a cast"),
                )
                .hint(format!("Allowed casts: {}", allowed.join(", ")))
            })
    }

    fn target(self) -> Target<'static> {
        let (kind, data_type) = match self {
            CastTo::Text => (ColumnKind::Text, "text"),
            CastTo::Integer => (ColumnKind::Integer, "integer"),
            CastTo::BigInt => (ColumnKind::Integer, "bigint"),
            CastTo::Numeric => (ColumnKind::Number, "numeric"),
            CastTo::Double => (ColumnKind::Number, "double precision"),
            CastTo::Boolean => (ColumnKind::Boolean, "boolean"),
            CastTo::Json => (ColumnKind::Json, "jsonb"),
            CastTo::Date => (ColumnKind::Temporal, "date"),
            CastTo::Timestamp => (ColumnKind::Temporal, "timestamp"),
            CastTo::TimestampTz => (ColumnKind::Temporal, "timestamptz"),
            CastTo::Uuid => (ColumnKind::Uuid, "uuid"),
        };
        Target { kind, data_type }
    }

    fn write(self, w: &mut Sql, inner: &Sql) -> ApiResult<()> {
        let d = w.dialect;
        let (prefix, suffix): (&str, Cow<'static, str>) = match (d, self) {
            (Dialect::Postgres, c) => ("CAST(", format!(" AS {})", c.target().data_type).into()),
            (Dialect::MySql, CastTo::Text | CastTo::Uuid) => ("CAST(", " AS CHAR)".into()),
            (Dialect::MySql, CastTo::Integer | CastTo::BigInt | CastTo::Boolean) => {
                ("CAST(", " AS SIGNED)".into())
            }
            (Dialect::MySql, CastTo::Numeric) => ("CAST(", " AS DECIMAL(65,10))".into()),
            (Dialect::MySql, CastTo::Double) => ("CAST(", " AS DOUBLE)".into()),
            (Dialect::MySql, CastTo::Date) => ("CAST(", " AS DATE)".into()),
            (Dialect::MySql, CastTo::Timestamp | CastTo::TimestampTz) => {
                ("CAST(", " AS DATETIME)".into())
            }
            (Dialect::MySql, CastTo::Json) => ("JSON_EXTRACT(", ", '$')".into()),
            (Dialect::Sqlite, CastTo::Text | CastTo::Uuid) => ("CAST(", " AS TEXT)".into()),
            (Dialect::Sqlite, CastTo::Integer | CastTo::BigInt | CastTo::Boolean) => {
                ("CAST(", " AS INTEGER)".into())
            }
            (Dialect::Sqlite, CastTo::Numeric) => ("CAST(", " AS NUMERIC)".into()),
            (Dialect::Sqlite, CastTo::Double) => ("CAST(", " AS REAL)".into()),
            (Dialect::Sqlite, CastTo::Date) => ("date(", ")".into()),
            (Dialect::Sqlite, CastTo::Timestamp | CastTo::TimestampTz) => ("datetime(", ")".into()),
            (Dialect::Sqlite, CastTo::Json) => ("json(", ")".into()),
        };
        w.push(prefix);
        splice(w, inner);
        w.push(&suffix);
        Ok(())
    }
}

/// Resolves `select=` items against the table: columns, `*` and aggregates; embedded
/// resources are refused (levels are built by `embed`). Whether aggregates are allowed is
/// the caller's decision.
pub(crate) fn projection<'a, 't>(
    table: &'t Table,
    items: &[SelectItem<'a>],
) -> ApiResult<Vec<Projected<'a, 't>>> {
    let mut out = Vec::with_capacity(items.len().max(table.columns.len()));
    for item in items {
        match item {
            SelectItem::Star => {
                for c in &table.columns {
                    out.push(Projected {
                        key: Cow::Owned(c.name.clone()),
                        field: Field {
                            name: Cow::Owned(c.name.clone()),
                            json_path: Vec::new(),
                        },
                        cast: None,
                        aggregate: None,
                        aggregate_cast: None,
                        legacy_count: false,
                        table,
                    });
                }
            }
            SelectItem::Field(sf) if is_legacy_count(table, sf) => out.push(Projected {
                key: sf.alias.clone().unwrap_or(Cow::Borrowed("count")),
                field: Field {
                    name: Cow::Borrowed("*"),
                    json_path: Vec::new(),
                },
                cast: None,
                aggregate: Some(Aggregate::Count),
                aggregate_cast: None,
                legacy_count: true,
                table,
            }),
            SelectItem::Field(sf) => {
                let bare_count = sf.field.name == "*" && sf.aggregate == Some(Aggregate::Count);
                if !bare_count {
                    column(table, &sf.field.name)?;
                }
                let key = match (&sf.alias, sf.aggregate) {
                    (Some(a), _) => a.clone(),
                    (None, Some(agg)) => Cow::Borrowed(agg.as_str()),
                    (None, None) => match sf.field.json_path.last().map(|op| &op.operand) {
                        Some(JsonOperand::Key(k)) => k.clone(),
                        _ => sf.field.name.clone(),
                    },
                };
                out.push(Projected {
                    key,
                    field: sf.field.clone(),
                    cast: sf.cast.map(CastTo::parse).transpose()?,
                    aggregate: sf.aggregate,
                    aggregate_cast: sf.aggregate_cast.map(CastTo::parse).transpose()?,
                    legacy_count: false,
                    table,
                });
            }
            SelectItem::Relation(r) => return Err(embedding_missing(table, &r.name)),
            SelectItem::Spread(r) => return Err(embedding_missing(table, &r.name)),
        }
    }
    Ok(out)
}

/// `count` written without parentheses, where the table has no `count` column: what
/// Supabase clients send for `comments(count)`.
pub(crate) fn is_legacy_count(table: &Table, sf: &crate::request::SelectField<'_>) -> bool {
    sf.field.name == "count"
        && sf.field.json_path.is_empty()
        && sf.cast.is_none()
        && sf.aggregate.is_none()
        && table.column("count").is_none()
}

fn embedding_missing(table: &Table, name: &str) -> ApiError {
    ApiError::not_supported(format!(
        "resource embedding ('{name}' in '{}') in the response of a write",
        table.name
    ))
}

/// Writes a projected value; returns its type (after the cast).
pub(crate) fn projected_value<'t>(w: &mut Sql, p: &Projected<'_, 't>) -> ApiResult<Target<'t>> {
    let Some(agg) = p.aggregate else {
        return column_value(w, p);
    };
    let mut call = Sql::new(w.dialect);
    call.push(agg.as_str()).push("(");
    let input = if p.is_bare_count() {
        call.push("*");
        None
    } else {
        Some(column_value(&mut call, p)?)
    };
    call.push(")");
    let target = match (agg, input) {
        (Aggregate::Count, _) => Target {
            kind: ColumnKind::Integer,
            data_type: "bigint",
        },
        (Aggregate::Sum | Aggregate::Avg, _) => Target {
            kind: ColumnKind::Number,
            data_type: "numeric",
        },
        (Aggregate::Min | Aggregate::Max, Some(t)) => t,
        (Aggregate::Min | Aggregate::Max, None) => Target {
            kind: ColumnKind::Text,
            data_type: "text",
        },
    };
    match p.aggregate_cast {
        None => {
            splice(w, &call);
            Ok(target)
        }
        Some(c) => {
            c.write(w, &call)?;
            Ok(c.target())
        }
    }
}

/// A column (or JSON path) with its `::cast`, before any aggregate.
fn column_value<'t>(w: &mut Sql, p: &Projected<'_, 't>) -> ApiResult<Target<'t>> {
    match p.cast {
        None => field(w, p.table, &p.field),
        Some(c) => {
            let mut inner = Sql::new(w.dialect);
            field(&mut inner, p.table, &p.field)?;
            c.write(w, &inner)?;
            Ok(c.target())
        }
    }
}

/// PostgreSQL: `expr AS "key", ...` (the row is turned into JSON by `json_agg`).
pub(crate) fn select_list_pg(w: &mut Sql, items: &[Projected<'_, '_>]) -> ApiResult<()> {
    for (i, p) in items.iter().enumerate() {
        if i > 0 {
            w.push(", ");
        }
        projected_value(w, p)?;
        w.push(" AS ").ident(&p.key);
    }
    Ok(())
}

/// MySQL and SQLite: `JSON_OBJECT(?, expr, ...)`, keys bound, booleans and JSON values
/// rendered as JSON rather than as numbers and strings.
pub(crate) fn json_object(w: &mut Sql, items: &[Projected<'_, '_>]) -> ApiResult<()> {
    w.push(if w.dialect == Dialect::MySql {
        "JSON_OBJECT("
    } else {
        "json_object("
    });
    for (i, p) in items.iter().enumerate() {
        if i > 0 {
            w.push(", ");
        }
        w.bind(Value::Text(p.key.to_string())).push(", ");
        json_value(w, p)?;
    }
    w.push(")");
    Ok(())
}

/// MySQL and SQLite: one projected value as a `JSON_OBJECT` argument (booleans and JSON
/// marked as JSON); returns its type.
pub(crate) fn json_value<'t>(w: &mut Sql, p: &Projected<'_, 't>) -> ApiResult<Target<'t>> {
    let d = w.dialect;
    let mut v = Sql::new(d);
    let target = projected_value(&mut v, p)?;
    let (open, close) = match (d, target.kind) {
        (Dialect::MySql, ColumnKind::Json) => ("JSON_EXTRACT(", ", '$')"),
        (Dialect::Sqlite, ColumnKind::Json) => ("json(", ")"),
        (Dialect::MySql, ColumnKind::Boolean) => ("JSON_EXTRACT(CASE WHEN ", ""),
        (Dialect::Sqlite, ColumnKind::Boolean) => ("json(CASE WHEN ", ""),
        _ => ("", ""),
    };
    w.push(open);
    if target.kind == ColumnKind::Boolean && !open.is_empty() {
        splice(w, &v);
        w.push(" IS NULL THEN 'null' WHEN ");
        splice(w, &v);
        w.push(" THEN 'true' ELSE 'false' END");
        w.push(if d == Dialect::MySql { ", '$')" } else { ")" });
    } else {
        splice(w, &v);
        w.push(close);
    }
    Ok(target)
}
