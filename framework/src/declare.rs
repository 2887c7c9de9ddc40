//! What an actor declares about itself: its options, how it is deployed,
//! which events it handles and publishes. The `#[actor]` macro writes this;
//! the system uses it to spawn, subscribe and draw the topology.
//!
//! [`System::start`], [`System::start_group`] and [`System::start_entities`]
//! spawn a declared actor with its declared options (the system's overrides
//! by name still apply on top) and subscribe it to every event it handles.
//! [`System::topology`] renders who handles and publishes what as a
//! Mermaid flowchart.
//!
//! ```
//! use mercato::declare::{Declared, Deployment, HandlerInfo};
//! use mercato::{Actor, ActorConfig, Addr, Context, Envelope, Event, Handles, HandlerError, System, SystemError};
//! # use serde::{Deserialize, Serialize};
//! # #[derive(Debug, Serialize, Deserialize)] struct OrderPlaced;
//! # impl Event for OrderPlaced { const NAME: &'static str = "shop.order_placed"; const VERSION: u32 = 1; }
//! # #[derive(Debug, Serialize, Deserialize)] struct ParcelShipped;
//! # impl Event for ParcelShipped { const NAME: &'static str = "shop.parcel_shipped"; const VERSION: u32 = 1; }
//! struct Shipping;
//! impl Actor for Shipping {
//!     type Msg = Envelope<OrderPlaced>;
//!     async fn handle(&mut self, _m: &mut Envelope<OrderPlaced>, cx: &mut Context<Self>) -> Result<(), HandlerError> {
//!         cx.publish(ParcelShipped).await?;
//!         Ok(())
//!     }
//! }
//! impl Handles<OrderPlaced> for Shipping { fn wrap(e: Envelope<OrderPlaced>) -> Envelope<OrderPlaced> { e } }
//!
//! // What `#[actor(mailbox = 64)]` with `#[on(publishes = [ParcelShipped])]` writes:
//! impl Declared for Shipping {
//!     const DEPLOYMENT: Deployment = Deployment::Single;
//!     const HANDLERS: &'static [HandlerInfo] = &[HandlerInfo {
//!         event: "shop.order_placed",
//!         key: None,
//!         reply: false,
//!         publishes: &["shop.parcel_shipped"],
//!     }];
//!     fn configure(config: ActorConfig) -> ActorConfig { config.capacity(64) }
//!     fn subscribe(system: &System, addr: &Addr<Self>) -> Result<(), SystemError> {
//!         system.subscribe::<OrderPlaced, _>(addr)
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let system = System::builder().build()?;
//! let shipping = system.start("shipping", || Shipping)?;
//! assert_eq!(shipping.gauges().capacity, 64);
//! assert!(system.topology().contains("shop.order_placed"));
//! # Ok(()) }
//! ```

use std::fmt::Write as _;

use crate::actor::{Actor, Addr};
use crate::bus::{Group, SubscriptionKind};
use crate::entity::Entities;
use crate::error::SystemError;
use crate::system::{ActorConfig, System};

/// How a declared actor is deployed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Deployment {
    /// One actor; its handled events are broadcast subscriptions.
    Single,
    /// One entity per key; its handled events are keyed subscriptions.
    Entity,
    /// A pool of this many competing members.
    Group(usize),
}

/// One handler of a declared actor, for the topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandlerInfo {
    /// The handled event's wire name.
    pub event: &'static str,
    /// For an entity: the field the key is taken from (`None`: the event's default key).
    pub key: Option<&'static str>,
    /// Whether it answers `ask` (a `#[reply]` handler).
    pub reply: bool,
    /// The wire names of the events it publishes.
    pub publishes: &'static [&'static str],
}

/// An actor that declares its options, deployment and handlers; written by
/// `#[actor]`. See the [module](self) docs.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a declared actor",
    label = "`System::start*` needs an actor declared with `#[mercato::actor]`",
    note = "put `#[mercato::actor]` on the actor's `impl` block, or spawn it with `System::spawn` and subscribe it by hand"
)]
pub trait Declared: Actor {
    /// How it is deployed.
    const DEPLOYMENT: Deployment;
    /// Its handlers.
    const HANDLERS: &'static [HandlerInfo];

    /// Applies the declared options (mailbox, overflow, restart, retries…).
    fn configure(config: ActorConfig) -> ActorConfig {
        config
    }

    /// Subscribes a single actor to every event it handles (broadcast).
    fn subscribe(system: &System, addr: &Addr<Self>) -> Result<(), SystemError> {
        let _ = (system, addr);
        Ok(())
    }

    /// Subscribes a group to every event it handles.
    fn subscribe_group(system: &System, group: &Group<Self>) -> Result<(), SystemError> {
        let _ = (system, group);
        Ok(())
    }

