//! loom models of the busy count (run with the mailbox's models, see
//! `mailbox_loom.rs`): an owner going busy while another goes idle on
//! another thread is never seen as a moment with nothing busy, and of two
//! owners going idle at once while a caller waits, the waiter sees the
//! count at zero or one of them wakes it.

use loom::sync::Arc;
use loom::thread;

use super::Tally;

#[test]
fn loom_busy_count_is_never_zero_while_one_owner_hands_over_to_another() {
    loom::model(|| {
        let tally = Arc::new(Tally::new());
        // Owner X is busy, counted on shard 1.
        tally.up_on(1);
        let handover = thread::spawn({
            let tally = tally.clone();
            move || {
                // Owner Y goes busy before X goes idle: something is busy
                // at every moment.
                tally.up_on(0);
                tally.down_on(1);
            }
        });
        assert!(!tally.is_zero(), "nothing busy while X or Y was");
        handover.join().unwrap();
        assert!(!tally.is_zero(), "Y is still busy");
        tally.down_on(2);
        assert!(tally.is_zero());
    });
}

#[test]
fn loom_busy_the_last_owner_to_go_idle_wakes_a_waiter_that_missed_it() {
    loom::model(|| {
        let tally = Arc::new(Tally::new());
        tally.up_on(0);
        tally.up_on(1);
        let idle = |shard| {
            let tally = tally.clone();
            thread::spawn(move || tally.down_on(shard))
        };
        let (a, b) = (idle(2), idle(0));
        tally.wait_begin();
        let saw_zero = tally.is_zero();
        let woke = a.join().unwrap() | b.join().unwrap();
        assert!(
            saw_zero || woke,
            "a waiter that missed the zero must be woken"
        );
        tally.wait_end();
    });
}
