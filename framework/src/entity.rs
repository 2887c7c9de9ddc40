//! Entities: keyed actors, one per key, activated on demand and passivated
//! when idle.
//!
//! An entity kind (a `Cart` per cart id, an `Inventory` per SKU) is made
//! with [`System::entities`](crate::System::entities) from a factory that
//! takes the key. The first message for a key activates its entity; an
//! entity idle for its `passivate_after` time is passivated (its `stopping`
//! hook runs and its memory is freed); a later message activates a fresh one.
//!
//! The runtime keeps three promises here:
//!
//! - **At most one live activation per key**, however many publishers race.
//! - **No message is lost across passivation**: a message that arrives while
//!   an entity passivates waits for it to finish and is delivered to the
//!   next activation, before anything sent after it.
//! - **Order per key**: messages from one sender reach the entity of a key in
//!   send order, across passivations.
//!
//! Restart intensity is counted per key: one entity failing does not use up
//! the restarts of the others. An entity past its intensity stops for good
//! (what it held is dead-lettered) instead of escalating: one broken cart
//! does not stop the shop. The next message for its key activates a fresh
//! one.
//!
//! A shutdown stops the entities of every kind (after draining), before the
//! top-level actors.
//!
//! ```
//! use mercato::{Actor, Context, Envelope, Event, Handles, HandlerError, Key, System};
//! # use serde::{Deserialize, Serialize};
//! use std::time::Duration;
//!
//! #[derive(Debug, Serialize, Deserialize)]
//! struct ItemAdded { cart_id: u64, qty: u32 }
//! impl Event for ItemAdded {
//!     const NAME: &'static str = "shop.item_added";
//!     const VERSION: u32 = 1;
//!     fn key(&self) -> Option<Key> { Some(self.cart_id.into()) }
//! }
//!
//! struct Cart { items: u32 }
//! impl Actor for Cart {
//!     type Msg = Envelope<ItemAdded>;
//!     async fn handle(&mut self, e: &mut Envelope<ItemAdded>, _cx: &mut Context<Self>) -> Result<(), HandlerError> {
//!         self.items += e.qty;
//!         Ok(())
//!     }
//! }
//! impl Handles<ItemAdded> for Cart { fn wrap(e: Envelope<ItemAdded>) -> Envelope<ItemAdded> { e } }
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let system = System::builder().build()?;
//! let carts = system.entities_with("cart", |c| c.passivate_after(Duration::from_secs(60)), |_key: &Key| Cart { items: 0 })?;
//! system.subscribe_keyed::<ItemAdded, _>(&carts)?;
//! system.publish(ItemAdded { cart_id: 1, qty: 2 }).await?;
//! system.publish(ItemAdded { cart_id: 2, qty: 1 }).await?;
//! system.settled().await;
//! assert_eq!(carts.gauges().live, 2);
//! tokio::time::sleep(Duration::from_secs(61)).await;
//! system.settled().await;
//! assert_eq!(carts.gauges().live, 0);
//! assert_eq!(carts.gauges().passivations, 2);
//! # Ok(()) }
//! ```

mod start;
mod words;

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;

use crate::actor::{Actor, Addr, Handles, Message};
use crate::bus::Offer;
use crate::dead_letters::DeadLetterReason;
use crate::error::{SystemError, TellError};
use crate::event::{Envelope, Event, Key};
use crate::mailbox::{Overflow, Refused};
use crate::runtime::{
    Factory, IdleClock, Name, Named, Passivation, SendDeadline, SendError, in_actor_of,
    link_to_handled, make_unstarted, record_message,
};
use crate::supervise::{RestartWindow, Strategy};
use crate::system::{ActorConfig, Children, Parent, WeakSystem};
use start::Starters;
use words::WordMap;

/// The entities of one kind. Cheap to clone.
pub struct Entities<A: Actor> {
    kind: Arc<Kind<A>>,
}

impl<A: Actor> Clone for Entities<A> {
    fn clone(&self) -> Self {
        Entities {
            kind: Arc::clone(&self.kind),
        }
    }
}

impl<A: Actor> fmt::Debug for Entities<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entities")
            .field("kind", &self.kind.name)
            .finish_non_exhaustive()
    }
}

