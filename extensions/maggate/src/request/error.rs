//! The one error type of the request grammar, shaped like PostgREST's so that clients written
//! against PostgREST (supabase-js, postgrest-py...) keep understanding our failures.

use std::fmt::Write as _;

/// Why a `Range` header or `limit`/`offset` pair cannot be satisfied (PostgREST's `RangeError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RangeError {
    /// A negative `limit`, or a `limit`/`offset` window that is empty.
    NegativeLimit,
    /// A `Range` header whose lower bound is above its upper bound, e.g. `10-5`.
    LowerGtUpper,
    /// A negative `offset`. PostgREST passes it to PostgreSQL, which rejects it; we answer
    /// with a PGRST103 of our own wording instead.
    NegativeOffset,
}

/// A request that MagGate refuses, carrying what PostgREST would answer.
///
/// Use [`Error::code`], [`Error::message`], [`Error::details`], [`Error::hint`] and
/// [`Error::status`] to build the HTTP response, or [`Error::to_json`] for the body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// PGRST100: a query parameter does not follow the grammar. `message` is PostgREST's
    /// `"failed to parse ... (input)" (line L, column C)` and `details` says what was
    /// unexpected and what was expected instead.
    #[error("{message}: {details}")]
    QueryParam {
        /// Which parameter failed and where, e.g. `"failed to parse filter (x)" (line 1, column 1)`.
        message: String,
        /// `unexpected ... expecting ...`, in the style of PostgREST's parser.
        details: String,
    },
    /// PGRST103: the requested range is empty or negative (HTTP 416).
    #[error("Requested range not satisfiable")]
    InvalidRange(RangeError),
    /// PGRST122: unknown preferences were sent together with `Prefer: handling=strict`.
    #[error("Invalid preferences given with handling=strict")]
    InvalidPreferences(Vec<String>),
}

/// Result alias for the request grammar.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// PostgREST's stable error code, e.g. `PGRST100`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::QueryParam { .. } => "PGRST100",
            Error::InvalidRange(_) => "PGRST103",
            Error::InvalidPreferences(_) => "PGRST122",
        }
    }

    /// The HTTP status PostgREST answers with.
    pub fn status(&self) -> u16 {
        match self {
            Error::QueryParam { .. } | Error::InvalidPreferences(_) => 400,
            Error::InvalidRange(_) => 416,
        }
    }

    /// The `message` member of the error body.
    pub fn message(&self) -> String {
        match self {
            Error::QueryParam { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }

    /// The `details` member of the error body, `None` when PostgREST sends `null`.
    pub fn details(&self) -> Option<String> {
        match self {
            Error::QueryParam { details, .. } => Some(details.clone()),
            Error::InvalidRange(RangeError::NegativeLimit) => {
                Some("Limit should be greater than or equal to zero.".to_owned())
            }
            Error::InvalidRange(RangeError::NegativeOffset) => {
                Some("Offset should be greater than or equal to zero.".to_owned())
            }
            Error::InvalidRange(RangeError::LowerGtUpper) => Some(
                "The lower boundary must be lower than or equal to the upper boundary in the \
                 Range header."
                    .to_owned(),
            ),
            Error::InvalidPreferences(prefs) => {
                Some(format!("Invalid preferences: {}", prefs.join(", ")))
            }
        }
    }

    /// The `hint` member of the error body; none of the grammar errors carries one.
    pub fn hint(&self) -> Option<String> {
        None
    }

    /// The PostgREST error body: `{"code":..,"message":..,"details":..,"hint":..}`.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(128);
        out.push_str("{\"code\":");
        json_string(&mut out, Some(self.code()));
        out.push_str(",\"message\":");
        json_string(&mut out, Some(&self.message()));
        out.push_str(",\"details\":");
        json_string(&mut out, self.details().as_deref());
        out.push_str(",\"hint\":");
        json_string(&mut out, self.hint().as_deref());
        out.push('}');
        out
    }

    /// Builds a PGRST100 error in PostgREST's format. `what` names the parameter
    /// (`select parameter`, `filter`...), `name_src` is the text quoted in the message and
    /// `pos` the byte offset of the failure in `pos_src`.
    pub(crate) fn parse(
        what: &str,
        name_src: &str,
        pos_src: &str,
        pos: usize,
        details: String,
    ) -> Error {
        let (line, column) = parsec_position(pos_src, pos);
        let mut message = String::with_capacity(name_src.len() + what.len() + 48);
        let name = format!("failed to parse {what} ({name_src})");
        haskell_show(&mut message, &name);
        let _ = write!(message, " (line {line}, column {column})");
        Error::QueryParam { message, details }
    }
}

/// Line and column as Parsec counts them: newlines start a line, tabs jump to the next
/// multiple of 8 plus one. Matching this keeps our messages byte-identical to PostgREST's.
fn parsec_position(src: &str, pos: usize) -> (usize, usize) {
    let mut line = 1;
    let mut column = 1;
    for c in src.get(..pos).unwrap_or(src).chars() {
        match c {
            '\n' => {
                line += 1;
                column = 1;
            }
            '\t' => column = column + 8 - ((column - 1) % 8),
            _ => column += 1,
        }
    }
    (line, column)
}

/// Haskell's `show` for strings, because PostgREST's message is `show` of a Parsec position
/// and therefore quotes and escapes the parameter text that way.
pub(crate) fn haskell_show(out: &mut String, s: &str) {
    const NAMES: [&str; 32] = [
        "NUL", "SOH", "STX", "ETX", "EOT", "ENQ", "ACK", "a", "b", "t", "n", "v", "f", "r", "SO",
        "SI", "DLE", "DC1", "DC2", "DC3", "DC4", "NAK", "SYN", "ETB", "CAN", "EM", "SUB", "ESC",
        "FS", "GS", "RS", "US",
    ];
    out.push('"');
    let mut numeric_escape_pending = false;
    let mut so_pending = false;
    for c in s.chars() {
        // `\1234` followed by a digit, or `\SO` followed by `H`, needs `\&` to stay unambiguous.
        if (numeric_escape_pending && c.is_ascii_digit()) || (so_pending && c == 'H') {
            out.push_str("\\&");
        }
        numeric_escape_pending = false;
        so_pending = false;
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x7f' => out.push_str("\\DEL"),
            c if (c as u32) < 32 => {
                out.push('\\');
                out.push_str(NAMES[c as usize]);
                so_pending = c == '\x0e';
            }
            c if (c as u32) > 127 => {
                let _ = write!(out, "\\{}", c as u32);
                numeric_escape_pending = true;
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn json_string(out: &mut String, s: Option<&str>) {
    let Some(s) = s else {
        out.push_str("null");
        return;
    };
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn haskell_show_escapes_like_ghc() {
        let mut s = String::new();
        haskell_show(&mut s, "a\"b\\c\né1\x0eH");
        assert_eq!(s, r#""a\"b\\c\n\233\&1\SO\&H""#);
    }

    #[test]
    fn parsec_columns_count_tabs_to_eight() {
        assert_eq!(parsec_position("ab\tc", 3), (1, 9));
        assert_eq!(parsec_position("a\nb", 3), (2, 2));
    }
}
