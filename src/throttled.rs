//! A warning that can repeat thousands of times a second (descriptors run
//! out: every accept and every connect fails) is written at most once per
//! interval, with the count of those it stood for.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::server::now_ms;

/// How often one kind of repeated warning is written at most.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// One kind of repeated warning.
pub struct Throttled {
    /// [`now_ms`] when it was last written (0: never).
    last_ms: AtomicU64,
    /// Occurrences since it was last written.
    pending: AtomicU64,
}

impl Throttled {
    pub const fn new() -> Self {
        Self {
            last_ms: AtomicU64::new(0),
            pending: AtomicU64::new(0),
        }
    }

    /// Counts one occurrence; `Some(n)` when it is time to write it, `n`
    /// being the occurrences it stands for (this one included).
    pub fn occurred(&self) -> Option<u64> {
        self.occurred_at(now_ms())
    }

    fn occurred_at(&self, now: u64) -> Option<u64> {
        self.pending.fetch_add(1, Ordering::Relaxed);
        let last = self.last_ms.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= INTERVAL.as_millis() as u64;
        // One core wins the turn; the others keep counting.
        if !due
            || self
                .last_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return None;
        }
        Some(self.pending.swap(0, Ordering::Relaxed))
    }
}

impl Default for Throttled {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_one_line_per_interval_with_its_count() {
        let warning = Throttled::new();
        assert_eq!(warning.occurred_at(1), Some(1), "the first is written");
        for ms in 2..1000 {
            assert_eq!(warning.occurred_at(ms), None);
        }
        assert_eq!(
            warning.occurred_at(1001),
            Some(999),
            "then once, with the count"
        );
        assert_eq!(warning.occurred_at(1002), None);
    }
}
