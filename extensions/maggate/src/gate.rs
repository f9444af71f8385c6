//! The MagGate extension: introspects the schema at `init`, mounts one native handler on
//! `{prefix}` and `{prefix}/{*path}`, keeps the schema fresh (explicit [`MagGate::reload`]
//! and fingerprint polling, swapped atomically so requests never fail during a reload),
//! and answers requests with PostgREST's statuses, headers and error bodies.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use magmobo_core::axum::body::Body;
use magmobo_core::board::{BusHandle, ExtensionContext};
use magmobo_core::roles::storage::{Dialect, Storage};
use magmobo_core::{Extension, ExtensionInfo, ExtensionMeta, Health, async_trait, caps};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::agents::serve::AgentState;
use crate::agents::{AgentError, AgentStore, AgentsConfig};
use crate::handler;
use crate::policy::Policies;
use crate::read_cache::{ReadCache, ReadCacheConfig};
use crate::session::{TxEnd, pre_request_sql};
use crate::sql::Catalog;
use crate::sql::views::{VIEW_COLUMNS_PG, ViewColumn};

/// How MagGate serves.
#[derive(Debug, Clone)]
pub struct GateConfig {
    /// Where the API lives, e.g. `/rest/v1` (no trailing slash).
    pub prefix: String,
    /// Schemas to expose; the first is where tables are looked up. On MySQL and SQLite,
    /// where PostgreSQL's `public` does not exist, `public` is ignored and the connection's
    /// database is served.
    pub schemas: Vec<String>,
    /// Cap on the rows one GET returns (PostgREST's `db-max-rows`).
    pub max_rows: Option<u64>,
    /// Largest request body accepted; larger ones get 413.
    pub max_body_bytes: usize,
    /// Whether PATCH and DELETE without any filter are allowed (refused by default).
    pub allow_unfiltered_writes: bool,
    /// Whether `select` may use `count()`, `sum()`, `avg()`, `min()`, `max()` (PostgREST's
    /// `db-aggregates-enabled`; off by default, as there, since an aggregate over a large
    /// table is an easy way to load the database).
    pub aggregates_enabled: bool,
    /// How often to compare the schema fingerprint and reload on change; `None` disables.
    pub schema_poll: Option<Duration>,
    /// PostgreSQL: install an event trigger (`_magmobo_pgrst_watch`, on `ddl_command_end`)
    /// that sends `NOTIFY pgrst, 'reload schema'` after every DDL command, as PostgREST's
    /// documentation recommends, so schema changes made by any tool are served at once.
    /// Needs a superuser; without one a line is logged and polling remains. On by default.
    pub watch_ddl: bool,
    /// The role of requests without credentials (PostgREST's `db-anon-role`): used when
    /// the board has no PSU, and to answer `42501` with 401 rather than 403. `None`: no
    /// anonymous role.
    pub anon_role: Option<String>,
    /// Whether PostgreSQL requests run as the caller's role (`set_config('role', ...)`, the
    /// identity's role, or [`GateConfig::anon_role`] without a PSU), as PostgREST always
    /// does. Off by default so a board whose API-key roles (`anon`, `service_role`) are not
    /// database roles keeps working; turn it on once the roles exist and the connecting
    /// user is a member of each. Claims are set either way when the board has a PSU.
    pub switch_role: bool,
    /// A function called after the role switch and before the query (PostgREST's
    /// `db-pre-request`), as `name` or `schema.name`; PostgreSQL only, checked against the
    /// introspected functions when the schema loads.
    pub pre_request: Option<String>,
    /// How transactions end (PostgREST's `db-tx-end`), and whether `Prefer: tx=` may
    /// override it.
    pub tx_end: TxEnd,
    /// Access policies MagGate enforces itself (row filters, column lists): row-level
    /// security for MariaDB and SQLite, usable on PostgreSQL too. Empty by default.
    pub policies: Policies,
    /// Cache GET answers in the board's RAM slot (see [`crate::read_cache`]); off by
    /// default. Needs a RAM component on the board.
    pub read_cache: Option<ReadCacheConfig>,
    /// AI agents as governed identities (see [`crate::agents`]): `None` (the default)
    /// leaves `agent:<name>` roles ungoverned and creates no agent tables.
    pub agents: Option<AgentsConfig>,
}

