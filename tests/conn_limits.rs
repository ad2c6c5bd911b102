//! Connection limits (issue #17): a daemon-wide and a per-service
//! `max_conns` leave new clients waiting in the kernel's backlog, never
//! closed, and serve them as soon as a client leaves; clients already
//! connected are served throughout. A server's `max_conns` queues requests
//! (HAProxy's model): `max_queue` and `queue_timeout` bound the wait.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::daemon::{Daemon, Scratch};
use common::{get, ok, service, start_proxy, Client, Ending, Reply, TestServer};
use tcpvs::table::Settings;

const GET: &str = "GET / HTTP/1.1\r\nHost: t\r\n\r\n";

/// With two connections allowed, two keep-alive clients are served; a third
/// one's request gets no answer and its connection stays open (waiting in
/// the backlog); once one of the two leaves, the third is answered, and the
/// other is served all along.
fn third_client_waits_for_a_slot(service_max: u32, daemon_max: u32) {
    let backend = TestServer::named("a");
    let mut web = service(&[(backend.addr, 1)], &[]);
    web.conn_limits.max_conns = service_max;
    let settings = Settings {
        max_conns: daemon_max,
        ..Settings::default()
    };
    let proxy = start_proxy(web, settings);
    let mut first = Client::connect(proxy.addr());
    let mut second = Client::connect(proxy.addr());
    assert_eq!(first.exchange(GET).status, 200);
    assert_eq!(second.exchange(GET).status, 200);
    let mut third = Client::connect(proxy.addr());
    third.send(GET.as_bytes());
    assert_eq!(
        third.ending(Duration::from_millis(500)),
        Ending::Open,
        "the third client was served or closed past the limit"
    );
    for _ in 0..3 {
        assert_eq!(second.exchange(GET).status, 200, "a client already served");
    }
    drop(first);
    let answered = Instant::now();
    assert_eq!(third.read_response(false).status, 200);
    assert!(
        answered.elapsed() < Duration::from_secs(1),
        "served {:?} after a slot freed",
        answered.elapsed()
    );
    assert_eq!(second.exchange(GET).status, 200);
}

#[test]
fn a_service_at_its_max_conns_leaves_new_clients_in_the_backlog() {
    third_client_waits_for_a_slot(2, 0);
}

#[test]
fn the_daemon_wide_max_conns_leaves_new_clients_in_the_backlog() {
    third_client_waits_for_a_slot(0, 2);
}

/// A backend that holds each request `hold` before answering, and counts
/// the most requests it ever held at once.
struct SlowBackend {
    server: TestServer,
    most: Arc<AtomicUsize>,
}

fn slow_backend(hold: Duration) -> SlowBackend {
    let now = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (counting, seen) = (now.clone(), most.clone());
    let server = TestServer::start(move |_| {
        let held = counting.fetch_add(1, Ordering::SeqCst) + 1;
        seen.fetch_max(held, Ordering::SeqCst);
        std::thread::sleep(hold);
        counting.fetch_sub(1, Ordering::SeqCst);
        Reply::Send(ok("slow"))
    });
    SlowBackend { server, most }
}

