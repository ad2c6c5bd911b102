//! The rule table: virtual services, their real servers and content rules.
//!
//! The table is immutable. It is built from a [`TableSpec`] (the plain,
//! serializable description that config files and control verbs edit) and
//! swapped in whole; a request in flight keeps the snapshot it started with.
//! Live state (active counts, failure marks, scheduler memory) is carried over
//! from the previous table by identity, so an edit never resets it.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use regex::{Regex, RegexSet};

use crate::protocols::rtsp::SessionTable;
use crate::schedulers::{Persistence, Scheduler, SchedulerKind};
use crate::server::ServerState;

/// A virtual service's name (KTCPVS: up to 16 characters).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceId(String);

impl ServiceId {
    pub const MAX_LEN: usize = 16;

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ServiceId {
    type Err = TableError;

    fn from_str(ident: &str) -> Result<Self, TableError> {
        let valid = !ident.is_empty()
            && ident.len() <= Self::MAX_LEN
            && ident
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if valid {
            Ok(Self(ident.to_string()))
        } else {
            Err(TableError::BadIdent(ident.to_string()))
        }
    }
}

impl fmt::Display for ServiceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A real server's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerAddr(pub SocketAddr);

impl fmt::Display for ServerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A server's share of the work, 0..=65535; 0 is quiescent: no new requests,
/// those in flight finish (how an operator drains a server).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Weight(pub u16);

impl Weight {
    pub const DEFAULT: Weight = Weight(1);

    pub fn is_quiescent(self) -> bool {
        self.0 == 0
    }
}

/// The protocol a virtual service speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http,
    /// RTSP/1.0 (RFC 2326) with interleaved RTP over the same connection.
    Rtsp,
}

impl FromStr for Protocol {
    type Err = TableError;

    fn from_str(name: &str) -> Result<Self, TableError> {
        match name {
            "http" => Ok(Protocol::Http),
            "rtsp" => Ok(Protocol::Rtsp),
            other => Err(TableError::UnknownProtocol(other.to_string())),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Http => "http",
            Protocol::Rtsp => "rtsp",
        })
    }
}

/// Limits on what a client may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest request or response head, in bytes (431 beyond).
    pub max_head_bytes: usize,
    /// Most header fields in a head (431 beyond).
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_head_bytes: 16 * 1024,
            max_headers: 100,
        }
    }
}

/// How long each wait may last. A timeout is terminal for its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// The whole request head must arrive within this (absolute, from its first byte).
    pub head: Duration,
    /// Idle time allowed between two requests of a keep-alive client.
    pub keepalive: Duration,
    /// Connecting to a real server.
    pub connect: Duration,
    /// Waiting for a real server's response, and between bytes of its body.
    pub server: Duration,
    /// Waiting on a client while relaying a body to or from it.
    pub client: Duration,
    /// How long an idle connection to a real server is kept for reuse.
    pub pool_idle: Duration,
    /// How long a server that refused a connect is avoided.
    pub fail_hold: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            head: Duration::from_secs(10),
            keepalive: Duration::from_secs(30),
            connect: Duration::from_secs(3),
            server: Duration::from_secs(60),
            client: Duration::from_secs(60),
            pool_idle: Duration::from_secs(10),
            fail_hold: Duration::from_secs(2),
        }
    }
}

/// Daemon-wide settings that travel with the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub limits: Limits,
    pub timeouts: Timeouts,
    /// Idle connections kept per real server and worker.
    pub pool_per_server: usize,
    /// Write an access line per request (at info level).
    pub access_log: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            timeouts: Timeouts::default(),
            pool_per_server: 64,
            access_log: true,
        }
    }
}

/// A real server as described by configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSpec {
    pub addr: ServerAddr,
    pub weight: Weight,
}

/// A content rule as described: requests whose target matches `pattern` go to
/// one of `servers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSpec {
    pub pattern: String,
    pub servers: Vec<ServerAddr>,
    /// KTCPVS `-m N`: the regex capture group whose hash picks the server
    /// (stickiness by user, as `hhttp`); `None`: the scheduler picks.
    pub match_group: Option<u32>,
}

