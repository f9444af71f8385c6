//! The tables (portable migrations through the board's Storage, so SQLite, PostgreSQL and
//! MariaDB behave the same) and every query MagAuth runs. Names start with `_magmobo_` so
//! introspection, and therefore MagGate, never exposes them. Times are Unix seconds;
//! refresh tokens and e-mail tokens are stored only as SHA-256.

use std::sync::Arc;

use magmobo_core::roles::storage::{Dialect, Migration, Row, Storage, Value};

use crate::error::{Error, Result};

const MIGRATIONS: [&str; 8] = [
    "CREATE TABLE _magmobo_auth_users (
        id VARCHAR(36) NOT NULL PRIMARY KEY,
        email VARCHAR(255) NOT NULL UNIQUE,
        encrypted_password TEXT NOT NULL,
        email_confirmed_at BIGINT,
        confirmation_sent_at BIGINT,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        last_sign_in_at BIGINT,
        app_metadata TEXT NOT NULL,
        user_metadata TEXT NOT NULL
    )",
    "CREATE TABLE _magmobo_auth_sessions (
        id VARCHAR(36) NOT NULL PRIMARY KEY,
        user_id VARCHAR(36) NOT NULL,
        created_at BIGINT NOT NULL,
        refreshed_at BIGINT NOT NULL,
        user_agent VARCHAR(512),
        ip VARCHAR(64)
    )",
    "CREATE TABLE _magmobo_auth_refresh_tokens (
        id VARCHAR(36) NOT NULL PRIMARY KEY,
        token_hash VARCHAR(64) NOT NULL UNIQUE,
        user_id VARCHAR(36) NOT NULL,
        session_id VARCHAR(36) NOT NULL,
        parent VARCHAR(36),
        revoked INTEGER NOT NULL,
        created_at BIGINT NOT NULL
    )",
    "CREATE TABLE _magmobo_auth_one_time_tokens (
        token_hash VARCHAR(64) NOT NULL PRIMARY KEY,
        user_id VARCHAR(36) NOT NULL,
        token_type VARCHAR(32) NOT NULL,
        created_at BIGINT NOT NULL
    )",
    "ALTER TABLE _magmobo_auth_sessions ADD COLUMN aal VARCHAR(8)",
    "ALTER TABLE _magmobo_auth_sessions ADD COLUMN mfa_at BIGINT",
    "CREATE TABLE _magmobo_auth_mfa_factors (
        id VARCHAR(36) NOT NULL PRIMARY KEY,
        user_id VARCHAR(36) NOT NULL,
        friendly_name VARCHAR(255),
        factor_type VARCHAR(16) NOT NULL,
        status VARCHAR(16) NOT NULL,
        secret VARCHAR(64) NOT NULL,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL
    )",
    "CREATE TABLE _magmobo_auth_mfa_challenges (
        id VARCHAR(36) NOT NULL PRIMARY KEY,
        factor_id VARCHAR(36) NOT NULL,
        created_at BIGINT NOT NULL,
        verified_at BIGINT,
        ip VARCHAR(64)
    )",
];

/// The migrations MagAuth runs at `init` (owner `magauth`).
pub fn migrations() -> Vec<Migration> {
    let names = [
        "users",
        "sessions",
        "refresh tokens",
        "one-time tokens",
        "session aal",
        "session mfa time",
        "mfa factors",
        "mfa challenges",
    ];
    MIGRATIONS
        .iter()
        .zip(names)
        .enumerate()
        .map(|(i, (sql, name))| Migration::portable(i as u32 + 1, name, sql))
        .collect()
}

/// A user row.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    /// UUID.
    pub id: String,
    /// Lower-cased e-mail.
    pub email: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// When the address was confirmed.
    pub email_confirmed_at: Option<i64>,
    /// When the last confirmation mail went out.
    pub confirmation_sent_at: Option<i64>,
    /// Creation time.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
    /// Last sign-in.
    pub last_sign_in_at: Option<i64>,
    /// `app_metadata` (set by the server).
    pub app_metadata: serde_json::Value,
    /// `user_metadata` (set by the user).
    pub user_metadata: serde_json::Value,
}

