//! The connection pool for the network databases (PostgreSQL, MySQL/MariaDB): deadpool
//! around plain sqlx connections.
//!
//! Why not sqlx's own pool: it pings the server every time a connection goes back to the pool
//! and, by default, again before handing it out. Each ping is a round trip, so MagGate's hot
//! path (one statement per request) cost three round trips where a client like pgbench pays
//! one; on the two-core machines we measure on, that capped MagGate at about a third of the
//! same SQL sent straight to PostgreSQL (docs/benchmarks.md). Here a connection goes back to
//! the pool without a word to the server, and is checked only when there is reason to:
//!
//! - idle for [`PING_AFTER_IDLE`] or longer: pinged before reuse (finds connections that a
//!   restarted server left dead in the pool; the rest fail one statement, which
//!   `Failure::connection_ended` (error.rs) lets the caller run again elsewhere);
//! - a statement failed below SQL (I/O, protocol) or the server ended the session: dropped;
//! - a statement was cancelled half-way (the request that ran it went away while the server
//!   was still answering): dropped, since sqlx cannot always resynchronise such a connection.
//!
//! A transaction dropped without commit or rollback queues its `ROLLBACK` on the connection
//! (sqlx's `start_rollback`); sqlx sends it before the connection's next statement.
//! SQLite keeps sqlx's pool: its "ping" is a message to an in-process thread.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
use magmobo_core::roles::storage::{Row, Transaction, Value};
use sqlx::{
    ConnectOptions as _, Connection as _, Database, Executor, IntoArguments, TransactionManager,
};

use crate::common::{self, Backend, RowsAffected};
use crate::error::{Failure, to_error};

/// A connection idle at least this long is pinged before it is handed out again.
const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// The pool of one database.
pub(crate) type Pool<DB> = managed::Pool<Manager<DB>>;

/// A connection borrowed from a [`Pool`]; it goes back when dropped.
pub(crate) type Borrowed<DB> = managed::Object<Manager<DB>>;

/// What runs on every new connection before its first use (session settings).
pub(crate) type AfterConnect<DB> =
    for<'c> fn(
        &'c mut <DB as Database>::Connection,
        &'c crate::StorageOptions,
    ) -> futures::future::BoxFuture<'c, Result<(), sqlx::Error>>;

/// Opens and vets connections for deadpool.
pub(crate) struct Manager<DB: Database> {
    connect: <DB::Connection as sqlx::Connection>::Options,
    options: crate::StorageOptions,
    after_connect: Option<AfterConnect<DB>>,
}

/// A pooled connection and what its last use says about it.
pub(crate) struct Pooled<DB: Database> {
    conn: DB::Connection,
    /// Set while a statement runs; still set when the connection comes back means the
    /// statement's future was dropped half-way.
    busy: bool,
    /// A statement failed in a way that leaves the connection unusable.
    broken: bool,
}

impl<DB: Database> std::fmt::Debug for Manager<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager").finish_non_exhaustive()
    }
}

impl<DB: Database> std::fmt::Debug for Pooled<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pooled")
            .field("busy", &self.busy)
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

impl<DB: Database> Pooled<DB> {
    /// The connection for one statement; pair with [`Pooled::done`].
    pub(crate) fn start(&mut self) -> &mut DB::Connection {
        self.busy = true;
        &mut self.conn
    }

    /// Records how the statement begun with [`Pooled::start`] ended, and passes its result on.
    pub(crate) fn done<T>(&mut self, result: Result<T, Failure>) -> Result<T, Failure> {
        self.busy = false;
        if let Err(failure) = &result
            && failure.breaks_connection()
        {
            self.broken = true;
        }
        result
    }

    /// Makes sure this connection is not reused (a lock that could not be released).
    pub(crate) fn discard(&mut self) {
        self.broken = true;
    }
}

impl<DB: Database> managed::Manager for Manager<DB> {
    type Type = Pooled<DB>;
    type Error = sqlx::Error;

    async fn create(&self) -> Result<Pooled<DB>, sqlx::Error> {
        let mut conn = self.connect.connect().await?;
        if let Some(after_connect) = self.after_connect {
            after_connect(&mut conn, &self.options).await?;
        }
        Ok(Pooled {
            conn,
            busy: false,
            broken: false,
        })
    }

    async fn recycle(
        &self,
        pooled: &mut Pooled<DB>,
        metrics: &Metrics,
    ) -> RecycleResult<sqlx::Error> {
        if pooled.broken {
            return Err(RecycleError::message("the connection failed"));
        }
        if pooled.busy {
            return Err(RecycleError::message("a statement was cancelled half-way"));
        }
        if metrics.last_used() >= PING_AFTER_IDLE {
            pooled.conn.ping().await?;
        }
        Ok(())
    }
}

/// A pool that opens nothing until first used.
pub(crate) fn build<DB: Database>(
    connect: <DB::Connection as sqlx::Connection>::Options,
    options: &crate::StorageOptions,
    after_connect: Option<AfterConnect<DB>>,
) -> Pool<DB> {
    let manager = Manager {
        connect,
        options: options.clone(),
        after_connect,
    };
    let max = usize::try_from(options.max_connections).unwrap_or(usize::MAX);
    let built = managed::Pool::builder(manager)
        .max_size(max)
        .wait_timeout(Some(options.acquire_timeout))
        .create_timeout(Some(options.acquire_timeout))
        .recycle_timeout(Some(options.acquire_timeout))
        .runtime(deadpool::Runtime::Tokio1)
        .build();
    match built {
        Ok(pool) => pool,
        // Only a timeout without a runtime fails to build, and the runtime is set above.
        Err(e) => unreachable!("deadpool refused its configuration: {e}"),
    }
}

