//! Cost of one scheduling decision: content rules narrowing the candidates,
//! then the scheduler picking one (with its active-count guard), for every
//! scheduler with 4, 64 and 1024 servers; and the same decision made from
//! several threads at once, to see what contention on the shared state costs.
//!
//!   cargo bench --bench schedulers
//!   cargo bench --bench schedulers -- contended   # contention only

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use tcpvs::schedulers::{pick_server, BuildScheduler, RequestInfo, Scheduler, SchedulerKind};
use tcpvs::table::{
    RuleSpec, SchedOptions, ServerAddr, ServerSpec, ServiceSpec, Settings, Table, TableSpec, Weight,
};

/// Distinct request targets cycled through (LARD keeps one entry each).
const TARGETS: usize = 10_000;

fn table(servers: u16) -> Table {
    let addrs: Vec<ServerAddr> = (0..servers)
        .map(|i| {
            let ip = IpAddr::from([10, 0, (i / 250) as u8, (i % 250) as u8 + 1]);
            ServerAddr(std::net::SocketAddr::new(ip, 80))
        })
        .collect();
    let spec = TableSpec {
        settings: Settings::default(),
        services: vec![ServiceSpec {
            servers: addrs
                .iter()
                .enumerate()
                .map(|(i, &addr)| ServerSpec::new(addr, Weight(1 + i as u16 % 3)))
                .collect(),
            rules: vec![RuleSpec::on_target("^/cgi-bin/", addrs[..1].to_vec())],
            ..ServiceSpec::new("web".parse().unwrap(), "127.0.0.1:0".parse().unwrap())
        }],
    };
    Table::build(spec, None).unwrap()
}

fn paths() -> Vec<String> {
    (0..TARGETS)
        .map(|i| format!("/static/item{i}.jpg"))
        .collect()
}

fn decide(
    scheduler: &dyn Scheduler,
    table: &Table,
    path: &str,
    client: IpAddr,
) -> Option<ServerAddr> {
    let request = RequestInfo::new(path, client);
    let candidates = table.services[0].candidates(path);
    pick_server(scheduler, &request, candidates, &[]).map(|p| p.server.addr)
}

fn decisions(c: &mut Criterion) {
    let paths = paths();
    let mut group = c.benchmark_group("decision");
    group
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500));
    for servers in [4u16, 64, 1024] {
        let table = table(servers);
        for &kind in SchedulerKind::ALL {
            let scheduler = kind.build(&SchedOptions::new()).unwrap();
            let mut n = 0usize;
            group.bench_with_input(BenchmarkId::new(kind.name(), servers), &servers, |b, _| {
                b.iter(|| {
                    n = (n + 1) % TARGETS;
                    let client = IpAddr::from([192, 0, 2, (n % 200) as u8]);
                    decide(&*scheduler, &table, black_box(&paths[n]), client)
                })
            });
        }
    }
    group.finish();
}

/// Per-decision time with `threads` threads deciding at once on one
/// scheduler (64 servers). With `shared_servers`, all threads count requests
/// on the same servers (the per-server atomics every core shares, as in
/// tcpvsd); without, each thread has servers of its own and only the
/// scheduler's memory (LARD's map, turns, rings) is shared.
fn contention(c: &mut Criterion, group_name: &str, shared_servers: bool, thread_counts: &[usize]) {
    let paths = Arc::new(paths());
    let tables: Vec<Table> = (0..thread_counts.iter().max().copied().unwrap_or(1))
        .map(|_| table(64))
        .collect();
    let mut group = c.benchmark_group(group_name);
    group
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500));
    for &kind in SchedulerKind::ALL {
        let scheduler = kind.build(&SchedOptions::new()).unwrap();
        for &threads in thread_counts {
            group.bench_with_input(
                BenchmarkId::new(kind.name(), threads),
                &threads,
                |b, &threads| {
                    b.iter_custom(|iters| {
                        let started = Instant::now();
                        std::thread::scope(|scope| {
                            for t in 0..threads {
                                let table = &tables[if shared_servers { 0 } else { t }];
                                let (scheduler, paths) = (&scheduler, &paths);
                                scope.spawn(move || {
                                    for i in 0..iters as usize {
                                        let n = (i * 7 + t * 1013) % TARGETS;
                                        let client = IpAddr::from([192, 0, 2, (n % 200) as u8]);
                                        black_box(decide(&**scheduler, table, &paths[n], client));
                                    }
                                });
                            }
                        });
                        // Wall time per decision of one thread: equal to the
                        // one-thread figure when there is no contention.
                        started.elapsed()
                    })
                },
            );
        }
    }
    group.finish();
}

fn contended(c: &mut Criterion) {
    contention(c, "contended", true, &[1, 2, 8]);
    contention(c, "contended_own_servers", false, &[1, 2]);
}

/// Content-rule matching alone: a target that matches no rule (so every rule
/// is tried) with 1 and with 50 rules.
fn routing(c: &mut Criterion) {
    let mut group = c.benchmark_group("routing");
    group
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500));
    for rules in [1usize, 50] {
        let addr = ServerAddr("10.0.0.1:80".parse().unwrap());
        let spec = TableSpec {
            settings: Settings::default(),
            services: vec![ServiceSpec {
                servers: vec![ServerSpec::new(addr, Weight(1))],
                rules: (0..rules)
                    .map(|i| RuleSpec::on_target(&format!("^/section{i}/|\\.ext{i}$"), vec![addr]))
                    .collect(),
                ..ServiceSpec::new("web".parse().unwrap(), "127.0.0.1:0".parse().unwrap())
            }],
        };
        let table = Table::build(spec, None).unwrap();
        let service = &table.services[0];
        group.bench_with_input(BenchmarkId::new("no_match", rules), &rules, |b, _| {
            b.iter(|| {
                service
                    .candidates(black_box(
                        "/static/products/summer/shoe-1234.jpg?size=large",
                    ))
                    .len()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, decisions, contended, routing);
criterion_main!(benches);
