//! Storage: the database role. Every user value travels as a [`Value`] bind parameter; SQL
//! text comes from code, never from user input; identifiers come from the introspected
//! [`Schema`]. Drivers (PostgreSQL, MariaDB/MySQL, SQLite) implement this contract.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use super::schema::Schema;
use crate::Result;
use crate::part::Component;

/// SQL dialect of a storage driver, for code that builds SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    /// PostgreSQL.
    Postgres,
    /// MySQL or MariaDB.
    MySql,
    /// SQLite.
    Sqlite,
}

impl Dialect {
    /// The bind placeholder for the `n`th parameter (from 1): `$n` on PostgreSQL, `?` elsewhere.
    pub fn placeholder(self, n: usize) -> String {
        match self {
            Dialect::Postgres => format!("${n}"),
            Dialect::MySql | Dialect::Sqlite => "?".to_owned(),
        }
    }

    /// Placeholders for parameters `1..=count`, comma-separated.
    pub fn placeholders(self, count: usize) -> String {
        (1..=count)
            .map(|n| self.placeholder(n))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A bind parameter or a decoded column value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// Boolean.
    Bool(bool),
    /// 64-bit integer.
    Int(i64),
    /// Double.
    Float(f64),
    /// Text.
    Text(String),
    /// Bytes.
    Bytes(Vec<u8>),
    /// JSON document.
    Json(serde_json::Value),
}

/// One result row: column names shared by all rows of a result, values in column order.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Column names.
    pub columns: std::sync::Arc<[String]>,
    /// Values, one per column.
    pub values: Vec<Value>,
}

impl Row {
    /// The value of `column`, if the row has it.
    pub fn get(&self, column: &str) -> Option<&Value> {
        let index = self.columns.iter().position(|c| c == column)?;
        self.values.get(index)
    }

    fn unexpected(&self, column: &str, wanted: &str) -> crate::Error {
        crate::Error::part(
            "storage",
            format!(
                "column '{column}' should hold {wanted}, found {:?}",
                self.get(column)
            ),
        )
    }

    /// The text in `column`, or `None` when it is NULL; JSON is rendered as text. An absent
    /// column or another type is an error naming the column.
    pub fn get_opt_text(&self, column: &str) -> Result<Option<String>> {
        match self.get(column) {
            Some(Value::Null) => Ok(None),
            Some(Value::Text(s)) => Ok(Some(s.clone())),
            Some(Value::Json(j)) => Ok(Some(j.to_string())),
            _ => Err(self.unexpected(column, "text")),
        }
    }

    /// The text in `column`; NULL is an error.
    pub fn get_text(&self, column: &str) -> Result<String> {
        self.get_opt_text(column)?
            .ok_or_else(|| self.unexpected(column, "text"))
    }

    /// The integer in `column` (also parsed from text, as some drivers return BIGINTs), or
    /// `None` when it is NULL.
    pub fn get_opt_int(&self, column: &str) -> Result<Option<i64>> {
        match self.get(column) {
            Some(Value::Null) => Ok(None),
            Some(Value::Int(n)) => Ok(Some(*n)),
            Some(Value::Text(s)) => s
                .parse()
                .map(Some)
                .map_err(|_| self.unexpected(column, "an integer")),
            _ => Err(self.unexpected(column, "an integer")),
        }
    }

    /// The integer in `column`; NULL is an error.
    pub fn get_int(&self, column: &str) -> Result<i64> {
        self.get_opt_int(column)?
            .ok_or_else(|| self.unexpected(column, "an integer"))
    }
}

/// One migration of an extension or application.
#[derive(Debug, Clone)]
pub struct Migration {
    /// Monotonic version within its owner, e.g. `1`, `2`.
    pub version: u32,
    /// Short description.
    pub name: String,
    /// SQL per dialect; a migration without SQL for the board's dialect is an error.
    pub sql: Vec<(Dialect, String)>,
}

/// Payloads of `NOTIFY` on one channel, from [`Storage::listen`].
///
/// The stream ends when the storage stops. After the driver lost and re-established its
/// listening connection it yields an empty payload, because notifications sent in between
/// are gone: treat an empty payload as "reload everything" (as PostgREST does for `NOTIFY
/// pgrst`).
#[derive(Debug)]
pub struct Notifications {
    receiver: tokio::sync::mpsc::Receiver<String>,
}

