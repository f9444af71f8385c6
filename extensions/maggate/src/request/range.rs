//! Row windows: `limit`/`offset` parameters (top level and per embedding) and the `Range`
//! header, combined into one effective offset and limit the way PostgREST does.

use super::error::{Error, RangeError, Result};

/// The rows to return: skip `offset`, then return at most `limit` (`None`: all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueryRange {
    /// Rows skipped.
    pub offset: u64,
    /// Rows returned at most.
    pub limit: Option<u64>,
}

/// The raw `limit` and `offset` of one level, as given in the query string.
///
/// PostgREST ignores values that are not integers; so do we.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LimitOffset {
    /// `limit=`
    pub limit: Option<i64>,
    /// `offset=`
    pub offset: Option<i64>,
}

/// An inclusive window `[lower, upper]` (`upper: None` is unbounded), possibly empty.
#[derive(Clone, Copy)]
struct Window {
    lower: i128,
    upper: Option<i128>,
}

impl Window {
    const ALL: Window = Window {
        lower: 0,
        upper: None,
    };

    fn is_empty(self) -> bool {
        self.upper.is_some_and(|u| u < self.lower)
    }

    fn intersect(self, other: Window) -> Window {
        let upper = match (self.upper, other.upper) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Window {
            lower: self.lower.max(other.lower),
            upper,
        }
    }

    fn to_range(self) -> QueryRange {
        let offset = u64::try_from(self.lower.max(0)).unwrap_or(u64::MAX);
        let limit = self
            .upper
            .map(|u| u64::try_from((u - self.lower + 1).max(0)).unwrap_or(u64::MAX));
        QueryRange { offset, limit }
    }
}

impl LimitOffset {
    fn window(self) -> Window {
        let offset = i128::from(self.offset.unwrap_or(0));
        Window {
            lower: offset,
            upper: self.limit.map(|l| offset + i128::from(l) - 1),
        }
    }

    /// The window of an embedded level, where no `Range` header applies.
    pub fn to_range(self) -> Result<QueryRange> {
        check(self)?;
        Ok(self.window().to_range())
    }
}

fn check(lo: LimitOffset) -> Result<()> {
    // PostgREST lets a negative offset through to PostgreSQL, which then fails; refuse early.
    if lo.offset.is_some_and(|o| o < 0) {
        return Err(Error::InvalidRange(RangeError::NegativeOffset));
    }
    if lo.limit.is_some_and(|l| l < 0) {
        return Err(Error::InvalidRange(RangeError::NegativeLimit));
    }
    Ok(())
}

/// Parses a `Range` header value: `first-` or `first-last`. Like PostgREST, anything that
/// does not match `^[0-9]+-[0-9]*$` (including `items=0-9`) is ignored, and `Range-Unit`
/// is not consulted. Pass `None` for methods other than GET: RFC 9110 says to ignore it.
fn header_window(header: Option<&str>) -> Window {
    let Some(h) = header else {
        return Window::ALL;
    };
    let Some((lo, hi)) = h.split_once('-') else {
        return Window::ALL;
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if lo.is_empty() || !digits(lo) || !digits(hi) {
        return Window::ALL;
    }
    // Saturate absurdly long numbers instead of failing: they mean "very far".
    let num = |s: &str| s.parse::<u64>().map_or(i128::from(u64::MAX), i128::from);
    Window {
        lower: num(lo),
        upper: (!hi.is_empty()).then(|| num(hi)),
    }
}

/// The top-level window from `limit`/`offset` and the `Range` header.
///
/// `limit=0` always wins (it is how clients ask for a count only). Otherwise the header
/// and the parameters intersect; an empty result is PGRST103 (HTTP 416), reported as
/// `LowerGtUpper` when the header alone was backwards and `NegativeLimit` otherwise.
pub fn effective_range(top: LimitOffset, range_header: Option<&str>) -> Result<QueryRange> {
    check(top)?;
    let params = top.window();
    if top.limit == Some(0) {
        return Ok(QueryRange {
            offset: params.to_range().offset,
            limit: Some(0),
        });
    }
    let header = header_window(range_header);
    let combined = header.intersect(params);
    if combined.is_empty() {
        let why = if header.is_empty() {
            RangeError::LowerGtUpper
        } else {
            RangeError::NegativeLimit
        };
        return Err(Error::InvalidRange(why));
    }
    Ok(combined.to_range())
}
