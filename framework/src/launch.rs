//! Starting an actor in the task that spawns it, giving it a task of its
//! own only when it is first woken, and letting an asker poll it in place.
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
//!
//! A launched actor's loop stays with its [`Launcher`], and its task polls
//! it there. So may a caller waiting for the actor: an ask polls the loop
//! in its own task ([`Launcher::run_here`]) when no one else is polling it,
//! with the actor task's waker, and so gets its reply without waking that
//! task and waiting for a worker to run it. Whoever polls takes the loop
//! out of the launcher and puts it back after, so one poll runs at a time,
//! as a task's own polls do, and no lock is held while a handler runs. A
//! task woken while an asker has the loop out leaves word, and the asker
//! wakes it again when it puts the loop back.

use std::cell::Cell;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use crate::sync::{Mutex, MutexGuard};

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

/// Where an actor's loop is. The parked set is held only while the loop
/// may still go there or come back from there; whether an ask may poll
/// the loop in place (`in_place`) goes along from state to state, in room
/// the states have anyway (every actor carries this).
enum State {
    /// Made, or being polled where it was spawned; `woken` once woken
    /// meanwhile.
    Starting { woken: bool, in_place: bool },
    /// Started, waiting in slot `.1` of the parked set.
    Parked(Arc<Parked>, usize, bool),
    /// Handed to the runtime, which has a task for it.
    Launched(Live),
    /// Its loop has ended, or was dropped (with the parked set, or with its
    /// task).
    Ended,
}

/// A launched loop, as its task and its askers share it.
struct Live {
    /// The loop; `None` while someone has it out to poll it.
    task: Option<Task>,
    /// The task's waker, from its latest poll: what late wake-ups through
    /// the launcher go to, and what an asker polls the loop with. `None`
    /// before its first poll, and while an asker has the loop out.
    waker: Option<Waker>,
    /// The task was woken (or found the loop out) while an asker had the
    /// loop out: the asker wakes it when it puts the loop back.
    repoll: bool,
    /// Whether an ask may poll the loop in place (the actor's
    /// `ask_in_place` setting).
    in_place: bool,
}

/// An actor's waker until it has a task, and then the keeper of its loop,
/// which its task and its askers poll in turn.
pub(crate) struct Launcher {
    state: Mutex<State>,
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
    /// The launcher of an actor to be started; `in_place`: whether an ask
    /// may poll its loop in the asker's task.
    pub(crate) fn new(in_place: bool) -> Arc<Self> {
        Arc::new(Launcher {
            state: Mutex::new(State::Starting {
                woken: false,
                in_place,
            }),
        })
    }

    /// Starts `task` (the actor's loop) here, up to its first wait; it
    /// waits in `parked` until first woken, and then gets a task of its
    /// own. Called once.
    pub(crate) fn start(
        self: &Arc<Self>,
        parked: &Arc<Parked>,
        task: impl Future<Output = ()> + Send + 'static,
    ) {
        struct Restore(bool);
        impl Drop for Restore {
            fn drop(&mut self) {
                STARTING.with(|s| s.set(self.0));
            }
        }
        let mut task: Task = Box::pin(task);
        let waker = Waker::from(Arc::clone(self));
        let polled = {
            let _runtime = parked.runtime.as_ref().map(tokio::runtime::Handle::enter);
            let _restore = Restore(STARTING.with(|s| s.replace(true)));
            task.as_mut().poll(&mut Context::from_waker(&waker))
        };
        let mut state = self.state.lock();
        if polled.is_ready() {
            *state = State::Ended;
            return;
        }
        let State::Starting { woken, in_place } = *state else {
            unreachable!("only a wake-up changes a starting loop's state, to woken");
        };
        match if woken { Err(task) } else { parked.park(task) } {
            Ok(n) => *state = State::Parked(Arc::clone(parked), n, in_place),
            Err(task) => self.launch(state, parked, task, in_place),
        }
    }

    /// Hands `task` to the runtime through `parked`; `state` is this
    /// launcher's, locked, and let go before the task is spawned (a runtime
    /// that has shut down drops it at once, and its drop takes the lock).
    fn launch(
        self: &Arc<Self>,
        mut state: MutexGuard<'_, State>,
        parked: &Parked,
        task: Task,
        in_place: bool,
    ) {
        *state = State::Launched(Live {
            task: Some(task),
            waker: None,
            repoll: false,
            in_place,
        });
        drop(state);
        (parked.spawn)(Launched {
            launcher: Arc::clone(self),
        });
    }

