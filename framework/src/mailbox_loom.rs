//! loom model tests of the mailbox.

#[test]
fn loom_probe() {
    loom::model(|| {});
}
