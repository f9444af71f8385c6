//! Property tests: no input makes the parser panic, and generated ASTs rendered back to
//! PostgREST syntax parse to the same AST.

// Test code: a failed write to a String or a failed parse should abort the test loudly.
#![allow(clippy::unwrap_used)]

use std::borrow::Cow;

use maggate::request::{
    Aggregate, ApiQuery, Field, Filter, FtsOperator, IsValue, JoinType, JsonArrow, JsonOperand,
    JsonOperation, LogicOperator, LogicTree, Operation, QuantOperator, Quantifier, QueryParams,
    Request, RequestHeaders, SelectField, SelectItem, SelectList, SelectRelation, SimpleOperator,
    SpreadRelation, parse_select,
};
use proptest::prelude::*;

const AVOID: &[&str] = &[
    "select",
    "columns",
    "on_conflict",
    "order",
    "limit",
    "offset",
    "and",
    "or",
    "not",
    "count",
];

fn name() -> impl Strategy<Value = String> {
    prop_oneof![3 => "[a-z_][a-z0-9_]{0,6}", 1 => "\\PC{0,5}"]
        .prop_filter("reserved word", |s| !AVOID.contains(&s.as_str()))
}

fn cow(s: String) -> Cow<'static, str> {
    Cow::Owned(s)
}

fn json_path() -> impl Strategy<Value = Vec<JsonOperation<'static>>> {
    let op = (
        any::<bool>(),
        prop_oneof![
            "\\PC{0,4}".prop_map(|k| JsonOperand::Key(cow(k))),
            "-?[0-9]{1,3}".prop_map(|i| JsonOperand::Index(Box::leak(i.into_boxed_str()))),
        ],
    )
        .prop_map(|(double, operand)| JsonOperation {
            arrow: if double {
                JsonArrow::DoubleArrow
            } else {
                JsonArrow::Arrow
            },
            operand,
        });
    prop::collection::vec(op, 0..3)
}

fn field() -> impl Strategy<Value = Field<'static>> {
    (name(), json_path()).prop_map(|(n, json_path)| Field {
        name: cow(n),
        json_path,
    })
}

fn ident() -> impl Strategy<Value = &'static str> {
    "[a-z][a-z0-9_]{0,5}".prop_map(|s| &*Box::leak(s.into_boxed_str()))
}

fn aggregate() -> impl Strategy<Value = Aggregate> {
    prop_oneof![
        Just(Aggregate::Count),
        Just(Aggregate::Sum),
        Just(Aggregate::Avg),
        Just(Aggregate::Max),
        Just(Aggregate::Min)
    ]
}

fn join() -> impl Strategy<Value = Option<JoinType>> {
    prop_oneof![
        Just(None),
        Just(Some(JoinType::Inner)),
        Just(Some(JoinType::Left))
    ]
}

fn select_item() -> impl Strategy<Value = SelectItem<'static>> {
    let leaf = prop_oneof![
        Just(SelectItem::Star),
        (
            field(),
            prop::option::of(name()),
            prop::option::of(ident()),
            prop::option::of((aggregate(), prop::option::of(ident())))
        )
            .prop_map(|(field, alias, cast, agg)| SelectItem::Field(SelectField {
                field,
                alias: alias.map(cow),
                cast,
                aggregate: agg.map(|a| a.0),
                aggregate_cast: agg.and_then(|a| a.1),
            })),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        let kids = prop::collection::vec(inner, 0..4);
        prop_oneof![
            (
                name(),
                prop::option::of(name()),
                prop::option::of(name()),
                join(),
                kids.clone()
            )
                .prop_map(|(n, alias, hint, join, children)| {
                    SelectItem::Relation(SelectRelation {
                        name: cow(n),
                        alias: alias.map(cow),
                        hint: hint.map(cow),
                        join,
                        children,
                    })
                }),
            (name(), prop::option::of(name()), join(), kids).prop_map(
                |(n, hint, join, children)| SelectItem::Spread(SpreadRelation {
                    name: cow(n),
                    hint: hint.map(cow),
                    join,
                    children,
                })
            ),
        ]
    })
}

fn value() -> impl Strategy<Value = Cow<'static, str>> {
    "\\PC{0,8}".prop_map(cow)
}

fn operation() -> impl Strategy<Value = Operation<'static>> {
    let simple = prop_oneof![
        Just(SimpleOperator::NotEqual),
        Just(SimpleOperator::Contains),
        Just(SimpleOperator::Contained),
        Just(SimpleOperator::Overlap),
        Just(SimpleOperator::StrictlyLeft),
        Just(SimpleOperator::StrictlyRight),
        Just(SimpleOperator::NotExtendsRight),
        Just(SimpleOperator::NotExtendsLeft),
        Just(SimpleOperator::Adjacent),
    ];
    let quant = prop_oneof![
        Just(QuantOperator::Equal),
        Just(QuantOperator::GreaterThanEqual),
        Just(QuantOperator::GreaterThan),
        Just(QuantOperator::LessThanEqual),
        Just(QuantOperator::LessThan),
        Just(QuantOperator::Like),
        Just(QuantOperator::ILike),
        Just(QuantOperator::Match),
        Just(QuantOperator::IMatch),
    ];
    let quantifier = prop_oneof![
        Just(None),
        Just(Some(Quantifier::Any)),
        Just(Some(Quantifier::All))
    ];
    let is = prop_oneof![
        Just(IsValue::Null),
        Just(IsValue::NotNull),
        Just(IsValue::True),
        Just(IsValue::False),
        Just(IsValue::Unknown),
    ];
    let fts = prop_oneof![
        Just(FtsOperator::Fts),
        Just(FtsOperator::Plain),
        Just(FtsOperator::Phrase),
        Just(FtsOperator::Websearch),
    ];
    prop_oneof![
        (simple, value()).prop_map(|(op, value)| Operation::Simple { op, value }),
        (quant, quantifier, value()).prop_map(|(op, quantifier, value)| Operation::Quant {
            op,
            quantifier,
            value
        }),
        prop::collection::vec(value(), 1..4).prop_map(Operation::In),
        is.prop_map(Operation::Is),
        value().prop_map(Operation::IsDistinctFrom),
        (fts, prop::option::of(ident()), value()).prop_map(|(op, language, value)| {
            Operation::Fts {
                op,
                language,
                value,
            }
        }),
    ]
}

