//! Shortest expected delay (LVS sed): the server where a new request would
//! wait least, `(active + 1) / weight`, compared by cross-multiplication. Unlike
//! wlc, the `+ 1` lets a fast idle server win over a slow one with no work.

use std::sync::Arc;

use super::{least_by, RequestInfo, Rotation, Scheduler, SchedulerKind};
use crate::table::RealServer;

#[derive(Debug, Default)]
pub struct ShortestExpectedDelay {
    ties: Rotation,
}

/// A server's expected delay for one more request, as a ratio.
pub(super) fn expected_delay(server: &RealServer) -> (u64, u64) {
    (
        u64::from(server.state.active()) + 1,
        u64::from(server.effective_weight().0),
    )
}

impl Scheduler for ShortestExpectedDelay {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Sed
    }

    fn pick(
        &self,
        _request: &RequestInfo<'_>,
        candidates: &[Arc<RealServer>],
        usable: &dyn Fn(&RealServer) -> bool,
    ) -> Option<usize> {
        least_by(candidates, usable, &self.ties, expected_delay)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::{pick_server, WeightedLeastConnection};
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_busy_heavy_server_beats_an_idle_light_one() {
        let servers = servers(&[1, 3]);
        let _busy = pick_server(
            &WeightedLeastConnection::default(),
            &request(),
            &servers[1..],
            &[],
        );
        // wlc: 0/1 < 1/3 picks the idle one; sed: 2/3 < 1/1 picks the heavy one.
        let wlc = WeightedLeastConnection::default();
        assert_eq!(wlc.pick(&request(), &servers, &|_| true), Some(0));
        let sed = ShortestExpectedDelay::default();
        assert_eq!(sed.pick(&request(), &servers, &|_| true), Some(1));
    }

    proptest! {
        /// With held picks, the chosen server had the least (active + 1) / weight.
        #[test]
        fn picks_the_shortest_expected_delay(weights in proptest::collection::vec(1u16..6, 1..6), picks in 1usize..60) {
            let servers = servers(&weights);
            let sed = ShortestExpectedDelay::default();
            let mut held = Vec::new();
            for _ in 0..picks {
                let before: Vec<(u64, u64)> = servers.iter().map(|s| expected_delay(s)).collect();
                let chosen = pick_server(&sed, &request(), &servers, &[]).unwrap();
                let i = servers.iter().position(|s| s.addr == chosen.server.addr).unwrap();
                let (c, w) = before[i];
                for &(o, wo) in &before {
                    prop_assert!(c * wo <= o * w);
                }
                held.push(chosen);
            }
        }
    }
}
