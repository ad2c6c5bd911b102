//! The log never blocks a worker: with tcpvsd's standard error into a FIFO
//! that nobody reads, traffic keeps flowing, and the lines that did not fit
//! are counted (in `tcpvsadm -L --stats`) and said in the log once its reader
//! comes back.

mod common;

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::daemon::{run_within, tcpvsd_command, Scratch, START_TIMEOUT};
use common::*;

/// More access lines than the log's queue (8192 lines) and a pipe (64 KiB)
/// hold together, so that some must be dropped.
const REQUESTS: usize = 12_000;
const CLIENTS: usize = 4;
/// How long the requests may take in all: a debug build on 2 busy cores
/// serves them in a few seconds; a worker blocked on the pipe serves none.
const TRAFFIC_LIMIT: Duration = Duration::from_secs(30);

/// tcpvsd started by hand (its standard error is the FIFO, which the
/// harness's `Daemon` cannot do); killed by its pid when dropped.
struct Tcpvsd(Child);

impl Drop for Tcpvsd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `tcpvsadm --socket SOCKET ARGS...`: its standard output; it must succeed.
fn adm(socket: &Path, args: &[&str]) -> String {
    let mut command = Command::new(tcpvsadm_path());
    command.arg("--socket").arg(socket).args(args);
    let output = run_within(command, START_TIMEOUT);
    assert!(output.status.success(), "tcpvsadm {args:?}: {output:?}");
    String::from_utf8(output.stdout).unwrap()
}

