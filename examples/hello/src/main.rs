//! Two actors exchange events, and a supervised restart is visible.
//!
//! Run it with:
//!
//! ```text
//! cargo run -p example-hello
//! ```
//!
//! A `Cart` takes items and, at checkout, tells an `Order` actor that an
//! order was placed. The order actor has a bug: the first time it sees a
//! quantity of 13 it panics. Its supervisor restarts it from its factory and
//! the message is retried on the fresh instance; the orders queued behind
//! it are handled afterwards, in order. The program ends with a graceful
//! shutdown and prints the report.
//!
//! The handler impls are written by hand here; the `#[actor]` macro will
//! write them for you.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mercato::{
    Actor, Addr, Answers, AnyPayload, Context, DeadLetterReason, Envelope, Event, HandlerError,
    Handles, Message, Meta, Request, System,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct ItemAdded {
    sku: String,
    qty: u32,
}

impl Event for ItemAdded {
    const NAME: &'static str = "shop.item_added";
    const VERSION: u32 = 1;
}

#[derive(Debug, Serialize, Deserialize)]
struct CheckoutRequested;

impl Event for CheckoutRequested {
    const NAME: &'static str = "shop.checkout_requested";
    const VERSION: u32 = 1;
}

#[derive(Debug, Serialize, Deserialize)]
struct OrderPlaced {
    order_no: u32,
    items: u32,
}

impl Event for OrderPlaced {
    const NAME: &'static str = "shop.order_placed";
    const VERSION: u32 = 1;
}

#[derive(Debug, Serialize, Deserialize)]
struct CountOrders;

impl Event for CountOrders {
    const NAME: &'static str = "shop.count_orders";
    const VERSION: u32 = 1;
}

/// The cart: collects items, places an order at checkout.
struct Cart {
    order: Addr<Order>,
    items: u32,
    orders: u32,
}

enum CartMsg {
    ItemAdded(Envelope<ItemAdded>),
    Checkout(Envelope<CheckoutRequested>),
}

impl Message for CartMsg {
    fn meta(&self) -> &Meta {
        match self {
            CartMsg::ItemAdded(e) => e.meta(),
            CartMsg::Checkout(e) => e.meta(),
        }
    }
    fn meta_mut(&mut self) -> &mut Meta {
        match self {
            CartMsg::ItemAdded(e) => e.meta_mut(),
            CartMsg::Checkout(e) => e.meta_mut(),
        }
    }
    fn into_dead_letter(
        self,
        reason: DeadLetterReason,
        error: Option<&str>,
    ) -> Arc<dyn AnyPayload> {
        match self {
            CartMsg::ItemAdded(e) => e.into_dead_letter(reason, error),
            CartMsg::Checkout(e) => e.into_dead_letter(reason, error),
        }
    }
}

impl Handles<ItemAdded> for Cart {
    fn wrap(e: Envelope<ItemAdded>) -> CartMsg {
        CartMsg::ItemAdded(e)
    }
}

impl Handles<CheckoutRequested> for Cart {
    fn wrap(e: Envelope<CheckoutRequested>) -> CartMsg {
        CartMsg::Checkout(e)
    }
}

impl Actor for Cart {
    type Msg = CartMsg;

    async fn handle(
        &mut self,
        msg: &mut CartMsg,
        _cx: &mut Context<Self>,
    ) -> Result<(), HandlerError> {
        match msg {
            CartMsg::ItemAdded(e) => {
                self.items += e.qty;
                println!("cart : {} x {} added ({} items)", e.qty, e.sku, self.items);
            }
            CartMsg::Checkout(_) => {
                self.orders += 1;
                let placed = OrderPlaced {
                    order_no: self.orders,
                    items: std::mem::take(&mut self.items),
                };
                println!(
                    "cart : checkout -> order #{} with {} items",
                    placed.order_no, placed.items
                );
                // Sent from inside a handler: the order keeps this checkout's
                // correlation id, and its causation id is the checkout's id.
                self.order.tell(placed).await?;
            }
        }
        Ok(())
    }
}

// ANCHOR: order
/// The order book. Has a bug that a restart works around.
#[derive(Default)]
struct Order {
    placed: u32,
}

static BUG_TRIGGERED: AtomicBool = AtomicBool::new(false);

enum OrderMsg {
    Placed(Envelope<OrderPlaced>),
    Count(Request<CountOrders, u32>),
}