/// A virtual service as described.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    pub ident: ServiceId,
    pub listen: SocketAddr,
    pub protocol: Protocol,
    pub scheduler: SchedulerKind,
    /// Scheduler parameters (`--sched-opt low=25,high=65`), checked by the scheduler.
    pub sched_opts: SchedOptions,
    /// Whether the service accepts connections (`tcpvsadm --start/--stop`).
    pub enabled: bool,
    /// LVS persistence: a client keeps its server this long after its last
    /// request (`None`: every request is scheduled on its own).
    pub persistent: Option<Duration>,
    /// Add `X-Forwarded-Proto` with this value to requests.
    pub forwarded_proto: Option<String>,
    pub servers: Vec<ServerSpec>,
    /// Tried in order; the first match wins.
    pub rules: Vec<RuleSpec>,
    /// Servers for requests no rule matches; `None` means all servers.
    pub default: Option<Vec<ServerAddr>>,
}

/// Named scheduler parameters, in name order.
pub type SchedOptions = std::collections::BTreeMap<String, String>;

impl ServiceSpec {
    /// A started `http` service scheduled by `wlc`, with no servers or rules.
    pub fn new(ident: ServiceId, listen: SocketAddr) -> Self {
        Self {
            ident,
            listen,
            protocol: Protocol::Http,
            scheduler: SchedulerKind::Wlc,
            sched_opts: SchedOptions::new(),
            enabled: true,
            persistent: None,
            forwarded_proto: None,
            servers: Vec::new(),
            rules: Vec::new(),
            default: None,
        }
    }
}

/// The whole table as described.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableSpec {
    pub settings: Settings,
    pub services: Vec<ServiceSpec>,
}

/// Where in a [`TableSpec`] an error was found, so a config loader can point
/// at the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Site {
    Service(usize),
    Server(usize, usize),
    Rule(usize, usize),
    Default(usize),
}

/// Why a table could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    #[error("invalid service ident `{0}` (1 to 16 characters: letters, digits, `-_.`)")]
    BadIdent(String),
    #[error("unknown protocol `{0}` (known: http, rtsp)")]
    UnknownProtocol(String),
    #[error("duplicate service `{0}`")]
    DuplicateService(ServiceId),
    #[error("services `{0}` and `{1}` both listen on {2}")]
    DuplicateListen(ServiceId, ServiceId, SocketAddr),
    #[error("duplicate real server {1} in service `{0}`")]
    DuplicateServer(ServiceId, ServerAddr),
    #[error("invalid pattern `{pattern}`: {reason}")]
    BadPattern { pattern: String, reason: String },
    #[error("rule `{pattern}` names {server}, which is not a real server of service `{service}`")]
    UnknownRuleServer {
        service: ServiceId,
        pattern: String,
        server: ServerAddr,
    },
    #[error("the default set of service `{0}` names {1}, which is not one of its real servers")]
    UnknownDefaultServer(ServiceId, ServerAddr),
    #[error("scheduler {scheduler} of service `{service}`: {reason}")]
    BadSchedOption {
        service: ServiceId,
        scheduler: SchedulerKind,
        reason: String,
    },
    #[error("rule `{pattern}` uses capture group {group}, but the pattern has only {groups}")]
    BadMatchGroup {
        pattern: String,
        group: u32,
        groups: usize,
    },
}

/// A real server in a built table.
#[derive(Debug)]
pub struct RealServer {
    pub addr: ServerAddr,
    pub weight: Weight,
    pub state: Arc<ServerState>,
    /// A stable hash of the address, computed once for the hashing
    /// schedulers (the same on every director).
    pub seed: u64,
}

impl RealServer {
    pub fn new(addr: ServerAddr, weight: Weight, state: Arc<ServerState>) -> Self {
        Self {
            addr,
            weight,
            state,
            seed: crate::schedulers::server_seed(addr.0),
        }
    }
}

/// A compiled content rule.
#[derive(Debug)]
pub struct ContentRule {
    pub pattern: Regex,
    pub servers: Vec<Arc<RealServer>>,
    pub match_group: Option<u32>,
}

/// A virtual service in a built table.
#[derive(Debug)]
pub struct Service {
    pub ident: ServiceId,
    pub listen: SocketAddr,
    pub protocol: Protocol,
    pub scheduler: Arc<dyn Scheduler>,
    pub sched_opts: SchedOptions,
    pub enabled: bool,
    pub persistence: Option<Arc<Persistence>>,
    pub forwarded_proto: Option<String>,
    /// RTSP: which server owns each session (`None` for other protocols).
    pub sessions: Option<Arc<SessionTable>>,
    pub servers: Vec<Arc<RealServer>>,
    pub rules: Vec<ContentRule>,
    /// All rule patterns at once: one pass over the target finds the first
    /// matching rule, however many rules there are.
    rule_set: RegexSet,
    pub default_set: Vec<Arc<RealServer>>,
}