/// Borrows a connection, opening one when none is idle and the pool is not full.
pub(crate) async fn get<DB: Database>(pool: &Pool<DB>) -> Result<Borrowed<DB>, Failure> {
    pool.get().await.map_err(|e| {
        Failure::Sql(match e {
            managed::PoolError::Backend(e) => e,
            managed::PoolError::Timeout(_) => sqlx::Error::PoolTimedOut,
            managed::PoolError::Closed => sqlx::Error::PoolClosed,
            other => sqlx::Error::Protocol(other.to_string()),
        })
    })
}

/// `(open, idle, max)`.
pub(crate) fn usage<DB: Database>(pool: &Pool<DB>) -> (u32, usize, u32) {
    let status = pool.status();
    let to_u32 = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    (
        to_u32(status.size),
        status.available,
        to_u32(status.max_size),
    )
}

/// Waits up to `deadline` for borrowed connections to come back, then says goodbye to the
/// server on each idle one and closes the pool (connections still borrowed are dropped when
/// they come back).
pub(crate) async fn close<DB: Database>(pool: &Pool<DB>, deadline: Duration) {
    let waited = tokio::time::timeout(deadline, async {
        loop {
            let status = pool.status();
            if status.available >= status.size {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    if waited.is_err() {
        tracing::debug!("closing the pool with connections still borrowed");
    }
    let idle = pool.retain(|_, _| false).removed;
    pool.close();
    for pooled in idle {
        let _ = pooled.conn.close().await;
    }
}

/// Runs one statement returning rows on a connection of `pool`.
pub(crate) async fn fetch<DB>(
    pool: &Pool<DB>,
    sql: &str,
    params: &[Value],
) -> Result<Vec<Row>, Failure>
where
    DB: Backend,
    for<'c> &'c mut <DB as Database>::Connection: Executor<'c, Database = DB>,
    for<'q> <DB as Database>::Arguments<'q>: IntoArguments<'q, DB>,
{
    let mut conn = get(pool).await?;
    let result = common::fetch(conn.start(), sql, params).await;
    conn.done(result)
}

/// Runs one statement on a connection of `pool`; returns the affected row count.
pub(crate) async fn execute<DB>(
    pool: &Pool<DB>,
    sql: &str,
    params: &[Value],
) -> Result<u64, Failure>
where
    DB: Backend,
    for<'c> &'c mut <DB as Database>::Connection: Executor<'c, Database = DB>,
    for<'q> <DB as Database>::Arguments<'q>: IntoArguments<'q, DB>,
    <DB as Database>::QueryResult: RowsAffected,
{
    let mut conn = get(pool).await?;
    let result = common::execute(conn.start(), sql, params).await;
    conn.done(result)
}

/// A transaction on a borrowed connection. Dropped while still open, it queues a `ROLLBACK`
/// that sqlx sends before the connection's next statement.
pub(crate) struct PooledTransaction<DB: Database> {
    conn: Borrowed<DB>,
    open: bool,
    part: Arc<str>,
    target: Arc<str>,
}

impl<DB: Database> PooledTransaction<DB> {
    /// Borrows a connection and begins with `statement` (`BEGIN` when `None`).
    pub(crate) async fn begin(
        pool: &Pool<DB>,
        statement: Option<&'static str>,
        part: Arc<str>,
        target: Arc<str>,
    ) -> Result<Self, Failure> {
        let mut conn = get(pool).await?;
        let begun = <DB::TransactionManager as TransactionManager>::begin(
            conn.start(),
            statement.map(Cow::Borrowed),
        )
        .await
        .map_err(Failure::Sql);
        conn.done(begun)?;
        Ok(PooledTransaction {
            conn,
            open: true,
            part,
            target,
        })
    }

    fn fail(&self, action: &str, failure: Failure) -> magmobo_core::Error {
        to_error(&self.part, &self.target, action, failure)
    }

    async fn end(mut self: Box<Self>, commit: bool) -> magmobo_core::Result<()> {
        self.open = false;
        let conn = self.conn.start();
        let ended = if commit {
            <DB::TransactionManager as TransactionManager>::commit(conn).await
        } else {
            <DB::TransactionManager as TransactionManager>::rollback(conn).await
        };
        let ended = self.conn.done(ended.map_err(Failure::Sql));
        let action = if commit {
            "commit failed"
        } else {
            "rollback failed"
        };
        ended.map_err(|f| self.fail(action, f))
    }
}

impl<DB: Database> Drop for PooledTransaction<DB> {
    fn drop(&mut self) {
        if self.open {
            <DB::TransactionManager as TransactionManager>::start_rollback(&mut self.conn.conn);
        }
    }
}

#[async_trait]
impl<DB> Transaction for PooledTransaction<DB>
where
    DB: Backend,
    for<'c> &'c mut <DB as Database>::Connection: Executor<'c, Database = DB>,
    for<'q> <DB as Database>::Arguments<'q>: IntoArguments<'q, DB>,
    <DB as Database>::QueryResult: RowsAffected,
{
    async fn query(&mut self, sql: &str, params: &[Value]) -> magmobo_core::Result<Vec<Row>> {
        let result = common::fetch(self.conn.start(), sql, params).await;
        self.conn
            .done(result)
            .map_err(|f| self.fail("query failed", f))
    }

    async fn execute(&mut self, sql: &str, params: &[Value]) -> magmobo_core::Result<u64> {
        let result = common::execute(self.conn.start(), sql, params).await;
        self.conn
            .done(result)
            .map_err(|f| self.fail("statement failed", f))
    }

    async fn commit(self: Box<Self>) -> magmobo_core::Result<()> {
        self.end(true).await
    }

    async fn rollback(self: Box<Self>) -> magmobo_core::Result<()> {
        self.end(false).await
    }
}
