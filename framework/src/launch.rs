//! Starting an actor in the task that spawns it, and giving it a task of
//! its own only when it is first woken.
//!
//! A new actor's loop is polled once where it is spawned: it builds the
//! instance, runs `started` up to its first wait, and parks on its empty
//! mailbox without handling anything. Until something wakes it (a message,
//! a stop, a timer, whatever `started` waits for), it is a parked future in
//! its system's [`Parked`] set: no tokio task, and no work put on a worker,
//! which on a multi-thread runtime would wake a sleeping worker for every
//! actor spawned. Its first wake-up hands it to tokio as a task, for good.
//!
//! Dropping the runtime drops what is parked, as it drops tasks: a keeper
//! task per system holds the set and empties it when it is dropped (or when
//! the system has shut down).

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use crate::sync::Mutex;

/// An actor's loop, boxed: polled in place before it has a task.
pub(crate) type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

/// What hands a launched actor to the runtime (tokio's `spawn`).
type Spawn = Box<dyn Fn(Launched) + Send + Sync>;

/// The actors of one system that have started but have no task yet.
pub(crate) struct Parked {
    slots: Mutex<Slots>,
    spawn: Spawn,
    /// The runtime entered while an actor starts, so that `started` can
    /// make timers wherever `spawn` was called.
    runtime: Option<tokio::runtime::Handle>,
}

#[derive(Default)]
struct Slots {
    tasks: Vec<Option<Task>>,
    free: Vec<usize>,
    /// Emptied for good: actors spawned from now on get a task at once.
    closed: bool,
}

enum State {
    /// Being polled where it was spawned; `true` once woken meanwhile.
    Starting(bool),
    /// Started, waiting in slot `n` of the parked set.
    Parked(usize),
    /// Handed to the runtime (or dropped with the parked set); the task's
    /// waker once it has been polled, to pass late wake-ups on to.
    Launched(Option<Waker>),
}

/// The waker of an actor until it has a task.
struct Launcher {
    state: Mutex<State>,
    parked: Arc<Parked>,
}

thread_local! {
    /// Whether the actor loop being polled on this thread is starting in
    /// its spawner's task.
    static STARTING: Cell<bool> = const { Cell::new(false) };
}

/// Whether the actor loop being polled is starting in its spawner's task:
/// its mailbox then parks it at its first receive, handling nothing there.
pub(crate) fn starting() -> bool {
    STARTING.with(Cell::get)
}

impl Parked {
    /// A set whose actors `spawn` hands to the runtime.
    pub(crate) fn new(
        runtime: Option<tokio::runtime::Handle>,
        spawn: impl Fn(Launched) + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Parked {
            slots: Mutex::new(Slots::default()),
            spawn: Box::new(spawn),
            runtime,
        })
    }

    /// A set that hands actors to `handle`, emptied when the keeper task
    /// it spawns there is dropped (the runtime shuts down) or `done` ends.
    pub(crate) fn on_runtime(
        handle: &tokio::runtime::Handle,
        done: impl Future<Output = ()> + Send + 'static,
    ) -> Arc<Self> {
        let spawner = handle.clone();
        let parked = Parked::new(Some(handle.clone()), move |launched| {
            drop(spawner.spawn(launched));
        });
        struct Keeper(Arc<Parked>);
        impl Drop for Keeper {
            fn drop(&mut self) {
                self.0.close();
            }
        }
        let keeper = Keeper(Arc::clone(&parked));
        drop(handle.spawn(async move {
            let _keeper = keeper;
            done.await;
        }));
        parked
    }

    /// Starts `task` (an actor's loop) here, up to its first wait; it gets
    /// a task of its own when first woken.
    pub(crate) fn start(self: &Arc<Self>, task: impl Future<Output = ()> + Send + 'static) {
        struct Restore(bool);
        impl Drop for Restore {
            fn drop(&mut self) {
                STARTING.with(|s| s.set(self.0));
            }
        }
        let mut task: Task = Box::pin(task);
        let launcher = Arc::new(Launcher {
            state: Mutex::new(State::Starting(false)),
            parked: Arc::clone(self),
        });
        let waker = Waker::from(Arc::clone(&launcher));
        let polled = {
            let _runtime = self.runtime.as_ref().map(tokio::runtime::Handle::enter);
            let _restore = Restore(STARTING.with(|s| s.replace(true)));
            task.as_mut().poll(&mut Context::from_waker(&waker))
        };
        if polled.is_ready() {
            return;
        }
        let mut state = launcher.state.lock();
        let woken = matches!(*state, State::Starting(true));
        match if woken { Err(task) } else { self.park(task) } {
            Ok(n) => *state = State::Parked(n),
            Err(task) => {
                *state = State::Launched(None);
                drop(state);
                launcher.launch(task);
            }
        }
    }

    /// Puts `task` in a free slot and says which; gives it back if the set
    /// is closed.
    fn park(&self, task: Task) -> Result<usize, Task> {
        let mut slots = self.slots.lock();
        if slots.closed {
            return Err(task);
        }
        Ok(match slots.free.pop() {
            Some(n) => {
                slots.tasks[n] = Some(task);
                n
            }
            None => {
                slots.tasks.push(Some(task));
                slots.tasks.len() - 1
            }
        })
    }

    /// Takes the task out of slot `n`, freeing it; `None` once closed.
    fn unpark(&self, n: usize) -> Option<Task> {
        let mut slots = self.slots.lock();
        let task = slots.tasks.get_mut(n)?.take()?;
        if slots.free.len() + 1 == slots.tasks.len() {
            // None left parked: give back the memory of the slots too.
            slots.tasks = Vec::new();
            slots.free = Vec::new();
        } else {
            slots.free.push(n);
        }
        Some(task)
    }

    /// Drops every parked actor, as the runtime drops its tasks, and makes
    /// later actors get a task at once.
    pub(crate) fn close(&self) {
        let tasks = {
            let mut slots = self.slots.lock();
            slots.closed = true;
            slots.free.clear();
            std::mem::take(&mut slots.tasks)
        };
        // Outside the lock: dropping an actor's loop drops wakers.
        drop(tasks);
    }

    /// How many actors are parked now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.slots.lock().tasks.iter().flatten().count()
    }
}

