//! What the three backends share: running a statement with [`Value`] binds and decoding its
//! rows, the transaction wrapper, reading introspection rows, and the fingerprint hash.
// Each backend uses a different subset of these helpers.
#![cfg_attr(
    not(all(feature = "postgres", feature = "mysql", feature = "sqlite")),
    allow(dead_code)
)]

use std::sync::Arc;

use async_trait::async_trait;
use magmobo_core::Result;
use magmobo_core::roles::storage::{Dialect, Migration, Row, Transaction, Value};
use sqlx::{Column as _, Database, Executor, IntoArguments, Row as _};

use crate::error::{Failure, to_error};

/// A query with its binds, as sqlx types it for one database.
pub(crate) type Query<'q, DB> = sqlx::query::Query<'q, DB, <DB as Database>::Arguments<'q>>;

/// One sqlx database as this crate drives it.
pub(crate) trait Backend: Database {
    /// Binds one value.
    fn bind_value<'q>(query: Query<'q, Self>, value: &'q Value) -> Query<'q, Self>;
    /// Decodes column `index` of `row`.
    fn decode(row: &Self::Row, index: usize) -> std::result::Result<Value, String>;
}

/// Runs `sql` with `params` and decodes every row.
pub(crate) async fn fetch<'e, 'q: 'e, DB, E>(
    executor: E,
    sql: &'q str,
    params: &'q [Value],
) -> std::result::Result<Vec<Row>, Failure>
where
    DB: Backend,
    E: Executor<'e, Database = DB>,
    <DB as Database>::Arguments<'q>: IntoArguments<'q, DB>,
{
    let mut query = sqlx::query::<DB>(sql);
    for value in params {
        query = DB::bind_value(query, value);
    }
    // `Executor`'s own methods return boxed `Send` futures; the `Query` methods are generic
    // `async fn`s whose futures rustc cannot prove `Send` behind a `&mut` connection.
    let rows = executor.fetch_all(query).await?;
    decode_rows::<DB>(&rows)
}

/// Runs `sql` with `params`; returns the affected row count.
pub(crate) async fn execute<'e, 'q: 'e, DB, E>(
    executor: E,
    sql: &'q str,
    params: &'q [Value],
) -> std::result::Result<u64, Failure>
where
    DB: Backend,
    E: Executor<'e, Database = DB>,
    <DB as Database>::Arguments<'q>: IntoArguments<'q, DB>,
    <DB as Database>::QueryResult: RowsAffected,
{
    let mut query = sqlx::query::<DB>(sql);
    for value in params {
        query = DB::bind_value(query, value);
    }
    Ok(executor.execute(query).await?.rows_affected())
}

/// `rows_affected()` is inherent on each backend's query result; this names it once.
pub(crate) trait RowsAffected {
    fn rows_affected(&self) -> u64;
}

#[cfg(feature = "postgres")]
impl RowsAffected for sqlx::postgres::PgQueryResult {
    fn rows_affected(&self) -> u64 {
        sqlx::postgres::PgQueryResult::rows_affected(self)
    }
}
#[cfg(feature = "mysql")]
impl RowsAffected for sqlx::mysql::MySqlQueryResult {
    fn rows_affected(&self) -> u64 {
        sqlx::mysql::MySqlQueryResult::rows_affected(self)
    }
}
#[cfg(feature = "sqlite")]
impl RowsAffected for sqlx::sqlite::SqliteQueryResult {
    fn rows_affected(&self) -> u64 {
        sqlx::sqlite::SqliteQueryResult::rows_affected(self)
    }
}

fn decode_rows<DB: Backend>(rows: &[DB::Row]) -> std::result::Result<Vec<Row>, Failure> {
    let Some(first) = rows.first() else {
        return Ok(Vec::new());
    };
    let columns: Arc<[String]> = first
        .columns()
        .iter()
        .map(|c| c.name().to_owned())
        .collect();
    rows.iter()
        .map(|row| {
            let values = (0..columns.len())
                .map(|i| {
                    DB::decode(row, i).map_err(|message| Failure::Decode {
                        column: columns.get(i).cloned().unwrap_or_default(),
                        message,
                    })
                })
                .collect::<std::result::Result<Vec<_>, _>>()?;
            Ok(Row {
                columns: columns.clone(),
                values,
            })
        })
        .collect()
}

