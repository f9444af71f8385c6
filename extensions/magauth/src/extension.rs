//! The MagAuth extension: runs its migrations through the board's Storage at `init`, mounts
//! its router on the CPU, and verifies access tokens through the board's PSU (so the same
//! key signs and verifies, and an access token works for MagGate unchanged).

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use magmobo_core::board::ExtensionContext;
use magmobo_core::{Extension, ExtensionInfo, ExtensionMeta, Health, async_trait, caps};

use crate::config::AuthConfig;
use crate::mail::Mailer;
use crate::routes::{self, Shared};
use crate::service::Service;
use crate::store::Store;
use crate::tokens::TokenSigner;

/// GoTrue-compatible end-user accounts under [`AuthConfig::prefix`].
///
/// ```no_run
/// use magauth::{AuthConfig, Hs256Signer, MagAuth, MemoryMailer};
/// let auth = MagAuth::new(AuthConfig::default(), Hs256Signer::new("a-32-character-or-longer-secret!"))
///     .with_mailer(MemoryMailer::new());
/// ```
pub struct MagAuth {
    config: AuthConfig,
    signer: Arc<dyn TokenSigner>,
    mailer: Option<Arc<dyn Mailer>>,
    shared: Shared,
}

impl std::fmt::Debug for MagAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MagAuth")
            .field("config", &self.config)
            .field("mailer", &self.mailer.is_some())
            .finish_non_exhaustive()
    }
}

impl MagAuth {
    /// MagAuth with `config`, signing access tokens with `signer` (which must produce
    /// tokens the board's PSU accepts).
    pub fn new(config: AuthConfig, signer: impl TokenSigner) -> Self {
        let mut config = config;
        while config.prefix.len() > 1 && config.prefix.ends_with('/') {
            config.prefix.pop();
        }
        MagAuth {
            config,
            signer: Arc::new(signer),
            mailer: None,
            shared: Arc::new(ArcSwapOption::empty()),
        }
    }

    /// Sends confirmation and recovery mails through `mailer` (required when
    /// [`AuthConfig::confirm_email`] is on).
    pub fn with_mailer(mut self, mailer: impl Mailer) -> Self {
        self.mailer = Some(Arc::new(mailer));
        self
    }

    /// The configuration.
    pub fn config(&self) -> &AuthConfig {
        &self.config
    }
}

impl ExtensionMeta for MagAuth {
    fn extension_info(&self) -> ExtensionInfo {
        let mut info = ExtensionInfo::new("magauth", env!("CARGO_PKG_VERSION"));
        info.title = "MagAuth Accounts".into();
        info.capabilities = vec![
            caps::STORAGE_READ.into(),
            caps::STORAGE_WRITE.into(),
            caps::CPU_MOUNT.into(),
            caps::AUTH_VERIFY.into(),
            caps::BUS_PUBLISH.into(),
        ];
        // The RAM slot, when it holds global buckets, shares the attempt limits.
        info.optional_capabilities = vec![caps::CACHE_READ.into()];
        info
    }
}

#[async_trait]
impl Extension for MagAuth {
    async fn init(&self, ctx: &ExtensionContext) -> magmobo_core::Result<()> {
        if self.config.confirm_email && self.mailer.is_none() {
            return Err(magmobo_core::Error::part(
                "magauth",
                "confirm_email is on but no mailer is set: call MagAuth::with_mailer",
            ));
        }
        let store = Store::new(ctx.storage()?);
        store
            .install()
            .await
            .map_err(|e| magmobo_core::Error::part("magauth", e.to_string()))?;
        let limits = crate::limits::Limiter::new(&self.config.rate_limits)
            .map_err(|e| magmobo_core::Error::part("magauth", e.to_string()))?;
        // With a RAM slot that holds global buckets (Redis), limits hold across instances.
        if let Ok(cache) = ctx.cache()
            && let Some(exchange) = cache.buckets()
        {
            limits.share(&exchange);
        }
        self.shared.store(Some(Arc::new(Service {
            config: self.config.clone(),
            store,
            signer: self.signer.clone(),
            mailer: self.mailer.clone(),
            auth: ctx.auth()?,
            bus: ctx.bus().ok(),
            limits,
        })));
        ctx.cpu()?
            .mount(&self.config.prefix, routes::router(self.shared.clone()))?;
        Ok(())
    }

    async fn stop(&self, _ctx: &ExtensionContext) -> magmobo_core::Result<()> {
        self.shared.store(None);
        Ok(())
    }

    async fn health(&self) -> Health {
        if self.shared.load().is_some() {
            Health::ok()
        } else {
            Health::degraded("not initialised")
        }
    }
}
