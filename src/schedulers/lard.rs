//! LARD, locality-aware request distribution (Pai et al., ASPLOS 1998):
//! each target is remembered on the server that served it, so that server's
//! cache keeps it; a target moves only when its server is overloaded:
//!
//! ```text
//! if server[target] is none: n = least loaded; server[target] = n
//! else n = server[target]
//!      if (n.load > T_high and some node.load < T_low) or n.load >= 2*T_high:
//!          n = least loaded; server[target] = n
//! ```
//!
//! Load is the active requests of a server on every core, a dynamic request
//! (the `dynamic` pattern: CGI or a query string by default) counting 2 and a
//! static one 1, as in the paper. "Least loaded" compares load per unit of
//! weight, so heterogeneous servers get their share.

use std::sync::Arc;

use regex::Regex;
use tcpvs_command::sched_opts::{self, LardOptions};

use super::lard_map::TargetMap;
use super::{least_by, RareCount, RequestInfo, Rotation, Scheduler, SchedulerKind};
use crate::table::{RealServer, ServerAddr};

/// The parameters shared by LARD and LARD/R.
#[derive(Debug)]
pub struct Thresholds {
    /// Below this load a server counts as underused (T_low).
    pub low: u32,
    /// Above this load a server counts as overloaded (T_high).
    pub high: u32,
    /// Requests matching this count 2 toward load.
    pub dynamic: Regex,
    /// Most targets remembered.
    pub targets: usize,
}

impl Thresholds {
    /// LARD's options, checked by the command crate; only the `dynamic`
    /// pattern's compilation (its compiled size) can still fail here.
    pub fn new(options: &LardOptions) -> Result<Self, String> {
        let dynamic = Regex::new(&options.dynamic).map_err(|e| {
            let reason = e.to_string();
            let last = reason.lines().last().unwrap_or("invalid regex").trim();
            sched_opts::bad_dynamic(&options.dynamic, last).reason
        })?;
        Ok(Self {
            low: options.low,
            high: options.high,
            dynamic,
            targets: options.targets,
        })
    }

    /// The paper's move test for a target on `server`.
    pub fn overloaded(
        &self,
        server: &RealServer,
        candidates: &[Arc<RealServer>],
        usable: &dyn Fn(&RealServer) -> bool,
    ) -> bool {
        let load = server.state.load();
        let someone_idle = || {
            candidates
                .iter()
                .any(|s| usable(s) && s.state.load() < self.low)
        };
        load >= 2 * self.high || (load > self.high && someone_idle())
    }

    /// LARD's request cost: dynamic requests weigh twice.
    pub fn cost(&self, path: &str) -> u32 {
        if self.dynamic.is_match(path) {
            2
        } else {
            1
        }
    }
}

/// The candidate with the least load (cost-weighted active requests) per unit
/// of weight among those `usable` accepts; ties rotate.
pub fn least_loaded(
    candidates: &[Arc<RealServer>],
    usable: &dyn Fn(&RealServer) -> bool,
    ties: &Rotation,
) -> Option<usize> {
    least_by(candidates, usable, ties, |server| {
        (
            u64::from(server.state.load()),
            u64::from(server.effective_weight().0),
        )
    })
}

/// Hashes request targets for the map (local memory: any fast hash will do).
#[derive(Debug, Default)]
pub struct TargetHasher(ahash::RandomState);

impl TargetHasher {
    pub fn key(&self, target: &str) -> u64 {
        self.0.hash_one(target)
    }
}

/// Where a target goes: its home server, and the server standing in for it
/// while the home cannot take work (down, drained, in maintenance). The
/// stand-in keeps the target's locality during the outage; the target goes
/// home when its server takes work again, whose cache still holds it.
#[derive(Debug, Clone, Copy)]
struct Assigned {
    home: ServerAddr,
    stand_in: Option<ServerAddr>,
}

/// LARD: one server per target.
#[derive(Debug)]
pub struct Lard {
    thresholds: Thresholds,
    servers: TargetMap<Assigned>,
    hasher: TargetHasher,
    ties: Rotation,
    /// Targets sent to another server than the one serving them.
    moves: RareCount,
}

