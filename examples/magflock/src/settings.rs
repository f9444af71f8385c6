//! Effective configuration: defaults, then `magflock.toml`, then `MAGFLOCK_*` environment
//! variables, then command-line flags, each overriding the one before.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The project file's name.
pub const PROJECT_FILE: &str = "magflock.toml";

/// Settings a server runs with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Address to listen on.
    pub listen: String,
    /// Database URL; SQLite file by default.
    pub database_url: String,
    /// Where MagGate serves the REST API.
    pub rest_prefix: String,
    /// Cap on rows per GET (none when absent).
    pub max_rows: Option<u64>,
    /// Largest request body in bytes.
    pub max_body_bytes: usize,
    /// Whether requests without an API key are refused (Supabase's behaviour).
    pub require_api_key: bool,
    /// Seconds between schema fingerprint checks (0 disables polling).
    pub schema_poll_secs: u64,
    /// HS256 secret for verifying (Supabase/PostgREST) JWTs, at least 32 characters; masked
    /// by `magflock config`. Prefer `MAGFLOCK_JWT_SECRET` to writing it in the project file.
    pub jwt_secret: Option<String>,
    /// A JWKS of trusted public keys (RS256/ES256): a file relative to the project folder, or
    /// an `https://` (`http://`) URL such as an identity provider's `jwks_uri`.
    pub jwks_file: Option<String>,
    /// The audience JWTs must name in `aud` (unchecked when absent).
    pub jwt_aud: Option<String>,
    /// Redis URL: when set, the RAM slot (cache) and the GPU slot (durable job queue) use
    /// Redis instead of their in-process drivers.
    pub redis_url: Option<String>,
    /// Seconds MagGate keeps GET answers in the RAM slot (0, the default, turns the read
    /// cache off). Writes through the API drop them at once; plain SQL writes are seen when
    /// they expire.
    pub read_cache_secs: u64,
    /// Database connections in the pool.
    pub pool_size: u32,
    /// Sentinel's APIWatch: requests per second per client address (bursts of twice as
    /// many); 0 turns the limit off.
    pub rate_limit_per_ip: f64,
    /// Sentinel's APIWatch: requests per second per identity (API key, token); 0 = off.
    pub rate_limit_per_identity: f64,
    /// Whether Sentinel's patrol agents run (on by default; off only to measure their cost
    /// or to debug, since nothing then stops injections, scanners or brute force).
    pub sentinel: bool,
    /// SMTP server for MagAuth's confirmation and recovery mail
    /// (`smtp://user:pass@host:587?tls=required`, `smtps://...:465`, `smtp://host:25`); without
    /// it `/auth/v1/recover` answers 422 `email_provider_disabled`, as GoTrue does. Masked by
    /// `magflock config`; prefer `MAGFLOCK_SMTP_URL`.
    pub smtp_url: Option<String>,
    /// The sender of that mail.
    pub smtp_from: String,
    /// Whether sign-up mails a confirmation and sign-in waits for it (needs `smtp_url`).
    pub confirm_email: bool,
    /// The address clients reach this server at, put in e-mail links; `http://{listen}` when
    /// unset.
    pub public_url: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: "127.0.0.1:8080".into(),
            database_url: "sqlite://magflock.db".into(),
            rest_prefix: "/rest/v1".into(),
            max_rows: None,
            max_body_bytes: 1 << 20,
            require_api_key: true,
            schema_poll_secs: 5,
            jwt_secret: None,
            jwks_file: None,
            jwt_aud: None,
            redis_url: None,
            read_cache_secs: 0,
            pool_size: 10,
            rate_limit_per_ip: 100.0,
            rate_limit_per_identity: 200.0,
            sentinel: true,
            smtp_url: None,
            smtp_from: "MagFlock <noreply@localhost>".into(),
            confirm_email: false,
            public_url: None,
        }
    }
}

/// Where each setting came from, for `magflock config`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Built in.
    Default,
    /// `magflock.toml`.
    File,
    /// A `MAGFLOCK_*` variable.
    Env,
    /// A command-line flag.
    Flag,
}

