//! loom model tests of the parked set (run with the mailbox's models, see
//! `mailbox_loom.rs`): a start, a wake-up and a close racing each other
//! launch an actor exactly once, or drop it exactly once, and lose no
//! wake-up.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use loom::sync::Mutex;
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::thread;

use super::{Launched, Parked};

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
        parked.start(task);
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
        parked.start(task);
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
