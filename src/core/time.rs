//! Time as a value.
//!
//! The core never reads a clock: every method that depends on time takes a [`Timestamp`] from
//! the caller. The shell converts its monotonic clock to milliseconds since an arbitrary epoch
//! (for example daemon start); tests simply count.

use std::time::Duration;

/// A point in time, in milliseconds since an epoch chosen by the caller.
///
/// Only differences between timestamps are meaningful. Arithmetic saturates instead of
/// overflowing, so a far-future deadline (`Timestamp(u64::MAX)`) is a valid "never".
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// `ms` milliseconds after the epoch.
    pub const fn from_millis(ms: u64) -> Self {
        Self(ms)
    }

    /// `s` seconds after the epoch (saturating).
    pub const fn from_secs(s: u64) -> Self {
        Self(s.saturating_mul(1000))
    }

    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// `self + d`, clamped to the largest timestamp. Sub-millisecond parts of `d` are dropped.
    pub fn saturating_add(self, d: Duration) -> Self {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Self(self.0.saturating_add(ms))
    }

    /// The time elapsed from `earlier` to `self`, or zero if `earlier` is later.
    pub fn saturating_sub(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Timestamp::from_secs(2);
        assert_eq!(t, Timestamp::from_millis(2000));
        assert_eq!(
            t.saturating_add(Duration::from_millis(1500)).as_millis(),
            3500
        );
        assert_eq!(
            Timestamp(u64::MAX - 1).saturating_add(Duration::from_secs(1)),
            Timestamp(u64::MAX)
        );
        assert_eq!(Timestamp::from_secs(u64::MAX), Timestamp(u64::MAX));
        assert_eq!(
            t.saturating_sub(Timestamp::from_secs(1)),
            Duration::from_secs(1)
        );
        assert_eq!(Timestamp::from_secs(1).saturating_sub(t), Duration::ZERO);
    }
}
