//! Fingerprints and rules: decides whether a value, lexed in one context, is a SQL injection.
//!
//! The core idea is a *breakout gate*: an injection only works if the value, pasted into the
//! query, leaves the literal it was meant to be and continues as valid SQL. So in a quote
//! context the first token must be a closed string followed by SQL (a logic operator, union,
//! `;`, a comment, an operator, a clause keyword); in the bare context it must be a number (or
//! `(select`, or a time/error function) followed by SQL. Prose almost never passes the gate:
//! `O'Brien` is a string followed by a bareword, `Students' and teachers' votes` passes the
//! gate but matches no shape and no rule. Only gated values are fingerprinted and scanned.
//!
//! The fingerprint is the class letters of the first [`FINGERPRINT_LEN`] folded tokens with
//! parentheses elided (they change grouping, not the shape of the attack; a function token
//! already implies its call parenthesis). [`SHAPES`] is our own set, derived per technique
//! below; it is not libinjection's database.

use super::lexer::{Class, Context, Flags, Kw, Lexer, Token};

/// How many folded tokens the fingerprint keeps.
pub const FINGERPRINT_LEN: usize = 5;

/// How many folded tokens a value is analysed to; an attack must be valid SQL from its first
/// token, so the front of the value decides and padding after this cannot hide the breakout.
pub const MAX_TOKENS: usize = 48;

/// Injection technique a shape or rule points to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Technique {
    /// Always-true condition: `' or '1'='1`.
    Tautology,
    /// Boolean condition or subquery after a breakout: `' and substr(...)='a`.
    BooleanBlind,
    /// `union select`.
    Union,
    /// Functions that leak data in error messages.
    ErrorBased,
    /// Delay functions.
    TimeBlind,
    /// A second statement after `;`.
    Stacked,
    /// A breakout followed only by a comment: `admin'--`.
    CommentTruncation,
    /// Files, network or OS shell (`load_file`, `xp_cmdshell`, `into outfile`).
    Dangerous,
    /// Catalogue enumeration (`information_schema`, `sqlite_master`).
    Schema,
}

impl Technique {
    /// Short name used in evidence.
    pub const fn name(self) -> &'static str {
        match self {
            Technique::Tautology => "tautology",
            Technique::BooleanBlind => "boolean",
            Technique::Union => "union",
            Technique::ErrorBased => "error-based",
            Technique::TimeBlind => "time-based",
            Technique::Stacked => "stacked",
            Technique::CommentTruncation => "comment-truncation",
            Technique::Dangerous => "dangerous-function",
            Technique::Schema => "schema-enumeration",
        }
    }
}

/// Extra condition on a shape, for letters too coarse on their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Guard {
    /// No condition.
    None,
    /// The token at this fingerprint position must be `order by`, `group by`, `having` or
    /// `limit`, not any keyword (`customers' from 5` is prose).
    Clause(usize),
    /// The breakout string holds no whitespace (`'-'`, `1'*'`): prose that quotes an
    /// operator (`the "~" operator`) has words before its quote.
    Tight,
}

/// An attack shape: a fingerprint prefix (`$` = the value ends there).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Pattern over the fingerprint alphabet of [`Class::code`], plus `$`.
    pub pattern: &'static str,
    /// What it indicates.
    pub technique: Technique,
    /// Extra condition.
    pub guard: Guard,
}

const fn shape(pattern: &'static str, technique: Technique) -> Shape {
    Shape {
        pattern,
        technique,
        guard: Guard::None,
    }
}

use Technique::{BooleanBlind as B, CommentTruncation as C, Stacked as X, Tautology as T};

