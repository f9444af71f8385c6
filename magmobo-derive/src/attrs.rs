//! Parsing of the derive attributes (`#[component(...)]`, `#[extension(...)]`,
//! `#[peripheral(...)]`, `#[bus_event(...)]` and the shared `#[magmobo(crate = ...)]`) into
//! typed values. Every mistake is collected, so one compile run reports all of them, each
//! pointing at the token at fault.

use proc_macro2::Span;
use quote::ToTokens;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{DeriveInput, Expr, ExprLit, Ident, Lit, LitStr, Meta, Path, Token};

/// Collects errors so that one compile run reports all of them.
#[derive(Default)]
pub(crate) struct Errors {
    first: Option<syn::Error>,
}

impl Errors {
    /// Records one error.
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.first {
            Some(first) => first.combine(error),
            None => self.first = Some(error),
        }
    }

    /// Records an error at `span`.
    pub(crate) fn at(&mut self, span: Span, message: impl std::fmt::Display) {
        self.push(syn::Error::new(span, message));
    }

    /// Records an error underlining all of `tokens` (a span covering several tokens).
    pub(crate) fn spanned(&mut self, tokens: &dyn ToTokens, message: impl std::fmt::Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    /// Records an error about a missing key: on the attribute `args` came from if it was
    /// written, else on `fallback` (the type's name).
    pub(crate) fn missing(&mut self, args: &Args, fallback: Span, message: impl std::fmt::Display) {
        match &args.attr {
            Some(tokens) => self.push(syn::Error::new_spanned(tokens, message)),
            None => self.at(fallback, message),
        }
    }

    /// `Err` with every recorded error, or `Ok` when there were none.
    pub(crate) fn finish(self) -> syn::Result<()> {
        match self.first {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

/// One of the five slots, as written in an attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SlotName {
    /// The lower-case key (`ram`).
    pub(crate) key: &'static str,
    /// The `Slot` variant (`Ram`).
    pub(crate) variant: &'static str,
    /// The role trait's path below the magmobo crate (`roles::cache::Cache`).
    pub(crate) role: &'static str,
    /// The `BoardBuilder` method that takes this slot's component (`put_ram`).
    pub(crate) put: &'static str,
}

/// The slots in POST order; must match `magmobo_core::Slot`.
pub(crate) const SLOTS: [SlotName; 5] = [
    SlotName {
        key: "cpu",
        variant: "Cpu",
        role: "roles::cpu::Cpu",
        put: "put_cpu",
    },
    SlotName {
        key: "ram",
        variant: "Ram",
        role: "roles::cache::Cache",
        put: "put_ram",
    },
    SlotName {
        key: "gpu",
        variant: "Gpu",
        role: "roles::queue::JobQueue",
        put: "put_gpu",
    },
    SlotName {
        key: "storage",
        variant: "Storage",
        role: "roles::storage::Storage",
        put: "put_storage",
    },
    SlotName {
        key: "psu",
        variant: "Psu",
        role: "roles::auth::Auth",
        put: "put_psu",
    },
];

/// A slot named in an attribute, with where it was written.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SlotRef {
    /// Which slot.
    pub(crate) slot: SlotName,
    /// The span of its name, for errors about this slot.
    pub(crate) span: Span,
}

/// The shape of value a key takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `key = "text"`.
    Str,
    /// `key` alone (true) or `key = true/false`.
    Flag,
    /// `key("a", "b")`.
    Strs,
    /// `key = "ram"` or `key = ram`: one slot.
    Slot,
    /// `key(storage, "ram")`: slots.
    Slots,
}

impl Kind {
    /// How to write a key of this kind, for error messages.
    fn example(self, key: &str) -> String {
        match self {
            Kind::Str => format!("`{key} = \"...\"`"),
            Kind::Flag => format!("`{key}` or `{key} = false`"),
            Kind::Strs => format!("`{key}(\"...\", \"...\")`"),
            Kind::Slot => format!("`{key} = \"ram\"`"),
            Kind::Slots => format!("`{key}(storage, ram)`"),
        }
    }
}

