//! What a listing shows (`tcpvsadm -L`, `-S`): the table as plain strings and
//! numbers, with the live counters the daemon adds. [`ServiceView::of`] is the
//! one place a spec becomes a view, for the daemon's listings and for the
//! files tcpvsadm loads alike.

use serde::{Deserialize, Serialize};

use crate::conn_limits::LimitOptions;
use crate::health::{duration_text, AdminState, HealthSpec};
use crate::spec::{SchedOptions, ServerAddr, ServerSpec, ServiceSpec};

/// The table as `-L` and `-S` show it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableView {
    pub generation: u64,
    pub services: Vec<ServiceView>,
    /// Log lines the daemon dropped since it started because the log's
    /// reader did not keep up.
    #[serde(default)]
    pub log_dropped: u64,
}

/// One service as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceView {
    pub ident: String,
    /// As configured (port 0 stays 0).
    pub listen: String,
    /// Where it actually listens, when started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bound: Option<String>,
    pub protocol: String,
    pub scheduler: String,
    #[serde(default)]
    pub sched_opts: SchedOptions,
    pub enabled: bool,
    /// Persistence timeout in seconds, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent: Option<u64>,
    /// The `X-Forwarded-Proto` added to requests, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarded_proto: Option<String>,
    /// The largest request body (`--max-body`), if limited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body: Option<String>,
    /// RTSP: live sessions in the service's session table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions: Option<u64>,
    pub servers: Vec<ServerView>,
    pub rules: Vec<RuleView>,
    /// `None`: every server takes unmatched requests.
    #[serde(default)]
    pub default: Option<Vec<String>>,
    /// How the servers are watched, as configured.
    #[serde(default)]
    pub health: HealthView,
    /// Requests retried on another server since start or `-Z` (live).
    #[serde(default)]
    pub retried: u64,
    /// Connection, queue and per-source limits away from their defaults,
    /// by name, as tcpvsadm's options take them.
    #[serde(default, skip_serializing_if = "LimitOptions::is_empty")]
    pub limits: LimitOptions,
    /// Client connections open (live).
    #[serde(default)]
    pub conns: u64,
    /// Requests waiting for a server under its `max_conns` (live).
    #[serde(default)]
    pub queued: u64,
    /// Its traffic since start or `-Z`, all servers together and the
    /// requests no server got (live).
    #[serde(default)]
    pub stats: TrafficView,
    /// Its traffic per second over the last interval (live).
    #[serde(default)]
    pub rate: RateView,
}

/// Traffic counted since start or the last `tcpvsadm -Z` (`-L --stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrafficView {
    /// Exchanges finished (each counted once, in `responses`).
    pub requests: u64,
    pub responses: Responses,
    /// Request bytes received from clients, heads and bodies.
    pub in_bytes: u64,
    /// Response body bytes sent to clients.
    pub out_bytes: u64,
    /// Failed connects and exchanges broken by the server.
    pub failures: u64,
}

/// Exchanges by the class of the status sent to the client.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Responses {
    #[serde(rename = "1xx")]
    pub informational: u64,
    #[serde(rename = "2xx")]
    pub success: u64,
    #[serde(rename = "3xx")]
    pub redirection: u64,
    #[serde(rename = "4xx")]
    pub client_error: u64,
    #[serde(rename = "5xx")]
    pub server_error: u64,
    /// Ended before any status was sent.
    pub none: u64,
}

impl Responses {
    /// The classes' names, in the order of [`Responses::by_class`].
    pub const CLASSES: [&'static str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "none"];

    /// The counts of 1xx to 5xx, then of none.
    pub fn from_classes(counts: [u64; 6]) -> Self {
        let [informational, success, redirection, client_error, server_error, none] = counts;
        Self {
            informational,
            success,
            redirection,
            client_error,
            server_error,
            none,
        }
    }

    /// The counts in the order of [`Responses::CLASSES`].
    pub fn by_class(&self) -> [u64; 6] {
        [
            self.informational,
            self.success,
            self.redirection,
            self.client_error,
            self.server_error,
            self.none,
        ]
    }
}

/// Traffic per second over the daemon's last sampling interval
/// (`-L --rate`, ipvsadm's estimator).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateView {
    /// Exchanges finished per second.
    pub requests: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
    /// Failures (as [`TrafficView::failures`]) per second.
    pub errors: u64,
}

impl std::ops::AddAssign for RateView {
    /// A service's rates are the sum of its servers' and its own.
    fn add_assign(&mut self, other: RateView) {
        self.requests += other.requests;
        self.in_bytes += other.in_bytes;
        self.out_bytes += other.out_bytes;
        self.errors += other.errors;
    }
}

