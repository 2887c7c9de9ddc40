//! Where an activated entity gets its task: not in the task that published
//! the event that activated it, but in one of two starter tasks of its kind.
//!
//! The publisher makes the entity (its mailbox, with the event queued, its
//! slot in the kind's table) and hands the loop, not yet started, to a
//! starter. The starter spawns it where the starter runs. On a multi-thread
//! runtime the publishing worker then neither allocates the entity's task
//! nor wakes a parked worker for each new entity: it wakes a starter when
//! that starter's queue was empty, and another worker, taking the starter
//! from the publisher's queue, allocates and runs the new tasks. An
//! activation costs the publishing worker about two thirds of what it did
//! (see the book's performance chapter).
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

use parking_lot::Mutex;

use crate::actor::Actor;
use crate::runtime::{Factory, Unstarted};
use crate::system::System;

/// The two starters of one kind, used in turn.
pub(super) struct Starters<A: Actor, F> {
    pair: [Arc<Starter<A, F>>; 2],
    turn: AtomicUsize,
}

/// One starter: the loops waiting for it, and its task's wake-up.
struct Starter<A: Actor, F> {
    queue: Mutex<Queue<A, F>>,
    wake: tokio::sync::Notify,
    /// Its task has been spawned.
    spawned: AtomicBool,
}

struct Queue<A: Actor, F> {
    loops: Vec<Unstarted<A, F>>,
    /// Its task is gone (dropped with its runtime) or its kind is: loops are
    /// started directly.
    closed: bool,
}

impl<A: Actor, F: Factory<A>> Starters<A, F> {
    pub(super) fn new() -> Self {
        let starter = || {
            Arc::new(Starter {
                queue: Mutex::new(Queue {
                    loops: Vec::new(),
                    closed: false,
                }),
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
        let first = {
            let mut queue = starter.queue.lock();
            if queue.closed {
                drop(queue);
                run.start();
                return;
            }
            queue.loops.push(run);
            queue.loops.len() == 1
        };
        // A queue that was not empty has a wake-up on its way, or a task
        // that will look again before it waits.
        if first {
            starter.wake.notify_one();
        }
    }
}

impl<A: Actor, F> Drop for Starters<A, F> {
    /// The kind is gone: its starters' tasks end.
    fn drop(&mut self) {
        for starter in &self.pair {
            starter.queue.lock().closed = true;
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
        let loops = {
            let mut queue = self.0.queue.lock();
            queue.closed = true;
            std::mem::take(&mut queue.loops)
        };
        // Outside the lock: a loop's drop takes its kind's locks.
        drop(loops);
    }
}

/// A starter's task: starts what is queued, and waits when nothing is.
async fn serve<A: Actor, F: Factory<A>>(serving: Serving<A, F>) {
    let starter = &serving.0;
    loop {
        let (loops, closed) = {
            let mut queue = starter.queue.lock();
            (std::mem::take(&mut queue.loops), queue.closed)
        };
        if loops.is_empty() {
            if closed {
                return;
            }
            // A permit left by a wake-up since the queue was taken makes
            // this return at once.
            starter.wake.notified().await;
            continue;
        }
        for run in loops {
            run.start();
            tokio::task::coop::consume_budget().await;
        }
    }
}
