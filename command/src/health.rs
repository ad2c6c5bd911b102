//! How a service watches its real servers, as described: active checks,
//! the dynamic-feedback agent, passive failure counting, retries and slow
//! start; and the state an operator puts a server in. Plain data: the daemon
//! runs the checks (src/health/), the front ends read and print these.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Everything a service says about its servers' health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthSpec {
    /// The active check (`None`: servers are not probed).
    pub check: Option<CheckSpec>,
    /// The dynamic-feedback agent (`None`: weights are as configured).
    pub agent: Option<AgentSpec>,
    pub passive: PassiveSpec,
    /// Tries of a request on other servers after the first failed
    /// (HAProxy's `retries` with `option redispatch`).
    pub retries: u32,
    /// A server that comes back ramps its weight up over this time
    /// (HAProxy's `slowstart`); zero: at once.
    pub slowstart: Duration,
}

impl HealthSpec {
    pub const DEFAULT_RETRIES: u32 = 2;
}

impl Default for HealthSpec {
    fn default() -> Self {
        Self {
            check: None,
            agent: None,
            passive: PassiveSpec::default(),
            retries: Self::DEFAULT_RETRIES,
            slowstart: Duration::ZERO,
        }
    }
}

/// An active check of every server of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckSpec {
    pub kind: CheckKind,
    /// Between two checks of one server.
    pub interval: Duration,
    /// For one check, connect to verdict.
    pub timeout: Duration,
    /// Consecutive successes that bring a down server up.
    pub rise: u32,
    /// Consecutive failures that take an up server down.
    pub fall: u32,
}

impl CheckSpec {
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(2);
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
    pub const DEFAULT_RISE: u32 = 2;
    pub const DEFAULT_FALL: u32 = 3;

    /// A check of `kind` with the default timing.
    pub fn new(kind: CheckKind) -> Self {
        Self {
            kind,
            interval: Self::DEFAULT_INTERVAL,
            timeout: Self::DEFAULT_TIMEOUT,
            rise: Self::DEFAULT_RISE,
            fall: Self::DEFAULT_FALL,
        }
    }
}

/// What one check does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckKind {
    /// The server accepts a TCP connection.
    Tcp,
    /// The server answers an HTTP request as expected.
    Http(HttpCheck),
    /// The server answers `OPTIONS * RTSP/1.0` with 2xx.
    Rtsp,
}

impl CheckKind {
    /// The name given in `type = ...` and `--check type=...`.
    pub fn name(&self) -> &'static str {
        match self {
            CheckKind::Tcp => "tcp",
            CheckKind::Http(_) => "http",
            CheckKind::Rtsp => "rtsp",
        }
    }
}

/// The request an HTTP check sends and the answer it expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCheck {
    pub method: String,
    /// The request target (origin form).
    pub path: String,
    /// The Host field; `None`: the server's address.
    pub host: Option<String>,
    /// The statuses that pass, inclusive.
    pub status: StatusRange,
    /// A text the response body must contain.
    pub body: Option<String>,
}

impl Default for HttpCheck {
    fn default() -> Self {
        Self {
            method: "GET".into(),
            path: "/".into(),
            host: None,
            status: StatusRange::default(),
            body: None,
        }
    }
}

/// Statuses from `low` to `high`, both included (`200-399`, or `204`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusRange {
    pub low: u16,
    pub high: u16,
}

impl StatusRange {
    pub fn contains(self, status: u16) -> bool {
        (self.low..=self.high).contains(&status)
    }
}

impl Default for StatusRange {
    fn default() -> Self {
        Self {
            low: 200,
            high: 399,
        }
    }
}

impl fmt::Display for StatusRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.low == self.high {
            write!(f, "{}", self.low)
        } else {
            write!(f, "{}-{}", self.low, self.high)
        }
    }
}

