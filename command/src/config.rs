//! The TOML configuration file (and the state file, its services only):
//! daemon options and the rule table, read and written. Values go through the
//! validators of [`crate::validate`], as tcpvsadm's do.
//!
//! Errors name the file, the line and the key, so an operator can go straight
//! to the mistake.

use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::conn_limits::{self, ServiceLimits};
use crate::health::{duration_text, AdminState, AgentSpec, CheckSpec, HealthSpec, PassiveSpec};
use crate::health_opts;
use crate::options::{OptionError, Options};
use crate::resolve::{self, Resolve};
use crate::spec;
use crate::spec::{
    Limits, Protocol, RuleMatch, RuleSpec, ServerAddr, ServerSpec, ServiceSpec, Settings, Site,
    TableError, TableSpec, Timeouts, Weight,
};
use crate::validate;

/// Options of the daemon process itself (not part of the rule table).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DaemonOptions {
    /// Worker threads (one io_uring runtime each); `None`: one per core.
    pub workers: Option<usize>,
    /// A tracing filter such as `info` or `tcpvs=debug`.
    pub log_level: Option<String>,
    /// The control socket for tcpvsadm; `None`: the default path.
    pub control_socket: Option<PathBuf>,
    /// A group whose members may use the control socket besides root and
    /// the daemon's own user.
    pub control_group: Option<String>,
    /// Where the table is saved after each edit and loaded from at start.
    pub state_file: Option<PathBuf>,
    /// Where log lines go; `None`: standard error. Reopened on SIGUSR1.
    pub log_file: Option<PathBuf>,
    /// Where access lines go (on or off is the table's `access_log`
    /// setting, which a reload may change; the file only a restart).
    pub access_log: crate::AccessLog,
    /// The user and group tcpvsd runs as once its sockets are bound
    /// (started as root); `None`: as started.
    pub user: Option<String>,
    pub group: Option<String>,
    /// The admin listener (/metrics, /healthz); `None`: none.
    pub admin: Option<SocketAddr>,
    /// Whether a configuration with no service may start (tcpvsadm adds
    /// them later); refused otherwise, as a mistake.
    pub allow_empty: bool,
}

/// A loaded configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub daemon: DaemonOptions,
    pub table: TableSpec,
}

/// A configuration error, located.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}:{line}: {key}: {message}")]
    Invalid {
        file: PathBuf,
        line: usize,
        key: String,
        message: String,
    },
}

/// Parses and checks configuration text; `path` is only used in messages.
/// Servers given by name are resolved by the C library (this blocks).
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    parse_with(text, path, &resolve::System)
}

/// [`parse`], server names resolved by `resolver`.
pub fn parse_with(text: &str, path: &Path, resolver: &dyn Resolve) -> Result<Config, ConfigError> {
    let located = |span: Option<Range<usize>>, key: &str, message: String| {
        let line = span.map_or(1, |span| line_of(text, span.start));
        ConfigError::Invalid {
            file: path.to_path_buf(),
            line,
            key: key.to_string(),
            message,
        }
    };
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        let message = e.message().to_string();
        let key = key_in_message(&e).unwrap_or_else(|| "(syntax)".to_string());
        located(e.span(), &key, message)
    })?;
    let config = convert(raw, resolver)
        .map_err(|(span, key, message)| located(Some(span), &key, message))?;
    // What only the whole can tell (duplicates, patterns, rules naming
    // unknown servers); its site is mapped back to a line.
    if let Err((site, error)) = config.table.check() {
        return Err(at_site(text, path, site, &error));
    }
    Ok(config)
}

/// `error`, found at `site` of the table that `text` describes, located at
/// its line (for errors found after parsing, such as a scheduler's options).
pub fn at_site(text: &str, path: &Path, site: Site, error: &TableError) -> ConfigError {
    let (span, key) = site_span(text, site);
    ConfigError::Invalid {
        file: path.to_path_buf(),
        line: line_of(text, span.start),
        key,
        message: error.to_string(),
    }
}