/// A session row.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// UUID (the `session_id` claim).
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// Sign-in time.
    pub created_at: i64,
    /// Last refresh.
    pub refreshed_at: i64,
    /// `User-Agent` at sign-in.
    pub user_agent: Option<String>,
    /// Client address at sign-in.
    pub ip: Option<String>,
    /// `aal2` once a second factor was verified in this session (`None`: `aal1`).
    pub aal: Option<String>,
    /// When the second factor was verified.
    pub mfa_at: Option<i64>,
}

/// An MFA factor row.
#[derive(Debug, Clone, PartialEq)]
pub struct Factor {
    /// UUID.
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// Name the user gave it.
    pub friendly_name: Option<String>,
    /// `totp`.
    pub factor_type: String,
    /// `unverified` or `verified`.
    pub status: String,
    /// The TOTP secret (base32).
    pub secret: String,
    /// Creation time.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
}

/// A refresh-token row.
#[derive(Debug, Clone, PartialEq)]
pub struct RefreshToken {
    /// Row id.
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// Session it belongs to.
    pub session_id: String,
    /// Whether it was already rotated or revoked.
    pub revoked: bool,
}

/// Queries over the board's Storage.
#[derive(Clone)]
pub struct Store {
    storage: Arc<dyn Storage>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

const USER_COLUMNS: &str = "id, email, encrypted_password, email_confirmed_at, \
    confirmation_sent_at, created_at, updated_at, last_sign_in_at, app_metadata, user_metadata";
const SESSION_COLUMNS: &str = "id, user_id, created_at, refreshed_at, user_agent, ip, aal, mfa_at";
const FACTOR_COLUMNS: &str =
    "id, user_id, friendly_name, factor_type, status, secret, created_at, updated_at";

fn text(v: impl Into<String>) -> Value {
    Value::Text(v.into())
}

fn opt_int(v: Option<i64>) -> Value {
    v.map_or(Value::Null, Value::Int)
}

fn json_column(row: &Row, column: &str) -> Result<serde_json::Value> {
    let raw = row.get_text(column)?;
    serde_json::from_str(&raw).map_err(|e| Error::Corrupt(format!("{column}: {e}")))
}

impl Store {
    /// Queries over `storage`.
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        Store { storage }
    }

    fn d(&self) -> Dialect {
        self.storage.dialect()
    }

    /// `sql` with `?` replaced by the dialect's placeholders, in order.
    fn sql(&self, sql: &str) -> String {
        if self.d() != Dialect::Postgres {
            return sql.to_owned();
        }
        let mut out = String::with_capacity(sql.len() + 8);
        let mut n = 0;
        for c in sql.chars() {
            if c == '?' {
                n += 1;
                out.push_str(&self.d().placeholder(n));
            } else {
                out.push(c);
            }
        }
        out
    }

    async fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>> {
        Ok(self.storage.query(&self.sql(sql), params).await?)
    }

    async fn execute(&self, sql: &str, params: &[Value]) -> Result<u64> {
        Ok(self.storage.execute(&self.sql(sql), params).await?)
    }

    /// Runs the migrations.
    pub async fn install(&self) -> Result<()> {
        self.storage.migrate("magauth", &migrations()).await?;
        Ok(())
    }

    fn user_row(row: &Row) -> Result<User> {
        Ok(User {
            id: row.get_text("id")?,
            email: row.get_text("email")?,
            password_hash: row.get_text("encrypted_password")?,
            email_confirmed_at: row.get_opt_int("email_confirmed_at")?,
            confirmation_sent_at: row.get_opt_int("confirmation_sent_at")?,
            created_at: row.get_int("created_at")?,
            updated_at: row.get_int("updated_at")?,
            last_sign_in_at: row.get_opt_int("last_sign_in_at")?,
            app_metadata: json_column(row, "app_metadata")?,
            user_metadata: json_column(row, "user_metadata")?,
        })
    }

