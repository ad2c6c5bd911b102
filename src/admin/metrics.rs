//! The /metrics page: Prometheus text exposition format 0.0.4, built on read
//! from the table's live server state and the sum of the workers' counters.
//! Names follow Prometheus conventions (base units, `_total` for counters).

use std::fmt::Write as _;
use std::sync::Arc;

use super::counters::{
    sum, ExchangeCounts, Summed, WorkerCounters, CODE_CLASSES, DURATION_BUCKETS,
};
use crate::schedulers::SchedulerKind;
use crate::table::{ServerAddr, Table};
use std::sync::atomic::Ordering;

/// The content type of the page, as scrapers expect it.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The page for the table `table` and the workers' `counters`.
pub fn render(table: &Table, counters: &[Arc<WorkerCounters>]) -> String {
    let mut page = Page::default();
    exchanges(&mut page, &sum(table, counters));
    servers(&mut page, table);
    services(&mut page, table);
    workers(&mut page, counters);
    page.text
}

fn exchanges(page: &mut Page, sum: &Summed) {
    page.family(
        "tcpvs_requests_total",
        "counter",
        "Exchanges finished, by the class of the status sent to the client \
         (none: ended before a status was sent); server is empty when no server got the request.",
    );
    for (service, servers) in sum {
        for (server, counts) in servers {
            for (class, n) in CODE_CLASSES.iter().zip(counts.by_class) {
                let labels = labels(service, *server, &[("code_class", class)]);
                page.sample("tcpvs_requests_total", &labels, n);
            }
        }
    }
    type Bytes = fn(&ExchangeCounts) -> u64;
    let byte_families: [(&str, &str, Bytes); 2] = [
        (
            "tcpvs_request_bytes_total",
            "Request bytes received from clients and sent on to servers: heads as received, \
             bodies as sent (chunk framing re-encoded).",
            |counts| counts.request_bytes,
        ),
        (
            "tcpvs_response_body_bytes_total",
            "Response body bytes sent to clients (as the access log's bytes).",
            |counts| counts.body_bytes,
        ),
    ];
    for (name, help, bytes) in byte_families {
        page.family(name, "counter", help);
        for (service, servers) in sum {
            for (server, counts) in servers {
                page.sample(name, &labels(service, *server, &[]), bytes(counts));
            }
        }
    }
    let name = "tcpvs_request_duration_seconds";
    page.family(
        name,
        "histogram",
        "Time from the start of a request to the end of its exchange.",
    );
    for (service, servers) in sum {
        for (server, counts) in servers {
            let mut cumulative = 0;
            for (le, n) in DURATION_BUCKETS.iter().zip(counts.by_duration) {
                cumulative += n;
                let labels = labels(service, *server, &[("le", &le.to_string())]);
                page.sample(&format!("{name}_bucket"), &labels, cumulative);
            }
            let labels_inf = labels(service, *server, &[("le", "+Inf")]);
            page.sample(&format!("{name}_bucket"), &labels_inf, counts.total());
            let plain = labels(service, *server, &[]);
            page.sample(&format!("{name}_sum"), &plain, counts.seconds);
            page.sample(&format!("{name}_count"), &plain, counts.total());
        }
    }
}

/// The live state of each server of the table.
fn servers(page: &mut Page, table: &Table) {
    type Value = fn(&crate::table::RealServer) -> f64;
    let families: [(&str, &str, &str, Value); 5] = [
        (
            "tcpvs_server_active_requests",
            "gauge",
            "Requests being served by the server now, all workers together.",
            |s| f64::from(s.state.active()),
        ),
        (
            "tcpvs_server_failures_total",
            "counter",
            "Failed connects and broken exchanges with the server since start.",
            |s| s.state.failures() as f64,
        ),
        (
            "tcpvs_server_connect_errors_total",
            "counter",
            "Connects to the server that failed or timed out since start (among its failures).",
            |s| s.state.connect_failures() as f64,
        ),
        (
            "tcpvs_server_up",
            "gauge",
            "1 when neither the health check, the agent nor passive failure marks hold the server out.",
            |s| f64::from(u8::from(!s.state.is_down() && !s.state.is_marked_failed())),
        ),
        (
            "tcpvs_server_weight",
            "gauge",
            "The weight schedulers use: configured, scaled by the agent and slow start.",
            |s| f64::from(s.effective_weight().0),
        ),
    ];
    for (name, kind, help, value) in families {
        page.family(name, kind, help);
        for service in &table.services {
            for server in &service.servers {
                let labels = labels(service.ident.as_str(), Some(server.addr), &[]);
                page.sample(name, &labels, value(server));
            }
        }
    }
}

