//! PostgreSQL statements outside transactions, pipelined on a few shared connections
//! (tokio-postgres).
//!
//! Why: a request that runs one statement pays a full round trip and two wake-ups of the
//! server process per statement when each connection carries one statement at a time (sqlx
//! has no pipelining). tokio-postgres writes the statements of concurrent requests on one
//! connection without waiting for each answer; on two cores a bare server doing so answered
//! 1.5× pgbench's rate where one connection per request reached 0.7×
//! (`benches/probes/pg-pipeline`, docs/benchmarks.md).
//!
//! What goes through here: [`Storage::query_read`](magmobo_core::roles::storage::Storage)
//! on PostgreSQL (statements the caller guarantees only read: MagGate's GET and HEAD outside
//! a transaction), when the statement's result columns are all of types this module decodes
//! exactly as the sqlx path does (booleans, integers, floats, text, JSON, bytea). Everything
//! else (writes, which each wait for a commit and gain from PostgreSQL flushing concurrent
//! sessions' commits together; other column types; transactions, migrations, introspection,
//! LISTEN) stays on the sqlx pool, and so does everything when the pipeline cannot connect
//! (TLS is only on the sqlx side). Each statement ends with its own Sync, so it is its own
//! implicit transaction, exactly like a statement sent alone.
//!
//! A statement waits for the ones pipelined before it on its connection, so a slow one
//! delays those behind it: each statement goes to the connection with the fewest statements
//! in flight, and there are several ([`crate::StorageOptions::pipelined_connections`]).
//! A closed connection is replaced on the next statement; a read that met one runs once
//! more on the new one (reading twice changes nothing).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::BytesMut;
use magmobo_core::roles::storage::{Row, Value};
use tokio_postgres::types::{FromSql, IsNull, Kind, ToSql, Type, to_sql_checked};
use tokio_postgres::{Client, NoTls, Statement};

use crate::error::Failure;

/// The pipelined connections of one PostgreSQL database.
pub(crate) struct Pipeline {
    config: tokio_postgres::Config,
    slots: Vec<Slot>,
    /// Set by [`Pipeline::close`]: statements go to the pool (which reports it closed).
    closed: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("connections", &self.slots.len())
            .finish_non_exhaustive()
    }
}

/// One connection (opened on first use, replaced when closed) and its statements in flight.
#[derive(Default)]
struct Slot {
    conn: tokio::sync::Mutex<Option<Arc<Conn>>>,
    in_flight: AtomicUsize,
}

/// SQL texts prepared per connection before the cache starts over (sqlx keeps 100).
const MAX_STATEMENTS: usize = 256;

/// A statement prepared for one list of parameter type OIDs; `None` when its result has a
/// column type this module does not decode (the sqlx path runs it).
type Prepared = (Vec<u32>, Option<Statement>);

/// A client and the statements prepared on it.
struct Conn {
    client: Client,
    /// By SQL, then parameter types; at most [`MAX_STATEMENTS`] SQL texts.
    statements: std::sync::Mutex<HashMap<String, Vec<Prepared>>>,
}

/// Whether a statement ran here.
pub(crate) enum Outcome<T> {
    /// It ran (or failed in the database).
    Ran(Result<T, Failure>),
    /// Not for this path: run it on the sqlx pool.
    Elsewhere,
}