/// Our attack shapes. `s` is the breakout string in a quote context, `n` the number in a bare
/// one; both families mirror each other.
///
/// * Tautology / boolean: breakout, logic operator, then an operand that is followed by a
///   comparison, a terminator or the end (`s&s=`, `s&n$`, `s&nc`); a bareword operand only
///   with a comparison after it (`s&b=`) because `Students' and teachers` is prose.
/// * Subquery and function after the logic operator (`s&S…`, `s&f`), `not` (`s&o…`).
/// * Operator right after the breakout: `'='` (`s=s$`), `'+sleep(5)+'` (`sof`), `'-(select`.
/// * Union: `U` then `S` then something a select list starts with (never a bare word alone:
///   `workers' union select leaders`).
/// * Stacked: `;` then a validated verb (`X` only survives folding when its object is right:
///   `drop table`, `delete from`, `exec xp_…`) or `select` with a select list.
/// * Comment truncation: breakout then only a comment (`sc$`, `s;c$`).
/// * Clause injection: `' order by 3--` (`skn` with a clause guard).
pub static SHAPES: &[Shape] = &[
    // tautology and boolean conditions, quote contexts
    shape("s&s=", T),
    shape("s&s$", T),
    shape("s&sc", T),
    shape("s&s;", T),
    shape("s&s&", T),
    shape("s&sU", T),
    shape("s&n=", T),
    shape("s&no", T),
    shape("s&kk", B),
    shape("n&kk", B),
    shape("sUSb;", Technique::Union),
    shape("nUSb;", Technique::Union),
    shape("s&n$", T),
    shape("s&nc", T),
    shape("s&n;", T),
    shape("s&n&", T),
    shape("s&nU", T),
    shape("s&v=", B),
    shape("s&b=", B),
    shape("s&f", B),
    shape("s&Sn", B),
    shape("s&Sf", B),
    shape("s&Sv", B),
    shape("s&So", B),
    shape("s&Ss", B),
    shape("s&Sbk", B),
    shape("s&on", B),
    shape("s&of", B),
    shape("s&oS", B),
    shape("s&os", B),
    shape("s&ob=", B),
    // operator straight after the breakout
    shape("s=s$", T),
    shape("s=s&", T),
    shape("s=sc", T),
    shape("s=nc", T),
    shape("s=n&", T),
    shape("s=n;", T),
    shape("sof", B),
    // arithmetic on the empty string: `'-'`, `'*'` (MySQL turns both strings into 0), `' div 0--`
    Shape {
        pattern: "sos$",
        technique: T,
        guard: Guard::Tight,
    },
    Shape {
        pattern: "sonc",
        technique: B,
        guard: Guard::Tight,
    },
    shape("soS", B),
    shape("sov", B),
    // union
    shape("sUSn", Technique::Union),
    shape("sUSf", Technique::Union),
    shape("sUSv", Technique::Union),
    shape("sUSo", Technique::Union),
    shape("sUSs", Technique::Union),
    shape("sUS,", Technique::Union),
    shape("sUSbk", Technique::Union),
    shape("sUSb,", Technique::Union),
    shape("sUSbc", Technique::Union),
    // stacked
    shape("s;X", X),
    shape("s;Sn", X),
    shape("s;Sf", X),
    shape("s;Sv", X),
    shape("s;So", X),
    shape("s;Ss", X),
    shape("s;Sbk", X),
    // comment truncation
    shape("sc$", C),
    shape("s;c$", C),
    // clause injection
    Shape {
        pattern: "sknc",
        technique: B,
        guard: Guard::Clause(1),
    },
    Shape {
        pattern: "skn$",
        technique: B,
        guard: Guard::Clause(1),
    },
    Shape {
        pattern: "skn,",
        technique: B,
        guard: Guard::Clause(1),
    },
    Shape {
        pattern: "skn=",
        technique: B,
        guard: Guard::Clause(1),
    },
    // bare (numeric) context
    shape("n&n=", T),
    shape("n&nc", T),
    shape("n&n;", T),
    shape("n&s=", T),
    shape("n&v=", B),
    shape("n&f", B),
    shape("n&Sn", B),
    shape("n&Sf", B),
    shape("n&Sv", B),
    shape("n&So", B),
    shape("n&Sbk", B),
    shape("n&on", B),
    shape("n&of", B),
    shape("n&oS", B),
    shape("noS", B),
    shape("nUSn", Technique::Union),
    shape("nUSf", Technique::Union),
    shape("nUSv", Technique::Union),
    shape("nUSo", Technique::Union),
    shape("nUSs", Technique::Union),
    shape("nUS,", Technique::Union),
    shape("nUSbk", Technique::Union),
    shape("nUSb,", Technique::Union),
    shape("nUSbc", Technique::Union),
    shape("n;X", X),
    shape("n;Sn", X),
    shape("n;Sf", X),
    shape("n;Sv", X),
    shape("n;So", X),
    shape("n;Ss", X),
    shape("n;Sbk", X),
    Shape {
        pattern: "nknc",
        technique: B,
        guard: Guard::Clause(1),
    },
    // a parenthesised subquery as the whole numeric value: `(select ...)`
    shape("Sn", B),
    shape("Sf", B),
    shape("Sv", B),
    shape("So", B),
    shape("Ss", B),
    shape("Sbk", B),
];

