//! tcpvsd's lifecycle as an operator drives it with signals: a graceful stop
//! lets what is in flight finish, closes idle clients at once, refuses new
//! connections, and is bounded by the drain time or cut by a second signal.

mod common;

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::ops::Range;
use std::process::ExitStatus;
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::daemon::{Daemon, Scratch};
use common::{header_values, is_end_of_stream, read_head, Client, Ending, TIMEOUT};

/// The large download: 50 MB, sent by the backend in 1 MB steps.
const DOWNLOAD: usize = 50 << 20;
const STEP: usize = 1 << 20;
/// The bytes of the download: byte `i` is `i % 251`, so a byte lost,
/// repeated or moved shows.
const PERIOD: usize = 251;

/// tcpvsd started from a configuration file and stopped by signals, as an
/// operator runs it, with the address of its one service.
struct Tcpvsd {
    daemon: Daemon,
    addr: SocketAddr,
}

/// How tcpvsd exited, and how long after `exit_within` was called.
struct Finished {
    status: Option<ExitStatus>,
    elapsed: Duration,
}

impl Tcpvsd {
    /// Runs tcpvsd with one HTTP service to `backend` and `timeouts` (TOML
    /// lines of `[timeouts]`), on two workers, until its service listens.
    fn start(name: &str, backend: SocketAddr, timeouts: &str) -> Tcpvsd {
        let config = format!(
            "log_level = \"info\"\n[timeouts]\n{timeouts}\n[[service]]\nident = \"web\"\n\
             listen = \"127.0.0.1:0\"\n[[service.server]]\naddress = \"{backend}\"\n"
        );
        let daemon = Daemon::with_config_in(Scratch::new(name), &config, &["--workers", "2"]);
        let addr = daemon.bound("web");
        Tcpvsd { daemon, addr }
    }

    /// Sends `signal` (`TERM`, `INT`...) to tcpvsd, by its pid.
    fn signal(&self, signal: &str) {
        self.daemon.signal(signal);
    }

    fn running(&mut self) -> bool {
        self.daemon.alive()
    }

    /// Waits for tcpvsd to exit, up to `limit`.
    fn exit_within(&mut self, limit: Duration) -> Finished {
        let started = Instant::now();
        let status = self.daemon.wait_exit(limit);
        Finished {
            status,
            elapsed: started.elapsed(),
        }
    }

    fn stderr(&self) -> String {
        self.daemon.stderr()
    }
}

/// How long the real server thinks before it answers `GET /slow`.
const SLOW: Duration = Duration::from_secs(1);

/// A real server: `GET /big` is the download, sent a step every `pace` with
/// its Content-Length; `GET /slow` is answered after `SLOW`; anything else
/// gets a small response at once. Keep-alive.
fn backend(pace: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || serve_backend(stream, pace));
        }
    });
    addr
}

fn serve_backend(stream: TcpStream, pace: Duration) {
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let step: Vec<u8> = (0..STEP + PERIOD).map(|i| (i % PERIOD) as u8).collect();
    while let Ok(Some(head)) = read_head(&mut reader) {
        if !head.starts_with("GET /big ") {
            if head.starts_with("GET /slow ") {
                thread::sleep(SLOW);
            }
            let small = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nsmall";
            if writer.write_all(small.as_bytes()).is_err() {
                return;
            }
            continue;
        }
        let big = format!("HTTP/1.1 200 OK\r\nContent-Length: {DOWNLOAD}\r\n\r\n");
        if writer.write_all(big.as_bytes()).is_err() {
            return;
        }
        for sent in (0..DOWNLOAD).step_by(STEP) {
            let offset = sent % PERIOD;
            if writer.write_all(&step[offset..offset + STEP]).is_err() {
                return;
            }
            thread::sleep(pace);
        }
    }
}

/// How a download through the proxy ended.
#[derive(Debug, PartialEq, Eq)]
enum Download {
    /// Every byte, in order; then the proxy closed the connection.
    Complete,
    /// The stream ended after this many good bytes.
    Cut(usize),
}