impl Launcher {
    fn launch(self: &Arc<Self>, task: Task) {
        (self.parked.spawn)(Launched {
            launcher: Some(Arc::clone(self)),
            task,
        });
    }
}

impl Wake for Launcher {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let mut state = self.state.lock();
        match &mut *state {
            State::Starting(woken) => *woken = true,
            State::Parked(n) => {
                let n = *n;
                *state = State::Launched(None);
                drop(state);
                if let Some(task) = self.parked.unpark(n) {
                    self.launch(task);
                }
            }
            State::Launched(Some(waker)) => {
                let waker = waker.clone();
                drop(state);
                waker.wake();
            }
            // Not polled yet: its first poll sees whatever woke it.
            State::Launched(None) => {}
        }
    }
}

/// The task of a launched actor. It gives the launcher its waker at the
/// first poll, so that a wake-up through the launcher still reaches it.
pub(crate) struct Launched {
    launcher: Option<Arc<Launcher>>,
    task: Task,
}

impl Future for Launched {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(launcher) = self.launcher.take() {
            *launcher.state.lock() = State::Launched(Some(cx.waker().clone()));
        }
        self.task.as_mut().poll(cx)
    }
}

#[cfg(all(test, loom))]
#[path = "launch_loom.rs"]
mod loom_tests;

#[cfg(all(test, not(loom)))]
mod tests {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::task::{Context, Poll, Wake, Waker};

    use super::{Launched, Parked};

    /// A stand-in for an actor's loop: pending at its first `pending`
    /// polls, then ended. Keeps the waker of its latest poll where the test
    /// can reach it, and says when it is dropped.
    struct Waiting {
        waker: Arc<parking_lot::Mutex<Option<Waker>>>,
        polls: Arc<AtomicUsize>,
        pending: usize,
        /// Wakes itself during its first poll.
        wake_at_once: bool,
        dropped: Arc<AtomicBool>,
    }

