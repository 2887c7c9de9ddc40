//! The actor system: configuration, spawning, gauges, settling, shutdown.
//!
//! A [`System`] runs on the application's tokio runtime (either flavour)
//! and never builds its own. Build it inside the runtime with
//! [`System::builder`]: system-wide defaults for every actor, overrides per
//! actor name, the root supervision strategy, the dead-letter store's size
//! and the seed of the backoff jitter. Invalid values are refused with an
//! error that names the field.
//!
//! ```
//! use mercato::{Overflow, Strategy, System};
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), mercato::SystemError> {
//! let system = System::builder()
//!     .defaults(|c| c.capacity(512).max_retries(5))
//!     .configure("payment", |c| c.capacity(64).overflow(Overflow::Reject))
//!     .root_strategy(Strategy::OneForOne)
//!     .dead_letter_capacity(10_000)
//!     .rng_seed(42)
//!     .build()?;
//!
//! let refused = System::builder().defaults(|c| c.capacity(0)).build().unwrap_err();
//! assert!(refused.to_string().contains("mailbox.capacity"));
//!
//! let report = system.shutdown(Duration::from_secs(5)).await;
//! assert!(report.settled);
//! # Ok(()) }
//! ```
//!
//! [`System::settled`] waits until every mailbox is empty and no handler
//! runs: what tests wait for instead of sleeping. [`System::shutdown`]
//! keeps promise 5: intake and timers stop, mailboxes drain (actors still
//! send to each other) until settled or the deadline, actors stop children
//! first in reverse start order, handlers still running at the deadline are
//! cancelled, and the [`ShutdownReport`] lists what was undelivered and what
//! was in flight.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;

use crate::actor::{Actor, Addr, Handles};
use crate::bus::{
    Broadcast, Bus, Group, GroupRoute, KeyedRoute, PublishError, Published, Subscription,
};
use crate::dead_letters::{DeadLetterCounts, DeadLetterReason, DeadLetters};
use crate::declare::HandlerInfo;
use crate::entity::{Entities, EntityGauges, KindView};
use crate::error::{ConfigError, SystemError};
use crate::event::EventId;
use crate::event::{Envelope, Event, Key};
use crate::launch::Parked;
use crate::mailbox::{Control, MailboxConfig, MailboxGauges, Overflow};
use crate::runtime::{
    Core, DRAINING, Lane, Name, PAST_DEADLINE, Passivation, RUNNING, STOPPED, Start, make_actor,
    spawn_actor,
};
use crate::supervise::{Backoff, Intensity, Restart, Strategy, Supervision};

/// The configuration of one actor: its mailbox and its supervision.
///
/// ```
/// use mercato::{ActorConfig, Overflow, Restart};
/// let config = ActorConfig::default().capacity(64).overflow(Overflow::DropOldest).restart(Restart::Transient);
/// assert_eq!(config.mailbox_config().capacity(), 64);
/// assert!(config.validate().is_ok());
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ActorConfig {
    mailbox: MailboxConfig,
    supervision: Supervision,
    passivate_after: Duration,
    ask_in_place: bool,
}

impl Default for ActorConfig {
    fn default() -> Self {
        ActorConfig {
            mailbox: MailboxConfig::default(),
            supervision: Supervision::default(),
            passivate_after: Duration::from_secs(120),
            ask_in_place: true,
        }
    }
}

impl ActorConfig {
    /// Sets the mailbox capacity (at least 1).
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.mailbox = MailboxConfig::new(capacity, self.mailbox.overflow());
        self
    }
    /// Sets the overflow policy.
    pub fn overflow(mut self, overflow: Overflow) -> Self {
        self.mailbox = MailboxConfig::new(self.mailbox.capacity(), overflow);
        self
    }
    /// Sets the whole mailbox configuration.
    pub fn mailbox(mut self, mailbox: MailboxConfig) -> Self {
        self.mailbox = mailbox;
        self
    }
    /// Sets the whole supervision configuration.
    pub fn supervision(mut self, supervision: Supervision) -> Self {
        self.supervision = supervision;
        self
    }
    /// Sets the restart policy.
    pub fn restart(mut self, restart: Restart) -> Self {
        self.supervision = self.supervision.restart(restart);
        self
    }
    /// Sets how many times a failing message is retried.
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.supervision = self.supervision.max_retries(retries);
        self
    }
    /// Sets the backoff between retries and restarts.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.supervision = self.supervision.backoff(backoff);
        self
    }
    /// Sets the restart intensity.
    pub fn intensity(mut self, intensity: Intensity) -> Self {
        self.supervision = self.supervision.intensity(intensity);
        self
    }
    /// Changes the backoff in place, keeping what `change` leaves alone.
    pub fn map_backoff(mut self, change: impl FnOnce(Backoff) -> Backoff) -> Self {
        self.supervision.backoff = change(self.supervision.backoff);
        self
    }
    /// Sets the strategy applied to this actor's children.
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.supervision = self.supervision.strategy(strategy);
        self
    }
    /// Sets whether a message that made the handler panic is retried.
    pub fn retry_after_panic(mut self, retry: bool) -> Self {
        self.supervision = self.supervision.retry_after_panic(retry);
        self
    }
    /// For entities: how long an entity may stay idle before it is
    /// passivated (default 120 s).
    pub fn passivate_after(mut self, idle: Duration) -> Self {
        self.passivate_after = idle;
        self
    }
    /// The idle time after which an entity is passivated.
    pub fn passivate_after_value(&self) -> Duration {
        self.passivate_after
    }
    /// Sets whether an ask to this actor, when nothing runs its loop, may
    /// run a turn of the loop in the asker's task (default `true`). With
    /// `false`, every handler runs in the actor's own task, and an ask
    /// waits for that task to answer.
    ///
    /// ```
    /// use mercato::ActorConfig;
    ///
    /// let config = ActorConfig::default().ask_in_place(false);
    /// assert!(!config.ask_in_place_value());
    /// assert!(ActorConfig::default().ask_in_place_value());
    /// ```
    pub fn ask_in_place(mut self, allowed: bool) -> Self {
        self.ask_in_place = allowed;
        self
    }
    /// Whether an ask may run this actor's loop in the asker's task.
    pub fn ask_in_place_value(&self) -> bool {
        self.ask_in_place
    }
    /// The mailbox configuration.
    pub fn mailbox_config(&self) -> MailboxConfig {
        self.mailbox
    }
    /// The supervision configuration.
    pub fn supervision_config(&self) -> Supervision {
        self.supervision
    }
    /// Checks every value, naming the refused field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.mailbox.validate()?;
        self.supervision.validate()?;
        if self.passivate_after.is_zero() {
            return Err(ConfigError::new(
                "entity.passivate_after",
                "0s",
                "must be longer than zero: an entity would passivate before handling anything",
            ));
        }
        Ok(())
    }
}

