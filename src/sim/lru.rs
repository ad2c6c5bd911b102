//! A node's file cache: least recently used out first, bounded in bytes.

use std::collections::{BTreeMap, HashMap};

#[derive(Debug)]
pub struct Lru {
    capacity: u64,
    used: u64,
    /// file -> (size, last use)
    entries: HashMap<u32, (u64, u64)>,
    /// last use -> file, oldest first
    order: BTreeMap<u64, u32>,
    clock: u64,
}

impl Lru {
    pub fn new(capacity: u64) -> Self {
        Self {
            capacity,
            used: 0,
            entries: HashMap::new(),
            order: BTreeMap::new(),
            clock: 0,
        }
    }

    /// Looks `file` up; a miss brings it in (when it fits at all), evicting the
    /// least recently used files. Returns whether it was a hit.
    pub fn access(&mut self, file: u32, size: u64) -> bool {
        self.clock += 1;
        if let Some((_, stamp)) = self.entries.get_mut(&file) {
            self.order.remove(stamp);
            *stamp = self.clock;
            self.order.insert(self.clock, file);
            return true;
        }
        if size > self.capacity {
            return false;
        }
        while self.used + size > self.capacity {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            if let Some((evicted, _)) = self.entries.remove(&oldest) {
                self.used -= evicted;
            }
        }
        self.entries.insert(file, (size, self.clock));
        self.order.insert(self.clock, file);
        self.used += size;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used_by_bytes() {
        let mut cache = Lru::new(100);
        assert!(!cache.access(1, 40));
        assert!(!cache.access(2, 40));
        assert!(cache.access(1, 40)); // 1 is now the most recent
        assert!(!cache.access(3, 40)); // evicts 2
        assert!(cache.access(1, 40));
        assert!(!cache.access(2, 40)); // 2 was gone; evicts 3
        assert!(!cache.access(4, 500)); // larger than the cache: not kept
        assert!(cache.access(1, 40));
    }
}
