//! What each subcommand does. Every failure becomes one line saying what is wrong and what to
//! do next (or a POST screen that already says so), and a non-zero exit.

use std::io::{IsTerminal, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use magauth::{AuthConfig, Hs256Signer, MagAuth};
use magconsole::{Console, ConsoleConfig};
use maggate::{GateConfig, MagGate};
use magmetrics::MagMetrics;
use magmobo::auth::{ApiKeyAuth, AuthOptions, CreatedKey, JwtConfig, KeyStore};
use magmobo::bios::RenderStyle;
use magmobo::cache::{MokaCache, RedisCache};
use magmobo::cpu::HyperCpu;
use magmobo::prelude::*;
use magmobo::queue::{MemoryQueue, RedisQueue};
use magmobo::roles::storage::Value;
use magmobo::storage::{SqlStorage, StorageOptions};
use sentinel::{AuditLog, Sentinel, SentinelConfig};

use crate::settings::{self, Flags, Loaded, PROJECT_FILE};
use crate::sql_split;
use crate::{Cli, Command, KeysCommand, ServerArgs};

/// How a command failed.
pub enum Failure {
    /// Already explained on screen (e.g. a failed POST).
    Reported,
    /// Print this line.
    Message(String),
}

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(error: E) -> Self {
        Failure::Message(error.to_string())
    }
}

type Outcome = std::result::Result<(), Failure>;

fn project_dir(cli_project: &Option<PathBuf>) -> PathBuf {
    cli_project.clone().unwrap_or_else(|| PathBuf::from("."))
}

/// The settings for a command acting on `project` with `args`.
pub(crate) fn load(project: &Path, args: &ServerArgs) -> std::result::Result<Loaded, Failure> {
    let flags = Flags {
        listen: args.listen.clone(),
        database_url: args.database_url.clone(),
        redis_url: args.redis_url.clone(),
    };
    let mut loaded = settings::load(project, &flags)?;
    if let Some(path) = &args.postgrest_config {
        let pgrst = crate::postgrest_config::load(path)?;
        apply_postgrest(&mut loaded, pgrst, args);
    }
    Ok(loaded)
}

