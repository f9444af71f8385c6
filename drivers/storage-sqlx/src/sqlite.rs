//! SQLite: binds, decoding by each value's storage class (SQLite types values, not columns),
//! introspection through the `pragma_*` table functions, and a fingerprint over the schema
//! text in `sqlite_schema`.

use std::str::FromStr;

use magmobo_core::roles::schema::{Column, ColumnKind, ForeignKey, Schema, Table, TableKind};
use magmobo_core::roles::storage::Value;
use sqlx::sqlite::{
    Sqlite, SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool,
    SqlitePoolOptions, SqliteRow,
};
use sqlx::{Column as _, Decode, Row as _, TypeInfo as _, ValueRef as _};

use crate::StorageOptions;
use crate::common::{Backend, Query, RowExt as _, fetch, fingerprint_rows};
use crate::error::Failure;

/// SQLite's one schema name.
const MAIN: &str = "main";

impl Backend for Sqlite {
    fn bind_value<'q>(query: Query<'q, Self>, value: &'q Value) -> Query<'q, Self> {
        match value {
            Value::Null => query.bind(None::<String>),
            Value::Bool(b) => query.bind(*b),
            Value::Int(i) => query.bind(*i),
            Value::Float(f) => query.bind(*f),
            Value::Text(s) => query.bind(s.as_str()),
            Value::Bytes(b) => query.bind(b.as_slice()),
            Value::Json(j) => query.bind(j.to_string()),
        }
    }

    fn decode(row: &SqliteRow, index: usize) -> Result<Value, String> {
        let declared = row
            .columns()
            .get(index)
            .map(|c| c.type_info().name().to_owned())
            .unwrap_or_default();
        let raw = row.try_get_raw(index).map_err(|e| e.to_string())?;
        if raw.is_null() {
            return Ok(Value::Null);
        }
        let storage = raw.type_info().name().to_owned();

        Ok(match storage.as_str() {
            "INTEGER" if declared == "BOOLEAN" => Value::Bool(dec::<i64>(raw)? != 0),
            "INTEGER" => Value::Int(dec::<i64>(raw)?),
            "REAL" => Value::Float(dec::<f64>(raw)?),
            "BLOB" => Value::Bytes(dec::<Vec<u8>>(raw)?),
            _ => Value::Text(dec::<String>(raw)?),
        })
    }
}

/// Connect options: `sqlite::memory:`, `sqlite://path`, or a bare path; files are created
/// in WAL mode.
pub(crate) fn connect_options(
    url: &str,
    path: bool,
    options: &StorageOptions,
) -> Result<SqliteConnectOptions, sqlx::Error> {
    let connect = if path {
        SqliteConnectOptions::new().filename(url)
    } else {
        SqliteConnectOptions::from_str(url)?
    };
    // A file database runs in WAL mode: readers and the one writer do not block each other
    // (the rollback journal makes a reader that wants to write fail with "database is locked"
    // while another connection writes, e.g. the audit log's batches). Commits still wait for
    // the disk (sqlx's default `synchronous = FULL`). In-memory databases keep their own
    // journal; SQLite ignores the request there.
    Ok(connect
        .journal_mode(SqliteJournalMode::Wal)
        .create_if_missing(true)
        .foreign_keys(true)
        .busy_timeout(
            options
                .statement_timeout
                .unwrap_or(std::time::Duration::from_secs(5)),
        ))
}

/// A pool that opens nothing until first used. An in-memory database lives as long as one
/// connection does, so such a pool keeps one open and never retires it.
pub(crate) fn pool(
    connect: SqliteConnectOptions,
    in_memory: bool,
    options: &StorageOptions,
) -> SqlitePool {
    // The database is in-process and cannot go away between uses, so sqlx's ping before
    // each use (a message to the connection's thread and back) buys nothing.
    let mut pool = SqlitePoolOptions::new()
        .max_connections(options.max_connections)
        .min_connections(options.min_connections)
        .acquire_timeout(options.acquire_timeout)
        .test_before_acquire(false);
    if in_memory {
        pool = pool
            .min_connections(options.min_connections.max(1))
            .idle_timeout(None)
            .max_lifetime(None);
    }
    pool.connect_lazy_with(connect)
}

