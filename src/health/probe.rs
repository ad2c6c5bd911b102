//! One check of one server, blocking, within a deadline.
//!
//! The checker thread calls these with plain `std::net` sockets (never a
//! worker's ring). The whole check, connect to verdict, lives under one
//! deadline: before every blocking call the socket's timeout is set to the time
//! left, so a server that trickles bytes cannot stretch a check past its
//! timeout. Every read is capped; nothing a server sends can make us panic or
//! buffer without end. Answers are read with the project's own parsers
//! (`protocols::http`, `protocols::rtsp`), as strict here as in the relay.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use tcpvs_command::{CheckKind, HttpCheck};

use crate::protocols::http::{parse_response, ChunkEvent, ChunkedDecoder, Framing, Limits, Method};
use crate::protocols::rtsp::parse_message;

/// The part of a response body searched for the expected text: a text further
/// in is not found.
const MAX_BODY: usize = 64 * 1024;
/// All the bytes one check reads (heads, body, chunk framing): a bound on every
/// read loop besides the deadline.
const MAX_READ: usize = 256 * 1024;
/// Interim (1xx) heads skipped before the final one.
const MAX_INTERIM: usize = 8;
/// An agent's line, its LF included.
pub const MAX_AGENT_LINE: usize = 512;
/// One read's size.
const READ_CHUNK: usize = 4096;

/// A check that passed, and how long it took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Passed {
    pub took: Duration,
    /// The status answered (HTTP and RTSP checks); `None` for a TCP check.
    pub status: Option<u16>,
}

impl fmt::Display for Passed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.took.as_millis();
        match self.status {
            None => write!(f, "L4OK in {ms}ms"),
            Some(status) => write!(f, "L7OK {status} in {ms}ms"),
        }
    }
}

/// Why a check failed, shown with HAProxy's codes (`L4TOUT`, `L4CON`,
/// `L7TOUT`, `L7RSP`, `L7STS`) so operators read what they know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeFailure {
    /// No connection within the deadline.
    #[error("L4TOUT")]
    L4Timeout,
    /// The connection was refused, reset or could not be made.
    #[error("L4CON {0}")]
    L4Refused(String),
    /// Connected, but no complete answer within the deadline.
    #[error("L7TOUT")]
    L7Timeout,
    /// The answer is not the protocol asked for, or is malformed.
    #[error("L7RSP {0}")]
    L7Invalid(String),
    /// A well-formed answer with a status that does not pass.
    #[error("L7STS {0}")]
    L7Status(u16),
    /// The expected text is not in the body (its first 64 KiB).
    #[error("L7RSP expected text not in body")]
    L7Body,
}

/// Checks the server at `addr` as `kind` says, within `timeout` overall.
pub fn check(
    kind: &CheckKind,
    addr: SocketAddr,
    timeout: Duration,
) -> Result<Passed, ProbeFailure> {
    let start = Instant::now();
    let mut exchange = Exchange::open(addr, start + timeout)?;
    let status = match kind {
        CheckKind::Tcp => None,
        CheckKind::Http(http) => Some(check_http(&mut exchange, http, addr)?),
        CheckKind::Rtsp => Some(check_rtsp(&mut exchange)?),
    };
    exchange.close();
    Ok(Passed {
        took: start.elapsed(),
        status,
    })
}

/// Reads one line from a feedback agent at `addr`, within `timeout`: the bytes
/// up to the first LF (or the end of the connection), without the CR LF. A
/// reply that fills 512 bytes without an LF is refused rather than cut (a cut
/// `weight:100` would read as `weight:10`); an empty line is refused too.
pub fn read_agent_line(addr: SocketAddr, timeout: Duration) -> Result<String, ProbeFailure> {
    let mut exchange = Exchange::open(addr, Instant::now() + timeout)?;
    let line_end = loop {
        if let Some(lf) = exchange.unread.iter().position(|&b| b == b'\n') {
            break lf;
        }
        if exchange.unread.len() >= MAX_AGENT_LINE {
            return Err(invalid("agent line longer than 512 bytes"));
        }
        if !exchange.fill(MAX_AGENT_LINE)? {
            break exchange.unread.len();
        }
    };
    exchange.close();
    let line = &exchange.unread[..line_end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        return Err(invalid("empty agent line"));
    }
    Ok(String::from_utf8_lossy(line).into_owned())
}

