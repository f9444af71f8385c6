//! One request through the CPU's route table with a trivial route (no socket): on the native
//! fast path, through a mounted axum router, and through a bare axum router for reference.
//! The gap between the last two is what the board adds to axum routes (an atomic load and a
//! matchit miss); the first shows what the native path saves.

use criterion::{Criterion, criterion_group, criterion_main};
use magmobo::axum::Router;
use magmobo::axum::body::Body;
use magmobo::axum::response::IntoResponse;
use magmobo::axum::routing::get;
use magmobo::roles::cpu::{RequestContext, RouteTable};
use tower::ServiceExt;

fn request(path: &str) -> magmobo::axum::http::Request<Body> {
    magmobo::axum::http::Request::builder()
        .uri(path)
        .body(Body::empty())
        .expect("request")
}

fn one_request(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let table = RouteTable::new();
    let app = Router::new().route("/hello", get(|| async { "hello" }));
    table.mount("bench", "/api", app.clone()).expect("mount");
    table
        .mount(
            "board",
            "/",
            Router::new().route("/health", get(|| async { "ok" })),
        )
        .expect("mount");
    table
        .mount_native("bench", "/fast/hello", |_req, _ctx| async {
            "hello".into_response()
        })
        .expect("mount native");
    let handle = table.current_handle();
    c.bench_function("cpu/native_route", |b| {
        b.to_async(&runtime).iter(|| async {
            let response = handle
                .dispatch(request("/fast/hello"), RequestContext::local())
                .await;
            assert_eq!(response.status(), 200);
        })
    });
    c.bench_function("cpu/axum_route_in_table", |b| {
        b.to_async(&runtime).iter(|| async {
            let response = handle
                .dispatch(request("/api/hello"), RequestContext::local())
                .await;
            assert_eq!(response.status(), 200);
        })
    });
    let bare = Router::new().nest("/api", app);
    c.bench_function("cpu/bare_axum_router", |b| {
        b.to_async(&runtime).iter(|| async {
            let response = bare
                .clone()
                .oneshot(request("/api/hello"))
                .await
                .expect("infallible");
            assert_eq!(response.status(), 200);
        })
    });
}

criterion_group!(benches, one_request);
criterion_main!(benches);
