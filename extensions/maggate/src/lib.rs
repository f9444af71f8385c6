//! MagGate: the MagMoBo extension that will serve a PostgREST-compatible REST API.
//!
//! **Status: only the request grammar exists so far.** This crate turns a query string plus
//! the `Prefer` and `Range` headers into a typed AST ([`request::Request`]), and reports
//! malformed input with PostgREST's error codes, messages and HTTP statuses
//! ([`request::Error`]). There is no HTTP layer, no SQL building and no database access yet;
//! those come later and will consume the AST defined here.
//!
//! ```
//! use maggate::request::{QueryParams, Request, RequestHeaders};
//!
//! let params = QueryParams::decode("select=id,name,orders(total)&id=gt.10&order=name.desc&limit=5");
//! let req = Request::parse(&params, &RequestHeaders::default()).unwrap();
//! assert_eq!(req.query.filters.len(), 1);
//! assert_eq!(req.range.limit, Some(5));
//! ```

pub mod request;

pub use request::{Error, Result};