/// A reading of one entity kind's gauges.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EntityGauges {
    /// The kind's name.
    pub kind: String,
    /// Entities activated and not passivated now.
    pub live: usize,
    /// Entities passivating now.
    pub passivating: usize,
    /// Activations so far.
    pub activations: u64,
    /// Passivations so far.
    pub passivations: u64,
    /// Messages queued in the live entities' mailboxes, summed (plus those
    /// held for the next activation of a passivating entity).
    pub depth: usize,
    /// The largest high-water mark of a live entity's mailbox.
    pub high_water: usize,
    /// Messages processed by the live entities, summed.
    pub processed: u64,
    /// Refusals by the live entities' mailboxes, summed.
    pub rejected: u64,
    /// Messages dropped by the live entities' mailboxes, summed.
    pub dropped: u64,
}

/// A kind's entities by key: each key is live, passivating, or in neither
/// map. Apart, so that the map every routed event looks its key up in holds
/// only an address per key (a 16-byte entry for an integer key, not 24 with
/// a tag for the rare passivating one).
struct Slots<A: Actor> {
    live: Table<Addr<A>>,
    /// Passivating: what arrives is held here for the next activation.
    passivating: HashMap<Key, VecDeque<A::Msg>>,
}

impl<A: Actor> Slots<A> {
    fn new() -> Self {
        Slots {
            live: Table::new(),
            passivating: HashMap::new(),
        }
    }

    /// The hold of `key` if it is passivating. Nearly always none is, and
    /// then the key is not hashed again.
    fn held_mut(&mut self, key: &Key) -> Option<&mut VecDeque<A::Msg>> {
        if self.passivating.is_empty() {
            None
        } else {
            self.passivating.get_mut(key)
        }
    }
}

/// Values by key (a kind's live entities). Integer keys that fit in 64 bits
/// (order ids, cart ids: most keys) sit in a map of their own, whose
/// entries, 16 bytes with an address, are a third of the size of those of a
/// map by [`Key`] (48), and whose lookup touches one cache line where a
/// standard map's touches two ([`WordMap`]), so that more of a large table
/// stays in the processor's caches: every routed event looks its key up.
/// Other keys sit in a map by `Key`.
struct Table<V> {
    small: WordMap<V>,
    other: HashMap<Key, V>,
}

impl<V> Table<V> {
    fn new() -> Self {
        Table {
            small: WordMap::new(),
            other: HashMap::new(),
        }
    }

    /// The key as a word, if it is an integer that fits in one.
    fn word(key: &Key) -> Option<u64> {
        match key {
            Key::Int(n) => u64::try_from(*n).ok(),
            Key::Str(_) => None,
        }
    }

    fn get(&self, key: &Key) -> Option<&V> {
        match Self::word(key) {
            Some(word) => self.small.get(word),
            None => self.other.get(key),
        }
    }

    fn insert(&mut self, key: &Key, value: V) {
        match Self::word(key) {
            Some(word) => self.small.insert(word, value),
            None => self.other.insert(key.clone(), value),
        };
    }

    fn remove(&mut self, key: &Key) -> Option<V> {
        match Self::word(key) {
            Some(word) => self.small.remove(word),
            None => self.other.remove(key),
        }
    }

    fn values(&self) -> impl Iterator<Item = &V> {
        self.small.values().chain(self.other.values())
    }
}

type KeyFactory<A> = Box<dyn Fn(&Key) -> A + Send + Sync>;

struct Kind<A: Actor> {
    name: Arc<str>,
    system: WeakSystem,
    factory: KeyFactory<A>,
    config: ActorConfig,
    table: Mutex<Slots<A>>,
    activations: AtomicU64,
    passivations: AtomicU64,
    children: Arc<Children>,
    /// Restart windows of keys whose entity restarted recently, carried
    /// from one activation to the next (intensity is counted per key).
    restarts: Mutex<HashMap<Key, RestartWindow>>,
    /// The tasks that give activated entities their tasks (see `start`).
    starters: Starters<A, EntityMaker<A>>,
}

/// The outcome of offering a message to a key, without waiting.
pub(crate) enum KeyOffer<E> {
    Taken,
    /// Full under `Backpressure`.
    Full(Envelope<E>),
    /// Full under `Reject`.
    Rejected(Envelope<E>),
    /// No activation could be made (the system is stopping).
    Stopped(Envelope<E>),
}