/// What each service of the table keeps beyond its servers.
fn services(page: &mut Page, table: &Table) {
    let name = "tcpvs_service_retries_total";
    page.family(
        name,
        "counter",
        "Requests sent again to another server after a failure.",
    );
    for service in &table.services {
        let labels = format!("service=\"{}\"", escaped(service.ident.as_str()));
        page.sample(name, &labels, service.state.retried());
    }
    let name = "tcpvs_service_lard_targets";
    page.family(
        name,
        "gauge",
        "Targets the LARD map of the service holds (lard and lardr schedulers).",
    );
    for service in &table.services {
        if let Some(targets) = service.scheduler.targets_mapped() {
            let labels = format!("service=\"{}\"", escaped(service.ident.as_str()));
            page.sample(name, &labels, targets);
        }
    }
    let moves = [
        (
            "tcpvs_service_lard_moves_total",
            "Targets the LARD map sent to another server than the one serving them \
             (lardr: servers that joined a target's set).",
            [SchedulerKind::Lard, SchedulerKind::Lardr].as_slice(),
        ),
        (
            "tcpvs_service_chash_moves_total",
            "Requests chash sent past the ring's first choice for their key \
             (down, full or over its load bound).",
            [SchedulerKind::Chash].as_slice(),
        ),
    ];
    for (name, help, kinds) in moves {
        page.family(name, "counter", help);
        for service in &table.services {
            let scheduler = &service.scheduler;
            let moved = scheduler
                .target_moves()
                .filter(|_| kinds.contains(&scheduler.kind()));
            if let Some(moved) = moved {
                let labels = format!("service=\"{}\"", escaped(service.ident.as_str()));
                page.sample(name, &labels, moved);
            }
        }
    }
    let name = "tcpvs_service_rtsp_sessions";
    page.family(name, "gauge", "Live RTSP sessions of the service.");
    let now = std::time::Instant::now();
    for service in &table.services {
        if let Some(sessions) = &service.sessions {
            let labels = format!("service=\"{}\"", escaped(service.ident.as_str()));
            page.sample(name, &labels, sessions.len(now));
        }
    }
}

/// What each worker counted of its client connections.
fn workers(page: &mut Page, counters: &[Arc<WorkerCounters>]) {
    let name = "tcpvs_worker_connections_accepted_total";
    page.family(name, "counter", "Client connections the worker accepted.");
    for (i, worker) in counters.iter().enumerate() {
        let accepted = worker.accepted.load(Ordering::Relaxed);
        page.sample(name, &format!("worker=\"{i}\""), accepted);
    }
    let name = "tcpvs_worker_connections_open";
    page.family(name, "gauge", "Client connections the worker has open.");
    for (i, worker) in counters.iter().enumerate() {
        let open = worker.open.load(Ordering::Relaxed);
        page.sample(name, &format!("worker=\"{i}\""), open);
    }
}

/// `service="…",server="…"` and the `extra` labels, escaped.
fn labels(service: &str, server: Option<ServerAddr>, extra: &[(&str, &str)]) -> String {
    let server = server.map(|s| s.to_string()).unwrap_or_default();
    let mut text = format!(
        "service=\"{}\",server=\"{}\"",
        escaped(service),
        escaped(&server)
    );
    for (name, value) in extra {
        let _ = write!(text, ",{name}=\"{}\"", escaped(value));
    }
    text
}