/// A transaction owning its pooled connection; dropping it rolls back (sqlx does that).
pub(crate) struct SqlTransaction<DB: Database> {
    pub(crate) tx: sqlx::Transaction<'static, DB>,
    pub(crate) part: Arc<str>,
    pub(crate) target: Arc<str>,
}

impl<DB: Database> SqlTransaction<DB> {
    fn fail(&self, action: &str, failure: Failure) -> magmobo_core::Error {
        to_error(&self.part, &self.target, action, failure)
    }
}

#[async_trait]
impl<DB> Transaction for SqlTransaction<DB>
where
    DB: Backend,
    for<'c> &'c mut <DB as Database>::Connection: Executor<'c, Database = DB>,
    for<'q> <DB as Database>::Arguments<'q>: IntoArguments<'q, DB>,
    <DB as Database>::QueryResult: RowsAffected,
{
    async fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>> {
        match fetch(&mut *self.tx, sql, params).await {
            Ok(rows) => Ok(rows),
            Err(f) => Err(self.fail("query failed", f)),
        }
    }

    async fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64> {
        match execute(&mut *self.tx, sql, params).await {
            Ok(n) => Ok(n),
            Err(f) => Err(self.fail("statement failed", f)),
        }
    }

    async fn commit(self: Box<Self>) -> Result<()> {
        let SqlTransaction { tx, part, target } = *self;
        tx.commit()
            .await
            .map_err(|e| to_error(&part, &target, "commit failed", e.into()))
    }

    async fn rollback(self: Box<Self>) -> Result<()> {
        let SqlTransaction { tx, part, target } = *self;
        tx.rollback()
            .await
            .map_err(|e| to_error(&part, &target, "rollback failed", e.into()))
    }
}

/// The statements a dialect needs to keep `_magmobo_migrations`.
pub(crate) struct MigrationSql {
    /// Takes a session-wide lock so two boards do not migrate at once (none on SQLite, whose
    /// write transactions already serialise).
    pub lock: Option<&'static str>,
    /// Releases it.
    pub unlock: Option<&'static str>,
    /// Creates the table if missing.
    pub create: &'static str,
    /// Versions applied for owner `?1`.
    pub applied: &'static str,
    /// Records owner, version, name.
    pub record: &'static str,
}

/// Checks `migrations` and picks each one's SQL for `dialect`, in version order.
pub(crate) fn plan<'m>(
    dialect: Dialect,
    owner: &str,
    migrations: &'m [Migration],
) -> std::result::Result<Vec<(&'m Migration, &'m str)>, Failure> {
    let mut ordered: Vec<&Migration> = migrations.iter().collect();
    ordered.sort_by_key(|m| m.version);
    if let Some(pair) = ordered.windows(2).find(|w| w[0].version == w[1].version) {
        return Err(Failure::Invalid(format!(
            "{owner} has two migrations numbered {}: give each a unique version",
            pair[0].version
        )));
    }
    ordered
        .into_iter()
        .map(|m| match m.sql.iter().find(|(d, _)| *d == dialect) {
            Some((_, sql)) => Ok((m, sql.as_str())),
            None => Err(Failure::Invalid(format!(
                "migration {} ({}) of {owner} has no SQL for {dialect:?}: add it, or do not use {owner} with this database",
                m.version, m.name
            ))),
        })
        .collect()
}