type Configure = Box<dyn Fn(ActorConfig) -> ActorConfig + Send + Sync>;

/// Builds a [`System`]; see the [module](self) docs.
pub struct SystemBuilder {
    defaults: ActorConfig,
    overrides: Vec<(String, Configure)>,
    root_strategy: Strategy,
    dead_letter_capacity: usize,
    seed: Option<u64>,
    shutdown_timeout: Duration,
    send_deadline: Duration,
}

impl fmt::Debug for SystemBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SystemBuilder")
            .field("defaults", &self.defaults)
            .field(
                "overrides",
                &self.overrides.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("root_strategy", &self.root_strategy)
            .finish_non_exhaustive()
    }
}

impl SystemBuilder {
    /// Adjusts the defaults every actor starts from.
    pub fn defaults(mut self, configure: impl FnOnce(ActorConfig) -> ActorConfig) -> Self {
        self.defaults = configure(self.defaults);
        self
    }

    /// Overrides the configuration of actors spawned with this name; applied
    /// after the spawn site's own settings.
    pub fn configure(
        mut self,
        name: impl Into<String>,
        configure: impl Fn(ActorConfig) -> ActorConfig + Send + Sync + 'static,
    ) -> Self {
        self.overrides.push((name.into(), Box::new(configure)));
        self
    }

    /// The strategy the root applies to top-level actors.
    pub fn root_strategy(mut self, strategy: Strategy) -> Self {
        self.root_strategy = strategy;
        self
    }

    /// How many recent dead letters are kept (counters are always exact).
    pub fn dead_letter_capacity(mut self, capacity: usize) -> Self {
        self.dead_letter_capacity = capacity;
        self
    }

    /// Seeds the backoff jitter, for reproducible runs.
    pub fn rng_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// How long a send from inside a handler waits for room in a full
    /// `Backpressure` mailbox before the message is dead-lettered with
    /// [`DeadLetterReason::DeadlineExceeded`] (default 5 s). Keeps a cycle of
    /// full mailboxes (A waits on B waits on A) from deadlocking.
    pub fn send_deadline(mut self, deadline: Duration) -> Self {
        self.send_deadline = deadline;
        self
    }

    /// The deadline of a shutdown caused by an escalation (default 10 s).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Checks the configuration and builds the system on the current tokio runtime.
    pub fn build(self) -> Result<System, SystemError> {
        let handle = tokio::runtime::Handle::try_current().map_err(|_| SystemError::NoRuntime)?;
        self.defaults.validate()?;
        if self.send_deadline.is_zero() {
            return Err(ConfigError::new(
                "system.send_deadline",
                "0s",
                "must be longer than zero: a send from a handler to a full mailbox would fail at once",
            )
            .into());
        }
        for (_, configure) in &self.overrides {
            configure(self.defaults).validate()?;
        }
        if cfg!(panic = "abort") {
            tracing::error!(
                "this program is built with panic = \"abort\": a panicking handler ends the process and cannot be restarted; build with panic = \"unwind\" for supervision of panics"
            );
        }
        // The envelope clock calibrates at its first reading (about 0.6 ms):
        // here, rather than in the first message's send.
        crate::event::now_unix_nanos();
        static SYSTEMS: AtomicU32 = AtomicU32::new(0);
        let id = next_system_id(&SYSTEMS)?;
        let (report_tx, _) = watch::channel(None);
        let mut reported = report_tx.subscribe();
        let parked = Parked::on_runtime(&handle, async move {
            let _ = reported.wait_for(Option::is_some).await;
        });
        let seed = self.seed.unwrap_or_else(|| EventId::new().as_u128() as u64);
        Ok(System {
            shared: Arc::new(Shared {
                core: Arc::new(Core {
                    id,
                    state: AtomicU8::new(RUNNING),
                    timers: AtomicBool::new(true),
                    dead_letters: DeadLetters::new(self.dead_letter_capacity),
                    shutdown_entries: Mutex::new(Vec::new()),
                    busy: Arc::default(),
                    send_deadline: self.send_deadline,
                    spawning: AtomicBool::new(true),
                    runtime: handle,
                }),
                parked,
                defaults: self.defaults,
                default_supervision: Arc::new(self.defaults.supervision),
                overrides: self.overrides,
                seed,
                shutdown_timeout: self.shutdown_timeout,
                next_actor: AtomicU64::new(0),
                lists: Mutex::new(Vec::new()),
                root: Arc::new(Children::new(self.root_strategy)),
                shutdown_started: AtomicBool::new(false),
                report: report_tx,
                bus: Bus::default(),
                kinds: Mutex::new(Vec::new()),
                declared: Mutex::new(Vec::new()),
            }),
        })
    }
}

