//! Shared harness for end-to-end tests: an in-process tcpvsd on 127.0.0.1:0,
//! scripted real servers, and a raw HTTP client. The test servers and client
//! parse HTTP on their own (independently of tcpvs's parser), so a test checks
//! what actually crossed the wire.
#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use tcpvs::table::{
    RuleSpec, ServerAddr, ServerSpec, ServiceSpec, Settings, Table, TableSpec, Weight,
};

pub const TIMEOUT: Duration = Duration::from_secs(10);

/// An in-process tcpvsd. Dropping it stops it: its listeners shut down, the
/// connections it holds close, and its worker threads are joined.
pub struct Proxy {
    addr: SocketAddr,
    table: Arc<ArcSwap<Table>>,
    _workers: tcpvs::worker::Workers,
    _checker: tcpvs::health::Checker,
}

impl Proxy {
    /// The address of its one service.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The running table (its servers' live state: health, counters).
    pub fn table(&self) -> Arc<Table> {
        self.table.load_full()
    }

    /// The live entry of the service's server at `addr`.
    pub fn server(&self, addr: SocketAddr) -> Arc<tcpvs::table::RealServer> {
        let table = self.table();
        let found = table.services[0].servers.iter().find(|s| s.addr.0 == addr);
        found.expect("a server of the service").clone()
    }
}

/// Starts tcpvsd in this process with one service `web`; it runs until the
/// returned `Proxy` is dropped.
pub fn start_proxy(service: ServiceSpec, settings: Settings) -> Proxy {
    let spec = TableSpec {
        settings,
        services: vec![service],
    };
    let table = Arc::new(ArcSwap::from_pointee(
        Table::build(spec, None).expect("valid table"),
    ));
    let workers = tcpvs::worker::Workers::start(table.clone(), 2).expect("workers");
    let checker = tcpvs::health::Checker::start(table.clone()).expect("health checker");
    let addr = workers
        .listening()
        .values()
        .next()
        .copied()
        .expect("one service");
    Proxy {
        addr,
        table,
        _workers: workers,
        _checker: checker,
    }
}

/// An address on which nothing listens: a connect to it is refused at
/// once. Its port stays bound (not listening) for the rest of the test
/// process, so that no server a later test starts on port 0 gets it (a
/// released port was handed to another test's server, which then answered
/// for the "dead" one).
pub fn dead_address() -> SocketAddr {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    std::mem::forget(socket);
    addr
}

/// A service on 127.0.0.1:0 over `servers` (weight 1 unless given), `wlc`.
pub fn service(servers: &[(SocketAddr, u16)], rules: &[(&str, &[SocketAddr])]) -> ServiceSpec {
    ServiceSpec {
        servers: servers
            .iter()
            .map(|&(addr, weight)| ServerSpec::new(ServerAddr(addr), Weight(weight)))
            .collect(),
        rules: rules
            .iter()
            .map(|(pattern, servers)| {
                RuleSpec::on_target(pattern, servers.iter().map(|&a| ServerAddr(a)).collect())
            })
            .collect(),
        ..ServiceSpec::new("web".parse().unwrap(), "127.0.0.1:0".parse().unwrap())
    }
}

/// A request as a test server received it: raw head and decoded body.
#[derive(Debug, Clone)]
pub struct Received {
    pub head: String,
    /// The body bytes exactly as they came on the wire (chunk lines included).
    pub raw_body: Vec<u8>,
}

impl Received {
    pub fn request_line(&self) -> &str {
        self.head.lines().next().unwrap_or("")
    }

    /// Values of header `name` (case-insensitive), in order.
    pub fn header(&self, name: &str) -> Vec<String> {
        header_values(&self.head, name)
    }
}

pub fn header_values(head: &str, name: &str) -> Vec<String> {
    head.lines()
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().to_string())
        .collect()
}

/// Accepts one connection on a new listener and hands its reader (positioned
/// after the request head) and writer to `script`; returns the address.
pub fn one_shot_server<F>(script: F) -> SocketAddr
where
    F: FnOnce(String, BufReader<TcpStream>, TcpStream) + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        let writer = stream.try_clone().unwrap();
        let mut reader = BufReader::new(stream);
        let head = read_head(&mut reader).unwrap().expect("a request head");
        script(head, reader, writer);
    });
    addr
}

/// What a scripted server does with a request.
pub enum Reply {
    /// Send these bytes and keep the connection for more requests.
    Send(Vec<u8>),
    /// Send these bytes, then close.
    SendAndClose(Vec<u8>),
    /// Close without answering.
    Close,
}

