//! Finds the test services through environment variables with local defaults.
//!
//! When a service is unreachable: in CI (`CI=true`) the test fails loudly, because a skipped
//! test proves nothing; on a developer machine it is skipped with a message saying how to
//! start the service (`scripts/test-services.sh` does it).

/// Redis URL from `REDIS_URL`, default `redis://127.0.0.1:6379`.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// True when running in CI, where a missing service is an error.
pub fn in_ci() -> bool {
    std::env::var("CI")
        .map(|v| v == "true" || v == "1")
        .unwrap_or(false)
}

/// Returns a Redis URL that answers PING, or `None` (only outside CI) when it does not.
pub async fn redis_or_skip(test: &str) -> Option<String> {
    let url = redis_url();
    let reachable = async {
        let client = redis::Client::open(url.as_str()).ok()?;
        let mut conn = client.get_multiplexed_async_connection().await.ok()?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .ok()
    };
    let answered = tokio::time::timeout(std::time::Duration::from_secs(3), reachable).await;
    if matches!(answered, Ok(Some(_))) {
        return Some(url);
    }
    assert!(
        !in_ci(),
        "{test}: Redis is not reachable at {url} (REDIS_URL); CI requires it. Start it with scripts/test-services.sh"
    );
    eprintln!("SKIPPED {test}: Redis not reachable at {url}; run scripts/test-services.sh");
    None
}

/// PostgreSQL admin URL from `DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`.
pub fn postgres_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// MySQL/MariaDB admin URL from `MYSQL_URL`, default `mysql://root@127.0.0.1:3306/test`.
pub fn mysql_url() -> String {
    std::env::var("MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".to_owned())
}

use magmobo::Component as _;
use magmobo::roles::storage::Storage as _;

/// Which server a [`TempDatabase`] lives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    /// PostgreSQL.
    Postgres,
    /// MySQL or MariaDB.
    MySql,
}

/// A throw-away database, dropped (blocking, from `Drop`) when the guard goes out of scope.
/// Declare it before the storage that uses it, so it is dropped last.
#[derive(Debug)]
pub struct TempDatabase {
    /// URL of the new database.
    pub url: String,
    /// Its name.
    pub name: String,
    admin_url: String,
    server: Server,
}

impl TempDatabase {
    fn drop_sql(&self) -> String {
        match self.server {
            Server::Postgres => format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name),
            Server::MySql => format!("DROP DATABASE IF EXISTS `{}`", self.name),
        }
    }
}

impl Drop for TempDatabase {
    fn drop(&mut self) {
        let admin = self.admin_url.clone();
        let sql = self.drop_sql();
        // A fresh thread with its own runtime, so this works inside or outside a runtime.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let storage = admin_storage(&admin)?;
                let result = storage.execute(&sql, &[]).await.map_err(|e| e.to_string());
                let _ = storage.stop(magmobo::StopMode::Fast).await;
                result.map(|_| ())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}: {dropped:?}", self.name);
        }
    }
}

fn admin_storage(url: &str) -> Result<magmobo::storage::SqlStorage, String> {
    magmobo::storage::SqlStorage::connect(
        url,
        magmobo::storage::StorageOptions::default()
            .max_connections(1)
            .acquire_timeout(std::time::Duration::from_secs(3)),
    )
    .map_err(|e| e.to_string())
}

/// `url` with its database path replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[after_scheme..]
        .find('/')
        .map_or(base.len(), |i| after_scheme + i);
    format!("{}/{name}{query}", &base[..host_end])
}

fn unique_name() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "magmobo_t_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

async fn temp_database(test: &str, server: Server, admin_url: String) -> Option<TempDatabase> {
    let label = match server {
        Server::Postgres => ("PostgreSQL", "DATABASE_URL"),
        Server::MySql => ("MySQL/MariaDB", "MYSQL_URL"),
    };
    let name = unique_name();
    let create = match server {
        Server::Postgres => format!("CREATE DATABASE \"{name}\""),
        Server::MySql => format!("CREATE DATABASE `{name}`"),
    };
    let created = async {
        let admin = admin_storage(&admin_url)?;
        let result = admin.execute(&create, &[]).await.map_err(|e| e.to_string());
        let _ = admin.stop(magmobo::StopMode::Fast).await;
        result
    };
    match tokio::time::timeout(std::time::Duration::from_secs(5), created).await {
        Ok(Ok(_)) => Some(TempDatabase {
            url: with_database(&admin_url, &name),
            name,
            admin_url,
            server,
        }),
        outcome => {
            assert!(
                !in_ci(),
                "{test}: {} is not usable at {admin_url} ({}); CI requires it. Start it with scripts/test-services.sh: {outcome:?}",
                label.0,
                label.1
            );
            eprintln!(
                "SKIPPED {test}: {} not usable at {admin_url} ({}); run scripts/test-services.sh",
                label.0, label.1
            );
            None
        }
    }
}

/// A fresh PostgreSQL database for `test`, or `None` (only outside CI) when the server at
/// `DATABASE_URL` is unreachable.
pub async fn postgres_or_skip(test: &str) -> Option<TempDatabase> {
    temp_database(test, Server::Postgres, postgres_url()).await
}