/// Defines `migrate(conn, owner, migrations, discard)` for one backend: on `conn`, under the
/// dialect's lock, each pending migration in its own transaction together with its record.
/// A macro rather than a generic function because rustc cannot yet prove such generic
/// futures `Send` (higher-ranked `Executor` bounds).
#[allow(unused_macros)]
macro_rules! migrate_fn {
    ($conn:ty, $dialect:expr, $statements:expr) => {
        /// Applies `owner`'s pending migrations; returns how many ran. Sets `discard` when
        /// the lock could not be released, so the caller ends the session that holds it.
        pub(crate) async fn migrate(
            conn: &mut $conn,
            owner: &str,
            migrations: &[magmobo_core::roles::storage::Migration],
            discard: &mut bool,
        ) -> std::result::Result<usize, crate::error::Failure> {
            use crate::common::RowExt as _;
            use magmobo_core::roles::storage::Value;
            let statements: &crate::common::MigrationSql = &$statements;
            let plan = crate::common::plan($dialect, owner, migrations)?;
            if let Some(lock) = statements.lock {
                crate::common::fetch(&mut *conn, lock, &[]).await?;
            }
            let result = async {
                sqlx::Executor::execute(&mut *conn, statements.create).await?;
                let owner_param = [Value::Text(owner.to_owned())];
                let applied: Vec<i64> =
                    crate::common::fetch(&mut *conn, statements.applied, &owner_param)
                        .await?
                        .iter()
                        .map(|r| r.int("version"))
                        .collect();
                let mut ran = 0;
                for (migration, sql) in plan {
                    if applied.contains(&i64::from(migration.version)) {
                        continue;
                    }
                    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
                    sqlx::Executor::execute(&mut *tx, sql)
                        .await
                        .map_err(|source| crate::error::Failure::SqlIn {
                            context: format!(
                                "migration {} ({}) of {owner}",
                                migration.version, migration.name
                            ),
                            source,
                        })?;
                    let record = [
                        Value::Text(owner.to_owned()),
                        Value::Int(i64::from(migration.version)),
                        Value::Text(migration.name.clone()),
                    ];
                    crate::common::execute(&mut *tx, statements.record, &record).await?;
                    tx.commit().await?;
                    ran += 1;
                }
                Ok::<usize, crate::error::Failure>(ran)
            }
            .await;
            if let Some(unlock) = statements.unlock {
                // A failed unlock would leave the lock with the session: end the session.
                if crate::common::fetch(&mut *conn, unlock, &[]).await.is_err() {
                    *discard = true;
                }
            }
            result
        }
    };
}
#[allow(unused_imports)]
pub(crate) use migrate_fn;

/// What a key row of the introspection describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    Primary,
    Unique,
    Foreign,
}

/// Folds key rows (columns `schema_name`, `table_name`, `constraint_name`, `column_name`
/// and, for foreign keys, `foreign_schema`, `foreign_table`, `foreign_column`) into the
/// tables' primary keys, unique constraints and foreign keys. Rows come ordered by
/// constraint then key position, so consecutive rows of one constraint build one key;
/// `kind` reads the dialect's own constraint type (`None`: not a key, skipped).
pub(crate) fn fold_keys(
    tables: &mut std::collections::BTreeMap<(String, String), magmobo_core::roles::schema::Table>,
    rows: &[Row],
    kind: impl Fn(&Row) -> Option<KeyKind>,
) {
    use magmobo_core::roles::schema::ForeignKey;
    let mut last: Option<(String, String, String)> = None;
    for r in rows {
        let id = (
            r.text("schema_name"),
            r.text("table_name"),
            r.text("constraint_name"),
        );
        let Some(table) = tables.get_mut(&(id.0.clone(), id.1.clone())) else {
            continue;
        };
        let column = r.text("column_name");
        let continues = last.as_ref() == Some(&id);
        match kind(r) {
            Some(KeyKind::Primary) => table.primary_key.push(column),
            Some(KeyKind::Unique) => match table.unique.last_mut() {
                Some(cols) if continues => cols.push(column),
                _ => table.unique.push(vec![column]),
            },
            Some(KeyKind::Foreign) => match table.foreign_keys.last_mut() {
                Some(fk) if continues => {
                    fk.columns.push(column);
                    fk.foreign_columns.push(r.text("foreign_column"));
                }
                _ => table.foreign_keys.push(ForeignKey {
                    name: id.2.clone(),
                    columns: vec![column],
                    foreign_schema: r.text("foreign_schema"),
                    foreign_table: r.text("foreign_table"),
                    foreign_columns: vec![r.text("foreign_column")],
                }),
            },
            None => {}
        }
        last = Some(id);
    }
}

