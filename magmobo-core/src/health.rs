//! Health of a part: ok, degraded or failed, with a human-readable detail.

use serde::{Deserialize, Serialize};

/// The three health states, ordered from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Working as intended.
    Ok,
    /// Working with reduced function (e.g. a cache that passes through).
    Degraded,
    /// Not working.
    Failed,
}

/// A part's health with an optional detail line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// The state.
    pub status: HealthStatus,
    /// What is wrong, or a short summary when ok.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Health {
    /// Healthy, no detail.
    pub fn ok() -> Self {
        Health {
            status: HealthStatus::Ok,
            detail: None,
        }
    }
    /// Degraded with a reason.
    pub fn degraded(detail: impl Into<String>) -> Self {
        Health {
            status: HealthStatus::Degraded,
            detail: Some(detail.into()),
        }
    }
    /// Failed with a reason.
    pub fn failed(detail: impl Into<String>) -> Self {
        Health {
            status: HealthStatus::Failed,
            detail: Some(detail.into()),
        }
    }
    /// Adds or replaces the detail.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

impl Default for Health {
    fn default() -> Self {
        Health::ok()
    }
}
