//! The errors of mercato, one type per area; every message says what
//! happened and what to do about it.

use std::fmt;

use crate::event::{Envelope, EventId};

/// The error a handler returns: any error type converts into it with `?`.
///
/// Returning `Err` means the handler *failed to process* the message (a
/// database was down, a call timed out): the runtime retries it in place
/// with backoff. A domain outcome such as a declined card is an event, not
/// an `Err`.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A refused configuration value, naming the field and what it accepts.
///
/// ```
/// use mercato::{MailboxConfig, Overflow};
/// let err = MailboxConfig::new(0, Overflow::Reject).validate().unwrap_err();
/// assert_eq!(err.field(), "mailbox.capacity");
/// assert!(err.to_string().contains("must be at least 1"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: `{field}` = {value}: {problem}")]
pub struct ConfigError {
    field: &'static str,
    value: String,
    problem: &'static str,
}

impl ConfigError {
    pub(crate) fn new(
        field: &'static str,
        value: impl fmt::Display,
        problem: &'static str,
    ) -> Self {
        ConfigError {
            field,
            value: value.to_string(),
            problem,
        }
    }

    /// The configuration field, e.g. `"supervision.intensity.within"`.
    pub fn field(&self) -> &'static str {
        self.field
    }

    /// The refused value, as written.
    pub fn value(&self) -> &str {
        &self.value
    }
}

/// Why a system could not be built or an actor not spawned.
///
/// ```
/// // Building a system outside a tokio runtime is refused:
/// let err = mercato::System::builder().build().unwrap_err();
/// assert!(matches!(err, mercato::SystemError::NoRuntime));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SystemError {
    /// A configuration value was refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// There is no tokio runtime to run on.
    #[error(
        "no tokio runtime is running here: build the system inside `#[tokio::main]` (or `Runtime::block_on`), mercato runs on the application's runtime"
    )]
    NoRuntime,
    /// This process has built `u32::MAX` systems, each with an id of its
    /// own, and has none left to give.
    #[error(
        "this process has built 4294967295 actor systems and has no system id left: build one system and keep it for the process's life"
    )]
    IdsExhausted,
    /// The system is shutting down or has stopped and spawns nothing more.
    #[error("the actor system is shutting down and spawns no new actor")]
    ShuttingDown,
    /// A declared actor was started with the `start*` method of another
    /// deployment (e.g. `start` for an `#[actor(entity)]`).
    #[error("`{actor}` is declared for {fix}, not System::{method}: call {fix}")]
    WrongDeployment {
        /// The actor's name.
        actor: String,
        /// The method that was called.
        method: &'static str,
        /// The method its declaration needs.
        fix: &'static str,
    },
    /// The same subscriber is already subscribed to the event that way.
    #[error(
        "`{subscriber}` is already subscribed to `{event}` this way: subscribe once (a second subscription would deliver every event twice)"
    )]
    AlreadySubscribed {
        /// The event's wire name.
        event: &'static str,
        /// The subscriber.
        subscriber: String,
    },
}

/// Why a `tell` was not accepted; the envelope comes back to the sender.
///
/// ```
/// # use mercato::{Envelope, Event, TellError};
/// # #[derive(Debug, serde::Serialize, serde::Deserialize)] struct Ping;
/// # impl Event for Ping { const NAME: &'static str = "test.ping"; const VERSION: u32 = 1; }
/// let err = TellError::Full(Envelope::new(Ping));
/// assert!(err.to_string().contains("full"));
/// let envelope: Envelope<Ping> = err.into_envelope().expect("handed back");
/// assert_eq!(envelope.meta().event(), "test.ping");
/// ```
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum TellError<E> {
    /// The mailbox is full: its policy is `Overflow::Reject`, or the send was
    /// a `try_tell`, which does not wait under `Overflow::Backpressure`.
    #[error(
        "the mailbox is full (Overflow::Reject refuses, and try_tell does not wait): retry later, or use tell with Overflow::Backpressure to wait for room"
    )]
    Full(Envelope<E>),
    /// The actor has stopped.
    #[error("the actor has stopped and takes no more messages")]
    Stopped(Envelope<E>),
    /// The system is shutting down and takes no new outside messages.
    #[error("the actor system is shutting down and takes no new messages from outside its actors")]
    ShuttingDown(Envelope<E>),
    /// Sent from inside a handler, the message waited for room past the send
    /// deadline and was dead-lettered (so a cycle of full mailboxes cannot
    /// deadlock). Holds the dead letter's event id.
    #[error(
        "the mailbox stayed full past the send deadline; the message {0} was dead-lettered (raise SystemBuilder::send_deadline or the capacity, or break the cycle of full mailboxes)"
    )]
    DeadlineExceeded(EventId),
}

