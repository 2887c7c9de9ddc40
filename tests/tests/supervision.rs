//! Supervision strategies, restart policies and escalation through parents.

// In tests, an unwrap that fails is a test failure with its message.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Counter, Num, log, quiet_panics};
use mercato::{
    Actor, Addr, Backoff, Context, HandlerError, Intensity, Restart, ShutdownReason, Strategy,
    System,
};

/// Panics on `Num { seq: 666 }`, stops itself on `seq: 0`; counts builds.
struct Worker {
    name: &'static str,
    restarts: common::parking_lot_free::Log<&'static str>,
}

message_enum!(WorkerMsg for Worker {
    tell Num(Num),
});

impl Actor for Worker {
    type Msg = WorkerMsg;
    async fn restarted(&mut self, _why: &str, _cx: &mut Context<Self>) -> Result<(), HandlerError> {
        self.restarts.push(self.name);
        Ok(())
    }
    async fn handle(
        &mut self,
        msg: &mut WorkerMsg,
        cx: &mut Context<Self>,
    ) -> Result<(), HandlerError> {
        let WorkerMsg::Num(n) = msg;
        match n.seq {
            666 => panic!("worker {} broke", self.name),
            0 => cx.stop(),
            _ => {}
        }
        Ok(())
    }
}

async fn three_workers(
    strategy: Strategy,
) -> (
    System,
    Vec<Addr<Worker>>,
    common::parking_lot_free::Log<&'static str>,
) {
    let system = System::builder().root_strategy(strategy).build().unwrap();
    let restarts = log();
    let mut addrs = Vec::new();
    for name in ["a", "b", "c"] {
        let r = restarts.clone();
        addrs.push(
            system
                .spawn_with(
                    name,
                    |c| c.retry_after_panic(false),
                    move || Worker {
                        name,
                        restarts: r.clone(),
                    },
                )
                .unwrap(),
        );
    }
    (system, addrs, restarts)
}

async fn restarted_after_b_fails(strategy: Strategy) -> Vec<&'static str> {
    quiet_panics();
    let (system, addrs, restarts) = three_workers(strategy).await;
    addrs[1]
        .tell(Num {
            sender: 0,
            seq: 666,
        })
        .await
        .unwrap();
    system.settled().await;
    let mut r = restarts.take();
    r.sort_unstable();
    r
}

#[tokio::test(start_paused = true)]
async fn one_for_one_restarts_only_the_failed_child() {
    assert_eq!(
        restarted_after_b_fails(Strategy::OneForOne).await,
        vec!["b"]
    );
}

#[tokio::test(start_paused = true)]
async fn one_for_all_restarts_every_child() {
    assert_eq!(
        restarted_after_b_fails(Strategy::OneForAll).await,
        vec!["a", "b", "c"]
    );
}

#[tokio::test(start_paused = true)]
async fn rest_for_one_restarts_the_failed_child_and_those_started_after_it() {
    assert_eq!(
        restarted_after_b_fails(Strategy::RestForOne).await,
        vec!["b", "c"]
    );
}

#[tokio::test(start_paused = true)]
async fn sibling_restarts_keep_their_queued_messages() {
    quiet_panics();
    let (system, addrs, _) = three_workers(Strategy::OneForAll).await;
    for seq in 1..=3 {
        addrs[2].tell(Num { sender: 0, seq }).await.unwrap();
    }
    addrs[1]
        .tell(Num {
            sender: 0,
            seq: 666,
        })
        .await
        .unwrap();
    system.settled().await;
    assert_eq!(addrs[2].gauges().processed, 3);
    // Only the panicking message itself is a dead letter.
    assert_eq!(system.dead_letters().counts().total(), 1);
    assert_eq!(
        system
            .dead_letters()
            .count(mercato::DeadLetterReason::Panicked),
        1
    );
}