/// Starts downloading `/big` through `proxy` on a thread; returns once the
/// response head has arrived.
fn start_download(proxy: SocketAddr) -> JoinHandle<Download> {
    let (head_seen, head_arrived) = mpsc::channel();
    let download = thread::spawn(move || {
        let (mut stream, mut reader) = connect(proxy);
        stream
            .write_all(b"GET /big HTTP/1.1\r\nHost: test\r\n\r\n")
            .unwrap();
        let head = read_head(&mut reader).unwrap().expect("a response head");
        let length = header_values(&head, "content-length");
        assert_eq!(length, [DOWNLOAD.to_string()], "{head}");
        head_seen.send(()).unwrap();
        let expected: Vec<u8> = (0..STEP + PERIOD).map(|i| (i % PERIOD) as u8).collect();
        let mut buf = vec![0; STEP];
        let mut got = 0;
        while got < DOWNLOAD {
            let n = match reader.read(&mut buf[..STEP.min(DOWNLOAD - got)]) {
                Ok(0) => return Download::Cut(got),
                Ok(n) => n,
                Err(e) if is_end_of_stream(&e) => return Download::Cut(got),
                Err(e) => panic!("download after {got} bytes: {e}"),
            };
            let offset = got % PERIOD;
            assert!(
                buf[..n] == expected[offset..offset + n],
                "a wrong byte within {got}..{}",
                got + n
            );
            got += n;
        }
        // The response was kept alive when it started: the proxy closes the
        // connection once it is over, as for any idle client.
        let mut after = [0; 16];
        assert!(
            matches!(reader.read(&mut after), Ok(0)),
            "the download's connection is not closed after it"
        );
        Download::Complete
    });
    head_arrived
        .recv_timeout(TIMEOUT)
        .expect("the download's head");
    download
}

/// A keep-alive request on `writer`, its response read from `reader`: the
/// response head, or `None` when the connection ended before one. A head
/// must come with its whole body.
fn request(
    writer: &mut TcpStream,
    reader: &mut BufReader<TcpStream>,
    path: &str,
) -> Option<String> {
    let raw = format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n");
    writer.write_all(raw.as_bytes()).ok()?;
    let head = match read_head(reader) {
        Ok(head) => head?,
        Err(e) if is_end_of_stream(&e) => return None,
        Err(e) => panic!("GET {path}: {e}"),
    };
    let mut body = [0; 5];
    reader
        .read_exact(&mut body)
        .unwrap_or_else(|e| panic!("GET {path}: a response head without its body: {e}"));
    assert_eq!(&body, b"small");
    Some(head)
}

/// Whether `head` closes its connection, and the connection was closed
/// after it (the end of stream, not a hang).
fn closed_after(head: &str, reader: &mut BufReader<TcpStream>) -> bool {
    let told = header_values(head, "connection")
        .iter()
        .any(|v| v == "close");
    let mut after = [0; 16];
    told && matches!(reader.read(&mut after), Ok(0))
}

fn connect(proxy: SocketAddr) -> (TcpStream, BufReader<TcpStream>) {
    let stream = TcpStream::connect(proxy).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    (stream.try_clone().unwrap(), BufReader::new(stream))
}

/// A client sending keep-alive requests back to back until the proxy closes
/// the connection: told so by `Connection: close` on a response in flight at
/// the stop, or seeing the end of the stream while it was idle (its next
/// request racing the close, as a keep-alive client's may). Every response
/// whose head came must be whole. Returns how many came.
fn loop_requests(proxy: SocketAddr) -> JoinHandle<usize> {
    thread::spawn(move || {
        let (mut writer, mut reader) = connect(proxy);
        let deadline = Instant::now() + TIMEOUT;
        let mut complete = 0;
        while let Some(head) = request(&mut writer, &mut reader, "/small") {
            complete += 1;
            if header_values(&head, "connection")
                .iter()
                .any(|v| v == "close")
            {
                assert!(closed_after(&head, &mut reader), "open after a close");
                break;
            }
            assert!(Instant::now() < deadline, "never closed");
        }
        complete
    })
}

/// Keep-alive clients that made one request and now wait.
fn idle_clients(proxy: SocketAddr, count: usize) -> Vec<Client> {
    (0..count)
        .map(|_| {
            let mut client = Client::connect(proxy);
            let response = client.exchange("GET /small HTTP/1.1\r\nHost: test\r\n\r\n");
            assert_eq!(response.status, 200);
            client
        })
        .collect()
}

/// How soon after a stop signal new connections must be refused.
const REFUSED_WITHIN: Duration = Duration::from_secs(1);

