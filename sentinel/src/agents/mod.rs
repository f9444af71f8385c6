//! The standard patrol agents.

pub mod apiwatch;
pub mod authsentry;
pub mod dataflow;
pub mod sqlguard;
mod window;

pub use apiwatch::{ApiWatch, ApiWatchConfig, Shared};
pub use authsentry::{AuthSentry, AuthSentryConfig};
pub use dataflow::{DataFlow, DataFlowConfig};
pub use magmobo_core::ratelimit::{Limit, RateLimiter};
pub use sqlguard::SqlGuardAgent;