/// PostgREST mode: the file's settings override the project's (flags still win), the API
/// moves to `/`, and requests without credentials run as `db-anon-role`, as in PostgREST.
fn apply_postgrest(
    loaded: &mut Loaded,
    pgrst: crate::postgrest_config::PostgrestConfig,
    args: &ServerArgs,
) {
    let s = &mut loaded.settings;
    let mut set = Vec::new();
    if let (Some(uri), None) = (&pgrst.db_uri, &args.database_url) {
        s.database_url = uri.clone();
        set.push("database_url");
    }
    if let (Some(listen), None) = (pgrst.listen(), &args.listen) {
        s.listen = listen;
        set.push("listen");
    }
    if let Some(rows) = pgrst.db_max_rows {
        s.max_rows = Some(rows);
        set.push("max_rows");
    }
    if let Some(secret) = pgrst.hs256_secret() {
        s.jwt_secret = Some(secret.to_owned());
        set.push("jwt_secret");
    }
    if let Some(aud) = &pgrst.jwt_aud {
        s.jwt_aud = Some(aud.clone());
        set.push("jwt_aud");
    }
    if let Some(pool) = pgrst.db_pool {
        s.pool_size = pool;
        set.push("pool_size");
    }
    s.rest_prefix = "/".into();
    s.require_api_key = false;
    set.extend(["rest_prefix", "require_api_key"]);
    for (name, source) in loaded.sources.iter_mut() {
        if set.contains(name) {
            *source = settings::Source::Flag;
        }
    }
    if let Some(warning) = pgrst.warning() {
        eprintln!("magflock: {warning}");
    }
    loaded.postgrest = Some(pgrst);
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> Outcome {
    let project = project_dir(&cli.project);
    match cli.command {
        Command::Init { name, json } => init(&project.join(name), json).await,
        Command::Start(args) => start(&load(&project, &args)?, args.json).await,
        Command::Sql { statement, server } => sql(&load(&project, &server)?, statement).await,
        Command::Doctor(args) => doctor(&load(&project, &args)?, args.json).await,
        Command::Config { server } => config(&load(&project, &server)?, server.json),
        Command::Keys(command) => keys(&project, command).await,
        Command::Agents(command) => crate::agents_cli::run(&project, command).await,
        Command::Members(command) => crate::members_cli::run(&project, command).await,
        Command::Sentinel(crate::SentinelCommand::Scan { requests }) => crate::scan::run(requests),
        Command::Logs(args) => crate::logs::run(&load(&project, &args.server)?, &args).await,
        Command::Test { url, table, server } => {
            crate::attack::run(&load(&project, &server)?, url, table, server.json).await
        }
    }
}

pub(crate) fn storage(loaded: &Loaded) -> std::result::Result<SqlStorage, Failure> {
    let options = StorageOptions::default().max_connections(loaded.settings.pool_size);
    SqlStorage::connect(&loaded.settings.database_url, options).map_err(|e| {
        Failure::Message(format!(
            "{e}. Check --database-url / MAGFLOCK_DATABASE_URL (now {})",
            settings::mask_url(&loaded.settings.database_url)
        ))
    })
}

async fn key_store(loaded: &Loaded) -> std::result::Result<KeyStore, Failure> {
    let storage: Arc<dyn Storage> = Arc::new(storage(loaded)?);
    let store = KeyStore::new(storage);
    store.install().await.map_err(|e| {
        Failure::Message(format!(
            "cannot open the database at {}: {e}",
            settings::mask_url(&loaded.settings.database_url)
        ))
    })?;
    Ok(store)
}

/// Creates `anon` and `service_role` keys when the project has none yet (first boot).
async fn bootstrap_keys(
    store: &KeyStore,
) -> std::result::Result<Option<(CreatedKey, CreatedKey)>, Failure> {
    if !store.list().await?.is_empty() {
        return Ok(None);
    }
    let anon = store.create("anon", "anon", None).await?;
    let service = store.create("service_role", "service_role", None).await?;
    Ok(Some((anon, service)))
}

fn print_keys(anon: &CreatedKey, service: &CreatedKey) {
    say!("API keys (shown once; only their hashes are stored):");
    say!("  anon          {}", anon.full);
    say!("  service_role  {}", service.full);
    say!("Send one as the `apikey` header. Keep service_role secret: it bypasses row policies.");
}

async fn init(dir: &Path, json: bool) -> Outcome {
    if dir.join(PROJECT_FILE).exists() {
        return Err(Failure::Message(format!(
            "{} is already a MagFlock project; use `magflock --project {} start`",
            dir.display(),
            dir.display()
        )));
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| Failure::Message(format!("cannot create {}: {e}", dir.display())))?;
    std::fs::write(dir.join(PROJECT_FILE), settings::project_file_text())
        .map_err(|e| Failure::Message(format!("cannot write {PROJECT_FILE}: {e}")))?;
    let loaded = settings::load(dir, &Flags::default())?;
    let store = key_store(&loaded).await?;
    let Some((anon, service)) = bootstrap_keys(&store).await? else {
        return Err(Failure::Message(
            "the new database already had keys; nothing created".into(),
        ));
    };
    if json {
        let out = serde_json::json!({
            "project": dir.display().to_string(),
            "database_url": loaded.settings.database_url,
            "anon_key": anon.full,
            "service_role_key": service.full,
        });
        say!("{out}");
    } else {
        say!("Created MagFlock project in {}", dir.display());
        say!("  {PROJECT_FILE}   settings, commented");
        say!("  magflock.db     SQLite database");
        print_keys(&anon, &service);
        say!(
            "Next: magflock --project {} sql \"create table ...\"; then magflock --project {} start",
            dir.display(),
            dir.display()
        );
    }
    Ok(())
}

fn build_board(loaded: &Loaded) -> std::result::Result<Motherboard, Failure> {
    let s = &loaded.settings;
    let address: SocketAddr = s.listen.parse().map_err(|_| {
        Failure::Message(format!(
            "--listen {:?} is not an address like 127.0.0.1:8080 (host:port)",
            s.listen
        ))
    })?;
    let mut gate_config = GateConfig {
        prefix: s.rest_prefix.clone(),
        // `magflock agents` manages them; the tables are created on first boot.
        agents: Some(maggate::agents::AgentsConfig::default()),
        max_rows: s.max_rows,
        max_body_bytes: s.max_body_bytes,
        schema_poll: (s.schema_poll_secs > 0).then(|| Duration::from_secs(s.schema_poll_secs)),
        read_cache: (s.read_cache_secs > 0).then(|| maggate::ReadCacheConfig {
            ttl: Duration::from_secs(s.read_cache_secs),
            ..maggate::ReadCacheConfig::default()
        }),
        ..GateConfig::default()
    };
    if let Some(p) = &loaded.postgrest {
        // PostgREST's semantics: the role comes from the token (or db-anon-role) and the
        // database enforces what it may do; no agents, no accounts API.
        gate_config.agents = None;
        gate_config.switch_role = true;
        gate_config.anon_role = p.db_anon_role.clone();
        gate_config.aggregates_enabled = p.db_aggregates_enabled.unwrap_or(false);
        gate_config.pre_request = p.db_pre_request.clone();
        if let Some(schemas) = &p.db_schemas {
            gate_config.schemas = schemas.clone();
        }
        if let Some(tx_end) = p.tx_end() {
            gate_config.tx_end = tx_end;
        }
    }
    let gate = MagGate::new(gate_config);
    let reload_handle = gate.handle();
    let cache_stats = {
        let gate = gate.handle();
        move || gate.read_cache_stats().unwrap_or_default()
    };
    let hits = cache_stats.clone();
    let metrics = MagMetrics::new()
        .gauge(
            "maggate_read_cache_hits",
            "GET answers served from the read cache",
            move || hits().hits as f64,
        )
        .gauge(
            "maggate_read_cache_misses",
            "GET answers loaded from the database",
            move || cache_stats().misses as f64,
        );
    let auth = ApiKeyAuth::new(AuthOptions {
        require_key: s.require_api_key,
        anon_role: loaded
            .postgrest
            .as_ref()
            .and_then(|p| p.db_anon_role.clone())
            .unwrap_or_else(|| "anon".into()),
        jwt: jwt_config(loaded),
        ..AuthOptions::default()
    });
    let mut board = Motherboard::builder()
        .name("MagFlock")
        .require(Slot::Storage)
        .with(HyperCpu::new(address))
        .with((storage(loaded)?, auth));
    // RAM and GPU: in-process by default, Redis (shared, durable) with --redis-url.
    board = match &s.redis_url {
        Some(url) => board.with((RedisCache::new(url.clone()), RedisQueue::new(url.clone()))),
        None => board.with((MokaCache::new(10_000), MemoryQueue::new())),
    };
    board = board
        .required_extension(gate)
        .extension(AuditLog::default())
        // Prometheus /metrics: requests and latencies by route and status, pool, bus, Sentinel.
        .extension(metrics);
    if s.sentinel {
        // SQLGuard, APIWatch, AuthSentry, DataFlow inline on every request; the analyzer behind.
        board = board.patrol(sentinel(s));
    } else {
        tracing::warn!("Sentinel is off (sentinel = false): requests are not inspected");
    }
    // The platform API (/platform/v1): keys, agents, members and roles, schema, guarded by
    // platform roles (`magflock members`). Not in PostgREST mode, which has no API keys.
    if loaded.postgrest.is_none() {
        let gate = reload_handle;
        board = board.extension(Console::new(ConsoleConfig::default()).on_schema_reload(
            "maggate",
            move || {
                let gate = gate.clone();
                async move { gate.reload().await }
            },
        ));
    }
    // End-user accounts (GoTrue's /auth/v1), signing with the secret the PSU verifies.
    if let (Some(secret), None) = (&s.jwt_secret, &loaded.postgrest) {
        board = board.extension(magauth_of(s, secret)?);
    } else if s.confirm_email {
        return Err(
            "confirm_email needs the accounts API (/auth/v1), which runs only without --postgrest-config"
                .into(),
        );
    }
    Ok(board.build()?)
}

/// MagAuth with the project's mail settings: SMTP when `smtp_url` is set, links to
/// `public_url` (or the listen address).
fn magauth_of(s: &settings::Settings, secret: &str) -> std::result::Result<MagAuth, Failure> {
    let config = AuthConfig {
        confirm_email: s.confirm_email,
        site_url: s
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", s.listen)),
        ..AuthConfig::default()
    };
    let auth = MagAuth::new(config, Hs256Signer::new(secret));
    match &s.smtp_url {
        Some(url) => Ok(auth.with_mailer(magauth::SmtpMailer::new(url, &s.smtp_from)?)),
        None if s.confirm_email => Err(
            "confirm_email = true needs smtp_url (or MAGFLOCK_SMTP_URL): confirmation mail has to go out somewhere"
                .into(),
        ),
        None => Ok(auth),
    }
}

/// The settings with a JWT secret: the configured one, or (zero config) one generated on
/// first boot and kept in the project's database, so JWTs and `/auth/v1` work at once.
async fn with_jwt_secret(loaded: &Loaded) -> std::result::Result<Loaded, Failure> {
    let s = &loaded.settings;
    if s.jwt_secret.is_some() || s.jwks_file.is_some() || loaded.postgrest.is_some() {
        return Ok(loaded.clone());
    }
    let db = storage(loaded)?;
    let table = "CREATE TABLE _magmobo_magflock_secrets (name VARCHAR(64) PRIMARY KEY, value TEXT NOT NULL)";
    db.migrate(
        "magflock",
        &[magmobo::roles::storage::Migration::portable(
            1, "secrets", table,
        )],
    )
    .await?;
    let d = db.dialect();
    let read = format!(
        "SELECT value FROM _magmobo_magflock_secrets WHERE name = {}",
        d.placeholder(1)
    );
    let name = Value::Text("jwt_secret".into());
    let existing = db.query(&read, std::slice::from_ref(&name)).await?;
    let secret = match existing.first() {
        Some(row) => row.get_text("value")?,
        None => {
            let secret = magauth::random_token();
            let insert = format!(
                "INSERT INTO _magmobo_magflock_secrets (name, value) VALUES ({})",
                d.placeholders(2)
            );
            match db
                .execute(&insert, &[name.clone(), Value::Text(secret.clone())])
                .await
            {
                Ok(_) => secret,
                // Another instance booting at the same time stored one first: use it.
                Err(_) => db
                    .query(&read, std::slice::from_ref(&name))
                    .await?
                    .first()
                    .ok_or_else(|| {
                        Failure::Message("cannot store the generated JWT secret".into())
                    })?
                    .get_text("value")?,
            }
        }
    };
    let _ = db.stop(StopMode::Fast).await;
    let mut out = loaded.clone();
    out.settings.jwt_secret = Some(secret);
    Ok(out)
}

/// Sentinel's standard agents with the project's rate limits; blocks and buckets shared
/// through Redis when the project has one, so instances agree.
fn sentinel(s: &settings::Settings) -> Sentinel {
    let shared = s.redis_url.as_ref().map(|url| sentinel::agents::Shared {
        url: url.clone(),
        namespace: "magflock".into(),
    });
    let limit = |rate: f64| (rate > 0.0).then(|| sentinel::Limit::new(rate, rate * 2.0));
    let watch = sentinel::ApiWatchConfig {
        per_ip: limit(s.rate_limit_per_ip),
        per_identity: limit(s.rate_limit_per_identity),
        shared: shared.clone(),
        ..sentinel::ApiWatchConfig::default()
    };
    Sentinel::new(SentinelConfig {
        shared,
        ..SentinelConfig::default()
    })
    .agent(sentinel::SqlGuardAgent::new())
    .agent(sentinel::ApiWatch::new(watch))
    .agent(sentinel::AuthSentry::default())
    .agent(sentinel::DataFlow::default())
}

/// JWT verification from `jwt_secret`, `jwks_file` and `jwt_aud`; `None` when neither key
/// source is set (API keys only). Bad keys are reported by the PSU on the POST screen.
fn jwt_config(loaded: &Loaded) -> Option<JwtConfig> {
    let s = &loaded.settings;
    if s.jwt_secret.is_none() && s.jwks_file.is_none() {
        return None;
    }
    let mut config = JwtConfig::new();
    if let Some(secret) = &s.jwt_secret {
        config = config.with_secret(secret.clone());
    }
    if let Some(file) = &s.jwks_file {
        config = if file.starts_with("https://") || file.starts_with("http://") {
            config.with_jwks_url(file.clone())
        } else {
            config.with_jwks_file(loaded.project.join(file))
        };
    }
    if let Some(aud) = &s.jwt_aud {
        config = config.with_audience(aud.clone());
    }
    Some(config)
}

fn style(json: bool) -> RenderStyle {
    if json {
        RenderStyle::Json
    } else {
        RenderStyle::detect(&std::io::stdout())
    }
}

async fn start(loaded: &Loaded, json: bool) -> Outcome {
    let store = key_store(loaded).await?;
    if let Some((anon, service)) = bootstrap_keys(&store).await? {
        say!("First boot of this project.");
        print_keys(&anon, &service);
        say!();
    }
    let loaded = &with_jwt_secret(loaded).await?;
    let board = build_board(loaded)?;
    crate::out::serving();
    match board.run_until_signal(style(json)).await {
        Ok(()) => Ok(()),
        Err(Error::Boot(_)) => Err(Failure::Reported),
        Err(e) => Err(e.into()),
    }
}

async fn doctor(loaded: &Loaded, json: bool) -> Outcome {
    let loaded = &with_jwt_secret(loaded).await?;
    let board = build_board(loaded)?;
    let report = board.self_test().await;
    say!("{}", magmobo::bios::render(&report, style(json)));
    if report.is_up() {
        Ok(())
    } else {
        Err(Failure::Reported)
    }
}

fn config(loaded: &Loaded, json: bool) -> Outcome {
    let mut shown = loaded.settings.clone();
    shown.database_url = settings::mask_url(&shown.database_url);
    shown.jwt_secret = shown.jwt_secret.as_ref().map(|_| "***".to_owned());
    shown.smtp_url = shown.smtp_url.as_deref().map(settings::mask_url);
    if json {
        let value = serde_json::json!({
            "project": loaded.project.display().to_string(),
            "settings": shown,
            "sources": loaded.sources.iter().map(|(k, s)| (k.to_string(), serde_json::json!(s))).collect::<serde_json::Map<_, _>>(),
        });
        say!("{value}");
        return Ok(());
    }
    let table = toml::to_string(&shown).map_err(|e| Failure::Message(e.to_string()))?;
    say!("# project: {}", loaded.project.display());
    say!("# precedence: flag > MAGFLOCK_* variable > {PROJECT_FILE} > default");
    for line in table.lines() {
        let key = line.split(" = ").next().unwrap_or_default();
        let source = loaded
            .sources
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, s)| *s);
        match source {
            Some(source) => say!("{line:<50} # {}", format!("{source:?}").to_lowercase()),
            None => say!("{line}"),
        }
    }
    Ok(())
}

