//! Hostile slow clients, driven by slowhttptest (Debian `slowhttptest`):
//! slowloris heads, slow POST bodies and slow readers. Normal clients must
//! be answered within a second throughout, slow requests cut at their
//! deadline, the connections slow clients hold on real servers bounded, and
//! the memory slow readers took given back once they leave.
//!
//! `cargo test --release --test slow_clients -- --nocapture` prints the
//! figures (normal clients' latency percentiles, RSS per slow reader).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::daemon::Daemon;
use common::*;

/// A real server answering every request with `body_bytes` bytes, in one
/// write (two would wait out the proxy's delayed ACK: 40 ms that are the
/// test's, not the proxy's).
fn server(body_bytes: usize) -> TestServer {
    let mut answer =
        format!("HTTP/1.1 200 OK\r\nContent-Length: {body_bytes}\r\n\r\n").into_bytes();
    answer.resize(answer.len() + body_bytes, b'x');
    TestServer::start(move |_| Reply::Send(answer.clone()))
}

/// A normal client: a fresh connection and one GET every 20 ms until
/// `stop`, each timed; a request not answered 200 within 5 s counts as
/// failed.
struct Prober {
    latencies: std::thread::JoinHandle<(Vec<Duration>, usize)>,
    stop: Arc<AtomicBool>,
}

impl Prober {
    fn start(addr: SocketAddr) -> Prober {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let latencies = std::thread::spawn(move || {
            let (mut times, mut failed) = (Vec::new(), 0);
            let until = Instant::now() + Duration::from_secs(60);
            while !stopping.load(Ordering::SeqCst) && Instant::now() < until {
                let started = Instant::now();
                match probe(addr) {
                    Ok(200) => times.push(started.elapsed()),
                    _ => failed += 1,
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            (times, failed)
        });
        Prober { latencies, stop }
    }

    /// Stops it; returns the latencies of the answered requests, sorted,
    /// and the count of failed ones.
    fn finish(self) -> (Vec<Duration>, usize) {
        self.stop.store(true, Ordering::SeqCst);
        let (mut times, failed) = self.latencies.join().unwrap();
        times.sort();
        (times, failed)
    }
}

fn probe(addr: SocketAddr) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(b"GET /probe HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    let text = String::from_utf8_lossy(&answer);
    Ok(text
        .split(' ')
        .nth(1)
        .and_then(|status| status.parse().ok())
        .unwrap_or(0))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64) * p).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// slowhttptest against `addr` in `mode` (`-H`, `-B`, `-X`) with `extra`
/// options; its output is kept for a failure message.
fn slowhttptest(mode: &str, addr: SocketAddr, extra: &[&str]) -> Child {
    Command::new("slowhttptest")
        .arg(mode)
        .args(["-u", &format!("http://{addr}/slow")])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("slowhttptest runs")
}

fn finished(child: Child) -> String {
    let output = child.wait_with_output().expect("slowhttptest ends");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn access_lines_with(daemon: &Daemon, text: &str) -> usize {
    daemon
        .stderr()
        .lines()
        .filter(|line| line.contains("tcpvs::access") && line.contains(text))
        .count()
}

fn daemon_for(name: &str, server: SocketAddr, timeouts: &str) -> Daemon {
    let config = format!(
        "log_level = \"info\"\n[timeouts]\n{timeouts}\n\
         [[service]]\nident = \"web\"\nlisten = \"127.0.0.1:0\"\n\
         [[service.server]]\naddress = \"{server}\"\n"
    );
    Daemon::with_config(name, &config)
}

fn report(what: &str, times: &[Duration], failed: usize) {
    println!(
        "{what}: normal clients {} answered, {failed} failed; p50 {:?} p99 {:?} max {:?}",
        times.len(),
        percentile(times, 0.50),
        percentile(times, 0.99),
        times.last().copied().unwrap_or_default()
    );
}

#[test]
#[cfg_attr(
    missing_slowhttptest,
    ignore = "needs slowhttptest (apt install slowhttptest); .ci/run installs it"
)]
fn slowloris_heads_are_cut_and_normal_clients_served() {
    if !require_tool("slowhttptest") {
        return;
    }
    let server = server(64);
    let daemon = daemon_for("slowloris", server.addr, "head = \"3s\"");
    let web = daemon.bound("web");
    let prober = Prober::start(web);
    // 1 000 connections at 500/s, each adding a header line every second.
    let attack = slowhttptest(
        "-H",
        web,
        &[
            "-c", "1000", "-r", "500", "-i", "1", "-x", "10", "-l", "8", "-p", "2",
        ],
    );
    let output = finished(attack);
    let (times, failed) = prober.finish();
    report("slowloris", &times, failed);
    assert_eq!(failed, 0, "normal clients failed during the slowloris");
    assert!(times.len() > 100, "too few probes: {}", times.len());
    assert!(
        percentile(&times, 0.99) < Duration::from_secs(1),
        "p99 {:?}",
        percentile(&times, 0.99)
    );
    // Every slow head is cut at the head deadline with a 408 and a line.
    let cut = access_lines_with(&daemon, "408 cR");
    assert!(cut >= 900, "{cut} slowloris heads cut with 408\n{output}");
    // Slow heads never reach a server.
    assert!(
        server.most_open_connections() <= 4,
        "server held {}",
        server.most_open_connections()
    );
}