impl Default for GateConfig {
    fn default() -> Self {
        GateConfig {
            prefix: "/rest/v1".to_owned(),
            schemas: vec!["public".to_owned()],
            max_rows: None,
            max_body_bytes: 1 << 20,
            allow_unfiltered_writes: false,
            aggregates_enabled: false,
            schema_poll: Some(Duration::from_secs(5)),
            watch_ddl: true,
            anon_role: None,
            switch_role: false,
            pre_request: None,
            tx_end: TxEnd::Commit,
            policies: Policies::default(),
            read_cache: None,
            agents: None,
        }
    }
}

/// What a running gate works with; swapped as a whole on init and replaced on reload.
pub(crate) struct Runtime {
    pub storage: Arc<dyn Storage>,
    /// The PSU, when the board has one: every request must authenticate through it.
    pub auth: Option<Arc<dyn magmobo_core::roles::auth::Auth>>,
    pub bus: Option<BusHandle>,
    pub catalog: arc_swap::ArcSwap<Catalog>,
    /// The read cache, when configured.
    pub read_cache: Option<Arc<ReadCache>>,
}

pub(crate) struct Inner {
    pub config: GateConfig,
    pub runtime: ArcSwapOption<Runtime>,
    pub agents: AgentState,
}

impl Inner {
    /// The schemas to introspect for `dialect`.
    fn introspect_schemas(&self, dialect: Dialect) -> Vec<String> {
        match dialect {
            Dialect::Postgres => self.config.schemas.clone(),
            Dialect::MySql | Dialect::Sqlite => self
                .config
                .schemas
                .iter()
                .filter(|s| *s != "public")
                .cloned()
                .collect(),
        }
    }

    async fn load(&self, storage: &dyn Storage) -> magmobo_core::Result<Catalog> {
        let dialect = storage.dialect();
        let schemas = self.introspect_schemas(dialect);
        let schema = storage.introspect(&schemas).await?;
        let mut catalog = Catalog::new(schema, dialect, &self.config.schemas);
        if dialect == Dialect::Postgres {
            let observable = session_observable(storage).await?;
            tracing::info!(
                target: "maggate",
                observable,
                "per-request identity transactions {}",
                if observable { "on: the database can read request settings" } else { "off: nothing in the database reads request settings" }
            );
            catalog = catalog
                .with_session_observable(observable)
                .with_view_columns(&view_columns(storage).await?);
        }
        if let Some(name) = &self.config.pre_request {
            if dialect != Dialect::Postgres {
                return Err(magmobo_core::Error::part(
                    "maggate",
                    format!(
                        "pre_request '{name}' needs PostgreSQL functions; this storage is {dialect:?}: remove it from GateConfig"
                    ),
                ));
            }
            pre_request_sql(&catalog, name).map_err(|m| magmobo_core::Error::part("maggate", m))?;
        }
        Ok(catalog)
    }

    async fn reload(&self) -> magmobo_core::Result<bool> {
        let Some(rt) = self.runtime.load_full() else {
            return Ok(false);
        };
        let catalog = self.load(rt.storage.as_ref()).await?;
        let changed = catalog.schema().fingerprint != rt.catalog.load().schema().fingerprint;
        rt.catalog.store(Arc::new(catalog));
        if changed && let Some(cache) = &rt.read_cache {
            cache.invalidate_all().await;
        }
        Ok(changed)
    }