fn render_value(value: &Value) -> String {
    match value {
        Value::Null => "NULL".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(n) => n.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Text(s) => s.clone(),
        Value::Bytes(b) => format!("<{} bytes>", b.len()),
        Value::Json(j) => j.to_string(),
    }
}

async fn sql(loaded: &Loaded, statement: Option<String>) -> Outcome {
    let script = match statement {
        Some(s) => s,
        None => {
            if std::io::stdin().is_terminal() {
                return Err(Failure::Message(
                    "give SQL as an argument or on standard input, e.g. magflock sql \"select 1\""
                        .into(),
                ));
            }
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text)?;
            text
        }
    };
    let storage = storage(loaded)?;
    for statement in sql_split::split(&script) {
        if sql_split::returns_rows(&statement) {
            let rows = storage
                .query(&statement, &[])
                .await
                .map_err(|e| sql_failure(&statement, e))?;
            if let Some(first) = rows.first() {
                say!("{}", first.columns.join(" | "));
            }
            for row in &rows {
                let cells: Vec<String> = row.values.iter().map(render_value).collect();
                say!("{}", cells.join(" | "));
            }
            say!(
                "({} row{})",
                rows.len(),
                if rows.len() == 1 { "" } else { "s" }
            );
        } else {
            let affected = storage
                .execute(&statement, &[])
                .await
                .map_err(|e| sql_failure(&statement, e))?;
            say!(
                "OK ({affected} row{} affected)",
                if affected == 1 { "" } else { "s" }
            );
        }
    }
    Ok(())
}