/// Overrides from the command line.
#[derive(Debug, Default, Clone)]
pub struct Flags {
    /// `--listen`.
    pub listen: Option<String>,
    /// `--database-url`.
    pub database_url: Option<String>,
    /// `--redis-url`.
    pub redis_url: Option<String>,
}

/// Settings plus the source of each.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The effective settings.
    pub settings: Settings,
    /// `(name, source)` per setting.
    pub sources: Vec<(&'static str, Source)>,
    /// The project folder.
    pub project: PathBuf,
    /// A PostgREST configuration file given with `--postgrest-config`, already applied to
    /// `settings`; MagGate takes the rest of it (schemas, anon role, tx end...).
    pub postgrest: Option<crate::postgrest_config::PostgrestConfig>,
}

/// Errors loading settings; each says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The project file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The project file is not valid.
    #[error("{path} is not a valid project file: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A variable holds something unusable.
    #[error("{name}={value:?} is not valid: {why}")]
    Env {
        /// Variable name.
        name: String,
        /// Its value.
        value: String,
        /// What was expected.
        why: &'static str,
    },
}

/// Loads settings for the project in `project`.
pub fn load(project: &Path, flags: &Flags) -> Result<Loaded, SettingsError> {
    let mut sources = vec![
        ("listen", Source::Default),
        ("database_url", Source::Default),
        ("rest_prefix", Source::Default),
        ("max_rows", Source::Default),
        ("max_body_bytes", Source::Default),
        ("require_api_key", Source::Default),
        ("schema_poll_secs", Source::Default),
        ("jwt_secret", Source::Default),
        ("jwks_file", Source::Default),
        ("jwt_aud", Source::Default),
        ("redis_url", Source::Default),
        ("read_cache_secs", Source::Default),
        ("pool_size", Source::Default),
        ("rate_limit_per_ip", Source::Default),
        ("rate_limit_per_identity", Source::Default),
        ("sentinel", Source::Default),
        ("smtp_url", Source::Default),
        ("smtp_from", Source::Default),
        ("confirm_email", Source::Default),
        ("public_url", Source::Default),
    ];
    let mut mark = |name: &str, source: Source| {
        if let Some(entry) = sources.iter_mut().find(|(n, _)| *n == name) {
            entry.1 = source;
        }
    };
    let path = project.join(PROJECT_FILE);
    let mut settings = match std::fs::read_to_string(&path) {
        Ok(text) => {
            let table: toml::Table =
                text.parse()
                    .map_err(|e: toml::de::Error| SettingsError::Parse {
                        path: path.clone(),
                        message: e.to_string(),
                    })?;
            for key in table.keys() {
                mark(key, Source::File);
            }
            toml::from_str::<Settings>(&text).map_err(|e| SettingsError::Parse {
                path: path.clone(),
                message: e.to_string(),
            })?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Settings::default(),
        Err(source) => return Err(SettingsError::Read { path, source }),
    };
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if let Some(v) = env("MAGFLOCK_LISTEN") {
        settings.listen = v;
        mark("listen", Source::Env);
    }
    if let Some(v) = env("MAGFLOCK_DATABASE_URL") {
        settings.database_url = v;
        mark("database_url", Source::Env);
    }
    if let Some(v) = env("MAGFLOCK_REST_PREFIX") {
        settings.rest_prefix = v;
        mark("rest_prefix", Source::Env);
    }
    if let Some(v) = env("MAGFLOCK_MAX_ROWS") {
        let rows = v.parse().map_err(|_| SettingsError::Env {
            name: "MAGFLOCK_MAX_ROWS".into(),
            value: v.clone(),
            why: "expected a whole number of rows",
        })?;
        settings.max_rows = Some(rows);
        mark("max_rows", Source::Env);
    }
    for (name, var, slot) in [
        ("sentinel", "MAGFLOCK_SENTINEL", &mut settings.sentinel),
        (
            "require_api_key",
            "MAGFLOCK_REQUIRE_API_KEY",
            &mut settings.require_api_key,
        ),
        (
            "confirm_email",
            "MAGFLOCK_CONFIRM_EMAIL",
            &mut settings.confirm_email,
        ),
    ] {
        if let Some(v) = env(var) {
            *slot = match v.as_str() {
                "true" | "1" | "yes" | "on" => true,
                "false" | "0" | "no" | "off" => false,
                _ => {
                    return Err(SettingsError::Env {
                        name: var.into(),
                        value: v,
                        why: "expected true or false",
                    });
                }
            };
            mark(name, Source::Env);
        }
    }
    if let Some(v) = env("MAGFLOCK_SMTP_FROM") {
        settings.smtp_from = v;
        mark("smtp_from", Source::Env);
    }
    for (name, var, slot) in [
        (
            "jwt_secret",
            "MAGFLOCK_JWT_SECRET",
            &mut settings.jwt_secret,
        ),
        ("jwks_file", "MAGFLOCK_JWKS_FILE", &mut settings.jwks_file),
        ("jwt_aud", "MAGFLOCK_JWT_AUD", &mut settings.jwt_aud),
        ("redis_url", "MAGFLOCK_REDIS_URL", &mut settings.redis_url),
        ("smtp_url", "MAGFLOCK_SMTP_URL", &mut settings.smtp_url),
        (
            "public_url",
            "MAGFLOCK_PUBLIC_URL",
            &mut settings.public_url,
        ),
    ] {
        if let Some(v) = env(var) {
            *slot = Some(v);
            mark(name, Source::Env);
        }
    }
    if let Some(v) = env("MAGFLOCK_READ_CACHE_SECS") {
        settings.read_cache_secs = v.parse().map_err(|_| SettingsError::Env {
            name: "MAGFLOCK_READ_CACHE_SECS".into(),
            value: v.clone(),
            why: "expected a whole number of seconds",
        })?;
        mark("read_cache_secs", Source::Env);
    }
    if let Some(v) = env("MAGFLOCK_POOL_SIZE") {
        settings.pool_size =
            v.parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| SettingsError::Env {
                    name: "MAGFLOCK_POOL_SIZE".into(),
                    value: v.clone(),
                    why: "expected a number of connections, 1 or more",
                })?;
        mark("pool_size", Source::Env);
    }
    for (name, var, slot) in [
        (
            "rate_limit_per_ip",
            "MAGFLOCK_RATE_LIMIT_PER_IP",
            &mut settings.rate_limit_per_ip,
        ),
        (
            "rate_limit_per_identity",
            "MAGFLOCK_RATE_LIMIT_PER_IDENTITY",
            &mut settings.rate_limit_per_identity,
        ),
    ] {
        if let Some(v) = env(var) {
            *slot =
                v.parse()
                    .ok()
                    .filter(|r: &f64| *r >= 0.0)
                    .ok_or_else(|| SettingsError::Env {
                        name: var.into(),
                        value: v.clone(),
                        why: "expected requests per second (0 turns the limit off)",
                    })?;
            mark(name, Source::Env);
        }
    }
    if let Some(v) = &flags.listen {
        settings.listen = v.clone();
        mark("listen", Source::Flag);
    }
    if let Some(v) = &flags.redis_url {
        settings.redis_url = Some(v.clone());
        mark("redis_url", Source::Flag);
    }
    if let Some(v) = &flags.database_url {
        settings.database_url = v.clone();
        mark("database_url", Source::Flag);
    }
    // A relative SQLite path is relative to the project folder, not to the shell's.
    settings.database_url = resolve_sqlite(project, &settings.database_url);
    Ok(Loaded {
        settings,
        sources,
        project: project.to_path_buf(),
        postgrest: None,
    })
}

