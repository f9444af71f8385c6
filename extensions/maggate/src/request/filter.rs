//! Horizontal filters (`col=op.value`): the operator vocabulary, `not.`, `any`/`all`
//! quantifiers, `in` lists and `is` values. Shared with logic trees, which embed the same
//! operator expressions with a different value syntax.

use std::borrow::Cow;
use std::fmt;

use super::error::Result;
use super::syntax::{Cursor, Field, PErr, PResult, write_name, write_quoted};

/// One filter: `field` compared by `operation`, negated with `not.`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter<'a> {
    /// The filtered column and optional JSON path.
    pub field: Field<'a>,
    /// `not.` prefix.
    pub negated: bool,
    /// Operator and operand(s).
    pub operation: Operation<'a>,
}

/// An operator with its operand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation<'a> {
    /// Operators that take one value and no quantifier (`neq`, `cs`, ranges...).
    Simple {
        /// The operator.
        op: SimpleOperator,
        /// The raw value, to be bound as a parameter.
        value: Cow<'a, str>,
    },
    /// Operators that accept `(any)`/`(all)` with a `{a,b}` list value.
    Quant {
        /// The operator.
        op: QuantOperator,
        /// `(any)` or `(all)`.
        quantifier: Option<Quantifier>,
        /// The raw value (a `{...}` array literal when quantified).
        value: Cow<'a, str>,
    },
    /// `in.(a,b,"c,d")`.
    In(Vec<Cow<'a, str>>),
    /// `is.null`, `is.not_null`, `is.true`...
    Is(IsValue),
    /// `isdistinct.value`.
    IsDistinctFrom(Cow<'a, str>),
    /// Full-text search, with an optional text-search configuration.
    Fts {
        /// Which `to_tsquery` flavour.
        op: FtsOperator,
        /// `fts(english)`.
        language: Option<&'a str>,
        /// The query text.
        value: Cow<'a, str>,
    },
}

/// Operators without quantifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimpleOperator {
    /// `neq`: `<>`
    NotEqual,
    /// `cs`: `@>`
    Contains,
    /// `cd`: `<@`
    Contained,
    /// `ov`: `&&`
    Overlap,
    /// `sl`: `<<`
    StrictlyLeft,
    /// `sr`: `>>`
    StrictlyRight,
    /// `nxr`: `&<`
    NotExtendsRight,
    /// `nxl`: `&>`
    NotExtendsLeft,
    /// `adj`: `-|-`
    Adjacent,
}

/// Operators that accept `(any)`/`(all)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantOperator {
    /// `eq`: `=`
    Equal,
    /// `gte`: `>=`
    GreaterThanEqual,
    /// `gt`: `>`
    GreaterThan,
    /// `lte`: `<=`
    LessThanEqual,
    /// `lt`: `<`
    LessThan,
    /// `like`
    Like,
    /// `ilike`
    ILike,
    /// `match`: `~`
    Match,
    /// `imatch`: `~*`
    IMatch,
}

/// `(any)` / `(all)` after a quantifiable operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantifier {
    /// `op ANY(...)`
    Any,
    /// `op ALL(...)`
    All,
}

/// Values accepted by `is.` (case-insensitively).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsValue {
    /// `null`
    Null,
    /// `not_null`
    NotNull,
    /// `true`
    True,
    /// `false`
    False,
    /// `unknown`
    Unknown,
}

/// Full-text search operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FtsOperator {
    /// `fts`: `to_tsquery`
    Fts,
    /// `plfts`: `plainto_tsquery`
    Plain,
    /// `phfts`: `phraseto_tsquery`
    Phrase,
    /// `wfts`: `websearch_to_tsquery`
    Websearch,
}

const SIMPLE: [(&str, SimpleOperator); 9] = [
    ("neq", SimpleOperator::NotEqual),
    ("cs", SimpleOperator::Contains),
    ("cd", SimpleOperator::Contained),
    ("ov", SimpleOperator::Overlap),
    ("sl", SimpleOperator::StrictlyLeft),
    ("sr", SimpleOperator::StrictlyRight),
    ("nxr", SimpleOperator::NotExtendsRight),
    ("nxl", SimpleOperator::NotExtendsLeft),
    ("adj", SimpleOperator::Adjacent),
];

