//! Lexical pieces shared by every query parameter (field names, quoted values, JSON paths)
//! and the cursor they are read with, so that `select`, filters, `order` and logic trees
//! agree on what a name is, exactly as PostgREST's single Parsec grammar does.

use std::borrow::Cow;
use std::fmt;

use super::error::Error;

/// Nesting limit for embedded resources and logic trees: deep input must yield an error,
/// never a stack overflow.
pub(crate) const MAX_DEPTH: usize = 64;

/// A column (or `*`) with an optional JSON path, e.g. `data->a->>0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field<'a> {
    /// Column name, unquoted and unescaped.
    pub name: Cow<'a, str>,
    /// JSON operators applied to the column, in order; empty for a plain column.
    pub json_path: Vec<JsonOperation<'a>>,
}

/// One `->` or `->>` step of a JSON path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonOperation<'a> {
    /// Whether the step yields JSON (`->`) or text (`->>`).
    pub arrow: JsonArrow,
    /// The key or array index looked up.
    pub operand: JsonOperand<'a>,
}

/// The two JSON access operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonArrow {
    /// `->`: the result stays JSON.
    Arrow,
    /// `->>`: the result is text.
    DoubleArrow,
}

/// What a JSON step looks up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonOperand<'a> {
    /// An object key, e.g. `->name`.
    Key(Cow<'a, str>),
    /// An array index as written, digits with an optional leading `-`, e.g. `->-1`. Kept as
    /// text so that no index can overflow; SQL building emits it verbatim.
    Index(&'a str),
}

/// A parse failure inside one parameter: where, and what would have been accepted there.
/// Alternatives that both fail keep the error that got furthest, as Parsec does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PErr {
    pub pos: usize,
    pub expecting: Vec<&'static str>,
    /// Where Parsec would report the column when it differs from `pos` (after a `try`).
    pub column_pos: Option<usize>,
}

pub(crate) type PResult<T> = std::result::Result<T, PErr>;

impl PErr {
    pub fn new(pos: usize, expecting: &[&'static str]) -> PErr {
        PErr {
            pos,
            expecting: expecting.to_vec(),
            column_pos: None,
        }
    }

    /// Parsec's merge: the error further into the input wins; at the same place the
    /// expectations of both are listed.
    pub fn merge(self, other: PErr) -> PErr {
        match self.pos.cmp(&other.pos) {
            std::cmp::Ordering::Greater => self,
            std::cmp::Ordering::Less => other,
            std::cmp::Ordering::Equal => {
                let mut expecting = self.expecting;
                for e in other.expecting {
                    if !expecting.contains(&e) {
                        expecting.push(e);
                    }
                }
                PErr {
                    pos: self.pos,
                    expecting,
                    column_pos: self.column_pos.or(other.column_pos),
                }
            }
        }
    }

    /// Turns the failure into PostgREST's PGRST100 error. `name_src` is the text shown in the
    /// message, `pos_src` the text positions are counted in (they differ only for logic
    /// trees, where PostgREST parses the key's operator glued to the value).
    pub fn into_error(self, what: &str, name_src: &str, pos_src: &str) -> Error {
        let mut details = String::with_capacity(48);
        match pos_src.get(self.pos..).and_then(|r| r.chars().next()) {
            Some(c) => {
                details.push_str("unexpected ");
                let mut buf = [0u8; 4];
                details.push_str(&show_str(c.encode_utf8(&mut buf)));
            }
            None => details.push_str("unexpected end of input"),
        }
        if !self.expecting.is_empty() {
            details.push_str(" expecting ");
            let n = self.expecting.len();
            for (i, e) in self.expecting.iter().enumerate() {
                if i > 0 {
                    details.push_str(if i + 1 == n { " or " } else { ", " });
                }
                details.push_str(e);
            }
        }
        Error::parse(
            what,
            name_src,
            pos_src,
            self.column_pos.unwrap_or(self.pos),
            details,
        )
    }
}

fn show_str(s: &str) -> String {
    let mut out = String::new();
    super::error::haskell_show(&mut out, s);
    out
}

pub(crate) const EXPECT_FIELD_NAME: &str = "field name (* or [a..z0..9_$])";

/// A byte cursor over one parameter's text. Every slice it hands out borrows from the input.
pub(crate) struct Cursor<'a> {
    pub src: &'a str,
    pub pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(src: &'a str) -> Cursor<'a> {
        Cursor { src, pos: 0 }
    }

    pub fn rest(&self) -> &'a str {
        self.src.get(self.pos..).unwrap_or("")
    }

