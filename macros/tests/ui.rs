//! Compile-time tests of the macros: what compiles (`ui/pass/`), and what
//! fails with which message at which span (`ui/*.rs` with `.stderr`).
//! Regenerate the `.stderr` files with `TRYBUILD=overwrite` and review the
//! diff like code.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/*.rs");
}
