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
use magmobo_core::axum::body::Body;
use magmobo_core::prelude::*;
use magmobo_core::roles::cpu::{DrainSignal, RequestContext, RouteTable};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinSet;

/// The hyper CPU. Put it in the CPU slot: `Motherboard::builder().cpu(HyperCpu::new(addr))`.
pub struct HyperCpu {
    address: SocketAddr,
    http2: bool,
    routes: RouteTable,
    open_connections: Arc<AtomicUsize>,
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
            open_connections: Arc::new(AtomicUsize::new(0)),
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
                "listening on {addr}, {} open connections",
                self.open_connections.load(Ordering::Relaxed)
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
            open_connections: self.open_connections.clone(),
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

    fn open_connections(&self) -> usize {
        self.open_connections.load(Ordering::Relaxed)
    }
}

struct AcceptLoop {
    listener: TcpListener,
    routes: magmobo_core::roles::cpu::RouterHandle,
    open_connections: Arc<AtomicUsize>,
    drain: DrainSignal,
    http2: bool,
}

/// Counts a connection as open until its task ends, however it ends. Counted per connection,
/// not per request, to keep a shared atomic off the per-request path.
struct OpenConnection(Arc<AtomicUsize>);

impl OpenConnection {
    fn new(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        OpenConnection(counter.clone())
    }
}

impl Drop for OpenConnection {
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
                    let service = request_service(self.routes.clone(), self.drain.clone(), peer);
                    let connection = builder
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .into_owned();
                    let connection = graceful.watch(connection);
                    let open = OpenConnection::new(&self.open_connections);
                    connections.spawn(async move {
                        let _open = open;
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

/// The per-connection hyper service: route with the routes current at the request's arrival,
/// and hand handlers the drain signal and the peer address.
fn request_service(
    routes: magmobo_core::roles::cpu::RouterHandle,
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
        let context = RequestContext::new(peer, drain.clone());
        let response = routes.dispatch(request.map(Body::new), context);
        async move { Ok(response.await) }
    })
}
