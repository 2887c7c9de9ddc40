//! loom model tests of the mailbox.
//!
//! Run with
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=target/loom cargo test -p mercato --release --lib loom`.
//!
//! Every model is small (capacity 1, two or three threads, a handful of
//! messages) so that loom can explore it exhaustively within the preemption
//! bound. A sender or receiver that is never woken shows up as a loom
//! deadlock, so "never hangs" is checked by every model that blocks.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker};

use loom::future::block_on;
use loom::sync::Arc;
use loom::thread;

use super::{Control, Mailbox, MailboxConfig, Overflow, Pushed, Received, Refused};

/// A message: `(sender, sequence number)`.
type Msg = (usize, u32);

/// The sender id used for messages queued before the model's threads start.
const PREFILL: usize = 9;

fn mailbox(capacity: usize, overflow: Overflow) -> Arc<Mailbox<Msg>> {
    Arc::new(Mailbox::new(MailboxConfig::new(capacity, overflow)))
}

fn identity(m: Msg) -> Msg {
    m
}

/// Wakes a thread blocked in [`block_on_exact`].
struct Unpark(thread::Thread);

impl std::task::Wake for Unpark {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &std::sync::Arc<Self>) {
        self.0.unpark();
    }
}

/// Like `loom::future::block_on`, but the thread parks with
/// `loom::thread::park`, which never wakes spuriously, and the waker is not
/// a loom object (cloning it is no scheduling point). Explores the same
/// wake-up races with far fewer executions; a lost wake-up still shows up
/// as a loom deadlock.
fn block_on_exact<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let waker = Waker::from(std::sync::Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(output) = f.as_mut().poll(&mut cx) {
            return output;
        }
        thread::park();
    }
}

/// Receives, waiting (with loom's waker) until something arrives.
fn recv(mb: &Mailbox<Msg>) -> Received<Msg> {
    block_on(poll_fn(|cx| mb.poll_recv(cx)))
}

/// Receives if something is there, without waiting.
fn try_recv(mb: &Mailbox<Msg>) -> Option<Received<Msg>> {
    let mut cx = Context::from_waker(Waker::noop());
    match mb.poll_recv(&mut cx) {
        Poll::Ready(item) => Some(item),
        Poll::Pending => None,
    }
}

fn expect_message(item: Received<Msg>) -> Msg {
    match item {
        Received::Message(m) => m,
        Received::Control(c) => panic!("unexpected control {c:?}"),
    }
}

/// The queue (data lane) never holds more than its capacity.
fn assert_bound(mb: &Mailbox<Msg>) {
    let g = mb.gauges("loom");
    assert!(
        g.depth <= g.capacity,
        "depth {} over capacity {}",
        g.depth,
        g.capacity
    );
    assert!(
        g.high_water <= g.capacity,
        "high water {} over capacity {}",
        g.high_water,
        g.capacity
    );
}

/// Messages of each sender appear in increasing sequence order.
fn assert_per_sender_order(received: &[Msg]) {
    for (i, &(s, seq)) in received.iter().enumerate() {
        for &(s2, seq2) in &received[i + 1..] {
            assert!(
                s != s2 || seq < seq2,
                "sender {s}: {seq} received before {seq2} ({received:?})"
            );
        }
    }
}

fn sorted(mut v: Vec<Msg>) -> Vec<Msg> {
    v.sort_unstable();
    v
}

/// Two `Backpressure` senders pushing `per_sender[s]` messages each into a
/// mailbox of capacity 1; the receiver waits for all of them. Every message
/// arrives once, in per-sender order, and the queue never exceeds its
/// capacity (checked by the receiver after every receive).
fn backpressure_model(per_sender: [u32; 2], exact_wakeups: bool) {
    loom::model(move || {
        let mb = mailbox(1, Overflow::Backpressure);
        let senders: Vec<_> = (0..2)
            .map(|s| {
                let mb = mb.clone();
                thread::spawn(move || {
                    for seq in 0..per_sender[s] {
                        let push = mb.push((s, seq), identity);
                        let pushed = if exact_wakeups {
                            block_on_exact(push)
                        } else {
                            block_on(push)
                        };
                        assert!(
                            matches!(pushed, Ok(Pushed::Queued)),
                            "sender {s} seq {seq}: {pushed:?}"
                        );
                    }
                })
            })
            .collect();

        let total = per_sender.iter().sum::<u32>();
        let mut next = [0u32; 2];
        for _ in 0..total {
            let (s, seq) = expect_message(recv(&mb));
            assert_eq!(seq, next[s], "sender {s}: lost, duplicated or reordered");
            next[s] += 1;
            let g = mb.gauges("loom");
            assert!(
                g.depth <= 1,
                "{} queued in a mailbox of capacity 1",
                g.depth
            );
            assert!(
                g.running_for.is_some(),
                "a received message counts as running"
            );
            assert_bound(&mb);
        }
        for sender in senders {
            sender.join().expect("sender panicked");
        }
        assert_eq!(next, per_sender);

        // Nothing left over; asking again finishes the last message.
        assert!(try_recv(&mb).is_none());
        let g = mb.gauges("loom");
        assert_eq!(g.depth, 0);
        assert_eq!(g.high_water, 1);
        assert_eq!(g.enqueued, u64::from(total));
        assert_eq!(g.processed, u64::from(total));
        assert_eq!((g.rejected, g.dropped), (0, 0));
        assert!(!mb.state.lock().has_waiting_senders());
    });
}

/// One `Backpressure` sender against the receiver: `prefill` messages are
/// queued before the model's threads start, then the sender pushes the rest
/// up to `total`, waiting for room. The sender is always woken (a lost
/// wake-up would hang the model), order holds, every message is counted
/// processed once, and, against a count kept independently of the gauges
/// (what was accepted and not yet taken by the receiver is held, queued or
/// in its batch), the mailbox never holds more than `capacity`.
fn one_sender_model(capacity: usize, prefill: u32, total: u32) {
    loom::model(move || {
        let mb = mailbox(capacity, Overflow::Backpressure);
        for seq in 0..prefill {
            assert!(matches!(
                mb.try_push((0, seq), identity),
                Ok(Pushed::Queued)
            ));
        }
        let accepted = Arc::new(loom::sync::atomic::AtomicUsize::new(prefill as usize));
        let sender = {
            let mb = mb.clone();
            let accepted = accepted.clone();
            thread::spawn(move || {
                for seq in prefill..total {
                    let pushed = block_on_exact(mb.push((0, seq), identity));
                    assert!(
                        matches!(pushed, Ok(Pushed::Queued)),
                        "seq {seq}: {pushed:?}"
                    );
                    accepted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    assert_bound(&mb);
                }
            })
        };
        for seq in 0..total {
            let (_, got) = expect_message(recv(&mb));
            assert_eq!(got, seq, "lost, duplicated or reordered");
            let held = accepted
                .load(std::sync::atomic::Ordering::SeqCst)
                .saturating_sub(seq as usize + 1);
            assert!(
                held <= capacity,
                "{held} held in a mailbox of capacity {capacity}"
            );
            assert_bound(&mb);
        }
        sender.join().expect("sender panicked");
        assert!(try_recv(&mb).is_none());
        let g = mb.gauges("loom");
        let total = u64::from(total);
        assert_eq!((g.depth, g.enqueued, g.processed), (0, total, total));
        assert!(g.high_water <= capacity);
    });
}

/// Capacity 2: the receiver takes what is queued into its batch and starts
/// the second message without the lock, while the sender waits for room;
/// the batch counts against the bound.
#[test]
fn loom_batch_counts_against_the_bound_and_wakes_the_sender() {
    one_sender_model(2, 0, 4);
}

/// Capacity 4, four messages queued and a sender of four more: the
/// receiver's batch of four is reported under the lock, then (with
/// `SYNC_EVERY` at 2 in the models) without it two starts later, with one
/// message still in hand, while the sender, finding the report full, counts
/// what was started since. The mailbox would hold five if a report were
/// taken against `started` before the count of the message just started.
#[test]
fn loom_stepped_reports_keep_the_bound_exact() {
    one_sender_model(4, 4, 8);
}

/// Two senders, two messages each; wake-ups are exact (no spurious ones),
/// which keeps the state space small enough for four messages.
#[test]
fn loom_backpressure_two_senders_order_and_bound() {
    backpressure_model([2, 2], true);
}

/// Two senders, two messages and one; the senders may also wake
/// spuriously and re-poll their `Push` while still registered.
#[test]
fn loom_backpressure_spurious_wakeups_order_and_bound() {
    backpressure_model([2, 1], false);
}

/// `DropOldest`, capacity 1, two senders racing a receiver: every message
/// is either received or handed back as evicted, exactly once, and the
/// dropped gauge counts the evictions.
#[test]
fn loom_drop_oldest_accounting() {
    loom::model(|| {
        let mb = mailbox(1, Overflow::DropOldest);
        let senders: Vec<_> = (0..2)
            .map(|s| {
                let mb = mb.clone();
                thread::spawn(move || {
                    let mut evicted = Vec::new();
                    for seq in 0..2 {
                        // One sender through the waiting path, one without.
                        let pushed = if s == 0 {
                            block_on(mb.push((s, seq), identity))
                        } else {
                            mb.try_push((s, seq), identity)
                        };
                        match pushed {
                            Ok(Pushed::Queued) => {}
                            Ok(Pushed::Evicted(m)) => evicted.push(*m),
                            other => panic!("sender {s} seq {seq}: {other:?}"),
                        }
                    }
                    evicted
                })
            })
            .collect();

        let mut received = Vec::new();
        for _ in 0..2 {
            if let Some(item) = try_recv(&mb) {
                received.push(expect_message(item));
                assert_bound(&mb);
            }
        }
        let evicted: Vec<Msg> = senders
            .into_iter()
            .flat_map(|s| s.join().expect("sender panicked"))
            .collect();
        while let Some(item) = try_recv(&mb) {
            received.push(expect_message(item));
        }

        assert_per_sender_order(&received);
        assert_eq!(
            received.len() + evicted.len(),
            4,
            "received + evicted != sent"
        );
        let mut all = received.clone();
        all.extend(&evicted);
        assert_eq!(
            sorted(all),
            vec![(0, 0), (0, 1), (1, 0), (1, 1)],
            "received {received:?}, evicted {evicted:?}"
        );
        let g = mb.gauges("loom");
        assert_eq!(g.dropped, evicted.len() as u64);
        assert_eq!(g.enqueued, 4);
        assert_eq!(g.rejected, 0);
        assert_eq!(g.high_water, 1);
        assert_eq!(g.depth, 0);
    });
}

/// `Reject`, capacity 1, two senders racing a receiver: refused values come
/// back intact as `Refused::Full`, accepted + refused == sent, the receiver
/// gets exactly the accepted ones and the rejected gauge counts the refusals.
#[test]
fn loom_reject_returns_refused_values() {
    loom::model(|| {
        let mb = mailbox(1, Overflow::Reject);
        let senders: Vec<_> = (0..2)
            .map(|s| {
                let mb = mb.clone();
                thread::spawn(move || {
                    let (mut accepted, mut refused) = (Vec::new(), Vec::new());
                    for seq in 0..2 {
                        let pushed = if s == 0 {
                            block_on(mb.push((s, seq), identity))
                        } else {
                            mb.try_push((s, seq), identity)
                        };
                        match pushed {
                            Ok(Pushed::Queued) => accepted.push((s, seq)),
                            Err(Refused::Full(v)) => {
                                assert_eq!(v, (s, seq), "refused value altered");
                                refused.push(v);
                            }
                            other => panic!("sender {s} seq {seq}: {other:?}"),
                        }
                    }
                    (accepted, refused)
                })
            })
            .collect();

        let mut received = Vec::new();
        for _ in 0..2 {
            if let Some(item) = try_recv(&mb) {
                received.push(expect_message(item));
                assert_bound(&mb);
            }
        }
        let (mut accepted, mut refused) = (Vec::new(), Vec::new());
        for sender in senders {
            let (a, r) = sender.join().expect("sender panicked");
            accepted.extend(a);
            refused.extend(r);
        }
        while let Some(item) = try_recv(&mb) {
            received.push(expect_message(item));
        }

        assert_per_sender_order(&received);
        assert_eq!(
            accepted.len() + refused.len(),
            4,
            "accepted + refused != sent"
        );
        assert_eq!(sorted(received.clone()), sorted(accepted.clone()));
        let g = mb.gauges("loom");
        assert_eq!(g.rejected, refused.len() as u64);
        assert_eq!(g.enqueued, accepted.len() as u64);
        assert_eq!(g.dropped, 0);
        assert_eq!(g.high_water, 1);
    });
}

/// The control lane: a full mailbox (capacity 1, one message queued) still
/// takes a control signal, which is delivered exactly once and before the
/// data its sender queued after it; data racing it is neither lost nor
/// pushed over the bound.
#[test]
fn loom_control_lane_outside_capacity() {
    loom::model(|| {
        let mb = mailbox(1, Overflow::Backpressure);
        assert!(matches!(
            mb.try_push((PREFILL, 0), identity),
            Ok(Pushed::Queued)
        ));

        let a = {
            let mb = mb.clone();
            thread::spawn(move || {
                assert!(mb.push_control(Control::Tick(7)), "control refused");
                let pushed = block_on(mb.push((0, 0), identity));
                assert!(matches!(pushed, Ok(Pushed::Queued)), "{pushed:?}");
            })
        };
        let b = {
            let mb = mb.clone();
            thread::spawn(move || {
                let pushed = block_on(mb.push((1, 0), identity));
                assert!(matches!(pushed, Ok(Pushed::Queued)), "{pushed:?}");
            })
        };

        // `None` stands for the control signal.
        let mut order: Vec<Option<Msg>> = Vec::new();
        while order.len() < 4 {
            match recv(&mb) {
                Received::Control(Control::Tick(7)) => order.push(None),
                Received::Control(c) => panic!("unexpected control {c:?}"),
                Received::Message(m) => order.push(Some(m)),
            }
            assert_bound(&mb);
        }
        a.join().expect("sender a panicked");
        b.join().expect("sender b panicked");
        assert!(try_recv(&mb).is_none(), "something extra was queued");

        let position = |x: Option<Msg>| order.iter().position(|&y| y == x);
        assert_eq!(order.iter().filter(|x| x.is_none()).count(), 1, "{order:?}");
        let control = position(None).expect("control lost");
        let after = position(Some((0, 0))).expect("(0, 0) lost");
        assert!(position(Some((1, 0))).is_some(), "(1, 0) lost: {order:?}");
        assert!(
            position(Some((PREFILL, 0))).is_some(),
            "prefill lost: {order:?}"
        );
        assert!(
            control < after,
            "control overtaken by data queued after it: {order:?}"
        );
        let g = mb.gauges("loom");
        assert_eq!(g.high_water, 1);
        assert_eq!(g.enqueued, 3);
    });
}

/// A receiver waiting on an empty mailbox is woken by a control signal
/// alone (stopping an idle actor), while a data message races it: the
/// receiver gets the signal, and the message exactly once, in either order.
#[test]
fn loom_control_wakes_idle_receiver() {
    loom::model(|| {
        let mb = mailbox(1, Overflow::Backpressure);
        let a = {
            let mb = mb.clone();
            thread::spawn(move || assert!(mb.push_control(Control::Stop), "control refused"))
        };
        let b = {
            let mb = mb.clone();
            thread::spawn(move || {
                let pushed = mb.try_push((1, 0), identity);
                assert!(matches!(pushed, Ok(Pushed::Queued)), "{pushed:?}");
            })
        };

        let mut received = Vec::new();
        loop {
            match recv(&mb) {
                Received::Control(Control::Stop) => break,
                Received::Control(c) => panic!("unexpected control {c:?}"),
                Received::Message(m) => received.push(m),
            }
        }
        a.join().expect("sender a panicked");
        b.join().expect("sender b panicked");
        while let Some(item) = try_recv(&mb) {
            received.push(expect_message(item));
        }
        assert_eq!(received, vec![(1, 0)]);
    });
}

/// `close()` racing two `Backpressure` senders waiting on a full mailbox
/// (capacity 1) while the receiver frees one slot: each sender finishes
/// (never hangs) and its message is either queued and handed back by
/// `close()` or returned to it as `Refused::Closed`, never both, never lost.
#[test]
fn loom_close_wakes_waiting_senders() {
    loom::model(|| {
        let mb = mailbox(1, Overflow::Backpressure);
        assert!(matches!(
            mb.try_push((PREFILL, 0), identity),
            Ok(Pushed::Queued)
        ));

        let senders: Vec<_> = (0..2)
            .map(|s| {
                let mb = mb.clone();
                thread::spawn(move || match block_on(mb.push((s, 0), identity)) {
                    Ok(Pushed::Queued) => None,
                    Err(Refused::Closed(v)) => Some(v),
                    other => panic!("sender {s}: {other:?}"),
                })
            })
            .collect();

        // Free one slot (waking a waiting sender, if any), then close.
        let first = try_recv(&mb).map(expect_message);
        assert_eq!(first, Some((PREFILL, 0)));
        let queued: Vec<Msg> = mb.close().into_iter().collect();
        assert!(queued.len() <= 1, "close returned {queued:?}");

        for (s, sender) in senders.into_iter().enumerate() {
            let returned = sender.join().expect("sender panicked");
            let in_queue = queued.contains(&(s, 0));
            match returned {
                Some(v) => {
                    assert_eq!(v, (s, 0), "wrong value returned");
                    assert!(!in_queue, "sender {s}: both queued and refused");
                }
                None => assert!(in_queue, "sender {s}: queued but lost by close"),
            }
        }
        assert!(mb.is_closed());
        assert!(!mb.state.lock().has_waiting_senders());
        assert!(matches!(
            mb.try_push((0, 1), identity),
            Err(Refused::Closed((0, 1)))
        ));
        assert!(try_recv(&mb).is_none(), "close left messages behind");
    });
}

/// Sender A's `Push` waits on a full mailbox (capacity 1) and is dropped
/// (cancelled) without completing, while sender B waits too and the
/// receiver frees the slot. B must still get through: a wake-up that went
/// to A is passed on. `wait_for_wake` makes A wait for a wake-up (or a
/// spurious one) before it gives up; otherwise A gives up right after its
/// first poll, racing the receiver.
fn cancelled_push_model(wait_for_wake: bool) {
    loom::model(move || {
        let mb = mailbox(1, Overflow::Backpressure);
        assert!(matches!(
            mb.try_push((PREFILL, 0), identity),
            Ok(Pushed::Queued)
        ));

        let a = {
            let mb = mb.clone();
            thread::spawn(move || {
                let mut push = mb.push((0, 0), identity);
                let mut polls = 0;
                // A select between the push and a cancellation that is
                // ready on the first (or second) poll.
                let outcome = block_on(poll_fn(|cx| {
                    polls += 1;
                    if polls > 1 {
                        return Poll::Ready(None);
                    }
                    match Pin::new(&mut push).poll(cx) {
                        Poll::Ready(result) => Poll::Ready(Some(result)),
                        Poll::Pending if wait_for_wake => Poll::Pending,
                        Poll::Pending => Poll::Ready(None),
                    }
                }));
                drop(push);
                match outcome {
                    None => false,
                    Some(Ok(Pushed::Queued)) => true,
                    Some(other) => panic!("sender a: {other:?}"),
                }
            })
        };
        let b = {
            let mb = mb.clone();
            thread::spawn(move || {
                let pushed = block_on(mb.push((1, 0), identity));
                assert!(matches!(pushed, Ok(Pushed::Queued)), "{pushed:?}");
            })
        };

        let mut received = Vec::new();
        while !received.contains(&(1, 0)) {
            received.push(expect_message(recv(&mb)));
            assert_bound(&mb);
        }
        let a_queued = a.join().expect("sender a panicked");
        b.join().expect("sender b panicked");
        if a_queued && !received.contains(&(0, 0)) {
            received.push(expect_message(recv(&mb)));
        }
        assert!(try_recv(&mb).is_none(), "something extra was queued");

        let mut expected = vec![(PREFILL, 0), (1, 0)];
        if a_queued {
            expected.push((0, 0));
        }
        assert_eq!(sorted(received), sorted(expected));
        assert!(
            !mb.state.lock().has_waiting_senders(),
            "a cancelled sender is still registered"
        );
    });
}

#[test]
fn loom_cancelled_push_after_wake_passes_wakeup_on() {
    cancelled_push_model(true);
}

#[test]
fn loom_cancelled_push_right_away_unregisters() {
    cancelled_push_model(false);
}
