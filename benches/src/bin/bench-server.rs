//! A server for `benches/load.sh`: `bench-server board ADDR` serves a trivial route through a
//! full MagMoBo board (hyper CPU, route table, `/health`), natively at `/hello` and through an
//! axum router at `/axum/hello`; `bench-server bare ADDR` serves the same answer from a bare
//! hyper `service_fn`, the ceiling; `bench-server axum ADDR` serves a plain axum router with
//! the same hyper loop, to tell axum's own cost from the board's.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use magmobo::axum::Router;
use magmobo::axum::response::IntoResponse;
use magmobo::axum::routing::get;
use magmobo::bios::RenderStyle;
use magmobo::cpu::HyperCpu;
use magmobo::prelude::*;

struct Hello;

impl ExtensionMeta for Hello {
    fn extension_info(&self) -> ExtensionInfo {
        let mut info = ExtensionInfo::new("hello", "0.1.0");
        info.capabilities.push(caps::CPU_MOUNT.into());
        info
    }
}

#[async_trait]
impl Extension for Hello {
    async fn init(&self, ctx: &ExtensionContext) -> Result<()> {
        let cpu = ctx.cpu()?;
        // The same answer on both paths an extension can use: native (fast) and axum.
        cpu.mount_native("/hello", |_req, _ctx| async { "hello".into_response() })?;
        cpu.mount(
            "/axum",
            Router::new().route("/hello", get(|| async { "hello" })),
        )
    }
}

async fn bare(addr: SocketAddr) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    eprintln!("bare hyper listening on http://{addr}");
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(|_req| async {
                Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(
                    b"hello",
                ))))
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// A plain axum router served by the same hyper loop, to tell axum's cost from the board's.
async fn plain_axum(addr: SocketAddr) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let app = Router::new().route("/hello", get(|| async { "hello" }));
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    use tower::ServiceExt;
                    app.clone().oneshot(req)
                });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_default();
    let addr: SocketAddr = match args
        .next()
        .unwrap_or_else(|| "127.0.0.1:18080".into())
        .parse()
    {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("bad address: {e}");
            std::process::exit(2);
        }
    };
    let outcome = match mode.as_str() {
        "bare" => bare(addr).await.map_err(|e| e.to_string()),
        "axum" => plain_axum(addr).await.map_err(|e| e.to_string()),
        "board" => {
            let board = Motherboard::builder()
                .name("bench-board")
                .with(HyperCpu::new(addr))
                .extension(Hello)
                .build();
            match board {
                Ok(board) => board
                    .run_until_signal(RenderStyle::Plain)
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            }
        }
        _ => Err("usage: bench-server board|bare [ADDR]".into()),
    };
    if let Err(e) = outcome {
        eprintln!("{e}");
        std::process::exit(1);
    }
}
