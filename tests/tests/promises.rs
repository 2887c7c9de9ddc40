//! One test per promise of the runtime (DESIGN.md, "Promises"), named after
//! it. Each fails if the code that keeps the promise is taken away.

// In tests, an unwrap that fails is a test failure with its message.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{Counter, Events, Exclusive, Num, Query, log, quiet_panics};
use mercato::{
    Actor, Addr, AskError, Backoff, Context, DeadLetterReason, HandlerError, Intensity, Overflow,
    Restart, ShutdownReason, System, SystemError, TellError,
};

// ---------------------------------------------------------------- actors

/// Records every `Num` it handles; yields inside the handler so that other
/// tasks interleave with it.
struct Recorder {
    seen: Events,
    exclusive: Exclusive,
}

message_enum!(RecorderMsg for Recorder {
    tell Num(Num),
    ask Count(Query => u32),
});

impl Actor for Recorder {
    type Msg = RecorderMsg;
    async fn handle(
        &mut self,
        msg: &mut RecorderMsg,
        cx: &mut Context<Self>,
    ) -> Result<(), HandlerError> {
        self.exclusive.enter();
        match msg {
            RecorderMsg::Num(n) => {
                let depth = cx.addr().gauges().depth;
                let capacity = cx.addr().gauges().capacity;
                assert!(depth <= capacity, "mailbox held {depth} > {capacity}");
                if n.seq % 3 == 0 {
                    tokio::task::yield_now().await;
                }
                self.seen.push((n.sender, n.seq));
            }
            RecorderMsg::Count(q) => {
                let n = self.seen.len() as u32;
                q.reply(n);
            }
        }
        self.exclusive.leave();
        Ok(())
    }
}

/// Fails or panics on chosen messages, a chosen number of times.
struct Flaky {
    seen: Events,
    attempts: common::parking_lot_free::Log<(u32, u32)>,
    fail_times: HashMap<u32, u32>,
    panic_times: HashMap<u32, u32>,
    failures: HashMap<u32, u32>,
    started: Counter,
    restarted: Counter,
}

static FLAKY_PANICS: std::sync::Mutex<Vec<u32>> = std::sync::Mutex::new(Vec::new());

message_enum!(FlakyMsg for Flaky {
    tell Num(Num),
    ask Ask(Query => u32),
});

impl Actor for Flaky {
    type Msg = FlakyMsg;

    async fn started(&mut self, _cx: &mut Context<Self>) -> Result<(), HandlerError> {
        self.started.bump();
        Ok(())
    }

    async fn restarted(&mut self, _why: &str, _cx: &mut Context<Self>) -> Result<(), HandlerError> {
        self.restarted.bump();
        Ok(())
    }

    async fn handle(
        &mut self,
        msg: &mut FlakyMsg,
        _cx: &mut Context<Self>,
    ) -> Result<(), HandlerError> {
        let (seq, attempt) = match msg {
            FlakyMsg::Num(n) => (n.seq, n.meta().attempt()),
            FlakyMsg::Ask(q) => (q.query().0, q.meta().attempt()),
        };
        self.attempts.push((seq, attempt));
        // Panics are counted outside the instance: a restart starts afresh.
        let panics_so_far = {
            let log = FLAKY_PANICS.lock().unwrap_or_else(|p| p.into_inner());
            log.iter().filter(|s| **s == seq).count() as u32
        };
        if panics_so_far < self.panic_times.get(&seq).copied().unwrap_or(0) {
            FLAKY_PANICS
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(seq);
            panic!("flaky panics on {seq}");
        }
        let failed = self.failures.entry(seq).or_default();
        if *failed < self.fail_times.get(&seq).copied().unwrap_or(0) {
            *failed += 1;
            return Err(format!("flaky fails on {seq}").into());
        }
        match msg {
            FlakyMsg::Num(n) => self.seen.push((n.sender, n.seq)),
            FlakyMsg::Ask(q) => {
                let v = q.query().0 * 10;
                q.reply(v);
            }
        }
        Ok(())
    }
}

