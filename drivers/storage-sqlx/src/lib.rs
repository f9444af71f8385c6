//! # magmobo-storage-sqlx
//!
//! The Storage slot's drivers, on sqlx: PostgreSQL, MySQL/MariaDB and SQLite in one
//! component, [`SqlStorage`], whose backend is chosen at run time by the URL's scheme among
//! the backends compiled in (cargo features `postgres`, `mysql`, `sqlite`; all may be on).
//!
//! ```no_run
//! use magmobo_storage_sqlx::{SqlStorage, StorageOptions};
//! # fn main() -> magmobo_core::Result<()> {
//! // No I/O here: the pool connects when the board boots (POST self-test).
//! let storage = SqlStorage::connect("postgres://app@127.0.0.1/app", StorageOptions::default())?;
//! # let _ = storage; Ok(()) }
//! ```
//!
//! | URL | backend | feature |
//! |---|---|---|
//! | `postgres://…`, `postgresql://…` | PostgreSQL (LISTEN/NOTIFY, functions) | `postgres` |
//! | `mysql://…`, `mariadb://…` | MySQL or MariaDB | `mysql` |
//! | `sqlite://path`, `sqlite::memory:`, a file path | SQLite (file created if missing) | `sqlite` |
//!
//! Values travel as [`Value`]s. Decoding: integers → `Int` (unsigned beyond `i64` → `Text`),
//! floats → `Float`, NUMERIC/DECIMAL → `Text` with every digit, booleans → `Bool`, text, enums
//! and UUIDs → `Text`, JSON → `Json` (MariaDB and SQLite send JSON as text, so it arrives as
//! `Text`; introspection still says [`ColumnKind::Json`](magmobo_core::roles::schema::ColumnKind)),
//! bytea/BLOB → `Bytes`, dates and times → ISO 8601 `Text`, PostgreSQL arrays → `Json`, NULL →
//! `Null`. A type without a decoding is an error naming the column and suggesting a cast.
//!
//! Binds: on PostgreSQL a `Text` binds as `text`, so SQL for other column types casts it
//! (`$1::uuid`, `$1::date`, `$1::my_enum`); `Null` binds untyped, so it fits any column.
//!
//! Errors are [`magmobo_core::Error::Part`] with the sqlx error as source; [`sqlstate`] and
//! [`db_error`] read the database's code back (MagGate maps 23505 to 409).

#![cfg_attr(
    not(any(feature = "postgres", feature = "mysql", feature = "sqlite")),
    allow(
        dead_code,
        unused_imports,
        unused_variables,
        unused_assignments,
        unused_mut,
        unreachable_code
    )
)]

mod common;
mod error;
#[cfg(feature = "mysql")]
mod mysql;
mod options;
#[cfg(feature = "postgres")]
mod pg;
#[cfg(feature = "postgres")]
mod pipeline;
#[cfg(any(feature = "postgres", feature = "mysql"))]
mod pool;
#[cfg(feature = "sqlite")]
mod sqlite;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use magmobo_core::roles::schema::Schema;
use magmobo_core::roles::storage::{
    Dialect, Migration, Notifications, Row, Storage, Transaction, Value,
};
use magmobo_core::{
    Component, ComponentInfo, ComponentMeta, Error, Health, Plug, Result, Slot, StopMode,
};

pub use error::{DbError, DbErrorKind, db_error, sqlstate};
pub use options::StorageOptions;

use error::{Failure, to_error};
use options::Scheme;

/// How many times a statement runs again after finding its connection ended by the server
/// (one per stale pooled connection it may meet; the pool replaces them as they fail).
const RETRIES_ON_ENDED_CONNECTION: u32 = 3;

/// How to open connections, kept until the pool is first needed.
#[derive(Debug, Clone)]
enum Connect {
    #[cfg(feature = "postgres")]
    Pg(sqlx::postgres::PgConnectOptions),
    #[cfg(feature = "mysql")]
    My(sqlx::mysql::MySqlConnectOptions),
    #[cfg(feature = "sqlite")]
    Lite {
        options: sqlx::sqlite::SqliteConnectOptions,
        in_memory: bool,
    },
    /// No backend compiled in: nothing can be built.
    #[cfg(not(any(feature = "postgres", feature = "mysql", feature = "sqlite")))]
    Off(std::convert::Infallible),
}

