//! Schedulers: given the candidate servers that the content rules allow for a
//! request, pick one. Rules say WHICH servers may serve a target; the scheduler
//! says WHICH ONE of them.
//!
//! Every scheduler shares the same contract, enforced here rather than in each:
//! a server of effective weight 0, drained, in maintenance or down by its
//! checks never gets new work; a server excluded for this request (a failed
//! try) is skipped; and a server held out by passive marks (failures of real
//! traffic, a guess rather than a verdict) is used only when no other can
//! take the request. Schedulers weigh servers by their effective weight (the
//! agent's percentage and the slow-start ramp applied).

mod candidate_sets;
mod chash;
mod hash;
mod lard;
mod lard_map;
mod lardr;
mod lc;
mod nq;
mod persist;
mod rr;
mod sed;
mod sh;
mod wlc;
mod wrr;

use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::server::ActiveGuard;
use crate::table::{RealServer, SchedOptions, ServerAddr};

pub use chash::{ConsistentHash, HashKey};
pub use hash::server_seed;
pub use lard::Lard;
pub use lardr::LardReplicated;
pub use lc::LeastConnection;
pub use nq::NeverQueue;
pub use persist::Persistence;
pub use rr::RoundRobin;
pub use sed::ShortestExpectedDelay;
pub use sh::SourceHash;
pub use wlc::WeightedLeastConnection;
pub use wrr::WeightedRoundRobin;

/// Header fields of a request, by case-insensitive name, for schedulers that
/// key on them (the protocol module provides it).
pub trait HeaderLookup {
    /// The value of the first field named `name`, if valid UTF-8.
    fn header(&self, name: &str) -> Option<&str>;

    /// Whether a field named `name`, sent once or several times, has a
    /// value `accept` takes (content rules' header conditions). Each field
    /// line is tried whole, as sent, not split at commas: many fields
    /// (User-Agent, Cookie, dates) hold commas that separate nothing.
    /// Values are bytes as received: a field value need not be UTF-8 (RFC
    /// 9110 5.5 allows obs-text), and a condition must not miss it for that.
    fn any_value(&self, name: &str, accept: &mut dyn FnMut(&[u8]) -> bool) -> bool {
        self.header(name)
            .is_some_and(|value| accept(value.as_bytes()))
    }
}

/// A request without header fields (tests, benchmarks, protocols without any).
pub struct NoHeaders;

impl HeaderLookup for NoHeaders {
    fn header(&self, _name: &str) -> Option<&str> {
        None
    }
}

/// What a scheduler may look at in a request.
#[derive(Clone, Copy)]
pub struct RequestInfo<'a> {
    /// The request target used by the content rules (path and query).
    pub path: &'a str,
    /// The host the request names (Host, or an absolute target's authority).
    pub host: Option<&'a str>,
    pub client: IpAddr,
    pub headers: &'a dyn HeaderLookup,
}

impl<'a> RequestInfo<'a> {
    /// A request for `path` from `client`, with no host or header fields.
    pub fn new(path: &'a str, client: IpAddr) -> Self {
        Self {
            path,
            host: None,
            client,
            headers: &NoHeaders,
        }
    }
}

impl fmt::Debug for RequestInfo<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestInfo")
            .field("path", &self.path)
            .field("host", &self.host)
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

/// A scheduling algorithm. Implementations hold their own cross-core state
/// (counters, maps) and must be cheap to call on every request.
pub trait Scheduler: Send + Sync + fmt::Debug {
    /// Which algorithm this is.
    fn kind(&self) -> SchedulerKind;

    /// Index into `candidates` of the server for this request, considering only
    /// servers for which `usable` is true; `None` when no usable server exists.
    fn pick(
        &self,
        request: &RequestInfo<'_>,
        candidates: &[Arc<RealServer>],
        usable: &dyn Fn(&RealServer) -> bool,
    ) -> Option<usize>;

    /// How much this request weighs in its server's load while it is served.
    fn cost(&self, _request: &RequestInfo<'_>) -> u32 {
        1
    }

    /// Targets its map holds now, for a scheduler that maps targets to
    /// servers (LARD); `None` for the others.
    fn targets_mapped(&self) -> Option<usize> {
        None
    }

