//! Dead letters: every message the runtime could not deliver, with why.
//!
//! Nothing is dropped silently. A message dropped by an overflow policy,
//! given up on after its retries, left behind by a stopped actor or cut off
//! by a shutdown deadline becomes a [`DeadLetter`]: the envelope (metadata
//! and payload), the [`DeadLetterReason`], the target actor and the last
//! error. The system keeps a bounded store of the most recent ones and
//! exact counters by reason, however many were evicted from the store.
//!
//! ```no_run
//! # #[allow(dead_code)]
//! # async fn f(system: mercato::System) {
//! use mercato::DeadLetterReason;
//! let dead = system.dead_letters();
//! println!("{} dropped by DropOldest", dead.count(DeadLetterReason::DroppedOldest));
//! for letter in dead.recent() {
//!     println!("{} -> {}: {} ({})", letter.meta().event(), letter.target(), letter.reason(), letter.meta().id());
//! }
//! # }
//! ```

use std::any::Any;
use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::event::Meta;

const REASONS: usize = 10;

/// Why a message became a dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum DeadLetterReason {
    /// Evicted from a full mailbox by `Overflow::DropOldest`.
    DroppedOldest,
    /// Refused by a full mailbox with `Overflow::DropNewest`.
    DroppedNewest,
    /// Refused by a full mailbox with `Overflow::Reject` when nobody could be
    /// handed the message back (a timer's message, one copy of a publish).
    Rejected,
    /// A mailbox under `Overflow::Backpressure` was still full when the send
    /// deadline of a send from inside a handler passed.
    DeadlineExceeded,
    /// A published event had no subscriber.
    NoSubscriber,
    /// The handler returned `Err` on every attempt.
    RetriesExhausted,
    /// The handler panicked and the message was not retried.
    Panicked,
    /// The actor stopped (or gave up after a failure) with the message queued.
    ActorStopped,
    /// Still queued when the shutdown deadline passed.
    ShutdownDeadline,
    /// Being handled when the shutdown deadline passed; the handler was cancelled.
    CancelledAtShutdown,
}

impl DeadLetterReason {
    /// Every reason, in counter order.
    pub const ALL: [DeadLetterReason; REASONS] = [
        DeadLetterReason::DroppedOldest,
        DeadLetterReason::DroppedNewest,
        DeadLetterReason::Rejected,
        DeadLetterReason::DeadlineExceeded,
        DeadLetterReason::NoSubscriber,
        DeadLetterReason::RetriesExhausted,
        DeadLetterReason::Panicked,
        DeadLetterReason::ActorStopped,
        DeadLetterReason::ShutdownDeadline,
        DeadLetterReason::CancelledAtShutdown,
    ];

    fn index(self) -> usize {
        self as usize
    }

    /// A short stable name, e.g. `"dropped-oldest"`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterReason::DroppedOldest => "dropped-oldest",
            DeadLetterReason::DroppedNewest => "dropped-newest",
            DeadLetterReason::Rejected => "rejected",
            DeadLetterReason::DeadlineExceeded => "deadline-exceeded",
            DeadLetterReason::NoSubscriber => "no-subscriber",
            DeadLetterReason::RetriesExhausted => "retries-exhausted",
            DeadLetterReason::Panicked => "panicked",
            DeadLetterReason::ActorStopped => "actor-stopped",
            DeadLetterReason::ShutdownDeadline => "shutdown-deadline",
            DeadLetterReason::CancelledAtShutdown => "cancelled-at-shutdown",
        }
    }
}

impl fmt::Display for DeadLetterReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A payload of any event type, readable as `Debug` and by downcast.
pub trait AnyPayload: Any + fmt::Debug + Send + Sync {
    /// The payload as `Any`, to downcast.
    fn as_any(&self) -> &dyn Any;
}

impl<T: Any + fmt::Debug + Send + Sync> AnyPayload for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A message that could not be delivered.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub(crate) meta: Meta,
    pub(crate) payload: Option<Arc<dyn AnyPayload>>,
    pub(crate) reason: DeadLetterReason,
    pub(crate) target: Arc<str>,
    pub(crate) error: Option<String>,
}

impl DeadLetter {
    /// The envelope's metadata (id, correlation id, event name, attempt…).
    pub fn meta(&self) -> &Meta {
        &self.meta
    }
    /// Why it was dead-lettered.
    pub fn reason(&self) -> DeadLetterReason {
        self.reason
    }
    /// The actor it was addressed to.
    pub fn target(&self) -> &str {
        &self.target
    }
    /// The last error or panic message of its handler, if it failed.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }
    /// The payload as `Debug`, when it was kept.
    pub fn payload_debug(&self) -> Option<&dyn fmt::Debug> {
        self.payload.as_deref().map(|p| p as &dyn fmt::Debug)
    }
    /// The payload, if it is an `E`.
    pub fn payload<E: Any>(&self) -> Option<&E> {
        self.payload.as_deref()?.as_any().downcast_ref()
    }
}