struct Shared {
    core: Arc<Core>,
    /// Actors that have started and wait for their first wake-up.
    parked: Arc<Parked>,
    defaults: ActorConfig,
    /// The defaults' supervision, shared by every actor that keeps it.
    default_supervision: Arc<Supervision>,
    overrides: Vec<(String, Configure)>,
    seed: u64,
    shutdown_timeout: Duration,
    next_actor: AtomicU64,
    /// The children lists of actors that have spawned children. With the
    /// root's and the entity kinds', they hold every live actor once: the
    /// system keeps no list of its own with an entry per actor.
    lists: Mutex<Vec<Weak<Children>>>,
    root: Arc<Children>,
    shutdown_started: AtomicBool,
    report: watch::Sender<Option<ShutdownReport>>,
    bus: Bus,
    /// The supervisor lists of every entity kind, in creation order.
    kinds: Mutex<Vec<Box<dyn KindView>>>,
    /// Started declared actors and their handlers, for the topology.
    declared: Mutex<Vec<(String, &'static [HandlerInfo])>>,
}

impl Drop for Shared {
    /// The last handle is gone, so no actor's loop runs any more (each
    /// holds one): the kinds let go of their live entities, whose cells
    /// hold their links to their kinds (to name them on demand), which hold
    /// the kinds' tables of cells.
    fn drop(&mut self) {
        for kind in self.kinds.get_mut().drain(..) {
            kind.forget_live();
        }
    }
}

/// A handle that does not keep the system alive (held by entity kinds,
/// which the system's routing table holds).
#[derive(Clone)]
pub(crate) struct WeakSystem(Weak<Shared>);

impl WeakSystem {
    pub(crate) fn upgrade(&self) -> Option<System> {
        self.0.upgrade().map(|shared| System { shared })
    }
}

/// A running actor system. Cheap to clone; every clone is the same system.
#[derive(Clone)]
pub struct System {
    shared: Arc<Shared>,
}

impl fmt::Debug for System {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("System")
            .field("id", &self.shared.core.id)
            .finish_non_exhaustive()
    }
}

/// Why a system shut down.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ShutdownReason {
    /// [`System::shutdown`] was called.
    Requested,
    /// A top-level actor exceeded its restart intensity.
    Escalated {
        /// The actor that escalated.
        actor: String,
        /// Its last failure.
        failure: String,
    },
}

/// A message that was not handled because of the shutdown.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Undelivered {
    /// The actor it was for.
    pub actor: String,
    /// The event's wire name.
    pub event: &'static str,
    /// The envelope id.
    pub id: EventId,
    /// The correlation id.
    pub correlation_id: EventId,
    /// Its dead-letter reason.
    pub reason: DeadLetterReason,
}

/// What a shutdown did. Nothing is dropped silently: every message that was
/// not handled is listed here and counted in the dead letters.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Why the system stopped.
    pub reason: ShutdownReason,
    /// Whether every mailbox drained before the deadline.
    pub settled: bool,
    /// Every message dead-lettered after the shutdown began, other than the
    /// cancelled ones: still queued when its actor stopped, or refused,
    /// dropped or given up on while draining.
    pub undelivered: Vec<Undelivered>,
    /// Messages whose handler was cancelled at the deadline.
    pub in_flight: Vec<Undelivered>,
    /// The dead-letter counters when the system stopped.
    pub dead_letters: DeadLetterCounts,
}

impl System {
    /// A builder with the default configuration.
    pub fn builder() -> SystemBuilder {
        SystemBuilder {
            defaults: ActorConfig::default(),
            overrides: Vec::new(),
            root_strategy: Strategy::OneForOne,
            dead_letter_capacity: 1024,
            seed: None,
            shutdown_timeout: Duration::from_secs(10),
            send_deadline: Duration::from_secs(5),
        }
    }

    /// Spawns a top-level actor with the system defaults.
    ///
    /// The factory builds the first instance and every restarted one.
    pub fn spawn<A: Actor, F>(&self, name: &str, factory: F) -> Result<Addr<A>, SystemError>
    where
        F: Fn() -> A + Send + Sync + 'static,
    {
        self.spawn_with(name, |c| c, factory)
    }

    /// Spawns a top-level actor, adjusting its configuration.
    pub fn spawn_with<A: Actor, F>(
        &self,
        name: &str,
        configure: impl FnOnce(ActorConfig) -> ActorConfig,
        factory: F,
    ) -> Result<Addr<A>, SystemError>
    where
        F: Fn() -> A + Send + Sync + 'static,
    {
        spawn_actor(
            self,
            Name::Given(name),
            Parent::Root,
            &self.shared.root,
            configure,
            factory,
        )
    }

