//! Consistent hashing with bounded loads (Mirrokni, Thorup and Zadimoghaddam,
//! 2018; HAProxy's `hash-balance-factor`). A request's key is hashed onto a
//! ring where each server holds points in proportion to its weight, and the
//! request goes to the first server clockwise that is usable and within its
//! bound: `active + 1 <= ceil(factor% * (total active + 1) * weight / total
//! weight)`, over the usable candidates. Keys stay on their server for its
//! cache; a server coming or going moves only the keys it gains or loses; and
//! a hot key spills round the ring instead of burying one server.
//!
//! Options: `key=path|url|host|header:NAME|cookie:NAME|source` (default
//! `path`, the target without its query) and `factor` (percent, default 200).
//! 200 lets a server carry twice its fair share before its keys spill: the top
//! of HAProxy's usual 125-200, and where LARD moves a target (2 x T_high). A
//! tighter bound spills hot keys onto servers whose caches lack them; with the
//! LARD paper's costs at 8 nodes, 125 gives 64 % of LARD's throughput and 200
//! gives 87 % (`cargo run --release --example locality`).
//! A request without its key (no such header or cookie) lands at points
//! spread evenly round the ring, where HAProxy would use round robin.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::candidate_sets::CandidateSets;
use super::hash::StableHasher;
use super::{RareCount, RequestInfo, Scheduler, SchedulerKind};
use crate::table::{RealServer, ServerAddr, Weight};

pub use tcpvs_command::sched_opts::HashKey;

/// Ring points per unit of weight: enough that equal servers get shares
/// within a few percent of each other.
const POINTS_PER_WEIGHT: u64 = 160;
/// Most points on one ring; heavier sets get fewer per unit of weight.
const MAX_POINTS: u64 = 1 << 18;

#[derive(Debug)]
pub struct ConsistentHash {
    key: HashKey,
    /// The load bound, in percent of a server's fair share.
    factor: u32,
    /// One ring per candidate set, built on first use.
    rings: Mutex<CandidateSets<Arc<Ring>>>,
    /// Where the next request without a key lands.
    spread: AtomicU64,
    /// Requests sent past the ring's first choice for their key.
    moves: RareCount,
}

/// The stable hash of `key` in `request`; `None` when the request lacks it
/// (an absent or empty header, cookie or host).
fn key_hash(key: &HashKey, request: &RequestInfo<'_>) -> Option<u64> {
    let text = |text: &str| StableHasher::new().write(text.as_bytes()).finish();
    let present = |value: &str| !value.is_empty();
    match key {
        HashKey::Path => Some(text(request.path.split('?').next().unwrap_or(""))),
        HashKey::Url => Some(text(request.path)),
        HashKey::Host => request.host.filter(|h| present(h)).map(|host| {
            let folded = host.bytes().map(|b| b.to_ascii_lowercase());
            StableHasher::new().write_iter(folded).finish()
        }),
        HashKey::Header(name) => request
            .headers
            .header(name)
            .filter(|v| present(v))
            .map(text),
        HashKey::Cookie(name) => request
            .headers
            .header("cookie")
            .and_then(|cookies| cookie(cookies, name))
            .filter(|v| present(v))
            .map(text),
        HashKey::Source => Some(StableHasher::new().write_ip(request.client).finish()),
    }
}

/// The value of cookie `name` in a Cookie field (`a=1; b=2`).
fn cookie<'a>(cookies: &'a str, name: &str) -> Option<&'a str> {
    cookies.split(';').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key.trim() == name).then(|| value.trim())
    })
}

/// Points of the servers of one candidate set, sorted clockwise.
#[derive(Debug)]
struct Ring {
    points: Vec<u64>,
    /// Index in the candidate set of each point's server.
    owners: Vec<u32>,
}

