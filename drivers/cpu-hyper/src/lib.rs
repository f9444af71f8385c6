//! The hyper CPU driver: serves a board's [`RouteTable`] over HTTP/1.1 (keep-alive) and
//! HTTP/2 (prior knowledge), with WebSocket upgrades, and drains gracefully.
//!
//! Each request is routed with the router current at its arrival, so mounting or unmounting
//! routes (hot plug) never disturbs requests already in flight. On stop the listener closes
//! at once, every connection is told to finish its current request, the [`DrainSignal`] is
//! raised for long-lived handlers, and whatever is still running at the deadline is aborted.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use magmobo_core::axum::Router;
use magmobo_core::axum::body::Body;
use magmobo_core::prelude::*;
use magmobo_core::roles::cpu::{DrainSignal, RouteTable};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tower::ServiceExt;

/// The hyper CPU. Put it in the CPU slot: `Motherboard::builder().cpu(HyperCpu::new(addr))`.
pub struct HyperCpu {
    address: SocketAddr,
    http2: bool,
    routes: RouteTable,
    in_flight: Arc<AtomicUsize>,
    server: Mutex<Option<Server>>,
}

struct Server {
    address: SocketAddr,
    stop: oneshot::Sender<Duration>,
    drain: DrainSignal,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for HyperCpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HyperCpu")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl HyperCpu {
    /// A CPU that will listen on `address` (port 0 picks a free port at boot).
    pub fn new(address: SocketAddr) -> Self {
        HyperCpu {
            address,
            http2: true,
            routes: RouteTable::new(),
            in_flight: Arc::new(AtomicUsize::new(0)),
            server: Mutex::new(None),
        }
    }

    /// Serve HTTP/1.1 only (no HTTP/2 prior-knowledge connections).
    pub fn http1_only(mut self) -> Self {
        self.http2 = false;
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Server>> {
        self.server.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn protocols(&self) -> &'static str {
        if self.http2 {
            "HTTP/1.1, HTTP/2"
        } else {
            "HTTP/1.1"
        }
    }
}

impl ComponentMeta for HyperCpu {
    fn component_info(&self) -> ComponentInfo {
        let mut info = ComponentInfo::new("HyperRouter", env!("CARGO_PKG_VERSION"), Slot::Cpu);
        info.capabilities = vec!["http1".into(), "websocket".into()];
        if self.http2 {
            info.capabilities.push("http2".into());
        }
        info
    }
}

impl Plug for HyperCpu {
    fn plug(self, board: &mut magmobo_core::board::BoardBuilder) {
        board.put_cpu(self);
    }
}

#[async_trait]
impl Component for HyperCpu {
    async fn self_test(&self) -> Result<String> {
        Ok(self.protocols().to_owned())
    }

    async fn stop(&self, mode: StopMode) -> Result<()> {
        let server = self.lock().take();
        let Some(server) = server else { return Ok(()) };
        server.drain.raise();
        // The accept loop may already be gone if it failed; then there is nothing to drain.
        let _ = server.stop.send(mode.deadline());
        let grace = mode.deadline() + Duration::from_secs(1);
        if tokio::time::timeout(grace, server.task).await.is_err() {
            tracing::warn!("HTTP server did not stop within its deadline");
        }
        Ok(())
    }

    async fn health(&self) -> Health {
        match self.local_addr() {
            Some(addr) => Health::ok().with_detail(format!(
                "listening on {addr}, {} in flight",
                self.in_flight.load(Ordering::Relaxed)
            )),
            None => Health::degraded("not listening"),
        }
    }
}

#[async_trait]
impl Cpu for HyperCpu {
    fn routes(&self) -> &RouteTable {
        &self.routes
    }

    async fn listen(&self) -> Result<SocketAddr> {
        if let Some(server) = self.lock().as_ref() {
            return Ok(server.address);
        }
        let listener = TcpListener::bind(self.address)
            .await
            .map_err(|source| Error::Io {
                context: format!("cannot listen on {}", self.address),
                source,
            })?;
        let address = listener.local_addr().map_err(|source| Error::Io {
            context: "cannot read the bound address".into(),
            source,
        })?;
        let (stop, stopped) = oneshot::channel();
        let drain = DrainSignal::new();
        let accept = AcceptLoop {
            listener,
            routes: self.routes.current_handle(),
            in_flight: self.in_flight.clone(),
            drain: drain.clone(),
            http2: self.http2,
        };
        let task = tokio::spawn(accept.run(stopped));
        *self.lock() = Some(Server {
            address,
            stop,
            drain,
            task,
        });
        tracing::info!(%address, "listening");
        Ok(address)
    }

    fn local_addr(&self) -> Option<SocketAddr> {
        self.lock().as_ref().map(|s| s.address)
    }

    fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }
}

struct AcceptLoop {
    listener: TcpListener,
    routes: magmobo_core::roles::cpu::RouterHandle,
    in_flight: Arc<AtomicUsize>,
    drain: DrainSignal,
    http2: bool,
}

/// Decrements the in-flight counter when a request's handler has answered (or was dropped).
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl AcceptLoop {
    async fn run(self, mut stopped: oneshot::Receiver<Duration>) {
        let graceful = GracefulShutdown::new();
        let mut connections = JoinSet::new();
        let mut builder = auto::Builder::new(TokioExecutor::new());
        if !self.http2 {
            builder = builder.http1_only();
        }
        let deadline = loop {
            tokio::select! {
                biased;
                deadline = &mut stopped => break deadline.unwrap_or(Duration::ZERO),
                accepted = self.listener.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(pair) => pair,
                        Err(error) => {
                            // Usually EMFILE: back off briefly instead of spinning.
                            tracing::warn!(%error, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    let service =
                        request_service(self.routes.clone(), self.in_flight.clone(), self.drain.clone(), peer);
                    let connection = builder
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .into_owned();
                    let connection = graceful.watch(connection);
                    connections.spawn(async move {
                        if let Err(error) = connection.await {
                            tracing::debug!(%peer, %error, "connection ended with an error");
                        }
                    });
                    // Reap finished connections so the set does not grow with history.
                    while connections.try_join_next().is_some() {}
                }
            }
        };
        drop(self.listener);
        let drained = tokio::time::timeout(deadline, graceful.shutdown())
            .await
            .is_ok();
        if !drained {
            tracing::warn!(
                ?deadline,
                "drain deadline reached; aborting remaining connections"
            );
        }
        connections.abort_all();
        while connections.join_next().await.is_some() {}
    }
}

/// The per-connection hyper service: route with the router current at the request's arrival,
/// count it in flight, and hand handlers the drain signal and the peer address.
fn request_service(
    routes: magmobo_core::roles::cpu::RouterHandle,
    in_flight: Arc<AtomicUsize>,
    drain: DrainSignal,
    peer: SocketAddr,
) -> impl hyper::service::Service<
    hyper::Request<Incoming>,
    Response = hyper::Response<Body>,
    Error = std::convert::Infallible,
    Future = impl Future<Output = std::result::Result<hyper::Response<Body>, std::convert::Infallible>>
             + Send,
> + Clone
+ Send
+ 'static {
    hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let router: Router = routes.current();
        in_flight.fetch_add(1, Ordering::Relaxed);
        let guard = InFlight(in_flight.clone());
        let mut request = request.map(Body::new);
        request.extensions_mut().insert(drain.clone());
        request
            .extensions_mut()
            .insert(magmobo_core::axum::extract::ConnectInfo(peer));
        async move {
            let response = router.oneshot(request).await;
            drop(guard);
            response
        }
    })
}