    /// [`spawn_with`](Self::spawn_with), with the actor's start left to the
    /// caller: [`System::start`] subscribes it first.
    pub(crate) fn make_with<A: Actor, F>(
        &self,
        name: &str,
        configure: impl FnOnce(ActorConfig) -> ActorConfig,
        factory: F,
    ) -> Result<(Addr<A>, Start<'_, A, F>), SystemError>
    where
        F: Fn() -> A + Send + Sync + 'static,
    {
        make_actor(
            self,
            Name::Given(name),
            Parent::Root,
            &self.shared.root,
            configure,
            factory,
        )
    }

    /// Spawns a pool of `size` identical actors that compete for events
    /// (see [`Group`]); members are named `name#0`, `name#1`, ….
    pub fn spawn_group<A: Actor, F>(
        &self,
        name: &str,
        size: usize,
        factory: F,
    ) -> Result<Group<A>, SystemError>
    where
        F: Fn() -> A + Send + Sync + 'static,
    {
        self.spawn_group_with(name, size, |c| c, factory)
    }

    /// [`spawn_group`](Self::spawn_group), adjusting the members' configuration.
    pub fn spawn_group_with<A: Actor, F>(
        &self,
        name: &str,
        size: usize,
        configure: impl Fn(ActorConfig) -> ActorConfig,
        factory: F,
    ) -> Result<Group<A>, SystemError>
    where
        F: Fn() -> A + Send + Sync + 'static,
    {
        let (group, starts) = self.make_group_with(name, size, configure, factory)?;
        starts.into_iter().for_each(Start::run);
        Ok(group)
    }

    /// [`spawn_group_with`](Self::spawn_group_with), with the members'
    /// starts left to the caller: [`System::start_group`] subscribes the
    /// group first.
    // The members' factory is a closure, which no type alias can name.
    #[allow(clippy::type_complexity)]
    pub(crate) fn make_group_with<A: Actor, F>(
        &self,
        name: &str,
        size: usize,
        configure: impl Fn(ActorConfig) -> ActorConfig,
        factory: F,
    ) -> Result<
        (
            Group<A>,
            Vec<Start<'_, A, impl Fn() -> A + Send + Sync + 'static>>,
        ),
        SystemError,
    >
    where
        F: Fn() -> A + Send + Sync + 'static,
    {
        if size == 0 {
            return Err(ConfigError::new(
                "group.size",
                0,
                "must be at least 1: a group needs a member to handle its events",
            )
            .into());
        }
        let factory = Arc::new(factory);
        let mut members = Vec::with_capacity(size);
        let mut starts = Vec::with_capacity(size);
        for i in 0..size {
            let factory = Arc::clone(&factory);
            // Overrides for the group's name apply to every member.
            let member = |c| self.apply_overrides(name, configure(c));
            match self.make_with(&format!("{name}#{i}"), member, move || factory()) {
                Ok((addr, start)) => {
                    members.push(addr);
                    starts.push(start);
                }
                Err(e) => {
                    // No half-made group: the members already made are
                    // stopped as they start.
                    members.iter().for_each(Addr::stop);
                    return Err(e);
                }
            }
        }
        Ok((Group::new(name.to_owned(), members), starts))
    }

    /// Makes an entity kind: one actor per key, built by `factory` from its
    /// key on its first message, passivated when idle. See [`Entities`].
    pub fn entities<A: Actor, F>(&self, name: &str, factory: F) -> Result<Entities<A>, SystemError>
    where
        F: Fn(&Key) -> A + Send + Sync + 'static,
    {
        self.entities_with(name, |c| c, factory)
    }

    /// [`entities`](Self::entities), adjusting the entities' configuration
    /// (e.g. [`ActorConfig::passivate_after`]).
    pub fn entities_with<A: Actor, F>(
        &self,
        name: &str,
        configure: impl FnOnce(ActorConfig) -> ActorConfig,
        factory: F,
    ) -> Result<Entities<A>, SystemError>
    where
        F: Fn(&Key) -> A + Send + Sync + 'static,
    {
        let config = self.config_for(Some(name), configure)?;
        let entities = Entities::new(
            WeakSystem(Arc::downgrade(&self.shared)),
            name,
            config,
            factory,
        );
        self.shared.kinds.lock().push(Box::new(entities.clone()));
        Ok(entities)
    }

    /// Subscribes one actor to every `E` published (broadcast).
    pub fn subscribe<E: Event, A: Handles<E>>(&self, addr: &Addr<A>) -> Result<(), SystemError> {
        self.add_route(Arc::new(Broadcast { addr: addr.clone() }))
    }

    /// Subscribes a group: each `E` goes to one member.
    pub fn subscribe_group<E: Event, A: Handles<E>>(
        &self,
        group: &Group<A>,
    ) -> Result<(), SystemError> {
        self.add_route(Arc::new(GroupRoute {
            group: group.clone(),
        }))
    }

    /// Subscribes an entity kind by the event's default key ([`Event::key`]):
    /// each `E` goes to the entity of its key.
    pub fn subscribe_keyed<E: Event, A: Handles<E>>(
        &self,
        entities: &Entities<A>,
    ) -> Result<(), SystemError> {
        self.add_route(Arc::new(KeyedRoute {
            entities: entities.clone(),
            key: Box::new(|e: &E| e.key()),
            key_name: "default".to_owned(),
        }))
    }

    /// Subscribes an entity kind by a key of this subscription's choosing
    /// (so one event can reach an `Order` by order id and an `Inventory` by
    /// SKU); `key_name` names it in the topology.
    pub fn subscribe_keyed_by<E: Event, A: Handles<E>>(
        &self,
        entities: &Entities<A>,
        key_name: &str,
        key: impl Fn(&E) -> Option<Key> + Send + Sync + 'static,
    ) -> Result<(), SystemError> {
        self.add_route(Arc::new(KeyedRoute {
            entities: entities.clone(),
            key: Box::new(key),
            key_name: key_name.to_owned(),
        }))
    }

    fn add_route<E: Event>(&self, route: Arc<dyn crate::bus::Route<E>>) -> Result<(), SystemError> {
        let subscription = route.subscription();
        if self.shared.bus.is_subscribed(&subscription) {
            return Err(SystemError::AlreadySubscribed {
                event: subscription.event,
                subscriber: subscription.subscriber,
            });
        }
        self.shared.bus.add(route);
        Ok(())
    }

    /// Every subscription, in the order they were made.
    pub fn subscriptions(&self) -> Vec<Subscription> {
        self.shared.bus.subscriptions()
    }

    /// Publishes an event to its subscribers. See the [`bus`](crate::bus)
    /// docs for back-pressure, refusals and ordering.
    pub async fn publish<E: Event>(&self, event: E) -> Result<Published, PublishError<E>> {
        self.shared.bus.publish(self, Envelope::new(event)).await
    }

    /// Publishes an envelope built by the caller (headers, correlation id).
    pub async fn publish_envelope<E: Event>(
        &self,
        envelope: Envelope<E>,
    ) -> Result<Published, PublishError<E>> {
        self.shared.bus.publish(self, envelope).await
    }

    /// The gauges of every live mailbox, in spawn order.
    pub fn mailboxes(&self) -> Vec<MailboxGauges> {
        self.live_lanes().iter().map(|(_, l)| l.gauges()).collect()
    }

    /// Every live actor's lane with its id, in spawn order: gathered from
    /// the supervisors' lists of children.
    fn live_lanes(&self) -> Vec<(u64, Arc<dyn Lane>)> {
        let mut lists = vec![self.shared.root.clone()];
        lists.extend(self.shared.kinds.lock().iter().map(|k| k.children()));
        lists.extend(self.shared.lists.lock().iter().filter_map(Weak::upgrade));
        let mut lanes = Vec::new();
        for list in lists {
            list.lanes_into(&mut lanes);
        }
        lanes.sort_unstable_by_key(|(id, _)| *id);
        lanes
    }

    /// The gauges of every entity kind, in creation order.
    pub fn entity_kinds(&self) -> Vec<EntityGauges> {
        self.shared
            .kinds
            .lock()
            .iter()
            .map(|k| k.gauges())
            .collect()
    }

    /// The dead-letter store.
    pub fn dead_letters(&self) -> &DeadLetters {
        &self.shared.core.dead_letters
    }

    /// Whether panics in handlers can be caught (false under `panic = "abort"`).
    pub fn panics_are_caught(&self) -> bool {
        !cfg!(panic = "abort")
    }

    /// Waits until every mailbox is empty and no handler (nor start hook,
    /// retry or restart) runs. Timers that have not fired do not count.
    pub async fn settled(&self) {
        self.shared.core.busy.settled().await;
    }

    /// Shuts down per promise 5 and reports what was not delivered. A second
    /// call waits for the first one's report.
    pub async fn shutdown(&self, timeout: Duration) -> ShutdownReport {
        self.shutdown_with(ShutdownReason::Requested, timeout).await
    }

    /// Waits until the system has stopped (by `shutdown` or an escalation at
    /// the root) and returns the report.
    pub async fn terminated(&self) -> ShutdownReport {
        let mut rx = self.shared.report.subscribe();
        loop {
            if let Some(report) = rx.borrow_and_update().clone() {
                return report;
            }
            if rx.changed().await.is_err() {
                // The sender lives in `Shared`, which `self` keeps alive.
                unreachable!("the report channel closed while the system is alive");
            }
        }
    }

    /// Whether the system still takes messages from outside its actors.
    pub fn is_running(&self) -> bool {
        self.shared.core.accepts_outside()
    }

    pub(crate) async fn shutdown_with(
        &self,
        reason: ShutdownReason,
        timeout: Duration,
    ) -> ShutdownReport {
        if self.shared.shutdown_started.swap(true, Ordering::AcqRel) {
            return self.terminated().await;
        }
        let core = &self.shared.core;
        tracing::info!(?reason, ?timeout, "shutting down");
        self.begin_shutdown();
        let deadline = tokio::time::Instant::now() + timeout;
        let settled = tokio::time::timeout_at(deadline, self.settled())
            .await
            .is_ok();
        if !settled {
            core.state.store(PAST_DEADLINE, Ordering::Release);
            for (_, lane) in self.live_lanes() {
                lane.cancel();
            }
        }
        // Nothing new starts from here (an entity activation included); the
        // entities stop first, then the top-level actors, last started first.
        core.spawning.store(false, Ordering::Release);
        let kinds: Vec<_> = self
            .shared
            .kinds
            .lock()
            .iter()
            .rev()
            .map(|k| k.children())
            .collect();
        for kind in kinds {
            kind.stop_all().await;
        }
        self.shared.root.stop_all().await;
        core.state.store(STOPPED, Ordering::Release);
        let entries = std::mem::take(&mut *core.shutdown_entries.lock());
        let (in_flight, undelivered) = entries
            .into_iter()
            .partition(|u| u.reason == DeadLetterReason::CancelledAtShutdown);
        let report = ShutdownReport {
            reason,
            settled,
            undelivered,
            in_flight,
            dead_letters: core.dead_letters.counts(),
        };
        tracing::info!(
            settled,
            undelivered = report.undelivered.len(),
            in_flight = report.in_flight.len(),
            "shut down"
        );
        self.shared.report.send_replace(Some(report.clone()));
        report
    }

    pub(crate) fn declare<A: crate::declare::Declared>(&self, name: &str) {
        self.shared
            .declared
            .lock()
            .push((name.to_owned(), A::HANDLERS));
    }

    pub(crate) fn declared(&self) -> Vec<(String, &'static [HandlerInfo])> {
        self.shared.declared.lock().clone()
    }

    /// Closes intake from outside and stops timers (idempotent).
    pub(crate) fn begin_shutdown(&self) {
        let core = &self.shared.core;
        let _ = core
            .state
            .compare_exchange(RUNNING, DRAINING, Ordering::AcqRel, Ordering::Acquire);
        core.timers.store(false, Ordering::Release);
    }

    pub(crate) fn core(&self) -> &Arc<Core> {
        &self.shared.core
    }

    pub(crate) fn handle(&self) -> &tokio::runtime::Handle {
        &self.shared.core.runtime
    }

    pub(crate) fn parked(&self) -> &Arc<Parked> {
        &self.shared.parked
    }

    pub(crate) fn seed(&self) -> u64 {
        self.shared.seed
    }

    pub(crate) fn shutdown_timeout(&self) -> Duration {
        self.shared.shutdown_timeout
    }

    pub(crate) fn next_actor_id(&self) -> u64 {
        self.shared.next_actor.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// An actor's configuration: the defaults, then `configure` (the spawn
    /// site's settings), then the overrides set for `name`; `None` for an
    /// actor no override can name (see [`System::has_overrides_under`]),
    /// whose name need not be made.
    pub(crate) fn config_for(
        &self,
        name: Option<&str>,
        configure: impl FnOnce(ActorConfig) -> ActorConfig,
    ) -> Result<ActorConfig, ConfigError> {
        let mut config = configure(self.shared.defaults);
        if let Some(name) = name {
            config = self.apply_overrides(name, config);
        }
        config.validate()?;
        Ok(config)
    }

    /// Whether the builder set an override for a name `<prefix>/...` (an
    /// entity of the kind `prefix`).
    pub(crate) fn has_overrides_under(&self, prefix: &str) -> bool {
        self.shared.overrides.iter().any(|(name, _)| {
            name.strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/'))
        })
    }

    fn apply_overrides(&self, name: &str, mut config: ActorConfig) -> ActorConfig {
        for (_, over) in self.shared.overrides.iter().filter(|(n, _)| n == name) {
            config = over(config);
        }
        config
    }

    /// `supervision`, shared with the other actors that have the same
    /// (the defaults' in most systems) rather than copied into each.
    pub(crate) fn shared_supervision(&self, supervision: Supervision) -> Arc<Supervision> {
        if *self.shared.default_supervision == supervision {
            self.shared.default_supervision.clone()
        } else {
            Arc::new(supervision)
        }
    }

    /// Makes an actor's new children list known to the system (see
    /// [`live_lanes`](Self::live_lanes)).
    pub(crate) fn register_children(&self, list: &Arc<Children>) {
        let mut lists = self.shared.lists.lock();
        // Lists of actors that have ended are dropped when the vector is
        // full, before it grows: amortised, and bounded by the live ones.
        if lists.len() == lists.capacity() {
            lists.retain(|l| l.strong_count() > 0);
        }
        lists.push(Arc::downgrade(list));
    }
}

/// The next system id from `counter`: 1 and up, 32 bits wide since every
/// actor's task carries its system's id. Refused once spent rather than
/// reused, since two live systems must never share one.
fn next_system_id(counter: &AtomicU32) -> Result<u32, SystemError> {
    counter
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_add(1))
        .map(|n| n + 1)
        .map_err(|_| SystemError::IdsExhausted)
}

/// Who supervises an actor.
pub(crate) enum Parent {
    Root,
    /// An entity kind, through the entity's link to it (which keeps its
    /// idle timer): past its intensity, an entity stops for good.
    Kind(Arc<dyn Passivation>),
    Actor(Arc<dyn Lane>),
}

/// The children of one supervisor in start order, which is the order of
/// their ids.
pub(crate) struct Children {
    strategy: Strategy,
    list: Mutex<List<Arc<dyn Lane>>>,
    /// Woken whenever a child leaves the list, for [`Children::stop_all`].
    left: tokio::sync::Notify,
}

/// Children by id, ascending. An entry costs 24 bytes: a child that ends
/// leaves a hole, and the holes are swept out once they are more than half
/// of the entries, so that finding a child takes a binary search and removing one
/// costs O(1) amortised; children end last started first at shutdown, and
/// those at the end are popped at once.
struct List<L> {
    entries: Vec<(u64, Option<L>)>,
    holes: usize,
    /// The name of the child added last, shared with the next child of
    /// that name (a pool's workers, say), so that each does not carry a
    /// copy of its own.
    last_name: Option<Arc<str>>,
    /// Entries moved by sweeps so far, for a test to bound.
    #[cfg(test)]
    moved: usize,
}

impl<L> Default for List<L> {
    fn default() -> Self {
        List {
            entries: Vec::new(),
            holes: 0,
            last_name: None,
            #[cfg(test)]
            moved: 0,
        }
    }
}

impl<L> List<L> {
    fn position(&self, id: u64) -> Result<usize, usize> {
        self.entries.binary_search_by_key(&id, |(id, _)| *id)
    }

