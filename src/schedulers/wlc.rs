//! Weighted least-connection (LVS): the server with the least active requests
//! per unit of weight, compared as `C_j * W_i > C_i * W_j` so there is no
//! division. Active counts are the cross-core atomics of `ServerState`.
//!
//! LVS scans from the first server, so an idle cluster sends everything to it;
//! here the scan starts one further along on every call, so ties are broken
//! round robin and equal servers share a light load evenly.

use std::sync::Arc;

use super::{least_by, RequestInfo, Rotation, Scheduler, SchedulerKind};
use crate::table::RealServer;

#[derive(Debug, Default)]
pub struct WeightedLeastConnection {
    ties: Rotation,
}

impl Scheduler for WeightedLeastConnection {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Wlc
    }

    fn pick(
        &self,
        _request: &RequestInfo<'_>,
        candidates: &[Arc<RealServer>],
        usable: &dyn Fn(&RealServer) -> bool,
    ) -> Option<usize> {
        least_by(candidates, usable, &self.ties, |server| {
            (
                u64::from(server.state.active()),
                u64::from(server.effective_weight().0),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::{pick_server, Pick};
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn picks_least_loaded_per_weight() {
        let servers = servers(&[1, 3]);
        let wlc = WeightedLeastConnection::default();
        // Hold picks open: with weights 1 and 3, active counts settle at 1:3.
        let held: Vec<Pick> = (0..8)
            .map(|_| pick_server(&wlc, &request(), &servers, &[]).unwrap())
            .collect();
        assert_eq!(servers[0].state.active(), 2);
        assert_eq!(servers[1].state.active(), 6);
        drop(held);
    }

    #[test]
    fn idle_equal_servers_share_the_work() {
        assert_idle_picks_rotate(&WeightedLeastConnection::default(), &[1, 1, 1]);
    }

    proptest! {
        /// Over any sequence of held picks, no server is ever more than one
        /// request "heavier" per weight than the lightest usable one.
        #[test]
        fn load_stays_proportional_to_weight(weights in proptest::collection::vec(1u16..6, 1..6), picks in 1usize..80) {
            let servers = servers(&weights);
            let wlc = WeightedLeastConnection::default();
            let mut held = Vec::new();
            for _ in 0..picks {
                let chosen = pick_server(&wlc, &request(), &servers, &[]).unwrap();
                let c = u64::from(chosen.server.state.active() - 1);
                let w = u64::from(chosen.server.weight.0);
                for other in &servers {
                    // chosen's load before the pick was minimal: c/w <= o/wo
                    let o = u64::from(other.state.active()) - u64::from(other.addr == chosen.server.addr);
                    prop_assert!(c * u64::from(other.weight.0) <= o * w);
                }
                held.push(chosen);
            }
        }
    }
}
