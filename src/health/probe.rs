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