    fn insert(&mut self, id: u64, lane: L) {
        // Ids are handed out in start order, so a child almost always goes
        // at the end; one that raced a later sibling to the lock goes just
        // before it.
        match self.entries.last() {
            Some((last, _)) if *last >= id => match self.position(id) {
                // Ids are not reused; were one, it takes its old place.
                Ok(at) => {
                    if self.entries[at].1.replace(lane).is_none() {
                        self.holes -= 1;
                    }
                }
                Err(at) => self.entries.insert(at, (id, Some(lane))),
            },
            _ => self.entries.push((id, Some(lane))),
        }
    }

    fn remove(&mut self, id: u64) {
        let Ok(at) = self.position(id) else { return };
        if self.entries[at].1.take().is_none() {
            return;
        }
        self.holes += 1;
        while self.entries.last().is_some_and(|(_, lane)| lane.is_none()) {
            self.entries.pop();
            self.holes -= 1;
        }
        if self.holes * 2 > self.entries.len() {
            self.entries.retain(|(_, lane)| lane.is_some());
            self.holes = 0;
            #[cfg(test)]
            {
                self.moved += self.entries.len();
            }
        }
        // A list that shrank a lot gives back its memory.
        if self.entries.capacity() > 64 && self.entries.len() * 4 < self.entries.capacity() {
            self.entries.shrink_to(self.entries.len() * 2);
        }
    }

