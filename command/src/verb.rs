//! The typed verbs of the control plane, shared by tcpvsd and tcpvsadm, and
//! the one place where a verb is applied to a table description. Every value
//! a verb carries goes through the validators of [`crate::validate`], as the
//! TOML file's do.
//!
//! On the wire each request is one JSON line `{"id": 7, "verb": "add-server",
//! "ident": "web", "server": "127.0.0.1:9001", "weight": 2}` and each reply one
//! line `{"id": 7, "ok": true}` or `{"id": 7, "ok": false, "error": "..."}`,
//! so the socket can be driven by hand with socat.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::conn_limits::{self, LimitOptions};
use crate::health::{AdminState, HealthSpec};
use crate::health_opts;
use crate::options::OptionError;
use crate::resolve::{self, Resolve};
use crate::spec::{
    RuleMatch, RuleSpec, SchedOptions, ServerAddr, ServerSpec, ServiceId, ServiceSpec, TableError,
    TableSpec, Weight,
};
use crate::validate;
use crate::view::TableView;

pub use crate::spec::CATCH_ALL;

/// One request to the control socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub id: u64,
    #[serde(flatten)]
    pub verb: Verb,
}

/// What an operator can ask of a running tcpvsd.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verb", rename_all = "kebab-case")]
pub enum Verb {
    /// `-A`: a new virtual service.
    AddService(ServiceArgs),
    /// `-E`: change a service's listen address, scheduler or its options.
    EditService(ServiceArgs),
    /// `-D`
    DelService { ident: String },
    /// `-a`
    AddServer(ServerArgs),
    /// `-e`: change a real server's weight (`-w 0` drains it).
    EditServer(ServerArgs),
    /// `-d`: in-flight requests finish; the server then disappears.
    DelServer { ident: String, server: String },
    /// `--add-rule`: requests matching `pattern` may go to `server`; an existing
    /// pattern gains the server.
    AddRule(RuleArgs),
    /// `--del-rule`: `server` leaves the rule; a rule left empty is removed.
    DelRule(RuleArgs),
    /// `--add-default`: `server` joins the set for requests no rule matches.
    AddDefault { ident: String, server: String },
    /// `--del-default`
    DelDefault { ident: String, server: String },
    /// `--start`: accept connections again (one service, or all).
    Start { ident: Option<String> },
    /// `--stop`: stop accepting; connections in flight finish.
    Stop { ident: Option<String> },
    /// `-F`: delete every service.
    Flush,
    /// From tcpvsd's resolver: the real server given by name `server` (as
    /// configured) now resolves to `address`. It keeps its weight, options,
    /// rules and counters; requests in flight finish on the old address.
    Readdress {
        ident: String,
        server: String,
        address: String,
    },
    /// `-Z`: zero the request and failure counters.
    Zero { ident: Option<String> },
    /// `-L`: the table with live counters.
    List { ident: Option<String> },
    /// `-R`, `-f` with saved commands: verbs applied all together or not at
    /// all.
    Batch { verbs: Vec<Verb> },
    /// `-f` with a TOML configuration, and SIGHUP: the table becomes the
    /// file's, settings (timeouts, limits, pool, access log) included, and
    /// the daemon takes its log level. `source` names the file in messages.
    Load { source: String, text: String },
    /// From a new tcpvsd (`--upgrade`): the listening sockets, passed over
    /// the control socket (SCM_RIGHTS) with a [`HandOver`] line.
    HandOver,
    /// From a new tcpvsd that serves on the sockets handed over: the old
    /// one gives up its control socket, stops accepting, drains and exits.
    Retire,
}

/// The answer to [`Verb::HandOver`]: the services whose sockets follow, in
/// order, `sockets` descriptors each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandOver {
    pub services: Vec<HandedService>,
}

/// One service's listening sockets, handed over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandedService {
    pub ident: String,
    /// As configured (port 0 stays 0).
    pub listen: String,
    /// Where the sockets are bound.
    pub bound: String,
    pub sockets: usize,
}

/// Arguments of `-A` and `-E`. Every field but `ident` is optional: what is
/// absent (or null) is left as it is by `-E` and takes its default with `-A`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServiceArgs {
    pub ident: String,
    pub listen: Option<String>,
    pub scheduler: Option<String>,
    pub sched_opts: Option<SchedOptions>,
    pub protocol: Option<String>,
    /// Persistence timeout in seconds; 0 turns persistence off.
    pub persistent: Option<u64>,
    /// The `X-Forwarded-Proto` value to add; empty turns it off.
    pub forwarded_proto: Option<String>,
    /// The active check as `type=http,path=/health,...`, replacing the whole
    /// check; `none` removes it.
    pub check: Option<String>,
    /// The agent as `port=9999,...`; `none` removes it.
    pub agent: Option<String>,
    /// Passive counting as `max_fails=3,...`: the options given change, the
    /// others stay.
    pub passive: Option<String>,
    /// Tries on other servers after a failed one.
    pub retries: Option<u32>,
    /// Slow start as a duration (`30s`; `0s` turns it off).
    pub slowstart: Option<String>,
    /// Largest request body (`10m`; `0` for no limit).
    pub max_body: Option<String>,
    /// Connection, queue and per-source limits by name (`max_conns`:
    /// `"100"`): those given change, the others stay.
    pub limits: Option<LimitOptions>,
}