    async fn poll_once(&self) -> magmobo_core::Result<()> {
        let Some(rt) = self.runtime.load_full() else {
            return Ok(());
        };
        let schemas = self.introspect_schemas(rt.storage.dialect());
        let now = rt.storage.schema_fingerprint(&schemas).await?;
        if now != rt.catalog.load().schema().fingerprint {
            self.reload().await?;
            tracing::info!(target: "maggate", "schema changed; reloaded");
        }
        Ok(())
    }
}

/// The MagGate extension: a PostgREST-compatible REST API over the board's Storage.
///
/// ```no_run
/// use maggate::{GateConfig, MagGate};
/// let gate = MagGate::new(GateConfig { max_rows: Some(1000), ..GateConfig::default() });
/// ```
pub struct MagGate {
    inner: Arc<Inner>,
    poller: Mutex<Option<(CancellationToken, Vec<JoinHandle<()>>)>>,
    /// Answers the platform API's agent requests while started (agents configured only).
    responders: Mutex<Vec<magmobo_core::bus::ResponderGuard>>,
}

impl std::fmt::Debug for MagGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MagGate")
            .field("config", &self.inner.config)
            .finish()
    }
}

impl MagGate {
    /// A gate with `config`; it serves once the board mounts it.
    pub fn new(config: GateConfig) -> MagGate {
        let mut config = config;
        while config.prefix.len() > 1 && config.prefix.ends_with('/') {
            config.prefix.pop();
        }
        MagGate {
            inner: Arc::new(Inner {
                config,
                runtime: ArcSwapOption::empty(),
                agents: AgentState::default(),
            }),
            poller: Mutex::new(None),
            responders: Mutex::new(Vec::new()),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &GateConfig {
        &self.inner.config
    }

    /// Introspects the schema again and swaps it in; requests in flight finish with the
    /// schema they started with. Returns whether the fingerprint changed. Does nothing
    /// (returns `false`) before `init`.
    pub async fn reload(&self) -> magmobo_core::Result<bool> {
        self.inner.reload().await
    }

    /// A cheap handle that stays usable after the gate is handed to the board.
    pub fn handle(&self) -> GateHandle {
        GateHandle(self.inner.clone())
    }

    /// Checks that every table and column `policy` names exists in the schema this gate
    /// would serve from `storage` (what `POST /platform/v1/agents` checks), for tools that
    /// write agents straight to the database, such as `magflock agents create`.
    pub async fn check_agent_policy(
        &self,
        storage: &dyn Storage,
        policy: &crate::agents::AgentPolicy,
    ) -> Result<(), AgentError> {
        let catalog = self.inner.load(storage).await?;
        crate::agents::manage::check_against_schema(&catalog, policy).map_err(|refusal| {
            AgentError::Invalid(match refusal.hint {
                Some(hint) => format!("{} ({hint})", refusal.message),
                None => refusal.message,
            })
        })
    }

    fn take_poller(&self) -> Option<(CancellationToken, Vec<JoinHandle<()>>)> {
        self.poller.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

impl ExtensionMeta for MagGate {
    fn extension_info(&self) -> ExtensionInfo {
        let mut info = ExtensionInfo::new("maggate", env!("CARGO_PKG_VERSION"));
        info.title = "MagGate API Generator".into();
        info.capabilities = vec![
            caps::STORAGE_READ.into(),
            caps::STORAGE_WRITE.into(),
            caps::CPU_MOUNT.into(),
            caps::BUS_PUBLISH.into(),
            caps::BUS_SUBSCRIBE.into(),
        ];
        // Requests are authenticated through the PSU when the board has one; without a PSU
        // every request runs anonymously, as PostgREST without a JWT secret does. The RAM
        // slot is used only by the read cache.
        info.optional_capabilities = vec![
            caps::AUTH_VERIFY.into(),
            caps::CACHE_READ.into(),
            caps::CACHE_WRITE.into(),
        ];
        info
    }
}

#[async_trait]
impl Extension for MagGate {
    async fn init(&self, ctx: &ExtensionContext) -> magmobo_core::Result<()> {
        let storage = ctx.storage()?;
        if self.inner.config.agents.is_some() {
            AgentStore::new(storage.clone())
                .install()
                .await
                .map_err(|e| magmobo_core::Error::part("maggate", e.to_string()))?;
        }
        let catalog = self.inner.load(storage.as_ref()).await?;
        let auth = match ctx.auth() {
            Ok(auth) => Some(auth),
            Err(magmobo_core::Error::MissingSlot { .. }) => None,
            Err(other) => return Err(other),
        };
        let read_cache = match &self.inner.config.read_cache {
            None => None,
            Some(config) => match ctx.cache() {
                Ok(cache) => Some(Arc::new(ReadCache::new(cache, config.clone()))),
                Err(magmobo_core::Error::MissingSlot { .. }) => {
                    return Err(magmobo_core::Error::part(
                        "maggate",
                        "read_cache is set but the board has no RAM slot: add a cache (e.g. MokaCache) or unset read_cache",
                    ));
                }
                Err(other) => return Err(other),
            },
        };
        self.inner.runtime.store(Some(Arc::new(Runtime {
            storage,
            auth,
            bus: ctx.bus().ok(),
            catalog: arc_swap::ArcSwap::from_pointee(catalog),
            read_cache,
        })));
        let cpu = ctx.cpu()?;
        let prefix = self.inner.config.prefix.clone();
        let root = if prefix == "/" { String::new() } else { prefix };
        let mut patterns = vec![format!("{root}/"), format!("{root}/{{*path}}")];
        if !root.is_empty() {
            // Both `/rest/v1` and `/rest/v1/` are the root, as clients write either.
            patterns.push(root.clone());
        }
        for pattern in patterns {
            let inner = self.inner.clone();
            cpu.mount_native(&pattern, move |req: http::Request<Body>, _ctx| {
                let inner = inner.clone();
                async move { handler::handle(inner, req).await }
            })?;
        }
        Ok(())
    }

    async fn start(&self, ctx: &ExtensionContext) -> magmobo_core::Result<()> {
        if self.inner.config.agents.is_some() {
            let guards = crate::agents::manage::respond(&self.inner, &ctx.bus()?)?;
            *self.responders.lock().unwrap_or_else(|e| e.into_inner()) = guards;
            // With a RAM slot that holds global buckets (Redis), an agent's rate limit holds
            // across every instance, not per instance.
            if let Ok(cache) = ctx.cache()
                && let Some(exchange) = cache.buckets()
            {
                self.inner.agents.share_limits(exchange);
            }
        }
        let token = CancellationToken::new();
        let mut tasks = Vec::new();
        if let Some(every) = self.inner.config.schema_poll {
            tasks.push(tokio::spawn(poll_loop(
                self.inner.clone(),
                every,
                token.clone(),
            )));
        }
        // Writes of other instances (over a shared bus) invalidate this one's cached reads.
        if let Some(rt) = self.inner.runtime.load_full()
            && let (Some(cache), Some(bus)) = (rt.read_cache.clone(), rt.bus.clone())
        {
            let events = bus.subscribe("table.*.changed")?;
            tasks.push(tokio::spawn(invalidate_loop(cache, events, token.clone())));
        }
        // PostgREST's convention: `NOTIFY pgrst, 'reload schema'` reloads at once.
        if let Some(rt) = self.inner.runtime.load_full()
            && rt.storage.dialect() == Dialect::Postgres
        {
            if self.inner.config.watch_ddl {
                install_ddl_watch(rt.storage.as_ref()).await;
            }
            match rt.storage.listen("pgrst").await {
                Ok(notes) => tasks.push(tokio::spawn(notify_loop(
                    self.inner.clone(),
                    notes,
                    token.clone(),
                ))),
                Err(e) => {
                    tracing::warn!(target: "maggate", error = %e, "NOTIFY pgrst unavailable; relying on polling");
                }
            }
        }
        if let Some((old, handles)) = self
            .poller
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace((token, tasks))
        {
            old.cancel();
            handles.iter().for_each(JoinHandle::abort);
        }
        Ok(())
    }

    async fn stop(&self, _ctx: &ExtensionContext) -> magmobo_core::Result<()> {
        self.inner.agents.stop_sharing();
        self.responders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        if let Some((token, handles)) = self.take_poller() {
            token.cancel();
            // A poll in the middle of an introspection may take a moment; never hang stop.
            for handle in handles {
                let abort = handle.abort_handle();
                if tokio::time::timeout(Duration::from_secs(2), handle)
                    .await
                    .is_err()
                {
                    abort.abort();
                    tracing::warn!(target: "maggate", "schema watcher did not stop in time; aborted");
                }
            }
        }
        self.inner.runtime.store(None);
        Ok(())
    }

    async fn health(&self) -> Health {
        match self.summary() {
            Some(summary) => Health::ok().with_detail(summary),
            None => Health::degraded("not initialised: the schema is not loaded"),
        }
    }

    fn summary(&self) -> Option<String> {
        self.inner.summary()
    }
}

impl Inner {
    fn summary(&self) -> Option<String> {
        let rt = self.runtime.load_full()?;
        let (tables, endpoints) = rt.catalog.load().counts();
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        Some(format!(
            "{tables} table{}, {endpoints} endpoint{}",
            plural(tables),
            plural(endpoints)
        ))
    }
}

/// A handle on a [`MagGate`] owned by the board: reload its schema, read its summary.
#[derive(Clone)]
pub struct GateHandle(Arc<Inner>);

impl std::fmt::Debug for GateHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GateHandle")
    }
}

impl GateHandle {
    /// Same as [`MagGate::reload`].
    pub async fn reload(&self) -> magmobo_core::Result<bool> {
        self.0.reload().await
    }

    /// Re-reads the agents from storage now, rather than within
    /// [`AgentsConfig::refresh`]; returns how many there are (0 before `init`).
    pub async fn reload_agents(&self) -> Result<usize, AgentError> {
        crate::agents::serve::reload(&self.0).await
    }

    /// Same as [`Extension::summary`]: `5 tables, 20 endpoints` once initialised.
    pub fn summary(&self) -> Option<String> {
        self.0.summary()
    }

    /// Whether requests with an identity run in a per-request transaction carrying their
    /// claims (PostgreSQL, when something in the database can read them; see
    /// [`crate::sql::Catalog::session_observable`]); `None` before boot.
    pub fn claims_reach_database(&self) -> Option<bool> {
        let rt = self.0.runtime.load_full()?;
        let catalog = rt.catalog.load();
        Some(catalog.dialect() == Dialect::Postgres && catalog.session_observable())
    }

    /// Read-cache hits and misses; `None` when the cache is off or the gate not booted.
    pub fn read_cache_stats(&self) -> Option<crate::read_cache::ReadCacheStats> {
        let rt = self.0.runtime.load_full()?;
        rt.read_cache.as_ref().map(|c| c.stats())
    }
}

impl Drop for MagGate {
    fn drop(&mut self) {
        if let Some((token, handles)) = self.take_poller() {
            token.cancel();
            handles.iter().for_each(JoinHandle::abort);
        }
    }
}

/// Compares the schema fingerprint every `every` and reloads on change, until `stop`.
async fn poll_loop(inner: Arc<Inner>, every: Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = tick.tick() => {
                if let Err(e) = inner.poll_once().await {
                    tracing::warn!(target: "maggate", error = %e, "schema poll failed; keeping the current schema");
                }
            }
        }
    }
}