impl Notifications {
    /// Wraps the receiving end of a channel that a driver feeds.
    pub fn new(receiver: tokio::sync::mpsc::Receiver<String>) -> Self {
        Notifications { receiver }
    }

    /// The next payload, or `None` once the driver stopped listening.
    pub async fn recv(&mut self) -> Option<String> {
        self.receiver.recv().await
    }

    /// The underlying receiver, e.g. to wrap it in a stream.
    pub fn into_inner(self) -> tokio::sync::mpsc::Receiver<String> {
        self.receiver
    }
}

impl Migration {
    /// A migration whose SQL is the same on every dialect (portable DDL).
    pub fn portable(version: u32, name: impl Into<String>, sql: &str) -> Self {
        let sql = [Dialect::Postgres, Dialect::MySql, Dialect::Sqlite]
            .into_iter()
            .map(|d| (d, sql.to_owned()))
            .collect();
        Migration {
            version,
            name: name.into(),
            sql,
        }
    }
}

/// An open transaction. Dropping it without `commit` rolls back.
#[async_trait]
pub trait Transaction: Send {
    /// Runs a statement returning rows.
    async fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>>;
    /// Runs a statement; returns affected rows.
    async fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64>;
    /// Commits.
    async fn commit(self: Box<Self>) -> Result<()>;
    /// Rolls back.
    async fn rollback(self: Box<Self>) -> Result<()>;
}

/// The Storage slot's role.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is declared for the Storage slot but does not implement `Storage`",
    label = "the Storage slot takes a `Storage`",
    note = "implement `magmobo::roles::storage::Storage` (dialect, query, execute, begin, migrate) for `{Self}` with `#[magmobo::async_trait]`, or choose another slot"
)]
#[async_trait]
pub trait Storage: Component {
    /// The SQL dialect.
    fn dialect(&self) -> Dialect;
    /// Connections `(open, idle, max)` of the driver's pool, for metrics; `None` when the
    /// driver has no pool.
    fn pool_usage(&self) -> Option<(u32, u32, u32)> {
        None
    }
    /// Runs a statement returning rows.
    async fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>>;
    /// Runs a statement that only reads, outside any transaction. The caller guarantees that
    /// it changes nothing (MagGate's GET and HEAD), so a driver may pipeline it with other
    /// requests' statements on a shared connection and run it again when that connection
    /// drops. The default is [`Storage::query`].
    async fn query_read(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>> {
        self.query(sql, params).await
    }
    /// Runs a statement; returns affected rows.
    async fn execute(&self, sql: &str, params: &[Value]) -> Result<u64>;
    /// Begins a transaction.
    async fn begin(&self) -> Result<Box<dyn Transaction>>;
    /// Begins a transaction in which writes fail (PostgREST runs GET requests this way, so
    /// a function that writes is refused by the database). The default begins a plain
    /// transaction and, on PostgreSQL and MySQL, sends `SET TRANSACTION READ ONLY` (one
    /// more round trip; drivers override it with a single `BEGIN READ ONLY`). SQLite has
    /// no read-only transactions: there it is a plain one.
    async fn begin_read_only(&self) -> Result<Box<dyn Transaction>> {
        let mut tx = self.begin().await?;
        if self.dialect() != Dialect::Sqlite {
            tx.execute("SET TRANSACTION READ ONLY", &[]).await?;
        }
        Ok(tx)
    }
    /// Applies `owner`'s migrations that have not run yet, in version order; returns how many ran.
    async fn migrate(&self, owner: &str, migrations: &[Migration]) -> Result<usize>;
    /// Reads tables, views, columns, keys and functions of `schemas` (all user schemas when
    /// empty) into the dialect-neutral model.
    async fn introspect(&self, schemas: &[String]) -> Result<Schema>;
    /// A cheap fingerprint of the structure, for change polling; equal to
    /// [`Schema::fingerprint`] of an introspection taken at the same moment.
    async fn schema_fingerprint(&self, schemas: &[String]) -> Result<String>;
    /// Receives the payloads of `NOTIFY channel, '...'` (e.g. MagGate reloads its schema on
    /// `NOTIFY pgrst, 'reload schema'`). Only PostgreSQL has LISTEN; the default says so.
    async fn listen(&self, channel: &str) -> Result<Notifications> {
        Err(crate::Error::part(
            self.component_info().name.to_string(),
            format!(
                "cannot LISTEN on '{channel}': LISTEN/NOTIFY is PostgreSQL-only; poll `schema_fingerprint` instead"
            ),
        ))
    }
}