/// Arguments of `-a` and `-e`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerArgs {
    pub ident: String,
    pub server: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// `--state ready|drain|maint`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<AdminState>,
    /// `--max-conns`: requests it serves at once; 0: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_conns: Option<u32>,
}

/// Arguments of `--add-rule` and `--del-rule`. A rule is named by all its
/// conditions: the same pattern with another host is another rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleArgs {
    pub ident: String,
    /// On the target; empty: any target (a rule with `host` or `headers`).
    #[serde(default)]
    pub pattern: String,
    pub server: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_group: Option<u32>,
    /// `--host PATTERN`: on the host the request names, in any case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// `--header 'NAME: PATTERN'`, repeatable: all must match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<String>,
}

impl RuleArgs {
    /// The rule's conditions, host and headers through their validators
    /// (the whole is checked by [`validate::rule_match`] when added).
    fn when(&self) -> Result<RuleMatch, TableError> {
        let pattern = Some(self.pattern.clone()).filter(|p| !p.is_empty());
        let host = self
            .host
            .as_deref()
            .map(validate::host_pattern)
            .transpose()?;
        let headers = self
            .headers
            .iter()
            .map(|h| validate::header_match(h))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RuleMatch::new(pattern, host, headers))
    }
}

impl Request {
    /// The request as one line of the wire format, newline included.
    pub fn to_line(&self) -> Vec<u8> {
        json_line(self)
    }

    /// The id of a request line that did not parse, when one can still be read.
    pub fn id_of(line: &[u8]) -> u64 {
        serde_json::from_slice::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v.get("id").and_then(serde_json::Value::as_u64))
            .unwrap_or(0)
    }
}

fn json_line(value: &impl Serialize) -> Vec<u8> {
    // Plain data with string keys: serialization cannot fail.
    let mut line = serde_json::to_vec(value).unwrap_or_default();
    line.push(b'\n');
    line
}

/// The reply to one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    pub id: u64,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<TableView>,
}

impl Response {
    pub fn ok(id: u64, table: Option<TableView>) -> Self {
        Self {
            id,
            ok: true,
            error: None,
            table,
        }
    }

    /// The reply as one line of the wire format, newline included.
    pub fn to_line(&self) -> Vec<u8> {
        json_line(self)
    }

    /// A reply read from the wire.
    pub fn from_line(line: &str) -> Result<Self, String> {
        serde_json::from_str(line).map_err(|e| e.to_string())
    }

    pub fn error(id: u64, reason: impl Into<String>) -> Self {
        Self {
            id,
            ok: false,
            error: Some(reason.into()),
            table: None,
        }
    }
}

