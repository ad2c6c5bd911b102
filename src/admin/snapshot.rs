//! What the /stats page shows, read at once from the live table: per
//! service its address, protocol, scheduler and rules, per server its
//! state, weights, active and total requests, request rate and load. The
//! page renders it as HTML; `/stats.json` serves it as it is, for scripts.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde::Serialize;

use super::counters::WorkerCounters;
use crate::server::AgentAsks;
use crate::table::{AdminState, RealServer, Service, ServiceId, ServiceSpec, Table};
use crate::traffic::Rates;

/// The whole table as the page shows it.
#[derive(Debug, Serialize)]
pub struct Snapshot {
    /// The table's generation: it changes with every edit.
    pub generation: u64,
    /// Client connections open and accepted since start, all workers.
    pub connections_open: usize,
    pub connections_accepted: u64,
    pub services: Vec<ServiceView>,
}

/// One virtual service.
#[derive(Debug, Serialize)]
pub struct ServiceView {
    pub ident: String,
    /// Where it listens: the bound address (a configured port 0 gets one).
    pub listen: String,
    pub protocol: &'static str,
    /// The scheduler's name, and its options as `name=value`.
    pub scheduler: &'static str,
    pub options: Vec<String>,
    pub enabled: bool,
    /// Its content rules, first match first.
    pub rules: Vec<RuleView>,
    /// Where requests no rule takes go: `None` for every server.
    pub default: Option<Vec<String>>,
    /// Sums over its servers.
    pub active: u32,
    pub requests: u64,
    pub rate: Option<u64>,
    pub servers: Vec<ServerView>,
}

/// A content rule: its conditions (target pattern, host, header fields) and
/// the servers it sends to.
#[derive(Debug, Serialize)]
pub struct RuleView {
    pub conditions: String,
    pub servers: Vec<String>,
}

/// One real server of a service.
#[derive(Debug, Serialize)]
pub struct ServerView {
    pub address: String,
    /// The name it was configured with (`app1:80`), if any.
    pub host: Option<String>,
    pub state: ServerStatus,
    /// As configured, and as the schedulers weigh it (agent, slow start).
    pub weight: u16,
    pub effective_weight: u16,
    /// 0: no limit.
    pub max_conns: u32,
    pub active: u32,
    /// Requests sent to it since start.
    pub requests: u64,
    /// Exchanges finished per second over the last sampling interval;
    /// `None` before two samples.
    pub rate: Option<u64>,
    /// Failed connects and broken exchanges.
    pub failures: u64,
    /// Its load bar, 0 to 1: active requests against its `max_conns` when
    /// it has one, else against the busiest server of the service.
    pub load: f64,
}

/// Whether a server takes new work, and if not, why: what an operator
/// looks for first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerStatus {
    /// Takes new work.
    Up,
    /// Its health check or its agent says it is down.
    Down,
    /// Failures of real traffic hold it out (passive check).
    Failed,
    /// The operator or its agent drains it: no new work.
    Draining,
    /// In maintenance: no new work, not checked.
    Maint,
    /// Of weight 0: no new work (quiescent).
    WeightZero,
}

impl ServerStatus {
    /// The state of `server` now; the operator's word first, then the
    /// agent's, the checks', the passive marks' and the weight.
    pub fn of(server: &RealServer) -> Self {
        let state = &server.state;
        match (server.admin, state.agent_asks()) {
            (AdminState::Maint, _) | (_, AgentAsks::Maint) => ServerStatus::Maint,
            (AdminState::Drain, _) | (_, AgentAsks::Drain) => ServerStatus::Draining,
            _ if state.is_down() => ServerStatus::Down,
            _ if state.is_marked_failed() => ServerStatus::Failed,
            _ if server.effective_weight().is_quiescent() => ServerStatus::WeightZero,
            _ => ServerStatus::Up,
        }
    }

    /// Its name in `/stats.json`, and the page's CSS class for it.
    pub fn name(self) -> &'static str {
        match self {
            ServerStatus::Up => "up",
            ServerStatus::Down => "down",
            ServerStatus::Failed => "failed",
            ServerStatus::Draining => "draining",
            ServerStatus::Maint => "maint",
            ServerStatus::WeightZero => "weight_zero",
        }
    }

    /// As the page writes it.
    pub fn label(self) -> &'static str {
        match self {
            ServerStatus::WeightZero => "weight 0",
            other => other.name(),
        }
    }
}

impl Snapshot {
    /// The table as it is now, its services `listening` where the workers
    /// bound them, with the latest `rates` sampled.
    pub fn of(
        table: &Table,
        counters: &[Arc<WorkerCounters>],
        listening: &HashMap<ServiceId, SocketAddr>,
        rates: &Rates,
    ) -> Self {
        Snapshot {
            generation: table.generation,
            connections_open: counters
                .iter()
                .map(|c| c.open.load(Ordering::Relaxed))
                .sum(),
            connections_accepted: counters
                .iter()
                .map(|c| c.accepted.load(Ordering::Relaxed))
                .sum(),
            services: table
                .services
                .iter()
                .map(|service| {
                    let listen = listening.get(&service.ident).unwrap_or(&service.listen);
                    let spec = table
                        .spec
                        .services
                        .iter()
                        .find(|s| s.ident == service.ident);
                    ServiceView::of(service, spec, *listen, rates)
                })
                .collect(),
        }
    }
}

