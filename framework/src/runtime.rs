//! The actor loop: one task per actor that owns the instance, takes one
//! message at a time, catches panics and applies supervision.

use std::any::Any;
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
use crate::event::Cause;
use crate::mailbox::{Batch, Busy, Control, Mailbox, MailboxGauges, Push, Pushed, Refused};
use crate::supervise::{Restart, RestartWindow, Rng};
use crate::system::{ActorConfig, Children, Parent, ShutdownReason, System, Undelivered};

thread_local! {
    /// What the actor task being polled on this thread knows about itself;
    /// `system` 0 when no actor task is being polled.
    static CURRENT: std::cell::Cell<Current> = const {
        std::cell::Cell::new(Current { system: 0, cause: None })
    };
}

/// What an actor task knows about itself, for what its handlers send: its
/// system, and the ids of the message it is handling.
#[derive(Clone, Copy)]
struct Current {
    system: u64,
    cause: Option<Cause>,
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
    CURRENT.with(std::cell::Cell::get).cause
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
    (current.system == core.id, current.cause)
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
    pub(crate) id: u64,
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
}

impl Core {
    pub(crate) fn accepts_outside(&self) -> bool {
        self.state.load(Ordering::Acquire) == RUNNING
    }

    /// Whether the caller may send now: any actor of this system may;
    /// outside callers only while the system runs.
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

/// An actor's mailbox with its identity: what an [`Addr`] points at.
/// Laid out in order: the identity, read-only, ahead of the mailbox, whose
/// far end the receiver writes for every message (see [`Mailbox`]).
#[repr(C)]
pub(crate) struct Cell<M> {
    pub(crate) core: Arc<Core>,
    pub(crate) id: u64,
    pub(crate) name: Arc<str>,
    pub(crate) mailbox: Mailbox<M>,
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
        let deadline = internal.then_some(SendDeadline::After(self.core.send_deadline));
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
        record_message(&self.core, self.name.clone(), message, reason, error);
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
    push: Push<'a, M, T, W>,
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
                let internal = in_actor_of(&cell.core);
                // Inside a handler the deadline counts from the moment the
                // mailbox turns out full; no clock is read when there is room.
                (
                    internal,
                    internal.then_some(SendDeadline::After(cell.core.send_deadline)),
                )
            });
            if !internal && !cell.core.accepts_outside() {
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
            cell.core.send_deadline
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
        self.mailbox.gauges(&self.name)
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
}

/// Spawns an actor under `parent`, registered among `siblings`.
pub(crate) fn spawn_actor<A: Actor, F>(
    system: &System,
    name: &str,
    parent: Parent,
    siblings: &Arc<Children>,
    configure: impl FnOnce(ActorConfig) -> ActorConfig,
    factory: F,
) -> Result<Addr<A>, SystemError>
where
    F: Fn() -> A + Send + Sync + 'static,
{
    spawn_with_passivation(system, name, parent, siblings, configure, factory, None)
}

/// [`spawn_actor`], for an entity that passivates when idle.
pub(crate) fn spawn_with_passivation<A: Actor, F>(
    system: &System,
    name: &str,
    parent: Parent,
    siblings: &Arc<Children>,
    configure: impl FnOnce(ActorConfig) -> ActorConfig,
    factory: F,
    passivation: Option<Box<(Duration, Arc<dyn Passivation>)>>,
) -> Result<Addr<A>, SystemError>
where
    F: Fn() -> A + Send + Sync + 'static,
{
    let core = system.core();
    let state = core.state.load(Ordering::Acquire);
    if state >= STOPPED
        || (state != RUNNING && !in_actor_of(core))
        || !core.spawning.load(Ordering::Acquire)
    {
        return Err(SystemError::ShuttingDown);
    }
    let config = system.config_for(name, configure)?;
    let id = system.next_actor_id();
    let cell = Arc::new(Cell {
        mailbox: Mailbox::counted(config.mailbox_config(), core.busy.clone()),
        name: Arc::from(name),
        id,
        core: core.clone(),
    });
    let addr = Addr { cell: cell.clone() };
    let supervision = system.shared_supervision(config.supervision_config());
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
        siblings: siblings.clone(),
        rng: Rng::new(system.seed() ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
        // Restarts are counted per key for entities, across activations.
        window: passivation
            .as_ref()
            .map(|link| link.1.restarts())
            .unwrap_or_default(),
        passivation,
    };
    let system_id = core.id;
    system.register(id, cell.clone());
    siblings.add(
        id,
        cell,
        |task| {
            system.handle().spawn(InActorTask {
                current: Current {
                    system: system_id,
                    cause: None,
                },
                task,
            })
        },
        run.run(),
    );
    Ok(addr)
}