impl Pipeline {
    /// Pipelines over `connections` connections to `url`, with the pool's statement timeout.
    /// `None` when tokio-postgres cannot read the URL (the sqlx path still can).
    pub(crate) fn new(url: &str, options: &crate::StorageOptions) -> Option<Pipeline> {
        if options.pipelined_connections == 0 {
            return None;
        }
        let mut config: tokio_postgres::Config = match url.parse() {
            Ok(config) => config,
            Err(error) => {
                tracing::info!(%error, "statements will not be pipelined: the URL is not one tokio-postgres reads");
                return None;
            }
        };
        config.application_name("magmobo-pipeline");
        config.connect_timeout(options.acquire_timeout);
        if let Some(timeout) = options.statement_timeout {
            config.options(format!("-c statement_timeout={}", timeout.as_millis()));
        }
        let slots = (0..options.pipelined_connections)
            .map(|_| Slot::default())
            .collect();
        Some(Pipeline {
            config,
            slots,
            closed: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Runs a statement that only reads (the caller guarantees it: see
    /// `Storage::query_read`). One whose connection closed under it runs once more on a new
    /// connection: reading twice changes nothing.
    pub(crate) async fn query(&self, sql: &str, params: &[Value]) -> Outcome<Vec<Row>> {
        if self.closed.load(Ordering::Relaxed) {
            return Outcome::Elsewhere;
        }
        let binds: Vec<Bind<'_>> = params.iter().map(Bind).collect();
        let refs: Vec<&(dyn ToSql + Sync)> =
            binds.iter().map(|b| b as &(dyn ToSql + Sync)).collect();
        let types: Vec<Type> = params.iter().map(param_type).collect();
        // Every connection may have dropped at once (a restart): one more try than there are.
        let attempts = self.slots.len() + 1;
        for attempt in 0..attempts {
            let slot = self.least_busy();
            let conn = match self.connection(slot).await {
                Ok(conn) => conn,
                Err(error) => {
                    tracing::debug!(%error, "pipeline connection failed; using the pool");
                    return Outcome::Elsewhere;
                }
            };
            slot.in_flight.fetch_add(1, Ordering::Relaxed);
            let result: Result<Option<Result<Vec<Row>, Failure>>, tokio_postgres::Error> = async {
                let Some(statement) = prepare(&conn, sql, &types).await? else {
                    return Ok(None);
                };
                let found = conn.client.query(&statement, &refs).await?;
                Ok(Some(decode_rows(&statement, &found)))
            }
            .await;
            slot.in_flight.fetch_sub(1, Ordering::Relaxed);
            match result {
                Ok(Some(done)) => return Outcome::Ran(done),
                Ok(None) => return Outcome::Elsewhere,
                Err(error) if attempt + 1 < attempts && (error.is_closed() || not_run(&error)) => {
                    tracing::info!(%error, "a pipelined connection dropped; reading again on a new one");
                    continue;
                }
                Err(error) => return Outcome::Ran(Err(Failure::Pipelined(error))),
            }
        }
        Outcome::Elsewhere
    }

    fn least_busy(&self) -> &Slot {
        self.slots
            .iter()
            .min_by_key(|s| s.in_flight.load(Ordering::Relaxed))
            .unwrap_or(&self.slots[0])
    }

    /// The slot's connection, opened (again) when missing or closed.
    async fn connection(&self, slot: &Slot) -> Result<Arc<Conn>, tokio_postgres::Error> {
        let mut held = slot.conn.lock().await;
        if let Some(conn) = held.as_ref()
            && !conn.client.is_closed()
        {
            return Ok(conn.clone());
        }
        let (client, connection) = self.config.connect(NoTls).await?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "pipelined connection ended");
            }
        });
        let conn = Arc::new(Conn {
            client,
            statements: std::sync::Mutex::new(HashMap::new()),
        });
        *held = Some(conn.clone());
        Ok(conn)
    }

    /// Closes the connections (the board is stopping); later statements go to the pool.
    pub(crate) async fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        for slot in &self.slots {
            slot.conn.lock().await.take();
        }
    }
}

/// The server ended the session without running the statement.
fn not_run(error: &tokio_postgres::Error) -> bool {
    error
        .as_db_error()
        .is_some_and(|db| matches!(db.code().code(), "57P01" | "57P02" | "57P03"))
}

/// The statement for `sql` with `types`, prepared once per connection; `None` when its result
/// has a column type not decoded here.
async fn prepare(
    conn: &Conn,
    sql: &str,
    types: &[Type],
) -> Result<Option<Statement>, tokio_postgres::Error> {
    let same_types = |oids: &[u32]| oids.iter().copied().eq(types.iter().map(Type::oid));
    // Looked up by `&str`: the hot path copies no SQL.
    if let Some((_, known)) = conn
        .statements
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(sql)
        .and_then(|prepared| prepared.iter().find(|(oids, _)| same_types(oids)))
    {
        return Ok(known.clone());
    }
    let statement = conn.client.prepare_typed(sql, types).await?;
    let usable = statement.columns().iter().all(|c| decodable(c.type_()));
    let entry = usable.then_some(statement);
    let mut statements = conn.statements.lock().unwrap_or_else(|e| e.into_inner());
    if statements.len() >= MAX_STATEMENTS && !statements.contains_key(sql) {
        // Query shapes vary without end (`in.(...)` lists of every length): start over rather
        // than grow; dropping a `Statement` closes it on the server.
        statements.clear();
    }
    statements
        .entry(sql.to_owned())
        .or_default()
        .push((types.iter().map(Type::oid).collect(), entry.clone()));
    Ok(entry)
}

