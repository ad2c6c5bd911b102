//! What tcpvsadm prints: the `-L` listing (with `--stats` or `--rate`) and
//! the `-S` saved commands.

use std::fmt::Write;

use tcpvs_command::view::{RateView, RuleView, TrafficView};
use tcpvs_command::{AdminState, HealthSpec, ServerView, ServiceView, TableView};

use crate::args::{quote, Show};
use crate::grid::{Align, Grid};
use crate::names::Names;

/// The column of a server row's address, under its service.
const SERVER: &str = "  -> ";

/// `-L`: the table as `show` asks, addresses by `names`. The table shows
/// services with how they watch their servers, their real servers with
/// weight (effective/configured when they differ), active requests,
/// requests sent, health and last check, and the content rules. `--stats`
/// and `--rate` show each service's totals and its servers' numbers, as
/// ipvsadm's do.
pub fn listing(view: &TableView, show: Show, names: &mut Names) -> String {
    let mut grid = Grid::default();
    grid.free(format!(
        "tcpvs {} (table generation {})",
        env!("CARGO_PKG_VERSION"),
        view.generation
    ));
    match show {
        Show::Stats | Show::Rate => numbers(&mut grid, view, show, names),
        Show::Table | Show::Json => table(&mut grid, view, names),
    }
    if show == Show::Stats {
        grid.free(format!("log lines dropped: {}", view.log_dropped));
    }
    grid.render()
}

/// The services and servers with their configuration and live state.
fn table(grid: &mut Grid, view: &TableView, names: &mut Names) {
    let services = grid.table(&[]);
    let servers = grid.table(&[]);
    let header = ["Ident", "Listen", "Scheduler", "Protocol", "State"];
    grid.row(services, header.map(String::from).to_vec());
    let header = [
        "RealServer",
        "Weight",
        "ActiveReq",
        "Requests",
        "Health",
        "LastCheck",
    ];
    grid.row(servers, server_cells(header.map(String::from)));
    for service in &view.services {
        let state = if service.enabled {
            "started"
        } else {
            "stopped"
        };
        grid.row(
            services,
            vec![
                service.ident.clone(),
                listen(service, names),
                scheduler(service),
                service.protocol.clone(),
                state.to_string(),
            ],
        );
        if let Some(sessions) = service.sessions {
            grid.free(format!("  sessions {sessions}"));
        }
        if let Some(size) = &service.max_body {
            grid.free(format!("  max-body {size}"));
        }
        grid.free(format!("  {}", health_summary(service)));
        if let Some(limits) = limits_summary(service) {
            grid.free(format!("  limits: {limits}"));
        }
        for server in &service.servers {
            let mut last = server.last_check.clone().unwrap_or_default();
            if server.max_conns != 0 {
                last = format!("{last} max-conns {}", server.max_conns);
            }
            grid.row(
                servers,
                server_cells([
                    server_address(server, names),
                    weight(server),
                    server.active.to_string(),
                    server.requests.to_string(),
                    health(server),
                    last.trim_start().to_string(),
                ]),
            );
        }
        for rule in &service.rules {
            let group = rule
                .match_group
                .map(|g| format!(" (hash of group {g})"))
                .unwrap_or_default();
            let servers: Vec<String> = rule
                .servers
                .iter()
                .map(|s| names.address(s, configured_name(service, s)))
                .collect();
            grid.free(format!(
                "  rule {} -> {}{group}",
                conditions(rule),
                servers.join(" ")
            ));
        }
        match &service.default {
            Some(set) => {
                let set = set
                    .iter()
                    .map(|s| names.address(s, configured_name(service, s)));
                let set: Vec<String> = set.collect();
                grid.free(format!("  default -> {}", set.join(" ")));
            }
            None if !service.rules.is_empty() => grid.free("  default -> every server"),
            None => {}
        }
    }
}

/// The name `address` (a server of `service`) was configured with, if any.
fn configured_name<'v>(service: &'v ServiceView, address: &str) -> Option<&'v str> {
    service
        .servers
        .iter()
        .find(|server| server.address == address)
        .and_then(|server| server.host.as_deref())
}

