//! RTSP services end to end: an in-process tcpvsd in front of fake RTSP
//! origins written here. The origins and the client parse RTSP on their own
//! (CRLF lines, Content-Length bodies, `$` interleaved frames), independently
//! of tcpvs's parser, and the origins log everything they receive, so each
//! test checks what actually crossed the wire on both sides of the proxy.

mod common;

use std::collections::{HashSet, VecDeque};
use std::io::{self, BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{is_end_of_stream, is_timeout, service, start_proxy, Proxy};
use tcpvs::table::{Protocol, Settings};

/// How long a client waits for any byte before the test fails (not hangs).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(8);
/// How long a test polls for a condition before it fails.
const WAIT_LIMIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// The wire: messages and interleaved frames, parsed independently of tcpvs.

/// An interleaved binary frame (RFC 2326 10.12).
#[derive(Clone, PartialEq, Eq)]
struct Frame {
    channel: u8,
    payload: Vec<u8>,
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let head = &self.payload[..self.payload.len().min(8)];
        write!(
            f,
            "Frame(ch {}, {} bytes, starting {:02x?})",
            self.channel,
            self.payload.len(),
            head
        )
    }
}

impl Frame {
    fn bytes(&self) -> Vec<u8> {
        let len = u16::try_from(self.payload.len()).expect("frame fits");
        let mut out = vec![b'$', self.channel];
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&self.payload);
        out
    }
}

/// A deterministic payload: every byte value shows up, `$` among them.
fn pattern(seed: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|j| ((seed * 31 + j * 7 + j / 251) % 256) as u8)
        .collect()
}

/// The `i`-th media frame an origin sends (channel 0, RTP).
fn media(i: usize) -> Frame {
    let mut payload = pattern(i, 20 + (i * 97) % 400);
    // An RTP-looking first byte, and a `$` right after it.
    payload[0] = 0x80;
    payload[1] = b'$';
    Frame {
        channel: 0,
        payload,
    }
}

/// An RTSP request or response.
#[derive(Clone, PartialEq, Eq)]
struct Msg {
    start: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Msg({:?}", self.start)?;
        for (name, value) in &self.headers {
            write!(f, ", {name}: {value}")?;
        }
        write!(f, ", body {:?})", String::from_utf8_lossy(&self.body))
    }
}

impl Msg {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn headers_named(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count()
    }

    fn is_response(&self) -> bool {
        self.start.starts_with("RTSP/")
    }

    fn status(&self) -> u16 {
        assert!(self.is_response(), "not a response: {self:?}");
        self.start
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {:?}", self.start))
    }

    fn method(&self) -> &str {
        self.start.split(' ').next().unwrap_or("")
    }

    fn uri(&self) -> &str {
        self.start.split(' ').nth(1).unwrap_or("")
    }

    fn cseq(&self) -> Option<&str> {
        self.header("CSeq")
    }

    /// The Session id without its parameters.
    fn session_id(&self) -> Option<String> {
        self.header("Session")
            .map(|v| v.split(';').next().unwrap_or("").trim().to_string())
    }
}

/// What crossed a connection, unit by unit.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Item {
    Frame(Frame),
    Msg(Msg),
}

fn read_line_crlf(reader: &mut impl BufRead) -> io::Result<String> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    match line.strip_suffix("\r\n") {
        Some(text) if !text.contains('\r') => Ok(text.to_string()),
        _ => Err(io::Error::other(format!(
            "line not ended by CRLF: {line:?}"
        ))),
    }
}

/// Reads one frame or message; `None` at a clean end of stream.
fn read_item(reader: &mut impl BufRead) -> io::Result<Option<Item>> {
    let first = match reader.fill_buf()? {
        [] => return Ok(None),
        buf => buf[0],
    };
    if first == b'$' {
        let mut head = [0u8; 4];
        reader.read_exact(&mut head)?;
        let mut payload = vec![0; usize::from(u16::from_be_bytes([head[2], head[3]]))];
        reader.read_exact(&mut payload)?;
        return Ok(Some(Item::Frame(Frame {
            channel: head[1],
            payload,
        })));
    }
    let start = read_line_crlf(reader)?;
    let mut headers = Vec::new();
    loop {
        let line = read_line_crlf(reader)?;
        if line.is_empty() {
            break;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| io::Error::other(format!("bad header line {line:?}")))?;
        headers.push((name.to_string(), value.trim().to_string()));
    }
    let mut msg = Msg {
        start,
        headers,
        body: Vec::new(),
    };
    if msg.headers_named("Content-Length") > 1 {
        return Err(io::Error::other(format!("two Content-Length: {msg:?}")));
    }
    if let Some(len) = msg.header("Content-Length") {
        let len: usize = len
            .parse()
            .map_err(|_| io::Error::other(format!("bad Content-Length in {msg:?}")))?;
        msg.body = vec![0; len];
        reader.read_exact(&mut msg.body)?;
    }
    Ok(Some(Item::Msg(msg)))
}

fn request_bytes(
    method: &str,
    uri: &str,
    cseq: Option<&str>,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut out = format!("{method} {uri} RTSP/1.0\r\n");
    if let Some(cseq) = cseq {
        out.push_str(&format!("CSeq: {cseq}\r\n"));
    }
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

fn response_bytes(status: u16, cseq: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        454 => "Session Not Found",
        _ => "Not Implemented",
    };
    let mut out = format!("RTSP/1.0 {status} {reason}\r\nCSeq: {cseq}\r\nServer: fake-origin\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

/// Where `needle` first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The path of a request-URI (`rtsp://h:p/live/x?y` -> `/live/x`).
fn path_of(uri: &str) -> String {
    let rest = uri.split_once("://").map(|(_, r)| r).unwrap_or(uri);
    let path = rest.find('/').map(|i| &rest[i..]).unwrap_or("/");
    path.split(['?', '#']).next().unwrap_or("/").to_string()
}

fn sdp(origin: &str, path: &str) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns={origin} {path}\r\nt=0 0\r\n\
         m=video 0 RTP/AVP 26\r\na=control:trackID=0\r\n"
    )
}

// ---------------------------------------------------------------------------
// A fake RTSP origin. What it does after PLAY depends on the path:
// `bytewise` response and frames one byte per write, `big` a 65535-byte frame, `glued` the
// frames in the same write as the response, `stream` frames every 20 ms until
// TEARDOWN or the end, `ask` a request of its own to the client (ANNOUNCE,
// then GET_PARAMETER once the client answered). Otherwise five frames.

