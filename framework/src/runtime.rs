//! The actor loop: one task per actor that owns the instance, takes one
//! message at a time, catches panics and applies supervision.

use std::any::Any;
use std::borrow::Borrow;
use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::task::Poll;
use std::time::Duration;

use parking_lot::Mutex;

use crate::actor::{Actor, Addr, Context, Message, Timers, cause_of};
use crate::dead_letters::{DeadLetter, DeadLetterReason, DeadLetters};
use crate::error::SystemError;
use crate::event::{Cause, EventId};
use crate::launch::Launcher;
use crate::mailbox::{Batch, Busy, Control, Mailbox, MailboxGauges, Owner, Push, Pushed, Refused};
use crate::supervise::{Restart, RestartWindow, Rng};
use crate::system::{ActorConfig, Children, Parent, ShutdownReason, System, Undelivered};

thread_local! {
    /// What the actor task being polled on this thread knows about itself;
    /// `system` 0 when no actor task is being polled.
    static CURRENT: std::cell::Cell<Current> = const {
        std::cell::Cell::new(Current::NONE)
    };
}

/// What an actor task knows about itself, for what its handlers send: its
/// system, and the ids of the message it is handling. Packed into 40 bytes
/// (every actor's task carries one): the message's fields side by side
/// rather than an `Option<Cause>`, with `attempt` 0 for "no message"
/// (attempts count from 1), and the system's 32-bit id.
#[derive(Clone, Copy)]
struct Current {
    id: EventId,
    correlation_id: EventId,
    attempt: u32,
    system: u32,
}

impl Current {
    /// Outside any actor task.
    const NONE: Current = Current::of_system(0);

    /// An actor task of `system`, handling no message.
    const fn of_system(system: u32) -> Current {
        Current {
            id: EventId::NIL,
            correlation_id: EventId::NIL,
            attempt: 0,
            system,
        }
    }

    fn cause(self) -> Option<Cause> {
        (self.attempt != 0).then_some(Cause {
            id: self.id,
            correlation_id: self.correlation_id,
            attempt: self.attempt,
        })
    }
}

pin_project_lite::pin_project! {
    /// An actor task with its [`Current`], put in the thread-local slot
    /// during each poll and kept here between polls (a hand-written
    /// wrapper: an `async` block would store the task twice).
    struct InActorTask<F> {
        current: Current,
        #[pin]
        task: F,
    }
}

impl<F: Future<Output = ()>> Future for InActorTask<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<()> {
        // Put back on the way out, a panic included: what the task set stays
        // with it, and the thread gets its earlier state again.
        struct Restore<'a> {
            current: &'a mut Current,
            outer: Current,
        }
        impl Drop for Restore<'_> {
            fn drop(&mut self) {
                *self.current = CURRENT.with(|c| c.replace(self.outer));
            }
        }
        let this = self.project();
        let outer = CURRENT.with(|c| c.replace(*this.current));
        let _restore = Restore {
            current: this.current,
            outer,
        };
        this.task.poll(cx)
    }
}

/// The ids of the message being handled by the current actor task, if any.
#[inline]
pub(crate) fn current_cause() -> Option<Cause> {
    CURRENT.with(std::cell::Cell::get).cause()
}

/// Links an envelope sent from a handler to the message being handled:
/// same correlation id, causation id = the handled message's id. Outside a
/// handler it leaves the envelope as it is.
pub(crate) fn link_to_handled<E>(envelope: &mut crate::event::Envelope<E>) {
    if let Some(cause) = current_cause() {
        envelope.meta_mut().caused_by(&cause);
    }
}

/// With one look at the thread-local state: whether the caller is an actor
/// task of this system, and the ids of the message it is handling.
#[inline]
pub(crate) fn caller_in(core: &Core) -> (bool, Option<Cause>) {
    let current = CURRENT.with(std::cell::Cell::get);
    (current.system == core.id, current.cause())
}

/// Whether the caller runs inside an actor task of this system.
#[inline]
pub(crate) fn in_actor_of(core: &Core) -> bool {
    CURRENT.with(std::cell::Cell::get).system == core.id
}

pub(crate) const RUNNING: u8 = 0;
pub(crate) const DRAINING: u8 = 1;
pub(crate) const PAST_DEADLINE: u8 = 2;
pub(crate) const STOPPED: u8 = 3;

/// The part of a system every address needs: its state and dead letters.
pub(crate) struct Core {
    /// The system's id, 1 and up (0 means none in [`Current`]).
    pub(crate) id: u32,
    pub(crate) state: AtomicU8,
    pub(crate) timers: AtomicBool,
    pub(crate) dead_letters: DeadLetters,
    pub(crate) shutdown_entries: Mutex<Vec<Undelivered>>,
    /// How many actors have work now, for `System::settled`.
    pub(crate) busy: Arc<Busy>,
    /// How long a send from inside a handler waits for mailbox room.
    pub(crate) send_deadline: Duration,
    /// Cleared when a shutdown starts stopping actors: nothing new starts.
    pub(crate) spawning: AtomicBool,
    /// The runtime the system was built on: where it spawns tasks, and what
    /// an ask enters while it runs an actor's loop in the asker's task,
    /// which may be on another runtime.
    pub(crate) runtime: tokio::runtime::Handle,
}

impl Core {
    #[inline]
    pub(crate) fn accepts_outside(&self) -> bool {
        self.state.load(Ordering::Acquire) == RUNNING
    }

    /// Whether the caller may send now: any actor of this system may;
    /// outside callers only while the system runs.
    #[inline]
    pub(crate) fn accepts_from_caller(&self) -> bool {
        self.accepts_outside() || in_actor_of(self)
    }

    /// The deadline of a send made now: set inside a handler, none outside.
    pub(crate) fn send_deadline_from_now(&self) -> Option<tokio::time::Instant> {
        in_actor_of(self).then(|| tokio::time::Instant::now() + self.send_deadline)
    }