    /// Times a target left the server that had it, since start: LARD's
    /// targets reassigned (LARD/R's sets grown by a server), chash's
    /// requests sent past the ring's first choice; `None` for schedulers
    /// that place no target.
    fn target_moves(&self) -> Option<u64> {
        None
    }
}

/// A count of rare events (target moves), on a cache line of its own: its
/// rare writes must not evict the scheduler's hot fields from other cores.
#[derive(Debug, Default)]
#[repr(align(128))]
struct RareCount(AtomicU64);

impl RareCount {
    fn add_one(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

pub use tcpvs_command::spec::{SchedulerKind, UnknownScheduler};
use tcpvs_command::{sched_opts::SchedParams, validate};

/// Makes a running scheduler of a kind named in the table spec.
pub trait BuildScheduler {
    /// A fresh instance of this algorithm with its `--sched-opt` parameters.
    fn build(self, given: &SchedOptions) -> Result<Arc<dyn Scheduler>, String>;
}

impl BuildScheduler for SchedulerKind {
    fn build(self, given: &SchedOptions) -> Result<Arc<dyn Scheduler>, String> {
        // Read and checked by the command crate, as both front ends do.
        let params = validate::sched_opts(self, given).map_err(|refused| refused.reason)?;
        Ok(match params {
            SchedParams::Rr => Arc::new(RoundRobin::default()),
            SchedParams::Wrr => Arc::new(WeightedRoundRobin::default()),
            SchedParams::Lc => Arc::new(LeastConnection::default()),
            SchedParams::Wlc => Arc::new(WeightedLeastConnection::default()),
            SchedParams::Sed => Arc::new(ShortestExpectedDelay::default()),
            SchedParams::Nq => Arc::new(NeverQueue::default()),
            SchedParams::Sh => Arc::new(SourceHash),
            SchedParams::Chash(options) => {
                Arc::new(ConsistentHash::new(options.key, options.factor))
            }
            SchedParams::Lard(options) => Arc::new(Lard::new(lard::Thresholds::new(&options)?)),
            SchedParams::Lardr(options) => Arc::new(LardReplicated::new(&options)?),
        })
    }
}

/// A server picked for one request, counted active until this is dropped.
#[derive(Debug)]
pub struct Pick {
    pub server: Arc<RealServer>,
    _active: ActiveGuard,
    /// Keeps a persistence template alive while the request is in flight.
    _template: Option<persist::InFlight>,
}

impl Pick {
    /// A server chosen by something other than a scheduler (the owner of an
    /// RTSP session, which must be reached even when drained or marked
    /// failed), counted active like any pick.
    pub fn pinned(server: Arc<RealServer>) -> Self {
        let active = ActiveGuard::new(server.state.clone());
        Self {
            server,
            _active: active,
            _template: None,
        }
    }

    fn holding(mut self, template: persist::InFlight) -> Self {
        self._template = Some(template);
        self
    }
}

/// Picks a server for `request` among `candidates`, never one in `exclude`.
pub fn pick_server(
    scheduler: &dyn Scheduler,
    request: &RequestInfo<'_>,
    candidates: &[Arc<RealServer>],
    exclude: &[ServerAddr],
) -> Option<Pick> {
    let cost = scheduler.cost(request);
    pick_with(candidates, exclude, cost, |usable| {
        scheduler.pick(request, candidates, usable)
    })
}

/// Picks the server for `key` (a rule's capture group, KTCPVS `hhttp`'s `-m`)
/// by weighted rendezvous hashing: the same key goes to the same server while
/// it is usable, servers get keys in proportion to their weights, and a server
/// leaving moves only its own keys. The hash is fixed, so every director maps
/// a key alike.
pub fn pick_by_key(
    key: &str,
    candidates: &[Arc<RealServer>],
    exclude: &[ServerAddr],
) -> Option<Pick> {
    pick_with(candidates, exclude, 1, |usable| {
        let key = hash::StableHasher::new().write(key.as_bytes()).separate();
        hash::weighted_rendezvous(key, candidates, usable)
    })
}

/// Runs a choice over healthy servers first, then over any that takes work,
/// and counts the chosen server active.
fn pick_with(
    candidates: &[Arc<RealServer>],
    exclude: &[ServerAddr],
    cost: u32,
    choose: impl Fn(&dyn Fn(&RealServer) -> bool) -> Option<usize>,
) -> Option<Pick> {
    let healthy =
        |server: &RealServer| takes_work(server, exclude) && !server.state.is_marked_failed();
    let any = |server: &RealServer| takes_work(server, exclude);
    // A server that filled up between the choice and the count (another
    // core took its last place) is full now, and passed over by the next
    // choice: at most one more try per candidate.
    for _ in 0..=candidates.len() {
        let index = choose(&healthy).or_else(|| choose(&any))?;
        let server = candidates.get(index)?.clone();
        let Some(active) = ActiveGuard::within(server.state.clone(), cost, server.max_conns) else {
            continue;
        };
        return Some(Pick {
            server,
            _active: active,
            _template: None,
        });
    }
    None
}

/// Whether a server of `candidates` would take the request but for its
/// `max_conns`: when no server could be picked, the request then waits in
/// the service's queue (else no server takes work at all).
pub fn any_server_full(candidates: &[Arc<RealServer>], exclude: &[ServerAddr]) -> bool {
    candidates.iter().any(|server| {
        server.takes_new_work() && !server.has_room() && !exclude.contains(&server.addr)
    })
}

/// Where a scan over the candidates starts: one further along at every call,
/// so turns (rr) and ties (wlc) rotate over the servers.
#[derive(Debug, Default)]
struct Rotation {
    next: AtomicUsize,
}

impl Rotation {
    /// The candidate indices `0..n` in this call's order.
    fn order(&self, n: usize) -> impl Iterator<Item = usize> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n).map(move |step| start.wrapping_add(step) % n)
    }

