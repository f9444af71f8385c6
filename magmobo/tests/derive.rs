//! Compile-time tests of the derive macros: `ui/pass` cases must build and run, `ui/fail`
//! cases must fail with exactly the messages in their `.stderr` files
//! (regenerate with `TRYBUILD=overwrite`, then read every diff).

// Tests unwrap freely: a panic with the value is the clearest failure.
#![allow(clippy::unwrap_used)]

/// The compiler's messages list the implementors of a trait that are in scope, which depend on
/// the enabled drivers; the `.stderr` files are blessed with `--all-features`, as CI runs.
#[test]
#[cfg_attr(
    not(all(
        feature = "cache-moka",
        feature = "cache-redis",
        feature = "queue-memory"
    )),
    ignore = "compiler output is blessed for --all-features (run: cargo test -p magmobo --all-features --test derive)"
)]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
}
