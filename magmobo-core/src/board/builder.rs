//! Building a board from values: `Motherboard::builder().with(cpu).with((ram, storage))
//! .extension(gate).build()?`. `build()` checks every dependency and seals the board; the
//! builder is consumed, so registering after sealing does not compile.

use std::sync::Arc;
use std::time::Duration;

use super::graph::{Node, start_order};
use super::{BoardOptions, Motherboard, Slots};
use crate::bus::BusTransport;
use crate::part::{Extension, Patrol, Peripheral};
use crate::roles::auth::Auth;
use crate::roles::cache::Cache;
use crate::roles::cpu::Cpu;
use crate::roles::queue::JobQueue;
use crate::roles::storage::Storage;
use crate::slot::Slot;
use crate::{Error, Result};

/// Anything that can be put on a board: a component, extension, peripheral, patrol agent,
/// or a tuple of these. `#[derive(Component)]` and friends implement it.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be plugged into a board",
    label = "not a component, extension, peripheral or tuple of them",
    note = "derive it with `#[derive(magmobo::Component)]` (or Extension, Peripheral), or use the builder's `.cpu()`, `.ram()`, `.extension()` ... methods"
)]
pub trait Plug {
    /// Puts `self` on the board being built.
    fn plug(self, board: &mut BoardBuilder);
}

macro_rules! plug_tuple {
    ($($name:ident),+) => {
        impl<$($name: Plug),+> Plug for ($($name,)+) {
            #[allow(non_snake_case)]
            fn plug(self, board: &mut BoardBuilder) {
                let ($($name,)+) = self;
                $($name.plug(board);)+
            }
        }
    };
}
plug_tuple!(A);
plug_tuple!(A, B);
plug_tuple!(A, B, C);
plug_tuple!(A, B, C, D);
plug_tuple!(A, B, C, D, E);
plug_tuple!(A, B, C, D, E, F);
plug_tuple!(A, B, C, D, E, F, G);
plug_tuple!(A, B, C, D, E, F, G, H);

pub(crate) struct PendingExtension {
    pub ext: Arc<dyn Extension>,
    pub required: bool,
}

pub(crate) struct PendingPeripheral {
    pub peripheral: Arc<dyn Peripheral>,
    pub required: bool,
}

/// Collects parts and options; [`BoardBuilder::build`] validates and seals.
#[must_use = "a builder does nothing until `.build()`"]
#[derive(Default)]
pub struct BoardBuilder {
    options: BoardOptions,
    slots: Slots,
    names: Vec<(Slot, String)>,
    extensions: Vec<PendingExtension>,
    peripherals: Vec<PendingPeripheral>,
    patrols: Vec<Arc<dyn Patrol>>,
    transport: Option<Arc<dyn BusTransport>>,
    errors: Vec<Error>,
}

impl BoardBuilder {
    /// Adds any [`Plug`]: a derived component/extension/peripheral or a tuple of them.
    pub fn with(mut self, plug: impl Plug) -> Self {
        plug.plug(&mut self);
        self
    }

