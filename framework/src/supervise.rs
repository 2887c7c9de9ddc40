//! Supervision: what happens when a handler fails.
//!
//! mercato tells two kinds of failure apart:
//!
//! - **A handler returns `Err`**: it failed to process the message (a
//!   database was down). The message is retried *in place*, on the same
//!   instance, before anything queued behind it, waiting an exponential
//!   [`Backoff`] with jitter between attempts, up to
//!   [`Supervision::max_retries`] retries; then it is dead-lettered with
//!   [`DeadLetterReason::RetriesExhausted`](crate::DeadLetterReason::RetriesExhausted)
//!   and the actor goes on with the next message.
//! - **A handler panics**: the instance may be broken. It is dropped and a
//!   fresh one is built from the actor's factory, after a backoff, per the
//!   actor's [`Restart`] policy; the parent's [`Strategy`] decides whether
//!   siblings restart too. The message is retried on the new instance
//!   (counted against the same retries) or dead-lettered, per
//!   [`Supervision::retry_after_panic`].
//!
//! Restarts are limited by an [`Intensity`]: more than `max_restarts` within
//! `within` and the actor gives up and *escalates* to its parent, which fails
//! in turn; at the root the system shuts down in order and reports why.
//! Messages queued behind a failure stay queued and are delivered afterwards,
//! in order.
//!
//! ```
//! use mercato::{Backoff, Intensity, Restart, Strategy, Supervision};
//! use std::time::Duration;
//!
//! let supervision = Supervision::default()
//!     .restart(Restart::Transient)
//!     .max_retries(5)
//!     .backoff(Backoff::exponential(Duration::from_millis(10), Duration::from_secs(2)))
//!     .intensity(Intensity::new(3, Duration::from_secs(10)))
//!     .strategy(Strategy::OneForAll);
//! assert!(supervision.validate().is_ok());
//! ```

use std::collections::VecDeque;
use std::time::Duration;

use crate::error::ConfigError;

/// Which children restart when one of them fails (the parent's choice).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Strategy {
    /// Only the failed child restarts.
    #[default]
    OneForOne,
    /// Every child of the parent restarts.
    OneForAll,
    /// The failed child and the children started after it restart.
    RestForOne,
}

/// When an actor is restarted after it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Restart {
    /// Always, whether it panicked or stopped itself.
    #[default]
    Permanent,
    /// Only after a failure (a panic or a failed start); a normal stop is final.
    Transient,
    /// Never: a panic stops it for good.
    Temporary,
}

/// Exponential backoff with jitter between retries and restarts.
///
/// The n-th wait (n from 0) is `initial × multiplier^n`, capped at `max`,
/// then scaled by a random factor in `[1 − jitter, 1]`.
///
/// ```
/// use mercato::Backoff;
/// use std::time::Duration;
/// let b = Backoff::exponential(Duration::from_millis(100), Duration::from_secs(1)).jitter(0.0);
/// assert_eq!(b.delay(0, 0.5), Duration::from_millis(100));
/// assert_eq!(b.delay(2, 0.5), Duration::from_millis(400));
/// assert_eq!(b.delay(10, 0.5), Duration::from_secs(1));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    multiplier: f64,
    jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_secs(5),
            multiplier: 2.0,
            jitter: 0.2,
        }
    }
}

impl Backoff {
    /// Doubling waits from `initial` up to `max`, with 20% jitter.
    pub fn exponential(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max,
            ..Backoff::default()
        }
    }

    /// No wait at all (tests, or idempotent work against local resources).
    pub fn none() -> Self {
        Backoff {
            initial: Duration::ZERO,
            max: Duration::ZERO,
            multiplier: 1.0,
            jitter: 0.0,
        }
    }

    /// Sets the first wait.
    pub fn initial(mut self, initial: Duration) -> Self {
        self.initial = initial;
        self
    }

    /// Sets the longest wait.
    pub fn max(mut self, max: Duration) -> Self {
        self.max = max;
        self
    }

    /// Sets the growth factor (at least 1).
    pub fn multiplier(mut self, multiplier: f64) -> Self {
        self.multiplier = multiplier;
        self
    }

    /// Sets the jitter fraction, in `[0, 1]`.
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter;
        self
    }

    /// The wait before retry `n` (from 0), given a uniform random `unit` in `[0, 1)`.
    pub fn delay(&self, n: u32, unit: f64) -> Duration {
        let base = self.initial.as_secs_f64() * self.multiplier.powi(n.min(1_000) as i32);
        let capped = base.min(self.max.as_secs_f64());
        let scaled = capped * (1.0 - self.jitter * unit.clamp(0.0, 1.0));
        Duration::from_secs_f64(scaled.max(0.0))
    }

    /// Checks the values, naming the refused field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max < self.initial {
            return Err(ConfigError::new(
                "supervision.backoff.max",
                format!("{:?}", self.max),
                "must not be less than supervision.backoff.initial",
            ));
        }
        if !(self.multiplier >= 1.0 && self.multiplier.is_finite()) {
            return Err(ConfigError::new(
                "supervision.backoff.multiplier",
                self.multiplier,
                "must be a finite number of at least 1.0",
            ));
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(ConfigError::new(
                "supervision.backoff.jitter",
                self.jitter,
                "must be between 0.0 and 1.0",
            ));
        }
        Ok(())
    }
}

