//! LARD/R, LARD with replication (seed 000): a hot target may be served by a
//! SET of servers. A request goes to the least loaded member; when that one is
//! overloaded (LARD's test) the cluster's least loaded server joins the set;
//! when the set has not changed for `hold` (K, 60 s) and has more than one
//! member, its most loaded member leaves, so replicas of a target that cooled
//! down are given back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tcpvs_command::sched_opts::LardrOptions;

use super::lard::{least_loaded, TargetHasher, Thresholds};
use super::lard_map::TargetMap;
use super::{RareCount, RequestInfo, Rotation, Scheduler, SchedulerKind};
use crate::table::{RealServer, ServerAddr};

/// The servers of one target, and when the set last changed.
#[derive(Debug, Clone)]
struct Replicas {
    members: Vec<ServerAddr>,
    changed: Instant,
}

#[derive(Debug)]
pub struct LardReplicated {
    thresholds: Thresholds,
    hold: Duration,
    sets: TargetMap<Replicas>,
    hasher: TargetHasher,
    ties: Rotation,
    /// Servers that joined a target's set.
    moves: RareCount,
}

impl LardReplicated {
    /// LARD's thresholds plus `hold` (K), checked by the command crate.
    pub fn new(options: &LardrOptions) -> Result<Self, String> {
        let thresholds = Thresholds::new(&options.lard)?;
        Ok(Self {
            sets: TargetMap::new(thresholds.targets),
            thresholds,
            hold: options.hold,
            hasher: TargetHasher::default(),
            ties: Rotation::default(),
            moves: RareCount::default(),
        })
    }

    fn pick_at(
        &self,
        now: Instant,
        request: &RequestInfo<'_>,
        candidates: &[Arc<RealServer>],
        usable: &dyn Fn(&RealServer) -> bool,
    ) -> Option<usize> {
        let key = self.hasher.key(request.path);
        self.sets.entry(key, |entry| {
            let cluster_least = || least_loaded(candidates, usable, &self.ties);
            let Some(set) = entry else {
                let first = cluster_least()?;
                *entry = Some(Replicas {
                    members: vec![candidates[first].addr],
                    changed: now,
                });
                return Some(first);
            };
            let member = |s: &RealServer| usable(s) && set.members.contains(&s.addr);
            let mut chosen = least_loaded(candidates, &member, &self.ties);
            let grow = match chosen {
                None => true,
                Some(n) => self
                    .thresholds
                    .overloaded(&candidates[n], candidates, usable),
            };
            if grow {
                let extra = cluster_least()?;
                if !set.members.contains(&candidates[extra].addr) {
                    set.members.push(candidates[extra].addr);
                    set.changed = now;
                    self.moves.add_one();
                }
                chosen = Some(extra);
            } else if set.members.len() > 1 && now.duration_since(set.changed) >= self.hold {
                shrink(set, candidates, now);
            }
            chosen
        })
    }

    /// Members of the set for `path` (tests, diagnostics).
    #[cfg(test)]
    fn members(&self, path: &str) -> Vec<ServerAddr> {
        let key = self.hasher.key(path);
        self.sets.entry(key, |entry| {
            entry
                .as_ref()
                .map(|s| s.members.clone())
                .unwrap_or_default()
        })
    }
}

/// Drops the most loaded member; one no longer in the table goes first.
fn shrink(set: &mut Replicas, candidates: &[Arc<RealServer>], now: Instant) {
    let load_of = |addr: &ServerAddr| {
        candidates
            .iter()
            .find(|s| s.addr == *addr)
            .map_or(u64::MAX, |s| {
                u64::from(s.state.load()) * 65536 / u64::from(s.effective_weight().0.max(1))
            })
    };
    if let Some((i, _)) = set
        .members
        .iter()
        .enumerate()
        .max_by_key(|(_, addr)| load_of(addr))
    {
        set.members.swap_remove(i);
        set.changed = now;
    }
}

impl Scheduler for LardReplicated {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Lardr
    }

    fn targets_mapped(&self) -> Option<usize> {
        Some(self.sets.len())
    }

    fn target_moves(&self) -> Option<u64> {
        Some(self.moves.get())
    }

    fn pick(
        &self,
        request: &RequestInfo<'_>,
        candidates: &[Arc<RealServer>],
        usable: &dyn Fn(&RealServer) -> bool,
    ) -> Option<usize> {
        self.pick_at(Instant::now(), request, candidates, usable)
    }

    fn cost(&self, request: &RequestInfo<'_>) -> u32 {
        self.thresholds.cost(request.path)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use tcpvs_command::sched_opts::{LardOptions, DEFAULT_DYNAMIC};

    fn lardr(low: u32, high: u32, hold_ms: u64) -> LardReplicated {
        let lard = LardOptions {
            low,
            high,
            dynamic: DEFAULT_DYNAMIC.to_string(),
            targets: 1000,
        };
        let hold = Duration::from_millis(hold_ms);
        LardReplicated::new(&LardrOptions { lard, hold }).unwrap()
    }

    #[test]
    fn grows_when_overloaded_and_shrinks_after_hold() {
        let servers = servers(&[1, 1, 1]);
        let lardr = lardr(2, 4, 1000);
        let all = |_: &RealServer| true;
        let t0 = Instant::now();
        let request = request();
        let first = lardr.pick_at(t0, &request, &servers, &all).unwrap();
        assert_eq!(lardr.members("/").len(), 1);

        // The only member is overloaded and others are idle: a replica joins.
        let _hot = hold(&servers[first], 5);
        assert_eq!(lardr.target_moves(), Some(0));
        let second = lardr.pick_at(t0, &request, &servers, &all).unwrap();
        assert_ne!(second, first);
        assert_eq!(lardr.members("/").len(), 2);
        assert_eq!(lardr.target_moves(), Some(1), "a server joined the set");

        // Not overloaded any more: requests go to the least loaded member,
        // and the set keeps its size until it has been stable for `hold`.
        drop(_hot);
        let _warm = hold(&servers[first], 1);
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(lardr.pick_at(t1, &request, &servers, &all), Some(second));
        assert_eq!(lardr.members("/").len(), 2);

        // Stable for `hold`: the most loaded member (first) leaves.
        let t2 = t0 + Duration::from_millis(1100);
        lardr.pick_at(t2, &request, &servers, &all).unwrap();
        assert_eq!(lardr.members("/"), vec![servers[second].addr]);
    }

    #[test]
    fn a_member_gone_from_the_candidates_is_replaced() {
        let servers = servers(&[1, 1]);
        let lardr = lardr(2, 4, 1000);
        let all = |_: &RealServer| true;
        let now = Instant::now();
        let first = lardr.pick_at(now, &request(), &servers, &all).unwrap();
        let not_first = |s: &RealServer| s.addr != servers[first].addr;
        let other = lardr
            .pick_at(now, &request(), &servers, &not_first)
            .unwrap();
        assert_ne!(other, first);
        assert_eq!(lardr.members("/").len(), 2);
    }
}