    pub(crate) fn timers_running(&self) -> bool {
        self.timers.load(Ordering::Acquire)
    }

    pub(crate) fn record(&self, letter: DeadLetter) {
        if self.state.load(Ordering::Acquire) != RUNNING {
            self.shutdown_entries.lock().push(Undelivered {
                actor: letter.target.to_string(),
                event: letter.meta.event(),
                id: letter.meta.id(),
                correlation_id: letter.meta.correlation_id(),
                reason: letter.reason,
            });
        }
        self.dead_letters.push(letter);
    }
}

/// An actor's mailbox with its identity: what an [`Addr`] points at. The
/// identity lies inside the mailbox (see [`Owner`]): its system at the
/// front, which every send reads, and its id and name, read-only, between
/// what senders write and what the receiver writes for every message. The
/// cell reads as its id and name (`cell.id`, `cell.name()`).
pub(crate) struct Cell<M> {
    pub(crate) mailbox: Mailbox<M, Identity>,
    /// What starts the actor's loop and keeps it once it has a task,
    /// through which an ask polls the loop in place; `None` for an entity,
    /// which gets a task at once.
    pub(crate) runner: Option<Arc<Launcher>>,
}

/// An actor's id and name.
pub(crate) struct Identity {
    pub(crate) id: u64,
    name: ActorName,
}

/// An actor's name as its cell keeps it: given at its spawn, or, for an
/// entity, made from its kind's name and its key the first time something
/// asks for it (a dead letter, a gauge, a log line, a span), so that
/// activating an entity neither formats nor allocates a name that most
/// entities never need. The entity's link keeps the name once made.
enum ActorName {
    Given(Arc<str>),
    Made(Arc<dyn Named>),
}

/// What makes an entity's name on demand and keeps it: its link to its
/// kind.
pub(crate) trait Named: Send + Sync {
    /// The name, `<kind>/<key>`, made at the first call.
    fn name(&self) -> &Arc<str>;
    /// The kind's name, the part before the `/`.
    fn kind_name(&self) -> &str;
}

impl Identity {
    /// The actor's name (made now if it is an entity's, asked for the
    /// first time).
    pub(crate) fn name(&self) -> &Arc<str> {
        match &self.name {
            ActorName::Given(name) => name,
            ActorName::Made(of) => of.name(),
        }
    }
}

impl Owner for Identity {
    /// The actor's system.
    type Head = Arc<Core>;
    fn busy(core: &Arc<Core>) -> Option<&Busy> {
        Some(&core.busy)
    }
}

impl<M> Cell<M> {
    /// The actor's system.
    pub(crate) fn core(&self) -> &Arc<Core> {
        &self.mailbox.head
    }
}

impl<M> std::ops::Deref for Cell<M> {
    type Target = Identity;
    fn deref(&self) -> &Identity {
        &self.mailbox.owner
    }
}

impl<M: Message> Cell<M> {
    /// Dead-letters what an accepted push displaced (the drop policies).
    pub(crate) fn settle(&self, pushed: Pushed<M>) {
        match pushed {
            Pushed::Queued => {}
            Pushed::Evicted(old) => self.dead_letter(*old, DeadLetterReason::DroppedOldest, None),
            Pushed::DroppedNewest(new) => {
                self.dead_letter(*new, DeadLetterReason::DroppedNewest, None)
            }
        }
    }

    /// Sends through the mailbox's bound. From outside the system's actors
    /// it is refused while shutting down; from inside a handler a wait for
    /// room ends at the send deadline, with the message dead-lettered.
    ///
    /// The first poll queues the value at once when there is room: no clock
    /// is read and no timer made unless the mailbox turns out full.
    pub(crate) fn send<T, W: FnOnce(T) -> M>(&self, value: T, wrap: W) -> Sending<'_, M, T, W> {
        Sending {
            cell: self,
            push: self.mailbox.push(value, wrap),
            caller: None,
            checked: false,
            timer: None,
        }
    }

    /// [`send`](Self::send) for a caller known to be an actor of this
    /// system (`internal`) or not.
    pub(crate) fn send_as<T, W: FnOnce(T) -> M>(
        &self,
        value: T,
        wrap: W,
        internal: bool,
    ) -> Sending<'_, M, T, W> {
        // Inside a handler the deadline counts from the moment the mailbox
        // turns out full; no clock is read when there is room.
        let deadline = internal.then_some(SendDeadline::After(self.core().send_deadline));
        self.send_by(value, wrap, internal, deadline)
    }

    /// [`send`](Self::send) with the caller's view given: whether it is an
    /// actor of this system, and its deadline (`None`: none), for a caller
    /// that tries several times under one deadline.
    pub(crate) fn send_by<T, W: FnOnce(T) -> M>(
        &self,
        value: T,
        wrap: W,
        internal: bool,
        deadline: Option<SendDeadline>,
    ) -> Sending<'_, M, T, W> {
        Sending {
            caller: Some((internal, deadline)),
            ..self.send(value, wrap)
        }
    }

    pub(crate) fn dead_letter(&self, message: M, reason: DeadLetterReason, error: Option<String>) {
        record_message(self.core(), self.name().clone(), message, reason, error);
    }
}

/// Dead-letters a message addressed to `target`.
pub(crate) fn record_message<M: Message>(
    core: &Core,
    target: Arc<str>,
    message: M,
    reason: DeadLetterReason,
    error: Option<String>,
) {
    let meta = message.meta().clone();
    let payload = message.into_dead_letter(reason, error.as_deref());
    core.record(DeadLetter {
        meta,
        payload: Some(payload),
        reason,
        target,
        error,
    });
}