struct ActorRun<A: Actor, F> {
    factory: F,
    cx: Context<A>,
    parent: Parent,
    siblings: Arc<Children>,
    rng: Rng,
    window: RestartWindow,
    /// An entity's idle time and kind (boxed: other actors have none, and
    /// every idle actor's task carries this field).
    passivation: Option<Box<(Duration, Arc<dyn Passivation>)>>,
}

/// How one life of an instance ended.
enum End {
    /// Stopped by a control signal (parent, system, `Addr::stop`).
    Stop,
    /// `Context::stop` was called.
    SelfStop,
    /// A panic, a failed start or an escalated child failure.
    Failed(String),
    /// A sibling failed and the parent's strategy restarts this one too.
    Sibling(String),
    /// The shutdown deadline passed while a handler ran.
    Cancelled,
    /// An idle entity passivated.
    Passivated,
}

/// What an actor's earlier instances left behind, for the next.
#[derive(Default)]
struct Failures {
    /// Why the next instance is started: given to `Actor::restarted`.
    why: Option<String>,
    /// The last failure, for a message kept for a retry that never comes.
    last: Option<String>,
}

/// How a start (or restart) hook ended: `None` if the instance may serve.
fn start_failure(hook: Guarded<Result<(), crate::error::HandlerError>>) -> Option<End> {
    match hook {
        Guarded::Done(Ok(())) => None,
        Guarded::Done(Err(e)) => Some(End::Failed(format!("start failed: {e}"))),
        Guarded::Panicked(p) => Some(End::Failed(format!("start panicked: {p}"))),
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

fn panic_text(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_owned()
    }
}

/// Polls the future in `slot` inside `span`, catching a panic, and gives up
/// when the mailbox's owner is cancelled (shutdown deadline) while it
/// waits. The future is pinned by the caller, so that it is stored once in
/// the caller's state and never moved; `slot` is emptied when it ends.
fn guarded<'a, F: Future, M>(
    slot: Pin<&'a mut Option<F>>,
    span: &'a tracing::Span,
    mailbox: &'a Mailbox<M>,
) -> Guard<'a, F, M> {
    Guard {
        slot,
        span,
        mailbox,
    }
}

/// The future of [`guarded`]: three references, written by hand so that
/// the actor's task stores nothing more while a handler runs.
struct Guard<'a, F, M> {
    slot: Pin<&'a mut Option<F>>,
    span: &'a tracing::Span,
    mailbox: &'a Mailbox<M>,
}

impl<F: Future, M> Future for Guard<'_, F, M> {
    type Output = Guarded<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let outcome = {
            let _entered = this.span.enter();
            let Some(fut) = this.slot.as_mut().as_pin_mut() else {
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
        let _ = catch_unwind(AssertUnwindSafe(|| this.slot.set(None)));
        Poll::Ready(outcome)
    }
}

