//! The event bus: publish a fact, and every interested actor gets it.
//!
//! A publisher does not know its subscribers. [`System::publish`] looks up
//! the routes of the event's type and hands each a copy. Routing runs in the
//! publisher's own task, so there is no central router to become a
//! bottleneck. A publish to several subscriptions allocates one shared
//! payload (an `Arc`) however many there are; a publish to a single one
//! hands over the envelope as it is and allocates nothing.
//!
//! Three kinds of subscription:
//!
//! | kind | who gets an event | made with |
//! | --- | --- | --- |
//! | broadcast | every subscribed actor | [`System::subscribe`] |
//! | keyed | the one entity of the event's key, activated on demand | [`System::subscribe_keyed`] |
//! | group | one member of a pool of identical actors | [`System::subscribe_group`] |
//!
//! Back-pressure reaches the publisher: each copy goes through its
//! subscriber's mailbox and that mailbox's overflow policy. Under
//! `Backpressure` the publisher waits for room (from inside a handler, at
//! most the send deadline, after which the copy is dead-lettered). A copy a
//! subscriber refuses (`Reject`, a stopped actor, the deadline) is
//! dead-lettered, and the publish returns [`PublishError::Refused`] naming
//! the subscribers that refused; the other copies were delivered. A copy
//! dropped by `DropOldest`/`DropNewest` is dead-lettered too, as the policy
//! says, and does not fail the publish. An event nobody subscribes to is a
//! dead letter with reason `NoSubscriber`.
//!
//! Ordering: events from one publisher reach each broadcast subscriber, and
//! each keyed entity, in publish order. A group keeps the order per member
//! but not across members: two events may be handled at once by two members.
//!
//! Inside a handler, a publish keeps the handled message's correlation id
//! and takes its id as causation id.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::RwLock;

use crate::actor::{Actor, Addr, Handles};
use crate::dead_letters::{DeadLetter, DeadLetterReason};
use crate::entity::Entities;
use crate::event::{AckHandle, Acknowledge, Envelope, Event, EventId, Key, Meta};
use crate::mailbox::{Overflow, Refused};
use crate::runtime::{Cell, SendError, link_to_handled};
use crate::system::System;

/// How a subscription routes an event.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubscriptionKind {
    /// Every subscriber gets a copy.
    Broadcast,
    /// One entity per key; `key` names the key (a field, or `"default"`).
    Keyed {
        /// What the key is taken from.
        key: String,
    },
    /// One member of a pool of `size` gets it.
    Group {
        /// The pool's size.
        size: usize,
    },
}

/// One row of the routing table, for inspection and topology.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Subscription {
    /// The event's wire name.
    pub event: &'static str,
    /// The subscriber: an actor, an entity kind or a group.
    pub subscriber: String,
    /// How it is routed.
    pub kind: SubscriptionKind,
}

/// A subscriber that refused its copy of a published event.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Refusal {
    /// The subscriber (actor, entity or group name).
    pub subscriber: String,
    /// Why its copy was dead-lettered.
    pub reason: DeadLetterReason,
}

/// What a publish did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Published {
    /// How many subscribers took a copy (queued, or handled by their
    /// drop policy).
    pub delivered: usize,
}

/// Why a publish did not reach every subscriber.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum PublishError<E> {
    /// Some subscribers refused their copy; those copies are dead letters.
    #[error("{} of {} subscribers refused the event; their copies were dead-lettered: {}", .refused.len(), .refused.len() + .delivered, refusal_list(.refused))]
    Refused {
        /// The subscribers that refused, and why.
        refused: Vec<Refusal>,
        /// How many took their copy.
        delivered: usize,
    },
    /// The system is shutting down and takes no new events from outside its
    /// actors; the envelope is handed back.
    #[error("the actor system is shutting down and takes no new events from outside its actors")]
    ShuttingDown(Envelope<E>),
}