    /// Polls the actor's loop here, in the caller's task, if the actor
    /// allows it, has a task of its own that has been polled, and no one
    /// has the loop out now; says whether it did. The loop is polled with its task's waker,
    /// so that what it waits for wakes its task, not the caller.
    ///
    /// A panic that escapes the loop (a handler's does not: the loop
    /// catches it) ends the actor, as it would end its task, instead of
    /// unwinding into the caller.
    pub(crate) fn run_here(&self) -> bool {
        let (mut task, waker) = {
            let mut state = self.state.lock();
            let State::Launched(live) = &mut *state else {
                return false;
            };
            if !live.in_place || live.task.is_none() || live.waker.is_none() {
                return false;
            }
            match (live.task.take(), live.waker.take()) {
                (Some(task), Some(waker)) => (task, waker),
                _ => unreachable!("both were checked"),
            }
        };
        let polled = catch_unwind(AssertUnwindSafe(|| {
            task.as_mut().poll(&mut Context::from_waker(&waker))
        }));
        let ended = match polled {
            Ok(Poll::Pending) => false,
            Ok(Poll::Ready(())) => true,
            Err(payload) => {
                tracing::error!(
                    panic = %crate::runtime::panic_text(payload.as_ref()),
                    "an actor's loop panicked; the actor has ended"
                );
                true
            }
        };
        let mut state = self.state.lock();
        match &mut *state {
            State::Launched(live) if !ended => {
                live.task = Some(task);
                let repoll = std::mem::take(&mut live.repoll);
                let again = repoll.then(|| waker.clone());
                live.waker = Some(waker);
                drop(state);
                if let Some(waker) = again {
                    waker.wake();
                }
            }
            State::Launched(_) => {
                *state = State::Ended;
                drop(state);
                // Its task, woken, finds the loop ended, and ends too.
                let _ = catch_unwind(AssertUnwindSafe(move || drop(task)));
                waker.wake();
            }
            // Its task was dropped meanwhile (the runtime is shutting
            // down): the loop goes with it, as it would have.
            _ => {
                drop(state);
                let _ = catch_unwind(AssertUnwindSafe(move || drop(task)));
            }
        }
        true
    }
}

impl Wake for Launcher {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let mut state = self.state.lock();
        match &mut *state {
            State::Starting { woken, .. } => *woken = true,
            State::Parked(..) => {
                // Until the loop is back from the set, it is out.
                let out = State::Launched(Live {
                    task: None,
                    waker: None,
                    repoll: false,
                    in_place: false,
                });
                let State::Parked(parked, n, in_place) = std::mem::replace(&mut *state, out) else {
                    unreachable!("matched above");
                };
                drop(state);
                let task = parked.unpark(n);
                let mut state = self.state.lock();
                match task {
                    Some(task) => self.launch(state, &parked, task, in_place),
                    // Dropped with the set.
                    None => *state = State::Ended,
                }
            }
            State::Launched(Live {
                waker: Some(waker), ..
            }) => {
                let waker = waker.clone();
                drop(state);
                waker.wake();
            }
            // An asker has the loop out: it wakes the task when done.
            State::Launched(Live {
                task: None, repoll, ..
            }) => *repoll = true,
            // Not polled yet: its first poll sees whatever woke it.
            State::Launched(_) | State::Ended => {}
        }
    }
}

/// The task of a launched actor: it polls the loop its launcher keeps, and
/// gives the launcher its waker at the first poll, so that a wake-up
/// through the launcher still reaches it and an asker can poll the loop.
pub(crate) struct Launched {
    launcher: Arc<Launcher>,
}

impl Future for Launched {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let launcher = &self.launcher;
        let mut task = {
            let mut state = launcher.state.lock();
            let State::Launched(live) = &mut *state else {
                // Ended, by an asker's poll.
                return Poll::Ready(());
            };
            let Some(task) = live.task.take() else {
                // An asker has it out, and wakes this task when it is done.
                live.repoll = true;
                return Poll::Pending;
            };
            if !live.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                live.waker = Some(cx.waker().clone());
            }
            task
        };
        let polled = task.as_mut().poll(cx);
        let mut state = launcher.state.lock();
        match (&mut *state, polled) {
            (State::Launched(live), Poll::Pending) => {
                live.task = Some(task);
                Poll::Pending
            }
            (state_now, _) => {
                *state_now = State::Ended;
                drop(state);
                drop(task);
                Poll::Ready(())
            }
        }
    }
}