#[test]
#[cfg_attr(
    missing_slowhttptest,
    ignore = "needs slowhttptest (apt install slowhttptest); .ci/run installs it"
)]
fn slow_bodies_are_cut_at_their_deadline_and_hold_no_server() {
    if !require_tool("slowhttptest") {
        return;
    }
    let server = server(64);
    let daemon = daemon_for("slow-body", server.addr, "body = \"3s\"");
    let web = daemon.bound("web");
    let prober = Prober::start(web);
    // 500 POSTs of 4 096 bytes, each sending 10 bytes a second.
    let attack = slowhttptest(
        "-B",
        web,
        &[
            "-c", "500", "-r", "500", "-i", "1", "-s", "4096", "-x", "10", "-l", "8", "-p", "2",
        ],
    );
    let mut held = 0;
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        held = held.max(server.open_connections());
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = finished(attack);
    let (times, failed) = prober.finish();
    report("slow bodies", &times, failed);
    assert_eq!(failed, 0, "normal clients failed during the slow bodies");
    assert!(
        percentile(&times, 0.99) < Duration::from_secs(1),
        "p99 {:?}",
        percentile(&times, 0.99)
    );
    let cut = access_lines_with(&daemon, "\"POST /slow\" 408");
    assert!(cut >= 450, "{cut} slow bodies cut with 408\n{output}");
    // Small bodies are read before a server is chosen: the slow ones hold
    // none (the prober's requests come and go).
    assert!(held <= 4, "slow bodies held {held} server connections");
}

/// The daemon's resident memory, in KiB.
fn rss_kib(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
#[cfg_attr(
    missing_slowhttptest,
    ignore = "needs slowhttptest (apt install slowhttptest); .ci/run installs it"
)]
fn slow_readers_memory_comes_back_when_they_leave() {
    if !require_tool("slowhttptest") {
        return;
    }
    const READERS: usize = 1000;
    let server = server(1024 * 1024);
    let daemon = daemon_for("slow-read", server.addr, "client = \"60s\"");
    let web = daemon.bound("web");
    assert_eq!(probe(web).unwrap(), 200);
    let before = rss_kib(daemon.pid());
    // Slow readers: a 1 MiB answer read 32 bytes every 2 s through a tiny
    // window, for 8 s, then slowhttptest closes them all.
    let attack = slowhttptest(
        "-X",
        web,
        &[
            "-c", "1000", "-r", "1000", "-n", "2", "-z", "32", "-w", "512", "-y", "1024", "-k",
            "1", "-l", "8", "-p", "2",
        ],
    );
    let mut attack = attack;
    let mut during = before;
    let until = Instant::now() + Duration::from_secs(30);
    while attack.try_wait().ok().flatten().is_none() && Instant::now() < until {
        during = during.max(rss_kib(daemon.pid()));
        std::thread::sleep(Duration::from_millis(100));
    }
    let output = finished(attack);
    // The daemon notices the closed readers at its next write.
    wait_for(
        Duration::from_secs(20),
        "readers gone from the server",
        || server.open_connections() <= 2,
    );
    std::thread::sleep(Duration::from_millis(500));
    let after = rss_kib(daemon.pid());
    let per_reader = |kib: usize| kib.saturating_sub(before) * 1024 / READERS;
    println!(
        "slow readers: RSS before {before} KiB, during {during} KiB ({} B per reader), \
         after {after} KiB ({} B per reader)",
        per_reader(during),
        per_reader(after)
    );
    assert!(
        per_reader(during) > 16 * 1024,
        "the readers were not held: {output}"
    );
    assert!(
        per_reader(after) < 12 * 1024,
        "memory not given back: {} B per reader after they left",
        per_reader(after)
    );
    assert_eq!(probe(web).unwrap(), 200);
}
