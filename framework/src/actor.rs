//! Actors, their addresses and their context.
//!
//! An actor is a value that owns its state and handles one message at a
//! time with an `async` handler taking `&mut self`. It is spawned from a
//! *factory* (`Fn() -> A`) so that a restart can build a fresh instance, and
//! runs as one task on the application's tokio runtime.
//!
//! Each actor has one *message type*, usually an enum with a variant per
//! event it handles, so its mailbox carries values, not boxes: a `tell`
//! allocates nothing. [`Handles<E>`] says an actor takes event `E` (and how to
//! wrap it into its message type); [`Answers<Q>`] says it replies to query
//! `Q` with a typed reply. [`Message`] is what the runtime needs to know of
//! the message type: the envelope metadata, and how to turn a message into a
//! dead letter.
//!
//! ```
//! use mercato::{Actor, Addr, Answers, Context, Envelope, Event, Handles, HandlerError, Message, Meta, Request};
//! use serde::{Deserialize, Serialize};
//! use std::time::Duration;
//!
//! #[derive(Debug, Serialize, Deserialize)]
//! struct Add(u64);
//! impl Event for Add { const NAME: &'static str = "demo.add"; const VERSION: u32 = 1; }
//!
//! #[derive(Debug, Serialize, Deserialize)]
//! struct GetTotal;
//! impl Event for GetTotal { const NAME: &'static str = "demo.get_total"; const VERSION: u32 = 1; }
//!
//! #[derive(Default)]
//! struct Counter { total: u64 }
//!
//! // One message type per actor: a variant per event it takes.
//! enum CounterMsg { Add(Envelope<Add>), Get(Request<GetTotal, u64>) }
//!
//! impl Message for CounterMsg {
//!     fn meta(&self) -> &Meta {
//!         match self { CounterMsg::Add(m) => m.meta(), CounterMsg::Get(m) => m.meta() }
//!     }
//!     fn meta_mut(&mut self) -> &mut Meta {
//!         match self { CounterMsg::Add(m) => m.meta_mut(), CounterMsg::Get(m) => m.meta_mut() }
//!     }
//!     fn into_dead_letter(self, reason: mercato::DeadLetterReason, error: Option<&str>) -> std::sync::Arc<dyn mercato::AnyPayload> {
//!         match self {
//!             CounterMsg::Add(m) => m.into_dead_letter(reason, error),
//!             CounterMsg::Get(m) => m.into_dead_letter(reason, error),
//!         }
//!     }
//! }
//!
//! impl Actor for Counter {
//!     type Msg = CounterMsg;
//!     async fn handle(&mut self, msg: &mut CounterMsg, _cx: &mut Context<Self>) -> Result<(), HandlerError> {
//!         match msg {
//!             CounterMsg::Add(add) => self.total += add.payload().0,
//!             CounterMsg::Get(get) => { get.reply(self.total); }
//!         }
//!         Ok(())
//!     }
//! }
//! impl Handles<Add> for Counter { fn wrap(e: Envelope<Add>) -> CounterMsg { CounterMsg::Add(e) } }
//! impl Answers<GetTotal> for Counter {
//!     type Reply = u64;
//!     fn wrap(r: Request<GetTotal, u64>) -> CounterMsg { CounterMsg::Get(r) }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let system = mercato::System::builder().build()?;
//! let counter: Addr<Counter> = system.spawn("counter", Counter::default)?;
//! counter.tell(Add(2)).await?;
//! counter.tell(Add(40)).await?;
//! assert_eq!(counter.ask(GetTotal, Duration::from_secs(1)).await?, 42);
//! system.shutdown(Duration::from_secs(1)).await;
//! # Ok(()) }
//! ```

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::dead_letters::{AnyPayload, DeadLetterReason};
use crate::error::{AskError, HandlerError, SystemError, TellError};
use crate::event::{Cause, Envelope, Event, Meta};
use crate::mailbox::{Control, MailboxGauges, Refused};
use crate::runtime::{Cell, SendError, Sending, caller_in, current_cause, link_to_handled};
use crate::supervise::Supervision;
use crate::system::{ActorConfig, Children, Parent, System};