/// The class letters of the first folded tokens.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Fingerprint {
    codes: [u8; FINGERPRINT_LEN],
    len: u8,
}

impl Fingerprint {
    /// The fingerprint as text, e.g. `s&s=s`.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.codes[..usize::from(self.len)]).unwrap_or("")
    }

    /// Whether `pattern` (with an optional trailing `$`) matches this fingerprint.
    pub fn matches(&self, pattern: &str) -> bool {
        let fp = self.as_str();
        match pattern.strip_suffix('$') {
            Some(exact) => fp == exact,
            None => fp.starts_with(pattern),
        }
    }
}

impl std::fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Fingerprint({})", self.as_str())
    }
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A high-signal rule that fired.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rule {
    /// Logic operator then `x = x`, or `or 1` / `or true` at the end.
    Tautology,
    /// `union [all] select` with a select list.
    UnionSelect,
    /// `;` then a validated statement verb or a select.
    StackedStatement,
    /// A delay function or `waitfor delay`.
    TimeFunction,
    /// An error-leaking function, `convert(int, ...)`, `cast(... as int)`.
    ErrorFunction,
    /// File, network or shell access.
    DangerousFunction,
    /// A system catalogue.
    SchemaObject,
    /// The value ends in a comment that cuts the rest of the query.
    TrailingComment,
    /// Two number literals compared where only injected SQL puts them: as a function's
    /// argument (`elt(5=5,1)`, `iif(3=4,1,1/0)`), after `case when`, or as a whole
    /// parenthesised numeric value (`(5=5)*5`). sqlmap's boolean payloads for numeric slots.
    LiteralComparison,
}

impl Rule {
    /// Short name used in evidence.
    pub const fn name(self) -> &'static str {
        match self {
            Rule::Tautology => "tautology",
            Rule::UnionSelect => "union-select",
            Rule::StackedStatement => "stacked-statement",
            Rule::TimeFunction => "time-function",
            Rule::ErrorFunction => "error-function",
            Rule::DangerousFunction => "dangerous-function",
            Rule::SchemaObject => "schema-object",
            Rule::TrailingComment => "trailing-comment",
            Rule::LiteralComparison => "literal-comparison",
        }
    }

    const fn weight(self) -> f32 {
        match self {
            Rule::Tautology | Rule::UnionSelect | Rule::StackedStatement | Rule::TimeFunction => {
                0.95
            }
            Rule::ErrorFunction | Rule::DangerousFunction => 0.9,
            Rule::SchemaObject => 0.8,
            Rule::TrailingComment => 0.3,
            // Under `sure`: a model sure the value is benign may still veto it.
            Rule::LiteralComparison => 0.8,
        }
    }

    const ALL: [Rule; 9] = [
        Rule::Tautology,
        Rule::UnionSelect,
        Rule::StackedStatement,
        Rule::TimeFunction,
        Rule::ErrorFunction,
        Rule::DangerousFunction,
        Rule::SchemaObject,
        Rule::TrailingComment,
        Rule::LiteralComparison,
    ];
}

/// Set of fired rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Rules(u16);

impl Rules {
    fn insert(&mut self, rule: Rule) {
        self.0 |= 1 << rule as u16;
    }

