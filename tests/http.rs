//! The board over real sockets with the hyper CPU: hot plug under load, graceful drain,
//! `/health`, HTTP/2, WebSocket close on drain, and a port already in use.

// Tests unwrap freely: a panic with the value is the clearest failure.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use magmobo::axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use magmobo::axum::routing::get;
use magmobo::axum::{Extension as AxumExtension, Router};
use magmobo::bios::PostCode;
use magmobo::cpu::HyperCpu;
use magmobo::prelude::*;
use magmobo::roles::cpu::DrainSignal;
use magmobo_integration_tests::parts::{Journal, TestExtension};

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn slow_router(delay: Duration) -> Router {
    Router::new()
        .route("/ping", get(|| async { "pong" }))
        .route(
            "/slow",
            get(move || async move {
                tokio::time::sleep(delay).await;
                "finally"
            }),
        )
}

async fn boot_with(extensions: Vec<TestExtension>) -> (Motherboard, String) {
    let mut builder = Motherboard::builder().with(HyperCpu::new(any_port()));
    for ext in extensions {
        builder = builder.extension(ext);
    }
    let board = builder.build().unwrap();
    let report = board.boot().await.unwrap();
    let base = report.listening.clone().unwrap();
    (board, base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_plugging_under_load_fails_no_request() {
    let j = Journal::default();
    let steady = TestExtension::new("steady", &j)
        .capability(caps::CPU_MOUNT)
        .route("/steady", slow_router(Duration::from_millis(5)));
    let (board, base) = boot_with(vec![steady]).await;
    let client = reqwest::Client::new();
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let steady_ok = Arc::new(AtomicUsize::new(0));
    let hot_ok = Arc::new(AtomicUsize::new(0));
    let hot_missing = Arc::new(AtomicUsize::new(0));

    let mut load = Vec::new();
    for worker in 0..8 {
        let (client, base, stop) = (client.clone(), base.clone(), stop.clone());
        let (failures, steady_ok, hot_ok, hot_missing) = (
            failures.clone(),
            steady_ok.clone(),
            hot_ok.clone(),
            hot_missing.clone(),
        );
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let path = if worker % 2 == 0 {
                    "/steady/ping"
                } else {
                    "/hot/slow"
                };
                match client.get(format!("{base}{path}")).send().await {
                    Ok(r) if r.status() == 200 && path.starts_with("/steady") => {
                        steady_ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) if r.status() == 200 => {
                        assert_eq!(r.text().await.unwrap(), "finally");
                        hot_ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) if r.status() == 404 && path.starts_with("/hot") => {
                        hot_missing.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => {
                        eprintln!("{path}: unexpected status {}", r.status());
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        eprintln!("{path}: request failed: {e}");
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }

    let until = Instant::now() + Duration::from_secs(2);
    let mut cycles = 0;
    while Instant::now() < until {
        let hot = TestExtension::new("hot", &j)
            .capability(caps::CPU_MOUNT)
            .route("/hot", slow_router(Duration::from_millis(30)));
        board.plug_extension(hot, false).await.unwrap();
        tokio::time::sleep(Duration::from_millis(60)).await;
        board.unplug_extension("hot", false).await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
        cycles += 1;
    }
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "requests failed during hot plug"
    );
    assert!(cycles >= 5, "only {cycles} plug cycles");
    assert!(
        steady_ok.load(Ordering::Relaxed) > 100,
        "steady route barely served"
    );
    assert!(
        hot_ok.load(Ordering::Relaxed) > 0,
        "the plugged routes never answered"
    );
    assert!(
        hot_missing.load(Ordering::Relaxed) > 0,
        "the unplugged routes never went away"
    );
    board.shutdown(StopMode::Fast).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_when_its_extension_is_unplugged_still_completes() {
    let j = Journal::default();
    let (board, base) = boot_with(vec![]).await;
    let hot = TestExtension::new("hot", &j)
        .capability(caps::CPU_MOUNT)
        .route("/hot", slow_router(Duration::from_millis(400)));
    board.plug_extension(hot, false).await.unwrap();
    let url = format!("{base}/hot/slow");
    let in_flight = tokio::spawn(async move { reqwest::get(url).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    board.unplug_extension("hot", false).await.unwrap();
    let after = reqwest::get(format!("{base}/hot/slow")).await.unwrap();
    assert_eq!(
        after.status(),
        404,
        "new requests no longer reach the unplugged extension"
    );
    let response = in_flight.await.unwrap().unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "finally");
    board.shutdown(StopMode::Fast).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_drains_a_slow_request_then_refuses_connections() {
    let j = Journal::default();
    let ext = TestExtension::new("app", &j)
        .capability(caps::CPU_MOUNT)
        .route("/app", slow_router(Duration::from_millis(500)));
    let (board, base) = boot_with(vec![ext]).await;
    let url = format!("{base}/app/slow");
    let slow = tokio::spawn(async move { reqwest::get(url).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let began = Instant::now();
    board
        .shutdown(StopMode::Graceful {
            deadline: Duration::from_secs(5),
        })
        .await
        .unwrap();
    let waited = began.elapsed();
    let response = slow
        .await
        .unwrap()
        .expect("the in-flight request must complete");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "finally");
    assert!(
        waited >= Duration::from_millis(300),
        "shutdown returned before draining ({waited:?})"
    );
    let refused = reqwest::Client::new()
        .get(format!("{base}/app/ping"))
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    assert!(refused.is_err(), "a halted board still answered");
    assert!(
        j.entries().iter().any(|e| e == "stop:app"),
        "the extension was not stopped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_the_drain_deadline_is_cut_off() {
    let j = Journal::default();
    let ext = TestExtension::new("app", &j)
        .capability(caps::CPU_MOUNT)
        .route("/app", slow_router(Duration::from_secs(30)));
    let (board, base) = boot_with(vec![ext]).await;
    let url = format!("{base}/app/slow");
    let stuck = tokio::spawn(async move { reqwest::get(url).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let began = Instant::now();
    board
        .shutdown(StopMode::Graceful {
            deadline: Duration::from_millis(200),
        })
        .await
        .unwrap();
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "shutdown ignored its deadline"
    );
    assert!(
        stuck.await.unwrap().is_err(),
        "the stuck request should have been cut"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_served_as_json_and_http2_works() {
    let j = Journal::default();
    let ext = TestExtension::new("app", &j)
        .capability(caps::CPU_MOUNT)
        .route("/app", slow_router(Duration::from_millis(1)));
    let (board, base) = boot_with(vec![ext]).await;
    let health: serde_json::Value = reqwest::get(format!("{base}/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["phase"], "running");
    assert_eq!(health["components"][0]["name"], "HyperRouter");
    assert_eq!(health["components"][0]["slot"], "cpu");
    assert_eq!(health["extensions"][0]["name"], "app");
    assert_eq!(health["extensions"][0]["status"], "ok");

    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let response = h2.get(format!("{base}/app/ping")).send().await.unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.text().await.unwrap(), "pong");
    board.shutdown(StopMode::Fast).await.unwrap();
}

async fn echo(mut socket: WebSocket, drain: DrainSignal) {
    loop {
        tokio::select! {
            () = drain.raised() => {
                let frame = magmobo::axum::extract::ws::CloseFrame { code: 1001, reason: "server draining".into() };
                let _ = socket.send(Message::Close(Some(frame))).await;
                return;
            }
            message = socket.recv() => match message {
                Some(Ok(Message::Text(text))) => {
                    if socket.send(Message::Text(text)).await.is_err() { return; }
                }
                Some(Ok(_)) => {}
                _ => return,
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_upgrade_and_are_closed_cleanly_on_drain() {
    let j = Journal::default();
    let router = Router::new().route(
        "/echo",
        get(
            |ws: WebSocketUpgrade, AxumExtension(drain): AxumExtension<DrainSignal>| async move {
                ws.on_upgrade(move |socket| echo(socket, drain))
            },
        ),
    );
    let ext = TestExtension::new("ws", &j)
        .capability(caps::CPU_MOUNT)
        .route("/ws", router);
    let (board, base) = boot_with(vec![ext]).await;
    let url = format!("{}/ws/echo", base.replace("http://", "ws://"));
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    socket
        .send(tokio_tungstenite::tungstenite::Message::text("hello"))
        .await
        .unwrap();
    let reply = socket.next().await.unwrap().unwrap();
    assert_eq!(reply.into_text().unwrap().as_str(), "hello");

    let shutdown = tokio::spawn({
        let board = board.clone();
        async move {
            board
                .shutdown(StopMode::Graceful {
                    deadline: Duration::from_secs(3),
                })
                .await
        }
    });
    let closing = tokio::time::timeout(Duration::from_secs(3), socket.next())
        .await
        .unwrap();
    match closing {
        Some(Ok(tokio_tungstenite::tungstenite::Message::Close(Some(frame)))) => {
            assert_eq!(u16::from(frame.code), 1001);
            assert_eq!(frame.reason.as_str(), "server draining");
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
    shutdown.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_in_use_stops_the_boot_with_mm_post_006() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let board = Motherboard::builder()
        .with(HyperCpu::new(addr))
        .build()
        .unwrap();
    let Err(Error::Boot(report)) = board.boot().await else {
        panic!("boot should fail")
    };
    let failure = report.failure().unwrap();
    assert_eq!(failure.code, PostCode::ListenFailed);
    assert!(
        failure.message.contains(&addr.to_string()),
        "{}",
        failure.message
    );
    assert!(failure.hint.contains("another listen address"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tower_layers_apply_to_axum_routes_cors_and_body_limit() {
    let j = Journal::default();
    let router = Router::new().route(
        "/echo",
        magmobo::axum::routing::post(|body: String| async move { body }),
    );
    let ext = TestExtension::new("app", &j)
        .capability(caps::CPU_MOUNT)
        .route("/app", router);
    let (board, base) = boot_with(vec![ext]).await;
    let cpu = board.cpu().unwrap();
    cpu.routes()
        .layer("app-layers", tower_http::cors::CorsLayer::permissive())
        .unwrap();
    cpu.routes()
        .layer(
            "app-layers",
            tower_http::limit::RequestBodyLimitLayer::new(16),
        )
        .unwrap();
    let client = reqwest::Client::new();
    let small = client
        .post(format!("{base}/app/echo"))
        .header("origin", "https://example.test")
        .body("hi")
        .send()
        .await
        .unwrap();
    assert_eq!(small.status(), 200);
    assert_eq!(small.headers()["access-control-allow-origin"], "*");
    assert_eq!(small.text().await.unwrap(), "hi");
    let big = client
        .post(format!("{base}/app/echo"))
        .body("x".repeat(1024))
        .send()
        .await
        .unwrap();
    assert_eq!(
        big.status(),
        413,
        "the body limit layer must refuse oversize bodies"
    );
    cpu.routes().unmount("app-layers");
    let after = client
        .post(format!("{base}/app/echo"))
        .body("x".repeat(1024))
        .send()
        .await
        .unwrap();
    assert_eq!(
        after.status(),
        200,
        "removing the layers' owner removes the layers"
    );
    board.shutdown(StopMode::Fast).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_routes_are_served_over_the_socket_with_params_and_peer() {
    use magmobo::axum::response::IntoResponse;
    use magmobo::roles::cpu::PathParams;
    let (board, base) = boot_with(vec![]).await;
    board
        .cpu()
        .unwrap()
        .routes()
        .mount_native("fast", "/items/{id}", |req: magmobo::axum::extract::Request, ctx: magmobo::roles::cpu::RequestContext| async move {
            let id = req.extensions().get::<PathParams>().and_then(|p| p.get("id")).unwrap_or("?").to_owned();
            format!("item {id} for {}", ctx.peer.ip()).into_response()
        })
        .unwrap();
    let text = reqwest::get(format!("{base}/items/42"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(text, "item 42 for 127.0.0.1");
    board.shutdown(StopMode::Fast).await.unwrap();
}