/// An actor: state plus a handler that runs one message at a time.
///
/// See the [module](self) docs for a complete example. Lifecycle:
/// [`started`](Self::started) runs before the first message;
/// after a failure the fresh instance gets [`restarted`](Self::restarted)
/// instead (which by default calls `started`); [`stopping`](Self::stopping)
/// runs once when the actor stops for good.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a mercato actor",
    label = "this type does not implement `mercato::Actor`",
    note = "implement `mercato::Actor` for it, with a message type and an async `handle`"
)]
pub trait Actor: Sized + Send + 'static {
    /// The actor's message type: usually an enum with a variant per event.
    type Msg: Message;

    /// Handles one message. `Err` means the handler failed to process it:
    /// the message is retried in place, with backoff, up to the configured
    /// retries, then dead-lettered.
    fn handle(
        &mut self,
        msg: &mut Self::Msg,
        cx: &mut Context<Self>,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;

    /// Runs before the first message. `Err` counts as a failure.
    fn started(
        &mut self,
        cx: &mut Context<Self>,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send {
        let _ = cx;
        async { Ok(()) }
    }

    /// Runs on a fresh instance after a restart, instead of `started`;
    /// `why` says what failed. By default it calls `started`.
    fn restarted(
        &mut self,
        why: &str,
        cx: &mut Context<Self>,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send {
        let _ = why;
        self.started(cx)
    }

    /// Runs when this instance ends without failing: the actor stops (its
    /// children have stopped first), an entity passivates, or a `Permanent`
    /// actor stopped itself and is about to be rebuilt. Not run after a
    /// panic: the instance may be broken.
    fn stopping(&mut self, cx: &mut Context<Self>) -> impl Future<Output = ()> + Send {
        let _ = cx;
        async {}
    }
}

/// What the runtime needs to know of an actor's message type.
///
/// Implement it for a message enum by delegating each method to the
/// variant's [`Envelope`] or [`Request`] (see the [module](self) docs).
pub trait Message: Send + 'static {
    /// The envelope metadata of this message.
    fn meta(&self) -> &Meta;
    /// The envelope metadata, to change (the runtime counts attempts here).
    fn meta_mut(&mut self) -> &mut Meta;
    /// Gives up on the message: fails a pending `ask` with a matching
    /// [`AskError`] and returns the payload for the dead-letter store.
    fn into_dead_letter(self, reason: DeadLetterReason, error: Option<&str>)
    -> Arc<dyn AnyPayload>;
}

impl<E: Event> Message for Envelope<E> {
    fn meta(&self) -> &Meta {
        Envelope::meta(self)
    }
    fn meta_mut(&mut self) -> &mut Meta {
        Envelope::meta_mut(self)
    }
    fn into_dead_letter(
        self,
        _reason: DeadLetterReason,
        _error: Option<&str>,
    ) -> Arc<dyn AnyPayload> {
        self.into_shared()
    }
}

/// Says that actor `Self` handles event `E`, and how `E` becomes its message.
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not handle `{E}`",
    label = "no handler for `{E}` on this actor",
    note = "add a variant for `Envelope<{E}>` to the actor's message type and implement `Handles<{E}>` for `{Self}`"
)]
pub trait Handles<E: Event>: Actor {
    /// Wraps an envelope of `E` into the actor's message type.
    fn wrap(envelope: Envelope<E>) -> Self::Msg;
}

/// Says that actor `Self` answers query `Q` with a [`Reply`](Self::Reply).
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not answer `{Q}`",
    label = "no reply handler for `{Q}` on this actor",
    note = "add a variant for `Request<{Q}, Reply>` to the actor's message type and implement `Answers<{Q}>` for `{Self}`"
)]
pub trait Answers<Q: Event>: Actor {
    /// The reply type.
    type Reply: Send + 'static;
    /// Wraps a request into the actor's message type.
    fn wrap(request: Request<Q, Self::Reply>) -> Self::Msg;
}

/// Why a reply will not come, as sent through the reply channel.
#[derive(Debug)]
pub(crate) enum NoReply {
    Evicted,
    Dropped,
    Failed(String),
    Stopped,
    Unanswered,
}