/// What a rule asks of a request, as `-L` shows it: its target pattern,
/// then `host REGEX` and `header 'NAME: REGEX'` when it has them.
fn conditions(rule: &RuleView) -> String {
    let mut shown: Vec<String> = Vec::new();
    if !rule.pattern.is_empty() {
        shown.push(rule.pattern.clone());
    }
    if let Some(host) = &rule.host {
        shown.push(format!("host {host}"));
    }
    for header in &rule.headers {
        shown.push(format!("header {}", quote(header)));
    }
    shown.join(" ")
}

/// `--stats` or `--rate`: a row of numbers per service (its totals) and per
/// server, in one table so the numbers line up.
fn numbers(grid: &mut Grid, view: &TableView, show: Show, names: &mut Names) {
    let header: &[&str] = match show {
        Show::Rate => &RATE_HEADER,
        _ => &STATS_HEADER,
    };
    let mut aligns = vec![Align::Left];
    aligns.extend(header.iter().map(|_| Align::Right));
    let rows = grid.table(&aligns);
    let row = |first: String, numbers: Vec<u64>| {
        let mut cells = vec![first];
        cells.extend(numbers.iter().map(u64::to_string));
        cells
    };
    let mut head = vec!["Ident Listen".to_string()];
    head.extend(header.iter().map(|h| h.to_string()));
    grid.row(rows, head);
    grid.row(rows, vec![format!("{SERVER}RealServer")]);
    for service in &view.services {
        let first = format!("{} {}", service.ident, listen(service, names));
        grid.row(
            rows,
            row(first, numbers_of(show, &service.stats, &service.rate)),
        );
        for server in &service.servers {
            let first = format!("{SERVER}{}", server_address(server, names));
            grid.row(
                rows,
                row(first, numbers_of(show, &server.stats, &server.rate)),
            );
        }
    }
}

/// `--stats`' columns, as ipvsadm's: totals since start or `-Z`.
const STATS_HEADER: [&str; 10] = [
    "Requests", "1xx", "2xx", "3xx", "4xx", "5xx", "None", "InBytes", "OutBytes", "Failures",
];

/// `--rate`'s columns: per second over the daemon's last interval.
const RATE_HEADER: [&str; 4] = ["Req/s", "InBytes/s", "OutBytes/s", "Err/s"];

/// The numbers under [`STATS_HEADER`] or [`RATE_HEADER`].
fn numbers_of(show: Show, stats: &TrafficView, rate: &RateView) -> Vec<u64> {
    match show {
        Show::Rate => vec![rate.requests, rate.in_bytes, rate.out_bytes, rate.errors],
        _ => {
            let mut row = vec![stats.requests];
            row.extend(stats.responses.by_class());
            row.extend([stats.in_bytes, stats.out_bytes, stats.failures]);
            row
        }
    }
}

/// A server row: the address under its service's, then the rest.
fn server_cells<const N: usize>(mut cells: [String; N]) -> Vec<String> {
    cells[0] = format!("{SERVER}{}", cells[0]);
    cells.to_vec()
}

fn server_address(server: &ServerView, names: &mut Names) -> String {
    names.address(&server.address, server.host.as_deref())
}

/// Where the service listens, with where it is bound when that differs.
fn listen(service: &ServiceView, names: &mut Names) -> String {
    let listen = names.address(&service.listen, None);
    match &service.bound {
        Some(bound) if *bound != service.listen => {
            format!("{listen} ({})", names.address(bound, None))
        }
        _ => listen,
    }
}

/// The scheduler with its options and persistence.
fn scheduler(service: &ServiceView) -> String {
    let mut scheduler = service.scheduler.clone();
    if !service.sched_opts.is_empty() {
        let opts: Vec<String> = service
            .sched_opts
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        scheduler = format!("{scheduler} {}", opts.join(","));
    }
    if let Some(seconds) = service.persistent {
        scheduler = format!("{scheduler} persistent {seconds}s");
    }
    scheduler
}

