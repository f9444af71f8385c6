//! CPU: the HTTP router. Extensions mount axum routers under a prefix; the CPU driver serves
//! the combined router and swaps it atomically when something is mounted or unmounted, so
//! in-flight requests finish on the router they started with (hot plug without failures).

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use axum::Router;

use crate::part::Component;
use crate::{Error, Result};

/// A function applied to the whole router on every rebuild (e.g. adds a tower layer).
pub type RouterLayer = Arc<dyn Fn(Router) -> Router + Send + Sync>;

/// The CPU slot's role.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is declared for the CPU slot but does not implement `Cpu`",
    label = "the CPU slot takes a `Cpu`",
    note = "implement `magmobo::roles::cpu::Cpu` (routes, listen, local_addr, in_flight) for `{Self}` with `#[magmobo::async_trait]`, or choose another slot"
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
    /// Requests being served right now.
    fn in_flight(&self) -> usize;
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

struct Mount {
    owner: String,
    prefix: String,
    router: Router,
}

#[derive(Default)]
struct Table {
    mounts: Vec<Mount>,
    layers: Vec<(String, RouterLayer)>,
}

/// Mounted routers and global layers, combined into one router that is swapped atomically.
pub struct RouteTable {
    table: Mutex<Table>,
    current: Arc<ArcSwap<Router>>,
}

impl Default for RouteTable {
    fn default() -> Self {
        RouteTable {
            table: Mutex::new(Table::default()),
            current: Arc::new(ArcSwap::from_pointee(Router::new())),
        }
    }
}

/// A cheap, cloneable read handle on a [`RouteTable`]'s current router, for the serving loop.
#[derive(Clone)]
pub struct RouterHandle(Arc<ArcSwap<Router>>);

impl RouterHandle {
    /// The router to serve the next request with.
    pub fn current(&self) -> Router {
        Router::clone(&self.0.load())
    }
}

impl std::fmt::Debug for RouterHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RouterHandle")
    }
}

impl std::fmt::Debug for RouteTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let table = self.lock();
        let mounts: Vec<_> = table.mounts.iter().map(|m| (&m.owner, &m.prefix)).collect();
        f.debug_struct("RouteTable")
            .field("mounts", &mounts)
            .finish()
    }
}