/// Why a verb could not be applied. The table is then left as it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("no service `{0}`")]
    NoService(String),
    #[error("service `{0}` already exists")]
    DuplicateService(String),
    #[error("a new service needs an address to listen on (-l address:port or -P port)")]
    NoListen,
    #[error("server {1} is already in service `{0}`")]
    DuplicateServer(String, ServerAddr),
    #[error("service `{0}` has no real server {1}")]
    NoServer(String, ServerAddr),
    #[error("rule `{1}` of service `{0}` already sends to {2}")]
    DuplicateRuleServer(String, String, ServerAddr),
    #[error("service `{0}` has no rule `{1}` with server {2}")]
    NoRule(String, String, ServerAddr),
    #[error("{0} is already in the default set of service `{1}`")]
    DuplicateDefault(ServerAddr, String),
    #[error("{0} is not in the default set of service `{1}`")]
    NoDefault(ServerAddr, String),
    #[error(transparent)]
    Table(#[from] TableError),
    #[error("{0}")]
    Config(String),
    #[error("{file}: no service (give allow_empty = true to load an empty table)")]
    Empty { file: String },
    #[error("{verb} cannot be part of a batch")]
    NotBatchable { verb: &'static str },
    #[error("command {index} of the batch: {error}")]
    InBatch {
        index: usize,
        error: Box<CommandError>,
    },
}

impl Verb {
    /// The verb's name on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            Verb::AddService(_) => "add-service",
            Verb::EditService(_) => "edit-service",
            Verb::DelService { .. } => "del-service",
            Verb::AddServer(_) => "add-server",
            Verb::EditServer(_) => "edit-server",
            Verb::DelServer { .. } => "del-server",
            Verb::AddRule(_) => "add-rule",
            Verb::DelRule(_) => "del-rule",
            Verb::AddDefault { .. } => "add-default",
            Verb::DelDefault { .. } => "del-default",
            Verb::Start { .. } => "start",
            Verb::Stop { .. } => "stop",
            Verb::Flush => "flush",
            Verb::Readdress { .. } => "readdress",
            Verb::Zero { .. } => "zero",
            Verb::List { .. } => "list",
            Verb::Batch { .. } => "batch",
            Verb::Load { .. } => "load",
            Verb::HandOver => "hand-over",
            Verb::Retire => "retire",
        }
    }

    /// Whether the verb changes the table (as opposed to reading it or
    /// touching live counters only).
    pub fn edits(&self) -> bool {
        !matches!(
            self,
            Verb::List { .. } | Verb::Zero { .. } | Verb::HandOver | Verb::Retire
        )
    }

    /// Applies an editing verb to `spec`. On error `spec` may be half edited:
    /// callers apply to a copy and keep it only on success. Servers given by
    /// name are resolved by the C library (this blocks).
    pub fn apply(&self, spec: &mut TableSpec) -> Result<(), CommandError> {
        self.apply_with(spec, &resolve::System)
    }

    /// [`Verb::apply`], server names resolved by `resolver`.
    pub fn apply_with(
        &self,
        spec: &mut TableSpec,
        resolver: &dyn Resolve,
    ) -> Result<(), CommandError> {
        match self {
            Verb::AddService(args) => add_service(spec, args),
            Verb::EditService(args) => edit_service(spec, args),
            Verb::DelService { ident } => {
                let index = service_index(spec, ident)?;
                spec.services.remove(index);
                Ok(())
            }
            Verb::AddServer(args) => {
                let service = service_mut(spec, &args.ident)?;
                let weight = args.weight.map_or(Ok(Weight::DEFAULT), weight)?;
                let server = resolve::server(resolver, &args.server, weight)?;
                if service.servers.iter().any(|s| s.addr == server.addr) {
                    let addr = server.addr;
                    return Err(CommandError::DuplicateServer(args.ident.clone(), addr));
                }
                let max_conns = args.max_conns.map_or(Ok(0), server_max_conns)?;
                service.servers.push(ServerSpec {
                    state: args.state.unwrap_or_default(),
                    max_conns,
                    ..server
                });
                Ok(())
            }
            Verb::EditServer(args) => {
                let service = service_mut(spec, &args.ident)?;
                let addr = service.server_named(&args.server)?;
                let server = service
                    .servers
                    .iter_mut()
                    .find(|s| s.addr == addr)
                    .ok_or_else(|| CommandError::NoServer(args.ident.clone(), addr))?;
                if let Some(w) = args.weight {
                    server.weight = weight(w)?;
                }
                if let Some(state) = args.state {
                    server.state = state;
                }
                if let Some(n) = args.max_conns {
                    server.max_conns = server_max_conns(n)?;
                }
                Ok(())
            }
            Verb::DelServer { ident, server } => del_server(spec, ident, server),
            Verb::AddRule(args) => add_rule(spec, args),
            Verb::DelRule(args) => del_rule(spec, args),
            Verb::AddDefault { ident, server } => {
                let service = service_mut(spec, ident)?;
                let addr = member(service, server)?;
                let set = service.default.get_or_insert_with(Vec::new);
                if set.contains(&addr) {
                    return Err(CommandError::DuplicateDefault(addr, ident.clone()));
                }
                set.push(addr);
                Ok(())
            }
            Verb::DelDefault { ident, server } => {
                let service = service_mut(spec, ident)?;
                let addr = service.server_named(server)?;
                let set = service.default.as_mut();
                let Some(set) = set.filter(|set| set.contains(&addr)) else {
                    return Err(CommandError::NoDefault(addr, ident.clone()));
                };
                set.retain(|a| *a != addr);
                if set.is_empty() {
                    service.default = None;
                }
                Ok(())
            }
            Verb::Start { ident } => set_enabled(spec, ident.as_deref(), true),
            Verb::Stop { ident } => set_enabled(spec, ident.as_deref(), false),
            Verb::Flush => {
                spec.services.clear();
                Ok(())
            }
            Verb::Readdress {
                ident,
                server,
                address,
            } => readdress(spec, ident, server, address),
            Verb::Batch { verbs } => {
                for (index, verb) in verbs.iter().enumerate() {
                    if !verb.edits() || matches!(verb, Verb::Batch { .. } | Verb::Load { .. }) {
                        return Err(CommandError::NotBatchable { verb: verb.name() });
                    }
                    verb.apply_with(spec, resolver)
                        .map_err(|error| CommandError::InBatch {
                            index: index + 1,
                            error: Box::new(error),
                        })?;
                }
                Ok(())
            }
            Verb::Load { source, text } => {
                // A name that does not resolve for the moment keeps the
                // address it has in the running table.
                let known: Vec<ServerSpec> = spec
                    .services
                    .iter()
                    .flat_map(|s| s.servers.clone())
                    .collect();
                let resolver = resolve::KeepKnown {
                    inner: resolver,
                    known: &known,
                };
                let path = std::path::Path::new(source);
                let config = crate::config::parse_with(text, path, &resolver)
                    .map_err(|e| CommandError::Config(e.to_string()))?;
                if config.table.services.is_empty() && !config.daemon.allow_empty {
                    return Err(CommandError::Empty {
                        file: source.clone(),
                    });
                }
                *spec = config.table;
                Ok(())
            }
            // Not edits: the control plane answers them without a new table.
            Verb::Zero { .. } | Verb::List { .. } | Verb::HandOver | Verb::Retire => Ok(()),
        }
    }
}