/// A parsed value.
#[derive(Clone)]
pub(crate) enum Value {
    /// A string.
    Str(LitStr),
    /// A flag.
    Flag(bool),
    /// Strings.
    Strs(Vec<LitStr>),
    /// One slot.
    Slot(SlotRef),
    /// Slots.
    Slots(Vec<SlotRef>),
}

/// The keys of one attribute, in the order written.
pub(crate) struct Args {
    entries: Vec<(Ident, Value)>,
    /// Every known key written, including those whose value was invalid.
    written: Vec<Ident>,
    /// Path of the magmobo crate in the expansion (`::magmobo` unless overridden).
    pub(crate) krate: Path,
    /// The first attribute's tokens, if the attribute was written at all: errors about the
    /// attribute as a whole (a missing key) underline all of it.
    pub(crate) attr: Option<proc_macro2::TokenStream>,
}

impl Args {
    /// Whether `key` was written, even with an invalid value (already reported).
    pub(crate) fn has(&self, key: &str) -> bool {
        self.written.iter().any(|k| k == key)
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The string under `key`, if given.
    pub(crate) fn str(&self, key: &str) -> Option<&LitStr> {
        match self.get(key) {
            Some(Value::Str(s)) => Some(s),
            _ => None,
        }
    }

    /// The flag under `key`; false when absent.
    pub(crate) fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some(Value::Flag(true)))
    }

    /// The strings under `key`; empty when absent.
    pub(crate) fn strs(&self, key: &str) -> &[LitStr] {
        match self.get(key) {
            Some(Value::Strs(s)) => s,
            _ => &[],
        }
    }

    /// The slot under `key`, if given.
    pub(crate) fn slot(&self, key: &str) -> Option<SlotRef> {
        match self.get(key) {
            Some(Value::Slot(s)) => Some(*s),
            _ => None,
        }
    }

    /// The slots under `key`; empty when absent.
    pub(crate) fn slots(&self, key: &str) -> &[SlotRef] {
        match self.get(key) {
            Some(Value::Slots(s)) => s,
            _ => &[],
        }
    }
}

/// The attribute every derive accepts for settings shared between them.
pub(crate) const SHARED_ATTR: &str = "magmobo";
const CRATE_KEY: &str = "crate";