fn flaky_factory(
    seen: &Events,
    attempts: &common::parking_lot_free::Log<(u32, u32)>,
    fail: &[(u32, u32)],
    panic: &[(u32, u32)],
    started: &Counter,
    restarted: &Counter,
) -> impl Fn() -> Flaky + Send + Sync + 'static {
    let (seen, attempts, started, restarted) = (
        seen.clone(),
        attempts.clone(),
        started.clone(),
        restarted.clone(),
    );
    let fail: HashMap<u32, u32> = fail.iter().copied().collect();
    let panic: HashMap<u32, u32> = panic.iter().copied().collect();
    move || Flaky {
        seen: seen.clone(),
        attempts: attempts.clone(),
        fail_times: fail.clone(),
        panic_times: panic.clone(),
        failures: HashMap::new(),
        started: started.clone(),
        restarted: restarted.clone(),
    }
}

// ---------------------------------------------------------------- promise 1

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promise_1_order_per_sender_and_one_handler_at_a_time() {
    let system = System::builder().build().unwrap();
    let seen = log();
    let exclusive = Exclusive::default();
    let (s, e) = (seen.clone(), exclusive.clone());
    let addr = system
        .spawn_with(
            "recorder",
            |c| c.capacity(8),
            move || Recorder {
                seen: s.clone(),
                exclusive: e.clone(),
            },
        )
        .unwrap();
    let senders: Vec<_> = (0..4)
        .map(|sender| {
            let addr = addr.clone();
            tokio::spawn(async move {
                for seq in 0..500 {
                    addr.tell(Num { sender, seq }).await.unwrap();
                }
            })
        })
        .collect();
    for s in senders {
        s.await.unwrap();
    }
    system.settled().await;
    let seen = seen.take();
    assert_eq!(seen.len(), 2000);
    for sender in 0..4 {
        let seqs: Vec<u32> = seen
            .iter()
            .filter(|(s, _)| *s == sender)
            .map(|(_, q)| *q)
            .collect();
        assert_eq!(
            seqs,
            (0..500).collect::<Vec<_>>(),
            "sender {sender} out of order"
        );
    }
    // Interleaving between senders did happen (otherwise the test proves little).
    assert!(seen.windows(2).any(|w| w[0].0 != w[1].0));
}

// ---------------------------------------------------------------- promise 2

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promise_2_bound_is_never_exceeded_by_any_send_path() {
    let system = System::builder().build().unwrap();
    let seen = log();
    let (s, e) = (seen.clone(), Exclusive::default());
    let addr = system
        .spawn_with(
            "bounded",
            |c| c.capacity(4).overflow(Overflow::Backpressure),
            move || Recorder {
                seen: s.clone(),
                exclusive: e.clone(),
            },
        )
        .unwrap();
    let mut tasks = Vec::new();
    for sender in 0..3 {
        let addr = addr.clone();
        tasks.push(tokio::spawn(async move {
            for seq in 0..300 {
                addr.tell(Num { sender, seq }).await.unwrap();
            }
        }));
    }
    // try_tell never waits and never exceeds the bound either: it is refused.
    let mut refused = 0;
    let mut accepted = 0;
    for seq in 0..300 {
        match addr.try_tell(Num { sender: 9, seq }) {
            Ok(()) => accepted += 1,
            Err(TellError::Full(_)) => refused += 1,
            Err(other) => panic!("unexpected {other:?}"),
        }
        let g = addr.gauges();
        assert!(g.depth <= 4, "depth {} over capacity", g.depth);
    }
    for t in tasks {
        t.await.unwrap();
    }
    system.settled().await;
    let g = addr.gauges();
    assert!(
        g.high_water <= 4,
        "high water {} over capacity 4",
        g.high_water
    );
    assert_eq!(
        g.high_water, 4,
        "the senders should have filled the mailbox"
    );
    assert_eq!(seen.len(), 900 + accepted);
    assert_eq!(g.rejected as usize, refused);
    assert_eq!(g.processed as usize, 900 + accepted);
}

// ---------------------------------------------------------------- promise 3