/// `SQLite 3.46.0`.
pub(crate) async fn version(conn: &mut SqliteConnection) -> Result<String, Failure> {
    let rows = fetch(&mut *conn, "SELECT sqlite_version() AS v", &[]).await?;
    Ok(format!(
        "SQLite {}",
        rows.first().map(|r| r.text("v")).unwrap_or_default()
    ))
}

fn wants_main(schemas: &[String]) -> bool {
    schemas.is_empty() || schemas.iter().any(|s| s == MAIN)
}

const USER_OBJECTS: &str =
    "name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE '\\_magmobo\\_%' ESCAPE '\\'";

/// A hash over the SQL text of every user object.
pub(crate) async fn fingerprint(
    conn: &mut SqliteConnection,
    schemas: &[String],
) -> Result<String, Failure> {
    if !wants_main(schemas) {
        return Ok(fingerprint_rows(&[]));
    }
    let rows = fetch(
        &mut *conn,
        &format!(
            "SELECT type, name, tbl_name, sql FROM sqlite_schema WHERE {USER_OBJECTS} ORDER BY type, name"
        ),
        &[],
    )
    .await?;
    Ok(fingerprint_rows(&rows))
}

fn kind_of(declared: &str) -> ColumnKind {
    let t = declared.to_ascii_uppercase();
    if t.contains("BOOL") {
        ColumnKind::Boolean
    } else if t.contains("INT") {
        ColumnKind::Integer
    } else if t.contains("JSON") {
        ColumnKind::Json
    } else if t.contains("UUID") {
        ColumnKind::Uuid
    } else if t.contains("DATE") || t.contains("TIME") {
        ColumnKind::Temporal
    } else if t.contains("CHAR") || t.contains("CLOB") || t.contains("TEXT") {
        ColumnKind::Text
    } else if t.contains("BLOB") || t.is_empty() {
        ColumnKind::Binary
    } else if t.contains("REAL")
        || t.contains("FLOA")
        || t.contains("DOUB")
        || t.contains("NUM")
        || t.contains("DEC")
    {
        ColumnKind::Number
    } else {
        ColumnKind::Other
    }
}

