//! The count of mailboxes whose owner has work to do, which
//! [`System::settled`](crate::System::settled) waits to see at zero.
//!
//! A mailbox goes from idle to busy when something is queued for an idle
//! owner, and back when the owner has handled all of it. On an entity that
//! gets an event now and then that is twice per event, and the two happen
//! on different threads: the publisher's, which queues the event, and the
//! worker's that handles it. A single shared counter would move its cache
//! line between the two cores twice per event. So the count is kept in
//! shards, each on cache lines of its own, and each thread counts on the
//! shard of its own: a sender's "busy" and a receiver's "idle" stay in
//! their cores' caches. Each shard holds two counters that only grow, how
//! many owners went busy and how many went idle on that thread; the owners
//! busy now are all the first less all the second.
//!
//! Summing shards one by one is not a snapshot: while they are read, an
//! owner may go busy on a shard already read and another go idle on one
//! not read yet. [`Tally::is_zero`] therefore reads every "idle" counter
//! first and every "busy" counter after. An owner goes busy before it goes
//! idle, so at the moment between the two passes, the busy count was at
//! most the "busy" sum read after it less the "idle" sum read before it;
//! when those are equal, nothing was busy at that moment. And the last
//! owner to go idle, reading both passes after its own change, sees the
//! sums equal if nothing went busy since: that is how a waiter is woken
//! (see [`Busy::down`]). Two loom models check both.

use std::cell::Cell;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, SeqCst};

use crate::sync::{AtomicU64, AtomicUsize, fence};

/// How many shards a count has. Threads beyond it share shards (which is
/// correct, only slower). The loom models use three.
const SHARDS: usize = if cfg!(loom) { 3 } else { 16 };

/// One thread's counters, alone on its cache lines (two lines: processors
/// that fetch lines in pairs would otherwise share neighbours).
#[repr(align(128))]
struct Shard {
    /// Owners that went busy on this shard's threads.
    busy: AtomicU64,
    /// Owners that went idle on this shard's threads.
    idle: AtomicU64,
}

/// Busy owners, counted in shards (see the module's documentation), and
/// how many callers wait for none to be.
pub(crate) struct Tally {
    /// Inline, so that counting follows no pointer beyond the count's own.
    shards: [Shard; SHARDS],
    waiters: AtomicUsize,
}

impl Tally {
    pub(crate) fn new() -> Self {
        Tally {
            shards: std::array::from_fn(|_| Shard {
                busy: AtomicU64::new(0),
                idle: AtomicU64::new(0),
            }),
            waiters: AtomicUsize::new(0),
        }
    }

    /// Counts an owner gone busy, on shard `shard`.
    pub(crate) fn up_on(&self, shard: usize) {
        self.shards[shard % SHARDS].busy.fetch_add(1, AcqRel);
    }

    /// Counts an owner gone idle, on shard `shard`; `true` if a waiter
    /// should be woken: one waits, and no owner was busy after this one
    /// went idle. With a waiter, every owner going idle looks at the whole
    /// count, and the last one finds it at zero.
    pub(crate) fn down_on(&self, shard: usize) -> bool {
        self.shards[shard % SHARDS].idle.fetch_add(1, AcqRel);
        // Paired with the fence in `wait_begin`: of an owner going idle and
        // a waiter registering, at least one sees what the other wrote, so
        // either the waiter's look at the count includes this owner, or
        // this owner sees the waiter and looks for it.
        fence(SeqCst);
        self.waiters.load(Relaxed) > 0 && self.is_zero()
    }

    /// Whether no owner was busy at some moment during the call. `false`
    /// can be stale: an owner busy then may be idle by the return.
    pub(crate) fn is_zero(&self) -> bool {
        // Every "idle" counter before any "busy" one: the other way round,
        // an owner going busy on a shard already read while another goes
        // idle on one not read yet would look like nothing busy. Reading an
        // owner's "idle" (acquire) makes its earlier "busy" visible to the
        // reads that follow.
        let idle = self
            .shards
            .iter()
            .fold(0u64, |sum, s| sum.wrapping_add(s.idle.load(Acquire)));
        let busy = self
            .shards
            .iter()
            .fold(0u64, |sum, s| sum.wrapping_add(s.busy.load(Acquire)));
        busy == idle
    }

