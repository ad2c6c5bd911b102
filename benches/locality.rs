//! Cache locality: one benchmark per scheduler runs a fixed, seeded stream
//! through the cluster simulator (the real scheduler code on 8 simulated
//! nodes), so criterion tracks the cost of scheduling plus simulation; the hit
//! rate, throughput and imbalance each scheduler achieves are printed beside.
//!
//!   cargo bench --bench locality

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use tcpvs::schedulers::SchedulerKind;
use tcpvs::sim::cluster::{simulate, ClusterSpec};
use tcpvs::sim::workload::{synthetic, SyntheticSpec};
use tcpvs::table::SchedOptions;

const SCHEDULERS: [SchedulerKind; 5] = [
    SchedulerKind::Wrr,
    SchedulerKind::Wlc,
    SchedulerKind::Chash,
    SchedulerKind::Lard,
    SchedulerKind::Lardr,
];

fn locality(c: &mut Criterion) {
    let workload = synthetic(&SyntheticSpec {
        requests: 20_000,
        ..SyntheticSpec::default()
    });
    // Each node caches an eighth of the working set.
    let spec = ClusterSpec::new(8, workload.working_set_bytes() / 8);
    let mut group = c.benchmark_group("locality");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_millis(500));
    for kind in SCHEDULERS {
        let report = simulate(kind, &SchedOptions::new(), &spec, &workload).expect("simulation");
        println!(
            "locality/{kind}: hit rate {:.3}, {:.0} req/s, imbalance {:.2}",
            report.hit_rate, report.throughput_rps, report.imbalance
        );
        group.bench_function(kind.name(), |b| {
            b.iter(|| simulate(kind, &SchedOptions::new(), &spec, &workload))
        });
    }
    group.finish();
}

criterion_group!(benches, locality);
criterion_main!(benches);