/// Typed reads of introspection rows, whatever integer or boolean encoding the dialect uses.
pub(crate) trait RowExt {
    /// Text of `column` (empty when NULL or missing).
    fn text(&self, column: &str) -> String;
    /// Text of `column`, `None` when NULL.
    fn opt_text(&self, column: &str) -> Option<String>;
    /// Integer of `column` (0 when NULL).
    fn int(&self, column: &str) -> i64;
    /// Truth of `column` (`true`, non-zero, `YES`, `t`).
    fn flag(&self, column: &str) -> bool;
}

impl RowExt for Row {
    fn text(&self, column: &str) -> String {
        self.opt_text(column).unwrap_or_default()
    }
    fn opt_text(&self, column: &str) -> Option<String> {
        match self.get(column)? {
            Value::Null => None,
            Value::Text(s) => Some(s.clone()),
            Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Json(j) => Some(j.to_string()),
        }
    }
    fn int(&self, column: &str) -> i64 {
        match self.get(column) {
            Some(Value::Int(i)) => *i,
            Some(Value::Bool(b)) => i64::from(*b),
            Some(Value::Text(s)) => s.trim().parse().unwrap_or(0),
            Some(Value::Float(f)) => *f as i64,
            _ => 0,
        }
    }
    fn flag(&self, column: &str) -> bool {
        match self.get(column) {
            Some(Value::Bool(b)) => *b,
            Some(Value::Int(i)) => *i != 0,
            Some(Value::Text(s)) => {
                matches!(
                    s.to_ascii_lowercase().as_str(),
                    "yes" | "y" | "t" | "true" | "1"
                )
            }
            _ => false,
        }
    }
}

/// A stable 128-bit hash (two FNV-1a lanes) over introspection rows, rendered as hex. Stable
/// across processes and Rust versions, unlike `DefaultHasher`, so a fingerprint can be stored.
pub(crate) fn fingerprint_rows(rows: &[Row]) -> String {
    let mut a: u64 = 0xcbf2_9ce4_8422_2325;
    let mut b: u64 = 0x6c62_272e_07bb_0142;
    let mut feed = |bytes: &[u8]| {
        for &byte in bytes {
            a = (a ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
            b = (b ^ u64::from(byte))
                .wrapping_mul(0x0000_0100_0000_01b3)
                .rotate_left(5);
        }
    };
    for row in rows {
        for value in &row.values {
            let text = match value {
                Value::Null => "\u{0}".to_owned(),
                Value::Text(s) => s.clone(),
                other => format!("{other:?}"),
            };
            feed(text.as_bytes());
            feed(&[0x1f]);
        }
        feed(&[0x1e]);
    }
    format!("{a:016x}{b:016x}")
}

/// A JSON rendering of a decoded value, for array elements.
pub(crate) fn to_json(value: Value) -> serde_json::Value {
    match value {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(b),
        Value::Int(i) => serde_json::Value::from(i),
        Value::Float(f) => serde_json::Value::from(f),
        Value::Text(s) => serde_json::Value::String(s),
        Value::Bytes(b) => serde_json::Value::String(hex_bytes(&b)),
        Value::Json(j) => j,
    }
}

/// Bytes as PostgreSQL's hex text form, `\x0102`.
pub(crate) fn hex_bytes(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(2 + bytes.len() * 2);
    s.push_str("\\x");
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// A timestamp without zone in ISO 8601 (`2024-01-31T12:34:56.5`).
pub(crate) fn iso_datetime(dt: chrono::NaiveDateTime) -> String {
    dt.format("%Y-%m-%dT%H:%M:%S%.f").to_string()
}

/// A time of day in ISO 8601 (`12:34:56.5`).
pub(crate) fn iso_time(t: chrono::NaiveTime) -> String {
    t.format("%H:%M:%S%.f").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_stable_and_sensitive() {
        let row = |v: &str| Row {
            columns: Arc::from(vec!["c".to_owned()]),
            values: vec![Value::Text(v.to_owned())],
        };
        let a = fingerprint_rows(&[row("t.x integer")]);
        assert_eq!(a, fingerprint_rows(&[row("t.x integer")]));
        assert_ne!(a, fingerprint_rows(&[row("t.x bigint")]));
        assert_eq!(a.len(), 32);
    }
}
