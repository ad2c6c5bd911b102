//! Source hashing (LVS sh): the client's IP picks the server, so a client
//! keeps its server while that server is usable.
//!
//! LVS deals servers into a 256-slot table, which reshuffles clients whenever
//! the server list changes. Here weighted rendezvous hashing (Schindelhauer and
//! Schomaker) does the job with a stronger promise: a server coming or going
//! moves only its own clients. Each server scores `ln(u) / weight`, `u` the
//! stable hash of (client, server) taken into (0, 1], and the highest score
//! wins, which gives each server a share of clients in proportion to its
//! weight.

use std::net::IpAddr;
use std::sync::Arc;

use super::hash::{weighted_rendezvous, StableHasher};
use super::{RequestInfo, Scheduler, SchedulerKind};
use crate::table::RealServer;

#[derive(Debug, Default)]
pub struct SourceHash;

/// The hasher state after the client's address, shared by every server's score.
fn client_hash(client: IpAddr) -> StableHasher {
    StableHasher::new().write_ip(client).separate()
}

impl Scheduler for SourceHash {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Sh
    }

    fn pick(
        &self,
        request: &RequestInfo<'_>,
        candidates: &[Arc<RealServer>],
        usable: &dyn Fn(&RealServer) -> bool,
    ) -> Option<usize> {
        weighted_rendezvous(client_hash(request.client), candidates, usable)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::table::ServerAddr;
    use proptest::prelude::*;

    fn client(n: u32) -> IpAddr {
        IpAddr::from(0x0a00_0000u32.wrapping_add(n).to_be_bytes())
    }

    fn owner(servers: &[Arc<RealServer>], ip: IpAddr) -> ServerAddr {
        let request = RequestInfo::new("/", ip);
        let i = SourceHash.pick(&request, servers, &|_| true).unwrap();
        servers[i].addr
    }

    #[test]
    fn a_client_keeps_its_server() {
        let servers = servers(&[1, 1, 1]);
        for n in 0..100 {
            assert_eq!(owner(&servers, client(n)), owner(&servers, client(n)));
        }
        let mapped: IpAddr = "::ffff:10.0.0.9".parse().unwrap();
        assert_eq!(owner(&servers, mapped), owner(&servers, client(9)));
    }

    #[test]
    fn clients_spread_by_weight() {
        let servers = servers(&[1, 3]);
        let heavy = (0..8000)
            .filter(|&n| owner(&servers, client(n)) == servers[1].addr)
            .count();
        assert!(
            (5600..=6400).contains(&heavy),
            "weight 3 of 4 got {heavy} of 8000"
        );
    }

    #[test]
    fn only_the_leaving_servers_clients_move() {
        let servers = servers(&[1, 2, 1, 3]);
        let fewer = [servers[0].clone(), servers[2].clone(), servers[3].clone()];
        let mut moved = 0;
        for n in 0..2000 {
            let (before, after) = (owner(&servers, client(n)), owner(&fewer, client(n)));
            if before != servers[1].addr {
                assert_eq!(before, after);
            } else {
                moved += 1;
            }
        }
        // Weight 2 of 7.
        assert!((450..=700).contains(&moved), "{moved} moved");
    }

    proptest! {
        /// Removing a server, or making it unusable, moves only its clients.
        #[test]
        fn unrelated_servers_do_not_move_a_client(
            weights in proptest::collection::vec(1u16..5, 2..8),
            gone in 0usize..8,
            n in any::<u32>(),
        ) {
            let servers = servers(&weights);
            let gone = servers[gone % servers.len()].addr;
            let request = RequestInfo::new("/", client(n));
            let before = SourceHash.pick(&request, &servers, &|_| true).unwrap();
            let after = SourceHash.pick(&request, &servers, &|s| s.addr != gone).unwrap();
            prop_assert!(servers[before].addr == gone || before == after);
            prop_assert!(servers[after].addr != gone);
        }
    }
}