fn key_in_message(error: &toml::de::Error) -> Option<String> {
    // serde names the offending field in its message ("unknown field `x`").
    let message = error.message();
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(message[start..start + len].to_string())
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Re-reads the raw file to find where a table-level error sits.
fn site_span(text: &str, site: Site) -> (Range<usize>, String) {
    let raw: Option<RawConfig> = toml::from_str(text).ok();
    let service = |i: usize| raw.as_ref().and_then(|r| r.service.get(i));
    let fallback = (0..0, "service".to_string());
    match site {
        Site::Service(i) => service(i).map_or(fallback, |s| {
            (s.ident.span(), format!("service[{i}].ident"))
        }),
        Site::Server(i, j) => service(i)
            .and_then(|s| s.server.get(j))
            .map_or(fallback, |s| {
                (
                    s.address.span(),
                    format!("service[{i}].server[{j}].address"),
                )
            }),
        Site::Rule(i, j) => service(i)
            .and_then(|s| s.rule.get(j))
            .map_or(fallback, |r| (r.span(), format!("service[{i}].rule[{j}]"))),
        Site::Default(i) => service(i)
            .and_then(|s| s.default.as_ref())
            .map_or(fallback, |d| (d.span(), format!("service[{i}].default"))),
        Site::Check(i) => service(i).map_or(fallback, |s| {
            let key = format!("service[{i}].check.type");
            (option_span(s.check.as_ref(), "type", &s.ident), key)
        }),
    }
}

type Located = (Range<usize>, String, String);

fn convert(raw: RawConfig, resolver: &dyn Resolve) -> Result<Config, Located> {
    let mut settings = Settings::default();
    if let Some(limits) = raw.limits {
        settings.limits = convert_limits(limits)?;
    }
    if let Some(timeouts) = raw.timeouts {
        settings.timeouts = convert_timeouts(timeouts)?;
    }
    let access_log = match &raw.access_log {
        Some(value) => access_log(value)?,
        None => crate::AccessLog::default(),
    };
    settings.access_log = access_log.is_on();
    if let Some(format) = &raw.log_format {
        settings.log_format = format
            .get_ref()
            .parse()
            .map_err(|e: String| (format.span(), "log_format".to_string(), e))?;
    }
    if let Some(merge_slashes) = raw.merge_slashes {
        settings.merge_slashes = merge_slashes;
    }
    if let Some(pool) = raw.pool {
        if let Some(n) = pool.per_server {
            settings.pool_per_server = count(&n, "pool.per_server", 0..=100_000)?;
        }
    }
    if let Some(interval) = &raw.resolve_interval {
        let text = scalar_text(interval.get_ref());
        settings.resolve_interval = validate::resolve_interval(&text)
            .map_err(|e| invalid(interval, "resolve_interval", e))?;
    }
    if let Some(n) = &raw.max_conns {
        settings.max_conns = conn_limits::max_conns(&n.get_ref().to_string())
            .map_err(|e| invalid(n, "max_conns", e))?;
    }
    let workers = raw
        .workers
        .map(|n| count(&n, "workers", 1..=1024))
        .transpose()?;
    let services = raw
        .service
        .into_iter()
        .enumerate()
        .map(|(i, s)| convert_service(i, s, resolver))
        .collect::<Result<_, _>>()?;
    Ok(Config {
        daemon: DaemonOptions {
            workers,
            log_level: raw.log_level,
            control_socket: raw.control_socket,
            control_group: raw.control_group,
            state_file: raw.state_file,
            log_file: raw.log_file,
            access_log,
            user: raw.user,
            group: raw.group,
            allow_empty: raw.allow_empty.unwrap_or(false),
            admin: raw
                .admin
                .map(|addr| socket_addr(&addr, "admin"))
                .transpose()?,
        },
        table: TableSpec { settings, services },
    })
}

fn convert_limits(raw: RawLimits) -> Result<Limits, Located> {
    let mut limits = Limits::default();
    if let Some(n) = raw.max_head_bytes {
        limits.max_head_bytes = count(&n, "limits.max_head_bytes", 1024..=1024 * 1024)?;
    }
    if let Some(n) = raw.max_headers {
        limits.max_headers = count(&n, "limits.max_headers", 1..=10_000)?;
    }
    // Bodies and responses (issue 17).
    if let Some(n) = raw.body_buffer {
        limits.body_buffer = count(&n, "limits.body_buffer", 0..=1024 * 1024)?;
    }
    if let Some(n) = raw.max_response_head_bytes {
        let key = "limits.max_response_head_bytes";
        limits.max_response_head_bytes = count(&n, key, 1024..=1024 * 1024)?;
    }
    if let Some(n) = raw.max_response_headers {
        limits.max_response_headers = count(&n, "limits.max_response_headers", 1..=10_000)?;
    }
    Ok(limits)
}

fn convert_timeouts(raw: RawTimeouts) -> Result<Timeouts, Located> {
    let mut t = Timeouts::default();
    let fields = [
        (raw.head, "timeouts.head", &mut t.head),
        (raw.keepalive, "timeouts.keepalive", &mut t.keepalive),
        (raw.connect, "timeouts.connect", &mut t.connect),
        (raw.server, "timeouts.server", &mut t.server),
        (raw.client, "timeouts.client", &mut t.client),
        (raw.pool_idle, "timeouts.pool_idle", &mut t.pool_idle),
        (raw.drain, "timeouts.drain", &mut t.drain),
        (raw.body, "timeouts.body", &mut t.body),
        (raw.tunnel, "timeouts.tunnel", &mut t.tunnel),
    ];
    for (value, key, slot) in fields {
        if let Some(value) = value {
            *slot = validate::duration(value.get_ref()).map_err(|e| invalid(&value, key, e))?;
        }
    }
    Ok(t)
}

fn convert_service(
    i: usize,
    raw: RawService,
    resolver: &dyn Resolve,
) -> Result<ServiceSpec, Located> {
    let key = |name: &str| format!("service[{i}].{name}");
    let ident =
        validate::ident(raw.ident.get_ref()).map_err(|e| invalid(&raw.ident, &key("ident"), e))?;
    let listen = socket_addr(&raw.listen, &key("listen"))?;
    let protocol = match &raw.protocol {
        None => Protocol::Http,
        Some(p) => validate::protocol(p.get_ref()).map_err(|e| invalid(p, &key("protocol"), e))?,
    };
    let scheduler = match &raw.scheduler {
        None => ServiceSpec::DEFAULT_SCHEDULER,
        Some(s) => {
            validate::scheduler(s.get_ref()).map_err(|e| invalid(s, &key("scheduler"), e))?
        }
    };
    let servers: Vec<ServerSpec> = raw
        .server
        .iter()
        .enumerate()
        .map(|(j, s)| {
            let at = key(&format!("server[{j}]"));
            let weight = match &s.weight {
                None => Weight::DEFAULT,
                Some(w) => validate::weight(&w.get_ref().to_string())
                    .map_err(|e| invalid(w, &format!("{at}.weight"), e))?,
            };
            let state = match &s.state {
                None => AdminState::Ready,
                Some(state) => validate::admin_state(state.get_ref())
                    .map_err(|e| invalid(state, &format!("{at}.state"), e))?,
            };
            let max_conns = match &s.max_conns {
                None => 0,
                Some(n) => conn_limits::max_conns(&n.get_ref().to_string())
                    .map_err(|e| invalid(n, &format!("{at}.max_conns"), e))?,
            };
            let server = resolve::server(resolver, s.address.get_ref(), weight)
                .map_err(|e| invalid(&s.address, &format!("{at}.address"), e))?;
            Ok(ServerSpec {
                state,
                max_conns,
                ..server
            })
        })
        .collect::<Result<_, Located>>()?;
    // Rules and the default set name servers of the service, by address
    // or by the name a server was given.
    let named = &|text: &str| spec::server_named(&ident, &servers, text);
    let rules = raw
        .rule
        .iter()
        .enumerate()
        .map(|(j, r)| {
            let at = key(&format!("rule[{j}].servers"));
            let match_group = r
                .match_group
                .as_ref()
                .map(|g| {
                    validate::match_group(&g.get_ref().to_string())
                        .map_err(|e| invalid(g, &key(&format!("rule[{j}].match_group")), e))
                })
                .transpose()?;
            Ok(RuleSpec {
                when: rule_match(r, &key(&format!("rule[{j}]")))?,
                servers: server_list(&r.servers, &at, named)?,
                match_group,
            })
        })
        .collect::<Result<_, Located>>()?;
    let default = match &raw.default {
        // tcpvsadm cannot make an empty set (removing the last server makes
        // it every server again), so neither can the file.
        Some(d) if d.get_ref().is_empty() => {
            return Err(invalid(d, &key("default"), TableError::EmptyDefault))
        }
        Some(d) => Some(server_list(d.get_ref(), &key("default"), named)?),
        None => None,
    };
    let sched_opts = options_of(raw.sched_opts.as_ref());
    // Checked for the algorithm they go to, at the line of the option at fault.
    if let Err(refused) = validate::sched_opts(scheduler, &sched_opts) {
        let (span, key) = option_at(&raw, &key("sched_opts"), raw.sched_opts.as_ref(), &refused);
        let error = refused.of_service(&ident, scheduler);
        return Err((span, key, error.to_string()));
    }
    let health = convert_health(&raw, &key)?;
    let persistent = match &raw.persistent {
        None => None,
        Some(p) => {
            validate::persistence(p.get_ref()).map_err(|e| invalid(p, &key("persistent"), e))?
        }
    };
    let forwarded_proto = match &raw.forwarded_proto {
        None => None,
        Some(f) => validate::forwarded_proto(f.get_ref())
            .map_err(|e| invalid(f, &key("forwarded_proto"), e))?,
    };
    let max_body = match &raw.max_body {
        None => None,
        Some(size) => {
            let text = scalar_text(size.get_ref());
            validate::max_body(&text).map_err(|e| invalid(size, &key("max_body"), e))?
        }
    };
    let conn_limits = convert_conn_limits(&raw, &key)?;
    Ok(ServiceSpec {
        ident,
        listen,
        protocol,
        scheduler,
        sched_opts,
        enabled: raw.enabled.unwrap_or(true),
        persistent,
        forwarded_proto,
        max_body,
        servers,
        rules,
        default,
        health,
        conn_limits,
    })
}

/// A service's `max_conns`, `max_queue`, `queue_timeout` and per-source
/// limits, each refused at its line.
fn convert_conn_limits(
    raw: &RawService,
    key: &dyn Fn(&str) -> String,
) -> Result<ServiceLimits, Located> {
    let given = [
        ("max_conns", &raw.max_conns),
        ("max_queue", &raw.max_queue),
        ("queue_timeout", &raw.queue_timeout),
        ("max_conns_per_source", &raw.max_conns_per_source),
        ("rate_per_source", &raw.rate_per_source),
        ("burst_per_source", &raw.burst_per_source),
    ];
    let mut limits = ServiceLimits::default();
    for (name, value) in given {
        if let Some(value) = value {
            let text = match value.get_ref() {
                toml::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            limits
                .set(name, &text)
                .map_err(|e| invalid(value, &key(name), e))?;
        }
    }
    limits
        .check()
        .map_err(|e| invalid(&raw.ident, &key("burst_per_source"), e))?;
    Ok(limits)
}

/// A rule's `pattern`, `host` and `header` (one condition, or a list of
/// them), each refused at its line.
fn rule_match(raw: &RawRule, key: &str) -> Result<RuleMatch, Located> {
    let host = raw
        .host
        .as_ref()
        .map(|h| {
            validate::host_pattern(h.get_ref()).map_err(|e| invalid(h, &format!("{key}.host"), e))
        })
        .transpose()?;
    let header_key = format!("{key}.header");
    let header = |value: &Spanned<toml::Value>, text: &toml::Value| match text {
        toml::Value::String(text) => {
            validate::header_match(text).map_err(|e| invalid(value, &header_key, e))
        }
        other => Err((
            value.span(),
            header_key.clone(),
            format!(
                "`{other}` is not a header condition: write \"NAME: PATTERN\" or a list of them"
            ),
        )),
    };
    let headers = match raw.header.as_ref() {
        None => Vec::new(),
        Some(value) => match value.get_ref() {
            toml::Value::Array(list) => list
                .iter()
                .map(|item| header(value, item))
                .collect::<Result<_, _>>()?,
            single => vec![header(value, single)?],
        },
    };
    let pattern = raw.pattern.as_ref().map(|p| p.get_ref().clone());
    Ok(RuleMatch::new(pattern, host, headers))
}

/// `[service.check]`, `[service.agent]`, `[service.passive]`, `retries`
/// and `slowstart`.
fn convert_health(raw: &RawService, key: &dyn Fn(&str) -> String) -> Result<HealthSpec, Located> {
    // Each table read as tcpvsadm reads its option, refused at the line of
    // the option at fault.
    let table = |name: &str, table: Option<&RawOptions>, refused: OptionError| {
        let (span, key) = option_at(raw, &key(name), table, &refused);
        (span, key, refused.reason)
    };
    let check = raw
        .check
        .as_ref()
        .map(|t| health_opts::check(&options_of(Some(t))).map_err(|e| table("check", Some(t), e)))
        .transpose()?;
    let agent = raw
        .agent
        .as_ref()
        .map(|t| health_opts::agent(&options_of(Some(t))).map_err(|e| table("agent", Some(t), e)))
        .transpose()?;
    let passive = match &raw.passive {
        None => PassiveSpec::default(),
        Some(t) => health_opts::passive(&options_of(Some(t)), &PassiveSpec::default())
            .map_err(|e| table("passive", Some(t), e))?,
    };
    let retries = match &raw.retries {
        None => HealthSpec::DEFAULT_RETRIES,
        Some(n) => validate::retries(&n.get_ref().to_string())
            .map_err(|e| invalid(n, &key("retries"), e))?,
    };
    let slowstart = match &raw.slowstart {
        None => Duration::ZERO,
        Some(d) => {
            validate::slowstart(d.get_ref()).map_err(|e| invalid(d, &key("slowstart"), e))?
        }
    };
    Ok(HealthSpec {
        check,
        agent,
        passive,
        retries,
        slowstart,
    })
}

/// A table of options (`[service.sched_opts]`, `[service.check]`...) as
/// text by name, as tcpvsadm gives them.
fn options_of(table: Option<&RawOptions>) -> Options {
    table
        .into_iter()
        .flatten()
        .map(|(name, value)| {
            let text = match value.get_ref() {
                toml::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (name.get_ref().clone(), text)
        })
        .collect()
}

/// Where option `refused.option` of table `table_key` of service `raw`
/// is, and its key (the service's ident line when the option is missing).
fn option_at(
    raw: &RawService,
    table_key: &str,
    table: Option<&RawOptions>,
    refused: &OptionError,
) -> (Range<usize>, String) {
    let key = if refused.option.is_empty() {
        table_key.to_string()
    } else {
        format!("{table_key}.{}", refused.option)
    };
    let span = option_span(table, &refused.option, &raw.ident);
    (span, key)
}

/// The span of option `option`'s value in `table`, or of `fallback`.
fn option_span(
    table: Option<&RawOptions>,
    option: &str,
    fallback: &Spanned<String>,
) -> Range<usize> {
    table
        .into_iter()
        .flatten()
        .find(|(name, _)| name.get_ref() == option)
        .map_or_else(|| fallback.span(), |(_, value)| value.span())
}

/// A validator's error, at `value`'s place in the file.
/// `access_log`: `"-"`, `"off"`, a path, or the old `true` / `false`.
fn access_log(value: &Spanned<toml::Value>) -> Result<crate::AccessLog, Located> {
    let refused = |e: String| (value.span(), "access_log".to_string(), e);
    match value.get_ref() {
        toml::Value::Boolean(true) => Ok(crate::AccessLog::DaemonLog),
        toml::Value::Boolean(false) => Ok(crate::AccessLog::Off),
        toml::Value::String(text) => text.parse().map_err(refused),
        other => Err(refused(format!(
            "`{other}` is not \"-\", \"off\" or a file path"
        ))),
    }
}

fn invalid<T>(value: &Spanned<T>, key: &str, error: TableError) -> Located {
    (value.span(), key.to_string(), error.to_string())
}

/// The servers a list names, each through `named`.
fn server_list(
    list: &[Spanned<String>],
    key: &str,
    named: &dyn Fn(&str) -> Result<ServerAddr, TableError>,
) -> Result<Vec<ServerAddr>, Located> {
    list.iter()
        .map(|a| named(a.get_ref()).map_err(|e| invalid(a, key, e)))
        .collect()
}

/// A scalar's text: a string as it is, a number or boolean as written.
fn scalar_text(value: &toml::Value) -> String {
    match value {
        toml::Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn socket_addr(value: &Spanned<String>, key: &str) -> Result<SocketAddr, Located> {
    validate::address(value.get_ref()).map_err(|e| invalid(value, key, e))
}

fn count<T>(
    value: &Spanned<i64>,
    key: &str,
    range: std::ops::RangeInclusive<i64>,
) -> Result<T, Located>
where
    T: TryFrom<i64>,
{
    let n = *value.get_ref();
    if !range.contains(&n) {
        let message = format!("{n} is out of range {}..={}", range.start(), range.end());
        return Err((value.span(), key.to_string(), message));
    }
    T::try_from(n).map_err(|_| {
        (
            value.span(),
            key.to_string(),
            format!("{n} is out of range"),
        )
    })
}

/// The services of a table in the configuration format (what the state file
/// holds): loading it back gives the same services.
pub fn services_to_toml(services: &[ServiceSpec]) -> String {
    use std::fmt::Write;
    let quote = |text: &str| toml::Value::String(text.to_string()).to_string();
    let mut out = String::new();
    for service in services {
        // A server given by name is written by its name, in lists too, so
        // that the file loads again wherever the name then resolves.
        let list = |addrs: &[ServerAddr]| {
            let items: Vec<String> = addrs
                .iter()
                .map(|a| {
                    let server = service.servers.iter().find(|s| s.addr == *a);
                    quote(&server.map_or_else(|| a.to_string(), ServerSpec::as_configured))
                })
                .collect();
            format!("[{}]", items.join(", "))
        };
        let _ = writeln!(out, "[[service]]");
        let _ = writeln!(out, "ident = {}", quote(service.ident.as_str()));
        let _ = writeln!(out, "listen = {}", quote(&service.listen.to_string()));
        let _ = writeln!(out, "protocol = {}", quote(&service.protocol.to_string()));
        let _ = writeln!(out, "scheduler = {}", quote(service.scheduler.name()));
        let _ = writeln!(out, "enabled = {}", service.enabled);
        if let Some(timeout) = service.persistent {
            let _ = writeln!(
                out,
                "persistent = {}",
                quote(&format!("{}s", timeout.as_secs()))
            );
        }
        if let Some(proto) = &service.forwarded_proto {
            let _ = writeln!(out, "forwarded_proto = {}", quote(proto));
        }
        if let Some(bytes) = service.max_body {
            let _ = writeln!(out, "max_body = {}", quote(&validate::size_text(bytes)));
        }
        if let Some(default) = &service.default {
            let _ = writeln!(out, "default = {}", list(default));
        }
        for (name, value) in service.conn_limits.pairs() {
            let _ = writeln!(out, "{name} = {}", scalar(&value));
        }
        let health = &service.health;
        if health.retries != HealthSpec::DEFAULT_RETRIES {
            let _ = writeln!(out, "retries = {}", health.retries);
        }
        if !health.slowstart.is_zero() {
            let slowstart = duration_text(health.slowstart);
            let _ = writeln!(out, "slowstart = {}", quote(&slowstart));
        }
        if !service.sched_opts.is_empty() {
            let _ = writeln!(out, "[service.sched_opts]");
            for (name, value) in &service.sched_opts {
                let _ = writeln!(out, "{} = {}", quote(name), quote(value));
            }
        }
        let tables = [
            ("check", health.check.as_ref().map(CheckSpec::pairs)),
            ("agent", health.agent.as_ref().map(AgentSpec::pairs)),
            ("passive", Some(health.passive.pairs())),
        ];
        for (name, pairs) in tables {
            let Some(pairs) = pairs.filter(|p| !p.is_empty()) else {
                continue;
            };
            let _ = writeln!(out, "[service.{name}]");
            for (key, value) in pairs {
                let _ = writeln!(out, "{key} = {}", scalar(&value));
            }
        }
        for server in &service.servers {
            let _ = writeln!(out, "[[service.server]]");
            let _ = writeln!(out, "address = {}", quote(&server.as_configured()));
            let _ = writeln!(out, "weight = {}", server.weight.0);
            if server.state != AdminState::Ready {
                let _ = writeln!(out, "state = {}", quote(server.state.name()));
            }
            if server.max_conns != 0 {
                let _ = writeln!(out, "max_conns = {}", server.max_conns);
            }
        }
        for rule in &service.rules {
            let _ = writeln!(out, "[[service.rule]]");
            let when = &rule.when;
            if let Some(pattern) = &when.pattern {
                let _ = writeln!(out, "pattern = {}", quote(pattern));
            }
            if let Some(host) = &when.host {
                let _ = writeln!(out, "host = {}", quote(host));
            }
            if !when.headers.is_empty() {
                let headers: Vec<String> =
                    when.headers.iter().map(|h| quote(&h.to_string())).collect();
                let _ = writeln!(out, "header = [{}]", headers.join(", "));
            }
            let _ = writeln!(out, "servers = {}", list(&rule.servers));
            if let Some(group) = rule.match_group {
                let _ = writeln!(out, "match_group = {group}");
            }
        }
        out.push('\n');
    }
    out
}

/// An option's text as a TOML value: a number or a boolean bare (`rise =
/// 2`), anything else a string. Read back, each gives the same text.
fn scalar(text: &str) -> String {
    let bare = text == "true"
        || text == "false"
        || text.parse::<i64>().is_ok_and(|n| n.to_string() == text);
    if bare {
        text.to_string()
    } else {
        toml::Value::String(text.to_string()).to_string()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    workers: Option<Spanned<i64>>,
    log_level: Option<String>,
    control_socket: Option<PathBuf>,
    control_group: Option<String>,
    state_file: Option<PathBuf>,
    log_file: Option<PathBuf>,
    user: Option<String>,
    group: Option<String>,
    allow_empty: Option<bool>,
    admin: Option<Spanned<String>>,
    access_log: Option<Spanned<toml::Value>>,
    log_format: Option<Spanned<String>>,
    merge_slashes: Option<bool>,
    max_conns: Option<Spanned<i64>>,
    resolve_interval: Option<Spanned<toml::Value>>,
    limits: Option<RawLimits>,
    timeouts: Option<RawTimeouts>,
    pool: Option<RawPool>,
    #[serde(default)]
    service: Vec<RawService>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_head_bytes: Option<Spanned<i64>>,
    max_headers: Option<Spanned<i64>>,
    body_buffer: Option<Spanned<i64>>,
    max_response_head_bytes: Option<Spanned<i64>>,
    max_response_headers: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTimeouts {
    head: Option<Spanned<String>>,
    keepalive: Option<Spanned<String>>,
    connect: Option<Spanned<String>>,
    server: Option<Spanned<String>>,
    client: Option<Spanned<String>>,
    pool_idle: Option<Spanned<String>>,
    drain: Option<Spanned<String>>,
    body: Option<Spanned<String>>,
    tunnel: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPool {
    per_server: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    ident: Spanned<String>,
    listen: Spanned<String>,
    protocol: Option<Spanned<String>>,
    scheduler: Option<Spanned<String>>,
    forwarded_proto: Option<Spanned<String>>,
    max_body: Option<Spanned<toml::Value>>,
    enabled: Option<bool>,
    persistent: Option<Spanned<String>>,
    sched_opts: Option<RawOptions>,
    default: Option<Spanned<Vec<Spanned<String>>>>,
    retries: Option<Spanned<i64>>,
    slowstart: Option<Spanned<String>>,
    check: Option<RawOptions>,
    agent: Option<RawOptions>,
    passive: Option<RawOptions>,
    max_conns: Option<Spanned<toml::Value>>,
    max_queue: Option<Spanned<toml::Value>>,
    queue_timeout: Option<Spanned<toml::Value>>,
    max_conns_per_source: Option<Spanned<toml::Value>>,
    rate_per_source: Option<Spanned<toml::Value>>,
    burst_per_source: Option<Spanned<toml::Value>>,
    #[serde(default)]
    server: Vec<RawServer>,
    #[serde(default)]
    rule: Vec<RawRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    address: Spanned<String>,
    weight: Option<Spanned<i64>>,
    state: Option<Spanned<String>>,
    max_conns: Option<Spanned<i64>>,
}

/// A table of options, each value any scalar (read as its text).
type RawOptions = std::collections::BTreeMap<Spanned<String>, Spanned<toml::Value>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    pattern: Option<Spanned<String>>,
    host: Option<Spanned<String>>,
    /// One `NAME: PATTERN` or a list of them.
    header: Option<Spanned<toml::Value>>,
    servers: Vec<Spanned<String>>,
    match_group: Option<Spanned<i64>>,
}

impl RawRule {
    /// Where the rule is: at its first condition.
    fn span(&self) -> Range<usize> {
        let pattern = self.pattern.as_ref().map(Spanned::span);
        let host = self.host.as_ref().map(Spanned::span);
        let header = self.header.as_ref().map(Spanned::span);
        let first = self.servers.first().map(Spanned::span);
        pattern.or(host).or(header).or(first).unwrap_or(0..0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::{CheckKind, HttpCheck};
    use crate::spec::SchedulerKind;

    const GOOD: &str = r#"
workers = 2
log_level = "warn"

[timeouts]
head = "5s"
connect = "500ms"

[[service]]
ident = "web"
listen = "127.0.0.1:8080"
scheduler = "rr"
default = ["127.0.0.1:9001"]

[[service.server]]
address = "127.0.0.1:9001"

[[service.server]]
address = "127.0.0.1:9002"
weight = 3

[[service.rule]]
pattern = "^/images/"
servers = ["127.0.0.1:9002"]
"#;

    #[test]
    fn access_log_takes_a_destination_or_the_old_boolean_and_a_format() {
        let load = |head: &str| parse(&format!("{head}\n{GOOD}"), Path::new("t.toml"));
        let config = load("access_log = \"/var/log/a.log\"\nlog_format = \"combined\"").unwrap();
        assert_eq!(
            config.daemon.access_log,
            crate::AccessLog::File("/var/log/a.log".into())
        );
        assert!(config.table.settings.access_log);
        assert_eq!(config.table.settings.log_format, crate::LogFormat::Combined);
        for (text, on) in [
            ("false", false),
            ("\"off\"", false),
            ("true", true),
            ("\"-\"", true),
        ] {
            let config = load(&format!("access_log = {text}")).unwrap();
            assert_eq!(config.table.settings.access_log, on, "{text}");
            assert_eq!(config.daemon.access_log.file(), None, "{text}");
        }
        let default = load("").unwrap();
        assert_eq!(default.daemon.access_log, crate::AccessLog::DaemonLog);
        assert_eq!(default.table.settings.log_format, crate::LogFormat::Text);
        let bad = error_of(&format!("log_format = \"clf\"\n{GOOD}"));
        assert!(
            bad.contains("t.toml:1") && bad.contains("log_format"),
            "{bad}"
        );
        let bad = error_of(&format!("access_log = 3\n{GOOD}"));
        assert!(bad.contains("access_log"), "{bad}");
    }

    fn error_of(text: &str) -> String {
        parse(text, Path::new("t.toml")).unwrap_err().to_string()
    }

    /// The file is refused with a message that starts with `where_and_what`.
    fn refused_at(text: &str, where_and_what: &str) {
        let message = error_of(text);
        assert!(message.starts_with(where_and_what), "{message}");
    }

    #[test]
    fn good_file_loads() {
        let config = parse(GOOD, Path::new("t.toml")).unwrap();
        assert_eq!(config.daemon.workers, Some(2));
        let t = &config.table.settings.timeouts;
        assert_eq!(t.head, Duration::from_secs(5));
        assert_eq!(t.connect, Duration::from_millis(500));
        let web = &config.table.services[0];
        assert_eq!(web.scheduler, SchedulerKind::Rr);
        assert_eq!(web.servers[1].weight, Weight(3));
        assert_eq!(web.rules[0].when, RuleMatch::target("^/images/"));
    }

    #[test]
    fn slashes_are_merged_unless_the_file_says_not() {
        let config = parse(GOOD, Path::new("t.toml")).unwrap();
        assert!(config.table.settings.merge_slashes);
        let text = format!("merge_slashes = false\n{GOOD}");
        let config = parse(&text, Path::new("t.toml")).unwrap();
        assert!(!config.table.settings.merge_slashes);
    }

    #[test]
    fn bad_weight_names_line_and_key() {
        let text = GOOD.replace("weight = 3", "weight = 70000");
        assert_eq!(
            error_of(&text),
            "t.toml:20: service[0].server[1].weight: 70000 is out of range 0..=65535: \
             give a weight from 0 to 65535"
        );
    }

    #[test]
    fn bad_regex_names_line() {
        let text = GOOD.replace("^/images/", "^/images/(");
        refused_at(&text, "t.toml:23: service[0].rule[0]: invalid pattern");
    }

    /// Each bad value is refused at its line, under its key.
    #[test]
    fn bad_values_are_refused_at_their_line() {
        let cases = [
            (
                "\"rr\"",
                "\"lblc\"",
                "t.toml:12: service[0].scheduler: unknown scheduler",
            ),
            ("workers = 2", "wrokers = 2", "t.toml:2: wrokers:"),
            (
                "127.0.0.1:8080",
                "localhost",
                "t.toml:11: service[0].listen:",
            ),
            ("\"5s\"", "\"5 parsecs\"", "t.toml:6: timeouts.head:"),
        ];
        for (good, bad, where_and_what) in cases {
            refused_at(&GOOD.replace(good, bad), where_and_what);
        }
    }

    #[test]
    fn protocols_by_name() {
        let rtsp = GOOD.replace(
            "scheduler = \"rr\"",
            "scheduler = \"rr\"\nprotocol = \"rtsp\"",
        );
        let config = parse(&rtsp, Path::new("t.toml")).unwrap();
        assert_eq!(config.table.services[0].protocol, Protocol::Rtsp);
        let message = error_of(&rtsp.replace("\"rtsp\"", "\"sip\""));
        assert_eq!(
            message,
            "t.toml:13: service[0].protocol: unknown protocol `sip` (known: http, rtsp)"
        );
    }

    #[test]
    fn rule_naming_unknown_server() {
        let text = GOOD.replace(
            "servers = [\"127.0.0.1:9002\"]",
            "servers = [\"127.0.0.1:9009\"]",
        );
        refused_at(&text, "t.toml:23: service[0].rule[0]:");
    }

    #[test]
    fn services_round_trip_through_toml() {
        let mut config = parse(GOOD, Path::new("t.toml")).unwrap();
        let web = &mut config.table.services[0];
        web.enabled = false;
        web.persistent = Some(Duration::from_secs(300));
        web.max_body = Some(10 << 20);
        web.rules[0].match_group = Some(1);
        web.rules[0].when.pattern = Some("^/images/(\"quoted\")".into());
        web.servers[1].state = AdminState::Drain;
        web.servers[1].max_conns = 20;
        web.conn_limits = ServiceLimits {
            max_conns: 100,
            max_queue: 10,
            queue_timeout: Some(Duration::from_millis(2500)),
            max_conns_per_source: 4,
            rate_per_source: 50,
            burst_per_source: 80,
        };
        web.health = HealthSpec {
            check: Some(CheckSpec {
                interval: Duration::from_millis(1500),
                fall: 5,
                ..CheckSpec::new(CheckKind::Http(HttpCheck {
                    method: "HEAD".into(),
                    path: "/health?x=1".into(),
                    host: Some("www.example.com".into()),
                    status: "204".parse().unwrap(),
                    body: Some("007, \"ok\"".into()),
                }))
            }),
            agent: Some(AgentSpec::new(9999)),
            passive: PassiveSpec {
                max_fails: 0,
                on_5xx: true,
                ..PassiveSpec::default()
            },
            retries: 0,
            slowstart: Duration::from_secs(30),
        };
        let text = services_to_toml(&config.table.services);
        let back = parse(&text, Path::new("state.toml")).unwrap();
        assert_eq!(back.table.services, config.table.services, "{text}");
        assert!(
            text.contains("fall = 5\n") && text.contains("on_5xx = true\n"),
            "{text}"
        );
    }

    #[test]
    fn body_and_response_limits_load() {
        let text = GOOD.replace(
            "[timeouts]\n",
            "[limits]\nbody_buffer = 0\nmax_response_head_bytes = 32768\n\
             max_response_headers = 50\n[timeouts]\nbody = \"15s\"\ntunnel = \"2m\"\n",
        );
        let text = text.replace(
            "scheduler = \"rr\"\n",
            "scheduler = \"rr\"\nmax_body = 4096\n",
        );
        let config = parse(&text, Path::new("t.toml")).unwrap();
        let (limits, timeouts) = (config.table.settings.limits, config.table.settings.timeouts);
        assert_eq!(limits.body_buffer, 0);
        assert_eq!(limits.max_response_head_bytes, 32768);
        assert_eq!(limits.max_response_headers, 50);
        assert_eq!(limits.max_head_bytes, Limits::default().max_head_bytes);
        assert_eq!(timeouts.body, Duration::from_secs(15));
        assert_eq!(timeouts.tunnel, Duration::from_secs(120));
        assert_eq!(config.table.services[0].max_body, Some(4096));
        let defaults = parse(GOOD, Path::new("t.toml")).unwrap().table;
        assert_eq!(defaults.settings.limits.body_buffer, 64 * 1024);
        assert_eq!(defaults.settings.timeouts.body, Duration::from_secs(60));
        assert_eq!(defaults.services[0].max_body, None);
        let refused = text.replace("max_response_headers = 50", "max_response_headers = 0");
        refused_at(&refused, "t.toml:8: limits.max_response_headers:");
        let refused = text.replace("max_body = 4096", "max_body = \"4 kilos\"");
        let message = error_of(&refused);
        assert!(message.contains("service[0].max_body:"), "{message}");
    }

    #[test]
    fn defaults_are_not_written() {
        let config = parse(GOOD, Path::new("t.toml")).unwrap();
        let text = services_to_toml(&config.table.services);
        for key in [
            "retries",
            "slowstart",
            "check",
            "agent",
            "passive",
            "state",
            "max_body",
            "max_",
            "_source",
        ] {
            assert!(!text.contains(key), "{key}: {text}");
        }
    }

    #[test]
    fn health_keys_load_and_are_refused_at_their_line() {
        let with = |service: &str, server: &str| {
            GOOD.replace(
                "default = [\"127.0.0.1:9001\"]\n",
                &format!("default = [\"127.0.0.1:9001\"]\n{service}"),
            )
            .replace(
                "address = \"127.0.0.1:9001\"\n",
                &format!("address = \"127.0.0.1:9001\"\n{server}"),
            )
        };
        let good = with(
            "retries = 3\nslowstart = \"1m\"\n[service.check]\ntype = \"http\"\nrise = 1\n\
             [service.agent]\nport = 9999\n[service.passive]\nmax_fails = 3\n",
            "state = \"maint\"\n",
        );
        let config = parse(&good, Path::new("t.toml")).unwrap();
        let web = &config.table.services[0];
        assert_eq!(web.health.retries, 3);
        assert_eq!(web.health.slowstart, Duration::from_secs(60));
        assert_eq!(web.health.check.as_ref().map(|c| c.rise), Some(1));
        assert_eq!(web.health.agent, Some(AgentSpec::new(9999)));
        assert_eq!(web.health.passive.max_fails, 3);
        assert_eq!(web.servers[0].state, AdminState::Maint);
        // Lines: 10 ident, 14 the first key after `default`.
        let cases = [
            (
                with("retries = 11\n", ""),
                "t.toml:14: service[0].retries: `11` is not a number of retries from 0 to 10",
            ),
            (
                with("slowstart = \"2h\"\n", ""),
                "t.toml:14: service[0].slowstart: `2h` is not a duration from 0s (off) to 1h",
            ),
            (
                with("[service.check]\ntype = \"tcp\"\nrise = 0\n", ""),
                "t.toml:16: service[0].check.rise: check rise: `0` is not a number from 1 to 100",
            ),
            (
                with("[service.check]\ninterval = \"5s\"\n", ""),
                "t.toml:10: service[0].check.type: check: give its type: type=tcp, http or rtsp",
            ),
            (
                with("[service.check]\ntype = \"rtsp\"\n", ""),
                "t.toml:15: service[0].check.type: service `web` speaks http: a check of type \
                 rtsp does not fit (give type=http or type=tcp)",
            ),
            (
                with("[service.agent]\nport = 9999\nfall = 2\n", ""),
                "t.toml:16: service[0].agent.fall: unknown option `fall` (agent takes port, \
                 interval, timeout)",
            ),
            (
                with("[service.passive]\non_5xx = \"maybe\"\n", ""),
                "t.toml:15: service[0].passive.on_5xx: passive on_5xx: `maybe` is not yes or no",
            ),
            (
                with("", "state = \"up\"\n"),
                "t.toml:17: service[0].server[0].state: unknown state `up` (known: ready, drain, \
                 maint)",
            ),
        ];
        for (text, message) in cases {
            assert_eq!(error_of(&text), message, "{text}");
        }
    }

    #[test]
    fn rules_as_tcpvsadm_keeps_them() {
        let rule = |pattern: &str| {
            format!("[[service.rule]]\npattern = \"{pattern}\"\nservers = [\"127.0.0.1:9002\"]\n")
        };
        let twice = format!("{GOOD}{}", rule("^/images/"));
        assert_eq!(
            error_of(&twice),
            "t.toml:26: service[0].rule[1]: rule `^/images/` appears twice in service `web`: \
             give all its servers in one rule"
        );
        let first = GOOD.replace("^/images/", ".*") + &rule("^/x/");
        assert_eq!(
            error_of(&first),
            "t.toml:23: service[0].rule[0]: rule `.*` of service `web` is the default rule \
             and comes last: the rules after it would never be reached"
        );
        let last = format!("{GOOD}{}", rule(".*"));
        assert!(parse(&last, Path::new("t.toml")).is_ok());
    }

    /// `host` and `header` (one or a list) load beside the pattern, are
    /// written back to the state file, and are refused at their line.
    #[test]
    fn rules_on_host_and_headers() {
        let with =
            |rule: &str| format!("{GOOD}[[service.rule]]\n{rule}servers = [\"127.0.0.1:9001\"]\n");
        let text = with("host = \"^img\\\\.\"\nheader = [\"X-Tenant: ^a\", \"Accept:json\"]\n");
        let config = parse(&text, Path::new("t.toml")).unwrap();
        let rule = &config.table.services[0].rules[1];
        assert_eq!(rule.when.pattern, None);
        assert_eq!(rule.when.host.as_deref(), Some(r"^img\."));
        let headers: Vec<String> = rule.when.headers.iter().map(ToString::to_string).collect();
        assert_eq!(headers, ["accept: json", "x-tenant: ^a"]);
        let one = with("pattern = \"^/a\"\nheader = \"X-Tenant: ^a\"\n");
        let config = parse(&one, Path::new("t.toml")).unwrap();
        assert_eq!(config.table.services[0].rules[1].when.headers.len(), 1);
        let written = services_to_toml(&config.table.services);
        let back = parse(&written, Path::new("state.toml")).unwrap();
        assert_eq!(back.table.services, config.table.services, "{written}");
        // Line 26 is the new rule's first line.
        let cases = [
            (
                with("header = \"X-Tenant ^a\"\n"),
                "t.toml:26: service[0].rule[1].header: `X-Tenant ^a` is not a header condition: \
                 write NAME: PATTERN, e.g. `X-Tenant: ^a`",
            ),
            (
                with("header = \": ^a\"\n"),
                "t.toml:26: service[0].rule[1].header: `: ^a` is not a header condition: \
                 write NAME: PATTERN, e.g. `X-Tenant: ^a`",
            ),
            (
                with("header = \"X Tenant: ^a\"\n"),
                "t.toml:26: service[0].rule[1].header: `X Tenant` is not a header field name \
                 (letters, digits and !#$%&'*+-.^_`|~)",
            ),
            (
                with("header = \"X-Tenant: (\"\n"),
                "t.toml:26: service[0].rule[1].header: invalid pattern `(`: unclosed group",
            ),
            (
                with("header = [3]\n"),
                "t.toml:26: service[0].rule[1].header: `3` is not a header condition: \
                 write \"NAME: PATTERN\" or a list of them",
            ),
            (
                with("host = \"img[\"\n"),
                "t.toml:26: service[0].rule[1].host: invalid pattern `img[`: unclosed character class",
            ),
            (
                with("host = \"\"\n"),
                "t.toml:26: service[0].rule[1].host: an empty host pattern matches every request: \
                 leave `host` out",
            ),
            (
                with(""),
                "t.toml:26: service[0].rule[1]: an empty pattern matches everything; \
                 use `.*` for the default rule",
            ),
            (
                with("host = \"^a\"\nmatch_group = 1\n"),
                "t.toml:26: service[0].rule[1]: rule `host ^a` has no target pattern: \
                 match_group names a capture group of the target pattern",
            ),
            (
                with("host = \"^a\"\n").replace("scheduler = \"rr\"", "protocol = \"rtsp\""),
                "t.toml:26: service[0].rule[1]: service `web` speaks rtsp, whose requests carry \
                 no Host header: `host` is for http services (header conditions work on both)",
            ),
        ];
        for (text, message) in cases {
            assert_eq!(error_of(&text), message, "{text}");
        }
    }

    /// The same pattern with another host is another rule; the same
    /// conditions twice, in any order, are one rule given twice.
    #[test]
    fn a_rule_is_named_by_all_its_conditions() {
        let rule = |conditions: &str| {
            format!("[[service.rule]]\n{conditions}servers = [\"127.0.0.1:9002\"]\n")
        };
        let two_sites = format!(
            "{GOOD}{}{}",
            rule("pattern = \"^/x/\"\nhost = \"^a\\\\.\"\n"),
            rule("pattern = \"^/x/\"\nhost = \"^b\\\\.\"\n")
        );
        assert!(parse(&two_sites, Path::new("t.toml")).is_ok());
        let twice = format!(
            "{GOOD}{}{}",
            rule("header = [\"a: 1\", \"b: 2\"]\n"),
            rule("header = [\"B: 2\", \"A:1\"]\n")
        );
        assert_eq!(
            error_of(&twice),
            "t.toml:29: service[0].rule[2]: rule `header a: 1 header b: 2` appears twice in \
             service `web`: give all its servers in one rule"
        );
        // `.*` with a host is not the default rule: rules may follow it.
        let hosted = GOOD.replace("^/images/", ".*").replace(
            "servers = [\"127.0.0.1:9002\"]",
            "host = \"^a\"\nservers = [\"127.0.0.1:9002\"]",
        ) + &rule("pattern = \"^/x/\"\n");
        assert!(parse(&hosted, Path::new("t.toml")).is_ok());
    }

    /// Servers given by name are resolved at load, named by that name in
    /// rules and the default set, and written back by name.
    #[test]
    fn servers_by_name_load_and_are_written_by_name() {
        use crate::resolve::tests::Names;
        let names = Names::with(&[("app.example", &["10.0.0.7"])]);
        let text = GOOD
            .replace(
                "address = \"127.0.0.1:9002\"",
                "address = \"app.example:9002\"",
            )
            .replace(
                "servers = [\"127.0.0.1:9002\"]",
                "servers = [\"app.example:9002\"]",
            )
            .replace(
                "default = [\"127.0.0.1:9001\"]",
                "default = [\"app.example:9002\"]",
            );
        let text = format!("resolve_interval = \"5m\"\n{text}");
        let config = parse_with(&text, Path::new("t.toml"), &names).unwrap();
        assert_eq!(
            config.table.settings.resolve_interval,
            Duration::from_secs(300)
        );
        let web = &config.table.services[0];
        let app = &web.servers[1];
        assert_eq!(app.addr.to_string(), "10.0.0.7:9002");
        assert_eq!(app.host.as_deref(), Some("app.example:9002"));
        assert_eq!(web.rules[0].servers, [app.addr]);
        assert_eq!(web.default, Some(vec![app.addr]));
        let written = services_to_toml(&config.table.services);
        assert!(!written.contains("10.0.0.7"), "{written}");
        let back = parse_with(&written, Path::new("state.toml"), &names).unwrap();
        assert_eq!(back.table.services, config.table.services, "{written}");
        let refused = |text: &str| match parse_with(text, Path::new("t.toml"), &names) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("loaded: {text}"),
        };
        assert_eq!(
            refused(&text.replace("app.example:9002\"\nweight", "x.invalid:9002\"\nweight")),
            "t.toml:20: service[0].server[1].address: cannot resolve server `x.invalid:9002`: \
             Name or service not known"
        );
        assert_eq!(
            refused(&text.replace(
                "servers = [\"app.example:9002\"]",
                "servers = [\"b.example:1\"]"
            )),
            "t.toml:25: service[0].rule[0].servers: `b.example:1` is not a real server of \
             service `web`"
        );
        assert_eq!(
            refused(&text.replace("\"5m\"", "\"2d\"")),
            "t.toml:1: resolve_interval: `2d` is not a resolve interval: write 0 (only at load \
             and reload) or 1s to 24h"
        );
        for off in ["0", "\"0s\""] {
            let config = parse_with(&text.replace("\"5m\"", off), Path::new("t.toml"), &names);
            assert_eq!(
                config.unwrap().table.settings.resolve_interval,
                Duration::ZERO
            );
        }
    }

    #[test]
    fn an_empty_default_set_is_refused() {
        let text = GOOD.replace("default = [\"127.0.0.1:9001\"]", "default = []");
        assert_eq!(
            error_of(&text),
            "t.toml:13: service[0].default: an empty default set sends unmatched requests \
             nowhere: leave `default` out to send them to every real server"
        );
    }

    #[test]
    fn scheduler_options_are_checked_at_the_line_of_the_option() {
        let default = "default = [\"127.0.0.1:9001\"]";
        let lard = GOOD.replace("\"rr\"", "\"lard\"").replace(
            default,
            &format!("{default}\n[service.sched_opts]\nhigh = 40\nlow = 70"),
        );
        assert_eq!(
            error_of(&lard),
            "t.toml:15: service[0].sched_opts.high: scheduler lard of service `web`: \
             low=70 must be below high=40"
        );
        assert_eq!(
            error_of(&lard.replace("high = 40\n", "")),
            "t.toml:15: service[0].sched_opts.low: scheduler lard of service `web`: \
             low=70 must be below high=65"
        );
        assert_eq!(
            error_of(&lard.replace("low = 70", "dynamic = \"(\"")),
            "t.toml:16: service[0].sched_opts.dynamic: scheduler lard of service `web`: \
             option dynamic: invalid pattern `(`: error: unclosed group"
        );
        assert_eq!(
            error_of(&lard.replace("low = 70", "hold = \"2m\"")),
            "t.toml:16: service[0].sched_opts.hold: scheduler lard of service `web`: \
             unknown option `hold` (lard takes low, high, dynamic, targets)"
        );
        let config = parse(&lard.replace("low = 70", "low = 10"), Path::new("t.toml")).unwrap();
        let options = &config.table.services[0].sched_opts;
        assert_eq!(
            (options["low"].as_str(), options["high"].as_str()),
            ("10", "40")
        );
    }

    #[test]
    fn limit_keys_load_and_are_refused_at_their_line() {
        let text = format!("max_conns = 5000\n{GOOD}")
            .replace(
                "default = [\"127.0.0.1:9001\"]\n",
                "default = [\"127.0.0.1:9001\"]\nmax_conns = 100\nqueue_timeout = \"2s\"\n\
                 rate_per_source = 10\n",
            )
            .replace("weight = 3\n", "weight = 3\nmax_conns = 2\n");
        let config = parse(&text, Path::new("t.toml")).unwrap();
        assert_eq!(config.table.settings.max_conns, 5000);
        let web = &config.table.services[0];
        assert_eq!(web.conn_limits.max_conns, 100);
        assert_eq!(web.conn_limits.queue_timeout, Some(Duration::from_secs(2)));
        assert_eq!(web.conn_limits.burst(), 10);
        assert_eq!((web.servers[0].max_conns, web.servers[1].max_conns), (0, 2));
        assert_eq!(
            error_of(&text.replace("max_conns = 100", "max_conns = -3")),
            "t.toml:15: service[0].max_conns: `-3` is not a number of connections (0: no limit)"
        );
        assert_eq!(
            error_of(&text.replace("rate_per_source = 10", "burst_per_source = 10")),
            "t.toml:11: service[0].burst_per_source: burst_per_source needs rate_per_source"
        );
        let message = error_of(&text.replace("max_conns = 2\n", "max_conns = \"x\"\n"));
        assert!(message.contains("expected i64"), "{message}");
        refused_at(
            &text.replace("max_conns = 5000", "max_conns = 20000000"),
            "t.toml:1: max_conns: `20000000` is not a number of connections",
        );
    }

    #[test]
    fn durations() {
        assert!(validate::duration("0s").is_err());
        assert_eq!(validate::duration("2m"), Ok(Duration::from_secs(120)));
    }
}
