//! Cache locality over real sockets: four caching back ends (an LRU in memory,
//! a miss costs a delay) behind tcpvsd, a seeded Zipf client, and the hit rates
//! the back ends measure under wlc and under lard. They must order the two
//! schedulers as the simulator does.

mod common;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use tcpvs::schedulers::SchedulerKind;
use tcpvs::sim::cluster::{simulate, ClusterSpec};
use tcpvs::sim::workload::{synthetic, SyntheticSpec};
use tcpvs::table::{SchedOptions, Settings};

const FILES_CACHED: usize = 40;
const MISS_DELAY: Duration = Duration::from_millis(2);

/// Hits and misses a caching back end saw.
#[derive(Default)]
struct CacheStats {
    lru: VecDeque<String>,
    hits: usize,
    misses: usize,
}

fn caching_backend(stats: Arc<Mutex<CacheStats>>) -> TestServer {
    TestServer::start(move |req| {
        let path = req
            .request_line()
            .split_whitespace()
            .nth(1)
            .unwrap_or("/")
            .to_string();
        let hit = {
            let mut stats = stats.lock().unwrap();
            let hit = match stats.lru.iter().position(|p| *p == path) {
                Some(i) => {
                    stats.lru.remove(i);
                    true
                }
                None => false,
            };
            stats.lru.push_back(path);
            if stats.lru.len() > FILES_CACHED {
                stats.lru.pop_front();
            }
            if hit {
                stats.hits += 1;
            } else {
                stats.misses += 1;
            }
            hit
        };
        if !hit {
            // A miss costs time, as a disk read does: the behaviour modelled,
            // not synchronisation. No check depends on its length; it only
            // makes a missing server busier, as load-aware schedulers expect.
            std::thread::sleep(MISS_DELAY);
        }
        Reply::Send(ok("x"))
    })
}

/// Runs the stream through tcpvsd with `kind`; returns the back ends' hit rate.
fn measured_hit_rate(kind: SchedulerKind, paths: &[String]) -> f64 {
    let stats: Vec<Arc<Mutex<CacheStats>>> = (0..4).map(|_| Arc::default()).collect();
    let backends: Vec<TestServer> = stats.iter().map(|s| caching_backend(s.clone())).collect();
    let list: Vec<(SocketAddr, u16)> = backends.iter().map(|b| (b.addr, 1)).collect();
    let mut spec = service(&list, &[]);
    spec.scheduler = kind;
    let running = start_proxy(spec, Settings::default());
    let proxy = running.addr();
    // Eight keep-alive clients take the stream's requests in turn.
    let paths = Arc::new(paths.to_vec());
    let clients: Vec<_> = (0..8)
        .map(|c| {
            let paths = paths.clone();
            std::thread::spawn(move || {
                let mut client = Client::connect(proxy);
                for path in paths.iter().skip(c).step_by(8) {
                    let response =
                        client.exchange(&format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n"));
                    assert_eq!(response.status, 200);
                }
            })
        })
        .collect();
    for client in clients {
        client.join().unwrap();
    }
    let (hits, misses) = stats.iter().fold((0, 0), |(h, m), s| {
        let s = s.lock().unwrap();
        (h + s.hits, m + s.misses)
    });
    assert_eq!(hits + misses, paths.len());
    hits as f64 / paths.len() as f64
}

#[test]
fn lard_beats_wlc_on_real_caches_as_in_the_simulator() {
    let workload = synthetic(&SyntheticSpec {
        seed: 7,
        files: 400,
        requests: 1600,
        ..SyntheticSpec::default()
    });
    let paths: Vec<String> = workload
        .requests
        .iter()
        .map(|r| workload.paths[r.file as usize].clone())
        .collect();
    let wlc = measured_hit_rate(SchedulerKind::Wlc, &paths);
    let lard = measured_hit_rate(SchedulerKind::Lard, &paths);
    eprintln!("measured hit rates: wlc {wlc:.3}, lard {lard:.3}");
    assert!(lard > wlc + 0.15, "lard {lard:.3} vs wlc {wlc:.3}");

    // The simulator, with the same stream and caches of about the same size,
    // orders them the same way.
    let mean_size = workload.working_set_bytes() / workload.paths.len() as u64;
    let spec = ClusterSpec::new(4, mean_size * FILES_CACHED as u64);
    let simulated = |kind| {
        simulate(kind, &SchedOptions::new(), &spec, &workload)
            .unwrap()
            .hit_rate
    };
    assert!(
        simulated(SchedulerKind::Lard) > simulated(SchedulerKind::Wlc),
        "simulator disagrees"
    );
}

/// The locality example as a user runs it (built by `cargo test`).
fn locality_example(args: &[&str]) -> std::process::Output {
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_tcpvsd"))
        .parent()
        .unwrap()
        .join("examples/locality");
    assert!(
        exe.exists(),
        "{} missing: cargo test builds examples",
        exe.display()
    );
    std::process::Command::new(exe).args(args).output().unwrap()
}

#[test]
fn same_seed_gives_byte_identical_json() {
    let args = [
        "--json",
        "--nodes",
        "1,4",
        "--requests",
        "4000",
        "--files",
        "500",
    ];
    let first = locality_example(&args);
    let second = locality_example(&args);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert_eq!(first.stdout, second.stdout);
    let reports: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    let report = &reports[0];
    for key in [
        "scheduler",
        "nodes",
        "hit_rate",
        "throughput_rps",
        "imbalance",
    ] {
        assert!(report.get(key).is_some(), "{key} missing in {report}");
    }
}

#[test]
fn traces_with_bad_lines_are_reported_and_empty_ones_refused() {
    let dir = std::env::temp_dir().join(format!("tcpvs-trace-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("access.log");
    std::fs::write(
        &log,
        "127.0.0.1 - - [22/Nov/2026:04:00:00 +0000] \"GET /a.html HTTP/1.1\" 200 5120 \"-\" \"curl\"\n\
         this line is not a log line\n\
         /b.jpg 20480\n",
    )
    .unwrap();
    let output = locality_example(&["--trace", log.to_str().unwrap(), "--nodes", "2"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("1 of 3 lines malformed"), "{stderr}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("2 requests over 2 files"));

    let output = locality_example(&["--nodes", "0"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--nodes: give counts of at least 1"));

    let empty = dir.join("empty.log");
    std::fs::write(&empty, "").unwrap();
    let output = locality_example(&["--trace", empty.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("the trace has no request"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