/// Reloads on `NOTIFY pgrst` (any payload: an empty one means notifications were lost).
/// Installs (once per database) the event trigger that turns every DDL command into
/// `NOTIFY pgrst, 'reload schema'`. Failure (no superuser, a race with another board) only
/// logs: NOTIFY from migration tools and polling still reload the schema.
/// Which view columns read a table column unchanged (PostgreSQL), so views take part in
/// their tables' relationships as PostgREST's do.
async fn view_columns(storage: &dyn Storage) -> magmobo_core::Result<Vec<ViewColumn>> {
    let rows = storage.query(VIEW_COLUMNS_PG, &[]).await?;
    rows.iter()
        .map(|r| {
            Ok(ViewColumn::from_columns([
                r.get_text("view_schema")?,
                r.get_text("view_name")?,
                r.get_text("view_column")?,
                r.get_text("source_schema")?,
                r.get_text("source_table")?,
                r.get_text("source_column")?,
            ]))
        })
        .collect()
}

async fn install_ddl_watch(storage: &dyn Storage) {
    const FUNCTION: &str = "CREATE OR REPLACE FUNCTION _magmobo_pgrst_watch() RETURNS event_trigger \
        LANGUAGE plpgsql AS $$ BEGIN NOTIFY pgrst, 'reload schema'; END; $$";
    const TRIGGER: &str = "DO $$ BEGIN \
        IF NOT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = '_magmobo_pgrst_watch') THEN \
        CREATE EVENT TRIGGER _magmobo_pgrst_watch ON ddl_command_end \
        EXECUTE PROCEDURE _magmobo_pgrst_watch(); END IF; END $$";
    for sql in [FUNCTION, TRIGGER] {
        if let Err(e) = storage.execute(sql, &[]).await {
            tracing::info!(
                target: "maggate",
                error = %e,
                "DDL event trigger not installed (it needs a superuser); schema changes are seen by polling and NOTIFY pgrst"
            );
            return;
        }
    }
}

