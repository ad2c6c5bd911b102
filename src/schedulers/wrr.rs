//! Weighted round robin (LVS): a current weight `cw` starts at the largest
//! weight and steps down by the gcd of the weights at each pass over the
//! servers; a pass picks, in order, every server whose weight reaches `cw`.
//! Weights 4, 3, 2 give `A A B A B C A B C` in each period.
//!
//! LVS keeps one turn per service. Here the content rules give each request
//! its own candidates, and a failed or excluded server leaves the usable set
//! for a while, so a turn is kept per set of usable servers: each set runs the
//! exact LVS sequence, and a set seen again resumes where it left off.

use std::sync::{Arc, Mutex, PoisonError};

use super::candidate_sets::CandidateSets;
use super::{RequestInfo, Scheduler, SchedulerKind};
use crate::table::{RealServer, ServerAddr, Weight};

#[derive(Debug, Default)]
pub struct WeightedRoundRobin {
    turns: Mutex<Turns>,
}

#[derive(Debug, Default)]
struct Turns {
    sets: CandidateSets<Turn>,
    /// This call's usable candidates (kept to save an allocation per call).
    usable: Vec<usize>,
}

/// LVS's `i`, `cw`, `mw` and `gcd` for one set.
#[derive(Debug)]
struct Turn {
    /// Position in the set of the last server considered.
    last: usize,
    /// The current weight; 0 before the first pass.
    current: u32,
    max: u32,
    gcd: u32,
}

impl Turn {
    fn new(members: &[(ServerAddr, Weight)]) -> Self {
        let weights = members.iter().map(|(_, w)| u32::from(w.0));
        Self {
            last: members.len().saturating_sub(1),
            current: 0,
            max: weights.clone().max().unwrap_or(0),
            gcd: weights.fold(0, gcd),
        }
    }