const QUANT: [(&str, QuantOperator); 9] = [
    ("eq", QuantOperator::Equal),
    ("gte", QuantOperator::GreaterThanEqual),
    ("gt", QuantOperator::GreaterThan),
    ("lte", QuantOperator::LessThanEqual),
    ("lt", QuantOperator::LessThan),
    ("like", QuantOperator::Like),
    ("ilike", QuantOperator::ILike),
    ("match", QuantOperator::Match),
    ("imatch", QuantOperator::IMatch),
];

const FTS: [(&str, FtsOperator); 4] = [
    ("fts", FtsOperator::Fts),
    ("plfts", FtsOperator::Plain),
    ("phfts", FtsOperator::Phrase),
    ("wfts", FtsOperator::Websearch),
];

const IS: [(&str, IsValue); 5] = [
    ("null", IsValue::Null),
    ("not_null", IsValue::NotNull),
    ("true", IsValue::True),
    ("false", IsValue::False),
    ("unknown", IsValue::Unknown),
];

impl SimpleOperator {
    /// The operator as written in the query string.
    pub fn as_str(self) -> &'static str {
        SIMPLE
            .iter()
            .find(|(_, o)| *o == self)
            .map_or("", |(s, _)| s)
    }
}

impl QuantOperator {
    /// The operator as written in the query string.
    pub fn as_str(self) -> &'static str {
        QUANT
            .iter()
            .find(|(_, o)| *o == self)
            .map_or("", |(s, _)| s)
    }
}

impl FtsOperator {
    /// The operator as written in the query string.
    pub fn as_str(self) -> &'static str {
        FTS.iter().find(|(_, o)| *o == self).map_or("", |(s, _)| s)
    }
}

impl IsValue {
    /// The value as written in the query string (lower case).
    pub fn as_str(self) -> &'static str {
        IS.iter().find(|(_, o)| *o == self).map_or("", |(s, _)| s)
    }
}

/// Where an operator expression appears: the value syntax differs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum ValueSyntax {
    /// A query parameter value: everything after the operator is the value, verbatim.
    Horizontal,
    /// Inside `or=(...)`: a value ends at `,` or `)` unless quoted or a `{...}` array.
    Logic,
}

/// Parses a filter key (`col`, `col->>k`, `rel.col`, `a.b.col`) into embed path and field.
pub(crate) fn parse_tree_path(key: &str) -> Result<(Vec<Cow<'_, str>>, Field<'_>)> {
    let mut c = Cursor::new(key);
    tree_path(&mut c).map_err(|e| e.into_error("tree path", key, key))
}

fn tree_path<'a>(c: &mut Cursor<'a>) -> PResult<(Vec<Cow<'a, str>>, Field<'a>)> {
    let mut path = Vec::new();
    let mut name = c.field_name()?;
    while c.eat_char('.') {
        path.push(name);
        name = c.field_name()?;
    }
    let json_path = c.json_path()?;
    c.expect_end(&["\"->\"", "delimiter (.)", "end of input"])?;
    Ok((path, Field { name, json_path }))
}

/// Parses a horizontal filter value such as `not.eq.5` or `in.(1,2)`.
pub(crate) fn parse_filter_value(value: &str) -> Result<(bool, Operation<'_>)> {
    let mut c = Cursor::new(value);
    op_expr(&mut c, ValueSyntax::Horizontal)
        .and_then(|r| {
            c.expect_end(&["end of input"])?;
            Ok(r)
        })
        .map_err(|e| e.into_error("filter", value, value))
}