/// Reads `sqlite_schema` and the pragmas into the dialect-neutral model.
pub(crate) async fn introspect(
    conn: &mut SqliteConnection,
    schemas: &[String],
) -> Result<Schema, Failure> {
    let fingerprint = fingerprint(&mut *conn, schemas).await?;
    if !wants_main(schemas) {
        return Ok(Schema {
            tables: Vec::new(),
            functions: Vec::new(),
            fingerprint,
        });
    }
    let objects = fetch(
        &mut *conn,
        &format!(
            "SELECT name, type, sql,
                    EXISTS (SELECT 1 FROM sqlite_schema t WHERE t.type = 'trigger'
                              AND t.tbl_name = s.name AND upper(t.sql) LIKE '%INSTEAD OF INSERT%') AS insert_trigger
             FROM sqlite_schema s WHERE type IN ('table', 'view') AND {USER_OBJECTS} ORDER BY name"
        ),
        &[],
    )
    .await?;
    let mut tables = Vec::with_capacity(objects.len());
    for object in &objects {
        let name = object.text("name");
        let view = object.text("type") == "view";
        let param = [Value::Text(name.clone())];
        let columns = fetch(
            &mut *conn,
            r#"SELECT name, type, "notnull" AS not_null, dflt_value, pk, hidden FROM pragma_table_xinfo(?1) ORDER BY cid"#,
            &param,
        )
        .await?;
        let mut pk: Vec<(i64, String)> = Vec::new();
        let mut table = Table {
            schema: MAIN.to_owned(),
            name: name.clone(),
            kind: if view {
                TableKind::View
            } else {
                TableKind::Table
            },
            columns: Vec::with_capacity(columns.len()),
            primary_key: Vec::new(),
            unique: Vec::new(),
            foreign_keys: Vec::new(),
            insertable: !view || object.flag("insert_trigger"),
            comment: None,
        };
        for c in &columns {
            let hidden = c.int("hidden");
            if hidden == 1 {
                continue; // a hidden column of a virtual table
            }
            let column_name = c.text("name");
            let in_pk = c.int("pk");
            if in_pk > 0 {
                pk.push((in_pk, column_name.clone()));
            }
            let declared = c.text("type");
            table.columns.push(Column {
                name: column_name,
                kind: kind_of(&declared),
                data_type: declared,
                nullable: c.int("not_null") == 0 && in_pk == 0,
                default: c.opt_text("dflt_value"),
                generated: hidden == 2 || hidden == 3,
                enum_values: Vec::new(),
                comment: None,
            });
        }
        pk.sort();
        table.primary_key = pk.into_iter().map(|(_, c)| c).collect();
        if !view {
            let unique = fetch(
                &mut *conn,
                r#"SELECT il.name AS index_name, ii.name AS column_name
                   FROM pragma_index_list(?1) il JOIN pragma_index_info(il.name) ii
                   WHERE il."unique" = 1 AND il.origin = 'u' AND il.partial = 0
                   ORDER BY il.seq DESC, ii.seqno"#,
                &param,
            )
            .await?;
            let mut last = None;
            for u in &unique {
                let index = u.text("index_name");
                match table.unique.last_mut() {
                    Some(cols) if last.as_ref() == Some(&index) => cols.push(u.text("column_name")),
                    _ => table.unique.push(vec![u.text("column_name")]),
                }
                last = Some(index);
            }
            let fks = fetch(
                &mut *conn,
                r#"SELECT id, "table" AS foreign_table, "from" AS column_name, "to" AS foreign_column
                   FROM pragma_foreign_key_list(?1) ORDER BY id, seq"#,
                &param,
            )
            .await?;
            let sql = object.text("sql");
            let mut last_id = None;
            for f in &fks {
                let id = f.int("id");
                let column = f.text("column_name");
                let foreign_column = f.opt_text("foreign_column");
                match table.foreign_keys.last_mut() {
                    Some(fk) if last_id == Some(id) => {
                        fk.columns.push(column);
                        fk.foreign_columns.push(foreign_column.unwrap_or_default());
                    }
                    _ => table.foreign_keys.push(ForeignKey {
                        name: String::new(),
                        columns: vec![column],
                        foreign_schema: MAIN.to_owned(),
                        foreign_table: f.text("foreign_table"),
                        foreign_columns: vec![foreign_column.unwrap_or_default()],
                    }),
                }
                last_id = Some(id);
            }
            for fk in &mut table.foreign_keys {
                // `REFERENCES t` without columns means t's primary key.
                if fk.foreign_columns.iter().any(String::is_empty) {
                    let target = fetch(
                        &mut *conn,
                        "SELECT name FROM pragma_table_info(?1) WHERE pk > 0 ORDER BY pk",
                        &[Value::Text(fk.foreign_table.clone())],
                    )
                    .await?;
                    fk.foreign_columns = target.iter().map(|r| r.text("name")).collect();
                }
                fk.name = constraint_name(&sql, &fk.columns)
                    .unwrap_or_else(|| format!("{}_{}_fkey", name, fk.columns.join("_")));
            }
        }
        tables.push(table);
    }
    Ok(Schema {
        tables,
        functions: Vec::new(),
        fingerprint,
    })
}