fn resolve_sqlite(project: &Path, url: &str) -> String {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| (!url.contains("://")).then_some(url));
    match path {
        Some(p) if !p.starts_with('/') && !p.starts_with(":memory:") => {
            format!("sqlite://{}", project.join(p).display())
        }
        _ => url.to_owned(),
    }
}

/// The URL with any password replaced by `***`.
pub fn mask_url(url: &str) -> String {
    magmobo::redact_url(url)
}

/// The commented project file written by `magflock init`.
pub fn project_file_text() -> String {
    r#"# MagFlock project. Every setting can also come from a MAGFLOCK_* environment variable
# (e.g. MAGFLOCK_LISTEN) or a command-line flag; flags win over variables, variables over
# this file, this file over the defaults shown here. `magflock config` prints the result.

# Address the server listens on.
listen = "127.0.0.1:8080"

# Database: an SQLite file in this folder by default. PostgreSQL and MariaDB work the same:
#   database_url = "postgres://user:password@127.0.0.1:5432/app"
#   database_url = "mysql://user:password@127.0.0.1:3306/app"
database_url = "sqlite://magflock.db"

# Where the REST API lives (supabase-js calls /rest/v1).
rest_prefix = "/rest/v1"

# Cap on rows one GET returns (PostgREST's db-max-rows). Unset means no cap.
# max_rows = 1000

# Largest request body in bytes; larger ones get 413.
max_body_bytes = 1048576

# Refuse requests without an API key (401), as Supabase does.
require_api_key = true

# Seconds between checks for schema changes (0 turns polling off).
schema_poll_secs = 5

# JWTs (Supabase/PostgREST style): an HS256 secret of at least 32 characters (better set
# through MAGFLOCK_JWT_SECRET than written here), and/or a JWKS of public keys (RS256,
# ES256): a file, or an https:// URL of an identity provider; re-read when a token names an
# unknown key id, at most every 30 s). With require_api_key a JWT in
# `Authorization: Bearer` still needs the project's API key in the `apikey` header.
# jwt_secret = "..."
# jwks_file = "jwks.json"   # or "https://idp.example/.well-known/jwks.json"
# jwt_aud = "authenticated"
# Without jwt_secret and jwks_file, a secret is generated on first boot and kept in the
# database (table _magmobo_magflock_secrets), so JWTs and the accounts API (/auth/v1) work at once.

# Redis for the cache (RAM) and a durable job queue (GPU), instead of in-process ones.
# redis_url = "redis://127.0.0.1:6379"

# Seconds GET answers are cached (0 = off). API writes drop cached answers at once.
read_cache_secs = 0

# Database connections in the pool.
pool_size = 10

# Sentinel's rate limits (requests per second, bursts of twice as many; 0 = off), per client
# address and per identity (API key or token).
rate_limit_per_ip = 100.0
rate_limit_per_identity = 200.0

# Sentinel's patrol agents (SQLGuard, APIWatch, AuthSentry, DataFlow). Keep them on.
sentinel = true

# E-mail for end-user accounts (/auth/v1): confirmation and password recovery go out through
# this SMTP server (better set through MAGFLOCK_SMTP_URL than written here). Without it,
# password recovery answers 422 email_provider_disabled, as GoTrue does.
# smtp_url = "smtp://user:password@smtp.example.com:587?tls=required"   # or smtps://...:465
smtp_from = "MagFlock <noreply@localhost>"
# Mail a confirmation on sign-up and refuse sign-in until it is confirmed (needs smtp_url).
confirm_email = false
# The address clients reach this server at, used in e-mail links (http://<listen> by default).
# public_url = "https://api.example.com"
"#
    .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked() {
        assert_eq!(
            mask_url("postgres://app:s3cret@db:5432/x"),
            "postgres://app:***@db:5432/x"
        );
        assert_eq!(mask_url("postgres://app@db/x"), "postgres://app@db/x");
        assert_eq!(mask_url("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
    }

    #[test]
    fn relative_sqlite_paths_live_in_the_project() {
        let p = Path::new("/srv/app");
        assert_eq!(
            resolve_sqlite(p, "sqlite://magflock.db"),
            "sqlite:///srv/app/magflock.db"
        );
        assert_eq!(resolve_sqlite(p, "data.db"), "sqlite:///srv/app/data.db");
        assert_eq!(resolve_sqlite(p, "sqlite:///abs.db"), "sqlite:///abs.db");
        assert_eq!(resolve_sqlite(p, "postgres://h/db"), "postgres://h/db");
    }

    #[test]
    fn the_written_project_file_parses_to_the_defaults() {
        let settings: Settings = toml::from_str(&project_file_text()).unwrap();
        assert_eq!(settings, Settings::default());
    }
}
