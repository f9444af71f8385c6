//! The five typed slots of the board and the capability names parts declare.
//!
//! A slot is a role, not an implementation: the CPU slot takes any router, the Storage slot any
//! database driver. Capabilities are the strings an extension declares to receive a handle
//! (`storage.read`, `cpu.mount`, ...), checked when the handle is asked for.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A typed slot on the board.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Slot {
    /// HTTP routing and serving.
    Cpu,
    /// Cache.
    Ram,
    /// Job queue.
    Gpu,
    /// Database.
    Storage,
    /// Authentication.
    Psu,
}

impl Slot {
    /// All slots in POST order.
    pub const ALL: [Slot; 5] = [Slot::Cpu, Slot::Ram, Slot::Gpu, Slot::Storage, Slot::Psu];

    /// The lower-case name used in configuration, capabilities and JSON.
    pub fn key(self) -> &'static str {
        match self {
            Slot::Cpu => "cpu",
            Slot::Ram => "ram",
            Slot::Gpu => "gpu",
            Slot::Storage => "storage",
            Slot::Psu => "psu",
        }
    }

    /// Parses the lower-case name.
    pub fn from_key(key: &str) -> Option<Slot> {
        Slot::ALL.into_iter().find(|s| s.key() == key)
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Slot::Cpu => "CPU",
            Slot::Ram => "RAM",
            Slot::Gpu => "GPU",
            Slot::Storage => "Storage",
            Slot::Psu => "PSU",
        })
    }
}

/// Capability names known to the core. Extensions may declare others for their own use.
pub mod caps {
    /// Mount and unmount HTTP routes on the CPU.
    pub const CPU_MOUNT: &str = "cpu.mount";
    /// Read from the cache.
    pub const CACHE_READ: &str = "cache.read";
    /// Write to and invalidate the cache.
    pub const CACHE_WRITE: &str = "cache.write";
    /// Enqueue jobs.
    pub const JOBS_ENQUEUE: &str = "jobs.enqueue";
    /// Run job workers.
    pub const JOBS_WORK: &str = "jobs.work";
    /// Read from storage.
    pub const STORAGE_READ: &str = "storage.read";
    /// Write to storage and run migrations.
    pub const STORAGE_WRITE: &str = "storage.write";
    /// Authenticate requests.
    pub const AUTH_VERIFY: &str = "auth.verify";
    /// Publish events and send requests on the bus.
    pub const BUS_PUBLISH: &str = "bus.publish";
    /// Subscribe to events and answer requests on the bus.
    pub const BUS_SUBSCRIBE: &str = "bus.subscribe";
}