impl FromStr for StatusRange {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let status = |s: &str| match s.parse::<u16>() {
            Ok(code @ 100..=599) => Ok(code),
            _ => Err(format!(
                "`{text}` is not a status range: give a status (100 to 599) or LOW-HIGH"
            )),
        };
        let (low, high) = match text.split_once('-') {
            Some((low, high)) => (status(low)?, status(high)?),
            None => (status(text)?, status(text)?),
        };
        if low > high {
            return Err(format!("`{text}`: {low} is above {high}"));
        }
        Ok(Self { low, high })
    }
}

/// HAProxy's agent check: the director reads one line from `port` on each
/// real server (`75%`, `drain`, `up`, `maint`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSpec {
    pub port: u16,
    pub interval: Duration,
    pub timeout: Duration,
}

impl AgentSpec {
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(2);
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
}

/// Failures of real traffic counted against a server (nginx's `max_fails`
/// and `fail_timeout`): `max_fails` failures within `fail_timeout` take it
/// out for `fail_timeout`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassiveSpec {
    /// 0: real traffic never takes a server out.
    pub max_fails: u32,
    pub fail_timeout: Duration,
    /// Whether a 5xx response counts as a failure.
    pub on_5xx: bool,
}

impl PassiveSpec {
    pub const DEFAULT_MAX_FAILS: u32 = 1;
    pub const DEFAULT_FAIL_TIMEOUT: Duration = Duration::from_secs(10);
}

impl Default for PassiveSpec {
    fn default() -> Self {
        Self {
            max_fails: Self::DEFAULT_MAX_FAILS,
            fail_timeout: Self::DEFAULT_FAIL_TIMEOUT,
            on_5xx: false,
        }
    }
}

/// The state an operator puts a server in (`tcpvsadm -e ... --state`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdminState {
    /// Takes work as its health allows.
    #[default]
    Ready,
    /// Takes no new work; requests and sessions in flight finish.
    Drain,
    /// Maintenance: takes no new work and is not checked.
    Maint,
}

impl AdminState {
    pub const ALL: &[AdminState] = &[AdminState::Ready, AdminState::Drain, AdminState::Maint];

    pub fn name(self) -> &'static str {
        match self {
            AdminState::Ready => "ready",
            AdminState::Drain => "drain",
            AdminState::Maint => "maint",
        }
    }
}

impl fmt::Display for AdminState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for AdminState {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Self::ALL
            .iter()
            .copied()
            .find(|state| state.name() == text)
            .ok_or_else(|| format!("unknown state `{text}` (known: ready, drain, maint)"))
    }
}

/// A duration as the file and tcpvsadm write it: `90s`, `500ms`, `2m`, `1h`
/// (the largest unit that keeps it whole).
pub fn duration_text(duration: Duration) -> String {
    let ms = duration.as_millis();
    if ms == 0 {
        return "0s".to_string();
    }
    let units: [(u128, &str); 3] = [(3_600_000, "h"), (60_000, "m"), (1000, "s")];
    units
        .iter()
        .find(|(size, _)| ms.is_multiple_of(*size))
        .map_or_else(
            || format!("{ms}ms"),
            |(size, unit)| format!("{}{unit}", ms / size),
        )
}