/// A scripted real server on 127.0.0.1:0 that records every request.
pub struct TestServer {
    pub addr: SocketAddr,
    /// Whole requests, in order.
    pub received: Arc<Mutex<Vec<Received>>>,
    /// The request line of every head, logged as soon as the head is read:
    /// a request whose body never came whole is here and not in `received`.
    pub heads: Arc<Mutex<Vec<String>>>,
    pub connections: Arc<Mutex<usize>>,
    /// Connections open now, and the most ever open at once.
    open: Arc<[AtomicUsize; 2]>,
}

impl TestServer {
    pub fn start<F>(reply: F) -> TestServer
    where
        F: Fn(&Received) -> Reply + Send + Sync + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(Mutex::new(0));
        let reply = Arc::new(reply);
        let open: Arc<[AtomicUsize; 2]> = Arc::default();
        let (log, head_log, count) = (received.clone(), heads.clone(), connections.clone());
        let opened = open.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                *count.lock().unwrap() += 1;
                let now = opened[0].fetch_add(1, Ordering::SeqCst) + 1;
                opened[1].fetch_max(now, Ordering::SeqCst);
                let (log, head_log, reply) = (log.clone(), head_log.clone(), reply.clone());
                let opened = opened.clone();
                std::thread::spawn(move || {
                    serve_scripted(stream, &*reply, &log, &head_log);
                    opened[0].fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        TestServer {
            addr,
            received,
            heads,
            connections,
            open,
        }
    }

    /// Connections open on it now.
    pub fn open_connections(&self) -> usize {
        self.open[0].load(Ordering::SeqCst)
    }

    /// The most connections ever open on it at once.
    pub fn most_open_connections(&self) -> usize {
        self.open[1].load(Ordering::SeqCst)
    }

    /// A server that answers 200 with a body naming `name`.
    pub fn named(name: &'static str) -> TestServer {
        TestServer::start(move |_| Reply::Send(ok(name)))
    }

    pub fn requests(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// The request lines of all heads read, whole requests or not.
    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }

    pub fn connection_count(&self) -> usize {
        *self.connections.lock().unwrap()
    }
}

/// `200 OK` with `body` and Content-Length.
pub fn ok(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn serve_scripted(
    stream: TcpStream,
    reply: &dyn Fn(&Received) -> Reply,
    log: &Mutex<Vec<Received>>,
    head_log: &Mutex<Vec<String>>,
) {
    stream.set_read_timeout(Some(TIMEOUT)).ok();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    loop {
        let Ok(Some(head)) = read_head(&mut reader) else {
            return;
        };
        let line = head.lines().next().unwrap_or("").to_string();
        head_log.lock().unwrap().push(line);
        let Ok(request) = read_body(&mut reader, head) else {
            return;
        };
        log.lock().unwrap().push(request.clone());
        match reply(&request) {
            Reply::Send(bytes) => {
                if writer.write_all(&bytes).is_err() {
                    return;
                }
            }
            Reply::SendAndClose(bytes) => {
                let _ = writer.write_all(&bytes);
                return;
            }
            Reply::Close => return,
        }
    }
}

/// Reads one request (head + body by its own framing) the simple way.
pub fn read_request(reader: &mut BufReader<TcpStream>) -> io::Result<Option<Received>> {
    let Some(head) = read_head(reader)? else {
        return Ok(None);
    };
    read_body(reader, head).map(Some)
}

/// Reads the body of a request whose head was read, by its own framing.
pub fn read_body(reader: &mut BufReader<TcpStream>, head: String) -> io::Result<Received> {
    let mut raw_body = Vec::new();
    if header_values(&head, "transfer-encoding")
        .iter()
        .any(|v| v.to_ascii_lowercase().contains("chunked"))
    {
        read_chunked_raw(reader, &mut raw_body)?;
    } else if let Some(len) = header_values(&head, "content-length").first() {
        let len: usize = len.parse().map_err(|_| io::Error::other("bad length"))?;
        raw_body.resize(len, 0);
        reader.read_exact(&mut raw_body)?;
    }
    Ok(Received { head, raw_body })
}

/// Reads a head up to its empty line; `None` at a clean end of stream.
/// Bytes that are not UTF-8 (obs-text in a field value) are kept as U+FFFD.
pub fn read_head(reader: &mut BufReader<TcpStream>) -> io::Result<Option<String>> {
    let mut head = String::new();
    loop {
        let mut raw = Vec::new();
        let read = reader.read_until(b'\n', &mut raw)?;
        let line = String::from_utf8_lossy(&raw);
        if read == 0 {
            return if head.is_empty() {
                Ok(None)
            } else {
                Err(io::ErrorKind::UnexpectedEof.into())
            };
        }
        head.push_str(&line);
        if line == "\r\n" || line == "\n" {
            return Ok(Some(head));
        }
    }
}

fn read_chunked_raw(reader: &mut BufReader<TcpStream>, raw: &mut Vec<u8>) -> io::Result<()> {
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        raw.extend_from_slice(line.as_bytes());
        let size = usize::from_str_radix(line.trim_end().split(';').next().unwrap_or(""), 16)
            .map_err(|_| io::Error::other(format!("bad chunk line {line:?}")))?;
        if size == 0 {
            // trailers until the empty line
            loop {
                let mut trailer = String::new();
                if reader.read_line(&mut trailer)? == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                raw.extend_from_slice(trailer.as_bytes());
                if trailer == "\r\n" {
                    return Ok(());
                }
            }
        }
        let mut data = vec![0; size + 2];
        reader.read_exact(&mut data)?;
        raw.extend_from_slice(&data);
    }
}

/// Decodes a raw chunked body (as received) into its data.
pub fn dechunk(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = raw;
    loop {
        let line_end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk line");
        let size = usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).unwrap(), 16)
            .expect("canonical chunk size");
        rest = &rest[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&rest[..size]);
        assert_eq!(&rest[size..size + 2], b"\r\n", "CRLF after chunk data");
        rest = &rest[size + 2..];
    }
}