#[tokio::test(start_paused = true)]
async fn promise_3_failure_err_is_retried_in_place_before_what_is_queued() {
    let system = System::builder().rng_seed(1).build().unwrap();
    let (seen, attempts, started, restarted) =
        (log(), log(), Counter::default(), Counter::default());
    let backoff =
        Backoff::exponential(Duration::from_millis(100), Duration::from_secs(10)).jitter(0.0);
    let addr = system
        .spawn_with(
            "flaky",
            |c| c.max_retries(3).backoff(backoff),
            flaky_factory(&seen, &attempts, &[(1, 2)], &[], &started, &restarted),
        )
        .unwrap();
    let start = tokio::time::Instant::now();
    for seq in 0..3 {
        addr.tell(Num { sender: 0, seq }).await.unwrap();
    }
    system.settled().await;
    // 1 failed twice and was retried on the same instance before 2.
    assert_eq!(
        attempts.take(),
        vec![(0, 1), (1, 1), (1, 2), (1, 3), (2, 1)]
    );
    assert_eq!(seen.take(), vec![(0, 0), (0, 1), (0, 2)]);
    assert_eq!(started.get(), 1, "Err must not restart the actor");
    assert_eq!(restarted.get(), 0);
    // Backoff waited 100 ms then 200 ms of (virtual) time.
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(system.dead_letters().counts().total(), 0);
}

#[tokio::test(start_paused = true)]
async fn promise_3_failure_retries_exhausted_are_dead_lettered_and_the_next_message_handled() {
    let system = System::builder().build().unwrap();
    let (seen, attempts, started, restarted) =
        (log(), log(), Counter::default(), Counter::default());
    let addr = system
        .spawn_with(
            "flaky",
            |c| c.max_retries(2),
            flaky_factory(&seen, &attempts, &[(0, 100)], &[], &started, &restarted),
        )
        .unwrap();
    addr.tell(Num { sender: 0, seq: 0 }).await.unwrap();
    addr.tell(Num { sender: 0, seq: 1 }).await.unwrap();
    system.settled().await;
    assert_eq!(attempts.take(), vec![(0, 1), (0, 2), (0, 3), (1, 1)]);
    assert_eq!(seen.take(), vec![(0, 1)]);
    let dead = system.dead_letters();
    assert_eq!(dead.count(DeadLetterReason::RetriesExhausted), 1);
    let letter = &dead.recent()[0];
    assert_eq!(letter.payload::<Num>(), Some(&Num { sender: 0, seq: 0 }));
    assert_eq!(letter.meta().attempt(), 3);
    assert_eq!(letter.target(), "flaky");
    assert_eq!(letter.error(), Some("flaky fails on 0"));
    // processed counts the given-up message too.
    assert_eq!(addr.gauges().processed, 2);
}

#[tokio::test(start_paused = true)]
async fn promise_3_failure_panic_restarts_from_factory_and_keeps_queued_order() {
    quiet_panics();
    let system = System::builder().build().unwrap();
    let (seen, attempts, started, restarted) =
        (log(), log(), Counter::default(), Counter::default());
    let factory_calls = Counter::default();
    let inner = flaky_factory(&seen, &attempts, &[], &[(100, 1)], &started, &restarted);
    let calls = factory_calls.clone();
    let addr = system
        .spawn("panicky", move || {
            calls.bump();
            inner()
        })
        .unwrap();
    for seq in [99, 100, 101, 102] {
        addr.tell(Num { sender: 0, seq }).await.unwrap();
    }
    system.settled().await;
    assert_eq!(
        factory_calls.get(),
        2,
        "a panic rebuilds the actor from its factory"
    );
    assert_eq!(started.get(), 1);
    assert_eq!(restarted.get(), 1, "the fresh instance gets `restarted`");
    // The panicking message is retried first on the new instance, then the rest in order.
    assert_eq!(seen.take(), vec![(0, 99), (0, 100), (0, 101), (0, 102)]);
    assert_eq!(
        attempts.take(),
        vec![(99, 1), (100, 1), (100, 2), (101, 1), (102, 1)]
    );
    assert_eq!(system.dead_letters().counts().total(), 0);
}

#[tokio::test(start_paused = true)]
async fn promise_3_failure_panic_is_dead_lettered_when_not_retried() {
    quiet_panics();
    let system = System::builder().build().unwrap();
    let (seen, attempts, started, restarted) =
        (log(), log(), Counter::default(), Counter::default());
    let addr = system
        .spawn_with(
            "panicky",
            |c| c.retry_after_panic(false),
            flaky_factory(&seen, &attempts, &[], &[(200, 1)], &started, &restarted),
        )
        .unwrap();
    for seq in [200, 201] {
        addr.tell(Num { sender: 0, seq }).await.unwrap();
    }
    system.settled().await;
    assert_eq!(seen.take(), vec![(0, 201)]);
    assert_eq!(restarted.get(), 1);
    assert_eq!(system.dead_letters().count(DeadLetterReason::Panicked), 1);
    assert_eq!(
        system.dead_letters().recent()[0].error(),
        Some("flaky panics on 200")
    );
}