    /// Makes the next scan start after `picked`, so a skipped server does not
    /// give its successor two turns in a row.
    fn resume_after(&self, picked: usize) {
        self.next.store(picked.wrapping_add(1), Ordering::Relaxed);
    }
}

/// Index of the usable candidate with the least `load / capacity`, as `ratio`
/// gives them (wlc, lc, sed, nq). Ratios are compared by cross-multiplication,
/// with no division; a capacity of 0 never wins; ties go to the first in this
/// call's rotation, so they are broken round robin.
fn least_by(
    candidates: &[Arc<RealServer>],
    usable: &dyn Fn(&RealServer) -> bool,
    ties: &Rotation,
    ratio: impl Fn(&RealServer) -> (u64, u64),
) -> Option<usize> {
    let mut best: Option<(usize, u64, u64)> = None;
    for i in ties.order(candidates.len()) {
        let server = &candidates[i];
        if !usable(server) {
            continue;
        }
        let (load, capacity) = ratio(server);
        if capacity == 0 {
            continue;
        }
        let lighter = match best {
            None => true,
            // load / capacity < best_load / best_capacity
            Some((_, best_load, best_capacity)) => load * best_capacity < best_load * capacity,
        };
        if lighter {
            best = Some((i, load, capacity));
        }
    }
    best.map(|(i, _, _)| i)
}

/// Whether `server` may get this request at all: the operator, the agent
/// and the active check let it take new work, it is under its `max_conns`,
/// and it did not fail this request already.
fn takes_work(server: &RealServer, exclude: &[ServerAddr]) -> bool {
    server.takes_new_work() && server.has_room() && !exclude.contains(&server.addr)
}

#[cfg(test)]
pub(crate) mod testing {
    //! Helpers shared by the schedulers' tests.
    use super::*;
    use crate::server::ServerState;
    use crate::table::Weight;

    pub use super::BuildScheduler;