/// A response as the test client read it.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Vec<String> {
        header_values(&self.head, name)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// How long a check that the proxy closed a connection waits: it closes at
/// once, or after lingering at most 1 s on unread request bytes.
pub const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// How a connection the proxy should close turned out.
#[derive(Debug, PartialEq, Eq)]
pub enum Ending {
    /// End of stream.
    Closed,
    /// A reset.
    Reset,
    /// Nothing came within the wait: still open.
    Open,
    /// Bytes came instead of the end.
    Bytes(Vec<u8>),
}

/// Whether a read error means the peer ended the stream (an end in the middle
/// of a message, or a reset), as opposed to a timeout or a malformed message.
pub fn is_end_of_stream(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

/// Whether a read error is a read timeout (`WouldBlock` on Unix).
pub fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// A raw client connection to the proxy.
pub struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        Client::of(TcpStream::connect(addr).unwrap())
    }

    /// A client whose connection comes from `source` (a loopback address
    /// such as 127.0.0.2: per-source limits tell clients apart by it).
    pub fn connect_from(source: std::net::IpAddr, addr: SocketAddr) -> Client {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            None,
        )
        .unwrap();
        socket.bind(&SocketAddr::new(source, 0).into()).unwrap();
        socket.connect(&addr.into()).unwrap();
        Client::of(socket.into())
    }

    fn of(stream: TcpStream) -> Client {
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        Client {
            writer: stream.try_clone().unwrap(),
            reader: BufReader::new(stream),
        }
    }

    pub fn send(&mut self, raw: &[u8]) {
        self.writer.write_all(raw).unwrap();
    }

    /// The raw stream, for bytes after a protocol switch, with the bytes
    /// already read past the last response.
    pub fn into_stream(self) -> (TcpStream, Vec<u8>) {
        (self.writer, self.reader.buffer().to_vec())
    }

    pub fn try_send(&mut self, raw: &[u8]) -> io::Result<()> {
        self.writer.write_all(raw)
    }

    /// Sends `raw` a byte at a time, `every` apart, from a thread of its own
    /// while the caller reads: until all is sent, a send fails, or
    /// `for_at_most` has passed.
    pub fn trickle(
        &self,
        raw: &[u8],
        every: Duration,
        for_at_most: Duration,
    ) -> std::thread::JoinHandle<()> {
        let mut writer = self.writer.try_clone().unwrap();
        let raw = raw.to_vec();
        std::thread::spawn(move || {
            let started = std::time::Instant::now();
            for byte in raw {
                if writer.write_all(&[byte]).is_err() || started.elapsed() > for_at_most {
                    return;
                }
                std::thread::sleep(every);
            }
        })
    }

    /// Reads one response; `head_request` says it answers a HEAD (no body).
    pub fn read_response(&mut self, head_request: bool) -> Response {
        self.try_read_response(head_request).expect("a response")
    }

    pub fn try_read_response(&mut self, head_request: bool) -> io::Result<Response> {
        let head = read_head(&mut self.reader)?.ok_or(io::ErrorKind::UnexpectedEof)?;
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::other(format!("bad status line in {head:?}")))?;
        let mut body = Vec::new();
        let bodiless = head_request || status < 200 || status == 204 || status == 304;
        if !bodiless {
            if header_values(&head, "transfer-encoding")
                .iter()
                .any(|v| v.contains("chunked"))
            {
                let mut raw = Vec::new();
                read_chunked_raw(&mut self.reader, &mut raw)?;
                body = dechunk(&raw);
            } else if let Some(len) = header_values(&head, "content-length").first() {
                body.resize(len.parse().unwrap(), 0);
                self.reader.read_exact(&mut body)?;
            } else {
                self.reader.read_to_end(&mut body)?;
            }
        }
        Ok(Response { status, head, body })
    }

    /// How the connection turns out within `within`: closed (EOF or reset),
    /// still open (nothing came), or bytes came instead.
    pub fn ending(&mut self, within: Duration) -> Ending {
        self.with_read_timeout(within, |reader| {
            let mut buf = [0u8; 256];
            match reader.read(&mut buf) {
                Ok(0) => Ending::Closed,
                Ok(n) => Ending::Bytes(buf[..n].to_vec()),
                Err(e) if is_end_of_stream(&e) => Ending::Reset,
                Err(e) if is_timeout(&e) => Ending::Open,
                Err(e) => panic!("reading for the end of the connection: {e}"),
            }
        })
    }

    /// Whether the proxy closed the connection (EOF or reset) within
    /// `CLOSE_WAIT`. A connection still open then, or one that sends more
    /// bytes, is not closed.
    pub fn is_closed(&mut self) -> bool {
        matches!(self.ending(CLOSE_WAIT), Ending::Closed | Ending::Reset)
    }

    /// Panics unless the proxy closes the connection (EOF or reset) within
    /// `CLOSE_WAIT`, saying what came instead.
    pub fn assert_closed(&mut self, what: &str) {
        match self.ending(CLOSE_WAIT) {
            Ending::Closed | Ending::Reset => {}
            Ending::Open => panic!("{what}: connection still open after {CLOSE_WAIT:?}"),
            Ending::Bytes(bytes) => panic!(
                "{what}: bytes instead of a close: {:?}",
                String::from_utf8_lossy(&bytes)
            ),
        }
    }

    /// Reads a response the proxy must cut: the stream ends (EOF or reset)
    /// before the response is complete. Panics on a complete response, on a
    /// connection still open after `CLOSE_WAIT` (a timeout is not a cut), and
    /// on bytes that are not an HTTP response.
    pub fn assert_cut(&mut self, head_request: bool, what: &str) {
        self.set_read_timeout(CLOSE_WAIT);
        let outcome = self.try_read_response(head_request);
        self.set_read_timeout(TIMEOUT);
        match outcome {
            Ok(response) => panic!("{what}: a cut response looks complete: {response:?}"),
            Err(e) if is_end_of_stream(&e) => {}
            Err(e) if is_timeout(&e) => {
                panic!("{what}: connection still open after {CLOSE_WAIT:?}, not cut")
            }
            Err(e) => panic!("{what}: not a cut but {e}"),
        }
    }

    fn set_read_timeout(&self, timeout: Duration) {
        self.writer.set_read_timeout(Some(timeout)).unwrap();
    }

    fn with_read_timeout<R>(
        &mut self,
        timeout: Duration,
        read: impl FnOnce(&mut BufReader<TcpStream>) -> R,
    ) -> R {
        self.set_read_timeout(timeout);
        let result = read(&mut self.reader);
        self.set_read_timeout(TIMEOUT);
        result
    }

    /// Sends `raw` and reads one response.
    pub fn exchange(&mut self, raw: &str) -> Response {
        self.send(raw.as_bytes());
        self.read_response(raw.starts_with("HEAD "))
    }
}