/// A label value as the format quotes it: `\`, `"` and newlines escaped.
fn escaped(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The page as it is written, family by family.
#[derive(Default)]
struct Page {
    text: String,
}

impl Page {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &str, value: impl std::fmt::Display) {
        let _ = writeln!(self.text, "{name}{{{labels}}} {value}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::counters::Exchange;
    use crate::admin::tests::table_from;
    use std::time::Duration;

    fn table() -> Table {
        table_with("wlc")
    }

    fn table_with(scheduler: &str) -> Table {
        table_from(&format!(
            "[[service]]\nident = \"web\"\nlisten = \"127.0.0.1:0\"\nscheduler = \"{scheduler}\"\n\
                    [[service.server]]\naddress = \"127.0.0.1:9001\"\nweight = 3\n"
        ))
    }

    #[test]
    fn counts_of_every_worker_are_summed_per_service_server_and_class() {
        let table = table();
        let server = Some(ServerAddr("127.0.0.1:9001".parse().unwrap()));
        let workers = [Arc::<WorkerCounters>::default(), Arc::default()];
        workers[0].count_exchange(
            "web",
            server,
            Exchange {
                status: Some(200),
                took: Duration::from_millis(2),
                request_bytes: 75,
                body_bytes: 10,
            },
        );
        workers[1].count_exchange(
            "web",
            server,
            Exchange {
                status: Some(200),
                took: Duration::from_millis(200),
                request_bytes: 1025,
                body_bytes: 20,
            },
        );
        workers[1].count_exchange(
            "web",
            None,
            Exchange {
                status: Some(503),
                took: Duration::ZERO,
                request_bytes: 0,
                body_bytes: 0,
            },
        );
        workers[1].accepted.fetch_add(2, Ordering::Relaxed);
        let page = render(&table, &workers);
        let has = |line: &str| assert!(page.lines().any(|l| l == line), "{line}\n{page}");
        has(r#"tcpvs_requests_total{service="web",server="127.0.0.1:9001",code_class="2xx"} 2"#);
        has(r#"tcpvs_requests_total{service="web",server="127.0.0.1:9001",code_class="5xx"} 0"#);
        has(r#"tcpvs_requests_total{service="web",server="",code_class="5xx"} 1"#);
        has(
            r#"tcpvs_request_duration_seconds_bucket{service="web",server="127.0.0.1:9001",le="0.005"} 1"#,
        );
        has(
            r#"tcpvs_request_duration_seconds_bucket{service="web",server="127.0.0.1:9001",le="0.1"} 1"#,
        );
        has(
            r#"tcpvs_request_duration_seconds_bucket{service="web",server="127.0.0.1:9001",le="0.25"} 2"#,
        );
        has(
            r#"tcpvs_request_duration_seconds_bucket{service="web",server="127.0.0.1:9001",le="+Inf"} 2"#,
        );
        has(r#"tcpvs_request_duration_seconds_count{service="web",server="127.0.0.1:9001"} 2"#);
        has(r#"tcpvs_response_body_bytes_total{service="web",server="127.0.0.1:9001"} 30"#);
        has(r#"tcpvs_request_bytes_total{service="web",server="127.0.0.1:9001"} 1100"#);
        has(r#"tcpvs_server_weight{service="web",server="127.0.0.1:9001"} 3"#);
        has(r#"tcpvs_server_up{service="web",server="127.0.0.1:9001"} 1"#);
        has(r#"tcpvs_worker_connections_accepted_total{worker="1"} 2"#);
        has("# TYPE tcpvs_requests_total counter");
    }

    #[test]
    fn a_lard_service_shows_the_size_of_its_map() {
        use crate::schedulers::RequestInfo;
        let lard = table_with("lard");
        let service = &lard.services[0];
        let client = "192.0.2.1".parse().unwrap();
        for path in ["/a", "/b", "/c", "/a"] {
            let request = RequestInfo::new(path, client);
            service
                .scheduler
                .pick(&request, &service.servers, &|_| true);
        }
        let page = render(&lard, &[]);
        assert!(
            page.lines()
                .any(|l| l == r#"tcpvs_service_lard_targets{service="web"} 3"#),
            "{page}"
        );
        assert!(
            page.lines()
                .any(|l| l == r#"tcpvs_service_lard_moves_total{service="web"} 0"#),
            "{page}"
        );
        assert!(!page.contains("tcpvs_service_chash_moves_total{"), "{page}");
        let page = render(&table_with("chash"), &[]);
        assert!(
            page.lines()
                .any(|l| l == r#"tcpvs_service_chash_moves_total{service="web"} 0"#),
            "{page}"
        );
        let page = render(&table(), &[]);
        assert!(
            !page.contains("tcpvs_service_lard_targets{"),
            "wlc has no map"
        );
    }

    #[test]
    fn label_values_cannot_break_out_of_their_quotes() {
        assert_eq!(escaped("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
