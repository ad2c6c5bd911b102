//! What tcpvsadm prints: the `-L` listing and the `-S` saved commands.

use std::fmt::Write;

use tcpvs_command::{AdminState, HealthSpec, ServerView, ServiceView, TableView};

use crate::args::quote;

/// `-L`: services with how they watch their servers, their real servers
/// with weight (effective/configured when they differ), active requests,
/// requests sent, health and last check, and the content rules.
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
        let _ = writeln!(out, "  {}", health_summary(service));
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
