//! Schedulers end to end: LARD keeps a target on one real server across
//! keep-alive connections, and moves a hot target when its server overloads.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use common::*;
use tcpvs::schedulers::SchedulerKind;
use tcpvs::table::Settings;

const NAMES: [&str; 4] = ["s1", "s2", "s3", "s4"];

/// Where the servers hold `/slow/` requests until the test opens it: a
/// request in flight for as long as the test needs, with no sleep to race.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    /// Waits until the gate opens, or `TIMEOUT` (a failed test never opens it).
    fn pass(&self) {
        let open = self.open.lock().unwrap();
        let (_open, _timed_out) = self
            .opened
            .wait_timeout_while(open, TIMEOUT, |open| !*open)
            .unwrap();
    }

    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }
}

/// Four servers that answer with their name; `/slow/` paths wait at `gate`.
fn four_servers(gate: &Arc<Gate>) -> Vec<TestServer> {
    NAMES
        .into_iter()
        .map(|name| {
            let gate = gate.clone();
            TestServer::start(move |req| {
                if req.request_line().contains(" /slow/") {
                    gate.pass();
                }
                Reply::Send(ok(name))
            })
        })
        .collect()
}

/// A LARD service over `servers`; it stops when the returned proxy drops.
fn lard_proxy(servers: &[TestServer], options: &[(&str, &str)]) -> Proxy {
    let list: Vec<(SocketAddr, u16)> = servers.iter().map(|s| (s.addr, 1)).collect();
    let mut spec = service(&list, &[]);
    spec.scheduler = SchedulerKind::Lard;
    spec.sched_opts = options
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    start_proxy(spec, Settings::default())
}

/// Waits until the servers together have read `total` request heads (the
/// proxy counts a request in its server's load before it connects, so every
/// request up to there is in the load); returns the index of the server whose
/// count grew since `before`.
fn server_that_got_the_next_head(servers: &[TestServer], before: &[usize], total: usize) -> usize {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let now: Vec<usize> = servers.iter().map(|s| s.heads().len()).collect();
        if now.iter().sum::<usize>() >= total {
            assert_eq!(now.iter().sum::<usize>(), total, "heads {now:?}");
            return (0..servers.len())
                .find(|&i| now[i] > before[i])
                .expect("one server's count grew");
        }
        assert!(
            Instant::now() < deadline,
            "only {now:?} heads of {total} after {TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn lard_keeps_each_target_on_one_server_across_connections() {
    let servers = four_servers(&Arc::default());
    let proxy = lard_proxy(&servers, &[]);
    let mut homes = BTreeMap::new();
    for round in 0..3 {
        let mut client = Client::connect(proxy.addr());
        for page in 0..12 {
            let path = format!("/page{page}.html");
            let served = client
                .exchange(&format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n"))
                .text();
            let home = homes.entry(path.clone()).or_insert_with(|| served.clone());
            assert_eq!(*home, served, "{path} moved in round {round}");
        }
    }
    // A new target goes to the least loaded server, ties rotating: twelve
    // targets over four idle servers, three each.
    let mut targets_per_server = BTreeMap::new();
    for home in homes.values() {
        *targets_per_server.entry(home.as_str()).or_insert(0) += 1;
    }
    let expected: BTreeMap<&str, usize> = NAMES.into_iter().map(|name| (name, 3)).collect();
    assert_eq!(
        targets_per_server, expected,
        "targets per server: {homes:?}"
    );
}

#[test]
fn lard_moves_a_hot_target_off_an_overloaded_server() {
    let gate = Arc::new(Gate::default());
    let servers = four_servers(&gate);
    let proxy = lard_proxy(&servers, &[("low", "1"), ("high", "2")]);
    let addr = proxy.addr();
    // Eight requests for one target, each held at its server until all
    // eight are in flight, sent one at a time: each is picked knowing the
    // load of those before it.
    let mut picked = Vec::new();
    let mut clients = Vec::new();
    for sent in 1..=8 {
        let before: Vec<usize> = servers.iter().map(|s| s.heads().len()).collect();
        clients.push(std::thread::spawn(move || get(addr, "/slow/hot").text()));
        picked.push(server_that_got_the_next_head(&servers, &before, sent));
    }
    gate.open();
    let served: Vec<String> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let picked_names: Vec<&str> = picked.iter().map(|&i| NAMES[i]).collect();
    assert_eq!(served, picked_names, "answers come from the servers picked");

    // The target stays while its server's load is at most high=2 (three
    // requests), then moves to an idle server (load below low=1), which
    // keeps it for three requests in turn; then it moves again.
    let (home, next, third) = (picked[0], picked[3], picked[6]);
    assert_eq!(
        picked,
        [home, home, home, next, next, next, third, third],
        "{picked_names:?}"
    );
    assert!(
        home != next && third != home && third != next,
        "moved to a busy server: {picked_names:?}"
    );
}