impl Message for OrderMsg {
    fn meta(&self) -> &Meta {
        match self {
            OrderMsg::Placed(e) => e.meta(),
            OrderMsg::Count(r) => r.meta(),
        }
    }
    fn meta_mut(&mut self) -> &mut Meta {
        match self {
            OrderMsg::Placed(e) => e.meta_mut(),
            OrderMsg::Count(r) => r.meta_mut(),
        }
    }
    fn into_dead_letter(
        self,
        reason: DeadLetterReason,
        error: Option<&str>,
    ) -> Arc<dyn AnyPayload> {
        match self {
            OrderMsg::Placed(e) => e.into_dead_letter(reason, error),
            OrderMsg::Count(r) => r.into_dead_letter(reason, error),
        }
    }
}

impl Handles<OrderPlaced> for Order {
    fn wrap(e: Envelope<OrderPlaced>) -> OrderMsg {
        OrderMsg::Placed(e)
    }
}

impl Answers<CountOrders> for Order {
    type Reply = u32;
    fn wrap(r: Request<CountOrders, u32>) -> OrderMsg {
        OrderMsg::Count(r)
    }
}

impl Actor for Order {
    type Msg = OrderMsg;

    async fn started(&mut self, cx: &mut Context<Self>) -> Result<(), HandlerError> {
        println!("order: started as `{}`", cx.name());
        Ok(())
    }

    async fn restarted(&mut self, why: &str, _cx: &mut Context<Self>) -> Result<(), HandlerError> {
        println!("order: restarted from its factory after: {why}");
        Ok(())
    }

    async fn handle(
        &mut self,
        msg: &mut OrderMsg,
        _cx: &mut Context<Self>,
    ) -> Result<(), HandlerError> {
        match msg {
            OrderMsg::Placed(e) => {
                if e.items == 13 && !BUG_TRIGGERED.swap(true, Ordering::SeqCst) {
                    panic!("unlucky order #{} ({} items)", e.order_no, e.items);
                }
                self.placed += 1;
                println!(
                    "order: #{} placed with {} items (attempt {}, correlation {})",
                    e.order_no,
                    e.items,
                    e.meta().attempt(),
                    e.meta().correlation_id()
                );
            }
            OrderMsg::Count(r) => {
                let placed = self.placed;
                r.reply(placed);
            }
        }
        Ok(())
    }
}
// ANCHOR_END: order

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // ANCHOR: tracing
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "mercato=warn".into()),
        )
        .with_target(false)
        .init();
    // ANCHOR_END: tracing
    // The panic hook would print a backtrace hint; the supervisor's log says enough.
    std::panic::set_hook(Box::new(|info| eprintln!("panic: {info}")));

    let system = System::builder().rng_seed(7).build()?;
    let order: Addr<Order> = system.spawn("order", Order::default)?;
    let order_for_cart = order.clone();
    let cart: Addr<Cart> = system.spawn("cart", move || Cart {
        order: order_for_cart.clone(),
        items: 0,
        orders: 0,
    })?;

    for (sku, qty) in [("tea", 2), ("mug", 1)] {
        cart.tell(ItemAdded {
            sku: sku.into(),
            qty,
        })
        .await?;
    }
    cart.tell(CheckoutRequested).await?;
    cart.tell(ItemAdded {
        sku: "biscuits".into(),
        qty: 13,
    })
    .await?;
    cart.tell(CheckoutRequested).await?;
    cart.tell(ItemAdded {
        sku: "honey".into(),
        qty: 1,
    })
    .await?;
    cart.tell(CheckoutRequested).await?;

    system.settled().await;
    let placed = order.ask(CountOrders, Duration::from_secs(1)).await?;
    // The restarted instance started from its factory: it counts only the
    // orders placed since the restart.
    println!(
        "main : the order actor counted {placed} orders since its restart; dead letters: {}",
        system.dead_letters().counts().total()
    );
    for m in system.mailboxes() {
        println!(
            "main : mailbox {:<5} processed {} (high water {})",
            m.actor, m.processed, m.high_water
        );
    }

    let report = system.shutdown(Duration::from_secs(5)).await;
    println!(
        "main : shut down (settled: {}, undelivered: {}, in flight: {})",
        report.settled,
        report.undelivered.len(),
        report.in_flight.len()
    );
    Ok(())
}