async fn self_stop(restart: Restart) -> (bool, Vec<&'static str>) {
    let system = System::builder().build().unwrap();
    let restarts = log();
    let r = restarts.clone();
    let addr = system
        .spawn_with(
            "w",
            |c| c.restart(restart),
            move || Worker {
                name: "w",
                restarts: r.clone(),
            },
        )
        .unwrap();
    addr.tell(Num { sender: 0, seq: 0 }).await.unwrap();
    system.settled().await;
    (addr.is_stopped(), restarts.take())
}

#[tokio::test(start_paused = true)]
async fn a_transient_actor_that_stops_itself_stays_stopped() {
    assert_eq!(self_stop(Restart::Transient).await, (true, vec![]));
}

#[tokio::test(start_paused = true)]
async fn a_permanent_actor_that_stops_itself_is_restarted() {
    assert_eq!(self_stop(Restart::Permanent).await, (false, vec!["w"]));
}

#[tokio::test(start_paused = true)]
async fn a_transient_actor_is_restarted_after_a_panic() {
    quiet_panics();
    let system = System::builder().build().unwrap();
    let restarts = log();
    let r = restarts.clone();
    let addr = system
        .spawn_with(
            "w",
            |c| c.restart(Restart::Transient).retry_after_panic(false),
            move || Worker {
                name: "w",
                restarts: r.clone(),
            },
        )
        .unwrap();
    addr.tell(Num {
        sender: 0,
        seq: 666,
    })
    .await
    .unwrap();
    system.settled().await;
    assert_eq!(restarts.take(), vec!["w"]);
    assert!(!addr.is_stopped());
}

/// A parent that spawns one flaky child in `started` and forwards to it.
struct Parent {
    builds: Counter,
    child: Option<Addr<Worker>>,
    restarts: common::parking_lot_free::Log<&'static str>,
}

message_enum!(ParentMsg for Parent {
    tell Num(Num),
});