    /// Whether `rule` fired.
    pub fn contains(self, rule: Rule) -> bool {
        self.0 & (1 << rule as u16) != 0
    }

    /// Whether no rule fired.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The fired rules.
    pub fn iter(self) -> impl Iterator<Item = Rule> {
        Rule::ALL.into_iter().filter(move |r| self.contains(*r))
    }
}

/// The outcome for one context.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Analysis {
    /// The context analysed.
    pub context: Context,
    /// Whether the value breaks out of its literal into SQL in this context.
    pub gated: bool,
    /// Fingerprint (empty when not gated).
    pub fingerprint: Fingerprint,
    /// The first matching shape.
    pub shape: Option<&'static Shape>,
    /// Rules that fired.
    pub rules: Rules,
    /// Score in 0..1 that this is an injection.
    pub score: f32,
}

/// Folded tokens of one value in one context, on the stack.
struct Folded<'a> {
    toks: [Token<'a>; MAX_TOKENS],
    len: usize,
}

const BLANK: Token<'static> = Token {
    class: Class::Other,
    text: "",
    entry: None,
    closed: true,
};

impl<'a> Folded<'a> {
    fn new() -> Self {
        Folded {
            toks: [BLANK; MAX_TOKENS],
            len: 0,
        }
    }

    fn as_slice(&self) -> &[Token<'a>] {
        &self.toks[..self.len]
    }

    fn last(&self) -> Option<&Token<'a>> {
        self.as_slice().last()
    }

    fn push(&mut self, t: Token<'a>) -> bool {
        if self.len == MAX_TOKENS {
            return false;
        }
        self.toks[self.len] = t;
        self.len += 1;
        true
    }
}

fn is_operatorish(t: Option<&Token<'_>>) -> bool {
    t.is_none_or(|t| {
        matches!(
            t.class,
            Class::Op
                | Class::Cmp
                | Class::Logic
                | Class::LParen
                | Class::Comma
                | Class::Keyword
                | Class::Select
                | Class::Union
                | Class::Semi
        )
    })
}