/// Identifier and punctuation tokens of SQL text, quotes removed from identifiers.
fn tokens(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' | '`' | '[' | '\'' => {
                let close = if c == '[' { ']' } else { c };
                let mut word = String::new();
                for d in chars.by_ref() {
                    if d == close {
                        break;
                    }
                    word.push(d);
                }
                out.push(word);
            }
            c if c.is_alphanumeric() || c == '_' => {
                let mut word = c.to_string();
                while let Some(&d) = chars.peek() {
                    if d.is_alphanumeric() || d == '_' {
                        word.push(d);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push(word);
            }
            c if c.is_whitespace() => {}
            c => out.push(c.to_string()),
        }
    }
    out
}

/// The name in `CONSTRAINT name FOREIGN KEY (columns)` of a CREATE TABLE, which the pragmas
/// do not report.
pub(crate) fn constraint_name(create_sql: &str, columns: &[String]) -> Option<String> {
    let t = tokens(create_sql);
    let is = |i: usize, word: &str| t.get(i).is_some_and(|w| w.eq_ignore_ascii_case(word));
    (0..t.len()).find_map(|i| {
        if !(is(i, "CONSTRAINT") && is(i + 2, "FOREIGN") && is(i + 3, "KEY") && is(i + 4, "(")) {
            return None;
        }
        let mut found = Vec::new();
        let mut j = i + 5;
        while let Some(tok) = t.get(j) {
            match tok.as_str() {
                ")" => break,
                "," => {}
                col => found.push(col.to_owned()),
            }
            j += 1;
        }
        (found == columns).then(|| t[i + 1].clone())
    })
}

crate::common::migrate_fn!(
    SqliteConnection,
    magmobo_core::roles::storage::Dialect::Sqlite,
    MIGRATIONS
);

/// Statements for the migrations bookkeeping.
pub(crate) const MIGRATIONS: crate::common::MigrationSql = crate::common::MigrationSql {
    lock: None,
    unlock: None,
    create: "CREATE TABLE IF NOT EXISTS _magmobo_migrations (
        owner TEXT NOT NULL,
        version INTEGER NOT NULL,
        name TEXT NOT NULL,
        applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        PRIMARY KEY (owner, version))",
    applied: "SELECT version FROM _magmobo_migrations WHERE owner = ?1",
    record: "INSERT INTO _magmobo_migrations (owner, version, name) VALUES (?1, ?2, ?3)",
};

/// Decodes `raw` as `T` without sqlx's type check: the caller already matched the type.
fn dec<'r, T: Decode<'r, Sqlite>>(raw: sqlx::sqlite::SqliteValueRef<'r>) -> Result<T, String> {
    T::decode(raw).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreign_key_names_are_read_from_the_create_statement() {
        let sql = r#"CREATE TABLE "orders" (id INTEGER PRIMARY KEY, customer_id INTEGER,
            CONSTRAINT [orders_customer_fk] FOREIGN KEY ("customer_id") REFERENCES customers (id),
            a INT, b INT, CONSTRAINT ab_fk FOREIGN KEY (a, b) REFERENCES x(a, b))"#;
        let cases: &[(&[&str], Option<&str>)] = &[
            (&["customer_id"], Some("orders_customer_fk")),
            (&["a", "b"], Some("ab_fk")),
            (&["b"], None),
        ];
        for (cols, expected) in cases {
            let cols: Vec<String> = cols.iter().map(|c| (*c).to_owned()).collect();
            assert_eq!(
                constraint_name(sql, &cols).as_deref(),
                *expected,
                "{cols:?}"
            );
        }
    }

    #[test]
    fn declared_types_map_to_kinds_by_affinity() {
        let cases = [
            ("INTEGER", ColumnKind::Integer),
            ("BIGINT", ColumnKind::Integer),
            ("BOOLEAN", ColumnKind::Boolean),
            ("VARCHAR(20)", ColumnKind::Text),
            ("JSON", ColumnKind::Json),
            ("TIMESTAMP", ColumnKind::Temporal),
            ("REAL", ColumnKind::Number),
            ("NUMERIC(10,2)", ColumnKind::Number),
            ("BLOB", ColumnKind::Binary),
            ("", ColumnKind::Binary),
        ];
        for (declared, kind) in cases {
            assert_eq!(kind_of(declared), kind, "{declared}");
        }
    }
}
