//! The one error type of the core crate: every fallible call returns [`Result`].
//!
//! Variants are grouped by where they come from (building the board, booting it, the bus,
//! a component's own failure) so callers can tell a programming mistake from a runtime fault,
//! and every message says what to do next.

use std::time::Duration;

use crate::slot::Slot;

/// A boxed foreign error kept as a source, so driver error types never leak into our API.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in MagMoBo's core.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Two parts were registered under the same name.
    #[error(
        "two parts are named '{name}': give each component, extension and peripheral a unique name"
    )]
    DuplicateName {
        /// The name used twice.
        name: String,
    },
    /// A part needs a slot that holds no component.
    #[error(
        "'{part}' requires the {slot} slot, which is empty: add a {slot} component with `.with(...)` before `build()`"
    )]
    MissingSlot {
        /// The part that declared the requirement.
        part: String,
        /// The empty slot.
        slot: Slot,
    },
    /// A slot was given two components.
    #[error(
        "the {slot} slot already holds '{first}', so '{second}' cannot go in: a slot takes one component"
    )]
    SlotTaken {
        /// The slot.
        slot: Slot,
        /// The component already there.
        first: String,
        /// The component that was refused.
        second: String,
    },
    /// A part cannot be removed while others depend on it.
    #[error("'{name}' cannot be removed while {} depend on it: unplug them first", dependents.join(", "))]
    InUse {
        /// The part asked to be removed.
        name: String,
        /// Parts that depend on it.
        dependents: Vec<String>,
    },
    /// A part depends on another part that was never registered.
    #[error(
        "'{part}' depends on '{missing}', which is not on the board: register '{missing}' or drop the dependency"
    )]
    MissingDependency {
        /// The part that declared the dependency.
        part: String,
        /// The name nothing answers to.
        missing: String,
    },
    /// The dependency graph has a cycle.
    #[error("dependency cycle between {}: break one of these dependencies", cycle.join(" -> "))]
    DependencyCycle {
        /// The parts on the cycle, in order, first repeated at the end.
        cycle: Vec<String>,
    },
    /// An extension or peripheral asked for a handle it did not declare.
    #[error(
        "'{part}' asked for {capability} but did not declare it: add \"{capability}\" to its capabilities"
    )]
    CapabilityNotDeclared {
        /// The extension or peripheral.
        part: String,
        /// The capability it would have needed.
        capability: String,
    },
    /// A call was made in a lifecycle phase where it is not allowed.
    #[error("cannot {action} while the board is {phase}")]
    WrongPhase {
        /// What was attempted.
        action: &'static str,
        /// The phase the board was in.
        phase: crate::board::Phase,
    },
    /// No part answers to that name.
    #[error("no part named '{name}' is on the board")]
    UnknownPart {
        /// The name asked for.
        name: String,
    },
    /// The boot stopped; the report says where and why.
    #[error("{}", .0.failure_line())]
    Boot(Box<crate::bios::BootReport>),
    /// A bus request got no answer in time.
    #[error("no reply on '{topic}' within {timeout:?}: is the responder running and subscribed?")]
    BusTimeout {
        /// The request topic.
        topic: String,
        /// How long we waited.
        timeout: Duration,
    },
    /// A bus request found nobody responding on its topic.
    #[error("nobody responds on '{topic}': register a responder with `bus.respond(...)`")]
    NoResponder {
        /// The request topic.
        topic: String,
    },
    /// A topic or pattern is malformed.
    #[error("invalid bus topic '{topic}': {reason}")]
    InvalidTopic {
        /// The offending topic.
        topic: String,
        /// Why it is invalid.
        reason: &'static str,
    },
    /// An event payload could not be (de)serialised.
    #[error("bus payload for '{topic}' does not match the expected type: {source}")]
    Payload {
        /// Topic of the event.
        topic: String,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
    /// A route could not be mounted.
    #[error("cannot mount '{prefix}' for '{owner}': {reason}")]
    Mount {
        /// The part mounting routes.
        owner: String,
        /// The path prefix.
        prefix: String,
        /// Why it failed.
        reason: String,
    },
    /// A component, extension or peripheral failed on its own terms.
    #[error("{part}: {message}")]
    Part {
        /// Which part failed.
        part: String,
        /// What it says went wrong and what to do.
        message: String,
        /// The underlying error, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// A step ran past its deadline.
    #[error("{what} did not finish within {after:?}")]
    Timeout {
        /// What was running.
        what: String,
        /// The deadline.
        after: Duration,
    },
    /// An I/O error, e.g. binding a port.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Builds a [`Error::Part`] error from a part name and a message.
    pub fn part(part: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Part {
            part: part.into(),
            message: message.into(),
            source: None,
        }
    }

    /// Builds a [`Error::Part`] error that keeps a foreign error as its source.
    pub fn part_with(
        part: impl Into<String>,
        message: impl Into<String>,
        source: impl Into<BoxError>,
    ) -> Self {
        Error::Part {
            part: part.into(),
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// True when trying again later may succeed (timeouts, I/O, a part's own failure).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::BusTimeout { .. }
                | Error::Timeout { .. }
                | Error::Io { .. }
                | Error::Part { .. }
        )
    }
}

/// The core crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