/// A service's health configuration in the operator's words: each field
/// what tcpvsadm's option of the same name takes (what `-S` writes and `-L`
/// shows), defaults left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthView {
    /// `--check`'s value (`type=http,path=/health`); `None`: no check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
    /// `--agent`'s value (`port=9999`); `None`: no agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// `--passive`'s value for what differs from the defaults; `None`: all
    /// defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passive: Option<String>,
    pub retries: u32,
    /// `--slowstart`'s value; `None`: off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slowstart: Option<String>,
}

impl HealthView {
    pub fn of(spec: &HealthSpec) -> Self {
        let passive = spec.passive.to_string();
        Self {
            check: spec.check.as_ref().map(ToString::to_string),
            agent: spec.agent.as_ref().map(ToString::to_string),
            passive: (!passive.is_empty()).then_some(passive),
            retries: spec.retries,
            slowstart: (!spec.slowstart.is_zero()).then(|| duration_text(spec.slowstart)),
        }
    }
}

impl HealthView {
    /// The options set, as tcpvsadm names them (`check`, `agent`,
    /// `passive`, `slowstart`) with their values (retries aside: they
    /// always have one).
    pub fn options(&self) -> Vec<(&'static str, &str)> {
        [
            ("check", &self.check),
            ("agent", &self.agent),
            ("passive", &self.passive),
            ("slowstart", &self.slowstart),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some((name, value.as_deref()?)))
        .collect()
    }
}

impl Default for HealthView {
    fn default() -> Self {
        Self::of(&HealthSpec::default())
    }
}

/// One real server as listed, with its live counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerView {
    /// Where tcpvsd connects (the address its name resolved to, when it has one).
    pub address: String,
    /// The name as configured (`app1.example.com:80`), for a server given by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    pub weight: u16,
    pub active: u32,
    pub requests: u64,
    pub failures: u64,
    /// What the operator allows it: `ready`, `drain` or `maint`.
    #[serde(default = "ready")]
    pub state: String,
    /// Its health (live): `up`, `down`, `drain`, `maint`, `slowstart 40%`...
    #[serde(default)]
    pub health: String,
    /// The last check's result (live), e.g. `L7OK 200 in 3ms`, `L4TOUT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_check: Option<String>,
    /// The weight the scheduler uses now (live): the configured weight as the
    /// agent, slow start and the state leave it.
    #[serde(default)]
    pub effective_weight: u32,
    /// Requests it serves at once; 0: no limit.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_conns: u32,
    /// Its traffic since start or `-Z` (live).
    #[serde(default)]
    pub stats: TrafficView,
    /// Its traffic per second over the last interval (live).
    #[serde(default)]
    pub rate: RateView,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn ready() -> String {
    AdminState::Ready.to_string()
}

impl ServerView {
    /// The view of `spec`, counters at zero; not live, it is as healthy as
    /// its state lets it be (the daemon fills in what it knows).
    pub fn of(spec: &ServerSpec) -> Self {
        let (health, effective_weight) = match spec.state {
            AdminState::Ready => ("up".to_string(), u32::from(spec.weight.0)),
            other => (other.to_string(), 0),
        };
        Self {
            address: spec.addr.to_string(),
            host: spec.host.clone(),
            weight: spec.weight.0,
            active: 0,
            requests: 0,
            failures: 0,
            state: spec.state.to_string(),
            health,
            last_check: None,
            effective_weight,
            max_conns: spec.max_conns,
            stats: TrafficView::default(),
            rate: RateView::default(),
        }
    }
}

/// One content rule as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleView {
    /// On the target; empty: any target.
    pub pattern: String,
    pub servers: Vec<String>,
    #[serde(default)]
    pub match_group: Option<u32>,
    /// On the host the request names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// On header fields, as `name: pattern`; all must match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<String>,
}

impl TableView {
    /// The view of `services` at `generation`, counters at zero.
    pub fn of<'a>(generation: u64, services: impl IntoIterator<Item = &'a ServiceSpec>) -> Self {
        Self {
            generation,
            services: services.into_iter().map(ServiceView::of).collect(),
            log_dropped: 0,
        }
    }
}

