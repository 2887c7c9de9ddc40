//! Declared actors at run time: a single actor, an entity kind and a group
//! started with `System::start*`, fed by published events, asked through a
//! `#[reply]` handler, and drawn by `System::topology`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mercato::{Context, Event, HandlerError, Key, System, actor};
use serde::{Deserialize, Serialize};

#[derive(Event, Debug, Clone, Serialize, Deserialize)]
#[event(name = "shop.item_added", version = 1)]
struct ItemAdded {
    #[event(key)]
    cart_id: u64,
    qty: u32,
}

#[derive(Event, Debug, Clone, Serialize, Deserialize)]
#[event(name = "shop.checkout_requested", version = 1)]
struct CheckoutRequested {
    cart: u64,
}

#[derive(Event, Debug, Clone, Serialize, Deserialize)]
#[event(name = "shop.order_placed", version = 1)]
struct OrderPlaced {
    cart: u64,
    qty: u32,
}

#[derive(Event, Debug, Clone, Serialize, Deserialize)]
#[event(name = "shop.count_orders", version = 1)]
struct CountOrders;

type Log = Arc<Mutex<Vec<String>>>;

fn push(log: &Log, line: String) {
    log.lock().unwrap_or_else(|p| p.into_inner()).push(line);
}

struct Cart {
    key: Key,
    qty: u32,
    log: Log,
}

#[actor(entity, mailbox = 32, passivate_after_secs = 60)]
impl Cart {
    #[on]
    async fn item_added(&mut self, e: &ItemAdded) {
        self.qty += e.qty;
        push(&self.log, format!("cart {} +{}", self.key, e.qty));
    }

    #[on(key = cart, publishes = [OrderPlaced])]
    async fn checkout(
        &mut self,
        e: CheckoutRequested,
        cx: &mut Context<Self>,
    ) -> Result<(), HandlerError> {
        push(&self.log, format!("cart {} checkout", self.key));
        cx.publish(OrderPlaced {
            cart: e.cart,
            qty: self.qty,
        })
        .await?;
        Ok(())
    }
}

struct Ledger {
    orders: Vec<(u64, u32)>,
    log: Log,
}

#[actor(mailbox = 8, restart = Transient)]
impl Ledger {
    #[started]
    async fn open(&mut self) {
        push(&self.log, "ledger started".to_owned());
    }

    #[on]
    fn order_placed(&mut self, e: &OrderPlaced) -> Result<(), String> {
        self.orders.push((e.cart, e.qty));
        Ok(())
    }

    #[reply]
    async fn count(&self, _q: &CountOrders, cx: &mut Context<Self>) -> usize {
        assert_eq!(cx.name(), "ledger");
        self.orders.len()
    }
}

struct Mailer {
    log: Log,
}

#[actor(group = 2, overflow = Backpressure)]
impl Mailer {
    #[on]
    fn order_placed(&self, e: OrderPlaced) {
        push(&self.log, format!("mail for cart {}", e.cart));
    }
}

#[tokio::test(start_paused = true)]
async fn declared_actors_handle_published_events_and_answer_asks() {
    let system = System::builder().build().unwrap();
    let log: Log = Log::default();

    let ledger = system
        .start("ledger", {
            let log = log.clone();
            move || Ledger {
                orders: Vec::new(),
                log: log.clone(),
            }
        })
        .unwrap();
    assert_eq!(ledger.gauges().capacity, 8);
    let mailers = system
        .start_group("mailer", {
            let log = log.clone();
            move || Mailer { log: log.clone() }
        })
        .unwrap();
    assert_eq!(mailers.members().len(), 2);
    let carts = system
        .start_entities("cart", {
            let log = log.clone();
            move |key: &Key| Cart {
                key: key.clone(),
                qty: 0,
                log: log.clone(),
            }
        })
        .unwrap();

    system
        .publish(ItemAdded { cart_id: 1, qty: 2 })
        .await
        .unwrap();
    system
        .publish(ItemAdded { cart_id: 2, qty: 5 })
        .await
        .unwrap();
    system
        .publish(ItemAdded { cart_id: 1, qty: 3 })
        .await
        .unwrap();
    system.settled().await;
    system.publish(CheckoutRequested { cart: 1 }).await.unwrap();
    system.settled().await;

    assert!(carts.is_live(&Key::from(1_u64)) && carts.is_live(&Key::from(2_u64)));
    let count = ledger
        .ask(CountOrders, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(count, 1);

    let mut lines = log.lock().unwrap().clone();
    lines.sort();
    assert_eq!(
        lines,
        [
            "cart 1 +2",
            "cart 1 +3",
            "cart 1 checkout",
            "cart 2 +5",
            "ledger started",
            "mail for cart 1",
        ]
    );
    system.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn the_topology_shows_declared_handlers_and_publications() {
    let system = System::builder().build().unwrap();
    let log: Log = Log::default();
    let l = log.clone();
    system
        .start("ledger", move || Ledger {
            orders: Vec::new(),
            log: l.clone(),
        })
        .unwrap();
    let l = log.clone();
    system
        .start_group("mailer", move || Mailer { log: l.clone() })
        .unwrap();
    let l = log.clone();
    system
        .start_entities("cart", move |key: &Key| Cart {
            key: key.clone(),
            qty: 0,
            log: l.clone(),
        })
        .unwrap();

    let topology = system.topology();
    for edge in [
        "ev_shop_item_added -->|keyed by default| cart",
        "ev_shop_checkout_requested -->|keyed by cart| cart",
        "cart -.->|publishes| ev_shop_order_placed",
        "ev_shop_order_placed -->|broadcast| ledger",
        "ev_shop_count_orders -->|ask| ledger",
        "ev_shop_order_placed -->|group of 2| mailer",
    ] {
        assert!(topology.contains(edge), "missing `{edge}` in\n{topology}");
    }
    system.shutdown(Duration::from_secs(1)).await;
}