    pub fn servers(weights: &[u16]) -> Vec<Arc<RealServer>> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                Arc::new(RealServer::new(
                    ServerAddr(format!("127.0.0.1:{}", 9000 + i).parse().unwrap()),
                    Weight(w),
                    Arc::new(ServerState::default()),
                ))
            })
            .collect()
    }

    pub fn request() -> RequestInfo<'static> {
        RequestInfo::new("/", IpAddr::from([127, 0, 0, 1]))
    }

    /// Makes `server` carry `count` active requests until the guards drop.
    pub fn hold(server: &Arc<RealServer>, count: u32) -> Vec<ActiveGuard> {
        (0..count)
            .map(|_| ActiveGuard::new(server.state.clone()))
            .collect()
    }

    /// Picks released at once (an idle cluster) spread evenly over servers of
    /// any weight: ties rotate instead of piling on the first server.
    pub fn assert_idle_picks_rotate(scheduler: &dyn Scheduler, weights: &[u16]) {
        let servers = servers(weights);
        let rounds = 10;
        let mut picks = vec![0; servers.len()];
        for _ in 0..rounds * servers.len() {
            let pick = pick_server(scheduler, &request(), &servers, &[]).unwrap();
            picks[servers
                .iter()
                .position(|s| s.addr == pick.server.addr)
                .unwrap()] += 1;
        }
        assert_eq!(picks, vec![rounds; servers.len()], "{weights:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use proptest::prelude::*;

    /// Every scheduler passes over a server at its `max_conns`; with only
    /// full servers left none is picked, and the request is to wait.
    #[test]
    fn a_full_server_is_passed_over_by_every_scheduler() {
        for &kind in SchedulerKind::ALL {
            let scheduler = kind.build(&SchedOptions::new()).unwrap();
            let capped: Vec<Arc<RealServer>> = servers(&[1, 1])
                .into_iter()
                .map(|s| {
                    let s = Arc::into_inner(s).unwrap();
                    Arc::new(s.with_max_conns(2))
                })
                .collect();
            let _full = hold(&capped[0], 2);
            for _ in 0..4 {
                let pick = pick_server(&*scheduler, &request(), &capped, &[]).unwrap();
                assert_eq!(pick.server.addr, capped[1].addr, "{kind}");
                drop(pick);
            }
            let _also_full = hold(&capped[1], 2);
            assert!(
                pick_server(&*scheduler, &request(), &capped, &[]).is_none(),
                "{kind}"
            );
            assert!(any_server_full(&capped, &[]), "{kind}");
            let excluded = [capped[0].addr, capped[1].addr];
            assert!(!any_server_full(&capped, &excluded), "{kind}");
        }
    }

    #[test]
    fn names_round_trip() {
        for &kind in SchedulerKind::ALL {
            assert_eq!(kind.name().parse::<SchedulerKind>(), Ok(kind));
        }
        assert!("lblc".parse::<SchedulerKind>().is_err());
    }

    #[test]
    fn the_options_given_reach_the_scheduler() {
        let built = |kind: SchedulerKind, pairs: &[(&str, &str)]| {
            let given: SchedOptions = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            format!("{:?}", kind.build(&given).unwrap())
        };
        let lard = [
            ("low", "3"),
            ("high", "9"),
            ("dynamic", "^/x"),
            ("targets", "7"),
        ];
        let lardr = built(
            SchedulerKind::Lardr,
            &[&lard[..], &[("hold", "90")]].concat(),
        );
        for part in ["low: 3, high: 9", r#"dynamic: Regex("^/x")"#, "targets: 7"] {
            assert!(lardr.contains(part), "{part} in {lardr}");
            assert!(built(SchedulerKind::Lard, &lard).contains(part), "{part}");
        }
        assert!(lardr.contains("hold: 90s"), "{lardr}");
        let chash = built(
            SchedulerKind::Chash,
            &[("key", "cookie:sid"), ("factor", "150")],
        );
        assert!(
            chash.contains(r#"key: Cookie("sid"), factor: 150"#),
            "{chash}"
        );
    }

    #[test]
    fn excluded_server_is_never_picked() {
        let servers = servers(&[1, 1]);
        for &kind in SchedulerKind::ALL {
            let sched = kind.build(&SchedOptions::new()).unwrap();
            for _ in 0..10 {
                let pick = pick_server(&*sched, &request(), &servers, &[servers[0].addr]).unwrap();
                assert_eq!(pick.server.addr, servers[1].addr);
            }
        }
    }

    #[test]
    fn failed_server_used_only_when_nothing_else() {
        let servers = servers(&[1, 1]);
        servers[0]
            .state
            .record_failure(&tcpvs_command::PassiveSpec::default());
        for &kind in SchedulerKind::ALL {
            let sched = kind.build(&SchedOptions::new()).unwrap();
            for _ in 0..10 {
                let pick = pick_server(&*sched, &request(), &servers, &[]).unwrap();
                assert_eq!(pick.server.addr, servers[1].addr);
            }
            let pick = pick_server(&*sched, &request(), &servers, &[servers[1].addr]).unwrap();
            assert_eq!(pick.server.addr, servers[0].addr);
        }
    }

    /// A verdict, unlike a passive mark, is never overruled: a server down
    /// by its checks or its agent, drained or in maintenance gets no new
    /// request from any scheduler, even when nothing else is left.
    #[test]
    fn down_drained_and_maint_servers_get_nothing() {
        use crate::server::AgentAsks;
        use crate::table::AdminState;
        type HoldOut = dyn Fn(&Arc<RealServer>) -> Arc<RealServer>;
        let held_out: [&HoldOut; 4] = [
            &|s| {
                s.state.set_checked_down(true);
                s.clone()
            },
            &|s| {
                s.state.set_agent_asks(AgentAsks::Drain);
                s.clone()
            },
            &|s| {
                Arc::new(
                    RealServer::new(s.addr, s.weight, s.state.clone())
                        .with_admin(AdminState::Maint),
                )
            },
            &|s| {
                Arc::new(
                    RealServer::new(s.addr, s.weight, s.state.clone())
                        .with_admin(AdminState::Drain),
                )
            },
        ];
        for hold_out in held_out {
            let mut servers = servers(&[1, 1]);
            servers[0] = hold_out(&servers[0]);
            for &kind in SchedulerKind::ALL {
                let sched = kind.build(&SchedOptions::new()).unwrap();
                for _ in 0..10 {
                    let pick = pick_server(&*sched, &request(), &servers, &[]).unwrap();
                    assert_eq!(pick.server.addr, servers[1].addr, "{kind:?}");
                }
                let none = pick_server(&*sched, &request(), &servers, &[servers[1].addr]);
                assert!(none.is_none(), "{kind:?}: {none:?}");
                let keyed = pick_by_key("k", &servers, &[servers[1].addr]);
                assert!(keyed.is_none(), "{kind:?}: {keyed:?}");
            }
        }
    }

    #[test]
    fn same_key_same_server_and_only_its_keys_move() {
        let servers = servers(&[1, 1, 1, 1]);
        let keys: Vec<String> = (0..200).map(|i| format!("user{i}")).collect();
        let owner = |key: &str, exclude: &[ServerAddr]| {
            pick_by_key(key, &servers, exclude).unwrap().server.addr
        };
        let before: Vec<ServerAddr> = keys.iter().map(|k| owner(k, &[])).collect();
        assert_eq!(
            before,
            keys.iter().map(|k| owner(k, &[])).collect::<Vec<_>>()
        );
        for server in &servers {
            let share = before.iter().filter(|a| **a == server.addr).count();
            assert!((25..=75).contains(&share), "uneven: {share} of 200");
        }
        let gone = [servers[0].addr];
        for (key, old) in keys.iter().zip(&before) {
            let new = owner(key, &gone);
            assert!(
                *old == servers[0].addr || new == *old,
                "{key} moved needlessly"
            );
        }
    }

    proptest! {
        #[test]
        fn weight_zero_is_never_picked(weights in proptest::collection::vec(0u16..4, 1..8), picks in 1usize..64) {
            let servers = servers(&weights);
            for &kind in SchedulerKind::ALL {
                let sched = kind.build(&SchedOptions::new()).unwrap();
                let mut held = Vec::new();
                for _ in 0..picks {
                    match pick_server(&*sched, &request(), &servers, &[]) {
                        Some(pick) => {
                            prop_assert!(pick.server.weight.0 > 0);
                            held.push(pick);
                        }
                        None => prop_assert!(weights.iter().all(|&w| w == 0)),
                    }
                }
            }
        }
    }
}