fn sql_failure(statement: &str, error: Error) -> Failure {
    let short: String = statement.chars().take(60).collect();
    Failure::Message(format!("SQL failed in `{short}`: {error}"))
}

async fn keys(project: &Path, command: KeysCommand) -> Outcome {
    match command {
        KeysCommand::Create {
            name,
            role,
            expires_in_days,
            server,
        } => {
            let store = key_store(&load(project, &server)?).await?;
            let expires = expires_in_days.map(|days| {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs() as i64)
                    .unwrap_or(0);
                now + i64::from(days) * 86_400
            });
            let created = store.create(&name, &role, expires).await?;
            if server.json {
                say!(
                    "{}",
                    serde_json::json!({ "id": created.key.id, "name": name, "role": role, "key": created.full })
                );
            } else {
                say!(
                    "Created key {} ({name}, role {role}). Shown once:",
                    created.key.prefix()
                );
                say!("  {}", created.full);
            }
            Ok(())
        }
        KeysCommand::List { server } => {
            let store = key_store(&load(project, &server)?).await?;
            let keys = store.list().await?;
            if server.json {
                for key in &keys {
                    say!("{}", serde_json::to_string(key)?);
                }
                return Ok(());
            }
            say!("{:<18} {:<16} {:<14} STATE", "PREFIX", "NAME", "ROLE");
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            for key in &keys {
                let state = if key.revoked_at.is_some() {
                    "revoked"
                } else if !key.usable(now) {
                    "expired"
                } else {
                    "active"
                };
                say!(
                    "{:<18} {:<16} {:<14} {state}",
                    key.prefix(),
                    key.name,
                    key.role
                );
            }
            Ok(())
        }
        KeysCommand::Revoke { id, server } => {
            let store = key_store(&load(project, &server)?).await?;
            if store.revoke(&id).await? {
                say!("Revoked {id}. A running server refuses it within 5 seconds.");
                Ok(())
            } else {
                Err(Failure::Message(format!(
                    "no active key {id}; see `magflock keys list`"
                )))
            }
        }
    }
}