    fn contains(&self, id: u64) -> bool {
        self.position(id)
            .is_ok_and(|at| self.entries[at].1.is_some())
    }

    fn live(&self) -> impl DoubleEndedIterator<Item = (u64, &L)> {
        self.entries
            .iter()
            .filter_map(|(id, lane)| lane.as_ref().map(|lane| (*id, lane)))
    }
}

impl Children {
    pub(crate) fn new(strategy: Strategy) -> Self {
        Children {
            strategy,
            list: Mutex::new(List::default()),
            left: tokio::sync::Notify::new(),
        }
    }

    /// The name for a new child: shared with the child added last if the
    /// two are the same.
    pub(crate) fn name(&self, name: &str) -> Arc<str> {
        let mut list = self.list.lock();
        match &list.last_name {
            Some(last) if **last == *name => last.clone(),
            _ => list.last_name.insert(Arc::from(name)).clone(),
        }
    }

    /// Lists a child. Called before its task starts, so that one that ends
    /// at once finds itself listed, to leave the list.
    pub(crate) fn add(&self, id: u64, lane: Arc<dyn Lane>) {
        self.list.lock().insert(id, lane);
    }

    /// Takes child `id` off the list: its task has ended.
    pub(crate) fn remove(&self, id: u64) {
        self.list.lock().remove(id);
        self.left.notify_waiters();
    }

