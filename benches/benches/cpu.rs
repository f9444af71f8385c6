//! One request through the CPU's route table with a trivial route (no socket), next to the
//! same request through a bare axum router: the difference is what the board adds per request
//! (an atomic router load and clone).

use criterion::{Criterion, criterion_group, criterion_main};
use magmobo::axum::Router;
use magmobo::axum::body::Body;
use magmobo::axum::routing::get;
use magmobo::roles::cpu::RouteTable;
use tower::ServiceExt;

fn request() -> magmobo::axum::http::Request<Body> {
    magmobo::axum::http::Request::builder().uri("/api/hello").body(Body::empty()).expect("request")
}

fn one_request(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let table = RouteTable::new();
    let app = Router::new().route("/hello", get(|| async { "hello" }));
    table.mount("bench", "/api", app.clone()).expect("mount");
    table.mount("board", "/", Router::new().route("/health", get(|| async { "ok" }))).expect("mount");
    let handle = table.current_handle();
    c.bench_function("cpu/route_table_request", |b| {
        b.to_async(&runtime).iter(|| async {
            let response = handle.current().oneshot(request()).await.expect("infallible");
            assert_eq!(response.status(), 200);
        })
    });
    let bare = Router::new().nest("/api", app);
    c.bench_function("cpu/bare_axum_request", |b| {
        b.to_async(&runtime).iter(|| async {
            let response = bare.clone().oneshot(request()).await.expect("infallible");
            assert_eq!(response.status(), 200);
        })
    });
}

criterion_group!(benches, one_request);
criterion_main!(benches);
