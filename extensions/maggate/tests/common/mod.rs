//! A compact, readable dump of a parsed request, so grammar tests read as "query in,
//! structure out" (rust-analyzer style).

// Test code: a failed write to a String or a failed parse should abort the test loudly.
#![allow(clippy::unwrap_used)]

use std::fmt::Write as _;

use maggate::request::{
    ApiQuery, Field, Filter, JsonArrow, JsonOperand, LogicTree, Operation, OrderDirection,
    OrderNulls, OrderTerm, Preferences, Quantifier, QueryParams, QueryRange, Request,
    RequestHeaders, SelectItem,
};

pub fn field(f: &Field<'_>) -> String {
    let mut s = f.name.to_string();
    for op in &f.json_path {
        s.push_str(match op.arrow {
            JsonArrow::Arrow => "->",
            JsonArrow::DoubleArrow => "->>",
        });
        match &op.operand {
            JsonOperand::Key(k) => write!(s, "'{k}'").unwrap(),
            JsonOperand::Index(i) => s.push_str(i),
        }
    }
    s
}

pub fn select(items: &[SelectItem<'_>]) -> String {
    items.iter().map(select_item).collect::<Vec<_>>().join(" ")
}

fn select_item(item: &SelectItem<'_>) -> String {
    match item {
        SelectItem::Star => "*".into(),
        SelectItem::Field(f) => {
            let mut s = format!("field({}", field(&f.field));
            if let Some(a) = &f.alias {
                write!(s, " as={a}").unwrap();
            }
            if let Some(c) = f.cast {
                write!(s, " cast={c}").unwrap();
            }
            if let Some(a) = f.aggregate {
                write!(s, " agg={}", a.as_str()).unwrap();
            }
            if let Some(c) = f.aggregate_cast {
                write!(s, " aggcast={c}").unwrap();
            }
            s + ")"
        }
        SelectItem::Relation(r) => {
            let mut s = format!("embed({}", r.name);
            if let Some(a) = &r.alias {
                write!(s, " as={a}").unwrap();
            }
            if let Some(h) = &r.hint {
                write!(s, " hint={h}").unwrap();
            }
            if let Some(j) = r.join {
                write!(s, " join={j:?}").unwrap();
            }
            format!("{s})[{}]", select(&r.children))
        }
        SelectItem::Spread(r) => {
            let mut s = format!("spread({}", r.name);
            if let Some(h) = &r.hint {
                write!(s, " hint={h}").unwrap();
            }
            if let Some(j) = r.join {
                write!(s, " join={j:?}").unwrap();
            }
            format!("{s})[{}]", select(&r.children))
        }
    }
}

pub fn filter(f: &Filter<'_>) -> String {
    let not = if f.negated { "not " } else { "" };
    let op = match &f.operation {
        Operation::Simple { op, value } => format!("{} {value:?}", op.as_str()),
        Operation::Quant {
            op,
            quantifier,
            value,
        } => {
            let q = match quantifier {
                Some(Quantifier::Any) => "(any)",
                Some(Quantifier::All) => "(all)",
                None => "",
            };
            format!("{}{q} {value:?}", op.as_str())
        }
        Operation::In(items) => format!("in {items:?}"),
        Operation::Is(v) => format!("is {}", v.as_str()),
        Operation::IsDistinctFrom(v) => format!("isdistinct {v:?}"),
        Operation::Fts {
            op,
            language,
            value,
        } => match language {
            Some(l) => format!("{}({l}) {value:?}", op.as_str()),
            None => format!("{} {value:?}", op.as_str()),
        },
    };
    format!("{}: {not}{op}", field(&f.field))
}

fn logic(t: &LogicTree<'_>) -> String {
    match t {
        LogicTree::Stmnt(f) => filter(f),
        LogicTree::Expr {
            negated,
            op,
            children,
        } => format!(
            "{}{op:?}({})",
            if *negated { "not " } else { "" },
            children.iter().map(logic).collect::<Vec<_>>().join(", ")
        ),
    }
}

fn order(t: &OrderTerm<'_>) -> String {
    let mut s = match &t.relation {
        Some(r) => format!("{r}({})", field(&t.field)),
        None => field(&t.field),
    };
    match t.direction {
        Some(OrderDirection::Asc) => s.push_str(" asc"),
        Some(OrderDirection::Desc) => s.push_str(" desc"),
        None => {}
    }
    match t.nulls {
        Some(OrderNulls::First) => s.push_str(" nullsfirst"),
        Some(OrderNulls::Last) => s.push_str(" nullslast"),
        None => {}
    }
    s
}

fn path(p: &[std::borrow::Cow<'_, str>]) -> String {
    if p.is_empty() {
        String::new()
    } else {
        format!("{}/", p.join("/"))
    }
}

pub fn query(q: &ApiQuery<'_>) -> String {
    let mut out = Vec::new();
    if q.select != [SelectItem::Star] {
        out.push(format!("select {}", select(&q.select)));
    }
    for f in &q.filters {
        out.push(format!("filter {}{}", path(&f.path), filter(&f.item)));
    }
    for l in &q.logic {
        out.push(format!("logic {}{}", path(&l.path), logic(&l.item)));
    }
    for o in &q.order {
        let terms = o.item.iter().map(order).collect::<Vec<_>>().join(", ");
        out.push(format!("order {}{terms}", path(&o.path)));
    }
    for r in &q.ranges {
        let show = |v: Option<i64>| v.map_or("-".to_string(), |v| v.to_string());
        out.push(format!(
            "limit {}{} offset {}",
            path(&r.path),
            show(r.item.limit),
            show(r.item.offset)
        ));
    }
    if let Some(c) = &q.columns {
        out.push(format!("columns {}", c.join(", ")));
    }
    if let Some(c) = &q.on_conflict {
        out.push(format!("on_conflict {}", c.join(", ")));
    }
    out.join("\n")
}

fn prefs(p: &Preferences<'_>) -> String {
    let mut out = Vec::new();
    if let Some(v) = p.representation {
        out.push(format!("return={v:?}"));
    }
    if let Some(v) = p.count {
        out.push(format!("count={v:?}"));
    }
    if let Some(v) = p.resolution {
        out.push(format!("resolution={v:?}"));
    }
    if let Some(v) = p.missing {
        out.push(format!("missing={v:?}"));
    }
    if let Some(v) = p.handling {
        out.push(format!("handling={v:?}"));
    }
    if let Some(v) = p.transaction {
        out.push(format!("tx={v:?}"));
    }
    if p.single_object_params {
        out.push("params=single-object".into());
    }
    if let Some(v) = p.timezone {
        out.push(format!("timezone={v}"));
    }
    if let Some(v) = p.max_affected {
        out.push(format!("max-affected={v}"));
    }
    if !p.invalid.is_empty() {
        out.push(format!("invalid={:?}", p.invalid));
    }
    out.join(" ")
}

pub fn error(e: &maggate::Error) -> String {
    format!(
        "error {} {}: {} | {}",
        e.code(),
        e.status(),
        e.message(),
        e.details().unwrap_or_default()
    )
}

/// Parses `qs` with the given headers and dumps either the request or the error.
pub fn render(qs: &str, prefer: &[&str], range: Option<&str>) -> String {
    let params = QueryParams::decode(qs);
    let headers = RequestHeaders { prefer, range };
    match Request::parse(&params, &headers) {
        Err(e) => error(&e),
        Ok(req) => {
            let mut out = query(&req.query);
            if req.range != QueryRange::default() {
                let limit = req.range.limit.map_or("all".to_string(), |l| l.to_string());
                if !out.is_empty() {
                    out.push('\n');
                }
                write!(out, "window offset={} limit={limit}", req.range.offset).unwrap();
            }
            let p = prefs(&req.preferences);
            if !p.is_empty() {
                if !out.is_empty() {
                    out.push('\n');
                }
                write!(out, "prefer {p}").unwrap();
            }
            out
        }
    }
}

fn normalize(s: &str) -> String {
    s.trim()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The one assertion of the data-driven tests.
#[track_caller]
pub fn check_with(qs: &str, prefer: &[&str], range: Option<&str>, expect: &str) {
    let actual = render(qs, prefer, range);
    let (a, e) = (normalize(&actual), normalize(expect));
    assert!(a == e, "\ninput:    {qs}\nexpected:\n{e}\nactual:\n{a}\n");
}

#[track_caller]
pub fn check(qs: &str, expect: &str) {
    check_with(qs, &[], None, expect);
}
