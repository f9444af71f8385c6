//! # MagMoBo
//!
//! Build a database-backed API server the way you build a computer: pick components for
//! typed slots (CPU = HTTP router, RAM = cache, GPU = job queue, Storage = database,
//! PSU = auth), plug extensions into PCIe slots and peripherals into USB ports, and let the
//! BIOS boot it with a power-on self-test.
//!
//! ```no_run
//! use magmobo::prelude::*;
//! use magmobo::cpu::HyperCpu;
//!
//! # async fn run() -> magmobo::Result<()> {
//! let board = Motherboard::builder()
//!     .name("MyServer")
//!     .with(HyperCpu::new("127.0.0.1:8080".parse().expect("address")))
//!     .build()?;
//! board.run_until_signal(magmobo::bios::RenderStyle::detect(&std::io::stdout())).await
//! # }
//! ```
//!
//! This crate is a facade: the traits live in `magmobo-core`, the derive macros in
//! `magmobo-derive`, and each backend in its own driver crate, switched on by a cargo feature:
//!
//! | feature | what it adds |
//! |---|---|
//! | `cpu-hyper` (default) | [`cpu::HyperCpu`], the hyper HTTP/1.1 + HTTP/2 router |
//! | `bus-redis` | [`bus_redis::RedisBus`], a bus transport shared by several instances |
//! | `db-postgres` | [`storage::SqlStorage`] for `postgres://` URLs (LISTEN/NOTIFY, functions) |
//! | `db-mysql` | [`storage::SqlStorage`] for `mysql://` and `mariadb://` URLs |
//! | `db-sqlite` | [`storage::SqlStorage`] for `sqlite://`, `sqlite::memory:` and file paths |
//! | `auth-keys` | [`auth::ApiKeyAuth`]: API keys in the PSU slot, stored hashed in Storage |
//! | `cache-moka` | [`cache::MokaCache`]: in-process RAM slot with TTLs, tags and prefixes |
//! | `cache-redis` | [`cache::RedisCache`]: shared RAM slot that passes through while Redis is away |
//! | `queue-memory` | [`queue::MemoryQueue`]: in-process GPU slot (retries, dead-letter, cron) |
//! | `queue-postgres` | [`queue::PgQueue`]: durable GPU slot in PostgreSQL Storage (`SKIP LOCKED`) |
//! | `queue-redis` | [`queue::RedisQueue`]: durable GPU slot in Redis streams (consumer group, `XAUTOCLAIM`) |
//! | `webhooks` | [`webhooks::Webhooks`]: peripheral POSTing signed bus events through the GPU queue |
//! | `mqtt` | [`mqtt::Mqtt`]: peripheral ingesting MQTT telemetry through MagGate and publishing table changes |
//!
//! The `db-*` features are additive: with several on, the URL's scheme picks the backend at
//! run time.

pub use magmobo_core::*;
pub use magmobo_derive::{BusEvent, Component, Extension, Peripheral};

/// The hyper CPU driver.
#[cfg(feature = "cpu-hyper")]
pub mod cpu {
    pub use magmobo_cpu_hyper::HyperCpu;
}

/// The Redis bus transport.
#[cfg(feature = "bus-redis")]
pub mod bus_redis {
    pub use magmobo_bus_redis::{DEFAULT_PREFIX, RedisBus};
}

/// The API-key PSU.
#[cfg(feature = "auth-keys")]
pub mod auth {
    pub use magmobo_auth::*;
}

/// The SQL Storage drivers (PostgreSQL, MySQL/MariaDB, SQLite), chosen by URL scheme.
#[cfg(any(feature = "db-postgres", feature = "db-mysql", feature = "db-sqlite"))]
pub mod storage {
    pub use magmobo_storage_sqlx::*;
}

/// The RAM slot drivers (moka, Redis).
#[cfg(any(feature = "cache-moka", feature = "cache-redis"))]
pub mod cache {
    pub use magmobo_cache::*;
}

/// The GPU slot drivers (in-process, PostgreSQL).
#[cfg(any(
    feature = "queue-memory",
    feature = "queue-postgres",
    feature = "queue-redis"
))]
pub mod queue {
    pub use magmobo_queue::*;
}

/// The Webhooks peripheral (signed deliveries through the GPU queue).
#[cfg(feature = "webhooks")]
pub mod webhooks {
    pub use magmobo_webhooks::*;
}

/// The MQTT peripheral (telemetry in through MagGate, table changes out).
#[cfg(feature = "mqtt")]
pub mod mqtt {
    pub use magmobo_mqtt::*;
}
