//! Two actors exchange events, and a supervised restart is visible.
//!
//! Run it with:
//!
//! ```text
//! cargo run -p example-hello
//! ```
//!
//! A `Cart` takes items and, at checkout, publishes `OrderPlaced`; an
//! `Order` actor, subscribed to it, books the order. Neither holds the
//! other's address: `System::start` subscribes each actor to the events its
//! `#[on]` handlers take. The order actor has a bug: the first time it sees
//! 13 items it panics. Its supervisor builds a fresh instance from the
//! factory and the order is retried on it; the orders queued behind it are
//! handled afterwards, in order. The program asks the order actor for its
//! count, shuts down gracefully, prints the report and draws the topology;
//! it exits with an error if the count, the dead letters or the shutdown
//! report are not what that story makes them.
//!
//! Events are declared with `#[derive(Event)]` and actors with
//! `#[mercato::actor]`; the book's "Actors" chapter shows what they write.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use mercato::{Context, Event, HandlerError, System, actor};
use serde::{Deserialize, Serialize};

#[derive(Event, Debug, Serialize, Deserialize)]
#[event(name = "shop.item_added", version = 1)]
struct ItemAdded {
    sku: String,
    qty: u32,
}

#[derive(Event, Debug, Serialize, Deserialize)]
#[event(name = "shop.checkout_requested", version = 1)]
struct CheckoutRequested;

#[derive(Event, Debug, Serialize, Deserialize)]
#[event(name = "shop.order_placed", version = 1)]
struct OrderPlaced {
    order_no: u32,
    items: u32,
}

/// A query, answered by the order actor's `#[reply]` handler.
#[derive(Event, Debug, Serialize, Deserialize)]
#[event(name = "shop.count_orders", version = 1)]
struct CountOrders;

// ANCHOR: cart
/// The cart: collects items, places an order at checkout.
#[derive(Default)]
struct Cart {
    items: u32,
    orders: u32,
}

#[actor]
impl Cart {
    #[on]
    fn item_added(&mut self, e: &ItemAdded) {
        self.items += e.qty;
        println!("cart : {} x {} added ({} items)", e.qty, e.sku, self.items);
    }

    #[on(publishes = [OrderPlaced])]
    async fn checkout(
        &mut self,
        _e: &CheckoutRequested,
        cx: &mut Context<Self>,
    ) -> Result<(), HandlerError> {
        self.orders += 1;
        let placed = OrderPlaced {
            order_no: self.orders,
            items: std::mem::take(&mut self.items),
        };
        println!(
            "cart : checkout -> order #{} with {} items",
            placed.order_no, placed.items
        );
        // Published from inside a handler: the order keeps this checkout's
        // correlation id, and its causation id is the checkout's id.
        cx.publish(placed).await?;
        Ok(())
    }
}
// ANCHOR_END: cart

// ANCHOR: order
/// The order book. Has a bug that a restart works around.
struct Order {
    instance: u32,
    placed: u32,
}

static INSTANCES: AtomicU32 = AtomicU32::new(0);
static BUG_TRIGGERED: AtomicBool = AtomicBool::new(false);

impl Order {
    /// The factory: builds the first instance, and a fresh one after a panic.
    fn new() -> Self {
        Order {
            instance: INSTANCES.fetch_add(1, Ordering::SeqCst) + 1,
            placed: 0,
        }
    }
}

#[actor(mailbox = 16)]
impl Order {
    /// Runs before the first message of every instance, restarted ones too.
    #[started]
    fn open(&mut self, cx: &mut Context<Self>) {
        match self.instance {
            1 => println!("order: started as `{}`", cx.name()),
            n => println!("order: restarted: instance #{n} built by the factory"),
        }
    }

    #[on]
    fn order_placed(&mut self, e: &OrderPlaced) {
        if e.items == 13 && !BUG_TRIGGERED.swap(true, Ordering::SeqCst) {
            panic!("unlucky order #{} ({} items)", e.order_no, e.items);
        }
        self.placed += 1;
        println!(
            "order: #{} placed with {} items (instance #{})",
            e.order_no, e.items, self.instance
        );
    }

    #[reply]
    fn count(&self, _q: &CountOrders) -> u32 {
        self.placed
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
        // Colours only on a terminal, so that piped output stays plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // ANCHOR_END: tracing
    // The panic hook would print a backtrace hint; the supervisor's log says enough.
    std::panic::set_hook(Box::new(|info| eprintln!("panic: {info}")));

    // ANCHOR: start
    let system = System::builder().rng_seed(7).build()?;
    // Spawned with its declared options, subscribed to `OrderPlaced`.
    let order = system.start("order", Order::new)?;
    // Subscribed to `ItemAdded` and `CheckoutRequested`.
    system.start("cart", Cart::default)?;
    // ANCHOR_END: start

    for (sku, qty) in [("tea", 2), ("mug", 1)] {
        system
            .publish(ItemAdded {
                sku: sku.into(),
                qty,
            })
            .await?;
    }
    system.publish(CheckoutRequested).await?;
    system
        .publish(ItemAdded {
            sku: "biscuits".into(),
            qty: 13,
        })
        .await?;
    system.publish(CheckoutRequested).await?;
    system
        .publish(ItemAdded {
            sku: "honey".into(),
            qty: 1,
        })
        .await?;
    system.publish(CheckoutRequested).await?;

    system.settled().await;
    let placed = order.ask(CountOrders, Duration::from_secs(1)).await?;
    let dead_letters = system.dead_letters().counts().total();
    // The restarted instance started from its factory: it counts only the
    // orders placed since the restart.
    println!(
        "main : the order actor counted {placed} orders since its restart; dead letters: {dead_letters}"
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
    // Paste into any Mermaid renderer to see who handles and publishes what.
    print!("main : topology\n{}", system.topology());

    // The run checks its own outcome, so that a failure shows in the exit
    // status: the restarted instance placed the retried order #2 and then
    // #3, nothing was dead-lettered, and nothing was left behind.
    let complete = report.settled && report.undelivered.is_empty() && report.in_flight.is_empty();
    if placed != 2 || dead_letters != 0 || !complete {
        return Err(format!(
            "unexpected outcome: {placed} orders counted (expected 2), \
             {dead_letters} dead letters (expected 0), shutdown settled: {}, \
             undelivered: {}, in flight: {}",
            report.settled,
            report.undelivered.len(),
            report.in_flight.len()
        )
        .into());
    }
    Ok(())
}