    fn session_row(row: &Row) -> Result<Session> {
        Ok(Session {
            id: row.get_text("id")?,
            user_id: row.get_text("user_id")?,
            created_at: row.get_int("created_at")?,
            refreshed_at: row.get_int("refreshed_at")?,
            user_agent: row.get_opt_text("user_agent")?,
            ip: row.get_opt_text("ip")?,
            aal: row.get_opt_text("aal")?,
            mfa_at: row.get_opt_int("mfa_at")?,
        })
    }

    /// The user with `email` (already lower-cased).
    pub async fn user_by_email(&self, email: &str) -> Result<Option<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM _magmobo_auth_users WHERE email = ?");
        let rows = self.query(&sql, &[text(email)]).await?;
        rows.first().map(Store::user_row).transpose()
    }

    /// The user with `id`.
    pub async fn user_by_id(&self, id: &str) -> Result<Option<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM _magmobo_auth_users WHERE id = ?");
        let rows = self.query(&sql, &[text(id)]).await?;
        rows.first().map(Store::user_row).transpose()
    }

    /// Inserts `user`; `false` when the e-mail is taken (checked first, then by the unique
    /// constraint for a concurrent sign-up).
    pub async fn insert_user(&self, user: &User) -> Result<bool> {
        if self.user_by_email(&user.email).await?.is_some() {
            return Ok(false);
        }
        let sql = format!(
            "INSERT INTO _magmobo_auth_users ({USER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        );
        let params = [
            text(&user.id),
            text(&user.email),
            text(&user.password_hash),
            opt_int(user.email_confirmed_at),
            opt_int(user.confirmation_sent_at),
            Value::Int(user.created_at),
            Value::Int(user.updated_at),
            opt_int(user.last_sign_in_at),
            text(user.app_metadata.to_string()),
            text(user.user_metadata.to_string()),
        ];
        match self.execute(&sql, &params).await {
            Ok(_) => Ok(true),
            Err(e) => {
                if self.user_by_email(&user.email).await?.is_some() {
                    Ok(false)
                } else {
                    Err(e)
                }
            }
        }
    }

    /// Sets the password hash.
    pub async fn set_password(&self, user_id: &str, hash: &str, now: i64) -> Result<()> {
        let sql =
            "UPDATE _magmobo_auth_users SET encrypted_password = ?, updated_at = ? WHERE id = ?";
        self.execute(sql, &[text(hash), Value::Int(now), text(user_id)])
            .await?;
        Ok(())
    }

    /// Replaces `user_metadata`.
    pub async fn set_user_metadata(
        &self,
        user_id: &str,
        data: &serde_json::Value,
        now: i64,
    ) -> Result<()> {
        let sql = "UPDATE _magmobo_auth_users SET user_metadata = ?, updated_at = ? WHERE id = ?";
        self.execute(
            sql,
            &[text(data.to_string()), Value::Int(now), text(user_id)],
        )
        .await?;
        Ok(())
    }

    /// Marks the e-mail confirmed (keeps the first confirmation time).
    pub async fn confirm_email(&self, user_id: &str, now: i64) -> Result<()> {
        let sql = "UPDATE _magmobo_auth_users SET email_confirmed_at = ?, updated_at = ? \
                   WHERE id = ? AND email_confirmed_at IS NULL";
        self.execute(sql, &[Value::Int(now), Value::Int(now), text(user_id)])
            .await?;
        Ok(())
    }

    /// Records that a confirmation mail went out.
    pub async fn confirmation_sent(&self, user_id: &str, now: i64) -> Result<()> {
        let sql = "UPDATE _magmobo_auth_users SET confirmation_sent_at = ? WHERE id = ?";
        self.execute(sql, &[Value::Int(now), text(user_id)]).await?;
        Ok(())
    }

    /// Records a sign-in.
    pub async fn signed_in(&self, user_id: &str, now: i64) -> Result<()> {
        let sql = "UPDATE _magmobo_auth_users SET last_sign_in_at = ? WHERE id = ?";
        self.execute(sql, &[Value::Int(now), text(user_id)]).await?;
        Ok(())
    }

    /// Inserts a session.
    pub async fn insert_session(&self, s: &Session) -> Result<()> {
        let sql = format!(
            "INSERT INTO _magmobo_auth_sessions ({SESSION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        );
        let params = [
            text(&s.id),
            text(&s.user_id),
            Value::Int(s.created_at),
            Value::Int(s.refreshed_at),
            s.user_agent.clone().map_or(Value::Null, Value::Text),
            s.ip.clone().map_or(Value::Null, Value::Text),
            s.aal.clone().map_or(Value::Null, Value::Text),
            opt_int(s.mfa_at),
        ];
        self.execute(&sql, &params).await?;
        Ok(())
    }

    /// The session `id`.
    pub async fn session(&self, id: &str) -> Result<Option<Session>> {
        let sql = format!("SELECT {SESSION_COLUMNS} FROM _magmobo_auth_sessions WHERE id = ?");
        let rows = self.query(&sql, &[text(id)]).await?;
        rows.first().map(Store::session_row).transpose()
    }

    /// The user's sessions, newest first.
    pub async fn sessions_of(&self, user_id: &str) -> Result<Vec<Session>> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM _magmobo_auth_sessions WHERE user_id = ? \
             ORDER BY created_at DESC, id"
        );
        let rows = self.query(&sql, &[text(user_id)]).await?;
        rows.iter().map(Store::session_row).collect()
    }

    /// Deletes the session and its refresh tokens; whether it existed.
    pub async fn delete_session(&self, id: &str) -> Result<bool> {
        self.execute(
            "DELETE FROM _magmobo_auth_refresh_tokens WHERE session_id = ?",
            &[text(id)],
        )
        .await?;
        let n = self
            .execute(
                "DELETE FROM _magmobo_auth_sessions WHERE id = ?",
                &[text(id)],
            )
            .await?;
        Ok(n > 0)
    }

    /// Deletes the user's sessions except `keep`; how many went.
    pub async fn delete_sessions_of(&self, user_id: &str, keep: Option<&str>) -> Result<usize> {
        let mut gone = 0;
        for s in self.sessions_of(user_id).await? {
            if Some(s.id.as_str()) != keep && self.delete_session(&s.id).await? {
                gone += 1;
            }
        }
        Ok(gone)
    }

    /// Marks the session refreshed.
    pub async fn touch_session(&self, id: &str, now: i64) -> Result<()> {
        let sql = "UPDATE _magmobo_auth_sessions SET refreshed_at = ? WHERE id = ?";
        self.execute(sql, &[Value::Int(now), text(id)]).await?;
        Ok(())
    }

    /// Stores a refresh token by its hash.
    pub async fn insert_refresh_token(
        &self,
        token_hash: &str,
        user_id: &str,
        session_id: &str,
        parent: Option<&str>,
        now: i64,
    ) -> Result<()> {
        let sql = "INSERT INTO _magmobo_auth_refresh_tokens \
                   (id, token_hash, user_id, session_id, parent, revoked, created_at) \
                   VALUES (?, ?, ?, ?, ?, 0, ?)";
        let params = [
            text(uuid::Uuid::new_v4().to_string()),
            text(token_hash),
            text(user_id),
            text(session_id),
            parent.map_or(Value::Null, text),
            Value::Int(now),
        ];
        self.execute(sql, &params).await?;
        Ok(())
    }

    /// The refresh token with this hash.
    pub async fn refresh_token(&self, token_hash: &str) -> Result<Option<RefreshToken>> {
        let sql = "SELECT id, user_id, session_id, revoked FROM _magmobo_auth_refresh_tokens \
                   WHERE token_hash = ?";
        let rows = self.query(sql, &[text(token_hash)]).await?;
        rows.first()
            .map(|r| {
                Ok(RefreshToken {
                    id: r.get_text("id")?,
                    user_id: r.get_text("user_id")?,
                    session_id: r.get_text("session_id")?,
                    revoked: r.get_int("revoked")? != 0,
                })
            })
            .transpose()
    }

    /// Marks the token used; `false` when it already was (a concurrent or repeated use),
    /// decided by the database in one statement so two racing refreshes cannot both win.
    pub async fn revoke_refresh_token(&self, id: &str) -> Result<bool> {
        let sql =
            "UPDATE _magmobo_auth_refresh_tokens SET revoked = 1 WHERE id = ? AND revoked = 0";
        Ok(self.execute(sql, &[text(id)]).await? == 1)
    }

    /// Stores an e-mail token.
    pub async fn insert_one_time_token(
        &self,
        token_hash: &str,
        user_id: &str,
        kind: &str,
        now: i64,
    ) -> Result<()> {
        self.execute(
            "DELETE FROM _magmobo_auth_one_time_tokens WHERE user_id = ? AND token_type = ?",
            &[text(user_id), text(kind)],
        )
        .await?;
        let sql = "INSERT INTO _magmobo_auth_one_time_tokens \
                   (token_hash, user_id, token_type, created_at) VALUES (?, ?, ?, ?)";
        self.execute(
            sql,
            &[text(token_hash), text(user_id), text(kind), Value::Int(now)],
        )
        .await?;
        Ok(())
    }

    /// Consumes the e-mail token (single use): its user id and creation time.
    pub async fn take_one_time_token(
        &self,
        token_hash: &str,
        kind: &str,
    ) -> Result<Option<(String, i64)>> {
        let sql = "SELECT user_id, created_at FROM _magmobo_auth_one_time_tokens \
                   WHERE token_hash = ? AND token_type = ?";
        let rows = self.query(sql, &[text(token_hash), text(kind)]).await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let found = (row.get_text("user_id")?, row.get_int("created_at")?);
        let deleted = self
            .execute(
                "DELETE FROM _magmobo_auth_one_time_tokens WHERE token_hash = ?",
                &[text(token_hash)],
            )
            .await?;
        Ok((deleted == 1).then_some(found))
    }

    /// Raises the session to `aal2` after a verified second factor.
    pub async fn raise_session(&self, id: &str, now: i64) -> Result<()> {
        let sql = "UPDATE _magmobo_auth_sessions SET aal = 'aal2', mfa_at = ? WHERE id = ?";
        self.execute(sql, &[Value::Int(now), text(id)]).await?;
        Ok(())
    }

    fn factor_row(row: &Row) -> Result<Factor> {
        Ok(Factor {
            id: row.get_text("id")?,
            user_id: row.get_text("user_id")?,
            friendly_name: row.get_opt_text("friendly_name")?,
            factor_type: row.get_text("factor_type")?,
            status: row.get_text("status")?,
            secret: row.get_text("secret")?,
            created_at: row.get_int("created_at")?,
            updated_at: row.get_int("updated_at")?,
        })
    }

    /// Stores a new (unverified) factor.
    pub async fn insert_factor(&self, f: &Factor) -> Result<()> {
        let sql = format!(
            "INSERT INTO _magmobo_auth_mfa_factors ({FACTOR_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        );
        let params = [
            text(&f.id),
            text(&f.user_id),
            f.friendly_name.clone().map_or(Value::Null, Value::Text),
            text(&f.factor_type),
            text(&f.status),
            text(&f.secret),
            Value::Int(f.created_at),
            Value::Int(f.updated_at),
        ];
        self.execute(&sql, &params).await?;
        Ok(())
    }

    /// The user's factors, oldest first.
    pub async fn factors_of(&self, user_id: &str) -> Result<Vec<Factor>> {
        let sql = format!(
            "SELECT {FACTOR_COLUMNS} FROM _magmobo_auth_mfa_factors WHERE user_id = ? \
             ORDER BY created_at, id"
        );
        let rows = self.query(&sql, &[text(user_id)]).await?;
        rows.iter().map(Store::factor_row).collect()
    }

    /// The factor `id` if it belongs to `user_id`.
    pub async fn factor(&self, user_id: &str, id: &str) -> Result<Option<Factor>> {
        let sql = format!(
            "SELECT {FACTOR_COLUMNS} FROM _magmobo_auth_mfa_factors WHERE id = ? AND user_id = ?"
        );
        let rows = self.query(&sql, &[text(id), text(user_id)]).await?;
        rows.first().map(Store::factor_row).transpose()
    }

    /// Marks the factor verified.
    pub async fn verify_factor(&self, id: &str, now: i64) -> Result<()> {
        let sql = "UPDATE _magmobo_auth_mfa_factors SET status = 'verified', updated_at = ? \
                   WHERE id = ?";
        self.execute(sql, &[Value::Int(now), text(id)]).await?;
        Ok(())
    }

    /// Deletes the factor and its challenges.
    pub async fn delete_factor(&self, id: &str) -> Result<()> {
        self.execute(
            "DELETE FROM _magmobo_auth_mfa_challenges WHERE factor_id = ?",
            &[text(id)],
        )
        .await?;
        self.execute(
            "DELETE FROM _magmobo_auth_mfa_factors WHERE id = ?",
            &[text(id)],
        )
        .await?;
        Ok(())
    }

    /// Removes a user who never got to use the account (sign-up whose confirmation mail could
    /// not be sent), with the one-time tokens made for it, so the address can sign up again.
    pub async fn delete_unconfirmed_user(&self, user_id: &str) -> Result<()> {
        self.execute(
            "DELETE FROM _magmobo_auth_one_time_tokens WHERE user_id = ?",
            &[text(user_id)],
        )
        .await?;
        self.execute(
            "DELETE FROM _magmobo_auth_users WHERE id = ? AND email_confirmed_at IS NULL",
            &[text(user_id)],
        )
        .await?;
        Ok(())
    }

    /// Stores a challenge.
    pub async fn insert_challenge(
        &self,
        id: &str,
        factor_id: &str,
        now: i64,
        ip: Option<&str>,
    ) -> Result<()> {
        let sql = "INSERT INTO _magmobo_auth_mfa_challenges (id, factor_id, created_at, ip) \
                   VALUES (?, ?, ?, ?)";
        let params = [
            text(id),
            text(factor_id),
            Value::Int(now),
            ip.map_or(Value::Null, text),
        ];
        self.execute(sql, &params).await?;
        Ok(())
    }

    /// The creation time of an unused challenge of `factor_id`.
    pub async fn open_challenge(&self, id: &str, factor_id: &str) -> Result<Option<i64>> {
        let sql = "SELECT created_at FROM _magmobo_auth_mfa_challenges \
                   WHERE id = ? AND factor_id = ? AND verified_at IS NULL";
        let rows = self.query(sql, &[text(id), text(factor_id)]).await?;
        rows.first()
            .map(|r| Ok(r.get_int("created_at")?))
            .transpose()
    }

    /// Uses up the challenge; `false` when it already was (single use, decided by the
    /// database).
    pub async fn close_challenge(&self, id: &str, now: i64) -> Result<bool> {
        let sql = "UPDATE _magmobo_auth_mfa_challenges SET verified_at = ? \
                   WHERE id = ? AND verified_at IS NULL";
        Ok(self.execute(sql, &[Value::Int(now), text(id)]).await? == 1)
    }
}