/// A service's check, agent, passive counting, slow start and retries, as
/// tcpvsadm's options give them, and how many requests were retried.
fn health_summary(service: &ServiceView) -> String {
    let health = &service.health;
    let mut parts: Vec<String> = health
        .options()
        .into_iter()
        .map(|(name, value)| format!("{name} {value}"))
        .collect();
    parts.push(format!(
        "retries {}, retried {}",
        health.retries, service.retried
    ));
    parts.join("; ")
}

/// A service's connection limits as tcpvsadm's options give them, with its
/// open connections and queued requests; `None` when it has no limit.
fn limits_summary(service: &ServiceView) -> Option<String> {
    if service.limits.is_empty() && service.queued == 0 {
        return None;
    }
    let mut parts: Vec<String> = service
        .limits
        .iter()
        .map(|(name, value)| format!("{} {value}", name.replace('_', "-")))
        .collect();
    parts.push(format!(
        "conns {}, queued {}",
        service.conns, service.queued
    ));
    Some(parts.join("; "))
}

/// The weight, `effective/configured` when they differ.
fn weight(server: &ServerView) -> String {
    if server.effective_weight == u32::from(server.weight) {
        server.weight.to_string()
    } else {
        format!("{}/{}", server.effective_weight, server.weight)
    }
}

/// The server's health, with the operator's state when it does not say it.
fn health(server: &ServerView) -> String {
    let health = if server.health.is_empty() {
        "-"
    } else {
        &server.health
    };
    if server.state == AdminState::Ready.name() || server.state == health {
        health.to_string()
    } else {
        format!("{health} ({})", server.state)
    }
}

/// `-S`: one tcpvsadm command per line that `-R` turns back into this table.
pub fn saved(view: &TableView) -> String {
    let mut out = String::new();
    for service in &view.services {
        save_service(service, &mut out);
    }
    out
}

fn save_service(service: &ServiceView, out: &mut String) {
    let ident = quote(&service.ident);
    let _ = write!(
        out,
        "-A -i {ident} -l {} -s {}",
        quote(&service.listen),
        quote(&service.scheduler)
    );
    if !service.sched_opts.is_empty() {
        let opts: Vec<String> = service
            .sched_opts
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = write!(out, " --sched-opt {}", quote(&opts.join(",")));
    }
    if let Some(seconds) = service.persistent {
        let _ = write!(out, " --persistent {seconds}");
    }
    if let Some(proto) = &service.forwarded_proto {
        let _ = write!(out, " --forwarded-proto {}", quote(proto));
    }
    if let Some(size) = &service.max_body {
        let _ = write!(out, " --max-body {}", quote(size));
    }
    if service.protocol != "http" {
        let _ = write!(out, " --protocol {}", quote(&service.protocol));
    }
    let health = &service.health;
    for (name, value) in health.options() {
        let _ = write!(out, " --{name} {}", quote(value));
    }
    if health.retries != HealthSpec::DEFAULT_RETRIES {
        let _ = write!(out, " --retries {}", health.retries);
    }
    for (name, value) in &service.limits {
        let _ = write!(out, " --{} {}", name.replace('_', "-"), quote(value));
    }
    out.push('\n');
    for server in &service.servers {
        let _ = write!(
            out,
            "-a -i {ident} -r {} -w {}",
            // A server given by name is saved by name, to be looked up again.
            quote(server.host.as_deref().unwrap_or(&server.address)),
            server.weight
        );
        if server.state != AdminState::Ready.name() {
            let _ = write!(out, " --state {}", quote(&server.state));
        }
        if server.max_conns != 0 {
            let _ = write!(out, " --max-conns {}", server.max_conns);
        }
        out.push('\n');
    }
    for rule in &service.rules {
        for server in &rule.servers {
            let _ = write!(out, "--add-rule -i {ident}");
            if !rule.pattern.is_empty() {
                let _ = write!(out, " -p {}", quote(&rule.pattern));
            }
            if let Some(host) = &rule.host {
                let _ = write!(out, " --host {}", quote(host));
            }
            for header in &rule.headers {
                let _ = write!(out, " --header {}", quote(header));
            }
            // By name, as the server was added: looked up again at -R.
            let by_name = configured_name(service, server).unwrap_or(server);
            let _ = write!(out, " -r {}", quote(by_name));
            if let Some(group) = rule.match_group {
                let _ = write!(out, " -m {group}");
            }
            out.push('\n');
        }
    }
    for server in service.default.iter().flatten() {
        let by_name = configured_name(service, server).unwrap_or(server);
        let _ = writeln!(out, "--add-default -i {ident} -r {}", quote(by_name));
    }
    if !service.enabled {
        let _ = writeln!(out, "--stop -i {ident}");
    }
}

