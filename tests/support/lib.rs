//! Shared helpers for the integration tests: where the real services are, what to do when one
//! is missing, and small parts (components, extensions) that record what the board did.

pub mod node;
pub mod parts;
pub mod services;
