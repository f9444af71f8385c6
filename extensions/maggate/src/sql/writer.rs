//! The SQL text writer: placeholders in the dialect's style, bind values collected in the
//! order their placeholders appear, identifiers quoted for the dialect. Nothing from a
//! request reaches the text except through [`Sql::bind`] or as a quoted schema identifier.

use magmobo_core::roles::storage::{Dialect, Value};

/// Stands for a PostgreSQL placeholder until [`Sql::finish`] numbers them.
const PG_PLACEHOLDER: char = '\u{1}';

/// A statement: SQL text and its bind values, in placeholder order.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// The SQL text.
    pub sql: String,
    /// One value per placeholder.
    pub binds: Vec<Value>,
}

/// Builds one [`Statement`].
#[derive(Debug)]
pub(crate) struct Sql {
    pub dialect: Dialect,
    pub text: String,
    pub binds: Vec<Value>,
}

impl Sql {
    pub fn new(dialect: Dialect) -> Sql {
        Sql {
            dialect,
            text: String::with_capacity(256),
            binds: Vec::new(),
        }
    }

    pub fn push(&mut self, s: &str) -> &mut Sql {
        self.text.push_str(s);
        self
    }

    /// A quoted identifier: `"x"` (PostgreSQL, SQLite) or `` `x` `` (MySQL), the quote
    /// character doubled inside.
    pub fn ident(&mut self, name: &str) -> &mut Sql {
        let q = match self.dialect {
            Dialect::MySql => '`',
            Dialect::Postgres | Dialect::Sqlite => '"',
        };
        self.text.reserve(name.len() + 2);
        self.text.push(q);
        for c in name.chars() {
            if c == q {
                self.text.push(q);
            }
            // A control character in a name could pose as a placeholder; none is legitimate.
            self.text.push(if c.is_control() { '\u{fffd}' } else { c });
        }
        self.text.push(q);
        self
    }

    /// `"schema"."table"`.
    pub fn table(&mut self, schema: &str, name: &str) -> &mut Sql {
        if !schema.is_empty() {
            self.ident(schema).push(".");
        }
        self.ident(name)
    }

    /// A placeholder for `value`.
    pub fn bind(&mut self, value: Value) -> &mut Sql {
        self.binds.push(value);
        self.text.push(match self.dialect {
            // Numbered when the statement is finished, so fragments can be spliced.
            Dialect::Postgres => PG_PLACEHOLDER,
            Dialect::MySql | Dialect::Sqlite => '?',
        });
        self
    }

    /// A placeholder for `value`, cast to `cast` when given (a type name already checked
    /// by [`safe_type_name`]).
    pub fn bind_cast(&mut self, value: Value, cast: Option<&str>) -> &mut Sql {
        match cast {
            Some(t) => {
                self.push("CAST(");
                self.bind(value);
                self.push(" AS ").push(t).push(")")
            }
            None => self.bind(value),
        }
    }

    /// An unsigned number written inline (limits, offsets, array indexes we produced).
    pub fn number(&mut self, n: u64) -> &mut Sql {
        self.text.push_str(&n.to_string());
        self
    }

    /// Appends a fragment built separately (text and binds).
    pub fn splice(&mut self, other: &Sql) -> &mut Sql {
        self.text.push_str(&other.text);
        self.binds.extend(other.binds.iter().cloned());
        self
    }

    pub fn finish(self) -> Statement {
        if self.dialect != Dialect::Postgres {
            return Statement {
                sql: self.text,
                binds: self.binds,
            };
        }
        let mut sql = String::with_capacity(self.text.len() + self.binds.len() * 2);
        let mut n = 0usize;
        for c in self.text.chars() {
            if c == PG_PLACEHOLDER {
                n += 1;
                sql.push('$');
                sql.push_str(&n.to_string());
            } else {
                sql.push(c);
            }
        }
        Statement {
            sql,
            binds: self.binds,
        }
    }
}

/// Whether an introspected type name can be written after `CAST(... AS`: letters, digits,
/// `_`, spaces, `(`, `)`, `,`, `[`, `]` and `.` only, which covers `character varying(255)`,
/// `timestamp with time zone`, `integer[]` and `public.mood` but never a quote or comment.
pub(crate) fn safe_type_name(t: &str) -> bool {
    !t.is_empty()
        && t.len() < 128
        && t.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '_' | ' ' | '(' | ')' | ',' | '[' | ']' | '.')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_per_dialect() {
        let mut s = Sql::new(Dialect::Postgres);
        s.table("public", "we\"ird")
            .push(" ")
            .bind(Value::Int(1))
            .push(" ")
            .bind(Value::Null);
        assert_eq!(s.finish().sql, "\"public\".\"we\"\"ird\" $1 $2");
        let mut s = Sql::new(Dialect::MySql);
        s.ident("a`b").push(" ").bind(Value::Int(1));
        assert_eq!(s.text, "`a``b` ?");
    }

    #[test]
    fn type_names_with_quotes_or_comments_are_unsafe() {
        assert!(safe_type_name("character varying(255)"));
        assert!(safe_type_name("integer[]"));
        assert!(!safe_type_name("int); drop table x; --"));
        assert!(!safe_type_name("\"Mood\""));
    }
}