/// When a send from inside a handler gives up waiting for room.
#[derive(Debug, Clone, Copy)]
pub(crate) enum SendDeadline {
    /// At this instant (one deadline over several tries).
    At(tokio::time::Instant),
    /// This long after the mailbox turned out full.
    After(Duration),
}

/// The future of [`Cell::send`]: one attempt under the mailbox's lock, and
/// a wait for room (with a deadline inside handlers) only when it is full.
pub(crate) struct Sending<'a, M, T, W> {
    cell: &'a Cell<M>,
    push: Push<'a, M, T, W, Identity>,
    /// Whether the caller is an actor of this system, and its deadline;
    /// found out at the first poll unless given.
    caller: Option<(bool, Option<SendDeadline>)>,
    /// Whether the first poll made its checks.
    checked: bool,
    /// Made only once the mailbox turned out full.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<M, T, W> Unpin for Sending<'_, M, T, W> {}

impl<M: Message, T, W: FnOnce(T) -> M> Future for Sending<'_, M, T, W> {
    type Output = Result<(), SendError<T>>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let cell = this.cell;
        if !this.checked {
            this.checked = true;
            let (internal, _) = *this.caller.get_or_insert_with(|| {
                let internal = in_actor_of(cell.core());
                // Inside a handler the deadline counts from the moment the
                // mailbox turns out full; no clock is read when there is room.
                (
                    internal,
                    internal.then_some(SendDeadline::After(cell.core().send_deadline)),
                )
            });
            if !internal && !cell.core().accepts_outside() {
                let Some((value, _)) = this.push.cancel() else {
                    unreachable!("an unpolled push holds its value");
                };
                return Poll::Ready(Err(SendError::ShuttingDown(value)));
            }
        }
        let deadline = this.caller.and_then(|(_, deadline)| deadline);
        match Pin::new(&mut this.push).poll(cx) {
            Poll::Ready(Ok(pushed)) => {
                cell.settle(pushed);
                return Poll::Ready(Ok(()));
            }
            Poll::Ready(Err(Refused::Full(value))) => {
                return Poll::Ready(Err(SendError::Full(value)));
            }
            Poll::Ready(Err(Refused::Closed(value))) => {
                return Poll::Ready(Err(SendError::Closed(value)));
            }
            Poll::Pending => {}
        }
        let Some(deadline) = deadline else {
            return Poll::Pending;
        };
        let timer = this.timer.get_or_insert_with(|| {
            Box::pin(match deadline {
                SendDeadline::At(at) => tokio::time::sleep_until(at),
                SendDeadline::After(wait) => tokio::time::sleep(wait),
            })
        });
        if timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        let Some((value, wrap)) = this.push.cancel() else {
            unreachable!("a push that timed out still holds its value");
        };
        let message = wrap(value);
        let id = message.meta().id();
        let why = format!(
            "the mailbox was still full after the send deadline of {:?}",
            cell.core().send_deadline
        );
        cell.dead_letter(message, DeadLetterReason::DeadlineExceeded, Some(why));
        Poll::Ready(Err(SendError::DeadlineExceeded(id)))
    }
}

impl<M, T, W> Sending<'_, M, T, W> {
    /// The value still to be queued, if any.
    #[inline]
    pub(crate) fn value_mut(&mut self) -> Option<&mut T> {
        self.push.value_mut()
    }
}

/// Why [`Cell::send`] did not queue a value.
pub(crate) enum SendError<T> {
    Full(T),
    Closed(T),
    ShuttingDown(T),
    DeadlineExceeded(crate::event::EventId),
}

/// A type-erased view of a cell: control, cancellation and gauges.
pub(crate) trait Lane: Send + Sync {
    fn control(&self, control: Control) -> bool;
    fn cancel(&self);
    fn gauges(&self) -> MailboxGauges;
}

impl<M: Message> Lane for Cell<M> {
    fn control(&self, control: Control) -> bool {
        self.mailbox.push_control(control)
    }
    fn cancel(&self) {
        self.mailbox.cancel();
    }
    fn gauges(&self) -> MailboxGauges {
        self.mailbox.gauges(self.name())
    }
}

/// What an entity's loop reports to its kind: idle, and gone.
pub(crate) trait Passivation: Send + Sync {
    /// The entity `id` has been idle for its idle time: passivate it if no
    /// message slipped in (its mailbox is then closed). `true` if it did.
    fn try_passivate(&self, id: u64) -> bool;
    /// The entity `id` ended (passivated, stopped or failed for good);
    /// `restarts` is its restart window, kept for the key's next activation.
    fn exited(&self, id: u64, restarts: RestartWindow);
    /// The restart window of the key's earlier activations.
    fn restarts(&self) -> RestartWindow;
    /// Polls the entity's idle timer (see [`IdleClock::poll`]): ready once
    /// it has been idle for its kind's idle time.
    fn poll_idle(&self, armed: &mut bool, cx: &mut std::task::Context<'_>) -> Poll<()>;
}

/// An actor's name as its spawner has it.
pub(crate) enum Name<'a> {
    /// Given by the user: an actor shares it with the sibling made just
    /// before it if theirs is the same (the members of a group).
    Given(&'a str),
    /// Made for this actor alone, when first needed, by an entity's link
    /// (its kind and key).
    Made(Arc<dyn Named>),
}

/// What builds an actor's instances, at its start and at each restart: a
/// closure given by the user, or, for an entity, its link to its kind
/// (which holds the key), a type the kind can name to keep made actors in.
pub(crate) trait Factory<A>: Send + Sync + 'static {
    fn make(&self) -> A;
}

impl<A, F: Fn() -> A + Send + Sync + 'static> Factory<A> for F {
    fn make(&self) -> A {
        self()
    }
}

