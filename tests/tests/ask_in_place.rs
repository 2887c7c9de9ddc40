//! Asks handled in the asker's task: an ask to an actor that has a task of
//! its own, when no one is running its loop, runs the loop there, so the
//! reply is back without a task switch. What was queued before the request
//! is handled first, in order; a request behind a handler that waits waits
//! for it (the handler goes on in the actor's own task, which then answers),
//! and two handlers never run at once, however many ask and tell; an actor
//! that asks itself gets a timeout, not a deadlock; and a handler that waits
//! carries on in the actor's own task. A handler run in an asker's task on
//! another runtime still runs in the actor's runtime. An actor configured
//! with `ask_in_place(false)`, or declared with `#[actor(ask_in_place =
//! false)]`, answers every request in its own task.

// In tests, an unwrap that fails is a test failure with its message.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use mercato::{AskError, Context, Event, HandlerError, System, actor};
use serde::{Deserialize, Serialize};
use tokio::runtime::RuntimeFlavor;
use tokio::sync::Notify;
use tokio::task::Id;

#[derive(Event, Debug, Clone, Serialize, Deserialize)]
#[event(name = "test.added", version = 1)]
struct Added(u32);

/// Asks which task handles it, and how many `Added` came before.
#[derive(Event, Debug, Clone, Serialize, Deserialize)]
#[event(name = "test.where", version = 1)]
struct Where;

/// Waits for the test's go-ahead inside its handler.
#[derive(Event, Debug, Clone, Serialize, Deserialize)]
#[event(name = "test.hold", version = 1)]
struct Hold;

/// Asks the counter itself, from its own handler.
#[derive(Event, Debug, Clone, Serialize, Deserialize)]
#[event(name = "test.ask_yourself", version = 1)]
struct AskYourself;

/// Where a request was handled, and what the handler had seen by then.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    task: Option<Id>,
    /// Whether the runtime the handler sees as current is a multi-thread one.
    multi_thread: bool,
    added: u32,
    /// The task that handled each `Added` event, in order.
    added_in: Vec<Option<Id>>,
}

struct Counter {
    added: u32,
    added_in: Vec<Option<Id>>,
    release: Arc<Notify>,
    /// Set while a handler runs, to catch two at once.
    running: Arc<AtomicBool>,
    overlaps: Arc<AtomicU32>,
    self_ask: Option<std::result::Result<u32, String>>,
}

impl Counter {
    fn new(release: &Arc<Notify>, overlaps: &Arc<AtomicU32>) -> Self {
        Counter {
            added: 0,
            added_in: Vec::new(),
            release: release.clone(),
            running: Arc::default(),
            overlaps: overlaps.clone(),
            self_ask: None,
        }
    }

