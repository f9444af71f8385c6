//! The CPU's route table: what extensions mount, compiled into one immutable dispatcher that
//! is swapped atomically on every change, so in-flight requests finish on the dispatcher they
//! started with (hot plug without failures).
//!
//! Two kinds of mounts:
//! - **axum routers** under a prefix: the ergonomic path (extractors, WebSockets, tower
//!   layers). Global layers added with [`RouteTable::layer`] wrap these.
//! - **native handlers** on a path pattern: the fast path for hot endpoints. A native handler
//!   is called through `&self` with no per-request clone of a boxed service, which is what
//!   axum's `Route` costs (about 10% of a trivial request's throughput on our load run).
//!   Native routes are matched first and do not pass through tower layers.

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use axum::Router;
use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures::future::{BoxFuture, Either};
use tower::ServiceExt;

use super::cpu::DrainSignal;
use crate::{Error, Result};

/// A function applied to the axum part of the table on every rebuild (e.g. a tower layer).
pub type RouterLayer = Arc<dyn Fn(Router) -> Router + Send + Sync>;

/// Where a request came from and how to learn that the board is draining. Native handlers
/// receive it as an argument; axum handlers find both in the request's extensions
/// (`ConnectInfo<SocketAddr>` and [`DrainSignal`]).
#[derive(Clone, Debug)]
pub struct RequestContext {
    /// The client's address.
    pub peer: SocketAddr,
    /// Raised when the board starts draining.
    pub drain: DrainSignal,
    /// When the request reached the CPU (for latency metrics in response hooks).
    pub received: std::time::Instant,
}

impl RequestContext {
    /// A context for requests that did not come through a socket (tests, in-process calls).
    pub fn local() -> Self {
        RequestContext::new(SocketAddr::from(([127, 0, 0, 1], 0)), DrainSignal::new())
    }

    /// A context for a request from `peer`, received now.
    pub fn new(peer: SocketAddr, drain: DrainSignal) -> Self {
        RequestContext {
            peer,
            drain,
            received: std::time::Instant::now(),
        }
    }
}

/// A handler on the native fast path.
pub trait NativeHandler: Send + Sync + 'static {
    /// Answers one request.
    fn call(
        &self,
        request: http::Request<Body>,
        context: RequestContext,
    ) -> BoxFuture<'static, Response>;
}

impl<F, Fut> NativeHandler for F
where
    F: Fn(http::Request<Body>, RequestContext) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response> + Send + 'static,
{
    fn call(
        &self,
        request: http::Request<Body>,
        context: RequestContext,
    ) -> BoxFuture<'static, Response> {
        Box::pin(self(request, context))
    }
}

/// Looks at every request before it is routed (native and axum routes alike) and may answer
/// it instead, e.g. with a 403. Synchronous on purpose: guards run inline on every request
/// and must stay in microseconds; anything slow belongs on the bus, off the request path.
///
/// `check` sees the head only. A guard that also wants the body says so per request with
/// [`body_limit`](RequestGuard::body_limit); the CPU then buffers up to that many bytes,
/// calls [`check_body`](RequestGuard::check_body) and hands the same bytes on to the handler,
/// so requests without a body (or whose guards want none) never wait for one. A guard that
/// wants to see how requests ended implements [`on_response`](RequestGuard::on_response).
/// Every hook but `check` defaults to doing nothing.
pub trait RequestGuard: Send + Sync + 'static {
    /// `None` lets the request through; `Some(response)` answers it without routing.
    fn check(&self, request: &http::request::Parts, context: &RequestContext) -> Option<Response>;

    /// How many body bytes this guard wants to read before the request is routed (0: none).
    /// Asked only for requests that `check` let through and that may carry a body.
    fn body_limit(&self, _request: &http::request::Parts) -> usize {
        0
    }

    /// Sees the buffered body (`None` when it was longer than the limit, so it was passed on
    /// unread) of a request for which [`body_limit`](RequestGuard::body_limit) was above 0.
    fn check_body(
        &self,
        _request: &http::request::Parts,
        _body: Option<&Bytes>,
        _context: &RequestContext,
    ) -> Option<Response> {
        None
    }

    /// Whether [`on_response`](RequestGuard::on_response) should be called; asked once when
    /// the route table is compiled, so guards that do not watch cost nothing per request.
    fn watches_responses(&self) -> bool {
        false
    }

    /// Sees the head of every response (guards' own answers included) with the request's head.
    fn on_response(
        &self,
        _request: &RequestHead,
        _response: &http::response::Parts,
        _context: &RequestContext,
    ) {
    }
}

