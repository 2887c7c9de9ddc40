//! Property tests: random interleavings of senders, handler errors, panics
//! and restarts, under every overflow policy, keep per-sender order, never
//! exceed the bound, and lose nothing: every message sent is handled,
//! returned to its sender, or dead-lettered.

// In tests, an unwrap that fails is a test failure with its message.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Num;
use mercato::{Actor, Backoff, Context, HandlerError, Intensity, Overflow, System};
use proptest::prelude::*;

#[derive(Debug, Clone, Copy)]
enum Behaviour {
    Ok,
    /// Returns `Err` this many times, then succeeds.
    Fail(u32),
    /// Panics on the first attempt only.
    PanicOnce,
}

type Script = Arc<HashMap<(u32, u32), Behaviour>>;

struct Scripted {
    script: Script,
    panicked: Arc<Mutex<HashSet<(u32, u32)>>>,
    failures: HashMap<(u32, u32), u32>,
    handled: common::parking_lot_free::Log<(u32, u32)>,
    capacity: usize,
}

message_enum!(ScriptedMsg for Scripted {
    tell Num(Num),
});

impl Actor for Scripted {
    type Msg = ScriptedMsg;
    async fn handle(
        &mut self,
        msg: &mut ScriptedMsg,
        cx: &mut Context<Self>,
    ) -> Result<(), HandlerError> {
        let ScriptedMsg::Num(n) = msg;
        let key = (n.sender, n.seq);
        assert!(cx.addr().gauges().depth <= self.capacity);
        if key.1 % 2 == 0 {
            tokio::task::yield_now().await;
        }
        match self.script.get(&key).copied().unwrap_or(Behaviour::Ok) {
            Behaviour::Ok => {}
            Behaviour::Fail(times) => {
                let failed = self.failures.entry(key).or_default();
                if *failed < times {
                    *failed += 1;
                    return Err("scripted failure".into());
                }
            }
            Behaviour::PanicOnce => {
                let first = self.panicked.lock().unwrap().insert(key);
                if first {
                    panic!("scripted panic, unlucky");
                }
            }
        }
        self.handled.push(key);
        Ok(())
    }
}

fn behaviour() -> impl Strategy<Value = Behaviour> {
    prop_oneof![
        6 => Just(Behaviour::Ok),
        2 => (1u32..=4).prop_map(Behaviour::Fail),
        1 => Just(Behaviour::PanicOnce),
    ]
}

fn policy() -> impl Strategy<Value = Overflow> {
    prop_oneof![
        Just(Overflow::Backpressure),
        Just(Overflow::Reject),
        Just(Overflow::DropOldest),
        Just(Overflow::DropNewest),
    ]
}

#[derive(Debug, Clone)]
struct Case {
    capacity: usize,
    policy: Overflow,
    max_restarts: u32,
    /// Per sender: per message, its behaviour and how many times the sender
    /// yields before sending it.
    senders: Vec<Vec<(Behaviour, u8)>>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        1usize..6,
        policy(),
        1u32..6,
        prop::collection::vec(prop::collection::vec((behaviour(), 0u8..4), 1..25), 1..4),
    )
        .prop_map(|(capacity, policy, max_restarts, senders)| Case {
            capacity,
            policy,
            max_restarts,
            senders,
        })
}

struct Outcome {
    sent: u64,
    handled: Vec<(u32, u32)>,
    returned: u64,
    dead: u64,
    high_water: usize,
    dropped_gauge: u64,
    dropped_dead: u64,
}

fn run(case: &Case) -> Outcome {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async {
        let script: Script = Arc::new(
            case.senders
                .iter()
                .enumerate()
                .flat_map(|(s, msgs)| {
                    msgs.iter()
                        .enumerate()
                        .map(move |(q, (b, _))| ((s as u32, q as u32), *b))
                })
                .collect(),
        );
        let system = System::builder().rng_seed(3).build().unwrap();
        let handled = common::log();
        let panicked = Arc::new(Mutex::new(HashSet::new()));
        let (h, capacity) = (handled.clone(), case.capacity);
        let addr = system
            .spawn_with(
                "scripted",
                |c| {
                    c.capacity(case.capacity)
                        .overflow(case.policy)
                        .max_retries(3)
                        .backoff(Backoff::exponential(
                            Duration::from_millis(1),
                            Duration::from_millis(50),
                        ))
                        .intensity(Intensity::new(case.max_restarts, Duration::from_secs(3600)))
                },
                move || Scripted {
                    script: script.clone(),
                    panicked: panicked.clone(),
                    failures: HashMap::new(),
                    handled: h.clone(),
                    capacity,
                },
            )
            .unwrap();
        let mut tasks = Vec::new();
        for (s, msgs) in case.senders.iter().enumerate() {
            let addr = addr.clone();
            let yields: Vec<u8> = msgs.iter().map(|(_, y)| *y).collect();
            tasks.push(tokio::spawn(async move {
                let mut returned = 0u64;
                for (q, y) in yields.into_iter().enumerate() {
                    for _ in 0..y {
                        tokio::task::yield_now().await;
                    }
                    if addr
                        .tell(Num {
                            sender: s as u32,
                            seq: q as u32,
                        })
                        .await
                        .is_err()
                    {
                        returned += 1;
                    }
                }
                returned
            }));
        }
        let mut returned = 0;
        for t in tasks {
            returned += t.await.unwrap();
        }
        let high_water = addr.gauges().high_water;
        let dropped_gauge = addr.gauges().dropped;
        // Escalation stops the system by itself; otherwise shut it down.
        let report = if system.is_running() {
            system.settled().await;
            system.shutdown(Duration::from_secs(60)).await
        } else {
            system.terminated().await
        };
        let counts = report.dead_letters;
        Outcome {
            sent: case.senders.iter().map(|m| m.len() as u64).sum(),
            handled: handled.take(),
            returned,
            dead: counts.total(),
            high_water,
            dropped_gauge,
            dropped_dead: counts.get(mercato::DeadLetterReason::DroppedOldest)
                + counts.get(mercato::DeadLetterReason::DroppedNewest),
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn order_bound_and_counts_hold_under_random_interleavings(case in case()) {
        common::quiet_panics();
        let out = run(&case);
        // Nothing lost, nothing counted twice.
        prop_assert_eq!(out.sent, out.handled.len() as u64 + out.returned + out.dead,
            "sent {} != handled {} + returned {} + dead {}", out.sent, out.handled.len(), out.returned, out.dead);
        let unique: HashSet<_> = out.handled.iter().collect();
        prop_assert_eq!(unique.len(), out.handled.len(), "a message was handled twice");
        // Per-sender order among what was handled.
        for s in 0..case.senders.len() as u32 {
            let seqs: Vec<u32> = out.handled.iter().filter(|(x, _)| *x == s).map(|(_, q)| *q).collect();
            prop_assert!(seqs.windows(2).all(|w| w[0] < w[1]), "sender {} out of order: {:?}", s, seqs);
        }
        // The bound.
        prop_assert!(out.high_water <= case.capacity);
        prop_assert_eq!(out.dropped_gauge, out.dropped_dead);
        // Under back-pressure, nothing is refused or dropped by the mailbox.
        if case.policy == Overflow::Backpressure {
            prop_assert_eq!(out.dropped_gauge, 0);
        }
    }
}
