//! The rule table: virtual services, their real servers and content rules.
//!
//! The table is immutable. It is built from a [`TableSpec`] (the plain
//! description that config files and control verbs edit, defined with its
//! validation in the command crate and re-exported here) and swapped in whole; a request in flight keeps the snapshot it started with.
//! Live state (active counts, failure marks, scheduler memory) is carried over
//! from the previous table by identity, so an edit never resets it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use regex::{Regex, RegexSet};

use crate::protocols::rtsp::SessionTable;
use crate::rule_conditions::Conditions;
use crate::schedulers::{BuildScheduler, Persistence, RequestInfo, Scheduler};
use crate::server::{AgentAsks, ServerState, ServiceState, FULL_SCALE};
use crate::sources::{PerSource, Sources};

pub use tcpvs_command::spec::{
    HeaderMatch, Limits, Protocol, RuleMatch, RuleSpec, SchedOptions, ServerAddr, ServerSpec,
    ServiceId, ServiceSpec, Settings, Site, TableError, TableSpec, Timeouts, Weight,
};
pub use tcpvs_command::{AdminState, HealthSpec, LogFormat, ServiceLimits};

/// A real server in a built table.
#[derive(Debug)]
pub struct RealServer {
    pub addr: ServerAddr,
    /// As configured; schedulers weigh by [`RealServer::effective_weight`].
    pub weight: Weight,
    /// What the operator allows it.
    pub admin: AdminState,
    pub state: Arc<ServerState>,
    /// A stable hash of the address, computed once for the hashing
    /// schedulers (the same on every director).
    pub seed: u64,
    /// Requests it serves at once; 0: no limit.
    pub max_conns: u32,
}

impl RealServer {
    pub fn new(addr: ServerAddr, weight: Weight, state: Arc<ServerState>) -> Self {
        Self {
            addr,
            weight,
            admin: AdminState::Ready,
            state,
            seed: crate::schedulers::server_seed(addr.0),
            max_conns: 0,
        }
    }

    /// The same server serving at most `max_conns` requests at once.
    pub fn with_max_conns(self, max_conns: u32) -> Self {
        Self { max_conns, ..self }
    }

    /// Whether it serves fewer requests than its `max_conns` (always
    /// without one): a full server is passed over, as one that takes no
    /// new work, until a request of its own ends.
    pub fn has_room(&self) -> bool {
        self.max_conns == 0 || self.state.active() < self.max_conns
    }

    /// The same server in the operator's `admin` state.
    pub fn with_admin(self, admin: AdminState) -> Self {
        Self { admin, ..self }
    }

    /// The weight schedulers use: the configured one scaled by the agent's
    /// percentage and the slow-start ramp, never rounded down to 0 while
    /// both are above 0.
    pub fn effective_weight(&self) -> Weight {
        let weight = u64::from(self.weight.0);
        let scale = u64::from(self.state.weight_scale());
        if weight == 0 || scale == 0 {
            return Weight(0);
        }
        let scaled = (weight * scale / u64::from(FULL_SCALE)).clamp(1, u64::from(u16::MAX));
        Weight(scaled as u16)
    }

    /// Whether schedulers may give it new work: ready by the operator and
    /// the agent, not down by its checks, and of some weight. (A server held
    /// out by passive marks is a last resort, see `schedulers::pick_with`.)
    pub fn takes_new_work(&self) -> bool {
        self.admin == AdminState::Ready
            && self.state.agent_asks() == AgentAsks::Nothing
            && !self.state.is_checked_down()
            && !self.effective_weight().is_quiescent()
    }
}