impl<A: Actor> Entities<A> {
    pub(crate) fn new(
        system: WeakSystem,
        name: &str,
        config: ActorConfig,
        factory: impl Fn(&Key) -> A + Send + Sync + 'static,
    ) -> Self {
        Entities {
            kind: Arc::new(Kind {
                name: Arc::from(name),
                system,
                factory: Box::new(factory),
                config,
                table: Mutex::new(Slots::new()),
                activations: AtomicU64::new(0),
                passivations: AtomicU64::new(0),
                children: Arc::new(Children::new(Strategy::OneForOne)),
                restarts: Mutex::new(HashMap::new()),
                starters: Starters::new(),
            }),
        }
    }
}

/// A kind seen from the system, whatever its actor type.
pub(crate) trait KindView: Send + Sync {
    /// The supervisor list of the kind's live entities.
    fn children(&self) -> Arc<Children>;
    fn gauges(&self) -> EntityGauges;
    /// Drops the table's live entities (the system is gone), outside the
    /// table's lock.
    fn forget_live(&self);
}

impl<A: Actor> KindView for Entities<A> {
    fn children(&self) -> Arc<Children> {
        Arc::clone(&self.kind.children)
    }
    fn forget_live(&self) {
        let live = std::mem::replace(&mut self.kind.table.lock().live, Table::new());
        drop(live);
    }
    fn gauges(&self) -> EntityGauges {
        Entities::gauges(self)
    }
}

impl<A: Actor> Entities<A> {
    /// The kind's name.
    pub fn name(&self) -> &str {
        &self.kind.name
    }

    /// Whether the entity of `key` is live now.
    pub fn is_live(&self, key: &Key) -> bool {
        self.kind.table.lock().live.get(key).is_some()
    }

    /// Sends an event to the entity of `key`, activating it if needed.
    /// Refusals come back as for [`Addr::tell`].
    pub async fn tell<E: Event>(&self, key: impl Into<Key>, event: E) -> Result<(), TellError<E>>
    where
        A: Handles<E>,
    {
        // Under a policy that never waits for room, a unit of tokio's
        // cooperative budget, like a send or a publish.
        if self.overflow() != crate::mailbox::Overflow::Backpressure {
            tokio::task::coop::consume_budget().await;
        }
        let mut envelope = Envelope::new(event);
        link_to_handled(&mut envelope);
        let key = key.into();
        let Some(core) = self.kind.system.upgrade().map(|s| s.core().clone()) else {
            return Err(TellError::ShuttingDown(envelope));
        };
        if !core.accepts_from_caller() {
            return Err(TellError::ShuttingDown(envelope));
        }
        let deadline = core.send_deadline_from_now();
        loop {
            match self.kind.offer(&key, envelope) {
                KeyOffer::Taken => return Ok(()),
                KeyOffer::Rejected(e) => return Err(TellError::Full(e)),
                KeyOffer::Stopped(e) if !core.accepts_outside() => {
                    return Err(TellError::ShuttingDown(e));
                }
                KeyOffer::Stopped(e) => return Err(TellError::Stopped(e)),
                KeyOffer::Full(e) => match self.kind.wait_live(&key, e, deadline).await {
                    Ok(()) => return Ok(()),
                    Err(SendError::Closed(e)) => envelope = e,
                    Err(SendError::Full(e)) => return Err(TellError::Full(e)),
                    Err(SendError::ShuttingDown(e)) => return Err(TellError::ShuttingDown(e)),
                    Err(SendError::DeadlineExceeded(id)) => {
                        return Err(TellError::DeadlineExceeded(id));
                    }
                },
            }
        }
    }

    /// The kind's gauges.
    pub fn gauges(&self) -> EntityGauges {
        let table = self.kind.table.lock();
        let mut g = EntityGauges {
            kind: self.kind.name.to_string(),
            live: 0,
            passivating: 0,
            activations: self.kind.activations.load(Ordering::Relaxed),
            passivations: self.kind.passivations.load(Ordering::Relaxed),
            depth: 0,
            high_water: 0,
            processed: 0,
            rejected: 0,
            dropped: 0,
        };
        for addr in table.live.values() {
            g.live += 1;
            let m = addr.cell.mailbox.gauges(addr.cell.name());
            g.depth += m.depth;
            g.high_water = g.high_water.max(m.high_water);
            g.processed += m.processed;
            g.rejected += m.rejected;
            g.dropped += m.dropped;
        }
        for pending in table.passivating.values() {
            g.passivating += 1;
            g.depth += pending.len();
        }
        g
    }

