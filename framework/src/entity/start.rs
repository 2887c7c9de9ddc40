//! Where an activated entity gets its task: not in the task that published
//! the event that activated it, but in one of two starter tasks of its kind.
//!
//! The publisher makes the entity (its mailbox, with the event queued, its
//! slot in the kind's table) and hands the loop, not yet started, to a
//! starter. The starter spawns it where the starter runs. On a multi-thread
//! runtime the publishing worker then neither allocates the entity's task
//! nor wakes a parked worker for each new entity: it wakes a starter when
//! that starter's queue was empty, and another worker, taking the starter
//! from the publisher's queue, allocates and runs the new tasks. In the
//! keyed benchmark on two workers, 100,000 activating events took 0.160 s
//! instead of 0.257 s (see the book's performance chapter).
//!
//! Two starters, used in turn: tokio puts a task woken from a worker in
//! that worker's LIFO slot, which no other worker can take from, and it
//! stays there until the running task yields or wakes another. With one
//! starter and a publisher that never yields, activated entities would wait
//! until the publisher did. Waking the other starter moves the first one
//! from the slot to the worker's queue, where any worker can take it.
//!
//! A starter spawns what it took one entity at a time, each spawn counted
//! against the task's cooperative budget, so that a large batch does not
//! hold its worker past the budget. When a starter's task is dropped (with
//! its runtime), the loops it held are dropped, as tasks are, and later
//! ones are started directly.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::actor::Actor;
use crate::runtime::{Factory, Unstarted};
use crate::sync::Mutex;
use crate::system::System;

/// The two starters of one kind, used in turn.
pub(super) struct Starters<A: Actor, F> {
    pair: [Arc<Starter<A, F>>; 2],
    turn: AtomicUsize,
}

/// One starter: the loops waiting for it, and its task's wake-up.
struct Starter<A: Actor, F> {
    loops: Handoff<Unstarted<A, F>>,
    wake: tokio::sync::Notify,
    /// Its task has been spawned.
    spawned: AtomicBool,
}

impl<A: Actor, F: Factory<A>> Starters<A, F> {
    pub(super) fn new() -> Self {
        let starter = || {
            Arc::new(Starter {
                loops: Handoff::new(),
                wake: tokio::sync::Notify::new(),
                spawned: AtomicBool::new(false),
            })
        };
        Starters {
            pair: [starter(), starter()],
            turn: AtomicUsize::new(0),
        }
    }

    /// Has `run` started by the next starter in turn, in `system`'s runtime.
    pub(super) fn start(&self, system: &System, run: Unstarted<A, F>) {
        let turn = self.turn.fetch_add(1, Ordering::Relaxed);
        let starter = &self.pair[turn % 2];
        if !starter.spawned.load(Ordering::Relaxed) && !starter.spawned.swap(true, Ordering::AcqRel)
        {
            drop(system.handle().spawn(serve(Serving(Arc::clone(starter)))));
        }
        match starter.loops.push(run) {
            Ok(true) => starter.wake.notify_one(),
            Ok(false) => {}
            Err(run) => run.start(),
        }
    }
}

impl<A: Actor, F> Drop for Starters<A, F> {
    /// The kind is gone: its starters' tasks end.
    fn drop(&mut self) {
        for starter in &self.pair {
            drop(starter.loops.close());
            starter.wake.notify_one();
        }
    }
}

/// A starter's task's hold on it. Dropped with the task (when it ends, or
/// unpolled, or with its runtime): the starter closes and what it holds is
/// dropped.
struct Serving<A: Actor, F>(Arc<Starter<A, F>>);

impl<A: Actor, F> Drop for Serving<A, F> {
    fn drop(&mut self) {
        // Dropped outside the hand-off's lock: a loop's drop takes its
        // kind's locks.
        drop(self.0.loops.close());
    }
}

/// A starter's task: starts what is queued, and waits when nothing is.
async fn serve<A: Actor, F: Factory<A>>(serving: Serving<A, F>) {
    let starter = &serving.0;
    // The vector of the batch before, emptied, handed back to the senders:
    // a batch is taken as soon as a starter runs, and a new vector each
    // time would be allocated by the publishing thread and freed by this
    // one, at every batch.
    let mut spare = Vec::new();
    loop {
        let (mut loops, closed) = starter.loops.take(spare);
        if loops.is_empty() {
            if closed {
                return;
            }
            spare = loops;
            // A wake-up since the queue was taken left a permit: this
            // returns at once.
            starter.wake.notified().await;
            continue;
        }
        for run in loops.drain(..) {
            run.start();
            tokio::task::coop::consume_budget().await;
        }
        // Not kept past a burst's size: a large batch's room is given back.
        if loops.capacity() > MAX_SPARE {
            loops = Vec::new();
        }
        spare = loops;
    }
}

