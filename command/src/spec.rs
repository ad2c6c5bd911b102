//! The rule table as data: virtual services, their real servers, content
//! rules and daemon-wide settings, as config files describe them and verbs
//! edit them. The daemon builds its runtime table from a [`TableSpec`];
//! [`TableSpec::check`] is everything about a spec that can be told without
//! building it.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use crate::conn_limits::ServiceLimits;
use crate::health::{AdminState, HealthSpec};
use crate::options::OptionError;
use crate::validate;

/// A virtual service's name (KTCPVS: up to 16 characters).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceId(String);

impl ServiceId {
    pub const MAX_LEN: usize = 16;

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Only [`validate::ident`] makes one.
    pub(crate) fn new_unchecked(ident: &str) -> Self {
        Self(ident.to_string())
    }
}

impl FromStr for ServiceId {
    type Err = TableError;

    fn from_str(ident: &str) -> Result<Self, TableError> {
        validate::ident(ident)
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

impl Protocol {
    pub const ALL: &[Protocol] = &[Protocol::Http, Protocol::Rtsp];

    pub fn name(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Rtsp => "rtsp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Protocol {
    type Err = TableError;

    fn from_str(name: &str) -> Result<Self, TableError> {
        validate::protocol(name)
    }
}

/// The closed set of scheduling algorithms an operator may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchedulerKind {
    Rr,
    Wlc,
    Lard,
    Lardr,
    Wrr,
    Lc,
    Sed,
    Nq,
    Sh,
    Chash,
}

impl SchedulerKind {
    /// Every scheduler: the LVS family, then hashing, then locality-aware.
    pub const ALL: &[SchedulerKind] = &[
        SchedulerKind::Rr,
        SchedulerKind::Wrr,
        SchedulerKind::Lc,
        SchedulerKind::Wlc,
        SchedulerKind::Sed,
        SchedulerKind::Nq,
        SchedulerKind::Sh,
        SchedulerKind::Chash,
        SchedulerKind::Lard,
        SchedulerKind::Lardr,
    ];

    /// KTCPVS's own names, accepted wherever a scheduler is named: its `http`
    /// and `phttp` are content rules plus weighted least-connection, which is
    /// what every service here does with `wlc`.
    pub const ALIASES: &[(&'static str, SchedulerKind)] =
        &[("http", SchedulerKind::Wlc), ("phttp", SchedulerKind::Wlc)];

    pub fn name(self) -> &'static str {
        match self {
            SchedulerKind::Rr => "rr",
            SchedulerKind::Wlc => "wlc",
            SchedulerKind::Lard => "lard",
            SchedulerKind::Lardr => "lardr",
            SchedulerKind::Wrr => "wrr",
            SchedulerKind::Lc => "lc",
            SchedulerKind::Sed => "sed",
            SchedulerKind::Nq => "nq",
            SchedulerKind::Sh => "sh",
            SchedulerKind::Chash => "chash",
        }
    }

    /// Every name, for messages.
    pub fn names() -> String {
        let names: Vec<&str> = SchedulerKind::ALL.iter().map(|k| k.name()).collect();
        names.join(", ")
    }
}

impl fmt::Display for SchedulerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SchedulerKind {
    type Err = UnknownScheduler;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let aliases = SchedulerKind::ALIASES.iter().map(|&(n, k)| (n, k));
        SchedulerKind::ALL
            .iter()
            .map(|&k| (k.name(), k))
            .chain(aliases)
            .find(|(n, _)| *n == name)
            .map(|(_, kind)| kind)
            .ok_or_else(|| UnknownScheduler(name.to_string()))
    }
}

/// An unknown scheduler name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scheduler `{0}` (known: {known})", known = SchedulerKind::names())]
pub struct UnknownScheduler(pub String);

/// Limits on what a client may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest request or response head, in bytes (431 beyond).
    pub max_head_bytes: usize,
    /// Most header fields in a head (431 beyond).
    pub max_headers: usize,
    // Bodies and responses (issue 17).
    /// A request body of at most this many bytes (Content-Length) is read
    /// whole before a server is chosen, so a slow client holds no server
    /// connection while it sends; 0 turns buffering off.
    pub body_buffer: usize,
    /// Largest response head a server may send, in bytes (502 beyond).
    pub max_response_head_bytes: usize,
    /// Most header fields in a server's response head (502 beyond).
    pub max_response_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_head_bytes: 16 * 1024,
            max_headers: 100,
            body_buffer: 64 * 1024,
            max_response_head_bytes: 16 * 1024,
            max_response_headers: 100,
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
    /// How long a graceful stop lets requests and sessions in flight
    /// finish before closing what is left.
    pub drain: Duration,
    // Bodies and tunnels (issue 17).
    /// The whole request body must arrive within this (absolute, from the
    /// end of its head): 408, or a close once the response started.
    pub body: Duration,
    /// An upgraded (WebSocket) tunnel with no byte either way for this long
    /// is closed.
    pub tunnel: Duration,
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
            drain: Duration::from_secs(30),
            body: Duration::from_secs(60),
            tunnel: Duration::from_secs(3600),
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
    /// Write an access line per exchange (whatever the log level).
    pub access_log: bool,
    /// The access lines' format.
    pub log_format: crate::LogFormat,
    /// Merge repeated slashes in request paths before rules see them and
    /// servers are sent them (nginx's `merge_slashes`).
    pub merge_slashes: bool,
    /// Client connections open at once, all services together (HAProxy's
    /// global `maxconn`); 0: as many as the descriptors allow, each with
    /// one kept for its server connection.
    pub max_conns: u32,
    /// How often the names of real servers given by name are looked up
    /// again (HAProxy's `hold valid`); zero: only at load and reload.
    pub resolve_interval: Duration,
}

impl Settings {
    /// The interval of a configuration that names none.
    pub const DEFAULT_RESOLVE_INTERVAL: Duration = Duration::from_secs(30);
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            timeouts: Timeouts::default(),
            pool_per_server: 64,
            access_log: true,
            log_format: crate::LogFormat::Text,
            merge_slashes: true,
            max_conns: 0,
            resolve_interval: Self::DEFAULT_RESOLVE_INTERVAL,
        }
    }
}