    /// The overflow policy of the kind's mailboxes.
    pub(crate) fn overflow(&self) -> crate::mailbox::Overflow {
        self.kind.config.mailbox_config().overflow()
    }

    /// Offers a copy of a published event (the bus's keyed route).
    pub(crate) fn offer<E: Event>(&self, key: Key, envelope: Envelope<E>) -> Offer<E>
    where
        A: Handles<E>,
    {
        match self.kind.offer(&key, envelope) {
            KeyOffer::Taken => Offer::Taken,
            KeyOffer::Full(e) => Offer::Full(e),
            KeyOffer::Rejected(e) => Offer::Refused(self.kind.refuse(
                &key,
                A::wrap(e),
                DeadLetterReason::Rejected,
            )),
            KeyOffer::Stopped(e) => Offer::Refused(self.kind.refuse(
                &key,
                A::wrap(e),
                DeadLetterReason::ActorStopped,
            )),
        }
    }

    /// Waits for room at the entity of `key` (the bus's slow path).
    pub(crate) async fn wait<E: Event>(
        &self,
        key: Key,
        mut envelope: Envelope<E>,
    ) -> Result<(), DeadLetterReason>
    where
        A: Handles<E>,
    {
        let deadline = self
            .kind
            .system
            .upgrade()
            .and_then(|s| s.core().send_deadline_from_now());
        loop {
            match self.kind.wait_live(&key, envelope, deadline).await {
                Ok(()) => return Ok(()),
                Err(SendError::DeadlineExceeded(_)) => {
                    return Err(DeadLetterReason::DeadlineExceeded);
                }
                Err(SendError::Closed(e)) => match self.offer(key.clone(), e) {
                    Offer::Taken => return Ok(()),
                    Offer::Refused(reason) => return Err(reason),
                    Offer::Full(e) => envelope = e,
                },
                Err(SendError::Full(e)) => {
                    return Err(self
                        .kind
                        .refuse(&key, A::wrap(e), DeadLetterReason::Rejected));
                }
                Err(SendError::ShuttingDown(e)) => {
                    return Err(self
                        .kind
                        .refuse(&key, A::wrap(e), DeadLetterReason::ActorStopped));
                }
            }
        }
    }

    /// Dead-letters an event that has no value for the subscription's key.
    pub(crate) fn no_key<E: Event>(&self, envelope: Envelope<E>)
    where
        A: Handles<E>,
    {
        if let Some(system) = self.kind.system.upgrade() {
            record_message(
                system.core(),
                self.kind.name.clone(),
                A::wrap(envelope),
                DeadLetterReason::NoSubscriber,
                Some("the event has no value for the subscription's key".to_owned()),
            );
        }
    }
}

impl<A: Actor> Kind<A> {
    fn refuse(&self, key: &Key, message: A::Msg, reason: DeadLetterReason) -> DeadLetterReason {
        if let Some(system) = self.system.upgrade() {
            let target = key.name_under(&self.name);
            record_message(system.core(), target, message, reason, None);
        }
        reason
    }

    /// Activates the entity of `key`. Called with the table locked.
    fn activate(self: &Arc<Self>, key: &Key) -> Result<Addr<A>, SystemError> {
        let system = self.system.upgrade().ok_or(SystemError::ShuttingDown)?;
        let link = Arc::new(EntityLink {
            kind: Arc::clone(self),
            key: key.clone(),
            name: OnceLock::new(),
            clock: Mutex::new(IdleClock::default()),
        });
        let passivation: Arc<dyn Passivation> = link.clone();
        let config = self.config;
        let (addr, run) = make_unstarted(
            &system,
            Name::Made(link.clone()),
            Parent::Kind(passivation),
            &self.children,
            move |_| config,
            EntityMaker(link),
        )?;
        self.starters.start(&system, run);
        self.activations.fetch_add(1, Ordering::Relaxed);
        Ok(addr)
    }

