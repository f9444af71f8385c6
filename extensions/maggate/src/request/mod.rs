//! The request grammar: a query string and the `Prefer`/`Range` headers in, a typed
//! [`Request`] out, with PostgREST's routing of keys (reserved names vs. filters) and its
//! errors. Parsing is two-step so the AST can borrow: [`QueryParams::decode`] percent-decodes
//! (borrowing when nothing was encoded), then [`ApiQuery::parse`] borrows from the result.

mod error;
mod filter;
mod logic;
mod order;
mod prefer;
mod range;
mod select;
mod syntax;

use std::borrow::Cow;
use std::fmt;

pub use error::{Error, RangeError, Result};
pub use filter::{
    Filter, FtsOperator, IsValue, Operation, QuantOperator, Quantifier, SimpleOperator,
};
pub use logic::{LogicOperator, LogicTree};
pub use order::{OrderDirection, OrderNulls, OrderTerm};
pub use prefer::{
    PreferCount, PreferHandling, PreferMissing, PreferResolution, PreferReturn, PreferTransaction,
    Preferences,
};
pub use range::{LimitOffset, QueryRange, effective_range};
pub use select::{
    Aggregate, JoinType, SelectField, SelectItem, SelectList, SelectRelation, SpreadRelation,
    parse_select,
};
pub use syntax::{Field, JsonArrow, JsonOperand, JsonOperation};

/// The embedded resources a parameter applies to: `[]` for the root, `["actors"]` for
/// `actors.order=...`, `["actors", "roles"]` for `actors.roles.limit=...`.
pub type EmbedPath<'a> = Vec<Cow<'a, str>>;

/// Something that applies at one embedding level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scoped<'a, T> {
    /// Which embedded resource; empty for the root.
    pub path: EmbedPath<'a>,
    /// What applies there.
    pub item: T,
}

/// The decoded `key=value` pairs of a query string, in order.
///
/// Split on `&` and `;` (PostgREST's HTTP library accepts both), `+` is a space, `%XX` is
/// decoded, invalid UTF-8 is replaced. A key without `=` has no value and, as in PostgREST,
/// is ignored by everything except the first-occurrence lookup of `select`, `columns` and
/// `on_conflict`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryParams<'q> {
    /// The pairs in query-string order.
    pub pairs: Vec<(Cow<'q, str>, Option<Cow<'q, str>>)>,
}

impl<'q> QueryParams<'q> {
    /// Decodes a raw query string (with or without the leading `?`).
    pub fn decode(qs: &'q str) -> QueryParams<'q> {
        let qs = qs.strip_prefix('?').unwrap_or(qs);
        let pairs = qs
            .split(['&', ';'])
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((k, v)) => (url_decode(k), Some(url_decode(v))),
                None => (url_decode(p), None),
            })
            .collect();
        QueryParams { pairs }
    }

    fn lookup(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.as_deref())
    }
}

