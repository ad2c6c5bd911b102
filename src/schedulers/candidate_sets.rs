//! State kept per candidate set. Content rules hand each request its own slice
//! of candidates, and a failed or excluded server drops out of a set for a
//! while; a scheduler whose state depends on the set (a WRR turn, a hash ring)
//! keeps one per set and finds it again by the set's members.

use std::collections::hash_map::Entry;

use ahash::AHashMap;

use super::hash::fingerprint;
use crate::table::{RealServer, ServerAddr, Weight};

/// Most sets remembered; past it all are forgotten at once. A service has few
/// (one per rule, and those its failed servers leave), so this is a guard
/// against churn, not a cache policy.
const MAX_SETS: usize = 256;

/// Per-set state `T`, by the set's members in order with their weights.
#[derive(Debug)]
pub(crate) struct CandidateSets<T> {
    sets: AHashMap<u64, Member<T>>,
}

#[derive(Debug)]
struct Member<T> {
    servers: Vec<(ServerAddr, Weight)>,
    state: T,
}

impl<T> Default for CandidateSets<T> {
    fn default() -> Self {
        Self {
            sets: AHashMap::new(),
        }
    }
}

impl<T> CandidateSets<T> {
    /// The state of the set `servers`, made from its members the first time
    /// (or again after a change of weight, which makes it another set).
    pub(crate) fn state<'a, I>(
        &mut self,
        servers: I,
        make: impl FnOnce(&[(ServerAddr, Weight)]) -> T,
    ) -> &mut T
    where
        I: Iterator<Item = &'a RealServer> + Clone,
    {
        let key = fingerprint(servers.clone());
        // The fingerprint may collide: a set is the same only if its members are.
        let same = |member: &Member<T>| {
            let given = servers.clone().map(|s| (s.addr, s.effective_weight()));
            member.servers.iter().copied().eq(given)
        };
        if self.sets.len() >= MAX_SETS && !self.sets.contains_key(&key) {
            self.sets.clear();
        }
        let fresh = || {
            let servers: Vec<(ServerAddr, Weight)> = servers
                .clone()
                .map(|s| (s.addr, s.effective_weight()))
                .collect();
            let state = make(&servers);
            Member { servers, state }
        };
        let member = match self.sets.entry(key) {
            Entry::Occupied(occupied) if same(occupied.get()) => occupied.into_mut(),
            Entry::Occupied(mut occupied) => {
                occupied.insert(fresh());
                occupied.into_mut()
            }
            Entry::Vacant(vacant) => vacant.insert(fresh()),
        };
        &mut member.state
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.sets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn a_set_keeps_its_state_and_others_get_theirs() {
        let servers = servers(&[1, 2, 3]);
        let mut sets = CandidateSets::<usize>::default();
        let all = || servers.iter().map(|s| &**s);
        let some = || servers[1..].iter().map(|s| &**s);
        *sets.state(all(), |members| members.len()) += 10;
        assert_eq!(*sets.state(some(), |members| members.len()), 2);
        assert_eq!(*sets.state(all(), |_| unreachable!()), 13);
        assert_eq!(sets.len(), 2);
    }

    #[test]
    fn too_many_sets_are_forgotten() {
        let servers = servers(&[1; 40]);
        let mut sets = CandidateSets::<()>::default();
        for start in 0..40 {
            for end in start + 1..=40 {
                sets.state(servers[start..end].iter().map(|s| &**s), |_| ());
                assert!(sets.len() <= MAX_SETS);
            }
        }
    }
}
