//! The `order=` grammar (`col.desc.nullslast,rel(col).asc`) and the column lists of
//! `columns=` and `on_conflict=`, which share PostgREST's comma-separated name syntax.

use std::borrow::Cow;
use std::fmt;

use super::error::Result;
use super::syntax::{Cursor, Field, PResult, write_name};

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderDirection {
    /// `.asc`
    Asc,
    /// `.desc`
    Desc,
}

/// Where NULLs sort.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderNulls {
    /// `.nullsfirst`
    First,
    /// `.nullslast`
    Last,
}

/// One sort key: `col->path.desc.nullslast`, or `rel(col).asc` for a to-one embedding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderTerm<'a> {
    /// For `rel(col)`: the embedded resource whose column sorts the parent.
    pub relation: Option<Cow<'a, str>>,
    /// The sort column and JSON path.
    pub field: Field<'a>,
    /// `None` leaves the database default (ascending).
    pub direction: Option<OrderDirection>,
    /// `None` leaves the database default.
    pub nulls: Option<OrderNulls>,
}

/// Parses an `order` value.
pub(crate) fn parse_order(src: &str) -> Result<Vec<OrderTerm<'_>>> {
    let mut c = Cursor::new(src);
    order(&mut c).map_err(|e| e.into_error("order", src, src))
}

fn order<'a>(c: &mut Cursor<'a>) -> PResult<Vec<OrderTerm<'a>>> {
    let mut terms = Vec::new();
    loop {
        c.skip_ws();
        let name = c.field_name()?;
        let (relation, field) = if c.eat_char('(') {
            let field = c.lexeme_field()?;
            c.expect_char(')', "\")\"")?;
            (Some(name), field)
        } else {
            let json_path = c.json_path()?;
            c.skip_ws();
            (None, Field { name, json_path })
        };
        let direction = if c.eat(".asc") {
            Some(OrderDirection::Asc)
        } else if c.eat(".desc") {
            Some(OrderDirection::Desc)
        } else {
            None
        };
        let nulls = if c.eat(".nullsfirst") {
            Some(OrderNulls::First)
        } else if c.eat(".nullslast") {
            Some(OrderNulls::Last)
        } else {
            None
        };
        c.skip_ws();
        terms.push(OrderTerm {
            relation,
            field,
            direction,
            nulls,
        });
        if c.eat_char(',') {
            continue;
        }
        if c.at_end() {
            return Ok(terms);
        }
        let expecting: &[&str] = match (direction, nulls) {
            (_, Some(_)) => &["\",\"", "end of input"],
            (Some(_), None) => &["\"nullsfirst\" or \"nullslast\"", "\",\"", "end of input"],
            (None, None) if c.peek() == Some('.') => {
                // Point at the word after the dot, as PostgREST does.
                c.pos += 1;
                &["\"asc\"", "\"desc\"", "\"nullsfirst\"", "\"nullslast\""]
            }
            (None, None) => &["delimiter (.)", "\",\"", "end of input"],
        };
        return Err(c.err(expecting));
    }
}

/// Parses `columns=` / `on_conflict=`: one or more names separated by commas.
pub(crate) fn parse_columns<'a>(what: &str, src: &'a str) -> Result<Vec<Cow<'a, str>>> {
    let mut c = Cursor::new(src);
    let r: PResult<Vec<Cow<'a, str>>> = (|| {
        let mut cols = Vec::new();
        loop {
            c.skip_ws();
            cols.push(c.field_name()?);
            c.skip_ws();
            if !c.eat_char(',') {
                break;
            }
        }
        c.expect_end(&["\",\"", "end of input"])?;
        Ok(cols)
    })();
    r.map_err(|e| e.into_error(what, src, src))
}

/// Renders in PostgREST syntax.
impl fmt::Display for OrderTerm<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.relation {
            Some(rel) => {
                write_name(f, rel)?;
                write!(f, "({})", self.field)?;
            }
            None => write!(f, "{}", self.field)?,
        }
        match self.direction {
            Some(OrderDirection::Asc) => f.write_str(".asc")?,
            Some(OrderDirection::Desc) => f.write_str(".desc")?,
            None => {}
        }
        match self.nulls {
            Some(OrderNulls::First) => f.write_str(".nullsfirst"),
            Some(OrderNulls::Last) => f.write_str(".nullslast"),
            None => Ok(()),
        }
    }
}
