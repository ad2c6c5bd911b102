//! What tcpvsadm prints: the `-L` listing and the `-S` saved commands.

use std::fmt::Write;

use tcpvs_command::{AdminState, HealthSpec, ServerView, ServiceView, TableView};

use crate::args::quote;

/// `-L`: services with how they watch their servers, their real servers
/// with weight (effective/configured when they differ), active requests,
/// requests sent, health and last check, and the content rules; with
/// `stats`, each server's failures and the log lines the daemon dropped.
pub fn listing(view: &TableView, stats: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "tcpvs {} (table generation {})",
        env!("CARGO_PKG_VERSION"),
        view.generation
    );
    let _ = writeln!(
        out,
        "Ident            Listen                  Scheduler  Protocol  State"
    );
    let _ = write!(
        out,
        "  -> RealServer                  Weight  ActiveReq  Requests"
    );
    out.push_str(if stats { "  Failures" } else { "" });
    out.push_str("  Health  LastCheck\n");
    for service in &view.services {
        let listen = match &service.bound {
            Some(bound) if *bound != service.listen => format!("{} ({bound})", service.listen),
            _ => service.listen.clone(),
        };
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
        let state = if service.enabled {
            "started"
        } else {
            "stopped"
        };
        let _ = writeln!(
            out,
            "{:<16} {:<23} {:<10} {:<9} {state}",
            service.ident, listen, scheduler, service.protocol
        );
        if let Some(sessions) = service.sessions {
            let _ = writeln!(out, "  sessions {sessions}");
        }
        if let Some(size) = &service.max_body {
            let _ = writeln!(out, "  max-body {size}");
        }
        let _ = writeln!(out, "  {}", health_summary(service));
        if let Some(limits) = limits_summary(service) {
            let _ = writeln!(out, "  limits: {limits}");
        }
        for server in &service.servers {
            let _ = write!(
                out,
                "  -> {:<26} {:<7} {:<10} {:<9}",
                server.address,
                weight(server),
                server.active,
                server.requests
            );
            if stats {
                let _ = write!(out, " {:<9}", server.failures);
            }
            let _ = write!(
                out,
                " {:<7} {}",
                health(server),
                server.last_check.as_deref().unwrap_or("")
            );
            if server.max_conns != 0 {
                let _ = write!(out, " max-conns {}", server.max_conns);
            }
            out.truncate(out.trim_end().len());
            out.push('\n');
        }
        for rule in &service.rules {
            let group = rule
                .match_group
                .map(|g| format!(" (hash of group {g})"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  rule {} -> {}{group}",
                rule.pattern,
                rule.servers.join(" ")
            );
        }
        match &service.default {
            Some(set) => {
                let _ = writeln!(out, "  default -> {}", set.join(" "));
            }
            None if !service.rules.is_empty() => {
                let _ = writeln!(out, "  default -> every server");
            }
            None => {}
        }
    }
    if stats {
        let _ = writeln!(out, "log lines dropped: {}", view.log_dropped);
    }
    out
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
            quote(&server.address),
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
            let _ = write!(
                out,
                "--add-rule -i {ident} -p {} -r {}",
                quote(&rule.pattern),
                quote(server)
            );
            if let Some(group) = rule.match_group {
                let _ = write!(out, " -m {group}");
            }
            out.push('\n');
        }
    }
    for server in service.default.iter().flatten() {
        let _ = writeln!(out, "--add-default -i {ident} -r {}", quote(server));
    }
    if !service.enabled {
        let _ = writeln!(out, "--stop -i {ident}");
    }
}

#[cfg(test)]
mod tests {
    use tcpvs_command::config;
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
    fn the_largest_body_is_listed_and_saved() {
        let text = HEALTH.replace("retries = 0\n", "retries = 0\nmax_body = \"10m\"\n");
        let table = config::parse(&text, std::path::Path::new("t.toml"))
            .unwrap()
            .table;
        let view = TableView::of(1, &table.services);
        let saved = saved(&view);
        assert!(saved.contains(" --max-body 10m"), "{saved}");
        assert_eq!(replayed(&saved).services, table.services, "{saved}");
        let listed = listing(&view, false);
        assert!(listed.contains("\n  max-body 10m\n"), "{listed}");
        // Not shown when unlimited.
        assert!(!listing(&TableView::of(1, &health_table().services), false).contains("max-body"));
    }

    #[test]
    fn listing_shows_health_and_effective_weight() {
        let table = health_table();
        let mut view = TableView::of(1, &table.services);
        let web = &mut view.services[0];
        web.retried = 7;
        web.servers[0].health = "down".into();
        web.servers[0].last_check = Some("L4TOUT".into());
        let listing = listing(&view, false);
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
            listing(&view, true).lines().last(),
            Some("log lines dropped: 42")
        );
        assert!(!listing(&view, false).contains("log lines dropped"));
    }
}