/// The reply side of an ask; if dropped unanswered, the asker learns it.
struct ReplyTo<R>(Option<oneshot::Sender<Result<R, NoReply>>>);

impl<R> Drop for ReplyTo<R> {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(Err(NoReply::Unanswered));
        }
    }
}

/// A query with its reply channel: what `ask` puts in a mailbox.
///
/// The handler reads the query and calls [`reply`](Self::reply) once. If it
/// fails before replying, the request is retried with the reply channel
/// intact; if it finishes without replying, the asker gets
/// [`AskError::NoReply`].
pub struct Request<Q, R> {
    envelope: Envelope<Q>,
    reply: ReplyTo<R>,
}

impl<Q: fmt::Debug, R> fmt::Debug for Request<Q, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("envelope", &self.envelope)
            .field("answered", &self.reply.0.is_none())
            .finish()
    }
}

impl<Q: Event, R: Send + 'static> Request<Q, R> {
    /// The query.
    pub fn query(&self) -> &Q {
        self.envelope.payload()
    }

    /// The query's envelope.
    pub fn envelope(&self) -> &Envelope<Q> {
        &self.envelope
    }

    /// The envelope metadata.
    pub fn meta(&self) -> &Meta {
        self.envelope.meta()
    }

    /// The envelope metadata, to change.
    pub fn meta_mut(&mut self) -> &mut Meta {
        self.envelope.meta_mut()
    }

    /// Sends the reply. Returns `false` if it was already sent or the asker
    /// gave up (timed out).
    pub fn reply(&mut self, value: R) -> bool {
        match self.reply.0.take() {
            Some(tx) => tx.send(Ok(value)).is_ok(),
            None => false,
        }
    }

    /// Whether the reply was sent.
    pub fn is_answered(&self) -> bool {
        self.reply.0.is_none()
    }

    /// Dead-letters the request; see [`Message::into_dead_letter`].
    pub fn into_dead_letter(
        mut self,
        reason: DeadLetterReason,
        error: Option<&str>,
    ) -> Arc<dyn AnyPayload> {
        if let Some(tx) = self.reply.0.take() {
            let why = match reason {
                DeadLetterReason::DroppedOldest => NoReply::Evicted,
                DeadLetterReason::DroppedNewest => NoReply::Dropped,
                DeadLetterReason::RetriesExhausted | DeadLetterReason::Panicked => {
                    NoReply::Failed(error.unwrap_or(reason.as_str()).to_owned())
                }
                _ => NoReply::Stopped,
            };
            let _ = tx.send(Err(why));
        }
        self.envelope.into_shared()
    }
}

/// What an ask returns for what its request's reply channel carried.
fn answer<R, Q>(replied: Result<R, NoReply>) -> Result<R, AskError<Q>> {
    replied.map_err(|why| match why {
        NoReply::Evicted => AskError::Evicted,
        NoReply::Dropped => AskError::Dropped,
        NoReply::Failed(e) => AskError::Failed(e),
        NoReply::Stopped => AskError::Stopped,
        NoReply::Unanswered => AskError::NoReply,
    })
}

/// An ask's timeout: whether the request has waited yet, and its timer.
///
/// The timer is made only at the second wait. At the first, the asker yields
/// once instead: an actor that answers at once (on a current-thread runtime,
/// or from the same worker) has replied by the next poll, and a request so
/// served costs no timer, whose registration can cost more than the whole
/// round trip, and no clock reading. The timeout counts from the second wait,
/// one turn of the scheduler after the first.
struct AskTimer {
    waited: bool,
}

impl AskTimer {
    /// At the request's first wait, wakes the asker (it yields once) and
    /// says so; afterwards, `false`.
    fn yield_first(&mut self, cx: &mut std::task::Context<'_>) -> bool {
        if std::mem::replace(&mut self.waited, true) {
            return false;
        }
        cx.waker().wake_by_ref();
        true
    }

