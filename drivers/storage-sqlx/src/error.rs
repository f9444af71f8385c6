//! Turning sqlx errors into MagMoBo errors that say what to do next, while keeping the
//! database's own error code reachable: MagGate maps SQLSTATE 23505 to HTTP 409 and so on, so
//! the sqlx error travels as the boxed source of [`Error::Part`] and [`db_error`] digs it out.

use magmobo_core::Error;

/// The dialect-neutral class of a database error, as far as constraints go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DbErrorKind {
    /// A unique or primary key constraint was violated.
    UniqueViolation,
    /// A foreign key constraint was violated.
    ForeignKeyViolation,
    /// A NOT NULL constraint was violated.
    NotNullViolation,
    /// A CHECK constraint was violated.
    CheckViolation,
    /// Anything else (syntax errors, missing tables, permissions...).
    Other,
}

/// What the database itself said about a failed statement.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DbError {
    /// The SQLSTATE: the server's own on PostgreSQL and MySQL/MariaDB. SQLite has none, so
    /// there it is the PostgreSQL SQLSTATE of the same constraint violation (`23505`, `23503`,
    /// `23502`, `23514`) or `HY000` for anything else.
    pub sqlstate: String,
    /// The native code where it is finer than the SQLSTATE: the MySQL error number (`1062`)
    /// or the SQLite extended result code (`2067`); the SQLSTATE again on PostgreSQL.
    pub code: Option<String>,
    /// The dialect-neutral class.
    pub kind: DbErrorKind,
    /// The constraint involved, where the database names it.
    pub constraint: Option<String>,
    /// The table involved, where the database names it.
    pub table: Option<String>,
    /// The database's message.
    pub message: String,
}

/// The SQLSTATE of a failed statement, if `err` came from the database (see [`DbError::sqlstate`]).
///
/// ```
/// # let err = magmobo_core::Error::part("PostgreSQL", "not from the database");
/// let status = match magmobo_storage_sqlx::sqlstate(&err).as_deref() {
///     Some("23505") => 409,
///     _ => 500,
/// };
/// # assert_eq!(status, 500);
/// ```
pub fn sqlstate(err: &Error) -> Option<String> {
    db_error(err).map(|e| e.sqlstate)
}

/// Everything the database said about a failed statement, if `err` came from the database.
pub fn db_error(err: &Error) -> Option<DbError> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = next {
        if let Some(sqlx::Error::Database(db)) = e.downcast_ref::<sqlx::Error>() {
            return Some(describe(db.as_ref()));
        }
        #[cfg(feature = "postgres")]
        if let Some(db) = e
            .downcast_ref::<tokio_postgres::Error>()
            .and_then(tokio_postgres::Error::as_db_error)
        {
            return Some(describe_pipelined(db));
        }
        next = e.source();
    }
    None
}

/// The same description for an error of the pipelined PostgreSQL path.
#[cfg(feature = "postgres")]
fn describe_pipelined(db: &tokio_postgres::error::DbError) -> DbError {
    let sqlstate = db.code().code().to_owned();
    let kind = match sqlstate.as_str() {
        "23505" => DbErrorKind::UniqueViolation,
        "23503" => DbErrorKind::ForeignKeyViolation,
        "23502" => DbErrorKind::NotNullViolation,
        "23514" => DbErrorKind::CheckViolation,
        _ => DbErrorKind::Other,
    };
    DbError {
        code: Some(sqlstate.clone()),
        sqlstate,
        kind,
        constraint: db.constraint().map(str::to_owned),
        table: db.table().map(str::to_owned),
        message: db.message().to_owned(),
    }
}

fn describe(db: &dyn sqlx::error::DatabaseError) -> DbError {
    let kind = match db.kind() {
        sqlx::error::ErrorKind::UniqueViolation => DbErrorKind::UniqueViolation,
        sqlx::error::ErrorKind::ForeignKeyViolation => DbErrorKind::ForeignKeyViolation,
        sqlx::error::ErrorKind::NotNullViolation => DbErrorKind::NotNullViolation,
        sqlx::error::ErrorKind::CheckViolation => DbErrorKind::CheckViolation,
        _ => DbErrorKind::Other,
    };
    let code = db.code().map(|c| c.into_owned());
    #[allow(unused_mut)]
    let mut native = code.clone();
    #[allow(unused_mut)]
    let mut sqlstate = code.clone();
    #[cfg(feature = "mysql")]
    if let Some(my) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
        native = Some(my.number().to_string());
    }
    #[cfg(feature = "sqlite")]
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        sqlstate = Some(
            match kind {
                DbErrorKind::UniqueViolation => "23505",
                DbErrorKind::ForeignKeyViolation => "23503",
                DbErrorKind::NotNullViolation => "23502",
                DbErrorKind::CheckViolation => "23514",
                DbErrorKind::Other => "HY000",
            }
            .to_owned(),
        );
    }
    DbError {
        sqlstate: sqlstate.unwrap_or_else(|| "HY000".to_owned()),
        code: native,
        kind,
        constraint: db.constraint().map(str::to_owned),
        table: db.table().map(str::to_owned),
        message: db.message().to_owned(),
    }
}

