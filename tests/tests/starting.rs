//! Starting: an actor is built and runs `started` inside `spawn`, up to its
//! first wait, and gets a tokio task of its own only when first woken (a
//! message, a stop, a timer, or what `started` waits for). What it is
//! sent is handled in order, after `started`, even while it races the
//! start from another worker; shutdown and a dropped runtime reach actors
//! that never got a task. A declared actor is subscribed before `started`
//! runs, a half-made group's members still start (and stop), and an
//! entity, which gets a task from a starter task of its kind, can publish
//! to its own kind from `started`, and runs on another worker while the
//! publisher that activated it keeps its own.

// In tests, an unwrap that fails is a test failure with its message.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::{Counter, Events, Num, log};
use mercato::{Actor, Context, HandlerError, System};
use tokio::sync::oneshot;

/// Records `started` as `(0, 0)` and each message as `(sender, seq)`;
/// optionally waits for `gate` in `started`, or tells itself from there.
struct Starter {
    events: Events,
    gate: Option<oneshot::Receiver<()>>,
    tell_self: bool,
    stopped: Counter,
    dropped: Arc<AtomicBool>,
}

impl Starter {
    fn new(events: &Events) -> Self {
        Starter {
            events: events.clone(),
            gate: None,
            tell_self: false,
            stopped: Counter::default(),
            dropped: Arc::default(),
        }
    }

    fn gated(mut self, gate: Option<oneshot::Receiver<()>>) -> Self {
        self.gate = gate;
        self
    }

    fn telling_itself(mut self) -> Self {
        self.tell_self = true;
        self
    }

    fn counting_stops(mut self, stopped: &Counter) -> Self {
        self.stopped = stopped.clone();
        self
    }

    fn flagging_drop(mut self, dropped: &Arc<AtomicBool>) -> Self {
        self.dropped = dropped.clone();
        self
    }
}

impl Drop for Starter {
    fn drop(&mut self) {
        self.dropped.store(true, Ordering::SeqCst);
    }
}

message_enum!(StarterMsg for Starter {
    tell Num(Num),
});

impl Actor for Starter {
    type Msg = StarterMsg;
    async fn started(&mut self, cx: &mut Context<Self>) -> Result<(), HandlerError> {
        if let Some(gate) = self.gate.take() {
            gate.await.unwrap();
        }
        self.events.push((0, 0));
        if self.tell_self {
            cx.addr().tell(Num { sender: 9, seq: 1 }).await.unwrap();
        }
        Ok(())
    }
    async fn handle(
        &mut self,
        msg: &mut StarterMsg,
        _: &mut Context<Self>,
    ) -> Result<(), HandlerError> {
        let StarterMsg::Num(n) = msg;
        self.events.push((n.sender, n.seq));
        Ok(())
    }
    async fn stopping(&mut self, _: &mut Context<Self>) {
        self.stopped.bump();
    }
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_runs_started_and_the_actor_gets_a_task_at_its_first_message() {
    let system = System::builder().build().unwrap();
    let before = alive_tasks();
    let logs: Vec<Events> = (0..100).map(|_| log()).collect();
    let addrs: Vec<_> = logs
        .iter()
        .map(|events| {
            let events = events.clone();
            system
                .spawn("starter", move || Starter::new(&events))
                .unwrap()
        })
        .collect();
    for events in &logs {
        assert_eq!(events.take(), vec![(0, 0)], "started ran inside spawn");
    }
    assert_eq!(alive_tasks(), before, "100 idle actors, no task among them");

    for seq in 1..=3 {
        addrs[7].tell(Num { sender: 1, seq }).await.unwrap();
    }
    system.settled().await;
    assert_eq!(logs[7].take(), vec![(0, 0), (1, 1), (1, 2), (1, 3)]);
    assert_eq!(
        alive_tasks(),
        before + 1,
        "the actor told has a task, the others none"
    );

    let report = system.shutdown(Duration::from_secs(5)).await;
    assert!(
        report.settled && report.undelivered.is_empty(),
        "{report:?}"
    );
}

#[tokio::test]
async fn a_started_hook_that_waits_finishes_in_the_actors_own_task_before_any_message() {
    let system = System::builder().build().unwrap();
    let events = log();
    let (open, gate) = oneshot::channel();
    let gate = std::sync::Mutex::new(Some(gate));
    let e = events.clone();
    let addr = system
        .spawn("gated", move || {
            Starter::new(&e).gated(gate.lock().unwrap().take())
        })
        .unwrap();
    assert!(events.take().is_empty(), "started waits for its gate");
    // Told while `started` waits: queued, handled after it.
    addr.tell(Num { sender: 1, seq: 1 }).await.unwrap();
    tokio::task::yield_now().await;
    assert!(
        events.take().is_empty(),
        "nothing handled before started ends"
    );
    open.send(()).unwrap();
    system.settled().await;
    assert_eq!(events.take(), vec![(0, 0), (1, 1)]);
    let report = system.shutdown(Duration::from_secs(5)).await;
    assert!(report.settled, "{report:?}");
}

#[tokio::test]
async fn what_started_tells_its_own_actor_is_handled_in_the_actors_task() {
    let system = System::builder().build().unwrap();
    let events = log();
    let e = events.clone();
    system
        .spawn("self-teller", move || Starter::new(&e).telling_itself())
        .unwrap();
    assert_eq!(
        events.take(),
        vec![(0, 0)],
        "queued, not handled inside spawn"
    );
    system.settled().await;
    assert_eq!(events.take(), vec![(0, 0), (9, 1)]);
    system.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn shutdown_stops_actors_that_never_got_a_task() {
    let system = System::builder().build().unwrap();
    let stopped = Counter::default();
    let events = log();
    for _ in 0..10 {
        let (s, e) = (stopped.clone(), events.clone());
        system
            .spawn("idle", move || Starter::new(&e).counting_stops(&s))
            .unwrap();
    }
    let report = system.shutdown(Duration::from_secs(5)).await;
    assert!(report.settled && report.in_flight.is_empty(), "{report:?}");
    assert_eq!(stopped.get(), 10, "each ran `stopping`");
}

#[test]
fn dropping_the_runtime_drops_actors_that_never_got_a_task() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let events = log();
    let dropped: Arc<AtomicBool> = Arc::default();
    let system = runtime.block_on(async {
        let system = System::builder().build().unwrap();
        let (e, d) = (events.clone(), dropped.clone());
        system
            .spawn("idle", move || Starter::new(&e).flagging_drop(&d))
            .unwrap();
        system
    });
    assert_eq!(events.take(), vec![(0, 0)]);
    assert!(
        !dropped.load(Ordering::SeqCst),
        "alive while the runtime is"
    );
    drop(runtime);
    assert!(
        dropped.load(Ordering::SeqCst),
        "dropped with the runtime, as a task is"
    );
    drop(system);
}

/// Announces itself in `started` with an event it handles too.
#[derive(mercato::Event, Debug, Clone, serde::Serialize, serde::Deserialize)]
#[event(name = "test.warmed_up", version = 1)]
struct WarmedUp(u32);

struct Warmer {
    events: Events,
}

#[mercato::actor]
impl Warmer {
    #[started]
    async fn up(&mut self, cx: &mut Context<Self>) {
        cx.publish(WarmedUp(7)).await.unwrap();
    }

