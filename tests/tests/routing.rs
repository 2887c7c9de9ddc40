//! The bus, entities, groups and dead letters (DESIGN.md: `bus`, `entity`,
//! `dead_letters`). Each test names the sentence it keeps.

// In tests, an unwrap that fails is a test failure with its message.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Counter, log};
use mercato::{
    Actor, Context, DeadLetterReason, EventId, HandlerError, Key, Overflow, PublishError, Refusal,
    SubscriptionKind, System,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
/// An order, keyed by its id by default.
pub struct OrderPlaced {
    /// The default key.
    pub order_id: u64,
    /// Another key, for keyed subscriptions by SKU.
    pub sku: u32,
    /// A sequence number.
    pub n: u32,
}

impl mercato::Event for OrderPlaced {
    const NAME: &'static str = "test.order_placed";
    const VERSION: u32 = 1;
    fn key(&self) -> Option<Key> {
        Some(self.order_id.into())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
/// An event nobody subscribes to.
pub struct Unheard;

impl mercato::Event for Unheard {
    const NAME: &'static str = "test.unheard";
    const VERSION: u32 = 1;
}

type Seen = common::parking_lot_free::Log<(String, u64, u32, EventId, Option<EventId>)>;

/// Records what it handles under its name; republishes `n > 100` as `n - 100`.
struct Listener {
    name: String,
    seen: Seen,
}

message_enum!(ListenerMsg for Listener {
    tell Placed(OrderPlaced),
});

impl Actor for Listener {
    type Msg = ListenerMsg;
    async fn handle(
        &mut self,
        msg: &mut ListenerMsg,
        cx: &mut Context<Self>,
    ) -> Result<(), HandlerError> {
        let ListenerMsg::Placed(e) = msg;
        let meta = e.meta();
        self.seen.push((
            self.name.clone(),
            e.order_id,
            e.n,
            meta.correlation_id(),
            meta.causation_id(),
        ));
        if e.n > 100 && self.name == "audit" {
            cx.publish(OrderPlaced {
                n: e.n - 100,
                ..**e
            })
            .await?;
        }
        Ok(())
    }
}

fn listener(
    system: &System,
    name: &'static str,
    seen: &Seen,
    configure: impl FnOnce(mercato::ActorConfig) -> mercato::ActorConfig,
) -> mercato::Addr<Listener> {
    let s = seen.clone();
    let addr = system
        .spawn_with(name, configure, move || Listener {
            name: name.to_owned(),
            seen: s.clone(),
        })
        .unwrap();
    system.subscribe::<OrderPlaced, _>(&addr).unwrap();
    addr
}

#[tokio::test(start_paused = true)]
async fn bus_broadcast_every_subscribing_actor_gets_it_and_a_handler_publish_is_linked() {
    let system = System::builder().build().unwrap();
    let seen = log();
    listener(&system, "audit", &seen, |c| c);
    listener(&system, "mail", &seen, |c| c);
    let published = system
        .publish(OrderPlaced {
            order_id: 1,
            sku: 9,
            n: 101,
        })
        .await
        .unwrap();
    assert_eq!(published.delivered, 2);
    system.settled().await;
    let seen = seen.take();
    assert_eq!(seen.len(), 4, "{seen:?}");
    let first: Vec<_> = seen.iter().filter(|s| s.2 == 101).collect();
    let second: Vec<_> = seen.iter().filter(|s| s.2 == 1).collect();
    assert_eq!(first.len(), 2);
    assert_eq!(second.len(), 2);
    // The publish from audit's handler keeps the correlation and names its cause.
    let root = first[0].3;
    assert!(first.iter().all(|s| s.3 == root && s.4.is_none()));
    assert!(
        second.iter().all(|s| s.3 == root && s.4 == Some(root)),
        "{second:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn dead_letters_an_event_without_subscribers_is_a_dead_letter() {
    let system = System::builder().build().unwrap();
    let mut stream = system.dead_letters().subscribe();
    let published = system.publish(Unheard).await.unwrap();
    assert_eq!(published.delivered, 0);
    assert_eq!(
        system.dead_letters().count(DeadLetterReason::NoSubscriber),
        1
    );
    let letter = stream.next().await.unwrap().unwrap();
    assert_eq!(letter.reason(), DeadLetterReason::NoSubscriber);
    assert_eq!(letter.payload::<Unheard>(), Some(&Unheard));
}

#[tokio::test(start_paused = true)]
async fn bus_a_fan_out_some_subscribers_refuse_names_them_and_dead_letters_their_copies() {
    let system = System::builder().build().unwrap();
    let seen = log();
    let strict = listener(&system, "strict", &seen, |c| {
        c.capacity(1).overflow(Overflow::Reject)
    });
    listener(&system, "relaxed", &seen, |c| c.capacity(100));
    // Fill strict: it has not run yet on paused time, so its one slot stays taken.
    system
        .publish(OrderPlaced {
            order_id: 1,
            sku: 1,
            n: 1,
        })
        .await
        .unwrap();
    let err = system
        .publish(OrderPlaced {
            order_id: 2,
            sku: 1,
            n: 2,
        })
        .await
        .unwrap_err();
    match &err {
        PublishError::Refused { refused, delivered } => {
            assert_eq!(*delivered, 1);
            assert_eq!(refused.len(), 1);
            assert_eq!(refused[0].subscriber, "strict");
            assert_eq!(refused[0].reason, DeadLetterReason::Rejected);
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(err.to_string().contains("strict (rejected)"), "{err}");
    system.settled().await;
    assert_eq!(strict.gauges().processed, 1);
    let letters = system.dead_letters().recent();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].target(), "strict");
    assert_eq!(letters[0].payload::<OrderPlaced>().unwrap().n, 2);
    // 2 published × 2 subscribers = 3 handled + 1 dead-lettered.
    assert_eq!(
        seen.len() as u64 + system.dead_letters().counts().total(),
        4
    );
}

#[tokio::test(start_paused = true)]
async fn bus_subscribing_twice_the_same_way_is_refused() {
    let system = System::builder().build().unwrap();
    let addr = listener(&system, "once", &log(), |c| c);
    let err = system.subscribe::<OrderPlaced, _>(&addr).unwrap_err();
    assert!(err.to_string().contains("already subscribed"), "{err}");
    let subscriptions = system.subscriptions();
    assert_eq!(subscriptions.len(), 1);
    assert_eq!(
        (
            subscriptions[0].event,
            subscriptions[0].subscriber.as_str(),
            &subscriptions[0].kind
        ),
        ("test.order_placed", "once", &SubscriptionKind::Broadcast)
    );
}

// ------------------------------------------------------------------ entities

/// An entity that records (its key, its activation number, what it saw).
struct Ledger {
    key: Key,
    activation: u32,
    seen: common::parking_lot_free::Log<(Key, u32, u32)>,
    live: Arc<AtomicI32>,
    slow_stop: Duration,
    fail_on: Option<u32>,
    failed: bool,
}

impl Drop for Ledger {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

message_enum!(LedgerMsg for Ledger {
    tell Placed(OrderPlaced),
});

impl Actor for Ledger {
    type Msg = LedgerMsg;
    async fn handle(
        &mut self,
        msg: &mut LedgerMsg,
        _cx: &mut Context<Self>,
    ) -> Result<(), HandlerError> {
        let LedgerMsg::Placed(e) = msg;
        if self.fail_on == Some(e.n) && !self.failed {
            self.failed = true;
            return Err("ledger fails once".into());
        }
        self.seen.push((self.key.clone(), self.activation, e.n));
        Ok(())
    }
    async fn stopping(&mut self, _cx: &mut Context<Self>) {
        tokio::time::sleep(self.slow_stop).await;
    }
}

struct LedgerKit {
    seen: common::parking_lot_free::Log<(Key, u32, u32)>,
    activations: Arc<Mutex<HashMap<Key, u32>>>,
    live: Arc<AtomicI32>,
    max_live: Arc<AtomicI32>,
}

fn ledger_kind(
    system: &System,
    idle: Duration,
    slow_stop: Duration,
    fail_on: Option<u32>,
) -> (mercato::Entities<Ledger>, LedgerKit) {
    named_ledger_kind(system, "ledger", idle, slow_stop, fail_on)
}

fn named_ledger_kind(
    system: &System,
    name: &str,
    idle: Duration,
    slow_stop: Duration,
    fail_on: Option<u32>,
) -> (mercato::Entities<Ledger>, LedgerKit) {
    let kit = LedgerKit {
        seen: log(),
        activations: Arc::default(),
        live: Arc::default(),
        max_live: Arc::default(),
    };
    let (seen, activations, live, max_live) = (
        kit.seen.clone(),
        kit.activations.clone(),
        kit.live.clone(),
        kit.max_live.clone(),
    );
    let entities = system
        .entities_with(
            name,
            |c| c.passivate_after(idle).capacity(64),
            move |key: &Key| {
                let n = {
                    let mut a = activations.lock().unwrap();
                    let n = a.entry(key.clone()).or_default();
                    *n += 1;
                    *n
                };
                let now = live.fetch_add(1, Ordering::SeqCst) + 1;
                max_live.fetch_max(now, Ordering::SeqCst);
                Ledger {
                    key: key.clone(),
                    activation: n,
                    seen: seen.clone(),
                    live: live.clone(),
                    slow_stop,
                    fail_on,
                    failed: false,
                }
            },
        )
        .unwrap();
    (entities, kit)
}

#[tokio::test(start_paused = true)]
async fn entity_activated_on_first_event_passivated_when_idle_and_reactivated_fresh() {
    let system = System::builder().build().unwrap();
    let (ledgers, kit) = ledger_kind(&system, Duration::from_secs(30), Duration::ZERO, None);
    system.subscribe_keyed::<OrderPlaced, _>(&ledgers).unwrap();
    assert_eq!(
        ledgers.gauges().live,
        0,
        "nothing is activated before its first event"
    );
    for (order_id, n) in [(1, 1), (2, 2), (1, 3)] {
        publish_order(&system, order_id, n).await;
    }
    system.settled().await;
    let g = ledgers.gauges();
    assert_eq!(
        (g.live, g.activations, g.passivations, g.processed),
        (2, 2, 0, 3)
    );
    tokio::time::sleep(Duration::from_secs(31)).await;
    system.settled().await;
    let g = ledgers.gauges();
    assert_eq!((g.live, g.activations, g.passivations), (0, 2, 2));
    assert!(
        system.mailboxes().is_empty(),
        "passivated entities are gone"
    );
    system
        .publish(OrderPlaced {
            order_id: 1,
            sku: 0,
            n: 4,
        })
        .await
        .unwrap();
    system.settled().await;
    assert_eq!(ledgers.gauges().activations, 3);
    let mut seen = kit.seen.take();
    seen.sort();
    assert_eq!(
        seen,
        vec![
            (Key::from(1u64), 1, 1),
            (Key::from(1u64), 1, 3),
            (Key::from(1u64), 2, 4),
            (Key::from(2u64), 1, 2)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn entities_keyed_by_strings_small_integers_and_integers_past_64_bits_live_apart() {
    let system = System::builder().build().unwrap();
    let (ledgers, kit) = ledger_kind(&system, Duration::from_secs(30), Duration::ZERO, None);
    let big = Key::Int(u128::from(u64::MAX) + 1);
    // "7" and 7 are two keys, as are u64::MAX + 1 and 0.
    let keys = [
        Key::from("sku-1"),
        Key::from("7"),
        Key::from(7u64),
        Key::from(0u64),
        big.clone(),
    ];
    let order = |n| OrderPlaced {
        order_id: 0,
        sku: 0,
        n,
    };
    for (n, key) in (1..).zip(keys.iter().chain(keys.iter())) {
        ledgers.tell(key.clone(), order(n)).await.unwrap();
    }
    system.settled().await;
    let g = ledgers.gauges();
    assert_eq!((g.live, g.activations, g.processed), (5, 5, 10));
    assert!(keys.iter().all(|k| ledgers.is_live(k)));
    assert!(!ledgers.is_live(&Key::from(8u64)) && !ledgers.is_live(&Key::from("8")));
    tokio::time::sleep(Duration::from_secs(31)).await;
    system.settled().await;
    assert_eq!(ledgers.gauges().passivations, 5);
    assert!(keys.iter().all(|k| !ledgers.is_live(k)));
    ledgers.tell(big.clone(), order(11)).await.unwrap();
    system.settled().await;
    assert_eq!(ledgers.gauges().live, 1);
    let mut seen = kit.seen.take();
    seen.sort_by_key(|(_, _, n)| *n);
    let expected: Vec<(Key, u32, u32)> = (1..=10)
        .map(|n| (keys[(n as usize - 1) % 5].clone(), 1, n))
        .chain([(big, 2, 11)])
        .collect();
    assert_eq!(seen, expected);
}

/// Publishes the `n`th event of order `order_id`.
async fn publish_order(system: &System, order_id: u64, n: u32) {
    system
        .publish(OrderPlaced {
            order_id,
            sku: 0,
            n,
        })
        .await
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_entity_passivates_a_full_idle_time_after_its_last_event_not_before() {
    let system = System::builder().build().unwrap();
    let (ledgers, _kit) = ledger_kind(&system, Duration::from_secs(30), Duration::ZERO, None);
    system.subscribe_keyed::<OrderPlaced, _>(&ledgers).unwrap();
    // An event every 20 s for 100 s: never idle for 30 s, so never
    // passivated, though its first idle time ran out long ago.
    publish_order(&system, 1, 0).await;
    system.settled().await;
    for n in 1..=5 {
        tokio::time::sleep(Duration::from_secs(20)).await;
        publish_order(&system, 1, n).await;
        system.settled().await;
        let g = ledgers.gauges();
        assert_eq!(
            (g.live, g.activations, g.passivations),
            (1, 1, 0),
            "{} s in, 20 s after the event before",
            20 * n
        );
    }
    // Idle since its last event: still live 29 s on, passivated by 31 s.
    tokio::time::sleep(Duration::from_secs(29)).await;
    system.settled().await;
    let g = ledgers.gauges();
    assert_eq!(
        (g.live, g.passivations),
        (1, 0),
        "29 s idle: not passivated yet"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    system.settled().await;
    let g = ledgers.gauges();
    assert_eq!(
        (g.live, g.activations, g.passivations),
        (0, 1, 1),
        "31 s idle: passivated, once"
    );
}

#[tokio::test(start_paused = true)]
async fn an_entity_with_an_idle_time_of_duration_max_is_never_passivated() {
    let system = System::builder().build().unwrap();
    let (ledgers, _kit) = ledger_kind(&system, Duration::MAX, Duration::ZERO, None);
    system.subscribe_keyed::<OrderPlaced, _>(&ledgers).unwrap();
    // Idle for three years at a time: longer than tokio's timer wheel
    // spans (about 2.2 years).
    for n in 0..3 {
        publish_order(&system, 1, n).await;
        system.settled().await;
        tokio::time::sleep(Duration::from_secs(3 * 365 * 86_400)).await;
        system.settled().await;
    }
    let g = ledgers.gauges();
    assert_eq!(
        (g.live, g.activations, g.passivations, g.processed),
        (1, 1, 0, 3),
        "nine years, three events, one activation"
    );
}

#[tokio::test(start_paused = true)]
async fn entity_no_message_is_lost_across_passivation() {
    let system = System::builder().build().unwrap();
    // Passivation takes 5 s (a slow `stopping` hook): messages arrive meanwhile.
    let (ledgers, kit) = ledger_kind(
        &system,
        Duration::from_secs(10),
        Duration::from_secs(5),
        None,
    );
    system.subscribe_keyed::<OrderPlaced, _>(&ledgers).unwrap();
    system
        .publish(OrderPlaced {
            order_id: 7,
            sku: 0,
            n: 1,
        })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(12)).await; // idle: passivating now
    let g = ledgers.gauges();
    assert_eq!((g.live, g.passivating), (0, 1), "passivating at this point");
    for n in 2..=4 {
        system
            .publish(OrderPlaced {
                order_id: 7,
                sku: 0,
                n,
            })
            .await
            .unwrap();
    }
    assert_eq!(ledgers.gauges().depth, 3, "held for the next activation");
    system.settled().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    system.settled().await;
    let seen = kit.seen.take();
    assert_eq!(
        seen,
        vec![
            (Key::from(7u64), 1, 1),
            (Key::from(7u64), 2, 2),
            (Key::from(7u64), 2, 3),
            (Key::from(7u64), 2, 4)
        ],
        "delivered once each, to the next activation, in order"
    );
    assert_eq!(
        kit.max_live.load(Ordering::SeqCst),
        1,
        "never two live activations of one key"
    );
    assert_eq!(system.dead_letters().counts().total(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entity_at_most_one_live_activation_per_key_under_concurrent_publishers() {
    let system = System::builder().build().unwrap();
    let (ledgers, kit) = ledger_kind(&system, Duration::from_millis(2), Duration::ZERO, None);
    system.subscribe_keyed::<OrderPlaced, _>(&ledgers).unwrap();
    let publishers: Vec<_> = (0..4u32)
        .map(|p| {
            let system = system.clone();
            tokio::spawn(async move {
                for i in 0..500u32 {
                    let order_id = u64::from(i % 10);
                    system
                        .publish(OrderPlaced {
                            order_id,
                            sku: p,
                            n: p * 1000 + i,
                        })
                        .await
                        .unwrap();
                    if i % 50 == 0 {
                        tokio::time::sleep(Duration::from_millis(3)).await; // let some passivate
                    }
                }
            })
        })
        .collect();
    for p in publishers {
        p.await.unwrap();
    }
    system.settled().await;
    let seen = kit.seen.take();
    assert_eq!(
        system.dead_letters().counts().total(),
        0,
        "{:?}",
        system.dead_letters().recent()
    );
    assert_eq!(seen.len(), 2000, "every event handled once");
    // Per publisher and key, publish order.
    for p in 0..4u32 {
        for key in 0..10u64 {
            let ns: Vec<u32> = seen
                .iter()
                .filter(|(k, _, n)| *k == Key::from(key) && n / 1000 == p)
                .map(|(_, _, n)| *n)
                .collect();
            assert!(
                ns.windows(2).all(|w| w[0] < w[1]),
                "publisher {p}, key {key}: {ns:?}"
            );
        }
    }
    // At most one live activation per key at any moment: the activation
    // numbers a key's messages saw never go back.
    for key in 0..10u64 {
        let acts: Vec<u32> = seen
            .iter()
            .filter(|(k, _, _)| *k == Key::from(key))
            .map(|(_, a, _)| *a)
            .collect();
        assert!(
            acts.windows(2).all(|w| w[0] <= w[1]),
            "key {key} went back to an older activation"
        );
    }
    let g = ledgers.gauges();
    assert_eq!(g.activations, g.passivations + g.live as u64);
    assert!(kit.live.load(Ordering::SeqCst) <= 10);
}

#[tokio::test(start_paused = true)]
async fn entity_one_event_reaches_an_order_by_order_id_and_an_inventory_by_sku() {
    let system = System::builder().build().unwrap();
    let (orders, order_kit) = named_ledger_kind(
        &system,
        "order",
        Duration::from_secs(60),
        Duration::ZERO,
        None,
    );
    let (stock, stock_kit) = named_ledger_kind(
        &system,
        "inventory",
        Duration::from_secs(60),
        Duration::ZERO,
        None,
    );
    system.subscribe_keyed::<OrderPlaced, _>(&orders).unwrap();
    system
        .subscribe_keyed_by::<OrderPlaced, _>(&stock, "sku", |e| Some(Key::from(e.sku)))
        .unwrap();
    for order_id in [1, 2] {
        system
            .publish(OrderPlaced {
                order_id,
                sku: 50,
                n: order_id as u32,
            })
            .await
            .unwrap();
    }
    system.settled().await;
    assert_eq!(orders.gauges().activations, 2);
    assert_eq!(stock.gauges().activations, 1);
    assert_eq!(
        order_kit.seen.take(),
        vec![(Key::from(1u64), 1, 1), (Key::from(2u64), 1, 2)]
    );
    assert_eq!(
        stock_kit.seen.take(),
        vec![(Key::from(50u32), 1, 1), (Key::from(50u32), 1, 2)]
    );
    let kinds: Vec<SubscriptionKind> = system.subscriptions().into_iter().map(|s| s.kind).collect();
    assert_eq!(
        kinds,
        vec![
            SubscriptionKind::Keyed {
                key: "default".into()
            },
            SubscriptionKind::Keyed { key: "sku".into() }
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn entity_restart_intensity_is_counted_per_key_across_activations() {
    common::quiet_panics();
    let system = System::builder().build().unwrap();
    let carts = system
        .entities_with(
            "cart",
            |c| {
                c.intensity(mercato::Intensity::new(1, Duration::from_secs(600)))
                    .retry_after_panic(false)
                    .passivate_after(Duration::from_secs(10))
            },
            |_: &Key| Fragile,
        )
        .unwrap();
    system.subscribe_keyed::<OrderPlaced, _>(&carts).unwrap();
    let (a, b) = (Key::from(13u64), Key::from(1u64));
    // Key 13 panics and uses its one restart; key 1 is unaffected.
    system
        .publish(OrderPlaced {
            order_id: 13,
            sku: 0,
            n: 0,
        })
        .await
        .unwrap();
    system
        .publish(OrderPlaced {
            order_id: 1,
            sku: 0,
            n: 0,
        })
        .await
        .unwrap();
    system.settled().await;
    assert!(carts.is_live(&a) && carts.is_live(&b));
    // Passivate both; key 13's restart is remembered for its next activation.
    tokio::time::sleep(Duration::from_secs(11)).await;
    system.settled().await;
    assert_eq!(carts.gauges().live, 0);
    system
        .publish(OrderPlaced {
            order_id: 13,
            sku: 0,
            n: 1,
        })
        .await
        .unwrap();
    system.settled().await;
    assert!(
        !carts.is_live(&a),
        "the second panic of key 13 within the window stops it"
    );
    assert_eq!(system.dead_letters().count(DeadLetterReason::Panicked), 2);
    assert!(system.is_running());
}

// ------------------------------------------------------------------ groups

#[tokio::test(start_paused = true)]
async fn group_competing_consumers_each_event_goes_to_one_member() {
    let system = System::builder().build().unwrap();
    let seen = log();
    let s = seen.clone();
    let members = Counter::default();
    let m = members.clone();
    let group = system
        .spawn_group_with(
            "payments",
            3,
            |c| c.capacity(4),
            move || Listener {
                name: format!("payment-{}", m.bump()),
                seen: s.clone(),
            },
        )
        .unwrap();
    system.subscribe_group::<OrderPlaced, _>(&group).unwrap();
    for n in 0..30 {
        system
            .publish(OrderPlaced {
                order_id: n.into(),
                sku: 0,
                n,
            })
            .await
            .unwrap();
    }
    system.settled().await;
    let seen = seen.take();
    assert_eq!(seen.len(), 30, "each event handled exactly once");
    let mut ns: Vec<u32> = seen.iter().map(|s| s.2).collect();
    ns.sort_unstable();
    assert_eq!(ns, (0..30).collect::<Vec<_>>());
    let per_member: Vec<u64> = group.gauges().iter().map(|g| g.processed).collect();
    assert_eq!(per_member.iter().sum::<u64>(), 30);
    assert_eq!(group.gauges().iter().map(|g| g.enqueued).sum::<u64>(), 30);
    assert!(
        per_member.iter().all(|p| *p > 0),
        "the work was shared: {per_member:?}"
    );
    assert!(
        matches!(system.spawn_group("empty", 0, || Listener { name: String::new(), seen: log() }), Err(mercato::SystemError::Config(e)) if e.field() == "group.size")
    );
}

// ------------------------------------------------------------------ deadlines

/// Forwards every number to its peer (a cycle), `hops` times in all.
struct Ping {
    peer: Arc<Mutex<Option<mercato::Addr<Ping>>>>,
    handled: Arc<AtomicU32>,
}

message_enum!(PingMsg for Ping {
    tell Placed(OrderPlaced),
});

impl Actor for Ping {
    type Msg = PingMsg;
    async fn handle(
        &mut self,
        msg: &mut PingMsg,
        _cx: &mut Context<Self>,
    ) -> Result<(), HandlerError> {
        let PingMsg::Placed(e) = msg;
        self.handled.fetch_add(1, Ordering::SeqCst);
        let peer = self.peer.lock().unwrap().clone();
        if let (Some(peer), true) = (peer, e.n > 0) {
            // Every message forwards two: the cycle fills both mailboxes.
            let _ = peer.tell(OrderPlaced { n: e.n - 1, ..**e }).await;
            let _ = peer.tell(OrderPlaced { n: e.n - 1, ..**e }).await;
        }
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn bus_a_back_pressure_cycle_ends_in_dead_letters_not_a_deadlock() {
    let system = System::builder()
        .send_deadline(Duration::from_millis(200))
        .build()
        .unwrap();
    let handled = Arc::new(AtomicU32::new(0));
    let (a_peer, b_peer) = (Arc::new(Mutex::new(None)), Arc::new(Mutex::new(None)));
    let (h, p) = (handled.clone(), a_peer.clone());
    let a = system
        .spawn_with(
            "a",
            |c| c.capacity(1),
            move || Ping {
                peer: p.clone(),
                handled: h.clone(),
            },
        )
        .unwrap();
    let (h, p) = (handled.clone(), b_peer.clone());
    let b = system
        .spawn_with(
            "b",
            |c| c.capacity(1),
            move || Ping {
                peer: p.clone(),
                handled: h.clone(),
            },
        )
        .unwrap();
    *a_peer.lock().unwrap() = Some(b.clone());
    *b_peer.lock().unwrap() = Some(a.clone());
    a.tell(OrderPlaced {
        order_id: 0,
        sku: 0,
        n: 6,
    })
    .await
    .unwrap();
    tokio::time::timeout(Duration::from_secs(3600), system.settled())
        .await
        .expect("the cycle ended instead of deadlocking");
    let dead = system
        .dead_letters()
        .count(DeadLetterReason::DeadlineExceeded);
    assert!(dead > 0, "some sends hit the deadline");
    // 1 sent from outside + 2 per handled message with n > 0 = handled + dead.
    let handled = u64::from(handled.load(Ordering::SeqCst));
    let letters = system.dead_letters().recent();
    assert!(
        letters
            .iter()
            .all(|l| l.reason() == DeadLetterReason::DeadlineExceeded)
    );
    assert!(handled + dead > 1);
}

// ------------------------------------------------------------------ publish × policy

async fn publish_matrix(policy: Overflow) -> (Vec<u32>, u64, Vec<Refusal>) {
    let system = System::builder().build().unwrap();
    let (gate, rx) = tokio::sync::watch::channel(false);
    /// Waits for the gate before handling anything.
    struct Gated {
        gate: tokio::sync::watch::Receiver<bool>,
        seen: common::parking_lot_free::Log<u32>,
    }
    message_enum!(GatedMsg for Gated {
        tell Placed(OrderPlaced),
    });
    impl Actor for Gated {
        type Msg = GatedMsg;
        async fn handle(
            &mut self,
            msg: &mut GatedMsg,
            _cx: &mut Context<Self>,
        ) -> Result<(), HandlerError> {
            let GatedMsg::Placed(e) = msg;
            self.gate.wait_for(|open| *open).await?;
            self.seen.push(e.n);
            Ok(())
        }
    }
    let seen = log();
    let s = seen.clone();
    let addr = system
        .spawn_with(
            "gated",
            |c| c.capacity(2).overflow(policy),
            move || Gated {
                gate: rx.clone(),
                seen: s.clone(),
            },
        )
        .unwrap();
    system.subscribe::<OrderPlaced, _>(&addr).unwrap();
    let mut refused = Vec::new();
    let publisher = {
        let system = system.clone();
        tokio::spawn(async move {
            let mut refused = Vec::new();
            for n in 0..5 {
                if let Err(PublishError::Refused { refused: r, .. }) = system
                    .publish(OrderPlaced {
                        order_id: 0,
                        sku: 0,
                        n,
                    })
                    .await
                {
                    refused.extend(r);
                }
                tokio::task::yield_now().await;
            }
            refused
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    if policy == Overflow::Backpressure {
        assert!(
            !publisher.is_finished(),
            "the publisher feels the full subscriber"
        );
    }
    gate.send_replace(true);
    refused.extend(publisher.await.unwrap());
    system.settled().await;
    let g = addr.gauges();
    let dead = system.dead_letters().counts();
    assert_eq!(
        g.dropped,
        dead.get(DeadLetterReason::DroppedOldest) + dead.get(DeadLetterReason::DroppedNewest)
    );
    assert_eq!(refused.len() as u64, dead.get(DeadLetterReason::Rejected));
    // published × matching subscribers = handled + dead-lettered.
    assert_eq!(5, seen.len() as u64 + dead.total());
    (seen.take(), dead.total(), refused)
}

#[tokio::test(start_paused = true)]
async fn publish_matrix_backpressure_waits_and_delivers_all() {
    assert_eq!(
        publish_matrix(Overflow::Backpressure).await,
        (vec![0, 1, 2, 3, 4], 0, vec![])
    );
}

#[tokio::test(start_paused = true)]
async fn publish_matrix_reject_dead_letters_the_refused_copies_and_names_the_subscriber() {
    let (seen, dead, refused) = publish_matrix(Overflow::Reject).await;
    assert_eq!((seen, dead), (vec![0, 1, 2], 2));
    assert!(
        refused
            .iter()
            .all(|r| r.subscriber == "gated" && r.reason == DeadLetterReason::Rejected)
    );
}

#[tokio::test(start_paused = true)]
async fn publish_matrix_drop_oldest_dead_letters_the_evicted() {
    assert_eq!(
        publish_matrix(Overflow::DropOldest).await,
        (vec![0, 3, 4], 2, vec![])
    );
}

#[tokio::test(start_paused = true)]
async fn publish_matrix_drop_newest_dead_letters_the_new() {
    assert_eq!(
        publish_matrix(Overflow::DropNewest).await,
        (vec![0, 1, 2], 2, vec![])
    );
}

// ------------------------------------------------------------------ failure and shutdown of entities

/// Panics on every message for key 13; fine for other keys.
struct Fragile;

message_enum!(FragileMsg for Fragile {
    tell Placed(OrderPlaced),
});

impl Actor for Fragile {
    type Msg = FragileMsg;
    async fn handle(
        &mut self,
        msg: &mut FragileMsg,
        _cx: &mut Context<Self>,
    ) -> Result<(), HandlerError> {
        let FragileMsg::Placed(e) = msg;
        if e.order_id == 13 {
            panic!("cart 13 broke");
        }
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn entity_past_its_intensity_stops_alone_and_the_system_runs_on() {
    common::quiet_panics();
    let system = System::builder().build().unwrap();
    let carts = system
        .entities_with(
            "cart",
            |c| {
                c.intensity(mercato::Intensity::new(1, Duration::from_secs(60)))
                    .retry_after_panic(false)
            },
            |_: &Key| Fragile,
        )
        .unwrap();
    system.subscribe_keyed::<OrderPlaced, _>(&carts).unwrap();
    for n in 0..3 {
        publish_order(&system, 13, n).await;
        publish_order(&system, 1, n).await;
    }
    system.settled().await;
    assert!(
        system.is_running(),
        "one broken entity does not stop the system"
    );
    assert!(
        !carts.is_live(&Key::from(13u64)),
        "the broken entity stopped for good"
    );
    assert!(carts.is_live(&Key::from(1u64)));
    let dead = system.dead_letters();
    // The first panic was restarted (intensity 1), the second stopped the
    // entity; the third message, still queued, was dead-lettered with it.
    assert_eq!(dead.count(DeadLetterReason::Panicked), 2);
    assert_eq!(dead.count(DeadLetterReason::ActorStopped), 1);
    assert_eq!(carts.gauges().activations, 2);
    // The next message for the key activates a fresh entity.
    system
        .publish(OrderPlaced {
            order_id: 13,
            sku: 0,
            n: 9,
        })
        .await
        .unwrap();
    system.settled().await;
    assert_eq!(carts.gauges().activations, 3);
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_entities_and_reports_what_they_held() {
    let system = System::builder().build().unwrap();
    let (ledgers, kit) = ledger_kind(&system, Duration::from_secs(600), Duration::ZERO, None);
    system.subscribe_keyed::<OrderPlaced, _>(&ledgers).unwrap();
    for order_id in 0..3 {
        system
            .publish(OrderPlaced {
                order_id,
                sku: 0,
                n: 1,
            })
            .await
            .unwrap();
    }
    system.settled().await;
    assert_eq!(ledgers.gauges().live, 3);
    let report = system.shutdown(Duration::from_secs(1)).await;
    assert!(report.settled);
    assert_eq!(ledgers.gauges().live, 0, "entities stopped with the system");
    assert_eq!(kit.live.load(Ordering::SeqCst), 0, "every instance dropped");
    assert!(system.mailboxes().is_empty());
}

#[tokio::test(start_paused = true)]
async fn group_settings_made_for_the_group_name_apply_to_every_member() {
    let system = System::builder()
        .configure("payments", |c| c.capacity(3))
        .build()
        .unwrap();
    let group = system
        .spawn_group("payments", 2, || Listener {
            name: "p".into(),
            seen: log(),
        })
        .unwrap();
    assert!(group.gauges().iter().all(|g| g.capacity == 3));
}

#[tokio::test(start_paused = true)]
async fn groups_and_entities_refuse_outside_sends_while_shutting_down() {
    let system = System::builder().build().unwrap();
    let group = system
        .spawn_group("g", 2, || Listener {
            name: "g".into(),
            seen: log(),
        })
        .unwrap();
    let (ledgers, _kit) = ledger_kind(&system, Duration::from_secs(60), Duration::ZERO, None);
    ledgers
        .tell(
            1u64,
            OrderPlaced {
                order_id: 1,
                sku: 0,
                n: 0,
            },
        )
        .await
        .unwrap();
    let shutdown = {
        let system = system.clone();
        tokio::spawn(async move { system.shutdown(Duration::from_secs(5)).await })
    };
    tokio::task::yield_now().await;
    let late = OrderPlaced {
        order_id: 1,
        sku: 0,
        n: 1,
    };
    assert!(matches!(
        group.tell(late).await,
        Err(mercato::TellError::ShuttingDown(_))
    ));
    assert!(matches!(
        ledgers.tell(1u64, late).await,
        Err(mercato::TellError::ShuttingDown(_))
    ));
    assert!(matches!(
        ledgers.tell(2u64, late).await,
        Err(mercato::TellError::ShuttingDown(_))
    ));
    shutdown.await.unwrap();
}

/// Counts acknowledgements.
#[derive(Default)]
struct Acks {
    acked: AtomicU32,
    nacked: Mutex<Vec<String>>,
}

impl mercato::Acknowledge for Acks {
    fn ack(&self, _id: EventId) {
        self.acked.fetch_add(1, Ordering::SeqCst);
    }
    fn nack(&self, _id: EventId, reason: &str) {
        self.nacked.lock().unwrap().push(reason.to_owned());
    }
}

#[tokio::test(start_paused = true)]
async fn bus_an_acknowledged_event_is_acked_once_for_all_its_copies() {
    let system = System::builder().build().unwrap();
    let strict = listener(&system, "strict", &log(), |c| {
        c.capacity(1).overflow(Overflow::Reject)
    });
    listener(&system, "relaxed", &log(), |c| c);
    let publish = |acks: &Arc<Acks>, n| {
        mercato::Envelope::new(OrderPlaced {
            order_id: 1,
            sku: 0,
            n,
        })
        .with_ack(mercato::AckHandle::new(
            acks.clone() as Arc<dyn mercato::Acknowledge>
        ))
    };
    // Both subscribers handle it: one ack, no nack.
    let all = Arc::new(Acks::default());
    system.publish_envelope(publish(&all, 1)).await.unwrap();
    system.settled().await;
    assert_eq!(all.acked.load(Ordering::SeqCst), 1);
    assert!(all.nacked.lock().unwrap().is_empty());
    // Fill strict, then publish again: strict refuses its copy.
    strict
        .try_tell(OrderPlaced {
            order_id: 0,
            sku: 0,
            n: 0,
        })
        .unwrap();
    let partly = Arc::new(Acks::default());
    assert!(system.publish_envelope(publish(&partly, 2)).await.is_err());
    system.settled().await;
    assert_eq!(partly.acked.load(Ordering::SeqCst), 0);
    assert_eq!(*partly.nacked.lock().unwrap(), vec!["rejected".to_owned()]);
}

#[tokio::test(start_paused = true)]
async fn a_declared_actor_started_with_the_wrong_method_is_refused() {
    /// A declared entity.
    #[derive(Default)]
    struct Declared;
    #[mercato::actor(entity)]
    impl Declared {
        #[on]
        fn placed(&mut self, _e: &OrderPlaced) {}
    }
    let system = System::builder().build().unwrap();
    let err = system.start("cart", Declared::default).unwrap_err();
    assert!(matches!(err, mercato::SystemError::WrongDeployment { .. }));
    assert!(err.to_string().contains("System::start_entities"), "{err}");
    assert!(system.start_group("cart", Declared::default).is_err());
    assert!(system.start_entities("cart", |_: &Key| Declared).is_ok());
}

#[tokio::test(start_paused = true)]
async fn group_a_full_group_applies_the_policy_and_no_member_exceeds_its_capacity() {
    let system = System::builder().build().unwrap();
    let group = system
        .spawn_group_with(
            "busy",
            2,
            |c| c.capacity(1).overflow(Overflow::Reject),
            || Listener {
                name: "busy".into(),
                seen: log(),
            },
        )
        .unwrap();
    // On paused time nobody has run yet: two tells fill both members.
    for n in 0..2 {
        group
            .tell(OrderPlaced {
                order_id: 0,
                sku: 0,
                n,
            })
            .await
            .unwrap();
    }
    assert!(group.gauges().iter().all(|g| g.depth == 1));
    let refused = group
        .tell(OrderPlaced {
            order_id: 0,
            sku: 0,
            n: 2,
        })
        .await;
    assert!(
        matches!(refused, Err(mercato::TellError::Full(_))),
        "{refused:?}"
    );
    assert!(
        group
            .gauges()
            .iter()
            .all(|g| g.depth <= 1 && g.high_water <= 1)
    );
    system.settled().await;
    assert_eq!(group.gauges().iter().map(|g| g.processed).sum::<u64>(), 2);
}

#[tokio::test(start_paused = true)]
async fn gauges_count_every_queued_message_whichever_way_it_was_sent() {
    // DESIGN.md `mailbox`: its gauges (depth, high-water mark, processed).
    // Every message queued counts once, whichever way it was sent.
    let system = System::builder().build().unwrap();
    let seen = log();
    let mail = listener(&system, "mail", &seen, |c| c);
    listener(&system, "stock", &seen, |c| c);
    let (ledgers, _kit) = ledger_kind(&system, Duration::from_secs(30), Duration::ZERO, None);
    system.subscribe_keyed::<OrderPlaced, _>(&ledgers).unwrap();
    // Published: a copy to each listener and one to ledger 7.
    for n in 1..=3 {
        publish_order(&system, 7, n).await;
    }
    // Straight to `mail`: twice without waiting, then once with a tell.
    for n in 4..=5 {
        mail.try_tell(OrderPlaced {
            order_id: 8,
            sku: 0,
            n,
        })
        .unwrap();
    }
    mail.tell(OrderPlaced {
        order_id: 8,
        sku: 0,
        n: 6,
    })
    .await
    .unwrap();
    // Straight to ledger 7, through its kind.
    ledgers
        .tell(
            7_u64,
            OrderPlaced {
                order_id: 7,
                sku: 0,
                n: 7,
            },
        )
        .await
        .unwrap();
    // Nothing has run yet: everything sent is queued.
    let gauges = |name: &str| {
        system
            .mailboxes()
            .into_iter()
            .find(|g| g.actor == name)
            .unwrap_or_else(|| panic!("no mailbox named {name}"))
    };
    let expected = [("mail", 6), ("stock", 3), ("ledger/7", 4)];
    for (name, sent) in expected {
        let g = gauges(name);
        assert_eq!(
            (g.depth, g.high_water, g.enqueued, g.processed),
            (sent, sent, sent as u64, 0),
            "{name} before it runs"
        );
    }
    system.settled().await;
    for (name, sent) in expected {
        let g = gauges(name);
        assert_eq!(
            (g.depth, g.high_water, g.enqueued, g.processed),
            (0, sent, sent as u64, sent as u64),
            "{name} once settled"
        );
    }
    assert_eq!(seen.len(), 6 + 3, "the listeners handled every copy");
    assert_eq!(ledgers.gauges().processed, 4);
}