/// Sends the check's request and judges the answer; the status on success.
fn check_http(
    exchange: &mut Exchange,
    check: &HttpCheck,
    addr: SocketAddr,
) -> Result<u16, ProbeFailure> {
    let host = check.host.clone().unwrap_or_else(|| addr.to_string());
    let request = format!(
        "{} {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: tcpvs-check\r\nConnection: close\r\n\r\n",
        check.method, check.path
    );
    exchange.send(request.as_bytes())?;
    let method = response_method(&check.method);
    let limits = Limits::default();
    let mut interim = 0;
    let head = loop {
        let head = exchange.read_head(|buf| parse_response(buf, &method, &limits))?;
        if !head.is_interim() {
            break head;
        }
        interim += 1;
        if interim > MAX_INTERIM {
            return Err(invalid("too many interim responses"));
        }
    };
    if !check.status.contains(head.status) {
        return Err(ProbeFailure::L7Status(head.status));
    }
    // A HEAD answer has no body to search (the validator refuses the pair).
    if let Some(text) = check.body.as_deref().filter(|_| method != Method::Head) {
        let body = exchange.read_body(head.framing)?;
        if !contains(&body, text.as_bytes()) {
            return Err(ProbeFailure::L7Body);
        }
    }
    Ok(head.status)
}

/// The method as the response parser needs it: only HEAD changes a
/// response's framing, the others are passed as they are.
// `Method::from_token` is private to `protocols::http::request`; this stands
// in for it.
fn response_method(name: &str) -> Method {
    if name == "HEAD" {
        Method::Head
    } else {
        Method::Other(name.to_owned())
    }
}