impl Drop for Launched {
    /// Drops the loop with its task, as the runtime drops a task's future;
    /// an asker that has it out drops it when it is done.
    fn drop(&mut self) {
        let mut state = self.launcher.state.lock();
        let ended = std::mem::replace(&mut *state, State::Ended);
        drop(state);
        drop(ended);
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

    use super::{Launched, Launcher, Parked};

    /// Starts `task` in `parked`'s system, as the runtime starts an actor.
    fn start(
        parked: &Arc<Parked>,
        task: impl Future<Output = ()> + Send + 'static,
    ) -> Arc<Launcher> {
        let launcher = Launcher::new(true);
        launcher.start(parked, task);
        launcher
    }

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
        start(&parked, probe.task(1, false));
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
        start(&parked, probe.task(1, true));
        assert_eq!((parked.len(), launched.lock().len()), (0, 1));
    }

    #[test]
    fn a_task_that_ends_as_it_starts_is_neither_parked_nor_launched() {
        let (parked, launched) = set();
        let probe = Probe::default();
        start(&parked, probe.task(0, false));
        assert!(probe.dropped());
        assert_eq!((parked.len(), launched.lock().len()), (0, 0));
    }

    #[test]
    fn a_wake_up_through_the_launcher_after_the_launch_reaches_the_task() {
        let (parked, launched) = set();
        let probe = Probe::default();
        start(&parked, probe.task(2, false));
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
        start(&parked, first.task(1, false));
        let waker = first.waker();
        parked.close();
        assert!(first.dropped(), "dropped with the set");
        waker.wake();
        assert_eq!(launched.lock().len(), 0, "nothing left to launch");
        let second = Probe::default();
        start(&parked, second.task(1, false));
        assert_eq!((parked.len(), launched.lock().len()), (0, 1));
    }

    #[test]
    fn an_asker_polls_a_launched_loop_in_place_with_its_tasks_waker() {
        let (parked, launched) = set();
        let probe = Probe::default();
        let launcher = start(&parked, probe.task(3, false));
        assert!(!launcher.run_here(), "parked: no task to poll it with yet");
        probe.waker().wake();
        let mut task = launched.lock().pop().unwrap();
        assert!(
            !launcher.run_here(),
            "launched, but its task not polled yet"
        );
        let (count, waker) = counter();
        assert!(poll(&mut task, &waker).is_pending());
        assert_eq!(probe.polls(), 2);
        assert!(launcher.run_here());
        assert_eq!(probe.polls(), 3, "polled in place");
        probe.waker().wake();
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            1,
            "what the loop waits for wakes its task"
        );
        // Polled in place to its end: its task, woken, ends too.
        assert!(launcher.run_here());
        assert!(probe.dropped(), "the ended loop is dropped at once");
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
        assert!(poll(&mut task, &waker).is_ready());
        assert!(!launcher.run_here(), "nothing left to poll");
        assert_eq!(probe.polls(), 4);
    }

    #[test]
    fn a_launcher_made_without_asks_in_place_never_lends_its_loop() {
        let (parked, launched) = set();
        let probe = Probe::default();
        let launcher = Launcher::new(false);
        launcher.start(&parked, probe.task(3, false));
        probe.waker().wake();
        let mut task = launched.lock().pop().unwrap();
        assert!(poll(&mut task, &counter().1).is_pending());
        assert!(!launcher.run_here());
        assert_eq!(probe.polls(), 2, "polled by its task only");
    }

    #[test]
    fn dropping_a_launched_task_drops_its_loop() {
        let (parked, launched) = set();
        let probe = Probe::default();
        let launcher = start(&parked, probe.task(3, false));
        probe.waker().wake();
        let mut task = launched.lock().pop().unwrap();
        assert!(poll(&mut task, &counter().1).is_pending());
        drop(task);
        assert!(probe.dropped());
        assert!(!launcher.run_here());
    }

    #[test]
    fn slots_are_reused() {
        let (parked, launched) = set();
        let probes: Vec<Probe> = (0..3).map(|_| Probe::default()).collect();
        for p in &probes {
            start(&parked, p.task(1, false));
        }
        probes[1].waker().wake();
        let again = Probe::default();
        start(&parked, again.task(1, false));
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