/// A real server as described by configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSpec {
    /// Where tcpvsd connects: the address given, or the one its name
    /// resolved to.
    pub addr: ServerAddr,
    /// The name as configured (`app1.example.com:80`), looked up again at
    /// reload and every `resolve_interval`; `None`: given as an address.
    pub host: Option<String>,
    pub weight: Weight,
    /// What the operator allows it (`--state`).
    pub state: AdminState,
    /// Requests it serves at once (HAProxy's server `maxconn`); 0: no limit.
    pub max_conns: u32,
}

impl ServerSpec {
    /// A server ready for work.
    pub fn new(addr: ServerAddr, weight: Weight) -> Self {
        Self {
            addr,
            host: None,
            weight,
            state: AdminState::Ready,
            max_conns: 0,
        }
    }

    /// The same server, given by `name` (as configured) that resolved to
    /// its address.
    pub fn named(self, name: &str) -> Self {
        Self {
            host: Some(name.to_string()),
            ..self
        }
    }

    /// Whether `text` is the name this server was given (names are
    /// case-insensitive).
    pub fn is_named(&self, text: &str) -> bool {
        self.host
            .as_deref()
            .is_some_and(|host| host.eq_ignore_ascii_case(text))
    }

    /// How the operator wrote it: its name, or its address.
    pub fn as_configured(&self) -> String {
        self.host.clone().unwrap_or_else(|| self.addr.to_string())
    }
}

/// A content rule as described: requests that meet `when` go to one of
/// `servers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSpec {
    pub when: RuleMatch,
    pub servers: Vec<ServerAddr>,
    /// KTCPVS `-m N`: the regex capture group whose hash picks the server
    /// (stickiness by user, as `hhttp`); `None`: the scheduler picks.
    pub match_group: Option<u32>,
}

