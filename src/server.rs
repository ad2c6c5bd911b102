//! A real server's live state: what every core must see the same way (active
//! requests for WLC/LARD, health verdicts, passive failure marks, counters).
//! It is shared by identity, so table edits (weight, rules) never reset it.
//! The relay and the schedulers read it with plain atomic loads; the health
//! checker (src/health/) is the only writer of verdicts, agent reports and
//! the weight scale.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Instant;

use tcpvs_command::PassiveSpec;

use crate::net::Notify;
use crate::slots::Slots;

/// Places freed on a service's servers, for the requests waiting in its
/// queue: shared by the service and each of its servers' states.
#[derive(Debug, Default)]
pub struct Freed {
    /// Requests waiting: a request that ends wakes them only if some do,
    /// so that no request pays for the queue when it is empty.
    waiting: AtomicU32,
    notify: Notify,
}

impl Freed {
    /// A place freed: the request waiting longest looks again (one place,
    /// one request: the others are not woken for nothing).
    fn place_freed(&self) {
        if self.waiting.load(Ordering::Acquire) > 0 {
            self.notify.notify_one();
        }
    }

    /// Waits until a place is freed, or `at_most` passes (a wake-up sent
    /// between the caller's look and this wait is caught by the next look).
    pub async fn wait(&self, at_most: std::time::Duration) {
        self.waiting.fetch_add(1, Ordering::AcqRel);
        let notified = self.notify.notified();
        crate::net::select! {
            _ = notified => {},
            _ = crate::net::sleep(at_most) => {},
        }
        self.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What the agent (dynamic feedback) asks of a server, beyond its weight.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(u8)]
pub enum AgentAsks {
    /// Nothing: the server works as its checks and operator say.
    #[default]
    Nothing = 0,
    /// No new work; what is in flight finishes.
    Drain = 1,
    /// Maintenance: no new work.
    Maint = 2,
    /// The server says it is down.
    Down = 3,
}

/// The weight scale that leaves a weight as configured.
pub const FULL_SCALE: u32 = 1000;

/// Live, cross-core state of one real server.
#[derive(Debug)]
pub struct ServerState {
    /// Active requests in the high 32 bits, the same weighted by their cost
    /// (LARD: dynamic ones count 2) in the low 32: one atomic operation per
    /// request start and end, on a cache line every core touches.
    in_flight: AtomicU64,
    requests: AtomicU64,
    failures: AtomicU64,
    /// The connects among `failures`.
    connect_failures: AtomicU64,
    /// Milliseconds since [`epoch`] until which the server is skipped after
    /// `max_fails` failures of real traffic (0: not marked).
    failed_until_ms: AtomicU64,
    /// The passive window: when it opened and the failures counted in it.
    window_start_ms: AtomicU64,
    window_fails: AtomicU32,
    /// The active check's verdict: down after `fall` failures, up again
    /// after `rise` successes.
    checked_down: AtomicBool,
    /// An [`AgentAsks`], as the last good agent line said.
    agent_asks: AtomicU8,
    /// The configured weight is multiplied by this, per [`FULL_SCALE`]: the
    /// agent's percentage times the slow-start ramp.
    weight_scale: AtomicU32,
    /// The slow-start share of that scale, per [`FULL_SCALE`] (for listings).
    ramp: AtomicU32,
    /// The last check's result as `tcpvsadm -L` shows it.
    last_check: Mutex<Option<String>>,
    /// Its service's queue, told when a request of this server ends.
    freed: Arc<Freed>,
}

impl Default for ServerState {
    fn default() -> Self {
        Self {
            in_flight: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            connect_failures: AtomicU64::new(0),
            failed_until_ms: AtomicU64::new(0),
            window_start_ms: AtomicU64::new(0),
            window_fails: AtomicU32::new(0),
            checked_down: AtomicBool::new(false),
            agent_asks: AtomicU8::new(AgentAsks::Nothing as u8),
            weight_scale: AtomicU32::new(FULL_SCALE),
            ramp: AtomicU32::new(FULL_SCALE),
            last_check: Mutex::new(None),
            freed: Arc::default(),
        }
    }
}

impl ServerState {
    /// The state of a new server of the service whose queue is `freed`.
    pub fn of_service(freed: Arc<Freed>) -> Self {
        Self {
            freed,
            ..Self::default()
        }
    }
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