    fn offer<E: Event>(self: &Arc<Self>, key: &Key, envelope: Envelope<E>) -> KeyOffer<E>
    where
        A: Handles<E>,
    {
        let mut table = self.table.lock();
        let overflow = self.config.mailbox_config().overflow();
        let capacity = self.config.mailbox_config().capacity();
        let envelope = if let Some(addr) = table.live.get(key) {
            match addr.cell.mailbox.try_push(envelope, A::wrap) {
                Ok(pushed) => {
                    addr.cell.settle(pushed);
                    return KeyOffer::Taken;
                }
                Err(Refused::Full(e)) if overflow == Overflow::Backpressure => {
                    return KeyOffer::Full(e);
                }
                Err(Refused::Full(e)) => return KeyOffer::Rejected(e),
                // The activation ended (it failed for good): make a new one.
                Err(Refused::Closed(e)) => e,
            }
        } else if let Some(pending) = table.held_mut(key) {
            if pending.len() < capacity {
                pending.push_back(A::wrap(envelope));
                return KeyOffer::Taken;
            }
            match overflow {
                Overflow::Backpressure => return KeyOffer::Full(envelope),
                Overflow::Reject => return KeyOffer::Rejected(envelope),
                Overflow::DropOldest => {
                    let oldest = pending.pop_front();
                    pending.push_back(A::wrap(envelope));
                    if let Some(oldest) = oldest {
                        self.refuse(key, oldest, DeadLetterReason::DroppedOldest);
                    }
                    return KeyOffer::Taken;
                }
                Overflow::DropNewest => {
                    self.refuse(key, A::wrap(envelope), DeadLetterReason::DroppedNewest);
                    return KeyOffer::Taken;
                }
            }
        } else {
            envelope
        };
        match self.activate(key) {
            Ok(addr) => {
                let result = addr.cell.mailbox.try_push(envelope, A::wrap);
                table.live.insert(key, addr.clone());
                match result {
                    Ok(pushed) => {
                        addr.cell.settle(pushed);
                        KeyOffer::Taken
                    }
                    Err(Refused::Full(e) | Refused::Closed(e)) => KeyOffer::Stopped(e),
                }
            }
            Err(_) => KeyOffer::Stopped(envelope),
        }
    }

    /// Waits for room in the live entity of `key`; `Closed` hands the
    /// envelope back to be offered again (the entity passivated or ended).
    async fn wait_live<E: Event>(
        &self,
        key: &Key,
        envelope: Envelope<E>,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<(), SendError<Envelope<E>>>
    where
        A: Handles<E>,
    {
        let live = self.table.lock().live.get(key).cloned();
        match live {
            Some(addr) => {
                let internal = in_actor_of(addr.cell.core());
                addr.cell
                    .send_by(envelope, A::wrap, internal, deadline.map(SendDeadline::At))
                    .await
            }
            None => {
                // Passivating with a full hold: let the next activation start,
                // within the sender's deadline.
                if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                    let message = A::wrap(envelope);
                    let id = message.meta().id();
                    self.refuse(key, message, DeadLetterReason::DeadlineExceeded);
                    return Err(SendError::DeadlineExceeded(id));
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
                Err(SendError::Closed(envelope))
            }
        }
    }
}

/// What builds an entity's instances: its link, which holds its kind (and
/// so the kind's factory) and its key. One pointer in the entity's task.
struct EntityMaker<A: Actor>(Arc<EntityLink<A>>);

impl<A: Actor> Factory<A> for EntityMaker<A> {
    fn make(&self) -> A {
        (self.0.kind.factory)(&self.0.key)
    }
}

/// What an entity's loop reports to its kind, and what names the entity.
struct EntityLink<A: Actor> {
    kind: Arc<Kind<A>>,
    key: Key,
    /// `<kind>/<key>`, made when first asked for (see `Named`).
    name: OnceLock<Arc<str>>,
    /// The entity's idle timer; only its loop takes the lock.
    clock: Mutex<IdleClock>,
}

impl<A: Actor> Named for EntityLink<A> {
    fn name(&self) -> &Arc<str> {
        self.name
            .get_or_init(|| self.key.name_under(&self.kind.name))
    }

