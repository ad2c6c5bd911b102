//! Listening sockets: one SO_REUSEPORT socket per worker for each address, so
//! the kernel spreads new connections over the cores.

use std::io;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::os::fd::AsRawFd;

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
        defer_accept(&socket)?;
        socket.bind(&bound.into())?;
        socket.listen(BACKLOG)?;
        sockets.push(socket.into());
    }
    Ok((bound, sockets))
}

/// How long the kernel holds a connection whose client has not spoken yet
/// before handing it over anyway (TCP_DEFER_ACCEPT, in seconds).
const DEFER_ACCEPT_SECS: libc::c_int = 1;

/// Has the kernel complete an accept only once the client's first bytes are
/// there (TCP_DEFER_ACCEPT), as nginx's `listen ... deferred` and HAProxy's
/// `bind ... defer-accept` do. HTTP and RTSP clients speak first, so a new
/// connection is seen with its request, in one turn of the worker instead of
/// two (the accept, then the read's completion); a client that connects and
/// says nothing costs a kernel request socket, not a descriptor and a task,
/// until the kernel accepts it anyway after DEFER_ACCEPT_SECS. With a new
/// connection per request (`benches/ab.sh HEADER='Connection: close'`, 6
/// rounds): 1.15x the requests per second, 21.0 -> 17.9 us CPU per request.
#[allow(unsafe_code)]
fn defer_accept(socket: &Socket) -> io::Result<()> {
    let secs = DEFER_ACCEPT_SECS;
    // SAFETY: a valid descriptor, and a pointer to an int that outlives the
    // call, with its size.
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            std::ptr::from_ref(&secs).cast(),
            std::mem::size_of_val(&secs) as libc::socklen_t,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
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
        Ok((Conn::accepted(stream, peer), peer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(unsafe_code)]
    fn defer_accept_of(socket: &StdListener) -> libc::c_int {
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of_val(&value) as libc::socklen_t;
        // SAFETY: a valid descriptor, and an int with its size to write into.
        let result = unsafe {
            libc::getsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_DEFER_ACCEPT,
                std::ptr::from_mut(&mut value).cast(),
                &mut len,
            )
        };
        assert_eq!(result, 0, "{}", io::Error::last_os_error());
        value
    }

    #[test]
    fn every_listening_socket_defers_accepts() {
        let (_, sockets) = bind_group("127.0.0.1:0".parse().unwrap(), 2).unwrap();
        assert_eq!(sockets.len(), 2);
        for socket in &sockets {
            assert!(defer_accept_of(socket) > 0);
        }
    }
}