struct OriginState {
    name: &'static str,
    timeout: Option<u32>,
    log: Mutex<Vec<Item>>,
    conns: Mutex<Vec<TcpStream>>,
    sessions: Mutex<HashSet<String>>,
    next_session: AtomicUsize,
    /// Connections that ended (the proxy closed them, or they broke).
    ended: AtomicUsize,
}

struct Origin {
    name: &'static str,
    addr: SocketAddr,
    state: Arc<OriginState>,
}

impl Origin {
    /// An origin whose sessions are `NAME-1`, `NAME-2`...; SETUP answers
    /// `;timeout=N` when `timeout` is given.
    fn start(name: &'static str, timeout: Option<u32>) -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(OriginState {
            name,
            timeout,
            log: Mutex::default(),
            conns: Mutex::default(),
            sessions: Mutex::default(),
            next_session: AtomicUsize::new(1),
            ended: AtomicUsize::new(0),
        });
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                if let Ok(clone) = stream.try_clone() {
                    shared.conns.lock().unwrap().push(clone);
                }
                let state = shared.clone();
                std::thread::spawn(move || origin_connection(state, stream));
            }
        });
        Origin { name, addr, state }
    }

    fn log(&self) -> Vec<Item> {
        self.state.log.lock().unwrap().clone()
    }

    /// The requests it received, in order.
    fn requests(&self) -> Vec<Msg> {
        self.log()
            .into_iter()
            .filter_map(|item| match item {
                Item::Msg(m) if !m.is_response() => Some(m),
                _ => None,
            })
            .collect()
    }

    fn methods(&self) -> Vec<String> {
        self.requests()
            .iter()
            .map(|m| m.method().to_string())
            .collect()
    }

    fn connections(&self) -> usize {
        self.state.conns.lock().unwrap().len()
    }

    /// Waits until `n` of its connections have ended, polling every few ms;
    /// panics after `WAIT_LIMIT`.
    fn wait_connections_ended(&self, n: usize) {
        let deadline = Instant::now() + WAIT_LIMIT;
        loop {
            let ended = self.state.ended.load(Ordering::SeqCst);
            if ended >= n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{}: {ended} of {n} connections ended after {WAIT_LIMIT:?}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Dies: shuts down every connection it has, mid-stream or not.
    fn kill_connections(&self) {
        for conn in self.state.conns.lock().unwrap().iter() {
            let _ = conn.shutdown(Shutdown::Both);
        }
    }
}

type Writer = Arc<Mutex<TcpStream>>;

fn send(writer: &Writer, bytes: &[u8]) -> io::Result<()> {
    writer.lock().unwrap().write_all(bytes)
}

fn origin_connection(state: Arc<OriginState>, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(clone) = stream.try_clone() else {
        return;
    };
    let writer: Writer = Arc::new(Mutex::new(clone));
    let stop = Arc::new(AtomicBool::new(false));
    let mut reader = BufReader::new(stream);
    while let Ok(Some(item)) = read_item(&mut reader) {
        state.log.lock().unwrap().push(item.clone());
        let result = match &item {
            Item::Frame(_) => Ok(()),
            Item::Msg(m) if m.is_response() => {
                if m.cseq() == Some("901") {
                    // The client answered our ANNOUNCE: ask something else.
                    let ask = request_bytes(
                        "GET_PARAMETER",
                        "rtsp://origin/live/ask",
                        Some("902"),
                        &[("Content-Type", "text/parameters")],
                        b"position\r\n",
                    );
                    send(&writer, &ask)
                } else {
                    Ok(())
                }
            }
            Item::Msg(m) => answer(&state, m, &writer, &stop),
        };
        if result.is_err() {
            break;
        }
    }
    stop.store(true, Ordering::SeqCst);
    state.ended.fetch_add(1, Ordering::SeqCst);
}

fn answer(
    state: &OriginState,
    req: &Msg,
    writer: &Writer,
    stop: &Arc<AtomicBool>,
) -> io::Result<()> {
    let cseq = req.cseq().unwrap_or("none").to_string();
    let path = path_of(req.uri());
    let known = req
        .session_id()
        .map(|id| state.sessions.lock().unwrap().contains(&id));
    let session_value = |id: &str| match state.timeout {
        Some(t) => format!("{id};timeout={t}"),
        None => id.to_string(),
    };
    if known == Some(false) {
        return send(writer, &response_bytes(454, &cseq, &[], b""));
    }
    match req.method() {
        "OPTIONS" => send(
            writer,
            &response_bytes(
                200,
                &cseq,
                &[(
                    "Public",
                    "OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN, GET_PARAMETER, SET_PARAMETER",
                )],
                b"",
            ),
        ),
        "DESCRIBE" => {
            let base = format!("{}/", req.uri());
            let body = sdp(state.name, &path);
            send(
                writer,
                &response_bytes(
                    200,
                    &cseq,
                    &[("Content-Type", "application/sdp"), ("Content-Base", &base)],
                    body.as_bytes(),
                ),
            )
        }
        "SETUP" => {
            let id = match req.session_id() {
                Some(id) => id,
                None => {
                    let n = state.next_session.fetch_add(1, Ordering::SeqCst);
                    let id = format!("{}-{n}", state.name);
                    state.sessions.lock().unwrap().insert(id.clone());
                    id
                }
            };
            let transport = req
                .header("Transport")
                .unwrap_or("")
                .split(',')
                .next()
                .unwrap_or("")
                .to_string();
            let session = session_value(&id);
            send(
                writer,
                &response_bytes(
                    200,
                    &cseq,
                    &[("Transport", &transport), ("Session", &session)],
                    b"",
                ),
            )
        }
        "PLAY" => {
            let Some(id) = req.session_id() else {
                return send(writer, &response_bytes(454, &cseq, &[], b""));
            };
            let session = session_value(&id);
            let info = format!("url={};seq=1;rtptime=0", req.uri());
            let mut out = response_bytes(
                200,
                &cseq,
                &[("Session", &session), ("RTP-Info", &info)],
                b"",
            );
            if path.contains("bytewise") {
                // The response head one byte per write too. The pauses are
                // the behaviour under test (units split over many reads),
                // not synchronisation: no outcome depends on their length.
                for byte in out {
                    send(writer, &[byte])?;
                    std::thread::sleep(Duration::from_micros(500));
                }
                for i in 0..3 {
                    for byte in media(i).bytes() {
                        send(writer, &[byte])?;
                        std::thread::sleep(Duration::from_micros(500));
                    }
                }
                return Ok(());
            }
            if path.contains("glued") {
                out.extend(media(0).bytes());
                out.extend(media(1).bytes());
                return send(writer, &out);
            }
            send(writer, &out)?;
            if path.contains("big") {
                let big = Frame {
                    channel: 0,
                    payload: pattern(7, 65535),
                };
                send(writer, &big.bytes())?;
                send(writer, &media(1).bytes())
            } else if path.contains("stream") {
                stop.store(false, Ordering::SeqCst);
                let (writer, stop) = (writer.clone(), stop.clone());
                std::thread::spawn(move || {
                    for i in 0.. {
                        if stop.load(Ordering::SeqCst) || send(&writer, &media(i).bytes()).is_err()
                        {
                            return;
                        }
                        // A live stream's pace: the behaviour under test.
                        std::thread::sleep(Duration::from_millis(20));
                    }
                });
                Ok(())
            } else if path.contains("ask") {
                let body = sdp(state.name, "/announced");
                let announce = request_bytes(
                    "ANNOUNCE",
                    "rtsp://origin/live/ask",
                    Some("901"),
                    &[("Session", &id), ("Content-Type", "application/sdp")],
                    body.as_bytes(),
                );
                send(writer, &announce)
            } else {
                for i in 0..5 {
                    send(writer, &media(i).bytes())?;
                }
                Ok(())
            }
        }
        "PAUSE" => {
            stop.store(true, Ordering::SeqCst);
            send(writer, &response_bytes(200, &cseq, &[], b""))
        }
        "TEARDOWN" => {
            stop.store(true, Ordering::SeqCst);
            let id = req.session_id();
            if let Some(id) = &id {
                state.sessions.lock().unwrap().remove(id);
            }
            // The ended session named in the answer, as GStreamer's RTSP
            // server does.
            let echo: Vec<(&str, &str)> = id.iter().map(|id| ("Session", id.as_str())).collect();
            send(writer, &response_bytes(200, &cseq, &echo, b""))
        }
        "GET_PARAMETER" => {
            let body = format!("origin: {}\r\n", state.name);
            send(
                writer,
                &response_bytes(
                    200,
                    &cseq,
                    &[("Content-Type", "text/parameters")],
                    body.as_bytes(),
                ),
            )
        }
        "SET_PARAMETER" => {
            // The answer's body starts with `$`: it is a body, not a frame.
            let mut body = b"$ok ".to_vec();
            body.extend_from_slice(&req.body);
            send(
                writer,
                &response_bytes(200, &cseq, &[("Content-Type", "text/parameters")], &body),
            )
        }
        _ => send(writer, &response_bytes(501, &cseq, &[], b"")),
    }
}

// ---------------------------------------------------------------------------
// The client.

struct RtspClient {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    cseq: u32,
    /// Frames that came while waiting for a response.
    frames: VecDeque<Frame>,
    /// Requests of the server that came while waiting for a response.
    server_requests: VecDeque<Msg>,
}

impl RtspClient {
    fn connect(addr: SocketAddr) -> RtspClient {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(CLIENT_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        RtspClient {
            writer: stream.try_clone().unwrap(),
            reader: BufReader::new(stream),
            cseq: 0,
            frames: VecDeque::new(),
            server_requests: VecDeque::new(),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
    }

    fn next_cseq(&mut self) -> String {
        self.cseq += 1;
        self.cseq.to_string()
    }

    /// Sends a request with the next CSeq; returns its response.
    fn request(&mut self, method: &str, uri: &str, headers: &[(&str, &str)], body: &[u8]) -> Msg {
        let cseq = self.next_cseq();
        self.send(&request_bytes(method, uri, Some(&cseq), headers, body));
        self.response_to(&cseq)
    }

    /// Reads until the response with `cseq`, keeping frames and requests of
    /// the server that come before it.
    fn response_to(&mut self, cseq: &str) -> Msg {
        loop {
            match self.next_item() {
                Some(Item::Frame(frame)) => self.frames.push_back(frame),
                Some(Item::Msg(m)) if m.is_response() => {
                    assert_eq!(m.cseq(), Some(cseq), "response to CSeq {cseq}: {m:?}");
                    return m;
                }
                Some(Item::Msg(m)) => self.server_requests.push_back(m),
                None => panic!("the proxy closed before the response to CSeq {cseq}"),
            }
        }
    }

    /// The next response, whatever its CSeq.
    fn any_response(&mut self) -> Msg {
        loop {
            match self.next_item() {
                Some(Item::Frame(frame)) => self.frames.push_back(frame),
                Some(Item::Msg(m)) if m.is_response() => return m,
                Some(Item::Msg(m)) => self.server_requests.push_back(m),
                None => panic!("the proxy closed before a response"),
            }
        }
    }

    fn next_item(&mut self) -> Option<Item> {
        read_item(&mut self.reader).unwrap_or_else(|e| panic!("reading from the proxy: {e}"))
    }

    /// The next request of the server.
    fn server_request(&mut self) -> Msg {
        if let Some(m) = self.server_requests.pop_front() {
            return m;
        }
        match self.next_item() {
            Some(Item::Msg(m)) if !m.is_response() => m,
            other => panic!("expected a request of the server, got {other:?}"),
        }
    }

    /// The next `n` frames.
    fn frames(&mut self, n: usize) -> Vec<Frame> {
        while self.frames.len() < n {
            match self.next_item() {
                Some(Item::Frame(frame)) => self.frames.push_back(frame),
                Some(Item::Msg(m)) => panic!("expected a frame, got {m:?}"),
                None => panic!("the proxy closed after {} frames", self.frames.len()),
            }
        }
        self.frames.drain(..n).collect()
    }

    /// Whether the proxy closes the connection (EOF or reset, also in the
    /// middle of a unit) within `within`; frames and messages before it are
    /// skipped. A read that times out is a connection still open, and bytes
    /// that are not RTSP fail the test: neither is a close.
    fn closes_within(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let closed = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break false;
            }
            self.reader.get_ref().set_read_timeout(Some(left)).unwrap();
            match read_item(&mut self.reader) {
                Ok(Some(_)) => {}
                Ok(None) => break true,
                Err(e) if is_end_of_stream(&e) => break true,
                Err(e) if is_timeout(&e) => break false,
                Err(e) => panic!("reading for the end of the connection: {e}"),
            }
        };
        let stream = self.reader.get_ref();
        stream.set_read_timeout(Some(CLIENT_TIMEOUT)).unwrap();
        closed
    }
}

/// Origins "A" and "B", and an RTSP proxy in front of them (it stops when
/// its guard drops, at the end of the test).
fn two_origins_and_proxy() -> (Origin, Origin, Proxy) {
    let a = Origin::start("A", None);
    let b = Origin::start("B", None);
    let proxy = rtsp_proxy(&a, &b);
    (a, b, proxy)
}

/// An RTSP service: `^/live/` to `a`, `^/vod/` to `b`.
fn rtsp_proxy(a: &Origin, b: &Origin) -> Proxy {
    rtsp_proxy_with(a, b, Settings::default())
}

fn rtsp_proxy_with(a: &Origin, b: &Origin, settings: Settings) -> Proxy {
    let mut spec = service(
        &[(a.addr, 1), (b.addr, 1)],
        &[("^/live/", &[a.addr][..]), ("^/vod/", &[b.addr][..])],
    );
    spec.protocol = Protocol::Rtsp;
    start_proxy(spec, settings)
}

const TCP: &str = "RTP/AVP/TCP;unicast;interleaved=0-1";

/// SETUP over interleaved TCP on `client`; returns the Session id.
fn setup(client: &mut RtspClient, url: &str) -> String {
    let r = client.request(
        "SETUP",
        &format!("{url}/trackID=0"),
        &[("Transport", TCP)],
        b"",
    );
    assert_eq!(r.status(), 200, "{r:?}");
    r.session_id().expect("a Session in the SETUP response")
}

/// A new connection that has SETUP and PLAYed `url`; and its Session id.
fn playing(proxy: SocketAddr, url: &str) -> (RtspClient, String) {
    let mut client = RtspClient::connect(proxy);
    let id = setup(&mut client, url);
    let r = client.request("PLAY", url, &[("Session", &id)], b"");
    assert_eq!(r.status(), 200, "{r:?}");
    (client, id)
}

fn assert_proxy_reply(r: &Msg, status: u16, cseq: &str) {
    assert!(
        r.start.starts_with(&format!("RTSP/1.0 {status} ")),
        "expected {status} from the proxy: {r:?}"
    );
    assert_eq!(r.cseq(), Some(cseq), "{r:?}");
}

// ---------------------------------------------------------------------------
// The tests.

#[test]
fn requests_are_routed_by_path_and_media_relayed_both_ways() {
    let (a, b, running) = two_origins_and_proxy();
    let proxy = running.addr();
    for (origin, other, path) in [(&a, &b, "/live/x"), (&b, &a, "/vod/y")] {
        let before_other = other.log().len();
        let url = format!("rtsp://{proxy}{path}");
        let mut c = RtspClient::connect(proxy);
        let r = c.request("OPTIONS", &url, &[], b"");
        assert_eq!(r.status(), 200, "{r:?}");
        assert!(r.header("Public").unwrap_or("").contains("SETUP"), "{r:?}");
        let r = c.request("DESCRIBE", &url, &[("Accept", "application/sdp")], b"");
        assert_eq!(r.status(), 200, "{r:?}");
        assert_eq!(r.header("Content-Type"), Some("application/sdp"));
        assert_eq!(r.body, sdp(origin.name, path).as_bytes(), "{r:?}");
        let r = c.request(
            "SETUP",
            &format!("{url}/trackID=0"),
            &[("Transport", TCP)],
            b"",
        );
        assert_eq!(r.status(), 200, "{r:?}");
        let id = r.session_id().unwrap();
        assert_eq!(id, format!("{}-1", origin.name));
        assert!(
            r.header("Transport").unwrap().contains("interleaved=0-1"),
            "{r:?}"
        );
        let r = c.request("PLAY", &url, &[("Session", &id), ("Range", "npt=0-")], b"");
        assert_eq!(r.status(), 200, "{r:?}");
        assert_eq!(r.session_id().as_deref(), Some(id.as_str()));
        let frames = c.frames(5);
        assert_eq!(frames, (0..5).map(media).collect::<Vec<_>>());
        // An RTCP receiver report from the client.
        let rtcp = Frame {
            channel: 1,
            payload: [&[0x81, 0xc9, 0x00, 0x07][..], &pattern(3, 28)].concat(),
        };
        c.send(&rtcp.bytes());
        let r = c.request("TEARDOWN", &url, &[("Session", &id)], b"");
        assert_eq!(r.status(), 200, "{r:?}");

        let log = origin.log();
        let requests = origin.requests();
        assert_eq!(
            origin.methods(),
            ["OPTIONS", "DESCRIBE", "SETUP", "PLAY", "TEARDOWN"],
            "{log:?}"
        );
        for (n, m) in requests.iter().enumerate() {
            // CSeq unchanged (the client counted from 1 on this connection).
            assert_eq!(m.cseq(), Some((n + 1).to_string().as_str()), "{m:?}");
            assert!(m.start.ends_with(" RTSP/1.0"), "{m:?}");
            assert!(path_of(m.uri()).starts_with(path), "{m:?}");
        }
        assert_eq!(requests[3].session_id().as_deref(), Some(id.as_str()));
        assert_eq!(requests[4].session_id().as_deref(), Some(id.as_str()));
        // The RTCP frame came between PLAY and TEARDOWN, byte for byte.
        assert_eq!(log[4], Item::Frame(rtcp), "{log:?}");
        assert_eq!(
            other.log().len(),
            before_other,
            "{path} leaked to {}",
            other.name
        );
        // Later frames of origin are none: TEARDOWN stopped them.
        assert!(c.frames.is_empty(), "{:?}", c.frames);
    }
    // `OPTIONS *` matches no rule: it goes to one of all the servers.
    let mut c = RtspClient::connect(proxy);
    let r = c.request("OPTIONS", "*", &[], b"");
    assert_eq!(r.status(), 200, "{r:?}");
    let star = |o: &Origin| o.requests().iter().filter(|m| m.uri() == "*").count();
    assert_eq!(star(&a) + star(&b), 1);
}

#[test]
fn rules_route_the_normal_path_and_the_uri_is_forwarded_as_sent() {
    let (a, b, running) = two_origins_and_proxy();
    let proxy = running.addr();
    // Each names /live/x (origin A's) through a /vod/ (origin B's) spelling.
    let spellings = [
        "/vod/../live/x",
        "/vod/%2e%2e/live/x",
        "/vod/./../live/x",
        "/%6Cive/x",
    ];
    for path in spellings {
        let url = format!("rtsp://{proxy}{path}");
        let mut c = RtspClient::connect(proxy);
        let r = c.request("DESCRIBE", &url, &[("Accept", "application/sdp")], b"");
        assert_eq!(r.status(), 200, "{path}: {r:?}");
    }
    let uris: Vec<String> = a.requests().iter().map(|m| m.uri().to_string()).collect();
    let sent: Vec<String> = spellings
        .iter()
        .map(|path| format!("rtsp://{proxy}{path}"))
        .collect();
    assert_eq!(uris, sent, "A gets every spelling, unchanged");
    assert!(b.requests().is_empty(), "B got {:?}", b.requests());
    // An invalid escape is refused, not routed by a guess.
    let mut c = RtspClient::connect(proxy);
    let r = c.request("DESCRIBE", &format!("rtsp://{proxy}/live/%zz"), &[], b"");
    assert_proxy_reply(&r, 400, "1");
}

#[test]
fn a_session_leads_new_connections_to_the_server_that_issued_it() {
    let (a, b, running) = two_origins_and_proxy();
    let proxy = running.addr();
    let live = format!("rtsp://{proxy}/live/x");
    let vod = format!("rtsp://{proxy}/vod/y");

    let mut first = RtspClient::connect(proxy);
    let id_a = setup(&mut first, &live);
    drop(first);
    let mut other = RtspClient::connect(proxy);
    let id_b = setup(&mut other, &vod);
    drop(other);
    assert_eq!((id_a.as_str(), id_b.as_str()), ("A-1", "B-1"));

    // A URL the rules send to B, with A's session: the session wins.
    let mut second = RtspClient::connect(proxy);
    let r = second.request("PLAY", &vod, &[("Session", &id_a)], b"");
    assert_eq!(r.status(), 200, "{r:?}");
    assert_eq!(second.frames(5), (0..5).map(media).collect::<Vec<_>>());
    let play = a.requests().pop().unwrap();
    assert_eq!(play.method(), "PLAY", "{play:?}");
    assert_eq!(path_of(play.uri()), "/vod/y");
    assert_eq!(play.session_id().as_deref(), Some("A-1"));
    assert_eq!(b.methods(), ["SETUP"], "B saw A's session");

    // On this connection (pinned to A), B's session is not found here.
    let (a_before, b_before) = (a.log().len(), b.log().len());
    let r = second.request("GET_PARAMETER", &vod, &[("Session", &id_b)], b"");
    assert_proxy_reply(&r, 454, "2");
    assert_eq!(a.log().len(), a_before, "{:?}", a.log());
    assert_eq!(b.log().len(), b_before, "{:?}", b.log());

    let r = second.request("TEARDOWN", &vod, &[("Session", &id_a)], b"");
    assert_eq!(r.status(), 200, "{r:?}");
    assert_eq!(a.methods(), ["SETUP", "PLAY", "TEARDOWN"]);
    drop(second);

    // Torn down: the proxy no longer knows it, the origin never hears of it.
    let mut third = RtspClient::connect(proxy);
    let r = third.request("PLAY", &live, &[("Session", &id_a)], b"");
    assert_proxy_reply(&r, 454, "1");
    assert_eq!(a.methods(), ["SETUP", "PLAY", "TEARDOWN"]);
    drop(third);

    // B's session still reaches B from a URL the rules give to A.
    let mut fourth = RtspClient::connect(proxy);
    let r = fourth.request("TEARDOWN", &live, &[("Session", &id_b)], b"");
    assert_eq!(r.status(), 200, "{r:?}");
    assert_eq!(b.methods(), ["SETUP", "TEARDOWN"]);
    assert_eq!(path_of(b.requests()[1].uri()), "/live/x");
    assert_eq!(a.methods(), ["SETUP", "PLAY", "TEARDOWN"]);
}

#[test]
fn the_proxy_answers_454_461_and_400_itself() {
    let (a, b, running) = two_origins_and_proxy();
    let proxy = running.addr();
    let live = format!("rtsp://{proxy}/live/x");

    // Unknown session.
    let mut c = RtspClient::connect(proxy);
    c.send(format!("PLAY {live} RTSP/1.0\r\nCSeq: 7\r\nSession: nosuch\r\n\r\n").as_bytes());
    assert_proxy_reply(&c.any_response(), 454, "7");
    drop(c);

    // Only UDP offered: 461, the origin never sees the SETUP.
    let mut c = RtspClient::connect(proxy);
    c.send(
        format!(
            "SETUP {live}/trackID=0 RTSP/1.0\r\nCSeq: 3\r\n\
             Transport: RTP/AVP;unicast;client_port=5000-5001\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_proxy_reply(&c.any_response(), 461, "3");
    drop(c);

    // Several transports: only the TCP ones go on, in order.
    let mut c = RtspClient::connect(proxy);
    let offered = "RTP/AVP;unicast;client_port=5000-5001,RTP/AVP/TCP;unicast;interleaved=0-1,\
                   RTP/AVP;multicast,RTP/AVP/TCP;unicast;interleaved=2-3";
    let r = c.request(
        "SETUP",
        &format!("{live}/trackID=0"),
        &[("Transport", offered)],
        b"",
    );
    assert_eq!(r.status(), 200, "{r:?}");
    assert_eq!(r.session_id().as_deref(), Some("A-1"));
    let seen = a.requests().pop().unwrap();
    assert_eq!(seen.method(), "SETUP");
    let transport = seen.header("Transport").unwrap();
    let specs: Vec<&str> = transport.split(',').map(str::trim).collect();
    assert_eq!(specs.len(), 2, "{transport}");
    assert!(
        specs[0].starts_with("RTP/AVP/TCP") && specs[0].contains("interleaved=0-1"),
        "{transport}"
    );
    assert!(
        specs[1].starts_with("RTP/AVP/TCP") && specs[1].contains("interleaved=2-3"),
        "{transport}"
    );
    assert!(
        !transport.contains("client_port") && !transport.contains("multicast"),
        "{transport}"
    );
    // UDP-only on an established connection: 461 too, and the connection lives.
    let cseq = c.next_cseq();
    c.send(
        format!(
            "SETUP {live}/trackID=1 RTSP/1.0\r\nCSeq: {cseq}\r\nSession: A-1\r\n\
             Transport: RTP/AVP;unicast;client_port=5002-5003\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_proxy_reply(&c.response_to(&cseq), 461, &cseq);
    let r = c.request("TEARDOWN", &live, &[("Session", "A-1")], b"");
    assert_eq!(r.status(), 200, "{r:?}");
    assert_eq!(a.methods(), ["SETUP", "TEARDOWN"]);
    drop(c);

    // No CSeq: 400 and closed.
    // No CSeq, then Transfer-Encoding (not RTSP): 400 and closed, on a new
    // connection and on one already pinned to A.
    for pinned in [false, true] {
        let connect = || {
            let mut c = RtspClient::connect(proxy);
            if pinned {
                assert_eq!(c.request("OPTIONS", &live, &[], b"").status(), 200);
            }
            c
        };
        let mut c = connect();
        c.send(format!("GET_PARAMETER {live} RTSP/1.0\r\nContent-Length: 0\r\n\r\n").as_bytes());
        let r = c.any_response();
        assert!(r.start.starts_with("RTSP/1.0 400 "), "{r:?}");
        assert!(c.closes_within(Duration::from_secs(5)), "open after 400");

        let mut c = connect();
        c.send(
            format!(
                "SET_PARAMETER {live} RTSP/1.0\r\nCSeq: 9\r\nTransfer-Encoding: chunked\r\n\r\n\
                 5\r\nhello\r\n0\r\n\r\n"
            )
            .as_bytes(),
        );
        assert_proxy_reply(&c.any_response(), 400, "9");
        assert!(c.closes_within(Duration::from_secs(5)), "open after 400");
    }

    // Another RTSP version: 505 (README), never forwarded.
    let mut c = RtspClient::connect(proxy);
    c.send(format!("OPTIONS {live} RTSP/2.0\r\nCSeq: 5\r\n\r\n").as_bytes());
    assert_proxy_reply(&c.any_response(), 505, "5");

    // Of all the above, A saw only what was fine.
    assert_eq!(a.methods(), ["SETUP", "TEARDOWN", "OPTIONS", "OPTIONS"]);
    assert!(b.log().is_empty(), "{:?}", b.log());
}

#[test]
fn no_reachable_server_gets_503_with_the_cseq() {
    let dead = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let mut spec = service(&[(dead, 1)], &[]);
    spec.protocol = Protocol::Rtsp;
    let running = start_proxy(spec, Settings::default());
    let proxy = running.addr();
    let mut c = RtspClient::connect(proxy);
    c.send(format!("DESCRIBE rtsp://{proxy}/live/x RTSP/1.0\r\nCSeq: 4\r\n\r\n").as_bytes());
    assert_proxy_reply(&c.any_response(), 503, "4");
}

#[test]
fn interleaved_frames_split_huge_or_glued_to_a_message() {
    let (a, _b, running) = two_origins_and_proxy();
    let proxy = running.addr();

    // Frames from the origin one byte per write.
    let url = format!("rtsp://{proxy}/live/bytewise");
    let (mut c, id) = playing(proxy, &url);
    assert_eq!(c.frames(3), (0..3).map(media).collect::<Vec<_>>());
    // A frame from the client one byte per write, then a request in two
    // writes split inside a header name.
    let rtcp = Frame {
        channel: 1,
        payload: pattern(11, 52),
    };
    // The pauses here split the writes (the behaviour under test); no
    // outcome depends on their length, a slow machine only merges reads.
    for byte in rtcp.bytes() {
        c.send(&[byte]);
        std::thread::sleep(Duration::from_micros(500));
    }
    let cseq = c.next_cseq();
    let request = request_bytes("GET_PARAMETER", &url, Some(&cseq), &[("Session", &id)], b"");
    let split = find(&request, b"Session").expect("a Session header") + 3;
    c.send(&request[..split]);
    // A pause long enough for the proxy to read the first part alone (the
    // behaviour under test); were the two merged, the check would still hold.
    std::thread::sleep(Duration::from_millis(50));
    c.send(&request[split..]);
    let r = c.response_to(&cseq);
    assert_eq!(r.body, b"origin: A\r\n", "{r:?}");
    let log = a.log();
    assert_eq!(log[log.len() - 2], Item::Frame(rtcp), "{log:?}");
    drop(c);

    // A 65535-byte frame each way, and a small one after it.
    let url = format!("rtsp://{proxy}/live/big");
    let (mut c, id) = playing(proxy, &url);
    let big = Frame {
        channel: 0,
        payload: pattern(7, 65535),
    };
    assert_eq!(c.frames(2), [big, media(1)]);
    let up = Frame {
        channel: 3,
        payload: pattern(5, 65535),
    };
    c.send(&up.bytes());
    c.send(&media(2).bytes());
    let r = c.request("TEARDOWN", &url, &[("Session", &id)], b"");
    assert_eq!(r.status(), 200, "{r:?}");
    let log = a.log();
    assert_eq!(
        log[log.len() - 3],
        Item::Frame(up),
        "{:?}",
        &log[log.len() - 3..]
    );
    assert_eq!(log[log.len() - 2], Item::Frame(media(2)));
    drop(c);

    // Frames in the same write as the PLAY response.
    let url = format!("rtsp://{proxy}/live/glued");
    let (mut c, id) = playing(proxy, &url);
    assert_eq!(c.frames(2), [media(0), media(1)]);
    // From the client: a SET_PARAMETER whose body starts with `$`, a frame
    // and a GET_PARAMETER, all in one write.
    let body = b"$volume: 0.5\r\nlabel: a$b\r\n";
    let (set, get) = (c.next_cseq(), c.next_cseq());
    let mut burst = request_bytes(
        "SET_PARAMETER",
        &url,
        Some(&set),
        &[("Session", &id), ("Content-Type", "text/parameters")],
        body,
    );
    burst.extend(media(9).bytes());
    burst.extend(request_bytes(
        "GET_PARAMETER",
        &url,
        Some(&get),
        &[("Session", &id)],
        b"",
    ));
    c.send(&burst);
    let r = c.response_to(&set);
    assert_eq!(r.status(), 200, "{r:?}");
    assert_eq!(r.body, [&b"$ok "[..], body].concat(), "{r:?}");
    assert_eq!(
        r.header("Content-Length"),
        Some(r.body.len().to_string().as_str())
    );
    let r = c.response_to(&get);
    assert_eq!(r.body, b"origin: A\r\n", "{r:?}");
    let log = a.log();
    let tail = &log[log.len() - 3..];
    match tail {
        [Item::Msg(s), Item::Frame(f), Item::Msg(g)] => {
            assert_eq!(s.method(), "SET_PARAMETER");
            assert_eq!(s.body, body, "{s:?}");
            assert_eq!(s.header("Content-Type"), Some("text/parameters"));
            assert_eq!(f, &media(9));
            assert_eq!(g.method(), "GET_PARAMETER");
            assert_eq!(g.cseq(), Some(get.as_str()));
        }
        _ => panic!("origin saw {tail:?}"),
    }
    assert!(c.frames.is_empty() && c.server_requests.is_empty());
}

#[test]
fn requests_of_the_server_reach_the_client_and_its_answers_go_back() {
    let (a, _b, running) = two_origins_and_proxy();
    let proxy = running.addr();
    let url = format!("rtsp://{proxy}/live/ask");
    let (mut c, id) = playing(proxy, &url);

    let announce = c.server_request();
    assert_eq!(announce.method(), "ANNOUNCE", "{announce:?}");
    assert_eq!(announce.uri(), "rtsp://origin/live/ask");
    assert_eq!(announce.cseq(), Some("901"));
    assert_eq!(announce.session_id().as_deref(), Some(id.as_str()));
    assert_eq!(announce.body, sdp("A", "/announced").as_bytes());

    // A request of our own crosses the answer to the server's.
    let own = c.next_cseq();
    let mut burst = request_bytes("OPTIONS", &url, Some(&own), &[], b"");
    burst.extend_from_slice(b"RTSP/1.0 200 OK\r\nCSeq: 901\r\nSession: A-1\r\n\r\n");
    c.send(&burst);
    let r = c.response_to(&own);
    assert_eq!(r.status(), 200, "{r:?}");

    // Answering the ANNOUNCE made the origin ask GET_PARAMETER.
    let ask = c.server_request();
    assert_eq!(ask.method(), "GET_PARAMETER", "{ask:?}");
    assert_eq!(ask.cseq(), Some("902"));
    assert_eq!(ask.body, b"position\r\n");
    c.send(b"RTSP/1.0 200 OK\r\nCSeq: 902\r\nContent-Type: text/parameters\r\nContent-Length: 14\r\n\r\nposition: 42\r\n");

    let r = c.request("TEARDOWN", &url, &[("Session", &id)], b"");
    assert_eq!(r.status(), 200, "{r:?}");
    let answers: Vec<Msg> = a
        .log()
        .into_iter()
        .filter_map(|item| match item {
            Item::Msg(m) if m.is_response() => Some(m),
            _ => None,
        })
        .collect();
    assert_eq!(answers.len(), 2, "{answers:?}");
    assert_eq!(answers[0].status(), 200);
    assert_eq!(answers[0].cseq(), Some("901"));
    assert_eq!(answers[1].cseq(), Some("902"));
    assert_eq!(answers[1].body, b"position: 42\r\n");
    assert_eq!(a.methods(), ["SETUP", "PLAY", "OPTIONS", "TEARDOWN"]);
}

#[test]
fn a_session_expires_after_its_timeout_once_no_connection_holds_it() {
    // The two sleeps are the behaviour under test (time passing). Each
    // starts after the session's last use (learned, looked up or released
    // before what the test waited for) and runs 0.5 s past its 2 s timeout,
    // so a slow machine only makes them longer.
    let a = Origin::start("A", Some(2));
    let b = Origin::start("B", None);
    let running = rtsp_proxy(&a, &b);
    let proxy = running.addr();
    let url = format!("rtsp://{proxy}/live/x");
    let mut holder = RtspClient::connect(proxy);
    let r = holder.request(
        "SETUP",
        &format!("{url}/trackID=0"),
        &[("Transport", TCP)],
        b"",
    );
    assert_eq!(r.header("Session"), Some("A-1;timeout=2"), "{r:?}");
    // Held by its open connection, it outlives its timeout...
    std::thread::sleep(Duration::from_millis(2500));
    let r = holder.request("GET_PARAMETER", &url, &[("Session", "A-1")], b"");
    assert_eq!(r.body, b"origin: A\r\n", "{r:?}");
    // ...also for another connection.
    let mut visitor = RtspClient::connect(proxy);
    let r = visitor.request("GET_PARAMETER", &url, &[("Session", "A-1")], b"");
    assert_eq!(r.body, b"origin: A\r\n", "{r:?}");
    drop(visitor);
    drop(holder);
    // The proxy closes its side to A after it released the session.
    a.wait_connections_ended(2);

    // Released, not forgotten: a new connection still reaches it (the 2 s
    // timeout is this round trip's margin).
    let mut again = RtspClient::connect(proxy);
    let r = again.request("GET_PARAMETER", &url, &[("Session", "A-1")], b"");
    assert_eq!(r.body, b"origin: A\r\n", "released session gone: {r:?}");
    drop(again);
    let seen = a.log().len();
    assert_eq!(
        a.methods(),
        ["SETUP", "GET_PARAMETER", "GET_PARAMETER", "GET_PARAMETER"]
    );

    // Nobody holds it: gone its timeout after its last use.
    std::thread::sleep(Duration::from_millis(2500));
    let mut late = RtspClient::connect(proxy);
    let r = late.request("PLAY", &url, &[("Session", "A-1")], b"");
    assert_proxy_reply(&r, 454, "1");
    assert_eq!(a.log().len(), seen, "{:?}", a.log());
}

#[test]
fn an_origin_dying_mid_stream_closes_the_client_and_forgets_its_sessions() {
    let (a, _b, running) = two_origins_and_proxy();
    let proxy = running.addr();
    let url = format!("rtsp://{proxy}/live/stream");
    let (mut c, id) = playing(proxy, &url);
    assert_eq!(c.frames(5), (0..5).map(media).collect::<Vec<_>>());
    assert_eq!(a.connections(), 1);

    let killed = Instant::now();
    a.kill_connections();
    assert!(
        c.closes_within(Duration::from_secs(5)),
        "client still open 5 s after its origin died"
    );
    eprintln!("client closed {:?} after the origin died", killed.elapsed());

    // Its session died with the connection that learned it.
    let plays = a.methods().len();
    let mut again = RtspClient::connect(proxy);
    let r = again.request("PLAY", &url, &[("Session", &id)], b"");
    assert_proxy_reply(&r, 454, "1");
    assert_eq!(a.methods().len(), plays, "{:?}", a.methods());
    drop(again);

    // The proxy still serves: B, and A's still-listening socket.
    for (path, origin) in [("/vod/y", "B"), ("/live/x", "A")] {
        let mut c = RtspClient::connect(proxy);
        let url = format!("rtsp://{proxy}{path}");
        let r = c.request("DESCRIBE", &url, &[], b"");
        assert_eq!(r.status(), 200, "{r:?}");
        assert_eq!(r.body, sdp(origin, path).as_bytes());
    }
}

#[test]
fn a_teardown_answered_with_its_session_named_ends_the_session() {
    let (a, _b, running) = two_origins_and_proxy();
    let proxy = running.addr();
    let url = format!("rtsp://{proxy}/live/stream");
    let (mut c, id) = playing(proxy, &url);
    // The client waits for the answer (which names the session) before it
    // closes: the proxy must take the 200 as the end of the session, not
    // keep it until its timeout.
    let r = c.request("TEARDOWN", &url, &[("Session", &id)], b"");
    assert_eq!(r.status(), 200, "{r:?}");
    drop(c);

    let before = a.methods().len();
    let mut again = RtspClient::connect(proxy);
    let r = again.request("PLAY", &url, &[("Session", &id)], b"");
    assert_proxy_reply(&r, 454, "1");
    assert_eq!(a.methods().len(), before, "{:?}", a.methods());
}

#[test]
fn a_frame_after_a_refused_request_with_a_body_still_reaches_the_origin() {
    let (a, _b, running) = two_origins_and_proxy();
    let proxy = running.addr();
    let url = format!("rtsp://{proxy}/live/x");
    let mut c = RtspClient::connect(proxy);
    let id = setup(&mut c, &url);
    let stale_set = |cseq: &str| {
        request_bytes(
            "SET_PARAMETER",
            &url,
            Some(cseq),
            &[("Session", "gone"), ("Content-Type", "text/parameters")],
            b"volume: 1\r\n",
        )
    };
    let rtcp = |seed| Frame {
        channel: 1,
        payload: pattern(seed, 40),
    };

    // A SET_PARAMETER with a stale Session and a body gets 454 from the
    // proxy; the RTCP frame the client sends after that answer, on its own,
    // must still reach the origin.
    let stale = c.next_cseq();
    c.send(&stale_set(&stale));
    assert_proxy_reply(&c.response_to(&stale), 454, &stale);
    c.send(&rtcp(1).bytes());
    let good = c.next_cseq();
    c.send(&request_bytes(
        "GET_PARAMETER",
        &url,
        Some(&good),
        &[("Session", &id)],
        b"",
    ));
    assert_eq!(c.response_to(&good).body, b"origin: A\r\n");

    // The same three in one write.
    let (stale, good) = (c.next_cseq(), c.next_cseq());
    let mut burst = stale_set(&stale);
    burst.extend(rtcp(2).bytes());
    burst.extend(request_bytes(
        "GET_PARAMETER",
        &url,
        Some(&good),
        &[("Session", &id)],
        b"",
    ));
    c.send(&burst);
    assert_proxy_reply(&c.response_to(&stale), 454, &stale);
    assert_eq!(c.response_to(&good).body, b"origin: A\r\n");

    let log = a.log();
    let shape: Vec<String> = log
        .iter()
        .map(|item| match item {
            Item::Frame(f) if *f == rtcp(1) => "rtcp 1".to_string(),
            Item::Frame(f) if *f == rtcp(2) => "rtcp 2".to_string(),
            Item::Frame(f) => format!("{f:?}"),
            Item::Msg(m) => m.method().to_string(),
        })
        .collect();
    assert_eq!(
        shape,
        [
            "SETUP",
            "rtcp 1",
            "GET_PARAMETER",
            "rtcp 2",
            "GET_PARAMETER"
        ],
        "the origin saw {log:?}"
    );
}

#[test]
fn a_silent_viewer_is_kept_while_its_session_may_still_be_refreshed() {
    // The client timeout is 1 s, the session's 3 s: a viewer that only
    // receives media must not be cut after 1 s of its own silence.
    let a = Origin::start("A", Some(3));
    let b = Origin::start("B", None);
    let mut settings = Settings::default();
    settings.timeouts.client = Duration::from_secs(1);
    let running = rtsp_proxy_with(&a, &b, settings);
    let proxy = running.addr();
    let url = format!("rtsp://{proxy}/live/stream");
    let (mut c, _) = playing(proxy, &url);
    let silent = Instant::now();
    let mut seen = 0;
    while silent.elapsed() < Duration::from_millis(2500) {
        seen += 1;
        assert_eq!(
            c.frames(1).len(),
            1,
            "frames stopped after {:?}",
            silent.elapsed()
        );
    }
    assert!(seen > 50, "only {seen} frames in 2.5 s");
}

#[test]
fn frames_before_any_request_are_dropped_and_do_not_hold_the_connection() {
    let a = Origin::start("A", None);
    let b = Origin::start("B", None);
    let mut settings = Settings::default();
    settings.timeouts.head = Duration::from_secs(1);
    let running = rtsp_proxy_with(&a, &b, settings);
    let proxy = running.addr();

    // Frames, then a request: the frames have no server to go to.
    let mut c = RtspClient::connect(proxy);
    c.send(&media(0).bytes());
    let url = format!("rtsp://{proxy}/live/x");
    assert_eq!(c.request("OPTIONS", &url, &[], b"").status(), 200);
    assert_eq!(a.methods(), ["OPTIONS"]);
    assert!(a
        .log()
        .iter()
        .all(|entry| !format!("{entry:?}").contains("Frame")));

    // Only frames, one every 100 ms for up to 4 s (the pace is the
    // behaviour under test: a client that never stops sending), and no
    // request: the head deadline, 1 s from the accept, closes it all the same.
    let mut c = RtspClient::connect(proxy);
    let started = Instant::now();
    let mut writer = c.writer.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        for i in 0..40 {
            if writer.write_all(&media(i).bytes()).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    assert!(
        c.closes_within(Duration::from_secs(5)),
        "open {:?} after its first frame",
        started.elapsed()
    );
    let closed_after = started.elapsed();
    assert!(
        closed_after < Duration::from_secs(3),
        "the frames held it open {closed_after:?}"
    );
    sender.join().unwrap();
}
