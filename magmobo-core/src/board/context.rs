//! What parts receive: the trusted [`BoardContext`] for components and patrol agents, and
//! the capability-checked [`PartContext`] for extensions and peripherals, which hands out a
//! handle only for what the part declared.

use std::sync::Arc;

use crate::bus::{Bus, BusEvent, ResponderGuard, Subscription};
use crate::part::Label;
use crate::roles::auth::Auth;
use crate::roles::cache::Cache;
use crate::roles::cpu::{Cpu, RouteTable};
use crate::roles::queue::JobQueue;
use crate::roles::storage::Storage;
use crate::slot::{Slot, caps};
use crate::{Error, Result};

/// The components in the board's slots. Fixed once the board is built.
#[derive(Clone, Default)]
pub struct Slots {
    pub(crate) cpu: Option<Arc<dyn Cpu>>,
    pub(crate) ram: Option<Arc<dyn Cache>>,
    pub(crate) gpu: Option<Arc<dyn JobQueue>>,
    pub(crate) storage: Option<Arc<dyn Storage>>,
    pub(crate) psu: Option<Arc<dyn Auth>>,
}

impl Slots {
    /// The component in `slot`, seen through its common lifecycle trait.
    pub fn component(&self, slot: Slot) -> Option<Arc<dyn crate::Component>> {
        match slot {
            Slot::Cpu => self.cpu.clone().map(|c| c as Arc<dyn crate::Component>),
            Slot::Ram => self.ram.clone().map(|c| c as Arc<dyn crate::Component>),
            Slot::Gpu => self.gpu.clone().map(|c| c as Arc<dyn crate::Component>),
            Slot::Storage => self.storage.clone().map(|c| c as Arc<dyn crate::Component>),
            Slot::Psu => self.psu.clone().map(|c| c as Arc<dyn crate::Component>),
        }
    }

    /// Whether `slot` holds a component.
    pub fn has(&self, slot: Slot) -> bool {
        match slot {
            Slot::Cpu => self.cpu.is_some(),
            Slot::Ram => self.ram.is_some(),
            Slot::Gpu => self.gpu.is_some(),
            Slot::Storage => self.storage.is_some(),
            Slot::Psu => self.psu.is_some(),
        }
    }
}

impl std::fmt::Debug for Slots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let filled: Vec<Slot> = Slot::ALL.into_iter().filter(|s| self.has(*s)).collect();
        f.debug_struct("Slots").field("filled", &filled).finish()
    }
}

/// Full access to the board, for components and patrol agents (trusted parts).
///
/// Keep only the handles you need rather than the whole context: a component holding the
/// context holds every other component too.
#[derive(Clone, Debug)]
pub struct BoardContext {
    pub(crate) slots: Slots,
    pub(crate) bus: Bus,
    pub(crate) board_name: Arc<str>,
}

impl BoardContext {
    /// The board's name.
    pub fn board_name(&self) -> &str {
        &self.board_name
    }
    /// The system bus.
    pub fn bus(&self) -> &Bus {
        &self.bus
    }
    /// The CPU, if the slot is filled.
    pub fn cpu(&self) -> Option<Arc<dyn Cpu>> {
        self.slots.cpu.clone()
    }
    /// The cache, if the slot is filled.
    pub fn cache(&self) -> Option<Arc<dyn Cache>> {
        self.slots.ram.clone()
    }
    /// The job queue, if the slot is filled.
    pub fn jobs(&self) -> Option<Arc<dyn JobQueue>> {
        self.slots.gpu.clone()
    }
    /// The database, if the slot is filled.
    pub fn storage(&self) -> Option<Arc<dyn Storage>> {
        self.slots.storage.clone()
    }
    /// The auth component, if the slot is filled.
    pub fn auth(&self) -> Option<Arc<dyn Auth>> {
        self.slots.psu.clone()
    }
}

/// What an extension or peripheral receives: handles for exactly the capabilities it
/// declared. Asking for anything else is an error naming the part and the missing capability.
#[derive(Clone, Debug)]
pub struct PartContext {
    name: Arc<str>,
    capabilities: Arc<[Label]>,
    board: BoardContext,
}

/// The context of an extension.
pub type ExtensionContext = PartContext;
/// The context of a peripheral.
pub type PeripheralContext = PartContext;

impl PartContext {
    pub(crate) fn new(name: &str, capabilities: &[Label], board: BoardContext) -> Self {
        PartContext {
            name: name.into(),
            capabilities: capabilities.into(),
            board,
        }
    }

    /// The part's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the part declared `capability`.
    pub fn has(&self, capability: &str) -> bool {
        self.capabilities.iter().any(|c| c == capability)
    }

    fn require(&self, any_of: &[&str]) -> Result<()> {
        if any_of.iter().any(|c| self.has(c)) {
            Ok(())
        } else {
            Err(Error::CapabilityNotDeclared {
                part: self.name.to_string(),
                capability: any_of.join("\" or \""),
            })
        }
    }

    fn slot<T: ?Sized>(&self, slot: Slot, value: &Option<Arc<T>>) -> Result<Arc<T>> {
        value.clone().ok_or_else(|| Error::MissingSlot {
            part: self.name.to_string(),
            slot,
        })
    }

    /// Mount routes on the CPU. Needs `cpu.mount`.
    pub fn cpu(&self) -> Result<CpuHandle> {
        self.require(&[caps::CPU_MOUNT])?;
        let cpu = self.slot(Slot::Cpu, &self.board.slots.cpu)?;
        Ok(CpuHandle {
            cpu,
            owner: self.name.clone(),
        })
    }

