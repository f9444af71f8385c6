//! The motherboard: holds the slots, the bus and every part, and alone drives the lifecycle
//! (assembled → POST → init → mount → running → draining → halted). The phase is observable
//! through a watch channel.

mod builder;
mod context;
mod graph;
mod health;
mod lifecycle;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;

pub use builder::{BoardBuilder, Plug};
pub use context::{
    BoardContext, BusHandle, CpuHandle, ExtensionContext, PartContext, PeripheralContext, Slots,
};
pub use health::{BoardHealth, PartHealth};

use crate::bios::BootReport;
use crate::bus::{Bus, BusTransport};
use crate::part::{Extension, ExtensionInfo, Patrol, Peripheral, PeripheralInfo};
use crate::slot::Slot;
use builder::{PendingExtension, PendingPeripheral};

/// Where the board is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Built, not booted.
    Assembled,
    /// Power-on self-test.
    Post,
    /// Initialising and starting components.
    Init,
    /// Mounting extensions, connecting peripherals, starting patrol agents.
    Mount,
    /// Serving.
    Running,
    /// Draining in-flight work before stopping.
    Draining,
    /// Stopped (after a shutdown or a failed boot); may boot again.
    Halted,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            Phase::Assembled => "assembled",
            Phase::Post => "in POST",
            Phase::Init => "initialising",
            Phase::Mount => "mounting",
            Phase::Running => "running",
            Phase::Draining => "draining",
            Phase::Halted => "halted",
        };
        f.write_str(name)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct BoardOptions {
    pub name: String,
    pub instance: String,
    pub required_slots: Vec<Slot>,
    pub bus_capacity: usize,
    pub step_timeout: Duration,
    pub drain_deadline: Duration,
}

impl Default for BoardOptions {
    fn default() -> Self {
        BoardOptions {
            name: "MagMoBo".into(),
            instance: random_instance_id(),
            required_slots: Vec::new(),
            bus_capacity: crate::bus::DEFAULT_CAPACITY,
            step_timeout: Duration::from_secs(30),
            drain_deadline: Duration::from_secs(10),
        }
    }
}

fn random_instance_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded from the OS per process; good enough to tell instances apart.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    hasher.write_u32(std::process::id());
    format!("{:016x}", hasher.finish())
}

/// Whether a part is up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "state", content = "detail")]
pub enum PartState {
    /// Registered, not started.
    Pending,
    /// Up.
    Up,
    /// Failed to come up; the text says why.
    Failed(String),
    /// Not attempted because a dependency failed.
    Skipped(String),
}

pub(crate) struct ExtensionEntry {
    pub ext: Arc<dyn Extension>,
    pub info: ExtensionInfo,
    pub required: bool,
    pub state: PartState,
}

pub(crate) struct PeripheralEntry {
    pub peripheral: Arc<dyn Peripheral>,
    pub info: PeripheralInfo,
    pub required: bool,
    pub state: PartState,
    pub pumps: Vec<tokio::task::JoinHandle<()>>,
}

pub(crate) struct PatrolEntry {
    pub agent: Arc<dyn Patrol>,
    pub state: PartState,
}

#[derive(Default)]
pub(crate) struct Parts {
    pub extensions: Vec<ExtensionEntry>,
    pub peripherals: Vec<PeripheralEntry>,
    pub patrols: Vec<PatrolEntry>,
    /// Components started so far, in start order, so a stop can run in reverse.
    pub started: Vec<Slot>,
    pub last_report: Option<BootReport>,
}

pub(crate) struct BoardInner {
    pub options: BoardOptions,
    pub slots: Slots,
    /// Component slots in start order (a topological order of their dependencies).
    pub component_order: Vec<Slot>,
    pub bus: Bus,
    pub transport: Option<Arc<dyn BusTransport>>,
    pub phase: watch::Sender<Phase>,
    /// Serialises lifecycle operations (boot, shutdown, hot plug).
    pub lifecycle: tokio::sync::Mutex<()>,
    /// Registered parts; locked only briefly, never across an await.
    pub parts: RwLock<Parts>,
}

/// A built board. Cheap to clone; clones share the board.
#[derive(Clone)]
pub struct Motherboard {
    pub(crate) inner: Arc<BoardInner>,
}

impl std::fmt::Debug for Motherboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Motherboard")
            .field("name", &self.inner.options.name)
            .field("phase", &self.current_phase())
            .field("slots", &self.inner.slots)
            .finish()
    }
}