/// Where the content rules send a request.
#[derive(Debug)]
pub struct Route<'s, 't> {
    /// The servers allowed to serve it.
    pub candidates: &'s [Arc<RealServer>],
    /// The text of the matching rule's capture group (`-m N`), whose hash
    /// picks the server instead of the scheduler; `None` for the scheduler.
    pub sticky_key: Option<&'t str>,
}

impl Service {
    /// The servers allowed to serve `target`: those of the first matching
    /// rule, else the default set.
    pub fn candidates(&self, target: &str) -> &[Arc<RealServer>] {
        self.route(target).candidates
    }

    /// The route of `target`: the first matching rule's servers (and capture
    /// group, when it has one), else the default set.
    pub fn route<'s, 't>(&'s self, target: &'t str) -> Route<'s, 't> {
        let first = match self.rules.len() {
            0 => None,
            // One pattern: the set would only add its own overhead.
            1 => self.rules[0].pattern.is_match(target).then_some(0),
            _ => self.rule_set.matches(target).iter().next(),
        };
        let Some(rule) = first.map(|i| &self.rules[i]) else {
            return Route {
                candidates: &self.default_set,
                sticky_key: None,
            };
        };
        // A group that took no part in the match hashes as empty.
        let sticky_key = rule.match_group.map(|group| {
            rule.pattern
                .captures(target)
                .and_then(|c| c.get(group as usize))
                .map_or("", |m| m.as_str())
        });
        Route {
            candidates: &rule.servers,
            sticky_key,
        }
    }
}

/// An immutable snapshot of the whole rule table.
#[derive(Debug, Default)]
pub struct Table {
    /// Increases with every swap; workers follow it.
    pub generation: u64,
    pub spec: TableSpec,
    pub services: Vec<Arc<Service>>,
}

impl Table {
    /// Builds a table from `spec`, carrying live state over from `previous`.
    pub fn build(spec: TableSpec, previous: Option<&Table>) -> Result<Table, (Site, TableError)> {
        let mut services: Vec<Arc<Service>> = Vec::with_capacity(spec.services.len());
        for (index, service) in spec.services.iter().enumerate() {
            if let Some(other) = services.iter().find(|s| s.ident == service.ident) {
                return Err((
                    Site::Service(index),
                    TableError::DuplicateService(other.ident.clone()),
                ));
            }
            // Port 0 asks for an ephemeral port: each such service gets its own.
            let same_listen =
                |s: &&Arc<Service>| s.listen == service.listen && service.listen.port() != 0;
            if let Some(other) = services.iter().find(same_listen) {
                let error = TableError::DuplicateListen(
                    other.ident.clone(),
                    service.ident.clone(),
                    service.listen,
                );
                return Err((Site::Service(index), error));
            }
            let old = previous.and_then(|table| table.service(&service.ident));
            services.push(Arc::new(build_service(index, service, old.map(|s| &**s))?));
        }
        Ok(Table {
            generation: previous.map_or(1, |table| table.generation + 1),
            spec,
            services,
        })
    }

    /// The service named `ident`.
    pub fn service(&self, ident: &ServiceId) -> Option<&Arc<Service>> {
        self.services.iter().find(|s| &s.ident == ident)
    }

    pub fn settings(&self) -> &Settings {
        &self.spec.settings
    }
}