/// Whether anything in a PostgreSQL database can see a request's `set_config` settings or
/// its read-only transaction: a table with row-level security on, any function outside the
/// system schemas (it may read settings, or write under a GET), or a view, column default
/// or check constraint that calls `current_setting`. Conservative: a false "yes" only costs
/// the transaction's round trips.
async fn session_observable(storage: &dyn Storage) -> magmobo_core::Result<bool> {
    const SYSTEM: &str = "('pg_catalog', 'information_schema', 'pg_toast')";
    let sql = format!(
        "SELECT (
            EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE c.relrowsecurity AND n.nspname NOT IN {SYSTEM})
            OR EXISTS (SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                    WHERE n.nspname NOT IN {SYSTEM} AND p.proname NOT LIKE '\\_magmobo\\_%')
            OR EXISTS (SELECT 1 FROM pg_views WHERE schemaname NOT IN {SYSTEM}
                    AND definition ILIKE '%current_setting%')
            OR EXISTS (SELECT 1 FROM pg_attrdef d
                    WHERE pg_get_expr(d.adbin, d.adrelid) ILIKE '%current_setting%')
            OR EXISTS (SELECT 1 FROM pg_constraint WHERE contype = 'c'
                    AND pg_get_constraintdef(oid) ILIKE '%current_setting%')
        )::int AS observable"
    );
    let rows = storage.query(&sql, &[]).await?;
    Ok(rows.first().and_then(|r| r.get_int("observable").ok()) != Some(0))
}

async fn invalidate_loop(
    cache: Arc<ReadCache>,
    mut events: magmobo_core::bus::Subscription,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            event = events.recv() => {
                let Some(event) = event else { break };
                if let Some(table) = event.payload.get("table").and_then(|t| t.as_str()) {
                    cache.invalidate_table(table).await;
                }
            }
        }
    }
}

async fn notify_loop(
    inner: Arc<Inner>,
    mut notes: magmobo_core::roles::storage::Notifications,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            note = notes.recv() => {
                let Some(payload) = note else { break };
                if (payload.is_empty() || payload.contains("reload schema"))
                    && let Err(e) = inner.reload().await
                {
                    tracing::warn!(target: "maggate", error = %e, "schema reload on NOTIFY failed");
                }
            }
        }
    }
}