    /// Whether the time is up. `sleep` is the timer's pinned slot.
    fn expired(
        &mut self,
        mut sleep: std::pin::Pin<&mut Option<tokio::time::Sleep>>,
        timeout: Duration,
        cx: &mut std::task::Context<'_>,
    ) -> bool {
        if sleep.is_none() {
            if self.yield_first(cx) {
                return false;
            }
            sleep.set(Some(tokio::time::sleep(timeout)));
        }
        sleep
            .as_pin_mut()
            .is_some_and(|sleep| sleep.poll(cx).is_ready())
    }
}

/// What a send queues: an envelope already made, or an event whose
/// envelope is made as it is queued.
pub(crate) trait IntoEnvelope<E> {
    fn into_envelope(self) -> Envelope<E>;
    /// Reads what the envelope takes from the moment of sending (its
    /// time), before an attempt to queue it: outside the mailbox's lock.
    #[inline]
    fn stamp(&mut self) {}
}

impl<E> IntoEnvelope<E> for Envelope<E> {
    fn into_envelope(self) -> Envelope<E> {
        self
    }
}

/// An event told by [`Addr::tell`]. Its envelope (id, timestamp, and the
/// ids of the message its sender is handling) is made when it is queued,
/// straight into the mailbox, in the sender's task: the send's future
/// carries the event alone, and so moves little.
pub(crate) struct Unsent<E> {
    event: E,
    /// The clock read before the latest attempt to queue it.
    timestamp: u64,
}

impl<E: Event> IntoEnvelope<E> for Unsent<E> {
    #[inline]
    fn into_envelope(self) -> Envelope<E> {
        let mut envelope = Envelope::new_at(self.event, self.timestamp);
        link_to_handled(&mut envelope);
        envelope
    }
    #[inline]
    fn stamp(&mut self) {
        self.timestamp = crate::event::now_unix_nanos();
    }
}

/// A send turned into the result `tell` gives: a small future, so that a
/// tell moves little more than its event.
struct Telling<'a, M, E, T, W>(Sending<'a, M, T, W>, std::marker::PhantomData<fn() -> E>);

impl<M: Message, E, T: IntoEnvelope<E>, W: FnOnce(T) -> M> Future for Telling<'_, M, E, T, W> {
    type Output = Result<(), TellError<E>>;

    #[inline]
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        // The clock is read here, not under the mailbox's lock, where the
        // envelope is made: the lock is held for as short as can be.
        if let Some(value) = self.0.value_mut() {
            value.stamp();
        }
        match std::pin::Pin::new(&mut self.0).poll(cx) {
            std::task::Poll::Ready(Ok(())) => std::task::Poll::Ready(Ok(())),
            std::task::Poll::Pending => std::task::Poll::Pending,
            std::task::Poll::Ready(Err(error)) => std::task::Poll::Ready(Err(refused(error))),
        }
    }
}

/// The error a refused tell gives. Kept out of line: the envelope is made
/// only here, and the common path stays small.
#[cold]
#[inline(never)]
fn refused<E, T: IntoEnvelope<E>>(error: SendError<T>) -> TellError<E> {
    match error {
        SendError::Full(t) => TellError::Full(t.into_envelope()),
        SendError::Closed(t) => TellError::Stopped(t.into_envelope()),
        SendError::ShuttingDown(t) => TellError::ShuttingDown(t.into_envelope()),
        SendError::DeadlineExceeded(id) => TellError::DeadlineExceeded(id),
    }
}

/// A typed address: where to send messages to one actor. Cheap to clone.
///
/// `tell` waits for room when the mailbox is full and its policy is
/// `Backpressure`; `ask` also waits for the reply, all within its timeout.
/// Inside a handler, what an address sends keeps the handled message's
/// correlation id and takes its id as causation id.
pub struct Addr<A: Actor> {
    pub(crate) cell: Arc<Cell<A::Msg>>,
}

impl<A: Actor> Clone for Addr<A> {
    fn clone(&self) -> Self {
        Addr {
            cell: Arc::clone(&self.cell),
        }
    }
}

impl<A: Actor> fmt::Debug for Addr<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Addr")
            .field("actor", self.cell.name())
            .field("id", &self.cell.id)
            .finish()
    }
}

impl<A: Actor> Addr<A> {
    /// The actor's name.
    pub fn name(&self) -> &str {
        self.cell.name()
    }

