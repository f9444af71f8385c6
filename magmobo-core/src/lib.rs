//! # magmobo-core
//!
//! The small, slow-moving core of MagMoBo that driver and extension authors depend on:
//! the five typed [slots](Slot) and their role traits, the [`Component`], [`Extension`],
//! [`Peripheral`] and [`Patrol`] traits, the system [bus], the [`Motherboard`] with its
//! builder and lifecycle, and the [BIOS](bios) boot report.
//!
//! Applications use the `magmobo` facade crate, which re-exports all of this together with the
//! derive macros and the drivers selected by cargo features.

pub mod bios;
pub mod board;
pub mod bus;
mod error;
pub mod health;
pub mod part;
pub mod ratelimit;
mod redact;
pub mod roles;
pub mod slot;

pub use board::{Motherboard, Phase, Plug};
pub use error::{BoxError, Error, Result};
pub use health::{Health, HealthStatus};
pub use part::{
    Component, ComponentInfo, ComponentMeta, Extension, ExtensionInfo, ExtensionMeta, Patrol,
    Peripheral, PeripheralInfo, PeripheralMeta, StopMode,
};
pub use redact::redact_url;
pub use slot::{Slot, caps};

pub(crate) use bios::report_micros as bios_micros;

/// Re-exported for `#[async_trait]` on component and extension impls.
pub use async_trait::async_trait;
/// Re-exported so extensions build routers with the exact axum version the CPU serves.
pub use axum;
/// Re-exported because the cache role speaks `bytes::Bytes`.
pub use bytes;

/// Everything an application or extension author usually needs.
pub mod prelude {
    pub use crate::board::{BoardContext, ExtensionContext, PeripheralContext};
    pub use crate::bus::{Bus, BusEvent, Event};
    pub use crate::roles::auth::{Auth, AuthRejection, Identity};
    pub use crate::roles::cache::Cache;
    pub use crate::roles::cpu::Cpu;
    pub use crate::roles::queue::JobQueue;
    pub use crate::roles::storage::Storage;
    pub use crate::{
        Component, ComponentInfo, ComponentMeta, Error, Extension, ExtensionInfo, ExtensionMeta,
        Health, HealthStatus, Motherboard, Patrol, Peripheral, PeripheralInfo, PeripheralMeta,
        Plug, Result, Slot, StopMode, async_trait, caps,
    };
}