    #[on]
    fn warmed_up(&mut self, e: &WarmedUp) {
        self.events.push((e.0, 0));
    }
}

#[tokio::test]
async fn a_declared_actor_is_subscribed_before_its_started_hook_runs() {
    let system = System::builder().build().unwrap();
    let events = log();
    let e = events.clone();
    system
        .start("warmer", move || Warmer { events: e.clone() })
        .unwrap();
    system.settled().await;
    assert_eq!(
        events.take(),
        vec![(7, 0)],
        "its own announcement reached it"
    );
    assert_eq!(system.dead_letters().counts().total(), 0, "no dead letter");
    system.shutdown(Duration::from_secs(5)).await;
}

/// Actors spawned on two workers while other tasks already tell them:
/// each actor's `started` runs once, before any message, and every message
/// is handled once, in order, whether it arrived while the actor started,
/// while it was parked, or once it had a task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_racing_the_start_are_all_handled_in_order_after_started() {
    const SPAWNERS: u32 = 8;
    const ACTORS: u32 = 100;
    const MESSAGES: u32 = 50;
    let system = System::builder().build().unwrap();
    let mut spawners = Vec::new();
    for s in 0..SPAWNERS {
        let system = system.clone();
        spawners.push(tokio::spawn(async move {
            let mut made = Vec::new();
            for _ in 0..ACTORS {
                let events = log();
                let e = events.clone();
                let addr = system.spawn("raced", move || Starter::new(&e)).unwrap();
                // The first messages race the start from the other worker.
                let teller = tokio::spawn(async move {
                    for seq in 1..=MESSAGES {
                        addr.tell(Num { sender: s, seq }).await.unwrap();
                    }
                });
                made.push((events, teller));
                tokio::task::yield_now().await;
            }
            made
        }));
    }
    let mut all = Vec::new();
    for spawner in spawners {
        for (events, teller) in spawner.await.unwrap() {
            teller.await.unwrap();
            all.push(events);
        }
    }
    tokio::time::timeout(Duration::from_secs(60), system.settled())
        .await
        .expect("a wake-up was lost: not settled within a minute");
    assert_eq!(all.len(), (SPAWNERS * ACTORS) as usize);
    for events in &all {
        let seen = events.take();
        assert_eq!(seen.first(), Some(&(0, 0)), "started first, once");
        let sender = seen[1].0;
        let expected: Vec<(u32, u32)> = std::iter::once((0, 0))
            .chain((1..=MESSAGES).map(|seq| (sender, seq)))
            .collect();
        assert_eq!(seen, expected, "every message once, in order");
    }
    let report = system.shutdown(Duration::from_secs(5)).await;
    assert!(
        report.settled && report.undelivered.is_empty(),
        "{report:?}"
    );
    assert_eq!(system.dead_letters().counts().total(), 0);
}