fn refusal_list(refused: &[Refusal]) -> String {
    refused
        .iter()
        .map(|r| format!("{} ({})", r.subscriber, r.reason))
        .collect::<Vec<_>>()
        .join(", ")
}

impl<E: fmt::Debug> fmt::Debug for PublishError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PublishError::Refused { refused, delivered } => f
                .debug_struct("Refused")
                .field("refused", refused)
                .field("delivered", delivered)
                .finish(),
            PublishError::ShuttingDown(e) => f.debug_tuple("ShuttingDown").field(e).finish(),
        }
    }
}

/// What a route did with a copy, without waiting.
pub(crate) enum Offer<E> {
    /// Queued (or handled by a drop policy).
    Taken,
    /// Refused and dead-lettered.
    Refused(DeadLetterReason),
    /// Full under `Backpressure`: wait with [`Route::wait`].
    Full(Envelope<E>),
}

type Wait<'a> = Pin<Box<dyn Future<Output = Result<(), DeadLetterReason>> + Send + 'a>>;

/// One subscription of event `E`.
pub(crate) trait Route<E: Event>: Send + Sync + 'static {
    fn subscription(&self) -> Subscription;
    /// Hands over a copy, made from the published parts, if that needs no
    /// waiting.
    fn offer(&self, meta: &Meta, payload: &Arc<E>) -> Offer<E>;
    /// Hands over the published envelope itself (the only route: no copy,
    /// no shared payload) if that needs no waiting.
    fn offer_one(&self, envelope: Envelope<E>) -> Offer<E>;
    /// Waits for room (the slow path; allocates its future).
    fn wait(&self, envelope: Envelope<E>) -> Wait<'_>;
    /// Whether an offer never waits for room (a policy other than
    /// `Backpressure`): a loop of publishes to this route has no wait of
    /// its own to yield at.
    fn never_waits(&self) -> bool;
}

/// The routes of one event type, and whether any of them never waits for
/// room (known when a route is added, so a publish need not ask each).
struct RouteSet<E: Event> {
    routes: Vec<Arc<dyn Route<E>>>,
    never_waits: bool,
}

impl<E: Event> Default for RouteSet<E> {
    fn default() -> Self {
        RouteSet {
            routes: Vec::new(),
            never_waits: false,
        }
    }
}

type Routes<E> = Arc<RouteSet<E>>;

/// Hashes a `TypeId` by what it already is, a hash the compiler made: the
/// routing table is read on every publish, and its keys are types, which no
/// outside input chooses (so nothing to defend against, unlike entity keys).
#[derive(Default, Clone, Copy)]
struct TypeIdHash;

impl std::hash::BuildHasher for TypeIdHash {
    type Hasher = TypeIdHasher;
    fn build_hasher(&self) -> TypeIdHasher {
        TypeIdHasher(0)
    }
}

/// The hasher of [`TypeIdHash`]: folds what `TypeId` writes into 64 bits.
#[derive(Default)]
struct TypeIdHasher(u64);

impl std::hash::Hasher for TypeIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_ne_bytes(word))
                .wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_u64(&mut self, value: u64) {
        self.0 = (self.0.rotate_left(5) ^ value).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_u128(&mut self, value: u128) {
        self.write_u64(value as u64);
        self.write_u64((value >> 64) as u64);
    }
}

/// The routing table: event type → its routes. Read on every publish,
/// written on subscribe (copy-on-write).
#[derive(Default)]
pub(crate) struct Bus {
    table: RwLock<HashMap<TypeId, Box<dyn Any + Send + Sync>, TypeIdHash>>,
    subscriptions: RwLock<Vec<Subscription>>,
}

impl Bus {
    fn routes<E: Event>(&self) -> Option<Routes<E>> {
        let table = self.table.read();
        table
            .get(&TypeId::of::<E>())?
            .downcast_ref::<Routes<E>>()
            .cloned()
    }

