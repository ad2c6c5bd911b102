//! Round robin: each usable candidate in turn, weights ignored (except 0).

use std::sync::Arc;

use super::{RequestInfo, Rotation, Scheduler, SchedulerKind};
use crate::table::RealServer;

#[derive(Debug, Default)]
pub struct RoundRobin {
    turn: Rotation,
}

impl Scheduler for RoundRobin {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Rr
    }

    fn pick(
        &self,
        _request: &RequestInfo<'_>,
        candidates: &[Arc<RealServer>],
        usable: &dyn Fn(&RealServer) -> bool,
    ) -> Option<usize> {
        let picked = self
            .turn
            .order(candidates.len())
            .find(|&i| usable(&candidates[i]))?;
        self.turn.resume_after(picked);
        Some(picked)
    }
}
#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn cycles_through_every_server() {
        let servers = servers(&[1, 5, 1]);
        let rr = RoundRobin::default();
        let picks: Vec<usize> = (0..6)
            .map(|_| rr.pick(&request(), &servers, &|_| true).unwrap())
            .collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn skips_unusable_without_doubling_the_next() {
        let servers = servers(&[1, 0, 1]);
        let rr = RoundRobin::default();
        let usable = |s: &RealServer| s.weight.0 > 0;
        let picks: Vec<usize> = (0..4)
            .map(|_| rr.pick(&request(), &servers, &usable).unwrap())
            .collect();
        assert_eq!(picks, [0, 2, 0, 2]);
    }
}