    /// The next position among `n` servers of weights `weight(0..n)`, all
    /// above 0: the heaviest reaches any `cw`, so this ends within a pass.
    fn next(&mut self, n: usize, weight: impl Fn(usize) -> u32) -> usize {
        loop {
            self.last = (self.last + 1) % n;
            if self.last == 0 {
                self.current = if self.current > self.gcd {
                    self.current - self.gcd
                } else {
                    self.max
                };
            }
            if weight(self.last) >= self.current {
                return self.last;
            }
        }
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

impl Scheduler for WeightedRoundRobin {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Wrr
    }

    fn pick(
        &self,
        _request: &RequestInfo<'_>,
        candidates: &[Arc<RealServer>],
        usable: &dyn Fn(&RealServer) -> bool,
    ) -> Option<usize> {
        let mut turns = self.turns.lock().unwrap_or_else(PoisonError::into_inner);
        let Turns { sets, usable: set } = &mut *turns;
        set.clear();
        set.extend((0..candidates.len()).filter(|&i| {
            !candidates[i].effective_weight().is_quiescent() && usable(&candidates[i])
        }));
        if set.is_empty() {
            return None;
        }
        let turn = sets.state(set.iter().map(|&i| &*candidates[i]), Turn::new);
        let position = turn.next(set.len(), |k| {
            u32::from(candidates[set[k]].effective_weight().0)
        });
        Some(set[position])
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use proptest::prelude::*;

    fn picks(wrr: &WeightedRoundRobin, servers: &[Arc<RealServer>], n: usize) -> Vec<usize> {
        (0..n)
            .map(|_| wrr.pick(&request(), servers, &|_| true).unwrap())
            .collect()
    }

    /// The LVS loop written plainly, over weights that may include 0.
    fn lvs_sequence(weights: &[u16], n: usize) -> Vec<usize> {
        let max = weights.iter().copied().max().unwrap_or(0);
        let g = weights.iter().fold(0, |g, &w| gcd(g, u32::from(w))) as i64;
        let (mut i, mut cw) = (-1i64, 0i64);
        let mut out = Vec::new();
        while out.len() < n {
            i = (i + 1) % weights.len() as i64;
            if i == 0 {
                cw -= g;
                if cw <= 0 {
                    cw = i64::from(max);
                }
            }
            if i64::from(weights[i as usize]) >= cw && weights[i as usize] > 0 {
                out.push(i as usize);
            }
        }
        out
    }

    #[test]
    fn weights_4_3_2_give_the_lvs_sequence() {
        let servers = servers(&[4, 3, 2]);
        let wrr = WeightedRoundRobin::default();
        let period = [0, 0, 1, 0, 1, 2, 0, 1, 2];
        assert_eq!(picks(&wrr, &servers, 18), [period, period].concat());
    }

    #[test]
    fn steps_by_the_gcd() {
        let servers = servers(&[4, 2]);
        let wrr = WeightedRoundRobin::default();
        assert_eq!(picks(&wrr, &servers, 6), [0, 0, 1, 0, 0, 1]);
    }

    #[test]
    fn each_candidate_set_keeps_its_own_turn() {
        let servers = servers(&[4, 3, 2, 1]);
        let wrr = WeightedRoundRobin::default();
        let (all, tail) = (&servers[..], &servers[1..]);
        let mut from_all = Vec::new();
        let mut from_tail = Vec::new();
        for _ in 0..20 {
            from_all.push(wrr.pick(&request(), all, &|_| true).unwrap());
            from_tail.push(wrr.pick(&request(), tail, &|_| true).unwrap() + 1);
        }
        assert_eq!(from_all, lvs_sequence(&[4, 3, 2, 1], 20));
        let expected: Vec<usize> = lvs_sequence(&[3, 2, 1], 20).iter().map(|i| i + 1).collect();
        assert_eq!(from_tail, expected);
    }

    #[test]
    fn unusable_server_leaves_the_rest_their_sequence() {
        let servers = servers(&[4, 3, 2]);
        let wrr = WeightedRoundRobin::default();
        let without_b = |s: &RealServer| s.addr != servers[1].addr;
        let got: Vec<usize> = (0..12)
            .map(|_| wrr.pick(&request(), &servers, &without_b).unwrap())
            .collect();
        let expected: Vec<usize> = lvs_sequence(&[4, 2], 12)
            .iter()
            .map(|&i| [0, 2][i])
            .collect();
        assert_eq!(got, expected);
        // B back: the full set resumes its own turn from the start.
        assert_eq!(picks(&wrr, &servers, 9), [0, 0, 1, 0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn nothing_usable_gives_none() {
        let servers = servers(&[0, 0]);
        let wrr = WeightedRoundRobin::default();
        assert_eq!(wrr.pick(&request(), &servers, &|_| true), None);
        assert_eq!(wrr.pick(&request(), &[], &|_| true), None);
    }

    proptest! {
        /// Over each period (sum of weights / gcd picks) every server gets
        /// exactly weight / gcd picks, and a server of weight 0 none.
        #[test]
        fn each_period_gives_each_server_its_weight(weights in proptest::collection::vec(0u16..9, 1..10), periods in 1usize..4) {
            prop_assume!(weights.iter().any(|&w| w > 0));
            let servers = servers(&weights);
            let wrr = WeightedRoundRobin::default();
            let g = weights.iter().fold(0, |g, &w| gcd(g, u32::from(w))) as usize;
            let period: usize = weights.iter().map(|&w| usize::from(w)).sum::<usize>() / g;
            for _ in 0..periods {
                let mut counts = vec![0usize; weights.len()];
                for i in picks(&wrr, &servers, period) {
                    counts[i] += 1;
                }
                let shares: Vec<usize> = weights.iter().map(|&w| usize::from(w) / g).collect();
                prop_assert_eq!(counts, shares);
            }
        }

        /// Interleaved requests over different candidate slices and usable
        /// subsets never panic, and each (slice, usable) set follows the plain
        /// LVS sequence of its own servers.
        #[test]
        fn interleaved_sets_each_follow_lvs(
            weights in proptest::collection::vec(0u16..6, 1..9),
            calls in proptest::collection::vec((0usize..9, 0usize..9, 0u8..4), 1..120),
        ) {
            let servers = servers(&weights);
            let wrr = WeightedRoundRobin::default();
            let mut seen: std::collections::HashMap<Vec<usize>, Vec<usize>> = Default::default();
            for (a, b, skip) in calls {
                let (start, end) = (a.min(b) % weights.len(), (a.max(b) % weights.len()) + 1);
                let (start, end) = (start.min(end - 1), end);
                let slice = &servers[start..end];
                // Every fourth server of the slice is unusable when skip says so.
                let usable = |s: &RealServer| {
                    let i = slice.iter().position(|c| c.addr == s.addr).unwrap();
                    skip == 0 || i % 4 != usize::from(skip) - 1
                };
                let members: Vec<usize> = (0..slice.len())
                    .filter(|&i| slice[i].weight.0 > 0 && usable(&slice[i]))
                    .collect();
                let got = wrr.pick(&request(), slice, &usable);
                if members.is_empty() {
                    prop_assert_eq!(got, None);
                    continue;
                }
                let got = got.unwrap();
                prop_assert!(slice[got].weight.0 > 0 && usable(&slice[got]));
                let history = seen.entry(members.iter().map(|i| i + start).collect()).or_default();
                history.push(got + start);
                let member_weights: Vec<u16> = members.iter().map(|&i| slice[i].weight.0).collect();
                let expected: Vec<usize> = lvs_sequence(&member_weights, history.len())
                    .iter()
                    .map(|&k| members[k] + start)
                    .collect();
                prop_assert_eq!(&*history, &expected);
            }
        }
    }
}