    /// Whether the actor has stopped for good.
    pub fn is_stopped(&self) -> bool {
        self.cell.mailbox.is_closed()
    }

    /// A reading of the mailbox's gauges.
    pub fn gauges(&self) -> MailboxGauges {
        self.cell.mailbox.gauges(self.cell.name())
    }

    /// Sends an event. Waits for room under `Backpressure`; under `Reject` a
    /// full mailbox returns [`TellError::Full`] with the envelope; under the
    /// drop policies a message is dead-lettered and `Ok` returned.
    ///
    /// The envelope (its id and timestamp) is made as the event is queued,
    /// that is at the first poll when there is room, or when room is made.
    pub fn tell<E: Event>(
        &self,
        event: E,
    ) -> impl Future<Output = Result<(), TellError<E>>> + Send + '_
    where
        A: Handles<E>,
    {
        // Whether the caller is an actor of this system is found out at the
        // first poll, in the caller's task, like the ids its envelope takes.
        Telling(
            self.cell.send(
                Unsent {
                    event,
                    timestamp: 0,
                },
                |unsent: Unsent<E>| A::wrap(unsent.into_envelope()),
            ),
            std::marker::PhantomData,
        )
    }

    /// Sends an envelope built by the caller (to set headers or ids). Inside
    /// a handler, its correlation and causation ids are set from the
    /// handled message.
    pub fn tell_envelope<E: Event>(
        &self,
        mut envelope: Envelope<E>,
    ) -> impl Future<Output = Result<(), TellError<E>>> + Send + '_
    where
        A: Handles<E>,
    {
        let (internal, cause) = caller_in(self.cell.core());
        if let Some(cause) = cause {
            envelope.meta_mut().caused_by(&cause);
        }
        Telling(
            self.cell.send_as(envelope, A::wrap, internal),
            std::marker::PhantomData,
        )
    }

    /// Sends without waiting: a full mailbox under `Backpressure` or
    /// `Reject` returns [`TellError::Full`]. For code that cannot `.await`.
    pub fn try_tell<E: Event>(&self, event: E) -> Result<(), TellError<E>>
    where
        A: Handles<E>,
    {
        let mut envelope = Envelope::new(event);
        link_to_handled(&mut envelope);
        if !self.cell.core().accepts_from_caller() {
            return Err(TellError::ShuttingDown(envelope));
        }
        match self.cell.mailbox.try_push(envelope, A::wrap) {
            Ok(pushed) => {
                self.cell.settle(pushed);
                Ok(())
            }
            Err(Refused::Full(envelope)) => {
                if self.cell.mailbox.overflow() == crate::mailbox::Overflow::Backpressure {
                    self.cell.mailbox.note_rejected();
                }
                Err(TellError::Full(envelope))
            }
            Err(Refused::Closed(envelope)) => Err(TellError::Stopped(envelope)),
        }
    }

