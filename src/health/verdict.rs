//! What the checker concludes from results, as plain functions with no
//! clock and no I/O: rise and fall over consecutive checks, the agent's
//! words merged over time, a server's status as the log and `tcpvsadm -L`
//! name it, and the weight scale of slow start and the agent.

use std::fmt;
use std::time::Duration;

use super::agent_line::{AgentReport, AgentWeight};
use crate::server::{AgentAsks, FULL_SCALE};
use crate::table::{AdminState, RealServer, Weight};

/// Consecutive results of one server's active check (HAProxy's `rise` and
/// `fall`): a server starts up and goes down after `fall` failures in a
/// row, and comes back after `rise` successes in a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracker {
    up: bool,
    /// Results in a row that disagree with `up`.
    against: u32,
}

impl Default for Tracker {
    fn default() -> Self {
        Self {
            up: true,
            against: 0,
        }
    }
}

impl Tracker {
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// Counts one result; `Some(up)` when the verdict changes.
    pub fn observe(&mut self, passed: bool, rise: u32, fall: u32) -> Option<bool> {
        if passed == self.up {
            self.against = 0;
            return None;
        }
        self.against += 1;
        let needed = if self.up { fall } else { rise };
        if self.against < needed.max(1) {
            return None;
        }
        self.up = passed;
        self.against = 0;
        Some(self.up)
    }
}

/// The agent's last words: HAProxy keeps the administrative state, the
/// operational state and the weight apart, and a line changes only what it
/// names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AgentWords {
    pub admin: Option<AdminState>,
    pub down: bool,
    /// `None`: as configured.
    pub weight: Option<AgentWeight>,
}

impl AgentWords {
    /// Takes in a new line: what it names replaces what was said before.
    pub fn merge(&mut self, report: &AgentReport) {
        if let Some(admin) = report.admin {
            self.admin = Some(admin);
        }
        if let Some(operational) = report.operational {
            self.down = !operational.is_up();
        }
        if let Some(weight) = report.weight {
            self.weight = Some(weight);
        }
    }

    /// What the server's state should say: maintenance wins over down,
    /// down over drain.
    pub fn asks(&self) -> AgentAsks {
        match (self.admin, self.down) {
            (Some(AdminState::Maint), _) => AgentAsks::Maint,
            (_, true) => AgentAsks::Down,
            (Some(AdminState::Drain), _) => AgentAsks::Drain,
            _ => AgentAsks::Nothing,
        }
    }

    /// The agent's factor on a `configured` weight, per [`FULL_SCALE`].
    pub fn scale(&self, configured: Weight) -> u32 {
        let full = u64::from(FULL_SCALE);
        let scale = match self.weight {
            None => full,
            Some(AgentWeight::Percent(percent)) => u64::from(percent) * full / 100,
            Some(AgentWeight::Absolute(_)) if configured.is_quiescent() => 0,
            Some(AgentWeight::Absolute(weight)) => {
                u64::from(weight.0) * full / u64::from(configured.0)
            }
        };
        u32::try_from(scale).unwrap_or(u32::MAX)
    }
}

/// A server's status, as the log and the listing name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Up,
    /// Down by its checks, its agent, or failures of real traffic.
    Down(DownBy),
    /// No new work, asked by the operator or the agent.
    Drain,
    /// Maintenance, by the operator or the agent.
    Maint,
}

/// Who took a server down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownBy {
    Check,
    Agent,
    /// Passive marks: `max_fails` failures of real traffic.
    Traffic,
}

impl Status {
    /// The status of `server` as its state says now.
    pub fn of(server: &RealServer) -> Self {
        let state = &server.state;
        let agent = state.agent_asks();
        if server.admin == AdminState::Maint || agent == AgentAsks::Maint {
            Status::Maint
        } else if state.is_checked_down() {
            Status::Down(DownBy::Check)
        } else if agent == AgentAsks::Down {
            Status::Down(DownBy::Agent)
        } else if state.is_marked_failed() {
            Status::Down(DownBy::Traffic)
        } else if server.admin == AdminState::Drain || agent == AgentAsks::Drain {
            Status::Drain
        } else {
            Status::Up
        }
    }

