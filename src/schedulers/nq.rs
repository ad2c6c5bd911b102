//! Never queue (LVS nq): an idle server if there is one (ties rotate), else
//! the shortest expected delay. An idle server scores 0, below any busy
//! server's `(active + 1) / weight`, so one scan does both.

use std::sync::Arc;

use super::sed::expected_delay;
use super::{least_by, RequestInfo, Rotation, Scheduler, SchedulerKind};
use crate::table::RealServer;

#[derive(Debug, Default)]
pub struct NeverQueue {
    ties: Rotation,
}

impl Scheduler for NeverQueue {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Nq
    }

    fn pick(
        &self,
        _request: &RequestInfo<'_>,
        candidates: &[Arc<RealServer>],
        usable: &dyn Fn(&RealServer) -> bool,
    ) -> Option<usize> {
        least_by(candidates, usable, &self.ties, |server| {
            if server.state.active() == 0 {
                (0, u64::from(server.effective_weight().0))
            } else {
                expected_delay(server)
            }
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
    fn an_idle_light_server_beats_a_busy_heavy_one() {
        let servers = servers(&[1, 10]);
        let nq = NeverQueue::default();
        let _busy = pick_server(&nq, &request(), &servers[1..], &[]).unwrap();
        // sed would pick the heavy one (2/10 < 1/1); nq never queues.
        assert_eq!(nq.pick(&request(), &servers, &|_| true), Some(0));
    }

    #[test]
    fn idle_servers_take_turns() {
        assert_idle_picks_rotate(&NeverQueue::default(), &[1, 5, 1]);
    }

    proptest! {
        /// With held picks: an idle server while any is idle, else the least
        /// (active + 1) / weight.
        #[test]
        fn idle_first_then_shortest_delay(weights in proptest::collection::vec(1u16..6, 1..6), picks in 1usize..60) {
            let servers = servers(&weights);
            let nq = NeverQueue::default();
            let mut held = Vec::new();
            for _ in 0..picks {
                let idle = servers.iter().any(|s| s.state.active() == 0);
                let before: Vec<(u64, u64)> = servers.iter().map(|s| expected_delay(s)).collect();
                let chosen = pick_server(&nq, &request(), &servers, &[]).unwrap();
                let i = servers.iter().position(|s| s.addr == chosen.server.addr).unwrap();
                if idle {
                    prop_assert_eq!(before[i].0, 1);
                } else {
                    let (c, w) = before[i];
                    for &(o, wo) in &before {
                        prop_assert!(c * wo <= o * w);
                    }
                }
                held.push(chosen);
            }
        }
    }
}