    /// The name printed when the board is up (`MagFlock started.`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.options.name = name.into();
        self
    }

    /// Identifies this instance among boards sharing a bus transport (default: random).
    pub fn instance_id(mut self, id: impl Into<String>) -> Self {
        self.options.instance = id.into();
        self
    }

    /// Boot fails with MM-POST-001 unless `slot` holds a component.
    pub fn require(mut self, slot: Slot) -> Self {
        if !self.options.required_slots.contains(&slot) {
            self.options.required_slots.push(slot);
        }
        self
    }

    /// Capacity of each bus subscriber's queue (default 1024).
    pub fn bus_capacity(mut self, capacity: usize) -> Self {
        self.options.bus_capacity = capacity;
        self
    }

    /// Deadline of each boot step (default 30 s).
    pub fn step_timeout(mut self, timeout: Duration) -> Self {
        self.options.step_timeout = timeout;
        self
    }

    /// How long a graceful shutdown waits for in-flight requests (default 10 s).
    pub fn drain_deadline(mut self, deadline: Duration) -> Self {
        self.options.drain_deadline = deadline;
        self
    }

    /// Shares bus events with other instances through `transport`.
    pub fn bus_transport(mut self, transport: impl BusTransport) -> Self {
        self.transport = Some(Arc::new(transport));
        self
    }

    /// Records that `slot` is taken by `name`; a second claim is a build error.
    fn claim(&mut self, slot: Slot, name: String) -> bool {
        if let Some((_, first)) = self.names.iter().find(|(s, _)| *s == slot) {
            self.errors.push(Error::SlotTaken {
                slot,
                first: first.clone(),
                second: name,
            });
            return false;
        }
        self.names.push((slot, name));
        true
    }

    /// Puts a router in the CPU slot.
    pub fn cpu(mut self, cpu: impl Cpu) -> Self {
        self.put_cpu(cpu);
        self
    }
    /// Puts a cache in the RAM slot.
    pub fn ram(mut self, ram: impl Cache) -> Self {
        self.put_ram(ram);
        self
    }
    /// Puts a job queue in the GPU slot.
    pub fn gpu(mut self, gpu: impl JobQueue) -> Self {
        self.put_gpu(gpu);
        self
    }
    /// Puts a database in the Storage slot.
    pub fn storage(mut self, storage: impl Storage) -> Self {
        self.put_storage(storage);
        self
    }
    /// Puts an auth component in the PSU slot.
    pub fn psu(mut self, psu: impl Auth) -> Self {
        self.put_psu(psu);
        self
    }
    /// Adds an optional extension: if it fails, the rest boots and health shows it degraded.
    pub fn extension(mut self, ext: impl Extension) -> Self {
        self.put_extension(ext, false);
        self
    }
    /// Adds an extension whose failure stops the boot (MM-POST-004).
    pub fn required_extension(mut self, ext: impl Extension) -> Self {
        self.put_extension(ext, true);
        self
    }
    /// Adds an optional peripheral.
    pub fn peripheral(mut self, peripheral: impl Peripheral) -> Self {
        self.put_peripheral(peripheral, false);
        self
    }
    /// Adds a peripheral whose failure stops the boot (MM-POST-005).
    pub fn required_peripheral(mut self, peripheral: impl Peripheral) -> Self {
        self.put_peripheral(peripheral, true);
        self
    }
    /// Adds a patrol agent, started after extensions and peripherals.
    pub fn patrol(mut self, agent: impl Patrol) -> Self {
        self.patrols.push(Arc::new(agent));
        self
    }

    /// In-place form of [`BoardBuilder::cpu`], for [`Plug`] implementations.
    pub fn put_cpu(&mut self, cpu: impl Cpu) {
        let name = cpu.component_info().name.to_string();
        if self.claim(Slot::Cpu, name) {
            self.slots.cpu = Some(Arc::new(cpu));
        }
    }
    /// In-place form of [`BoardBuilder::ram`].
    pub fn put_ram(&mut self, ram: impl Cache) {
        let name = ram.component_info().name.to_string();
        if self.claim(Slot::Ram, name) {
            self.slots.ram = Some(Arc::new(ram));
        }
    }
    /// In-place form of [`BoardBuilder::gpu`].
    pub fn put_gpu(&mut self, gpu: impl JobQueue) {
        let name = gpu.component_info().name.to_string();
        if self.claim(Slot::Gpu, name) {
            self.slots.gpu = Some(Arc::new(gpu));
        }
    }
    /// In-place form of [`BoardBuilder::storage`].
    pub fn put_storage(&mut self, storage: impl Storage) {
        let name = storage.component_info().name.to_string();
        if self.claim(Slot::Storage, name) {
            self.slots.storage = Some(Arc::new(storage));
        }
    }
    /// In-place form of [`BoardBuilder::psu`].
    pub fn put_psu(&mut self, psu: impl Auth) {
        let name = psu.component_info().name.to_string();
        if self.claim(Slot::Psu, name) {
            self.slots.psu = Some(Arc::new(psu));
        }
    }
    /// In-place form of [`BoardBuilder::extension`] / [`BoardBuilder::required_extension`].
    pub fn put_extension(&mut self, ext: impl Extension, required: bool) {
        self.extensions.push(PendingExtension {
            ext: Arc::new(ext),
            required,
        });
    }
    /// In-place form of [`BoardBuilder::peripheral`] / [`BoardBuilder::required_peripheral`].
    pub fn put_peripheral(&mut self, peripheral: impl Peripheral, required: bool) {
        self.peripherals.push(PendingPeripheral {
            peripheral: Arc::new(peripheral),
            required,
        });
    }
    /// In-place form of [`BoardBuilder::patrol`].
    pub fn put_patrol(&mut self, agent: impl Patrol) {
        self.patrols.push(Arc::new(agent));
    }

    /// Validates the board and seals it: slot conflicts, missing slots and dependencies, and
    /// cycles are reported here, naming the parts, before anything runs.
    pub fn build(mut self) -> Result<Motherboard> {
        if let Some(error) = self.errors.drain(..).next() {
            return Err(error);
        }
        let mut nodes: Vec<Node> = Vec::new();
        for slot in Slot::ALL {
            let Some(component) = self.slots.component(slot) else {
                continue;
            };
            let info = component.component_info();
            let mut deps = Vec::new();
            for needed in &info.depends_on {
                deps.push(self.slot_owner(&info.name, *needed)?);
            }
            nodes.push(Node {
                name: info.name.to_string(),
                deps,
            });
        }
        let component_count = nodes.len();
        for pending in &self.extensions {
            let info = pending.ext.extension_info();
            let mut deps = Vec::new();
            for slot in info.required_slots() {
                deps.push(self.slot_owner(&info.name, slot)?);
            }
            deps.extend(info.depends_on.iter().map(|d| d.to_string()));
            nodes.push(Node {
                name: info.name.to_string(),
                deps,
            });
        }
        for pending in &self.peripherals {
            let info = pending.peripheral.peripheral_info();
            let mut deps = Vec::new();
            for slot in info
                .capabilities
                .iter()
                .filter_map(|c| crate::part::capability_slot(c))
            {
                deps.push(self.slot_owner(&info.name, slot)?);
            }
            deps.extend(info.depends_on.iter().map(|d| d.to_string()));
            nodes.push(Node {
                name: info.name.to_string(),
                deps,
            });
        }
        let order = start_order(&nodes)?;
        let component_order: Vec<String> = order
            .iter()
            .filter(|&&i| i < component_count)
            .map(|&i| nodes[i].name.clone())
            .collect();
        let extension_order: Vec<usize> = order
            .iter()
            .filter(|&&i| i >= component_count && i < component_count + self.extensions.len())
            .map(|&i| i - component_count)
            .collect();
        let peripheral_order: Vec<usize> = order
            .iter()
            .filter(|&&i| i >= component_count + self.extensions.len())
            .map(|&i| i - component_count - self.extensions.len())
            .collect();
        let mut extensions: Vec<Option<PendingExtension>> =
            self.extensions.into_iter().map(Some).collect();
        let mut peripherals: Vec<Option<PendingPeripheral>> =
            self.peripherals.into_iter().map(Some).collect();
        let extensions = extension_order
            .into_iter()
            .filter_map(|i| extensions[i].take())
            .collect();
        let peripherals = peripheral_order
            .into_iter()
            .filter_map(|i| peripherals[i].take())
            .collect();
        let component_slots = component_order
            .iter()
            .filter_map(|name| self.names.iter().find(|(_, n)| n == name).map(|(s, _)| *s))
            .collect();
        Ok(Motherboard::assemble(
            self.options,
            self.slots,
            component_slots,
            extensions,
            peripherals,
            self.patrols,
            self.transport,
        ))
    }

    fn slot_owner(&self, part: &str, slot: Slot) -> Result<String> {
        self.names
            .iter()
            .find(|(s, _)| *s == slot)
            .map(|(_, name)| name.clone())
            .ok_or_else(|| Error::MissingSlot {
                part: part.to_owned(),
                slot,
            })
    }
}