#[cfg(test)]
mod tests {
    use tcpvs_command::config;
    use tcpvs_command::view::Responses;
    use tcpvs_command::TableSpec;

    use super::*;
    use crate::args::{parse, split_words, Command};

    /// A table with every health option away from its default.
    const HEALTH: &str = r#"
[[service]]
ident = "web"
listen = "127.0.0.1:8080"
retries = 0
slowstart = "45s"
max_conns = 300
max_queue = 20
queue_timeout = "1500ms"
max_conns_per_source = 8
rate_per_source = 30
burst_per_source = 60
[service.check]
type = "http"
path = "/health"
interval = "1500ms"
body = "it's OK, \"fine\""
status = "200-204"
[service.agent]
port = 9999
timeout = "250ms"
[service.passive]
on_5xx = true
[[service.server]]
address = "127.0.0.1:9001"
state = "drain"
max_conns = 12
[[service.server]]
address = "127.0.0.1:9002"
weight = 0
state = "maint"
[[service]]
ident = "rtsp"
listen = "127.0.0.1:8554"
protocol = "rtsp"
[service.check]
type = "rtsp"
"#;

    fn health_table() -> TableSpec {
        config::parse(HEALTH, std::path::Path::new("t.toml"))
            .unwrap()
            .table
    }

    /// What replaying `-S`'s lines does to an empty table.
    fn replayed(saved: &str) -> TableSpec {
        let mut spec = TableSpec::default();
        for line in saved.lines() {
            let words = split_words(line).unwrap();
            let Command::Verb(verb) = parse(words).unwrap().command else {
                panic!("{line}: not a verb");
            };
            verb.apply(&mut spec)
                .unwrap_or_else(|e| panic!("{line}: {e}"));
        }
        spec
    }

    #[test]
    fn saved_commands_rebuild_the_health_options() {
        let table = health_table();
        let saved = saved(&TableView::of(1, &table.services));
        assert_eq!(replayed(&saved).services, table.services, "{saved}");
        assert!(saved.contains(" --state drain --max-conns 12\n"), "{saved}");
        assert!(saved.contains("--retries 0"), "{saved}");
        // Defaults are not written.
        let plain = saved.lines().nth(3).unwrap();
        assert_eq!(
            plain,
            "-A -i rtsp -l 127.0.0.1:8554 -s wlc --protocol rtsp --check type=rtsp"
        );
    }

    #[test]
    fn rules_on_host_and_headers_and_named_servers_are_listed_and_saved() {
        let text = r#"
[[service]]
ident = "sites"
listen = "127.0.0.1:8080"
[[service.server]]
address = "localhost:9001"
[[service.server]]
address = "127.0.0.1:9002"
[[service.rule]]
host = "^img\\."
servers = ["127.0.0.1:9001"]
[[service.rule]]
pattern = "^/api/"
header = ["X-Tenant: ^a", "X-Plan: gold"]
servers = ["127.0.0.1:9002"]
"#;
        let table = config::parse(text, std::path::Path::new("t.toml"))
            .unwrap()
            .table;
        let view = TableView::of(1, &table.services);
        let saved = saved(&view);
        assert!(saved.contains("-a -i sites -r localhost:9001 "), "{saved}");
        assert!(
            saved.contains("--add-rule -i sites --host '^img\\.' -r localhost:9001\n"),
            "{saved}"
        );
        assert!(
            saved.contains("-p '^/api/' --header 'x-plan: gold' --header 'x-tenant: ^a'"),
            "{saved}"
        );
        assert_eq!(replayed(&saved).services, table.services, "{saved}");
        let listed = listing(&view, Show::Table, &mut Names::new(true));
        assert!(
            listed.contains("  rule host ^img\\. -> 127.0.0.1:9001"),
            "{listed}"
        );
        assert!(
            listed.contains("  rule ^/api/ header 'x-plan: gold' header 'x-tenant: ^a' -> "),
            "{listed}"
        );
    }