impl Actor for Parent {
    type Msg = ParentMsg;
    async fn started(&mut self, cx: &mut Context<Self>) -> Result<(), HandlerError> {
        self.builds.bump();
        let r = self.restarts.clone();
        let child = cx.spawn_with(
            "child",
            |c| {
                c.intensity(Intensity::new(1, Duration::from_secs(60)))
                    .retry_after_panic(false)
            },
            move || Worker {
                name: "child",
                restarts: r.clone(),
            },
        )?;
        self.child = Some(child);
        Ok(())
    }
    async fn handle(
        &mut self,
        msg: &mut ParentMsg,
        _cx: &mut Context<Self>,
    ) -> Result<(), HandlerError> {
        let ParentMsg::Num(n) = msg;
        if let Some(child) = &self.child {
            child.tell(**n).await?;
        }
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_child_past_its_intensity_escalates_to_its_parent_which_restarts() {
    quiet_panics();
    let system = System::builder().build().unwrap();
    let builds = Counter::default();
    let restarts = log();
    let (b, r) = (builds.clone(), restarts.clone());
    let parent = system
        .spawn("parent", move || Parent {
            builds: b.clone(),
            child: None,
            restarts: r.clone(),
        })
        .unwrap();
    system.settled().await;
    assert_eq!(builds.get(), 1);
    // First panic: the child restarts (intensity 1). Second: it escalates.
    parent
        .tell(Num {
            sender: 0,
            seq: 666,
        })
        .await
        .unwrap();
    system.settled().await;
    assert_eq!(restarts.take(), vec!["child"]);
    parent
        .tell(Num {
            sender: 0,
            seq: 666,
        })
        .await
        .unwrap();
    system.settled().await;
    assert_eq!(builds.get(), 2, "the parent was rebuilt from its factory");
    assert!(system.is_running(), "the parent absorbed the failure");
    // The parent's new child works.
    parent.tell(Num { sender: 0, seq: 5 }).await.unwrap();
    system.settled().await;
    let child = system
        .mailboxes()
        .into_iter()
        .find(|m| m.actor == "child")
        .unwrap();
    assert_eq!(child.processed, 1);
}

#[tokio::test(start_paused = true)]
async fn restart_backoff_is_exponential_and_reproducible_with_a_seed() {
    quiet_panics();
    async fn restart_times(seed: u64) -> Vec<Duration> {
        let system = System::builder().rng_seed(seed).build().unwrap();
        let backoff =
            Backoff::exponential(Duration::from_millis(100), Duration::from_secs(60)).jitter(0.5);
        let times = log();
        let start = tokio::time::Instant::now();
        let t = times.clone();
        let addr = system
            .spawn_with(
                "w",
                |c| {
                    c.backoff(backoff)
                        .intensity(Intensity::new(10, Duration::from_secs(3600)))
                        .retry_after_panic(false)
                },
                move || {
                    t.push(start.elapsed());
                    Worker {
                        name: "w",
                        restarts: log(),
                    }
                },
            )
            .unwrap();
        for _ in 0..4 {
            addr.tell(Num {
                sender: 0,
                seq: 666,
            })
            .await
            .unwrap();
            system.settled().await;
        }
        system.shutdown(Duration::from_secs(1)).await;
        times.take()
    }
    let a = restart_times(11).await;
    let b = restart_times(11).await;
    let c = restart_times(12).await;
    assert_eq!(a.len(), 5);
    assert_eq!(a, b, "the same seed gives the same jitter");
    assert_ne!(a, c, "another seed gives other jitter");
    let gaps: Vec<Duration> = a.windows(2).map(|w| w[1] - w[0]).collect();
    for (n, gap) in gaps.iter().enumerate() {
        let full = Duration::from_millis(100) * 2u32.pow(n as u32);
        assert!(
            *gap <= full && *gap >= full / 2,
            "restart {n}: waited {gap:?}, expected within [{:?}, {full:?}]",
            full / 2
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_root_escalation_reports_the_actor_and_its_failure() {
    quiet_panics();
    let system = System::builder().build().unwrap();
    let addr = system
        .spawn_with(
            "fragile",
            |c| c.intensity(Intensity::new(0, Duration::from_secs(1))),
            || Worker {
                name: "fragile",
                restarts: log(),
            },
        )
        .unwrap();
    addr.tell(Num {
        sender: 0,
        seq: 666,
    })
    .await
    .unwrap();
    let report = system.terminated().await;
    assert!(matches!(
        &report.reason,
        ShutdownReason::Escalated { actor, failure } if actor == "fragile" && failure.contains("worker fragile broke")
    ));
    assert!(matches!(
        system.spawn("late", || Worker {
            name: "late",
            restarts: log()
        }),
        Err(mercato::SystemError::ShuttingDown)
    ));
}

#[tokio::test(start_paused = true)]
async fn a_temporary_sibling_is_not_restarted_by_one_for_all() {
    quiet_panics();
    let system = System::builder()
        .root_strategy(Strategy::OneForAll)
        .build()
        .unwrap();
    let restarts = log();
    let (r1, r2) = (restarts.clone(), restarts.clone());
    let temp = system
        .spawn_with(
            "temp",
            |c| c.restart(Restart::Temporary),
            move || Worker {
                name: "temp",
                restarts: r1.clone(),
            },
        )
        .unwrap();
    let failing = system
        .spawn_with(
            "failing",
            |c| c.retry_after_panic(false),
            move || Worker {
                name: "failing",
                restarts: r2.clone(),
            },
        )
        .unwrap();
    failing
        .tell(Num {
            sender: 0,
            seq: 666,
        })
        .await
        .unwrap();
    system.settled().await;
    assert_eq!(restarts.take(), vec!["failing"]);
    assert!(temp.is_stopped(), "the temporary sibling stopped instead");
}

/// Spawns two workers in `started`, under its own strategy.
struct Pair {
    restarts: common::parking_lot_free::Log<&'static str>,
    first: std::sync::Arc<std::sync::Mutex<Option<Addr<Worker>>>>,
}

message_enum!(PairMsg for Pair {
    tell Num(Num),
});

impl Actor for Pair {
    type Msg = PairMsg;
    async fn started(&mut self, cx: &mut Context<Self>) -> Result<(), HandlerError> {
        for name in ["x", "y"] {
            let r = self.restarts.clone();
            let addr = cx.spawn_with(
                name,
                |c| c.retry_after_panic(false),
                move || Worker {
                    name,
                    restarts: r.clone(),
                },
            )?;
            if name == "x" {
                *self.first.lock().unwrap() = Some(addr);
            }
        }
        Ok(())
    }
    async fn handle(
        &mut self,
        _msg: &mut PairMsg,
        _cx: &mut Context<Self>,
    ) -> Result<(), HandlerError> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_parent_applies_its_own_strategy_to_its_children() {
    quiet_panics();
    let system = System::builder().build().unwrap();
    let restarts = log();
    let first = std::sync::Arc::new(std::sync::Mutex::new(None));
    let (r, f) = (restarts.clone(), first.clone());
    system
        .spawn_with(
            "pair",
            |c| c.strategy(Strategy::OneForAll),
            move || Pair {
                restarts: r.clone(),
                first: f.clone(),
            },
        )
        .unwrap();
    system.settled().await;
    let x = first.lock().unwrap().clone().unwrap();
    x.tell(Num {
        sender: 0,
        seq: 666,
    })
    .await
    .unwrap();
    system.settled().await;
    let mut r = restarts.take();
    r.sort_unstable();
    assert_eq!(r, vec!["x", "y"], "one-for-all among the pair's children");
}

#[tokio::test(start_paused = true)]
async fn a_failed_start_is_a_failure_the_next_instance_serves_after() {
    /// Its first instance fails to start, with an error or a panic; later
    /// ones start. Records what happens.
    struct Shaky {
        panic_first: bool,
        events: common::parking_lot_free::Log<String>,
        builds: std::sync::Arc<std::sync::atomic::AtomicU32>,
    }
    message_enum!(ShakyMsg for Shaky {
        tell Num(Num),
    });
    impl Actor for Shaky {
        type Msg = ShakyMsg;
        async fn started(&mut self, _cx: &mut Context<Self>) -> Result<(), HandlerError> {
            self.events.push("started".to_owned());
            if self.builds.load(std::sync::atomic::Ordering::SeqCst) == 1 {
                if self.panic_first {
                    panic!("no connection yet");
                }
                return Err("no connection yet".into());
            }
            Ok(())
        }
        async fn restarted(
            &mut self,
            why: &str,
            _cx: &mut Context<Self>,
        ) -> Result<(), HandlerError> {
            self.events.push(format!("restarted: {why}"));
            Ok(())
        }
        async fn handle(
            &mut self,
            msg: &mut ShakyMsg,
            _cx: &mut Context<Self>,
        ) -> Result<(), HandlerError> {
            let ShakyMsg::Num(n) = msg;
            self.events.push(format!("handled {}", n.seq));
            Ok(())
        }
    }
    quiet_panics();
    for (panic_first, why) in [
        (false, "start failed: no connection yet"),
        (true, "start panicked: no connection yet"),
    ] {
        let system = System::builder().build().unwrap();
        let events = log();
        let builds = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let (e, b) = (events.clone(), builds.clone());
        let addr = system
            .spawn_with(
                "shaky",
                |c| c.backoff(Backoff::none()),
                move || {
                    b.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    Shaky {
                        panic_first,
                        events: e.clone(),
                        builds: b.clone(),
                    }
                },
            )
            .unwrap();
        addr.tell(Num { sender: 0, seq: 7 }).await.unwrap();
        system.settled().await;
        assert_eq!(
            events.take(),
            vec![
                "started".to_owned(),
                format!("restarted: {why}"),
                "handled 7".to_owned()
            ],
            "the message waits for an instance that started"
        );
        assert_eq!(builds.load(std::sync::atomic::Ordering::SeqCst), 2);
        system.shutdown(Duration::from_secs(1)).await;
    }
}