/// Waits (bounded by `REFUSED_WITHIN`) until a new connection to tcpvsd is
/// refused while it still runs (draining): refused by the kernel, not
/// accepted and closed.
fn wait_refused(tcpvsd: &mut Tcpvsd) {
    let started = Instant::now();
    loop {
        match TcpStream::connect(tcpvsd.addr) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
            other => assert!(
                started.elapsed() < REFUSED_WITHIN,
                "still accepted {REFUSED_WITHIN:?} after the signal: {other:?}"
            ),
        }
        thread::sleep(Duration::from_millis(10));
    }
    assert!(tcpvsd.running(), "exited instead of draining");
}

fn assert_exited_0(finished: &Finished, tcpvsd: &Tcpvsd) {
    assert_eq!(
        finished.status.and_then(|s| s.code()),
        Some(0),
        "tcpvsd after the signal ({:?}):\n{}",
        finished.elapsed,
        tcpvsd.stderr()
    );
}

/// tcpvsd exits 0 `within` this long from now, cutting `download`, and
/// logs `why` it cut.
fn assert_cut_short(
    tcpvsd: &mut Tcpvsd,
    download: JoinHandle<Download>,
    within: Range<Duration>,
    why: &str,
) {
    let finished = tcpvsd.exit_within(Duration::from_secs(10));
    assert_exited_0(&finished, tcpvsd);
    assert!(
        within.contains(&finished.elapsed),
        "exited after {:?}, not within {within:?}",
        finished.elapsed
    );
    assert!(matches!(download.join().unwrap(), Download::Cut(_)));
    assert!(tcpvsd.stderr().contains(why), "{}", tcpvsd.stderr());
}

#[test]
fn sigterm_lets_a_download_finish_closes_idle_clients_and_refuses_new_ones() {
    // 50 steps 40 ms apart: about 2 s.
    let tcpvsd = &mut Tcpvsd::start("term", backend(Duration::from_millis(40)), "");
    let download = start_download(tcpvsd.addr);
    let loops: Vec<_> = (0..4).map(|_| loop_requests(tcpvsd.addr)).collect();
    let mut idle = idle_clients(tcpvsd.addr, 3);
    // A request in flight at the stop: answered, and told it is the last.
    let (mut writer, mut reader) = connect(tcpvsd.addr);
    let slow = thread::spawn(move || {
        let head = request(&mut writer, &mut reader, "/slow").expect("an answer");
        closed_after(&head, &mut reader)
    });
    thread::sleep(SLOW / 3);

    tcpvsd.signal("TERM");
    let signalled = Instant::now();
    for client in &mut idle {
        assert_eq!(client.ending(Duration::from_secs(3)), Ending::Closed);
    }
    let closed_idle = signalled.elapsed();
    wait_refused(tcpvsd);
    assert!(
        slow.join().unwrap(),
        "the last response in flight kept its connection"
    );
    for looping in loops {
        assert!(looping.join().expect("every response whole") > 0);
    }
    assert_eq!(download.join().unwrap(), Download::Complete);

    let finished = tcpvsd.exit_within(Duration::from_secs(10));
    assert_exited_0(&finished, tcpvsd);
    let exited = signalled.elapsed();
    // Well before the default drain time (30 s): once the download is over.
    assert!(
        exited < Duration::from_secs(8),
        "exited {exited:?} after SIGTERM"
    );
    assert!(
        closed_idle < Duration::from_secs(1),
        "idle clients closed {closed_idle:?} after the signal"
    );
    assert!(
        !tcpvsd.daemon.socket.exists(),
        "the control socket is left behind"
    );
    assert!(
        tcpvsd.stderr().contains("every client connection closed"),
        "{}",
        tcpvsd.stderr()
    );
}

#[test]
fn the_drain_time_bounds_a_stop() {
    // 50 steps 100 ms apart: about 5 s.
    let backend = backend(Duration::from_millis(100));
    let tcpvsd = &mut Tcpvsd::start("drain", backend, "drain = \"1s\"");
    let download = start_download(tcpvsd.addr);

    tcpvsd.signal("TERM");
    let within = Duration::from_millis(900)..Duration::from_millis(2500);
    assert_cut_short(tcpvsd, download, within, "drain time passed");
}

#[test]
fn a_second_signal_stops_at_once() {
    let tcpvsd = &mut Tcpvsd::start("twice", backend(Duration::from_millis(100)), "");
    let download = start_download(tcpvsd.addr);

    tcpvsd.signal("TERM");
    // The drain has begun once the listeners are closed.
    wait_refused(tcpvsd);
    tcpvsd.signal("INT");
    let within = Duration::ZERO..Duration::from_millis(1500);
    assert_cut_short(tcpvsd, download, within, "second stop signal");
}