    /// Failed connects since start (among [`ServerState::failures`]).
    pub fn connect_failures(&self) -> u64 {
        self.connect_failures.load(Ordering::Relaxed)
    }

    /// Counts a connect that failed: a failure of real traffic, told
    /// apart for /metrics from the exchanges that broke.
    pub fn record_connect_failure(&self, passive: &PassiveSpec) {
        self.connect_failures.fetch_add(1, Ordering::Relaxed);
        self.record_failure(passive);
    }

    /// Counts a failure of real traffic (a failed connect, a reset or
    /// timeout before the answer): the `max_fails`-th within `fail_timeout`
    /// holds the server out for `fail_timeout` (nginx's passive check).
    pub fn record_failure(&self, passive: &PassiveSpec) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        if passive.max_fails == 0 {
            return;
        }
        let now = now_ms();
        let window = passive.fail_timeout.as_millis() as u64;
        let start = self.window_start_ms.load(Ordering::Relaxed);
        // A race between cores may lose a count at a window's edge; a
        // failure more or less there changes nothing that matters.
        let fails = if now.saturating_sub(start) >= window {
            self.window_start_ms.store(now, Ordering::Relaxed);
            self.window_fails.store(1, Ordering::Relaxed);
            1
        } else {
            self.window_fails.fetch_add(1, Ordering::Relaxed) + 1
        };
        if fails >= passive.max_fails {
            let until = now.saturating_add(window);
            self.failed_until_ms.store(until, Ordering::Relaxed);
        }
    }

    /// Whether failures of real traffic still hold the server out.
    pub fn is_marked_failed(&self) -> bool {
        let until = self.failed_until_ms.load(Ordering::Relaxed);
        until != 0 && now_ms() < until
    }

    /// Whether the active check or the agent says the server is down.
    pub fn is_down(&self) -> bool {
        self.checked_down.load(Ordering::Relaxed) || self.agent_asks() == AgentAsks::Down
    }

    /// The active check's verdict (the checker's, after rise or fall).
    pub fn set_checked_down(&self, down: bool) {
        self.checked_down.store(down, Ordering::Relaxed);
    }

    pub fn is_checked_down(&self) -> bool {
        self.checked_down.load(Ordering::Relaxed)
    }

    /// What the agent last asked.
    pub fn agent_asks(&self) -> AgentAsks {
        match self.agent_asks.load(Ordering::Relaxed) {
            1 => AgentAsks::Drain,
            2 => AgentAsks::Maint,
            3 => AgentAsks::Down,
            _ => AgentAsks::Nothing,
        }
    }

    pub fn set_agent_asks(&self, asks: AgentAsks) {
        self.agent_asks.store(asks as u8, Ordering::Relaxed);
    }

    /// The factor on the configured weight, per [`FULL_SCALE`].
    pub fn weight_scale(&self) -> u32 {
        self.weight_scale.load(Ordering::Relaxed)
    }

    pub fn set_weight_scale(&self, scale: u32, ramp: u32) {
        self.weight_scale.store(scale, Ordering::Relaxed);
        self.ramp.store(ramp, Ordering::Relaxed);
    }

    /// Where slow start is, per [`FULL_SCALE`] ([`FULL_SCALE`]: over).
    pub fn ramp(&self) -> u32 {
        self.ramp.load(Ordering::Relaxed)
    }

    /// The last check's result, for listings.
    pub fn last_check(&self) -> Option<String> {
        self.last_check
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn set_last_check(&self, result: String) {
        *self
            .last_check
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(result);
    }

    /// Clears a failure mark and the passive window after a success: the
    /// server answered, so it is alive.
    pub fn mark_ok(&self) {
        if self.failed_until_ms.load(Ordering::Relaxed) != 0 {
            self.failed_until_ms.store(0, Ordering::Relaxed);
        }
        if self.window_fails.load(Ordering::Relaxed) != 0 {
            self.window_fails.store(0, Ordering::Relaxed);
        }
    }
}

/// Live, cross-core counters of one service.
#[derive(Debug, Default)]
pub struct ServiceState {
    retried: AtomicU64,
    /// Client connections open, against the service's `max_conns`.
    pub conns: Arc<Slots>,
    /// Requests waiting for a server under its `max_conns`, against the
    /// service's `max_queue`.
    pub queued: Arc<Slots>,
    /// Places freed on its servers, which wake the waiting requests.
    pub freed: Arc<Freed>,
}

impl ServiceState {
    /// Requests sent again to another server after a failed try.
    pub fn retried(&self) -> u64 {
        self.retried.load(Ordering::Relaxed)
    }