/// `clients` requests sent at once, each on a connection of its own: the
/// status of each and when it came.
fn at_once(addr: SocketAddr, clients: usize) -> Vec<(u16, Duration)> {
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            std::thread::spawn(move || {
                let started = Instant::now();
                let status = Client::connect(addr).exchange(GET).status;
                (status, started.elapsed())
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

/// A server with `max_conns` 2 never holds more than 2 requests at once;
/// the others wait in the queue and are served as places free.
#[test]
fn a_server_at_its_max_conns_is_never_sent_more_and_the_queue_is_served() {
    let backend = slow_backend(Duration::from_millis(300));
    let mut web = service(&[(backend.server.addr, 1)], &[]);
    web.servers[0].max_conns = 2;
    let proxy = start_proxy(web, Settings::default());
    let results = at_once(proxy.addr(), 6);
    assert!(results.iter().all(|&(s, _)| s == 200), "{results:?}");
    assert_eq!(
        backend.most.load(Ordering::SeqCst),
        2,
        "most requests the server held at once"
    );
    let last = results.iter().map(|&(_, t)| t).max().unwrap();
    assert!(
        last >= Duration::from_millis(850),
        "not queued: {results:?}"
    );
    assert_eq!(proxy.table().services[0].state.queued.held(), 0);
}

/// Beyond `max_queue` waiting requests a request gets 503 at once; a queued
/// one gets 503 once it waited `queue_timeout`.
#[test]
fn a_full_queue_and_a_queue_timeout_answer_503() {
    let backend = slow_backend(Duration::from_millis(600));
    let mut web = service(&[(backend.server.addr, 1)], &[]);
    web.servers[0].max_conns = 1;
    web.conn_limits.max_queue = 1;
    web.conn_limits.queue_timeout = Some(Duration::from_millis(250));
    let proxy = start_proxy(web, Settings::default());
    let results = at_once(proxy.addr(), 4);
    let statuses: Vec<u16> = results.iter().map(|&(s, _)| s).collect();
    assert_eq!(
        statuses.iter().filter(|&&s| s == 200).count(),
        1,
        "{results:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 503).count(),
        3,
        "{results:?}"
    );
    let refused: Vec<Duration> = results
        .iter()
        .filter(|&&(s, _)| s == 503)
        .map(|&(_, t)| t)
        .collect();
    let at_once = refused.iter().filter(|&&t| t < Duration::from_millis(200));
    assert_eq!(at_once.count(), 2, "queue full: 503 at once: {results:?}");
    let waited = refused.iter().filter(|&&t| t >= Duration::from_millis(240));
    assert_eq!(waited.count(), 1, "the queued one waited: {results:?}");
    assert_eq!(backend.most.load(Ordering::SeqCst), 1);
}

const SOURCE: [u8; 4] = [127, 0, 0, 2];
const OTHER: [u8; 4] = [127, 0, 0, 3];

/// With `max_conns_per_source` 2, a third connection from one address is
/// closed at accept (before its request is read), another address is
/// served, and a connection that ends gives its address its place back.
#[test]
fn a_source_over_its_connections_is_closed_at_accept() {
    let backend = TestServer::named("a");
    let mut web = service(&[(backend.addr, 1)], &[]);
    web.conn_limits.max_conns_per_source = 2;
    let proxy = start_proxy(web, Settings::default());
    let from = |ip: [u8; 4]| Client::connect_from(ip.into(), proxy.addr());
    let mut first = from(SOURCE);
    let mut second = from(SOURCE);
    assert_eq!(first.exchange(GET).status, 200);
    assert_eq!(second.exchange(GET).status, 200);
    let mut third = from(SOURCE);
    let _ = third.try_send(GET.as_bytes());
    third.assert_closed("a third connection from 127.0.0.2");
    assert_eq!(from(OTHER).exchange(GET).status, 200, "another address");
    assert_eq!(second.exchange(GET).status, 200, "a client already served");
    drop(first);
    assert!(
        common::eventually(Duration::from_secs(2), || {
            let mut again = from(SOURCE);
            again.try_send(GET.as_bytes()).is_ok()
                && again
                    .try_read_response(false)
                    .is_ok_and(|r| r.status == 200)
        }),
        "the address never got its place back"
    );
}

/// With `rate_per_source` 1 and a burst of 3, an address gets 3 answers,
/// then a 429 with Retry-After and its connection closed; another address
/// is served meanwhile.
#[test]
fn a_source_over_its_rate_gets_429_with_retry_after() {
    let backend = TestServer::named("a");
    let mut web = service(&[(backend.addr, 1)], &[]);
    web.conn_limits.rate_per_source = 1;
    web.conn_limits.burst_per_source = 3;
    let proxy = start_proxy(web, Settings::default());
    let mut client = Client::connect_from(SOURCE.into(), proxy.addr());
    for _ in 0..3 {
        assert_eq!(client.exchange(GET).status, 200, "within the burst");
    }
    let refused = client.exchange(GET);
    assert_eq!(refused.status, 429);
    assert_eq!(refused.header("retry-after"), ["1"]);
    assert_eq!(refused.header("connection"), ["close"]);
    client.assert_closed("after the 429");
    let mut other = Client::connect_from(OTHER.into(), proxy.addr());
    assert_eq!(other.exchange(GET).status, 200, "another address");
    assert_eq!(
        backend.requests().len(),
        4,
        "a refused request reaches no server"
    );
}

const EMPTY: &str = "log_level = \"warn\"\nallow_empty = true\n";

/// The list verb's JSON, as a client of the control socket reads it.
fn json_list(daemon: &Daemon) -> serde_json::Value {
    let mut socket = UnixStream::connect(&daemon.socket).unwrap();
    socket
        .write_all(b"{\"id\": 1, \"verb\": \"list\"}\n")
        .unwrap();
    let mut line = String::new();
    BufReader::new(socket).read_line(&mut line).unwrap();
    serde_json::from_str(&line).unwrap()
}

/// Limits set by tcpvsadm are listed (`-L`, the JSON view), saved as
/// commands (`-S`), changed and removed by `-E`/`-e` (0: no limit), and
/// kept by the state file across a restart.
#[test]
fn limits_are_set_listed_saved_and_kept_across_a_restart() {
    let server = TestServer::named("kept");
    let dir = Scratch::new("limits-state");
    let state = dir.path().join("state.toml");
    let state_arg = state.to_str().unwrap().to_string();
    let first = Daemon::with_config_in(dir, EMPTY, &["--state-file", &state_arg]);
    first.ok(
        "-A -i web -l 127.0.0.1:0 --max-conns 50 --max-queue 5 --queue-timeout 2s \
         --max-conns-per-source 4 --rate-per-source 10 --burst-per-source 20",
    );
    first.ok(&format!("-a -i web -r {} --max-conns 3", server.addr));
    let listing = first.ok("-L -n");
    assert!(
        listing.contains(
            "  limits: burst-per-source 20; max-conns 50; max-conns-per-source 4; \
             max-queue 5; queue-timeout 2s; rate-per-source 10; conns 0, queued 0"
        ),
        "{listing}"
    );
    let server_line = listing
        .lines()
        .find(|l| l.contains(&server.addr.to_string()))
        .unwrap();
    assert!(server_line.ends_with("max-conns 3"), "{server_line}");
    let json = json_list(&first);
    let web = &json["table"]["services"][0];
    assert_eq!(web["limits"]["max_conns"], "50", "{json}");
    assert_eq!(web["servers"][0]["max_conns"], 3, "{json}");
    assert_eq!(get(first.bound("web"), "/").text(), "kept");

    first.ok("-E -i web --max-conns 0 --queue-timeout 0");
    first.ok(&format!("-e -i web -r {} --max-conns 0", server.addr));
    let saved = first.ok("-S");
    assert_eq!(
        saved.lines().next().unwrap(),
        "-A -i web -l 127.0.0.1:0 -s wlc --burst-per-source 20 --max-conns-per-source 4 \
         --max-queue 5 --rate-per-source 10"
    );
    assert!(!saved.contains("--max-conns "), "{saved}");
    let dir = first.stop();
    let second = Daemon::with_config_in(dir, EMPTY, &["--state-file", &state_arg]);
    assert_eq!(second.ok("-S"), saved);
}
