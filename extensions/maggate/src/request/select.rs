//! The `select=` grammar: columns, renames, casts, JSON paths, aggregates and embedded
//! resources (joins and spreads), which decide the shape of every response.

use std::borrow::Cow;
use std::fmt;

use super::error::Result;
use super::syntax::{Cursor, Field, MAX_DEPTH, PErr, PResult, write_name};

/// One entry of `select=`, possibly with children (an embedded resource).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectItem<'a> {
    /// `*`: every column.
    Star,
    /// A column, a JSON path into it, or an aggregate such as `count()`.
    Field(SelectField<'a>),
    /// `alias:rel!hint!inner(...)`: an embedded resource, nested under its own key.
    Relation(SelectRelation<'a>),
    /// `...rel(...)`: an embedded resource whose columns are merged into the parent.
    Spread(SpreadRelation<'a>),
}

/// A selected column: `alias:col->path::cast.agg()::agg_cast`.
///
/// A bare `count()` is represented, as in PostgREST, by the field `*` with
/// [`Aggregate::Count`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectField<'a> {
    /// The column and JSON path.
    pub field: Field<'a>,
    /// The output name (`alias:`).
    pub alias: Option<Cow<'a, str>>,
    /// `::type` applied to the column before any aggregate.
    pub cast: Option<&'a str>,
    /// `.sum()`, `.avg()`, `.count()`, `.min()`, `.max()` or a bare `count()`.
    pub aggregate: Option<Aggregate>,
    /// `::type` applied to the aggregate's result.
    pub aggregate_cast: Option<&'a str>,
}

/// An embedded resource: `alias:name!hint!join(children)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectRelation<'a> {
    /// The related table, view or function.
    pub name: Cow<'a, str>,
    /// The key the embedding is returned under.
    pub alias: Option<Cow<'a, str>>,
    /// Disambiguates the relationship (a foreign key or column name).
    pub hint: Option<Cow<'a, str>>,
    /// `!inner` or `!left`; `None` leaves the default (left) to the planner.
    pub join: Option<JoinType>,
    /// What is selected from the embedded resource.
    pub children: Vec<SelectItem<'a>>,
}

/// A spread embedding: `...name!hint!join(children)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpreadRelation<'a> {
    /// The related table, view or function.
    pub name: Cow<'a, str>,
    /// Disambiguates the relationship.
    pub hint: Option<Cow<'a, str>>,
    /// `!inner` or `!left`.
    pub join: Option<JoinType>,
    /// What is selected and merged into the parent.
    pub children: Vec<SelectItem<'a>>,
}

/// Aggregate functions PostgREST allows in `select`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    /// `count()`
    Count,
    /// `sum()`
    Sum,
    /// `avg()`
    Avg,
    /// `max()`
    Max,
    /// `min()`
    Min,
}

impl Aggregate {
    /// The function name as written in the query string.
    pub fn as_str(self) -> &'static str {
        match self {
            Aggregate::Count => "count",
            Aggregate::Sum => "sum",
            Aggregate::Avg => "avg",
            Aggregate::Max => "max",
            Aggregate::Min => "min",
        }
    }
}

/// Join kind requested on an embedding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinType {
    /// `!inner`: parents without a match are filtered out.
    Inner,
    /// `!left`: parents are kept (the default).
    Left,
}

const EXPECT_FIELD_END: &[&str] = &[
    "\"->\"",
    "\"::\"",
    "\".\"",
    "\")\"",
    "\",\"",
    "end of input",
];

/// Parses a whole `select` value. An empty value selects nothing, like PostgREST.
pub fn parse_select(src: &str) -> Result<Vec<SelectItem<'_>>> {
    let mut c = Cursor::new(src);
    forest(&mut c, 0)
        .and_then(|items| {
            c.skip_ws();
            c.expect_end(&["\",\"", "end of input"])?;
            Ok(items)
        })
        .map_err(|e| e.into_error("select parameter", src, src))
}

fn forest<'a>(c: &mut Cursor<'a>, depth: usize) -> PResult<Vec<SelectItem<'a>>> {
    let mut items = Vec::new();
    c.skip_ws();
    if c.at_end() || c.peek() == Some(')') {
        return Ok(items);
    }
    loop {
        items.push(item(c, depth)?);
        c.skip_ws();
        if !c.eat_char(',') {
            return Ok(items);
        }
    }
}

fn children<'a>(c: &mut Cursor<'a>, depth: usize) -> PResult<Vec<SelectItem<'a>>> {
    if depth >= MAX_DEPTH {
        return Err(c.err(&["less deeply nested embedding"]));
    }
    c.expect_char('(', "\"(\"")?;
    let kids = forest(c, depth + 1)?;
    c.skip_ws();
    c.expect_char(')', "\")\"")?;
    Ok(kids)
}

fn field_end(c: &mut Cursor<'_>, expecting: &[&'static str]) -> PResult<()> {
    c.skip_ws();
    match c.peek() {
        None | Some(')' | ',') => Ok(()),
        Some(_) => Err(c.err(expecting)),
    }
}

