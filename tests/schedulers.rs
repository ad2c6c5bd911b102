//! Schedulers end to end: LARD keeps a target on one real server across
//! keep-alive connections, and moves a hot target when its server overloads.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use tcpvs::schedulers::SchedulerKind;
use tcpvs::table::Settings;

/// Four servers that answer with their name; `/slow/` paths take 300 ms.
fn four_servers() -> Vec<TestServer> {
    ["s1", "s2", "s3", "s4"]
        .into_iter()
        .map(|name| {
            TestServer::start(move |req| {
                if req.request_line().contains(" /slow/") {
                    std::thread::sleep(Duration::from_millis(300));
                }
                Reply::Send(ok(name))
            })
        })
        .collect()
}

fn lard_proxy(servers: &[TestServer], options: &[(&str, &str)]) -> SocketAddr {
    let list: Vec<(SocketAddr, u16)> = servers.iter().map(|s| (s.addr, 1)).collect();
    let mut spec = service(&list, &[]);
    spec.scheduler = SchedulerKind::Lard;
    spec.sched_opts = options
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    start_proxy(spec, Settings::default()).until_test_ends()
}

#[test]
fn lard_keeps_each_target_on_one_server_across_connections() {
    let servers = four_servers();
    let proxy = lard_proxy(&servers, &[]);
    let mut homes = std::collections::BTreeMap::new();
    for round in 0..3 {
        let mut client = Client::connect(proxy);
        for page in 0..12 {
            let path = format!("/page{page}.html");
            let served = client
                .exchange(&format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n"))
                .text();
            let home = homes.entry(path.clone()).or_insert_with(|| served.clone());
            assert_eq!(*home, served, "{path} moved in round {round}");
        }
    }
    let used: std::collections::BTreeSet<_> = homes.values().collect();
    assert!(
        used.len() >= 3,
        "targets spread over the servers: {homes:?}"
    );
}

#[test]
fn lard_moves_a_hot_target_off_an_overloaded_server() {
    let servers = four_servers();
    let proxy = lard_proxy(&servers, &[("low", "1"), ("high", "2")]);
    let home = get(proxy, "/slow/hot").text();
    // Eight at once: the home server passes high=2 while others sit below
    // low=1, so the target moves.
    let clients: Vec<_> = (0..8)
        .map(|i| {
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20 * i));
                get(proxy, "/slow/hot").text()
            })
        })
        .collect();
    let served: Vec<String> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let elsewhere = served.iter().filter(|s| **s != home).count();
    assert!(elsewhere > 0, "never moved off {home}: {served:?}");
    assert!(
        served.iter().filter(|s| **s == home).count() >= 2,
        "moved too early: {served:?}"
    );
}