/// Spawns an actor under `parent`, registered among `siblings`.
pub(crate) fn spawn_actor<A: Actor, F>(
    system: &System,
    name: Name<'_>,
    parent: Parent,
    siblings: &Arc<Children>,
    configure: impl FnOnce(ActorConfig) -> ActorConfig,
    factory: F,
) -> Result<Addr<A>, SystemError>
where
    F: Factory<A>,
{
    let (addr, Unstarted(run)) =
        make_unstarted(system, name, parent, siblings, configure, factory)?;
    start_run(system, run);
    Ok(addr)
}

/// An actor made and registered, whose loop has not started: it starts at
/// [`Start::run`], or when dropped. What must be in place before its
/// `started` hook runs (the subscriptions of a declared actor) goes between.
pub(crate) struct Start<'a, A: Actor, F: Factory<A>> {
    run: Option<ActorRun<A, F>>,
    system: &'a System,
}

impl<A: Actor, F: Factory<A>> Start<'_, A, F> {
    pub(crate) fn run(mut self) {
        self.go();
    }

    fn go(&mut self) {
        if let Some(run) = self.run.take() {
            start_run(self.system, run);
        }
    }
}

impl<A: Actor, F: Factory<A>> Drop for Start<'_, A, F> {
    fn drop(&mut self) {
        self.go();
    }
}

/// Starts an actor's loop. Its future is made here: until then only its
/// state (a fraction of its size) is moved around. Detached: the list, not a
/// join handle, tells when it ends. Inlined, so that the loop's state is
/// not copied on its way here.
#[inline(always)]
fn start_run<A: Actor, F: Factory<A>>(system: &System, run: ActorRun<A, F>) {
    let runner = run.cx.addr.cell.runner.clone();
    let task = InActorTask {
        current: Current::of_system(system.core().id),
        task: run.run(),
    };
    // It starts in the caller's task and gets a task of its own when first
    // woken (see `launch`). An entity is activated by an event to handle,
    // under its kind's lock, where `started` must not run: it gets a task
    // at once, from a starter task of its kind (see `entity::start`). So
    // does an actor started while a panic unwinds, so that no user code
    // runs there.
    match runner {
        Some(launcher) if !std::thread::panicking() => launcher.start(system.parked(), task),
        _ => drop(system.handle().spawn(task)),
    }
}

/// An actor made and registered whose loop has not started
/// ([`make_unstarted`]). An entity's is made by the task that publishes to
/// it and started by a task of its kind ([`Unstarted::start`]). Dropped
/// unstarted (with its runtime), it leaves its siblings' list as a dropped
/// task does.
pub(crate) struct Unstarted<A: Actor, F>(ActorRun<A, F>);

impl<A: Actor, F: Factory<A>> Unstarted<A, F> {
    /// Gives the actor its task, in its system's runtime.
    pub(crate) fn start(self) {
        let system = self.0.cx.system.clone();
        start_run(&system, self.0);
    }
}

/// Makes an actor under `parent`, registered among `siblings`, to be
/// started by the [`Start`] returned with its address.
pub(crate) fn make_actor<'a, A: Actor, F>(
    system: &'a System,
    name: Name<'_>,
    parent: Parent,
    siblings: &Arc<Children>,
    configure: impl FnOnce(ActorConfig) -> ActorConfig,
    factory: F,
) -> Result<(Addr<A>, Start<'a, A, F>), SystemError>
where
    F: Factory<A>,
{
    let (addr, Unstarted(run)) =
        make_unstarted(system, name, parent, siblings, configure, factory)?;
    Ok((
        addr,
        Start {
            run: Some(run),
            system,
        },
    ))
}

/// Makes an actor under `parent` and registers it among `siblings`; its
/// loop is started by [`spawn_actor`], by the [`Start`] of [`make_actor`],
/// or elsewhere through the [`Unstarted`] returned with its address.
/// Inlined, so that the loop's state is made where its caller keeps it.
#[inline(always)]
pub(crate) fn make_unstarted<A: Actor, F: Factory<A>>(
    system: &System,
    name: Name<'_>,
    parent: Parent,
    siblings: &Arc<Children>,
    configure: impl FnOnce(ActorConfig) -> ActorConfig,
    factory: F,
) -> Result<(Addr<A>, Unstarted<A, F>), SystemError> {
    let core = system.core();
    let state = core.state.load(Ordering::Acquire);
    if state >= STOPPED
        || (state != RUNNING && !in_actor_of(core))
        || !core.spawning.load(Ordering::Acquire)
    {
        return Err(SystemError::ShuttingDown);
    }
    // Overrides are looked up by name: an entity's is made here only if
    // one is set under its kind's name.
    let overridable = match &name {
        Name::Given(given) => Some(*given),
        Name::Made(of) if system.has_overrides_under(of.kind_name()) => Some(&**of.name()),
        Name::Made(_) => None,
    };
    let config = system.config_for(overridable, configure)?;
    let id = system.next_actor_id();
    let cell = Arc::new(Cell {
        mailbox: Mailbox::owned(
            config.mailbox_config(),
            core.clone(),
            Identity {
                id,
                name: match name {
                    Name::Given(given) => ActorName::Given(siblings.name(given)),
                    Name::Made(of) => ActorName::Made(of),
                },
            },
        ),
        runner: (!matches!(parent, Parent::Kind(_)))
            .then(|| Launcher::new(config.ask_in_place_value())),
    });
    let addr = Addr { cell: cell.clone() };
    let supervision = system.shared_supervision(config.supervision_config());
    // Restarts are counted per key for entities, across activations.
    let window = match &parent {
        Parent::Kind(link) => link.restarts(),
        Parent::Root | Parent::Actor(_) => RestartWindow::default(),
    };
    let run = ActorRun {
        factory,
        cx: Context {
            addr: addr.clone(),
            system: system.clone(),
            children: None,
            timers: Timers::new(),
            stop_requested: false,
            supervision,
        },
        parent,
        window,
        leave: Leave {
            siblings: siblings.clone(),
            id,
        },
    };
    siblings.add(id, cell);
    Ok((addr, Unstarted(run)))
}

struct ActorRun<A: Actor, F> {
    factory: F,
    cx: Context<A>,
    /// Who supervises the actor: the system, an actor, or, for an entity,
    /// its kind, through the entity's link (which also keeps its idle
    /// timer).
    parent: Parent,
    window: RestartWindow,
    /// Last, so that it is dropped last: what takes the actor off its
    /// siblings' list.
    leave: Leave,
}

/// Takes an actor off its siblings' list once its task has ended (or was
/// dropped unfinished, with its runtime), after everything else the task
/// held (the factory, the context) has been dropped: so a supervisor
/// stopping its children sees them gone only then.
struct Leave {
    siblings: Arc<Children>,
    id: u64,
}

impl Drop for Leave {
    fn drop(&mut self) {
        self.siblings.remove(self.id);
    }
}

/// An entity's idle timer, kept by its link to its kind (so that an
/// activation does not allocate it apart) and polled only by the entity's
/// loop.
///
/// The timer is not moved at each idle spell (an entity that gets an event
/// now and then would move its entry in tokio's timer wheel once per event):
/// a spell notes when it is due to end, and when the timer fires early for
/// that spell it is set again to the spell's own deadline.
#[derive(Default)]
pub(crate) struct IdleClock {
    /// Made at the first idle spell; fires at or before the deadline of the
    /// spell now running. Polled right after it is made or set again, so
    /// while it has not fired it holds the task's waker.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// When the idle spell now running ends, noted at its start (no
    /// clock is read before the first).
    due: Option<tokio::time::Instant>,
}

impl IdleClock {
    /// Polls the idle timer; `armed` is false at the start of an idle
    /// spell, which is then due to end `idle_time` from now. Ready once the
    /// spell has lasted that long.
    pub(crate) fn poll(
        &mut self,
        idle_time: Duration,
        armed: &mut bool,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<()> {
        if !std::mem::replace(armed, true) {
            self.due = None;
        }
        let due = *self.due.get_or_insert_with(|| {
            let now = tokio::time::Instant::now();
            // An idle time too long to add (`Duration::MAX` for "never") is
            // as good as a century.
            now.checked_add(idle_time)
                .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 86_400))
        });
        let timer = match &mut self.timer {
            // Not fired: it holds this task's waker (one per task, so the
            // same as when it was polled), and polling it again would only
            // find it pending.
            Some(timer) if !timer.is_elapsed() => return Poll::Pending,
            Some(timer) => timer,
            None => self.timer.insert(Box::pin(tokio::time::sleep_until(due))),
        };
        loop {
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            // Fired: at this spell's deadline, or before it (set for an
            // earlier spell).
            if tokio::time::Instant::now() >= due {
                return Poll::Ready(());
            }
            timer.as_mut().reset(due);
        }
    }
}