    pub(crate) fn add<E: Event>(&self, route: Arc<dyn Route<E>>) {
        let subscription = route.subscription();
        let mut table = self.table.write();
        let slot = table
            .entry(TypeId::of::<E>())
            .or_insert_with(|| Box::new(Routes::<E>::default()));
        if let Some(routes) = slot.downcast_mut::<Routes<E>>() {
            let never_waits = routes.never_waits || route.never_waits();
            let mut next = routes.routes.clone();
            next.push(route);
            *routes = Arc::new(RouteSet {
                routes: next,
                never_waits,
            });
        }
        self.subscriptions.write().push(subscription);
    }

    pub(crate) fn is_subscribed(&self, subscription: &Subscription) -> bool {
        self.subscriptions.read().iter().any(|s| s == subscription)
    }

    pub(crate) fn subscriptions(&self) -> Vec<Subscription> {
        self.subscriptions.read().clone()
    }

    pub(crate) async fn publish<E: Event>(
        &self,
        system: &System,
        mut envelope: Envelope<E>,
    ) -> Result<Published, PublishError<E>> {
        let routes = self.routes::<E>().filter(|r| !r.routes.is_empty());
        // A publish that can never wait for room (no subscriber, or one
        // whose policy drops or refuses) is a unit of tokio's cooperative
        // budget, as a send on a tokio channel is, so that a loop of them
        // still yields its thread now and then. Under `Backpressure` a loop
        // of publishes waits once a mailbox is full.
        if routes.as_ref().is_none_or(|routes| routes.never_waits) {
            tokio::task::coop::consume_budget().await;
        }
        link_to_handled(&mut envelope);
        let core = system.core();
        if !core.accepts_from_caller() {
            return Err(PublishError::ShuttingDown(envelope));
        }
        let Some(routes) = routes else {
            let meta = envelope.meta().clone();
            core.record(DeadLetter {
                meta,
                payload: Some(envelope.into_shared()),
                reason: DeadLetterReason::NoSubscriber,
                target: Arc::from("(no subscriber)"),
                error: None,
            });
            return Ok(Published { delivered: 0 });
        };
        let routes = &routes.routes;
        if let [route] = routes.as_slice() {
            // One subscription: the envelope goes as it is, its payload
            // owned, with nothing to share.
            let outcome = match route.offer_one(envelope) {
                Offer::Taken => Ok(()),
                Offer::Refused(reason) => Err(reason),
                Offer::Full(envelope) => route.wait(envelope).await,
            };
            return match outcome {
                Ok(()) => Ok(Published { delivered: 1 }),
                Err(reason) => Err(PublishError::Refused {
                    refused: vec![Refusal {
                        subscriber: route.subscription().subscriber,
                        reason,
                    }],
                    delivered: 0,
                }),
            };
        }
        let (mut meta, payload) = envelope.into_parts();
        // An acknowledged event (from a journal or broker) is acknowledged
        // once, when every copy is handled; nacked if any copy is not.
        if routes.len() > 1 {
            if let Some(ack) = meta.take_ack() {
                meta.set_ack(AckHandle::new(Arc::new(FanOutAck::new(ack, routes.len()))));
            }
        }
        let mut delivered = 0;
        let mut refused = Vec::new();
        for route in routes.iter() {
            let outcome = match route.offer(&meta, &payload) {
                Offer::Taken => Ok(()),
                Offer::Refused(reason) => Err(reason),
                Offer::Full(copy) => route.wait(copy).await,
            };
            match outcome {
                Ok(()) => delivered += 1,
                Err(reason) => refused.push(Refusal {
                    subscriber: route.subscription().subscriber,
                    reason,
                }),
            }
        }
        if refused.is_empty() {
            Ok(Published { delivered })
        } else {
            Err(PublishError::Refused { refused, delivered })
        }
    }
}