    pub fn count_retry(&self) {
        self.retried.fetch_add(1, Ordering::Relaxed);
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

    /// Counts a new request of `cost` unless `max` (0: no limit) are
    /// active already: the check and the count are one atomic step, so
    /// cores racing for a server's last place never pass its limit.
    pub fn within(state: Arc<ServerState>, cost: u32, max: u32) -> Option<Self> {
        if max == 0 {
            return Some(Self::with_cost(state, cost));
        }
        state
            .in_flight
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |packed| {
                let active = (packed >> 32) as u32;
                (active < max).then(|| packed + one_request(cost))
            })
            .ok()?;
        Some(Self { state, cost })
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
        self.state.freed.place_freed();
    }
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Milliseconds on the process's own clock, never 0 (0 means "never" in the
/// atomics that keep such times).
pub(crate) fn now_ms() -> u64 {
    // +1 so that a mark made in the first millisecond is not read as "unmarked".
    epoch().elapsed().as_millis() as u64 + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A request that ends on another thread wakes a request waiting in its
    /// service's queue at once, not at the end of its wait.
    #[test]
    fn a_place_freed_on_another_core_wakes_a_waiting_request() {
        let freed = Arc::new(Freed::default());
        let state = Arc::new(ServerState::of_service(freed.clone()));
        let held = ActiveGuard::within(state.clone(), 1, 1).unwrap();
        let waited = crate::net::start(async {
            let started = std::time::Instant::now();
            let ender = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                drop(held);
            });
            freed.wait(Duration::from_secs(5)).await;
            ender.join().unwrap();
            started.elapsed()
        });
        assert!(waited < Duration::from_secs(1), "woken after {waited:?}");
        assert!(ActiveGuard::within(state, 1, 1).is_some());
    }

    #[test]
    fn a_request_within_the_limit_is_counted_one_beyond_is_not() {
        let state = Arc::new(ServerState::default());
        let a = ActiveGuard::within(state.clone(), 1, 2).unwrap();
        let b = ActiveGuard::within(state.clone(), 2, 2).unwrap();
        assert!(ActiveGuard::within(state.clone(), 1, 2).is_none());
        assert_eq!((state.active(), state.load()), (2, 3));
        drop(a);
        let c = ActiveGuard::within(state.clone(), 1, 2).unwrap();
        assert!(
            ActiveGuard::within(state.clone(), 1, 0).is_some(),
            "0: no limit"
        );
        drop((b, c));
        assert_eq!((state.active(), state.load()), (0, 0));
    }

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

    fn passive(max_fails: u32, fail_timeout: Duration) -> PassiveSpec {
        PassiveSpec {
            max_fails,
            fail_timeout,
            on_5xx: false,
        }
    }

    #[test]
    fn failure_mark_expires() {
        let state = ServerState::default();
        state.record_failure(&passive(1, Duration::from_millis(30)));
        assert!(state.is_marked_failed());
        std::thread::sleep(Duration::from_millis(40));
        assert!(!state.is_marked_failed());
        state.record_failure(&passive(1, Duration::from_secs(10)));
        state.mark_ok();
        assert!(!state.is_marked_failed());
        assert_eq!(state.failures(), 2);
    }

    #[test]
    fn max_fails_within_the_window_mark_the_server() {
        let state = ServerState::default();
        let three = passive(3, Duration::from_secs(10));
        state.record_failure(&three);
        state.record_failure(&three);
        assert!(!state.is_marked_failed(), "two of three");
        state.record_failure(&three);
        assert!(state.is_marked_failed(), "the third");
        state.mark_ok();
        state.record_failure(&three);
        assert!(
            !state.is_marked_failed(),
            "a success starts the count again"
        );
        // Failures in windows of their own never add up.
        let short = passive(2, Duration::from_millis(20));
        let state = ServerState::default();
        state.record_failure(&short);
        std::thread::sleep(Duration::from_millis(30));
        state.record_failure(&short);
        assert!(!state.is_marked_failed());
        // max_fails 0: counted, never marked.
        let off = passive(0, Duration::from_secs(10));
        state.record_failure(&off);
        state.record_failure(&off);
        assert!(!state.is_marked_failed());
        assert_eq!(state.failures(), 4);
    }
}