impl RouteTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// The router to serve the next request with. Cheap: an `Arc` load and clone.
    pub fn current(&self) -> Router {
        Router::clone(&self.current.load())
    }

    /// A handle that always sees the current router, for serving loops.
    pub fn current_handle(&self) -> RouterHandle {
        RouterHandle(self.current.clone())
    }

    /// Mounts `router` under `prefix` (`/` merges at the root) on behalf of `owner`.
    /// Conflicting routes are an error, and the table is left as it was.
    pub fn mount(&self, owner: &str, prefix: &str, router: Router) -> Result<()> {
        let fail = |reason: String| Error::Mount {
            owner: owner.to_owned(),
            prefix: prefix.to_owned(),
            reason,
        };
        if !prefix.starts_with('/') {
            return Err(fail("a prefix starts with '/'".into()));
        }
        if prefix.len() > 1 && prefix.ends_with('/') {
            return Err(fail("a prefix does not end with '/'".into()));
        }
        let mut table = self.lock();
        if let Some(other) = table
            .mounts
            .iter()
            .find(|m| m.prefix == prefix && prefix != "/")
        {
            return Err(fail(format!(
                "'{}' already mounted routes there",
                other.owner
            )));
        }
        table.mounts.push(Mount {
            owner: owner.into(),
            prefix: prefix.into(),
            router,
        });
        match build(&table) {
            Ok(router) => {
                self.current.store(Arc::new(router));
                Ok(())
            }
            Err(reason) => {
                table.mounts.pop();
                Err(fail(reason))
            }
        }
    }

    /// Removes every mount and layer of `owner`; returns how many mounts were removed.
    pub fn unmount(&self, owner: &str) -> usize {
        let mut table = self.lock();
        let before = table.mounts.len();
        table.mounts.retain(|m| m.owner != owner);
        table.layers.retain(|(o, _)| o != owner);
        let removed = before - table.mounts.len();
        // Removing routes cannot create a conflict, so a rebuild failure is impossible here;
        // keep the old router if it somehow happens rather than serve nothing.
        if let Ok(router) = build(&table) {
            self.current.store(Arc::new(router));
        }
        removed
    }

    /// Adds a layer applied to the whole router (CORS, compression, tracing, body limits...).
    /// Layers apply in the order added, so the last one added sees requests first.
    pub fn layer_with(&self, owner: &str, layer: RouterLayer) -> Result<()> {
        let mut table = self.lock();
        table.layers.push((owner.into(), layer));
        match build(&table) {
            Ok(router) => {
                self.current.store(Arc::new(router));
                Ok(())
            }
            Err(reason) => {
                table.layers.pop();
                Err(Error::Mount {
                    owner: owner.into(),
                    prefix: "*".into(),
                    reason,
                })
            }
        }
    }

    /// Adds a tower layer to the whole router, the way `axum::Router::layer` does.
    pub fn layer<L>(&self, owner: &str, layer: L) -> Result<()>
    where
        L: tower::Layer<axum::routing::Route> + Clone + Send + Sync + 'static,
        L::Service: tower::Service<axum::extract::Request> + Clone + Send + Sync + 'static,
        <L::Service as tower::Service<axum::extract::Request>>::Response:
            axum::response::IntoResponse + 'static,
        <L::Service as tower::Service<axum::extract::Request>>::Error:
            Into<std::convert::Infallible> + 'static,
        <L::Service as tower::Service<axum::extract::Request>>::Future: Send + 'static,
    {
        self.layer_with(
            owner,
            Arc::new(move |router: Router| router.layer(layer.clone())),
        )
    }

    /// `(owner, prefix)` of every mount, in mount order.
    pub fn mounts(&self) -> Vec<(String, String)> {
        self.lock()
            .mounts
            .iter()
            .map(|m| (m.owner.clone(), m.prefix.clone()))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Combines mounts and layers. axum panics on conflicting routes; we turn that into an error
/// so a bad extension fails its own mount instead of taking the server down.
fn build(table: &Table) -> std::result::Result<Router, String> {
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let mut router = Router::new();
        for mount in &table.mounts {
            router = if mount.prefix == "/" {
                router.merge(mount.router.clone())
            } else {
                router.nest(&mount.prefix, mount.router.clone())
            };
        }
        for (_, layer) in &table.layers {
            router = layer(router);
        }
        router
    }));
    result.map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "the routes conflict with routes already mounted".to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    async fn status(table: &RouteTable, path: &str) -> u16 {
        let req = http::Request::builder()
            .uri(path)
            .body(Body::empty())
            .unwrap();
        table
            .current()
            .oneshot(req)
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    #[tokio::test]
    async fn mount_and_unmount_change_what_is_served() {
        let table = RouteTable::new();
        table
            .mount("a", "/a", Router::new().route("/x", get(|| async { "x" })))
            .unwrap();
        table
            .mount(
                "root",
                "/",
                Router::new().route("/health", get(|| async { "ok" })),
            )
            .unwrap();
        assert_eq!(status(&table, "/a/x").await, 200);
        assert_eq!(status(&table, "/health").await, 200);
        assert_eq!(table.unmount("a"), 1);
        assert_eq!(status(&table, "/a/x").await, 404);
        assert_eq!(status(&table, "/health").await, 200);
    }

    #[tokio::test]
    async fn conflicting_routes_fail_the_mount_and_keep_the_table() {
        let table = RouteTable::new();
        table
            .mount("a", "/", Router::new().route("/x", get(|| async { "a" })))
            .unwrap();
        let err = table.mount("b", "/", Router::new().route("/x", get(|| async { "b" })));
        let message = err.expect_err("conflict").to_string();
        assert!(message.contains("'b'"), "{message}");
        assert_eq!(table.mounts().len(), 1);
        assert_eq!(status(&table, "/x").await, 200);
        assert!(table.mount("c", "/a", Router::new()).is_ok());
        assert!(
            table.mount("d", "/a", Router::new()).is_err(),
            "same prefix, other owner"
        );
        assert!(table.mount("e", "no-slash", Router::new()).is_err());
    }
}
