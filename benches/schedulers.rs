//! Cost of one scheduling decision: content rules narrowing the candidates,
//! then the scheduler picking one (with the active-count guard).

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use std::net::IpAddr;
use tcpvs::schedulers::{pick_server, RequestInfo, SchedulerKind};
use tcpvs::table::{
    RuleSpec, SchedOptions, ServerAddr, ServerSpec, ServiceSpec, Settings, Table, TableSpec, Weight,
};

fn table(servers: u16) -> Table {
    let addrs: Vec<ServerAddr> = (0..servers)
        .map(|i| ServerAddr(format!("10.0.0.{}:80", i + 1).parse().unwrap()))
        .collect();
    let spec = TableSpec {
        settings: Settings::default(),
        services: vec![ServiceSpec {
            servers: addrs
                .iter()
                .enumerate()
                .map(|(i, &addr)| ServerSpec {
                    addr,
                    weight: Weight(1 + i as u16 % 3),
                })
                .collect(),
            rules: vec![
                RuleSpec {
                    pattern: "^/cgi-bin/".into(),
                    servers: addrs[..1].to_vec(),
                    match_group: None,
                },
                RuleSpec {
                    pattern: r"\.(jpg|png|gif)$".into(),
                    servers: addrs[addrs.len() / 2..].to_vec(),
                    match_group: None,
                },
            ],
            ..ServiceSpec::new("web".parse().unwrap(), "127.0.0.1:0".parse().unwrap())
        }],
    };
    Table::build(spec, None).unwrap()
}

fn decisions(c: &mut Criterion) {
    let mut group = c.benchmark_group("schedule");
    for servers in [4u16, 16, 64] {
        let table = table(servers);
        let service = &table.services[0];
        for &kind in SchedulerKind::ALL {
            let scheduler = kind.build(&SchedOptions::new()).unwrap();
            group.bench_with_input(BenchmarkId::new(kind.name(), servers), &servers, |b, _| {
                b.iter(|| {
                    let path = black_box("/static/products/shoe.jpg");
                    let request = RequestInfo::new(path, IpAddr::from([192, 0, 2, 7]));
                    let candidates = service.candidates(path);
                    pick_server(&*scheduler, &request, candidates, &[]).map(|p| p.server.addr)
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, decisions);
criterion_main!(benches);
