//! The target -> server memory of LARD and LARD/R, shared by every core.
//!
//! Targets are keyed by a 64-bit hash (a collision only makes two targets
//! share a server, which is harmless). The map is split into shards, each
//! behind its own mutex, so cores rarely wait on each other; each shard is
//! bounded and evicts with CLOCK (second chance): a client spraying unique
//! URLs recycles slots instead of growing memory.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Mutex, PoisonError};

const SHARDS: usize = 64;

/// A bounded, sharded map from target hashes to `V`.
#[derive(Debug)]
pub struct TargetMap<V> {
    shards: Box<[Mutex<Shard<V>>]>,
    per_shard: usize,
}

#[derive(Debug)]
struct Shard<V> {
    /// key -> slot
    index: HashMap<u64, usize, BuildHasherDefault<KeyHasher>>,
    slots: Vec<Slot<V>>,
    free: Vec<usize>,
    hand: usize,
}

#[derive(Debug)]
struct Slot<V> {
    key: u64,
    value: Option<V>,
    /// Set on every use, cleared as the clock hand passes: a slot is evicted
    /// only if it was not used for a whole turn of the hand.
    referenced: bool,
}

impl<V> TargetMap<V> {
    /// A map holding at most about `capacity` targets.
    pub fn new(capacity: usize) -> Self {
        let per_shard = capacity.div_ceil(SHARDS).max(1);
        let shards = (0..SHARDS)
            .map(|_| {
                Mutex::new(Shard {
                    index: HashMap::default(),
                    slots: Vec::new(),
                    free: Vec::new(),
                    hand: 0,
                })
            })
            .collect();
        Self { shards, per_shard }
    }

    /// Runs `f` on the value for `key` (`None` if absent) under the shard's
    /// lock; whatever `f` leaves there is stored (`None` removes the key).
    pub fn entry<R>(&self, key: u64, f: impl FnOnce(&mut Option<V>) -> R) -> R {
        let shard = &self.shards[(key >> 58) as usize % SHARDS];
        let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
        match shard.index.get(&key).copied() {
            Some(i) => {
                let slot = &mut shard.slots[i];
                slot.referenced = true;
                let result = f(&mut slot.value);
                if slot.value.is_none() {
                    shard.index.remove(&key);
                    shard.free.push(i);
                }
                result
            }
            None => {
                let mut value = None;
                let result = f(&mut value);
                if let Some(value) = value {
                    shard.insert(key, value, self.per_shard);
                }
                result
            }
        }
    }

    /// Targets held, all shards together.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).index.len())
            .sum()
    }
}

impl<V> Shard<V> {
    fn insert(&mut self, key: u64, value: V, capacity: usize) {
        let slot = Slot {
            key,
            value: Some(value),
            referenced: true,
        };
        let i = if let Some(i) = self.free.pop() {
            self.slots[i] = slot;
            i
        } else if self.slots.len() < capacity {
            self.slots.push(slot);
            self.slots.len() - 1
        } else {
            let victim = self.clock_victim();
            let old = std::mem::replace(&mut self.slots[victim], slot);
            self.index.remove(&old.key);
            victim
        };
        self.index.insert(key, i);
    }

    /// The next slot not used since the hand last passed it.
    fn clock_victim(&mut self) -> usize {
        loop {
            let i = self.hand;
            self.hand = (self.hand + 1) % self.slots.len();
            let slot = &mut self.slots[i];
            if !slot.referenced {
                return i;
            }
            slot.referenced = false;
        }
    }
}

/// Keys are already hashes: use them as they are.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(n: u64) -> u64 {
        // Spread keys over the shards as real hashes do.
        n.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }

    #[test]
    fn stores_updates_and_removes() {
        let map = TargetMap::new(1000);
        map.entry(key(1), |v| *v = Some(10));
        assert_eq!(map.entry(key(1), |v| *v), Some(10));
        map.entry(key(1), |v| *v = v.map(|x| x + 1));
        assert_eq!(map.entry(key(1), |v| *v), Some(11));
        map.entry(key(1), |v| *v = None);
        assert_eq!(map.entry(key(1), |v| *v), None);
        assert_eq!(map.len(), 0);
    }

    #[test]
    fn recently_used_targets_survive_eviction() {
        // One shard's worth: keys that all land in shard 0.
        let map = TargetMap::new(SHARDS * 4);
        let in_shard = |n: u64| n; // top bits 0: shard 0
        for n in 0..4 {
            map.entry(in_shard(n), |v| *v = Some(n));
        }
        // The hand clears every reference bit once, then evicts slot 0: key 0.
        map.entry(in_shard(100), |v| *v = Some(100));
        assert_eq!(map.entry(in_shard(0), |v| *v), None);
        // Key 1 is used again, so the next eviction passes over it.
        assert_eq!(map.entry(in_shard(1), |v| *v), Some(1));
        map.entry(in_shard(101), |v| *v = Some(101));
        assert_eq!(map.entry(in_shard(1), |v| *v), Some(1));
        assert_eq!(map.entry(in_shard(2), |v| *v), None);
    }

    proptest! {
        /// However many distinct targets arrive, the map stays within its bound.
        #[test]
        fn never_exceeds_its_bound(capacity in 1usize..2000, targets in 0u64..20_000) {
            let map = TargetMap::new(capacity);
            for n in 0..targets {
                map.entry(key(n), |v| *v = Some(n));
            }
            let bound = capacity.div_ceil(SHARDS).max(1) * SHARDS;
            prop_assert!(map.len() <= bound);
            prop_assert!(map.len() as u64 <= targets);
        }
    }
}