/// Polls `holds` every 10 ms until it holds or `within` passes; whether it
/// did.
pub fn eventually(within: Duration, holds: impl Fn() -> bool) -> bool {
    let deadline = std::time::Instant::now() + within;
    while !holds() {
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// [`eventually`], or the test fails saying `what` did not happen; how long
/// it took.
pub fn wait_for(within: Duration, what: &str, holds: impl Fn() -> bool) -> Duration {
    let start = std::time::Instant::now();
    assert!(eventually(within, holds), "not within {within:?}: {what}");
    start.elapsed()
}

/// One request on a fresh connection.
pub fn get(addr: SocketAddr, path: &str) -> Response {
    Client::connect(addr).exchange(&format!(
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    ))
}

/// Fails the test when CI is set and `tool` is missing; returns whether the
/// tool is there. Without CI a test needing a missing tool is normally not
/// run at all: build.rs (build/third_party_tools.rs) marks it ignored, with
/// the reason, in the test summary; this is reached without the tool only
/// when it is run with `--ignored`.
pub fn require_tool(tool: &str) -> bool {
    let found = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{tool} is required in CI (installed by .ci/run) but was not found"
        );
        eprintln!("skipping: {tool} not installed (set CI=1 to make this a failure)");
    }
    found
}

/// The tcpvsadm binary built beside tcpvsd.
pub fn tcpvsadm_path() -> PathBuf {
    // tcpvsadm is another package of the workspace: `cargo test --workspace`
    // builds it beside tcpvsd.
    let path = Path::new(env!("CARGO_BIN_EXE_tcpvsd")).with_file_name("tcpvsadm");
    assert!(
        path.exists(),
        "{} missing: run `cargo test --workspace`",
        path.display()
    );
    path
}

pub mod daemon;
pub mod load;
