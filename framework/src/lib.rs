//! # mercato
//!
//! An actor runtime for event-driven commerce services, on tokio.
//!
//! Actors own their state and handle one message at a time with `async`
//! handlers. Their mailboxes are bounded queues with a chosen overflow
//! policy, and the runtime keeps written promises:
//!
//! 1. **Order** — messages from one sender to one actor are handled in send
//!    order; one actor never runs two handlers at once.
//! 2. **Bound** — a mailbox never holds more than its capacity; a full one
//!    applies its [`Overflow`] policy, and no public API bypasses it.
//! 3. **Failure** — `Err` is retried in place with backoff, then
//!    dead-lettered; a panic restarts the actor from its factory per its
//!    supervision; past its intensity a failure escalates.
//! 4. **Ask** — a request gets its reply, a timeout or a clear error, never
//!    a hang.
//! 5. **Shutdown** — intake and timers stop, mailboxes drain until settled
//!    or the deadline, children stop first, and the report lists what was
//!    not delivered.
//! 7. **Cost** — a local `tell` allocates nothing.
//!
//! Start with [`actor`](mod@actor) for a complete hand-written actor, [`System`] for
//! configuration and shutdown, [`mailbox`] for overflow policies and
//! [`supervise`] for failures.
// `unsafe` is denied everywhere but in the mailbox's ring buffer, where
// each block carries a `SAFETY:` comment.
#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![doc(test(attr(deny(warnings))))]
// Refused sends hand the message back by value rather than boxing it, so
// that the error path allocates nothing either.
#![allow(clippy::result_large_err)]

pub mod actor;
pub mod bus;
mod clock;
pub mod dead_letters;
pub mod declare;
pub mod entity;
pub mod error;
pub mod event;
mod launch;
pub mod mailbox;
mod runtime;
pub mod supervise;
mod sync;
pub mod system;

pub use actor::{Actor, Addr, Answers, Context, Handles, Message, Request, TimerId};
pub use bus::{Group, PublishError, Published, Refusal, Subscription, SubscriptionKind};
pub use dead_letters::{
    AnyPayload, DeadLetter, DeadLetterCounts, DeadLetterReason, DeadLetterStream, DeadLetters,
};
pub use entity::{Entities, EntityGauges};
pub use error::{AskError, ConfigError, HandlerError, SystemError, TellError};
pub use event::{AckHandle, Acknowledge, Envelope, Event, EventId, Headers, Key, Meta};
pub use mailbox::{MailboxConfig, MailboxGauges, Overflow};
pub use mercato_macros::{Event, actor, on, reply, started, stopping};
pub use supervise::{Backoff, Intensity, Restart, Strategy, Supervision};
pub use system::{ActorConfig, ShutdownReason, ShutdownReport, System, SystemBuilder, Undelivered};

#[doc(hidden)]
pub mod __private {
    //! Paths for generated code. Not a public API: names here may change in
    //! any release.
    pub use crate::actor::{Actor, Addr, Answers, Context, Handles, Message, Request};
    pub use crate::bus::Group;
    pub use crate::dead_letters::{AnyPayload, DeadLetterReason};
    pub use crate::declare::{Declared, Deployment, HandlerInfo};
    pub use crate::entity::Entities;
    pub use crate::error::{HandlerError, SystemError};
    pub use crate::event::{Envelope, Event, Key, Meta};
    pub use crate::mailbox::Overflow;
    pub use crate::supervise::{Backoff, Intensity, Restart, Strategy};
    pub use crate::system::{ActorConfig, System};
    pub use core::clone::Clone;
    pub use core::convert::{From, Into};
    pub use core::future::Future;
    pub use core::marker::{Send, Sync};
    pub use core::option::Option::{self, None, Some};
    pub use core::result::Result::{self, Err, Ok};
    pub use core::time::Duration;
    pub use std::boxed::Box;
    pub use std::string::String;
    pub use std::sync::Arc;
    pub use std::vec::Vec;
    pub use tokio;

    /// What an `#[on]` handler or a `#[started]` hook may return: `()` or
    /// `Result<(), E>` with `E: Into<HandlerError>`.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` is not a handler result",
        label = "a handler returns `()` or `Result<(), E>` where `E: Into<HandlerError>`",
        note = "return `()`, or `Result<(), E>` with an error type that converts into `mercato::HandlerError` (any `std::error::Error + Send + Sync + 'static`, or a `String`)"
    )]
    pub trait HandlerResult {
        /// The result as the runtime takes it.
        fn into_handler_result(self) -> Result<(), HandlerError>;
    }

    impl HandlerResult for () {
        fn into_handler_result(self) -> Result<(), HandlerError> {
            Ok(())
        }
    }

    impl<E: Into<HandlerError>> HandlerResult for Result<(), E> {
        fn into_handler_result(self) -> Result<(), HandlerError> {
            self.map_err(Into::into)
        }
    }
}