impl ServiceView {
    fn of(
        service: &Service,
        spec: Option<&ServiceSpec>,
        listen: SocketAddr,
        rates: &Rates,
    ) -> Self {
        let busiest = service
            .servers
            .iter()
            .map(|server| server.state.active())
            .max()
            .unwrap_or(0);
        let servers: Vec<ServerView> = service
            .servers
            .iter()
            .map(|server| {
                let requests = server.state.requests();
                let active = server.state.active();
                let scale = match server.max_conns {
                    0 => busiest,
                    max => max,
                };
                ServerView {
                    address: server.addr.to_string(),
                    host: spec
                        .and_then(|spec| spec.servers.iter().find(|s| s.addr == server.addr))
                        .and_then(|s| s.host.clone()),
                    state: ServerStatus::of(server),
                    weight: server.weight.0,
                    effective_weight: server.effective_weight().0,
                    max_conns: server.max_conns,
                    active,
                    requests,
                    // Exchanges finished per second over the last interval
                    // sampled; none before two samples.
                    rate: rates
                        .get(&(service.ident.to_string(), Some(server.addr)))
                        .map(|rate| rate.requests),
                    failures: server.state.failures(),
                    load: match scale {
                        0 => 0.0,
                        scale => (f64::from(active) / f64::from(scale)).min(1.0),
                    },
                }
            })
            .collect();
        let rates: Option<Vec<u64>> = servers.iter().map(|s| s.rate).collect();
        ServiceView {
            ident: service.ident.to_string(),
            listen: listen.to_string(),
            protocol: service.protocol.name(),
            scheduler: service.scheduler.kind().name(),
            options: service
                .sched_opts
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect(),
            enabled: service.enabled,
            rules: service
                .rules
                .iter()
                .map(|rule| RuleView {
                    conditions: rule.shown.clone(),
                    servers: rule.servers.iter().map(|s| s.addr.to_string()).collect(),
                })
                .collect(),
            // The default set is every server unless narrowed.
            default: (service.default_set.len() < service.servers.len()).then(|| {
                let set = service.default_set.iter();
                set.map(|s| s.addr.to_string()).collect()
            }),
            active: servers.iter().map(|s| s.active).sum(),
            requests: servers.iter().map(|s| s.requests).sum(),
            rate: rates.map(|rates| rates.iter().sum()),
            servers,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::tests::table_from;
    use crate::server::ActiveGuard;

    fn table(servers: &str) -> Table {
        table_from(&format!(
            "[[service]]\nident = \"web\"\nlisten = \"127.0.0.1:8080\"\nscheduler = \"wlc\"\n{servers}"
        ))
    }

    #[test]
    fn load_bars_compare_with_max_conns_or_the_busiest_server() {
        let table = table(
            "[[service.server]]\naddress = \"127.0.0.1:9001\"\n\
             [[service.server]]\naddress = \"127.0.0.1:9002\"\n\
             [[service.server]]\naddress = \"127.0.0.1:9003\"\nmax_conns = 8\n",
        );
        let servers = &table.services[0].servers;
        let _held: Vec<ActiveGuard> = [(0, 4), (1, 1), (2, 2)]
            .into_iter()
            .flat_map(|(i, n)| (0..n).map(move |_| ActiveGuard::new(servers[i].state.clone())))
            .collect();
        let snapshot = Snapshot::of(&table, &[], &HashMap::new(), &Default::default());
        let web = &snapshot.services[0];
        let loads: Vec<f64> = web.servers.iter().map(|s| s.load).collect();
        assert_eq!(loads, [1.0, 0.25, 0.25]);
        assert_eq!(
            (web.active, web.scheduler, web.protocol),
            (7, "wlc", "http")
        );
        assert_eq!(web.rate, None, "no sample yet");
    }

    #[test]
    fn a_state_says_why_a_server_takes_no_work() {
        let table = table(
            "[[service.server]]\naddress = \"127.0.0.1:9001\"\n\
             [[service.server]]\naddress = \"127.0.0.1:9002\"\nweight = 0\n\
             [[service.server]]\naddress = \"127.0.0.1:9003\"\nstate = \"drain\"\n\
             [[service.server]]\naddress = \"127.0.0.1:9004\"\n\
             [[service.server]]\naddress = \"127.0.0.1:9005\"\n",
        );
        let servers = &table.services[0].servers;
        servers[3].state.set_checked_down(true);
        let passive = tcpvs_command::PassiveSpec {
            max_fails: 1,
            fail_timeout: std::time::Duration::from_secs(60),
            on_5xx: false,
        };
        servers[4].state.record_failure(&passive);
        let states: Vec<&str> = servers
            .iter()
            .map(|s| ServerStatus::of(s).label())
            .collect();
        assert_eq!(states, ["up", "weight 0", "draining", "down", "failed"]);
        servers[0].state.set_agent_asks(AgentAsks::Maint);
        assert_eq!(ServerStatus::of(&servers[0]), ServerStatus::Maint);
    }
}
