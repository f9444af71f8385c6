//! Property tests: no input makes the normaliser, the lexer or `inspect` panic, and their
//! basic contracts hold for arbitrary strings.

// Tests unwrap freely: a panic with the value is the clearest failure.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use sentinel::SqlGuard;
use sentinel::sqlguard::lexer::{Context, Lexer};
use sentinel::sqlguard::normalize::{normalize, strip_comments};

fn sqlish() -> impl Strategy<Value = String> {
    let atoms = prop::sample::select(vec![
        "'", "\"", "`", " ", "--", "#", "/*", "*/", "/*!", "%27", "%25", "%u0027", "\\u0027",
        "&#39;", "&#x27", "+", "or", "union", "select", "1", "=", "(", ")", ";", "@@", "$$", "0x",
        "n'", "é", "😀", "\n", "drop", "table", "sleep", "un", "ion",
    ]);
    prop::collection::vec(atoms, 0..40).prop_map(|v| v.concat())
}

proptest! {
    #[test]
    fn arbitrary_strings_never_panic(s in any::<String>()) {
        let n = normalize(&s);
        for ctx in Context::ALL {
            let _ = Lexer::new(&n, ctx).count();
            let _ = strip_comments(&n, ctx);
        }
        let v = SqlGuard::new().inspect(&s);
        prop_assert!((0.0..=1.0).contains(&v.confidence));
        prop_assert_eq!(v.attack, v.confidence >= 0.5);
    }

    #[test]
    fn sql_fragments_never_panic(s in sqlish()) {
        let n = normalize(&s);
        for ctx in Context::ALL {
            let toks: Vec<_> = Lexer::new(&n, ctx).collect();
            // Tokens are non-overlapping slices of the input, in order.
            prop_assert!(toks.len() <= n.len() + 1);
        }
        let v = SqlGuard::new().inspect(&s);
        prop_assert!((0.0..=1.0).contains(&v.confidence));
    }

    #[test]
    fn normalize_is_idempotent_on_folded_text(s in "[a-zA-Z0-9 '=()]{0,40}") {
        let once = normalize(&s).into_owned();
        let twice = normalize(&once).into_owned();
        prop_assert_eq!(once, twice);
    }
}