pub(crate) fn url_decode(s: &str) -> Cow<'_, str> {
    if !s.contains(['%', '+']) {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (
                    bytes.get(i + 1).copied().and_then(hex),
                    bytes.get(i + 2).copied().and_then(hex),
                ) {
                    (Some(h), Some(l)) => {
                        // Two hex digits always fit a byte.
                        out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// Keys that PostgREST never treats as filters, either exactly or as the last dotted segment.
const RESERVED: [&str; 3] = ["select", "columns", "on_conflict"];
const RESERVED_EMBEDDABLE: [&str; 5] = ["order", "limit", "offset", "and", "or"];

pub(crate) fn is_reserved_word(s: &str) -> bool {
    RESERVED.contains(&s) || RESERVED_EMBEDDABLE.contains(&s)
}

fn last_segment(key: &str) -> &str {
    key.rsplit('.').next().unwrap_or(key)
}

/// Everything the query string says, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiQuery<'a> {
    /// `select=`; `[*]` when absent, empty when given empty.
    pub select: Vec<SelectItem<'a>>,
    /// Every non-reserved key, parsed as a filter, at its embedding level.
    pub filters: Vec<Scoped<'a, Filter<'a>>>,
    /// `or=`, `and=`, `not.or=`, `rel.or=`...
    pub logic: Vec<Scoped<'a, LogicTree<'a>>>,
    /// `order=` and `rel.order=`, in query order.
    pub order: Vec<Scoped<'a, Vec<OrderTerm<'a>>>>,
    /// `limit=`/`offset=` per level (the last value of each wins, as in PostgREST).
    pub ranges: Vec<Scoped<'a, LimitOffset>>,
    /// `columns=` (for inserts and updates).
    pub columns: Option<Vec<Cow<'a, str>>>,
    /// `on_conflict=` (for upserts).
    pub on_conflict: Option<Vec<Cow<'a, str>>>,
}

impl<'a> ApiQuery<'a> {
    /// Parses decoded query parameters, in PostgREST's order of checks (order, logic,
    /// columns, select, filters, on_conflict) so the same bad request yields the same error.
    pub fn parse(params: &'a QueryParams<'_>) -> Result<ApiQuery<'a>> {
        let nonempty = || {
            params
                .pairs
                .iter()
                .filter_map(|(k, v)| Some((k.as_ref(), v.as_deref()?)))
        };

        let mut order = Vec::new();
        for (k, v) in nonempty().filter(|(k, _)| last_segment(k) == "order") {
            let (path, _) = filter::parse_tree_path(k)?;
            order.push(Scoped {
                path,
                item: order::parse_order(v)?,
            });
        }

        let mut logic = Vec::new();
        for (k, v) in nonempty().filter(|(k, _)| matches!(last_segment(k), "and" | "or")) {
            let (path, item) = logic::parse_logic(k, v)?;
            logic.push(Scoped { path, item });
        }

        let columns = params
            .lookup("columns")
            .map(|v| order::parse_columns("columns parameter", v))
            .transpose()?;

        let select = match params.lookup("select") {
            Some(v) => parse_select(v)?,
            None => vec![SelectItem::Star],
        };

        let mut filters = Vec::new();
        for (k, v) in nonempty() {
            if RESERVED.contains(&k) || RESERVED_EMBEDDABLE.contains(&last_segment(k)) {
                continue;
            }
            let (path, field) = filter::parse_tree_path(k)?;
            let (negated, operation) = filter::parse_filter_value(v)?;
            filters.push(Scoped {
                path,
                item: Filter {
                    field,
                    negated,
                    operation,
                },
            });
        }

        let on_conflict = params
            .lookup("on_conflict")
            .map(|v| order::parse_columns("on_conflict parameter", v))
            .transpose()?;

        let mut ranges: Vec<Scoped<'a, LimitOffset>> = Vec::new();
        for (k, v) in nonempty() {
            let is_limit = match last_segment(k) {
                "limit" => true,
                "offset" => false,
                _ => continue,
            };
            let (path, _) = filter::parse_tree_path(k)?;
            let value = v.parse::<i64>().ok();
            let slot = match ranges.iter().position(|r| r.path == path) {
                Some(i) => &mut ranges[i].item,
                None => {
                    ranges.push(Scoped {
                        path,
                        item: LimitOffset::default(),
                    });
                    let last = ranges.len() - 1;
                    &mut ranges[last].item
                }
            };
            // Later values replace earlier ones; a non-integer one is dropped, as in PostgREST.
            if is_limit {
                slot.limit = value;
            } else {
                slot.offset = value;
            }
        }

        Ok(ApiQuery {
            select,
            filters,
            logic,
            order,
            ranges,
            columns,
            on_conflict,
        })
    }

    /// The root level's `limit`/`offset`.
    pub fn root_limit_offset(&self) -> LimitOffset {
        self.ranges
            .iter()
            .find(|r| r.path.is_empty())
            .map(|r| r.item)
            .unwrap_or_default()
    }
}

/// The headers the grammar reads. Header names are the HTTP layer's business.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestHeaders<'h> {
    /// The values of every `Prefer` header, in order.
    pub prefer: &'h [&'h str],
    /// The `Range` header; pass it only for GET requests, as PostgREST does.
    pub range: Option<&'h str>,
}

/// A fully parsed request: the query, the preferences and the effective root row window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    /// Everything from the query string.
    pub query: ApiQuery<'a>,
    /// The `Prefer` headers.
    pub preferences: Preferences<'a>,
    /// Root `limit`/`offset` combined with the `Range` header.
    pub range: QueryRange,
}

impl<'a> Request<'a> {
    /// Parses the query and headers. Checks run in PostgREST's order: query string, then
    /// range, then preferences.
    pub fn parse(params: &'a QueryParams<'_>, headers: &RequestHeaders<'a>) -> Result<Request<'a>> {
        let query = ApiQuery::parse(params)?;
        for r in query.ranges.iter().filter(|r| !r.path.is_empty()) {
            r.item.to_range()?;
        }
        let range = effective_range(query.root_limit_offset(), headers.range)?;
        let preferences = Preferences::parse(headers.prefer.iter().copied())?;
        Ok(Request {
            query,
            preferences,
            range,
        })
    }
}

/// Renders the query back as a (decoded) query string; used by the round-trip tests and
/// handy in logs. Reserved-looking names are quoted so they route back the same way.
impl fmt::Display for ApiQuery<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sep = "";
        let mut next = |f: &mut fmt::Formatter<'_>| {
            let s = sep;
            sep = "&";
            f.write_str(s)
        };
        next(f)?;
        write!(f, "select={}", SelectList(&self.select))?;
        for s in &self.filters {
            next(f)?;
            filter::write_key(f, &s.path, &s.item.field.name)?;
            for op in &s.item.field.json_path {
                write!(f, "{op}")?;
            }
            write!(f, "={}", s.item.value_syntax())?;
        }
        for s in &self.logic {
            next(f)?;
            for p in &s.path {
                syntax::write_name(f, p)?;
                f.write_str(".")?;
            }
            match &s.item {
                LogicTree::Expr {
                    negated,
                    op,
                    children,
                } => {
                    if *negated {
                        f.write_str("not.")?;
                    }
                    f.write_str(match op {
                        LogicOperator::And => "and=(",
                        LogicOperator::Or => "or=(",
                    })?;
                    for (i, child) in children.iter().enumerate() {
                        if i > 0 {
                            f.write_str(",")?;
                        }
                        write!(f, "{child}")?;
                    }
                    f.write_str(")")?;
                }
                LogicTree::Stmnt(filter) => write!(f, "and=({filter})")?,
            }
        }
        Ok(())
    }
}
