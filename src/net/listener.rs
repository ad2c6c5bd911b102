//! Listening sockets: one SO_REUSEPORT socket per worker for each address, so
//! the kernel spreads new connections over the cores.

use std::io;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::os::fd::{AsRawFd, OwnedFd};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

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
    /// The same socket watched for readiness (a duplicate descriptor): a
    /// connection waiting in its queue, or the socket shut down.
    ready: Option<AsyncFd<OwnedFd>>,
}

/// Where a listening socket's queue stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    /// This many connections wait to be accepted.
    Waiting(usize),
    /// The socket no longer listens (shut down).
    Closed,
}

impl Listener {
    /// Takes over a socket bound by [`bind_group`]; call on the worker's thread.
    #[allow(unsafe_code)]
    pub fn from_std(socket: StdListener) -> Self {
        // Without a duplicate (out of descriptors), accepts are posted
        // without waiting for readiness; see `queued`.
        let ready = socket.try_clone().ok().and_then(|dup| {
            // SAFETY: an OwnedFd keeps its descriptor open, and the same,
            // until it is dropped with the AsyncFd that owns it.
            unsafe { AsyncFd::register_with_interest(OwnedFd::from(dup), Interest::READABLE) }.ok()
        });
        Self {
            inner: tokio_uring::net::TcpListener::from_std(socket),
            ready,
        }
    }

    /// Waits until connections wait in the socket's queue (the kernel's
    /// backlog), and says how many, or that the socket was shut down. No
    /// accept is posted meanwhile: the caller takes what an accepted
    /// connection needs (a slot under its limits) before it accepts, and
    /// [`accept`] then completes at once.
    ///
    /// [`accept`]: Listener::accept
    pub async fn queued(&self) -> io::Result<Queue> {
        let Some(ready) = &self.ready else {
            return Ok(Queue::Waiting(1));
        };
        loop {
            let mut guard = ready.readable().await?;
            match accept_queue(ready.get_ref())? {
                Queue::Waiting(0) => guard.clear_ready(),
                queue => return Ok(queue),
            }
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

/// The length of a listening socket's accept queue: TCP_INFO gives it for
/// a socket in LISTEN state (as `ss -l` shows it in Recv-Q).
#[allow(unsafe_code)]
fn accept_queue(socket: &OwnedFd) -> io::Result<Queue> {
    // SAFETY: an all-zero tcp_info is a valid value of this plain C struct.
    let zeroed: libc::tcp_info = unsafe { std::mem::zeroed() };
    let info = tcp_option(socket, libc::TCP_INFO, zeroed)?;
    const TCP_LISTEN: u8 = 10;
    if info.tcpi_state != TCP_LISTEN {
        return Ok(Queue::Closed);
    }
    Ok(Queue::Waiting(info.tcpi_unacked as usize))
}

/// A TCP-level option of `socket`, read into `value`.
#[allow(unsafe_code)]
fn tcp_option<T>(socket: &impl AsRawFd, name: libc::c_int, mut value: T) -> io::Result<T> {
    let mut len = std::mem::size_of_val(&value) as libc::socklen_t;
    // SAFETY: a valid descriptor, and a plain C value with its size to
    // write into.
    let result = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            name,
            std::ptr::from_mut(&mut value).cast(),
            &mut len,
        )
    };
    if result == 0 {
        Ok(value)
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defer_accept_of(socket: &StdListener) -> libc::c_int {
        tcp_option(socket, libc::TCP_DEFER_ACCEPT, 0).unwrap()
    }

    #[test]
    fn the_accept_queue_is_counted_and_a_shut_socket_is_closed() {
        let (addr, mut sockets) = bind_group("127.0.0.1:0".parse().unwrap(), 1).unwrap();
        let socket = sockets.pop().unwrap();
        let fd = OwnedFd::from(socket.try_clone().unwrap());
        assert_eq!(accept_queue(&fd).unwrap(), Queue::Waiting(0));
        let clients: Vec<_> = (0..3)
            .map(|_| {
                let mut client = std::net::TcpStream::connect(addr).unwrap();
                // Deferred accept: queued once the client has spoken.
                std::io::Write::write_all(&mut client, b"GET").unwrap();
                client
            })
            .collect();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while accept_queue(&fd).unwrap() != Queue::Waiting(3) {
            assert!(std::time::Instant::now() < deadline, "never 3 queued");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        drop(socket.accept().unwrap());
        assert_eq!(accept_queue(&fd).unwrap(), Queue::Waiting(2));
        socket2::SockRef::from(&socket)
            .shutdown(std::net::Shutdown::Both)
            .unwrap();
        assert_eq!(accept_queue(&fd).unwrap(), Queue::Closed);
        drop(clients);
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
