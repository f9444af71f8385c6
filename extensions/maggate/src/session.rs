//! One request's database session: who the caller is, and the connection or transaction
//! its statements run on.
//!
//! On PostgreSQL, when the request carries an identity (a PSU is plugged and something in
//! the database can read request settings: row-level security, a user function, or a view,
//! default or check calling `current_setting`; or role switching is on; or a pre-request
//! function is set), every request runs in one transaction, read-only
//! for GET and HEAD, that starts as PostgREST's does: one statement of `set_config(..., true)`
//! calls (transaction-local, all values bound) for `request.jwt.claims`, `request.method`,
//! `request.path`, `request.headers` and, when [`GateConfig::switch_role`] is on, `role`; then
//! the `db-pre-request` function; then the query. That is exactly BEGIN, one `set_config`
//! statement, the optional pre-request call, the query and COMMIT, so row-level security
//! policies written for PostgREST or Supabase apply unchanged. Without an identity the
//! request keeps the fast path: one statement on the pool.
//!
//! The transaction ends as [`TxEnd`] (PostgREST's `db-tx-end`) says, or as the client's
//! `Prefer: tx=commit|rollback` says where the setting allows an override.
//!
//! [`GateConfig::switch_role`]: crate::GateConfig::switch_role

use std::sync::Arc;

use magmobo_core::roles::auth::{Identity, IdentityKind};
use magmobo_core::roles::storage::{Dialect, Row, Storage, Transaction, Value};

use crate::api_error::{ApiError, ApiResult};
use crate::gate::{GateConfig, Runtime};
use crate::request::PreferTransaction;
use crate::sql::{Catalog, Statement};

/// How a request's transaction ends (PostgREST's `db-tx-end`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TxEnd {
    /// Commit; `Prefer: tx=` is ignored.
    #[default]
    Commit,
    /// Commit unless the client sends `Prefer: tx=rollback`.
    CommitAllowOverride,
    /// Roll back every request (for tests against a shared database); `Prefer: tx=` is
    /// ignored.
    Rollback,
    /// Roll back unless the client sends `Prefer: tx=commit`.
    RollbackAllowOverride,
}

impl TxEnd {
    /// Whether to commit, and the `Preference-Applied` token when the client's preference
    /// was honoured.
    fn decide(self, preferred: Option<PreferTransaction>) -> (bool, Option<&'static str>) {
        let overridable = matches!(
            self,
            TxEnd::CommitAllowOverride | TxEnd::RollbackAllowOverride
        );
        match (overridable, preferred) {
            (true, Some(PreferTransaction::Commit)) => (true, Some("tx=commit")),
            (true, Some(PreferTransaction::Rollback)) => (false, Some("tx=rollback")),
            _ => (
                matches!(self, TxEnd::Commit | TxEnd::CommitAllowOverride),
                None,
            ),
        }
    }
}

/// Statements run either on the pool or inside one transaction.
pub(crate) enum Conn {
    /// No transaction; `read_only` (GET, HEAD) lets the storage pipeline the statements.
    Pool {
        storage: Arc<dyn Storage>,
        read_only: bool,
    },
    Tx(Box<dyn Transaction>),
}

impl Conn {
    pub(crate) async fn query(&mut self, st: &Statement) -> ApiResult<Vec<Row>> {
        let r = match self {
            Conn::Pool {
                storage,
                read_only: true,
            } => storage.query_read(&st.sql, &st.binds).await,
            Conn::Pool { storage, .. } => storage.query(&st.sql, &st.binds).await,
            Conn::Tx(t) => t.query(&st.sql, &st.binds).await,
        };
        r.map_err(|e| db_error(&e))
    }

    pub(crate) async fn execute(&mut self, st: &Statement) -> ApiResult<u64> {
        let r = match self {
            Conn::Pool { storage, .. } => storage.execute(&st.sql, &st.binds).await,
            Conn::Tx(t) => t.execute(&st.sql, &st.binds).await,
        };
        r.map_err(|e| db_error(&e))
    }

    /// Commits or rolls back a transaction; nothing on the pool.
    pub(crate) async fn finish(self, commit: bool) -> ApiResult<()> {
        if let Conn::Tx(t) = self {
            let r = if commit {
                t.commit().await
            } else {
                t.rollback().await
            };
            r.map_err(|e| db_error(&e))?;
        }
        Ok(())
    }
}