/// Why a driver call failed before it became a [`magmobo_core::Error`].
#[derive(Debug)]
pub(crate) enum Failure {
    /// sqlx reported it.
    Sql(sqlx::Error),
    /// A column could not be turned into a [`magmobo_core::roles::storage::Value`].
    Decode { column: String, message: String },
    /// sqlx reported it while doing something more specific than the caller's action.
    SqlIn {
        context: String,
        source: sqlx::Error,
    },
    /// Our own check failed (a missing migration dialect, a bad result shape).
    Invalid(String),
    /// A statement on the pipelined PostgreSQL connections failed.
    #[cfg(feature = "postgres")]
    Pipelined(tokio_postgres::Error),
}

impl Failure {
    /// Whether the server ended the connection without running the statement: PostgreSQL's
    /// class 57P (`57P01` administrator command, `57P02` crash of another backend, `57P03`
    /// cannot connect now), MariaDB's 1927 (connection killed) and MySQL's 1053 (server
    /// shutdown). That is what a connection left in the pool by a restarted or
    /// `pg_terminate_backend`-ed server answers, and running the statement again on another
    /// connection cannot apply it twice.
    pub(crate) fn connection_ended(&self) -> bool {
        let (Failure::Sql(sqlx::Error::Database(db))
        | Failure::SqlIn {
            source: sqlx::Error::Database(db),
            ..
        }) = self
        else {
            return false;
        };
        #[cfg(feature = "mysql")]
        if let Some(my) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
            return matches!(my.number(), 1927 | 1053);
        }
        #[cfg(feature = "postgres")]
        if db
            .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
            .is_some()
        {
            return matches!(db.code().as_deref(), Some("57P01" | "57P02" | "57P03"));
        }
        // SQLite's connections live in-process: the server cannot end them.
        let _ = db;
        false
    }
}

impl Failure {
    #[cfg_attr(not(any(feature = "postgres", feature = "mysql")), allow(dead_code))]
    /// Whether the connection that ran the failed statement must not be reused: the failure
    /// was below SQL (I/O, TLS, protocol, a crashed worker) or the server ended the session.
    pub(crate) fn breaks_connection(&self) -> bool {
        let (Failure::Sql(e) | Failure::SqlIn { source: e, .. }) = self else {
            return false;
        };
        matches!(
            e,
            sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::Protocol(_)
                | sqlx::Error::WorkerCrashed
        ) || self.connection_ended()
    }
}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Self {
        Failure::Sql(e)
    }
}

/// Builds the core error for a failure of `part` while doing `action` against `target` (a
/// redacted URL), with a hint that depends on the kind of failure.
pub(crate) fn to_error(part: &str, target: &str, action: &str, failure: Failure) -> Error {
    match failure {
        Failure::Decode { column, message } => Error::part(
            part,
            format!("{action}: cannot decode column `{column}`: {message}"),
        ),
        Failure::Invalid(message) => Error::part(part, format!("{action}: {message}")),
        #[cfg(feature = "postgres")]
        Failure::Pipelined(e) => {
            let message = match e.as_db_error() {
                Some(db) => format!("{action}: {} (SQLSTATE {})", db.message(), db.code().code()),
                None if e.is_closed() => format!(
                    "{action}: the connection to {target} closed ({e}): check that the database is running"
                ),
                None => format!("{action}: {e}"),
            };
            Error::part_with(part, message, e)
        }
        Failure::SqlIn { context, source } => to_error(
            part,
            target,
            &format!("{action}: {context}"),
            Failure::Sql(source),
        ),
        Failure::Sql(e) => {
            let message = match &e {
                sqlx::Error::Database(db) => {
                    let info = describe(db.as_ref());
                    format!("{action}: {} (SQLSTATE {})", info.message, info.sqlstate)
                }
                sqlx::Error::PoolTimedOut => format!(
                    "{action}: no connection to {target} within the acquire timeout: check that the database is running and reachable, or raise max_connections if the pool is busy"
                ),
                sqlx::Error::PoolClosed => {
                    format!("{action}: the connection pool is closed (the board is stopping)")
                }
                sqlx::Error::Io(io) => format!(
                    "{action}: cannot reach the database at {target} ({io}): check that it is running and that the host and port in the URL are right"
                ),
                sqlx::Error::Tls(tls) => format!(
                    "{action}: TLS to {target} failed ({tls}); this build has no TLS support, so connect without TLS (e.g. sslmode=disable) or through a local proxy"
                ),
                sqlx::Error::Configuration(c) => {
                    format!("{action}: invalid database URL {target}: {c}")
                }
                sqlx::Error::Protocol(p) => format!("{action}: protocol error with {target}: {p}"),
                other => format!("{action}: {other}"),
            };
            let message = if matches!(&e, sqlx::Error::Database(db) if db.code().as_deref() == Some("28P01") || db.code().as_deref() == Some("28000"))
            {
                format!("{message}: check the user name and password in the URL")
            } else {
                message
            };
            Error::part_with(part, message, e)
        }
    }
}