    /// Asks a query and waits for the typed reply, at most `timeout` in all
    /// (waiting for mailbox room included), counted from when the request
    /// waits (a request answered within one turn of the scheduler never
    /// starts the clock). Always ends: a reply, or an [`AskError`] that says
    /// why not.
    ///
    /// When the actor has a task of its own and nothing is running its loop
    /// at that moment, the loop runs a turn in the caller's task: what is
    /// queued is handled in order, then the request, and the reply is there
    /// without waking another task; the actor's runtime is the current one
    /// meanwhile, whichever runtime the caller runs on. A handler that waits
    /// carries on in the actor's own task.
    ///
    /// ```
    /// use std::time::Duration;
    /// use mercato::{Event, System, actor};
    /// # use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Event, Debug, Serialize, Deserialize)]
    /// #[event(name = "shop.cart_total", version = 1)]
    /// struct CartTotal;
    ///
    /// struct Cart { cents: u64 }
    ///
    /// #[actor]
    /// impl Cart {
    ///     #[reply]
    ///     fn total(&self, _q: &CartTotal) -> u64 {
    ///         self.cents
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let system = System::builder().build()?;
    /// let cart = system.start("cart", || Cart { cents: 1_250 })?;
    /// assert_eq!(cart.ask(CartTotal, Duration::from_secs(1)).await?, 1_250);
    /// # Ok(()) }
    /// ```
    pub async fn ask<Q: Event>(&self, query: Q, timeout: Duration) -> Result<A::Reply, AskError<Q>>
    where
        A: Answers<Q>,
    {
        let mut envelope = Envelope::new(query);
        link_to_handled(&mut envelope);
        if !self.cell.core().accepts_from_caller() {
            return Err(AskError::ShuttingDown(envelope));
        }
        let (tx, rx) = oneshot::channel();
        let request = Request {
            envelope,
            reply: ReplyTo(Some(tx)),
        };
        // One timer for the whole request, made only if it waits twice (for
        // mailbox room or for the reply): a request served at once makes none.
        let mut timer = std::pin::pin!(None::<tokio::time::Sleep>);
        let mut waits = AskTimer { waited: false };
        let mut push = self.cell.mailbox.push(request, A::wrap);
        let pushed = std::future::poll_fn(|cx| match std::pin::Pin::new(&mut push).poll(cx) {
            std::task::Poll::Ready(pushed) => std::task::Poll::Ready(Some(pushed)),
            std::task::Poll::Pending if waits.expired(timer.as_mut(), timeout, cx) => {
                std::task::Poll::Ready(None)
            }
            std::task::Poll::Pending => std::task::Poll::Pending,
        })
        .await;
        drop(push);
        match pushed {
            None => return Err(AskError::Timeout),
            Some(Err(Refused::Full(mut request))) => {
                request.reply.0 = None;
                return Err(AskError::Rejected(request.envelope));
            }
            Some(Err(Refused::Closed(_))) => return Err(AskError::Stopped),
            Some(Ok(pushed)) => self.cell.settle(pushed),
        }
        let mut rx = rx;
        // An actor with a task of its own that no one is polling now: its
        // loop is polled here, in the asker's task, and the reply is
        // usually there at once, with no task woken or waited for.
        if let Some(runner) = &self.cell.runner {
            // In the actor's runtime, which the asker's may not be: what
            // the handler spawns, and the timers it makes, go there.
            let _runtime = self.cell.core().runtime.enter();
            if runner.run_here() {
                if let Ok(replied) = rx.try_recv() {
                    return answer(replied);
                }
            }
        }
        let replied = std::future::poll_fn(|cx| {
            // A request just queued seldom has its reply yet: at its first
            // wait the asker yields without looking, and so without leaving
            // its waker with the reply channel (the reply then wakes nobody);
            // it looks when it is polled again.
            if waits.yield_first(cx) {
                return std::task::Poll::Pending;
            }
            match std::pin::Pin::new(&mut rx).poll(cx) {
                std::task::Poll::Ready(replied) => std::task::Poll::Ready(Ok(replied)),
                std::task::Poll::Pending if waits.expired(timer.as_mut(), timeout, cx) => {
                    std::task::Poll::Ready(Err(()))
                }
                std::task::Poll::Pending => std::task::Poll::Pending,
            }
        })
        .await;
        match replied {
            Err(()) => Err(AskError::Timeout),
            Ok(Err(_closed)) => Err(AskError::Stopped),
            Ok(Ok(replied)) => answer(replied),
        }
    }

    /// Stops the actor for good after its current handler: children first,
    /// then its `stopping` hook. What is still queued is dead-lettered with
    /// [`DeadLetterReason::ActorStopped`]. It is not restarted, whatever its
    /// restart policy.
    pub fn stop(&self) {
        self.cell.mailbox.push_control(Control::Stop);
    }
}

/// An id of a timer started from a [`Context`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerId(pub(crate) u64);

// Sync too, so that `Context` is `Sync` and `&Context` may live across an
// `.await` in a handler.
type MakeMsg<M> = Box<dyn FnMut() -> M + Send + Sync>;

struct Periodic<M> {
    id: u64,
    make: MakeMsg<M>,
    pending: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::AbortHandle,
}

/// An actor's timers, boxed when it starts its first: most actors start
/// none, and every idle actor carries this in its task.
pub(crate) struct Timers<M>(Option<Box<TimerSet<M>>>);