/// Turns one acknowledgement per copy into one for the published event:
/// `ack` once every copy was handled, `nack` (with the first reason) when
/// every copy is done and at least one was dead-lettered.
struct FanOutAck {
    inner: AckHandle,
    remaining: AtomicUsize,
    refused: parking_lot::Mutex<Option<String>>,
}

impl FanOutAck {
    fn new(inner: AckHandle, copies: usize) -> Self {
        FanOutAck {
            inner,
            remaining: AtomicUsize::new(copies),
            refused: parking_lot::Mutex::new(None),
        }
    }

    fn done(&self, id: EventId) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            match self.refused.lock().take() {
                Some(reason) => self.inner.nack(id, &reason),
                None => self.inner.ack(id),
            }
        }
    }
}

impl Acknowledge for FanOutAck {
    fn ack(&self, id: EventId) {
        self.done(id);
    }
    fn nack(&self, id: EventId, reason: &str) {
        self.refused.lock().get_or_insert_with(|| reason.to_owned());
        self.done(id);
    }
}

/// What refusing a copy means for each way a mailbox says no.
pub(crate) fn refuse<M: crate::actor::Message>(
    cell: &Cell<M>,
    message: M,
    reason: DeadLetterReason,
) -> DeadLetterReason {
    cell.dead_letter(message, reason, None);
    reason
}

/// Offers a copy of a published event to one actor's mailbox. The copy is
/// made straight into the queued message when there is room, and only on
/// the way out otherwise.
pub(crate) fn offer_parts<A: Handles<E>, E: Event>(
    addr: &Addr<A>,
    meta: &Meta,
    payload: &Arc<E>,
) -> Offer<E> {
    offer_with(addr, (), |()| {
        Envelope::from_parts(meta.clone(), Arc::clone(payload))
    })
}

/// Offers a copy to one actor's mailbox.
pub(crate) fn offer_to<A: Handles<E>, E: Event>(addr: &Addr<A>, envelope: Envelope<E>) -> Offer<E> {
    offer_with(addr, envelope, |envelope| envelope)
}

/// Offers `value`, which `envelope` turns into the copy (when it is queued,
/// handed back, or dead-lettered), to one actor's mailbox.
fn offer_with<A: Handles<E>, E: Event, T>(
    addr: &Addr<A>,
    value: T,
    envelope: impl Fn(T) -> Envelope<E>,
) -> Offer<E> {
    let cell = &addr.cell;
    match cell.mailbox.try_push(value, |v| A::wrap(envelope(v))) {
        Ok(pushed) => {
            cell.settle(pushed);
            Offer::Taken
        }
        Err(Refused::Full(v)) if cell.mailbox.overflow() == Overflow::Backpressure => {
            Offer::Full(envelope(v))
        }
        Err(Refused::Full(v)) => Offer::Refused(refuse(
            cell,
            A::wrap(envelope(v)),
            DeadLetterReason::Rejected,
        )),
        Err(Refused::Closed(v)) => Offer::Refused(refuse(
            cell,
            A::wrap(envelope(v)),
            DeadLetterReason::ActorStopped,
        )),
    }
}

/// Waits for room in one actor's mailbox (bounded by the send deadline
/// inside a handler).
pub(crate) async fn wait_for<A: Handles<E>, E: Event>(
    addr: &Addr<A>,
    envelope: Envelope<E>,
) -> Result<(), DeadLetterReason> {
    let cell = &addr.cell;
    match cell.send(envelope, A::wrap).await {
        Ok(()) => Ok(()),
        Err(SendError::DeadlineExceeded(_)) => Err(DeadLetterReason::DeadlineExceeded),
        Err(SendError::Full(envelope)) => {
            Err(refuse(cell, A::wrap(envelope), DeadLetterReason::Rejected))
        }
        Err(SendError::Closed(envelope) | SendError::ShuttingDown(envelope)) => Err(refuse(
            cell,
            A::wrap(envelope),
            DeadLetterReason::ActorStopped,
        )),
    }
}