fn add_service(spec: &mut TableSpec, args: &ServiceArgs) -> Result<(), CommandError> {
    let ident: ServiceId = validate::ident(&args.ident)?;
    if spec.services.iter().any(|s| s.ident == ident) {
        return Err(CommandError::DuplicateService(args.ident.clone()));
    }
    let listen = args.listen.as_deref().ok_or(CommandError::NoListen)?;
    let mut service = ServiceSpec::new(ident, socket_addr(listen)?);
    apply_service_args(&mut service, args)?;
    spec.services.push(service);
    Ok(())
}

fn edit_service(spec: &mut TableSpec, args: &ServiceArgs) -> Result<(), CommandError> {
    let service = service_mut(spec, &args.ident)?;
    if let Some(listen) = &args.listen {
        service.listen = socket_addr(listen)?;
    }
    apply_service_args(service, args)
}

fn apply_service_args(service: &mut ServiceSpec, args: &ServiceArgs) -> Result<(), CommandError> {
    if let Some(name) = &args.scheduler {
        let kind = validate::scheduler(name)?;
        if kind != service.scheduler && args.sched_opts.is_none() {
            // Options belong to the algorithm they were given for.
            service.sched_opts.clear();
        }
        service.scheduler = kind;
    }
    if let Some(options) = &args.sched_opts {
        service.sched_opts = options.clone();
    }
    if let Some(protocol) = &args.protocol {
        service.protocol = validate::protocol(protocol)?;
    }
    if let Some(proto) = &args.forwarded_proto {
        service.forwarded_proto = validate::forwarded_proto(proto)?;
    }
    if let Some(seconds) = args.persistent {
        service.persistent = validate::persistence(&seconds.to_string())?;
    }
    if let Some(size) = &args.max_body {
        service.max_body = validate::max_body(size)?;
    }
    apply_health_args(&mut service.health, args).map_err(TableError::BadHealthOption)?;
    if let Some(retries) = args.retries {
        service.health.retries = validate::retries(&retries.to_string())?;
    }
    if let Some(slowstart) = &args.slowstart {
        service.health.slowstart = validate::slowstart(slowstart)?;
    }
    if let Some(limits) = &args.limits {
        service.conn_limits.apply(limits)?;
    }
    Ok(())
}

/// A server's `max_conns`, through the validator the file uses.
fn server_max_conns(n: u32) -> Result<u32, CommandError> {
    Ok(conn_limits::max_conns(&n.to_string())?)
}

/// `--check` and `--agent` replace (or remove), `--passive` changes the
/// options it gives.
fn apply_health_args(health: &mut HealthSpec, args: &ServiceArgs) -> Result<(), OptionError> {
    if let Some(text) = &args.check {
        health.check = health_opts::optional("check", text, health_opts::check)?;
    }
    if let Some(text) = &args.agent {
        health.agent = health_opts::optional("agent", text, health_opts::agent)?;
    }
    if let Some(text) = &args.passive {
        let given = health_opts::listed("passive", text)?;
        health.passive = health_opts::passive(&given, &health.passive)?;
    }
    Ok(())
}

fn del_server(spec: &mut TableSpec, ident: &str, server: &str) -> Result<(), CommandError> {
    let service = service_mut(spec, ident)?;
    let addr = service.server_named(server)?;
    let before = service.servers.len();
    service.servers.retain(|s| s.addr != addr);
    if service.servers.len() == before {
        return Err(CommandError::NoServer(ident.to_string(), addr));
    }
    // The server leaves every rule and the default set with it.
    for rule in &mut service.rules {
        rule.servers.retain(|a| *a != addr);
    }
    service.rules.retain(|rule| !rule.servers.is_empty());
    if let Some(set) = &mut service.default {
        set.retain(|a| *a != addr);
        if set.is_empty() {
            service.default = None;
        }
    }
    Ok(())
}

fn add_rule(spec: &mut TableSpec, args: &RuleArgs) -> Result<(), CommandError> {
    let service = service_mut(spec, &args.ident)?;
    let addr = member(service, &args.server)?;
    let when = args.when()?;
    let groups = validate::rule_match(&when)?;
    if let Some(group) = args.match_group {
        validate::rule_group(group, &when, groups)?;
    }
    if let Some(rule) = service.rules.iter_mut().find(|r| r.when == when) {
        if rule.servers.contains(&addr) {
            return Err(CommandError::DuplicateRuleServer(
                args.ident.clone(),
                when.to_string(),
                addr,
            ));
        }
        rule.servers.push(addr);
        if args.match_group.is_some() {
            rule.match_group = args.match_group;
        }
        return Ok(());
    }
    let rule = RuleSpec {
        when,
        servers: vec![addr],
        match_group: args.match_group,
    };
    // A new rule is tried after the existing ones, but before KTCPVS's
    // default `.*`, which stays last whatever order rules are typed in.
    let at = service
        .rules
        .iter()
        .position(|r| r.when.is_catch_all())
        .unwrap_or(service.rules.len());
    service.rules.insert(at, rule);
    Ok(())
}

fn del_rule(spec: &mut TableSpec, args: &RuleArgs) -> Result<(), CommandError> {
    let service = service_mut(spec, &args.ident)?;
    let addr = service.server_named(&args.server)?;
    let when = args.when()?;
    let missing = || CommandError::NoRule(args.ident.clone(), when.to_string(), addr);
    let index = service
        .rules
        .iter()
        .position(|r| r.when == when && r.servers.contains(&addr))
        .ok_or_else(missing)?;
    let rule = &mut service.rules[index];
    rule.servers.retain(|a| *a != addr);
    if rule.servers.is_empty() {
        service.rules.remove(index);
    }
    Ok(())
}