    pub fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    pub fn at_end(&self) -> bool {
        self.pos >= self.src.len()
    }

    pub fn eat(&mut self, s: &str) -> bool {
        if self.rest().starts_with(s) {
            self.pos += s.len();
            true
        } else {
            false
        }
    }

    pub fn eat_char(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    pub fn expect_char(&mut self, c: char, expecting: &'static str) -> PResult<()> {
        if self.eat_char(c) {
            Ok(())
        } else {
            Err(self.err(&[expecting]))
        }
    }

    /// PostgREST's `ws`: only spaces and tabs are insignificant.
    pub fn skip_ws(&mut self) {
        let rest = self.rest();
        let trimmed = rest.trim_start_matches([' ', '\t']);
        self.pos += rest.len() - trimmed.len();
    }

    pub fn err(&self, expecting: &[&'static str]) -> PErr {
        PErr::new(self.pos, expecting)
    }

    /// Requires the end of the parameter. PostgREST silently ignores trailing text after a
    /// complete `select`, logic tree or `in` list; we refuse it so typos do not pass unseen.
    pub fn expect_end(&self, expecting: &[&'static str]) -> PResult<()> {
        if self.at_end() {
            Ok(())
        } else {
            Err(self.err(expecting))
        }
    }

    /// `"..."` with backslash escaping any character. Borrows unless an escape was used.
    pub fn quoted(&mut self) -> PResult<Cow<'a, str>> {
        if !self.eat_char('"') {
            return Err(self.err(&["\"\\\"\""]));
        }
        let start = self.pos;
        let bytes = self.src.as_bytes();
        let mut escaped = false;
        let mut i = start;
        while i < bytes.len() {
            match bytes[i] {
                b'"' => {
                    self.pos = i + 1;
                    let raw = &self.src[start..i];
                    return Ok(if escaped {
                        Cow::Owned(unescape(raw))
                    } else {
                        Cow::Borrowed(raw)
                    });
                }
                b'\\' => {
                    escaped = true;
                    // Skip the escaped character whole, even when it is multi-byte.
                    let next = self.src[i + 1..].chars().next().map_or(0, char::len_utf8);
                    if next == 0 {
                        self.pos = bytes.len();
                        return Err(self.err(&["\"\\\"\""]));
                    }
                    i += 1 + next;
                }
                _ => i += 1,
            }
        }
        self.pos = bytes.len();
        Err(self.err(&["\"\\\"\""]))
    }

    /// `sepByDash`: runs of `seg` characters joined by `-` (a `-` that starts `->` ends the
    /// name instead), each run stripped of surrounding whitespace.
    fn dashed(&mut self, seg: fn(char) -> bool, expecting: &'static str) -> PResult<Cow<'a, str>> {
        let start = self.pos;
        loop {
            let run = self.rest();
            let len = run.find(|c: char| !seg(c)).unwrap_or(run.len());
            if len == 0 {
                return Err(self.err(&[expecting]));
            }
            self.pos += len;
            let rest = self.rest();
            if rest.starts_with('-') && !rest.starts_with("->") {
                self.pos += 1;
            } else {
                break;
            }
        }
        let text = &self.src[start..self.pos];
        if text.contains('-') && text.split('-').any(|s| s.trim().len() != s.len()) {
            Ok(Cow::Owned(
                text.split('-').map(str::trim).collect::<Vec<_>>().join("-"),
            ))
        } else {
            Ok(Cow::Borrowed(text.trim()))
        }
    }

    /// PostgREST's `pFieldName`: a quoted name, or identifiers joined by dashes.
    pub fn field_name(&mut self) -> PResult<Cow<'a, str>> {
        if self.peek() == Some('"') {
            self.quoted()
        } else {
            self.dashed(is_ident_char, EXPECT_FIELD_NAME)
        }
    }

    /// PostgREST's `pIdentifier` (casts, FTS languages): letters, digits, `_`, ` `, `$`.
    pub fn identifier(&mut self) -> PResult<&'a str> {
        let run = self.rest();
        let len = run.find(|c: char| !is_ident_char(c)).unwrap_or(run.len());
        if len == 0 {
            return Err(self.err(&["letter or digit"]));
        }
        self.pos += len;
        Ok(run[..len].trim())
    }

    /// `name` followed by an optional JSON path.
    pub fn field(&mut self) -> PResult<Field<'a>> {
        let name = self.field_name()?;
        let json_path = self.json_path()?;
        Ok(Field { name, json_path })
    }

