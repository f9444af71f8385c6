//! Logic trees (`or=(a.eq.1,and(b.gt.2,c.lt.3))`, `not.and=`, `rel.or=`): boolean
//! combinations of filters that plain `col=op.value` parameters (always ANDed) cannot express.

use std::borrow::Cow;
use std::fmt;

use super::error::Result;
use super::filter::{Filter, ValueSyntax, op_expr};
use super::syntax::{Cursor, EXPECT_FIELD_NAME, MAX_DEPTH, PErr, PResult};

/// `and` / `or`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogicOperator {
    /// All children must hold.
    And,
    /// At least one child must hold.
    Or,
}

/// A boolean expression over filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogicTree<'a> {
    /// `[not.]and(...)` / `[not.]or(...)`.
    Expr {
        /// `not.` prefix.
        negated: bool,
        /// How the children combine.
        op: LogicOperator,
        /// At least one child.
        children: Vec<LogicTree<'a>>,
    },
    /// A single filter, e.g. `a.eq.1`.
    Stmnt(Filter<'a>),
}

/// Parses a logic parameter: `key` (`or`, `not.and`, `rel.or`...) gives the embed path,
/// negation and operator; `value` is the parenthesised list.
pub(crate) fn parse_logic<'a>(
    key: &'a str,
    value: &'a str,
) -> Result<(Vec<Cow<'a, str>>, LogicTree<'a>)> {
    let mut kc = Cursor::new(key);
    let (path, negated, op) =
        logic_path(&mut kc).map_err(|e| e.into_error("logic path", key, key))?;
    let mut c = Cursor::new(value);
    let tree = children(&mut c, 0)
        .and_then(|children| {
            c.expect_end(&["end of input"])?;
            Ok(LogicTree::Expr {
                negated,
                op,
                children,
            })
        })
        .map_err(|e| {
            // PostgREST parses `op <> value` (e.g. `not.or(...)`) and counts columns in that.
            let prefix = match (negated, op) {
                (false, LogicOperator::Or) => "or",
                (false, LogicOperator::And) => "and",
                (true, LogicOperator::Or) => "not.or",
                (true, LogicOperator::And) => "not.and",
            };
            let glued = format!("{prefix}{value}");
            let shifted = PErr {
                pos: e.pos + prefix.len(),
                column_pos: e.column_pos.map(|p| p + prefix.len()),
                expecting: e.expecting,
            };
            shifted.into_error("logic tree", value, &glued)
        })?;
    Ok((path, tree))
}

/// Every segment named `not` anywhere in the key negates, and is dropped from the path,
/// exactly as PostgREST's `pLogicPath` does.
fn logic_path<'a>(c: &mut Cursor<'a>) -> PResult<(Vec<Cow<'a, str>>, bool, LogicOperator)> {
    let mut segs = vec![c.field_name()?];
    while c.eat_char('.') {
        segs.push(c.field_name()?);
    }
    c.expect_end(&["delimiter (.)", "end of input"])?;
    let op = match segs.pop().as_deref() {
        Some("and") => LogicOperator::And,
        Some("or") => LogicOperator::Or,
        _ => return Err(PErr::new(0, &["logic operator (and, or)"])),
    };
    let negated = segs.iter().any(|s| s == "not");
    segs.retain(|s| s != "not");
    Ok((segs, negated, op))
}

fn children<'a>(c: &mut Cursor<'a>, depth: usize) -> PResult<Vec<LogicTree<'a>>> {
    if depth >= MAX_DEPTH {
        return Err(c.err(&["less deeply nested logic tree"]));
    }
    c.skip_ws();
    c.expect_char('(', "\"(\"")?;
    c.skip_ws();
    let mut kids = Vec::new();
    loop {
        kids.push(tree(c, depth + 1)?);
        c.skip_ws();
        if !c.eat_char(',') {
            break;
        }
        c.skip_ws();
    }
    c.expect_char(')', "\")\"")?;
    c.skip_ws();
    Ok(kids)
}

fn tree<'a>(c: &mut Cursor<'a>, depth: usize) -> PResult<LogicTree<'a>> {
    let start = c.pos;
    let as_filter: PResult<Filter<'a>> = (|| {
        let field = c.lexeme_field()?;
        c.expect_char('.', "delimiter (.)")?;
        let (negated, operation) = op_expr(c, ValueSyntax::Logic)?;
        Ok(Filter {
            field,
            negated,
            operation,
        })
    })();
    let filter_err = match as_filter {
        Ok(f) => return Ok(LogicTree::Stmnt(f)),
        Err(e) => e,
    };
    c.pos = start;
    let negated = c.eat("not.");
    let op = if c.eat("and") {
        LogicOperator::And
    } else if c.eat("or") {
        LogicOperator::Or
    } else {
        // Parsec only merges the errors of alternatives that consumed nothing; once `not.`
        // was read, the logic-operator error alone is reported.
        return Err(if negated {
            c.err(&["logic operator (and, or)"])
        } else {
            filter_err.merge(c.err(&[
                EXPECT_FIELD_NAME,
                "negation operator (not)",
                "logic operator (and, or)",
            ]))
        });
    };
    let children = children(c, depth)?;
    Ok(LogicTree::Expr {
        negated,
        op,
        children,
    })
}

/// Renders in PostgREST syntax, e.g. `not.or(a.eq."1",and(b.gt."2"))`.
impl fmt::Display for LogicTree<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogicTree::Stmnt(filter) => write!(f, "{filter}"),
            LogicTree::Expr {
                negated,
                op,
                children,
            } => {
                if *negated {
                    f.write_str("not.")?;
                }
                f.write_str(match op {
                    LogicOperator::And => "and(",
                    LogicOperator::Or => "or(",
                })?;
                for (i, child) in children.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{child}")?;
                }
                f.write_str(")")
            }
        }
    }
}