/// The server of service `ident` named `server` moves to `address`, in
/// the rules and default set that name it too.
fn readdress(
    spec: &mut TableSpec,
    ident: &str,
    server: &str,
    address: &str,
) -> Result<(), CommandError> {
    let service = service_mut(spec, ident)?;
    let new = validate::server(address)?;
    let named = service
        .servers
        .iter()
        .position(|s| s.is_named(server))
        .ok_or_else(|| TableError::UnknownServerName {
            service: service.ident.clone(),
            server: server.to_string(),
        })?;
    let old = service.servers[named].addr;
    if old == new {
        return Ok(());
    }
    if service.servers.iter().any(|s| s.addr == new) {
        return Err(CommandError::DuplicateServer(ident.to_string(), new));
    }
    service.servers[named].addr = new;
    let rules = service.rules.iter_mut().flat_map(|r| &mut r.servers);
    for addr in rules.chain(service.default.iter_mut().flatten()) {
        if *addr == old {
            *addr = new;
        }
    }
    Ok(())
}

fn set_enabled(
    spec: &mut TableSpec,
    ident: Option<&str>,
    enabled: bool,
) -> Result<(), CommandError> {
    match ident {
        Some(ident) => service_mut(spec, ident)?.enabled = enabled,
        None => spec.services.iter_mut().for_each(|s| s.enabled = enabled),
    }
    Ok(())
}

fn service_index(spec: &TableSpec, ident: &str) -> Result<usize, CommandError> {
    spec.services
        .iter()
        .position(|s| s.ident.as_str() == ident)
        .ok_or_else(|| CommandError::NoService(ident.to_string()))
}

fn service_mut<'a>(
    spec: &'a mut TableSpec,
    ident: &str,
) -> Result<&'a mut ServiceSpec, CommandError> {
    let index = service_index(spec, ident)?;
    Ok(&mut spec.services[index])
}

/// `server` as an address that must already be a real server of `service`.
fn member(service: &ServiceSpec, server: &str) -> Result<ServerAddr, CommandError> {
    let addr = service.server_named(server)?;
    if service.servers.iter().any(|s| s.addr == addr) {
        Ok(addr)
    } else {
        Err(CommandError::NoServer(service.ident.to_string(), addr))
    }
}

fn socket_addr(text: &str) -> Result<SocketAddr, CommandError> {
    Ok(validate::address(text)?)
}

