//! Property test of keyed routing: random sequences of publishes, idle
//! spells (passivations), slow passivations and failing handlers keep the
//! per-key order and lose nothing.

// In tests, an unwrap that fails is a test failure with its message.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mercato::{Actor, Backoff, Context, HandlerError, Key, System};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

/// A numbered event for one of a few keys.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Step {
    /// The entity.
    pub key: u8,
    /// Publish order.
    pub n: u32,
    /// Whether the handler fails once on it.
    pub fail_once: bool,
}

impl mercato::Event for Step {
    const NAME: &'static str = "test.step";
    const VERSION: u32 = 1;
    fn key(&self) -> Option<Key> {
        Some(u32::from(self.key).into())
    }
}

struct Keyed {
    seen: common::parking_lot_free::Log<(u8, u32)>,
    failed: Arc<Mutex<HashSet<u32>>>,
    stop_for: Duration,
}

message_enum!(KeyedMsg for Keyed {
    tell Step(Step),
});

impl Actor for Keyed {
    type Msg = KeyedMsg;
    async fn handle(
        &mut self,
        msg: &mut KeyedMsg,
        _cx: &mut Context<Self>,
    ) -> Result<(), HandlerError> {
        let KeyedMsg::Step(e) = msg;
        if e.fail_once && self.failed.lock().unwrap().insert(e.n) {
            return Err("fails once".into());
        }
        self.seen.push((e.key, e.n));
        Ok(())
    }
    async fn stopping(&mut self, _cx: &mut Context<Self>) {
        tokio::time::sleep(self.stop_for).await;
    }
}

#[derive(Debug, Clone)]
enum Op {
    Publish { key: u8, fail_once: bool },
    Idle(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0u8..4, prop::bool::weighted(0.2)).prop_map(|(key, fail_once)| Op::Publish { key, fail_once }),
        1 => (0u16..200).prop_map(Op::Idle),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn keyed_routing_keeps_per_key_order_and_loses_nothing(
        ops in prop::collection::vec(op(), 1..80),
        stop_ms in 0u64..80,
        capacity in 1usize..4,
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap();
        let (seen, published, activations, passivations, dead) = runtime.block_on(async {
            let system = System::builder().build().unwrap();
            let seen = common::log();
            let (s, failed) = (seen.clone(), Arc::new(Mutex::new(HashSet::new())));
            let entities = system
                .entities_with(
                    "keyed",
                    |c| c.passivate_after(Duration::from_millis(50)).capacity(capacity).backoff(Backoff::none()),
                    move |_key: &Key| Keyed { seen: s.clone(), failed: failed.clone(), stop_for: Duration::from_millis(stop_ms) },
                )
                .unwrap();
            system.subscribe_keyed::<Step, _>(&entities).unwrap();
            let mut published = Vec::new();
            for (n, op) in ops.iter().enumerate() {
                match op {
                    Op::Publish { key, fail_once } => {
                        system.publish(Step { key: *key, n: n as u32, fail_once: *fail_once }).await.unwrap();
                        published.push((*key, n as u32));
                    }
                    Op::Idle(ms) => tokio::time::sleep(Duration::from_millis(u64::from(*ms))).await,
                }
            }
            system.settled().await;
            let g = entities.gauges();
            (seen.take(), published, g.activations, g.passivations, system.dead_letters().counts().total())
        });
        prop_assert_eq!(dead, 0);
        // Everything published was handled exactly once...
        let mut handled = seen.clone();
        handled.sort_unstable();
        let mut expected = published.clone();
        expected.sort_unstable();
        prop_assert_eq!(handled, expected);
        // ...and in publish order per key.
        for key in 0..4u8 {
            let ns: Vec<u32> = seen.iter().filter(|(k, _)| *k == key).map(|(_, n)| *n).collect();
            prop_assert!(ns.windows(2).all(|w| w[0] < w[1]), "key {}: {:?}", key, ns);
        }
        prop_assert!(activations >= passivations);
    }
}