/// Lexes and folds: drops comments that more code follows (`--\n` is whitespace to MySQL),
/// merges `union all`, `order by`, `into outfile`, `waitfor delay`, unary signs, and keeps a
/// statement verb only when its object fits (`drop table`, `delete from`, `insert into`,
/// `update x set`, `exec name`, `declare @v`, `shutdown` alone).
fn fold<'a>(src: &'a str, context: Context) -> Folded<'a> {
    let mut raw = Folded::new();
    for t in Lexer::new(src, context) {
        if raw.last().is_some_and(|l| l.class == Class::Comment) {
            raw.len -= 1;
        }
        // `;;` is one statement break.
        if t.class == Class::Semi && raw.last().is_some_and(|l| l.class == Class::Semi) {
            continue;
        }
        if !raw.push(t) {
            break;
        }
    }
    let raw = raw.as_slice();
    let mut out = Folded::new();
    let mut i = 0;
    while i < raw.len() {
        let mut t = raw[i];
        let next = raw.get(i + 1);
        let next_kw = next.map_or(Kw::Other, Token::kw);
        let mut skip = 0;
        match (t.class, t.kw()) {
            (Class::Union, _) if matches!(next_kw, Kw::All | Kw::Distinct) => skip = 1,
            // `select distinct`, `select top 5`: the select list starts after them.
            (Class::Select, _) if matches!(next_kw, Kw::All | Kw::Distinct) => skip = 1,
            (Class::Select, _) if next.is_some_and(|n| n.text == "top") => {
                skip = if raw.get(i + 2).is_some_and(|n| n.class == Class::Num) {
                    2
                } else {
                    1
                };
            }
            (Class::Keyword, Kw::Order | Kw::Group) => {
                if next_kw == Kw::By {
                    skip = 1;
                } else {
                    t.class = Class::Bare;
                }
            }
            (Class::Keyword, Kw::Into) if next_kw == Kw::Outfile => {
                skip = 1;
                t.entry = next.and_then(|n| n.entry).map(|mut e| {
                    e.flags = Flags::DANGER;
                    e
                });
            }
            (Class::Verb, verb) => {
                let after = raw.get(i + 2);
                let valid = match verb {
                    Kw::Drop | Kw::Create => next_kw == Kw::Object,
                    Kw::Delete => next_kw == Kw::From,
                    Kw::Insert => next_kw == Kw::Into,
                    Kw::Update => {
                        next.is_some_and(|n| matches!(n.class, Class::Bare | Class::Keyword))
                            && after.is_some_and(|a| a.kw() == Kw::Set)
                    }
                    Kw::Exec => next.is_some_and(|n| {
                        matches!(
                            n.class,
                            Class::Bare | Class::Func | Class::Var | Class::LParen
                        )
                    }),
                    Kw::Shutdown => {
                        next.is_none_or(|n| matches!(n.class, Class::Comment | Class::Semi))
                    }
                    Kw::Declare => next.is_some_and(|n| n.class == Class::Var),
                    Kw::Truncate => {
                        next_kw == Kw::Object || next.is_some_and(|n| n.class == Class::Bare)
                    }
                    Kw::Waitfor => {
                        let ok = next_kw == Kw::Delay || next.is_some_and(|n| n.text == "time");
                        if ok {
                            skip = 1;
                            t.entry = t.entry.map(|mut e| {
                                e.flags = Flags::TIME;
                                e
                            });
                        }
                        ok
                    }
                    Kw::Copy => {
                        next.is_some_and(|n| matches!(n.class, Class::LParen | Class::Bare))
                    }
                    Kw::Attach => next_kw == Kw::Object,
                    // `grant all ...`, `grant select on ...`, `revoke insert ...`
                    Kw::Grant => {
                        next_kw == Kw::All
                            || next.is_some_and(|n| {
                                matches!(n.class, Class::Select | Class::Verb)
                                    || matches!(n.text, "usage" | "execute" | "superuser" | "dba")
                            })
                    }
                    _ => false,
                };
                if !valid {
                    t.class = Class::Bare;
                }
            }
            (Class::Num, _) => {
                let n = out.len;
                if n > 0
                    && out.toks[n - 1].class == Class::Op
                    && matches!(out.toks[n - 1].text, "-" | "+")
                    && is_operatorish(n.checked_sub(2).map(|j| &out.toks[j]))
                {
                    out.len -= 1;
                }
            }
            _ => {}
        }
        out.push(t);
        i += 1 + skip;
    }
    out
}

fn is_literal(c: Class) -> bool {
    matches!(c, Class::Bare | Class::Num | Class::Str)
}

