//! hello-board: a board with a custom RAM component (a tiny in-memory cache) and a custom
//! extension (a greeter that counts visits in that cache), both declared with the derives,
//! served by the hyper CPU. Run it and read the POST screen:
//!
//! ```text
//! cargo run -p hello-board
//! curl http://127.0.0.1:8080/hello/ada
//! ```
//!
//! `HELLO_LISTEN` sets the address (default `127.0.0.1:8080`); `HELLO_JSON=1` prints the boot
//! report as JSON instead of the screen.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use magmobo::axum::extract::{Path, State};
use magmobo::axum::routing::get;
use magmobo::axum::{Json, Router};
use magmobo::bios::RenderStyle;
use magmobo::bytes::Bytes;
use magmobo::cpu::HyperCpu;
use magmobo::prelude::*;
use magmobo::roles::cache::SetOptions;

/// One cached value: bytes, when it expires, its tags.
struct Entry {
    value: Bytes,
    expires: Option<Instant>,
    tags: Vec<String>,
}

/// A small in-memory cache for the RAM slot: a map with optional expiry per entry.
#[derive(magmobo::Component, Default)]
#[component(
    slot = "ram",
    name = "TinyCache",
    capabilities("cache.read", "cache.write")
)]
struct TinyCache {
    entries: Mutex<HashMap<String, Entry>>,
}

impl TinyCache {
    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl Component for TinyCache {
    async fn self_test(&self) -> Result<String> {
        Ok(format!("in-process, {} entries", self.entries().len()))
    }
}

#[async_trait]
impl Cache for TinyCache {
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let mut entries = self.entries();
        let expired = entries
            .get(key)
            .and_then(|e| e.expires)
            .is_some_and(|at| at <= Instant::now());
        if expired {
            entries.remove(key);
        }
        Ok(entries.get(key).map(|e| e.value.clone()))
    }
    async fn set(&self, key: &str, value: Bytes, options: SetOptions) -> Result<()> {
        let expires = options.ttl.map(|ttl| Instant::now() + ttl);
        let entry = Entry {
            value,
            expires,
            tags: options.tags,
        };
        self.entries().insert(key.to_owned(), entry);
        Ok(())
    }
    async fn delete(&self, key: &str) -> Result<bool> {
        Ok(self.entries().remove(key).is_some())
    }
    async fn invalidate_prefix(&self, prefix: &str) -> Result<u64> {
        let mut entries = self.entries();
        let before = entries.len();
        entries.retain(|k, _| !k.starts_with(prefix));
        Ok((before - entries.len()) as u64)
    }
    async fn invalidate_tag(&self, tag: &str) -> Result<u64> {
        let mut entries = self.entries();
        let before = entries.len();
        entries.retain(|_, e| !e.tags.iter().any(|t| t == tag));
        Ok((before - entries.len()) as u64)
    }
}

/// Greets visitors at `/hello/{name}` and counts visits per name in the RAM component.
#[derive(magmobo::Extension)]
#[extension(
    title = "Greeter",
    capabilities("cpu.mount", "cache.read", "cache.write", "bus.publish")
)]
struct Greeter;

async fn hello(
    State(state): State<(Arc<dyn Cache>, magmobo::board::BusHandle)>,
    Path(name): Path<String>,
) -> std::result::Result<Json<serde_json::Value>, String> {
    let (cache, bus) = state;
    let key = format!("visits:{name}");
    let count = match cache.get(&key).await.map_err(|e| e.to_string())? {
        Some(bytes) => String::from_utf8_lossy(&bytes).parse::<u64>().unwrap_or(0) + 1,
        None => 1,
    };
    let options = SetOptions {
        ttl: Some(Duration::from_secs(3600)),
        tags: vec!["visits".into()],
    };
    cache
        .set(&key, Bytes::from(count.to_string()), options)
        .await
        .map_err(|e| e.to_string())?;
    bus.publish(
        "greeter.visited",
        serde_json::json!({ "name": name, "count": count }),
    )
    .map_err(|e| e.to_string())?;
    Ok(Json(
        serde_json::json!({ "greeting": format!("Hello, {name}!"), "visits": count }),
    ))
}

#[async_trait]
impl Extension for Greeter {
    async fn init(&self, ctx: &ExtensionContext) -> Result<()> {
        let state = (ctx.cache()?, ctx.bus()?);
        let routes = Router::new()
            .route("/hello/{name}", get(hello))
            .with_state(state);
        ctx.cpu()?.mount("/", routes)
    }

    fn summary(&self) -> Option<String> {
        Some("1 route: GET /hello/{name}".into())
    }
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let listen = std::env::var("HELLO_LISTEN").unwrap_or_else(|_| "127.0.0.1:8080".into());
    let address: SocketAddr = match listen.parse() {
        Ok(address) => address,
        Err(_) => {
            eprintln!("HELLO_LISTEN={listen:?} is not an address like 127.0.0.1:8080");
            std::process::exit(2);
        }
    };
    let style = if std::env::var_os("HELLO_JSON").is_some() {
        RenderStyle::Json
    } else {
        RenderStyle::detect(&std::io::stdout())
    };
    let board = Motherboard::builder()
        .name("hello-board")
        .with((HyperCpu::new(address), TinyCache::default(), Greeter))
        .build();
    let outcome = match board {
        Ok(board) => board.run_until_signal(style).await,
        Err(error) => Err(error),
    };
    if let Err(error) = outcome {
        // A failed boot already printed its POST screen with the code and what to do next.
        if !matches!(error, Error::Boot(_)) {
            eprintln!("hello-board: {error}");
        }
        std::process::exit(1);
    }
}