impl RuleSpec {
    /// A rule on the request target alone, as KTCPVS has them.
    pub fn on_target(pattern: &str, servers: Vec<ServerAddr>) -> Self {
        Self {
            when: RuleMatch::target(pattern),
            servers,
            match_group: None,
        }
    }
}

/// What a request must show for a rule to take it: every condition given
/// holds. Two rules are the same rule when all their conditions are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct RuleMatch {
    /// On the request target (path and query); `None`: any target, for a
    /// rule that has a host or header condition.
    pub pattern: Option<String>,
    /// On the host the request names (Host, or an absolute target's
    /// authority), without its port and in any case.
    pub host: Option<String>,
    /// On header fields, all of them; kept sorted, as their order changes
    /// nothing of what the rule takes.
    pub headers: Vec<HeaderMatch>,
}

impl RuleMatch {
    /// The conditions given, header conditions in their canonical order.
    pub fn new(
        pattern: Option<String>,
        host: Option<String>,
        mut headers: Vec<HeaderMatch>,
    ) -> Self {
        headers.sort();
        Self {
            pattern,
            host,
            headers,
        }
    }

    /// A condition on the target alone.
    pub fn target(pattern: &str) -> Self {
        Self {
            pattern: Some(pattern.to_string()),
            ..Self::default()
        }
    }

    /// KTCPVS's default rule (`.*` and nothing else): it stays last.
    pub fn is_catch_all(&self) -> bool {
        self.pattern.as_deref() == Some(CATCH_ALL) && self.host.is_none() && self.headers.is_empty()
    }
}

impl fmt::Display for RuleMatch {
    /// The pattern as KTCPVS shows a rule, then the other conditions.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = self.pattern.iter().cloned().collect();
        parts.extend(self.host.iter().map(|host| format!("host {host}")));
        parts.extend(self.headers.iter().map(|h| format!("header {h}")));
        f.write_str(&parts.join(" "))
    }
}

/// A rule's condition on one header field, written `X-Tenant: ^a`: some
/// field of that name has a value the pattern matches.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HeaderMatch {
    /// The field's name in lower case: names are case-insensitive.
    pub name: String,
    pub pattern: String,
}

impl fmt::Display for HeaderMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.pattern.as_str() {
            "" => write!(f, "{}:", self.name),
            pattern => write!(f, "{}: {pattern}", self.name),
        }
    }
}

impl FromStr for HeaderMatch {
    type Err = TableError;

    fn from_str(text: &str) -> Result<Self, TableError> {
        validate::header_match(text)
    }
}

/// The address of the real server of `servers` (of service `ident`) that
/// `text` names: an address as it is, a name by the server given it.
pub fn server_named(
    ident: &ServiceId,
    servers: &[ServerSpec],
    text: &str,
) -> Result<ServerAddr, TableError> {
    match validate::server_text(text)? {
        validate::ServerText::Addr(addr) => Ok(addr),
        validate::ServerText::Name { .. } => servers
            .iter()
            .find(|s| s.is_named(text))
            .map(|s| s.addr)
            .ok_or_else(|| TableError::UnknownServerName {
                service: ident.clone(),
                server: text.to_string(),
            }),
    }
}

/// The pattern KTCPVS treats as the default rule: it stays last.
pub const CATCH_ALL: &str = ".*";

/// Named scheduler parameters, in name order.
pub type SchedOptions = BTreeMap<String, String>;

/// A virtual service as described.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    pub ident: ServiceId,
    pub listen: SocketAddr,
    pub protocol: Protocol,
    pub scheduler: SchedulerKind,
    /// Scheduler parameters (`--sched-opt low=25,high=65`) as given; their
    /// typed values come from [`validate::sched_opts`].
    pub sched_opts: SchedOptions,
    /// Whether the service accepts connections (`tcpvsadm --start/--stop`).
    pub enabled: bool,
    /// LVS persistence: a client keeps its server this long after its last
    /// request (`None`: every request is scheduled on its own).
    pub persistent: Option<Duration>,
    /// Add `X-Forwarded-Proto` with this value to requests.
    pub forwarded_proto: Option<String>,
    /// Largest request body in bytes (413 beyond); `None`: no limit.
    pub max_body: Option<u64>,
    pub servers: Vec<ServerSpec>,
    /// Tried in order; the first match wins.
    pub rules: Vec<RuleSpec>,
    /// Servers for requests no rule matches; `None` means all servers.
    pub default: Option<Vec<ServerAddr>>,
    /// Checks, agent, passive marks, retries and slow start.
    pub health: HealthSpec,
    /// Connections, queue and per-source limits.
    pub conn_limits: ServiceLimits,
}