impl<E> TellError<E> {
    /// The envelope that was not accepted, unless it was dead-lettered.
    pub fn into_envelope(self) -> Option<Envelope<E>> {
        match self {
            TellError::Full(e) | TellError::Stopped(e) | TellError::ShuttingDown(e) => Some(e),
            TellError::DeadlineExceeded(_) => None,
        }
    }
}

impl<E: fmt::Debug> fmt::Debug for TellError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, env) = match self {
            TellError::Full(e) => ("Full", e),
            TellError::Stopped(e) => ("Stopped", e),
            TellError::ShuttingDown(e) => ("ShuttingDown", e),
            TellError::DeadlineExceeded(id) => {
                return f.debug_tuple("DeadlineExceeded").field(id).finish();
            }
        };
        f.debug_tuple(name).field(env).finish()
    }
}

/// Why an `ask` ended without a reply. An ask always ends: with a reply,
/// with one of these, never by hanging.
///
/// ```
/// # #[derive(Debug, serde::Serialize, serde::Deserialize)] struct GetTotal;
/// let err: mercato::AskError<GetTotal> = mercato::AskError::Timeout;
/// assert!(err.to_string().contains("timed out"));
/// ```
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum AskError<Q> {
    /// No reply within the timeout (waiting for mailbox room counts). The
    /// request may still be handled later.
    #[error(
        "the ask timed out (waiting for mailbox room counts against the timeout); the request may still be handled later"
    )]
    Timeout,
    /// The mailbox is full and its policy is `Overflow::Reject`.
    #[error(
        "the mailbox is full and rejects new messages (Overflow::Reject); the request is returned"
    )]
    Rejected(Envelope<Q>),
    /// The actor stopped before it replied.
    #[error("the actor stopped before it replied")]
    Stopped,
    /// The system is shutting down and takes no new outside messages.
    #[error("the actor system is shutting down and takes no new messages from outside its actors")]
    ShuttingDown(Envelope<Q>),
    /// The request was evicted from a full mailbox by `Overflow::DropOldest`.
    #[error("the request was evicted from a full mailbox (Overflow::DropOldest) and dead-lettered")]
    Evicted,
    /// The request was dropped by a full mailbox with `Overflow::DropNewest`.
    #[error(
        "the mailbox was full and dropped the request (Overflow::DropNewest); it was dead-lettered"
    )]
    Dropped,
    /// The handler failed (retries exhausted, or it panicked) and the request
    /// was dead-lettered.
    #[error("the handler failed and the request was dead-lettered: {0}")]
    Failed(String),
    /// The handler finished without replying.
    #[error("the handler finished without replying")]
    NoReply,
}

impl<Q: fmt::Debug> fmt::Debug for AskError<Q> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AskError::Timeout => f.write_str("Timeout"),
            AskError::Rejected(e) => f.debug_tuple("Rejected").field(e).finish(),
            AskError::Stopped => f.write_str("Stopped"),
            AskError::ShuttingDown(e) => f.debug_tuple("ShuttingDown").field(e).finish(),
            AskError::Evicted => f.write_str("Evicted"),
            AskError::Dropped => f.write_str("Dropped"),
            AskError::Failed(why) => f.debug_tuple("Failed").field(why).finish(),
            AskError::NoReply => f.write_str("NoReply"),
        }
    }
}
