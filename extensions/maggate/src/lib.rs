//! MagGate: the MagMoBo extension that serves a PostgREST-compatible REST API over the
//! board's Storage.
//!
//! Three layers, each usable alone:
//! - [`request`]: the query string plus the `Prefer` and `Range` headers → a typed AST,
//!   with PostgREST's error codes for malformed input;
//! - [`sql`]: AST + introspected schema + dialect → SQL text and bind values (pure);
//! - [`MagGate`]: the extension that mounts one native handler on the CPU, runs the SQL on
//!   Storage and answers with PostgREST's statuses, headers and error bodies.
//!
//! ```
//! use maggate::request::{QueryParams, Request, RequestHeaders};
//!
//! let params = QueryParams::decode("select=id,name,orders(total)&id=gt.10&order=name.desc&limit=5");
//! let req = Request::parse(&params, &RequestHeaders::default()).unwrap();
//! assert_eq!(req.query.filters.len(), 1);
//! assert_eq!(req.range.limit, Some(5));
//! ```
//!
//! The schema is introspected at `init` and swapped atomically on [`MagGate::reload`], when
//! the fingerprint polled every [`GateConfig::schema_poll`] changes, and on PostgreSQL on
//! `NOTIFY pgrst, 'reload schema'`.
//!
//! Dialect notes: `match`/`imatch` use `REGEXP` on MySQL/MariaDB and are refused on SQLite;
//! full-text search and the range/array operators (`sl`, `sr`, `nxl`, `nxr`, `adj`, `ov`)
//! are PostgreSQL-only; `cs`/`cd` work on PostgreSQL and on MySQL JSON columns; `like` is
//! case-sensitive everywhere (SQLite through `GLOB`). Refusals are 400 PGRST127 naming the
//! operator and the dialect. Writes returning rows need `RETURNING` (MariaDB 10.5+, not
//! MySQL).
//!
//! Not implemented yet (answered with PGRST127 or PGRST123): resource embedding, aggregates,
//! RPC, upserts (`on_conflict`, `resolution=`), CSV output, `PATCH` with
//! `return=representation` on MySQL/MariaDB, `count=planned`/`estimated` (both count
//! exactly), and `limit`/`order` on PATCH/DELETE (ignored). MagGate-only error codes: `MG413` (body larger than
//! [`GateConfig::max_body_bytes`]) and `21000` for PATCH/DELETE without a filter (the code
//! `pg-safeupdate` uses).

pub mod api_error;
mod gate;
mod handler;
pub mod request;
pub mod sql;

pub use api_error::{ApiError, ApiResult};
pub use gate::{GateConfig, GateHandle, MagGate};
pub use request::{Error, Result};