/// `[not.]operator...`, PostgREST's `pOpExpr`.
pub(crate) fn op_expr<'a>(
    c: &mut Cursor<'a>,
    syntax: ValueSyntax,
) -> PResult<(bool, Operation<'a>)> {
    let negated = c.eat("not.");
    let op_start = c.pos;
    let rest = c.rest();
    let word_len = rest.find(['.', '(']).unwrap_or(rest.len());
    let word = &rest[..word_len];
    let unknown = || {
        // Parsec reports the column where the operator starts but the character where its
        // last alternative (`not.`) stopped matching; mimic that for identical details.
        let offset = if negated {
            0
        } else {
            rest.bytes()
                .zip(b"not.")
                .take_while(|(a, b)| a == *b)
                .count()
        };
        let mut e = PErr::new(op_start, &[]);
        e.expecting = if negated {
            vec!["operator (eq, gt, ...)"]
        } else {
            vec!["\"not\"", "operator (eq, gt, ...)"]
        };
        (e, offset)
    };
    c.pos += word_len;
    let operation = match word {
        "in" => {
            c.expect_char('.', "delimiter (.)")?;
            Operation::In(list(c)?)
        }
        "is" => {
            c.expect_char('.', "delimiter (.)")?;
            Operation::Is(is_value(c)?)
        }
        "isdistinct" => {
            c.expect_char('.', "delimiter (.)")?;
            Operation::IsDistinctFrom(single_value(c, syntax)?)
        }
        _ => {
            if let Some(&(_, op)) = FTS.iter().find(|(s, _)| *s == word) {
                let language = if c.eat_char('(') {
                    let lang = c.identifier()?;
                    c.expect_char(')', "\")\"")?;
                    Some(lang)
                } else {
                    None
                };
                c.expect_char('.', "delimiter (.)")?;
                Operation::Fts {
                    op,
                    language,
                    value: single_value(c, syntax)?,
                }
            } else if let Some(&(_, op)) = SIMPLE.iter().find(|(s, _)| *s == word) {
                c.expect_char('.', "delimiter (.)")?;
                Operation::Simple {
                    op,
                    value: single_value(c, syntax)?,
                }
            } else if let Some(&(_, op)) = QUANT.iter().find(|(s, _)| *s == word) {
                let quantifier = if c.eat("(any)") {
                    Some(Quantifier::Any)
                } else if c.eat("(all)") {
                    Some(Quantifier::All)
                } else {
                    None
                };
                c.expect_char('.', "delimiter (.)")?;
                Operation::Quant {
                    op,
                    quantifier,
                    value: single_value(c, syntax)?,
                }
            } else {
                let (mut e, offset) = unknown();
                e.pos = op_start + offset;
                e.column_pos = Some(op_start);
                c.pos = op_start;
                return Err(e);
            }
        }
    };
    Ok((negated, operation))
}

fn is_value(c: &mut Cursor<'_>) -> PResult<IsValue> {
    let rest = c.rest();
    for (s, v) in IS {
        if rest.len() >= s.len()
            && rest.is_char_boundary(s.len())
            && rest[..s.len()].eq_ignore_ascii_case(s)
        {
            c.pos += s.len();
            return Ok(v);
        }
    }
    Err(c.err(&["isVal: (null, not_null, true, false, unknown)"]))
}

fn single_value<'a>(c: &mut Cursor<'a>, syntax: ValueSyntax) -> PResult<Cow<'a, str>> {
    match syntax {
        ValueSyntax::Horizontal => {
            let v = c.rest();
            c.pos = c.src.len();
            Ok(Cow::Borrowed(v))
        }
        ValueSyntax::Logic => {
            let save = c.pos;
            if c.peek() == Some('"') {
                if let Ok(v) = c.quoted()
                    && matches!(c.peek(), None | Some(',' | ')'))
                {
                    return Ok(v);
                }
                c.pos = save;
            }
            let rest = c.rest();
            // A `{...}` array literal may contain commas; it ends at the first brace.
            if let Some(inner) = rest.strip_prefix('{')
                && let Some(end) = inner.find(['{', '}'])
                && inner.as_bytes()[end] == b'}'
            {
                c.pos += end + 2;
                return Ok(Cow::Borrowed(&rest[..end + 2]));
            }
            Ok(Cow::Borrowed(unquoted_element(c)))
        }
    }
}

