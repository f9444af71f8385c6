//! `/health`: every part's health as JSON, served by the board on its CPU.
//!
//! Status codes: 200 when ok or degraded (optional parts down), 503 when a component has
//! failed or the board is not running, so load balancers take the instance out only then.

use axum::Json;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use serde::Serialize;

use super::{Motherboard, PartState, Phase};
use crate::bus::BusStats;
use crate::health::{Health, HealthStatus};
use crate::slot::Slot;

/// Health of one part.
#[derive(Debug, Clone, Serialize)]
pub struct PartHealth {
    /// Unique name.
    pub name: String,
    /// The slot, for components.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slot: Option<Slot>,
    /// Health.
    #[serde(flatten)]
    pub health: Health,
}

/// Health of the whole board.
#[derive(Debug, Clone, Serialize)]
pub struct BoardHealth {
    /// Worst of the parts: failed components fail the board, failed optional parts degrade it.
    pub status: HealthStatus,
    /// Lifecycle phase.
    pub phase: Phase,
    /// Components.
    pub components: Vec<PartHealth>,
    /// Extensions.
    pub extensions: Vec<PartHealth>,
    /// Peripherals.
    pub peripherals: Vec<PartHealth>,
    /// Patrol agents.
    pub patrols: Vec<PartHealth>,
    /// Bus counters (lag included).
    pub bus: BusStats,
    /// The bus transport, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bus_transport: Option<PartHealth>,
}

fn from_state(state: &PartState) -> Option<Health> {
    match state {
        PartState::Up => None,
        PartState::Pending => Some(Health::failed("not started")),
        PartState::Failed(why) => Some(Health::failed(why.clone())),
        PartState::Skipped(why) => Some(Health::failed(format!("skipped: {why}"))),
    }
}

impl Motherboard {
    /// Asks every part for its health.
    pub async fn health(&self) -> BoardHealth {
        let phase = self.current_phase();
        let mut components = Vec::new();
        for slot in Slot::ALL {
            if let Some(component) = self.inner.slots.component(slot) {
                components.push(PartHealth {
                    name: component.component_info().name.to_string(),
                    slot: Some(slot),
                    health: component.health().await,
                });
            }
        }
        let (extensions, peripherals, patrols) = {
            let parts = self.parts();
            let extensions: Vec<_> = parts
                .extensions
                .iter()
                .map(|e| (e.info.name.to_string(), e.state.clone(), e.ext.clone()))
                .collect();
            let peripherals: Vec<_> = parts
                .peripherals
                .iter()
                .map(|p| {
                    (
                        p.info.name.to_string(),
                        p.state.clone(),
                        p.peripheral.clone(),
                    )
                })
                .collect();
            let patrols: Vec<_> = parts
                .patrols
                .iter()
                .map(|p| (p.agent.name().to_owned(), p.state.clone(), p.agent.clone()))
                .collect();
            (extensions, peripherals, patrols)
        };
        let mut ext_health = Vec::new();
        for (name, state, ext) in extensions {
            let health = match from_state(&state) {
                Some(h) => h,
                None => ext.health().await,
            };
            ext_health.push(PartHealth {
                name,
                slot: None,
                health,
            });
        }
        let mut periph_health = Vec::new();
        for (name, state, p) in peripherals {
            let health = match from_state(&state) {
                Some(h) => h,
                None => p.health().await,
            };
            periph_health.push(PartHealth {
                name,
                slot: None,
                health,
            });
        }
        let mut patrol_health = Vec::new();
        for (name, state, agent) in patrols {
            let health = match from_state(&state) {
                Some(h) => h,
                None => agent.health().await,
            };
            patrol_health.push(PartHealth {
                name,
                slot: None,
                health,
            });
        }
        let bus_transport = self
            .inner
            .bus
            .transport_health()
            .await
            .map(|(name, health)| PartHealth {
                name,
                slot: None,
                health,
            });
        let worst_component = components.iter().map(|c| c.health.status).max();
        let optional_down = ext_health
            .iter()
            .chain(&periph_health)
            .chain(&patrol_health)
            .chain(bus_transport.iter())
            .any(|p| p.health.status != HealthStatus::Ok);
        let mut status = match worst_component {
            Some(HealthStatus::Failed) => HealthStatus::Failed,
            Some(HealthStatus::Degraded) => HealthStatus::Degraded,
            _ if optional_down => HealthStatus::Degraded,
            _ => HealthStatus::Ok,
        };
        if phase != Phase::Running {
            status = HealthStatus::Failed;
        }
        BoardHealth {
            status,
            phase,
            components,
            extensions: ext_health,
            peripherals: periph_health,
            patrols: patrol_health,
            bus: self.inner.bus.stats(),
            bus_transport,
        }
    }
}

/// The board's own routes. They hold a weak reference so the CPU does not keep the board alive.
pub(crate) fn routes(board: &Motherboard) -> axum::Router {
    let weak = std::sync::Arc::downgrade(&board.inner);
    axum::Router::new().route(
        "/health",
        get(move || {
            let weak = weak.clone();
            async move {
                let Some(inner) = weak.upgrade() else {
                    return StatusCode::SERVICE_UNAVAILABLE.into_response();
                };
                let health = Motherboard { inner }.health().await;
                let code = if health.status == HealthStatus::Failed {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::OK
                };
                (code, Json(health)).into_response()
            }
        }),
    )
}
