//! Bounded mailboxes: the queue in front of every actor.
//!
//! A mailbox holds at most its capacity of messages. What happens when a
//! message arrives at a full mailbox is its [`Overflow`] policy:
//!
//! | policy | the sender | the message |
//! | --- | --- | --- |
//! | [`Overflow::Backpressure`] (default) | waits for room (an `ask` counts the wait against its timeout) | queued once there is room |
//! | [`Overflow::Reject`] | gets an error holding the message | returned, not queued |
//! | [`Overflow::DropOldest`] | succeeds | the oldest queued message is dead-lettered to make room |
//! | [`Overflow::DropNewest`] | succeeds | the new message is dead-lettered |
//!
//! No public path bypasses the bound. Signals of the runtime itself (stop,
//! restart, a periodic timer's tick) travel on a separate *control lane*
//! outside the capacity, so a full mailbox can always be stopped; a periodic
//! tick is queued at most once per timer, so ticks coalesce rather than pile up.
//!
//! Every mailbox keeps gauges, readable while the system runs through
//! [`System::mailboxes`](crate::System::mailboxes): depth, high-water mark,
//! processed, rejected and dropped counts, and how long the handler now
//! running has been running. The depth of a queue is how an operator sees
//! load.
//!
//! The queue is a ring buffer of mercato's own behind a short lock (like a
//! `VecDeque`, but a message is made straight in its slot rather than on
//! the stack and copied in), allocated lazily: an idle
//! actor's mailbox holds no buffer until its first message, and in steady
//! state a send allocates nothing. Under `Backpressure` the receiver takes
//! everything queued in one go (swapping buffers, so nothing is copied; the
//! queue's buffer is made at the next send, as large as the batch's, so an
//! actor that gets one burst keeps one buffer and a busy one two) and works
//! through that batch without the lock; the batch still
//! counts against the capacity, and senders waiting for room are woken at
//! least every 32 messages. The receiver reports what is left of its batch
//! every 32 messages, not at each one, so that senders and a busy receiver
//! on other cores do not share a written cache line per message; a sender
//! that finds the mailbox full by the report counts exactly (the report less
//! what was started since), so the bound is exact. The other policies hand
//! messages over one at a time, since eviction and refusal must see every
//! held message.
//!
//! ```
//! use mercato::{MailboxConfig, Overflow};
//! let config = MailboxConfig::new(256, Overflow::Reject);
//! assert_eq!(config.capacity(), 256);
//! assert!(MailboxConfig::new(0, Overflow::Reject).validate().is_err());
//! ```

mod busy;
#[allow(unsafe_code)]
mod ring;

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::error::ConfigError;
use crate::sync::{AtomicBool, AtomicU32, AtomicU64, Mutex};
pub(crate) use busy::Busy;
use ring::Ring;
use std::sync::atomic::Ordering;

/// What a full mailbox does with one more message. See the [module](self) docs.
///
/// ```
/// use mercato::Overflow;
/// assert_eq!(Overflow::default(), Overflow::Backpressure);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Overflow {
    /// The sender waits until there is room.
    #[default]
    Backpressure,
    /// The sender gets an error that carries the message back.
    Reject,
    /// The oldest queued message is dead-lettered to make room.
    DropOldest,
    /// The new message is dead-lettered.
    DropNewest,
}

impl fmt::Display for Overflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Overflow::Backpressure => "backpressure",
            Overflow::Reject => "reject",
            Overflow::DropOldest => "drop-oldest",
            Overflow::DropNewest => "drop-newest",
        })
    }
}

/// The capacity and overflow policy of a mailbox.
///
/// ```
/// use mercato::{MailboxConfig, Overflow};
/// let config = MailboxConfig::default();
/// assert_eq!(config.capacity(), 1024);
/// assert_eq!(config.overflow(), Overflow::Backpressure);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailboxConfig {
    capacity: usize,
    overflow: Overflow,
}

impl Default for MailboxConfig {
    fn default() -> Self {
        MailboxConfig {
            capacity: 1024,
            overflow: Overflow::Backpressure,
        }
    }
}

impl MailboxConfig {
    /// A configuration; checked by [`validate`](Self::validate) at spawn.
    pub fn new(capacity: usize, overflow: Overflow) -> Self {
        MailboxConfig { capacity, overflow }
    }
    /// How many messages the mailbox holds at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
    /// What a full mailbox does.
    pub fn overflow(&self) -> Overflow {
        self.overflow
    }
    /// Refuses a capacity of 0, or one over `u32::MAX`, naming the field.
    ///
    /// ```
    /// use mercato::{MailboxConfig, Overflow};
    /// assert!(MailboxConfig::new(1, Overflow::Reject).validate().is_ok());
    /// let too_big = MailboxConfig::new(1 << 40, Overflow::Reject).validate();
    /// assert!(too_big.unwrap_err().to_string().contains("mailbox.capacity"));
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.capacity == 0 {
            return Err(ConfigError::new(
                "mailbox.capacity",
                "0",
                "must be at least 1: a mailbox that holds nothing can accept no message",
            ));
        }
        if u32::try_from(self.capacity).is_err() {
            return Err(ConfigError::new(
                "mailbox.capacity",
                self.capacity.to_string(),
                "must be at most 4294967295 (u32::MAX): a bound that high is no bound; \
                 pick the most messages this actor may fall behind by",
            ));
        }
        Ok(())
    }
}

/// A reading of one mailbox's gauges.
///
/// ```no_run
/// # #[allow(dead_code)]
/// # async fn f(system: mercato::System) {
/// for m in system.mailboxes() {
///     println!("{}: {} queued (high water {}), {} processed", m.actor, m.depth, m.high_water, m.processed);
/// }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MailboxGauges {
    /// The actor's name.
    pub actor: String,
    /// The mailbox's capacity.
    pub capacity: usize,
    /// Messages queued now.
    pub depth: usize,
    /// The most messages ever queued at once.
    pub high_water: usize,
    /// Messages accepted into the queue so far (periodic timer ticks travel
    /// on the control lane and are not counted here).
    pub enqueued: u64,
    /// Messages taken from the queue whose handling has finished (handled,
    /// or given up on and dead-lettered).
    pub processed: u64,
    /// Sends refused because the mailbox was full (`Overflow::Reject`).
    pub rejected: u64,
    /// Messages dropped by `DropOldest`/`DropNewest` (all dead-lettered).
    pub dropped: u64,
    /// How long the handler now running has been running, if one is:
    /// timed from its first wait (its first `.await` that had to wait), or,
    /// for a handler that has not waited yet, from the first reading of the
    /// gauges while it runs. So no clock is read for a handler that finishes
    /// without waiting, the common case.
    pub running_for: Option<Duration>,
}

