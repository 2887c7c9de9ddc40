//! Procedural macros for [mercato](https://docs.rs/mercato): declare events
//! and actors.
//!
//! This crate is re-exported by `mercato`; depend on `mercato` instead of
//! using it directly, and read the macros' documentation there
//! (`mercato::Event`, `mercato::actor`).
//!
//! Each macro is a straight line: *parse* the attributes into a model
//! (collecting every mistake instead of stopping at the first), *validate*
//! what needs the whole picture, *generate* code through absolute paths in
//! `::mercato::__private`. A macro that finds mistakes still emits the
//! user's item, plus one `compile_error!` at each offending token.

mod actor;
mod attr;
mod errors;
mod event;
#[cfg(test)]
mod snapshots;

use proc_macro::TokenStream;

/// Implements `mercato::Event` for a struct or an enum.
///
/// ```
/// use mercato::Event;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Event, Clone, Debug, Serialize, Deserialize)]
/// #[event(name = "shop.item_added", version = 1)]
/// struct ItemAdded {
///     #[event(key)] // the default routing key: what `Event::key` returns
///     cart_id: u64,
///     sku: String,
/// }
///
/// let e = ItemAdded { cart_id: 7, sku: "tea".into() };
/// assert_eq!(ItemAdded::NAME, "shop.item_added");
/// assert_eq!(e.key(), Some(mercato::Key::from(7_u64)));
/// ```
///
/// `name` (the stable wire name) and `version` (from 1) are required. The
/// key field's type must convert into `mercato::Key` (unsigned integers, strings, or
/// a type with `impl From<T> for mercato::Key`). Generic events are refused:
/// a wire name names one schema.
#[proc_macro_derive(Event, attributes(event))]
pub fn derive_event(input: TokenStream) -> TokenStream {
    event::expand(input.into()).into()
}

/// Declares an actor from its inherent `impl` block.
///
/// Methods marked `#[on]` handle events, `#[reply]` methods answer `ask`,
/// `#[started]` and `#[stopping]` are the lifecycle hooks; other methods
/// pass through. The macro writes the actor's message enum and its
/// `Message`, `Handles`, `Answers`, `Actor` and `Declared` impls, so
/// `System::start`, `start_group` or `start_entities` spawn it with its
/// options and subscribe it to what it handles.
///
/// ```
/// use mercato::{Context, Event, HandlerError, System, actor};
/// use serde::{Deserialize, Serialize};
/// use std::time::Duration;
///
/// #[derive(Event, Clone, Debug, Serialize, Deserialize)]
/// #[event(name = "shop.order_placed", version = 1)]
/// struct OrderPlaced { order_id: u64 }
///
/// #[derive(Event, Clone, Debug, Serialize, Deserialize)]
/// #[event(name = "shop.parcel_shipped", version = 1)]
/// struct ParcelShipped { order_id: u64 }
///
/// #[derive(Event, Clone, Debug, Serialize, Deserialize)]
/// #[event(name = "shop.count_shipped", version = 1)]
/// struct CountShipped;
///
/// #[derive(Default)]
/// struct Shipping { shipped: usize }
///
/// #[actor(mailbox = 64, retries = 3)]
/// impl Shipping {
///     #[on(publishes = [ParcelShipped])]
///     async fn order_placed(&mut self, e: &OrderPlaced, cx: &mut Context<Self>) -> Result<(), HandlerError> {
///         self.shipped += 1;
///         cx.publish(ParcelShipped { order_id: e.order_id }).await?;
///         Ok(())
///     }
///
///     #[reply]
///     fn count(&self, _q: &CountShipped) -> usize {
///         self.shipped
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let system = System::builder().build()?;
/// let shipping = system.start("shipping", Shipping::default)?;
/// system.publish(OrderPlaced { order_id: 1 }).await?;
/// system.settled().await;
/// assert_eq!(shipping.ask(CountShipped, Duration::from_secs(1)).await?, 1);
/// assert!(system.topology().contains("shipping -.->|publishes| ev_shop_parcel_shipped"));
/// # Ok(()) }
/// ```
///
/// Options, all optional: `mailbox = N` (capacity), `overflow = Backpressure |
/// Reject | DropOldest | DropNewest`, `restart = Permanent | Transient |
/// Temporary`, `retries = N`, `entity` (one instance per key) or `group = N`
/// (a pool of N), `backoff_ms = N` and `backoff_max_ms = N` (the first and
/// the longest wait between retries and restarts; what is not written keeps
/// the configured default), `ask_in_place = false` (every handler runs in
/// the actor's own task, never in an asker's; not for entities), and for
/// entities `passivate_after_secs = N`.
///
/// A handler takes `&mut self` or `&self`, one event as `&E` or `E` (then
/// `E: Clone`: it is cloned out of a possibly shared envelope), and
/// optionally `&mut Context<Self>`; it may be `async` or not. An `#[on]`
/// handler returns `()` or `Result<(), E>` with `E: Into<HandlerError>`; a
/// `#[reply]` handler returns the reply (a `Result` there is the reply
/// itself, not a failure). The message's ids and attempt are on the
/// context: `cx.message_id()`, `cx.correlation_id()`, `cx.attempt()`. In an entity actor,
/// `#[on(key = field)]` routes by that field of the event instead of its
/// `#[event(key)]`. Generic actors are refused.
#[proc_macro_attribute]
pub fn actor(attr: TokenStream, item: TokenStream) -> TokenStream {
    actor::expand(attr.into(), item.into()).into()
}

/// Marks an event handler inside an `#[actor]` impl block; alone, an error.
#[proc_macro_attribute]
pub fn on(attr: TokenStream, item: TokenStream) -> TokenStream {
    outside_actor(attr::ON, attr, item)
}

/// Marks a query handler inside an `#[actor]` impl block; alone, an error.
#[proc_macro_attribute]
pub fn reply(attr: TokenStream, item: TokenStream) -> TokenStream {
    outside_actor(attr::REPLY, attr, item)
}

/// Marks the start hook inside an `#[actor]` impl block; alone, an error.
#[proc_macro_attribute]
pub fn started(attr: TokenStream, item: TokenStream) -> TokenStream {
    outside_actor(attr::STARTED, attr, item)
}

/// Marks the stop hook inside an `#[actor]` impl block; alone, an error.
#[proc_macro_attribute]
pub fn stopping(attr: TokenStream, item: TokenStream) -> TokenStream {
    outside_actor(attr::STOPPING, attr, item)
}

/// `#[on]` and friends reach here only when no `#[actor]` took them first.
fn outside_actor(name: &str, _attr: TokenStream, item: TokenStream) -> TokenStream {
    let item = proc_macro2::TokenStream::from(item);
    let error = syn::Error::new(
        proc_macro2::Span::call_site(),
        format!(
            "`#[{name}]` only works on a method of an `impl` block marked `#[mercato::actor]`: \
             put `#[actor]` on the impl block (`#[actor] impl Cart {{ #[{name}] ... }}`)"
        ),
    )
    .to_compile_error();
    quote::quote! { #item #error }.into()
}