impl ServiceSpec {
    /// The address of the real server `text` names, by its address or by
    /// the name it was given (never looked up again: a rule names the
    /// server the service has).
    pub fn server_named(&self, text: &str) -> Result<ServerAddr, TableError> {
        server_named(&self.ident, &self.servers, text)
    }

    /// The scheduler of a service that names none.
    pub const DEFAULT_SCHEDULER: SchedulerKind = SchedulerKind::Wlc;

    /// A started `http` service scheduled by `wlc`, with no servers or rules.
    pub fn new(ident: ServiceId, listen: SocketAddr) -> Self {
        Self {
            ident,
            listen,
            protocol: Protocol::Http,
            scheduler: Self::DEFAULT_SCHEDULER,
            sched_opts: SchedOptions::new(),
            enabled: true,
            persistent: None,
            forwarded_proto: None,
            max_body: None,
            servers: Vec::new(),
            rules: Vec::new(),
            default: None,
            health: HealthSpec::default(),
            conn_limits: ServiceLimits::default(),
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
    /// The active check of a service.
    Check(usize),
}

/// Why a value or a table is refused. The same message whichever front end
/// (TOML file or tcpvsadm) the value came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    #[error("invalid service ident `{0}` (1 to 16 characters: letters, digits, `-_.`)")]
    BadIdent(String),
    #[error("unknown protocol `{0}` (known: http, rtsp)")]
    UnknownProtocol(String),
    #[error(transparent)]
    UnknownScheduler(#[from] UnknownScheduler),
    #[error("`{0}` needs a port: write IP:PORT, e.g. 192.168.10.1:80")]
    NoPort(String),
    #[error("`{0}` is not an address: write IP:PORT, e.g. 192.168.10.1:80")]
    BadAddress(String),
    #[error("{0} is out of range 0..=65535: give a weight from 0 to 65535")]
    WeightOutOfRange(i64),
    #[error("`{0}` is not a number: give a weight from 0 to 65535")]
    NotAWeight(String),
    #[error(
        "`{0}` is not a persistence timeout: give seconds up to 2678400 (31 days; \
         0 turns it off) or a duration in whole seconds such as 90s, 5m, 1h"
    )]
    BadPersistence(String),
    #[error(
        "`{0}` is not a real server: write IP:PORT or NAME:PORT, \
         e.g. 192.168.10.1:80 or app1.example.com:80"
    )]
    BadServer(String),
    #[error("cannot resolve server `{server}`: {reason}")]
    Unresolved { server: String, reason: String },
    #[error("`{server}` is not a real server of service `{service}`")]
    UnknownServerName { service: ServiceId, server: String },
    #[error("`{0}` is not a resolve interval: write 0 (only at load and reload) or 1s to 24h")]
    BadResolveInterval(String),
    #[error("a real server needs a port other than 0: `{0}`")]
    ServerPortZero(String),
    #[error("`{0}` is not a duration: write e.g. 500ms, 10s, 2m")]
    BadDuration(String),
    #[error("a timeout must be longer than zero")]
    ZeroDuration,
    #[error("`{0}` is not a protocol name for X-Forwarded-Proto: write e.g. http or https")]
    BadForwardedProto(String),
    #[error("an empty pattern matches everything; use `.*` for the default rule")]
    EmptyPattern,
    #[error(
        "an empty default set sends unmatched requests nowhere: \
         leave `default` out to send them to every real server"
    )]
    EmptyDefault,
    #[error("invalid pattern `{pattern}`: {reason}")]
    BadPattern { pattern: String, reason: String },
    #[error("an empty host pattern matches every request: leave `host` out")]
    EmptyHostPattern,
    #[error("`{0}` is not a header condition: write NAME: PATTERN, e.g. `X-Tenant: ^a`")]
    BadHeaderMatch(String),
    #[error("`{0}` is not a header field name (letters, digits and !#$%&'*+-.^_`|~)")]
    BadHeaderName(String),
    #[error(
        "service `{0}` speaks rtsp, whose requests carry no Host header: \
         `host` is for http services (header conditions work on both)"
    )]
    HostOnRtsp(ServiceId),
    #[error(
        "rule `{0}` has no target pattern: match_group names a capture group \
         of the target pattern"
    )]
    MatchGroupWithoutPattern(String),
    #[error("`{0}` is not a capture group number: give a number from 0 to 99")]
    BadMatchGroupNumber(String),
    #[error("rule `{pattern}` uses capture group {group}, but the pattern has only {groups}")]
    BadMatchGroup {
        pattern: String,
        group: u32,
        groups: usize,
    },
    #[error(
        "rule `{pattern}` appears twice in service `{service}`: \
         give all its servers in one rule"
    )]
    DuplicatePattern { service: ServiceId, pattern: String },
    #[error(
        "rule `.*` of service `{0}` is the default rule and comes last: \
         the rules after it would never be reached"
    )]
    CatchAllNotLast(ServiceId),
    #[error("duplicate service `{0}`")]
    DuplicateService(ServiceId),
    #[error("services `{0}` and `{1}` both listen on {2}")]
    DuplicateListen(ServiceId, ServiceId, SocketAddr),
    #[error("duplicate real server {1} in service `{0}`")]
    DuplicateServer(ServiceId, ServerAddr),
    #[error("rule `{pattern}` names {server}, which is not a real server of service `{service}`")]
    UnknownRuleServer {
        service: ServiceId,
        pattern: String,
        server: ServerAddr,
    },
    #[error("the default set of service `{0}` names {1}, which is not one of its real servers")]
    UnknownDefaultServer(ServiceId, ServerAddr),
    #[error("`{value}` is not {expected}")]
    BadValue {
        value: String,
        expected: &'static str,
    },
    /// A status range or an operator state refused by its parser.
    #[error("{0}")]
    Unparsed(String),
    #[error("timeout {timeout} must be below interval {interval}")]
    TimeoutNotBelowInterval { timeout: String, interval: String },
    #[error(transparent)]
    BadHealthOption(OptionError),
    #[error(
        "service `{service}` speaks {protocol}: a check of type {check} does not fit \
         (give type={protocol} or type=tcp)"
    )]
    CheckDoesNotFit {
        service: ServiceId,
        protocol: Protocol,
        check: &'static str,
    },
    #[error("scheduler {scheduler} of service `{service}`: {reason}")]
    BadSchedOption {
        service: ServiceId,
        scheduler: SchedulerKind,
        reason: String,
    },
}

