//! A real server's live state: what every core must see the same way (active
//! requests for WLC/LARD, passive failure marks, counters). It is shared by
//! identity, so table edits (weight, rules) never reset it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Live, cross-core state of one real server.
#[derive(Debug, Default)]
pub struct ServerState {
    /// Active requests in the high 32 bits, the same weighted by their cost
    /// (LARD: dynamic ones count 2) in the low 32: one atomic operation per
    /// request start and end, on a cache line every core touches.
    in_flight: AtomicU64,
    requests: AtomicU64,
    failures: AtomicU64,
    /// Milliseconds since [`epoch`] until which the server is skipped after a
    /// failed connect (0: not marked).
    failed_until_ms: AtomicU64,
}

impl ServerState {
    /// Requests being served right now, by all cores.
    pub fn active(&self) -> u32 {
        (self.in_flight.load(Ordering::Relaxed) >> 32) as u32
    }

    /// Active requests weighted by cost, by all cores.
    pub fn load(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed) as u32
    }

    /// Requests sent to this server since start (a pick whose connect
    /// failed is not one).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Counts a request that reached the server's connection.
    pub fn count_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Failed connects and broken exchanges since start.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Marks the server as failed for `hold`: schedulers prefer other servers
    /// until then (nginx's max_fails=1 fail_timeout, passively).
    pub fn mark_failed(&self, hold: Duration) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        let until = now_ms().saturating_add(hold.as_millis() as u64);
        self.failed_until_ms.store(until, Ordering::Relaxed);
    }

    /// Whether a recent failure still holds the server out.
    pub fn is_marked_failed(&self) -> bool {
        let until = self.failed_until_ms.load(Ordering::Relaxed);
        until != 0 && now_ms() < until
    }

    /// Zeroes the request and failure counters (`tcpvsadm -Z`); the active
    /// count is live and stays.
    pub fn zero(&self) {
        self.requests.store(0, Ordering::Relaxed);
        self.failures.store(0, Ordering::Relaxed);
    }

    /// Clears a failure mark after a success.
    pub fn mark_ok(&self) {
        if self.failed_until_ms.load(Ordering::Relaxed) != 0 {
            self.failed_until_ms.store(0, Ordering::Relaxed);
        }
    }
}

/// Holds one active request on a server: counted from the pick until the
/// response ends (or the exchange fails), whichever core serves it.
#[derive(Debug)]
pub struct ActiveGuard {
    state: Arc<ServerState>,
    cost: u32,
}

impl ActiveGuard {
    /// Counts a new request of cost 1 on `state`.
    pub fn new(state: Arc<ServerState>) -> Self {
        Self::with_cost(state, 1)
    }

    /// Counts a new request that weighs `cost` in the server's load.
    pub fn with_cost(state: Arc<ServerState>, cost: u32) -> Self {
        state
            .in_flight
            .fetch_add(one_request(cost), Ordering::Relaxed);
        Self { state, cost }
    }
}

/// One request of `cost` in `ServerState::in_flight`'s packing.
fn one_request(cost: u32) -> u64 {
    (1 << 32) | u64::from(cost)
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.state
            .in_flight
            .fetch_sub(one_request(self.cost), Ordering::Relaxed);
    }
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    // +1 so that a mark made in the first millisecond is not read as "unmarked".
    epoch().elapsed().as_millis() as u64 + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_counts_active_for_its_lifetime() {
        let state = Arc::new(ServerState::default());
        let a = ActiveGuard::new(state.clone());
        let b = ActiveGuard::new(state.clone());
        assert_eq!(state.active(), 2);
        let heavy = ActiveGuard::with_cost(state.clone(), 2);
        assert_eq!((state.active(), state.load()), (3, 4));
        drop(heavy);
        drop(a);
        assert_eq!(state.active(), 1);
        drop(b);
        assert_eq!(state.active(), 0);
        assert_eq!((state.requests(), state.load()), (0, 0));
    }

    #[test]
    fn failure_mark_expires() {
        let state = ServerState::default();
        state.mark_failed(Duration::from_millis(30));
        assert!(state.is_marked_failed());
        std::thread::sleep(Duration::from_millis(40));
        assert!(!state.is_marked_failed());
        state.mark_failed(Duration::from_secs(10));
        state.mark_ok();
        assert!(!state.is_marked_failed());
        assert_eq!(state.failures(), 2);
    }
}