impl Lard {
    pub fn new(thresholds: Thresholds) -> Self {
        Self {
            servers: TargetMap::new(thresholds.targets),
            thresholds,
            hasher: TargetHasher::default(),
            ties: Rotation::default(),
            moves: RareCount::default(),
        }
    }

    /// Targets remembered now.
    pub fn targets(&self) -> usize {
        self.servers.len()
    }
}

impl Scheduler for Lard {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Lard
    }

    fn targets_mapped(&self) -> Option<usize> {
        Some(self.servers.len())
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
        let key = self.hasher.key(request.path);
        self.servers.entry(key, |assigned| {
            let usable_at =
                |addr: ServerAddr| candidates.iter().position(|s| s.addr == addr && usable(s));
            // A home that is still a candidate but cannot take work now is
            // away: a stand-in serves its targets until it is back.
            let away = |addr: ServerAddr| {
                candidates
                    .iter()
                    .any(|s| s.addr == addr && !s.takes_new_work())
            };
            let (current, home_away) = match *assigned {
                None => (None, false),
                Some(Assigned { home, stand_in }) => match usable_at(home) {
                    Some(i) => (Some(i), false),
                    None if away(home) => (stand_in.and_then(usable_at), true),
                    None => (None, false),
                },
            };
            let chosen = match current {
                Some(i)
                    if !self
                        .thresholds
                        .overloaded(&candidates[i], candidates, usable) =>
                {
                    i
                }
                _ => least_loaded(candidates, usable, &self.ties)?,
            };
            let addr = candidates[chosen].addr;
            // Where the target was served: its stand-in while it has one.
            let serving = assigned.map(|a| a.stand_in.unwrap_or(a.home));
            if serving.is_some_and(|serving| serving != addr) {
                self.moves.add_one();
            }
            *assigned = Some(match (*assigned, home_away) {
                (Some(Assigned { home, .. }), true) => Assigned {
                    home,
                    stand_in: Some(addr),
                },
                _ => Assigned {
                    home: addr,
                    stand_in: None,
                },
            });
            Some(chosen)
        })
    }

    fn cost(&self, request: &RequestInfo<'_>) -> u32 {
        self.thresholds.cost(request.path)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::{pick_server, Pick};
    use super::*;
    use std::net::IpAddr;

    fn lard(low: u32, high: u32) -> Lard {
        let options = LardOptions {
            low,
            high,
            ..lard_options()
        };
        Lard::new(Thresholds::new(&options).unwrap())
    }

    fn pick(lard: &Lard, servers: &[Arc<RealServer>], path: &str) -> Pick {
        let request = RequestInfo::new(path, IpAddr::from([127, 0, 0, 1]));
        pick_server(lard, &request, servers, &[]).unwrap()
    }

    /// Indexes of `home` and of the other server, in a pair of servers.
    fn home_and_other(servers: &[Arc<RealServer>], home: ServerAddr) -> (usize, usize) {
        if servers[0].addr == home {
            (0, 1)
        } else {
            (1, 0)
        }
    }

    #[test]
    fn a_target_stays_on_its_server_below_high() {
        let servers = servers(&[1, 1, 1, 1]);
        let lard = lard(2, 4);
        let home = pick(&lard, &servers, "/a.html").server.addr;
        let i = servers.iter().position(|s| s.addr == home).unwrap();
        // Busy but not overloaded (load 4 = high): the target stays.
        let _busy = hold(&servers[i], 4);
        for _ in 0..10 {
            assert_eq!(pick(&lard, &servers, "/a.html").server.addr, home);
        }
    }

    #[test]
    fn moves_exactly_when_the_thresholds_say() {
        let servers = servers(&[1, 1]);
        let lard = lard(2, 4);
        let home = pick(&lard, &servers, "/hot").server.addr;
        let (h, other) = home_and_other(&servers, home);
        // load > high, but nobody is under low: stays.
        let _home_load = hold(&servers[h], 5);
        let _other_load = hold(&servers[other], 2);
        assert_eq!(pick(&lard, &servers, "/hot").server.addr, home);
        assert_eq!(lard.target_moves(), Some(0));
        // load > high and someone under low: moves.
        drop(_other_load);
        let moved = pick(&lard, &servers, "/hot").server.addr;
        assert_eq!(moved, servers[other].addr);
        assert_eq!(lard.target_moves(), Some(1), "one move counted");
        // and the move is remembered.
        assert_eq!(pick(&lard, &servers, "/hot").server.addr, moved);
        assert_eq!(lard.target_moves(), Some(1));
    }

    #[test]
    fn twice_high_moves_whatever_the_others_do() {
        let servers = servers(&[1, 1]);
        let lard = lard(2, 4);
        let home = pick(&lard, &servers, "/hot").server.addr;
        let (h, other) = home_and_other(&servers, home);
        let _home_load = hold(&servers[h], 8);
        let _other_load = hold(&servers[other], 7);
        assert_eq!(
            pick(&lard, &servers, "/hot").server.addr,
            servers[other].addr
        );
    }

    #[test]
    fn new_targets_go_to_the_least_loaded_and_dynamic_counts_two() {
        let servers = servers(&[1, 1, 1]);
        let lard = lard(25, 65);
        let _a = hold(&servers[0], 3);
        let _b = hold(&servers[1], 1);
        let fresh = pick(&lard, &servers, "/new");
        assert_eq!(fresh.server.addr, servers[2].addr);
        let cgi = pick(&lard, &servers, "/cgi-bin/x");
        assert_eq!(cgi.server.state.load(), cgi.server.state.active() + 1);
    }

    #[test]
    fn targets_of_a_server_that_is_down_stand_in_elsewhere_and_go_home() {
        let servers = servers(&[1, 1, 1]);
        let lard = lard(25, 65);
        let paths: Vec<String> = (0..60).map(|i| format!("/page{i}")).collect();
        let home: Vec<ServerAddr> = paths
            .iter()
            .map(|p| pick(&lard, &servers, p).server.addr)
            .collect();
        let away = servers[0].addr;
        let theirs: Vec<&String> = paths
            .iter()
            .zip(&home)
            .filter(|(_, h)| **h == away)
            .map(|(p, _)| p)
            .collect();
        assert!(
            theirs.len() >= 5,
            "only {} targets on the first server",
            theirs.len()
        );
        servers[0].state.set_checked_down(true);
        let stand_ins: Vec<ServerAddr> = theirs
            .iter()
            .map(|p| pick(&lard, &servers, p).server.addr)
            .collect();
        assert!(
            stand_ins.iter().all(|s| *s != away),
            "sent to a server that is down"
        );
        // The stand-in keeps each target while the home is away.
        for (path, stand_in) in theirs.iter().zip(&stand_ins) {
            assert_eq!(pick(&lard, &servers, path).server.addr, *stand_in, "{path}");
        }
        servers[0].state.set_checked_down(false);
        for path in &theirs {
            assert_eq!(
                pick(&lard, &servers, path).server.addr,
                away,
                "{path} did not go home"
            );
        }
        // The others' targets never moved.
        for (path, home) in paths.iter().zip(&home) {
            assert_eq!(pick(&lard, &servers, path).server.addr, *home, "{path}");
        }
    }

    #[test]
    fn a_dynamic_pattern_too_big_to_compile_is_refused() {
        // Its syntax is fine (the command crate takes it); its size is not.
        let options = LardOptions {
            dynamic: r"\w{1000}\w{1000}\w{1000}".to_string(),
            ..lard_options()
        };
        assert!(sched_opts::read(SchedulerKind::Lard, &given(&options)).is_ok());
        let refused = Thresholds::new(&options).unwrap_err();
        assert!(
            refused.starts_with(r"option dynamic: invalid pattern `\w{1000}"),
            "{refused}"
        );
    }

    fn lard_options() -> LardOptions {
        LardOptions {
            low: 25,
            high: 65,
            dynamic: sched_opts::DEFAULT_DYNAMIC.to_string(),
            targets: 1000,
        }
    }

    fn given(options: &LardOptions) -> super::super::SchedOptions {
        [("dynamic".to_string(), options.dynamic.clone())].into()
    }
}