impl fmt::Display for MailboxGauges {
    /// One line an operator can read at a glance:
    /// `cart: 3/256 queued (high water 10), 1200 processed, 0 rejected, 0 dropped, running 12ms`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}/{} queued (high water {}), {} processed, {} rejected, {} dropped",
            self.actor,
            self.depth,
            self.capacity,
            self.high_water,
            self.processed,
            self.rejected,
            self.dropped
        )?;
        match self.running_for {
            Some(age) => write!(f, ", running {age:?}"),
            None => f.write_str(", idle"),
        }
    }
}

/// A signal of the runtime, carried outside the capacity.
#[derive(Debug)]
pub(crate) enum Control {
    /// Stop the actor (children first), dead-lettering what is queued.
    Stop,
    /// Restart because a sibling failed (one-for-all / rest-for-one).
    Restart(String),
    /// A child escalated a failure it could not absorb.
    Escalate(String),
    /// A periodic timer fired.
    Tick(u64),
}

/// What the receiver gets next (the loom models read the mailbox this way).
#[cfg(loom)]
#[derive(Debug)]
pub(crate) enum Received<M> {
    Control(Control),
    Message(M),
}

/// The outcome of an accepted push. A displaced message is boxed: that is
/// the rare case, and an outcome the size of a message would be copied on
/// every push (several times, on the way out of the lock).
#[derive(Debug)]
pub(crate) enum Pushed<M> {
    /// Queued.
    Queued,
    /// Queued after evicting the oldest message (`DropOldest`).
    Evicted(Box<M>),
    /// Not queued: dropped by `DropNewest`; the message, wrapped.
    DroppedNewest(Box<M>),
}

/// Why a push was refused; the sender gets its value back.
#[derive(Debug)]
pub(crate) enum Refused<T> {
    /// Full under `Overflow::Reject`.
    Full(T),
    /// The mailbox no longer takes messages.
    Closed(T),
}

/// The state behind a mailbox's lock. Laid out in order (see
/// [`Mailbox`]): what a send touches first, then what it does not.
#[derive(Debug)]
#[repr(C)]
struct State<M> {
    // Touched by every send.
    queue: Ring<M>,
    receiver: Option<Waker>,
    /// The control lane and the senders waiting for room, made on first use.
    rare: Option<Box<Rare>>,
    enqueued: u64,
    /// At most the capacity, which fits in 32 bits.
    high_water: u32,
    closed: bool,
    /// The receiver took an item (a message, a control signal, or its own
    /// start or stop) and has not asked for the next one yet. Through a batch
    /// this stays set from one message to the next.
    running: bool,
    /// Whether this mailbox is counted in its `Busy` now.
    counted_busy: bool,
    // Not touched by a send that finds room.
    cancel: bool,
    retired: bool,
    /// The size the queue's buffer takes when it first grows after a swap
    /// (the batch's), so that it grows once, not by doubling. At most the
    /// capacity.
    spare: u32,
    rejected: u64,
    dropped: u64,
    /// The clock of the item now running, made the first time one waits or
    /// is seen running (most actors' handlers never wait, so most mailboxes
    /// carry only the pointer) and kept.
    clock: Option<Box<Clock>>,
}

/// When the item now running first waited (or was first seen running), and
/// which started item that was (its `started` count).
#[derive(Debug)]
struct Clock {
    since: Option<(tokio::time::Instant, u32)>,
}

/// What most mailboxes never use, or only at the end: the control lane and
/// the senders waiting for room. Boxed on first use (and kept), so that an
/// idle actor does not carry it.
#[derive(Debug, Default)]
struct Rare {
    control: VecDeque<Control>,
    waiting_senders: VecDeque<(u64, Waker)>,
    next_waiter: u64,
}

impl<M> State<M> {
    fn rare(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }

    fn has_control(&self) -> bool {
        self.rare
            .as_ref()
            .is_some_and(|rare| !rare.control.is_empty())
    }

    fn has_waiting_senders(&self) -> bool {
        self.rare
            .as_ref()
            .is_some_and(|rare| !rare.waiting_senders.is_empty())
    }

    fn next_control(&mut self) -> Option<Control> {
        self.rare.as_mut()?.control.pop_front()
    }

    fn next_waiting_sender(&mut self) -> Option<Waker> {
        let rare = self.rare.as_mut()?;
        rare.waiting_senders.pop_front().map(|(_, waker)| waker)
    }

    /// Takes out waiting sender `id`; `false` if it was not waiting.
    fn remove_waiting_sender(&mut self, id: u64) -> bool {
        let Some(rare) = self.rare.as_mut() else {
            return false;
        };
        match rare.waiting_senders.iter().position(|(w, _)| *w == id) {
            Some(pos) => {
                rare.waiting_senders.remove(pos);
                true
            }
            None => false,
        }
    }

    /// Queues the message `make` returns at the back, made in its slot:
    /// every send path, so that the queue's buffer, empty after a batch
    /// swap, grows once to the batch's size.
    #[inline]
    fn enqueue(&mut self, make: impl FnOnce() -> M) {
        if self.queue.capacity() == 0 {
            self.queue.reserve(self.spare as usize);
        }
        self.queue.push_back_with(make);
    }

    fn has_work(&self) -> bool {
        self.running || !self.queue.is_empty() || self.has_control()
    }
}

/// What the owner of a mailbox keeps inside it: at the front, with what
/// senders write, what they also read for every message (an actor's cell
/// keeps its system there), and in the middle, between what senders and
/// the receiver write, what neither touches per message (the actor's id
/// and name). The head also leads to the [`Busy`] count the mailbox
/// reports to, if any.
pub(crate) trait Owner {
    /// Kept at the front of the mailbox.
    type Head;
    /// The count of owners with work that a mailbox with this head is
    /// counted in.
    fn busy(head: &Self::Head) -> Option<&Busy>;
}

impl Owner for () {
    type Head = ();
    fn busy(_: &()) -> Option<&Busy> {
        None
    }
}

