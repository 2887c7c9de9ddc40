//! The wall clock that envelopes and event ids are stamped with.
//!
//! Every envelope carries the wall-clock time it was made, and its id carries
//! the same reading, so one clock reading is taken per message sent. Reading
//! the system clock (`SystemTime::now`) costs tens of nanoseconds, a third of
//! a local `tell`. This clock reads the processor's time-stamp counter
//! instead (through `quanta`, which calibrates it against the operating
//! system's clock once per process and uses the operating system's clock
//! itself where no reliable counter exists), and ties the counter to the
//! system's wall-clock time at the first reading and again whenever a second
//! has passed since the last. A timestamp is therefore the system's
//! wall-clock time as of at most one second ago plus the time the counter
//! measured since: it follows a step of the system clock within a second,
//! and between two ties it differs from the system clock only by the
//! counter's drift over that second (well under a millisecond).

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// How long a tie between the counter and the system clock is used.
const TIE_FOR_NANOS: u64 = 1_000_000_000;

/// The counter, and its raw reading that the clock counts from.
static COUNTER: LazyLock<(quanta::Clock, u64)> = LazyLock::new(|| {
    let clock = quanta::Clock::new();
    let origin = clock.raw();
    (clock, origin)
});

/// The process's tie between the counter and the system clock.
static TIES: Ties = Ties::new();

/// Nanoseconds from the Unix epoch to now (0 before it).
#[inline]
pub(crate) fn now_unix_nanos() -> u64 {
    TIES.read(since_origin(), || unix_nanos(SystemTime::now()))
}

/// Nanoseconds the counter measured since its origin (a raw reading and one
/// multiplication: no conversion through `Duration`).
#[inline]
fn since_origin() -> u64 {
    let (clock, origin) = &*COUNTER;
    clock.delta_as_nanos(*origin, clock.raw())
}

/// Nanoseconds from the Unix epoch to `time` (0 before it).
fn unix_nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| {
        d.as_secs() * 1_000_000_000 + u64::from(d.subsec_nanos())
    })
}

/// A tie between a counter (nanoseconds since an origin) and the system
/// clock (Unix nanoseconds), renewed once it is a second old.
struct Ties {
    /// Unix nanoseconds at the counter's origin, as of the last tie (wrapping: only
    /// its sum with a count since the origin means anything).
    offset: AtomicU64,
    /// The count from which the next reading ties again. Stored after
    /// `offset` with `Release`, so a reading that sees it sees its offset.
    next: AtomicU64,
}

impl Ties {
    const fn new() -> Self {
        Ties {
            offset: AtomicU64::new(0),
            next: AtomicU64::new(0),
        }
    }

    /// The Unix time at counter reading `since_origin`; `system` reads the
    /// system clock, called only when the tie is due.
    #[inline]
    fn read(&self, since_origin: u64, system: impl FnOnce() -> u64) -> u64 {
        if since_origin >= self.next.load(Ordering::Acquire) {
            return self.tie(since_origin, system());
        }
        self.offset
            .load(Ordering::Relaxed)
            .wrapping_add(since_origin)
    }

    #[cold]
    fn tie(&self, since_origin: u64, unix: u64) -> u64 {
        self.offset
            .store(unix.wrapping_sub(since_origin), Ordering::Relaxed);
        self.next.store(
            since_origin.saturating_add(TIE_FOR_NANOS),
            Ordering::Release,
        );
        unix
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: u64 = 3_600_000_000_000;

    #[test]
    fn the_first_reading_is_the_system_clock_and_later_ones_count_on_from_it() {
        let ties = Ties::new();
        assert_eq!(ties.read(5, || HOUR), HOUR);
        let unread = || panic!("the system clock is not read within the second");
        assert_eq!(ties.read(5 + 250, unread), HOUR + 250);
        assert_eq!(
            ties.read(5 + TIE_FOR_NANOS - 1, unread),
            HOUR + TIE_FOR_NANOS - 1
        );
    }

    #[test]
    fn a_second_after_a_tie_the_system_clock_is_read_again_and_its_step_shows() {
        let ties = Ties::new();
        assert_eq!(ties.read(0, || HOUR), HOUR);
        // The system clock was stepped back ten seconds meanwhile.
        let stepped = HOUR + TIE_FOR_NANOS - 10_000_000_000;
        assert_eq!(ties.read(TIE_FOR_NANOS, || stepped), stepped);
        assert_eq!(ties.read(TIE_FOR_NANOS + 7, || unreachable!()), stepped + 7);
    }

    fn system_now() -> u64 {
        unix_nanos(SystemTime::now())
    }

    #[test]
    fn the_clock_agrees_with_the_system_clock_within_a_millisecond() {
        for _ in 0..1_000 {
            let before = system_now();
            let now = now_unix_nanos();
            let after = system_now();
            assert!(
                before.saturating_sub(1_000_000) <= now && now <= after + 1_000_000,
                "{now} is not within a millisecond of {before}..={after}"
            );
        }
    }

    #[test]
    fn the_clock_advances_with_time() {
        let first = now_unix_nanos();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let passed = now_unix_nanos().saturating_sub(first);
        assert!(
            (19_000_000..10_000_000_000).contains(&passed),
            "20 ms of sleep measured as {passed} ns"
        );
    }
}