/// Parses every `#[name(...)]` and `#[magmobo(...)]` attribute of `input`. `keys` lists the
/// keys `#[name(...)]` accepts besides `crate`. Mistakes go to `errors`; what could be
/// understood is returned anyway, so later checks can still run.
pub(crate) fn parse(
    input: &DeriveInput,
    name: &str,
    keys: &[(&'static str, Kind)],
    errors: &mut Errors,
) -> Args {
    let mut args = Args {
        entries: Vec::new(),
        written: Vec::new(),
        krate: syn::parse_quote!(::magmobo),
        attr: None,
    };
    let mut krate: Option<Ident> = None; // the `crate` key, once seen
    for attr in &input.attrs {
        let shared = attr.path().is_ident(SHARED_ATTR);
        if !shared && !attr.path().is_ident(name) {
            continue;
        }
        if !shared && args.attr.is_none() {
            args.attr = Some(attr.to_token_stream());
        }
        let metas = match attr.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated) {
            Ok(metas) => metas,
            Err(error) => {
                errors.push(error);
                continue;
            }
        };
        let attr_name = if shared { SHARED_ATTR } else { name };
        let allowed: &[(&str, Kind)] = if shared { &[] } else { keys };
        for meta in metas {
            let Some(key) = meta.path().get_ident().cloned() else {
                let valid = valid_keys(allowed);
                errors.at(
                    meta.path().span(),
                    format!("expected a key; valid keys: {valid}"),
                );
                continue;
            };
            if key == CRATE_KEY {
                if krate.is_some() {
                    duplicate(errors, &key);
                } else if let Some(path) = crate_path(&meta, errors) {
                    args.krate = path;
                }
                krate = Some(key);
                continue;
            }
            let Some(&(_, kind)) = allowed.iter().find(|(k, _)| key == k) else {
                unknown_key(errors, attr_name, &key, allowed);
                continue;
            };
            if args.written.contains(&key) {
                duplicate(errors, &key);
                continue;
            }
            args.written.push(key.clone());
            if let Some(value) = parse_value(&meta, &key, kind, errors) {
                args.entries.push((key, value));
            }
        }
    }
    args
}

fn valid_keys(keys: &[(&str, Kind)]) -> String {
    keys.iter()
        .map(|(k, _)| *k)
        .chain([CRATE_KEY])
        .collect::<Vec<_>>()
        .join(", ")
}

fn duplicate(errors: &mut Errors, key: &Ident) {
    errors.at(key.span(), format!("duplicate key `{key}`: give it once"));
}

fn unknown_key(errors: &mut Errors, attr_name: &str, key: &Ident, allowed: &[(&str, Kind)]) {
    let written = key.to_string();
    let candidates = allowed.iter().map(|(k, _)| *k).chain([CRATE_KEY]);
    let hint = match closest(&written, candidates) {
        Some(best) => format!("; did you mean `{best}`?"),
        None => ".".to_owned(),
    };
    let valid = valid_keys(allowed);
    errors.at(
        key.span(),
        format!("unknown key `{written}` in `#[{attr_name}(...)]`{hint} Valid keys: {valid}"),
    );
}

/// The candidate within edit distance 2 of `written`, if any.
fn closest<'a>(written: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|c| (edit_distance(written, c), c))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

fn crate_path(meta: &Meta, errors: &mut Errors) -> Option<Path> {
    let usage = "write `crate = ::magmobo_core` or `crate = \"::magmobo_core\"`";
    let Meta::NameValue(nv) = meta else {
        errors.at(meta.span(), format!("`crate` takes a path: {usage}"));
        return None;
    };
    match &nv.value {
        Expr::Path(p) if p.qself.is_none() => Some(p.path.clone()),
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => match s.parse::<Path>() {
            Ok(path) => Some(path),
            Err(_) => {
                errors.at(s.span(), format!("`{}` is not a path: {usage}", s.value()));
                None
            }
        },
        other => {
            errors.spanned(
                other,
                format!("`crate` takes a path, found {}: {usage}", describe(other)),
            );
            None
        }
    }
}

/// "an integer", "a boolean", ...: what was written instead of the expected value.
fn describe(expr: &Expr) -> &'static str {
    match expr {
        Expr::Lit(ExprLit { lit, .. }) => match lit {
            Lit::Str(_) => "a string",
            Lit::ByteStr(_) => "a byte string",
            Lit::CStr(_) => "a C string",
            Lit::Byte(_) => "a byte",
            Lit::Char(_) => "a character",
            Lit::Int(_) => "an integer",
            Lit::Float(_) => "a float",
            Lit::Bool(_) => "a boolean",
            _ => "a literal",
        },
        Expr::Path(_) => "a path",
        Expr::Field(_) => "a field access",
        Expr::Array(_) => "an array",
        Expr::Tuple(_) => "a tuple",
        _ => "an expression",
    }
}

