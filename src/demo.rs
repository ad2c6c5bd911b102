//! `tcpvsd --demo`: three small built-in backend pools on loopback (static,
//! images, cgi) and a service that routes between them by content, so a new
//! user can see the switch work with nothing else installed.
//!
//! The backends are real HTTP/1.1 servers (keep-alive, Content-Length and
//! chunked request bodies); each response says which pool and server answered.

use std::io;
use std::net::SocketAddr;

use bytes::{Buf, Bytes, BytesMut};
use std::time::Duration;

use crate::net::Instant;

use crate::net::{self, Conn, Listener};
use crate::protocols::http::{parse_request, ChunkedDecoder, Framing, Limits};
use crate::table::{
    RuleSpec, ServerAddr, ServerSpec, ServiceSpec, Settings, TableError, TableSpec, Weight,
};

/// Where the demo serves /metrics and /healthz (`--admin` moves it).
pub const ADMIN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9180);

/// The demo's pools: name, number of servers, and the rule that routes to it
/// (`None`: the default set).
pub const POOLS: [(&str, usize, Option<&str>); 3] = [
    ("static", 2, None),
    ("images", 2, Some("^/images/")),
    ("cgi", 1, Some("^/cgi-bin/")),
];

/// A started backend pool.
#[derive(Debug, Clone)]
pub struct BackendPool {
    pub name: String,
    pub servers: Vec<SocketAddr>,
}

/// Starts the demo pools on ephemeral loopback ports, on a thread of their own.
pub fn start_backends() -> io::Result<Vec<BackendPool>> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("tcpvs-demo-backends".into())
        .spawn(move || {
            net::start(async move {
                let mut pools = Vec::new();
                for (name, count, _) in POOLS {
                    let mut servers = Vec::new();
                    for _ in 0..count {
                        match Listener::bind(SocketAddr::from(([127, 0, 0, 1], 0))) {
                            Ok((listener, addr)) => {
                                servers.push(addr);
                                net::spawn(serve_backend(listener, name, addr));
                            }
                            Err(e) => {
                                let _ = ready_tx.send(Err(e));
                                return;
                            }
                        }
                    }
                    pools.push(BackendPool {
                        name: name.to_string(),
                        servers,
                    });
                }
                let _ = ready_tx.send(Ok(pools));
                std::future::pending::<()>().await;
            })
        })?;
    ready_rx
        .recv()
        .map_err(|_| io::Error::other("demo backends did not start"))?
}

/// The demo's rule table: service `web` on `listen`, `^/images/` to the image
/// pool, `^/cgi-bin/` to the cgi pool, everything else to the static pool.
pub fn table(listen: SocketAddr, pools: &[BackendPool]) -> Result<TableSpec, TableError> {
    let addrs = |name: &str| -> Vec<ServerAddr> {
        pools
            .iter()
            .filter(|p| p.name == name)
            .flat_map(|p| p.servers.iter().map(|&a| ServerAddr(a)))
            .collect()
    };
    let servers = pools
        .iter()
        .flat_map(|p| &p.servers)
        .map(|&addr| ServerSpec::new(ServerAddr(addr), Weight::DEFAULT))
        .collect();
    let rules = POOLS
        .iter()
        .filter_map(|(name, _, pattern)| {
            pattern.map(|pattern| RuleSpec::on_target(pattern, addrs(name)))
        })
        .collect();
    Ok(TableSpec {
        settings: Settings::default(),
        services: vec![ServiceSpec {
            servers,
            rules,
            default: Some(addrs("static")),
            health: Default::default(),
            ..ServiceSpec::new("web".parse()?, listen)
        }],
    })
}

async fn serve_backend(listener: Listener, pool: &'static str, addr: SocketAddr) {
    loop {
        if let Ok((conn, _)) = listener.accept().await {
            net::spawn(answer(conn, pool, addr));
        }
    }
}

/// Answers every request on one connection with who served it.
async fn answer(conn: Conn, pool: &'static str, addr: SocketAddr) {
    let limits = Limits::default();
    let mut buf = BytesMut::with_capacity(8192);
    let idle = Duration::from_secs(30);
    loop {
        let head = loop {
            match parse_request(&buf, &limits) {
                Ok(Some((head, len))) => {
                    buf.advance(len);
                    break head;
                }
                Ok(None) => match conn.read(buf, Instant::now() + idle).await {
                    Ok((n, filled)) if n > 0 => buf = filled,
                    _ => return,
                },
                Err(_) => return,
            }
        };
        let received = match skip_body(&conn, &mut buf, head.framing).await {
            Some(n) => n,
            None => return,
        };
        let body = format!(
            "{pool} server {addr} answered {} {} ({received} body bytes)\n",
            head.method.as_str(),
            head.target
        );
        let head_only = head.method.as_str() == "HEAD";
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nX-Served-By: {pool}/{addr}\r\n{}\r\n{}",
            body.len(),
            if head.keep_alive { "" } else { "Connection: close\r\n" },
            if head_only { "" } else { &body }
        );
        let sent = conn
            .write_all(Bytes::from(response), Instant::now() + idle)
            .await;
        if sent.is_err() || !head.keep_alive {
            return;
        }
    }
}

/// Reads and discards a request body; returns its length, `None` on error.
async fn skip_body(conn: &Conn, buf: &mut BytesMut, framing: Framing) -> Option<u64> {
    let deadline = || Instant::now() + Duration::from_secs(30);
    match framing {
        Framing::None => Some(0),
        // Not a request's framing.
        Framing::UntilClose => None,
        Framing::Length(length) => {
            let mut left = length;
            loop {
                let take = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                buf.advance(take);
                left -= take as u64;
                if left == 0 {
                    return Some(length);
                }
                let (n, filled) = conn.read(std::mem::take(buf), deadline()).await.ok()?;
                *buf = filled;
                if n == 0 {
                    return None;
                }
            }
        }
        Framing::Chunked => {
            let mut decoder = ChunkedDecoder::default();
            let mut total = 0u64;
            loop {
                while !buf.is_empty() {
                    let (consumed, event) = decoder.decode(buf).ok()?;
                    if let Some(crate::protocols::http::ChunkEvent::Data(range)) = &event {
                        total += range.len() as u64;
                    }
                    buf.advance(consumed);
                    if decoder.is_done() {
                        return Some(total);
                    }
                    if consumed == 0 && event.is_none() {
                        break;
                    }
                }
                let (n, filled) = conn.read(std::mem::take(buf), deadline()).await.ok()?;
                *buf = filled;
                if n == 0 {
                    return None;
                }
            }
        }
    }
}
