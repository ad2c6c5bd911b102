//! The admin listener: `/metrics` (Prometheus), `/healthz` (for keepalived
//! track scripts and Layer-4 checks) and `/stats` (a status page for people,
//! and `/stats.json` for scripts), served by plain threads of their own,
//! never by the io_uring workers. A tiny HTTP/1.1 server: GET and
//! HEAD only, one request per connection, a bounded head and a read timeout
//! so that a silent or slow client cannot hold it.
//!
//! Its socket does not set SO_REUSEPORT (an address in use must stop the
//! start); an upgrade's new tcpvsd binds it once the old one has closed it.

pub mod counters;
mod metrics;
mod snapshot;
mod stats;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use self::snapshot::Snapshot;
use crate::protocols::http::date;
use crate::protocols::http::forward::reason_phrase;
use crate::table::Table;
use crate::traffic::Traffic;
use crate::worker::Workers;

/// The largest request head read; a longer one is answered 431.
const MAX_HEAD: usize = 8 * 1024;
/// How long a client may take to send its head and take the answer, all
/// of it: a deadline from the accept, not a limit per read (a client sending
/// a byte a second would otherwise hold a place for hours).
const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// Clients served at once; more are closed at once (a scraper and a track
/// script need one each).
const MAX_CLIENTS: usize = 16;

/// What the pages are made of.
pub struct Admin {
    pub table: Arc<ArcSwap<Table>>,
    pub workers: Arc<Workers>,
    /// The rates /stats shows (sampled by the traffic's own thread).
    pub traffic: Arc<Traffic>,
}

/// The admin listener, serving from a thread of its own.
pub struct AdminListener {
    /// Where it listens (port 0 gets one).
    pub bound: SocketAddr,
    /// A duplicate of its socket, kept to close it.
    socket: TcpListener,
    closed: Arc<AtomicBool>,
}

impl AdminListener {
    /// Stops listening (for an upgrade: the new tcpvsd binds the address
    /// next). Clients being answered are answered.
    pub fn close(self) {
        self.closed.store(true, Ordering::Release);
        // Completes the accept the thread waits in.
        let _ = socket2::SockRef::from(&self.socket).shutdown(std::net::Shutdown::Both);
    }
}

/// Binds `addr` (an address in use is an error, whoever holds it) and
/// serves the admin pages from a thread of their own.
pub fn serve(addr: SocketAddr, admin: Admin) -> io::Result<AdminListener> {
    let listener = TcpListener::bind(addr)?;
    start(listener, admin)
}

/// [`serve`], trying for up to `patience` while `addr` is in use: the
/// tcpvsd an upgrade replaces gives it up once told to retire.
pub fn serve_when_free(
    addr: SocketAddr,
    admin: Admin,
    patience: Duration,
) -> io::Result<AdminListener> {
    let deadline = std::time::Instant::now() + patience;
    loop {
        match TcpListener::bind(addr) {
            Err(e)
                if e.kind() == io::ErrorKind::AddrInUse && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e),
            Ok(listener) => return start(listener, admin),
        }
    }
}

fn start(listener: TcpListener, admin: Admin) -> io::Result<AdminListener> {
    let bound = listener.local_addr()?;
    let socket = listener.try_clone()?;
    let closed = Arc::new(AtomicBool::new(false));
    let pages = Arc::new(admin);
    let ends = closed.clone();
    std::thread::Builder::new()
        .name("tcpvs-admin".into())
        .spawn(move || accept_loop(&listener, &pages, &ends))?;
    Ok(AdminListener {
        bound,
        socket,
        closed,
    })
}