/// A broadcast subscription of one actor.
pub(crate) struct Broadcast<A: Actor> {
    pub(crate) addr: Addr<A>,
}

impl<A: Handles<E>, E: Event> Route<E> for Broadcast<A> {
    fn subscription(&self) -> Subscription {
        Subscription {
            event: E::NAME,
            subscriber: self.addr.name().to_owned(),
            kind: SubscriptionKind::Broadcast,
        }
    }
    fn offer(&self, meta: &Meta, payload: &Arc<E>) -> Offer<E> {
        offer_parts(&self.addr, meta, payload)
    }
    fn offer_one(&self, envelope: Envelope<E>) -> Offer<E> {
        offer_to(&self.addr, envelope)
    }
    fn wait(&self, envelope: Envelope<E>) -> Wait<'_> {
        Box::pin(wait_for(&self.addr, envelope))
    }
    fn never_waits(&self) -> bool {
        self.addr.cell.mailbox.overflow() != Overflow::Backpressure
    }
}

/// A pool of identical actors competing for events: each event goes to one.
///
/// ```
/// # use mercato::{Actor, Context, Envelope, Event, Handles, HandlerError, System};
/// # #[derive(Debug, serde::Serialize, serde::Deserialize)] struct Charge(u64);
/// # impl Event for Charge { const NAME: &'static str = "demo.charge"; const VERSION: u32 = 1; }
/// struct Payment;
/// impl Actor for Payment {
///     type Msg = Envelope<Charge>;
///     async fn handle(&mut self, _m: &mut Envelope<Charge>, _cx: &mut Context<Self>) -> Result<(), HandlerError> { Ok(()) }
/// }
/// impl Handles<Charge> for Payment { fn wrap(e: Envelope<Charge>) -> Envelope<Charge> { e } }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let system = System::builder().build()?;
/// let payments = system.spawn_group("payment", 4, || Payment)?;
/// system.subscribe_group::<Charge, _>(&payments)?;
/// for n in 0..8 {
///     system.publish(Charge(n)).await?;
/// }
/// system.settled().await;
/// assert_eq!(payments.gauges().iter().map(|g| g.processed).sum::<u64>(), 8);
/// # Ok(()) }
/// ```
pub struct Group<A: Actor> {
    inner: Arc<GroupInner<A>>,
}

struct GroupInner<A: Actor> {
    name: String,
    members: Vec<Addr<A>>,
    next: AtomicUsize,
}

impl<A: Actor> Clone for Group<A> {
    fn clone(&self) -> Self {
        Group {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<A: Actor> fmt::Debug for Group<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group")
            .field("name", &self.inner.name)
            .field("size", &self.inner.members.len())
            .finish()
    }
}

impl<A: Actor> Group<A> {
    pub(crate) fn new(name: String, members: Vec<Addr<A>>) -> Self {
        Group {
            inner: Arc::new(GroupInner {
                name,
                members,
                next: AtomicUsize::new(0),
            }),
        }
    }

    /// The group's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The members' addresses.
    pub fn members(&self) -> &[Addr<A>] {
        &self.inner.members
    }

    /// The members' mailbox gauges.
    pub fn gauges(&self) -> Vec<crate::mailbox::MailboxGauges> {
        self.inner.members.iter().map(Addr::gauges).collect()
    }

    /// Sends an event to one member: the next in turn with room; when all
    /// are full, the next in turn under its overflow policy.
    pub async fn tell<E: Event>(&self, event: E) -> Result<(), crate::error::TellError<E>>
    where
        A: Handles<E>,
    {
        let mut envelope = Envelope::new(event);
        link_to_handled(&mut envelope);
        if !self.inner.members[0].cell.core().accepts_from_caller() {
            return Err(crate::error::TellError::ShuttingDown(envelope));
        }
        match self.offer(envelope) {
            Ok(()) => Ok(()),
            Err((member, envelope)) => self.inner.members[member].tell_envelope(envelope).await,
        }
    }

