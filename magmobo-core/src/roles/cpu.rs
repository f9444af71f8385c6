//! CPU: the HTTP router role, and the drain signal long-lived handlers watch. The route table
//! it serves lives in [`super::routes`].

use std::net::SocketAddr;

use async_trait::async_trait;

pub use super::routes::{
    NativeHandler, PathParams, RequestContext, RequestGuard, RequestHead, RouteTable, RouterHandle,
    RouterLayer, may_have_body,
};
use crate::Result;
use crate::part::Component;

/// The CPU slot's role.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is declared for the CPU slot but does not implement `Cpu`",
    label = "the CPU slot takes a `Cpu`",
    note = "implement `magmobo::roles::cpu::Cpu` (routes, listen, local_addr, open_connections) for `{Self}` with `#[magmobo::async_trait]`, or choose another slot"
)]
#[async_trait]
pub trait Cpu: Component {
    /// The route table this CPU serves.
    fn routes(&self) -> &RouteTable;
    /// Starts accepting connections; called once everything else is ready. Returns the bound
    /// address (useful when the configured port is 0).
    async fn listen(&self) -> Result<SocketAddr>;
    /// The bound address while listening.
    fn local_addr(&self) -> Option<SocketAddr>;
    /// Client connections open right now.
    fn open_connections(&self) -> usize;
}

/// Put into every request's extensions by the CPU. Long-lived handlers (WebSockets, streams)
/// wait on it to close cleanly when the board drains; extract it with
/// `axum::Extension<DrainSignal>`.
#[derive(Clone, Debug, Default)]
pub struct DrainSignal(tokio_util::sync::CancellationToken);

impl DrainSignal {
    /// A signal not yet raised.
    pub fn new() -> Self {
        Self::default()
    }
    /// Raises the signal (the CPU does this when it starts draining).
    pub fn raise(&self) {
        self.0.cancel();
    }
    /// Whether the board is draining.
    pub fn is_raised(&self) -> bool {
        self.0.is_cancelled()
    }
    /// Completes when the board starts draining.
    pub async fn raised(&self) {
        self.0.cancelled().await
    }
}