fn parse_value(meta: &Meta, key: &Ident, kind: Kind, errors: &mut Errors) -> Option<Value> {
    let wrong_shape = |errors: &mut Errors, span: &dyn ToTokens, found: &str| {
        errors.spanned(
            span,
            format!(
                "`{key}` takes {}, found {found}",
                kind.example(&key.to_string())
            ),
        );
    };
    match (kind, meta) {
        (Kind::Str, Meta::NameValue(nv)) => match &nv.value {
            Expr::Lit(ExprLit {
                lit: Lit::Str(s), ..
            }) => {
                if s.value().trim().is_empty() {
                    errors.at(s.span(), format!("`{key}` must not be empty"));
                    return None;
                }
                Some(Value::Str(s.clone()))
            }
            other => {
                errors.spanned(
                    other,
                    format!(
                        "`{key}` takes a string literal, found {}: write {}",
                        describe(other),
                        kind.example(&key.to_string())
                    ),
                );
                None
            }
        },
        (Kind::Flag, Meta::Path(_)) => Some(Value::Flag(true)),
        (Kind::Flag, Meta::NameValue(nv)) => match &nv.value {
            Expr::Lit(ExprLit {
                lit: Lit::Bool(b), ..
            }) => Some(Value::Flag(b.value)),
            other => {
                wrong_shape(errors, other, describe(other));
                None
            }
        },
        (Kind::Slot, Meta::NameValue(nv)) => slot_ref(&nv.value, key, errors).map(Value::Slot),
        (Kind::Strs | Kind::Slots, Meta::List(list)) => {
            let items = match list.parse_args_with(Punctuated::<Expr, Token![,]>::parse_terminated)
            {
                Ok(items) => items,
                Err(error) => {
                    errors.push(error);
                    return None;
                }
            };
            if kind == Kind::Strs {
                let mut strs = Vec::new();
                for item in &items {
                    match item {
                        Expr::Lit(ExprLit {
                            lit: Lit::Str(s), ..
                        }) => strs.push(s.clone()),
                        other => {
                            let hint = match other {
                                Expr::Path(_) | Expr::Field(_) => {
                                    let text: String = other
                                        .to_token_stream()
                                        .to_string()
                                        .split_whitespace()
                                        .collect();
                                    format!("; did you mean `\"{text}\"`?")
                                }
                                _ => format!(": write {}", kind.example(&key.to_string())),
                            };
                            errors.spanned(
                                other,
                                format!(
                                    "`{key}(...)` takes string literals, found {}{hint}",
                                    describe(other),
                                ),
                            );
                        }
                    }
                }
                Some(Value::Strs(strs))
            } else {
                let slots = items
                    .iter()
                    .filter_map(|item| slot_ref(item, key, errors))
                    .collect();
                Some(Value::Slots(slots))
            }
        }
        (_, Meta::Path(p)) => {
            wrong_shape(errors, p, "the key alone");
            None
        }
        (_, Meta::List(l)) => {
            wrong_shape(errors, l, "a list");
            None
        }
        (_, Meta::NameValue(nv)) => {
            wrong_shape(errors, &nv.value, "`=`");
            None
        }
    }
}

/// A slot written as `ram` or `"ram"`.
fn slot_ref(expr: &Expr, key: &Ident, errors: &mut Errors) -> Option<SlotRef> {
    let (text, span) = match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => (s.value(), s.span()),
        Expr::Path(p) if p.qself.is_none() && p.path.get_ident().is_some() => (
            p.path
                .segments
                .iter()
                .map(|s| s.ident.to_string())
                .collect(),
            p.span(),
        ),
        other => {
            errors.spanned(
                other,
                format!(
                    "`{key}` takes a slot name (`ram` or `\"ram\"`), found {}. Valid slots: {}",
                    describe(other),
                    slot_keys()
                ),
            );
            return None;
        }
    };
    match SLOTS.iter().find(|s| s.key == text) {
        Some(&slot) => Some(SlotRef { slot, span }),
        None => {
            let hint = match closest(&text.to_lowercase(), SLOTS.iter().map(|s| s.key)) {
                Some(best) => format!("; did you mean `{best}`?"),
                None => ".".to_owned(),
            };
            errors.at(
                span,
                format!("unknown slot `{text}`{hint} Valid slots: {}", slot_keys()),
            );
            None
        }
    }
}

/// `cpu, ram, gpu, storage, psu`.
pub(crate) fn slot_keys() -> String {
    SLOTS.iter().map(|s| s.key).collect::<Vec<_>>().join(", ")
}