/// A compiled content rule.
#[derive(Debug)]
pub struct ContentRule {
    /// On the target; a rule without one has the empty pattern, which
    /// matches every target.
    pub pattern: Regex,
    /// On the host and header fields.
    pub conditions: Conditions,
    /// All its conditions as written (`^/api/ host ^img\. header x-a: b`),
    /// for the pages that show the table.
    pub shown: String,
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
    /// Largest request body in bytes (413 beyond); `None`: no limit.
    pub max_body: Option<u64>,
    /// RTSP: which server owns each session (`None` for other protocols).
    pub sessions: Option<Arc<SessionTable>>,
    pub servers: Vec<Arc<RealServer>>,
    pub rules: Vec<ContentRule>,
    /// All rule patterns at once: one pass over the target finds the first
    /// matching rule, however many rules there are.
    rule_set: RegexSet,
    pub default_set: Vec<Arc<RealServer>>,
    /// Checks, agent, passive marks, retries and slow start.
    pub health: HealthSpec,
    /// Live counters of the service, carried over by identity like its
    /// servers' state.
    pub state: Arc<ServiceState>,
    /// Connections, queue and per-source limits.
    pub conn_limits: ServiceLimits,
    /// What each client address holds, when a per-source limit is set;
    /// carried over by identity while one is.
    pub sources: Option<Arc<Sources>>,
}

/// Where the content rules send a request.
#[derive(Debug)]
pub struct Route<'s, 't> {
    /// The servers allowed to serve it.
    pub candidates: &'s [Arc<RealServer>],
    /// The rule that matched (its index in `Service::rules`); `None`: the
    /// default set.
    pub rule: Option<usize>,
    /// The text of the matching rule's capture group (`-m N`), whose hash
    /// picks the server instead of the scheduler; `None` for the scheduler.
    pub sticky_key: Option<&'t str>,
}

impl Service {
    /// The per-source limits as the service has them now.
    pub fn per_source(&self) -> PerSource {
        PerSource {
            max_conns: self.conn_limits.max_conns_per_source,
            rate: self.conn_limits.rate_per_source,
            burst: self.conn_limits.burst(),
        }
    }

    /// The servers allowed to serve `target` when a request shows nothing
    /// else (no host, no header field): those of the first matching rule,
    /// else the default set.
    pub fn candidates(&self, target: &str) -> &[Arc<RealServer>] {
        let request = RequestInfo::new(target, std::net::Ipv4Addr::UNSPECIFIED.into());
        self.route(&request).candidates
    }

    /// The conditions of rule `rule` of [`Route::rule`], as the access log
    /// and the pages show them.
    pub fn rule_shown(&self, rule: usize) -> Option<&str> {
        self.rules.get(rule).map(|r| r.shown.as_str())
    }