/// The live pool of one backend.
#[derive(Debug, Clone)]
enum Pool {
    #[cfg(feature = "postgres")]
    Pg(pool::Pool<sqlx::Postgres>),
    #[cfg(feature = "mysql")]
    My(pool::Pool<sqlx::MySql>),
    #[cfg(feature = "sqlite")]
    Lite(sqlx::SqlitePool),
    /// No backend compiled in: nothing can be built.
    #[cfg(not(any(feature = "postgres", feature = "mysql", feature = "sqlite")))]
    Off(std::convert::Infallible),
}

/// Runs `$body` (a `Result<_, Failure>`) with `$c` bound to a connection borrowed from
/// whichever pool this is and `$m` naming that backend's module.
macro_rules! with_conn {
    ($pool:expr, $c:ident, $m:ident => $body:expr) => {
        match $pool {
            #[cfg(feature = "postgres")]
            Pool::Pg(p) => match pool::get(p).await {
                Ok(mut conn) => {
                    use crate::pg as $m;
                    let $c = conn.start();
                    let result = $body;
                    conn.done(result)
                }
                Err(f) => Err(f),
            },
            #[cfg(feature = "mysql")]
            Pool::My(p) => match pool::get(p).await {
                Ok(mut conn) => {
                    use crate::mysql as $m;
                    let $c = conn.start();
                    let result = $body;
                    conn.done(result)
                }
                Err(f) => Err(f),
            },
            #[cfg(feature = "sqlite")]
            Pool::Lite(p) => match p.acquire().await {
                Ok(mut conn) => {
                    use crate::sqlite as $m;
                    let $c = &mut *conn;
                    $body
                }
                Err(e) => Err(Failure::Sql(e)),
            },
            #[cfg(not(any(feature = "postgres", feature = "mysql", feature = "sqlite")))]
            Pool::Off(never) => match *never {},
        }
    };
}

/// A SQL database in the Storage slot: PostgreSQL, MySQL/MariaDB or SQLite by URL.
///
/// Cloning is cheap and shares the pool.
#[derive(Clone)]
pub struct SqlStorage {
    inner: Arc<Inner>,
}

struct Inner {
    name: Arc<str>,
    target: Arc<str>,
    dialect: Dialect,
    options: StorageOptions,
    connect: Connect,
    pool: OnceLock<Pool>,
    /// PostgreSQL statements outside transactions, pipelined (see `pipeline.rs`).
    #[cfg(feature = "postgres")]
    pipeline: Option<pipeline::Pipeline>,
    listeners: Mutex<Vec<tokio::task::AbortHandle>>,
}

impl std::fmt::Debug for SqlStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStorage")
            .field("name", &self.inner.name)
            .field("target", &self.inner.target)
            .field("dialect", &self.inner.dialect)
            .finish_non_exhaustive()
    }
}

impl SqlStorage {
    /// Reads `url` and prepares a pool without connecting: the first connection opens at the
    /// POST self-test (or the first query), never before the board boots.
    ///
    /// Fails when the URL is malformed, names an unknown scheme, or names a backend this
    /// build lacks (the message names the cargo feature to enable).
    pub fn connect(url: &str, options: StorageOptions) -> Result<SqlStorage> {
        let scheme = Scheme::of(url).map_err(|e| Error::part("Storage", e))?;
        let name: Arc<str> = options
            .name
            .clone()
            .unwrap_or_else(|| scheme.default_name().to_owned())
            .into();
        let target: Arc<str> = magmobo_core::redact_url(url).into();
        let bad_url = |e: sqlx::Error| {
            to_error(
                &name,
                &target,
                "cannot read the database URL",
                Failure::Sql(e),
            )
        };
        let (dialect, connect) = match scheme {
            #[cfg(feature = "postgres")]
            Scheme::Postgres => (
                Dialect::Postgres,
                Connect::Pg(pg::connect_options(url, &options).map_err(bad_url)?),
            ),
            #[cfg(feature = "mysql")]
            Scheme::MySql { .. } => (
                Dialect::MySql,
                Connect::My(mysql::connect_options(url).map_err(bad_url)?),
            ),
            #[cfg(feature = "sqlite")]
            Scheme::Sqlite { path } => (
                Dialect::Sqlite,
                Connect::Lite {
                    options: sqlite::connect_options(url, path, &options).map_err(bad_url)?,
                    in_memory: url.contains(":memory:") || url.contains("mode=memory"),
                },
            ),
            #[allow(unreachable_patterns)]
            other => {
                return Err(Error::part(
                    name.to_string(),
                    format!(
                        "{target} needs the {} backend, which this build lacks: enable the `{}` feature of magmobo-storage-sqlx (`db-{}` on magmobo)",
                        other.default_name(),
                        other.feature(),
                        other.feature()
                    ),
                ));
            }
        };
        #[cfg(feature = "postgres")]
        let pipeline = match dialect {
            Dialect::Postgres => pipeline::Pipeline::new(url, &options),
            _ => None,
        };
        Ok(SqlStorage {
            inner: Arc::new(Inner {
                name,
                target,
                dialect,
                options,
                connect,
                pool: OnceLock::new(),
                #[cfg(feature = "postgres")]
                pipeline,
                listeners: Mutex::new(Vec::new()),
            }),
        })
    }