    pub fn is_down(&self) -> bool {
        matches!(self, Status::Down(_))
    }
}

/// A server's health as `tcpvsadm -L` shows it: its status, and how far
/// its slow start has come while it ramps up.
pub fn health_label(server: &RealServer) -> String {
    let status = Status::of(server);
    let ramp = server.state.ramp();
    if status == Status::Up && ramp < FULL_SCALE {
        format!("slowstart {}%", ramp * 100 / FULL_SCALE)
    } else {
        status.to_string()
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Up => "up",
            Status::Down(DownBy::Check) => "down",
            Status::Down(DownBy::Agent) => "down (agent)",
            Status::Down(DownBy::Traffic) => "down (failures)",
            Status::Drain => "drain",
            Status::Maint => "maint",
        })
    }
}

/// The slow-start factor, per [`FULL_SCALE`], `since` a server came back
/// (HAProxy's `slowstart`): from a small share up to all of its weight.
pub fn ramp(since: Duration, slowstart: Duration) -> u32 {
    if slowstart.is_zero() || since >= slowstart {
        return FULL_SCALE;
    }
    // Durations come in whole milliseconds; a shorter one must not divide by 0.
    let share = since.as_millis() * u128::from(FULL_SCALE) / slowstart.as_millis().max(1);
    // Never 0: a server that is back takes some work from the start.
    (share as u32).max(1)
}