impl Ring {
    fn build(members: &[(ServerAddr, Weight)]) -> Self {
        let total: u64 = members.iter().map(|(_, w)| u64::from(w.0)).sum();
        let per_weight = POINTS_PER_WEIGHT.min(MAX_POINTS / total.max(1)).max(1);
        let mut ring: Vec<(u64, ServerAddr, u32)> = Vec::new();
        for (i, &(addr, weight)) in members.iter().enumerate() {
            // A server's j-th point does not depend on the others, so a server
            // coming or going moves only the keys of its own points.
            let server = StableHasher::new().write_socket(addr.0).separate();
            let points = if weight.0 == 0 {
                0
            } else {
                (u64::from(weight.0) * per_weight).max(1)
            };
            for j in 0..points as u32 {
                let point = server.write(&j.to_be_bytes()).finish();
                ring.push((point, addr, i as u32));
            }
        }
        // By address on (rare) equal points, so any order of the set agrees.
        ring.sort_unstable_by_key(|&(point, addr, _)| (point, addr));
        Self {
            points: ring.iter().map(|&(point, _, _)| point).collect(),
            owners: ring.iter().map(|&(_, _, owner)| owner).collect(),
        }
    }

    /// The servers of the points from `hash` clockwise, once round.
    fn walk(&self, hash: u64) -> impl Iterator<Item = usize> + '_ {
        let start = self.points.partition_point(|&point| point < hash);
        let n = self.owners.len();
        (0..n).map(move |step| self.owners[(start + step) % n] as usize)
    }
}

impl ConsistentHash {
    pub fn new(key: HashKey, factor: u32) -> Self {
        Self {
            key,
            factor,
            rings: Mutex::default(),
            spread: AtomicU64::new(0),
            moves: RareCount::default(),
        }
    }

    fn ring(&self, candidates: &[Arc<RealServer>]) -> Arc<Ring> {
        let mut rings = self.rings.lock().unwrap_or_else(PoisonError::into_inner);
        let servers = candidates.iter().map(|server| &**server);
        rings
            .state(servers, |members| Arc::new(Ring::build(members)))
            .clone()
    }
}