    /// Adds every child's id and lane to `out`.
    fn lanes_into(&self, out: &mut Vec<(u64, Arc<dyn Lane>)>) {
        out.extend(self.list.lock().live().map(|(id, lane)| (id, lane.clone())));
    }

    /// Applies the strategy after child `failed` failed.
    pub(crate) fn restart_peers(&self, failed: u64, name: &str, failure: &str) {
        let peers: Vec<Arc<dyn Lane>> = {
            let list = self.list.lock();
            match self.strategy {
                Strategy::OneForOne => Vec::new(),
                Strategy::OneForAll => list
                    .live()
                    .filter(|(id, _)| *id != failed)
                    .map(|(_, lane)| lane.clone())
                    .collect(),
                Strategy::RestForOne => list
                    .live()
                    .filter(|(id, _)| *id > failed)
                    .map(|(_, lane)| lane.clone())
                    .collect(),
            }
        };
        for peer in peers {
            peer.control(Control::Restart(format!(
                "sibling `{name}` failed: {failure}"
            )));
        }
    }

    /// Stops every child, last started first, each after its own children.
    pub(crate) async fn stop_all(&self) {
        // Each child stays listed until its task has ended and taken it off,
        // so that the system still sees it (gauges, the shutdown deadline's
        // cancellation) while it stops.
        let children: Vec<_> = self
            .list
            .lock()
            .live()
            .rev()
            .map(|(id, lane)| (id, lane.clone()))
            .collect();
        for (id, lane) in children {
            lane.control(Control::Stop);
            self.ended(id).await;
        }
    }

