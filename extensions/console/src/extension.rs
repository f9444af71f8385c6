//! The extension: installs the platform tables at `init`, mounts the router, and holds what
//! the handlers need between `init` and `stop`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use magmobo_core::board::{BusHandle, ExtensionContext};
use magmobo_core::roles::auth::Auth;
use magmobo_core::roles::platform::store::PlatformStore;
use magmobo_core::roles::storage::Storage;
use magmobo_core::{Extension, ExtensionInfo, ExtensionMeta, Health, async_trait, caps};

use crate::routes;

/// Where the console is mounted.
#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    /// URL prefix, `/platform/v1` by default.
    pub prefix: String,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            prefix: "/platform/v1".to_owned(),
        }
    }
}

/// Something that reloads a cached schema when `POST {prefix}/schema/reload` is called, e.g.
/// MagGate's `GateHandle::reload`. It answers whether the schema changed.
pub type SchemaReload =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = magmobo_core::Result<bool>> + Send>> + Send + Sync>;

/// What the handlers work with once initialised.
pub(crate) struct Service {
    pub storage: Arc<dyn Storage>,
    pub auth: Arc<dyn Auth>,
    pub bus: Option<BusHandle>,
    pub platform: PlatformStore,
    pub reloads: Vec<(String, SchemaReload)>,
}

pub(crate) type Shared = Arc<ArcSwapOption<Service>>;

/// The platform management API.
///
/// ```no_run
/// use magconsole::{Console, ConsoleConfig};
/// let console = Console::new(ConsoleConfig::default())
///     .on_schema_reload("maggate", || async { Ok(true) });
/// ```
pub struct Console {
    config: ConsoleConfig,
    reloads: Vec<(String, SchemaReload)>,
    shared: Shared,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console")
            .field("config", &self.config)
            .field(
                "reloads",
                &self.reloads.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Console {
    /// The console with `config`.
    pub fn new(config: ConsoleConfig) -> Self {
        let mut config = config;
        while config.prefix.len() > 1 && config.prefix.ends_with('/') {
            config.prefix.pop();
        }
        Console {
            config,
            reloads: Vec::new(),
            shared: Arc::new(ArcSwapOption::empty()),
        }
    }

    /// Calls `reload` (named `name` in answers) on `POST {prefix}/schema/reload`, e.g.
    /// `move || { let gate = gate.clone(); async move { gate.reload().await } }`. On
    /// PostgreSQL the console also sends `NOTIFY pgrst, 'reload schema'`, which reaches
    /// MagGate on every instance.
    pub fn on_schema_reload<F, Fut>(mut self, name: impl Into<String>, reload: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = magmobo_core::Result<bool>> + Send + 'static,
    {
        let reload: SchemaReload = Arc::new(move || Box::pin(reload()));
        self.reloads.push((name.into(), reload));
        self
    }
}

impl ExtensionMeta for Console {
    fn extension_info(&self) -> ExtensionInfo {
        let mut info = ExtensionInfo::new("magconsole", env!("CARGO_PKG_VERSION"));
        info.title = "MagConsole Platform API".into();
        info.capabilities = vec![
            caps::STORAGE_READ.into(),
            caps::STORAGE_WRITE.into(),
            caps::CPU_MOUNT.into(),
            caps::AUTH_VERIFY.into(),
            caps::BUS_PUBLISH.into(),
        ];
        info
    }
}

#[async_trait]
impl Extension for Console {
    async fn init(&self, ctx: &ExtensionContext) -> magmobo_core::Result<()> {
        let storage = ctx.storage()?;
        let platform = PlatformStore::new(storage.clone());
        platform
            .install()
            .await
            .map_err(|e| magmobo_core::Error::part_with("magconsole", e.to_string(), e))?;
        self.shared.store(Some(Arc::new(Service {
            storage,
            auth: ctx.auth()?,
            bus: ctx.bus().ok(),
            platform,
            reloads: self.reloads.clone(),
        })));
        ctx.cpu()?
            .mount(&self.config.prefix, routes::router(self.shared.clone()))?;
        Ok(())
    }

    async fn stop(&self, _ctx: &ExtensionContext) -> magmobo_core::Result<()> {
        self.shared.store(None);
        Ok(())
    }

    fn summary(&self) -> Option<String> {
        Some(format!("platform API at {}", self.config.prefix))
    }

    async fn health(&self) -> Health {
        if self.shared.load().is_some() {
            Health::ok()
        } else {
            Health::degraded("not initialised")
        }
    }
}