/// The weight scale from the agent's factor and the slow-start ramp.
pub fn weight_scale(agent: u32, ramp: u32) -> u32 {
    (u64::from(agent) * u64::from(ramp) / u64::from(FULL_SCALE)) as u32
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::server::ServerState;
    use crate::table::ServerAddr;
    use tcpvs_command::PassiveSpec;

    #[test]
    fn fall_failures_in_a_row_take_a_server_down_and_rise_bring_it_back() {
        let mut tracker = Tracker::default();
        assert!(tracker.is_up());
        assert_eq!(tracker.observe(false, 2, 3), None);
        assert_eq!(tracker.observe(false, 2, 3), None);
        assert_eq!(tracker.observe(true, 2, 3), None, "a success resets");
        assert_eq!(tracker.observe(false, 2, 3), None);
        assert_eq!(tracker.observe(false, 2, 3), None);
        assert_eq!(tracker.observe(false, 2, 3), Some(false), "the third");
        assert_eq!(tracker.observe(false, 2, 3), None, "said once");
        assert_eq!(tracker.observe(true, 2, 3), None);
        assert_eq!(tracker.observe(false, 2, 3), None, "a failure resets");
        assert_eq!(tracker.observe(true, 2, 3), None);
        assert_eq!(tracker.observe(true, 2, 3), Some(true), "the second");
        assert!(tracker.is_up());
        let mut eager = Tracker::default();
        assert_eq!(eager.observe(false, 1, 1), Some(false));
        assert_eq!(eager.observe(true, 1, 1), Some(true));
    }

    #[test]
    fn agent_words_merge_as_haproxy_keeps_them() {
        let said = |line: &str, words: &mut AgentWords| {
            words.merge(&super::super::agent_line::parse(line).expect(line));
        };
        let four = Weight(4);
        let mut words = AgentWords::default();
        assert_eq!(
            (words.asks(), words.scale(four)),
            (AgentAsks::Nothing, FULL_SCALE)
        );
        said("50%", &mut words);
        assert_eq!(words.scale(four), FULL_SCALE / 2);
        said("drain", &mut words);
        assert_eq!(words.asks(), AgentAsks::Drain);
        assert_eq!(
            words.scale(four),
            FULL_SCALE / 2,
            "a drain keeps the weight"
        );
        said("down #disk full", &mut words);
        assert_eq!(words.asks(), AgentAsks::Down, "down wins over drain");
        said("maint", &mut words);
        assert_eq!(words.asks(), AgentAsks::Maint, "maint wins over down");
        said("ready,up", &mut words);
        assert_eq!(words.asks(), AgentAsks::Nothing);
        said("weight:2", &mut words);
        assert_eq!(words.scale(four), FULL_SCALE / 2, "2 of 4");
        assert_eq!(words.scale(Weight(0)), 0);
        said("0%", &mut words);
        assert_eq!(words.scale(four), 0);
        said("200%", &mut words);
        assert_eq!(words.scale(four), 2 * FULL_SCALE);
    }

    #[test]
    fn slow_start_ramps_from_a_little_to_all() {
        let slow = Duration::from_secs(10);
        assert_eq!(ramp(Duration::ZERO, slow), 1);
        assert_eq!(ramp(Duration::from_secs(5), slow), FULL_SCALE / 2);
        assert_eq!(ramp(Duration::from_secs(10), slow), FULL_SCALE);
        assert_eq!(ramp(Duration::from_secs(60), slow), FULL_SCALE);
        assert_eq!(ramp(Duration::ZERO, Duration::ZERO), FULL_SCALE);
        assert_eq!(ramp(Duration::ZERO, Duration::from_micros(500)), 1);
        assert_eq!(weight_scale(FULL_SCALE / 2, FULL_SCALE / 2), FULL_SCALE / 4);
        assert_eq!(weight_scale(FULL_SCALE, FULL_SCALE), FULL_SCALE);
    }

    fn server(admin: AdminState) -> RealServer {
        let addr = ServerAddr(([127, 0, 0, 1], 9000).into());
        RealServer::new(addr, Weight(4), Arc::new(ServerState::default())).with_admin(admin)
    }

    #[test]
    fn status_names_what_holds_a_server_out() {
        let ready = server(AdminState::Ready);
        assert_eq!(Status::of(&ready), Status::Up);
        ready.state.record_failure(&PassiveSpec::default());
        assert_eq!(Status::of(&ready), Status::Down(DownBy::Traffic));
        ready.state.set_agent_asks(AgentAsks::Down);
        assert_eq!(Status::of(&ready), Status::Down(DownBy::Agent));
        ready.state.set_checked_down(true);
        assert_eq!(Status::of(&ready), Status::Down(DownBy::Check));
        assert_eq!(Status::of(&ready).to_string(), "down");
        ready.state.set_agent_asks(AgentAsks::Maint);
        assert_eq!(Status::of(&ready), Status::Maint);
        assert_eq!(Status::of(&server(AdminState::Drain)), Status::Drain);
        let maint = server(AdminState::Maint);
        maint.state.set_checked_down(true);
        assert_eq!(Status::of(&maint), Status::Maint);
    }

    #[test]
    fn effective_weight_follows_the_scale() {
        let ready = server(AdminState::Ready);
        assert_eq!(ready.effective_weight(), Weight(4));
        ready.state.set_weight_scale(FULL_SCALE / 2, FULL_SCALE);
        assert_eq!(ready.effective_weight(), Weight(2));
        ready.state.set_weight_scale(1, FULL_SCALE);
        assert_eq!(ready.effective_weight(), Weight(1), "never 0 while above 0");
        ready.state.set_weight_scale(0, FULL_SCALE);
        assert_eq!(ready.effective_weight(), Weight(0));
        assert!(!ready.takes_new_work());
        ready.state.set_weight_scale(FULL_SCALE, FULL_SCALE);
        assert!(ready.takes_new_work());
        assert!(!server(AdminState::Drain).takes_new_work());
        ready.state.set_checked_down(true);
        assert!(!ready.takes_new_work());
    }
}