/// Sends `count` keep-alive requests to `addr` within `deadline`; how many
/// were answered 200, or the first failure.
fn send_requests(
    addr: std::net::SocketAddr,
    count: usize,
    deadline: Instant,
) -> Result<usize, String> {
    let mut client = Client::connect(addr);
    for n in 0..count {
        if Instant::now() > deadline {
            return Err(format!("{n} of {count} answered in the time allowed"));
        }
        client
            .try_send(format!("GET /{n} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
            .map_err(|e| format!("request {n}: {e}"))?;
        let response = client
            .try_read_response(false)
            .map_err(|e| format!("response {n}: {e}"))?;
        if response.status != 200 {
            return Err(format!("response {n}: status {}", response.status));
        }
    }
    Ok(count)
}

/// Reads the FIFO until a line says how many lines were dropped (or
/// `limit` passes): that count.
fn dropped_line_count(fifo: &Path, limit: Duration) -> Option<u64> {
    // Non-blocking: the writer may have nothing more to say.
    let mut reader = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(fifo)
        .unwrap();
    let deadline = Instant::now() + limit;
    let mut text = Vec::new();
    let mut chunk = vec![0; 64 * 1024];
    while Instant::now() < deadline {
        match reader.read(&mut chunk) {
            Ok(n) => text.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            Err(e) => panic!("reading the FIFO: {e}"),
        }
        let found = String::from_utf8_lossy(&text)
            .lines()
            .find_map(dropped_count_in);
        if found.is_some() {
            return found;
        }
    }
    None
}

/// `N` in the writer's `... N log lines dropped: ...`.
fn dropped_count_in(line: &str) -> Option<u64> {
    let (head, _) = line.split_once(" log lines dropped")?;
    head.rsplit(' ').next()?.parse().ok()
}

#[test]
fn a_stalled_log_reader_costs_lines_not_traffic() {
    let backend = TestServer::named("up");
    let dir = Scratch::new("stalled-log");
    let fifo = dir.path().join("stderr.fifo");
    let mut mkfifo = Command::new("mkfifo");
    mkfifo.arg(&fifo);
    let made = run_within(mkfifo, START_TIMEOUT);
    assert!(made.status.success(), "mkfifo: {made:?}");
    // Read and write, so that the open does not wait for a reader and the
    // pipe never breaks; never read until the end.
    let stalled = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .unwrap();
    let config = dir.write(
        "tcpvsd.toml",
        &format!(
            "workers = 2\nlog_level = \"info\"\naccess_log = true\n\
             [[service]]\nident = \"web\"\nlisten = \"127.0.0.1:0\"\n\
             [[service.server]]\naddress = \"{}\"\n",
            backend.addr
        ),
    );
    let socket = dir.path().join("control.sock");
    let mut tcpvsd = Tcpvsd(
        tcpvsd_command(&config, &socket)
            .stdout(File::create(dir.path().join("tcpvsd.out")).unwrap())
            .stderr(stalled.try_clone().unwrap())
            .spawn()
            .expect("start tcpvsd"),
    );
    let started = Instant::now();
    while UnixStream::connect(&socket).is_err() {
        assert!(
            matches!(tcpvsd.0.try_wait(), Ok(None)),
            "tcpvsd exited before its control socket accepted"
        );
        assert!(started.elapsed() < START_TIMEOUT, "no control socket");
        std::thread::sleep(Duration::from_millis(20));
    }
    let listing = adm(&socket, &["-L", "-n", "-i", "web"]);
    let web: std::net::SocketAddr = listing
        .lines()
        .find(|line| line.starts_with("web "))
        .and_then(|line| line.split(['(', ')']).nth(1))
        .and_then(|bound| bound.parse().ok())
        .unwrap_or_else(|| panic!("no bound address in {listing}"));

    let traffic = Instant::now();
    let deadline = traffic + TRAFFIC_LIMIT;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| std::thread::spawn(move || send_requests(web, REQUESTS / CLIENTS, deadline)))
        .collect();
    let answered: usize = clients
        .into_iter()
        .map(|client| {
            client
                .join()
                .unwrap()
                .unwrap_or_else(|e| panic!("traffic stopped: {e}"))
        })
        .sum();
    assert_eq!(answered, REQUESTS);
    let elapsed = traffic.elapsed();

    let stats = adm(&socket, &["-L", "--stats"]);
    let dropped: u64 = stats
        .lines()
        .find_map(|line| line.strip_prefix("log lines dropped: "))
        .and_then(|count| count.parse().ok())
        .unwrap_or_else(|| panic!("no dropped count in {stats}"));
    assert!(
        dropped > 0,
        "nothing dropped: the queue did not fill\n{stats}"
    );
    eprintln!("{REQUESTS} requests answered in {elapsed:?}; {dropped} log lines dropped");
    // Once read, the log says so itself, before the lines after the drop.
    let said = dropped_line_count(&fifo, Duration::from_secs(10));
    assert!(
        said.is_some_and(|n| n > 0),
        "the log says {said:?} lines dropped, tcpvsadm {dropped}"
    );
}

/// logrotate's way: the log file is moved away, SIGUSR1 makes tcpvsd open a
/// new one at the same path; lines before stay in the moved file.
#[test]
fn sigusr1_reopens_the_log_file_after_logrotate_moved_it() {
    let backend = TestServer::named("served");
    let dir = Scratch::new("log-reopen");
    let log = dir.path().join("tcpvsd.log");
    let config = format!(
        "log_level = \"info\"\nlog_file = \"{}\"\n\
         [[service]]\nident = \"web\"\nlisten = \"127.0.0.1:0\"\n\
         [[service.server]]\naddress = \"{}\"\n",
        log.display(),
        backend.addr
    );
    let daemon = common::daemon::Daemon::with_config_in(dir, &config, &[]);
    let listen = daemon.bound("web");
    assert_eq!(get(listen, "/before").status, 200);
    let rotated = log.with_extension("log.1");
    let wait = |path: &Path, text: &str| {
        let start = Instant::now();
        loop {
            let written = std::fs::read_to_string(path).unwrap_or_default();
            if written.contains(text) {
                return written;
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "{text} not in {written}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait(&log, "GET /before");
    std::fs::rename(&log, &rotated).unwrap();
    daemon.signal("USR1");
    let fresh = wait(&log, "reopened");
    assert_eq!(get(listen, "/after").status, 200);
    let fresh = wait(&log, "GET /after").to_string() + &fresh;
    assert!(!fresh.contains("GET /before"), "{fresh}");
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert!(
        old.contains("GET /before") && !old.contains("GET /after"),
        "{old}"
    );
}
