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
//! Identity: the PSU's `Identity` reaches the database. On PostgreSQL a request with an
//! identity runs in one transaction (read-only for GET) that first sets `request.jwt.claims`
//! and PostgREST's other request settings, and the role when [`GateConfig::switch_role`] is
//! on, so the database's row-level security applies; [`policy`] declares the same rules in
//! code for MariaDB and SQLite. [`GateConfig::tx_end`] and `Prefer: tx=` decide how the
//! transaction ends.
//!
//! Dialect notes: `match`/`imatch` use `REGEXP` on MySQL/MariaDB and are refused on SQLite;
//! full-text search and the range/array operators (`sl`, `sr`, `nxl`, `nxr`, `adj`, `ov`)
//! are PostgreSQL-only; `cs`/`cd` work on PostgreSQL and on MySQL JSON columns; `like` is
//! case-sensitive everywhere (SQLite through `GLOB`). Refusals are 400 PGRST127 naming the
//! operator and the dialect. Writes returning rows need `RETURNING` (MariaDB 10.5+, not
//! MySQL).
//!
//! Resource embedding (`sql::embed`): many-to-one and one-to-one as an object or null,
//! one-to-many and many-to-many (through a junction table whose primary key holds both
//! foreign keys) as an array, nested, with `!inner`, `!hint` (constraint, column or
//! junction name), spreads of to-one resources, and filters/`order`/`limit`/`offset` per
//! embedded resource (and `order=rel(col)` on a to-one one, `rel=is.null`/`not.is.null`).
//! Each is a correlated subquery building JSON in the database on every dialect. Ambiguity
//! is 300 PGRST201 with PostgREST's candidate list; no relationship is 400 PGRST200.
//! Upserts: `Prefer: resolution=merge-duplicates|ignore-duplicates` with `on_conflict=`
//! (default: primary key), 201 when a row was inserted and 200 when all existed; `PUT` of
//! one row by primary key. RPC (`sql::rpc`, PostgreSQL only; a 400 PGRST127 elsewhere):
//! POST with a JSON object of arguments, GET for IMMUTABLE/STABLE functions; functions
//! returning rows of a table accept `select`, filters, `order`, `limit` and embedding;
//! scalar results come back as the bare JSON value.
//! Writes with `return=representation` may embed (`POST /posts?select=*,author:users(name)`)
//! and answer as a read of the written rows would ([`sql::written`]): one `WITH ... RETURNING`
//! statement on PostgreSQL; on SQLite and MariaDB the written rows' primary keys are
//! collected in the request's transaction and read back (also how MariaDB answers `PATCH`
//! with `return=representation`, and a representation with `order=`), so there such a
//! write needs a primary key.
//!
//! Also: aggregates in `select` (behind [`GateConfig::aggregates_enabled`]), CSV in and out,
//! the OpenAPI 3.1 document at the root, planned and estimated counts on PostgreSQL and
//! MariaDB, and a read cache in the RAM slot ([`read_cache`]).
//!
//! Not implemented yet (answered with PGRST127 or PGRST123): aggregates inside spreads,
//! grouped aggregates inside embedded resources on MariaDB, filters/`order`/`limit` on
//! functions returning sets of scalars, and `offset` on PATCH/DELETE on MariaDB. `limit`
//! with an `order` on PATCH/DELETE changes only those first rows (PostgREST's limited
//! update/delete; PGRST109 without an `order`). On MariaDB, `on_conflict=` is
//! not honoured (`ON DUPLICATE KEY` fires on any unique key), ignore-duplicates is a no-op
//! `ON DUPLICATE KEY UPDATE` rather than `INSERT IGNORE` (which would also swallow
//! foreign-key and type errors), and embedded arrays are bounded by `group_concat_max_len`;
//! to-many embedding needs MariaDB (MySQL's `JSON_ARRAYAGG` takes no `ORDER BY`/`LIMIT`).
//! AI agents ([`agents`], off unless [`GateConfig::agents`] is set): grants per table,
//! operation and column, row filters, a rate limit, and an approval queue under
//! `{prefix}/_approvals`; see docs/agents.md.
//! MagGate-only error codes: `MG413` (body larger than [`GateConfig::max_body_bytes`]) and
//! `21000` for PATCH/DELETE without a filter (the code `pg-safeupdate` uses).

pub mod agents;
pub mod api_error;
mod csv_body;
mod gate;
mod handler;
mod openapi;
pub mod policy;
pub mod read_cache;
pub mod request;
mod session;
pub mod sql;

pub use api_error::{ApiError, ApiResult};
pub use gate::{GateConfig, GateHandle, MagGate};
pub use policy::Policies;
pub use read_cache::{ReadCacheConfig, ReadCacheStats};
pub use request::{Error, Result};
pub use session::TxEnd;