    /// Waits until child `id` is off the list.
    async fn ended(&self, id: u64) {
        loop {
            let mut left = std::pin::pin!(self.left.notified());
            left.as_mut().enable();
            if !self.list.lock().contains(id) {
                return;
            }
            left.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lists_of_ended_actors_are_dropped_and_the_live_ones_kept() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        let _entered = runtime.enter();
        let system = System::builder().build().expect("a system");
        let live = Arc::new(Children::new(Strategy::OneForOne));
        system.register_children(&live);
        for _ in 0..1_000 {
            // An actor that had children and has ended.
            system.register_children(&Arc::new(Children::new(Strategy::OneForOne)));
        }
        let lists = system.shared.lists.lock();
        assert!(
            lists.len() <= 8 && lists.capacity() <= 8,
            "{} lists kept (capacity {}) for one live one",
            lists.len(),
            lists.capacity()
        );
        assert!(
            lists
                .iter()
                .any(|l| l.upgrade().is_some_and(|l| Arc::ptr_eq(&l, &live))),
            "the live list was dropped"
        );
    }

    /// A step of a children list's life.
    #[derive(Debug, Clone)]
    enum Step {
        /// A child starts, under the next id.
        Start,
        /// A child starts under an id just below the last one handed out:
        /// it raced a later sibling to the list's lock.
        StartLate,
        /// The child at this place among the live ones ends.
        End(usize),
        /// The child started last ends.
        EndLast,
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        prop_oneof![
            2 => Just(Step::Start),
            1 => Just(Step::StartLate),
            4 => any::<usize>().prop_map(Step::End),
            1 => Just(Step::EndLast),
        ]
    }

    proptest::proptest! {
        // After a run of starts, children start and end at random: the list
        // holds what a map by id would, in id order, with its holes counted,
        // at most half of it and none at the end; sweeping the holes moves
        // fewer entries than there were ends; and its buffer is at most four
        // times its length (or 64 entries), shrinks only below a quarter of
        // it, and then to twice the length.
        #[test]
        fn a_children_list_holds_the_live_children_in_id_order(
            first in 0..300usize,
            steps in proptest::collection::vec(step(), 0..600),
        ) {
            use proptest::prop_assert;
            use proptest::prop_assert_eq;
            let mut list = List::default();
            let mut model = std::collections::BTreeMap::new();
            let mut next = 0u64;
            let mut ends = 0usize;
            let steps = std::iter::repeat_n(Step::Start, first).chain(steps);
            for step in steps {
                let capacity = list.entries.capacity();
                let mut ended = None;
                match step {
                    Step::Start => {
                        next += 2;
                        list.insert(next, next * 10);
                        model.insert(next, next * 10);
                    }
                    Step::StartLate => {
                        if next > 0 && !model.contains_key(&(next - 1)) {
                            list.insert(next - 1, (next - 1) * 10);
                            model.insert(next - 1, (next - 1) * 10);
                        }
                    }
                    Step::End(at) => {
                        if !model.is_empty() {
                            ended = model.keys().nth(at % model.len()).copied();
                        }
                    }
                    Step::EndLast => ended = model.keys().next_back().copied(),
                }
                if let Some(id) = ended {
                    list.remove(id);
                    model.remove(&id);
                    ends += 1;
                    let (len, now) = (list.entries.len(), list.entries.capacity());
                    if now != capacity {
                        prop_assert!(capacity > 64 && len * 4 < capacity, "shrank {capacity} -> {now} at {len}");
                        prop_assert!(now >= 2 * len, "shrank {capacity} -> {now} at {len}");
                    }
                }
                let live: Vec<(u64, u64)> = list.live().map(|(id, lane)| (id, *lane)).collect();
                let expected: Vec<(u64, u64)> = model.iter().map(|(id, lane)| (*id, *lane)).collect();
                prop_assert_eq!(&live, &expected);
                let first = model.keys().next().copied();
                let last = model.keys().next_back().copied();
                for id in [ended, first, last, Some(next), next.checked_sub(1)].into_iter().flatten() {
                    prop_assert_eq!(list.contains(id), model.contains_key(&id));
                }
                let holes = list.entries.iter().filter(|(_, lane)| lane.is_none()).count();
                prop_assert_eq!(list.holes, holes);
                prop_assert!(holes * 2 <= list.entries.len());
                prop_assert!(list.entries.last().is_none_or(|(_, lane)| lane.is_some()));
                prop_assert!(list.moved <= ends, "{} entries moved for {ends} ends", list.moved);
                prop_assert!(list.entries.capacity() <= (4 * list.entries.len()).max(64));
            }
        }
    }

    #[test]
    fn a_child_under_the_name_of_the_last_shares_its_name() {
        let children = Children::new(Strategy::OneForOne);
        let first = children.name("worker");
        let second = children.name("worker");
        assert!(Arc::ptr_eq(&first, &second));
        let other = children.name("cart");
        assert_eq!(&*other, "cart");
        assert!(!Arc::ptr_eq(&children.name("worker"), &first));
    }

    #[test]
    fn system_ids_count_from_one_and_are_refused_once_spent() {
        let counter = AtomicU32::new(0);
        assert_eq!(next_system_id(&counter), Ok(1));
        assert_eq!(next_system_id(&counter), Ok(2));
        let counter = AtomicU32::new(u32::MAX - 1);
        assert_eq!(next_system_id(&counter), Ok(u32::MAX));
        assert_eq!(next_system_id(&counter), Err(SystemError::IdsExhausted));
        // Spent stays spent: no id is handed out twice.
        assert_eq!(next_system_id(&counter), Err(SystemError::IdsExhausted));
    }
}