impl ServiceView {
    /// The view of `spec`: not bound, counters at zero (the daemon fills in
    /// the live ones).
    pub fn of(spec: &ServiceSpec) -> Self {
        let addrs = |list: &[ServerAddr]| list.iter().map(ToString::to_string).collect();
        Self {
            ident: spec.ident.to_string(),
            listen: spec.listen.to_string(),
            bound: None,
            protocol: spec.protocol.to_string(),
            scheduler: spec.scheduler.to_string(),
            sched_opts: spec.sched_opts.clone(),
            enabled: spec.enabled,
            persistent: spec.persistent.map(|t| t.as_secs()),
            forwarded_proto: spec.forwarded_proto.clone(),
            max_body: spec.max_body.map(crate::validate::size_text),
            sessions: None,
            servers: spec.servers.iter().map(ServerView::of).collect(),
            rules: spec
                .rules
                .iter()
                .map(|r| RuleView {
                    pattern: r.when.pattern.clone().unwrap_or_default(),
                    servers: addrs(&r.servers),
                    match_group: r.match_group,
                    host: r.when.host.clone(),
                    headers: r.when.headers.iter().map(ToString::to_string).collect(),
                })
                .collect(),
            default: spec.default.as_deref().map(addrs),
            health: HealthView::of(&spec.health),
            retried: 0,
            limits: spec
                .conn_limits
                .pairs()
                .into_iter()
                .map(|(name, value)| (name.to_string(), value))
                .collect(),
            conns: 0,
            queued: 0,
            stats: TrafficView::default(),
            rate: RateView::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::health::{AgentSpec, CheckKind, CheckSpec, HttpCheck};
    use crate::spec::{RuleSpec, SchedulerKind, Weight};

    #[test]
    fn a_spec_viewed_says_what_it_holds() {
        let addr = |port| ServerAddr(([127, 0, 0, 1], port).into());
        let spec = ServiceSpec {
            scheduler: SchedulerKind::Lard,
            sched_opts: [("low".to_string(), "10".to_string())].into(),
            enabled: false,
            persistent: Some(Duration::from_secs(300)),
            forwarded_proto: Some("https".into()),
            servers: vec![ServerSpec {
                state: AdminState::Drain,
                ..ServerSpec::new(addr(9001), Weight(3))
            }],
            health: HealthSpec {
                check: Some(CheckSpec {
                    rise: 5,
                    ..CheckSpec::new(CheckKind::Http(HttpCheck {
                        path: "/health".into(),
                        ..HttpCheck::default()
                    }))
                }),
                agent: Some(AgentSpec::new(9999)),
                retries: 0,
                slowstart: Duration::from_secs(90),
                ..HealthSpec::default()
            },
            rules: vec![RuleSpec {
                match_group: Some(1),
                ..RuleSpec::on_target("^/home/([a-z]+)/", vec![addr(9001)])
            }],
            default: Some(vec![addr(9001)]),
            ..ServiceSpec::new("web".parse().unwrap(), "127.0.0.1:80".parse().unwrap())
        };
        let view = TableView::of(7, [&spec]);
        assert_eq!(view.generation, 7);
        let web = &view.services[0];
        assert_eq!(
            (
                web.ident.as_str(),
                web.listen.as_str(),
                web.bound.as_deref()
            ),
            ("web", "127.0.0.1:80", None)
        );
        assert_eq!(
            (web.protocol.as_str(), web.scheduler.as_str()),
            ("http", "lard")
        );
        assert_eq!(web.sched_opts["low"], "10");
        assert!(!web.enabled);
        assert_eq!(web.persistent, Some(300));
        assert_eq!(web.forwarded_proto.as_deref(), Some("https"));
        assert_eq!(
            web.servers,
            [ServerView {
                address: "127.0.0.1:9001".into(),
                host: None,
                weight: 3,
                active: 0,
                requests: 0,
                failures: 0,
                state: "drain".into(),
                health: "drain".into(),
                last_check: None,
                effective_weight: 0,
                max_conns: 0,
                stats: TrafficView::default(),
                rate: RateView::default(),
            }]
        );
        assert_eq!(
            web.rules,
            [RuleView {
                pattern: "^/home/([a-z]+)/".into(),
                servers: vec!["127.0.0.1:9001".into()],
                match_group: Some(1),
                host: None,
                headers: Vec::new(),
            }]
        );
        assert_eq!(web.default, Some(vec!["127.0.0.1:9001".to_string()]));
        assert_eq!(
            web.health,
            HealthView {
                check: Some("type=http,rise=5,path=/health".into()),
                agent: Some("port=9999".into()),
                passive: None,
                retries: 0,
                slowstart: Some("90s".into()),
            }
        );
        assert_eq!(web.retried, 0);
    }
}