/// Sends `OPTIONS *` and requires a 2xx answer to it (CSeq 1); the status on success.
fn check_rtsp(exchange: &mut Exchange) -> Result<u16, ProbeFailure> {
    exchange.send(b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: tcpvs-check\r\n\r\n")?;
    let limits = Limits::default();
    let message = exchange.read_head(|buf| parse_message(buf, &limits))?;
    let Some(status) = message.status() else {
        return Err(invalid("an RTSP request, not a response"));
    };
    if message.cseq != "1" {
        return Err(invalid(&format!("CSeq {}, not 1", message.cseq)));
    }
    if !(200..300).contains(&status) {
        return Err(ProbeFailure::L7Status(status));
    }
    Ok(status)
}

fn invalid(why: &str) -> ProbeFailure {
    ProbeFailure::L7Invalid(why.to_owned())
}

/// Whether `text` occurs in `body`.
fn contains(body: &[u8], text: &[u8]) -> bool {
    text.is_empty() || body.windows(text.len()).any(|window| window == text)
}

/// A connection to a server under the check's deadline, with the bytes read
/// from it and not yet consumed.
struct Exchange {
    stream: TcpStream,
    deadline: Instant,
    unread: Vec<u8>,
    /// Bytes read so far, against `MAX_READ`.
    read: usize,
}

impl Exchange {
    fn open(addr: SocketAddr, deadline: Instant) -> Result<Self, ProbeFailure> {
        let left = time_left(deadline).ok_or(ProbeFailure::L4Timeout)?;
        let stream = TcpStream::connect_timeout(&addr, left).map_err(|e| match e.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => ProbeFailure::L4Timeout,
            _ => refused(&e),
        })?;
        Ok(Self {
            stream,
            deadline,
            unread: Vec::new(),
            read: 0,
        })
    }

    /// The time left before the deadline, or the L7 timeout.
    fn time_left(&self) -> Result<Duration, ProbeFailure> {
        time_left(self.deadline).ok_or(ProbeFailure::L7Timeout)
    }

    fn send(&mut self, mut bytes: &[u8]) -> Result<(), ProbeFailure> {
        while !bytes.is_empty() {
            let left = self.time_left()?;
            self.stream
                .set_write_timeout(Some(left))
                .map_err(|e| refused(&e))?;
            match self.stream.write(bytes) {
                Ok(0) => return Err(ProbeFailure::L4Refused("connection closed".into())),
                Ok(n) => bytes = &bytes[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_failure(&e)),
            }
        }
        Ok(())
    }

    /// Reads more into `unread`, which is kept within `cap` bytes (and the
    /// whole check within `MAX_READ`). `Ok(false)`: the server closed.
    fn fill(&mut self, cap: usize) -> Result<bool, ProbeFailure> {
        let room = cap
            .saturating_sub(self.unread.len())
            .min(MAX_READ - self.read)
            .min(READ_CHUNK);
        if room == 0 {
            return Err(invalid("answer too large"));
        }
        let mut chunk = [0u8; READ_CHUNK];
        loop {
            let left = self.time_left()?;
            self.stream
                .set_read_timeout(Some(left))
                .map_err(|e| refused(&e))?;
            match self.stream.read(&mut chunk[..room]) {
                Ok(n) => {
                    self.read += n;
                    self.unread.extend_from_slice(&chunk[..n]);
                    return Ok(n > 0);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_failure(&e)),
            }
        }
    }

    /// Reads until `parse` finds a complete head, and consumes it. `parse`
    /// bounds the head's size itself (`Limits`).
    fn read_head<T, E: fmt::Display>(
        &mut self,
        parse: impl Fn(&[u8]) -> Result<Option<(T, usize)>, E>,
    ) -> Result<T, ProbeFailure> {
        loop {
            match parse(&self.unread) {
                Ok(Some((head, len))) => {
                    self.unread.drain(..len);
                    return Ok(head);
                }
                Ok(None) => {}
                Err(e) => return Err(invalid(&e.to_string())),
            }
            if !self.fill(MAX_READ)? {
                return Err(invalid(if self.unread.is_empty() {
                    "empty answer"
                } else {
                    "connection closed within the head"
                }));
            }
        }
    }

    /// Reads a body framed as `framing`, its first `MAX_BODY` bytes at most.
    fn read_body(&mut self, framing: Framing) -> Result<Vec<u8>, ProbeFailure> {
        let mut body = Vec::new();
        let mut decoder = ChunkedDecoder::new();
        let length = match framing {
            Framing::None => return Ok(body),
            Framing::Length(n) => usize::try_from(n).map_or(MAX_BODY, |n| n.min(MAX_BODY)),
            Framing::Chunked | Framing::UntilClose => MAX_BODY,
        };
        while body.len() < length {
            let consumed = if framing == Framing::Chunked {
                let (consumed, event) = decoder
                    .decode(&self.unread)
                    .map_err(|e| invalid(&e.to_string()))?;
                match event {
                    Some(ChunkEvent::Data(range)) => take(&mut body, &self.unread[range], length),
                    Some(ChunkEvent::End { .. }) => return Ok(body),
                    None => {}
                }
                consumed
            } else {
                take(&mut body, &self.unread, length);
                self.unread.len()
            };
            self.unread.drain(..consumed);
            if body.len() < length && self.unread.is_empty() && !self.fill(MAX_READ)? {
                return match framing {
                    Framing::UntilClose => Ok(body),
                    _ => Err(invalid("connection closed within the body")),
                };
            }
        }
        Ok(body)
    }

    /// Ends the connection; a failure to say so changes no verdict.
    fn close(&self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

/// Appends to `body` what of `data` fits within `length`.
fn take(body: &mut Vec<u8>, data: &[u8], length: usize) {
    let room = length.saturating_sub(body.len());
    body.extend_from_slice(&data[..data.len().min(room)]);
}

/// The time before `deadline`, `None` once it has passed (a zero timeout
/// would mean "no timeout" to some calls, an error to others).
fn time_left(deadline: Instant) -> Option<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|left| !left.is_zero())
}

/// A read or write that failed once connected.
fn io_failure(e: &io::Error) -> ProbeFailure {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ProbeFailure::L7Timeout,
        _ => refused(e),
    }
}