/// A fresh MySQL/MariaDB database for `test`, or `None` (only outside CI) when the server at
/// `MYSQL_URL` is unreachable.
pub async fn mysql_or_skip(test: &str) -> Option<TempDatabase> {
    temp_database(test, Server::MySql, mysql_url()).await
}

/// MQTT broker URL from `MQTT_URL`, default `mqtt://127.0.0.1:1883`.
pub fn mqtt_url() -> String {
    std::env::var("MQTT_URL").unwrap_or_else(|_| "mqtt://127.0.0.1:1883".to_owned())
}

/// Returns the broker URL when a TCP connection to it succeeds, or `None` (only outside CI).
pub async fn mqtt_or_skip(test: &str) -> Option<String> {
    let url = mqtt_url();
    let address = url
        .trim_start_matches("mqtt://")
        .trim_start_matches("tcp://")
        .trim_end_matches('/')
        .to_owned();
    let address = if address.contains(':') {
        address
    } else {
        format!("{address}:1883")
    };
    let connect = tokio::net::TcpStream::connect(address);
    if matches!(
        tokio::time::timeout(std::time::Duration::from_secs(3), connect).await,
        Ok(Ok(_))
    ) {
        return Some(url);
    }
    assert!(
        !in_ci(),
        "{test}: no MQTT broker at {url} (MQTT_URL); CI requires it. Start it with scripts/test-services.sh"
    );
    eprintln!("SKIPPED {test}: no MQTT broker at {url}; run scripts/test-services.sh");
    None
}

/// Drops PostgreSQL roles when dropped, even during a panic: roles are cluster-wide, so they
/// outlive a test's throw-away database.
pub struct DropRoles {
    url: String,
    roles: String,
}

impl DropRoles {
    /// Drops `roles` (and what they own) through the admin URL `url` at the end of the test.
    pub fn new(url: &str, roles: &[&str]) -> DropRoles {
        DropRoles {
            url: url.to_owned(),
            roles: roles.join(", "),
        }
    }
}

impl Drop for DropRoles {
    fn drop(&mut self) {
        let (url, all) = (self.url.clone(), self.roles.clone());
        // A fresh thread with its own runtime: the boards closed their pools, and this may
        // run during a panic.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let storage = magmobo::storage::SqlStorage::connect(
                    &url,
                    magmobo::storage::StorageOptions::default(),
                )
                .map_err(|e| e.to_string())?;
                for sql in [format!("DROP OWNED BY {all}"), format!("DROP ROLE {all}")] {
                    storage
                        .execute(&sql, &[])
                        .await
                        .map_err(|e| e.to_string())?;
                }
                storage
                    .stop(magmobo::part::StopMode::Fast)
                    .await
                    .map_err(|e| e.to_string())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test roles {}: {dropped:?}", self.roles);
        }
    }
}

/// Waits up to 10 s until the global token bucket `key` in the Redis at `url` holds fewer
/// than `below` tokens, i.e. a limiter's exchange reached Redis; false when it never did.
pub async fn redis_bucket_below(url: &str, key: &str, below: f64) -> bool {
    let Ok(client) = redis::Client::open(url) else {
        return false;
    };
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
        return false;
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        let tokens: Option<String> = redis::cmd("HGET")
            .arg(key)
            .arg("t")
            .query_async(&mut conn)
            .await
            .unwrap_or(None);
        if tokens
            .and_then(|t| t.parse::<f64>().ok())
            .is_some_and(|t| t < below)
        {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    false
}

/// Three tests running the async `scenario(&url)`: on SQLite (the expression gives a fresh
/// URL), on a fresh PostgreSQL database and on a fresh MariaDB database (servers missing
/// outside CI: skipped, as [`postgres_or_skip`] says).
///
/// ```text
/// on_every_storage!(scenario, sqlite_url() => roles_on_sqlite, roles_on_postgres, roles_on_mariadb);
/// ```
#[macro_export]
macro_rules! on_every_storage {
    ($scenario:path, $sqlite_url:expr => $on_sqlite:ident, $on_postgres:ident, $on_mariadb:ident) => {
        #[tokio::test(flavor = "multi_thread")]
        async fn $on_sqlite() {
            $scenario(&$sqlite_url).await;
        }

        #[tokio::test(flavor = "multi_thread")]
        async fn $on_postgres() {
            let Some(db) = $crate::services::postgres_or_skip(stringify!($on_postgres)).await
            else {
                return;
            };
            $scenario(&db.url).await;
        }

        #[tokio::test(flavor = "multi_thread")]
        async fn $on_mariadb() {
            let Some(db) = $crate::services::mysql_or_skip(stringify!($on_mariadb)).await else {
                return;
            };
            $scenario(&db.url).await;
        }
    };
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_names_replace_the_path() {
        let cases = [
            ("postgres://u@h:5432/postgres", "postgres://u@h:5432/x"),
            (
                "mysql://root@h/test?ssl-mode=disabled",
                "mysql://root@h/x?ssl-mode=disabled",
            ),
            ("postgres://u@h", "postgres://u@h/x"),
        ];
        for (url, expected) in cases {
            assert_eq!(super::with_database(url, "x"), expected);
        }
    }
}