/// The most loops a starter's spare vector keeps room for.
const MAX_SPARE: usize = 256;

/// Items handed from any number of senders to one taker, which takes them
/// all at once and waits to be woken when there are none. A sender wakes it
/// only when its push found the queue empty: the taker either took the
/// queue before that push, and is woken for it, or takes the item with the
/// others. Waking leaves a permit if the taker is not waiting yet (as
/// tokio's `Notify::notify_one` does), so no wake-up is lost between the
/// taker's look and its wait (checked by a loom model).
struct Handoff<T> {
    queue: Mutex<Queue<T>>,
}

struct Queue<T> {
    items: Vec<T>,
    /// The taker is gone (its task dropped with its runtime) or its owner
    /// is: items are refused and their senders deal with them.
    closed: bool,
}

impl<T> Handoff<T> {
    fn new() -> Self {
        Handoff {
            queue: Mutex::new(Queue {
                items: Vec::new(),
                closed: false,
            }),
        }
    }

    /// Queues `item`: `Ok(true)` if the taker must be woken (the queue was
    /// empty), `Err(item)` if the hand-off is closed.
    fn push(&self, item: T) -> Result<bool, T> {
        let mut queue = self.queue.lock();
        if queue.closed {
            return Err(item);
        }
        queue.items.push(item);
        Ok(queue.items.len() == 1)
    }

    /// Everything queued, and whether the hand-off is closed; `spare`, an
    /// empty vector the taker has done with, takes the queue's place, so
    /// that senders push into room already allocated.
    fn take(&self, spare: Vec<T>) -> (Vec<T>, bool) {
        debug_assert!(spare.is_empty());
        let mut queue = self.queue.lock();
        (std::mem::replace(&mut queue.items, spare), queue.closed)
    }

    /// Closes the hand-off, returning what it held.
    fn close(&self) -> Vec<T> {
        let mut queue = self.queue.lock();
        queue.closed = true;
        std::mem::take(&mut queue.items)
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    //! loom models of the hand-off between senders and a starter: whatever
    //! the interleaving, the taker gets every item exactly once and waits
    //! for no wake-up that never comes (loom reports a deadlock if it
    //! does), and an item pushed while the hand-off closes is either
    //! returned by the close or refused to its sender. loom's `Notify`
    //! keeps a permit when no one waits, as tokio's `notify_one` does.

    use loom::sync::Arc;
    use loom::sync::Notify;
    use loom::thread;

    use super::Handoff;

    /// Sends `items` through the hand-off, waking the taker as a starter's
    /// senders do.
    fn send(handoff: &Handoff<u32>, wake: &Notify, items: &[u32]) {
        for &item in items {
            if handoff.push(item) == Ok(true) {
                wake.notify();
            }
        }
    }

    /// A starter's loop: takes, and waits when there is nothing, until it
    /// has `expected` items. A lost wake-up leaves it waiting for good,
    /// which loom reports.
    fn take(handoff: &Handoff<u32>, wake: &Notify, expected: usize) -> Vec<u32> {
        let mut got = Vec::new();
        let mut spare = Vec::new();
        while got.len() < expected {
            let (mut items, _) = handoff.take(spare);
            if items.is_empty() {
                spare = items;
                wake.wait();
                continue;
            }
            got.extend(items.drain(..));
            // Handed back at the next take, as a starter does.
            spare = items;
        }
        got
    }

    #[test]
    fn loom_two_senders_and_a_taker_lose_no_item_and_no_wake_up() {
        loom::model(|| {
            let handoff = Arc::new(Handoff::new());
            let wake = Arc::new(Notify::new());
            let taker = {
                let (handoff, wake) = (handoff.clone(), wake.clone());
                thread::spawn(move || take(&handoff, &wake, 3))
            };
            let other = {
                let (handoff, wake) = (handoff.clone(), wake.clone());
                thread::spawn(move || send(&handoff, &wake, &[3]))
            };
            send(&handoff, &wake, &[1, 2]);
            other.join().unwrap();
            let mut got = taker.join().unwrap();
            got.sort_unstable();
            assert_eq!(got, [1, 2, 3]);
        });
    }

    #[test]
    fn loom_a_closed_handoff_refuses_and_returns_what_it_held() {
        loom::model(|| {
            let handoff = Arc::new(Handoff::new());
            let sender = {
                let handoff = handoff.clone();
                thread::spawn(move || handoff.push(7))
            };
            let held = handoff.close();
            let pushed = sender.join().unwrap();
            // The item is either returned by the close or refused to its
            // sender: never both, never neither.
            match pushed {
                Ok(_) => assert_eq!(held, [7]),
                Err(item) => {
                    assert_eq!(item, 7);
                    assert!(held.is_empty());
                }
            }
            assert_eq!(handoff.push(8), Err(8));
        });
    }
}