    fn turn(&self) -> usize {
        self.inner.next.fetch_add(1, Ordering::Relaxed) % self.inner.members.len()
    }

    fn offer<E: Event>(&self, mut envelope: Envelope<E>) -> Result<(), (usize, Envelope<E>)>
    where
        A: Handles<E>,
    {
        let start = self.turn();
        let members = &self.inner.members;
        for i in 0..members.len() {
            match members[(start + i) % members.len()]
                .cell
                .mailbox
                .try_push_if_room(envelope, A::wrap)
            {
                Ok(()) => return Ok(()),
                Err(back) => envelope = back,
            }
        }
        Err((start, envelope))
    }
}

pub(crate) struct GroupRoute<A: Actor> {
    pub(crate) group: Group<A>,
}

impl<A: Handles<E>, E: Event> Route<E> for GroupRoute<A> {
    fn subscription(&self) -> Subscription {
        Subscription {
            event: E::NAME,
            subscriber: self.group.inner.name.clone(),
            kind: SubscriptionKind::Group {
                size: self.group.inner.members.len(),
            },
        }
    }
    fn offer(&self, meta: &Meta, payload: &Arc<E>) -> Offer<E> {
        self.offer_one(Envelope::from_parts(meta.clone(), Arc::clone(payload)))
    }
    fn offer_one(&self, envelope: Envelope<E>) -> Offer<E> {
        match self.group.offer(envelope) {
            Ok(()) => Offer::Taken,
            // Every member is full: the next in turn applies its policy.
            Err((member, envelope)) => offer_to(&self.group.inner.members[member], envelope),
        }
    }
    fn wait(&self, envelope: Envelope<E>) -> Wait<'_> {
        Box::pin(async move {
            match self.group.offer(envelope) {
                Ok(()) => Ok(()),
                Err((member, envelope)) => {
                    wait_for(&self.group.inner.members[member], envelope).await
                }
            }
        })
    }
    fn never_waits(&self) -> bool {
        // The members share one configuration.
        self.group.inner.members[0].cell.mailbox.overflow() != Overflow::Backpressure
    }
}

/// Picks the routing key of an event for one keyed subscription.
pub(crate) type KeyOf<E> = Box<dyn Fn(&E) -> Option<Key> + Send + Sync>;

/// A keyed subscription: one entity per key.
pub(crate) struct KeyedRoute<A: Actor, E> {
    pub(crate) entities: Entities<A>,
    pub(crate) key: KeyOf<E>,
    pub(crate) key_name: String,
}

impl<A: Handles<E>, E: Event> Route<E> for KeyedRoute<A, E> {
    fn subscription(&self) -> Subscription {
        Subscription {
            event: E::NAME,
            subscriber: self.entities.name().to_owned(),
            kind: SubscriptionKind::Keyed {
                key: self.key_name.clone(),
            },
        }
    }
    fn offer(&self, meta: &Meta, payload: &Arc<E>) -> Offer<E> {
        self.offer_one(Envelope::from_parts(meta.clone(), Arc::clone(payload)))
    }
    fn offer_one(&self, envelope: Envelope<E>) -> Offer<E> {
        match (self.key)(envelope.payload()) {
            Some(key) => self.entities.offer(key, envelope),
            None => {
                self.entities.no_key(envelope);
                Offer::Refused(DeadLetterReason::NoSubscriber)
            }
        }
    }
    fn wait(&self, envelope: Envelope<E>) -> Wait<'_> {
        Box::pin(async move {
            match (self.key)(envelope.payload()) {
                Some(key) => self.entities.wait(key, envelope).await,
                None => {
                    self.entities.no_key(envelope);
                    Err(DeadLetterReason::NoSubscriber)
                }
            }
        })
    }
    fn never_waits(&self) -> bool {
        self.entities.overflow() != Overflow::Backpressure
    }
}