    /// The route of `request`: the servers (and capture group, when it has
    /// one) of the first rule whose target pattern matches its path and
    /// whose host and header conditions it meets, else the default set.
    pub fn route<'s, 't>(&'s self, request: &RequestInfo<'t>) -> Route<'s, 't> {
        let target = request.path;
        let admits = |i: &usize| self.rules[*i].conditions.admit(request);
        let first = match self.rules.len() {
            0 => None,
            // One pattern: the set would only add its own overhead.
            1 => self.rules[0]
                .pattern
                .is_match(target)
                .then_some(0)
                .filter(admits),
            // The set gives the rules whose target pattern matches in rule
            // order; the first of them that the rest admits wins.
            _ => self.rule_set.matches(target).into_iter().find(admits),
        };
        let Some(rule) = first.map(|i| &self.rules[i]) else {
            return Route {
                candidates: &self.default_set,
                rule: None,
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
            rule: first,
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
        spec.check()?;
        let mut services: Vec<Arc<Service>> = Vec::with_capacity(spec.services.len());
        for (index, service) in spec.services.iter().enumerate() {
            let old = previous.and_then(|table| {
                let built = table.service(&service.ident)?;
                let spec = table
                    .spec
                    .services
                    .iter()
                    .find(|s| s.ident == service.ident)?;
                Some(Previous { built, spec })
            });
            services.push(Arc::new(build_service(index, service, old)?));
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

/// A service of the table being replaced: built, and as described.
#[derive(Clone, Copy)]
struct Previous<'a> {
    built: &'a Service,
    spec: &'a ServiceSpec,
}

impl Previous<'_> {
    /// The address `server` had: its own, or, for a server given by name
    /// whose name now resolves elsewhere, the one the name had (so its live
    /// state follows it), unless that address is some server's now.
    fn address_of(&self, server: &ServerSpec, now: &ServiceSpec) -> ServerAddr {
        let kept = self.spec.servers.iter().any(|s| s.addr == server.addr);
        let renamed = server.host.as_deref().and_then(|host| {
            let before = self.spec.servers.iter().find(|s| s.is_named(host))?;
            let taken = now.servers.iter().any(|s| s.addr == before.addr);
            (!taken).then_some(before.addr)
        });
        match renamed {
            Some(before) if !kept => before,
            _ => server.addr,
        }
    }
}

/// Builds one service of a spec that passed [`TableSpec::check`]; what can
/// still fail here is the compiled size of its patterns and its scheduler's
/// options.
fn build_service(
    index: usize,
    spec: &ServiceSpec,
    previous: Option<Previous<'_>>,
) -> Result<Service, (Site, TableError)> {
    let old = previous.map(|p| p.built);
    let state: Arc<ServiceState> = old.map_or_else(Default::default, |old| old.state.clone());
    let servers: Vec<Arc<RealServer>> = spec
        .servers
        .iter()
        .map(|server| {
            let state = previous
                .and_then(|p| {
                    let before = p.address_of(server, spec);
                    p.built.servers.iter().find(|s| s.addr == before)
                })
                .map_or_else(
                    || Arc::new(ServerState::of_service(state.freed.clone())),
                    |s| s.state.clone(),
                );
            let real = RealServer::new(server.addr, server.weight, state)
                .with_admin(server.state)
                .with_max_conns(server.max_conns);
            Arc::new(real)
        })
        .collect();
    let by_addr: HashMap<ServerAddr, &Arc<RealServer>> =
        servers.iter().map(|s| (s.addr, s)).collect();
    // The check made sure every address named is a real server.
    let members = |addrs: &[ServerAddr], site: Site| {
        addrs
            .iter()
            .map(|addr| {
                let unknown = || {
                    (
                        site,
                        TableError::UnknownDefaultServer(spec.ident.clone(), *addr),
                    )
                };
                by_addr.get(addr).map(|s| Arc::clone(s)).ok_or_else(unknown)
            })
            .collect::<Result<Vec<_>, _>>()
    };

    let mut rules = Vec::with_capacity(spec.rules.len());
    for (i, rule) in spec.rules.iter().enumerate() {
        let refused = |pattern: &str, e: regex::Error| {
            let error = TableError::BadPattern {
                pattern: pattern.to_string(),
                reason: last_line(&e.to_string()),
            };
            (Site::Rule(index, i), error)
        };
        let target = target_pattern(rule);
        let pattern = Regex::new(target).map_err(|e| refused(target, e))?;
        let conditions =
            Conditions::compile(&rule.when).map_err(|r| refused(&r.pattern, r.error))?;
        rules.push(ContentRule {
            pattern,
            conditions,
            shown: rule.when.to_string(),
            servers: members(&rule.servers, Site::Rule(index, i))?,
            match_group: rule.match_group,
        });
    }

    let default_set = match &spec.default {
        None => servers.clone(),
        Some(addrs) => members(addrs, Site::Default(index))?,
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
    let rule_set = RegexSet::new(spec.rules.iter().map(target_pattern)).map_err(|e| {
        let error = TableError::BadPattern {
            pattern: "(all rules together)".into(),
            reason: last_line(&e.to_string()),
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
        max_body: spec.max_body,
        sessions,
        servers,
        rules,
        rule_set,
        default_set,
        health: spec.health.clone(),
        state,
        conn_limits: spec.conn_limits,
        sources: spec.conn_limits.per_source().then(|| {
            old.and_then(|o| o.sources.clone())
                .unwrap_or_else(|| Arc::new(Sources::default()))
        }),
    })
}

/// A rule's pattern on the target: the empty pattern, matching every
/// target, for a rule on host or header fields only.
fn target_pattern(rule: &RuleSpec) -> &str {
    rule.when.pattern.as_deref().unwrap_or("")
}

/// The regex crate's messages span lines; the last one says what is wrong.
fn last_line(message: &str) -> String {
    message
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .unwrap_or("invalid regex")
        .trim_start_matches("error: ")
        .to_string()
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
                    .map(|p| ServerSpec::new(addr(p), Weight::DEFAULT))
                    .to_vec(),
                rules: vec![
                    RuleSpec::on_target("^/images/", vec![addr(2)]),
                    RuleSpec::on_target("^/cgi-bin/", vec![addr(3)]),
                ],
                default: Some(vec![addr(1)]),
                health: Default::default(),
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
            match_group: Some(1),
            ..RuleSpec::on_target("^/home/([a-z]+)/", vec![addr(2), addr(3)])
        };
        let table = Table::build(spec.clone(), None).unwrap();
        let route = |path| table.services[0].route(&RequestInfo::new(path, [0; 4].into()));
        let home = route("/home/alice/mail");
        assert_eq!(home.sticky_key, Some("alice"));
        assert_eq!(home.candidates.len(), 2);
        assert_eq!(route("/images/x").sticky_key, None);
        spec.services[0].rules[1].match_group = Some(2);
        assert!(matches!(
            Table::build(spec, None),
            Err((Site::Rule(0, 1), TableError::BadMatchGroup { .. }))
        ));
    }

    /// A rule takes a request when its target pattern, host and header
    /// conditions all hold; the first such rule wins; a request meeting no
    /// condition falls to the later rules.
    #[test]
    fn rules_on_host_and_headers_take_requests_in_order() {
        let mut spec = spec();
        let when = |pattern: Option<&str>, host: Option<&str>, headers: &[&str]| RuleMatch {
            pattern: pattern.map(str::to_string),
            host: host.map(str::to_string),
            headers: headers.iter().map(|h| h.parse().unwrap()).collect(),
        };
        let rule = |when, port| RuleSpec {
            when,
            servers: vec![addr(port)],
            match_group: None,
        };
        spec.services[0].rules = vec![
            rule(when(Some("^/images/"), Some(r"^img\."), &[]), 2),
            rule(when(None, None, &["X-Tenant: ^a"]), 3),
            rule(when(Some("^/images/"), None, &[]), 1),
        ];
        spec.services[0].default = Some(vec![addr(2), addr(3)]);
        let table = Table::build(spec, None).unwrap();
        let web = &table.services[0];
        struct Tenant(&'static str);
        impl crate::schedulers::HeaderLookup for Tenant {
            fn header(&self, name: &str) -> Option<&str> {
                name.eq_ignore_ascii_case("x-tenant").then_some(self.0)
            }
        }
        let route = |path, host, tenant: &Tenant| {
            let request = RequestInfo {
                path,
                host,
                client: [127, 0, 0, 1].into(),
                headers: tenant,
            };
            addrs(web.route(&request).candidates)
        };
        let nobody = Tenant("zz");
        assert_eq!(route("/images/a", Some("IMG.x:80"), &nobody), [addr(2)]);
        assert_eq!(route("/images/a", Some("www.x"), &nobody), [addr(1)]);
        assert_eq!(route("/images/a", None, &nobody), [addr(1)]);
        assert_eq!(route("/images/a", None, &Tenant("acme")), [addr(3)]);
        assert_eq!(
            route("/images/a", Some("img.x"), &Tenant("acme")),
            [addr(2)]
        );
        assert_eq!(route("/other", None, &Tenant("acme")), [addr(3)]);
        assert_eq!(route("/other", Some("img.x"), &nobody), [addr(2), addr(3)]);
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
        bad.services[0].rules[1].when.pattern = Some("(".into());
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
        bad.services[0]
            .servers
            .push(ServerSpec::new(addr(1), Weight(3)));
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
