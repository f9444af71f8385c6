//! The BIOS's output: the [`BootReport`] a boot produces, its stable failure codes, and the
//! POST screen rendered from it (colour on a terminal, plain when piped, JSON on request).
//!
//! The boot sequence itself lives in `board::lifecycle`; this module only describes and
//! renders it, so the screen can be tested without booting anything.

mod codes;
mod render;
mod report;

pub use codes::PostCode;
pub use render::{RenderStyle, render};
pub(crate) use report::micros as report_micros;
pub use report::{BootFailure, BootReport, LineStatus, MountLine, Outcome, PostLine, StepLine};

/// Version printed on the POST screen's first line.
pub const BIOS_VERSION: &str = env!("CARGO_PKG_VERSION");
