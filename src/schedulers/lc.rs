//! Least-connection (LVS lc): the server with the fewest active requests,
//! weights ignored (except 0); ties rotate, as in wlc.

use std::sync::Arc;

use super::{least_by, RequestInfo, Rotation, Scheduler, SchedulerKind};
use crate::table::RealServer;

#[derive(Debug, Default)]
pub struct LeastConnection {
    ties: Rotation,
}

impl Scheduler for LeastConnection {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Lc
    }

    fn pick(
        &self,
        _request: &RequestInfo<'_>,
        candidates: &[Arc<RealServer>],
        usable: &dyn Fn(&RealServer) -> bool,
    ) -> Option<usize> {
        // Capacity 1 for every server that takes work, 0 (never) for weight 0.
        least_by(candidates, usable, &self.ties, |server| {
            let capacity = u64::from(server.effective_weight().0.min(1));
            (u64::from(server.state.active()), capacity)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::pick_server;
    use super::super::testing::*;
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn weights_do_not_matter_only_counts() {
        let servers = servers(&[1, 10]);
        let lc = LeastConnection::default();
        let held: Vec<_> = (0..8)
            .map(|_| pick_server(&lc, &request(), &servers, &[]).unwrap())
            .collect();
        assert_eq!(servers[0].state.active(), 4);
        assert_eq!(servers[1].state.active(), 4);
        drop(held);
    }

    #[test]
    fn idle_servers_share_the_work() {
        assert_idle_picks_rotate(&LeastConnection::default(), &[1, 2, 3]);
    }

    proptest! {
        /// With held picks, the chosen server had the fewest active requests.
        #[test]
        fn picks_a_least_busy_server(weights in proptest::collection::vec(1u16..6, 1..6), picks in 1usize..60) {
            let servers = servers(&weights);
            let lc = LeastConnection::default();
            let mut held = Vec::new();
            for _ in 0..picks {
                let least = servers.iter().map(|s| s.state.active()).min().unwrap();
                let chosen = pick_server(&lc, &request(), &servers, &[]).unwrap();
                prop_assert_eq!(chosen.server.state.active() - 1, least);
                held.push(chosen);
            }
        }
    }
}