#[tokio::test(start_paused = true)]
async fn promise_3_failure_past_intensity_escalates_and_the_root_stops_the_system() {
    quiet_panics();
    let system = System::builder().build().unwrap();
    let (seen, attempts, started, restarted) =
        (log(), log(), Counter::default(), Counter::default());
    let addr = system
        .spawn_with(
            "doomed",
            |c| {
                c.intensity(Intensity::new(2, Duration::from_secs(60)))
                    .retry_after_panic(false)
            },
            flaky_factory(
                &seen,
                &attempts,
                &[],
                &[(300, 1), (301, 1), (302, 1), (303, 1)],
                &started,
                &restarted,
            ),
        )
        .unwrap();
    for seq in 300..304 {
        addr.tell(Num { sender: 0, seq }).await.unwrap();
    }
    let report = tokio::time::timeout(Duration::from_secs(120), system.terminated())
        .await
        .expect("the system stops by itself");
    match &report.reason {
        ShutdownReason::Escalated { actor, failure } => {
            assert_eq!(actor, "doomed");
            assert!(failure.contains("flaky panics on 302"), "{failure}");
        }
        other => panic!("expected an escalation, got {other:?}"),
    }
    assert_eq!(restarted.get(), 2, "two restarts were allowed");
    assert!(!system.is_running());
    assert!(addr.is_stopped());
    // 300, 301, 302 were dead-lettered as panicked; 303 was still queued,
    // and the report lists it.
    assert_eq!(report.dead_letters.get(DeadLetterReason::Panicked), 3);
    assert_eq!(report.dead_letters.get(DeadLetterReason::ActorStopped), 1);
    assert_eq!(report.undelivered.len(), 1);
    assert_eq!(report.undelivered[0].actor, "doomed");
    assert_eq!(report.undelivered[0].reason, DeadLetterReason::ActorStopped);
}

// ---------------------------------------------------------------- promise 4

/// Answers `Query(n)` with `n`, after sleeping `n` ms; panics on `Query(13)`.
struct Slow;

message_enum!(SlowMsg for Slow {
    tell Num(Num),
    ask Q(Query => u32),
});

