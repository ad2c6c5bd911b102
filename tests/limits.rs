//! Hostile input and floods (issue #17): what tcpvsd does when a flood of
//! idle connections takes every descriptor it may open.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use common::daemon::Daemon;
use common::{Client, Reply, TestServer};

/// With every descriptor taken by idle clients, a request of a client
/// already connected gets a 503 from tcpvsd itself, the server is not
/// blamed (no failure counted, still up), the log says it once, not per
/// try, and service resumes when the flood leaves.
#[test]
fn running_out_of_descriptors_is_not_the_servers_fault() {
    if !common::require_tool("prlimit") {
        return;
    }
    // It closes after each answer, and says so: every request needs a new
    // connection, and the one before is closed (its descriptor freed, and
    // taken by the flood waiting in the accept queue).
    let backend = TestServer::start(|_| {
        let answer = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 6\r\n\r\nserved";
        Reply::SendAndClose(answer.to_vec())
    });
    let config = format!(
        "log_level = \"warn\"\naccess_log = false\nworkers = 1\n\
         [[service]]\nident = \"web\"\nlisten = \"127.0.0.1:0\"\n\
         [service.passive]\nmax_fails = 1\n\
         [[service.server]]\naddress = \"{}\"\n",
        backend.addr
    );
    // Room for what it opens at start and a few connections, no more.
    let daemon = Daemon::with_config_limited("emfile", &config, 48);
    let listen = daemon.bound("web");
    // A client connected before the flood, and its first answer.
    let mut early = Client::connect(listen);
    let keep = "GET / HTTP/1.1\r\nHost: t\r\n\r\n";
    assert_eq!(early.exchange(keep).status, 200);
    // The flood: more connections than descriptors left, each with the
    // start of a head (accepts are deferred until a client's first bytes).
    let flood: Vec<TcpStream> = (0..60)
        .filter_map(|_| {
            let mut stream = TcpStream::connect(listen).ok()?;
            stream.write_all(b"GET / HTTP/1.1\r\n").ok()?;
            Some(stream)
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(early.exchange(keep).status);
    }
    assert!(
        statuses.iter().all(|&s| s == 200 || s == 503),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&503),
        "no descriptor ever ran out: {statuses:?}"
    );
    let listing = daemon.ok("-L --stats");
    let line = listing
        .lines()
        .find(|l| l.contains(&backend.addr.to_string()))
        .expect("the server listed");
    let numbers: Vec<&str> = line.split_whitespace().collect();
    assert!(line.contains(" up"), "the server was blamed: {line}");
    assert_eq!(
        numbers[5], "0",
        "failures counted against the server: {line}"
    );
    let log = daemon.stderr();
    assert!(log.matches("a local limit").count() <= 2, "{log}");
    drop(flood);
    std::thread::sleep(Duration::from_millis(300));
    let mut late = Client::connect(listen);
    assert_eq!(
        late.exchange(keep).status,
        200,
        "no recovery after the flood"
    );
}
