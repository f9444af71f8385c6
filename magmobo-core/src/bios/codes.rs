//! Stable codes for boot failures. They are part of the public contract: documented in
//! docs/post-codes.md, never renumbered, never reused.

use serde::{Serialize, Serializer};

/// Why a boot stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PostCode {
    /// MM-POST-001: a slot the board requires holds no component.
    MissingComponent,
    /// MM-POST-002: a component's self-test failed.
    SelfTestFailed,
    /// MM-POST-003: a component failed to initialise or start.
    InitFailed,
    /// MM-POST-004: a required extension failed to mount.
    RequiredExtensionFailed,
    /// MM-POST-005: a required peripheral failed to connect.
    RequiredPeripheralFailed,
    /// MM-POST-006: the CPU could not listen (port in use, no permission...).
    ListenFailed,
    /// MM-POST-007: a boot step ran past its deadline.
    StepTimeout,
    /// MM-POST-008: the bus transport could not connect.
    BusTransportFailed,
}

impl PostCode {
    /// The code as printed, e.g. `MM-POST-001`.
    pub fn as_str(self) -> &'static str {
        match self {
            PostCode::MissingComponent => "MM-POST-001",
            PostCode::SelfTestFailed => "MM-POST-002",
            PostCode::InitFailed => "MM-POST-003",
            PostCode::RequiredExtensionFailed => "MM-POST-004",
            PostCode::RequiredPeripheralFailed => "MM-POST-005",
            PostCode::ListenFailed => "MM-POST-006",
            PostCode::StepTimeout => "MM-POST-007",
            PostCode::BusTransportFailed => "MM-POST-008",
        }
    }

    /// What to do about it, in one line.
    pub fn hint(self) -> &'static str {
        match self {
            PostCode::MissingComponent => {
                "add a component for that slot to the board with `.with(...)`, or stop requiring it"
            }
            PostCode::SelfTestFailed => {
                "check that the service behind the component is running and reachable, then boot again"
            }
            PostCode::InitFailed => {
                "read the component's error above; fix its configuration and boot again"
            }
            PostCode::RequiredExtensionFailed => {
                "fix the extension's error above, or register it as optional to boot without it"
            }
            PostCode::RequiredPeripheralFailed => {
                "check the peripheral's endpoint, or register it as optional to boot without it"
            }
            PostCode::ListenFailed => {
                "choose another listen address or stop the process holding the port (see `ss -ltnp`)"
            }
            PostCode::StepTimeout => {
                "the part is hanging, usually on an unreachable service; check it or raise the step timeout"
            }
            PostCode::BusTransportFailed => {
                "check that the bus transport's server (e.g. Redis) is reachable, or boot without it"
            }
        }
    }
}

impl std::fmt::Display for PostCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for PostCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}