    /// PostgREST's `pField`: a field surrounded by optional spaces.
    pub fn lexeme_field(&mut self) -> PResult<Field<'a>> {
        self.skip_ws();
        let f = self.field()?;
        self.skip_ws();
        Ok(f)
    }

    pub fn json_path(&mut self) -> PResult<Vec<JsonOperation<'a>>> {
        let mut path = Vec::new();
        loop {
            let arrow = if self.eat("->>") {
                JsonArrow::DoubleArrow
            } else if self.eat("->") {
                JsonArrow::Arrow
            } else {
                return Ok(path);
            };
            let operand = match self.json_index() {
                Some(idx) => JsonOperand::Index(idx),
                None if self.peek() == Some('"') => JsonOperand::Key(self.quoted()?),
                None => JsonOperand::Key(self.dashed(is_json_key_char, EXPECT_JSON_KEY)?),
            };
            path.push(JsonOperation { arrow, operand });
        }
    }

    /// An array index counts only when the number ends the step; `->1a` is the key `1a`.
    fn json_index(&mut self) -> Option<&'a str> {
        let rest = self.rest();
        let digits_from = usize::from(rest.starts_with('-'));
        let tail = &rest[digits_from..];
        let ndigits = tail
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(tail.len());
        if ndigits == 0 {
            return None;
        }
        let len = digits_from + ndigits;
        let after = &rest[len..];
        // PostgREST does not list `)` here, which turns `rel(arr->0)` into the key "0";
        // we accept it so an index inside an embedding stays an index.
        let ends = after.is_empty()
            || after.starts_with("->")
            || after.starts_with("::")
            || after.starts_with(['.', ',', ')']);
        if ends {
            self.pos += len;
            Some(&rest[..len])
        } else {
            None
        }
    }
}

const EXPECT_JSON_KEY: &str = "any non reserved character different from: .,>()";

/// Parsec's `letter <|> digit <|> oneOf "_ $"`.
pub(crate) fn is_ident_char(c: char) -> bool {
    c.is_alphabetic() || c.is_ascii_digit() || matches!(c, '_' | ' ' | '$')
}

fn is_json_key_char(c: char) -> bool {
    !matches!(c, '(' | '-' | ':' | '.' | ',' | '>' | ')')
}

fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Writes `s` as a double-quoted value, escaping `"` and `\`.
pub(crate) fn write_quoted(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_str("\"")?;
    for c in s.chars() {
        if c == '"' || c == '\\' {
            f.write_str("\\")?;
        }
        write!(f, "{c}")?;
    }
    f.write_str("\"")
}

/// Writes a field name bare when that reads back identically, quoted otherwise.
pub(crate) fn write_name(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    let bare = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
    if bare {
        f.write_str(s)
    } else {
        write_quoted(f, s)
    }
}

impl fmt::Display for JsonOperation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.arrow {
            JsonArrow::Arrow => "->",
            JsonArrow::DoubleArrow => "->>",
        })?;
        match &self.operand {
            JsonOperand::Index(i) => f.write_str(i),
            JsonOperand::Key(k) => {
                let bare = k.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                    && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if bare {
                    f.write_str(k)
                } else {
                    write_quoted(f, k)
                }
            }
        }
    }
}

/// Renders in PostgREST syntax: `name->key->>0`.
impl fmt::Display for Field<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_name(f, &self.name)?;
        for op in &self.json_path {
            write!(f, "{op}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dashed_names_are_joined_and_stripped() {
        let mut c = Cursor::new("a - b->c");
        assert_eq!(c.field_name().unwrap(), "a-b");
        assert_eq!(c.rest(), "->c");
    }

    #[test]
    fn quoted_with_escapes_allocates_only_then() {
        let mut c = Cursor::new(r#""a\"b""#);
        assert!(matches!(c.quoted().unwrap(), Cow::Owned(s) if s == "a\"b"));
        let mut c = Cursor::new(r#""ab""#);
        assert!(matches!(c.quoted().unwrap(), Cow::Borrowed("ab")));
    }
}