/// A connection refused, reset or unreachable: the common kinds by their
/// short name, others as the system says.
fn refused(e: &io::Error) -> ProbeFailure {
    use io::ErrorKind::*;
    let why = match e.kind() {
        kind @ (ConnectionRefused | ConnectionReset | ConnectionAborted | BrokenPipe
        | HostUnreachable | NetworkUnreachable | AddrNotAvailable) => kind.to_string(),
        _ => e.to_string(),
    };
    ProbeFailure::L4Refused(why)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::sync::mpsc;
    use std::thread;
    use tcpvs_command::StatusRange;

    const TIMEOUT: Duration = Duration::from_secs(2);
    /// What a check may overrun its timeout by (scheduling on a shared machine).
    const SLACK: Duration = Duration::from_millis(800);

    /// A server that accepts one connection and hands it to `talk`.
    fn serve(talk: impl FnOnce(TcpStream) + Send + 'static) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address");
        thread::spawn(move || {
            if let Ok((stream, _)) = listener.accept() {
                let _ = stream.set_read_timeout(Some(TIMEOUT));
                let _ = stream.set_write_timeout(Some(TIMEOUT));
                talk(stream);
            }
        });
        addr
    }

    /// A server that reads the request head, answers `reply` and closes; the
    /// request comes back on the channel.
    fn answer(reply: &[u8]) -> (SocketAddr, mpsc::Receiver<String>) {
        let reply = reply.to_vec();
        let (sent, request) = mpsc::channel();
        let addr = serve(move |mut stream| {
            let mut head = Vec::new();
            let mut chunk = [0u8; 1024];
            for _ in 0..64 {
                match stream.read(&mut chunk) {
                    Ok(n) if n > 0 => head.extend_from_slice(&chunk[..n]),
                    _ => break,
                }
                if head.ends_with(b"\r\n\r\n") {
                    break;
                }
            }
            let _ = sent.send(String::from_utf8_lossy(&head).into_owned());
            let _ = stream.write_all(&reply);
        });
        (addr, request)
    }

    /// A server that writes `reply` without reading and closes.
    fn say(reply: &[u8]) -> SocketAddr {
        let reply = reply.to_vec();
        serve(move |mut stream| {
            let _ = stream.write_all(&reply);
        })
    }

    fn http(change: impl FnOnce(&mut HttpCheck)) -> CheckKind {
        let mut check = HttpCheck::default();
        change(&mut check);
        CheckKind::Http(check)
    }

    fn http_answer(kind: &CheckKind, reply: &[u8]) -> Result<Passed, ProbeFailure> {
        check(kind, answer(reply).0, TIMEOUT)
    }

    fn with_body(text: &str) -> CheckKind {
        http(|c| c.body = Some(text.into()))
    }

    /// An address nothing listens on.
    fn dead_port() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address")
    }

    fn chunked(chunks: &[&str]) -> Vec<u8> {
        let mut reply = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for chunk in chunks {
            reply.extend_from_slice(format!("{:x}\r\n{chunk}\r\n", chunk.len()).as_bytes());
        }
        reply.extend_from_slice(b"0\r\n\r\n");
        reply
    }

    /// Asserts that `probe` finds each of `replies` invalid (`L7RSP`).
    fn assert_invalid<T: fmt::Debug>(
        replies: &[&[u8]],
        probe: impl Fn(&[u8]) -> Result<T, ProbeFailure>,
    ) {
        for reply in replies {
            let failure = probe(reply).expect_err("fails");
            let shown = String::from_utf8_lossy(&reply[..reply.len().min(60)]);
            assert!(
                matches!(failure, ProbeFailure::L7Invalid(_)),
                "{shown:?}: {failure}"
            );
            assert!(failure.to_string().starts_with("L7RSP "), "{failure}");
        }
    }

    // TCP

    #[test]
    fn tcp_passes_when_the_server_accepts() {
        let passed = check(&CheckKind::Tcp, say(b""), TIMEOUT).expect("passes");
        assert_eq!(passed.status, None);
        assert!(passed.took < TIMEOUT);
        assert!(passed.to_string().starts_with("L4OK in "), "{passed}");
    }

    #[test]
    fn a_dead_port_is_refused() {
        for kind in [CheckKind::Tcp, http(|_| {}), CheckKind::Rtsp] {
            let failure = check(&kind, dead_port(), TIMEOUT).expect_err("refused");
            assert_eq!(
                failure,
                ProbeFailure::L4Refused("connection refused".into())
            );
            assert_eq!(failure.to_string(), "L4CON connection refused");
        }
        assert!(matches!(
            read_agent_line(dead_port(), TIMEOUT),
            Err(ProbeFailure::L4Refused(_))
        ));
    }

    // The deadline

    #[test]
    fn a_server_that_never_answers_times_out_at_the_timeout() {
        // Connected by the kernel's backlog, never accepted nor answered.
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address");
        let timeout = Duration::from_millis(200);
        for kind in [http(|_| {}), CheckKind::Rtsp] {
            let start = Instant::now();
            assert_eq!(check(&kind, addr, timeout), Err(ProbeFailure::L7Timeout));
            let took = start.elapsed();
            assert!(took >= timeout && took < timeout + SLACK, "{took:?}");
        }
        let start = Instant::now();
        assert_eq!(read_agent_line(addr, timeout), Err(ProbeFailure::L7Timeout));
        assert!(start.elapsed() < timeout + SLACK);
        drop(listener);
    }

    /// A server that sends one byte of a never-ending head every 50 ms.
    fn trickle() -> SocketAddr {
        serve(|mut stream| {
            let head = b"HTTP/1.1 200 OK\r\nX-Slow: "
                .iter()
                .chain([b'a'; 100].iter());
            for byte in head {
                if stream.write_all(&[*byte]).is_err() {
                    break;
                }
                thread::sleep(Duration::from_millis(50));
            }
        })
    }

    #[test]
    fn a_trickling_server_is_cut_at_the_deadline() {
        let timeout = Duration::from_millis(300);
        let start = Instant::now();
        assert_eq!(
            check(&http(|_| {}), trickle(), timeout),
            Err(ProbeFailure::L7Timeout)
        );
        let took = start.elapsed();
        assert!(took >= timeout && took < timeout + SLACK, "{took:?}");
        let start = Instant::now();
        assert_eq!(
            read_agent_line(trickle(), timeout),
            Err(ProbeFailure::L7Timeout)
        );
        assert!(start.elapsed() < timeout + SLACK);
    }

    // HTTP

    #[test]
    fn http_sends_the_request_documented() {
        let (addr, request) = answer(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        check(&http(|_| {}), addr, TIMEOUT).expect("passes");
        assert_eq!(
            request.recv_timeout(TIMEOUT).expect("request"),
            format!("GET / HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: tcpvs-check\r\nConnection: close\r\n\r\n")
        );
        let (addr, request) = answer(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        let kind = http(|c| {
            c.method = "HEAD".into();
            c.path = "/health?full=1".into();
            c.host = Some("www.example.com".into());
        });
        check(&kind, addr, TIMEOUT).expect("passes");
        assert_eq!(
            request.recv_timeout(TIMEOUT).expect("request"),
            "HEAD /health?full=1 HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: tcpvs-check\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn http_status_in_range_passes_and_out_of_range_fails() {
        let passed = http_answer(
            &http(|_| {}),
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        )
        .expect("passes");
        assert_eq!(passed.status, Some(200));
        assert!(passed.to_string().starts_with("L7OK 200 in "), "{passed}");
        let moved = b"HTTP/1.1 301 Moved\r\nLocation: /x\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(
            http_answer(&http(|_| {}), moved).expect("passes").status,
            Some(301)
        );
        let only_200 = http(|c| {
            c.status = StatusRange {
                low: 200,
                high: 200,
            }
        });
        assert_eq!(
            http_answer(&only_200, moved),
            Err(ProbeFailure::L7Status(301))
        );
        let failure = http_answer(
            &http(|_| {}),
            b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n",
        )
        .expect_err("fails");
        assert_eq!(failure, ProbeFailure::L7Status(500));
        assert_eq!(failure.to_string(), "L7STS 500");
    }

    #[test]
    fn http_interim_heads_are_skipped() {
        let reply = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n";
        assert_eq!(
            http_answer(&http(|_| {}), reply).expect("passes").status,
            Some(204)
        );
        // A final head after too many interim ones is not waited for.
        let endless = [
            b"HTTP/1.1 100 Continue\r\n\r\n".repeat(MAX_INTERIM + 1),
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec(),
        ]
        .concat();
        assert_eq!(
            http_answer(&http(|_| {}), &endless),
            Err(invalid("too many interim responses"))
        );
    }

    #[test]
    fn http_malformed_answers_are_invalid() {
        let replies: [&[u8]; 6] = [
            b"garbage\r\n\r\n",
            b"HTTP/1.1 200 OK\nContent-Length: 0\n\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n",
            b"",
        ];
        assert_invalid(&replies, |reply| http_answer(&http(|_| {}), reply));
    }

    #[test]
    fn http_body_text_is_searched_in_each_framing() {
        let kind = with_body("all good");
        let past_the_cap = [
            &b"HTTP/1.1 200 OK\r\n\r\n"[..],
            &[b'x'; MAX_BODY],
            b"all good",
        ]
        .concat();
        for (reply, found) in [
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\nstatus: all good".to_vec(),
                true,
            ),
            (
                b"HTTP/1.1 200 OK\r\n\r\nstatus: all good, really".to_vec(),
                true,
            ),
            (chunked(&["status: all", " go", "od"]), true),
            // The text lies past the Content-Length.
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nstatus: all good".to_vec(),
                false,
            ),
            (b"HTTP/1.1 200 OK\r\n\r\nstatus: bad".to_vec(), false),
            (chunked(&["status: all", " bad"]), false),
            (b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(), false),
            (past_the_cap, false),
        ] {
            let verdict = http_answer(&kind, &reply);
            let shown = String::from_utf8_lossy(&reply[..reply.len().min(60)]);
            if found {
                assert!(verdict.is_ok(), "{shown:?}: {verdict:?}");
            } else {
                let failure = verdict.expect_err("fails");
                assert_eq!(failure, ProbeFailure::L7Body, "{shown:?}");
                assert_eq!(failure.to_string(), "L7RSP expected text not in body");
            }
        }
    }

    #[test]
    fn http_body_cut_short_or_misframed_is_invalid() {
        let kind = with_body("all good");
        let replies: [&[u8]; 3] = [
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nall good",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n8\r\nall good\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nall good\r\n0\r\n\r\n",
        ];
        assert_invalid(&replies, |reply| http_answer(&kind, reply));
    }

    #[test]
    fn http_head_check_does_not_read_a_body() {
        let kind = http(|c| {
            c.method = "HEAD".into();
            c.body = Some("all good".into());
        });
        let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n";
        assert_eq!(http_answer(&kind, reply).expect("passes").status, Some(200));
    }

    // RTSP

    #[test]
    fn rtsp_sends_options_and_passes_on_2xx_with_cseq_1() {
        let (addr, request) =
            answer(b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nPublic: OPTIONS, DESCRIBE\r\n\r\n");
        let passed = check(&CheckKind::Rtsp, addr, TIMEOUT).expect("passes");
        assert_eq!(passed.status, Some(200));
        assert_eq!(
            request.recv_timeout(TIMEOUT).expect("request"),
            "OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: tcpvs-check\r\n\r\n"
        );
    }

    #[test]
    fn rtsp_failures() {
        let rtsp = |reply: &[u8]| check(&CheckKind::Rtsp, answer(reply).0, TIMEOUT);
        assert_eq!(
            rtsp(b"RTSP/1.0 404 Not Found\r\nCSeq: 1\r\n\r\n"),
            Err(ProbeFailure::L7Status(404))
        );
        let replies: [&[u8]; 5] = [
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            b"RTSP/1.0 200 OK\r\nCSeq: 2\r\n\r\n",
            b"RTSP/1.0 200 OK\r\n\r\n",
            b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n",
            b"garbage",
        ];
        assert_invalid(&replies, rtsp);
    }

    // Agent

    #[test]
    fn agent_line_is_read_up_to_its_end() {
        for (reply, line) in [
            (&b"75%\r\n"[..], "75%"),
            (b"weight:10,drain\n", "weight:10,drain"),
            (b"down#disk full", "down#disk full"),
            (b"up\nmore lines\n", "up"),
        ] {
            assert_eq!(read_agent_line(say(reply), TIMEOUT).as_deref(), Ok(line));
        }
        let longest = [vec![b'9'; MAX_AGENT_LINE - 1], b"\n".to_vec()].concat();
        let line = read_agent_line(say(&longest), TIMEOUT).expect("fits");
        assert_eq!(line.len(), MAX_AGENT_LINE - 1);
    }

    #[test]
    fn agent_empty_or_overlong_line_fails() {
        let overlong = [b'9'; MAX_AGENT_LINE + 100];
        let replies: [&[u8]; 4] = [b"", b"\n", b"\r\n", &overlong];
        assert_invalid(&replies, |reply| read_agent_line(say(reply), TIMEOUT));
    }
}