    fn kind_name(&self) -> &str {
        &self.kind.name
    }
}

impl<A: Actor> Passivation for EntityLink<A> {
    fn try_passivate(&self, id: u64) -> bool {
        let mut table = self.kind.table.lock();
        let idle = matches!(table.live.get(&self.key), Some(addr) if addr.cell.id == id && addr.cell.mailbox.close_if_idle());
        if idle {
            table.live.remove(&self.key);
            table.passivating.insert(self.key.clone(), VecDeque::new());
            self.kind.passivations.fetch_add(1, Ordering::Relaxed);
        }
        idle
    }

    fn poll_idle(&self, armed: &mut bool, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        let idle_time = self.kind.config.passivate_after_value();
        self.clock.lock().poll(idle_time, armed, cx)
    }

    fn restarts(&self) -> RestartWindow {
        let mut windows = self.kind.restarts.lock();
        // Nearly always no key has restarted lately: the key is not hashed.
        if windows.is_empty() {
            return RestartWindow::default();
        }
        windows.remove(&self.key).unwrap_or_default()
    }

    fn exited(&self, id: u64, mut restarts: RestartWindow) {
        let intensity = self.kind.config.supervision_config().intensity;
        if !restarts.is_empty() {
            restarts.prune(tokio::time::Instant::now(), &intensity);
            if !restarts.is_empty() {
                self.kind.restarts.lock().insert(self.key.clone(), restarts);
            }
        }
        let mut table = self.kind.table.lock();
        match table.passivating.remove(&self.key) {
            Some(pending) if pending.is_empty() => {}
            Some(pending) => {
                match self.kind.activate(&self.key) {
                    Ok(addr) => {
                        for message in pending {
                            // The hold is no larger than the capacity.
                            if let Err(Refused::Full(m) | Refused::Closed(m)) =
                                addr.cell.mailbox.try_push(message, |m| m)
                            {
                                self.kind
                                    .refuse(&self.key, m, DeadLetterReason::ActorStopped);
                            }
                        }
                        table.live.insert(&self.key, addr);
                    }
                    Err(_) => {
                        for message in pending {
                            self.kind
                                .refuse(&self.key, message, DeadLetterReason::ActorStopped);
                        }
                    }
                }
            }
            None => {
                if matches!(table.live.get(&self.key), Some(addr) if addr.cell.id == id) {
                    table.live.remove(&self.key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::{Just, Strategy, any, prop_assert_eq, prop_oneof, proptest};

    use super::Table;
    use crate::event::Key;

    /// Keys of every kind: small integers (which collide often), integers
    /// past 64 bits, and strings, some of them spelling a small integer.
    fn key() -> impl Strategy<Value = Key> {
        prop_oneof![
            (0u64..8).prop_map(Key::from),
            (0u128..4).prop_map(|n| Key::Int(u128::from(u64::MAX) + n)),
            prop_oneof![Just("3"), Just("a"), Just("sku-1")].prop_map(Key::from),
        ]
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(Key, u32),
        Remove(Key),
        Get(Key),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (key(), any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
            key().prop_map(Op::Remove),
            key().prop_map(Op::Get),
        ]
    }

    #[test]
    fn integer_keys_that_fit_in_a_word_are_held_by_the_smaller_map() {
        let mut table = Table::new();
        table.insert(&Key::from(7u64), ());
        table.insert(&Key::from(u64::MAX), ());
        table.insert(&Key::from("7"), ());
        table.insert(&Key::Int(u128::from(u64::MAX) + 1), ());
        assert_eq!((table.small.len(), table.other.len()), (2, 2));
    }

    proptest! {
        /// The table, whatever kinds of keys it holds, answers as one map
        /// by `Key` would.
        #[test]
        fn a_table_answers_as_a_map_by_key(ops in proptest::collection::vec(op(), 0..200)) {
            let mut table = Table::new();
            let mut model: HashMap<Key, u32> = HashMap::new();
            for op in ops {
                match op {
                    Op::Insert(k, v) => {
                        table.insert(&k, v);
                        model.insert(k, v);
                    }
                    Op::Remove(k) => prop_assert_eq!(table.remove(&k), model.remove(&k)),
                    Op::Get(k) => prop_assert_eq!(table.get(&k), model.get(&k)),
                }
                let mut values: Vec<u32> = table.values().copied().collect();
                let mut expected: Vec<u32> = model.values().copied().collect();
                values.sort_unstable();
                expected.sort_unstable();
                prop_assert_eq!(values, expected);
            }
        }
    }
}