/// How one life of an instance ended.
enum End {
    /// Stopped by a control signal (parent, system, `Addr::stop`).
    Stop,
    /// `Context::stop` was called.
    SelfStop,
    /// A panic, a failed start or an escalated child failure. (Boxed
    /// strings, a word shorter than `String`s: while the instance's end
    /// runs, the actor's task stores this.)
    Failed(Box<str>),
    /// A sibling failed and the parent's strategy restarts this one too.
    Sibling(Box<str>),
    /// The shutdown deadline passed while a handler ran.
    Cancelled,
    /// An idle entity passivated.
    Passivated,
}

/// What an actor's earlier instances left behind, for the next.
struct Failures<M> {
    /// Why the next instance is started: given to `Actor::restarted`.
    why: Option<String>,
    /// The last failure, for a message kept for a retry that never comes.
    last: Option<String>,
    /// A message kept for a retry after a panic, handled first by the next
    /// instance.
    carry: Option<M>,
    /// The generator of backoff jitter, made at its first draw.
    rng: Option<Rng>,
}

impl<M> Default for Failures<M> {
    fn default() -> Self {
        Failures {
            why: None,
            last: None,
            carry: None,
            rng: None,
        }
    }
}

impl<M> Failures<M> {
    /// A jitter draw in `[0, 1)` from the generator of actor `id` of
    /// `system`, seeded from the system's seed and the id: so a system built
    /// with a seed draws the same jitter every run.
    fn jitter(failures: &mut Option<Box<Self>>, system: &System, id: u64) -> f64 {
        failures
            .get_or_insert_default()
            .rng
            .get_or_insert_with(|| Rng::new(system.seed() ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15)))
            .unit()
    }
}

/// How a start (or restart) hook ended: `None` if the instance may serve.
fn start_failure(hook: Guarded<Result<(), crate::error::HandlerError>>) -> Option<End> {
    match hook {
        Guarded::Done(Ok(())) => None,
        Guarded::Done(Err(e)) => Some(End::Failed(format!("start failed: {e}").into())),
        Guarded::Panicked(p) => Some(End::Failed(format!("start panicked: {p}").into())),
        Guarded::Cancelled => Some(End::Cancelled),
    }
}

/// How one message ended.
enum Outcome<M> {
    Done,
    Panicked(String, Option<M>),
    Cancelled,
}

enum Guarded<T> {
    Done(T),
    Panicked(String),
    Cancelled,
}

pub(crate) fn panic_text(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_owned()
    }
}

/// Polls `fut` inside `span`, catching a panic, and gives up when the
/// mailbox's owner is cancelled (shutdown deadline) while it waits. The
/// future is dropped as soon as it ends, a panic in its drop contained.
/// `span` is owned for a handled message (so that the task stores it once)
/// and borrowed for the lifecycle hooks, which run in none.
fn guarded<F: Future, M, S: Borrow<tracing::Span>>(
    fut: F,
    span: S,
    mailbox: &Mailbox<M, Identity>,
) -> Guard<'_, F, M, S> {
    Guard {
        fut: Some(fut),
        span,
        mailbox,
    }
}