    /// The component name (`PostgreSQL`, `MySQL`, `MariaDB`, `SQLite`, or the configured one).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The URL with its password masked, as shown in messages.
    pub fn target(&self) -> &str {
        &self.inner.target
    }

    fn pool(&self) -> &Pool {
        self.inner.pool.get_or_init(|| {
            let options = &self.inner.options;
            match &self.inner.connect {
                #[cfg(feature = "postgres")]
                Connect::Pg(c) => Pool::Pg(pg::pool(c.clone(), options)),
                #[cfg(feature = "mysql")]
                Connect::My(c) => Pool::My(mysql::pool(c.clone(), options)),
                #[cfg(feature = "sqlite")]
                Connect::Lite {
                    options: c,
                    in_memory,
                } => Pool::Lite(sqlite::pool(c.clone(), *in_memory, options)),
                #[cfg(not(any(feature = "postgres", feature = "mysql", feature = "sqlite")))]
                Connect::Off(never) => match *never {},
            }
        })
    }

    /// Whether a statement that failed with `failure` runs again: only when the server had
    /// ended its connection without running it (a restart or `pg_terminate_backend` leaves
    /// such connections in the pool, which is not pinged before each use), and at most
    /// [`RETRIES_ON_ENDED_CONNECTION`] times, each on another connection (the dead one is
    /// dropped when it goes back to the pool).
    fn retry_on_new_connection(&self, failure: &Failure, attempt: &mut u32) -> bool {
        if *attempt >= RETRIES_ON_ENDED_CONNECTION || !failure.connection_ended() {
            return false;
        }
        *attempt += 1;
        tracing::info!(part = %self.inner.name, attempt = *attempt, "the server had ended a pooled connection; running the statement on another one");
        true
    }

    /// Begins a transaction with `statement` (`BEGIN` when `None`), running it again on
    /// another connection when the server had ended the first (see [`Self::retry_on_new_connection`]).
    async fn begin_with(
        &self,
        statement: Option<&'static str>,
    ) -> std::result::Result<Box<dyn Transaction>, Failure> {
        let mut attempt = 0;
        loop {
            let part = self.inner.name.clone();
            let target = self.inner.target.clone();
            let begun: std::result::Result<Box<dyn Transaction>, Failure> = match self.pool() {
                #[cfg(feature = "postgres")]
                Pool::Pg(p) => pool::PooledTransaction::begin(p, statement, part, target)
                    .await
                    .map(|tx| Box::new(tx) as Box<dyn Transaction>),
                #[cfg(feature = "mysql")]
                Pool::My(p) => pool::PooledTransaction::begin(p, statement, part, target)
                    .await
                    .map(|tx| Box::new(tx) as Box<dyn Transaction>),
                // A write transaction takes SQLite's write lock at BEGIN: a deferred one that
                // reads first fails with "database is locked", without waiting, when another
                // connection wrote meanwhile.
                #[cfg(feature = "sqlite")]
                Pool::Lite(p) => p
                    .begin_with(statement.unwrap_or("BEGIN IMMEDIATE"))
                    .await
                    .map(|tx| {
                        Box::new(common::SqlTransaction { tx, part, target })
                            as Box<dyn Transaction>
                    })
                    .map_err(Failure::Sql),
                #[cfg(not(any(feature = "postgres", feature = "mysql", feature = "sqlite")))]
                Pool::Off(never) => match *never {},
            };
            match begun {
                Err(f) if self.retry_on_new_connection(&f, &mut attempt) => continue,
                begun => return begun,
            }
        }
    }