    impl Future for Waiting {
        type Output = ();
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            let polls = self.polls.fetch_add(1, Ordering::SeqCst) + 1;
            if polls > self.pending {
                return Poll::Ready(());
            }
            *self.waker.lock() = Some(cx.waker().clone());
            if self.wake_at_once && polls == 1 {
                cx.waker().wake_by_ref();
            }
            Poll::Pending
        }
    }

    impl Drop for Waiting {
        fn drop(&mut self) {
            self.dropped.store(true, Ordering::SeqCst);
        }
    }

    #[derive(Default)]
    struct Probe {
        waker: Arc<parking_lot::Mutex<Option<Waker>>>,
        polls: Arc<AtomicUsize>,
        dropped: Arc<AtomicBool>,
    }

    impl Probe {
        fn task(&self, pending: usize, wake_at_once: bool) -> Waiting {
            Waiting {
                waker: self.waker.clone(),
                polls: self.polls.clone(),
                pending,
                wake_at_once,
                dropped: self.dropped.clone(),
            }
        }
        fn waker(&self) -> Waker {
            self.waker.lock().clone().expect("polled")
        }
        fn polls(&self) -> usize {
            self.polls.load(Ordering::SeqCst)
        }
        fn dropped(&self) -> bool {
            self.dropped.load(Ordering::SeqCst)
        }
    }

    type Launches = Arc<parking_lot::Mutex<Vec<Launched>>>;

    /// A parked set whose launched tasks are kept for the test to poll.
    fn set() -> (Arc<Parked>, Launches) {
        let launched: Launches = Arc::default();
        let to = launched.clone();
        (Parked::new(None, move |l| to.lock().push(l)), launched)
    }

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counter() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        (count.clone(), Waker::from(count))
    }

    fn poll(task: &mut Launched, waker: &Waker) -> Poll<()> {
        Pin::new(task).poll(&mut Context::from_waker(waker))
    }

    #[test]
    fn a_started_task_is_parked_until_woken_then_launched_once() {
        let (parked, launched) = set();
        let probe = Probe::default();
        parked.start(probe.task(1, false));
        assert_eq!(probe.polls(), 1, "polled where it was started");
        assert_eq!((parked.len(), launched.lock().len()), (1, 0));
        assert!(!probe.dropped(), "kept while parked");
        probe.waker().wake();
        assert_eq!((parked.len(), launched.lock().len()), (0, 1));
        // Woken again before its task's first poll: nothing more to launch.
        probe.waker().wake();
        assert_eq!(launched.lock().len(), 1);
        let mut task = launched.lock().pop().unwrap();
        assert!(poll(&mut task, &counter().1).is_ready());
        assert_eq!(probe.polls(), 2);
    }

    #[test]
    fn a_task_woken_while_it_starts_is_launched_at_once() {
        let (parked, launched) = set();
        let probe = Probe::default();
        parked.start(probe.task(1, true));
        assert_eq!((parked.len(), launched.lock().len()), (0, 1));
    }

    #[test]
    fn a_task_that_ends_as_it_starts_is_neither_parked_nor_launched() {
        let (parked, launched) = set();
        let probe = Probe::default();
        parked.start(probe.task(0, false));
        assert!(probe.dropped());
        assert_eq!((parked.len(), launched.lock().len()), (0, 0));
    }

    #[test]
    fn a_wake_up_through_the_launcher_after_the_launch_reaches_the_task() {
        let (parked, launched) = set();
        let probe = Probe::default();
        parked.start(probe.task(2, false));
        // A waker handed out while it started, still held somewhere.
        let stale = probe.waker();
        stale.wake_by_ref();
        let mut task = launched.lock().pop().unwrap();
        let (count, waker) = counter();
        assert!(poll(&mut task, &waker).is_pending());
        stale.wake();
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            1,
            "the task's own waker was woken"
        );
        assert_eq!(launched.lock().len(), 0, "not launched twice");
        assert!(poll(&mut task, &waker).is_ready());
    }

    #[test]
    fn closing_drops_what_is_parked_and_later_starts_are_launched_at_once() {
        let (parked, launched) = set();
        let first = Probe::default();
        parked.start(first.task(1, false));
        let waker = first.waker();
        parked.close();
        assert!(first.dropped(), "dropped with the set");
        waker.wake();
        assert_eq!(launched.lock().len(), 0, "nothing left to launch");
        let second = Probe::default();
        parked.start(second.task(1, false));
        assert_eq!((parked.len(), launched.lock().len()), (0, 1));
    }

    #[test]
    fn slots_are_reused() {
        let (parked, launched) = set();
        let probes: Vec<Probe> = (0..3).map(|_| Probe::default()).collect();
        for p in &probes {
            parked.start(p.task(1, false));
        }
        probes[1].waker().wake();
        let again = Probe::default();
        parked.start(again.task(1, false));
        assert_eq!(
            parked.slots.lock().tasks.len(),
            3,
            "the freed slot was taken"
        );
        for p in [&probes[0], &probes[2], &again] {
            p.waker().wake();
        }
        assert_eq!((parked.len(), launched.lock().len()), (0, 4));
        assert_eq!(
            parked.slots.lock().tasks.capacity(),
            0,
            "none parked, no slots kept"
        );
    }
}
