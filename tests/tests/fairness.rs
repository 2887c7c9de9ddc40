//! An actor that always has mail, and a task that sends or publishes in a
//! loop that never waits for room, still let the other tasks of their
//! thread run, as a task on a tokio channel does: each take from a mailbox,
//! and each send or publish that cannot wait for room, is a unit of tokio's
//! cooperative budget, so such a task yields now and then instead of
//! holding its thread.
//!
//! Each test runs on a current-thread runtime, where a neighbour task woken
//! before a long run of work can only run before that work ends if the task
//! doing it yields.

// In tests, an unwrap that fails is a test failure with its message.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use mercato::{Context, DeadLetterReason, Event, Key, MailboxConfig, Overflow, System, actor};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

#[derive(Event, Debug, Clone, Serialize, Deserialize)]
#[event(name = "test.step", version = 1)]
struct Step(u32);

/// Whether the neighbour task has run, and whether it had when the relay
/// took its last step.
#[derive(Clone, Default)]
struct Seen {
    neighbour_ran: Arc<AtomicBool>,
    /// Whether the neighbour had run when the relay took its last step.
    at_the_end: Arc<Mutex<Option<bool>>>,
}

/// Tells itself the next step down to 0 without waiting (`try_tell`), so
/// that its mailbox is never empty and only taking from it can make it
/// yield. Halfway it wakes the neighbour task.
struct Relay {
    halfway: u32,
    wake: Arc<Notify>,
    seen: Seen,
}

#[actor]
impl Relay {
    #[on]
    fn step(&mut self, e: &Step, cx: &mut Context<Self>) {
        if e.0 == self.halfway {
            self.wake.notify_one();
        }
        if e.0 == 0 {
            let ran = self.seen.neighbour_ran.load(Ordering::SeqCst);
            *self.seen.at_the_end.lock().unwrap() = Some(ran);
            return;
        }
        cx.addr().try_tell(Step(e.0 - 1)).unwrap();
    }
}

/// A task that waits to be woken, then notes that it ran.
fn neighbour(wake: &Arc<Notify>, seen: &Seen) -> tokio::task::JoinHandle<()> {
    let wake = wake.clone();
    let ran = seen.neighbour_ran.clone();
    tokio::spawn(async move {
        wake.notified().await;
        ran.store(true, Ordering::SeqCst);
    })
}

#[tokio::test(flavor = "current_thread")]
async fn an_actor_that_always_has_mail_lets_the_other_tasks_of_its_thread_run() {
    let system = System::builder().build().unwrap();
    let wake = Arc::new(Notify::new());
    let seen = Seen::default();
    let neighbour = neighbour(&wake, &seen);
    let (w, s) = (wake.clone(), seen.clone());
    let relay = system
        .spawn("relay", move || Relay {
            halfway: 5_000,
            wake: w.clone(),
            seen: s.clone(),
        })
        .unwrap();
    relay.tell(Step(10_000)).await.unwrap();
    system.settled().await;
    neighbour.await.unwrap();
    assert_eq!(
        *seen.at_the_end.lock().unwrap(),
        Some(true),
        "the neighbour, woken 5,000 steps before the relay's last, ran before it: \
         the relay yielded to it"
    );
}

/// Counts what it handles.
struct Tally {
    handled: Arc<AtomicU32>,
}

#[actor]
impl Tally {
    #[on]
    fn step(&mut self, _e: &Step) {
        self.handled.fetch_add(1, Ordering::SeqCst);
    }
}

/// Counts what it handles, one per key.
struct KeyedTally {
    handled: Arc<AtomicU32>,
}

#[actor(entity)]
impl KeyedTally {
    #[on]
    fn step(&mut self, _e: &Step) {
        self.handled.fetch_add(1, Ordering::SeqCst);
    }
}

/// A system whose mailboxes hold 16 and drop the oldest when full: a send
/// to them never waits for room.
fn never_waiting() -> System {
    System::builder()
        .defaults(|c| c.mailbox(MailboxConfig::new(16, Overflow::DropOldest)))
        .build()
        .unwrap()
}

/// Whether a neighbour task woken before `work` starts runs before it ends.
async fn neighbour_runs_during(work: impl Future<Output = ()>) -> bool {
    let wake = Arc::new(Notify::new());
    let seen = Seen::default();
    let neighbour = neighbour(&wake, &seen);
    // The neighbour starts waiting, and is woken.
    tokio::task::yield_now().await;
    wake.notify_one();
    work.await;
    let ran = seen.neighbour_ran.load(Ordering::SeqCst);
    neighbour.await.unwrap();
    ran
}

#[tokio::test(flavor = "current_thread")]
async fn a_loop_of_tells_that_never_wait_lets_the_other_tasks_of_its_thread_run() {
    let system = never_waiting();
    let handled = Arc::new(AtomicU32::new(0));
    let h = handled.clone();
    let tally = system
        .spawn("tally", move || Tally { handled: h.clone() })
        .unwrap();
    let ran = neighbour_runs_during(async {
        for i in 0..10_000 {
            tally.tell(Step(i)).await.unwrap();
        }
    })
    .await;
    assert!(ran, "the neighbour ran before the last of 10,000 tells");
    system.settled().await;
    assert!(
        handled.load(Ordering::SeqCst) > 16,
        "the actor ran between the tells too"
    );
}

