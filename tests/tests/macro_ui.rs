//! UI tests of `#[handler]`: every accepted signature compiles and
//! registers (`ui/pass`, each run as a program), every mistake fails with our
//! message at the user's code (`ui/fail`, compared with the checked-in
//! `.stderr`). Regenerate the `.stderr` files with
//! `TRYBUILD=overwrite cargo test -p zinx-cluster-tests --test macro_ui`
//! and read them before committing.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