    /// Registers a waiter, before it first looks at the count.
    pub(crate) fn wait_begin(&self) {
        self.waiters.fetch_add(1, Relaxed);
        // Paired with the fence in `down_on`.
        fence(SeqCst);
    }

    /// Unregisters a waiter.
    pub(crate) fn wait_end(&self) {
        self.waiters.fetch_sub(1, Relaxed);
    }
}

thread_local! {
    /// This thread's shard, given out in turn at its first count.
    static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// The shard of the calling thread.
fn my_shard() -> usize {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    SHARD.with(|shard| {
        let mut index = shard.get();
        if index == usize::MAX {
            index = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % SHARDS;
            shard.set(index);
        }
        index
    })
}

/// Counts the mailboxes whose owner has work to do (something queued, or a
/// message or hook running) and wakes [`Busy::settled`] when none has. The
/// count changes only when an owner goes from idle to busy or back, not per
/// message.
pub(crate) struct Busy {
    tally: Tally,
    idle: tokio::sync::Notify,
}

impl Default for Busy {
    fn default() -> Self {
        Busy {
            tally: Tally::new(),
            idle: tokio::sync::Notify::new(),
        }
    }
}

impl std::fmt::Debug for Busy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Busy")
            .field("settled", &self.tally.is_zero())
            .field("waiters", &self.tally.waiters.load(Relaxed))
            .finish()
    }
}

impl Busy {
    pub(crate) fn up(&self) {
        self.tally.up_on(my_shard());
    }

    pub(crate) fn down(&self) {
        if self.tally.down_on(my_shard()) {
            self.idle.notify_waiters();
        }
    }

    /// Waits until no owner has work.
    pub(crate) async fn settled(&self) {
        struct Waiting<'a>(&'a Tally);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.wait_end();
            }
        }
        self.tally.wait_begin();
        let _waiting = Waiting(&self.tally);
        loop {
            let mut notified = std::pin::pin!(self.idle.notified());
            notified.as_mut().enable();
            if self.tally.is_zero() {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn owners_gone_busy_on_one_shard_and_idle_on_another_add_up() {
        let tally = Tally::new();
        assert!(tally.is_zero());
        tally.up_on(0);
        tally.up_on(3);
        assert!(!tally.is_zero());
        assert!(!tally.down_on(7), "no waiter to wake");
        assert!(!tally.is_zero());
        tally.wait_begin();
        assert!(tally.down_on(SHARDS + 2), "the last owner wakes the waiter");
        assert!(tally.is_zero());
        tally.wait_end();
    }

    #[test]
    fn a_thread_keeps_its_shard_and_threads_get_shards_in_turn() {
        let mine = my_shard();
        assert_eq!(my_shard(), mine);
        let others: Vec<usize> = (0..SHARDS)
            .map(|_| std::thread::spawn(my_shard).join().unwrap())
            .collect();
        assert!(others.iter().all(|&s| s < SHARDS));
        // Given in turn: SHARDS threads in a row get different shards
        // unless other tests' threads took some meanwhile.
        let mut distinct = others.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert!(distinct.len() > 1, "{others:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn settled_waits_for_an_owner_that_goes_idle_on_another_thread() {
        let busy = std::sync::Arc::new(Busy::default());
        busy.up();
        let waiter = tokio::spawn({
            let busy = busy.clone();
            async move { busy.settled().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        let other = busy.clone();
        std::thread::spawn(move || other.down()).join().unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(10), waiter)
            .await
            .expect("settled() returned once the owner went idle")
            .unwrap();
    }
}

#[cfg(all(test, loom))]
#[path = "busy_loom.rs"]
mod loom_tests;