    fn enter(&self) {
        if self.running.swap(true, Ordering::SeqCst) {
            self.overlaps.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn leave(&self) {
        self.running.store(false, Ordering::SeqCst);
    }
}

#[actor]
impl Counter {
    #[on]
    fn added(&mut self, e: &Added) {
        self.enter();
        self.added += e.0;
        self.added_in.push(tokio::task::try_id());
        self.leave();
    }

    #[on]
    async fn hold(&mut self, _e: &Hold) {
        self.enter();
        self.release.notified().await;
        self.leave();
    }

    #[on]
    async fn ask_yourself(
        &mut self,
        _e: &AskYourself,
        cx: &mut Context<Self>,
    ) -> Result<(), HandlerError> {
        let me = cx.addr().clone();
        self.self_ask = Some(
            me.ask(Where, Duration::from_millis(50))
                .await
                .map(|seen| seen.added)
                .map_err(|e| e.to_string()),
        );
        Ok(())
    }

    #[reply]
    fn where_(&self, _q: &Where) -> Seen {
        self.enter();
        let seen = Seen {
            task: tokio::task::try_id(),
            multi_thread: tokio::runtime::Handle::current().runtime_flavor()
                == RuntimeFlavor::MultiThread,
            added: self.added,
            added_in: self.added_in.clone(),
        };
        self.leave();
        seen
    }

    #[reply]
    fn self_asked(&self, _q: &AskYourself) -> Option<std::result::Result<u32, String>> {
        self.self_ask.clone()
    }
}

/// A system with one counter that has had its task (an event handled), and
/// its release and overlap count.
async fn counter() -> (System, mercato::Addr<Counter>, Arc<Notify>, Arc<AtomicU32>) {
    counter_in(System::builder().build().unwrap()).await
}

/// [`counter`], in `system`.
async fn counter_in(
    system: System,
) -> (System, mercato::Addr<Counter>, Arc<Notify>, Arc<AtomicU32>) {
    let (release, overlaps) = (Arc::new(Notify::new()), Arc::new(AtomicU32::new(0)));
    let (r, o) = (release.clone(), overlaps.clone());
    let addr = system
        .start("counter", move || Counter::new(&r, &o))
        .unwrap();
    addr.tell(Added(0)).await.unwrap();
    system.settled().await;
    (system, addr, release, overlaps)
}

const SECOND: Duration = Duration::from_secs(1);

/// Asks `Where` `n` times, one after the other, from a task of its own:
/// that task's id, and the id of the task that handled each request, read
/// from the reply by `task_of`.
async fn ask_from_a_task<A>(
    addr: mercato::Addr<A>,
    n: usize,
    task_of: fn(A::Reply) -> Option<Id>,
) -> (Id, Vec<Option<Id>>)
where
    A: mercato::Answers<Where>,
{
    tokio::spawn(async move {
        let mut tasks = Vec::with_capacity(n);
        for _ in 0..n {
            tasks.push(task_of(addr.ask(Where, SECOND).await.unwrap()));
        }
        (tokio::task::id(), tasks)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ask_to_an_idle_actor_is_handled_in_the_askers_task() {
    let (system, addr, _, overlaps) = counter().await;
    let (asker, tasks) = ask_from_a_task(addr, 100, |seen| seen.task).await;
    assert!(
        tasks.iter().all(|t| *t == Some(asker)),
        "every request to the idle actor was handled in the asker's task: {tasks:?} vs {asker:?}"
    );
    assert_eq!(overlaps.load(Ordering::SeqCst), 0);
    system.shutdown(SECOND).await;
}

#[tokio::test(flavor = "current_thread")]
async fn what_was_queued_before_the_request_is_handled_first_in_the_askers_task() {
    let (system, addr, _, _) = counter().await;
    let asker = tokio::spawn(async move {
        // Queued with no yield between: the actor's task has not run since.
        for i in 1..=50 {
            addr.tell(Added(i)).await.unwrap();
        }
        let seen = addr.ask(Where, SECOND).await.unwrap();
        assert_eq!(addr.gauges().depth, 0);
        (tokio::task::id(), seen)
    });
    let (here, seen) = asker.await.unwrap();
    assert_eq!(
        seen.added,
        (1..=50).sum::<u32>(),
        "all 50 before the request"
    );
    assert_eq!(
        seen.task,
        Some(here),
        "the request was handled in the asker's task"
    );
    assert_eq!(seen.added_in.len(), 51);
    assert_ne!(
        seen.added_in[0],
        Some(here),
        "Added(0), before, in the actor's"
    );
    assert!(
        seen.added_in[1..].iter().all(|t| *t == Some(here)),
        "and so were the 50 queued before it, in order: {:?}",
        seen.added_in
    );
    system.shutdown(SECOND).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_behind_a_waiting_handler_waits_and_the_actors_task_answers_it() {
    let (system, addr, release, overlaps) = counter().await;
    addr.tell(Hold).await.unwrap();
    // The hold handler has started and waits.
    while addr.gauges().running_for.is_none() {
        tokio::task::yield_now().await;
    }
    let asking = {
        let addr = addr.clone();
        tokio::spawn(async move {
            let seen = addr.ask(Where, Duration::from_secs(10)).await.unwrap();
            (tokio::task::id(), seen)
        })
    };
    // The request is queued behind the handler, not run beside it. The
    // asker gave the waiting handler a turn (it had nothing to go on with)
    // and waits for its reply.
    while addr.gauges().depth == 0 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!asking.is_finished());
    assert!(addr.gauges().running_for.is_some(), "still in the handler");
    release.notify_one();
    let (asker, seen) = asking.await.unwrap();
    assert_ne!(
        seen.task,
        Some(asker),
        "the released handler, and the request after it, ran in the actor's own task"
    );
    assert_eq!(overlaps.load(Ordering::SeqCst), 0, "one handler at a time");
    system.shutdown(SECOND).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_askers_and_tellers_at_once_never_run_two_handlers() {
    let (system, addr, _, overlaps) = counter().await;
    let tellers: Vec<_> = (0..2)
        .map(|_| {
            let addr = addr.clone();
            tokio::spawn(async move {
                for _ in 0..2_000 {
                    addr.tell(Added(1)).await.unwrap();
                }
            })
        })
        .collect();
    let askers: Vec<_> = (0..3)
        .map(|_| {
            let addr = addr.clone();
            tokio::spawn(async move {
                let mut last = 0;
                for _ in 0..500 {
                    let seen = addr.ask(Where, Duration::from_secs(10)).await.unwrap();
                    assert!(seen.added >= last, "one asker's replies in order");
                    last = seen.added;
                }
            })
        })
        .collect();
    for task in tellers.into_iter().chain(askers) {
        task.await.unwrap();
    }
    system.settled().await;
    assert_eq!(addr.ask(Where, SECOND).await.unwrap().added, 4_000);
    assert_eq!(overlaps.load(Ordering::SeqCst), 0, "one handler at a time");
    system.shutdown(SECOND).await;
}

#[tokio::test(start_paused = true)]
async fn an_actor_that_asks_itself_times_out_instead_of_deadlocking() {
    let (system, addr, _, _) = counter().await;
    addr.tell(AskYourself).await.unwrap();
    system.settled().await;
    let asked = addr.ask(AskYourself, SECOND).await.unwrap();
    assert_eq!(
        asked,
        Some(Err(AskError::<Where>::Timeout.to_string())),
        "its own request waited behind the handler that asked"
    );
    system.shutdown(SECOND).await;
}

#[tokio::test(start_paused = true)]
async fn a_handler_that_waits_carries_on_in_the_actors_own_task() {
    let (system, addr, release, _) = counter().await;
    // Asked in place, the request waits in the hold handler ahead of it:
    // the ask times out, and the actor's task finishes the handler later.
    addr.tell(Hold).await.unwrap();
    let asked = addr.ask(Where, Duration::from_millis(100)).await;
    assert!(matches!(asked, Err(AskError::Timeout)), "{asked:?}");
    release.notify_one();
    system.settled().await;
    assert_eq!(
        addr.gauges().processed,
        3,
        "Added(0), Hold and the late Where"
    );
    system.shutdown(SECOND).await;
}

#[test]
fn a_request_handled_in_the_task_of_an_asker_on_another_runtime_runs_in_the_actors_runtime() {
    let actors = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (system, addr, _, _) = actors.block_on(async { counter().await });
    let asking = std::thread::spawn(move || {
        let other = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        other.block_on(async move {
            tokio::spawn(async move {
                // Each push wakes the actor's task on the other runtime,
                // which may take the loop first: ask until some were
                // handled here.
                let mut seen = Vec::new();
                for _ in 0..100 {
                    seen.push(addr.ask(Where, SECOND).await.unwrap());
                }
                (tokio::task::id(), seen)
            })
            .await
            .unwrap()
        })
    });
    let (asker, seen) = asking.join().unwrap();
    let here = seen.iter().filter(|s| s.task == Some(asker)).count();
    assert!(
        here > 0,
        "none of 100 requests was handled in the asker's task"
    );
    assert!(
        seen.iter().all(|s| s.multi_thread),
        "every handler ran with the actor's runtime current, not the asker's \
         ({here} of 100 in the asker's task)"
    );
    actors.block_on(system.shutdown(SECOND));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_actor_configured_not_to_be_asked_in_place_answers_in_its_own_task() {
    let system = System::builder()
        .configure("counter", |c| c.ask_in_place(false))
        .build()
        .unwrap();
    let (system, addr, _, _) = counter_in(system).await;
    let (asker, tasks) = ask_from_a_task(addr, 50, |seen| seen.task).await;
    assert!(
        tasks.iter().all(|t| t.is_some() && *t != Some(asker)),
        "every request was handled in the actor's own task: {tasks:?}"
    );
    system.shutdown(SECOND).await;
}

/// Declared to keep every handler in its own task.
struct Pinned;

#[actor(ask_in_place = false)]
impl Pinned {
    #[reply]
    fn which(&self, _q: &Where) -> Option<Id> {
        tokio::task::try_id()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_actor_declared_with_ask_in_place_false_answers_in_its_own_task() {
    let system = System::builder().build().unwrap();
    let pinned = system.start("pinned", || Pinned).unwrap();
    let (asker, tasks) = ask_from_a_task(pinned, 50, |task| task).await;
    assert!(
        tasks.iter().all(|t| t.is_some() && *t != Some(asker)),
        "every request was handled in the actor's own task: {tasks:?}"
    );
    system.shutdown(SECOND).await;
}