/// Index of the first token after the breakout, or `None` when the value stays a literal.
fn gate(p: &[Token<'_>], raw_starts_with_paren: bool, context: Context) -> Option<usize> {
    let first = p.first()?;
    let i = 1;
    match context {
        Context::SingleQuote | Context::DoubleQuote => {
            if first.class != Class::Str || !first.closed {
                return None;
            }
            // JSON pasted into a double-quoted slot: `{"or": 1}` breaks out at `{"`.
            if context == Context::DoubleQuote
                && matches!(first.text.trim(), "{" | "[" | "," | ":" | "[{" | "{}")
            {
                return None;
            }
            let c = p.get(i)?.class;
            matches!(
                c,
                Class::Logic
                    | Class::Union
                    | Class::Verb
                    | Class::Semi
                    | Class::Comment
                    | Class::Op
                    | Class::Cmp
                    | Class::Keyword
                    | Class::Comma
            )
            .then_some(i)
        }
        Context::Bare => match first.class {
            Class::Num => {
                let c = p.get(i)?.class;
                matches!(
                    c,
                    Class::Logic
                        | Class::Union
                        | Class::Verb
                        | Class::Semi
                        | Class::Op
                        | Class::Cmp
                        | Class::Keyword
                        | Class::Comma
                )
                .then_some(i)
            }
            Class::Select if raw_starts_with_paren => Some(0),
            // `(case when 5=5 then 1 else null end)` as the whole numeric value.
            Class::Keyword if raw_starts_with_paren && first.text == "case" => Some(0),
            // A function call as the whole numeric value (`if(now()=sysdate(),sleep(5),0)`):
            // gated, but only the rules (time, error, danger) can call it an attack.
            Class::Func => Some(0),
            _ => None,
        },
    }
}

fn same_operand(a: &Token<'_>, b: &Token<'_>) -> bool {
    if a.class != b.class {
        return false;
    }
    match a.class {
        Class::Num => match (a.text.parse::<f64>(), b.text.parse::<f64>()) {
            (Ok(x), Ok(y)) => x == y,
            _ => a.text.eq_ignore_ascii_case(b.text),
        },
        Class::Str | Class::Bare => a.text.eq_ignore_ascii_case(b.text),
        _ => false,
    }
}

fn truthy_comparison(a: &Token<'_>, op: &str, b: &Token<'_>) -> bool {
    match op {
        "=" | "==" | "<=>" | "like" | "is" | "in" | "<=" | ">=" | "glob" => same_operand(a, b),
        "<" | ">" | "<>" | "!=" => match (a.text.parse::<f64>(), b.text.parse::<f64>()) {
            (Ok(x), Ok(y)) if a.class == Class::Num && b.class == Class::Num => match op {
                "<" => x < y,
                ">" => x > y,
                _ => x != y,
            },
            _ => op.len() == 2 && a.class == b.class && !same_operand(a, b),
        },
        _ => false,
    }
}

fn is_truthy_literal(t: &Token<'_>) -> bool {
    t.class == Class::Num && (t.text == "true" || t.text.parse::<f64>().is_ok_and(|v| v != 0.0))
}

/// Scans the paren-free tokens for high-signal patterns, stopping where the token stream
/// stops being plausible SQL (two literals in a row: prose, not code).
fn scan_rules(p: &[Token<'_>], context: Context) -> Rules {
    let mut rules = Rules::default();
    let at = |i: usize| p.get(i);
    let class_at = |i: usize| p.get(i).map(|t| t.class);
    // `'='`: the breakout string compared with the app's closing string.
    if let (true, Some(a), Some(op), Some(b)) = (context != Context::Bare, at(0), at(1), at(2))
        && op.class == Class::Cmp
        && b.class == Class::Str
        && truthy_comparison(a, op.text, b)
    {
        rules.insert(Rule::Tautology);
    }
    for (i, t) in p.iter().enumerate() {
        if i > 0 && is_literal(p[i - 1].class) && is_literal(t.class) {
            break;
        }
        let flags = t.flags();
        match t.class {
            Class::Logic => {
                let mut j = i + 1;
                if at(j).is_some_and(|n| n.class == Class::Op && n.text == "not") {
                    j += 1;
                }
                match (at(j), at(j + 1), at(j + 2)) {
                    (Some(a), Some(op), Some(b))
                        if op.class == Class::Cmp && truthy_comparison(a, op.text, b) =>
                    {
                        rules.insert(Rule::Tautology);
                    }
                    (Some(a), next, _)
                        if is_truthy_literal(a)
                            && next.map_or(a.text == "true", |n| {
                                matches!(n.class, Class::Comment | Class::Semi | Class::Logic)
                            }) =>
                    {
                        rules.insert(Rule::Tautology);
                    }
                    _ => {}
                }
            }
            // `' group by id having 1=1--`, `') as x where 5=5 or ...`
            Class::Keyword
                if (t.kw() == Kw::Having || t.text == "where")
                    && matches!(
                        (at(i + 1), at(i + 2), at(i + 3)),
                        (Some(a), Some(op), Some(b))
                            if op.class == Class::Cmp && truthy_comparison(a, op.text, b)
                    ) =>
            {
                rules.insert(Rule::Tautology);
            }
            Class::Union if class_at(i + 1) == Some(Class::Select) => {
                let list = match class_at(i + 2) {
                    Some(Class::Num | Class::Func | Class::Var | Class::Str | Class::Comma) => true,
                    Some(Class::Op) => true,
                    Some(Class::Bare) => {
                        matches!(
                            at(i + 3),
                            None | Some(Token {
                                class: Class::Comma | Class::Comment | Class::Op | Class::Semi,
                                ..
                            })
                        ) || at(i + 3).is_some_and(|n| n.kw() == Kw::From)
                    }
                    _ => false,
                };
                if list {
                    rules.insert(Rule::UnionSelect);
                }
            }
            Class::Semi => match class_at(i + 1) {
                Some(Class::Verb) => rules.insert(Rule::StackedStatement),
                Some(Class::Select)
                    if matches!(
                        class_at(i + 2),
                        Some(Class::Num | Class::Func | Class::Var | Class::Op | Class::Str)
                    ) || at(i + 3).is_some_and(|n| n.kw() == Kw::From) =>
                {
                    rules.insert(Rule::StackedStatement);
                }
                _ => {}
            },
            Class::Comment if i + 1 == p.len() && i > 0 => rules.insert(Rule::TrailingComment),
            _ => {}
        }
        if flags.contains(Flags::TIME) && matches!(t.class, Class::Func | Class::Verb) {
            rules.insert(Rule::TimeFunction);
        }
        if t.class == Class::Func {
            if flags.contains(Flags::ERROR) {
                rules.insert(Rule::ErrorFunction);
            }
            match t.kw() {
                Kw::Convert if at(i + 1).is_some_and(|n| n.kw() == Kw::IntType) => {
                    rules.insert(Rule::ErrorFunction);
                }
                Kw::Cast => {
                    let window = &p[i + 1..p.len().min(i + 10)];
                    if window
                        .windows(2)
                        .any(|w| w[0].kw() == Kw::As && w[1].kw() == Kw::IntType)
                    {
                        rules.insert(Rule::ErrorFunction);
                    }
                }
                _ => {}
            }
            if (t.text == "floor" && at(i + 1).is_some_and(|n| n.text == "rand"))
                || (t.text == "exp" && at(i + 1).is_some_and(|n| n.text == "~"))
            {
                rules.insert(Rule::ErrorFunction);
            }
        }
        if flags.contains(Flags::DANGER) {
            rules.insert(Rule::DangerousFunction);
        }
        if flags.contains(Flags::SCHEMA) {
            rules.insert(Rule::SchemaObject);
        }
    }
    rules
}

/// Whether the value, pasted into a quote context, leaves a string of the *other* quote open
/// at its end: `x "' or 1=1" y` in a single-quoted slot swallows the application's closing
/// `'` into an unterminated `"..."`, so the query cannot parse and nothing is injected. Prose
/// quoting an attack looks like this; a working injection closes what it opens or ends in a
/// comment.
fn breaks_own_query(p: &[Token<'_>], src: &str, context: Context) -> bool {
    let other = match context {
        Context::Bare => return false,
        Context::SingleQuote => b'"',
        Context::DoubleQuote => b'\'',
    };
    p.iter().skip(1).any(|t| {
        t.class == Class::Str && !t.closed && {
            let at = (t.text.as_ptr() as usize).wrapping_sub(src.as_ptr() as usize);
            at > 0 && at <= src.len() && src.as_bytes().get(at - 1) == Some(&other)
        }
    })
}

/// Whether `n <cmp> n` appears where only injected SQL puts it (see
/// [`Rule::LiteralComparison`]).
fn literal_comparison(p: &[Token<'_>], context: Context, starts_with_paren: bool) -> bool {
    p.windows(3).enumerate().any(|(j, w)| {
        if !(w[0].class == Class::Num && w[1].class == Class::Cmp && w[2].class == Class::Num) {
            return false;
        }
        match j.checked_sub(1).map(|i| &p[i]) {
            None => context == Context::Bare && starts_with_paren,
            Some(prev) => prev.class == Class::Func || prev.text == "when",
        }
    })
}

fn guard_ok(guard: Guard, p: &[Token<'_>]) -> bool {
    match guard {
        Guard::None => true,
        Guard::Clause(i) => p
            .get(i)
            .is_some_and(|t| matches!(t.kw(), Kw::Order | Kw::Group | Kw::Having | Kw::Limit)),
        Guard::Tight => p
            .first()
            .is_some_and(|t| !t.text.contains(char::is_whitespace)),
    }
}

/// Analyses one normalised value in one context.
pub fn analyze(src: &str, context: Context) -> Analysis {
    let mut analysis = Analysis {
        context,
        gated: false,
        fingerprint: Fingerprint::default(),
        shape: None,
        rules: Rules::default(),
        score: 0.0,
    };
    // Cheap pre-checks: a quote context needs its quote in the value to break out at all.
    if let Some(q) = context.opening_quote()
        && !src.as_bytes().contains(&q)
    {
        return analysis;
    }
    let folded = fold(src, context);
    let starts_with_paren = folded
        .as_slice()
        .first()
        .is_some_and(|t| t.class == Class::LParen);
    let mut p = Folded::new();
    for t in folded.as_slice() {
        if !matches!(t.class, Class::LParen | Class::RParen) {
            p.push(*t);
        }
    }
    let p = p.as_slice();
    if gate(p, starts_with_paren, context).is_none() || breaks_own_query(p, src, context) {
        return analysis;
    }
    analysis.gated = true;
    for t in p.iter().take(FINGERPRINT_LEN) {
        let fp = &mut analysis.fingerprint;
        fp.codes[usize::from(fp.len)] = t.class.code();
        fp.len += 1;
    }
    analysis.shape = SHAPES
        .iter()
        .find(|s| analysis.fingerprint.matches(s.pattern) && guard_ok(s.guard, p));
    analysis.rules = scan_rules(p, context);
    if literal_comparison(p, context, starts_with_paren) {
        analysis.rules.insert(Rule::LiteralComparison);
    }
    let mut score: f32 = 0.15;
    let mut signals = 0u32;
    if let Some(s) = analysis.shape {
        score = score.max(if s.technique == Technique::CommentTruncation {
            0.75
        } else {
            0.85
        });
        signals += 1;
    }
    for rule in analysis.rules.iter() {
        score = score.max(rule.weight());
        signals += 1;
    }
    if signals > 1 {
        score += 0.02 * (signals - 1) as f32;
    }
    analysis.score = score.min(0.99);
    analysis
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(src: &str, ctx: Context) -> String {
        analyze(src, ctx).fingerprint.to_string()
    }

    #[test]
    fn shapes_are_well_formed() {
        for s in SHAPES {
            let body = s.pattern.strip_suffix('$').unwrap_or(s.pattern);
            assert!(
                !body.is_empty() && body.len() <= FINGERPRINT_LEN,
                "{}",
                s.pattern
            );
            assert!(
                body.bytes().all(|b| b"snkSXUf&o=c,;vb?".contains(&b)),
                "bad letter in {}",
                s.pattern
            );
        }
    }

    #[test]
    fn folding() {
        assert_eq!(fp("1 union all select 1,2", Context::Bare), "nUSn,");
        assert_eq!(fp("1' order by 3--", Context::SingleQuote), "sknc");
        assert_eq!(fp("1'; drop table users--", Context::SingleQuote), "s;Xkb");
        assert_eq!(fp("1'; drop it", Context::SingleQuote), "s;bb");
        assert_eq!(fp("1 or -1=-1", Context::Bare), "n&n=n");
        assert_eq!(fp("1')) or (('a'='a", Context::SingleQuote), "s&s=s");
    }

    #[test]
    fn gate_rejects_prose() {
        assert!(!analyze("o'brien", Context::SingleQuote).gated);
        assert!(!analyze("hello world", Context::Bare).gated);
        assert!(!analyze("{\"or\": 1}", Context::DoubleQuote).gated);
        assert!(analyze("students' and teachers' votes", Context::SingleQuote).gated);
        assert!(analyze("students' and teachers' votes", Context::SingleQuote).score < 0.5);
    }
}