struct TimerSet<M> {
    next: u64,
    periodic: Vec<Periodic<M>>,
    delayed: Vec<(u64, tokio::task::AbortHandle)>,
}

impl<M> Timers<M> {
    pub(crate) fn new() -> Self {
        Timers(None)
    }

    fn set(&mut self) -> &mut TimerSet<M> {
        self.0.get_or_insert_with(|| {
            Box::new(TimerSet {
                next: 0,
                periodic: Vec::new(),
                delayed: Vec::new(),
            })
        })
    }

    /// The message of periodic timer `id`'s tick, letting the next tick queue.
    pub(crate) fn tick(&mut self, id: u64) -> Option<M> {
        let timer = self.0.as_mut()?.periodic.iter_mut().find(|p| p.id == id)?;
        timer
            .pending
            .store(false, std::sync::atomic::Ordering::Release);
        Some((timer.make)())
    }

    pub(crate) fn clear(&mut self) {
        if let Some(set) = &mut self.0 {
            set.clear();
        }
    }
}

impl<M> TimerSet<M> {
    fn clear(&mut self) {
        for p in self.periodic.drain(..) {
            p.task.abort();
        }
        for (_, task) in self.delayed.drain(..) {
            task.abort();
        }
    }
}

impl<M> Drop for TimerSet<M> {
    fn drop(&mut self) {
        self.clear();
    }
}

/// What a handler can do besides its own state: its address, sending later,
/// timers, children, stopping.
pub struct Context<A: Actor> {
    pub(crate) addr: Addr<A>,
    pub(crate) system: System,
    /// Made at the first child: most actors have none.
    pub(crate) children: Option<Arc<Children>>,
    pub(crate) timers: Timers<A::Msg>,
    pub(crate) stop_requested: bool,
    pub(crate) supervision: Arc<Supervision>,
}

impl<A: Actor> fmt::Debug for Context<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("actor", self.addr.cell.name())
            .finish_non_exhaustive()
    }
}

impl<A: Actor> Context<A> {
    /// This actor's own address.
    pub fn addr(&self) -> &Addr<A> {
        &self.addr
    }

    /// This actor's name.
    pub fn name(&self) -> &str {
        self.addr.cell.name()
    }

    /// The system this actor runs in.
    pub fn system(&self) -> &System {
        &self.system
    }

    /// Stops this actor after the current handler returns (children first).
    /// A `Permanent` actor is restarted; use `Restart::Transient` for actors
    /// that may finish.
    pub fn stop(&mut self) {
        self.stop_requested = true;
    }

    /// Spawns a child supervised by this actor, with the system defaults.
    pub fn spawn<B: Actor, F>(&mut self, name: &str, factory: F) -> Result<Addr<B>, SystemError>
    where
        F: Fn() -> B + Send + Sync + 'static,
    {
        self.spawn_with(name, |c| c, factory)
    }

    /// Spawns a child supervised by this actor, adjusting its configuration.
    pub fn spawn_with<B: Actor, F>(
        &mut self,
        name: &str,
        configure: impl FnOnce(ActorConfig) -> ActorConfig,
        factory: F,
    ) -> Result<Addr<B>, SystemError>
    where
        F: Fn() -> B + Send + Sync + 'static,
    {
        let parent = Parent::Actor(self.addr.cell.clone());
        let strategy = self.supervision.strategy;
        let system = &self.system;
        let children = self.children.get_or_insert_with(|| {
            let list = Arc::new(Children::new(strategy));
            system.register_children(&list);
            list
        });
        crate::runtime::spawn_actor(
            &self.system,
            crate::runtime::Name::Given(name),
            parent,
            children,
            configure,
            factory,
        )
    }