    #[test]
    fn the_largest_body_is_listed_and_saved() {
        let text = HEALTH.replace("retries = 0\n", "retries = 0\nmax_body = \"10m\"\n");
        let table = config::parse(&text, std::path::Path::new("t.toml"))
            .unwrap()
            .table;
        let view = TableView::of(1, &table.services);
        let saved = saved(&view);
        assert!(saved.contains(" --max-body 10m"), "{saved}");
        assert_eq!(replayed(&saved).services, table.services, "{saved}");
        let listed = listing(&view, Show::Table, &mut Names::new(true));
        assert!(listed.contains("\n  max-body 10m\n"), "{listed}");
        // Not shown when unlimited.
        assert!(!listing(
            &TableView::of(1, &health_table().services),
            Show::Table,
            &mut Names::new(true)
        )
        .contains("max-body"));
    }

    #[test]
    fn listing_shows_health_and_effective_weight() {
        let table = health_table();
        let mut view = TableView::of(1, &table.services);
        let web = &mut view.services[0];
        web.retried = 7;
        web.servers[0].health = "down".into();
        web.servers[0].last_check = Some("L4TOUT".into());
        let listing = listing(&view, Show::Table, &mut Names::new(true));
        let lines: Vec<&str> = listing.lines().collect();
        assert_eq!(
            lines[4],
            "  check type=http,interval=1500ms,path=/health,status=200-204,\
             body=it's OK, \"fine\"; agent port=9999,timeout=250ms; passive on_5xx=true; \
             slowstart 45s; retries 0, retried 7"
        );
        let words = |line: &str| {
            line.split_whitespace()
                .map(String::from)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            lines[5],
            "  limits: burst-per-source 60; max-conns 300; max-conns-per-source 8; max-queue 20; \
             queue-timeout 1500ms; rate-per-source 30; conns 0, queued 0"
        );
        assert_eq!(
            words(lines[6]),
            [
                "->",
                "127.0.0.1:9001",
                "0/1",
                "0",
                "0",
                "down",
                "(drain)",
                "L4TOUT",
                "max-conns",
                "12"
            ]
        );
        assert_eq!(
            words(lines[7]),
            ["->", "127.0.0.1:9002", "0", "0", "0", "maint"]
        );
        assert_eq!(lines[9], "  check type=rtsp; retries 2, retried 0");
    }

    #[test]
    fn stats_end_with_the_dropped_log_lines() {
        let mut view = TableView::of(1, &health_table().services);
        view.log_dropped = 42;
        assert_eq!(
            listing(&view, Show::Stats, &mut Names::new(true))
                .lines()
                .last(),
            Some("log lines dropped: 42")
        );
        assert!(!listing(&view, Show::Table, &mut Names::new(true)).contains("log lines dropped"));
    }

    /// Long IPv6 addresses and a scheduler's options.
    const WIDE: &str = r#"
[[service]]
ident = "web"
listen = "[2001:db8::1]:8080"
scheduler = "lard"
persistent = "300"
[service.sched_opts]
low = "10"
high = "40"
[[service.server]]
address = "[2001:db8:ffff:ffff::10]:8080"
weight = 100
[[service.server]]
address = "10.0.0.1:80"
[[service]]
ident = "api"
listen = "10.0.0.2:80"
[[service.server]]
address = "10.0.0.3:80"
"#;

