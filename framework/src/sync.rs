//! The synchronisation primitives the mailbox is built on, behind a shim so
//! that `loom` can model-check the mailbox (`RUSTFLAGS="--cfg loom"`).
//!
//! The mailbox lock is parking_lot's. On two workers a sender (which takes
//! it per message) and the receiver (per batch) meet on it often. With std's
//! lock, waiting for it and releasing it to a waiter (a system call) took 29 %
//! of a profile of tell on a 2-worker runtime; with parking_lot's, which
//! spins with a growing backoff before it sleeps, about 4 %. parking_lot
//! allocates its table of sleeping threads the first time any thread of the
//! process sleeps on one of its locks (and grows it as more threads do): a
//! cost of the process, once, not of a message.

/// The guard of [`Mutex::lock`].
#[cfg(not(loom))]
pub(crate) type MutexGuard<'a, T> = parking_lot::MutexGuard<'a, T>;
/// The guard of [`Mutex::lock`].
#[cfg(loom)]
pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

/// A mutex whose `lock` cannot fail: parking_lot's in normal builds, loom's
/// model of a mutex under `cfg(loom)`.
#[derive(Debug, Default)]
pub(crate) struct Mutex<T>(
    #[cfg(not(loom))] parking_lot::Mutex<T>,
    #[cfg(loom)] loom::sync::Mutex<T>,
);

impl<T> Mutex<T> {
    pub(crate) fn new(value: T) -> Self {
        #[cfg(not(loom))]
        return Self(parking_lot::Mutex::new(value));
        #[cfg(loom)]
        return Self(loom::sync::Mutex::new(value));
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        #[cfg(not(loom))]
        return self.0.lock();
        // No user code runs under this lock, so a poisoned lock holds
        // consistent state; take it as it is.
        #[cfg(loom)]
        match self.0.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// Atomics the mailbox shares between its receiver and its senders.
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, fence};
/// Atomics the mailbox shares between its receiver and its senders: std's,
/// or loom's models under `cfg(loom)`.
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, fence};
