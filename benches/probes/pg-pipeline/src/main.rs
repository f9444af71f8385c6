//! Probe, not product code: how fast can a bare hyper server answer MagGate's "GET by primary
//! key" (the JSON-building SQL of benches/maggate-load.sh) when its PostgreSQL statements are
//! pipelined? tokio-postgres sends the statements of concurrent requests on one client
//! without waiting for each answer; sqlx (which MagMoBo's storage driver uses) does not.
//!
//! ```sh
//! cargo run --release --manifest-path benches/probes/pg-pipeline/Cargo.toml -- \
//!     "host=127.0.0.1 user=postgres dbname=<db with the bench's items table>" <clients>
//! wrk -t2 -c32 -d8s -s benches/wrk/get_by_id.lua http://127.0.0.1:18600
//! ```
//!
//! HTTP connection `i` uses client `i % clients`: 1 client pipelines everything, as many
//! clients as wrk connections pipelines nothing. Figures in docs/benchmarks.md.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio_postgres::{Client, NoTls, Statement};

const SQL: &str =
    "SELECT coalesce(json_agg(t), '[]')::text FROM (SELECT * FROM items WHERE id = $1::int) t";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .ok_or("usage: pg-pipeline-probe <conninfo> [clients]")?;
    let n: usize = std::env::args()
        .nth(2)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1)
        .max(1);
    let mut clients: Vec<(Client, Statement)> = Vec::new();
    for _ in 0..n {
        let (client, conn) = tokio_postgres::connect(&url, NoTls).await?;
        tokio::spawn(conn);
        let statement = client.prepare(SQL).await?;
        clients.push((client, statement));
    }
    let clients = Arc::new(clients);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:18600").await?;
    let mut accepted = 0usize;
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        accepted += 1;
        let clients = clients.clone();
        let index = accepted % n;
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let clients = clients.clone();
                async move {
                    let query = req.uri().query().unwrap_or("");
                    let id: i32 = query
                        .rsplit("eq.")
                        .next()
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(1);
                    let (client, statement) = &clients[index];
                    let body = match client.query_one(statement, &[&id]).await {
                        Ok(row) => row.get::<_, String>(0),
                        Err(e) => format!("{{\"error\":\"{e}\"}}"),
                    };
                    Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(body))))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
