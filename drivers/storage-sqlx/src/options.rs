//! Pool and timeout settings, and reading a database URL into the backend it names, so the
//! backend is chosen at run time among the drivers compiled in (the sqlx `Any` idea, without
//! losing each dialect's own types).

use std::time::Duration;

/// Settings of a [`crate::SqlStorage`]'s connection pool.
///
/// ```
/// use std::time::Duration;
/// use magmobo_storage_sqlx::StorageOptions;
///
/// let options = StorageOptions::default()
///     .max_connections(20)
///     .statement_timeout(Duration::from_secs(10))
///     .name("MainDB");
/// assert_eq!(options.max_connections, 20);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StorageOptions {
    /// Most connections the pool opens (default 10).
    pub max_connections: u32,
    /// Connections the pool keeps open once booted (default 0; SQLite in memory keeps at
    /// least 1, because the database lives only as long as one connection does).
    pub min_connections: u32,
    /// How long a query waits for a free connection, including connecting (default 5 s).
    pub acquire_timeout: Duration,
    /// Longest a statement may run: PostgreSQL `statement_timeout`; MySQL
    /// `max_execution_time` (SELECT only) or MariaDB `max_statement_time`; SQLite's busy
    /// timeout (how long to wait for a lock). `None` leaves the server's default (SQLite: 5 s).
    pub statement_timeout: Option<Duration>,
    /// The component name on the board and the POST screen (default: the backend, e.g.
    /// `PostgreSQL`).
    pub name: Option<String>,
    /// PostgreSQL only: connections, besides the pool's, on which statements outside a
    /// transaction are pipelined (default 2; 0 sends every statement through the pool).
    pub pipelined_connections: u32,
}

impl Default for StorageOptions {
    fn default() -> Self {
        StorageOptions {
            max_connections: 10,
            min_connections: 0,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: None,
            name: None,
            pipelined_connections: 2,
        }
    }
}

impl StorageOptions {
    /// Sets [`StorageOptions::max_connections`].
    pub fn max_connections(mut self, max: u32) -> Self {
        self.max_connections = max.max(1);
        self
    }
    /// Sets [`StorageOptions::pipelined_connections`] (0 turns pipelining off).
    pub fn pipelined_connections(mut self, connections: u32) -> Self {
        self.pipelined_connections = connections;
        self
    }

    /// Sets [`StorageOptions::min_connections`].
    pub fn min_connections(mut self, min: u32) -> Self {
        self.min_connections = min;
        self
    }
    /// Sets [`StorageOptions::acquire_timeout`].
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }
    /// Sets [`StorageOptions::statement_timeout`].
    pub fn statement_timeout(mut self, timeout: Duration) -> Self {
        self.statement_timeout = Some(timeout);
        self
    }
    /// Sets [`StorageOptions::name`].
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

/// The backend a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    Postgres,
    MySql { mariadb: bool },
    Sqlite { path: bool },
}

impl Scheme {
    /// Reads the scheme of `url`; a string without `scheme:` is a SQLite file path.
    pub(crate) fn of(url: &str) -> Result<Scheme, String> {
        let lower = url.trim().to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            Ok(Scheme::Postgres)
        } else if lower.starts_with("mysql://") {
            Ok(Scheme::MySql { mariadb: false })
        } else if lower.starts_with("mariadb://") {
            Ok(Scheme::MySql { mariadb: true })
        } else if lower.starts_with("sqlite:") {
            Ok(Scheme::Sqlite { path: false })
        } else if let Some((scheme, _)) = lower.split_once("://") {
            Err(format!(
                "unknown database URL scheme `{scheme}://`: use postgres://, mysql://, mariadb://, sqlite:// or a file path for SQLite"
            ))
        } else if lower.is_empty() {
            Err("empty database URL: set it, e.g. postgres://user@host/db".to_owned())
        } else {
            Ok(Scheme::Sqlite { path: true })
        }
    }

    /// The cargo feature of this crate that compiles the backend in.
    pub(crate) fn feature(self) -> &'static str {
        match self {
            Scheme::Postgres => "postgres",
            Scheme::MySql { .. } => "mysql",
            Scheme::Sqlite { .. } => "sqlite",
        }
    }

    /// The default component name.
    pub(crate) fn default_name(self) -> &'static str {
        match self {
            Scheme::Postgres => "PostgreSQL",
            Scheme::MySql { mariadb: false } => "MySQL",
            Scheme::MySql { mariadb: true } => "MariaDB",
            Scheme::Sqlite { .. } => "SQLite",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_are_read_case_insensitively_and_paths_are_sqlite() {
        let cases = [
            ("postgres://u@h/db", Ok(Scheme::Postgres)),
            ("PostgreSQL://u@h/db", Ok(Scheme::Postgres)),
            ("mysql://root@h/db", Ok(Scheme::MySql { mariadb: false })),
            ("mariadb://root@h/db", Ok(Scheme::MySql { mariadb: true })),
            ("sqlite://data.db", Ok(Scheme::Sqlite { path: false })),
            ("sqlite::memory:", Ok(Scheme::Sqlite { path: false })),
            ("./data/app.db", Ok(Scheme::Sqlite { path: true })),
            ("/tmp/x.sqlite", Ok(Scheme::Sqlite { path: true })),
        ];
        for (url, expected) in cases {
            assert_eq!(Scheme::of(url), expected, "{url}");
        }
        let err = Scheme::of("mongodb://h/db").unwrap_err();
        assert!(err.contains("mongodb://"), "{err}");
        assert!(Scheme::of("").is_err());
    }
}