/// No span: what the lifecycle hooks run in.
static NO_SPAN: tracing::Span = tracing::Span::none();

pin_project_lite::pin_project! {
    /// The future of [`guarded`], written by hand so that the actor's task
    /// stores nothing more than it while a handler runs.
    struct Guard<'a, F, M, S> {
        #[pin]
        fut: Option<F>,
        span: S,
        mailbox: &'a Mailbox<M, Identity>,
    }
}

impl<F: Future, M, S: Borrow<tracing::Span>> Future for Guard<'_, F, M, S> {
    type Output = Guarded<F::Output>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let outcome = {
            let _entered = Borrow::<tracing::Span>::borrow(&*this.span).enter();
            let Some(fut) = this.fut.as_mut().as_pin_mut() else {
                return Poll::Ready(Guarded::Panicked("polled after completion".to_owned()));
            };
            match catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
                Ok(Poll::Ready(value)) => Guarded::Done(value),
                Err(payload) => Guarded::Panicked(panic_text(payload.as_ref())),
                Ok(Poll::Pending) => match this.mailbox.poll_cancelled(cx) {
                    Poll::Ready(()) => Guarded::Cancelled,
                    Poll::Pending => return Poll::Pending,
                },
            }
        };
        // Dropping a future that panicked may panic again: contain it.
        let _ = catch_unwind(AssertUnwindSafe(|| this.fut.set(None)));
        Poll::Ready(outcome)
    }
}

/// Sleeps unless the shutdown deadline cancels the wait; `false` if cancelled.
async fn sleep_unless_cancelled<M>(delay: Duration, mailbox: &Mailbox<M, Identity>) -> bool {
    if delay.is_zero() {
        return !mailbox.is_cancelled();
    }
    let mut sleep = pin!(tokio::time::sleep(delay));
    poll_fn(|cx| {
        if sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(true);
        }
        mailbox.poll_cancelled(cx).map(|()| false)
    })
    .await
}

/// The span of one handled message (DEBUG: off unless a subscriber asks),
/// boxed: no span is no pointer, and while a handler runs the actor's task
/// stores one word for it rather than a span's five.
struct HandleSpan(Option<Box<tracing::Span>>);

impl Borrow<tracing::Span> for HandleSpan {
    fn borrow(&self) -> &tracing::Span {
        self.0.as_deref().unwrap_or(&NO_SPAN)
    }
}

/// The span to handle a message in. The level is checked here, inline, so
/// that with DEBUG off nothing more is done.
#[inline(always)]
fn handle_span(actor: &Identity, meta: &crate::event::Meta) -> HandleSpan {
    if tracing::level_enabled!(tracing::Level::DEBUG) {
        enabled_handle_span(actor, meta)
    } else {
        HandleSpan(None)
    }
}

/// [`handle_span`] once DEBUG may be on. A root span, whichever task
/// polls the loop: the actor's own, or an asker's that polls it in place
/// (see `launch`), whose current span is not the handler's parent.
#[inline(never)]
fn enabled_handle_span(actor: &Identity, meta: &crate::event::Meta) -> HandleSpan {
    let span = tracing::debug_span!(
        parent: None,
        "handle",
        actor = %actor.name(),
        event = meta.event(),
        event_id = %meta.id(),
        correlation_id = %meta.correlation_id(),
        attempt = meta.attempt(),
    );
    HandleSpan((!span.is_disabled()).then(|| Box::new(span)))
}

#[inline(always)]
fn set_cause(cause: Option<Cause>) {
    CURRENT.with(|c| {
        let current = c.get();
        c.set(match cause {
            // An attempt of 0 would read as "no message": attempts count
            // from 1, and the link is kept whatever the count says.
            Some(cause) => Current {
                id: cause.id,
                correlation_id: cause.correlation_id,
                attempt: cause.attempt.max(1),
                system: current.system,
            },
            None => Current::of_system(current.system),
        });
    });
}