    /// The cache. Needs `cache.read` or `cache.write`.
    pub fn cache(&self) -> Result<Arc<dyn Cache>> {
        self.require(&[caps::CACHE_READ, caps::CACHE_WRITE])?;
        self.slot(Slot::Ram, &self.board.slots.ram)
    }

    /// The job queue. Needs `jobs.enqueue` or `jobs.work`.
    pub fn jobs(&self) -> Result<Arc<dyn JobQueue>> {
        self.require(&[caps::JOBS_ENQUEUE, caps::JOBS_WORK])?;
        self.slot(Slot::Gpu, &self.board.slots.gpu)
    }

    /// The database. Needs `storage.read` or `storage.write`.
    pub fn storage(&self) -> Result<Arc<dyn Storage>> {
        self.require(&[caps::STORAGE_READ, caps::STORAGE_WRITE])?;
        self.slot(Slot::Storage, &self.board.slots.storage)
    }

    /// The auth component. Needs `auth.verify`.
    pub fn auth(&self) -> Result<Arc<dyn Auth>> {
        self.require(&[caps::AUTH_VERIFY])?;
        self.slot(Slot::Psu, &self.board.slots.psu)
    }

    /// The bus. Needs `bus.publish` or `bus.subscribe`; each call checks its own.
    pub fn bus(&self) -> Result<BusHandle> {
        self.require(&[caps::BUS_PUBLISH, caps::BUS_SUBSCRIBE])?;
        Ok(BusHandle {
            bus: self.board.bus.clone(),
            part: self.name.clone(),
            publish: self.has(caps::BUS_PUBLISH),
            subscribe: self.has(caps::BUS_SUBSCRIBE),
        })
    }
}

/// An extension's view of the CPU: everything it mounts is owned by it and removed when it is
/// unplugged.
#[derive(Clone)]
pub struct CpuHandle {
    cpu: Arc<dyn Cpu>,
    owner: Arc<str>,
}

impl std::fmt::Debug for CpuHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpuHandle")
            .field("owner", &self.owner)
            .finish()
    }
}

impl CpuHandle {
    /// Mounts `router` under `prefix` (`/` merges at the root).
    pub fn mount(&self, prefix: &str, router: axum::Router) -> Result<()> {
        self.cpu.routes().mount(&self.owner, prefix, router)
    }
    /// Serves `handler` on the native fast path for paths matching `pattern` (matchit syntax).
    pub fn mount_native(
        &self,
        pattern: &str,
        handler: impl crate::roles::routes::NativeHandler,
    ) -> Result<()> {
        self.cpu
            .routes()
            .mount_native(&self.owner, pattern, handler)
    }
    /// Removes everything this part mounted.
    pub fn unmount_all(&self) -> usize {
        self.cpu.routes().unmount(&self.owner)
    }
    /// The route table, for layers (`routes().layer(self_name, layer)`).
    pub fn routes(&self) -> &RouteTable {
        self.cpu.routes()
    }
}

/// A part's view of the bus: events carry the part's name as their source.
#[derive(Clone, Debug)]
pub struct BusHandle {
    bus: Bus,
    part: Arc<str>,
    publish: bool,
    subscribe: bool,
}

impl BusHandle {
    fn check(&self, allowed: bool, capability: &str) -> Result<()> {
        if allowed {
            Ok(())
        } else {
            Err(Error::CapabilityNotDeclared {
                part: self.part.to_string(),
                capability: capability.into(),
            })
        }
    }
    /// The bus's delivery counters (published, dropped, lag...), for metrics and health.
    pub fn stats(&self) -> crate::bus::BusStats {
        self.bus.stats()
    }

    /// Publishes a JSON payload. Needs `bus.publish`.
    pub fn publish(&self, topic: &str, payload: serde_json::Value) -> Result<()> {
        self.check(self.publish, caps::BUS_PUBLISH)?;
        self.bus.publish(topic, &self.part, payload)
    }
    /// Publishes a typed event. Needs `bus.publish`.
    pub fn emit<E: BusEvent>(&self, event: &E) -> Result<()> {
        self.check(self.publish, caps::BUS_PUBLISH)?;
        self.bus.emit(&self.part, event)
    }
    /// Sends a request and waits for the reply. Needs `bus.publish`.
    pub async fn request(
        &self,
        topic: &str,
        payload: serde_json::Value,
        timeout: std::time::Duration,
    ) -> Result<serde_json::Value> {
        self.check(self.publish, caps::BUS_PUBLISH)?;
        self.bus.request(topic, &self.part, payload, timeout).await
    }
    /// Subscribes to a pattern. Needs `bus.subscribe`.
    pub fn subscribe(&self, pattern: &str) -> Result<Subscription> {
        self.check(self.subscribe, caps::BUS_SUBSCRIBE)?;
        self.bus.subscribe(pattern)
    }
    /// Answers requests on a pattern. Needs `bus.subscribe`.
    pub fn respond<F, Fut>(&self, pattern: &str, handler: F) -> Result<ResponderGuard>
    where
        F: Fn(Arc<crate::bus::Event>) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<serde_json::Value>> + Send + 'static,
    {
        self.check(self.subscribe, caps::BUS_SUBSCRIBE)?;
        self.bus.respond(pattern, handler)
    }
}