/// Sleeps unless the shutdown deadline cancels the wait; `false` if cancelled.
async fn sleep_unless_cancelled<M>(delay: Duration, mailbox: &Mailbox<M>) -> bool {
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

/// The span of one handled message (DEBUG: off unless a subscriber asks).
fn handle_span(actor: &str, meta: &crate::event::Meta) -> tracing::Span {
    tracing::debug_span!(
        "handle",
        actor = %actor,
        event = meta.event(),
        event_id = %meta.id(),
        correlation_id = %meta.correlation_id(),
        attempt = meta.attempt,
    )
}

#[inline(always)]
fn set_cause(cause: Option<Cause>) {
    CURRENT.with(|c| c.set(Current { cause, ..c.get() }));
}

impl<A: Actor, F: Fn() -> A + Send + Sync + 'static> ActorRun<A, F> {
    /// The actor's whole life. Written as a block that owns `self` rather
    /// than an `async fn`, whose argument would be stored twice in the task.
    #[allow(clippy::manual_async_fn)]
    fn run(mut self) -> impl Future<Output = ()> + Send {
        async move {
            let cell = self.cx.addr.cell.clone();
            // Why the instance is being restarted, and the last failure (for
            // a message kept for a retry): boxed, made only at a first failure.
            let mut failures: Option<Box<Failures>> = None;
            // A message kept for a retry after a panic (boxed: it is rare, and the
            // loop's future stays small).
            let mut carry: Option<Box<A::Msg>> = None;
            let mut batch = Batch::default();
            loop {
                // Each step binds its result in a statement of its own, so that
                // nothing of a finished step stays stored in the task while the
                // instance serves.
                let end = 'life: {
                    let mut actor = match catch_unwind(AssertUnwindSafe(|| (self.factory)())) {
                        Ok(actor) => actor,
                        Err(payload) => {
                            break 'life End::Failed(format!(
                                "the factory panicked: {}",
                                panic_text(payload.as_ref())
                            ));
                        }
                    };
                    let why = failures.as_ref().and_then(|f| f.why.as_deref());
                    let hook = match why {
                        None => {
                            guarded(
                                pin!(Some(actor.started(&mut self.cx))),
                                &tracing::Span::none(),
                                &cell.mailbox,
                            )
                            .await
                        }
                        Some(w) => {
                            guarded(
                                pin!(Some(actor.restarted(w, &mut self.cx))),
                                &tracing::Span::none(),
                                &cell.mailbox,
                            )
                            .await
                        }
                    };
                    let end = if let Some(end) = start_failure(hook) {
                        end
                    } else {
                        let end = self.serve(&mut actor, &mut carry, &mut batch).await;
                        // What the batch still holds goes back to the
                        // queue: for the next instance, or dead letters.
                        cell.mailbox.unreceive(&mut batch);
                        end
                    };
                    // Stopping, passivating or restarting is work `settled` waits for.
                    cell.mailbox.mark_busy();
                    let end = self.end_life(&mut actor, end).await;
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
                        tracing::info!(actor = %cell.name, reason = %w, "restarting with a failed sibling");
                        failures.get_or_insert_default().why = Some(w);
                        continue;
                    }
                    End::Failed(w) => w,
                };
                failures.get_or_insert_default().last = Some(failure.clone());
                if self.cx.supervision.restart == Restart::Temporary {
                    tracing::error!(actor = %cell.name, failure = %failure, "actor failed and stops (Restart::Temporary)");
                    break;
                }
                let now = tokio::time::Instant::now();
                if !self.window.admit(now, &self.cx.supervision.intensity) {
                    tracing::error!(actor = %cell.name, failure = %failure, "restart intensity exceeded");
                    self.parent.escalate(&self.cx.system, &cell.name, &failure);
                    break;
                }
                tracing::warn!(actor = %cell.name, failure = %failure, "restarting actor");
                self.siblings.restart_peers(cell.id, &cell.name, &failure);
                let n = self.window.len().saturating_sub(1) as u32;
                let delay = self.cx.supervision.backoff.delay(n, self.rng.unit());
                // Boxed: made only for a restart.
                if !Box::pin(sleep_unless_cancelled(delay, &cell.mailbox)).await {
                    break;
                }
                failures.get_or_insert_default().why = Some(failure);
            }
            // A message kept for a retry after a panic, when no retry comes.
            if let Some(message) = carry.take().map(|m| *m) {
                let last = failures.and_then(|f| f.last);
                cell.dead_letter(message, DeadLetterReason::Panicked, last);
            }
            if let Some(children) = &self.cx.children {
                Box::pin(children.stop_all()).await;
            }
            self.cx.timers.clear();
            let reason = if cell.core.state.load(Ordering::Acquire) >= PAST_DEADLINE {
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
            if let Some((_, passivation)) = self.passivation.as_deref() {
                passivation.exited(cell.id, std::mem::take(&mut self.window));
            }
            cell.mailbox.retire();
            self.siblings.remove(cell.id);
            self.cx.system.deregister(cell.id);
        }
    }

    /// Ends an instance's life: its children stop first, then its
    /// `stopping` hook runs (unless it failed or is restarted with a
    /// sibling). Returns `end`, which a future of its own stores only while
    /// it runs. A block that owns its arguments, which an `async fn` would
    /// store twice.
    #[allow(clippy::manual_async_fn)]
    fn end_life<'a>(
        &'a mut self,
        actor: &'a mut A,
        end: End,
    ) -> impl Future<Output = End> + Send + 'a {
        async move {
            let cell = self.cx.addr.cell.clone();
            if let Some(children) = &self.cx.children {
                // Boxed: made only for an actor with children.
                Box::pin(children.stop_all()).await;
            }
            if matches!(
                end,
                End::Stop | End::Cancelled | End::SelfStop | End::Passivated
            ) {
                let _ = guarded(
                    pin!(Some(actor.stopping(&mut self.cx))),
                    &tracing::Span::none(),
                    &cell.mailbox,
                )
                .await;
            }
            end
        }
    }

    /// Serves messages until the instance ends. A block that owns its
    /// arguments, which an `async fn` would store twice.
    #[allow(clippy::manual_async_fn)]
    fn serve<'a>(
        &'a mut self,
        actor: &'a mut A,
        carry: &'a mut Option<Box<A::Msg>>,
        batch: &'a mut Batch<A::Msg>,
    ) -> impl Future<Output = End> + Send + 'a {
        async move {
            let cell = self.cx.addr.cell.clone();
            // An entity's idle timer, made once and re-armed at each idle spell.
            let mut idle_timer = self
                .passivation
                .as_ref()
                .map(|link| Box::pin(tokio::time::sleep(link.0)));
            // The message being handled, received straight into this slot and
            // handled in place: moved again only when it fails.
            let mut current: Option<A::Msg> = None;
            loop {
                if let Some(message) = carry.take() {
                    current = Some(*message);
                } else {
                    let mut armed = false;
                    let next = poll_fn(|cx| {
                        let next = cell.mailbox.poll_take(cx, batch, &mut current);
                        if next.is_ready() {
                            return next.map(Some);
                        }
                        if let (Some(timer), Some(link)) = (&mut idle_timer, &self.passivation) {
                            if !armed {
                                timer.as_mut().reset(tokio::time::Instant::now() + link.0);
                                armed = true;
                            }
                            if timer.as_mut().poll(cx).is_ready() {
                                return Poll::Ready(None);
                            }
                        }
                        Poll::Pending
                    })
                    .await;
                    match next {
                        // A message, now in `current`.
                        Some(None) => {}
                        Some(Some(Control::Stop)) => return End::Stop,
                        Some(Some(Control::Restart(w))) => return End::Sibling(w),
                        Some(Some(Control::Escalate(w))) => return End::Failed(w),
                        Some(Some(Control::Tick(id))) => match self.cx.timers.tick(id) {
                            Some(message) => current = Some(message),
                            None => continue,
                        },
                        None => {
                            let passivated = self
                                .passivation
                                .as_ref()
                                .is_some_and(|link| link.1.try_passivate(cell.id));
                            if passivated {
                                return End::Passivated;
                            }
                            continue;
                        }
                    }
                }
                let Some(message) = current.as_mut() else {
                    unreachable!("a message was received into the slot");
                };
                // The common case in place, with nothing of the retry path in
                // this future: one attempt, then the acknowledgement.
                let meta = message.meta();
                set_cause(Some(cause_of(meta)));
                let span = handle_span(&cell.name, meta);
                let first = guarded(
                    pin!(Some(actor.handle(message, &mut self.cx))),
                    &span,
                    &cell.mailbox,
                )
                .await;
                set_cause(None);
                let outcome = match first {
                    Guarded::Done(Ok(())) => {
                        let meta = message.meta();
                        if let Some(ack) = meta.ack_handle() {
                            ack.ack(meta.id());
                        }
                        current = None;
                        Outcome::Done
                    }
                    // A failure: retries, backoff and dead letters live in a
                    // future of their own, made only now.
                    failed => {
                        let Some(message) = current.take() else {
                            unreachable!("the failed message is in the slot");
                        };
                        Box::pin(self.deliver(actor, message, Some(failed), &cell)).await
                    }
                };
                match outcome {
                    Outcome::Done => {}
                    Outcome::Panicked(w, retry) => {
                        *carry = retry.map(Box::new);
                        return End::Failed(format!("a handler panicked: {w}"));
                    }
                    Outcome::Cancelled => return End::Cancelled,
                }
                if self.cx.stop_requested {
                    return End::SelfStop;
                }
            }
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
    ) -> Outcome<A::Msg> {
        let supervision = *self.cx.supervision;
        loop {
            let attempt = message.meta().attempt;
            let result = match first.take() {
                Some(result) => result,
                None => {
                    let meta = message.meta();
                    set_cause(Some(cause_of(meta)));
                    let span = handle_span(&cell.name, meta);
                    let result = guarded(
                        pin!(Some(actor.handle(&mut message, &mut self.cx))),
                        &span,
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
                        tracing::warn!(actor = %cell.name, event = message.meta().event(), attempt, error = %text, "handler failed; retrying");
                        let delay = supervision.backoff.delay(attempt - 1, self.rng.unit());
                        if !sleep_unless_cancelled(delay, &cell.mailbox).await {
                            cell.dead_letter(
                                message,
                                DeadLetterReason::CancelledAtShutdown,
                                Some(text),
                            );
                            return Outcome::Cancelled;
                        }
                        message.meta_mut().attempt = attempt + 1;
                        continue;
                    }
                    cell.dead_letter(message, DeadLetterReason::RetriesExhausted, Some(text));
                    return Outcome::Done;
                }
                Guarded::Panicked(text) => {
                    tracing::error!(actor = %cell.name, event = message.meta().event(), attempt, panic = %text, "handler panicked");
                    if supervision.retry_after_panic
                        && attempt <= supervision.max_retries
                        && supervision.restart != Restart::Temporary
                    {
                        message.meta_mut().attempt = attempt + 1;
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

impl Parent {
    fn escalate(&self, system: &System, child: &str, failure: &str) {
        match self {
            Parent::Actor(lane) => {
                lane.control(Control::Escalate(format!(
                    "child `{child}` escalated: {failure}"
                )));
            }
            Parent::Kind => {
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