/// How many restarts an actor may make within a window before escalating.
///
/// ```
/// use mercato::Intensity;
/// use std::time::Duration;
/// assert!(Intensity::new(3, Duration::ZERO).validate().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Intensity {
    max_restarts: u32,
    within: Duration,
}

impl Default for Intensity {
    fn default() -> Self {
        Intensity {
            max_restarts: 5,
            within: Duration::from_secs(10),
        }
    }
}

impl Intensity {
    /// At most `max_restarts` within `within`.
    pub fn new(max_restarts: u32, within: Duration) -> Self {
        Intensity {
            max_restarts,
            within,
        }
    }

    /// Checks the values, naming the refused field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.within.is_zero() {
            return Err(ConfigError::new(
                "supervision.intensity.within",
                "0s",
                "must be longer than zero: restarts are counted within this window",
            ));
        }
        Ok(())
    }
}

/// An actor's supervision settings. See the [module](self) docs.
///
/// ```
/// use mercato::Supervision;
/// let s = Supervision::default();
/// assert_eq!(s.max_retries_value(), 3);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Supervision {
    pub(crate) restart: Restart,
    pub(crate) max_retries: u32,
    pub(crate) backoff: Backoff,
    pub(crate) intensity: Intensity,
    pub(crate) strategy: Strategy,
    pub(crate) retry_after_panic: bool,
}

impl Default for Supervision {
    fn default() -> Self {
        Supervision {
            restart: Restart::Permanent,
            max_retries: 3,
            backoff: Backoff::default(),
            intensity: Intensity::default(),
            strategy: Strategy::OneForOne,
            retry_after_panic: true,
        }
    }
}

impl Supervision {
    /// Sets the restart policy.
    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }
    /// Sets how many times a failing message is retried (0: never).
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }
    /// Sets the backoff between retries and restarts.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }
    /// Sets the restart intensity.
    pub fn intensity(mut self, intensity: Intensity) -> Self {
        self.intensity = intensity;
        self
    }
    /// Sets the strategy this actor applies to its own children.
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }
    /// Whether the message that made a handler panic is retried on the
    /// restarted instance (`true`, default) or dead-lettered at once.
    pub fn retry_after_panic(mut self, retry: bool) -> Self {
        self.retry_after_panic = retry;
        self
    }
    /// The configured number of retries.
    pub fn max_retries_value(&self) -> u32 {
        self.max_retries
    }
    /// Checks every value, naming the refused field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.backoff.validate()?;
        self.intensity.validate()
    }
}

/// Counts restarts in a sliding window. Boxed at the first restart: most
/// actors never restart, and every actor's task carries one.
#[derive(Debug, Default)]
// Boxed on purpose: 8 bytes in every actor's task instead of a 32-byte
// empty `VecDeque`.
#[allow(clippy::box_collection)]
pub(crate) struct RestartWindow {
    times: Option<Box<VecDeque<tokio::time::Instant>>>,
}

impl RestartWindow {
    /// Forgets restarts older than the window.
    pub(crate) fn prune(&mut self, now: tokio::time::Instant, intensity: &Intensity) {
        let Some(times) = &mut self.times else {
            return;
        };
        while let Some(&first) = times.front() {
            if now.duration_since(first) >= intensity.within {
                times.pop_front();
            } else {
                break;
            }
        }
    }

    /// Records a restart at `now`; `false` when it exceeds the intensity.
    pub(crate) fn admit(&mut self, now: tokio::time::Instant, intensity: &Intensity) -> bool {
        self.prune(now, intensity);
        if self.len() as u64 >= u64::from(intensity.max_restarts) {
            return false;
        }
        self.times.get_or_insert_default().push_back(now);
        true
    }

    /// Restarts within the current window.
    pub(crate) fn len(&self) -> usize {
        self.times.as_ref().map_or(0, |times| times.len())
    }

    /// Whether no restart is within the window.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A small seedable random number generator (SplitMix64) for jitter.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::Rng;
    use super::*;
    use proptest::prelude::{prop_assert, proptest};