/// A database failure as PostgREST would report it. The driver appends
/// `(SQLSTATE xxxxx)` to database messages; without one it is a client-side failure.
pub(crate) fn db_error(e: &magmobo_core::Error) -> ApiError {
    let text = e.to_string();
    if let Some(pos) = text.rfind("(SQLSTATE ") {
        let code: String = text[pos + 10..].chars().take(5).collect();
        let message = text[..pos].trim_end();
        // Keep the database's own words: drop the "Part: action: " prefix.
        let message = message.splitn(3, ": ").last().unwrap_or(message);
        return ApiError::from_database(Some(&code), message);
    }
    let lower = text.to_ascii_lowercase();
    if lower.contains("connection") || lower.contains("cannot reach") || lower.contains("pool") {
        return ApiError::new(
            503,
            "PGRST001",
            "Database client error. Retrying the connection.",
        )
        .details(text);
    }
    ApiError::from_database(None, &text)
}

/// Who is calling and how their statements run.
pub(crate) struct Session {
    storage: Arc<dyn Storage>,
    /// The `set_config` statement (PostgreSQL with an identity).
    context: Option<Statement>,
    /// `SELECT schema.fn()` for `db-pre-request`.
    pre_request: Option<String>,
    read_only: bool,
    commit: bool,
    /// `tx=commit`/`tx=rollback` when the client's preference was honoured.
    pub applied: Option<&'static str>,
    /// Whether the caller runs as the anonymous role (401 rather than 403 on `42501`).
    pub anonymous: bool,
    /// The role policies are looked up for (empty when there is none).
    pub role: String,
    /// The claims row filters read.
    pub claims: serde_json::Value,
}

impl Session {
    /// The session for a request from `identity` (`None` without a PSU).
    pub(crate) fn new(
        config: &GateConfig,
        rt: &Runtime,
        catalog: &Catalog,
        identity: Option<Identity>,
        parts: &http::request::Parts,
    ) -> ApiResult<Session> {
        let (role, claims, anonymous) = match identity {
            Some(id) => {
                let anonymous = id.kind == IdentityKind::Anonymous
                    || config.anon_role.as_deref() == Some(id.role.as_str());
                (Some(id.role), id.claims, anonymous)
            }
            None => {
                let claims = match &config.anon_role {
                    Some(r) => serde_json::json!({ "role": r }),
                    None => serde_json::json!({}),
                };
                (config.anon_role.clone(), claims, true)
            }
        };
        let read_only = matches!(parts.method, http::Method::GET | http::Method::HEAD);
        let pg = catalog.dialect() == Dialect::Postgres;
        let pre_request = match (&config.pre_request, pg) {
            (Some(name), true) => Some(pre_request_sql(catalog, name).map_err(|m| {
                ApiError::new(500, "42883", m)
                    .hint("Check GateConfig::pre_request against the exposed schemas.")
            })?),
            _ => None,
        };
        // With a PSU, the claims go to the database only when something there can read
        // them (row-level security, functions, views or defaults calling current_setting).
        let with_identity = (rt.auth.is_some() && catalog.session_observable())
            || config.switch_role
            || pre_request.is_some();
        let context = (pg && with_identity).then(|| {
            context_statement(
                config.switch_role.then_some(role.as_deref()).flatten(),
                &claims,
                parts,
            )
        });
        let (commit, _) = config.tx_end.decide(None);
        Ok(Session {
            storage: rt.storage.clone(),
            context,
            pre_request,
            read_only,
            commit,
            applied: None,
            anonymous,
            role: role.unwrap_or_default(),
            claims,
        })
    }

    /// Applies the client's `Prefer: tx=` under `tx_end`.
    pub(crate) fn prefer(&mut self, tx_end: TxEnd, preferred: Option<PreferTransaction>) {
        let (commit, applied) = tx_end.decide(preferred);
        self.commit = commit;
        self.applied = applied;
    }

    /// A connection for the request's statements: a transaction when `must_tx`, when the
    /// request carries an identity (PostgreSQL) or when a write is to be rolled back;
    /// otherwise the pool.
    pub(crate) async fn open(&self, must_tx: bool) -> ApiResult<Conn> {
        let needs_tx = must_tx
            || self.context.is_some()
            || self.pre_request.is_some()
            || (!self.commit && !self.read_only);
        if !needs_tx {
            return Ok(Conn::Pool {
                storage: self.storage.clone(),
                read_only: self.read_only,
            });
        }
        let begun = if self.read_only {
            self.storage.begin_read_only().await
        } else {
            self.storage.begin().await
        };
        let mut conn = Conn::Tx(begun.map_err(|e| db_error(&e))?);
        if let Some(st) = &self.context
            && let Err(e) = conn.query(st).await
        {
            let _ = conn.finish(false).await;
            return Err(self.permission(e));
        }
        if let Some(sql) = &self.pre_request {
            let st = Statement {
                sql: sql.clone(),
                binds: Vec::new(),
            };
            if let Err(e) = conn.query(&st).await {
                let _ = conn.finish(false).await;
                return Err(self.permission(e));
            }
        }
        Ok(conn)
    }

