//! The synchronisation primitives the mailbox is built on, behind a shim so
//! that `loom` can model-check the mailbox (`RUSTFLAGS="--cfg loom"`).
//!
//! The mailbox lock is std's: on Linux a futex, which never allocates, not
//! even the first time a thread has to wait for it (parking_lot allocates
//! its table of parked threads then, which showed up as allocations during
//! `tell` on a multi-thread runtime).

/// The guard of [`Mutex::lock`].
#[cfg(not(loom))]
pub(crate) type MutexGuard<'a, T> = std::sync::MutexGuard<'a, T>;
/// The guard of [`Mutex::lock`].
#[cfg(loom)]
pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

/// A mutex whose `lock` cannot fail: std's in normal builds, loom's model of
/// a mutex under `cfg(loom)`.
#[derive(Debug, Default)]
pub(crate) struct Mutex<T>(
    #[cfg(not(loom))] std::sync::Mutex<T>,
    #[cfg(loom)] loom::sync::Mutex<T>,
);

impl<T> Mutex<T> {
    pub(crate) fn new(value: T) -> Self {
        #[cfg(not(loom))]
        return Self(std::sync::Mutex::new(value));
        #[cfg(loom)]
        return Self(loom::sync::Mutex::new(value));
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        // No user code runs under this lock, so a poisoned lock holds
        // consistent state; take it as it is.
        match self.0.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// Atomics the mailbox shares between its receiver and its senders.
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
/// Atomics the mailbox shares between its receiver and its senders: std's,
/// or loom's models under `cfg(loom)`.
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