/// The head of a request, kept for [`RequestGuard::on_response`] after the handler took the
/// request itself.
#[derive(Debug, Clone)]
pub struct RequestHead {
    /// The method.
    pub method: http::Method,
    /// The URI (path and query).
    pub uri: http::Uri,
    /// The request headers.
    pub headers: http::HeaderMap,
}

/// Path parameters of a native route (`/items/{id}` → `[("id", "7")]`), put in the request's
/// extensions when the pattern has any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathParams(pub Vec<(String, String)>);

impl PathParams {
    /// The value of parameter `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

struct Mount {
    owner: String,
    prefix: String,
    router: Router,
}

struct Native {
    owner: String,
    pattern: String,
    handler: Arc<dyn NativeHandler>,
}

#[derive(Default)]
struct Table {
    mounts: Vec<Mount>,
    natives: Vec<Native>,
    layers: Vec<(String, RouterLayer)>,
    guards: Vec<(String, Arc<dyn RequestGuard>)>,
}

/// The immutable result of compiling a [`Table`]: what serves requests.
struct Dispatcher {
    guards: Vec<Arc<dyn RequestGuard>>,
    watchers: Vec<Arc<dyn RequestGuard>>,
    native: matchit::Router<Arc<dyn NativeHandler>>,
    has_native: bool,
    axum: Router,
}

impl Default for Dispatcher {
    fn default() -> Self {
        Dispatcher {
            guards: Vec::new(),
            watchers: Vec::new(),
            native: matchit::Router::new(),
            has_native: false,
            axum: Router::new(),
        }
    }
}

/// Mounted routers, native handlers and global layers.
#[derive(Default)]
pub struct RouteTable {
    table: Mutex<Table>,
    current: Arc<ArcSwap<Dispatcher>>,
}

impl std::fmt::Debug for RouteTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteTable")
            .field("mounts", &self.mounts())
            .finish()
    }
}

/// A cheap, cloneable read handle on a [`RouteTable`], for serving loops.
#[derive(Clone)]
pub struct RouterHandle(Arc<ArcSwap<Dispatcher>>);

impl std::fmt::Debug for RouterHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RouterHandle")
    }
}

impl RouterHandle {
    /// Routes one request with the dispatcher current at its arrival.
    pub fn dispatch(
        &self,
        request: http::Request<Body>,
        context: RequestContext,
    ) -> impl std::future::Future<Output = Response> + Send + use<> {
        let dispatcher = self.0.load_full();
        if dispatcher.watchers.is_empty() {
            return Either::Left(guarded(dispatcher, request, context));
        }
        let head = RequestHead {
            method: request.method().clone(),
            uri: request.uri().clone(),
            headers: request.headers().clone(),
        };
        let watched: BoxFuture<'static, Response> = Box::pin(async move {
            let watchers = dispatcher.watchers.clone();
            let answer = guarded(dispatcher, request, context.clone()).await;
            let (parts, body) = answer.into_parts();
            for watcher in &watchers {
                watcher.on_response(&head, &parts, &context);
            }
            Response::from_parts(parts, body)
        });
        Either::Right(watched)
    }
}

/// Runs the guards (reading the body first when one asks for it), then routes.
fn guarded(
    dispatcher: Arc<Dispatcher>,
    request: http::Request<Body>,
    context: RequestContext,
) -> BoxFuture<'static, Response> {
    if dispatcher.guards.is_empty() {
        return route(&dispatcher, request, context);
    }
    let (parts, body) = request.into_parts();
    if let Some(answer) = dispatcher
        .guards
        .iter()
        .find_map(|g| g.check(&parts, &context))
    {
        return Box::pin(std::future::ready(answer));
    }
    let limit = if may_have_body(&parts) {
        dispatcher
            .guards
            .iter()
            .map(|g| g.body_limit(&parts))
            .max()
            .unwrap_or(0)
    } else {
        0
    };
    if limit == 0 {
        return route(&dispatcher, http::Request::from_parts(parts, body), context);
    }
    Box::pin(async move {
        let (read, body) = read_body(body, limit).await;
        if let Some(answer) = dispatcher.guards.iter().find_map(|g| {
            let wanted = g.body_limit(&parts);
            let seen = read
                .as_ref()
                .filter(|bytes| wanted > 0 && bytes.len() <= wanted);
            (wanted > 0)
                .then(|| g.check_body(&parts, seen, &context))
                .flatten()
        }) {
            return answer;
        }
        route(&dispatcher, http::Request::from_parts(parts, body), context).await
    })
}