impl<A: Actor, F: Factory<A>> ActorRun<A, F> {
    /// The actor's whole life. Written as a block that owns `self` rather
    /// than an `async fn`, whose argument would be stored twice in the task.
    #[allow(clippy::manual_async_fn)]
    fn run(mut self) -> impl Future<Output = ()> + Send {
        async move {
            let cell = self.cx.addr.cell.clone();
            // Why the instance is being restarted, the last failure, and a
            // message kept for a retry after a panic: boxed, made only at a
            // first failure, so that the loop's future stays small.
            let mut failures: Option<Box<Failures<A::Msg>>> = None;
            let mut batch = Batch::default();
            loop {
                // Each step binds its result in a statement of its own, so that
                // nothing of a finished step stays stored in the task while the
                // instance serves.
                let end = 'life: {
                    let mut actor = match catch_unwind(AssertUnwindSafe(|| self.factory.make())) {
                        Ok(actor) => actor,
                        Err(payload) => {
                            break 'life End::Failed(
                                format!("the factory panicked: {}", panic_text(payload.as_ref()))
                                    .into(),
                            );
                        }
                    };
                    let why = failures.as_ref().and_then(|f| f.why.as_deref());
                    let hook = match why {
                        None => guarded(actor.started(&mut self.cx), &NO_SPAN, &cell.mailbox).await,
                        Some(w) => {
                            guarded(actor.restarted(w, &mut self.cx), &NO_SPAN, &cell.mailbox).await
                        }
                    };
                    let end = if let Some(end) = start_failure(hook) {
                        end
                    } else {
                        // Serving, in this block rather than in a future of
                        // its own, which would store references to what this
                        // one holds.
                        let end = 'serve: {
                            // The message being handled, received straight
                            // into this slot and handled in place: moved
                            // again only when it fails.
                            let mut current: Option<A::Msg> = None;
                            loop {
                                if let Some(message) =
                                    failures.as_mut().and_then(|f| f.carry.take())
                                {
                                    current = Some(message);
                                } else {
                                    let mut armed = false;
                                    let next = poll_fn(|cx| {
                                        let next =
                                            cell.mailbox.poll_take(cx, &mut batch, &mut current);
                                        if next.is_ready() {
                                            return next.map(Some);
                                        }
                                        match &mut self.parent {
                                            Parent::Kind(link) => {
                                                link.poll_idle(&mut armed, cx).map(|()| None)
                                            }
                                            Parent::Root | Parent::Actor(_) => Poll::Pending,
                                        }
                                    })
                                    .await;
                                    match next {
                                        // A message, now in `current`.
                                        Some(None) => {}
                                        Some(Some(Control::Stop)) => break 'serve End::Stop,
                                        Some(Some(Control::Restart(w))) => {
                                            break 'serve End::Sibling(w.into());
                                        }
                                        Some(Some(Control::Escalate(w))) => {
                                            break 'serve End::Failed(w.into());
                                        }
                                        Some(Some(Control::Tick(id))) => {
                                            match self.cx.timers.tick(id) {
                                                Some(message) => current = Some(message),
                                                None => continue,
                                            }
                                        }
                                        None => {
                                            let passivated = matches!(
                                                &self.parent,
                                                Parent::Kind(link)
                                                    if link.try_passivate(cell.id)
                                            );
                                            if passivated {
                                                break 'serve End::Passivated;
                                            }
                                            continue;
                                        }
                                    }
                                }
                                let Some(message) = current.as_mut() else {
                                    unreachable!("a message was received into the slot");
                                };
                                // The common case in place, with nothing of the
                                // retry path in this future: one attempt, then
                                // the acknowledgement.
                                let meta = message.meta();
                                set_cause(Some(cause_of(meta)));
                                let span = handle_span(&cell, meta);
                                let first = guarded(
                                    actor.handle(message, &mut self.cx),
                                    span,
                                    &cell.mailbox,
                                )
                                .await;
                                set_cause(None);
                                let outcome = match first {
                                    Guarded::Done(Ok(())) => {
                                        if let Some(meta) = current.as_ref().map(Message::meta) {
                                            if let Some(ack) = meta.ack_handle() {
                                                ack.ack(meta.id());
                                            }
                                        }
                                        current = None;
                                        Outcome::Done
                                    }
                                    // A failure: retries, backoff and dead letters
                                    // live in a future of their own, made only now.
                                    failed => {
                                        let Some(message) = current.take() else {
                                            unreachable!("the failed message is in the slot");
                                        };
                                        Box::pin(self.deliver(
                                            &mut actor,
                                            message,
                                            Some(failed),
                                            &cell,
                                            &mut failures,
                                        ))
                                        .await
                                    }
                                };
                                match outcome {
                                    Outcome::Done => {}
                                    Outcome::Panicked(w, retry) => {
                                        if let Some(message) = retry {
                                            failures.get_or_insert_default().carry = Some(message);
                                        }
                                        break 'serve End::Failed(
                                            format!("a handler panicked: {w}").into(),
                                        );
                                    }
                                    Outcome::Cancelled => break 'serve End::Cancelled,
                                }
                                if self.cx.stop_requested {
                                    break 'serve End::SelfStop;
                                }
                            }
                        };
                        // What the batch still holds goes back to the
                        // queue: for the next instance, or dead letters.
                        cell.mailbox.unreceive(&mut batch);
                        end
                    };
                    // Stopping, passivating or restarting is work `settled` waits for.
                    cell.mailbox.mark_busy();
                    // In a future of its own, which alone stores `end`
                    // while it runs.
                    let end = self.end_life(&mut actor, end, &cell).await;
                    let _ = catch_unwind(AssertUnwindSafe(move || drop(actor)));
                    end
                };
                self.cx.timers.clear();
                self.cx.stop_requested = false;
                let failure = match end {
                    End::Stop | End::Cancelled | End::Passivated => break,
                    End::SelfStop if self.cx.supervision.restart != Restart::Permanent => break,
                    End::SelfStop => {
                        "it stopped itself and is restarted (Restart::Permanent)".to_owned()
                    }
                    End::Sibling(_) if self.cx.supervision.restart == Restart::Temporary => break,
                    End::Sibling(w) => {
                        tracing::info!(actor = %cell.name(), reason = %w, "restarting with a failed sibling");
                        failures.get_or_insert_default().why = Some(w.into());
                        continue;
                    }
                    End::Failed(w) => w.into(),
                };
                failures.get_or_insert_default().last = Some(failure.clone());
                if self.cx.supervision.restart == Restart::Temporary {
                    tracing::error!(actor = %cell.name(), failure = %failure, "actor failed and stops (Restart::Temporary)");
                    break;
                }
                let now = tokio::time::Instant::now();
                if !self.window.admit(now, &self.cx.supervision.intensity) {
                    tracing::error!(actor = %cell.name(), failure = %failure, "restart intensity exceeded");
                    self.escalate(cell.name(), &failure);
                    break;
                }
                tracing::warn!(actor = %cell.name(), failure = %failure, "restarting actor");
                self.leave
                    .siblings
                    .restart_peers(cell.id, cell.name(), &failure);
                let n = self.window.len().saturating_sub(1) as u32;
                let jitter = Failures::jitter(&mut failures, &self.cx.system, cell.id);
                let delay = self.cx.supervision.backoff.delay(n, jitter);
                // Boxed: made only for a restart.
                if !Box::pin(sleep_unless_cancelled(delay, &cell.mailbox)).await {
                    break;
                }
                failures.get_or_insert_default().why = Some(failure);
            }
            // A message kept for a retry after a panic, when no retry comes.
            if let Some(Failures {
                carry: Some(message),
                last,
                ..
            }) = failures.map(|f| *f)
            {
                cell.dead_letter(message, DeadLetterReason::Panicked, last);
            }
            if let Some(children) = &self.cx.children {
                Box::pin(children.stop_all()).await;
            }
            self.cx.timers.clear();
            let reason = if cell.core().state.load(Ordering::Acquire) >= PAST_DEADLINE {
                DeadLetterReason::ShutdownDeadline
            } else {
                DeadLetterReason::ActorStopped
            };
            for message in cell.mailbox.close() {
                cell.dead_letter(message, reason, None);
            }
            // Before this actor stops counting as busy: an entity's next
            // activation (holding what arrived while it passivated) is started
            // first, so `settled` never sees a gap between the two.
            if let Parent::Kind(link) = &self.parent {
                link.exited(cell.id, std::mem::take(&mut self.window));
            }
            cell.mailbox.retire();
        }
    }

    /// Ends an instance's life: its children stop first, then its
    /// `stopping` hook runs (unless it failed or is restarted with a
    /// sibling). Returns `end`. A block that owns its arguments, which an
    /// `async fn` would store twice.
    #[allow(clippy::manual_async_fn)]
    fn end_life<'a>(
        &'a mut self,
        actor: &'a mut A,
        end: End,
        cell: &'a Cell<A::Msg>,
    ) -> impl Future<Output = End> + Send + 'a {
        async move {
            if let Some(children) = &self.cx.children {
                // Boxed: made only for an actor with children.
                Box::pin(children.stop_all()).await;
            }
            if matches!(
                end,
                End::Stop | End::Cancelled | End::SelfStop | End::Passivated
            ) {
                let _ = guarded(actor.stopping(&mut self.cx), &NO_SPAN, &cell.mailbox).await;
            }
            end
        }
    }

    /// Handles `message` until it succeeds or is given up on; `first` is
    /// the outcome of an attempt already made.
    async fn deliver(
        &mut self,
        actor: &mut A,
        mut message: A::Msg,
        mut first: Option<Guarded<Result<(), crate::error::HandlerError>>>,
        cell: &Cell<A::Msg>,
        failures: &mut Option<Box<Failures<A::Msg>>>,
    ) -> Outcome<A::Msg> {
        let supervision = *self.cx.supervision;
        loop {
            let attempt = message.meta().attempt();
            let result = match first.take() {
                Some(result) => result,
                None => {
                    let meta = message.meta();
                    set_cause(Some(cause_of(meta)));
                    let span = handle_span(cell, meta);
                    let result = guarded(
                        actor.handle(&mut message, &mut self.cx),
                        span,
                        &cell.mailbox,
                    )
                    .await;
                    set_cause(None);
                    result
                }
            };
            match result {
                Guarded::Done(Ok(())) => {
                    let meta = message.meta();
                    if let Some(ack) = meta.ack_handle() {
                        ack.ack(meta.id());
                    }
                    return Outcome::Done;
                }
                Guarded::Done(Err(error)) => {
                    let text = error.to_string();
                    if attempt <= supervision.max_retries {
                        tracing::warn!(actor = %cell.name(), event = message.meta().event(), attempt, error = %text, "handler failed; retrying");
                        let jitter = Failures::jitter(failures, &self.cx.system, cell.id);
                        let delay = supervision.backoff.delay(attempt - 1, jitter);
                        if !sleep_unless_cancelled(delay, &cell.mailbox).await {
                            cell.dead_letter(
                                message,
                                DeadLetterReason::CancelledAtShutdown,
                                Some(text),
                            );
                            return Outcome::Cancelled;
                        }
                        message.meta_mut().attempt = u64::from(attempt) + 1;
                        continue;
                    }
                    cell.dead_letter(message, DeadLetterReason::RetriesExhausted, Some(text));
                    return Outcome::Done;
                }
                Guarded::Panicked(text) => {
                    tracing::error!(actor = %cell.name(), event = message.meta().event(), attempt, panic = %text, "handler panicked");
                    if supervision.retry_after_panic
                        && attempt <= supervision.max_retries
                        && supervision.restart != Restart::Temporary
                    {
                        message.meta_mut().attempt = u64::from(attempt) + 1;
                        return Outcome::Panicked(text, Some(message));
                    }
                    cell.dead_letter(message, DeadLetterReason::Panicked, Some(text.clone()));
                    return Outcome::Panicked(text, None);
                }
                Guarded::Cancelled => {
                    cell.dead_letter(message, DeadLetterReason::CancelledAtShutdown, None);
                    return Outcome::Cancelled;
                }
            }
        }
    }
}

impl<A: Actor, F> ActorRun<A, F> {
    /// Hands a failure past the restart intensity to the parent.
    fn escalate(&self, child: &str, failure: &str) {
        let system = &self.cx.system;
        match &self.parent {
            Parent::Actor(lane) => {
                lane.control(Control::Escalate(format!(
                    "child `{child}` escalated: {failure}"
                )));
            }
            Parent::Kind(_) => {
                tracing::error!(
                    entity = %child,
                    failure = %failure,
                    "entity exceeded its restart intensity and stops; the next message for its key activates a fresh one"
                );
            }
            Parent::Root => {
                // Before this actor dead-letters what it holds, so that the
                // shutdown report lists it.
                system.begin_shutdown();
                let reason = ShutdownReason::Escalated {
                    actor: child.to_owned(),
                    failure: failure.to_owned(),
                };
                let system = system.clone();
                let timeout = system.shutdown_timeout();
                tokio::spawn(async move {
                    system.shutdown_with(reason, timeout).await;
                });
            }
        }
    }
}