impl Scheduler for ConsistentHash {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Chash
    }

    fn pick(
        &self,
        request: &RequestInfo<'_>,
        candidates: &[Arc<RealServer>],
        usable: &dyn Fn(&RealServer) -> bool,
    ) -> Option<usize> {
        let usable =
            |server: &RealServer| !server.effective_weight().is_quiescent() && usable(server);
        let (mut active, mut weight) = (0u64, 0u64);
        for server in candidates.iter().filter(|server| usable(server)) {
            active += u64::from(server.state.active());
            weight += u64::from(server.effective_weight().0);
        }
        if weight == 0 {
            return None;
        }
        // Within bound: active * 100 * total weight < factor * (total + 1) * weight.
        // Loads sum to less than the bounds, so some usable server is within.
        let bound = u128::from(self.factor) * u128::from(active + 1);
        let within = |server: &RealServer| {
            u128::from(server.state.active()) * 100 * u128::from(weight)
                < bound * u128::from(server.effective_weight().0)
        };
        let hash = key_hash(&self.key, request).unwrap_or_else(|| {
            let n = self.spread.fetch_add(1, Ordering::Relaxed);
            n.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        });
        let ring = self.ring(candidates);
        let mut walk = ring.walk(hash);
        let first = walk.next()?;
        let chosen = std::iter::once(first)
            .chain(walk)
            .find(|&i| usable(&candidates[i]) && within(&candidates[i]))?;
        // Down, full or over its bound: the key left its server's cache.
        if chosen != first {
            self.moves.add_one();
        }
        Some(chosen)
    }

    fn target_moves(&self) -> Option<u64> {
        Some(self.moves.get())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::{pick_server, HeaderLookup, Pick};
    use super::*;
    use crate::table::SchedOptions;
    use proptest::prelude::*;
    use std::net::IpAddr;

    struct Headers(&'static [(&'static str, &'static str)]);

    impl HeaderLookup for Headers {
        fn header(&self, name: &str) -> Option<&str> {
            let found = self.0.iter().find(|(n, _)| n.eq_ignore_ascii_case(name));
            found.map(|&(_, value)| value)
        }
    }

    fn build(pairs: &[(&str, &str)]) -> Result<Arc<dyn Scheduler>, String> {
        let given: SchedOptions = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        SchedulerKind::Chash.build(&given)
    }

    fn owner(chash: &ConsistentHash, servers: &[Arc<RealServer>], path: &str) -> ServerAddr {
        let request = RequestInfo::new(path, IpAddr::from([192, 0, 2, 1]));
        servers[chash.pick(&request, servers, &|_| true).unwrap()].addr
    }

    #[test]
    fn reads_its_options() {
        assert!(build(&[]).is_ok());
        assert!(build(&[("key", "cookie:sid"), ("factor", "200")]).is_ok());
        assert!(build(&[("key", "header:")]).unwrap_err().contains("name"));
        assert!(build(&[("key", "query")])
            .unwrap_err()
            .contains("header:NAME"));
        assert!(build(&[("factor", "99")])
            .unwrap_err()
            .contains("100 to 1000"));
    }

    #[test]
    fn keys_come_from_the_request() {
        let headers = Headers(&[("X-User", "ann"), ("Cookie", "a=1; sid=s42 ; b=2")]);
        let request = RequestInfo {
            path: "/a/b?x=1",
            host: Some("WWW.Example.com"),
            client: IpAddr::from([192, 0, 2, 1]),
            headers: &headers,
        };
        let text = |t: &str| StableHasher::new().write(t.as_bytes()).finish();
        let hash = |key: &str| key_hash(&key.parse().unwrap(), &request);
        assert_eq!(hash("path"), Some(text("/a/b")));
        assert_eq!(hash("url"), Some(text("/a/b?x=1")));
        assert_eq!(hash("host"), Some(text("www.example.com")));
        assert_eq!(hash("header:x-user"), Some(text("ann")));
        assert_eq!(hash("cookie:sid"), Some(text("s42")));
        assert_eq!(hash("cookie:none"), None);
        assert_eq!(hash("header:none"), None);
        assert_eq!(
            hash("source"),
            Some(StableHasher::new().write_ip(request.client).finish())
        );
    }

    #[test]
    fn same_key_same_server_when_light() {
        let servers = servers(&[1, 1, 1, 1]);
        let chash = ConsistentHash::new(HashKey::Path, 125);
        for i in 0..200 {
            let path = format!("/item/{i}?v={}", i % 3);
            let first = owner(&chash, &servers, &path);
            assert_eq!(owner(&chash, &servers, &path), first);
            assert_eq!(owner(&chash, &servers, &format!("/item/{i}")), first);
        }
    }

    #[test]
    fn a_fifth_server_takes_about_a_fifth_and_only_from_others() {
        let servers = servers(&[1; 5]);
        let chash = ConsistentHash::new(HashKey::Path, 125);
        let mut moved = 0;
        for i in 0..10_000 {
            let path = format!("/object/{i}");
            let before = owner(&chash, &servers[..4], &path);
            let after = owner(&chash, &servers, &path);
            if before != after {
                assert_eq!(after, servers[4].addr, "{path} moved between old servers");
                moved += 1;
            }
        }
        assert!((1_000..=3_000).contains(&moved), "{moved} of 10000 moved");
    }

    #[test]
    fn weights_set_the_shares() {
        let servers = servers(&[1, 3]);
        let chash = ConsistentHash::new(HashKey::Path, 125);
        let heavy = (0..8000)
            .filter(|i| owner(&chash, &servers, &format!("/{i}")) == servers[1].addr)
            .count();
        assert!(
            (5400..=6600).contains(&heavy),
            "weight 3 of 4 got {heavy} of 8000"
        );
    }

    #[test]
    fn an_unusable_server_passes_its_keys_on_and_no_others() {
        let servers = servers(&[1, 1, 1, 1]);
        let chash = ConsistentHash::new(HashKey::Path, 125);
        let gone = servers[2].addr;
        let mut passed_on = 0;
        for i in 0..2000 {
            let request = RequestInfo::new("/", IpAddr::from([10, 0, 0, 1]));
            let request = RequestInfo {
                path: &format!("/k{i}"),
                ..request
            };
            let before = chash.pick(&request, &servers, &|_| true).unwrap();
            let after = chash.pick(&request, &servers, &|s| s.addr != gone).unwrap();
            assert!(servers[before].addr == gone || before == after);
            assert_ne!(servers[after].addr, gone);
            passed_on += u64::from(before != after);
        }
        // Each key passed on is a request sent past its first choice.
        assert!(passed_on > 300, "{passed_on}");
        assert_eq!(chash.target_moves(), Some(passed_on));
    }

    #[test]
    fn keyless_requests_spread() {
        let servers = servers(&[1, 1, 1]);
        let chash = ConsistentHash::new(HashKey::Header("X-User".into()), 125);
        let mut picks = vec![0; servers.len()];
        for _ in 0..300 {
            let pick = pick_server(&chash, &request(), &servers, &[]).unwrap();
            picks[servers
                .iter()
                .position(|s| s.addr == pick.server.addr)
                .unwrap()] += 1;
        }
        for n in picks {
            assert!((50..=150).contains(&n), "{n} of 300");
        }
    }

    #[test]
    fn a_hot_key_spills_over() {
        let servers = servers(&[1, 1, 1, 1]);
        let chash = ConsistentHash::new(HashKey::Path, 125);
        let held: Vec<Pick> = (0..40)
            .map(|_| pick_server(&chash, &request(), &servers, &[]).unwrap())
            .collect();
        // ceil(1.25 * 40 / 4) = 13 at most on the key's own server.
        assert!(servers.iter().all(|s| s.state.active() <= 13));
        let spilled = held.len() - 13;
        assert_eq!(
            chash.target_moves(),
            Some(spilled as u64),
            "the rest spilled"
        );
        drop(held);
    }

    proptest! {
        /// With every pick held, no server's active count passes
        /// ceil(factor% * total * weight / total weight).
        #[test]
        fn loads_stay_bounded(
            weights in proptest::collection::vec(1u16..5, 1..7),
            factor in 100u32..300,
            keys in proptest::collection::vec(0u8..6, 1..120),
        ) {
            let servers = servers(&weights);
            let chash = ConsistentHash::new(HashKey::Path, factor);
            let weight: u64 = weights.iter().map(|&w| u64::from(w)).sum();
            let mut held = Vec::new();
            for key in keys {
                let path = format!("/{key}");
                let request = RequestInfo::new(&path, IpAddr::from([10, 0, 0, 1]));
                held.push(pick_server(&chash, &request, &servers, &[]).unwrap());
                let total = held.len() as u64;
                for server in &servers {
                    let active = u64::from(server.state.active());
                    // active <= ceil(x) <=> active - 1 < x
                    prop_assert!(
                        active == 0
                            || (active - 1) * 100 * weight
                                < u64::from(factor) * total * u64::from(server.weight.0),
                        "{} active of {} held", active, total
                    );
                }
            }
        }

        /// Differently sized candidate sets, interleaved, each get their own ring.
        #[test]
        fn interleaved_sets_pick_within_their_own(
            weights in proptest::collection::vec(0u16..4, 1..8),
            calls in proptest::collection::vec((0usize..8, 0usize..8, any::<u16>()), 1..60),
        ) {
            let servers = servers(&weights);
            let chash = ConsistentHash::new(HashKey::Path, 125);
            for (a, b, key) in calls {
                let (start, end) = (a.min(b) % weights.len(), a.max(b) % weights.len() + 1);
                let slice = &servers[start.min(end - 1)..end];
                let path = format!("/{key}");
                let request = RequestInfo::new(&path, IpAddr::from([10, 0, 0, 1]));
                match chash.pick(&request, slice, &|_| true) {
                    Some(i) => {
                        prop_assert!(slice[i].weight.0 > 0);
                        let alone = ConsistentHash::new(HashKey::Path, 125);
                        prop_assert_eq!(alone.pick(&request, slice, &|_| true), Some(i));
                    }
                    None => prop_assert!(slice.iter().all(|s| s.weight.0 == 0)),
                }
            }
        }
    }
}