/// Whether a request announces a body: a non-zero `content-length` or a transfer encoding.
/// Only such requests are asked for [`RequestGuard::body_limit`].
pub fn may_have_body(parts: &http::request::Parts) -> bool {
    if parts.headers.contains_key(http::header::TRANSFER_ENCODING) {
        return true;
    }
    parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() != "0")
}

/// Reads at most `limit` bytes of `body`. A body that ends within the limit comes back whole
/// (and as the handler's body); a longer one comes back `None`, with the chunks already read
/// put in front of the rest so the handler still sees every byte.
async fn read_body(body: Body, limit: usize) -> (Option<Bytes>, Body) {
    use futures::StreamExt;
    let mut stream = body.into_data_stream();
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut total = 0usize;
    loop {
        match stream.next().await {
            None => break,
            Some(Ok(chunk)) => {
                total += chunk.len();
                chunks.push(chunk);
                if total > limit {
                    let read = futures::stream::iter(chunks.into_iter().map(Ok::<_, axum::Error>));
                    return (None, Body::from_stream(read.chain(stream)));
                }
            }
            Some(Err(error)) => {
                // Hand the failure on: the handler answers it the way it answers any broken body.
                let read = futures::stream::iter(chunks.into_iter().map(Ok::<_, axum::Error>));
                let failed = futures::stream::once(async move { Err(error) });
                return (None, Body::from_stream(read.chain(failed)));
            }
        }
    }
    let bytes = match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.swap_remove(0),
        _ => {
            let mut joined = bytes::BytesMut::with_capacity(total);
            for chunk in &chunks {
                joined.extend_from_slice(chunk);
            }
            joined.freeze()
        }
    };
    (Some(bytes.clone()), Body::from(bytes))
}

/// Routes a request that passed the guards: native handlers first, then axum.
fn route(
    dispatcher: &Dispatcher,
    mut request: http::Request<Body>,
    context: RequestContext,
) -> BoxFuture<'static, Response> {
    let native = if dispatcher.has_native {
        dispatcher
            .native
            .at(request.uri().path())
            .ok()
            .map(|matched| {
                let params = (!matched.params.is_empty()).then(|| {
                    let pairs = matched
                        .params
                        .iter()
                        .map(|(k, v)| (k.to_owned(), v.to_owned()));
                    PathParams(pairs.collect())
                });
                (matched.value, params)
            })
    } else {
        None
    };
    if let Some((handler, params)) = native {
        if let Some(params) = params {
            request.extensions_mut().insert(params);
        }
        return handler.call(request, context);
    }
    let extensions = request.extensions_mut();
    extensions.insert(axum::extract::ConnectInfo(context.peer));
    extensions.insert(context.drain);
    let router = dispatcher.axum.clone();
    Box::pin(async move {
        match router.oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    })
}