/// A bounded multi-producer, single-consumer queue with a control lane.
///
/// Laid out in order, so that senders and the receiver do not write to the
/// same cache line for every message: first what a send reads or writes
/// (the owner's head, the bound, `in_hand`, the lock and the front of
/// [`State`]), then fields a send does not touch (the back of `State`, and
/// the owner's middle),
/// then what the receiver reads or writes for every message it starts. The
/// fields in between span at least 48 bytes for an actor's cell, which with
/// the 16-byte alignment that allocators give on 64-bit targets keeps the
/// two ends at least one 64-byte line apart (a test checks the offsets).
/// For the same reason the receiver publishes `in_hand` every
/// [`SYNC_EVERY`] messages, not at each one.
#[repr(C)]
pub(crate) struct Mailbox<M, O: Owner = ()> {
    // Read by every send.
    /// See [`Owner`].
    pub(crate) head: O::Head,
    /// At most `u32::MAX` ([`MailboxConfig::validate`]), so that it shares
    /// eight bytes with `overflow`.
    capacity: u32,
    overflow: Overflow,
    /// Messages in the receiver's batch, not yet started, as the receiver
    /// last reported them, with its `started` count at the time (the count
    /// in the high 32 bits, `started` in the low ones).
    /// Only the receiver writes it: under the lock whenever it takes from the
    /// queue, and without it every [`SYNC_EVERY`] messages it starts from its
    /// batch, not at each one, since a write per message would move this
    /// line between the senders' core and the receiver's every time. A send
    /// that finds room by this report (never less than the truth: the count
    /// only falls between reports) reads no more; one that finds the mailbox
    /// full by it takes the exact count, the report less what was started
    /// since (see [`Mailbox::in_hand_now`]). So the bound is exact.
    in_hand: AtomicU64,
    state: Mutex<State<M>>,
    // Not touched by a send or the receiver's message.
    /// See [`Owner`].
    pub(crate) owner: O,
    // Read or written by the receiver for every message.
    /// A control signal is queued: the receiver stops taking from its batch.
    control_pending: AtomicBool,
    /// A sender waits for room: the receiver comes back under the lock every
    /// [`SYNC_EVERY`] messages to make room known.
    senders_waiting: AtomicBool,
    /// How many items the receiver has started (wrapping: it is only
    /// compared with counts taken shortly before), so that the
    /// `running_for` clock belongs to the one running now.
    started: AtomicU32,
    /// Messages whose handling has finished. Only the receiver writes it.
    processed: AtomicU64,
    /// The receiver's batch when the loom models drive the mailbox.
    #[cfg(loom)]
    loom_batch: std::sync::Mutex<Batch<M>>,
}

/// While senders wait for room, the receiver takes at most this many
/// messages from its batch before it takes the lock to publish what it has
/// handled and to wake them; and it reports its batch (`in_hand`) this often.
/// Two in the loom models, so that a batch of three exercises both.
const SYNC_EVERY: u32 = if cfg!(loom) { 2 } else { 32 };

/// What the receiver took from its mailbox and has not started yet, and how
/// many it started since it last held the lock. Owned by the receiver.
#[derive(Debug)]
pub(crate) struct Batch<M> {
    items: Ring<M>,
    since_sync: u32,
    /// The item started last is a message (not a control signal), to be
    /// counted as processed once it finishes.
    running_message: bool,
}

impl<M> Default for Batch<M> {
    fn default() -> Self {
        Batch {
            items: Ring::new(),
            since_sync: 0,
            running_message: false,
        }
    }
}

impl<M, O: Owner> fmt::Debug for Mailbox<M, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mailbox")
            .field("capacity", &self.capacity)
            .field("overflow", &self.overflow)
            .finish_non_exhaustive()
    }
}

impl<M> Mailbox<M> {
    /// A mailbox with no owner's fields, counted nowhere.
    #[cfg(any(test, loom))]
    pub(crate) fn new(config: MailboxConfig) -> Self {
        Mailbox::owned(config, (), ())
    }
}

impl<M, O: Owner> Mailbox<M, O> {
    /// A mailbox holding its owner's `head` and middle (`owner`), counted in
    /// the head's `Busy` while the owner has work.
    pub(crate) fn owned(config: MailboxConfig, head: O::Head, owner: O) -> Self {
        let mailbox = Mailbox {
            state: Mutex::new(State {
                queue: Ring::new(),
                receiver: None,
                rare: None,
                closed: false,
                cancel: false,
                // Busy from creation until the owner first asks for a
                // message: its start hook counts as running.
                running: true,
                retired: false,
                high_water: 0,
                enqueued: 0,
                rejected: 0,
                dropped: 0,
                clock: None,
                counted_busy: false,
                spare: 0,
            }),
            capacity: u32::try_from(config.capacity)
                .expect("`MailboxConfig::validate` keeps a capacity within u32"),
            overflow: config.overflow,
            head,
            owner,
            in_hand: AtomicU64::new(0),
            control_pending: AtomicBool::new(false),
            senders_waiting: AtomicBool::new(false),
            started: AtomicU32::new(0),
            processed: AtomicU64::new(0),
            #[cfg(loom)]
            loom_batch: std::sync::Mutex::new(Batch::default()),
        };
        // Count the owner's start as work from the outset.
        drop(mailbox.lock());
        mailbox
    }