impl Actor for Slow {
    type Msg = SlowMsg;
    async fn handle(
        &mut self,
        msg: &mut SlowMsg,
        _cx: &mut Context<Self>,
    ) -> Result<(), HandlerError> {
        match msg {
            SlowMsg::Num(n) => tokio::time::sleep(Duration::from_millis(u64::from(n.seq))).await,
            SlowMsg::Q(q) => {
                let n = q.query().0;
                if n == 13 {
                    panic!("unlucky query");
                }
                if n == 7 {
                    return Ok(()); // forgets to reply
                }
                tokio::time::sleep(Duration::from_millis(u64::from(n))).await;
                q.reply(n);
            }
        }
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn promise_4_ask_always_ends() {
    quiet_panics();
    let system = System::builder().build().unwrap();
    let slow = system
        .spawn_with("slow", |c| c.capacity(1).retry_after_panic(false), || Slow)
        .unwrap();
    let second = Duration::from_secs(1);

    // A reply.
    assert_eq!(slow.ask(Query(5), second).await.unwrap(), 5);
    // A timeout while the handler runs.
    assert!(matches!(
        slow.ask(Query(5_000), second).await,
        Err(AskError::Timeout)
    ));
    system.settled().await;
    // A panic mid-request: a clear error, not a hang; the actor restarts.
    match slow.ask(Query(13), second).await {
        Err(AskError::Failed(why)) => assert!(why.contains("unlucky query"), "{why}"),
        other => panic!("expected Failed, got {other:?}"),
    }
    assert_eq!(
        slow.ask(Query(1), second).await.unwrap(),
        1,
        "restarted and answering"
    );
    // No reply from the handler.
    assert!(matches!(
        slow.ask(Query(7), second).await,
        Err(AskError::NoReply)
    ));

    // Waiting for mailbox room counts against the timeout.
    slow.tell(Num {
        sender: 0,
        seq: 10_000,
    })
    .await
    .unwrap(); // busy for 10 s
    slow.tell(Num { sender: 0, seq: 0 }).await.unwrap(); // fills capacity 1
    let start = tokio::time::Instant::now();
    assert!(matches!(
        slow.ask(Query(1), Duration::from_millis(300)).await,
        Err(AskError::Timeout)
    ));
    assert_eq!(start.elapsed(), Duration::from_millis(300));
    system.settled().await;

    // A stopped actor.
    slow.stop();
    system.settled().await;
    assert!(slow.is_stopped());
    assert!(matches!(
        slow.ask(Query(1), second).await,
        Err(AskError::Stopped)
    ));
}

#[tokio::test(start_paused = true)]
async fn promise_4_ask_across_a_restart_gets_the_reply_from_the_new_instance() {
    quiet_panics();
    let system = System::builder().build().unwrap();
    let (seen, attempts, started, restarted) =
        (log(), log(), Counter::default(), Counter::default());
    let addr = system
        .spawn(
            "flaky",
            flaky_factory(
                &seen,
                &attempts,
                &[(4, 1)],
                &[(400, 1)],
                &started,
                &restarted,
            ),
        )
        .unwrap();
    assert_eq!(
        addr.ask(Query(400), Duration::from_secs(5)).await.unwrap(),
        4000
    );
    assert_eq!(restarted.get(), 1);
    assert_eq!(
        addr.ask(Query(4), Duration::from_secs(5)).await.unwrap(),
        40,
        "retried after Err"
    );
}

// ---------------------------------------------------------------- promise 5

/// Forwards every `Num` to the next actor until `seq` reaches 0.
struct Relay {
    next: Option<mercato::Addr<Relay>>,
    seen: Events,
    id: u32,
}

message_enum!(RelayMsg for Relay {
    tell Num(Num),
});

impl Actor for Relay {
    type Msg = RelayMsg;
    async fn handle(
        &mut self,
        msg: &mut RelayMsg,
        _cx: &mut Context<Self>,
    ) -> Result<(), HandlerError> {
        let RelayMsg::Num(n) = msg;
        self.seen.push((self.id, n.seq));
        tokio::time::sleep(Duration::from_millis(10)).await;
        if let (Some(next), true) = (&self.next, n.seq > 0) {
            next.tell(Num {
                sender: self.id,
                seq: n.seq - 1,
            })
            .await?;
        }
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn promise_5_shutdown_drains_and_actors_keep_talking_while_draining() {
    let system = System::builder().build().unwrap();
    let seen = log();
    let s = seen.clone();
    let b = system
        .spawn("b", move || Relay {
            next: None,
            seen: s.clone(),
            id: 2,
        })
        .unwrap();
    let s = seen.clone();
    let b2 = b.clone();
    let a = system
        .spawn("a", move || Relay {
            next: Some(b2.clone()),
            seen: s.clone(),
            id: 1,
        })
        .unwrap();
    a.tell(Num { sender: 0, seq: 5 }).await.unwrap();
    let shutdown = {
        let system = system.clone();
        tokio::spawn(async move { system.shutdown(Duration::from_secs(60)).await })
    };
    tokio::task::yield_now().await;
    // Intake from outside is closed at once...
    assert!(matches!(
        a.tell(Num { sender: 0, seq: 1 }).await,
        Err(TellError::ShuttingDown(_))
    ));
    let report = shutdown.await.unwrap();
    // ...but a's message to b, sent while draining, was delivered.
    assert_eq!(seen.take(), vec![(1, 5), (2, 4)]);
    assert!(report.settled);
    assert!(report.undelivered.is_empty() && report.in_flight.is_empty());
    assert_eq!(report.reason, ShutdownReason::Requested);
    assert!(a.is_stopped() && b.is_stopped());
}

#[tokio::test(start_paused = true)]
async fn promise_5_shutdown_deadline_cancels_and_reports_what_was_not_delivered() {
    let system = System::builder().build().unwrap();
    let slow = system.spawn("slow", || Slow).unwrap();
    slow.tell(Num {
        sender: 0,
        seq: 60_000,
    })
    .await
    .unwrap(); // runs 60 s
    slow.tell(Num { sender: 0, seq: 1 }).await.unwrap();
    slow.tell(Num { sender: 0, seq: 2 }).await.unwrap();
    tokio::task::yield_now().await;
    let start = tokio::time::Instant::now();
    let report = system.shutdown(Duration::from_secs(1)).await;
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "the deadline was kept"
    );
    assert!(!report.settled);
    assert_eq!(report.in_flight.len(), 1);
    assert_eq!(
        report.in_flight[0].reason,
        DeadLetterReason::CancelledAtShutdown
    );
    assert_eq!(report.undelivered.len(), 2);
    assert!(
        report
            .undelivered
            .iter()
            .all(|u| u.reason == DeadLetterReason::ShutdownDeadline && u.actor == "slow")
    );
    let dead = system.dead_letters();
    assert_eq!(dead.count(DeadLetterReason::CancelledAtShutdown), 1);
    assert_eq!(dead.count(DeadLetterReason::ShutdownDeadline), 2);
    let seqs: Vec<u32> = dead
        .recent()
        .iter()
        .filter_map(|l| l.payload::<Num>())
        .map(|n| n.seq)
        .collect();
    assert_eq!(seqs, vec![60_000, 1, 2]);
}

/// Spawns a child for every `Num` it handles, and logs whether it could.
struct Spawner {
    spawned: common::parking_lot_free::Log<bool>,
}

message_enum!(SpawnerMsg for Spawner {
    tell Num(Num),
});

impl Actor for Spawner {
    type Msg = SpawnerMsg;
    async fn handle(
        &mut self,
        _msg: &mut SpawnerMsg,
        cx: &mut Context<Self>,
    ) -> Result<(), HandlerError> {
        self.spawned
            .push(cx.spawn("spawner.child", || Slow).is_ok());
        Ok(())
    }
}

/// Tells a `Spawner` a little after each `Num` it handles.
struct Herald {
    to: Addr<Spawner>,
}

message_enum!(HeraldMsg for Herald {
    tell Num(Num),
});

impl Actor for Herald {
    type Msg = HeraldMsg;
    async fn handle(
        &mut self,
        msg: &mut HeraldMsg,
        _cx: &mut Context<Self>,
    ) -> Result<(), HandlerError> {
        let HeraldMsg::Num(n) = msg;
        tokio::time::sleep(Duration::from_millis(10)).await;
        self.to.tell(**n).await?;
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn promise_5_while_draining_only_the_systems_own_actors_spawn() {
    let system = System::builder().build().unwrap();
    let spawned = log();
    let s = spawned.clone();
    let spawner = system
        .spawn("spawner", move || Spawner { spawned: s.clone() })
        .unwrap();
    let herald = system
        .spawn("herald", move || Herald {
            to: spawner.clone(),
        })
        .unwrap();
    herald.tell(Num { sender: 0, seq: 1 }).await.unwrap();
    let shutdown = {
        let system = system.clone();
        tokio::spawn(async move { system.shutdown(Duration::from_secs(60)).await })
    };
    tokio::task::yield_now().await;
    // While the system drains, a spawn from outside is refused...
    assert!(matches!(
        system.spawn("outside", || Slow),
        Err(SystemError::ShuttingDown)
    ));
    let report = shutdown.await.unwrap();
    // ...and one from a handler, for a message sent while draining, is not.
    assert_eq!(spawned.take(), vec![true]);
    assert!(report.settled);
    assert!(report.undelivered.is_empty() && report.in_flight.is_empty());
    assert!(system.mailboxes().is_empty());
}

/// Spawns a `Slow` child when started and hands its address out.
struct SlowParent {
    child: std::sync::Arc<std::sync::Mutex<Option<Addr<Slow>>>>,
}

message_enum!(SlowParentMsg for SlowParent {
    tell Num(Num),
});

impl Actor for SlowParent {
    type Msg = SlowParentMsg;
    async fn started(&mut self, cx: &mut Context<Self>) -> Result<(), HandlerError> {
        let child = cx.spawn("slow.child", || Slow)?;
        *self.child.lock().unwrap() = Some(child);
        Ok(())
    }
    async fn handle(
        &mut self,
        _msg: &mut SlowParentMsg,
        _cx: &mut Context<Self>,
    ) -> Result<(), HandlerError> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn promise_5_the_shutdown_deadline_cancels_a_child_handler_even_while_its_parent_stops() {
    let system = System::builder().build().unwrap();
    let slot: std::sync::Arc<std::sync::Mutex<Option<Addr<Slow>>>> = std::sync::Arc::default();
    let s = std::sync::Arc::clone(&slot);
    let parent = system
        .spawn("slow.parent", move || SlowParent { child: s.clone() })
        .unwrap();
    system.settled().await;
    let child = slot.lock().unwrap().clone().unwrap();
    child
        .tell(Num {
            sender: 0,
            seq: 60_000,
        })
        .await
        .unwrap(); // runs 60 s
    child.tell(Num { sender: 0, seq: 1 }).await.unwrap();
    tokio::task::yield_now().await;
    // The parent stops its children first: it now waits for the child's
    // handler, and the child must stay within the shutdown's reach.
    parent.stop();
    tokio::task::yield_now().await;
    let start = tokio::time::Instant::now();
    let report = system.shutdown(Duration::from_secs(1)).await;
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "the deadline was kept for a child's handler: {:?}",
        start.elapsed()
    );
    assert!(!report.settled);
    assert_eq!(report.in_flight.len(), 1);
    assert_eq!(report.in_flight[0].actor, "slow.child");
    assert_eq!(
        report.in_flight[0].reason,
        DeadLetterReason::CancelledAtShutdown
    );
    assert_eq!(report.undelivered.len(), 1);
    assert_eq!(report.undelivered[0].actor, "slow.child");
    assert!(system.mailboxes().is_empty());
}

/// Logs its name when it stops; spawns the named children when started.
struct Node {
    name: &'static str,
    children: Vec<&'static str>,
    stops: common::parking_lot_free::Log<&'static str>,
}

message_enum!(NodeMsg for Node {
    tell Num(Num),
});

impl Actor for Node {
    type Msg = NodeMsg;
    async fn started(&mut self, cx: &mut Context<Self>) -> Result<(), HandlerError> {
        for child in self.children.clone() {
            let stops = self.stops.clone();
            cx.spawn(child, move || Node {
                name: child,
                children: Vec::new(),
                stops: stops.clone(),
            })?;
        }
        Ok(())
    }
    async fn handle(
        &mut self,
        _msg: &mut NodeMsg,
        _cx: &mut Context<Self>,
    ) -> Result<(), HandlerError> {
        Ok(())
    }
    async fn stopping(&mut self, _cx: &mut Context<Self>) {
        self.stops.push(self.name);
    }
}

#[tokio::test(start_paused = true)]
async fn promise_5_shutdown_stops_children_first_in_reverse_start_order() {
    let system = System::builder().build().unwrap();
    let stops = log();
    for (name, children) in [
        ("first", vec!["first.a", "first.b"]),
        ("second", vec!["second.a", "second.b", "second.c"]),
    ] {
        let s = stops.clone();
        system
            .spawn(name, move || Node {
                name,
                children: children.clone(),
                stops: s.clone(),
            })
            .unwrap();
    }
    system.settled().await;
    assert_eq!(system.mailboxes().len(), 7);
    system.shutdown(Duration::from_secs(1)).await;
    assert_eq!(
        stops.take(),
        vec![
            "second.c", "second.b", "second.a", "second", "first.b", "first.a", "first"
        ]
    );
    assert!(system.mailboxes().is_empty());
}

#[tokio::test(start_paused = true)]
async fn mailboxes_lists_every_live_actor_in_spawn_order() {
    let system = System::builder().build().unwrap();
    let stops = log();
    let s = stops.clone();
    let first = system
        .spawn("first", move || Node {
            name: "first",
            children: vec!["first.a"],
            stops: s.clone(),
        })
        .unwrap();
    system.settled().await;
    let s = stops.clone();
    system
        .spawn("second", move || Node {
            name: "second",
            children: vec!["second.a", "second.b"],
            stops: s.clone(),
        })
        .unwrap();
    system.settled().await;
    let names = |system: &System| -> Vec<String> {
        system.mailboxes().into_iter().map(|g| g.actor).collect()
    };
    assert_eq!(
        names(&system),
        vec!["first", "first.a", "second", "second.a", "second.b"]
    );
    // An actor that stops leaves the list with its children.
    first.stop();
    system.settled().await;
    assert_eq!(stops.take(), vec!["first.a", "first"]);
    assert_eq!(names(&system), vec!["second", "second.a", "second.b"]);
    system.shutdown(Duration::from_secs(1)).await;
    assert!(system.mailboxes().is_empty());
}

/// Sets its flag when dropped, slowly: what an actor's factory holds, such
/// as a connection it closes on drop.
struct SlowDrop(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Drop for SlowDrop {
    fn drop(&mut self) {
        std::thread::sleep(Duration::from_millis(50));
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Spawns a child whose factory holds a `SlowDrop`; logs, when it stops
/// (after its child has stopped), whether the child's factory was dropped.
struct Guardian {
    ward: std::sync::Arc<std::sync::atomic::AtomicBool>,
    seen: common::parking_lot_free::Log<bool>,
}

message_enum!(GuardianMsg for Guardian {
    tell Num(Num),
});

impl Actor for Guardian {
    type Msg = GuardianMsg;
    async fn started(&mut self, cx: &mut Context<Self>) -> Result<(), HandlerError> {
        let held = SlowDrop(self.ward.clone());
        let stops = log();
        cx.spawn("guardian.ward", move || {
            let _held = &held;
            Node {
                name: "guardian.ward",
                children: Vec::new(),
                stops: stops.clone(),
            }
        })?;
        Ok(())
    }
    async fn handle(
        &mut self,
        _msg: &mut GuardianMsg,
        _cx: &mut Context<Self>,
    ) -> Result<(), HandlerError> {
        Ok(())
    }
    async fn stopping(&mut self, _cx: &mut Context<Self>) {
        self.seen
            .push(self.ward.load(std::sync::atomic::Ordering::SeqCst));
    }
}

// On two workers, so that the stopping parent (or the shutdown) could run
// on one while the child's task is still being dropped on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promise_5_a_stopped_actor_has_dropped_what_its_task_held_before_its_parent_or_shutdown_goes_on()
 {
    let system = System::builder().build().unwrap();
    // A parent stopping its child.
    let ward = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = log();
    let (w, s) = (ward.clone(), seen.clone());
    let guardian = system
        .spawn("guardian", move || Guardian {
            ward: w.clone(),
            seen: s.clone(),
        })
        .unwrap();
    system.settled().await;
    guardian.stop();
    system.settled().await;
    assert_eq!(
        seen.take(),
        vec![true],
        "the parent stopped before its child's task had dropped its factory"
    );
    // The system shutting down a top-level actor.
    let dropped = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let held = SlowDrop(dropped.clone());
    let stops = log();
    system
        .spawn("holder", move || {
            let _held = &held;
            Node {
                name: "holder",
                children: Vec::new(),
                stops: stops.clone(),
            }
        })
        .unwrap();
    system.settled().await;
    system.shutdown(Duration::from_secs(5)).await;
    assert!(
        dropped.load(std::sync::atomic::Ordering::SeqCst),
        "shutdown returned before the actor's task had dropped its factory"
    );
}

// ---------------------------------------------------------------- restart policies

#[tokio::test(start_paused = true)]
async fn temporary_actor_stops_for_good_after_a_panic() {
    quiet_panics();
    let system = System::builder().build().unwrap();
    let (seen, attempts, started, restarted) =
        (log(), log(), Counter::default(), Counter::default());
    let addr = system
        .spawn_with(
            "temp",
            |c| c.restart(Restart::Temporary),
            flaky_factory(&seen, &attempts, &[], &[(500, 1)], &started, &restarted),
        )
        .unwrap();
    addr.tell(Num {
        sender: 0,
        seq: 500,
    })
    .await
    .unwrap();
    addr.tell(Num {
        sender: 0,
        seq: 501,
    })
    .await
    .unwrap();
    system.settled().await;
    assert!(addr.is_stopped());
    assert_eq!(restarted.get(), 0);
    assert!(matches!(
        addr.tell(Num {
            sender: 0,
            seq: 502
        })
        .await,
        Err(TellError::Stopped(_))
    ));
    // The panicking message and the one queued behind it are dead letters.
    assert_eq!(system.dead_letters().count(DeadLetterReason::Panicked), 1);
    assert_eq!(
        system.dead_letters().count(DeadLetterReason::ActorStopped),
        1
    );
}