impl Motherboard {
    /// Starts building a board.
    pub fn builder() -> BoardBuilder {
        BoardBuilder::default()
    }

    pub(crate) fn assemble(
        options: BoardOptions,
        slots: Slots,
        component_order: Vec<Slot>,
        extensions: Vec<PendingExtension>,
        peripherals: Vec<PendingPeripheral>,
        patrols: Vec<Arc<dyn Patrol>>,
        transport: Option<Arc<dyn BusTransport>>,
    ) -> Motherboard {
        let bus = Bus::new(options.instance.clone(), options.bus_capacity);
        let parts = Parts {
            extensions: extensions
                .into_iter()
                .map(|p| ExtensionEntry {
                    info: p.ext.extension_info(),
                    ext: p.ext,
                    required: p.required,
                    state: PartState::Pending,
                })
                .collect(),
            peripherals: peripherals
                .into_iter()
                .map(|p| PeripheralEntry {
                    info: p.peripheral.peripheral_info(),
                    peripheral: p.peripheral,
                    required: p.required,
                    state: PartState::Pending,
                    pumps: Vec::new(),
                })
                .collect(),
            patrols: patrols
                .into_iter()
                .map(|agent| PatrolEntry {
                    agent,
                    state: PartState::Pending,
                })
                .collect(),
            started: Vec::new(),
            last_report: None,
        };
        let (phase, _) = watch::channel(Phase::Assembled);
        Motherboard {
            inner: Arc::new(BoardInner {
                options,
                slots,
                component_order,
                bus,
                transport,
                phase,
                lifecycle: tokio::sync::Mutex::new(()),
                parts: RwLock::new(parts),
            }),
        }
    }

    /// The board's name.
    pub fn name(&self) -> &str {
        &self.inner.options.name
    }

    /// The system bus.
    pub fn bus(&self) -> &Bus {
        &self.inner.bus
    }

    /// The components in the slots.
    pub fn slots(&self) -> &Slots {
        &self.inner.slots
    }

    /// The CPU, if any.
    pub fn cpu(&self) -> Option<Arc<dyn crate::roles::cpu::Cpu>> {
        self.inner.slots.cpu.clone()
    }

    /// The database, if any.
    pub fn storage(&self) -> Option<Arc<dyn crate::roles::storage::Storage>> {
        self.inner.slots.storage.clone()
    }

    /// The cache, if any.
    pub fn cache(&self) -> Option<Arc<dyn crate::roles::cache::Cache>> {
        self.inner.slots.ram.clone()
    }

    /// The job queue, if any.
    pub fn jobs(&self) -> Option<Arc<dyn crate::roles::queue::JobQueue>> {
        self.inner.slots.gpu.clone()
    }

    /// The auth component, if any.
    pub fn auth(&self) -> Option<Arc<dyn crate::roles::auth::Auth>> {
        self.inner.slots.psu.clone()
    }

    /// The context components and patrol agents receive.
    pub fn context(&self) -> BoardContext {
        BoardContext {
            slots: self.inner.slots.clone(),
            bus: self.inner.bus.clone(),
            board_name: self.inner.options.name.as_str().into(),
        }
    }

    /// The current phase.
    pub fn current_phase(&self) -> Phase {
        *self.inner.phase.borrow()
    }

    /// A receiver that sees every phase change.
    pub fn watch_phase(&self) -> watch::Receiver<Phase> {
        self.inner.phase.subscribe()
    }

    /// The extension registered under `name`.
    pub fn extension(&self, name: &str) -> Option<Arc<dyn Extension>> {
        self.parts()
            .extensions
            .iter()
            .find(|e| e.info.name == name)
            .map(|e| e.ext.clone())
    }

    /// State of the extension registered under `name`.
    pub fn extension_state(&self, name: &str) -> Option<PartState> {
        self.parts()
            .extensions
            .iter()
            .find(|e| e.info.name == name)
            .map(|e| e.state.clone())
    }

    /// The report of the last boot.
    pub fn last_report(&self) -> Option<BootReport> {
        self.parts().last_report.clone()
    }

    pub(crate) fn parts(&self) -> std::sync::RwLockReadGuard<'_, Parts> {
        self.inner.parts.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn parts_mut(&self) -> std::sync::RwLockWriteGuard<'_, Parts> {
        self.inner.parts.write().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn set_phase(&self, phase: Phase) {
        self.inner.phase.send_replace(phase);
    }
}
