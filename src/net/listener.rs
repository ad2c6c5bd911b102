//! Listening sockets: one SO_REUSEPORT socket per worker for each address, so
//! the kernel spreads new connections over the cores.

use std::io;
use std::net::{SocketAddr, TcpListener as StdListener};

use socket2::{Domain, Protocol, Socket, Type};

use super::Conn;

const BACKLOG: i32 = 4096;

/// Binds `count` SO_REUSEPORT sockets to `addr` and returns them with the
/// address actually bound (the port is resolved when `addr` asks for port 0).
///
/// A SO_REUSEPORT bind succeeds silently on a port that another SO_REUSEPORT
/// socket already holds, so the address is first probed with a plain bind:
/// a busy port is reported as an error instead of being shared.
pub fn bind_group(addr: SocketAddr, count: usize) -> io::Result<(SocketAddr, Vec<StdListener>)> {
    let probe = new_socket(addr)?;
    probe.bind(&addr.into())?;
    let bound = probe
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not an inet address"))?;
    drop(probe);
    let mut sockets = Vec::with_capacity(count);
    for _ in 0..count.max(1) {
        let socket = new_socket(bound)?;
        socket.set_reuse_port(true)?;
        // Accepted sockets inherit it: no setsockopt per connection.
        socket.set_nodelay(true)?;
        socket.bind(&bound.into())?;
        socket.listen(BACKLOG)?;
        sockets.push(socket.into());
    }
    Ok((bound, sockets))
}

fn new_socket(addr: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_cloexec(true)?;
    Ok(socket)
}

/// A listening socket driven by the current worker's ring.
pub struct Listener {
    inner: tokio_uring::net::TcpListener,
}

impl Listener {
    /// Takes over a socket bound by [`bind_group`]; call on the worker's thread.
    pub fn from_std(socket: StdListener) -> Self {
        Self {
            inner: tokio_uring::net::TcpListener::from_std(socket),
        }
    }

    /// Binds a single listener (for built-in demo backends and tests).
    pub fn bind(addr: SocketAddr) -> io::Result<(Self, SocketAddr)> {
        let (bound, mut sockets) = bind_group(addr, 1)?;
        let socket = sockets
            .pop()
            .ok_or_else(|| io::Error::other("no socket bound"))?;
        Ok((Self::from_std(socket), bound))
    }

    /// Waits for the next client connection.
    pub async fn accept(&self) -> io::Result<(Conn, SocketAddr)> {
        let (stream, peer) = self.inner.accept().await?;
        Ok((Conn::new(stream, peer), peer))
    }
}
