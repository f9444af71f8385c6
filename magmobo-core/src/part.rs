//! The three kinds of parts a board holds (components, extensions, peripherals) and the
//! patrol-agent hook, with their identity ("meta") traits and lifecycle traits.
//!
//! Identity and lifecycle are separate traits on purpose: `#[derive(Component)]` and friends
//! generate the identity from attributes, and the author writes only the lifecycle hooks they
//! need, because every hook has an empty default body.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

use crate::Result;
use crate::board::{BoardContext, ExtensionContext, PeripheralContext};
use crate::bus::Event;
use crate::health::Health;
use crate::slot::Slot;

/// A name or other label that is usually a literal.
pub type Label = Cow<'static, str>;

/// How to stop: drain in-flight work up to a deadline, or drop it at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "mode")]
pub enum StopMode {
    /// Stop accepting new work and wait for in-flight work up to `deadline`.
    Graceful {
        /// How long in-flight work may take to finish.
        deadline: Duration,
    },
    /// Abort in-flight work now.
    Fast,
}

impl StopMode {
    /// The drain deadline: zero for [`StopMode::Fast`].
    pub fn deadline(self) -> Duration {
        match self {
            StopMode::Graceful { deadline } => deadline,
            StopMode::Fast => Duration::ZERO,
        }
    }
}

/// Identity of a component: what the POST screen and `/health` show.
#[derive(Debug, Clone, Serialize)]
pub struct ComponentInfo {
    /// Unique name on the board, e.g. `HyperRouter`.
    pub name: Label,
    /// The component's version.
    pub version: Label,
    /// The slot it goes in.
    pub slot: Slot,
    /// What it offers (free-form labels for humans and `/health`).
    pub capabilities: Vec<Label>,
    /// Slots that must be initialised before this one (e.g. a PSU that keeps keys in Storage).
    pub depends_on: Vec<Slot>,
}

impl ComponentInfo {
    /// A component with no capabilities and no dependencies.
    pub fn new(name: impl Into<Label>, version: impl Into<Label>, slot: Slot) -> Self {
        ComponentInfo {
            name: name.into(),
            version: version.into(),
            slot,
            capabilities: Vec::new(),
            depends_on: Vec::new(),
        }
    }
}

/// Identity of an extension.
#[derive(Debug, Clone, Serialize)]
pub struct ExtensionInfo {
    /// Unique name on the board, e.g. `maggate`.
    pub name: Label,
    /// Name shown on the POST screen, e.g. `MagGate API Generator`.
    pub title: Label,
    /// The extension's version.
    pub version: Label,
    /// Capabilities it asks for; each implies the slot it belongs to (see [`capability_slot`]).
    pub capabilities: Vec<Label>,
    /// Capabilities it uses when their slot is filled and does without otherwise (e.g. MagGate
    /// authenticates through the PSU when there is one). They imply no required slot; asking
    /// for the handle when the slot is empty is an `Error::MissingSlot` to handle.
    pub optional_capabilities: Vec<Label>,
    /// Slots it needs even without a capability on them.
    pub requires: Vec<Slot>,
    /// Other extensions that must be mounted first.
    pub depends_on: Vec<Label>,
}

impl ExtensionInfo {
    /// An extension with no requirements.
    pub fn new(name: impl Into<Label>, version: impl Into<Label>) -> Self {
        let name = name.into();
        ExtensionInfo {
            title: name.clone(),
            name,
            version: version.into(),
            capabilities: Vec::new(),
            optional_capabilities: Vec::new(),
            requires: Vec::new(),
            depends_on: Vec::new(),
        }
    }

    /// Declared and optional capabilities together: what its context hands out.
    pub fn all_capabilities(&self) -> Vec<Label> {
        self.capabilities
            .iter()
            .chain(&self.optional_capabilities)
            .cloned()
            .collect()
    }

    /// Every slot this extension needs: declared ones plus those implied by capabilities.
    pub fn required_slots(&self) -> Vec<Slot> {
        let mut slots = self.requires.clone();
        slots.extend(self.capabilities.iter().filter_map(|c| capability_slot(c)));
        slots.sort();
        slots.dedup();
        slots
    }
}

/// Identity of a peripheral.
#[derive(Debug, Clone, Serialize)]
pub struct PeripheralInfo {
    /// Unique name on the board, e.g. `webhooks`.
    pub name: Label,
    /// Name shown on the POST screen.
    pub title: Label,
    /// The peripheral's version.
    pub version: Label,
    /// Bus topic patterns whose events are delivered to [`Peripheral::send`].
    pub subscribes: Vec<Label>,
    /// Capabilities it asks for.
    pub capabilities: Vec<Label>,
    /// Extensions or components (by name) that must be up first.
    pub depends_on: Vec<Label>,
}

impl PeripheralInfo {
    /// A peripheral with no subscriptions.
    pub fn new(name: impl Into<Label>, version: impl Into<Label>) -> Self {
        let name = name.into();
        PeripheralInfo {
            title: name.clone(),
            name,
            version: version.into(),
            subscribes: Vec::new(),
            capabilities: Vec::new(),
            depends_on: Vec::new(),
        }
    }
}