/// The parameter type each value is sent as, the same as on the sqlx path: text as `text`
/// (the SQL casts it), JSON as `jsonb`, NULL as "unspecified" so the server infers it.
fn param_type(value: &Value) -> Type {
    match value {
        Value::Null => Type::new(String::new(), 0, Kind::Simple, String::new()),
        Value::Bool(_) => Type::BOOL,
        Value::Int(_) => Type::INT8,
        Value::Float(_) => Type::FLOAT8,
        Value::Text(_) => Type::TEXT,
        Value::Bytes(_) => Type::BYTEA,
        Value::Json(_) => Type::JSONB,
    }
}

/// A value bound as the type [`param_type`] declared for it.
#[derive(Debug)]
struct Bind<'a>(&'a Value);

impl ToSql for Bind<'_> {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        use bytes::BufMut as _;
        match self.0 {
            Value::Null => return Ok(IsNull::Yes),
            Value::Bool(b) => out.put_u8(u8::from(*b)),
            Value::Int(i) => out.put_i64(*i),
            Value::Float(f) => out.put_f64(*f),
            Value::Text(s) => out.put_slice(s.as_bytes()),
            Value::Bytes(b) => out.put_slice(b),
            Value::Json(j) => {
                out.put_u8(1);
                serde_json::to_writer(out.writer(), j)?;
            }
        }
        Ok(IsNull::No)
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// The raw bytes of a column, whatever its type.
struct Raw<'a>(Option<&'a [u8]>);

impl<'a> FromSql<'a> for Raw<'a> {
    fn from_sql(
        _ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(Some(raw)))
    }

    fn from_sql_null(_ty: &Type) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(None))
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }
}

/// Column types decoded here, as the sqlx path decodes them.
fn decodable(ty: &Type) -> bool {
    matches!(
        *ty,
        Type::BOOL
            | Type::INT2
            | Type::INT4
            | Type::INT8
            | Type::FLOAT4
            | Type::FLOAT8
            | Type::TEXT
            | Type::VARCHAR
            | Type::BPCHAR
            | Type::NAME
            | Type::JSON
            | Type::JSONB
            | Type::BYTEA
    )
}

fn decode_rows(statement: &Statement, rows: &[tokio_postgres::Row]) -> Result<Vec<Row>, Failure> {
    let columns: Arc<[String]> = statement
        .columns()
        .iter()
        .map(|c| c.name().to_owned())
        .collect();
    rows.iter()
        .map(|row| {
            let values = statement
                .columns()
                .iter()
                .enumerate()
                .map(|(i, column)| {
                    let raw = row
                        .try_get::<_, Raw<'_>>(i)
                        .map_err(|e| decode_failure(column.name(), &e.to_string()))?;
                    decode(column.type_(), raw.0)
                        .map_err(|message| decode_failure(column.name(), &message))
                })
                .collect::<Result<Vec<Value>, Failure>>()?;
            Ok(Row {
                columns: columns.clone(),
                values,
            })
        })
        .collect()
}

fn decode_failure(column: &str, message: &str) -> Failure {
    Failure::Decode {
        column: column.to_owned(),
        message: message.to_owned(),
    }
}

fn decode(ty: &Type, raw: Option<&[u8]>) -> Result<Value, String> {
    let Some(raw) = raw else {
        return Ok(Value::Null);
    };
    let fixed = |n: usize| -> Result<&[u8], String> {
        (raw.len() == n)
            .then_some(raw)
            .ok_or_else(|| format!("expected {n} bytes, got {}", raw.len()))
    };
    let text = || {
        std::str::from_utf8(raw)
            .map(str::to_owned)
            .map_err(|e| e.to_string())
    };
    Ok(match *ty {
        Type::BOOL => Value::Bool(fixed(1)?[0] != 0),
        Type::INT2 => Value::Int(i16::from_be_bytes(array(fixed(2)?)?).into()),
        Type::INT4 => Value::Int(i32::from_be_bytes(array(fixed(4)?)?).into()),
        Type::INT8 => Value::Int(i64::from_be_bytes(array(fixed(8)?)?)),
        Type::FLOAT4 => crate::pg::float4_value(f32::from_be_bytes(array(fixed(4)?)?)),
        Type::FLOAT8 => Value::Float(f64::from_be_bytes(array(fixed(8)?)?)),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => Value::Text(text()?),
        Type::JSON => crate::pg::json_value(raw, false)?,
        Type::JSONB => crate::pg::json_value(raw, true)?,
        Type::BYTEA => Value::Bytes(raw.to_vec()),
        _ => return Err(format!("type {ty} is not decoded on the pipelined path")),
    })
}

fn array<const N: usize>(bytes: &[u8]) -> Result<[u8; N], String> {
    bytes
        .try_into()
        .map_err(|_| format!("expected {N} bytes, got {}", bytes.len()))
}