    /// Ends a request whose statements succeeded, as `db-tx-end` and `Prefer: tx=` say.
    pub(crate) async fn finish(&self, conn: Conn) -> ApiResult<()> {
        conn.finish(self.commit).await
    }

    /// PostgREST's statuses for privilege errors: `42501` is 401 for the anonymous role
    /// and 403 otherwise; a role that does not exist (`22023`) is 401.
    pub(crate) fn permission(&self, mut e: ApiError) -> ApiError {
        match e.code.as_str() {
            "42501" => e.status = if self.anonymous { 401 } else { 403 },
            "22023" if e.message.starts_with("role ") && e.message.ends_with("does not exist") => {
                e.status = 401;
            }
            _ => {}
        }
        e
    }
}

/// `SELECT set_config(...)` for the request GUCs PostgREST sets, every value a parameter.
fn context_statement(
    role: Option<&str>,
    claims: &serde_json::Value,
    parts: &http::request::Parts,
) -> Statement {
    let mut headers = serde_json::Map::new();
    for (name, value) in &parts.headers {
        if let Ok(v) = value.to_str() {
            headers
                .entry(name.as_str())
                .or_insert_with(|| serde_json::Value::String(v.to_owned()));
        }
    }
    let mut sql = String::from(
        "SELECT set_config('request.jwt.claims', $1, true), \
         set_config('request.method', $2, true), set_config('request.path', $3, true), \
         set_config('request.headers', $4, true)",
    );
    let mut binds = vec![
        Value::Text(claims.to_string()),
        Value::Text(parts.method.as_str().to_owned()),
        Value::Text(parts.uri.path().to_owned()),
        Value::Text(serde_json::Value::Object(headers).to_string()),
    ];
    if let Some(role) = role {
        sql.push_str(", set_config('role', $5, true)");
        binds.push(Value::Text(role.to_owned()));
    }
    Statement { sql, binds }
}

/// `SELECT "schema"."fn"()` for the pre-request function `name` (`fn` or `schema.fn`),
/// which must exist among the introspected functions and take no required argument.
pub(crate) fn pre_request_sql(catalog: &Catalog, name: &str) -> Result<String, String> {
    let (schema, function) = match name.split_once('.') {
        Some((s, f)) => (Some(s), f),
        None => (None, name),
    };
    let found = catalog.schema().functions.iter().find(|f| {
        f.name == function
            && schema.is_none_or(|s| f.schema == s)
            && f.params.iter().all(|p| p.has_default)
    });
    match found {
        Some(f) => Ok(format!(
            "SELECT {}.{}()",
            quote_ident(&f.schema),
            quote_ident(&f.name)
        )),
        None => Err(format!(
            "the pre-request function '{name}' was not found among the exposed functions \
             (it must exist and take no required argument)"
        )),
    }
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tx_end_honours_the_client_only_when_allowed() {
        use PreferTransaction::{Commit, Rollback};
        assert_eq!(TxEnd::Commit.decide(Some(Rollback)), (true, None));
        assert_eq!(TxEnd::Rollback.decide(Some(Commit)), (false, None));
        assert_eq!(
            TxEnd::CommitAllowOverride.decide(Some(Rollback)),
            (false, Some("tx=rollback"))
        );
        assert_eq!(TxEnd::CommitAllowOverride.decide(None), (true, None));
        assert_eq!(
            TxEnd::RollbackAllowOverride.decide(Some(Commit)),
            (true, Some("tx=commit"))
        );
        assert_eq!(TxEnd::RollbackAllowOverride.decide(None), (false, None));
    }

    #[test]
    fn the_context_statement_binds_every_value() {
        let (parts, ()) = http::Request::builder()
            .method("PATCH")
            .uri("/rest/v1/todos?id=eq.1")
            .header("x-thing", "a'b")
            .body(())
            .map(http::Request::into_parts)
            .unwrap_or_else(|_| http::Request::new(()).into_parts());
        let st = context_statement(Some("web'user"), &serde_json::json!({"sub": "u"}), &parts);
        assert!(!st.sql.contains("web'user") && !st.sql.contains("a'b"));
        assert_eq!(st.binds.len(), 5);
        assert_eq!(st.binds[2], Value::Text("/rest/v1/todos".into()));
        let none = context_statement(None, &serde_json::json!({}), &parts);
        assert!(!none.sql.contains("'role'"));
    }
}