/// Counters of dead letters by reason.
///
/// ```
/// use mercato::{DeadLetterCounts, DeadLetterReason};
/// let counts = DeadLetterCounts::default();
/// assert_eq!(counts.get(DeadLetterReason::Panicked), 0);
/// assert_eq!(counts.total(), 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeadLetterCounts([u64; REASONS]);

impl DeadLetterCounts {
    /// The count for one reason.
    pub fn get(&self, reason: DeadLetterReason) -> u64 {
        self.0[reason.index()]
    }
    /// The count over every reason.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
}

/// The system's dead-letter store: recent letters and exact counters.
pub struct DeadLetters {
    recent: Mutex<VecDeque<DeadLetter>>,
    capacity: usize,
    counters: [AtomicU64; REASONS],
    evicted: AtomicU64,
    stream: tokio::sync::broadcast::Sender<DeadLetter>,
}

impl fmt::Debug for DeadLetters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeadLetters")
            .field("capacity", &self.capacity)
            .field("counts", &self.counts())
            .finish_non_exhaustive()
    }
}

impl DeadLetters {
    pub(crate) fn new(capacity: usize) -> Self {
        DeadLetters {
            recent: Mutex::new(VecDeque::new()),
            capacity,
            counters: Default::default(),
            evicted: AtomicU64::new(0),
            stream: tokio::sync::broadcast::channel(STREAM_CAPACITY).0,
        }
    }

    pub(crate) fn push(&self, letter: DeadLetter) {
        tracing::warn!(
            target: "mercato::dead_letters",
            actor = %letter.target,
            event = letter.meta.event(),
            event_id = %letter.meta.id,
            correlation_id = %letter.meta.correlation_id,
            reason = letter.reason.as_str(),
            error = letter.error.as_deref().unwrap_or(""),
            "dead letter"
        );
        if let Some(ack) = letter.meta.ack_handle() {
            ack.nack(letter.meta.id, letter.reason.as_str());
        }
        self.counters[letter.reason.index()].fetch_add(1, Ordering::Relaxed);
        if self.stream.receiver_count() > 0 {
            let _ = self.stream.send(letter.clone());
        }
        if self.capacity == 0 {
            self.evicted.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut recent = self.recent.lock();
        if recent.len() == self.capacity {
            recent.pop_front();
            self.evicted.fetch_add(1, Ordering::Relaxed);
        }
        recent.push_back(letter);
    }

    /// How many letters had one reason, since the system started.
    pub fn count(&self, reason: DeadLetterReason) -> u64 {
        self.counters[reason.index()].load(Ordering::Relaxed)
    }

    /// Every counter at once.
    pub fn counts(&self) -> DeadLetterCounts {
        DeadLetterCounts(std::array::from_fn(|i| {
            self.counters[i].load(Ordering::Relaxed)
        }))
    }

    /// The most recent letters, oldest first (at most the store's capacity).
    pub fn recent(&self) -> Vec<DeadLetter> {
        self.recent.lock().iter().cloned().collect()
    }

    /// How many letters were pushed out of the store to make room (they are
    /// still in the counters).
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    /// Every dead letter from now on, as a stream. A subscriber that falls
    /// more than 1024 letters behind is told how many it missed
    /// ([`DeadLetterStream::next`] returns `Err(missed)`); the counters stay
    /// exact regardless.
    pub fn subscribe(&self) -> DeadLetterStream {
        DeadLetterStream(self.stream.subscribe())
    }

    /// How many letters the store keeps.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

const STREAM_CAPACITY: usize = 1024;

/// A live stream of dead letters, from [`DeadLetters::subscribe`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let system = mercato::System::builder().build()?;
/// let mut stream = system.dead_letters().subscribe();
/// # #[derive(Debug, serde::Serialize, serde::Deserialize)] struct Unheard;
/// # impl mercato::Event for Unheard { const NAME: &'static str = "demo.unheard"; const VERSION: u32 = 1; }
/// system.publish(Unheard).await?; // nobody subscribes: a dead letter
/// let letter = stream.next().await.expect("open").expect("not lagging");
/// assert_eq!(letter.reason(), mercato::DeadLetterReason::NoSubscriber);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct DeadLetterStream(tokio::sync::broadcast::Receiver<DeadLetter>);

impl DeadLetterStream {
    /// The next dead letter; `Some(Err(n))` when `n` letters were missed
    /// because this subscriber fell behind; `None` once the system and
    /// every handle to it are gone (a shutdown alone does not end the
    /// stream: letters recorded while stopping still arrive).
    pub async fn next(&mut self) -> Option<Result<DeadLetter, u64>> {
        use tokio::sync::broadcast::error::RecvError;
        match self.0.recv().await {
            Ok(letter) => Some(Ok(letter)),
            Err(RecvError::Lagged(missed)) => Some(Err(missed)),
            Err(RecvError::Closed) => None,
        }
    }
}
