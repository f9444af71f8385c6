//! Turning request values (filter text, JSON payload members) into bind values of the right
//! type for a column, so `id=eq.5` compares an integer with an integer on every dialect, and
//! a value that cannot have the column's type is a 400 (22P02) before any SQL runs.

use magmobo_core::roles::schema::{Column, ColumnKind};
use magmobo_core::roles::storage::{Dialect, Value};

use super::writer::safe_type_name;
use crate::api_error::{ApiError, ApiResult};

/// A bind value and the cast to wrap its placeholder in.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Bound {
    pub value: Value,
    pub cast: Option<String>,
}

/// The type a value is compared with or written to: a column, or what a JSON path yields.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target<'s> {
    pub kind: ColumnKind,
    pub data_type: &'s str,
}

impl<'s> Target<'s> {
    pub fn of(c: &'s Column) -> Target<'s> {
        Target {
            kind: c.kind,
            data_type: &c.data_type,
        }
    }

    pub const TEXT: Target<'static> = Target {
        kind: ColumnKind::Text,
        data_type: "text",
    };

    pub const JSON: Target<'static> = Target {
        kind: ColumnKind::Json,
        data_type: "jsonb",
    };

    /// The cast PostgreSQL needs for a parameter of this type (parameters arrive typed as
    /// text, int8, float8 or bool); other dialects convert implicitly.
    fn pg_cast(self, dialect: Dialect) -> Option<String> {
        if dialect != Dialect::Postgres {
            return None;
        }
        let t = self.data_type.to_ascii_lowercase();
        let t = match t.as_str() {
            // json has no equality operator; compare and write as jsonb.
            "json" if self.kind == ColumnKind::Json => "jsonb".to_owned(),
            _ => t,
        };
        safe_type_name(&t).then_some(t)
    }

    fn type_label(self) -> &'s str {
        self.data_type
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "t" | "true" | "y" | "yes" | "on" | "1" => Some(true),
        "f" | "false" | "n" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// A filter operand (always text in the URL) for `target`.
pub(crate) fn from_text(dialect: Dialect, target: Target<'_>, s: &str) -> ApiResult<Bound> {
    let invalid = || ApiError::invalid_text(target.type_label(), s);
    let value = match target.kind {
        ColumnKind::Integer => Value::Int(s.trim().parse::<i64>().map_err(|_| invalid())?),
        ColumnKind::Number => {
            let f = s.trim().parse::<f64>().map_err(|_| invalid())?;
            if dialect == Dialect::Postgres {
                // Keep every digit: PostgreSQL parses the text as the column's own type.
                Value::Text(s.trim().to_owned())
            } else {
                Value::Float(f)
            }
        }
        ColumnKind::Boolean => Value::Bool(parse_bool(s).ok_or_else(invalid)?),
        _ => Value::Text(s.to_owned()),
    };
    Ok(Bound {
        value,
        cast: target.pg_cast(dialect),
    })
}

/// A JSON payload member for a column.
pub(crate) fn from_json(
    dialect: Dialect,
    target: Target<'_>,
    v: &serde_json::Value,
) -> ApiResult<Bound> {
    use serde_json::Value as J;
    let cast = target.pg_cast(dialect);
    let value = match (target.kind, v) {
        (_, J::Null) => Value::Null,
        (ColumnKind::Json, v) => Value::Text(v.to_string()),
        (ColumnKind::Integer, J::Number(n)) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => return Err(ApiError::invalid_text(target.type_label(), &n.to_string())),
        },
        (ColumnKind::Number, J::Number(n)) => {
            if dialect == Dialect::Postgres {
                Value::Text(n.to_string())
            } else {
                Value::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        (ColumnKind::Boolean, J::Bool(b)) => Value::Bool(*b),
        (ColumnKind::Array, J::Array(items)) if dialect == Dialect::Postgres => {
            let mut out = String::new();
            pg_array_literal(&mut out, items);
            Value::Text(out)
        }
        (ColumnKind::Integer | ColumnKind::Number | ColumnKind::Boolean, J::String(s)) => {
            return from_text(dialect, target, s);
        }
        (ColumnKind::Integer | ColumnKind::Number | ColumnKind::Boolean, other) => {
            return Err(ApiError::invalid_text(
                target.type_label(),
                &other.to_string(),
            ));
        }
        (_, J::String(s)) => Value::Text(s.clone()),
        (_, other) => Value::Text(other.to_string()),
    };
    Ok(Bound { value, cast })
}

/// `["a", 1, null, ["b"]]` → `{"a","1",NULL,{"b"}}`, PostgreSQL's array input syntax.
fn pg_array_literal(out: &mut String, items: &[serde_json::Value]) {
    out.push('{');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match item {
            serde_json::Value::Null => out.push_str("NULL"),
            serde_json::Value::Array(inner) => pg_array_literal(out, inner),
            serde_json::Value::String(s) => quote_element(out, s),
            other => quote_element(out, &other.to_string()),
        }
    }
    out.push('}');
}

fn quote_element(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// Splits a quantifier operand `{a,"b,c",d}` into its elements; a value without braces is
/// one element.
pub(crate) fn split_array_literal(s: &str) -> Vec<String> {
    let Some(inner) = s.strip_prefix('{').and_then(|r| r.strip_suffix('}')) else {
        return vec![s.to_owned()];
    };
    let mut items = Vec::new();
    if inner.trim().is_empty() {
        return items;
    }
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => quoted = !quoted,
            '\\' if quoted => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            ',' if !quoted => items.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    items.push(cur);
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    const INT: Target<'static> = Target {
        kind: ColumnKind::Integer,
        data_type: "integer",
    };

    #[test]
    fn integers_are_checked_and_cast_on_postgres() {
        let b = from_text(Dialect::Postgres, INT, "5").unwrap();
        assert_eq!(b.value, Value::Int(5));
        assert_eq!(b.cast.as_deref(), Some("integer"));
        assert_eq!(from_text(Dialect::Sqlite, INT, "5").unwrap().cast, None);
        let e = from_text(Dialect::Sqlite, INT, "abc").unwrap_err();
        assert_eq!((e.status, e.code.as_str()), (400, "22P02"));
        assert_eq!(e.message, "invalid input syntax for type integer: \"abc\"");
    }

    #[test]
    fn json_members_follow_the_column() {
        let arr = Target {
            kind: ColumnKind::Array,
            data_type: "text[]",
        };
        let b = from_json(
            Dialect::Postgres,
            arr,
            &serde_json::json!(["a\"b", 1, null]),
        )
        .unwrap();
        assert_eq!(b.value, Value::Text(r#"{"a\"b","1",NULL}"#.into()));
        let e = from_json(Dialect::MySql, INT, &serde_json::json!(true)).unwrap_err();
        assert_eq!(e.code, "22P02");
        let b = from_json(Dialect::Sqlite, INT, &serde_json::json!("7")).unwrap();
        assert_eq!(b.value, Value::Int(7));
    }

    #[test]
    fn array_literals_split_with_quotes() {
        assert_eq!(split_array_literal("{a,\"b,c\",d}"), vec!["a", "b,c", "d"]);
        assert_eq!(split_array_literal("{}"), Vec::<String>::new());
        assert_eq!(split_array_literal("x"), vec!["x"]);
    }
}
