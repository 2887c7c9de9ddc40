//! Every handler shape `#[actor]` accepts, in the three deployments.
#![deny(warnings)]

use mercato::{Context, Event, HandlerError, actor};
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
    cart: String,
}

#[derive(Event, Debug, Clone, Serialize, Deserialize)]
#[event(name = "shop.order_placed", version = 2)]
struct OrderPlaced {
    order_id: u64,
}

#[derive(Event, Debug, Clone, Serialize, Deserialize)]
#[event(name = "shop.get_cart", version = 1)]
struct GetCart;

#[derive(Event, Debug, Clone, Serialize, Deserialize)]
#[event(name = "shop.payment", version = 1)]
enum Payment {
    Authorized { order_id: u64 },
    Declined(String),
}

#[derive(Debug)]
struct MyError;
impl std::fmt::Display for MyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("my error")
    }
}
impl std::error::Error for MyError {}

#[derive(Default)]
struct Cart {
    qty: u32,
}

#[actor(entity, mailbox = 16, overflow = Reject, restart = Transient, retries = 0, passivate_after_secs = 30)]
impl Cart {
    /// Async, by reference, no context, `()`.
    #[on]
    async fn item_added(&mut self, e: &ItemAdded) {
        self.qty += e.qty;
    }

    /// Sync, by value, with context, `Result` with a custom error, keyed by
    /// another field.
    #[on(key = cart, publishes = [OrderPlaced])]
    fn checkout(&mut self, e: CheckoutRequested, cx: &mut Context<Self>) -> Result<(), MyError> {
        let _ = (e.cart, cx.name());
        Ok(())
    }

    /// `&self`, by value, async.
    #[reply]
    async fn view(&self, _q: GetCart) -> u32 {
        self.qty
    }

    /// Not a handler: passes through.
    fn total(&self) -> u32 {
        self.qty
    }

    #[started]
    async fn start(&mut self, cx: &mut Context<Self>) -> Result<(), HandlerError> {
        let _ = cx;
        Ok(())
    }

    #[stopping]
    async fn stop(&mut self) {}
}

struct Mailer;

#[actor(group = 3, backoff_ms = 5, backoff_max_ms = 100, ask_in_place = false)]
impl Mailer {
    /// Context first, event second; `Result` with a `String` error.
    #[mercato::on]
    async fn order_placed(&mut self, cx: &mut Context<Self>, e: &OrderPlaced) -> Result<(), String> {
        let _ = (cx, e.order_id);
        Ok(())
    }

    #[on]
    fn payment(&self, e: &Payment) {
        match e {
            Payment::Authorized { order_id } => { let _ = order_id; }
            Payment::Declined(why) => { let _ = why; }
        }
    }
}

struct Audit;

#[actor]
impl Audit {
    #[on]
    async fn item_added(&mut self, _e: ItemAdded, _cx: &mut Context<Self>) -> Result<(), HandlerError> {
        Ok(())
    }

    #[reply]
    fn orders(&mut self, _q: &GetCart) -> Vec<u64> {
        Vec::new()
    }
}

/// An actor without handlers still declares itself.
struct Idle;

#[actor]
impl Idle {}

fn main() {
    use mercato::declare::{Declared, Deployment};
    assert_eq!(<Cart as Declared>::DEPLOYMENT, Deployment::Entity);
    assert_eq!(<Mailer as Declared>::DEPLOYMENT, Deployment::Group(3));
    assert_eq!(<Audit as Declared>::DEPLOYMENT, Deployment::Single);
    assert_eq!(<Cart as Declared>::HANDLERS.len(), 3);
    assert_eq!(<Cart as Declared>::HANDLERS[1].key, Some("cart"));
    assert_eq!(<Cart as Declared>::HANDLERS[1].publishes, &["shop.order_placed"]);
    assert!(<Cart as Declared>::HANDLERS[2].reply);
    assert_eq!(<Idle as Declared>::HANDLERS.len(), 0);
    assert_eq!(ItemAdded { cart_id: 7, qty: 1 }.key(), Some(mercato::Key::Int(7)));
    assert_eq!(CheckoutRequested { cart: "c".into() }.key(), None);
    assert_eq!(<OrderPlaced as Event>::VERSION, 2);
    assert_eq!(Cart::default().total(), 0);
    let config = <Cart as Declared>::configure(mercato::ActorConfig::default());
    assert_eq!(config.mailbox_config().capacity(), 16);
    assert_eq!(config.mailbox_config().overflow(), mercato::Overflow::Reject);
    assert_eq!(config.passivate_after_value(), std::time::Duration::from_secs(30));
    let _ = (Mailer, Audit, Idle, GetCart, Payment::Declined(String::new()));
}
