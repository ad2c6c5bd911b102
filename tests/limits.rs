//! Hostile input and floods (issue #17): what tcpvsd does when a flood of
//! idle connections comes for every descriptor it may open.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use common::daemon::Daemon;
use common::{Client, Reply, TestServer};

/// A flood of idle clients meets the connection limit tcpvsd derived from
/// its descriptors (no `max_conns` configured): what is beyond it waits in
/// the backlog, and each client connection keeps a descriptor for its
/// server, so a client already connected keeps getting 200 (before the
/// limit, the flood took every descriptor and its requests got 503). The
/// server is not blamed (no failure counted, still up), the log says it
/// once a second at most, and service resumes when the flood leaves.
#[test]
#[cfg_attr(
    missing_prlimit,
    ignore = "needs prlimit (apt install util-linux); .ci/run has it"
)]
fn a_descriptor_flood_leaves_room_for_server_connections() {
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
        statuses.iter().all(|&s| s == 200),
        "no descriptor kept for the server: {statuses:?}"
    );
    let server_line = |listing: String| {
        listing
            .lines()
            .find(|l| l.contains(&backend.addr.to_string()))
            .expect("the server listed")
            .to_string()
    };
    let line = server_line(daemon.ok("-L -n"));
    assert!(line.contains(" up"), "the server was blamed: {line}");
    let line = server_line(daemon.ok("-L -n --stats"));
    assert_eq!(
        line.split_whitespace().last(),
        Some("0"),
        "failures counted against the server: {line}"
    );
    let log = daemon.stderr();
    assert!(
        log.contains("limit=5"),
        "the derived limit is logged: {log}"
    );
    assert!(log.matches("max_conns reached").count() <= 2, "{log}");
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
