//! The role traits of the five slots. A driver implements [`crate::Component`] plus exactly one
//! of these; the board stores it as `Arc<dyn Role>`.
//!
//! All role traits use `async-trait` because the board keeps them as trait objects and native
//! `async fn` in traits is not callable through `dyn` on our minimum Rust.
//!
//! [`platform`] is no slot: it holds the platform roles (who may manage keys, agents and
//! schema) and their store, here so that every extension can check them without depending on
//! another.

pub mod api_keys;
pub mod auth;
pub mod cache;
pub mod cpu;
pub mod platform;
pub mod queue;
pub mod routes;
pub mod schema;
pub mod storage;