    fn fail(&self, action: &str, failure: Failure) -> Error {
        to_error(&self.inner.name, &self.inner.target, action, failure)
    }

    async fn version(&self) -> std::result::Result<String, Failure> {
        with_conn!(self.pool(), c, backend => backend::version(c).await)
    }

    fn pool_usage(&self) -> (u32, usize, u32) {
        match self.pool() {
            #[cfg(feature = "postgres")]
            Pool::Pg(p) => pool::usage(p),
            #[cfg(feature = "mysql")]
            Pool::My(p) => pool::usage(p),
            #[cfg(feature = "sqlite")]
            Pool::Lite(p) => (p.size(), p.num_idle(), self.inner.options.max_connections),
            #[cfg(not(any(feature = "postgres", feature = "mysql", feature = "sqlite")))]
            Pool::Off(never) => match *never {},
        }
    }

    fn is_closed(&self) -> bool {
        match self.pool() {
            #[cfg(feature = "postgres")]
            Pool::Pg(p) => p.is_closed(),
            #[cfg(feature = "mysql")]
            Pool::My(p) => p.is_closed(),
            #[cfg(feature = "sqlite")]
            Pool::Lite(p) => p.is_closed(),
            #[cfg(not(any(feature = "postgres", feature = "mysql", feature = "sqlite")))]
            Pool::Off(never) => match *never {},
        }
    }
}

impl ComponentMeta for SqlStorage {
    fn component_info(&self) -> ComponentInfo {
        let mut info = ComponentInfo::new(
            self.inner.name.to_string(),
            env!("CARGO_PKG_VERSION"),
            Slot::Storage,
        );
        info.capabilities = vec![
            "sql".into(),
            "transactions".into(),
            "migrations".into(),
            "introspection".into(),
        ];
        if self.inner.dialect == Dialect::Postgres {
            info.capabilities.push("listen".into());
            info.capabilities.push("functions".into());
        }
        info
    }
}

impl Plug for SqlStorage {
    fn plug(self, board: &mut magmobo_core::board::BoardBuilder) {
        board.put_storage(self);
    }
}

#[async_trait]
impl Component for SqlStorage {
    /// Connects, reads the server version and times a round trip: `PostgreSQL 15.20, 0.4 ms
    /// round trip`.
    async fn self_test(&self) -> Result<String> {
        let version = self
            .version()
            .await
            .map_err(|f| self.fail("self-test failed", f))?;
        let started = Instant::now();
        self.query("SELECT 1", &[]).await?;
        let micros = started.elapsed().as_secs_f64() * 1000.0;
        Ok(format!("{version}, {micros:.1} ms round trip"))
    }

    async fn health(&self) -> Health {
        let (size, idle, max) = self.pool_usage();
        let usage = format!(
            "{} of {max} connections in use, {idle} idle",
            size.saturating_sub(u32::try_from(idle).unwrap_or(u32::MAX))
        );
        if self.is_closed() {
            return Health::failed(format!("connection pool closed; {usage}"));
        }
        let ping = tokio::time::timeout(Duration::from_secs(2), self.query("SELECT 1", &[])).await;
        match ping {
            Ok(Ok(_)) => Health::ok().with_detail(usage),
            Ok(Err(e)) => Health::failed(format!("{e}; {usage}")),
            Err(_) => Health::degraded(format!("no answer to SELECT 1 within 2 s; {usage}")),
        }
    }