fn accept_loop(listener: &TcpListener, pages: &Arc<Admin>, closed: &AtomicBool) {
    let clients = Arc::new(AtomicUsize::new(0));
    for client in listener.incoming() {
        if closed.load(Ordering::Acquire) {
            return;
        }
        let Ok(client) = client else {
            // Out of descriptors: wait rather than spin.
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        if clients.fetch_add(1, Ordering::AcqRel) >= MAX_CLIENTS {
            clients.fetch_sub(1, Ordering::AcqRel);
            continue;
        }
        let (pages, clients_done) = (pages.clone(), clients.clone());
        let spawned = std::thread::Builder::new()
            .name("tcpvs-admin-client".into())
            .spawn(move || {
                let _ = answer_client(client, &pages);
                clients_done.fetch_sub(1, Ordering::AcqRel);
            });
        if spawned.is_err() {
            clients.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

fn answer_client(mut client: TcpStream, pages: &Admin) -> io::Result<()> {
    let deadline = Instant::now() + IO_TIMEOUT;
    let head = read_head(&mut client, deadline)?;
    let response = match &head {
        Some(head) => respond(head, pages),
        None => Response::text(431, "head too large\n"),
    };
    let bytes = response.bytes();
    let mut sent = 0;
    while sent < bytes.len() {
        client.set_write_timeout(Some(left(deadline)?))?;
        match client.write(&bytes[sent..])? {
            0 => return Err(io::ErrorKind::WriteZero.into()),
            n => sent += n,
        }
    }
    let _ = client.shutdown(std::net::Shutdown::Write);
    if head.is_none() {
        // Closed with the rest of a long head unread, the socket would be
        // reset, and the reset can overtake the 431: read some first.
        let mut rest = [0u8; 4096];
        for _ in 0..16 {
            let Ok(wait) = left(deadline) else { break };
            let _ = client.set_read_timeout(Some(wait));
            if !matches!(client.read(&mut rest), Ok(n) if n > 0) {
                break;
            }
        }
    }
    Ok(())
}

/// The time left until `deadline`; past it, a timeout.
fn left(deadline: Instant) -> io::Result<Duration> {
    match deadline.saturating_duration_since(Instant::now()) {
        Duration::ZERO => Err(io::ErrorKind::TimedOut.into()),
        left => Ok(left),
    }
}

/// The request head, up to its blank line, by `deadline`; `None` past
/// [`MAX_HEAD`].
fn read_head(client: &mut TcpStream, deadline: Instant) -> io::Result<Option<Vec<u8>>> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        if head.len() > MAX_HEAD {
            return Ok(None);
        }
        client.set_read_timeout(Some(left(deadline)?))?;
        let n = client.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        head.extend_from_slice(&chunk[..n]);
    }
    Ok(Some(head))
}

/// An answer of the admin listener.
#[derive(Debug)]
struct Response {
    status: u16,
    content_type: &'static str,
    body: String,
    extra: &'static str,
    /// A HEAD request: the head alone is sent.
    head_only: bool,
}

impl Response {
    fn text(status: u16, body: &str) -> Self {
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.to_string(),
            extra: "",
            head_only: false,
        }
    }

    fn bytes(&self) -> Vec<u8> {
        // Dated as every answer of tcpvsd's own (RFC 9110 6.6.1).
        let date = date::now();
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nDate: {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\
             Cache-Control: no-store\r\nConnection: close\r\n{}\r\n",
            self.status,
            reason_phrase(self.status),
            String::from_utf8_lossy(&date),
            self.content_type,
            self.body.len(),
            self.extra
        )
        .into_bytes();
        if !self.head_only {
            out.extend_from_slice(self.body.as_bytes());
        }
        out
    }
}

/// The answer to a request head.
fn respond(head: &[u8], pages: &Admin) -> Response {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut words = line.split_whitespace();
    let (Some(method), Some(target)) = (words.next(), words.next()) else {
        return Response::text(400, "bad request line\n");
    };
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => {
            let mut refused = Response::text(405, "GET or HEAD only\n");
            refused.extra = "Allow: GET, HEAD\r\n";
            return refused;
        }
    };
    let path = target.split('?').next().unwrap_or_default();
    let mut response = page(path, pages);
    response.head_only = head_only;
    response
}

fn page(path: &str, pages: &Admin) -> Response {
    let admin = pages;
    let snapshot = || {
        let (table, workers) = (admin.table.load(), &admin.workers);
        Snapshot::of(
            &table,
            workers.counters(),
            &workers.listening(),
            &admin.traffic.rates(),
        )
    };
    match path {
        "/metrics" => {
            let mut response = Response::text(
                200,
                &metrics::render(&admin.table.load(), admin.workers.counters()),
            );
            response.content_type = metrics::CONTENT_TYPE;
            response
        }
        "/healthz" => match health(&admin.workers) {
            Health::Serving => Response::text(200, "ok\n"),
            Health::Draining => Response::text(503, "draining\n"),
        },
        "/stats" => {
            let page = stats::render(&snapshot(), std::time::SystemTime::now());
            let mut response = Response::text(200, &page);
            response.content_type = stats::CONTENT_TYPE;
            response
        }
        "/stats.json" => match serde_json::to_string_pretty(&snapshot()) {
            Ok(json) => {
                let mut response = Response::text(200, &(json + "\n"));
                response.content_type = "application/json";
                response
            }
            Err(e) => Response::text(500, &format!("{e}\n")),
        },
        _ => Response::text(
            404,
            "not found: try /metrics, /healthz, /stats or /stats.json\n",
        ),
    }
}

/// What /healthz says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    Serving,
    /// A graceful stop has begun: a Layer-4 tier should send new clients
    /// elsewhere. (An upgrade's old tcpvsd closes its admin listener
    /// instead: the new one answers for the address.)
    Draining,
}

fn health(workers: &Workers) -> Health {
    match workers.draining() {
        true => Health::Draining,
        false => Health::Serving,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use crate::table::Table;

    /// The table a configuration file `toml` describes.
    pub fn table_from(toml: &str) -> Table {
        let spec = tcpvs_command::config::parse(toml, std::path::Path::new("t.toml"))
            .unwrap()
            .table;
        Table::build(spec, None).unwrap()
    }
}