fn filter() -> impl Strategy<Value = Filter<'static>> {
    (field(), any::<bool>(), operation()).prop_map(|(field, negated, operation)| Filter {
        field,
        negated,
        operation,
    })
}

fn logic_tree() -> impl Strategy<Value = LogicTree<'static>> {
    let leaf = filter().prop_map(LogicTree::Stmnt);
    let tree = leaf.prop_recursive(4, 24, 4, |inner| {
        (
            any::<bool>(),
            any::<bool>(),
            prop::collection::vec(inner, 1..4),
        )
            .prop_map(|(negated, and, children)| LogicTree::Expr {
                negated,
                op: if and {
                    LogicOperator::And
                } else {
                    LogicOperator::Or
                },
                children,
            })
    });
    // The root of a logic parameter is always an expression.
    (
        any::<bool>(),
        any::<bool>(),
        prop::collection::vec(tree, 1..4),
    )
        .prop_map(|(negated, and, children)| LogicTree::Expr {
            negated,
            op: if and {
                LogicOperator::And
            } else {
                LogicOperator::Or
            },
            children,
        })
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn key(path: &[String], f: &Field<'_>) -> String {
    let mut k = String::new();
    for p in path {
        k.push_str(
            &Field {
                name: Cow::Borrowed(p),
                json_path: Vec::new(),
            }
            .to_string(),
        );
        k.push('.');
    }
    k + &f.to_string()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_input_never_panics(qs in "\\PC{0,64}", prefer in "\\PC{0,32}", range in "\\PC{0,12}") {
        let params = QueryParams::decode(&qs);
        let prefer = [prefer.as_str()];
        let headers = RequestHeaders { prefer: &prefer, range: Some(&range) };
        let _ = Request::parse(&params, &headers);
    }

    #[test]
    fn grammar_shaped_input_never_panics(
        qs in "[a-z.,:!()\"\\\\*{}>&=;% -]{0,48}|(select|order|or|and|id|limit)=[a-z0-9.,:!()\"\\\\*{}>&=;% -]{0,48}"
    ) {
        let params = QueryParams::decode(&qs);
        if let Err(e) = ApiQuery::parse(&params) {
            // Every error renders to the JSON shape and names a PGRST code.
            prop_assert!(e.code().starts_with("PGRST"));
            let json = e.to_json();
            prop_assert!(json.starts_with(r#"{"code":"#), "{}", json);
        }
    }

    #[test]
    fn select_round_trips(items in prop::collection::vec(select_item(), 1..4)) {
        let rendered = SelectList(&items).to_string();
        let parsed = parse_select(&rendered);
        prop_assert_eq!(parsed.as_ref().ok(), Some(&items), "rendered: {}", rendered);
    }

    #[test]
    fn filter_round_trips(path in prop::collection::vec(name(), 0..3), f in filter()) {
        let qs = format!("{}={}", encode(&key(&path, &f.field)), encode(&f.value_syntax().to_string()));
        let params = QueryParams::decode(&qs);
        let q = ApiQuery::parse(&params);
        let q = q.as_ref().map_err(|e| format!("{e} for {qs}"));
        prop_assert!(q.is_ok(), "{:?}", q.err());
        let q = q.ok().unwrap();
        prop_assert_eq!(q.filters.len(), 1);
        prop_assert_eq!(&q.filters[0].item, &f);
        prop_assert_eq!(&q.filters[0].path, &path.iter().map(|p| Cow::Borrowed(p.as_str())).collect::<Vec<_>>());
    }

    #[test]
    fn logic_round_trips(tree in logic_tree()) {
        let LogicTree::Expr { negated, op, children } = &tree else { unreachable!() };
        let k = format!("{}{}", if *negated { "not." } else { "" }, match op { LogicOperator::And => "and", LogicOperator::Or => "or" });
        let rendered = tree.to_string();
        let value = &rendered[rendered.find('(').unwrap()..];
        let qs = format!("{k}={}", encode(value));
        let params = QueryParams::decode(&qs);
        let q = ApiQuery::parse(&params);
        prop_assert!(q.is_ok(), "{:?} for {}", q.as_ref().err(), rendered);
        let q = q.ok().unwrap();
        prop_assert_eq!(q.logic.len(), 1);
        prop_assert_eq!(&q.logic[0].item, &tree);
        prop_assert!(!children.is_empty());
    }
}
