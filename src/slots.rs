//! Connection slots: a count of client connections held against a limit,
//! shared by every worker (the daemon-wide `max_conns`, a service's). A slot
//! is taken before a connection is accepted and returned when it ends, so
//! the limit is exact whatever the number of workers; the limit itself is
//! read at each take, so a reload that changes it applies at once.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// Slots held, all workers together.
#[derive(Debug, Default)]
pub struct Slots {
    held: AtomicU32,
}

impl Slots {
    /// A slot, unless `limit` (0: none) are held already.
    pub fn try_take(self: &Arc<Self>, limit: u32) -> Option<Slot> {
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                (limit == 0 || held < limit).then_some(held + 1)
            })
            .ok()
            .map(|_| Slot(self.clone()))
    }

    /// Slots held now.
    pub fn held(&self) -> u32 {
        self.held.load(Ordering::Relaxed)
    }
}

/// One slot, returned when dropped.
#[derive(Debug)]
pub struct Slot(Arc<Slots>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.held.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_is_never_passed_and_slots_come_back() {
        let slots = Arc::new(Slots::default());
        let held: Vec<Slot> = (0..3).filter_map(|_| slots.try_take(3)).collect();
        assert_eq!((held.len(), slots.held()), (3, 3));
        assert!(slots.try_take(3).is_none(), "the fourth");
        assert!(
            slots.try_take(4).is_some(),
            "a limit raised applies at once"
        );
        drop(held);
        assert_eq!(slots.held(), 0);
        let unlimited: Vec<Slot> = (0..100).filter_map(|_| slots.try_take(0)).collect();
        assert_eq!(unlimited.len(), 100, "0 is no limit");
    }

    #[test]
    fn workers_racing_for_the_last_slots_get_exactly_the_limit() {
        let slots = Arc::new(Slots::default());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let slots = slots.clone();
                std::thread::spawn(move || {
                    (0..1000)
                        .filter_map(|_| slots.try_take(100))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let taken: Vec<Vec<Slot>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(taken.iter().map(Vec::len).sum::<usize>(), 100);
        assert_eq!(slots.held(), 100);
    }
}
