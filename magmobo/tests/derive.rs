//! Compile-time tests of the derive macros: `ui/pass` cases must build and run, `ui/fail`
//! cases must fail with exactly the messages in their `.stderr` files
//! (regenerate with `TRYBUILD=overwrite`, then read every diff).

// Tests unwrap freely: a panic with the value is the clearest failure.
#![allow(clippy::unwrap_used)]

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
}
