//! loom model tests of the parked set and the launcher (run with the
//! mailbox's models, see `mailbox_loom.rs`): a start, a wake-up and a close
//! racing each other launch an actor exactly once, or drop it exactly once,
//! and lose no wake-up; an ask polling a launched loop in place, its task's
//! own poll and a wake-up racing each other lose no wake-up; and a task
//! dropped while its loop is polled in place drops the loop once.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use loom::sync::Mutex;
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::thread;

use super::{Launched, Launcher, Parked};

/// Starts `task` in `parked`'s system, as the runtime starts an actor.
fn start(parked: &Arc<Parked>, task: impl Future<Output = ()> + Send + 'static) -> Arc<Launcher> {
    let launcher = Launcher::new(true);
    launcher.start(parked, task);
    launcher
}

/// Pending at its first poll (its waker left in `waker`), then ended.
struct Waiting {
    waker: Arc<Mutex<Option<Waker>>>,
    polled: bool,
    dropped: Arc<AtomicBool>,
}

impl Future for Waiting {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.polled {
            return Poll::Ready(());
        }
        self.polled = true;
        *self.waker.lock().unwrap() = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.dropped.store(true, Ordering::SeqCst);
    }
}

type Launches = Arc<Mutex<Vec<Launched>>>;

fn set() -> (Arc<Parked>, Launches) {
    let launched: Launches = Arc::new(Mutex::new(Vec::new()));
    let to = launched.clone();
    (
        Parked::new(None, move |l| to.lock().unwrap().push(l)),
        launched,
    )
}

fn waiting() -> (Waiting, Arc<Mutex<Option<Waker>>>, Arc<AtomicBool>) {
    let waker = Arc::new(Mutex::new(None));
    let dropped = Arc::new(AtomicBool::new(false));
    let task = Waiting {
        waker: waker.clone(),
        polled: false,
        dropped: dropped.clone(),
    };
    (task, waker, dropped)
}

/// A wake-up from another thread, before, during or after the start: the
/// actor is launched if and only if it was woken, once.
#[test]
fn loom_launch_a_wake_racing_the_start_launches_exactly_once() {
    loom::model(|| {
        let (parked, launched) = set();
        let (task, waker, _) = waiting();
        let waking = thread::spawn(move || {
            let taken = waker.lock().unwrap().take();
            taken.map(Waker::wake).is_some()
        });
        start(&parked, task);
        let woke = waking.join().unwrap();
        assert_eq!(launched.lock().unwrap().len(), usize::from(woke));
        assert_eq!(parked.len(), usize::from(!woke));
    });
}

/// A parked actor woken while its set is closed: launched, or dropped with
/// the set, never both and never neither.
#[test]
fn loom_launch_a_close_racing_a_wake_drops_or_launches_once() {
    loom::model(|| {
        let (parked, launched) = set();
        let (task, waker, dropped) = waiting();
        start(&parked, task);
        let waker = waker.lock().unwrap().take().unwrap();
        let closing = {
            let parked = parked.clone();
            thread::spawn(move || parked.close())
        };
        waker.wake();
        closing.join().unwrap();
        let launches = launched.lock().unwrap().len();
        assert_eq!(launches + usize::from(dropped.load(Ordering::SeqCst)), 1);
        assert_eq!(parked.len(), 0);
    });
}