    /// Subscribes an entity kind to every event it handles, by key.
    fn subscribe_entities(system: &System, entities: &Entities<Self>) -> Result<(), SystemError> {
        let _ = (system, entities);
        Ok(())
    }
}

impl System {
    /// Spawns a declared actor with its declared options and subscribes it.
    pub fn start<A: Declared, F>(&self, name: &str, factory: F) -> Result<Addr<A>, SystemError>
    where
        F: Fn() -> A + Send + Sync + 'static,
    {
        expect_deployment::<A>(name, Deployment::Single, "start")?;
        let (addr, start) = self.make_with(name, A::configure, factory)?;
        self.declare::<A>(name);
        // Subscribed before `started` runs, so that what it publishes
        // reaches this actor too. (A failed subscription still starts it.)
        let subscribed = A::subscribe(self, &addr);
        start.run();
        subscribed?;
        Ok(addr)
    }

    /// Spawns a declared group (`#[actor(group = N)]`) and subscribes it.
    pub fn start_group<A: Declared, F>(
        &self,
        name: &str,
        factory: F,
    ) -> Result<Group<A>, SystemError>
    where
        F: Fn() -> A + Send + Sync + 'static,
    {
        let Deployment::Group(size) = A::DEPLOYMENT else {
            return Err(wrong_deployment::<A>(name, "start_group"));
        };
        let (group, starts) = self.make_group_with(name, size, A::configure, factory)?;
        self.declare::<A>(name);
        let subscribed = A::subscribe_group(self, &group);
        starts.into_iter().for_each(crate::runtime::Start::run);
        subscribed?;
        Ok(group)
    }

    /// Makes a declared entity kind (`#[actor(entity)]`) and subscribes it.
    pub fn start_entities<A: Declared, F>(
        &self,
        name: &str,
        factory: F,
    ) -> Result<Entities<A>, SystemError>
    where
        F: Fn(&crate::Key) -> A + Send + Sync + 'static,
    {
        expect_deployment::<A>(name, Deployment::Entity, "start_entities")?;
        let entities = self.entities_with(name, A::configure, factory)?;
        self.declare::<A>(name);
        A::subscribe_entities(self, &entities)?;
        Ok(entities)
    }

    /// The topology as a Mermaid flowchart: each started actor, the events
    /// it handles (with the subscription kind and key) and the events it
    /// publishes. Events are drawn as rounded nodes, actors as boxes.
    pub fn topology(&self) -> String {
        let declared = self.declared();
        let subscriptions = self.subscriptions();
        let mut out = String::from("flowchart LR\n");
        let id = |s: &str| s.replace(|c: char| !c.is_ascii_alphanumeric(), "_");
        let mut events: Vec<&str> = Vec::new();
        for (_, handlers) in &declared {
            for h in handlers.iter() {
                events.push(h.event);
                events.extend(h.publishes.iter().copied());
            }
        }
        events.sort_unstable();
        events.dedup();
        for event in &events {
            let _ = writeln!(out, "    ev_{}([\"{event}\"])", id(event));
        }
        for (actor, handlers) in &declared {
            let _ = writeln!(out, "    {}[\"{actor}\"]", id(actor));
            for h in handlers.iter() {
                let kind = subscriptions
                    .iter()
                    .find(|s| s.event == h.event && s.subscriber == *actor)
                    .map(|s| match &s.kind {
                        SubscriptionKind::Broadcast => "broadcast".to_owned(),
                        SubscriptionKind::Keyed { key } => format!("keyed by {key}"),
                        SubscriptionKind::Group { size } => format!("group of {size}"),
                    })
                    .unwrap_or_else(|| {
                        if h.reply {
                            "ask".to_owned()
                        } else {
                            "direct".to_owned()
                        }
                    });
                let _ = writeln!(out, "    ev_{} -->|{kind}| {}", id(h.event), id(actor));
                for p in h.publishes {
                    let _ = writeln!(out, "    {} -.->|publishes| ev_{}", id(actor), id(p));
                }
            }
        }
        out
    }
}

fn expect_deployment<A: Declared>(
    name: &str,
    wanted: Deployment,
    method: &'static str,
) -> Result<(), SystemError> {
    if A::DEPLOYMENT == wanted {
        Ok(())
    } else {
        Err(wrong_deployment::<A>(name, method))
    }
}

fn wrong_deployment<A: Declared>(name: &str, method: &'static str) -> SystemError {
    let fix = match A::DEPLOYMENT {
        Deployment::Single => "System::start",
        Deployment::Entity => "System::start_entities",
        Deployment::Group(_) => "System::start_group",
    };
    SystemError::WrongDeployment {
        actor: name.to_owned(),
        method,
        fix,
    }
}