#[tokio::test]
async fn a_group_that_fails_half_made_starts_and_stops_the_members_it_made() {
    let system = System::builder().build().unwrap();
    let stopped = Counter::default();
    let events = log();
    let (s, e) = (stopped.clone(), events.clone());
    // The second member gets an invalid configuration: the first is made,
    // then the group fails.
    let configured = Counter::default();
    let configure = move |c: mercato::ActorConfig| {
        if configured.bump() == 2 {
            c.capacity(0)
        } else {
            c
        }
    };
    let err = system
        .spawn_group_with("pool", 3, configure, move || {
            Starter::new(&e).counting_stops(&s)
        })
        .unwrap_err();
    assert!(err.to_string().contains("mailbox.capacity"), "{err}");
    tokio::time::timeout(Duration::from_secs(10), system.settled())
        .await
        .expect("the member made before the failure was left without its loop");
    assert_eq!(events.take(), vec![(0, 0)], "the one member made started");
    assert_eq!(stopped.get(), 1, "and stopped, as a half-made group is");
    let report = system.shutdown(Duration::from_secs(5)).await;
    assert!(report.settled, "{report:?}");
}

#[derive(mercato::Event, Debug, Clone, serde::Serialize, serde::Deserialize)]
#[event(name = "test.cart_opened", version = 1)]
struct CartOpened {
    #[event(key)]
    cart: u64,
}

/// A cart that, once activated, opens the cart of the key 1,000 above its
/// own: a publish to its own kind from `started`.
struct Opener {
    key: u64,
    events: Events,
}

#[mercato::actor(entity)]
impl Opener {
    #[started]
    async fn up(&mut self, cx: &mut Context<Self>) {
        if self.key < 1000 {
            cx.publish(CartOpened {
                cart: self.key + 1000,
            })
            .await
            .unwrap();
        }
    }

    #[on]
    fn opened(&mut self, e: &CartOpened) {
        self.events.push((u32::try_from(e.cart).unwrap(), 0));
    }
}

/// On a runtime of its own, dropped without waiting for its workers: were
/// the activation to run `started` under the kind's lock, the publishing
/// worker would block on that lock for good, and the test must fail, not
/// hang.
#[test]
fn an_entitys_started_hook_can_publish_to_its_own_kind() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let events = log();
    let e = events.clone();
    let done = runtime.block_on(async move {
        let system = System::builder().build().unwrap();
        system
            .start_entities("opener", move |key: &mercato::Key| Opener {
                key: key.to_string().parse().unwrap(),
                events: e.clone(),
            })
            .unwrap();
        let publishing = tokio::spawn(async move {
            system.publish(CartOpened { cart: 1 }).await.unwrap();
            system.settled().await;
            system.shutdown(Duration::from_secs(5)).await
        });
        tokio::time::timeout(Duration::from_secs(10), publishing).await
    });
    runtime.shutdown_background();
    let report = done
        .expect("the activation deadlocked on its kind's table")
        .unwrap();
    assert!(report.settled, "{report:?}");
    let mut seen = events.take();
    seen.sort_unstable();
    assert_eq!(seen, vec![(1, 0), (1001, 0)]);
}

/// Counts the carts it hears of.
struct Tallied {
    seen: Arc<AtomicU64>,
}

#[mercato::actor(entity)]
impl Tallied {
    #[on]
    fn opened(&mut self, _e: &CartOpened) {
        self.seen.fetch_add(1, Ordering::SeqCst);
    }
}

/// On two workers, entities activated by a publisher that keeps its worker
/// (publishes to new keys under `Backpressure` never wait, so the loop
/// below never yields) get their tasks and run on the other worker. Were
/// they started by a single task of their kind, woken from the publishing
/// worker, that task would wait in the worker's LIFO slot, which the other
/// worker cannot take from, until the publisher yielded: here, not before
/// the deadline.
#[test]
fn entities_activated_by_a_publisher_that_keeps_its_worker_run_on_the_other() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let seen = Arc::new(AtomicU64::new(0));
    let s = seen.clone();
    let ran = runtime.block_on(async move {
        tokio::spawn(async move {
            let system = System::builder().build().unwrap();
            let tally = s.clone();
            system
                .start_entities("tallied", move |_: &mercato::Key| Tallied {
                    seen: tally.clone(),
                })
                .unwrap();
            for cart in 0..10_000 {
                system.publish(CartOpened { cart }).await.unwrap();
            }
            // Without yielding: only the other worker can run the entities.
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while s.load(Ordering::SeqCst) == 0 && std::time::Instant::now() < deadline {
                std::hint::spin_loop();
            }
            let ran = s.load(Ordering::SeqCst);
            let report = system.shutdown(Duration::from_secs(5)).await;
            assert!(report.settled, "{report:?}");
            ran
        })
        .await
        .unwrap()
    });
    assert!(
        ran > 0,
        "no activated entity ran in 20 s while the publisher kept its worker"
    );
    assert_eq!(
        seen.load(Ordering::SeqCst),
        10_000,
        "every cart was heard of"
    );
}