/// Pending until `open` is set, then ended. At each poll it leaves its
/// waker in `waker` before it looks, unless it keeps the first it got (a
/// waker handed out while it started, woken later).
struct Gate {
    open: Arc<AtomicBool>,
    waker: Arc<Mutex<Option<Waker>>>,
    keep_first: bool,
    drops: Arc<loom::sync::atomic::AtomicUsize>,
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

impl Future for Gate {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        {
            let mut waker = self.waker.lock().unwrap();
            if waker.is_none() || !self.keep_first {
                *waker = Some(cx.waker().clone());
            }
        }
        if self.open.load(Ordering::SeqCst) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// The task's waker: counts its wake-ups, as the runtime would schedule
/// the task once for those that came since its last poll.
struct Count(loom::sync::atomic::AtomicUsize);

impl std::task::Wake for Count {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A gate started in a parked set, launched by a wake-up, and its task
/// polled once (the gate still shut).
struct LaunchedGate<F> {
    launcher: Arc<Launcher>,
    task: Launched,
    /// How many times the task's waker was woken.
    count: Arc<Count>,
    waker: Waker,
    /// Opens the gate and wakes what it last left.
    opener: F,
    /// How many times the gate was dropped.
    drops: Arc<loom::sync::atomic::AtomicUsize>,
}

fn launched_gate(keep_first: bool) -> LaunchedGate<impl Fn() + Send + 'static> {
    let (parked, launched) = set();
    let open = Arc::new(AtomicBool::new(false));
    let waker = Arc::new(Mutex::new(None));
    let drops = Arc::new(loom::sync::atomic::AtomicUsize::new(0));
    let launcher = start(
        &parked,
        Gate {
            open: open.clone(),
            waker: waker.clone(),
            keep_first,
            drops: drops.clone(),
        },
    );
    let first = waker.lock().unwrap().clone().unwrap();
    first.wake_by_ref();
    let mut task = launched.lock().unwrap().pop().unwrap();
    let count = Arc::new(Count(loom::sync::atomic::AtomicUsize::new(0)));
    let task_waker = Waker::from(count.clone());
    assert!(
        Pin::new(&mut task)
            .poll(&mut Context::from_waker(&task_waker))
            .is_pending()
    );
    let opener = move || {
        open.store(true, Ordering::SeqCst);
        let to_wake = waker.lock().unwrap().clone();
        if let Some(w) = to_wake {
            w.wake();
        }
    };
    LaunchedGate {
        launcher,
        task,
        count,
        waker: task_waker,
        opener,
        drops,
    }
}

/// Polls the task as the runtime would: again while wake-ups came since
/// its last poll. Says whether it ended.
fn run_task(task: &mut Launched, count: &Count, waker: &Waker, mut seen: usize) -> bool {
    loop {
        let now = count.0.load(Ordering::SeqCst);
        if now == seen {
            return false;
        }
        seen = now;
        if Pin::new(&mut *task)
            .poll(&mut Context::from_waker(waker))
            .is_ready()
        {
            return true;
        }
    }
}

/// An ask polling the loop in place, the task polled by its runtime, and
/// the event the loop waits for, all at once: whoever polls last sees the
/// event, or the task is woken again. No wake-up is lost, and the loop
/// ends, and its task with it.
#[test]
fn loom_launch_a_poll_in_place_racing_the_task_and_a_wake_loses_nothing() {
    for keep_first in [false, true] {
        loom::model(move || {
            let LaunchedGate {
                launcher,
                mut task,
                count,
                waker,
                opener,
                ..
            } = launched_gate(keep_first);
            let asking = {
                let launcher = launcher.clone();
                thread::spawn(move || {
                    launcher.run_here();
                })
            };
            let opening = thread::spawn(opener);
            // The runtime polls the task once, as if woken meanwhile; what
            // wakes it from here on is seen by a later poll.
            let seen = count.0.load(Ordering::SeqCst);
            let ended = Pin::new(&mut task)
                .poll(&mut Context::from_waker(&waker))
                .is_ready();
            asking.join().unwrap();
            opening.join().unwrap();
            let ended = ended || run_task(&mut task, &count, &waker, seen);
            assert!(ended, "a wake-up was lost: the loop never saw its event");
        });
    }
}

/// The runtime dropping the actor's task while an ask polls its loop in
/// place: the loop is dropped once, by whichever lets go of it last.
#[test]
fn loom_launch_a_task_dropped_while_polled_in_place_drops_the_loop_once() {
    loom::model(|| {
        let LaunchedGate {
            launcher,
            task,
            drops,
            ..
        } = launched_gate(false);
        let asking = {
            let launcher = launcher.clone();
            thread::spawn(move || {
                launcher.run_here();
            })
        };
        drop(task);
        asking.join().unwrap();
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        assert!(!launcher.run_here(), "nothing left to poll");
    });
}
