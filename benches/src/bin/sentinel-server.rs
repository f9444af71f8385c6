//! A server for `benches/sentinel-load.sh`: `sentinel-server on|off ADDR` serves a MagGate-like
//! `/rest/v1/users` (a small JSON answer from a native handler, no database, so the run
//! measures Sentinel and not PostgreSQL) through a full board, with the standard Sentinel
//! agents (rate limits set out of reach, buckets still counting) or without Sentinel.

use std::net::SocketAddr;

use magmobo::axum::response::IntoResponse;
use magmobo::bios::RenderStyle;
use magmobo::cpu::HyperCpu;
use magmobo::prelude::*;
use sentinel::{
    ApiWatch, ApiWatchConfig, AuthSentry, Limit, Sentinel, SentinelConfig, SqlGuardAgent,
};

struct Users;

impl ExtensionMeta for Users {
    fn extension_info(&self) -> ExtensionInfo {
        let mut info = ExtensionInfo::new("users", "0.1.0");
        info.capabilities.push(caps::CPU_MOUNT.into());
        info
    }
}

const ROWS: &str = r#"[{"id":42,"name":"Ada","email":"ada@example.com"}]"#;

#[async_trait]
impl Extension for Users {
    async fn init(&self, ctx: &ExtensionContext) -> Result<()> {
        let cpu = ctx.cpu()?;
        cpu.mount_native("/rest/v1/users", |_req, _ctx| async {
            (
                [(
                    magmobo::axum::http::header::CONTENT_TYPE,
                    "application/json",
                )],
                ROWS,
            )
                .into_response()
        })
    }
}

fn sentinel() -> Sentinel {
    Sentinel::new(SentinelConfig::default())
        .agent(SqlGuardAgent::new())
        .agent(ApiWatch::new(ApiWatchConfig {
            per_ip: Some(Limit::new(1e12, 1e12)),
            per_identity: Some(Limit::new(1e12, 1e12)),
            ..ApiWatchConfig::default()
        }))
        .agent(AuthSentry::default())
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_default();
    let addr: SocketAddr = match args
        .next()
        .unwrap_or_else(|| "127.0.0.1:18090".into())
        .parse()
    {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("bad address: {e}");
            std::process::exit(2);
        }
    };
    let builder = Motherboard::builder()
        .name("sentinel-bench")
        .with(HyperCpu::new(addr))
        .extension(Users);
    let builder = match mode.as_str() {
        "on" => builder.patrol(sentinel()),
        "off" => builder,
        _ => {
            eprintln!("usage: sentinel-server on|off [ADDR]");
            std::process::exit(2);
        }
    };
    let outcome = match builder.build() {
        Ok(board) => board
            .run_until_signal(RenderStyle::Plain)
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = outcome {
        eprintln!("{e}");
        std::process::exit(1);
    }
}