/// Default part name from a type name: `MagGate` → `mag-gate`, `HTTPServer` → `http-server`.
pub(crate) fn kebab_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c == '_' || c == '-' {
            if !out.is_empty() && !out.ends_with('-') {
                out.push('-');
            }
            continue;
        }
        if c.is_uppercase() {
            let prev = i.checked_sub(1).and_then(|j| chars.get(j)).copied();
            let next = chars.get(i + 1).copied();
            let boundary = match prev {
                Some(p) if p.is_lowercase() || p.is_ascii_digit() => true,
                Some(p) if p.is_uppercase() => next.is_some_and(char::is_lowercase),
                _ => false,
            };
            if boundary && !out.is_empty() && !out.ends_with('-') {
                out.push('-');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    out
}

/// Checks a bus topic (`wildcards == false`) or subscription pattern (`wildcards == true`)
/// by the rules of `magmobo_core::bus::topic`: non-empty dot-separated segments of
/// `[A-Za-z0-9_:-]`, and `*` as a whole segment in patterns only. Returns why it is invalid.
pub(crate) fn check_topic(text: &str, wildcards: bool) -> Result<(), &'static str> {
    if text.is_empty() {
        return Err("it is empty");
    }
    for segment in text.split('.') {
        if segment.is_empty() {
            return Err("it has an empty segment (two dots, or a dot at an end)");
        }
        if segment == "*" {
            if wildcards {
                continue;
            }
            return Err("wildcards are for subscriptions, not for publishing");
        }
        if !segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b':'))
        {
            return Err("segments may hold only letters, digits, '_', '-' and ':'");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    const KEYS: &[(&str, Kind)] = &[
        ("name", Kind::Str),
        ("required", Kind::Flag),
        ("capabilities", Kind::Strs),
        ("slot", Kind::Slot),
        ("depends_on", Kind::Slots),
    ];

    fn parse_ok(tokens: proc_macro2::TokenStream) -> Args {
        let input: DeriveInput = syn::parse2(tokens).expect("input parses");
        let mut errors = Errors::default();
        let args = parse(&input, "part", KEYS, &mut errors);
        if let Err(e) = errors.finish() {
            panic!("unexpected errors: {e}");
        }
        args
    }

    fn parse_errors(tokens: proc_macro2::TokenStream) -> Vec<String> {
        let input: DeriveInput = syn::parse2(tokens).expect("input parses");
        let mut errors = Errors::default();
        parse(&input, "part", KEYS, &mut errors);
        match errors.finish() {
            Ok(()) => Vec::new(),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn every_kind_parses() {
        let args = parse_ok(quote! {
            #[part(name = "x", capabilities("a.b", "c"), slot = "ram")]
            #[part(required, depends_on(storage, "cpu"))]
            #[magmobo(crate = ::magmobo_core)]
            struct S;
        });
        assert_eq!(args.str("name").map(LitStr::value).as_deref(), Some("x"));
        assert!(args.flag("required"));
        let caps: Vec<String> = args
            .strs("capabilities")
            .iter()
            .map(LitStr::value)
            .collect();
        assert_eq!(caps, ["a.b", "c"]);
        assert_eq!(args.slot("slot").map(|s| s.slot.key), Some("ram"));
        let deps: Vec<&str> = args
            .slots("depends_on")
            .iter()
            .map(|s| s.slot.key)
            .collect();
        assert_eq!(deps, ["storage", "cpu"]);
        let krate = &args.krate;
        assert_eq!(quote!(#krate).to_string(), ":: magmobo_core");
        assert!(args.attr.is_some());
    }

    #[test]
    fn crate_may_be_a_string_and_flags_may_be_false() {
        let args = parse_ok(quote! {
            #[part(crate = "my::core", required = false, slot = gpu)]
            struct S;
        });
        let krate = &args.krate;
        assert_eq!(quote!(#krate).to_string(), "my :: core");
        assert!(!args.flag("required"));
        assert_eq!(args.slot("slot").map(|s| s.slot.variant), Some("Gpu"));
    }

    #[test]
    fn absent_attribute_gives_defaults() {
        let args = parse_ok(quote! { struct S; });
        assert!(args.attr.is_none());
        assert!(args.str("name").is_none());
        assert!(args.strs("capabilities").is_empty());
        let krate = &args.krate;
        assert_eq!(quote!(#krate).to_string(), ":: magmobo");
    }

    #[test]
    fn all_mistakes_are_reported_together() {
        let errors = parse_errors(quote! {
            #[part(nam = "x", name = 1, slot = "memory", capabilities(cache), required = "yes")]
            #[part(name = "y", name = "z", bogus)]
            struct S;
        });
        let expected = [
            "unknown key `nam` in `#[part(...)]`; did you mean `name`? Valid keys: name, required, capabilities, slot, depends_on, crate",
            "`name` takes a string literal, found an integer: write `name = \"...\"`",
            "unknown slot `memory`. Valid slots: cpu, ram, gpu, storage, psu",
            "`capabilities(...)` takes string literals, found a path; did you mean `\"cache\"`?",
            "`required` takes `required` or `required = false`, found a string",
            "duplicate key `name`: give it once",
            "duplicate key `name`: give it once",
            "unknown key `bogus` in `#[part(...)]`. Valid keys: name, required, capabilities, slot, depends_on, crate",
        ];
        assert_eq!(errors, expected);
    }

    #[test]
    fn duplicates_are_reported() {
        let errors = parse_errors(quote! {
            #[part(name = "a")]
            #[part(name = "b")]
            struct S;
        });
        assert_eq!(errors, ["duplicate key `name`: give it once"]);
    }

    #[test]
    fn wrong_shapes_and_slot_typos() {
        let errors = parse_errors(quote! {
            #[part(name, capabilities = "a", slot = "rma", depends_on(1), crate = 3)]
            struct S;
        });
        assert_eq!(
            errors,
            [
                "`name` takes `name = \"...\"`, found the key alone",
                "`capabilities` takes `capabilities(\"...\", \"...\")`, found `=`",
                "unknown slot `rma`; did you mean `ram`? Valid slots: cpu, ram, gpu, storage, psu",
                "`depends_on` takes a slot name (`ram` or `\"ram\"`), found an integer. Valid slots: cpu, ram, gpu, storage, psu",
                "`crate` takes a path, found an integer: write `crate = ::magmobo_core` or `crate = \"::magmobo_core\"`",
            ]
        );
    }

    #[test]
    fn shared_attribute_takes_only_crate() {
        let errors = parse_errors(quote! {
            #[magmobo(name = "x")]
            struct S;
        });
        assert_eq!(
            errors,
            ["unknown key `name` in `#[magmobo(...)]`. Valid keys: crate"]
        );
    }

    #[test]
    fn empty_strings_are_rejected() {
        assert_eq!(
            parse_errors(quote! { #[part(name = " ")] struct S; }),
            ["`name` must not be empty"]
        );
    }

    #[test]
    fn kebab_case_names() {
        for (input, expected) in [
            ("MagGate", "mag-gate"),
            ("HTTPServer", "http-server"),
            ("MyAPI", "my-api"),
            ("S3Backup", "s3-backup"),
            ("Oauth2Login", "oauth2-login"),
            ("webhooks", "webhooks"),
            ("Snake_Case_", "snake-case"),
            ("X", "x"),
        ] {
            assert_eq!(kebab_case(input), expected, "{input}");
        }
    }

    #[test]
    fn topics_follow_the_bus_rules() {
        for good in ["auth.login.failed", "table.public:orders.changed", "a_b-c"] {
            assert_eq!(check_topic(good, false), Ok(()), "{good}");
        }
        for bad in ["", "a..b", ".a", "a.", "a b", "a.*", "ü"] {
            assert!(check_topic(bad, false).is_err(), "{bad:?}");
        }
        assert_eq!(check_topic("table.*.changed", true), Ok(()));
        assert_eq!(check_topic("*", true), Ok(()));
        assert!(check_topic("a.b*", true).is_err());
    }

    #[test]
    fn closest_key() {
        assert_eq!(closest("nmae", ["name", "slot"].into_iter()), Some("name"));
        assert_eq!(closest("zzzzzz", ["name", "slot"].into_iter()), None);
    }
}