    /// Locks the state; unlocking brings the `Busy` count in line with it.
    fn lock(&self) -> Locked<'_, M, O> {
        Locked {
            mailbox: self,
            state: self.state.lock(),
        }
    }

    /// Brings the `Busy` count in line with the state, under its lock.
    fn account(&self, state: &mut State<M>) {
        let has_work = state.has_work();
        if has_work != state.counted_busy {
            if let Some(busy) = O::busy(&self.head) {
                state.counted_busy = has_work;
                if has_work { busy.up() } else { busy.down() }
            }
        }
    }

    pub(crate) fn overflow(&self) -> Overflow {
        self.overflow
    }

    fn capacity(&self) -> usize {
        self.capacity as usize
    }

    /// Messages held: queued, and in the receiver's batch, exactly.
    fn held(&self, state: &State<M>) -> usize {
        state.queue.len() + self.in_hand_now()
    }

    /// Messages held as a send sees them: by the receiver's last report
    /// when that shows room, exactly otherwise. Either way it shows room
    /// only if there is room.
    fn held_for_send(&self, state: &State<M>) -> usize {
        let reported = state.queue.len() + self.in_hand_reported();
        if reported < self.capacity() {
            reported
        } else {
            self.held(state)
        }
    }

    /// What [`held_for_send`](Self::held_for_send) counts, if the mailbox
    /// is open and that leaves room for one more message.
    #[inline(always)]
    fn room(&self, state: &State<M>) -> Option<usize> {
        let held = self.held_for_send(state);
        (!state.closed && held < self.capacity()).then_some(held)
    }

    /// Queues the message `make` gives, for which [`room`](Self::room)
    /// found room with `held` before it, and counts it in the gauges.
    #[inline(always)]
    fn queue_in_room(&self, state: &mut State<M>, held: usize, make: impl FnOnce() -> M) {
        state.enqueue(make);
        state.enqueued += 1;
        self.note_high_water(state, held + 1);
    }

    /// Raises the high-water mark after a push that `held_for_send` counted
    /// as making `held` messages: exactly, but without reading the exact
    /// count unless that could be a new mark.
    fn note_high_water(&self, state: &mut State<M>, held: usize) {
        if held > state.high_water as usize {
            // Never more than the capacity, a `u32`.
            let now = u32::try_from(self.held(state)).unwrap_or(u32::MAX);
            state.high_water = state.high_water.max(now);
        }
    }

    /// Reports `len` messages in the receiver's batch as of its `started`
    /// count now. Receiver only.
    fn report_in_hand(&self, len: usize) {
        let at = self.started.load(Ordering::Relaxed);
        self.in_hand
            .store(((len as u64) << 32) | u64::from(at), Ordering::Release);
    }

    /// The receiver's batch as last reported: never less than the truth.
    fn in_hand_reported(&self) -> usize {
        (self.in_hand.load(Ordering::Acquire) >> 32) as usize
    }

    /// The receiver's batch now: the report less the items started since.
    /// Exact under the lock, which the receiver needs to take a new batch;
    /// between reports it only starts items from the reported one.
    fn in_hand_now(&self) -> usize {
        let report = self.in_hand.load(Ordering::Acquire);
        let started = self.started.load(Ordering::Acquire);
        let since = started.wrapping_sub(report as u32);
        ((report >> 32) as usize).saturating_sub(since as usize)
    }

    /// Whether the receiver may take everything queued at once (under
    /// `Backpressure`), or one message at a time (the other policies, whose
    /// eviction and refusal must see every held message in the queue).
    fn batches(&self) -> bool {
        self.overflow == Overflow::Backpressure
    }

    /// Records whether any sender waits, for the receiver's fast path.
    fn note_waiting(&self, state: &State<M>) {
        self.senders_waiting
            .store(state.has_waiting_senders(), Ordering::Release);
    }

    /// Pushes without waiting. `Backpressure` on a full mailbox gives
    /// `Err(Refused::Full)` here; use [`push`](Self::push) to wait instead.
    #[inline]
    pub(crate) fn try_push<T>(
        &self,
        value: T,
        wrap: impl FnOnce(T) -> M,
    ) -> Result<Pushed<M>, Refused<T>> {
        let mut state = self.lock();
        if let Some(held) = self.room(&state) {
            // Room: the value goes straight into the queue, and the usual
            // outcome is returned from here, as in `Push::poll`, rather
            // than assembled on the stack by `push_locked` and copied.
            self.queue_in_room(&mut state, held, || wrap(value));
            let receiver = state.receiver.take();
            drop(state);
            if let Some(waker) = receiver {
                waker.wake();
            }
            return Ok(Pushed::Queued);
        }
        let (result, waker) = match self.push_locked(&mut *state, value, wrap, None) {
            Attempt::Done(result, waker) => (result, waker),
            Attempt::Wait(value) => (Err(Refused::Full(value)), None),
        };
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
        result
    }

    /// Pushes only if there is room now, whatever the policy: nothing is
    /// evicted or counted as rejected. For choosing among a group's members.
    pub(crate) fn try_push_if_room<T>(&self, value: T, wrap: impl FnOnce(T) -> M) -> Result<(), T> {
        let waker = {
            let mut state = self.lock();
            let Some(held) = self.room(&state) else {
                return Err(value);
            };
            self.queue_in_room(&mut state, held, || wrap(value));
            state.receiver.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }

    /// Closes intake if nothing is queued or running: an idle entity
    /// passivating. `false` when a message slipped in first.
    pub(crate) fn close_if_idle(&self) -> bool {
        let mut state = self.lock();
        if state.closed || !state.queue.is_empty() || state.has_control() || state.running {
            return false;
        }
        state.closed = true;
        true
    }

    /// Marks the owner busy outside any message (stopping, passivating), so
    /// that `settled` waits for it.
    pub(crate) fn mark_busy(&self) {
        let mut state = self.lock();
        state.running = true;
    }

    /// Counts a refusal made outside `push` (a `try_tell` under back-pressure).
    pub(crate) fn note_rejected(&self) {
        self.lock().rejected += 1;
    }

    /// Pushes, waiting for room when the policy is `Backpressure`.
    pub(crate) fn push<T, W: FnOnce(T) -> M>(&self, value: T, wrap: W) -> Push<'_, M, T, W, O> {
        Push {
            mailbox: self,
            value: Some((value, wrap)),
            waiter: None,
        }
    }

    fn push_locked<T>(
        &self,
        state: &mut State<M>,
        value: T,
        wrap: impl FnOnce(T) -> M,
        waiter: Option<(u64, &Waker)>,
    ) -> Attempt<M, T> {
        if state.closed {
            return Attempt::Done(Err(Refused::Closed(value)), None);
        }
        let held = self.held_for_send(state);
        let pushed = if held < self.capacity() {
            state.enqueue(|| wrap(value));
            Pushed::Queued
        } else {
            match self.overflow {
                Overflow::Backpressure => {
                    if let Some((id, waker)) = waiter {
                        state.rare().waiting_senders.push_back((id, waker.clone()));
                        self.note_waiting(state);
                    }
                    return Attempt::Wait(value);
                }
                Overflow::Reject => {
                    state.rejected += 1;
                    return Attempt::Done(Err(Refused::Full(value)), None);
                }
                Overflow::DropOldest => {
                    state.dropped += 1;
                    let evicted = state.queue.pop_front();
                    state.enqueue(|| wrap(value));
                    match evicted {
                        Some(evicted) => Pushed::Evicted(Box::new(evicted)),
                        None => Pushed::Queued,
                    }
                }
                Overflow::DropNewest => {
                    state.dropped += 1;
                    return Attempt::Done(Ok(Pushed::DroppedNewest(Box::new(wrap(value)))), None);
                }
            }
        };
        state.enqueued += 1;
        // After a `DropOldest` eviction the queue holds as many as before.
        self.note_high_water(state, held.min(self.capacity() - 1) + 1);
        Attempt::Done(Ok(pushed), state.receiver.take())
    }

    /// Queues a runtime signal outside the capacity. Returns `false` once
    /// the receiver is gone.
    pub(crate) fn push_control(&self, control: Control) -> bool {
        let waker = {
            let mut state = self.lock();
            if state.retired {
                return false;
            }
            state.rare().control.push_back(control);
            self.control_pending.store(true, Ordering::Release);
            state.receiver.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        true
    }

    /// Asks the receiver to cancel the handler now running.
    pub(crate) fn cancel(&self) {
        let waker = {
            let mut state = self.lock();
            state.cancel = true;
            state.receiver.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Whether cancellation was asked for; registers the waker otherwise.
    /// The receiver's handler is waiting: this also starts its clock for
    /// the `running_for` gauge.
    pub(crate) fn poll_cancelled(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.lock();
        state.stamp_running(self.started.load(Ordering::Relaxed));
        if state.cancel {
            Poll::Ready(())
        } else {
            state.receiver = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    /// Whether cancellation was asked for.
    pub(crate) fn is_cancelled(&self) -> bool {
        self.lock().cancel
    }

    /// Finishes the previous item, then takes the next: control first. (The
    /// loom models receive this way, through a batch kept in the mailbox.)
    #[cfg(loom)]
    pub(crate) fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Received<M>> {
        let mut slot = None;
        let lock = || {
            self.loom_batch
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        let mut batch = std::mem::take(&mut *lock());
        let taken = self.poll_take(cx, &mut batch, &mut slot);
        *lock() = batch;
        taken.map(|control| match control {
            Some(control) => Received::Control(control),
            None => Received::Message(slot.take().expect("a message was taken")),
        })
    }

    /// Finishes the previous item, then takes the next, control first: a
    /// message is moved into `slot` (`Ready(None)`), a control signal is
    /// returned (`Ready(Some(_))`). Under `Backpressure` the receiver takes
    /// everything queued into its `batch` at once and then starts messages
    /// from it without the lock, coming back under the lock when the batch is
    /// empty, when a control signal waits, and, while senders wait for room,
    /// every [`SYNC_EVERY`] messages.
    pub(crate) fn poll_take(
        &self,
        cx: &mut Context<'_>,
        batch: &mut Batch<M>,
        slot: &mut Option<M>,
    ) -> Poll<Option<Control>> {
        if !batch.items.is_empty()
            && !self.control_pending.load(Ordering::Acquire)
            && (batch.since_sync < SYNC_EVERY || !self.senders_waiting.load(Ordering::Acquire))
        {
            self.finish(batch);
            batch.items.pop_front_into(slot);
            batch.running_message = true;
            batch.since_sync = batch.since_sync.saturating_add(1);
            self.started.store(
                self.started.load(Ordering::Relaxed).wrapping_add(1),
                Ordering::Release,
            );
            // Reported in steps (see `in_hand`); senders who find the
            // report full count what was started since.
            if batch.since_sync % SYNC_EVERY == 0 {
                self.report_in_hand(batch.items.len());
            }
            return Poll::Ready(None);
        }
        if crate::launch::starting() {
            // Starting in its spawner's task (see `launch`): nothing is
            // handled there. It parks on the empty mailbox, or, if there is
            // work already, asks for a task of its own and parks until then.
            self.finish(batch);
            let mut state = self.lock();
            state.finish_locked();
            if state.queue.is_empty() && !state.has_control() && batch.items.is_empty() {
                state.receiver = Some(cx.waker().clone());
            } else {
                cx.waker().wake_by_ref();
            }
            return Poll::Pending;
        }
        // Each take under the lock (a batch, or one message under the
        // policies that hand them over one at a time) is a unit of tokio's
        // cooperative budget, as a value received from a tokio channel is:
        // an actor that always has mail yields its thread now and then
        // instead of holding it.
        let coop = match tokio::task::coop::poll_proceed(cx) {
            Poll::Ready(coop) => coop,
            Poll::Pending => {
                self.finish(batch);
                return Poll::Pending;
            }
        };
        let mut wake: [Option<Waker>; 4] = Default::default();
        let taken = {
            let mut state = self.lock();
            self.finish(batch);
            batch.since_sync = 0;
            state.finish_locked();
            let control = state.next_control();
            self.control_pending
                .store(state.has_control(), Ordering::Release);
            // Several queued under `Backpressure`: take them all by swapping
            // buffers. One (or another policy): take it alone, so that an
            // actor that gets a message now and then keeps one buffer.
            if control.is_none()
                && batch.items.is_empty()
                && self.batches()
                && state.queue.len() > 1
            {
                std::mem::swap(&mut state.queue, &mut batch.items);
                // The two buffers take turns. The queue's grows, at the next
                // send, straight to the batch's size, so that in steady state
                // neither grows (and a send allocates nothing); an actor that
                // gets nothing more keeps one buffer, not two.
                state.spare = u32::try_from(batch.items.capacity()).unwrap_or(u32::MAX);
            }
            let taken = if control.is_some() {
                Poll::Ready(control)
            } else if batch.items.pop_front_into(slot) || state.queue.pop_front_into(slot) {
                Poll::Ready(None)
            } else {
                state.receiver = Some(cx.waker().clone());
                Poll::Pending
            };
            if let Poll::Ready(control) = &taken {
                self.started.store(
                    self.started.load(Ordering::Relaxed).wrapping_add(1),
                    Ordering::Release,
                );
                state.running = true;
                batch.running_message = control.is_none();
            }
            // After `started`, which the report is taken against.
            self.report_in_hand(batch.items.len());
            // Room made since the last sync goes to waiting senders.
            if state.has_waiting_senders() {
                let room = self.capacity().saturating_sub(self.held(&state));
                for slot in wake.iter_mut().take(room) {
                    *slot = state.next_waiting_sender();
                }
                self.note_waiting(&state);
            }
            taken
        };
        for waker in wake.into_iter().flatten() {
            waker.wake();
        }
        if taken.is_ready() {
            coop.made_progress();
        }
        taken
    }

    /// Counts the item started last as processed if it was a message: it
    /// has finished by the time the receiver asks for the next one.
    fn finish(&self, batch: &mut Batch<M>) {
        if std::mem::take(&mut batch.running_message) {
            let processed = self.processed.load(Ordering::Relaxed);
            self.processed.store(processed + 1, Ordering::Release);
        }
    }

    /// Gives back what the receiver's batch still holds, to the front of
    /// the queue in order: the receiver stops (for good, or to restart).
    pub(crate) fn unreceive(&self, batch: &mut Batch<M>) {
        self.finish(batch);
        let mut state = self.lock();
        batch.since_sync = 0;
        while let Some(message) = batch.items.pop_back() {
            state.queue.push_front(message);
        }
        self.report_in_hand(0);
    }

    /// Stops intake: senders get their value back as `Refused::Closed`,
    /// waiting senders wake. Returns what was queued, in order.
    pub(crate) fn close(&self) -> VecDeque<M> {
        let (queued, waiters) = {
            let mut state = self.lock();
            state.closed = true;
            let taken = (
                std::mem::take(&mut state.queue).collect(),
                state
                    .rare
                    .as_mut()
                    .map(|rare| std::mem::take(&mut rare.waiting_senders))
                    .unwrap_or_default(),
            );
            self.note_waiting(&state);
            taken
        };
        for (_, waker) in waiters {
            waker.wake();
        }
        queued
    }

    /// Marks the receiver gone for good: control pushes now fail.
    pub(crate) fn retire(&self) {
        let mut state = self.lock();
        state.finish_locked();
        state.closed = true;
        state.retired = true;
        state.receiver = None;
        if let Some(rare) = state.rare.as_mut() {
            rare.control.clear();
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    pub(crate) fn gauges(&self, actor: &str) -> MailboxGauges {
        let mut state = self.lock();
        state.stamp_running(self.started.load(Ordering::Relaxed));
        MailboxGauges {
            actor: actor.to_owned(),
            capacity: self.capacity(),
            depth: self.held(&state),
            high_water: state.high_water as usize,
            enqueued: state.enqueued,
            processed: self.processed.load(Ordering::Acquire),
            rejected: state.rejected,
            dropped: state.dropped,
            running_for: state
                .clock
                .as_ref()
                .and_then(|clock| clock.since)
                .map(|(t, _)| t.elapsed()),
        }
    }

    fn forget_waiter(&self, id: u64) {
        let waker = {
            let mut state = self.lock();
            let waker = if state.remove_waiting_sender(id) {
                None
            } else if self.held(&state) < self.capacity() {
                // We were woken for a free slot but will not use it: pass
                // the wake-up on so no other waiting sender is stranded.
                state.next_waiting_sender()
            } else {
                None
            };
            self.note_waiting(&state);
            waker
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<M> State<M> {
    /// Starts the clock of what runs now (the `started`-th item), if it is
    /// not started yet.
    fn stamp_running(&mut self, started: u32) {
        if !self.running {
            return;
        }
        let clock = self
            .clock
            .get_or_insert_with(|| Box::new(Clock { since: None }));
        if clock.since.is_none_or(|(_, item)| item != started) {
            clock.since = Some((tokio::time::Instant::now(), started));
        }
    }

    fn finish_locked(&mut self) {
        self.running = false;
        if let Some(clock) = self.clock.as_mut() {
            clock.since = None;
        }
    }
}

/// The locked state of a mailbox; see [`Mailbox::lock`].
struct Locked<'a, M, O: Owner> {
    mailbox: &'a Mailbox<M, O>,
    state: crate::sync::MutexGuard<'a, State<M>>,
}

impl<M, O: Owner> std::ops::Deref for Locked<'_, M, O> {
    type Target = State<M>;
    fn deref(&self) -> &State<M> {
        &self.state
    }
}

impl<M, O: Owner> std::ops::DerefMut for Locked<'_, M, O> {
    fn deref_mut(&mut self) -> &mut State<M> {
        &mut self.state
    }
}

impl<M, O: Owner> Drop for Locked<'_, M, O> {
    fn drop(&mut self) {
        self.mailbox.account(&mut self.state);
    }
}

enum Attempt<M, T> {
    Done(Result<Pushed<M>, Refused<T>>, Option<Waker>),
    Wait(T),
}

/// The future of [`Mailbox::push`].
pub(crate) struct Push<'a, M, T, W, O: Owner = ()> {
    mailbox: &'a Mailbox<M, O>,
    value: Option<(T, W)>,
    waiter: Option<u64>,
}

impl<M, T, W, O: Owner> Unpin for Push<'_, M, T, W, O> {}

impl<M, T, W: FnOnce(T) -> M, O: Owner> Future for Push<'_, M, T, W, O> {
    type Output = Result<Pushed<M>, Refused<T>>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if this.value.is_none() {
            panic!("`Push` polled after completion");
        }
        // Under the policies that never wait for room, each send is a unit
        // of tokio's cooperative budget, as a send on a tokio channel is, so
        // that a loop of them still yields its thread now and then. Under
        // `Backpressure` a loop of sends waits once the mailbox is full.
        let coop = if this.mailbox.overflow == Overflow::Backpressure {
            None
        } else {
            Some(std::task::ready!(tokio::task::coop::poll_proceed(cx)))
        };
        let (result, waker) = {
            let mut state = this.mailbox.lock();
            let old = this.waiter.take();
            if let Some(old) = old {
                // Still registered from an earlier poll: take it out
                // before trying again, so it is never registered twice.
                if state.remove_waiting_sender(old) {
                    this.mailbox.note_waiting(&state);
                }
            }
            if let Some(held) = this.mailbox.room(&state) {
                // Room: the value goes straight into the queue.
                let Some((value, wrap)) = this.value.take() else {
                    panic!("`Push` polled after completion");
                };
                this.mailbox.queue_in_room(&mut state, held, || wrap(value));
                // A woken sender passes the wake-up on while room is left,
                // so every waiting sender gets its turn.
                let mut next_sender = None;
                if old.is_some() && this.mailbox.held(&state) < this.mailbox.capacity() {
                    next_sender = state.next_waiting_sender();
                    this.mailbox.note_waiting(&state);
                }
                let receiver = state.receiver.take();
                drop(state);
                // Returned from here rather than through the common tail,
                // so that the result is written once, not assembled on the
                // stack and copied.
                after_push(receiver, next_sender, coop);
                return Poll::Ready(Ok(Pushed::Queued));
            } else {
                let Some((value, wrap)) = this.value.take() else {
                    panic!("`Push` polled after completion");
                };
                let id = old.unwrap_or_else(|| {
                    let rare = state.rare();
                    rare.next_waiter += 1;
                    rare.next_waiter
                });
                // The wrap closure is only called when the value is queued,
                // so it is moved through a slot that push_locked can consume.
                let mut wrap = Some(wrap);
                let attempt = this.mailbox.push_locked(
                    &mut *state,
                    value,
                    |v| (wrap.take().expect("wrap called once"))(v),
                    Some((id, cx.waker())),
                );
                match attempt {
                    Attempt::Done(result, waker) => (result, waker),
                    Attempt::Wait(value) => {
                        this.waiter = Some(id);
                        let wrap = wrap.take().expect("wrap unused while waiting");
                        this.value = Some((value, wrap));
                        return Poll::Pending;
                    }
                }
            }
        };
        after_push(waker, None, coop);
        Poll::Ready(result)
    }
}

/// What a push does once the lock is released: wakes the receiver and the
/// next waiting sender it took, and counts against tokio's budget.
#[inline(always)]
fn after_push(
    receiver: Option<Waker>,
    sender: Option<Waker>,
    coop: Option<tokio::task::coop::RestoreOnPending>,
) {
    if let Some(waker) = receiver {
        waker.wake();
    }
    if let Some(sender) = sender {
        sender.wake();
    }
    if let Some(coop) = coop {
        coop.made_progress();
    }
}

impl<M, T, W, O: Owner> Push<'_, M, T, W, O> {
    /// The value still to be queued, if any.
    #[inline]
    pub(crate) fn value_mut(&mut self) -> Option<&mut T> {
        self.value.as_mut().map(|(value, _)| value)
    }

    /// Gives up waiting: the value and its wrapper come back, unqueued.
    pub(crate) fn cancel(&mut self) -> Option<(T, W)> {
        if let Some(id) = self.waiter.take() {
            self.mailbox.forget_waiter(id);
        }
        self.value.take()
    }
}

impl<M, T, W, O: Owner> Drop for Push<'_, M, T, W, O> {
    fn drop(&mut self) {
        if let Some(id) = self.waiter.take() {
            self.mailbox.forget_waiter(id);
        }
    }
}

#[cfg(all(test, loom))]
#[path = "mailbox_loom.rs"]
mod loom_tests;

#[cfg(all(test, not(loom)))]
mod tests {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::task::{Context, Poll, Wake, Waker};

    use super::{Batch, Mailbox, MailboxConfig, Overflow, Pushed, Refused, SYNC_EVERY};
    use crate::ActorConfig;

    /// A waker that records that it was woken.
    #[derive(Default)]
    struct Flag(AtomicBool);

    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    impl Flag {
        fn woken(&self) -> bool {
            self.0.load(Ordering::SeqCst)
        }
    }

    /// A full mailbox of capacity 1 (holding message 0).
    fn full() -> Mailbox<u32> {
        let mailbox = Mailbox::new(MailboxConfig::new(1, Overflow::Backpressure));
        assert!(matches!(mailbox.try_push(0, |m| m), Ok(Pushed::Queued)));
        mailbox
    }

    fn poll_push<F: Future + Unpin>(push: &mut F, flag: &Arc<Flag>) -> Poll<F::Output> {
        let waker = Waker::from(flag.clone());
        Pin::new(push).poll(&mut Context::from_waker(&waker))
    }

    fn poll_take(mailbox: &Mailbox<u32>, batch: &mut Batch<u32>) -> Option<u32> {
        let mut slot = None;
        let mut cx = Context::from_waker(Waker::noop());
        match mailbox.poll_take(&mut cx, batch, &mut slot) {
            Poll::Ready(None) => slot,
            Poll::Ready(Some(control)) => panic!("unexpected control {control:?}"),
            Poll::Pending => None,
        }
    }

    // More senders give up than one sync of the receiver wakes (4): none of
    // them may keep a place in the line, or the live sender behind them is
    // never woken while the receiver waits for mail.
    #[test]
    fn senders_that_give_up_leave_the_line_and_the_next_live_one_is_woken() {
        let mailbox = full();
        let gave_up: Vec<_> = (0..5).map(|_| Arc::new(Flag::default())).collect();
        for (n, flag) in gave_up.iter().enumerate() {
            let mut push = mailbox.push(10 + n as u32, |m| m);
            assert!(poll_push(&mut push, flag).is_pending());
            drop(push);
        }
        let live = Arc::new(Flag::default());
        let mut push = mailbox.push(1, |m| m);
        assert!(poll_push(&mut push, &live).is_pending());

        let mut batch = Batch::default();
        assert_eq!(poll_take(&mailbox, &mut batch), Some(0));
        assert_eq!(poll_take(&mailbox, &mut batch), None, "the receiver waits");
        assert!(live.woken(), "the live sender was not woken");
        assert!(
            gave_up.iter().all(|f| !f.woken()),
            "a sender that gave up was woken"
        );
        assert!(matches!(
            poll_push(&mut push, &live),
            Poll::Ready(Ok(Pushed::Queued))
        ));
        assert_eq!(poll_take(&mailbox, &mut batch), Some(1));
        assert!(!mailbox.lock().has_waiting_senders());
    }

    // A sender woken for room that gives up instead of pushing hands its
    // wake-up to the next waiting sender at once, not at the receiver's
    // next sync.
    #[test]
    fn a_woken_sender_that_gives_up_passes_its_wake_up_on_at_once() {
        let mailbox = full();
        let (first, second) = (Arc::new(Flag::default()), Arc::new(Flag::default()));
        let mut push_first = mailbox.push(1, |m| m);
        let mut push_second = mailbox.push(2, |m| m);
        assert!(poll_push(&mut push_first, &first).is_pending());
        assert!(poll_push(&mut push_second, &second).is_pending());

        let mut batch = Batch::default();
        assert_eq!(poll_take(&mailbox, &mut batch), Some(0));
        assert!(first.woken() && !second.woken(), "one slot, one wake-up");
        let Some((value, _)) = push_first.cancel() else {
            panic!("the first sender still holds its value");
        };
        assert_eq!(value, 1);
        assert!(second.woken(), "the wake-up was not passed on");
        assert!(matches!(
            poll_push(&mut push_second, &second),
            Poll::Ready(Ok(Pushed::Queued))
        ));
        drop(push_first);
        assert!(matches!(mailbox.try_push(3, |m| m), Err(Refused::Full(3))));
    }

    // The receiver reports its batch every `SYNC_EVERY` messages; a send
    // that finds the report full counts what was started since, so it is
    // refused only when the mailbox is full.
    #[test]
    fn a_send_that_finds_the_report_full_counts_what_was_started_since() {
        let mailbox = Mailbox::new(MailboxConfig::new(4, Overflow::Backpressure));
        for n in 0..4 {
            assert!(matches!(mailbox.try_push(n, |m| m), Ok(Pushed::Queued)));
        }
        let mut batch = Batch::default();
        for n in 0..3 {
            assert_eq!(poll_take(&mailbox, &mut batch), Some(n));
        }
        // Taken under the lock with three left; two started since.
        assert_eq!(mailbox.in_hand_reported(), 3);
        assert_eq!(mailbox.gauges("a").depth, 1, "one not yet started");
        for n in 10..13 {
            assert!(
                matches!(mailbox.try_push(n, |m| m), Ok(Pushed::Queued)),
                "room for {n}: {:?}",
                mailbox.gauges("a")
            );
        }
        assert!(matches!(
            mailbox.try_push(13, |m| m),
            Err(Refused::Full(13))
        ));
        let gauges = mailbox.gauges("a");
        assert_eq!((gauges.depth, gauges.high_water), (4, 4));
        for n in [3, 10, 11, 12] {
            assert_eq!(poll_take(&mailbox, &mut batch), Some(n));
        }
    }

    // Between takes under the lock the report falls every `SYNC_EVERY`
    // messages started, not at each one.
    #[test]
    fn the_receiver_reports_its_batch_every_sync_every_messages() {
        let n = 3 * SYNC_EVERY + 1;
        let mailbox = Mailbox::new(MailboxConfig::new(n as usize, Overflow::Backpressure));
        for m in 0..n {
            assert!(matches!(mailbox.try_push(m, |m| m), Ok(Pushed::Queued)));
        }
        let mut batch = Batch::default();
        assert_eq!(poll_take(&mailbox, &mut batch), Some(0));
        let mut reports = vec![mailbox.in_hand_reported()];
        for m in 1..n {
            assert_eq!(poll_take(&mailbox, &mut batch), Some(m));
            reports.push(mailbox.in_hand_reported());
            assert_eq!(mailbox.in_hand_now(), batch.items.len(), "after {m}");
        }
        let full = 3 * SYNC_EVERY as usize;
        let step = SYNC_EVERY as usize;
        let expected: Vec<usize> = (0..n as usize)
            .map(|started| full - started / step * step)
            .collect();
        assert_eq!(reports, expected);
        assert_eq!(mailbox.gauges("a").depth, 0);
    }

    // A sender that waits while the receiver works through a batch is woken
    // by the receiver coming back under the lock after `SYNC_EVERY`
    // messages: not before (each extra take under the lock costs the
    // senders' line), and not later.
    #[test]
    fn a_waiting_sender_is_woken_after_sync_every_messages_of_a_batch() {
        let capacity = 2 * SYNC_EVERY;
        let mailbox = Mailbox::new(MailboxConfig::new(
            capacity as usize,
            Overflow::Backpressure,
        ));
        for m in 0..capacity {
            assert!(matches!(mailbox.try_push(m, |m| m), Ok(Pushed::Queued)));
        }
        let mut batch = Batch::default();
        assert_eq!(poll_take(&mailbox, &mut batch), Some(0));
        // Full again: the batch and one more.
        assert!(matches!(
            mailbox.try_push(capacity, |m| m),
            Ok(Pushed::Queued)
        ));
        let flag = Arc::new(Flag::default());
        let mut push = mailbox.push(capacity + 1, |m| m);
        assert!(poll_push(&mut push, &flag).is_pending());
        for m in 1..=SYNC_EVERY {
            assert_eq!(poll_take(&mailbox, &mut batch), Some(m));
            assert!(!flag.woken(), "woken after {m} of the batch");
        }
        assert_eq!(poll_take(&mailbox, &mut batch), Some(SYNC_EVERY + 1));
        assert!(
            flag.woken(),
            "not woken after {} of the batch",
            SYNC_EVERY + 1
        );
        assert!(matches!(
            poll_push(&mut push, &flag),
            Poll::Ready(Ok(Pushed::Queued))
        ));
    }

    // What senders write for every message and what the receiver writes for
    // every message lie on different 64-byte lines, for any placement of an
    // `Arc<Cell>` allocation at 16-byte alignment (the data follows the two
    // counts, at 16).
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn senders_and_the_receiver_write_to_different_cache_lines() {
        use crate::runtime::{Cell, Identity};
        use std::mem::offset_of;
        // Where the state's fields lie inside its lock, from an owner-less
        // mailbox; the lock lies at its own offset in a cell's.
        let mailbox = Mailbox::<u32>::new(MailboxConfig::default());
        let lock = std::ptr::from_ref(&mailbox.state) as usize;
        let state = mailbox.state.lock();
        let state_field =
            |field: *const u8| field as usize - lock + offset_of!(Mailbox<u32, Identity>, state);
        let at = 16 + offset_of!(Cell<u32>, mailbox);
        // What a send writes, and the system, which it reads.
        let sender_fields = [
            offset_of!(Mailbox<u32, Identity>, head) + 7,
            offset_of!(Mailbox<u32, Identity>, capacity),
            offset_of!(Mailbox<u32, Identity>, overflow),
            offset_of!(Mailbox<u32, Identity>, in_hand),
            state_field(std::ptr::from_ref(&state.queue).cast()),
            state_field(std::ptr::from_ref(&state.receiver).cast()),
            state_field(std::ptr::from_ref(&state.rare).cast()),
            state_field(std::ptr::from_ref(&state.enqueued).cast()),
            state_field(std::ptr::from_ref(&state.high_water).cast()),
            state_field(std::ptr::from_ref(&state.closed).cast()),
            state_field(std::ptr::from_ref(&state.running).cast()),
            state_field(std::ptr::from_ref(&state.counted_busy).cast()),
        ];
        let receiver_fields = [
            offset_of!(Mailbox<u32, Identity>, control_pending),
            offset_of!(Mailbox<u32, Identity>, senders_waiting),
            offset_of!(Mailbox<u32, Identity>, started),
            offset_of!(Mailbox<u32, Identity>, processed),
        ];
        let last_sender_byte = at + sender_fields.iter().max().unwrap();
        let first_receiver_byte = at + receiver_fields.iter().min().unwrap();
        // The last line a sender writes starts at most at the 16-byte
        // boundary below its last byte.
        assert!(
            (last_sender_byte & !15) + 64 <= first_receiver_byte,
            "sender fields up to {last_sender_byte}, receiver fields from {first_receiver_byte}"
        );
        drop(state);
        // And the layout costs nothing: the cell is no larger than its
        // fields packed (8 bytes for the 4-byte capacity and 1-byte policy),
        // the mailbox's 176 (the identity's 32 among them: the id, and the
        // name, given or an entity's link, with its tag) and the launcher's
        // pointer. In its `Arc`, 200 bytes: a 208-byte block of the system
        // allocator, as when the identity was 8 bytes smaller.
        assert_eq!(std::mem::size_of::<Cell<u32>>(), 184);
        assert_eq!(std::mem::size_of::<Identity>(), 32);
    }

    #[test]
    fn overflow_policies_print_their_names() {
        let names: Vec<String> = [
            Overflow::Backpressure,
            Overflow::Reject,
            Overflow::DropOldest,
            Overflow::DropNewest,
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(
            names,
            ["backpressure", "reject", "drop-oldest", "drop-newest"]
        );
    }

    #[test]
    fn setting_the_capacity_keeps_the_policy_and_the_other_way_round() {
        let config = ActorConfig::default()
            .overflow(Overflow::Reject)
            .capacity(5);
        assert_eq!(
            config.mailbox_config(),
            MailboxConfig::new(5, Overflow::Reject)
        );
        let config = ActorConfig::default()
            .capacity(7)
            .overflow(Overflow::DropOldest);
        assert_eq!(config.mailbox_config().capacity(), 7);
        assert_eq!(config.mailbox_config().overflow(), Overflow::DropOldest);
    }
}