    /// Sends `event` to this actor after `delay`, through its mailbox (the
    /// bound applies). Timers stop when the actor stops or restarts, and when
    /// the system shuts down.
    pub fn send_later<E: Event>(&mut self, delay: Duration, event: E) -> TimerId
    where
        A: Handles<E>,
    {
        let id = self.next_timer();
        let cell = self.addr.cell.clone();
        let mut envelope = Envelope::new(event);
        link_to_handled(&mut envelope);
        let task = tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            if !cell.core().timers_running() {
                return;
            }
            // Nobody waits for a timer's message: what the mailbox refuses
            // is dead-lettered rather than handed back.
            match cell.mailbox.push(envelope, A::wrap).await {
                Ok(pushed) => cell.settle(pushed),
                Err(Refused::Full(envelope)) => {
                    cell.dead_letter(A::wrap(envelope), DeadLetterReason::Rejected, None)
                }
                Err(Refused::Closed(envelope)) => {
                    cell.dead_letter(A::wrap(envelope), DeadLetterReason::ActorStopped, None)
                }
            }
        });
        let timers = self.timers.set();
        timers.delayed.retain(|(_, t)| !t.is_finished());
        timers.delayed.push((id, task.abort_handle()));
        TimerId(id)
    }

    /// Sends the event made by `make` to this actor every `period`. Ticks
    /// travel outside the mailbox capacity and coalesce: while one tick is
    /// queued, further ticks are skipped, not piled up (at most one more can
    /// queue while one is being handled). Ticks are not counted in the
    /// mailbox's `enqueued`/`processed` gauges.
    pub fn every<E: Event, F>(&mut self, period: Duration, mut make: F) -> TimerId
    where
        A: Handles<E>,
        F: FnMut() -> E + Send + Sync + 'static,
    {
        let id = self.next_timer();
        let pending = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let cell = self.addr.cell.clone();
        let flag = pending.clone();
        let task = tokio::spawn(async move {
            let start = tokio::time::Instant::now() + period;
            let mut interval = tokio::time::interval_at(start, period.max(Duration::from_nanos(1)));
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                interval.tick().await;
                if !cell.core().timers_running() {
                    return;
                }
                if flag.swap(true, std::sync::atomic::Ordering::AcqRel) {
                    continue; // the previous tick is still pending: coalesce
                }
                if !cell.mailbox.push_control(Control::Tick(id)) {
                    return;
                }
            }
        });
        self.timers.set().periodic.push(Periodic {
            id,
            make: Box::new(move || A::wrap(Envelope::new(make()))),
            pending,
            task: task.abort_handle(),
        });
        TimerId(id)
    }

    /// Cancels a timer; `false` if it already ended or was unknown.
    pub fn cancel_timer(&mut self, timer: TimerId) -> bool {
        let Some(timers) = self.timers.0.as_mut() else {
            return false;
        };
        if let Some(pos) = timers.periodic.iter().position(|p| p.id == timer.0) {
            timers.periodic.remove(pos).task.abort();
            return true;
        }
        if let Some(pos) = timers.delayed.iter().position(|(id, _)| *id == timer.0) {
            let (_, task) = timers.delayed.remove(pos);
            let was_running = !task.is_finished();
            task.abort();
            return was_running;
        }
        false
    }

    /// Publishes an event from this handler: it keeps the handled message's
    /// correlation id and takes its id as causation id; a wait for a full
    /// subscriber ends at the send deadline. See [`System::publish`].
    pub async fn publish<E: Event>(
        &self,
        event: E,
    ) -> Result<crate::bus::Published, crate::bus::PublishError<E>> {
        self.system.publish(event).await
    }

    /// The id of the message being handled; `None` outside a handler (in a
    /// lifecycle hook).
    pub fn message_id(&self) -> Option<crate::event::EventId> {
        current_cause().map(|c| c.id)
    }

    /// The correlation id of the message being handled.
    pub fn correlation_id(&self) -> Option<crate::event::EventId> {
        current_cause().map(|c| c.correlation_id)
    }

    /// The delivery attempt of the message being handled (1 on the first try).
    pub fn attempt(&self) -> Option<u32> {
        current_cause().map(|c| c.attempt)
    }

    /// This actor's supervision settings.
    pub fn supervision(&self) -> &Supervision {
        &self.supervision
    }

    fn next_timer(&mut self) -> u64 {
        let timers = self.timers.set();
        timers.next += 1;
        timers.next
    }
}

/// The ids of a message, for linking what its handler sends.
pub(crate) fn cause_of(meta: &Meta) -> Cause {
    Cause {
        id: meta.id(),
        correlation_id: meta.correlation_id(),
        attempt: meta.attempt(),
    }
}