fn weight(value: u32) -> Result<Weight, CommandError> {
    Ok(validate::weight(&value.to_string())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::SchedulerKind;

    fn run(spec: &mut TableSpec, verbs: &[Verb]) -> Result<(), CommandError> {
        verbs.iter().try_for_each(|v| v.apply(spec))
    }

    fn server(ident: &str, addr: &str, weight: Option<u32>) -> ServerArgs {
        ServerArgs {
            ident: ident.into(),
            server: addr.into(),
            weight,
            state: None,
            max_conns: None,
        }
    }

    /// The arguments of `-A` or `-E` for `ident` that change nothing else.
    fn args(ident: &str) -> ServiceArgs {
        ServiceArgs {
            ident: ident.into(),
            ..Default::default()
        }
    }

    fn rule(ident: &str, pattern: &str, addr: &str) -> Verb {
        Verb::AddRule(RuleArgs {
            ident: ident.into(),
            pattern: pattern.into(),
            server: addr.into(),
            ..RuleArgs::default()
        })
    }

    /// The KTCPVS manual's example, typed as its verbs.
    fn manual() -> TableSpec {
        let mut spec = TableSpec::default();
        let mut verbs = vec![Verb::AddService(ServiceArgs {
            ident: "web".into(),
            listen: Some("0.0.0.0:80".into()),
            scheduler: Some("http".into()),
            ..Default::default()
        })];
        for host in ["192.168.10.1:80", "192.168.10.2:80", "192.168.10.3:80"] {
            verbs.push(Verb::AddServer(server("web", host, None)));
        }
        verbs.push(rule("web", "^/cgi-bin/", "192.168.10.1:80"));
        verbs.push(rule("web", CATCH_ALL, "192.168.10.3:80"));
        verbs.push(rule("web", "^/images/", "192.168.10.2:80"));
        run(&mut spec, &verbs).unwrap();
        spec
    }

    #[test]
    fn manual_example_builds_rules_with_catch_all_last() {
        let spec = manual();
        let web = &spec.services[0];
        assert_eq!(web.scheduler, SchedulerKind::Wlc);
        let patterns: Vec<String> = web.rules.iter().map(|r| r.when.to_string()).collect();
        assert_eq!(patterns, ["^/cgi-bin/", "^/images/", ".*"]);
        assert_eq!(
            web.servers.iter().map(|s| s.weight).collect::<Vec<_>>(),
            [Weight(1); 3]
        );
    }

    #[test]
    fn same_pattern_adds_a_server_to_the_rule() {
        let mut spec = manual();
        rule("web", "^/images/", "192.168.10.3:80")
            .apply(&mut spec)
            .unwrap();
        assert_eq!(spec.services[0].rules[1].servers.len(), 2);
        let again = rule("web", "^/images/", "192.168.10.3:80").apply(&mut spec);
        assert!(matches!(again, Err(CommandError::DuplicateRuleServer(..))));
    }

    /// Two rules with the same pattern but other hosts are two rules; a
    /// rule is added to and deleted from by all its conditions.
    #[test]
    fn rules_are_named_by_pattern_host_and_headers() {
        let mut spec = manual();
        let on = |host: Option<&str>, headers: &[&str], addr: &str| RuleArgs {
            ident: "web".into(),
            pattern: "^/images/".into(),
            server: addr.into(),
            host: host.map(str::to_string),
            headers: headers.iter().map(|h| h.to_string()).collect(),
            ..RuleArgs::default()
        };
        let add = |spec: &mut TableSpec, args: RuleArgs| Verb::AddRule(args).apply(spec);
        add(&mut spec, on(Some("^img\\."), &[], "192.168.10.1:80")).unwrap();
        add(&mut spec, on(Some("^static\\."), &[], "192.168.10.1:80")).unwrap();
        add(
            &mut spec,
            on(None, &["X-B: 2", "x-a: 1"], "192.168.10.1:80"),
        )
        .unwrap();
        // The same conditions, headers in another order: the same rule.
        add(&mut spec, on(None, &["x-a:1", "X-B: 2"], "192.168.10.3:80")).unwrap();
        let rules: Vec<String> = spec.services[0]
            .rules
            .iter()
            .map(|r| r.when.to_string())
            .collect();
        assert_eq!(
            rules,
            [
                "^/cgi-bin/",
                "^/images/",
                "^/images/ host ^img\\.",
                "^/images/ host ^static\\.",
                "^/images/ header x-a: 1 header x-b: 2",
                ".*",
            ]
        );
        assert_eq!(spec.services[0].rules[4].servers.len(), 2);
        let host_only = RuleArgs {
            pattern: String::new(),
            ..on(Some("^img\\."), &[], "192.168.10.2:80")
        };
        add(&mut spec, host_only.clone()).unwrap();
        assert_eq!(spec.services[0].rules[5].when.pattern, None);
        Verb::DelRule(on(Some("^img\\."), &[], "192.168.10.1:80"))
            .apply(&mut spec)
            .unwrap();
        let gone = Verb::DelRule(on(Some("^img\\."), &[], "192.168.10.1:80")).apply(&mut spec);
        assert_eq!(
            gone.unwrap_err().to_string(),
            "service `web` has no rule `^/images/ host ^img\\.` with server 192.168.10.1:80"
        );
        let nothing = RuleArgs {
            pattern: String::new(),
            ..on(None, &[], "192.168.10.2:80")
        };
        assert_eq!(
            add(&mut spec, nothing).unwrap_err().to_string(),
            "an empty pattern matches everything; use `.*` for the default rule"
        );
        let no_colon = on(None, &["X-Tenant"], "192.168.10.2:80");
        assert!(add(&mut spec, no_colon).is_err());
        let line = serde_json::to_string(&Verb::AddRule(host_only)).unwrap();
        assert_eq!(
            line,
            r#"{"verb":"add-rule","ident":"web","pattern":"","server":"192.168.10.2:80","host":"^img\\."}"#
        );
        // An old client's line, without the new fields, still reads.
        let old: Verb = serde_json::from_str(
            r#"{"verb":"add-rule","ident":"web","pattern":"^/a","server":"192.168.10.2:80"}"#,
        )
        .unwrap();
        assert!(matches!(old, Verb::AddRule(RuleArgs { host: None, .. })));
    }

    /// A server added by name is resolved once; rules, the default set and
    /// the other verbs name it by that name; a new address moves it, in its
    /// rules too, and keeps its weight.
    #[test]
    fn servers_by_name() {
        use crate::resolve::tests::Names;
        let names = Names::with(&[("app.example", &["::1", "10.0.0.7"])]);
        let mut spec = manual();
        let apply = |spec: &mut TableSpec, verb: Verb| verb.apply_with(spec, &names);
        apply(
            &mut spec,
            Verb::AddServer(server("web", "app.example:8080", Some(3))),
        )
        .unwrap();
        let added = spec.services[0].servers.last().unwrap().clone();
        assert_eq!(added.addr.to_string(), "10.0.0.7:8080", "IPv4 first");
        assert_eq!(added.host.as_deref(), Some("app.example:8080"));
        apply(&mut spec, rule("web", "^/app/", "APP.example:8080")).unwrap();
        let default = Verb::AddDefault {
            ident: "web".into(),
            server: "app.example:8080".into(),
        };
        apply(&mut spec, default).unwrap();
        let unknown = apply(&mut spec, rule("web", "^/x/", "other.example:8080"));
        assert_eq!(
            unknown.unwrap_err().to_string(),
            "`other.example:8080` is not a real server of service `web`"
        );
        let twice = apply(
            &mut spec,
            Verb::AddServer(server("web", "app.example:8080", None)),
        );
        assert!(matches!(twice, Err(CommandError::DuplicateServer(..))));
        let unresolved = apply(
            &mut spec,
            Verb::AddServer(server("web", "x.invalid:80", None)),
        );
        assert_eq!(
            unresolved.unwrap_err().to_string(),
            "cannot resolve server `x.invalid:80`: Name or service not known"
        );
        let moved = Verb::Readdress {
            ident: "web".into(),
            server: "app.example:8080".into(),
            address: "10.0.0.8:8080".into(),
        };
        apply(&mut spec, moved).unwrap();
        let web = &spec.services[0];
        let new: ServerAddr = validate::server("10.0.0.8:8080").unwrap();
        let server = web.servers.last().unwrap();
        assert_eq!((server.addr, server.weight), (new, Weight(3)));
        assert_eq!(web.rules[2].servers, [new]);
        assert_eq!(web.default, Some(vec![new]));
        let onto_another = Verb::Readdress {
            ident: "web".into(),
            server: "app.example:8080".into(),
            address: "192.168.10.1:80".into(),
        };
        assert!(matches!(
            apply(&mut spec, onto_another),
            Err(CommandError::DuplicateServer(..))
        ));
        apply(
            &mut spec,
            Verb::DelServer {
                ident: "web".into(),
                server: "app.example:8080".into(),
            },
        )
        .unwrap();
        assert_eq!(spec.services[0].rules.len(), 3);
        assert_eq!(spec.services[0].default, None);
    }

    /// A reloaded file whose server name does not resolve for the moment
    /// keeps the address the running table has for it; a new name that
    /// does not resolve is refused.
    #[test]
    fn a_reload_keeps_the_address_of_a_name_that_fails() {
        use crate::resolve::tests::Names;
        let file = |name: &str| Verb::Load {
            source: "t.toml".into(),
            text: format!(
                "[[service]]\nident = \"web\"\nlisten = \"127.0.0.1:80\"\n\
                 [[service.server]]\naddress = \"{name}:80\"\n"
            ),
        };
        let mut spec = TableSpec::default();
        let up = Names::with(&[("app.example", &["10.0.0.7"])]);
        file("app.example").apply_with(&mut spec, &up).unwrap();
        let down = Names::default();
        file("app.example").apply_with(&mut spec, &down).unwrap();
        assert_eq!(spec.services[0].servers[0].addr.to_string(), "10.0.0.7:80");
        let refused = file("new.example")
            .apply_with(&mut spec, &down)
            .unwrap_err();
        assert_eq!(
            refused.to_string(),
            "t.toml:5: service[0].server[0].address: cannot resolve server `new.example:80`: \
             Name or service not known"
        );
    }

    #[test]
    fn weight_edit_and_bounds() {
        let mut spec = manual();
        Verb::EditServer(server("web", "192.168.10.2:80", Some(0)))
            .apply(&mut spec)
            .unwrap();
        assert_eq!(spec.services[0].servers[1].weight, Weight(0));
        let too_big =
            Verb::EditServer(server("web", "192.168.10.2:80", Some(65536))).apply(&mut spec);
        assert_eq!(
            too_big,
            Err(CommandError::Table(TableError::WeightOutOfRange(65536)))
        );
        let max = Verb::AddServer(server("web", "10.0.0.9:80", Some(65535))).apply(&mut spec);
        assert_eq!(max, Ok(()));
    }

    #[test]
    fn deleting_a_server_removes_it_from_rules() {
        let mut spec = manual();
        Verb::DelServer {
            ident: "web".into(),
            server: "192.168.10.1:80".into(),
        }
        .apply(&mut spec)
        .unwrap();
        let patterns: Vec<String> = spec.services[0]
            .rules
            .iter()
            .map(|r| r.when.to_string())
            .collect();
        assert_eq!(patterns, ["^/images/", ".*"]);
    }

    #[test]
    fn errors_for_bad_input() {
        let mut spec = manual();
        let cases: Vec<(Verb, &str)> = vec![
            (
                Verb::DelService {
                    ident: "nope".into(),
                },
                "no service `nope`",
            ),
            (
                Verb::AddService(ServiceArgs {
                    listen: Some("0.0.0.0:81".into()),
                    ..args("web")
                }),
                "service `web` already exists",
            ),
            (
                Verb::AddServer(server("web", "not an address:80", None)),
                "`not an address:80` is not a real server: write IP:PORT or NAME:PORT, \
                 e.g. 192.168.10.1:80 or app1.example.com:80",
            ),
            (
                Verb::AddServer(server("web", "192.168.10.1:80", None)),
                "server 192.168.10.1:80 is already in service `web`",
            ),
            (
                rule("web", "^/x/", "10.9.9.9:80"),
                "service `web` has no real server 10.9.9.9:80",
            ),
            (
                Verb::EditService(ServiceArgs {
                    scheduler: Some("fastest".into()),
                    ..args("web")
                }),
                "unknown scheduler `fastest` (known: rr, wrr, lc, wlc, sed, nq, sh, chash, lard, lardr)",
            ),
            (
                Verb::AddService(args("nolisten")),
                "a new service needs an address to listen on (-l address:port or -P port)",
            ),
        ];
        for (verb, message) in cases {
            let before = spec.clone();
            let error = verb.apply(&mut spec).unwrap_err();
            assert_eq!(error.to_string(), message);
            assert_eq!(
                spec, before,
                "a failed verb left the table unchanged: {verb:?}"
            );
        }
    }

    #[test]
    fn batch_is_all_or_nothing_at_the_caller() {
        let mut spec = manual();
        let batch = Verb::Batch {
            verbs: vec![
                Verb::AddServer(server("web", "10.0.0.1:80", None)),
                Verb::AddServer(server("web", "10.0.0.1:80", None)),
            ],
        };
        let error = batch.apply(&mut spec.clone()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "command 2 of the batch: server 10.0.0.1:80 is already in service `web`"
        );
        let nested = Verb::Batch {
            verbs: vec![Verb::List { ident: None }],
        };
        assert!(nested.apply(&mut spec).is_err());
    }

    #[test]
    fn wire_format_is_one_flat_json_object() {
        let request = Request {
            id: 7,
            verb: Verb::AddServer(server("web", "127.0.0.1:9001", Some(2))),
        };
        let line = serde_json::to_string(&request).unwrap();
        assert_eq!(
            line,
            r#"{"id":7,"verb":"add-server","ident":"web","server":"127.0.0.1:9001","weight":2}"#
        );
        assert_eq!(serde_json::from_str::<Request>(&line).unwrap(), request);
        let flush: Request = serde_json::from_str(r#"{"id":1,"verb":"flush"}"#).unwrap();
        assert_eq!(flush.verb, Verb::Flush);
    }

    #[test]
    fn start_stop_one_or_all() {
        let mut spec = manual();
        Verb::Stop { ident: None }.apply(&mut spec).unwrap();
        assert!(!spec.services[0].enabled);
        Verb::Start {
            ident: Some("web".into()),
        }
        .apply(&mut spec)
        .unwrap();
        assert!(spec.services[0].enabled);
    }

    #[test]
    fn health_options_set_change_and_remove() {
        let mut spec = manual();
        let edit = |args: ServiceArgs| Verb::EditService(args);
        let health = |spec: &TableSpec| spec.services[0].health.clone();
        edit(ServiceArgs {
            check: Some("type=http,path=/health,rise=5".into()),
            agent: Some("port=9999".into()),
            passive: Some("max_fails=3,on_5xx=yes".into()),
            retries: Some(4),
            slowstart: Some("30s".into()),
            ..args("web")
        })
        .apply(&mut spec)
        .unwrap();
        let set = health(&spec);
        assert_eq!(
            set.check.as_ref().map(ToString::to_string).as_deref(),
            Some("type=http,rise=5,path=/health")
        );
        assert_eq!(set.agent.as_ref().map(|a| a.port), Some(9999));
        assert_eq!((set.passive.max_fails, set.passive.on_5xx), (3, true));
        assert_eq!((set.retries, set.slowstart.as_secs()), (4, 30));
        // --check replaces the whole check; --passive changes the keys given.
        edit(ServiceArgs {
            check: Some("type=tcp".into()),
            passive: Some("on_5xx=no".into()),
            ..args("web")
        })
        .apply(&mut spec)
        .unwrap();
        let changed = health(&spec);
        assert_eq!(changed.check.map(|c| c.rise), Some(2));
        assert_eq!(
            (changed.passive.max_fails, changed.passive.on_5xx),
            (3, false)
        );
        assert_eq!(changed.agent, set.agent, "the agent was not given");
        edit(ServiceArgs {
            check: Some("none".into()),
            agent: Some("none".into()),
            slowstart: Some("0s".into()),
            ..args("web")
        })
        .apply(&mut spec)
        .unwrap();
        let removed = health(&spec);
        assert_eq!((removed.check, removed.agent), (None, None));
        assert!(removed.slowstart.is_zero());
        let before = spec.clone();
        let refused = edit(ServiceArgs {
            passive: Some("max_fails=3,typo=1".into()),
            ..args("web")
        })
        .apply(&mut spec);
        assert_eq!(
            refused.unwrap_err().to_string(),
            "unknown option `typo` (passive takes max_fails, fail_timeout, on_5xx)"
        );
        assert_eq!(spec.services[0].health, before.services[0].health);
    }

    #[test]
    fn server_state_on_add_and_edit() {
        let mut spec = manual();
        let with_state = |addr: &str, state| ServerArgs {
            state: Some(state),
            ..server("web", addr, None)
        };
        Verb::EditServer(with_state("192.168.10.2:80", AdminState::Drain))
            .apply(&mut spec)
            .unwrap();
        Verb::AddServer(with_state("10.0.0.9:80", AdminState::Maint))
            .apply(&mut spec)
            .unwrap();
        let states: Vec<AdminState> = spec.services[0].servers.iter().map(|s| s.state).collect();
        use AdminState::*;
        assert_eq!(states, [Ready, Drain, Ready, Maint]);
        // A weight edit leaves the state as it is.
        Verb::EditServer(server("web", "192.168.10.2:80", Some(5)))
            .apply(&mut spec)
            .unwrap();
        assert_eq!(spec.services[0].servers[1].state, Drain);
        let line = serde_json::to_string(&Verb::EditServer(with_state("10.0.0.9:80", Drain)));
        assert!(line.unwrap().ends_with(r#""state":"drain"}"#));
    }
}
