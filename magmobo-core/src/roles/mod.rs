//! The role traits of the five slots. A driver implements [`crate::Component`] plus exactly one
//! of these; the board stores it as `Arc<dyn Role>`.
//!
//! All role traits use `async-trait` because the board keeps them as trait objects and native
//! `async fn` in traits is not callable through `dyn` on our minimum Rust.

pub mod auth;
pub mod cache;
pub mod cpu;
pub mod queue;
pub mod routes;
pub mod schema;
pub mod storage;