impl RouteTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// A handle that always dispatches with the current routes.
    pub fn current_handle(&self) -> RouterHandle {
        RouterHandle(self.current.clone())
    }

    /// Routes one request with the current routes (convenient in tests: no socket needed).
    pub async fn dispatch(&self, request: http::Request<Body>) -> Response {
        self.current_handle()
            .dispatch(request, RequestContext::local())
            .await
    }

    /// Mounts `router` under `prefix` (`/` merges at the root) on behalf of `owner`.
    /// Conflicting routes are an error, and the table is left as it was.
    pub fn mount(&self, owner: &str, prefix: &str, router: Router) -> Result<()> {
        let fail = |reason: String| mount_error(owner, prefix, reason);
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
        self.publish(&mut table, |t| {
            t.mounts.pop();
        })
        .map_err(fail)
    }

    /// Routes requests whose path matches `pattern` (matchit syntax: `/items/{id}`,
    /// `/files/{*rest}`) to `handler`, ahead of axum routes and outside tower layers.
    pub fn mount_native(
        &self,
        owner: &str,
        pattern: &str,
        handler: impl NativeHandler,
    ) -> Result<()> {
        let mut table = self.lock();
        table.natives.push(Native {
            owner: owner.into(),
            pattern: pattern.into(),
            handler: Arc::new(handler),
        });
        self.publish(&mut table, |t| {
            t.natives.pop();
        })
        .map_err(|reason| mount_error(owner, pattern, reason))
    }

    /// Adds a guard that sees every request before routing (see [`RequestGuard`]). Guards run
    /// in the order added; the first to answer wins.
    pub fn guard(&self, owner: &str, guard: impl RequestGuard) -> Result<()> {
        let mut table = self.lock();
        table.guards.push((owner.into(), Arc::new(guard)));
        self.publish(&mut table, |t| {
            t.guards.pop();
        })
        .map_err(|reason| mount_error(owner, "*", reason))
    }

    /// Removes every mount, native route, layer and guard of `owner`; returns how many mounts
    /// and native routes were removed.
    pub fn unmount(&self, owner: &str) -> usize {
        let mut table = self.lock();
        let before = table.mounts.len() + table.natives.len();
        table.mounts.retain(|m| m.owner != owner);
        table.natives.retain(|n| n.owner != owner);
        table.layers.retain(|(o, _)| o != owner);
        table.guards.retain(|(o, _)| o != owner);
        let removed = before - table.mounts.len() - table.natives.len();
        // Removing routes cannot create a conflict; if a rebuild still failed, the previous
        // dispatcher stays, which is better than serving nothing.
        let _ = self.publish(&mut table, |_| {});
        removed
    }

    /// Adds a function applied to the axum routes on every rebuild. Layers apply in the order
    /// added, so the last one added sees requests first.
    pub fn layer_with(&self, owner: &str, layer: RouterLayer) -> Result<()> {
        let mut table = self.lock();
        table.layers.push((owner.into(), layer));
        self.publish(&mut table, |t| {
            t.layers.pop();
        })
        .map_err(|reason| mount_error(owner, "*", reason))
    }

    /// Adds a tower layer (CORS, compression, tracing, body limits...) to the axum routes, the
    /// way `axum::Router::layer` does.
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

    /// `(owner, prefix or pattern)` of every mount and native route, in mount order.
    pub fn mounts(&self) -> Vec<(String, String)> {
        let table = self.lock();
        let mounts = table
            .mounts
            .iter()
            .map(|m| (m.owner.clone(), m.prefix.clone()));
        let natives = table
            .natives
            .iter()
            .map(|n| (n.owner.clone(), n.pattern.clone()));
        mounts.chain(natives).collect()
    }

    /// Compiles the table and swaps it in; on failure undoes the last change with `undo`.
    fn publish(
        &self,
        table: &mut Table,
        undo: impl FnOnce(&mut Table),
    ) -> std::result::Result<(), String> {
        match compile(table) {
            Ok(dispatcher) => {
                self.current.store(Arc::new(dispatcher));
                Ok(())
            }
            Err(reason) => {
                undo(table);
                Err(reason)
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn mount_error(owner: &str, prefix: &str, reason: String) -> Error {
    Error::Mount {
        owner: owner.to_owned(),
        prefix: prefix.to_owned(),
        reason,
    }
}

/// Builds the dispatcher. axum panics on conflicting routes; we turn that into an error so a
/// bad extension fails its own mount instead of taking the server down.
fn compile(table: &Table) -> std::result::Result<Dispatcher, String> {
    let mut native = matchit::Router::new();
    for entry in &table.natives {
        native
            .insert(entry.pattern.clone(), entry.handler.clone())
            .map_err(|e| e.to_string())?;
    }
    let axum = std::panic::catch_unwind(AssertUnwindSafe(|| {
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
    }))
    .map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "the routes conflict with routes already mounted".to_owned())
    })?;
    Ok(Dispatcher {
        guards: table.guards.iter().map(|(_, g)| g.clone()).collect(),
        watchers: table
            .guards
            .iter()
            .filter(|(_, g)| g.watches_responses())
            .map(|(_, g)| g.clone())
            .collect(),
        has_native: !table.natives.is_empty(),
        native,
        axum,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::response::IntoResponse;
    use axum::routing::get;

    async fn get_path(table: &RouteTable, path: &str) -> (u16, String) {
        let request = http::Request::builder()
            .uri(path)
            .body(Body::empty())
            .unwrap();
        let response = table.dispatch(request).await;
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&bytes).into_owned())
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
        assert_eq!(get_path(&table, "/a/x").await, (200, "x".into()));
        assert_eq!(get_path(&table, "/health").await.0, 200);
        assert_eq!(table.unmount("a"), 1);
        assert_eq!(get_path(&table, "/a/x").await.0, 404);
        assert_eq!(get_path(&table, "/health").await.0, 200);
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
        assert_eq!(get_path(&table, "/x").await, (200, "a".into()));
        assert!(table.mount("c", "/a", Router::new()).is_ok());
        assert!(
            table.mount("d", "/a", Router::new()).is_err(),
            "same prefix, other owner"
        );
        assert!(table.mount("e", "no-slash", Router::new()).is_err());
    }

    #[tokio::test]
    async fn guards_see_every_request_first_and_leave_with_their_owner() {
        struct NoSecrets;
        impl RequestGuard for NoSecrets {
            fn check(
                &self,
                request: &http::request::Parts,
                _: &RequestContext,
            ) -> Option<Response> {
                let blocked = request.uri.query().is_some_and(|q| q.contains("secret"));
                blocked.then(|| (http::StatusCode::FORBIDDEN, "blocked").into_response())
            }
        }
        let table = RouteTable::new();
        table
            .mount("a", "/", Router::new().route("/x", get(|| async { "x" })))
            .unwrap();
        table
            .mount_native("n", "/fast", |_req: http::Request<Body>, _ctx| async {
                "fast".into_response()
            })
            .unwrap();
        table.guard("sentinel", NoSecrets).unwrap();
        assert_eq!(get_path(&table, "/x?a=1").await, (200, "x".into()));
        assert_eq!(
            get_path(&table, "/x?secret=1").await,
            (403, "blocked".into())
        );
        assert_eq!(
            get_path(&table, "/fast?secret=1").await,
            (403, "blocked".into())
        );
        table.unmount("sentinel");
        assert_eq!(
            get_path(&table, "/fast?secret=1").await,
            (200, "fast".into())
        );
    }

    #[tokio::test]
    async fn guards_can_read_bodies_and_watch_responses() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        struct BodyGuard {
            not_found: Arc<AtomicUsize>,
        }
        impl RequestGuard for BodyGuard {
            fn check(&self, _: &http::request::Parts, _: &RequestContext) -> Option<Response> {
                None
            }
            fn body_limit(&self, _: &http::request::Parts) -> usize {
                16
            }
            fn check_body(
                &self,
                _: &http::request::Parts,
                body: Option<&Bytes>,
                _: &RequestContext,
            ) -> Option<Response> {
                let evil = body.is_some_and(|b| b.windows(4).any(|w| w == b"evil"));
                evil.then(|| (http::StatusCode::FORBIDDEN, "no").into_response())
            }
            fn watches_responses(&self) -> bool {
                true
            }
            fn on_response(
                &self,
                _: &RequestHead,
                response: &http::response::Parts,
                _: &RequestContext,
            ) {
                if response.status == http::StatusCode::NOT_FOUND {
                    self.not_found.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        let table = RouteTable::new();
        let echo = axum::routing::post(|body: String| async move { body });
        table
            .mount("a", "/", Router::new().route("/echo", echo))
            .unwrap();
        let not_found = Arc::new(AtomicUsize::new(0));
        table
            .guard(
                "g",
                BodyGuard {
                    not_found: not_found.clone(),
                },
            )
            .unwrap();
        let post = |body: &'static str| {
            http::Request::builder()
                .method("POST")
                .uri("/echo")
                .header("content-length", body.len())
                .body(Body::from(body))
                .unwrap()
        };
        let read = |response: Response| async move {
            let status = response.status().as_u16();
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .unwrap();
            (status, String::from_utf8_lossy(&bytes).into_owned())
        };
        assert_eq!(
            read(table.dispatch(post("hello")).await).await,
            (200, "hello".into())
        );
        assert_eq!(read(table.dispatch(post("an evil one")).await).await.0, 403);
        let long = "evil but longer than the limit, so passed on unread";
        assert_eq!(
            read(table.dispatch(post(long)).await).await,
            (200, long.into())
        );
        assert_eq!(get_path(&table, "/missing").await.0, 404);
        assert_eq!(not_found.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn native_routes_win_carry_params_and_unmount_with_their_owner() {
        let table = RouteTable::new();
        table
            .mount(
                "axum",
                "/",
                Router::new().route("/items/{id}", get(|| async { "axum" })),
            )
            .unwrap();
        table
            .mount_native(
                "fast",
                "/items/{id}",
                |req: http::Request<Body>, _ctx| async move {
                    let id = req
                        .extensions()
                        .get::<PathParams>()
                        .and_then(|p| p.get("id"))
                        .map(str::to_owned);
                    format!("native {}", id.unwrap_or_default()).into_response()
                },
            )
            .unwrap();
        assert_eq!(get_path(&table, "/items/7").await, (200, "native 7".into()));
        let dup = table.mount_native(
            "other",
            "/items/{id}",
            |_req: http::Request<Body>, _ctx| async { "dup".into_response() },
        );
        assert!(
            dup.is_err(),
            "a second native handler on the same pattern must be refused"
        );
        assert_eq!(table.unmount("fast"), 1);
        assert_eq!(get_path(&table, "/items/7").await, (200, "axum".into()));
    }
}