    /// Stops listeners and closes the pool: gracefully waits for borrowed connections up to
    /// the deadline, fast gives them 100 ms.
    async fn stop(&self, mode: StopMode) -> Result<()> {
        if let Ok(mut listeners) = self.inner.listeners.lock() {
            for handle in listeners.drain(..) {
                handle.abort();
            }
        }
        #[cfg(feature = "postgres")]
        if let Some(pipeline) = &self.inner.pipeline {
            pipeline.close().await;
        }
        let Some(pool) = self.inner.pool.get() else {
            return Ok(());
        };
        let deadline = match mode {
            StopMode::Graceful { deadline } => deadline,
            StopMode::Fast => Duration::from_millis(100),
        };
        match pool {
            #[cfg(feature = "postgres")]
            Pool::Pg(p) => pool::close(p, deadline).await,
            #[cfg(feature = "mysql")]
            Pool::My(p) => pool::close(p, deadline).await,
            #[cfg(feature = "sqlite")]
            Pool::Lite(p) => {
                let _ = tokio::time::timeout(deadline, p.close()).await;
            }
            #[cfg(not(any(feature = "postgres", feature = "mysql", feature = "sqlite")))]
            Pool::Off(never) => match *never {},
        }
        Ok(())
    }
}

#[async_trait]
impl Storage for SqlStorage {
    fn dialect(&self) -> Dialect {
        self.inner.dialect
    }

    fn pool_usage(&self) -> Option<(u32, u32, u32)> {
        let (open, idle, max) = SqlStorage::pool_usage(self);
        Some((open, u32::try_from(idle).unwrap_or(u32::MAX), max))
    }