/// The slot a capability belongs to, by its prefix (`storage.read` → Storage).
pub fn capability_slot(capability: &str) -> Option<Slot> {
    let prefix = capability.split('.').next()?;
    match prefix {
        "cpu" => Some(Slot::Cpu),
        "cache" | "ram" => Some(Slot::Ram),
        "jobs" | "gpu" => Some(Slot::Gpu),
        "storage" => Some(Slot::Storage),
        "auth" | "psu" => Some(Slot::Psu),
        _ => None,
    }
}

/// Identity of a component; `#[derive(Component)]` writes it.
pub trait ComponentMeta {
    /// Name, version, slot, capabilities and dependencies.
    fn component_info(&self) -> ComponentInfo;
}

/// Identity of an extension; `#[derive(Extension)]` writes it.
pub trait ExtensionMeta {
    /// Name, version, capabilities and dependencies.
    fn extension_info(&self) -> ExtensionInfo;
}

/// Identity of a peripheral; `#[derive(Peripheral)]` writes it.
pub trait PeripheralMeta {
    /// Name, version, subscriptions and capabilities.
    fn peripheral_info(&self) -> PeripheralInfo;
}

/// Lifecycle of anything that sits in a slot. Every hook has a default, so an
/// implementation writes only what it needs.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a component: it does not implement `magmobo::Component`",
    note = "add `#[magmobo::async_trait] impl magmobo::Component for {Self} {{}}` (every hook has a default) next to `#[derive(magmobo::Component)]`"
)]
#[async_trait]
pub trait Component: ComponentMeta + Send + Sync + 'static {
    /// POST self-test: detect the hardware, so to speak. Returns the detail shown on the POST
    /// line (e.g. `PostgreSQL 15.8, 0.4 ms round trip`). An error stops the boot (MM-POST-002).
    async fn self_test(&self) -> Result<String> {
        Ok(String::new())
    }
    /// Prepare: open pools, read configuration. Other components in `depends_on` are ready.
    async fn init(&self, _board: &BoardContext) -> Result<()> {
        Ok(())
    }
    /// Start background work.
    async fn start(&self, _board: &BoardContext) -> Result<()> {
        Ok(())
    }
    /// Stop background work; called in reverse start order.
    async fn stop(&self, _mode: StopMode) -> Result<()> {
        Ok(())
    }
    /// Current health.
    async fn health(&self) -> Health {
        Health::ok()
    }
}

/// A major feature mounted in a PCIe slot. It receives only the handles it declared.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an extension: it does not implement `magmobo::Extension`",
    note = "add `#[magmobo::async_trait] impl magmobo::Extension for {Self} {{}}` (every hook has a default) next to `#[derive(magmobo::Extension)]`"
)]
#[async_trait]
pub trait Extension: ExtensionMeta + Send + Sync + 'static {
    /// Install what the extension needs in storage (its migrations). Runs on every mount, so
    /// it must be idempotent; the migrations API records what already ran.
    async fn install(&self, _ctx: &ExtensionContext) -> Result<()> {
        Ok(())
    }
    /// Remove what `install` created. Runs only on an explicit uninstall.
    async fn uninstall(&self, _ctx: &ExtensionContext) -> Result<()> {
        Ok(())
    }
    /// Prepare and mount routes.
    async fn init(&self, _ctx: &ExtensionContext) -> Result<()> {
        Ok(())
    }
    /// Start background work.
    async fn start(&self, _ctx: &ExtensionContext) -> Result<()> {
        Ok(())
    }
    /// Stop background work. Routes are unmounted by the board afterwards.
    async fn stop(&self, _ctx: &ExtensionContext) -> Result<()> {
        Ok(())
    }
    /// Current health.
    async fn health(&self) -> Health {
        Health::ok()
    }
    /// One line for the POST screen once mounted, e.g. `5 tables, 25 endpoints`.
    fn summary(&self) -> Option<String> {
        None
    }
}

/// An integration in a USB port. Outbound traffic goes through [`Peripheral::send`], which the
/// board calls for every bus event matching `subscribes`; inbound traffic (a webhook received,
/// an MQTT message) is published on the bus through the context's bus handle.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a peripheral: it does not implement `magmobo::Peripheral`",
    note = "add `#[magmobo::async_trait] impl magmobo::Peripheral for {Self} {{}}` (every hook has a default) next to `#[derive(magmobo::Peripheral)]`"
)]
#[async_trait]
pub trait Peripheral: PeripheralMeta + Send + Sync + 'static {
    /// Open connections.
    async fn connect(&self, _ctx: &PeripheralContext) -> Result<()> {
        Ok(())
    }
    /// Close connections.
    async fn disconnect(&self) -> Result<()> {
        Ok(())
    }
    /// Deliver one event to the outside world.
    async fn send(&self, _event: Arc<Event>) -> Result<()> {
        Ok(())
    }
    /// Current health.
    async fn health(&self) -> Health {
        Health::ok()
    }
}

/// The hook Sentinel uses: an always-on agent started after extensions and peripherals, with
/// the board's full context (it may add a request layer on the CPU or subscribe to the bus).
#[async_trait]
pub trait Patrol: Send + Sync + 'static {
    /// Short name for the POST screen, e.g. `SQLGuard`.
    fn name(&self) -> &str;
    /// Begin patrolling.
    async fn start(&self, _board: &BoardContext) -> Result<()> {
        Ok(())
    }
    /// Stop patrolling.
    async fn stop(&self) -> Result<()> {
        Ok(())
    }
    /// Current health.
    async fn health(&self) -> Health {
        Health::ok()
    }
}