    proptest! {
        #[test]
        fn backoff_stays_within_bounds(initial_ms in 0u64..1_000, extra_ms in 0u64..10_000,
                                       mult in 1.0f64..4.0, jitter in 0.0f64..=1.0, n in 0u32..64, unit in 0.0f64..1.0) {
            let b = Backoff::exponential(Duration::from_millis(initial_ms), Duration::from_millis(initial_ms + extra_ms))
                .multiplier(mult).jitter(jitter);
            prop_assert!(b.validate().is_ok());
            let d = b.delay(n, unit);
            prop_assert!(d <= Duration::from_millis(initial_ms + extra_ms) + Duration::from_nanos(1));
            let undithered = b.jitter(0.0).delay(n, unit);
            prop_assert!(d <= undithered + Duration::from_nanos(1));
            prop_assert!(d.as_secs_f64() >= undithered.as_secs_f64() * (1.0 - jitter) - 1e-9);
        }

        #[test]
        fn backoff_grows_monotonically(n in 0u32..30) {
            let b = Backoff::exponential(Duration::from_millis(1), Duration::from_secs(60)).jitter(0.0);
            prop_assert!(b.delay(n, 0.0) <= b.delay(n + 1, 0.0));
        }

        #[test]
        fn window_never_admits_more_than_max(max in 0u32..10, gaps in proptest::collection::vec(0u64..2_000, 1..60)) {
            let intensity = Intensity::new(max, Duration::from_secs(1));
            let mut window = RestartWindow::default();
            let start = tokio::time::Instant::now();
            let mut t = start;
            let mut admitted: Vec<tokio::time::Instant> = Vec::new();
            for gap in gaps {
                t += Duration::from_millis(gap);
                if window.admit(t, &intensity) {
                    admitted.push(t);
                }
                let in_window = admitted.iter().filter(|a| t.duration_since(**a) < Duration::from_secs(1)).count();
                prop_assert!(in_window as u32 <= max);
            }
        }
    }

    #[test]
    fn rng_is_splitmix64() {
        // Reference outputs of SplitMix64 from seed 0.
        let mut rng = Rng::new(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(rng.next_u64(), 0x06C4_5D18_8009_454F);
    }

    #[test]
    fn initial_and_max_set_only_their_wait() {
        let b = Backoff::default()
            .jitter(0.0)
            .max(Duration::from_millis(40));
        assert_eq!(b.delay(0, 0.0), Duration::from_millis(10));
        assert_eq!(b.delay(5, 0.0), Duration::from_millis(40));
        let b = b.initial(Duration::from_millis(20));
        assert_eq!(b.delay(0, 0.0), Duration::from_millis(20));
        assert_eq!(b.delay(5, 0.0), Duration::from_millis(40));
    }

    #[test]
    fn no_backoff_waits_nothing() {
        for n in [0, 1, 10] {
            assert_eq!(Backoff::none().delay(n, 0.7), Duration::ZERO);
        }
        assert!(Backoff::none().validate().is_ok());
    }

    #[test]
    fn restarts_older_than_the_window_no_longer_count() {
        let intensity = Intensity::new(2, Duration::from_secs(10));
        let mut window = RestartWindow::default();
        let t0 = tokio::time::Instant::now();
        assert!(window.admit(t0, &intensity));
        assert!(window.admit(t0 + Duration::from_secs(1), &intensity));
        assert!(
            !window.admit(t0 + Duration::from_secs(2), &intensity),
            "a third within 10 s"
        );
        assert!(
            window.admit(t0 + Duration::from_secs(11), &intensity),
            "the first has left the window"
        );
        window.prune(t0 + Duration::from_secs(30), &intensity);
        assert!(window.is_empty());
        assert_eq!(window.len(), 0);
    }

    #[test]
    fn supervision_setters_change_only_their_field() {
        let s = Supervision::default().strategy(Strategy::RestForOne);
        assert_eq!(s.strategy, Strategy::RestForOne);
        assert_eq!(s.max_retries_value(), 3);
        let s = s.max_retries(7).restart(Restart::Temporary);
        assert_eq!(
            (s.strategy, s.max_retries_value(), s.restart),
            (Strategy::RestForOne, 7, Restart::Temporary)
        );
    }

    #[test]
    fn rng_is_seedable_and_uniform_enough() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        let xs: Vec<f64> = (0..1000).map(|_| a.unit()).collect();
        let ys: Vec<f64> = (0..1000).map(|_| b.unit()).collect();
        assert_eq!(xs, ys);
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)));
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        assert!((0.4..0.6).contains(&mean), "mean {mean}");
        assert_ne!(Rng::new(8).next_u64(), Rng::new(7).next_u64());
    }

    #[test]
    fn invalid_values_name_their_field() {
        let b = Backoff::exponential(Duration::from_secs(2), Duration::from_secs(1));
        assert_eq!(b.validate().unwrap_err().field(), "supervision.backoff.max");
        assert_eq!(
            Backoff::default()
                .multiplier(0.5)
                .validate()
                .unwrap_err()
                .field(),
            "supervision.backoff.multiplier"
        );
        assert_eq!(
            Backoff::default()
                .jitter(1.5)
                .validate()
                .unwrap_err()
                .field(),
            "supervision.backoff.jitter"
        );
        assert_eq!(
            Intensity::new(1, Duration::ZERO)
                .validate()
                .unwrap_err()
                .field(),
            "supervision.intensity.within"
        );
    }
}