/// Options as `name=value` pairs, in the order they are written.
pub type Pairs = Vec<(&'static str, String)>;

/// `pairs` as tcpvsadm takes them: `type=http,path=/health`.
fn write_pairs(f: &mut fmt::Formatter<'_>, pairs: &Pairs) -> fmt::Result {
    let items: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    f.write_str(&items.join(","))
}

/// `(name, value)` when `value` is not its default.
fn unless_default<T: PartialEq>(
    name: &'static str,
    value: T,
    default: T,
    text: impl FnOnce(T) -> String,
) -> Option<(&'static str, String)> {
    (value != default).then(|| (name, text(value)))
}

/// `interval` and `timeout`, each `(value, default)`, unless default.
fn timing_pairs(interval: (Duration, Duration), timeout: (Duration, Duration)) -> Pairs {
    let pair = |name, (value, default)| unless_default(name, value, default, duration_text);
    [pair("interval", interval), pair("timeout", timeout)]
        .into_iter()
        .flatten()
        .collect()
}

impl CheckSpec {
    /// Its options as `--check` and `[service.check]` give them: the type
    /// first, then what differs from the defaults.
    pub fn pairs(&self) -> Pairs {
        let mut pairs = vec![("type", self.kind.name().to_string())];
        pairs.extend(timing_pairs(
            (self.interval, Self::DEFAULT_INTERVAL),
            (self.timeout, Self::DEFAULT_TIMEOUT),
        ));
        let number = |n: u32| n.to_string();
        pairs.extend(unless_default(
            "rise",
            self.rise,
            Self::DEFAULT_RISE,
            number,
        ));
        pairs.extend(unless_default(
            "fall",
            self.fall,
            Self::DEFAULT_FALL,
            number,
        ));
        if let CheckKind::Http(http) = &self.kind {
            let default = HttpCheck::default();
            pairs.extend(unless_default(
                "method",
                &http.method,
                &default.method,
                Clone::clone,
            ));
            pairs.extend(unless_default(
                "path",
                &http.path,
                &default.path,
                Clone::clone,
            ));
            pairs.extend(http.host.clone().map(|host| ("host", host)));
            pairs.extend(unless_default("status", http.status, default.status, |s| {
                s.to_string()
            }));
            pairs.extend(http.body.clone().map(|body| ("body", body)));
        }
        pairs
    }
}

impl fmt::Display for CheckSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_pairs(f, &self.pairs())
    }
}

impl AgentSpec {
    /// An agent on `port`, default timing.
    pub fn new(port: u16) -> Self {
        Self {
            port,
            interval: Self::DEFAULT_INTERVAL,
            timeout: Self::DEFAULT_TIMEOUT,
        }
    }

    /// Its options as `--agent` and `[service.agent]` give them: the port,
    /// then what differs from the defaults.
    pub fn pairs(&self) -> Pairs {
        let mut pairs = vec![("port", self.port.to_string())];
        pairs.extend(timing_pairs(
            (self.interval, Self::DEFAULT_INTERVAL),
            (self.timeout, Self::DEFAULT_TIMEOUT),
        ));
        pairs
    }
}

impl fmt::Display for AgentSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_pairs(f, &self.pairs())
    }
}

impl PassiveSpec {
    /// What differs from the defaults, as `--passive` and
    /// `[service.passive]` give it (empty: all defaults).
    pub fn pairs(&self) -> Pairs {
        let mut pairs = Pairs::new();
        pairs.extend(unless_default(
            "max_fails",
            self.max_fails,
            Self::DEFAULT_MAX_FAILS,
            |n| n.to_string(),
        ));
        pairs.extend(unless_default(
            "fail_timeout",
            self.fail_timeout,
            Self::DEFAULT_FAIL_TIMEOUT,
            duration_text,
        ));
        pairs.extend(unless_default("on_5xx", self.on_5xx, false, |b| {
            b.to_string()
        }));
        pairs
    }
}

impl fmt::Display for PassiveSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_pairs(f, &self.pairs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_ranges() {
        assert_eq!(
            "204".parse(),
            Ok(StatusRange {
                low: 204,
                high: 204
            })
        );
        let range: StatusRange = "200-399".parse().unwrap();
        assert!(range.contains(200) && range.contains(399) && !range.contains(400));
        assert_eq!(range.to_string(), "200-399");
        for bad in ["", "99", "600", "300-200", "2xx", "200-", "-200"] {
            assert!(bad.parse::<StatusRange>().is_err(), "{bad}");
        }
    }

    #[test]
    fn admin_states_by_name() {
        for &state in AdminState::ALL {
            assert_eq!(state.name().parse(), Ok(state));
        }
        assert!("up".parse::<AdminState>().is_err());
    }
}