fn item<'a>(c: &mut Cursor<'a>, depth: usize) -> PResult<SelectItem<'a>> {
    c.skip_ws();
    if c.eat("...") {
        let name = c.field_name()?;
        let (hint, join) = embed_params(c)?;
        let children = children(c, depth)?;
        return Ok(SelectItem::Spread(SpreadRelation {
            name,
            hint,
            join,
            children,
        }));
    }
    if c.eat_char('*') {
        field_end(c, &["\")\"", "\",\"", "end of input"])?;
        return Ok(SelectItem::Star);
    }
    let alias = alias(c);
    c.skip_ws();
    if c.eat("count()") {
        let aggregate_cast = cast(c)?;
        field_end(c, &["\"::\"", "\")\"", "\",\"", "end of input"])?;
        return Ok(SelectItem::Field(SelectField {
            field: Field {
                name: Cow::Borrowed("*"),
                json_path: Vec::new(),
            },
            alias,
            cast: None,
            aggregate: Some(Aggregate::Count),
            aggregate_cast,
        }));
    }
    let name = c.field_name()?;
    // PostgREST reserves `count` so that `count()` is never read as an embedding.
    if name != "count" && matches!(c.peek(), Some('!' | '(')) {
        let (hint, join) = embed_params(c)?;
        let children = children(c, depth)?;
        return Ok(SelectItem::Relation(SelectRelation {
            name,
            alias,
            hint,
            join,
            children,
        }));
    }
    let json_path = c.json_path()?;
    c.skip_ws();
    let cast = cast(c)?;
    let aggregate = aggregate(c);
    let aggregate_cast = if aggregate.is_some() {
        self::cast(c)?
    } else {
        None
    };
    field_end(c, EXPECT_FIELD_END)?;
    Ok(SelectItem::Field(SelectField {
        field: Field { name, json_path },
        alias,
        cast,
        aggregate,
        aggregate_cast,
    }))
}

/// `name:` (but not `name::`), tried and abandoned without a trace when absent.
fn alias<'a>(c: &mut Cursor<'a>) -> Option<Cow<'a, str>> {
    let save = c.pos;
    if let Ok(name) = c.field_name()
        && c.rest().starts_with(':')
        && !c.rest().starts_with("::")
    {
        c.pos += 1;
        return Some(name);
    }
    c.pos = save;
    None
}

fn cast<'a>(c: &mut Cursor<'a>) -> PResult<Option<&'a str>> {
    if c.eat("::") {
        c.identifier().map(Some)
    } else {
        Ok(None)
    }
}

fn aggregate(c: &mut Cursor<'_>) -> Option<Aggregate> {
    const AGGS: [Aggregate; 5] = [
        Aggregate::Sum,
        Aggregate::Avg,
        Aggregate::Count,
        Aggregate::Max,
        Aggregate::Min,
    ];
    let rest = c.rest().strip_prefix('.')?;
    for agg in AGGS {
        if let Some(after) = rest.strip_prefix(agg.as_str())
            && after.starts_with("()")
        {
            c.pos += 1 + agg.as_str().len() + 2;
            return Some(agg);
        }
    }
    None
}

type EmbedParams<'a> = (Option<Cow<'a, str>>, Option<JoinType>);

/// Up to two `!param`s: a join type (`left`, `inner`) or a hint. When two hints (or two join
/// types) are given the first wins, as in PostgREST.
fn embed_params<'a>(c: &mut Cursor<'a>) -> PResult<EmbedParams<'a>> {
    let mut hint = None;
    let mut join = None;
    for _ in 0..2 {
        if !c.eat_char('!') {
            break;
        }
        let quoted = c.peek() == Some('"');
        let name = c.field_name()?;
        match (quoted, name.as_ref()) {
            (false, "inner") => join = join.or(Some(JoinType::Inner)),
            (false, "left") => join = join.or(Some(JoinType::Left)),
            _ => hint = hint.or(Some(name)),
        }
    }
    if c.peek() != Some('(') {
        return Err(PErr::new(c.pos, &["\"(\""]));
    }
    Ok((hint, join))
}

fn write_hint(
    f: &mut fmt::Formatter<'_>,
    hint: Option<&str>,
    join: Option<JoinType>,
) -> fmt::Result {
    if let Some(h) = hint {
        f.write_str("!")?;
        if h == "inner" || h == "left" {
            super::syntax::write_quoted(f, h)?;
        } else {
            write_name(f, h)?;
        }
    }
    match join {
        Some(JoinType::Inner) => f.write_str("!inner"),
        Some(JoinType::Left) => f.write_str("!left"),
        None => Ok(()),
    }
}

/// Renders a select list in PostgREST syntax, the inverse of [`parse_select`].
pub struct SelectList<'s, 'a>(pub &'s [SelectItem<'a>]);

impl fmt::Display for SelectList<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, item) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{item}")?;
        }
        Ok(())
    }
}

/// Renders in PostgREST syntax.
impl fmt::Display for SelectItem<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SelectItem::Star => f.write_str("*"),
            SelectItem::Field(sf) => {
                if let Some(a) = &sf.alias {
                    write_name(f, a)?;
                    f.write_str(":")?;
                }
                let bare_count = sf.field.name == "*"
                    && sf.field.json_path.is_empty()
                    && sf.cast.is_none()
                    && sf.aggregate == Some(Aggregate::Count);
                if bare_count {
                    f.write_str("count()")?;
                } else {
                    write!(f, "{}", sf.field)?;
                    if let Some(cast) = sf.cast {
                        write!(f, "::{cast}")?;
                    }
                    if let Some(agg) = sf.aggregate {
                        write!(f, ".{}()", agg.as_str())?;
                    }
                }
                if let Some(cast) = sf.aggregate_cast {
                    write!(f, "::{cast}")?;
                }
                Ok(())
            }
            SelectItem::Relation(r) => {
                if let Some(a) = &r.alias {
                    write_name(f, a)?;
                    f.write_str(":")?;
                }
                write_name(f, &r.name)?;
                write_hint(f, r.hint.as_deref(), r.join)?;
                write!(f, "({})", SelectList(&r.children))
            }
            SelectItem::Spread(s) => {
                f.write_str("...")?;
                write_name(f, &s.name)?;
                write_hint(f, s.hint.as_deref(), s.join)?;
                write!(f, "({})", SelectList(&s.children))
            }
        }
    }
}