    async fn query_read(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>> {
        #[cfg(feature = "postgres")]
        if let Some(pipeline) = &self.inner.pipeline
            && let pipeline::Outcome::Ran(rows) = pipeline.query(sql, params).await
        {
            return rows.map_err(|f| self.fail("query failed", f));
        }
        self.query(sql, params).await
    }

    async fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>> {
        let mut attempt = 0;
        loop {
            let rows: std::result::Result<Vec<Row>, Failure> = match self.pool() {
                #[cfg(feature = "postgres")]
                Pool::Pg(p) => pool::fetch(p, sql, params).await,
                #[cfg(feature = "mysql")]
                Pool::My(p) => pool::fetch(p, sql, params).await,
                #[cfg(feature = "sqlite")]
                Pool::Lite(p) => common::fetch(p, sql, params).await,
                #[cfg(not(any(feature = "postgres", feature = "mysql", feature = "sqlite")))]
                Pool::Off(never) => match *never {},
            };
            match rows {
                Err(f) if self.retry_on_new_connection(&f, &mut attempt) => continue,
                rows => return rows.map_err(|f| self.fail("query failed", f)),
            }
        }
    }

    async fn execute(&self, sql: &str, params: &[Value]) -> Result<u64> {
        let mut attempt = 0;
        loop {
            let affected: std::result::Result<u64, Failure> = match self.pool() {
                #[cfg(feature = "postgres")]
                Pool::Pg(p) => pool::execute(p, sql, params).await,
                #[cfg(feature = "mysql")]
                Pool::My(p) => pool::execute(p, sql, params).await,
                #[cfg(feature = "sqlite")]
                Pool::Lite(p) => common::execute(p, sql, params).await,
                #[cfg(not(any(feature = "postgres", feature = "mysql", feature = "sqlite")))]
                Pool::Off(never) => match *never {},
            };
            match affected {
                Err(f) if self.retry_on_new_connection(&f, &mut attempt) => continue,
                affected => return affected.map_err(|f| self.fail("statement failed", f)),
            }
        }
    }

    async fn begin(&self) -> Result<Box<dyn Transaction>> {
        self.begin_with(None)
            .await
            .map_err(|f| self.fail("cannot begin a transaction", f))
    }

    async fn begin_read_only(&self) -> Result<Box<dyn Transaction>> {
        // One round trip: the access mode goes with the BEGIN itself.
        let statement = match self.inner.dialect {
            Dialect::Postgres => Some("BEGIN READ ONLY"),
            Dialect::MySql => Some("START TRANSACTION READ ONLY"),
            // SQLite has no read-only transactions; a deferred one takes no write lock.
            _ => Some("BEGIN"),
        };
        self.begin_with(statement)
            .await
            .map_err(|f| self.fail("cannot begin a read-only transaction", f))
    }

    async fn migrate(&self, owner: &str, migrations: &[Migration]) -> Result<usize> {
        let ran: std::result::Result<usize, Failure> = match self.pool() {
            #[cfg(feature = "postgres")]
            Pool::Pg(p) => match pool::get(p).await {
                Ok(mut conn) => {
                    let mut discard = false;
                    let ran = pg::migrate(conn.start(), owner, migrations, &mut discard).await;
                    if discard {
                        conn.discard();
                    }
                    conn.done(ran)
                }
                Err(f) => Err(f),
            },
            #[cfg(feature = "mysql")]
            Pool::My(p) => match pool::get(p).await {
                Ok(mut conn) => {
                    let mut discard = false;
                    let ran = mysql::migrate(conn.start(), owner, migrations, &mut discard).await;
                    if discard {
                        conn.discard();
                    }
                    conn.done(ran)
                }
                Err(f) => Err(f),
            },
            #[cfg(feature = "sqlite")]
            Pool::Lite(p) => match p.acquire().await {
                Ok(mut conn) => {
                    let mut discard = false;
                    let ran = sqlite::migrate(&mut conn, owner, migrations, &mut discard).await;
                    if discard {
                        conn.close_on_drop();
                    }
                    ran
                }
                Err(e) => Err(Failure::Sql(e)),
            },
            #[cfg(not(any(feature = "postgres", feature = "mysql", feature = "sqlite")))]
            Pool::Off(never) => match *never {},
        };
        ran.map_err(|f| self.fail(&format!("migrating {owner} failed"), f))
    }

    async fn introspect(&self, schemas: &[String]) -> Result<Schema> {
        let schema: std::result::Result<Schema, Failure> =
            with_conn!(self.pool(), c, backend => backend::introspect(c, schemas).await);
        schema.map_err(|f| self.fail("introspection failed", f))
    }

    async fn schema_fingerprint(&self, schemas: &[String]) -> Result<String> {
        let fingerprint: std::result::Result<String, Failure> =
            with_conn!(self.pool(), c, backend => backend::fingerprint(c, schemas).await);
        fingerprint.map_err(|f| self.fail("schema fingerprint failed", f))
    }

    #[allow(irrefutable_let_patterns)]
    async fn listen(&self, channel: &str) -> Result<Notifications> {
        #[cfg(feature = "postgres")]
        if let Connect::Pg(connect) = &self.inner.connect {
            let receiver = pg_listen(connect, channel).await.map_err(|e| {
                self.fail(&format!("cannot LISTEN on '{channel}'"), Failure::Sql(e))
            })?;
            if let Ok(mut listeners) = self.inner.listeners.lock() {
                listeners.retain(|h| !h.is_finished());
                listeners.push(receiver.1);
            }
            return Ok(Notifications::new(receiver.0));
        }
        Err(Error::part(
            self.inner.name.to_string(),
            format!(
                "cannot LISTEN on '{channel}': LISTEN/NOTIFY is PostgreSQL-only; poll `schema_fingerprint` instead"
            ),
        ))
    }
}

/// Subscribes on a dedicated connection and forwards payloads until the receiver is dropped
/// or the pool closes. sqlx re-connects and re-subscribes by itself; after such a gap an empty
/// payload says notifications may have been missed.
#[cfg(feature = "postgres")]
async fn pg_listen(
    connect: &sqlx::postgres::PgConnectOptions,
    channel: &str,
) -> std::result::Result<
    (
        tokio::sync::mpsc::Receiver<String>,
        tokio::task::AbortHandle,
    ),
    sqlx::Error,
> {
    // Its own one-connection sqlx pool: PgListener re-connects through it.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_lazy_with(connect.clone());
    let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await?;
    listener.listen(channel).await?;
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let channel = channel.to_owned();
    let task = tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        loop {
            let next = tokio::select! {
                () = tx.closed() => return,
                next = listener.try_recv() => next,
            };
            let payload = match next {
                Ok(Some(notification)) => {
                    backoff = Duration::from_millis(100);
                    notification.payload().to_owned()
                }
                // The connection dropped and was re-established.
                Ok(None) => String::new(),
                Err(sqlx::Error::PoolClosed) => return,
                Err(e) => {
                    tracing::warn!(channel = %channel, error = %e, "LISTEN connection lost; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            if tx.send(payload).await.is_err() {
                return;
            }
        }
    });
    Ok((rx, task.abort_handle()))
}