/// Publishes 10,000 `Step`s to whatever `subscribe` started, and says
/// whether a neighbour task ran before the last publish, and how many steps
/// the subscribers handled.
async fn publishes(subscribe: impl FnOnce(&System, Arc<AtomicU32>)) -> (bool, u32, System) {
    let system = never_waiting();
    let handled = Arc::new(AtomicU32::new(0));
    subscribe(&system, handled.clone());
    let ran = neighbour_runs_during(async {
        for i in 0..10_000 {
            system.publish(Step(i)).await.unwrap();
        }
    })
    .await;
    system.settled().await;
    (ran, handled.load(Ordering::SeqCst), system)
}

#[tokio::test(flavor = "current_thread")]
async fn a_loop_of_publishes_that_never_wait_lets_the_other_tasks_of_its_thread_run() {
    let (ran, handled, _) = publishes(|system, handled| {
        let tally = system
            .spawn("tally", move || Tally {
                handled: handled.clone(),
            })
            .unwrap();
        system.subscribe::<Step, _>(&tally).unwrap();
    })
    .await;
    assert!(
        ran,
        "the neighbour ran before the last of 10,000 publishes to an actor"
    );
    assert!(handled > 16, "the actor ran between the publishes too");

    let (ran, handled, _) = publishes(|system, handled| {
        let tallies = system
            .spawn_group("tallies", 2, move || Tally {
                handled: handled.clone(),
            })
            .unwrap();
        system.subscribe_group::<Step, _>(&tallies).unwrap();
    })
    .await;
    assert!(
        ran,
        "the neighbour ran before the last of 10,000 publishes to a group"
    );
    assert!(handled > 32, "the group ran between the publishes too");

    let (ran, handled, _) = publishes(|system, handled| {
        let tallies = system
            .entities("tally", move |_: &Key| KeyedTally {
                handled: handled.clone(),
            })
            .unwrap();
        system
            .subscribe_keyed_by::<Step, _>(&tallies, "step", |s| {
                Some(Key::from(u64::from(s.0 % 4)))
            })
            .unwrap();
    })
    .await;
    assert!(
        ran,
        "the neighbour ran before the last of 10,000 publishes to entities"
    );
    assert!(handled > 64, "the entities ran between the publishes too");

    let (ran, _, system) = publishes(|_, _| {}).await;
    assert!(
        ran,
        "the neighbour ran before the last of 10,000 publishes without subscriber"
    );
    assert_eq!(
        system.dead_letters().count(DeadLetterReason::NoSubscriber),
        10_000,
        "each publish without subscriber is a dead letter"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_loop_of_keyed_tells_that_never_wait_lets_the_other_tasks_of_its_thread_run() {
    let system = never_waiting();
    let handled = Arc::new(AtomicU32::new(0));
    let h = handled.clone();
    let tallies = system
        .entities("tally", move |_: &Key| KeyedTally { handled: h.clone() })
        .unwrap();
    let ran = neighbour_runs_during(async {
        for i in 0..10_000 {
            tallies.tell(1_u64, Step(i)).await.unwrap();
        }
    })
    .await;
    assert!(
        ran,
        "the neighbour ran before the last of 10,000 keyed tells"
    );
    system.settled().await;
    assert!(
        handled.load(Ordering::SeqCst) > 16,
        "the entity ran between the tells too"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn under_backpressure_sends_and_publishes_that_find_room_use_no_budget() {
    // Under `Backpressure` a loop of sends waits once the mailbox is full,
    // and that wait is its turn: while there is room it uses no budget, so
    // it does not yield for the budget's sake. 1,000 messages, a mailbox of
    // 1,024: nothing waits, and the neighbour must not have run.
    let system = System::builder().build().unwrap();
    let handled = Arc::new(AtomicU32::new(0));
    let h = handled.clone();
    let tally = system
        .spawn("tally", move || Tally { handled: h.clone() })
        .unwrap();
    system.subscribe::<Step, _>(&tally).unwrap();
    let h = handled.clone();
    let tallies = system
        .spawn_group("tallies", 2, move || Tally { handled: h.clone() })
        .unwrap();
    system.subscribe_group::<Step, _>(&tallies).unwrap();
    let h = handled.clone();
    let keyed = system
        .entities("keyed", move |_: &Key| KeyedTally { handled: h.clone() })
        .unwrap();
    system
        .subscribe_keyed_by::<Step, _>(&keyed, "step", |s| Some(Key::from(u64::from(s.0 % 4))))
        .unwrap();

    let ran = neighbour_runs_during(async {
        for i in 0..1_000 {
            tally.tell(Step(i)).await.unwrap();
        }
    })
    .await;
    assert!(!ran, "1,000 tells with room yielded");
    system.settled().await;

    let ran = neighbour_runs_during(async {
        for i in 0..1_000 {
            system.publish(Step(i)).await.unwrap();
        }
    })
    .await;
    assert!(
        !ran,
        "1,000 publishes with room (to an actor, a group and entities) yielded"
    );
    system.settled().await;
    assert_eq!(
        handled.load(Ordering::SeqCst),
        1_000 + 3 * 1_000,
        "every tell and every copy of every publish was handled"
    );
}