impl TableSpec {
    /// Everything about the table that can be told without building it:
    /// duplicate services, listeners and servers, rule patterns and their
    /// capture groups, rules and default sets naming unknown servers, the
    /// scheduler's options, a check that does not fit the protocol.
    pub fn check(&self) -> Result<(), (Site, TableError)> {
        for (index, service) in self.services.iter().enumerate() {
            let before = &self.services[..index];
            if let Some(other) = before.iter().find(|s| s.ident == service.ident) {
                let error = TableError::DuplicateService(other.ident.clone());
                return Err((Site::Service(index), error));
            }
            // Port 0 asks for an ephemeral port: each such service gets its own.
            let same_listen = |s: &&ServiceSpec| s.listen == service.listen && s.listen.port() != 0;
            if let Some(other) = before.iter().find(same_listen) {
                let error = TableError::DuplicateListen(
                    other.ident.clone(),
                    service.ident.clone(),
                    service.listen,
                );
                return Err((Site::Service(index), error));
            }
            service.check(index)?;
        }
        Ok(())
    }
}

impl ServiceSpec {
    fn check(&self, index: usize) -> Result<(), (Site, TableError)> {
        self.conn_limits
            .check()
            .map_err(|error| (Site::Service(index), error))?;
        if let Err(refused) = validate::sched_opts(self.scheduler, &self.sched_opts) {
            let error = refused.of_service(&self.ident, self.scheduler);
            return Err((Site::Service(index), error));
        }
        if let Some(check) = &self.health.check {
            validate::check_fits(&self.ident, self.protocol, check)
                .map_err(|error| (Site::Check(index), error))?;
        }
        for (i, server) in self.servers.iter().enumerate() {
            if self.servers[..i].iter().any(|s| s.addr == server.addr) {
                let error = TableError::DuplicateServer(self.ident.clone(), server.addr);
                return Err((Site::Server(index, i), error));
            }
        }
        let known = |addr: &ServerAddr| self.servers.iter().any(|s| s.addr == *addr);
        for (i, rule) in self.rules.iter().enumerate() {
            let at = |error| (Site::Rule(index, i), error);
            let groups = validate::rule_match(&rule.when).map_err(at)?;
            if rule.when.host.is_some() && self.protocol == Protocol::Rtsp {
                return Err(at(TableError::HostOnRtsp(self.ident.clone())));
            }
            // tcpvsadm merges a rule given again into its rule and keeps
            // `.*` last: a file must already be so, or `-f` and `-S` would
            // change what it means.
            if self.rules[..i].iter().any(|r| r.when == rule.when) {
                return Err(at(TableError::DuplicatePattern {
                    service: self.ident.clone(),
                    pattern: rule.when.to_string(),
                }));
            }
            if rule.when.is_catch_all() && i + 1 < self.rules.len() {
                return Err(at(TableError::CatchAllNotLast(self.ident.clone())));
            }
            if let Some(server) = rule.servers.iter().find(|a| !known(a)) {
                return Err(at(TableError::UnknownRuleServer {
                    service: self.ident.clone(),
                    pattern: rule.when.to_string(),
                    server: *server,
                }));
            }
            if let Some(group) = rule.match_group {
                validate::rule_group(group, &rule.when, groups).map_err(at)?;
            }
        }
        if let Some(server) = self.default.iter().flatten().find(|a| !known(a)) {
            let error = TableError::UnknownDefaultServer(self.ident.clone(), *server);
            return Err((Site::Default(index), error));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_refuses_a_schedulers_bad_options() {
        let ident = validate::ident("web").unwrap();
        let mut service = ServiceSpec::new(ident, "127.0.0.1:80".parse().unwrap());
        service.scheduler = SchedulerKind::Chash;
        service.sched_opts = [("factor".to_string(), "99".to_string())].into();
        let mut table = TableSpec {
            services: vec![service],
            ..TableSpec::default()
        };
        let (site, error) = table.check().unwrap_err();
        assert_eq!(site, Site::Service(0));
        assert_eq!(
            error.to_string(),
            "scheduler chash of service `web`: option factor=99: give a number from 100 to 1000"
        );
        table.services[0].sched_opts = [("factor".to_string(), "100".to_string())].into();
        assert_eq!(table.check(), Ok(()));
    }

    /// A protocol changed under its check is refused as a check given to
    /// the wrong protocol is.
    #[test]
    fn check_refuses_a_check_that_does_not_fit_the_protocol() {
        use crate::health::{CheckKind, CheckSpec, HttpCheck};
        let ident = validate::ident("web").unwrap();
        let mut service = ServiceSpec::new(ident, "127.0.0.1:80".parse().unwrap());
        service.health.check = Some(CheckSpec::new(CheckKind::Http(HttpCheck::default())));
        let mut table = TableSpec {
            services: vec![service],
            ..TableSpec::default()
        };
        assert_eq!(table.check(), Ok(()));
        table.services[0].protocol = Protocol::Rtsp;
        let (site, error) = table.check().unwrap_err();
        assert_eq!(site, Site::Check(0));
        assert!(
            matches!(error, TableError::CheckDoesNotFit { .. }),
            "{error}"
        );
    }
}