fn build_service(
    index: usize,
    spec: &ServiceSpec,
    old: Option<&Service>,
) -> Result<Service, (Site, TableError)> {
    let mut servers: Vec<Arc<RealServer>> = Vec::with_capacity(spec.servers.len());
    for (i, server) in spec.servers.iter().enumerate() {
        if servers.iter().any(|s| s.addr == server.addr) {
            let error = TableError::DuplicateServer(spec.ident.clone(), server.addr);
            return Err((Site::Server(index, i), error));
        }
        let state = old
            .and_then(|old| old.servers.iter().find(|s| s.addr == server.addr))
            .map_or_else(Default::default, |s| s.state.clone());
        servers.push(Arc::new(RealServer::new(server.addr, server.weight, state)));
    }
    let by_addr: HashMap<ServerAddr, &Arc<RealServer>> =
        servers.iter().map(|s| (s.addr, s)).collect();

    let mut rules = Vec::with_capacity(spec.rules.len());
    for (i, rule) in spec.rules.iter().enumerate() {
        let pattern = Regex::new(&rule.pattern).map_err(|e| {
            let error = TableError::BadPattern {
                pattern: rule.pattern.clone(),
                // The regex crate's message spans lines; its last line says what is wrong.
                reason: e
                    .to_string()
                    .lines()
                    .rev()
                    .find(|line| !line.trim().is_empty())
                    .unwrap_or("invalid regex")
                    .trim_start_matches("error: ")
                    .to_string(),
            };
            (Site::Rule(index, i), error)
        })?;
        let mut members = Vec::with_capacity(rule.servers.len());
        for addr in &rule.servers {
            let server = by_addr.get(addr).ok_or_else(|| {
                let error = TableError::UnknownRuleServer {
                    service: spec.ident.clone(),
                    pattern: rule.pattern.clone(),
                    server: *addr,
                };
                (Site::Rule(index, i), error)
            })?;
            members.push(Arc::clone(server));
        }
        if let Some(group) = rule.match_group {
            // Group 0 is the whole match; captures_len counts it.
            let groups = pattern.captures_len() - 1;
            if group as usize > groups {
                let error = TableError::BadMatchGroup {
                    pattern: rule.pattern.clone(),
                    group,
                    groups,
                };
                return Err((Site::Rule(index, i), error));
            }
        }
        rules.push(ContentRule {
            pattern,
            servers: members,
            match_group: rule.match_group,
        });
    }

    let default_set = match &spec.default {
        None => servers.clone(),
        Some(addrs) => addrs
            .iter()
            .map(|addr| {
                by_addr.get(addr).map(|s| Arc::clone(s)).ok_or_else(|| {
                    let error = TableError::UnknownDefaultServer(spec.ident.clone(), *addr);
                    (Site::Default(index), error)
                })
            })
            .collect::<Result<_, _>>()?,
    };

    // Scheduler memory survives an edit unless the algorithm or its
    // parameters changed.
    let scheduler = match old {
        Some(old)
            if old.scheduler.kind() == spec.scheduler && old.sched_opts == spec.sched_opts =>
        {
            old.scheduler.clone()
        }
        _ => spec.scheduler.build(&spec.sched_opts).map_err(|reason| {
            let error = TableError::BadSchedOption {
                service: spec.ident.clone(),
                scheduler: spec.scheduler,
                reason,
            };
            (Site::Service(index), error)
        })?,
    };

    // Templates survive an edit unless the timeout changed.
    let persistence =
        spec.persistent
            .map(|timeout| match old.and_then(|o| o.persistence.as_ref()) {
                Some(kept) if kept.timeout() == timeout => kept.clone(),
                _ => Arc::new(Persistence::new(timeout)),
            });

    // Sessions survive an edit as long as the service speaks RTSP.
    let sessions = (spec.protocol == Protocol::Rtsp).then(|| {
        old.and_then(|o| o.sessions.clone())
            .unwrap_or_else(|| Arc::new(SessionTable::default()))
    });

    // Each pattern compiled alone above, so the set cannot fail but on size.
    let rule_set = RegexSet::new(spec.rules.iter().map(|r| &r.pattern)).map_err(|e| {
        let error = TableError::BadPattern {
            pattern: "(all rules together)".into(),
            reason: e
                .to_string()
                .lines()
                .last()
                .unwrap_or("too large")
                .to_string(),
        };
        (Site::Service(index), error)
    })?;

    Ok(Service {
        ident: spec.ident.clone(),
        listen: spec.listen,
        protocol: spec.protocol,
        scheduler,
        sched_opts: spec.sched_opts.clone(),
        enabled: spec.enabled,
        persistence,
        forwarded_proto: spec.forwarded_proto.clone(),
        sessions,
        servers,
        rules,
        rule_set,
        default_set,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::ActiveGuard;

    fn addr(port: u16) -> ServerAddr {
        ServerAddr(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    fn spec() -> TableSpec {
        TableSpec {
            settings: Settings::default(),
            services: vec![ServiceSpec {
                servers: [1, 2, 3]
                    .map(|p| ServerSpec {
                        addr: addr(p),
                        weight: Weight::DEFAULT,
                    })
                    .to_vec(),
                rules: vec![
                    RuleSpec {
                        pattern: "^/images/".into(),
                        servers: vec![addr(2)],
                        match_group: None,
                    },
                    RuleSpec {
                        pattern: "^/cgi-bin/".into(),
                        servers: vec![addr(3)],
                        match_group: None,
                    },
                ],
                default: Some(vec![addr(1)]),
                ..ServiceSpec::new("web".parse().unwrap(), "127.0.0.1:8080".parse().unwrap())
            }],
        }
    }

    fn addrs(servers: &[Arc<RealServer>]) -> Vec<ServerAddr> {
        servers.iter().map(|s| s.addr).collect()
    }

    #[test]
    fn first_matching_rule_wins_else_default() {
        let table = Table::build(spec(), None).unwrap();
        let web = &table.services[0];
        assert_eq!(addrs(web.candidates("/images/a.jpg")), [addr(2)]);
        assert_eq!(addrs(web.candidates("/cgi-bin/x")), [addr(3)]);
        assert_eq!(addrs(web.candidates("/index.html")), [addr(1)]);
        // Unanchored patterns match anywhere, as POSIX regexes in KTCPVS.
        assert_eq!(addrs(web.candidates("/a/images/b")), [addr(1)]);
    }

    #[test]
    fn match_group_gives_a_sticky_key() {
        let mut spec = spec();
        spec.services[0].rules[1] = RuleSpec {
            pattern: "^/home/([a-z]+)/".into(),
            servers: vec![addr(2), addr(3)],
            match_group: Some(1),
        };
        let table = Table::build(spec.clone(), None).unwrap();
        let route = table.services[0].route("/home/alice/mail");
        assert_eq!(route.sticky_key, Some("alice"));
        assert_eq!(route.candidates.len(), 2);
        assert_eq!(table.services[0].route("/images/x").sticky_key, None);
        spec.services[0].rules[1].match_group = Some(2);
        assert!(matches!(
            Table::build(spec, None),
            Err((Site::Rule(0, 1), TableError::BadMatchGroup { .. }))
        ));
    }

    #[test]
    fn no_default_means_every_server() {
        let mut spec = spec();
        spec.services[0].default = None;
        spec.services[0].rules.clear();
        let table = Table::build(spec, None).unwrap();
        assert_eq!(addrs(table.services[0].candidates("/x")).len(), 3);
    }

    #[test]
    fn live_state_survives_a_rebuild() {
        let first = Table::build(spec(), None).unwrap();
        let _held = ActiveGuard::new(first.services[0].servers[1].state.clone());
        let mut edited = spec();
        edited.services[0].servers[1].weight = Weight(0);
        let second = Table::build(edited, Some(&first)).unwrap();
        assert_eq!(second.generation, first.generation + 1);
        assert_eq!(second.services[0].servers[1].state.active(), 1);
        assert!(Arc::ptr_eq(
            &first.services[0].scheduler,
            &second.services[0].scheduler
        ));
    }

    #[test]
    fn errors_name_their_site() {
        let mut bad = spec();
        bad.services[0].rules[1].pattern = "(".into();
        assert!(matches!(
            Table::build(bad, None),
            Err((Site::Rule(0, 1), TableError::BadPattern { .. }))
        ));
        let mut bad = spec();
        bad.services[0].rules[0].servers = vec![addr(9)];
        assert!(matches!(
            Table::build(bad, None),
            Err((Site::Rule(0, 0), TableError::UnknownRuleServer { .. }))
        ));
        let mut bad = spec();
        bad.services[0].servers.push(ServerSpec {
            addr: addr(1),
            weight: Weight(3),
        });
        assert!(matches!(
            Table::build(bad, None),
            Err((Site::Server(0, 3), TableError::DuplicateServer(..)))
        ));
        let mut bad = spec();
        let twin = bad.services[0].clone();
        bad.services.push(twin);
        assert!(matches!(
            Table::build(bad, None),
            Err((Site::Service(1), TableError::DuplicateService(_)))
        ));
        assert!("seventeen-chars-x".parse::<ServiceId>().is_err());
        assert!("".parse::<ServiceId>().is_err());
    }
}