fn unquoted_element<'a>(c: &mut Cursor<'a>) -> &'a str {
    let rest = c.rest();
    let len = rest.find([',', ')']).unwrap_or(rest.len());
    c.pos += len;
    &rest[..len]
}

/// `(a,b,"c,d")`: PostgREST strips spaces after `(` only, keeps other spaces inside items.
fn list<'a>(c: &mut Cursor<'a>) -> PResult<Vec<Cow<'a, str>>> {
    c.skip_ws();
    c.expect_char('(', "\"(\"")?;
    c.skip_ws();
    let mut items = Vec::new();
    loop {
        let save = c.pos;
        let mut item = None;
        if c.peek() == Some('"') {
            if let Ok(v) = c.quoted() {
                if matches!(c.peek(), None | Some(',' | ')')) {
                    item = Some(v);
                } else {
                    c.pos = save;
                }
            } else {
                c.pos = save;
            }
        }
        let item = match item {
            Some(v) => v,
            None => Cow::Borrowed(unquoted_element(c)),
        };
        items.push(item);
        if !c.eat_char(',') {
            break;
        }
    }
    c.skip_ws();
    c.expect_char(')', "\")\"")?;
    c.skip_ws();
    Ok(items)
}

fn write_value(f: &mut fmt::Formatter<'_>, v: &str, syntax: ValueSyntax) -> fmt::Result {
    match syntax {
        ValueSyntax::Horizontal => f.write_str(v),
        ValueSyntax::Logic => write_quoted(f, v),
    }
}

pub(crate) fn write_operation(
    f: &mut fmt::Formatter<'_>,
    negated: bool,
    op: &Operation<'_>,
    syntax: ValueSyntax,
) -> fmt::Result {
    if negated {
        f.write_str("not.")?;
    }
    match op {
        Operation::Simple { op, value } => {
            write!(f, "{}.", op.as_str())?;
            write_value(f, value, syntax)
        }
        Operation::Quant {
            op,
            quantifier,
            value,
        } => {
            f.write_str(op.as_str())?;
            match quantifier {
                Some(Quantifier::Any) => f.write_str("(any)")?,
                Some(Quantifier::All) => f.write_str("(all)")?,
                None => {}
            }
            f.write_str(".")?;
            write_value(f, value, syntax)
        }
        Operation::In(items) => {
            f.write_str("in.(")?;
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    f.write_str(",")?;
                }
                write_quoted(f, item)?;
            }
            f.write_str(")")
        }
        Operation::Is(v) => write!(f, "is.{}", v.as_str()),
        Operation::IsDistinctFrom(v) => {
            f.write_str("isdistinct.")?;
            write_value(f, v, syntax)
        }
        Operation::Fts {
            op,
            language,
            value,
        } => {
            f.write_str(op.as_str())?;
            if let Some(l) = language {
                write!(f, "({l})")?;
            }
            f.write_str(".")?;
            write_value(f, value, syntax)
        }
    }
}

impl Filter<'_> {
    /// The query-parameter value form of this filter, e.g. `not.eq.5`.
    pub fn value_syntax(&self) -> impl fmt::Display + '_ {
        struct V<'s, 'a>(&'s Filter<'a>);
        impl fmt::Display for V<'_, '_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_operation(
                    f,
                    self.0.negated,
                    &self.0.operation,
                    ValueSyntax::Horizontal,
                )
            }
        }
        V(self)
    }
}

/// Renders as it appears inside a logic tree: `field.not.op.value`, values quoted.
impl fmt::Display for Filter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.", self.field)?;
        write_operation(f, self.negated, &self.operation, ValueSyntax::Logic)
    }
}

/// Writes an embed path plus field as a filter key (`rel.col->k`), quoting names that
/// PostgREST would otherwise route as reserved parameters.
pub(crate) fn write_key(
    f: &mut fmt::Formatter<'_>,
    path: &[Cow<'_, str>],
    last: &str,
) -> fmt::Result {
    for p in path {
        write_name(f, p)?;
        f.write_str(".")?;
    }
    if super::is_reserved_word(last) {
        write_quoted(f, last)
    } else {
        write_name(f, last)
    }
}