    fn wide_view() -> TableView {
        let table = config::parse(WIDE, std::path::Path::new("t.toml"))
            .unwrap()
            .table;
        let mut view = TableView::of(3, &table.services);
        let web = &mut view.services[0];
        web.servers[0].active = 12345;
        web.servers[0].requests = 7;
        web.servers[1].last_check = Some("L7OK 200 in 3ms".into());
        view
    }

    #[track_caller]
    fn assert_lines(listed: &str, expected: &[&str]) {
        assert_eq!(listed.lines().collect::<Vec<_>>(), expected, "\n{listed}");
    }

    #[test]
    fn columns_hold_long_addresses_and_options() {
        let listed = listing(&wide_view(), Show::Table, &mut Names::new(true));
        let expected = [
            "tcpvs 0.1.0 (table generation 3)",
            "Ident  Listen              Scheduler                            Protocol  State",
            "  -> RealServer                     Weight  ActiveReq  Requests  Health  LastCheck",
            "web    [2001:db8::1]:8080  lard high=40,low=10 persistent 300s  http      started",
            "  retries 2, retried 0",
            "  -> [2001:db8:ffff:ffff::10]:8080  100     12345      7         up",
            "  -> 10.0.0.1:80                    1       0          0         up      L7OK 200 in 3ms",
            "api    10.0.0.2:80         wlc                                  http      started",
            "  retries 2, retried 0",
            "  -> 10.0.0.3:80                    1       0          0         up",
        ];
        assert_lines(&listed, &expected);
    }

    #[test]
    fn stats_line_up_service_totals_and_servers() {
        let mut view = wide_view();
        let web = &mut view.services[0];
        web.stats = TrafficView {
            requests: 1_000_123,
            responses: Responses::from_classes([0, 1_000_000, 20, 3, 100, 0]),
            in_bytes: 80_000_000,
            out_bytes: 9_000_000_000,
            failures: 2,
        };
        web.servers[0].stats = web.stats;
        let listed = listing(&view, Show::Stats, &mut Names::new(true));
        let expected = [
            "tcpvs 0.1.0 (table generation 3)",
            "Ident Listen                        Requests  1xx      2xx  3xx  4xx  5xx  None   InBytes    OutBytes  Failures",
            "  -> RealServer",
            "web [2001:db8::1]:8080               1000123    0  1000000   20    3  100     0  80000000  9000000000         2",
            "  -> [2001:db8:ffff:ffff::10]:8080   1000123    0  1000000   20    3  100     0  80000000  9000000000         2",
            "  -> 10.0.0.1:80                           0    0        0    0    0    0     0         0           0         0",
            "api 10.0.0.2:80                            0    0        0    0    0    0     0         0           0         0",
            "  -> 10.0.0.3:80                           0    0        0    0    0    0     0         0           0         0",
            "log lines dropped: 0",
        ];
        assert_lines(&listed, &expected);
    }

    #[test]
    fn rates_line_up_too() {
        let mut view = wide_view();
        let rate = RateView {
            requests: 2500,
            in_bytes: 200_000,
            out_bytes: 31_000_000,
            errors: 1,
        };
        view.services[0].rate = rate;
        view.services[0].servers[1].rate = rate;
        let listed = listing(&view, Show::Rate, &mut Names::new(true));
        let expected = [
            "tcpvs 0.1.0 (table generation 3)",
            "Ident Listen                        Req/s  InBytes/s  OutBytes/s  Err/s",
            "  -> RealServer",
            "web [2001:db8::1]:8080               2500     200000    31000000      1",
            "  -> [2001:db8:ffff:ffff::10]:8080      0          0           0      0",
            "  -> 10.0.0.1:80                     2500     200000    31000000      1",
            "api 10.0.0.2:80                         0          0           0      0",
            "  -> 10.0.0.3:80                        0          0           0      0",
        ];
        assert_lines(&listed, &expected);
    }
}
